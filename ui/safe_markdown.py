"""Markdown that can never load anything or link off the page: every string the page renders goes through here.

Why: Streamlit renders markdown (react-markdown with GFM) in st.markdown, st.caption, st.error/warning/info,
toasts, labels and tooltips. Text the model writes, or a document's text that it repeats, could otherwise
load `![x](http://elsewhere/leak?d=…)` as soon as it is drawn, or offer `[more](http://…)` as a live link.

Two faces, both pure:
- `plain(text)`: text shown exactly as written (file names, passages, quotes): every character markdown
  could act on is escaped, and anything GFM would autolink is put in a code span.
- `safe(markdown, citation_links)`: markdown from the model (answer, reasoning) or from our own messages.
  It is parsed with markdown-it-py and written out again from the parse, keeping only what is harmless:
  headings, paragraphs, emphasis, strikethrough, lists, quotes, tables, code, rules. Links become their text
  followed by their address in a code span (inert), images become `[image: alt]`, raw HTML and autolinks
  become literal text, and the only links in the result are our own `[n]` citations, which point at
  in-page anchors (`#…`). What is not recognised is written out as escaped text, so an unexpected token
  can only lose formatting, never gain a link.

Everything between our own syntax is escaped text; whitespace-separated runs that GFM's autolink-literal
would turn into links (`https://…`, `www.…`, `name@host.tld`, `mailto:`) are written as code spans, which
GFM never links. Our LaTeX rule stays: `$` is escaped, since `$5 and $10` is money, not math.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

# The characters markdown, GFM, Streamlit's directives (`:red[…]`, `:material/icon:`) or entities (`&#91;`)
# act on anywhere in a line; a backslash before ASCII punctuation is always a literal in CommonMark.
# Links, images, reference definitions and footnotes all need `[`, autolinks and HTML need `<`.
_SPECIAL = re.compile(r"([\\`*_\[\]{}<>#|~$:&])")
# ...and those that act only at the start of a line: list items (`-`, `+`, `1.`, `1)`), setext underlines.
_LINE_START = re.compile(r"^([ \t]*)([-+=]|\d{1,9}(?=[.)]))([.)]?)", re.MULTILINE)
# A run GFM's autolink literal could link: a scheme's `://`, `www.`, an e-mail address, mailto:/xmpp:.
_LINKABLE = re.compile(r"://|www\.|@[^\s]*\.|mailto:|xmpp:", re.IGNORECASE)
_RUN = re.compile(r"\S+")
_BACKTICKS = re.compile(r"`+")
_ANCHOR = re.compile(r"#[A-Za-z0-9_-]+")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+-]{1,30}")
# [1]  [1, 2]  and gpt-oss's own 【1】 / 【1†L3-L5】, as rag.answer.citations parses them.
CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\](?!\()|【(\d+)(?:†[^】]*)?】")

_PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


# ----- text -----
def _escape(text: str) -> str:
    text = _SPECIAL.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if not m[3] else f"{m[1]}{m[2]}\\{m[3]}", text)


def code(text: str, *, in_table: bool = False) -> str:
    """`text` as an inline code span, whatever backticks it holds (a code span is never linked or rendered)."""
    text = " ".join(text.splitlines())  # a code span is one line here; a newline would end a table row
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    if in_table:
        text = text.replace("|", "\\|")  # GFM splits cells on | even inside code spans, unless escaped
    padding = " " if text.startswith("`") or text.endswith("`") or not text.strip() or (
        text.startswith(" ") and text.endswith(" ")) else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def plain(text: str, *, in_table: bool = False) -> str:
    """Text shown as written: nothing in it formats the page, loads anything or becomes a link."""
    out: list[str] = []
    position = 0
    for run in _RUN.finditer(text):
        if _LINKABLE.search(run.group()):
            # Sentence punctuation after an address stays outside its code span (it holds nothing linkable).
            linkable = run.group().rstrip(".,;:!?)'\"")
            out.append(_escape(text[position:run.start()]))
            out.append(code(linkable, in_table=in_table))
            position = run.start() + len(linkable)
    out.append(_escape(text[position:]))
    return "".join(out)


def _plain_with_citations(text: str, links: Mapping[int, str], in_table: bool) -> str:
    """`plain`, except that each `[n]` with a known anchor becomes a link to that in-page anchor."""
    if not links:
        return plain(text, in_table=in_table)
    out: list[str] = []
    position = 0
    for match in CITATION.finditer(text):
        cited = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1) or match.group(2))]
        if not any(n in links for n in cited):
            continue
        out.append(plain(text[position:match.start()], in_table=in_table))
        out.append("".join(f"[\\[{n}\\]]({links[n]})" if n in links else f"\\[{n}\\]" for n in cited))
        position = match.end()
    out.append(plain(text[position:], in_table=in_table))
    return "".join(out)


# ----- markdown, rewritten from its parse -----
@dataclass
class _Inline:
    """Inline output: adjacent text pieces are joined before escaping, so that a URL cut in two by a token
    that renders to nothing cannot be joined again by the browser's markdown into something linkable."""

    links: Mapping[int, str]
    in_table: bool
    parts: list[str]
    pending: str = ""

    def text(self, text: str) -> None:
        self.pending += text

    def markup(self, markdown: str) -> None:
        self.flush()
        self.parts.append(markdown)

    def flush(self) -> None:
        if self.pending:
            self.parts.append(_plain_with_citations(self.pending, self.links, self.in_table))
            self.pending = ""

    def result(self) -> str:
        self.flush()
        return "".join(self.parts)


