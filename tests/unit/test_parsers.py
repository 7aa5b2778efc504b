"""The parsers, on small files made in the test: every format, and every way a file can fail."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import docx
import pytest

from ingest.document import Block, ParsedDocument
from ingest.parsers import SUPPORTED_SUFFIXES, kind_for, parse_bytes, parse_file
from ingest.parsers._sections import SectionBuilder
from ingest.parsers.pdf import assemble, page_paragraphs
from rag.errors import (
    DamagedFile,
    EmptyFile,
    EncryptedFile,
    FileTooLarge,
    NoTextLayer,
    NotText,
    UnreadableFile,
    UnsupportedFileType,
)
from tests.pdf_factory import encrypted, text_pdf

MB = 1024 * 1024
FRENCH = "Le café est très bon à Noël. Où êtes-vous?\n\nDeuxième paragraphe: élève, garçon, naïve."


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def texts(document: ParsedDocument) -> list[str]:
    return [block.text for block in document.blocks]


# --- the file-level shell -------------------------------------------------------------------------------


def test_suffixes_and_kinds() -> None:
    assert SUPPORTED_SUFFIXES == (".pdf", ".txt", ".text", ".md", ".markdown", ".html", ".htm", ".docx")
    assert kind_for(Path("a/Report.PDF")) == "pdf"
    assert kind_for(Path("notes.markdown")) == "markdown"
    assert kind_for(Path("page.htm")) == "html"
    assert kind_for(Path("archive.tar.gz")) is None
    assert kind_for(Path("README")) is None


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFileType, match=r"^unsupported file type \.xyz$"):
        parse_file(write(tmp_path, "data.xyz", b"hello"), max_bytes=MB)
    with pytest.raises(UnsupportedFileType, match=r"\(no extension\)"):
        parse_file(write(tmp_path, "README", b"hello"), max_bytes=MB)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(EmptyFile, match=r"^empty file \(0 bytes\)$"):
        parse_file(write(tmp_path, "empty.pdf", b""), max_bytes=MB)
    with pytest.raises(EmptyFile):
        parse_bytes(b"", "text")


def test_too_large_is_never_parsed(tmp_path: Path) -> None:
    # Garbage named .pdf: had it been read and parsed, this would be DamagedFile.
    path = write(tmp_path, "big.pdf", b"x" * 2000)
    with pytest.raises(FileTooLarge, match=r"^larger than the 0\.00095367 MB limit$"):
        parse_file(path, max_bytes=1000)
    assert parse_file(write(tmp_path, "ok.txt", b"x" * 1000), max_bytes=1000).blocks == (Block("x" * 1000),)


def test_limit_is_shown_as_configured() -> None:
    from ingest.parsers import _megabytes

    assert _megabytes(200 * MB) == "200"
    assert _megabytes(MB // 2) == "0.5"


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match=r"^file disappeared while being read$"):
        parse_file(tmp_path / "gone.txt", max_bytes=MB)


def test_other_os_errors_name_their_cause(tmp_path: Path) -> None:
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)  # a real condition: stat() fails with ELOOP
    with pytest.raises(UnreadableFile, match=r"^could not read: Too many levels of symbolic links$"):
        parse_file(loop, max_bytes=MB)


def test_folder_with_a_file_suffix_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").mkdir()
    with pytest.raises(UnsupportedFileType, match="a folder, not a file"):
        parse_file(tmp_path / "notes.txt", max_bytes=MB)


@pytest.mark.unprivileged  # as root, run with capabilities dropped (tests/conftest.py)
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.txt", b"hidden")
    path.chmod(0)
    try:
        with pytest.raises(UnreadableFile, match=r"^permission denied$"):
            parse_file(path, max_bytes=MB)
    finally:
        path.chmod(0o600)


# --- PDF ------------------------------------------------------------------------------------------------


def test_pdf_keeps_page_numbers(tmp_path: Path) -> None:
    pdf = text_pdf([["First page says hello."], ["Second page, more text."], ["Third and last."]])
    document = parse_file(write(tmp_path, "three.pdf", pdf), max_bytes=MB)
    assert document.kind == "pdf"
    assert document.page_count == 3
    assert [(block.page, block.text) for block in document.blocks] == [
        (1, "First page says hello."),
        (2, "Second page, more text."),
        (3, "Third and last."),
    ]
    assert document.warnings == ()


def test_pdf_pages_without_text_are_named(tmp_path: Path) -> None:
    pdf = text_pdf([["Text here."], [], ["More text."], [], [], ["End."]])
    document = parse_bytes(pdf, "pdf")
    assert [block.page for block in document.blocks] == [1, 3, 6]
    assert document.warnings == ("pages 2, 4, 5: no text layer",)


def test_pdf_without_any_text_has_no_text_layer() -> None:
    with pytest.raises(NoTextLayer, match=r"^no text layer \(scanned or image-only PDF\)$"):
        parse_bytes(text_pdf([[], []]), "pdf")


def test_pdf_with_non_ascii_text() -> None:
    assert texts(parse_bytes(text_pdf([["Café (crème) \\ naïve"]]), "pdf")) == ["Café (crème) \\ naïve"]


def test_pdf_encrypted_with_empty_user_password_opens() -> None:
    pdf = encrypted(text_pdf([["Open to all."]]), user_password="")
    assert texts(parse_bytes(pdf, "pdf")) == ["Open to all."]


def test_pdf_encrypted_with_unknown_password() -> None:
    pdf = encrypted(text_pdf([["Secret."]]), user_password="s3cret")
    with pytest.raises(EncryptedFile, match=r"^encrypted: needs a password$"):
        parse_bytes(pdf, "pdf")
    with pytest.raises(EncryptedFile):
        parse_bytes(pdf, "pdf", pdf_passwords=["wrong", "also wrong"])


def test_pdf_encrypted_opens_with_a_configured_password(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.pdf", encrypted(text_pdf([["Secret."], ["Page two."]]), user_password="s3cret"))
    document = parse_file(path, max_bytes=MB, pdf_passwords=["wrong", "s3cret"])
    assert [(block.page, block.text) for block in document.blocks] == [(1, "Secret."), (2, "Page two.")]


@pytest.mark.parametrize(
    "data",
    [b"this is not a PDF at all" * 10, b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", b"%PDF-1.7\n" + bytes(range(256))],
    ids=["garbage", "truncated-start", "binary-after-header"],
)
def test_garbage_named_pdf_is_damaged(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(DamagedFile, match=r"^damaged PDF: "):
        parse_file(write(tmp_path, "broken.pdf", data), max_bytes=MB)


def test_pdf_truncated_halfway_fails_cleanly() -> None:
    pdf = text_pdf([["Some text."]] * 3)
    with pytest.raises(DamagedFile):
        parse_bytes(pdf[: len(pdf) // 2], "pdf")


def test_pdf_with_wrong_xref_offsets_is_repaired_with_a_warning() -> None:
    pdf = text_pdf([["Still readable."]])
    xref_at = pdf.rindex(b"startxref\n") + len(b"startxref\n")
    broken = pdf[:xref_at] + b"12" + pdf[xref_at:]  # the pointer to the xref table is now wrong
    document = parse_bytes(broken, "pdf")
    assert texts(document) == ["Still readable."]
    assert len(document.warnings) == 1
    assert document.warnings[0].startswith("damaged PDF structure, repaired while reading: ")


def test_pdf_page_with_an_undecodable_stream_costs_only_that_page() -> None:
    pdf = text_pdf([["Readable page."], ["Second page."]])
    length = b"<< /Length %d >>" % len(b"BT /F1 12 Tf 14 TL 72 720 Td (Second page.) Tj ET")
    assert pdf.count(length) == 1
    # The stream claims to be zlib-compressed, and is not.
    document = parse_bytes(pdf.replace(length, length[:-2] + b"/Filter /FlateDecode >>"), "pdf")
    assert texts(document) == ["Readable page."]
    assert document.warnings[0] == "page 2: no text layer"
    assert "incorrect header check" in document.warnings[1]


def test_assemble_names_failed_and_empty_pages() -> None:
    pages = {1: ["One."], 2: [], 3: [], 4: ["Four."], 5: [], 6: [], 7: [], 8: []}
    document = assemble(pages, failed=[2], messages=["a", "b", "a", "c", "d"])
    assert document.page_count == 8
    assert document.blocks == (Block("One.", page=1), Block("Four.", page=4))
    assert document.warnings == (
        "page 2: text extraction failed",
        "pages 3, 5-8: no text layer",
        "damaged PDF structure, repaired while reading: a; b; c (+1 more)",
    )


def test_assemble_without_any_text() -> None:
    with pytest.raises(DamagedFile, match=r"^damaged PDF: text extraction failed \(pages 1, 2\)$"):
        assemble({1: [], 2: [], 3: []}, failed=[1, 2], messages=[])
    with pytest.raises(NoTextLayer):
        assemble({1: [], 2: []}, failed=[], messages=[])


def test_page_paragraphs_join_wrapped_lines_and_split_paragraphs() -> None:
    page = (
        "The first paragraph of this page runs across several printed\n"
        "lines, and its words are split with hyphens when they are too exam-\n"
        "ple long; the layout decides where each line has to end, always.\n"
        "That is all.\n"
        "A second paragraph starts here and also wraps across two lines of\n"
        "text.\n"
        "\n"
        "Apples\n"
        "Pears\n"
    )
    assert page_paragraphs(page) == [
        "The first paragraph of this page runs across several printed lines, and its words are split with "
        "hyphens when they are too example long; the layout decides where each line has to end, always. "
        "That is all.",
        "A second paragraph starts here and also wraps across two lines of text.",
        "Apples\nPears",
    ]


def test_page_paragraphs_normalise_whitespace_and_keep_real_hyphens() -> None:
    page = "  Spaced    out\ttext  \nstate-\nof-the-art, ALL-\nCAPS, 5-\n10 \x00\ufb01ne\ue000 ex-\nample\n\n\n"
    assert page_paragraphs(page) == ["Spaced out text\nstate-\nof-the-art, ALL-\nCAPS, 5-\n10 fine example"]
    assert page_paragraphs(" \n\n \x0c ") == []


# --- plain text -----------------------------------------------------------------------------------------


def test_text_paragraphs_split_on_blank_lines(tmp_path: Path) -> None:
    data = "\ufeffFirst line\nsecond line   \n\n  \n\nNext paragraph\r\n\r\nLast\f page".encode()
    document = parse_file(write(tmp_path, "notes.txt", data), max_bytes=MB)
    assert document == ParsedDocument(
        kind="text",
        page_count=1,
        blocks=(Block("First line\nsecond line"), Block("Next paragraph"), Block("Last"), Block("page")),
    )


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_text_in_other_encodings(encoding: str) -> None:
    assert texts(parse_bytes(FRENCH.encode(encoding), "text")) == FRENCH.split("\n\n")


def test_text_with_typographic_windows_1252_characters() -> None:
    text = "The “smart quotes” — and a dash… cost 5€.\nIt’s fine."
    assert texts(parse_bytes(text.encode("cp1252"), "text")) == [text]


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        bytes(range(1, 32)) * 50,
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
    ],
    ids=["png", "control-characters", "executable"],
)
def test_binary_named_txt_is_not_text(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NotText, match=r"^binary content, not text$"):
        parse_file(write(tmp_path, "photo.txt", data), max_bytes=MB)


def test_terminal_colours_are_text_without_the_codes() -> None:
    log = b"\x1b[32mINFO\x1b[0m started\n\x1b[31mERROR\x1b[0m failed\n" * 5
    assert texts(parse_bytes(log, "text"))[0].startswith("INFO started\nERROR failed")


def test_whitespace_only_text_is_empty() -> None:
    with pytest.raises(EmptyFile):
        parse_bytes(b" \n\n\t\n", "text")


# --- Markdown -------------------------------------------------------------------------------------------

MARKDOWN = """---
title: Not content
---

