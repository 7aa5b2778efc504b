"""Reads plain-text files in any encoding; its decoding is shared by the Markdown and HTML parsers.

Decoding order: a byte-order mark, then a charset the file declares (HTML), then UTF-8, then
charset-normalizer's detection. Content that is not text at all raises NotText.
"""

from __future__ import annotations

import codecs
import logging
import re

from charset_normalizer import from_bytes

from ingest.document import Block, ParsedDocument
from rag.answer.sentences import split_sentences
from rag.errors import EmptyFile, NotText

logger = logging.getLogger(__name__)

BINARY = "binary content, not text"

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32-LE first: its mark starts with the UTF-16-LE one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SNIFF_BYTES = 8192
_CHECK_CHARS = 65536
# Text has tabs and line breaks, and ANSI-coloured logs a few escapes; binary decoded as a
# single-byte charset is full of control characters.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colours in saved logs
_MAX_CONTROL_SHARE = 0.05
# Without a byte-order mark, UTF-16/32 text is full of NUL bytes, which we handle ourselves; on
# NUL-free bytes charset-normalizer's wide-encoding guesses are wrong (it reads "café" in Latin-1 as
# two CJK characters of UTF-16-BE).
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]
_CHAOS_TOLERANCE = 0.1  # charset-normalizer finds typographic quotes and € slightly "chaotic"
_COHERENCE_TOLERANCE = 0.05  # but a clearly better language fit (Greek in cp1253) still wins
_BLANK_LINE = re.compile(r"\n[ \t\v]*\n")
TITLE_MAX_CHARS = 200


def parse(data: bytes) -> ParsedDocument:
    """Parse a plain-text file: one block per paragraph (paragraphs are separated by blank lines). A title
    line (see `title_of`) becomes every paragraph's heading, as a Markdown file's `#` heading would."""
    found = paragraphs(decode(data))
    if not found:
        raise EmptyFile("no text (only whitespace)")
    title = title_of(found)
    if title is not None:
        blocks = tuple(Block(text=paragraph, headings=(title,)) for paragraph in found[1:])
    else:
        blocks = tuple(Block(text=paragraph) for paragraph in found)
    return ParsedDocument(kind="text", page_count=1, blocks=blocks)


def title_of(found: list[str]) -> str | None:
    """The first paragraph, when it reads as a title: one line, one sentence at most, short, and followed by
    a body at least twice its length. Plain-text papers, notes and exported articles start this way, and
    every chunk is found more easily with the title it belongs under."""
    if len(found) < 2:
        return None
    first = found[0]
    if "\n" in first or len(first) > TITLE_MAX_CHARS or len(split_sentences(first)) > 1:
        return None
    if sum(len(paragraph) for paragraph in found[1:]) < 2 * len(first):
        return None
    return first


def paragraphs(text: str) -> list[str]:
    """Split text on blank lines; trailing spaces go, line breaks inside a paragraph stay."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    found: list[str] = []
    for part in _BLANK_LINE.split(text):
        paragraph = "\n".join(line.rstrip() for line in part.split("\n")).strip()
        if paragraph:
            found.append(paragraph)
    return found


def decode(data: bytes, *, declared: str | None = None) -> str:
    """Turn a text file's bytes into a string, or raise NotText; `declared` is a charset the file names."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _checked(data[len(bom) :].decode(encoding, errors="replace"))
    if b"\x00" in data[:_SNIFF_BYTES]:
        return _checked(_utf16_without_bom(data))
    if declared:
        try:
            return _checked(data.decode(declared))
        except (UnicodeDecodeError, LookupError):
            logger.debug("declared charset %r does not fit the bytes; detecting instead", declared)
    try:
        return _checked(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return _checked(_detect(data))


def _utf16_without_bom(data: bytes) -> str:
    """Decode UTF-16 that lacks a byte-order mark; anything else with NUL bytes is binary."""
    sample = data[:_SNIFF_BYTES]
    pairs = max(len(sample) // 2, 1)
    nul_even, nul_odd = sample[0::2].count(0), sample[1::2].count(0)
    # Latin-script UTF-16 has a NUL in (nearly) every other byte, always on the same side.
    if nul_odd >= 0.3 * pairs and nul_even <= 0.02 * pairs:
        encoding = "utf-16-le"
    elif nul_even >= 0.3 * pairs and nul_odd <= 0.02 * pairs:
        encoding = "utf-16-be"
    else:
        raise NotText(BINARY)
    try:
        return data[: len(data) // 2 * 2].decode(encoding)
    except UnicodeDecodeError:
        raise NotText(BINARY) from None


def _detect(data: bytes) -> str:
    """Guess a legacy encoding with charset-normalizer, preferring Windows-1252 among equal guesses."""
    matches = from_bytes(data, cp_exclusion=_WIDE_ENCODINGS)
    best = matches.best()
    if best is None:
        raise NotText(BINARY)
    # On short Western text several single-byte code pages fit equally well, and charset-normalizer
    # often picks Central European cp1250 (which turns "à" into "ŕ"). Windows-1252 is by far the
    # most common legacy encoding, and the one the web assumes for unlabelled pages.
    for match in matches:
        if (
            "cp1252" in match.could_be_from_charset
            and match.chaos <= best.chaos + _CHAOS_TOLERANCE
            and match.coherence >= best.coherence - _COHERENCE_TOLERANCE
        ):
            best = match
            break
    logger.debug("detected encoding %s", best.encoding)
    return str(best)


def _checked(text: str) -> str:
    """Reject binary bytes that happened to decode (too many control characters); drop NULs and
    terminal colour codes, which no one searches for."""
    text = _ANSI_ESCAPE.sub("", text)
    sample = text[:_CHECK_CHARS]
    if sample and len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise NotText(BINARY)
    return text.replace("\x00", "")
