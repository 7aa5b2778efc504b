"""Turning a file into a ParsedDocument: one module per format, each with `parse(data) -> ParsedDocument`.

`parse_bytes` is the pure core (bytes in, document out); `parse_file` is the thin shell that checks and
reads the file. Every problem with a file is raised as a DocumentError subclass (rag.errors) whose
reason is written for the person reading the status column.

Each parser checks what a file would expand to before parsing it (decompressed size, tags, nesting) and
fails a decompression bomb at once with TooComplex. The indexer calls `worker.parse_isolated`, which runs
`parse_bytes` in a separate, reused process with a time and a memory limit (see ingest/parsers/worker.py).
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Sequence
from pathlib import Path

from ingest.document import DocumentKind, PageTextCache, ParsedDocument
from rag.errors import EmptyFile, FileTooLarge, UnreadableFile, UnsupportedFileType

logger = logging.getLogger(__name__)

_KINDS: dict[str, DocumentKind] = {
    ".pdf": "pdf",
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
}
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_KINDS)
_MIB = 1024 * 1024

__all__ = [
    "SUPPORTED_SUFFIXES", "PageTextCache", "kind_for", "parse_bytes", "parse_file", "read_document", "supported_kind",
]


def kind_for(path: Path) -> DocumentKind | None:
    """The kind of document a file holds, judged by its suffix (any case); None if unsupported."""
    return _KINDS.get(path.suffix.lower())


def supported_kind(path: Path) -> DocumentKind:
    """The kind of document a file holds; UnsupportedFileType when Archivist does not read its kind."""
    kind = kind_for(path)
    if kind is None:
        raise UnsupportedFileType(f"unsupported file type {path.suffix or '(no extension)'}")
    return kind


def read_document(path: Path, *, max_bytes: int) -> bytes:
    """Check one file and read it whole; a file over `max_bytes` (or not a regular file) is never read."""
    supported_kind(path)
    try:
        info = path.stat()
    except OSError as error:
        raise _unreadable(error) from error
    if stat.S_ISDIR(info.st_mode):
        raise UnsupportedFileType("a folder, not a file")
    if not stat.S_ISREG(info.st_mode):  # a pipe or device would block or never end
        raise UnsupportedFileType("not a regular file")
    if info.st_size == 0:
        raise EmptyFile("empty file (0 bytes)")
    if info.st_size > max_bytes:
        raise FileTooLarge(f"larger than the {_megabytes(max_bytes)} MB limit")
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)  # the file may grow between stat() and read()
    except OSError as error:
        raise _unreadable(error) from error
    if len(data) > max_bytes:
        raise FileTooLarge(f"larger than the {_megabytes(max_bytes)} MB limit")
    if not data:
        raise EmptyFile("empty file (0 bytes)")
    return data


def parse_file(
    path: Path, *, max_bytes: int, pdf_passwords: Sequence[str] = (), page_cache: PageTextCache | None = None
) -> ParsedDocument:
    """Check and read one file, then parse it; a file over `max_bytes` is never read."""
    kind = supported_kind(path)
    data = read_document(path, max_bytes=max_bytes)
    document = parse_bytes(data, kind, pdf_passwords=pdf_passwords, page_cache=page_cache)
    logger.debug("parsed %s: %d blocks, %d pages", path, len(document.blocks), document.page_count)
    return document


def parse_bytes(
    data: bytes,
    kind: DocumentKind,
    *,
    pdf_passwords: Sequence[str] = (),
    page_cache: PageTextCache | None = None,
) -> ParsedDocument:
    """Parse a file's content as the given kind of document; `page_cache` lets a PDF reuse the text of
    pages it has seen before (an edited PDF re-reads only the pages that changed)."""
    if not data:
        raise EmptyFile("empty file (0 bytes)")
    # Each format's library is imported only when a file of that format comes along: a run over a
    # folder of notes never pays for pypdf or python-docx.
    if kind == "pdf":
        from ingest.parsers import pdf

        return pdf.parse(data, pdf_passwords, page_cache)
    if kind == "text":
        from ingest.parsers import text

        return text.parse(data)
    if kind == "markdown":
        from ingest.parsers import markdown

        return markdown.parse(data)
    if kind == "html":
        from ingest.parsers import html

        return html.parse(data)
    if kind == "docx":
        from ingest.parsers import docx

        return docx.parse(data)
    raise UnsupportedFileType(f"unsupported document kind {kind!r}")


def _unreadable(error: OSError) -> UnreadableFile:
    """The reason, for a person, why the operating system would not let us read a file."""
    if isinstance(error, PermissionError):
        return UnreadableFile("permission denied")
    if isinstance(error, FileNotFoundError):
        return UnreadableFile("file disappeared while being read")
    return UnreadableFile(f"could not read: {error.strerror or error}")


def _megabytes(size: int) -> str:
    """A byte limit as the MB figure a user configured: "200", "0.5"; tiny test limits stay nonzero."""
    megabytes = size / _MIB
    return f"{megabytes:g}" if megabytes >= 0.001 else f"{megabytes:.8f}".rstrip("0")