def _text_of(node: SyntaxTreeNode) -> str:
    if node.type in ("text", "code_inline", "html_inline", "text_special"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    return "".join(_text_of(child) for child in node.children)


def _inline(node: SyntaxTreeNode, out: _Inline) -> None:
    kind = node.type
    if kind in ("text", "text_special", "html_inline"):
        out.text(node.content)  # raw HTML is shown as the literal text it is
    elif kind == "code_inline":
        out.markup(code(node.content, in_table=out.in_table))
    elif kind == "softbreak":
        out.text("\n")
    elif kind == "hardbreak":
        out.markup("  \n" if not out.in_table else " ")
    elif kind in ("em", "strong", "s"):
        delimiter = {"em": "*", "strong": "**", "s": "~~"}[kind]
        out.markup(delimiter)
        for child in node.children:
            _inline(child, out)
        out.markup(delimiter)
    elif kind == "link":
        label = _text_of(node)
        for child in node.children:
            _inline(child, out)
        href = str(node.attrs.get("href", ""))
        if href and href != label and f"mailto:{label}" != href:
            out.text(" (")
            out.markup(code(href, in_table=out.in_table))
            out.text(")")
    elif kind == "image":
        alt = _text_of(node).strip()
        out.text(f"[image: {alt}]" if alt else "[image]")
    else:  # anything else: its text, escaped
        out.text(_text_of(node))


def _inline_markdown(node: SyntaxTreeNode, links: Mapping[int, str], in_table: bool = False) -> str:
    out = _Inline(links, in_table, [])
    for child in node.children:
        _inline(child, out)
    return out.result()


def _fenced(content: str, info: str = "") -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(3, longest + 1)
    language = info.split()[0] if info.split() else ""
    language = language if _LANGUAGE.fullmatch(language) else ""
    return f"{fence}{language}\n{content.rstrip(chr(10))}\n{fence}"


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0], *[(rest + line) if line else rest.rstrip() for line in lines[1:]]])


def _table(node: SyntaxTreeNode, links: Mapping[int, str]) -> str:
    rows: list[list[str]] = []
    aligns: list[str] = []
    for section in node.children:
        for row in section.children:
            cells = []
            for cell in row.children:
                if section.type == "thead":
                    style = str(cell.attrs.get("style", ""))
                    aligns.append({"text-align:left": ":--", "text-align:right": "--:",
                                   "text-align:center": ":-:"}.get(style, "---"))
                inline = cell.children[0] if cell.children else None
                cells.append(_inline_markdown(inline, links, in_table=True) if inline is not None else "")
            rows.append(cells)
    if not rows:
        return ""
    lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join(aligns or ["---"] * len(rows[0])) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _block(node: SyntaxTreeNode, links: Mapping[int, str]) -> str:
    kind = node.type
    if kind == "paragraph":
        return "".join(_inline_markdown(child, links) for child in node.children)
    if kind == "heading":
        level = int(node.tag[1]) if node.tag[1:].isdigit() else 1
        return "#" * level + " " + "".join(_inline_markdown(child, links) for child in node.children)
    if kind in ("fence", "code_block"):
        return _fenced(node.content, node.info if kind == "fence" else "")
    if kind == "html_block":
        return _fenced(node.content)  # shown as the text it is
    if kind == "hr":
        return "---"
    if kind == "blockquote":
        return _indent(_blocks(node, links), "> ", "> ")
    if kind in ("bullet_list", "ordered_list"):
        # A tight list (no blank lines between items) stays tight: its paragraphs are marked hidden.
        tight = any(block.type == "paragraph" and block.hidden for item in node.children for block in item.children)
        separator = "\n" if tight else "\n\n"
        items = []
        start = int(node.attrs.get("start", 1) or 1) if kind == "ordered_list" else 1
        for number, item in enumerate(node.children, start=start):
            marker = f"{number}. " if kind == "ordered_list" else "- "
            items.append(_indent(_blocks(item, links, separator) or "", marker, " " * len(marker)))
        return separator.join(items)
    if kind == "table":
        return _table(node, links)
    return plain(_text_of(node))


def _blocks(node: SyntaxTreeNode, links: Mapping[int, str], separator: str = "\n\n") -> str:
    return separator.join(part for part in (_block(child, links) for child in node.children) if part)


def safe(markdown: str, citation_links: Mapping[int, str] | None = None) -> str:
    """`markdown` rewritten so that it keeps its formatting but cannot load anything or link off the page.

    `citation_links` maps a citation number to the in-page anchor (`#…`) its `[n]` should link to; any other
    target is refused, so the only links that can come out are those anchors.
    """
    links = {n: anchor for n, anchor in (citation_links or {}).items() if _ANCHOR.fullmatch(anchor)}
    return _blocks(SyntaxTreeNode(_PARSER.parse(markdown)), links)

