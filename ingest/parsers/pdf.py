"""Reads PDFs with pypdf: each page's text as paragraph blocks that keep their 1-based page number.

Encrypted files are tried with the empty password, then with each configured one. Damaged files are
read in pypdf's forgiving (non-strict) mode; what pypdf had to work around becomes a document warning
rather than a log line, and one page that cannot be read costs that page, not the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PdfReadWarning
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from ingest.document import Block, PageTextCache, ParsedDocument
from rag.errors import DamagedFile, EmptyFile, EncryptedFile, NoTextLayer

logger = logging.getLogger(__name__)

# pypdf reports repairs through the "pypdf" logger and the warnings module, both process-wide, so
# files are read one at a time to keep each file's messages its own. pypdf is pure Python and holds
# the GIL: reading PDFs in parallel threads would gain little anyway.
_PYPDF_LOCK = threading.Lock()
_MAX_NOTES = 3

# Control characters, C1 controls, private-use code points (glyph ids of symbol fonts) and the
# replacement character (glyphs a broken font could not map): noise that no one searches for.
_JUNK = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd\U000f0000-\U0010ffff]")
_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
_TERMINAL = re.compile(r"[.!?:;][\"'”’»)\]]*$")
# Below this many characters per line there is no telling wrapped prose from a table or a list.
_MIN_WRAP_WIDTH = 30
_WRAP_SHARE = 0.75


def parse(data: bytes, passwords: Sequence[str] = (), page_cache: PageTextCache | None = None) -> ParsedDocument:
    """Parse a PDF into paragraph blocks per page; `passwords` are tried after the empty one. Pages whose
    digest `page_cache` knows are not extracted again."""
    with _PYPDF_LOCK, _pypdf_messages() as messages:
        reader = _open(data, passwords)
        try:
            page_count = len(reader.pages)
        except Exception as error:  # a broken page tree fails in pypdf in many different ways
            raise DamagedFile(f"damaged PDF: {_short(error)}") from error
        if page_count == 0:
            raise EmptyFile("empty PDF (no pages)")
        pages, failed = _read_pages(reader, page_count, page_cache)
    return assemble(pages, failed, messages)


def assemble(pages: dict[int, list[str]], failed: Sequence[int], messages: Sequence[str]) -> ParsedDocument:
    """Build the document from each page's paragraphs (by page number), saying what went missing."""
    blocks = tuple(Block(text=text, page=number) for number, texts in pages.items() for text in texts)
    if not blocks:
        if failed:
            raise DamagedFile(f"damaged PDF: text extraction failed ({_page_list(failed)})")
        raise NoTextLayer("no text layer (scanned or image-only PDF)")
    notes: list[str] = []
    if failed:
        notes.append(f"{_page_list(failed)}: text extraction failed")
    empty = [number for number, texts in pages.items() if not texts and number not in failed]
    if empty:
        notes.append(f"{_page_list(empty)}: no text layer")
    if messages:
        unique = list(dict.fromkeys(messages))
        more = f" (+{len(unique) - _MAX_NOTES} more)" if len(unique) > _MAX_NOTES else ""
        notes.append(f"damaged PDF structure, repaired while reading: {'; '.join(unique[:_MAX_NOTES])}{more}")
    return ParsedDocument(kind="pdf", page_count=len(pages), blocks=blocks, warnings=tuple(notes))


def _open(data: bytes, passwords: Sequence[str]) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except Exception as error:  # pypdf raises its own errors but also KeyError, ValueError, ... on junk
        raise DamagedFile(f"damaged PDF: {_short(error)}") from error
    if encrypted:
        _unlock(reader, passwords)
    return reader


