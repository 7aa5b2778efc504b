"""The watcher's lifecycle with fake ingesters: stop means stopped, and a persisting error backs off."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from ingest.pipeline import Ingester, IngestReport, ProgressCallback
from ingest.watch import RETRY_MAX_SECONDS, Watcher, retry_delay
from rag.errors import WatcherStillRunning
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.settings import Settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore


def make_index(data_dir: Path) -> Index:
    return Index(Catalog(data_dir / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


class BlockedIngester(Ingester):
    """Its scan takes as long as the test says: it ends only once `gate` is set, whatever stop() says."""

    def __init__(self, index: Index, settings: Settings) -> None:
        super().__init__(index, settings)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def ingest_paths(self, paths: Iterable[Path], on_file: ProgressCallback | None = None) -> IngestReport:
        self.entered.set()
        self.gate.wait()
        return IngestReport()


class BrokenIngester(Ingester):
    """Every scan fails, as with a catalog that cannot be written."""

    def __init__(self, index: Index, settings: Settings) -> None:
        super().__init__(index, settings)
        self.scans = 0

    def ingest_paths(self, paths: Iterable[Path], on_file: ProgressCallback | None = None) -> IngestReport:
        self.scans += 1
        raise OSError("disk I/O error")


def test_stop_does_not_return_while_the_worker_still_writes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    index = make_index(settings.data_dir)
    ingester = BlockedIngester(index, settings)
    watcher = Watcher(ingester, [tmp_path / "docs"]).start()
    try:
        assert ingester.entered.wait(30)
        # The worker is inside a file it cannot leave yet: a stop with a deadline says so rather than
        # returning as if stopped (the caller would then close the index under it).
        with pytest.raises(WatcherStillRunning, match="did not stop"):
            watcher.stop(timeout=0.2)
        assert watcher.running
        threading.Timer(0.2, ingester.gate.set).start()
        watcher.stop()  # no deadline: returns once the worker has ended
        assert not watcher.running
    finally:
        ingester.gate.set()
        index.close()


def test_retry_delay_doubles_and_is_capped() -> None:
    assert retry_delay(0) == 0
    assert [retry_delay(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(50) == RETRY_MAX_SECONDS
    assert retry_delay(10_000) == RETRY_MAX_SECONDS


def test_an_error_that_persists_is_retried_with_a_growing_wait_and_shown(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    index = make_index(settings.data_dir)
    ingester = BrokenIngester(index, settings)
    waits: list[float] = []
    enough = threading.Event()

    def record_wait(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) >= 8:
            enough.set()
            return True  # as if stop() came during the wait
        return False

    watcher = Watcher(ingester, [tmp_path / "docs"], wait_before_retry=record_wait)
    watcher.start()
    try:
        assert enough.wait(30)
        assert watcher.ready.is_set()
    finally:
        watcher.stop()
        index.close()
    # Every rescan came after a wait, each twice the one before, up to the cap: never a busy loop.
    assert waits == [retry_delay(n) for n in range(1, 9)]
    assert ingester.scans == 8  # the first scan and 7 retries; the 8th wait ended with stop()
    assert watcher.last_error is not None
    assert "disk I/O error" in watcher.last_error and "trying again in" in watcher.last_error


def test_a_watcher_stopped_before_it_started_never_starts(tmp_path: Path) -> None:
    # The service's start-up thread may reach start() after close() has stopped the watcher.
    settings = Settings(data_dir=tmp_path / "data")
    index = make_index(settings.data_dir)
    ingester = BlockedIngester(index, settings)
    watcher = Watcher(ingester, [tmp_path / "docs"])
    watcher.stop()
    watcher.start()
    try:
        assert not watcher.running and not ingester.entered.is_set()
    finally:
        ingester.gate.set()
        index.close()