# Guide

Intro with **bold** and a [link](https://example.org)
wrapped onto a second line.

## Install

```bash
# a comment, not a heading
pip install archivist

echo done
```

Usage
-----

- one
- two
  - nested

| name | size |
|------|------|
| a    | 1    |

### Deep

Deep text.

# Appendix
"""


def test_markdown_heading_paths_and_blocks() -> None:
    document = parse_bytes(MARKDOWN.encode(), "markdown")
    assert document.kind == "markdown"
    assert [(block.headings, block.text) for block in document.blocks] == [
        (("Guide",), "Intro with bold and a link wrapped onto a second line."),
        (("Guide", "Install"), "# a comment, not a heading\npip install archivist\n\necho done"),
        (("Guide", "Usage"), "- one\n- two\n  - nested"),
        (("Guide", "Usage"), "name | size\na | 1"),
        (("Guide", "Usage", "Deep"), "Deep text."),
        (("Appendix",), "Appendix"),
    ]


def test_markdown_without_front_matter_keeps_a_leading_rule() -> None:
    document = parse_bytes(b"---\n\nJust text.\n", "markdown")
    assert texts(document) == ["Just text."]


# --- HTML -----------------------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><meta charset="windows-1252"><title>Tab title</title>
<style>p { color: red }</style><script>var hidden = "script text";</script></head>
<body>
<h1>Main  Title</h1>
<p>First paragraph with <b>bold</b> text,<br>and a line break. Café.</p>
<div hidden>hidden div</div><p style="display:none">hidden paragraph</p>
<noscript>enable JavaScript</noscript><template><p>template text</p></template>
<!-- a comment -->
<h2>Details</h2>
<ul><li>first item</li><li>second <i>item</i></li></ul>
<table><tr><th>Name</th><th>Price</th></tr><tr><td>Tea</td><td>2 EUR</td></tr></table>
<pre>  code
    indented</pre>
<h2>More</h2>
<div>loose text<blockquote>a quote</blockquote></div>
<script>document.write("late script")</script>
</body></html>
"""


def test_html_visible_text_with_heading_paths() -> None:
    document = parse_bytes(HTML.encode("cp1252"), "html")
    assert document.kind == "html"
    assert [(block.headings, block.text) for block in document.blocks] == [
        (("Main Title",), "First paragraph with bold text,\nand a line break. Café."),
        (("Main Title", "Details"), "first item"),
        (("Main Title", "Details"), "second item"),
        (("Main Title", "Details"), "Name | Price\nTea | 2 EUR"),
        (("Main Title", "Details"), "  code\n    indented"),
        (("Main Title", "More"), "loose text"),
        (("Main Title", "More"), "a quote"),
    ]
    assert "script" not in document.text and "hidden" not in document.text and "Tab title" not in document.text


def test_html_charset_from_meta_or_detection() -> None:
    latin = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"></head>'
    assert parse_bytes(f"{latin}<p>naïve “quote”</p>".encode("cp1252"), "html").text == "naïve “quote”"
    assert parse_bytes("<p>naïve déjà vu, très élégant</p>".encode("latin-1"), "html").text == (
        "naïve déjà vu, très élégant"
    )
    assert parse_bytes("<p>BOM ünïcode</p>".encode("utf-16"), "html").text == "BOM ünïcode"


def test_html_layout_tables_are_read_as_blocks() -> None:
    page = b"<table><tr><td><p>Left column text.</p></td><td><p>Right column text.</p></td></tr></table>"
    assert texts(parse_bytes(page, "html")) == ["Left column text.", "Right column text."]


def test_html_with_nothing_visible_is_empty() -> None:
    with pytest.raises(EmptyFile):
        parse_bytes(b"<html><head><title>t</title></head><body><script>x()</script></body></html>", "html")


# --- Word -----------------------------------------------------------------------------------------------


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Annual Report", level=0)  # the Title style
    document.add_paragraph("Opening words.")
    document.add_heading("Finances", level=1)
    document.add_heading("Costs", level=2)
    document.add_paragraph("Costs went down.")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate([("Item", "Q1", "Q2"), ("Rent", "10", "12")]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    table.cell(2, 0).merge(table.cell(2, 1)).text = "Total (merged)"
    table.cell(2, 2).text = "22"
    document.add_paragraph("")
    document.add_heading("Outlook", level=1)
    document.add_paragraph("Better.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    document = parse_file(write(tmp_path, "report.docx", make_docx()), max_bytes=MB)
    assert document.kind == "docx"
    assert [(block.headings, block.text) for block in document.blocks] == [
        (("Annual Report",), "Opening words."),
        (("Annual Report", "Finances", "Costs"), "Costs went down."),
        (("Annual Report", "Finances", "Costs"), "Item | Q1 | Q2\nRent | 10 | 12\nTotal (merged) | 22"),
        (("Annual Report", "Outlook"), "Better."),
    ]


def zip_with(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"plain text, not a zip", "damaged Word file: not a zip archive"),
        (make_docx()[:2000], "damaged Word file: not a zip archive"),
        (
            zip_with("hello.txt", b"hi"),
            "damaged Word file: There is no item named '[Content_Types].xml' in the archive",
        ),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "damaged Word file: an old-format .doc file renamed .docx"),
    ],
    ids=["not-zip", "truncated", "other-zip", "old-doc"],
)
def test_damaged_docx(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(DamagedFile) as caught:
        parse_file(write(tmp_path, "broken.docx", data), max_bytes=MB)
    assert caught.value.reason == reason


def test_password_protected_docx_is_encrypted() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100) + "EncryptedPackage".encode("utf-16-le")
    with pytest.raises(EncryptedFile):
        parse_bytes(ole, "docx")


