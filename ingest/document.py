"""What a parser hands to the chunker: a document as paragraphs, each with its page and heading path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DocumentKind = Literal["pdf", "text", "markdown", "html", "docx"]


@dataclass(frozen=True)
class Block:
    """One paragraph-like unit of text. Chunks never split a block across pages."""

    text: str
    page: int = 1  # 1-based; 1 for formats without pages
    headings: tuple[str, ...] = ()  # heading path, outermost first (Markdown, HTML, DOCX)


@dataclass(frozen=True)
class ParsedDocument:
    kind: DocumentKind
    page_count: int
    blocks: tuple[Block, ...]
    warnings: tuple[str, ...] = field(default=())  # e.g. "pages 3, 7: no text layer"

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)
