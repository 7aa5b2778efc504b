"""Incremental updates, timed as a user lives them: from the moment a save lands on disk until `search`
finds the new text, with the watcher (`archivist watch`'s code path) running on the folder.

Two scripted edits, each in its own fresh data folder:

- **markdown_paragraph**: a 100-page Markdown document (real text: SciFact abstracts under headings),
  one paragraph in the middle rewritten in place;
- **pdf_page**: the 117-page GeoTopo PDF (from ../shared/data/pdfs), one page replaced with pypdf and the
  file saved editor-style (written beside it, then renamed over it).

For each: the seconds from save to searchable, how many chunk texts were embedded for the edit (goal: at
most 3), how many chunks the document has, and the first full ingest's time for scale.

    .venv/bin/python bench/incremental.py            (also run by bench/ingest.py)
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script

from ingest.pipeline import Ingester  # noqa: E402
from ingest.watch import Watcher  # noqa: E402
from rag.factory import open_default_index  # noqa: E402
from rag.index.index import Index  # noqa: E402
from rag.records import Vectors  # noqa: E402
from rag.search.retrieve import search  # noqa: E402
from rag.settings import Settings  # noqa: E402

GEOTOPO = Path("pdfs/py-pdf-sample-files/009-pdflatex-geotopo_GeoTopo-komprimiert.pdf")
MARKDOWN_PAGES = 100
CHARS_PER_PAGE = 3000  # about one printed page of prose
SEARCH_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Edit:
    """A scripted change: `apply` saves it to disk; `marker` is a phrase only the new text contains."""

    name: str
    marker: str
    apply: Callable[[], None]


@contextmanager
def counting_embeds(index: Index) -> Iterator[list[int]]:
    """Counts the texts the index embeds for documents (`embed`; queries go through `embed_query`)."""
    embedder = index.embedder
    counted = [0]
    original = embedder.embed

    def embed(texts: Sequence[str], *args: Any, **kwargs: Any) -> Vectors:
        counted[0] += len(texts)
        result: Vectors = original(texts, *args, **kwargs)
        return result

    embedder.embed = embed  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        del embedder.embed  # back to the class's method


def wait_until_found(index: Index, marker: str, started: float) -> float | None:
    """Seconds from `started` until a hybrid search for the marker returns a chunk containing it."""
    while time.perf_counter() - started < SEARCH_TIMEOUT_S:
        hits = search(index, marker, k=5)
        if any(marker in hit.text for hit in hits):
            return time.perf_counter() - started
        time.sleep(0.01)
    return None


def measure_edit(settings: Settings, folder: Path, edit: Edit) -> dict[str, Any]:
    """Ingest the folder, start the watcher, save the edit, time until search finds it."""
    index = open_default_index(settings)
    try:
        index.embedder.embed_query("warm-up")  # the model's load time is not the edit's
        ingester = Ingester(index, settings)
        started = time.perf_counter()
        first = ingester.ingest_paths([folder])
        first_seconds = time.perf_counter() - started
        document = index.catalog.documents()[0]
        chunks_before = len(index.catalog.chunks_of(document.id))
        reports: list[Any] = []
        watcher = Watcher(ingester, [folder], on_report=reports.append)
        with watcher, counting_embeds(index) as embedded:
            if not watcher.ready.wait(SEARCH_TIMEOUT_S):
                return {"error": "the watcher's start-up scan did not finish"}
            embedded[0] = 0  # the start-up scan embeds nothing, but be exact
            edit.apply()
            saved = time.perf_counter()
            seconds = wait_until_found(index, edit.marker, saved)
            settle_until = time.perf_counter() + 3  # let the watcher finish the write it is in
            while watcher.pending and time.perf_counter() < settle_until:
                time.sleep(0.05)
        document = index.catalog.document_by_path(document.path) or document
        return {
            "save_to_searchable_s": round(seconds, 3) if seconds is not None else None,
            "embedded_texts": embedded[0],
            "chunks_in_document": len(index.catalog.chunks_of(document.id)),
            "chunks_before": chunks_before,
            "pages": document.page_count,
            "document_bytes": document.size,
            "first_ingest_s": round(first_seconds, 2),
            "first_ingest_embedded_texts": first.embedded,
        }
    finally:
        index.close()


# ----- the edits -----
def markdown_document(shared: Path) -> list[str]:
    """About 100 pages of Markdown: SciFact abstracts as paragraphs under one heading per page."""
    abstracts: list[str] = []
    with (shared / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if len(record["text"]) > 600:
                abstracts.append(record["text"])
            if sum(map(len, abstracts)) > MARKDOWN_PAGES * CHARS_PER_PAGE:
                break
    sections: list[str] = ["# Collected abstracts\n"]
    page_size = 0
    for abstract in abstracts:
        if page_size == 0:
            sections.append(f"## Section {len(sections)}\n")
        sections.append(abstract + "\n")
        page_size += len(abstract)
        if page_size >= CHARS_PER_PAGE:
            page_size = 0
    return sections


def markdown_edit(shared: Path, folder: Path) -> Edit:
    sections = markdown_document(shared)
    path = folder / "abstracts.md"
    path.write_text("\n".join(sections), encoding="utf-8")
    marker = "quarantined zebrafish colonies"
    middle = len(sections) // 2
    while sections[middle].startswith("#"):
        middle += 1

    def apply() -> None:
        changed = list(sections)
        sentences = changed[middle].split(". ")
        sentences.insert(len(sentences) // 2, f"The effect disappeared entirely in {marker} kept at 31 degrees")
        changed[middle] = ". ".join(sentences)
        with path.open("w", encoding="utf-8") as file:  # in place, as most editors' plain save
            file.write("\n".join(changed))

    return Edit("markdown_paragraph", marker, apply)


def pdf_edit(shared: Path, folder: Path) -> Edit:
    from pypdf import PdfReader, PdfWriter

    from tests.pdf_factory import text_pdf  # a one-page PDF with known text (no fonts to embed)

    path = folder / "GeoTopo.pdf"
    path.write_bytes((shared / GEOTOPO).read_bytes())
    marker = "Heptagonal lattice invariants"

    def apply() -> None:
        replacement = PdfReader(io.BytesIO(text_pdf([[
            f"{marker} of the punctured torus",
            "This page replaces the original page sixty of the lecture notes.",
            "Every closed surface carries a triangulation with finitely many simplices.",
        ]])))
        writer = PdfWriter(clone_from=PdfReader(path))
        writer.insert_page(replacement.pages[0], 59)
        writer.remove_page(60)  # the old page 60, now one further on
        temporary = folder / ".GeoTopo.pdf.saving"  # hidden: the watcher ignores it
        with temporary.open("wb") as file:
            writer.write(file)
        os.replace(temporary, path)  # an editor-style save: the new file appears whole

    return Edit("pdf_page", marker, apply)


EDITS: dict[str, Callable[[Path, Path], Edit]] = {"markdown_paragraph": markdown_edit, "pdf_page": pdf_edit}


def run(shared: Path, settings_overrides: dict[str, Any] | None = None,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, make in EDITS.items():
        with tempfile.TemporaryDirectory(prefix=f"archivist-bench-{name}-") as scratch:
            workdir = Path(scratch)
            folder = workdir / "docs"
            folder.mkdir()
            settings = Settings(data_dir=workdir / "data", **(settings_overrides or {}))
            edit = make(shared, folder)
            if progress is not None:
                progress(f"incremental: {name}")
            results[name] = measure_edit(settings, folder, edit)
    return results


def main() -> int:
    shared = Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not (shared / GEOTOPO).exists() or not (shared / "scifact" / "corpus.jsonl").exists():
        print(f"bench/incremental.py: the shared data is absent under {shared}.", file=sys.stderr)
        return 2
    print(json.dumps(run(shared, progress=lambda message: print(message, file=sys.stderr)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