def _unlock(reader: PdfReader, passwords: Sequence[str]) -> None:
    """Decrypt with the empty password (owner-only protection) or one of `passwords`."""
    for password in ("", *passwords):
        try:
            if reader.decrypt(password) != PasswordType.NOT_DECRYPTED:
                return
        except DependencyError as error:  # AES without the `cryptography` package
            raise EncryptedFile(f"encrypted: cannot decrypt here ({_short(error)})") from error
        except NotImplementedError as error:
            raise EncryptedFile(f"encrypted with an unsupported method ({_short(error)})") from error
        except Exception as error:
            raise DamagedFile(f"damaged PDF: unreadable encryption data ({_short(error)})") from error
    raise EncryptedFile("encrypted: needs a password")


def _read_pages(
    reader: PdfReader, page_count: int, page_cache: PageTextCache | None
) -> tuple[dict[int, list[str]], list[int]]:
    """Each page's paragraphs by 1-based page number, and the pages whose extraction failed."""
    pages: dict[int, list[str]] = {}
    failed: list[int] = []
    digests = _Digests() if page_cache is not None else None
    for number in range(1, page_count + 1):
        key = digests.page_key(reader.pages[number - 1]) if digests is not None else None
        cached = page_cache.get(key) if page_cache is not None and key is not None else None
        if cached is not None:
            pages[number] = cached
            continue
        try:
            raw = reader.pages[number - 1].extract_text()
        except Exception as error:  # one bad content stream or font must not cost the other pages
            logger.debug("page %d: text extraction failed: %r", number, error)
            failed.append(number)
            pages[number] = []
            continue
        pages[number] = page_paragraphs(raw)
        if page_cache is not None and key is not None:
            page_cache.put(key, pages[number])
    return pages, failed


class _Digests:
    """A digest of everything a page's extracted text depends on: its content streams, and the fonts and
    form XObjects they use (their dictionaries, ToUnicode maps and encodings), page size and rotation.

    Object numbers are not part of it: a tool that rewrites the file (as replacing one page with pypdf
    does) renumbers every object, yet the unchanged pages keep their digests. Font programs and image data
    are skipped: text extraction does not read them, and hashing them would cost more than it saves.
    """

    VERSION = b"archivist-page-text-1"  # bump when page_paragraphs or pypdf's extraction changes
    _SKIPPED_KEYS = frozenset({"/Parent", "/Annots", "/FontFile", "/FontFile2", "/FontFile3", "/B", "/Thumb",
                               "/StructParents", "/Metadata", "/PieceInfo", "/LastModified"})

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], bytes] = {}  # by object reference, within one document

    def page_key(self, page: Any) -> str | None:
        try:
            digest = hashlib.sha256(self.VERSION)
            digest.update(self._digest(page, depth=0))
            return digest.hexdigest()
        except Exception:  # an odd object graph: extract the page rather than risk a wrong key
            return None

    def _digest(self, value: Any, depth: int) -> bytes:
        if depth > 24:
            raise ValueError("object graph too deep")
        if isinstance(value, IndirectObject):
            reference = (value.idnum, value.generation)
            known = self._memo.get(reference)
            if known is None:
                known = self._memo[reference] = self._digest(value.get_object(), depth + 1)
            return known
        digest = hashlib.sha256()
        if isinstance(value, StreamObject):
            digest.update(b"stream")
            is_image = value.get("/Subtype") == "/Image"
            digest.update(b"image" if is_image else value.get_data())
            value_items = value.items()
            digest.update(self._dict_digest(value_items, depth))
        elif isinstance(value, DictionaryObject):
            digest.update(b"dict" + self._dict_digest(value.items(), depth))
        elif isinstance(value, ArrayObject):
            digest.update(b"array")
            for item in value:
                digest.update(self._digest(item, depth + 1))
        else:
            digest.update(type(value).__name__.encode() + b":" + repr(value).encode())
        return digest.digest()

    def _dict_digest(self, items: Any, depth: int) -> bytes:
        digest = hashlib.sha256()
        for key, item in sorted(items, key=lambda pair: str(pair[0])):
            if key in self._SKIPPED_KEYS or key in ("/Length", "/Filter", "/DecodeParms"):
                continue  # how a stream is compressed does not change its text
            digest.update(str(key).encode() + b"=" + self._digest(item, depth + 1))
        return digest.digest()


