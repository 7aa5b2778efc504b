"""What a parser hands to the chunker: a document as paragraphs, each with its page and heading path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

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


class PageTextCache(Protocol):
    """Remembers the paragraphs extracted from a PDF page, by a digest of everything that page's text
    depends on, so an edited PDF only has its changed pages read again."""

    def get(self, key: str) -> list[str] | None: ...

    def put(self, key: str, paragraphs: list[str]) -> None: ...


class MemoryPageTextCache:
    """A PageTextCache in a dict, for tests and one-off runs."""

    def __init__(self) -> None:
        self.entries: dict[str, list[str]] = {}
        self.hits = 0

    def get(self, key: str) -> list[str] | None:
        found = self.entries.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: str, paragraphs: list[str]) -> None:
        self.entries[key] = list(paragraphs)
