"""Ingest and search with the real components: Chroma on disk and the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import Ingester, Outcome
from rag.index.embedder import Embedder
from rag.index.index import Index, open_index
from rag.index.local_model import SentenceTransformerEmbedder
from rag.records import Vectors
from rag.search.retrieve import search
from rag.settings import Settings
from tests.pdf_factory import text_pdf

pytestmark = pytest.mark.slow


class CountingEmbedder(Embedder):
    """Wraps the real model and remembers every text it embeds."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens
        self.texts: list[str] = []

    def embed_batch(self, texts):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        result: Vectors = self.inner.embed_batch(texts)
        return result

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


Setup = tuple[Path, Index, Ingester, CountingEmbedder]

SECTIONS = {
    "Reactors": "The Zorblax reactor runs at 42 kelvin. It was commissioned in 1999 after a long delay.",
    "Gardens": "The roof garden grows quinces and medlars. Watering happens at dawn, every second day.",
    "Finance": "Revenue reached 7 million euros in 2022. Costs were flat compared with the prior year.",
}


def markdown(sections: dict[str, str]) -> str:
    return "# Handbook\n\n" + "\n\n".join(f"## {title}\n\n{body}" for title, body in sections.items()) + "\n"


@pytest.fixture
def setup(tmp_path: Path, real_embedder: SentenceTransformerEmbedder) -> Iterator[Setup]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text(markdown(SECTIONS))
    (docs / "report.pdf").write_bytes(text_pdf([["Cover page."], ["The board met in Lisbon in March."]]))
    embedder = CountingEmbedder(real_embedder)
    index = open_index(tmp_path / "data", embedder)
    yield docs, index, Ingester(index, Settings(data_dir=tmp_path / "data")), embedder
    index.close()


def assert_consistent(index: Index) -> None:
    assert index.catalog.all_chunk_ids() == index.vectors.ids()


def test_search_cites_the_right_file_page_and_section(setup: Setup) -> None:
    docs, index, ingester, _ = setup
    report = ingester.ingest_paths([docs])
    assert len(report.of(Outcome.INDEXED)) == 2
    [hit] = search(index, "Where did the board meet?", 1)
    assert (Path(hit.path).name, hit.page_start, hit.page_end) == ("report.pdf", 2, 2)
    [hit] = search(index, "How cold is the reactor?", 1)
    assert Path(hit.path).name == "handbook.md" and hit.headings == ("Handbook", "Reactors")
    assert "42 kelvin" in hit.text
    assert_consistent(index)


def test_editing_one_section_embeds_only_its_chunk(setup: Setup) -> None:
    docs, index, ingester, embedder = setup
    ingester.ingest_paths([docs])
    embedder.texts.clear()
    edited = dict(SECTIONS, Gardens="The roof garden grows figs now. Watering happens at dusk.")
    (docs / "handbook.md").write_text(markdown(edited))
    report = ingester.ingest_paths([docs])
    assert [Path(r.path).name for r in report.of(Outcome.INDEXED)] == ["handbook.md"]
    assert len(embedder.texts) == 1 and "figs" in embedder.texts[0]
    assert "figs" in search(index, "What grows in the roof garden?", 1)[0].text
    assert_consistent(index)


def test_moves_and_duplicates_embed_nothing(setup: Setup) -> None:
    docs, index, ingester, embedder = setup
    ingester.ingest_paths([docs])
    embedder.texts.clear()
    (docs / "archive").mkdir()
    shutil.move(docs / "report.pdf", docs / "archive" / "report-2022.pdf")
    shutil.copy(docs / "handbook.md", docs / "archive" / "handbook-copy.md")
    report = ingester.ingest_paths([docs])
    assert embedder.texts == []
    assert {Path(r.path).name: r.outcome for r in report.results if r.outcome != Outcome.UNCHANGED} == {
        "report-2022.pdf": Outcome.MOVED,
        "handbook-copy.md": Outcome.INDEXED,
    }
    assert report.removed == []  # a move is not a removal
    paths = {Path(h.path).name for h in search(index, "Zorblax reactor temperature", 4)}
    assert {"handbook.md", "handbook-copy.md"} <= paths
    assert Path(search(index, "board meeting Lisbon", 1)[0].path).name == "report-2022.pdf"
    assert_consistent(index)


def test_deleted_files_leave_the_index(setup: Setup) -> None:
    docs, index, ingester, _ = setup
    ingester.ingest_paths([docs])
    (docs / "report.pdf").unlink()
    report = ingester.ingest_paths([docs])
    assert [Path(p).name for p in report.removed] == ["report.pdf"]
    assert all(Path(h.path).name != "report.pdf" for h in search(index, "board meeting Lisbon", 5))
    assert_consistent(index)


def test_a_second_reader_sees_the_index(setup: Setup) -> None:
    docs, index, ingester, embedder = setup
    ingester.ingest_paths([docs])
    reader = open_index(index.catalog.path.parent, embedder)
    try:
        assert Path(search(reader, "reactor temperature", 1)[0].path).name == "handbook.md"
    finally:
        reader.close()
