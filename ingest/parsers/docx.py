"""Reads Word (.docx) files with python-docx: paragraphs and tables in order, under their heading path.

Headings are found by paragraph style: "Title", "Heading 1".."Heading 9", and custom or translated
styles that are based on a heading style or set an outline level (as Word's own headings do).
"""

from __future__ import annotations

import io
import logging
import re
import zipfile

import docx
from docx.document import Document
from docx.oxml.ns import qn
from docx.styles.style import BaseStyle, ParagraphStyle
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.document import ParsedDocument
from ingest.parsers._sections import SectionBuilder
from rag.errors import DamagedFile, EmptyFile, EncryptedFile, TooComplex

logger = logging.getLogger(__name__)

_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of .doc files and encrypted .docx
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_STREAM_REPR = re.compile(r"'?<_io\.BytesIO object at 0x[0-9a-f]+>'?")
_STYLE_DEPTH = 10  # styles are based on styles; a corrupt file could loop
_MIB = 1024 * 1024
# python-docx holds every XML part as an lxml tree: about ten times the XML's size in memory (a 432 MB
# document.xml took 5.5 GB). These caps keep any accepted file well inside the reading process's memory
# limit, and fail a decompression bomb in a fraction of a second instead of after minutes of swapping.
MAX_XML_BYTES = 64 * _MIB  # all XML parts together, uncompressed (a 3,000-page report has about 15 MB)
MAX_PACKAGE_BYTES = 512 * _MIB  # every part, images included (python-docx reads each part whole)
MAX_XML_TAGS = 4_000_000  # "<" in the XML parts: start and end tags, so about 2 million elements
_COUNT_CHUNK = 4 * _MIB
# libxml2's own protections surface as parse errors: say what they mean.
_LIBXML_LIMITS = (
    (re.compile(r"Excessive depth", re.IGNORECASE), "its XML nests deeper than 256 levels"),
    (re.compile(r"amplification|entit(y|ies).*(loop|exceed)", re.IGNORECASE),
     "its XML entities expand without bound (an XML bomb)"),
    (re.compile(r"XML_PARSE_HUGE|Huge input", re.IGNORECASE), "one piece of its XML is too large"),
)  # fmt: skip


def parse(data: bytes) -> ParsedDocument:
    """Parse a .docx file: one block per paragraph, one per table (a line per row, cells joined " | ")."""
    document = _open(data)
    builder = SectionBuilder()
    try:
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                level = _heading_level(item)
                if level is None:
                    builder.add(item.text)
                else:
                    builder.heading(level, item.text)
            elif isinstance(item, Table):
                builder.add(_table_text(item))
    except Exception as error:  # python-docx trusts the XML; a malformed part fails anywhere inside
        raise DamagedFile(f"damaged Word file: {_short(error)}") from error
    blocks = builder.finish()
    if not blocks:
        raise EmptyFile("no text in the document")
    return ParsedDocument(kind="docx", page_count=1, blocks=blocks)


def _open(data: bytes) -> Document:
    """Open the package, telling apart an old .doc, a password-protected file and a damaged one."""
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise EncryptedFile("encrypted: password-protected Word file")
        raise DamagedFile("damaged Word file: an old-format .doc file renamed .docx")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DamagedFile("damaged Word file: not a zip archive")
    check_expansion(data)
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as error:  # zipfile, lxml and python-docx each raise their own kinds
        for pattern, meaning in _LIBXML_LIMITS:
            if pattern.search(str(error)):
                raise TooComplex(f"too complex to read: {meaning}") from error
        raise DamagedFile(f"damaged Word file: {_short(error)}") from error


def check_expansion(data: bytes) -> None:
    """Refuse a package that would expand beyond the caps, before python-docx parses any of it.

    The sizes in the zip directory are only declarations, but zipfile never returns more bytes than a
    member declares (a member that holds more fails its CRC check: a damaged file), so a lie cannot get
    past these caps. The tags are counted by streaming the XML parts through zlib, a few MB at a time.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
            total = sum(member.file_size for member in members)
            xml = [member for member in members if member.filename.lower().endswith((".xml", ".rels"))]
            xml_total = sum(member.file_size for member in xml)
            if xml_total > MAX_XML_BYTES:
                raise TooComplex(
                    f"too complex to read: its text expands to {_mb(xml_total)} MB (limit {_mb(MAX_XML_BYTES)} MB)"
                )
            if total > MAX_PACKAGE_BYTES:
                raise TooComplex(
                    f"too large to read: its parts expand to {_mb(total)} MB (limit {_mb(MAX_PACKAGE_BYTES)} MB)"
                )
            tags = 0
            for member in xml:
                with package.open(member) as stream:
                    while chunk := stream.read(_COUNT_CHUNK):
                        tags += chunk.count(b"<")
                if tags > MAX_XML_TAGS:
                    raise TooComplex(
                        f"too complex to read: more than {MAX_XML_TAGS:,} XML tags (a document this large "
                        "would need more memory than one file may use)"
                    )
    except TooComplex:
        raise
    except Exception as error:  # a bad CRC (a member longer than declared), a truncated or odd archive
        raise DamagedFile(f"damaged Word file: {_short(error)}") from error


def _mb(size: int) -> str:
    return f"{size / _MIB:,.0f}"


def _heading_level(paragraph: Paragraph) -> int | None:
    """1 for "Heading 1" (0 for "Title"), following the styles a paragraph's style is based on."""
    style: ParagraphStyle | None = paragraph.style
    for _ in range(_STYLE_DEPTH):
        if style is None:
            return None
        name = style.name or ""
        if name.lower() == "title":
            return 0
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        outline = _outline_level(style)
        if outline is not None:
            return outline
        style = style.base_style
    return None


def _outline_level(style: BaseStyle) -> int | None:
    """The heading level a style sets with <w:outlineLvl> (0-based in the XML; 9 means body text)."""
    properties = style.element.find(qn("w:pPr"))
    level = None if properties is None else properties.find(qn("w:outlineLvl"))
    value = None if level is None else level.get(qn("w:val"))
    if value is None or not value.isdigit() or int(value) > 8:
        return None
    return int(value) + 1


def _table_text(table: Table) -> str:
    """A table as lines of "cell | cell"; a cell merged across columns is written once."""
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell is previous:  # python-docx repeats a merged cell once per grid column it spans
                continue
            previous = cell
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _short(error: Exception) -> str:
    """The first line of an error message, without python-docx's repr of our in-memory file."""
    # KeyError's str() is the repr of its key, quotes and all.
    raw = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    message = _STREAM_REPR.sub("the file", raw).strip()
    return message.splitlines()[0][:120] if message else type(error).__name__
