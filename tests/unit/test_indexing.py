"""One indexing run (ingest/indexing.py): the writer lock held while the index is open, the vectors
reconciled after the ingest, and a stopped run left for the next one to reconcile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.indexing import ingest_and_reconcile, writable_index
from ingest.pipeline import Ingester
from rag.errors import IndexLockedError
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.index.lock import WriterLock
from rag.settings import Settings, load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


@pytest.fixture
def index(settings: Settings) -> Index:
    return Index(Catalog(settings.data_dir / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Apricots ripen in July.\n")
    (folder / "b.txt").write_text("Blackberries ripen in August.\n")
    return folder


def test_the_index_is_writable_only_inside_the_block_and_closed_after(settings: Settings) -> None:
    with writable_index(settings) as index:
        with pytest.raises(IndexLockedError):
            WriterLock(settings.data_dir).acquire()  # another writer is refused meanwhile
        assert index.catalog.documents() == []
    WriterLock(settings.data_dir).acquire().release()  # free again after the block
    with pytest.raises(Exception, match="closed"):
        index.catalog.documents()  # the index was closed on leaving


def test_the_lock_is_released_when_the_block_fails(settings: Settings) -> None:
    with pytest.raises(RuntimeError), writable_index(settings):
        raise RuntimeError("a failure inside the run")
    WriterLock(settings.data_dir).acquire().release()


def test_a_run_ingests_the_paths_then_makes_the_vectors_match_the_catalog(
    index: Index, settings: Settings, tmp_path: Path
) -> None:
    index.vectors.upsert(["orphan"], np.ones((1, index.embedder.dimension), dtype=np.float32),
                         [{"document_id": "gone", "kind": "text", "page_start": 1, "page_end": 1}])
    seen: list[str] = []

    report = ingest_and_reconcile(Ingester(index, settings), [docs(tmp_path)], on_file=lambda r: seen.append(r.path))

    assert len(report.results) == 2 and sorted(Path(path).name for path in seen) == ["a.md", "b.txt"]
    assert index.vectors.ids() == index.catalog.all_chunk_ids()  # the orphan a crashed run left is gone


def test_without_paths_a_run_only_reconciles(index: Index, settings: Settings) -> None:
    index.vectors.upsert(["orphan"], np.ones((1, index.embedder.dimension), dtype=np.float32),
                         [{"document_id": "gone", "kind": "text", "page_start": 1, "page_end": 1}])
    report = ingest_and_reconcile(Ingester(index, settings), [])
    assert report.results == [] and index.vectors.ids() == set()


def test_a_stopped_run_is_not_reconciled(index: Index, settings: Settings, tmp_path: Path) -> None:
    index.vectors.upsert(["orphan"], np.ones((1, index.embedder.dimension), dtype=np.float32),
                         [{"document_id": "gone", "kind": "text", "page_start": 1, "page_end": 1}])
    ingester = Ingester(index, settings)
    ingester.stop()  # as the watcher's stop() does: the next start scans and reconciles again
    ingest_and_reconcile(ingester, [docs(tmp_path)])
    assert "orphan" in index.vectors.ids()
