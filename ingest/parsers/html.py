"""Reads HTML files with beautifulsoup4 and the standard library's parser: visible text, by heading.

Block elements (p, li, div, blockquote, ...) become blocks, h1-h6 set the heading path, and what a
browser does not show (scripts, styles, head, hidden elements) is dropped. Data tables become one block
with a line per row ("cell | cell"), like Word tables; tables used for page layout are read as the
blocks they contain.
"""

from __future__ import annotations

import codecs
import re
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning
from bs4.element import CData, NavigableString, PageElement, PreformattedString, Tag

from ingest.document import ParsedDocument
from ingest.parsers._sections import SectionBuilder
from ingest.parsers.text import decode
from rag.errors import EmptyFile, TooComplex

_INVISIBLE = [
    "head", "script", "style", "noscript", "template", "meta", "link", "title",
    "iframe", "object", "embed", "canvas", "svg", "select",
]  # fmt: skip
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "html",
    "li", "main", "nav", "ol", "p", "section", "summary", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "ul",
}  # fmt: skip
# A table whose cells hold any of these is laying out a page, not tabulating data.
_LAYOUT_CONTENT = ["table", "p", "div", "ul", "ol", "pre", "blockquote", "section", "article", *_HEADINGS]
_SPACES = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9._:+-]+)""", re.IGNORECASE)
_CHARSET_SCAN_BYTES = 4096
# Both are advice to a programmer about the input ("this looks like a file name", "this is XHTML"); a
# user's file is what it is, and html.parser reads XHTML well enough. Filtered once, for the process:
# `warnings.catch_warnings` around each parse would swap every thread's filters from a reader thread.
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
# BeautifulSoup keeps every element as a Python object, about 1 KB each: a page of millions of elements
# would need gigabytes. Counting "<" (start and end tags, comments) is a cheap upper bound on elements
# that fails such a page at once; real pages, even book-length ones, have a few hundred thousand.
MAX_HTML_TAGS = 1_000_000


def parse(data: bytes) -> ParsedDocument:
    """Parse an HTML file into blocks of visible text with heading paths."""
    tags = data.count(b"<")
    if tags > MAX_HTML_TAGS:
        raise TooComplex(f"too complex to read: {tags:,} tags (limit {MAX_HTML_TAGS:,})")
    soup = BeautifulSoup(decode(data, declared=declared_charset(data)), "html.parser")
    for element in soup.find_all(_INVISIBLE):
        element.decompose()
    for element in soup.find_all(_is_hidden):
        if not element.decomposed:  # an ancestor may have gone already
            element.decompose()
    builder = SectionBuilder()
    _walk(soup, builder)
    blocks = builder.finish()
    if not blocks:
        raise EmptyFile("no visible text")
    return ParsedDocument(kind="html", page_count=1, blocks=blocks)


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in a meta tag or XML declaration, as a Python codec name."""
    head = data[:_CHARSET_SCAN_BYTES]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    if match is None:
        return None
    try:
        codec = codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None
    # As browsers do (WHATWG encoding rules): bytes in which an ASCII meta tag could be read are not
    # UTF-16, and the Latin-1 and ASCII labels mean Windows-1252.
    if codec.startswith(("utf-16", "utf-32")):
        return "utf-8"
    if codec in ("iso8859-1", "ascii"):
        return "cp1252"
    return codec


def _is_hidden(tag: Tag) -> bool:
    return tag.has_attr("hidden") or bool(_HIDDEN_STYLE.search(str(tag.get("style") or "")))


def _walk(root: Tag, builder: SectionBuilder) -> None:
    """Emit the blocks under `root` in reading order (iteratively: real pages nest deeper than recursion allows)."""
    buffer: list[str] = []

    def flush() -> None:
        lines = (" ".join(line.split()) for line in "".join(buffer).split("\n"))
        builder.add("\n".join(line for line in lines if line))
        buffer.clear()

    stack: list[PageElement | None] = list(reversed(root.contents))  # None: a block element ends
    while stack:
        node = stack.pop()
        if node is None:
            flush()
        elif _is_text(node):
            buffer.append(_SPACES.sub(" ", str(node)))
        elif isinstance(node, Tag):
            name = node.name
            if name in _HEADINGS:
                flush()
                builder.heading(int(name[1]), _inline_text(node))
            elif name == "br":
                buffer.append("\n")
            elif name == "pre":
                flush()
                builder.add(node.get_text())  # whitespace is the point of <pre>: keep it
            elif name == "table" and _is_data_table(node):
                flush()
                builder.add(_table_text(node))
            elif name in _BLOCKS:
                flush()
                stack.append(None)
                stack.extend(reversed(node.contents))
            else:
                stack.extend(reversed(node.contents))
    flush()


def _is_data_table(table: Tag) -> bool:
    return table.find(_LAYOUT_CONTENT) is None


def _table_text(table: Tag) -> str:
    """A data table as lines: the caption, then each row's cells joined with " | "."""
    lines: list[str] = []
    caption = table.find("caption")
    if caption is not None:
        lines.append(_inline_text(caption))
    for row in table.find_all("tr"):
        cells = [_inline_text(cell) for cell in row.find_all(["td", "th"], recursive=False)]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(line for line in lines if line)


def _inline_text(tag: Tag) -> str:
    """The text of a heading or table cell on one line: a <br> counts as a space, markup as nothing."""
    parts: list[str] = []
    for node in tag.descendants:
        if isinstance(node, Tag) and node.name == "br":
            parts.append(" ")
        elif _is_text(node):
            parts.append(str(node))
    return " ".join("".join(parts).split())


def _is_text(node: PageElement) -> bool:
    """Text a reader sees: not comments, doctypes or processing instructions (CDATA is content)."""
    return isinstance(node, NavigableString) and (isinstance(node, CData) or not isinstance(node, PreformattedString))
