"""Writes small, valid PDFs by hand for the parser tests: pages of Helvetica text, and encrypted copies.

Hand-written so the tests need no PDF-making library: each page is a content stream of
`BT /F1 12 Tf ... Tj ... ET`, the standard Helvetica font needs no embedding, and the cross-reference
table is computed from the real byte offsets, so pypdf reads the file without any repair.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from pypdf import PdfReader, PdfWriter

_LEADING = 14  # points between lines


def text_pdf(pages: Sequence[Sequence[str]]) -> bytes:
    """A PDF with one page per item, showing its lines top-down; a page with no lines gets a drawn
    rectangle and no text at all, like a scanned page."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in once the page object numbers are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    page_numbers: list[int] = []
    for lines in pages:
        content = _content(lines)
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        page_numbers.append(len(objects) + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (len(objects))
        )
    kids = b" ".join(b"%d 0 R" % number for number in page_numbers)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_numbers))
    return _assemble(objects)


def encrypted(pdf: bytes, *, user_password: str, owner_password: str = "owner-secret") -> bytes:
    """The same PDF encrypted with AES-256; an empty `user_password` opens without asking."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _content(lines: Sequence[str]) -> bytes:
    if not lines:
        return b"0 0 0 rg 72 500 300 200 re f"
    shown = b" T* ".join(b"(" + _pdf_string(line) + b") Tj" for line in lines)
    return b"BT /F1 12 Tf %d TL 72 720 Td " % _LEADING + shown + b" ET"


def _pdf_string(text: str) -> bytes:
    """A literal string body in WinAnsiEncoding, with the characters PDF reserves escaped."""
    out = bytearray()
    for byte in text.encode("cp1252"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    return bytes(out)


def _assemble(objects: Sequence[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def flate_page_pdf(compressed_content: bytes) -> bytes:
    """A one-page PDF whose content stream is `compressed_content`, already Flate-compressed (for bombs)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(compressed_content)
        + compressed_content
        + b"\nendstream",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R >>",
    ]
    return _assemble(objects)
