"""Pausing and resuming indexing, and the progress board other processes read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ingest.control import IndexingControl, read_progress
from ingest.pipeline import Ingester, IngestReport, Outcome
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.settings import Settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore


def make_ingester(tmp_path: Path) -> Ingester:
    index = Index(Catalog(tmp_path / "data" / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())
    return Ingester(index, Settings(data_dir=tmp_path / "data"))


def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_a_paused_run_waits_and_resumes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(3):
        (docs / f"note{n}.md").write_text(f"Note number {n}.\n")
    ingester = make_ingester(tmp_path)
    other_process = IndexingControl(tmp_path / "data")  # as `archivist pause` would see it
    other_process.pause()
    reports: list[IngestReport] = []
    worker = threading.Thread(target=lambda: reports.append(ingester.ingest_paths([docs])))
    worker.start()
    wait_until(lambda: (p := read_progress(tmp_path / "data")) is not None and p.state == "paused")
    assert ingester.index.catalog.status_counts() == {}  # nothing indexed while paused
    other_process.resume()
    worker.join(10)
    assert len(reports[0].of(Outcome.INDEXED)) == 3
    progress = read_progress(tmp_path / "data")
    assert progress is not None and (progress.state, progress.done, progress.total) == ("idle", 3, 3)


def test_stop_ends_a_paused_run(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("A.\n")
    ingester = make_ingester(tmp_path)
    ingester.control.pause()
    worker = threading.Thread(target=ingester.ingest_paths, args=([docs],))
    worker.start()
    wait_until(lambda: ingester.control.progress.state == "paused")
    ingester.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert ingester.index.catalog.status_counts() == {}


def test_progress_of_a_dead_process_is_ignored(tmp_path: Path) -> None:
    control = IndexingControl(tmp_path)
    control.update(state="indexing", total=5, force=True)
    assert read_progress(tmp_path) is not None
    control.update(pid=2**22 + 12345, force=True)  # no such process
    assert read_progress(tmp_path) is None
