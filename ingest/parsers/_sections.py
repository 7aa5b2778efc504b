"""Collects a structured document's blocks in reading order, under the heading path they belong to.

Shared by the Markdown, HTML and Word parsers, so that all three treat headings the same way.

A heading is not a block of its own, and its text is not repeated in the blocks: every block carries
the full heading path in `Block.headings`, and the index embeds each chunk with that path in front
("Guide > Install\nRun the installer..."). So every chunk of a section, not only the first, carries the
section's name for search, and a quoted sentence is never glued to a heading.

Headings with no text of their own before the next heading at the same or a higher level (an empty
section) are flushed as a block of their own, so no heading text is ever lost.
"""

from __future__ import annotations

import re

from ingest.document import Block

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


class SectionBuilder:
    """Builds the block list of one document: `heading()` and `add()` in reading order, then `finish()`."""

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []  # (level, text), outermost first
        self._pending: list[tuple[int, str]] = []  # headings not yet attached to any text
        self._blocks: list[Block] = []

    @property
    def headings(self) -> tuple[str, ...]:
        """The current heading path, outermost first."""
        return tuple(text for _, text in self._path)

    def heading(self, level: int, text: str) -> None:
        """Open a section: `level` is 1 for the top (0 for a document title), deeper is larger."""
        text = " ".join(text.split())
        if not text:
            return
        # A pending heading at this level or deeper is closed without any text: keep it as a block.
        if self._pending and level <= self._pending[-1][0]:
            self._flush_pending()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))
        self._pending.append((level, text))

    def add(self, text: str, page: int = 1) -> None:
        """Add one block of text in the current section; blank text is ignored."""
        if not text.strip():
            return
        # Leading blank lines and trailing space go; leading spaces stay (indented code keeps its shape).
        text = _LEADING_BLANK_LINES.sub("", text).rstrip()
        self._pending.clear()  # these headings have text now; the path carries them
        self._blocks.append(Block(text=text, page=page, headings=self.headings))

    def finish(self) -> tuple[Block, ...]:
        """Return every block, including trailing headings that never got any text."""
        self._flush_pending()
        return tuple(self._blocks)

    def _flush_pending(self) -> None:
        if self._pending:
            text = "\n".join(heading for _, heading in self._pending)
            self._pending.clear()
            self._blocks.append(Block(text=text, headings=self.headings))
