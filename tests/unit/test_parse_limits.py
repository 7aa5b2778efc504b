"""The parsers' own caps: a decompression bomb or a pathological file fails at once with a precise reason,
before any memory or time limit is reached (the limits of the reading process are tested in
tests/integration/test_parse_worker.py)."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.parsers import docx as docx_parser
from ingest.parsers import html as html_parser
from ingest.parsers import parse_bytes
from rag.errors import DamagedFile, TooComplex
from tests import bombs
from tests.pdf_factory import text_pdf


@pytest.fixture(scope="module")
def docx_bomb() -> bytes:
    return bombs.docx_bomb(300)  # about 1 MB that expands to 300 MB of document.xml


def test_a_docx_bomb_fails_on_its_declared_size(docx_bomb: bytes) -> None:
    assert len(docx_bomb) < 2 * 1024 * 1024
    with pytest.raises(TooComplex, match=r"its text expands to 300 MB \(limit 64 MB\)"):
        parse_bytes(docx_bomb, "docx")


def test_a_docx_whose_zip_lies_about_its_size_is_damaged_not_read_in_full() -> None:
    # zipfile returns no more than the declared size and then fails the CRC: the caps cannot be dodged.
    with pytest.raises(DamagedFile, match="Bad CRC-32"):
        parse_bytes(bombs.lying_docx(100), "docx")


def test_a_docx_with_millions_of_elements_fails_before_parsing() -> None:
    body = b"<w:p/>" * (docx_parser.MAX_XML_TAGS + 10)  # 24 MB: under the size cap, over the element cap
    with pytest.raises(TooComplex, match="more than 4,000,000 XML tags"):
        parse_bytes(bombs.docx(body), "docx")


def test_an_xml_entity_bomb_in_a_docx_is_too_complex() -> None:
    with pytest.raises(TooComplex, match="XML entities expand without bound"):
        parse_bytes(bombs.entity_docx(), "docx")


def test_deeply_nested_xml_in_a_docx_is_too_complex() -> None:
    with pytest.raises(TooComplex, match="nests deeper than 256 levels"):
        parse_bytes(bombs.nested_docx(100_000), "docx")


def test_a_normal_docx_still_reads() -> None:
    document = parse_bytes(bombs.docx(b"<w:p><w:r><w:t>Plain words.</w:t></w:r></w:p>"), "docx")
    assert document.text == "Plain words."


def test_an_html_page_of_millions_of_nested_elements_fails_at_once() -> None:
    with pytest.raises(TooComplex, match=r"2,000,004 tags \(limit 1,000,000\)"):
        parse_bytes(bombs.nested_html(1_000_000), "html")


def test_html_just_under_the_cap_still_reads() -> None:
    document = parse_bytes(bombs.wide_html(1000), "html")
    assert len(document.blocks) == 1000
    assert html_parser.MAX_HTML_TAGS >= 1_000_000


def test_a_pdf_page_whose_content_inflates_to_gigabytes_is_too_complex() -> None:
    bomb = bombs.pdf_stream_bomb(2048)  # a few MB of Flate data, 2 GB inflated
    with pytest.raises(TooComplex, match="the content of page 1 expands beyond the 32 MB limit"):
        parse_bytes(bomb, "pdf")


def test_a_pdf_with_one_bomb_page_keeps_its_other_pages() -> None:
    from ingest.parsers.pdf import assemble

    document = assemble({1: ["Fine text."], 2: []}, failed=[], messages=[], too_large=[2])
    assert document.warnings == ("page 2: skipped, content expands beyond the 32 MB limit for one page's content",)


# ----- the PDF parser changes nothing process-wide from the reader thread -----
@pytest.fixture
def pdf_parse_held_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[Any]]]:
    """A PDF being parsed in another thread, held inside the parse until the test lets it go."""
    from ingest.parsers import pdf as pdf_parser

    inside, release = threading.Event(), threading.Event()
    real_reader = pdf_parser.PdfReader

    def reader_that_waits(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(10)
        return real_reader(*args, **kwargs)

    monkeypatch.setattr(pdf_parser, "PdfReader", reader_that_waits)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(parse_bytes(text_pdf([["Text here."]]), "pdf")))
    thread.start()
    assert inside.wait(10)
    try:
        yield release, result
    finally:
        release.set()
        thread.join(10)


def test_a_pdf_read_in_another_thread_does_not_swallow_this_threads_warnings(
    recwarn: pytest.WarningsRecorder, pdf_parse_held_open: tuple[threading.Event, list[Any]]
) -> None:
    # warnings.catch_warnings(record=True) in the reader thread used to replace every thread's filters
    # and record their warnings as the PDF's (then drop them).
    release, result = pdf_parse_held_open
    warnings.warn("mine", UserWarning, stacklevel=1)
    release.set()
    _wait_for(result)
    assert [str(warning.message) for warning in recwarn.list] == ["mine"]


def test_a_pdf_read_in_another_thread_does_not_take_this_threads_pypdf_log_lines(
    pdf_parse_held_open: tuple[threading.Event, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    release, result = pdf_parse_held_open
    with caplog.at_level(logging.WARNING):
        logging.getLogger("pypdf._reader").warning("a page image of another document")
    release.set()
    _wait_for(result)
    assert "a page image of another document" in caplog.text
    assert result and result[0].warnings == ()


def _wait_for(result: list[Any]) -> None:
    for _ in range(100):
        if result:
            return
        threading.Event().wait(0.1)