def page_paragraphs(text: str) -> list[str]:
    """Split one page's extracted text into paragraphs, joining wrapped lines and hyphenated words.

    pypdf gives one line per printed line and rarely a blank line between paragraphs. A line that
    reaches (nearly) the width of the page's longest lines was wrapped and is joined to the next with a
    space; a shorter line keeps its line break (headings, list items, table rows). A short line that
    ends a sentence after a wrapped line is the last line of a paragraph, so it ends the block.
    """
    text = re.sub("\u00ad[ \t]*\n", "", text).replace("\u00ad", "")  # soft hyphens at line ends
    text = _JUNK.sub("", text.translate(_LIGATURES).replace("\r\n", "\n").replace("\r", "\n"))
    lines = [" ".join(line.split()) for line in text.replace("\f", "\n\n").split("\n")]
    widths = sorted(len(line) for line in lines if line)
    if not widths:
        return []
    reference = widths[int(0.9 * (len(widths) - 1))]
    full_width = _WRAP_SHARE * reference if reference >= _MIN_WRAP_WIDTH else math.inf
    found: list[str] = []
    current = ""
    wrapped = False  # the previous line of `current` reached the margin
    for line in lines:
        if not line:
            if current:
                found.append(current)
            current, wrapped = "", False
            continue
        current = _join(current, line, wrapped) if current else line
        after_wrap, wrapped = wrapped, len(line) >= full_width
        if after_wrap and not wrapped and _TERMINAL.search(line):
            found.append(current)
            current, wrapped = "", False
    if current:
        found.append(current)
    return found


def _join(current: str, line: str, wrapped: bool) -> str:
    # "exam-" + "ple" is "example" only when both sides are lower-case letters and the next word has
    # no hyphen of its own ("state-" + "of-the-art" stays as it is).
    if (
        current.endswith("-")
        and len(current) > 1
        and current[-2].islower()
        and line[0].islower()
        and "-" not in line.split(" ", 1)[0]
    ):
        return current[:-1] + line
    return current + (" " if wrapped else "\n") + line


def _page_list(numbers: Sequence[int]) -> str:
    """ "page 3", "pages 3, 7" or "pages 1-40, 42": ranges keep a long scanned stretch readable."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][-1] + 1:
            spans[-1].append(number)
        else:
            spans.append([number])
    text = ", ".join(f"{span[0]}-{span[-1]}" if len(span) > 2 else ", ".join(map(str, span)) for span in spans)
    return f"{'pages' if len(numbers) > 1 else 'page'} {text}"


@contextmanager
def _pypdf_messages() -> Iterator[list[str]]:
    """Collect what pypdf logs or warns while reading, instead of letting it reach the console."""
    messages: list[str] = []
    handler = _Collector(messages)
    pypdf_logger = logging.getLogger("pypdf")
    propagate = pypdf_logger.propagate
    pypdf_logger.addHandler(handler)
    pypdf_logger.propagate = False
    others: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield messages
            finally:
                # The record is process-wide: another thread's warning, or a ResourceWarning from garbage
                # collected meanwhile, is not pypdf's and says nothing about this file.
                for warning in caught:
                    if issubclass(warning.category, PdfReadWarning) or "pypdf" in warning.filename:
                        messages.append(str(warning.message))
                    else:
                        others.append(warning)
    finally:
        pypdf_logger.removeHandler(handler)
        pypdf_logger.propagate = propagate
    for warning in others:
        # Not re-raised: emitted again here they would meet this thread's filters, not their own module's.
        logger.debug("warning while reading a PDF, not from pypdf: %s", warning.message)
    for message in messages:
        logger.debug("pypdf: %s", message)


class _Collector(logging.Handler):
    """A logging handler that keeps the messages of warnings and worse in a list."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _short(error: BaseException) -> str:
    """The first line of an error's message, short enough for a status column."""
    message = str(error).strip()
    return message.splitlines()[0][:120] if message else type(error).__name__
