"""Drawing a PDF page with pypdfium2: size, the marked passage, the cache, and every way it can fail."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from rag.errors import ArchivistError, OutsideLibrary, PageImageError
from tests.pdf_factory import encrypted, text_pdf
from ui import page_image
from ui.page_image import render_page

PAGE_ONE = ["Annual report of the Zorblax Institute", "", "The reactor runs at 42 kelvin and",
            "its coolant is liquid helium.", "", "Nothing else happened this year."]
QUOTE = "The reactor runs at 42 kelvin and its coolant is liquid helium."


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    page_image.clear_cache()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(text_pdf([PAGE_ONE, ["Second page."]]))
    return folder


def pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def test_a_page_is_drawn_at_the_width_asked(docs: Path) -> None:
    drawn = render_page(docs / "report.pdf", 1, [docs], width=612)
    image = pixels(drawn.png)
    assert image.size == (drawn.width, drawn.height) == (612, 792)  # US Letter at one pixel per point
    assert drawn.marks == 0
    assert pixels(render_page(docs / "report.pdf", 2, [docs], width=306).png).size == (306, 396)
    # it is a page of text: mostly white, with some dark pixels
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is not None and max(colours)[1] == (255, 255, 255) and len(colours) > 2


def test_the_width_is_kept_within_bounds(docs: Path) -> None:
    assert render_page(docs / "report.pdf", 1, [docs], width=1).width == page_image.MIN_WIDTH
    assert render_page(docs / "report.pdf", 1, [docs], width=10**6).width == page_image.MAX_WIDTH


def test_the_quote_is_marked_where_it_stands(docs: Path) -> None:
    plain_page = pixels(render_page(docs / "report.pdf", 1, [docs], width=612).png)
    marked = render_page(docs / "report.pdf", 1, [docs], width=612, quote=QUOTE)
    assert marked.marks == 2  # the quote spans two lines
    changed = ImageChops.difference(plain_page, pixels(marked.png)).getbbox()
    assert changed is not None
    left, top, right, bottom = changed
    # Lines start at x=72 pt, y=720 pt from the bottom, 14 pt apart: the quote is lines 3 and 4 (y 692, 678).
    assert 65 <= left <= 75 and right < 612 / 2
    assert top >= 792 - 692 - 14 and bottom <= 792 - 678 + 6
    # the marks are yellow: the blue channel drops, red stays high
    r, _g, b = pixels(marked.png).getpixel((left + 3, (top + bottom) // 2))  # type: ignore[misc]
    assert r > 200 and b < 200


def test_a_quote_with_other_spacing_or_case_is_still_found(docs: Path) -> None:
    assert render_page(docs / "report.pdf", 1, [docs], quote="the REACTOR runs   at 42\nkelvin").marks == 1


def test_a_quote_not_on_the_page_marks_nothing(docs: Path) -> None:
    assert render_page(docs / "report.pdf", 1, [docs], quote="Penguins cannot fly at all.").marks == 0
    assert render_page(docs / "report.pdf", 2, [docs], quote=QUOTE).marks == 0
    assert render_page(docs / "report.pdf", 1, [docs], quote="the").marks == 1  # a one-word quote is itself


def test_images_are_cached_until_the_file_changes(docs: Path) -> None:
    first = render_page(docs / "report.pdf", 1, [docs])
    assert render_page(docs / "report.pdf", 1, [docs]) is first
    (docs / "report.pdf").write_bytes(text_pdf([["A different first page, longer than before."]]))
    assert render_page(docs / "report.pdf", 1, [docs]) != first


@pytest.mark.parametrize("page", [0, 3, -1])
def test_a_missing_page_is_a_clear_error(docs: Path, page: int) -> None:
    with pytest.raises(PageImageError, match=rf"report.pdf has no page {page} \(it has 2\)"):
        render_page(docs / "report.pdf", page, [docs])


def test_an_encrypted_file_needs_its_password(docs: Path) -> None:
    (docs / "locked.pdf").write_bytes(encrypted(text_pdf([PAGE_ONE]), user_password="pw"))
    with pytest.raises(PageImageError, match=r"locked\.pdf is encrypted; add its password to ARCHIVIST_PDF_PASSWORDS"):
        render_page(docs / "locked.pdf", 1, [docs])
    assert render_page(docs / "locked.pdf", 1, [docs], passwords=["wrong", "pw"], quote=QUOTE).marks == 2


@pytest.mark.parametrize("content", [b"", b"%PDF-1.4\nthis is not really a PDF", b"plain text", b"\x00" * 100])
def test_a_damaged_file_is_a_clear_error(docs: Path, content: bytes) -> None:
    (docs / "broken.pdf").write_bytes(content)
    with pytest.raises(PageImageError, match=r"broken\.pdf is damaged or not a PDF"):
        render_page(docs / "broken.pdf", 1, [docs])


def test_a_truncated_file_never_crashes(docs: Path) -> None:
    whole = text_pdf([PAGE_ONE, ["Second page."]])
    (docs / "cut.pdf").write_bytes(whole[: len(whole) // 2])
    try:
        drawn = render_page(docs / "cut.pdf", 1, [docs])
    except PageImageError:
        return  # refused with a message is fine; PDFium may also repair it
    assert pixels(drawn.png).size == (drawn.width, drawn.height)


def test_only_files_inside_the_watched_folders_are_drawn(docs: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.pdf").write_bytes(text_pdf([PAGE_ONE]))
    with pytest.raises(OutsideLibrary):
        render_page(tmp_path / "outside.pdf", 1, [docs])
    with pytest.raises(OutsideLibrary):
        render_page(docs / ".." / "outside.pdf", 1, [docs])
    with pytest.raises(ArchivistError, match="does not exist"):
        render_page(docs / "missing.pdf", 1, [docs])