# --- sections -------------------------------------------------------------------------------------------


def test_section_builder_keeps_every_heading() -> None:
    builder = SectionBuilder()
    builder.heading(1, "A")
    builder.heading(2, "B")
    builder.heading(2, "C")  # B had no text: kept as a block of its own
    builder.add("text of C")
    builder.heading(1, "D")
    builder.add("   ")
    builder.heading(3, "E")
    assert builder.finish() == (
        Block("A\nB", headings=("A", "B")),
        Block("text of C", headings=("A", "C")),
        Block("D\nE", headings=("D", "E")),
    )


def test_an_edited_pdf_reuses_the_text_of_unchanged_pages() -> None:
    from pypdf import PdfReader, PdfWriter

    from ingest.document import MemoryPageTextCache

    original = text_pdf([[f"Page {n} says something about topic {n}."] for n in range(1, 7)])
    cache = MemoryPageTextCache()
    first = parse_bytes(original, "pdf", page_cache=cache)
    assert len(cache.entries) == 6 and cache.hits == 0
    # Replace page 4 and rewrite the whole file, as a PDF tool would: every object is renumbered.
    replacement = PdfReader(io.BytesIO(text_pdf([["A brand new fourth page."]]))).pages[0]
    writer = PdfWriter()
    for number, page in enumerate(PdfReader(io.BytesIO(original)).pages, start=1):
        writer.add_page(replacement if number == 4 else page)
    out = io.BytesIO()
    writer.write(out)
    edited = parse_bytes(out.getvalue(), "pdf", page_cache=cache)
    assert cache.hits == 5
    assert edited == parse_bytes(out.getvalue(), "pdf")  # the cache never changes the result
    assert [b.text for b in edited.blocks if b.page == 4] == ["A brand new fourth page."]
    assert [b for b in edited.blocks if b.page != 4] == [b for b in first.blocks if b.page != 4]


