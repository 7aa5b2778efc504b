"""Builds decompression bombs and other pathological inputs for the parser-limit tests, in memory.

Nothing large is ever committed: each builder writes its few compressed bytes at test time.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b"</Types>"
)
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    b'Target="word/document.xml"/></Relationships>'
)
_W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_PARAGRAPH = b"<w:p><w:r><w:t>All work and no play.</w:t></w:r></w:p>"


def docx(body: bytes) -> bytes:
    """A minimal .docx whose document body is `body` (WordprocessingML inside <w:body>)."""
    return _docx_parts(lambda write: write(body))


def docx_bomb(expanded_mb: int) -> bytes:
    """A .docx of about 1 MB per 400 MB of document.xml: millions of identical paragraphs.

    Built in a second or two: the repeated megabyte is compressed once and its bytes copied (see
    `repeated_deflate`), and the zip is written by hand around them with the true sizes and CRC.
    """
    chunk = _PARAGRAPH * (1024 * 1024 // len(_PARAGRAPH))
    head = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ' + _W + b"><w:body>"
    tail = b"</w:body></w:document>"
    compressed, crc, size = repeated_deflate(head, chunk, expanded_mb, tail)
    small = {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _RELS}
    out = bytearray()
    central = bytearray()
    members = [(name, zlib.compress(data)[2:-4], zlib.crc32(data), len(data)) for name, data in small.items()]
    for name, payload, member_crc, member_size in [*members, ("word/document.xml", compressed, crc, size)]:
        encoded = name.encode()
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, member_crc, len(payload), member_size)
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields
        central += struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, len(out)) + encoded
        out += b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + payload
    end = struct.pack("<HHHHIIH", 0, 0, len(small) + 1, len(small) + 1, len(central), len(out), 0)
    return bytes(out + central + b"PK\x05\x06" + end)


def repeated_deflate(head: bytes, chunk: bytes, times: int, tail: bytes) -> tuple[bytes, int, int]:
    """Raw deflate data of head + chunk * times + tail, with its CRC-32 and size, compressing `chunk` only
    once: after a full flush the compressor forgets its window, so every repetition compresses to the
    same bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.compress(tail) + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    return start + again * times + end, crc, len(head) + len(chunk) * times + len(tail)


def _docx_parts(fill: object) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        with package.open("word/document.xml", "w") as member:
            member.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ' + _W + b"><w:body>")
            fill(member.write)  # type: ignore[operator]
            member.write(b"</w:body></w:document>")
    return out.getvalue()


def lying_docx(expanded_mb: int) -> bytes:
    """A docx bomb whose zip directory declares document.xml to be tiny (the declared sizes lie)."""
    data = bytearray(docx_bomb(expanded_mb))
    # Rewrite the uncompressed size in the central directory entry of word/document.xml to 1 KB.
    name = b"word/document.xml"
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(name))
    assert central >= 0
    data[central + 24 : central + 28] = (1024).to_bytes(4, "little")
    return bytes(data)


def nested_docx(depth: int) -> bytes:
    """A .docx whose one paragraph sits inside `depth` nested elements (libxml2 refuses depth > 256)."""
    return docx(b"<w:sdt>" * depth + _PARAGRAPH + b"</w:sdt>" * depth)


def entity_docx() -> bytes:
    """A billion-laughs document.xml: ten levels of entities, each ten times the one before."""
    entities = [b'<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(b'<!ENTITY lol%d "%s">' % (level, b"&lol%d;" % (level - 1) * 10))
    doctype = b"<!DOCTYPE w:document [" + b"".join(entities) + b"]>"
    xml = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + doctype + b"<w:document " + _W + b"><w:body>"
        b"<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", xml)
    return out.getvalue()


def nested_html(depth: int) -> bytes:
    """An HTML page of `depth` nested <div>s around one sentence."""
    return b"<html><body>" + b"<div>" * depth + b"deep text" + b"</div>" * depth + b"</body></html>"


def wide_html(elements: int) -> bytes:
    """An HTML page of `elements` sibling paragraphs."""
    return b"<html><body>" + b"<p>x</p>" * elements + b"</body></html>"


def pdf_stream_bomb(expanded_mb: int) -> bytes:
    """A one-page PDF whose content stream is a few KB of Flate data that inflates to `expanded_mb` MB."""
    from tests.pdf_factory import flate_page_pdf

    return flate_page_pdf(repeated_zlib(b"BT /F1 12 Tf 72 720 Td (x) Tj ET\n" * (1024 * 1024 // 33), expanded_mb))


def repeated_zlib(chunk: bytes, times: int) -> bytes:
    """A valid zlib stream of `chunk` repeated `times` times, compressed once: after a full flush the
    compressor forgets its window, so each repetition compresses to the same bytes and can be copied."""
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()[:-4]  # the final empty block, without the checksum of just two chunks
    checksum = 1
    for _ in range(times):
        checksum = zlib.adler32(chunk, checksum)
    return first + again * (times - 1) + end + checksum.to_bytes(4, "big")
