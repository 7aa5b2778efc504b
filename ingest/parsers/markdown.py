"""Reads Markdown files with markdown-it-py: blocks as rendered text, under their heading path.

markdown-it-py is a CommonMark parser, so setext headings, fenced code containing "#" lines, lists
and block quotes are recognised exactly as a Markdown viewer shows them, which regexes get wrong.
Each top-level element (paragraph, list, table, quote, code block) becomes one block; inline markup
is dropped (link text is kept, URLs are not) because search should see the words a reader sees.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ingest.document import ParsedDocument
from ingest.parsers._sections import SectionBuilder
from ingest.parsers.text import decode
from rag.errors import EmptyFile

# Front matter is metadata for static-site generators, not prose. Only at the very top, and only
# when it is closed: a lone "---" first line is a thematic break.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
# Raw HTML in Markdown is reduced to its text; scripts, styles and comments have none worth keeping.
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.DOTALL | re.IGNORECASE)
# GitHub-style tables and strikethrough are everyday Markdown; html is on so that raw HTML blocks are
# recognised as such (and reduced to their text) instead of being read as literal tags.
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def parse(data: bytes) -> ParsedDocument:
    """Parse a Markdown file into blocks with heading paths (front matter dropped)."""
    source = _FRONT_MATTER.sub("", decode(data), count=1)
    tokens = _MARKDOWN.parse(source)
    builder = SectionBuilder()
    for group in _top_level(tokens):
        first = group[0]
        if first.type == "heading_open":
            builder.heading(int(first.tag[1:]), _render(group))
        else:
            builder.add(_render(group))
    blocks = builder.finish()
    if not blocks:
        raise EmptyFile("no text (only whitespace or front matter)")
    return ParsedDocument(kind="markdown", page_count=1, blocks=blocks)


def _top_level(tokens: Sequence[Token]) -> list[list[Token]]:
    """Group the token stream into top-level elements: an opening token through its closing one."""
    groups: list[list[Token]] = []
    depth = 0
    for token in tokens:
        if depth == 0:
            groups.append([])
        groups[-1].append(token)
        depth += token.nesting
    return groups


def _render(group: Sequence[Token]) -> str:
    """The plain text of one top-level element: list items on their own lines, table rows with " | "."""
    lines: list[str] = []
    row: list[str] | None = None
    list_depth = 0
    marker: str | None = None  # bullet of a list item whose first line is not written yet
    for token in group:
        if token.type in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif token.type == "list_item_open":
            marker = f"{token.info}{token.markup} " if token.info else f"{token.markup} "
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            if any(row):
                lines.append(" | ".join(row))
            row = None
        elif token.type in ("fence", "code_block"):
            # Code is kept whole, blank lines included: it only makes sense as a unit.
            lines.append(token.content.rstrip("\n"))
        elif token.type == "html_block":
            lines.append(" ".join(_TAG.sub(" ", token.content).split()))
        elif token.type == "inline":
            text = _inline_text(token)
            if row is not None:
                row.append(text)
                continue
            indent = "  " * max(list_depth - 1, 0)
            if marker is not None:
                text, marker = marker + text, None
            elif list_depth:
                indent += "  "  # a later paragraph of a list item lines up with its first
            lines.append(indent + text)
    return "\n".join(line for line in lines if line.strip())


def _inline_text(token: Token) -> str:
    """What a reader sees of inline Markdown: text, code and image alt text, wrapped lines joined."""
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "image":
            parts.append(child.content)  # the alt text
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
    return "".join(parts).strip()
