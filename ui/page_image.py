"""One page of a PDF drawn as a PNG for the page, with the cited passage marked when it can be found.

Drawn by pypdfium2 (PDFium; Apache/BSD licensed) and encoded by Pillow. The passage is found with PDFium's
own text search on the page and covered with translucent rectangles. Only files inside the watched folders
are opened (ui/files.py). A missing page, an encrypted or a damaged file raises PageImageError with a
message for people. Images are kept in a small in-memory LRU, keyed by the file's identity (real path,
size, modification time), so an edited file is drawn afresh.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from rag.errors import PageImageError
from ui.files import resolve_inside

logger = logging.getLogger(__name__)

DEFAULT_WIDTH = 900
MIN_WIDTH, MAX_WIDTH = 100, 3000  # a request cannot make us allocate an enormous bitmap
CACHE_SIZE = 32
MARK_FILL = (255, 214, 0, 110)  # translucent yellow, as a highlighter
MAX_QUOTE_WORDS = 80
_PDFIUM_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
# PDFium is not thread-safe and Streamlit runs each session in its own thread.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class PageImage:
    """A drawn page: PNG bytes, its size in pixels, and how many rectangles mark the passage."""

    png: bytes
    width: int
    height: int
    marks: int


def render_page(
    path: str | Path,
    page_number: int,
    roots: Sequence[Path],
    *,
    width: int = DEFAULT_WIDTH,
    quote: str | None = None,
    passwords: Sequence[str] = (),
) -> PageImage:
    """Page `page_number` (1 = first) of the PDF at `path`, `width` pixels wide, with `quote` marked."""
    real = resolve_inside(path, roots)
    try:
        stat = real.stat()
    except OSError as error:
        raise PageImageError(f"{real.name} cannot be read ({error.strerror or error}).") from None
    width = max(MIN_WIDTH, min(MAX_WIDTH, int(width)))
    words = " ".join((quote or "").split()[:MAX_QUOTE_WORDS])
    return _render_cached(str(real), stat.st_size, stat.st_mtime_ns, page_number, width, words, tuple(passwords))


def clear_cache() -> None:
    _render_cached.cache_clear()


@lru_cache(maxsize=CACHE_SIZE)
def _render_cached(
    path: str, size: int, mtime_ns: int, page_number: int, width: int, quote: str, passwords: tuple[str, ...]
) -> PageImage:
    del size, mtime_ns  # only part of the cache key
    name = Path(path).name
    with _PDFIUM:
        document = _open(path, name, passwords)
        try:
            if not 1 <= page_number <= len(document):
                raise PageImageError(f"{name} has no page {page_number} (it has {len(document)}).")
            try:
                page = document[page_number - 1]
            except pdfium.PdfiumError:
                raise PageImageError(f"Page {page_number} of {name} is damaged and cannot be drawn.") from None
            try:
                image, rects = _draw(page, width, quote)
            except pdfium.PdfiumError:
                raise PageImageError(f"Page {page_number} of {name} is damaged and cannot be drawn.") from None
            finally:
                page.close()
        finally:
            document.close()
    marks = _mark(image, rects)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=False)
    return PageImage(png=out.getvalue(), width=image.width, height=image.height, marks=marks)


def _open(path: str, name: str, passwords: tuple[str, ...]) -> pdfium.PdfDocument:
    for password in (None, *passwords):
        try:
            return pdfium.PdfDocument(path, password=password)
        except pdfium.PdfiumError as error:
            if getattr(error, "err_code", None) != _PDFIUM_PASSWORD_ERROR:
                raise PageImageError(f"{name} is damaged or not a PDF, so its page cannot be shown.") from None
        except OSError as error:
            raise PageImageError(f"{name} cannot be read ({error.strerror or error}).") from None
    raise PageImageError(f"{name} is encrypted; add its password to ARCHIVIST_PDF_PASSWORDS to see its pages.")


Rect = tuple[float, float, float, float]  # left, top, right, bottom in pixels


def _draw(page: pdfium.PdfPage, width: int, quote: str) -> tuple[Image.Image, list[Rect]]:
    page_width, _ = page.get_size()
    scale = width / page_width if page_width > 0 else 1.0
    image = page.render(scale=scale).to_pil()
    rects: list[Rect] = []
    if quote and page.get_rotation() == 0:  # PDF coordinates map simply only on unrotated pages
        left, _, _, top = page.get_cropbox()
        textpage = page.get_textpage()
        try:
            for pdf_left, bottom, pdf_right, pdf_top in _find(textpage, quote):
                rects.append(((pdf_left - left) * scale, (top - pdf_top) * scale,
                              (pdf_right - left) * scale, (top - bottom) * scale))
        finally:
            textpage.close()
    return image, rects


def _find(textpage: pdfium.PdfTextPage, quote: str) -> list[tuple[float, float, float, float]]:
    """Rectangles (PDF units) covering the quote: its runs of words found on the page, each extended a word
    at a time while it still matches, since line breaks and hyphenation on the page rarely keep the quote
    whole. A run starts with three words (fewer only for a shorter quote): a lone "the" is everywhere."""
    words = quote.split()
    shortest = min(3, len(words))
    found: list[tuple[float, float, float, float]] = []
    start = 0
    while start + shortest <= len(words):
        end = start + shortest
        match = _search(textpage, " ".join(words[start:end]))
        if match is None:
            start += 1
            continue
        while end < len(words) and (longer := _search(textpage, " ".join(words[start : end + 1]))) is not None:
            match, end = longer, end + 1
        index, count = match
        found += [textpage.get_rect(i) for i in range(textpage.count_rects(index, count))]
        start = end
    return found


def _search(textpage: pdfium.PdfTextPage, text: str) -> tuple[int, int] | None:
    searcher = textpage.search(text, match_case=False, match_whole_word=False)
    try:
        match = searcher.get_next()
    finally:
        searcher.close()
    return (int(match[0]), int(match[1])) if match else None


def _mark(image: Image.Image, rects: Sequence[Rect]) -> int:
    if not rects:
        return 0
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for left, top, right, bottom in rects:
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=MARK_FILL)
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert(image.mode))
    return len(rects)