def test_a_title_line_heads_every_paragraph_of_a_text_file() -> None:
    body = ["We followed 400 adults for three years.", "Bone density rose by 2% with daily vitamin D."]
    text = "Vitamin D and bone density in older adults\n\n" + "\n\n".join(body)
    document = parse_bytes(text.encode(), "text")
    title = ("Vitamin D and bone density in older adults",)
    assert document.blocks == tuple(Block(paragraph, headings=title) for paragraph in body)


@pytest.mark.parametrize(
    "text",
    [
        "Two sentences here. Not a title.\n\nThe body is long enough to follow a title, surely it is.",
        "A first line\nthat wraps\n\nThe body is long enough to follow a title, surely it is.",
        "A title over a short body\n\nToo short.",
        "Only one paragraph, whatever it is",
    ],
    ids=["two-sentences", "two-lines", "short-body", "one-paragraph"],
)
def test_a_first_paragraph_that_is_not_a_title_stays_text(text: str) -> None:
    document = parse_bytes(text.encode(), "text")
    assert all(block.headings == () for block in document.blocks)
    assert document.blocks[0].text == text.split("\n\n")[0]


def test_a_warning_that_is_not_pypdfs_does_not_mark_the_pdf_damaged(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from ingest.parsers import pdf as pdf_parser

    real_reader = pdf_parser.PdfReader

    def reader_while_something_else_warns(*args: Any, **kwargs: Any) -> Any:
        # What garbage collection does at any moment: an unclosed socket of someone else's, reported now.
        warnings.warn("unclosed <socket.socket fd=16>", ResourceWarning, stacklevel=1)
        return real_reader(*args, **kwargs)

    monkeypatch.setattr(pdf_parser, "PdfReader", reader_while_something_else_warns)
    # Recorded rather than raised (the tests turn warnings into errors; the product does not).
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        document = parse_bytes(text_pdf([["Text here."]]), "pdf")
    assert document.warnings == ()
    assert [str(warning.message) for warning in seen] == ["unclosed <socket.socket fd=16>"]  # left to its owner
