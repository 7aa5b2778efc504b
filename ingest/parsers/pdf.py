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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pypdf import PasswordType, PdfReader, apply_configuration
from pypdf.errors import DependencyError, LimitReachedError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from ingest.document import Block, PageTextCache, ParsedDocument
from rag.errors import DamagedFile, EmptyFile, EncryptedFile, NoTextLayer, TooComplex

logger = logging.getLogger(__name__)

# One PDF at a time: pypdf is pure Python and holds the GIL, so parallel threads would gain little, and
# one file's peak memory at a time is what the limits below are sized for.
_PYPDF_LOCK = threading.Lock()
_MIB = 1024 * 1024
# pypdf caps what one stream may decompress to (75 MB each by default). Set deliberately, and lower: a
# page's text never needs tens of MB of drawing operators, and pypdf keeps every decoded stream of the
# file in memory, so a few such pages would otherwise fill the reading process's memory limit.
MAX_STREAM_BYTES = 32 * _MIB
_LIMITS: dict[str, Any] = {
    "zlib_maximum_output_length": MAX_STREAM_BYTES,
    "lzw_maximum_output_length": MAX_STREAM_BYTES,
    "run_length_maximum_output_length": MAX_STREAM_BYTES,
    "brotli_maximum_output_length": MAX_STREAM_BYTES,
    "array_based_stream_maximum_output_length": MAX_STREAM_BYTES,
    "stream_decoding_work_maximum_length": 4 * MAX_STREAM_BYTES,
}
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
    # The limits are a context variable in pypdf: they hold for this thread only, for this file only.
    with _PYPDF_LOCK, _pypdf_messages() as messages, apply_configuration(**_LIMITS):
        reader = _open(data, passwords)
        try:
            page_count = len(reader.pages)
        except LimitReachedError as error:
            raise TooComplex(f"too complex to read: {_short(error)}") from error
        except Exception as error:  # a broken page tree fails in pypdf in many different ways
            raise DamagedFile(f"damaged PDF: {_short(error)}") from error
        if page_count == 0:
            raise EmptyFile("empty PDF (no pages)")
        pages, failed, too_large = _read_pages(reader, page_count, page_cache)
    return assemble(pages, failed, messages, too_large)


def assemble(
    pages: dict[int, list[str]],
    failed: Sequence[int],
    messages: Sequence[str],
    too_large: Sequence[int] = (),
) -> ParsedDocument:
    """Build the document from each page's paragraphs (by page number), saying what went missing.
    `too_large` are the pages skipped because their content expands beyond MAX_STREAM_BYTES."""
    blocks = tuple(Block(text=text, page=number) for number, texts in pages.items() for text in texts)
    limit = f"the {MAX_STREAM_BYTES // _MIB} MB limit for one page's content"
    if not blocks:
        if too_large:
            verb = "expands" if len(too_large) == 1 else "expand"
            raise TooComplex(f"too complex to read: the content of {_page_list(too_large)} {verb} beyond {limit}")
        if failed:
            raise DamagedFile(f"damaged PDF: text extraction failed ({_page_list(failed)})")
        raise NoTextLayer("no text layer (scanned or image-only PDF)")
    notes: list[str] = []
    if too_large:
        notes.append(f"{_page_list(too_large)}: skipped, content expands beyond {limit}")
    if failed:
        notes.append(f"{_page_list(failed)}: text extraction failed")
    skipped = {*failed, *too_large}
    empty = [number for number, texts in pages.items() if not texts and number not in skipped]
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
    except LimitReachedError as error:
        raise TooComplex(f"too complex to read: {_short(error)}") from error
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
) -> tuple[dict[int, list[str]], list[int], list[int]]:
    """Each page's paragraphs by 1-based page number, the pages whose extraction failed, and those
    skipped for expanding beyond the limits."""
    pages: dict[int, list[str]] = {}
    failed: list[int] = []
    too_large: list[int] = []
    digests = _Digests() if page_cache is not None else None
    for number in range(1, page_count + 1):
        key = digests.page_key(reader.pages[number - 1]) if digests is not None else None
        cached = page_cache.get(key) if page_cache is not None and key is not None else None
        if cached is not None:
            pages[number] = cached
            continue
        try:
            raw = reader.pages[number - 1].extract_text()
        except LimitReachedError as error:
            logger.debug("page %d: beyond the limits: %r", number, error)
            too_large.append(number)
            pages[number] = []
            continue
        except Exception as error:  # one bad content stream or font must not cost the other pages
            logger.debug("page %d: text extraction failed: %r", number, error)
            failed.append(number)
            pages[number] = []
            continue
        pages[number] = page_paragraphs(raw)
        if page_cache is not None and key is not None:
            page_cache.put(key, pages[number])
    return pages, failed, too_large


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
    """Collect what pypdf logs while this thread reads a PDF, instead of letting it reach the console.

    Only this thread's collector changes: the routing handler on the "pypdf" logger is installed once and
    never removed, so no other thread's logging or warnings change while a PDF is read. (pypdf 7 reports
    repairs through logging only; it issues no PdfReadWarning, so the warnings filters are left alone.)
    """
    _install_router()
    messages: list[str] = []
    previous = getattr(_COLLECTING, "messages", None)
    _COLLECTING.messages = messages
    try:
        yield messages
    finally:
        _COLLECTING.messages = previous
    for message in messages:
        logger.debug("pypdf: %s", message)


_COLLECTING = threading.local()
_ROUTER_LOCK = threading.Lock()


class _Router(logging.Handler):
    """On the "pypdf" logger: a record logged by a thread that is reading a PDF goes to that thread's
    list (warnings and worse); any other record carries on to the root logger, as propagation would."""

    def handle(self, record: logging.LogRecord) -> bool:
        messages: list[str] | None = getattr(_COLLECTING, "messages", None)
        if messages is None:
            logging.getLogger().handle(record)
        elif record.levelno >= logging.WARNING:
            messages.append(record.getMessage())
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does the work
        pass


def _install_router() -> None:
    """Route the "pypdf" logger through _Router, once per process and idempotently."""
    with _ROUTER_LOCK:
        pypdf_logger = logging.getLogger("pypdf")
        if any(isinstance(handler, _Router) for handler in pypdf_logger.handlers):
            return
        pypdf_logger.addHandler(_Router())
        pypdf_logger.propagate = False


def _short(error: BaseException) -> str:
    """The first line of an error's message, short enough for a status column."""
    message = str(error).strip()
    return message.splitlines()[0][:120] if message else type(error).__name__
