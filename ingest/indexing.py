"""One indexing run against the index in a data folder: the writer lock held, the index open, the paths
ingested, the vectors reconciled with the catalog, the index closed and the lock released.

Every face that writes does this: `archivist ingest`, `archivist watch` (whose watcher runs the ingest and
reconcile step at each start), and the evaluations, which build a throw-away index the same way:

    with writable_index(settings) as index:
        report = ingest_and_reconcile(Ingester(index, settings), paths, on_file=progress.advance)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ingest.pipeline import Ingester, IngestReport, ProgressCallback
from rag.index.index import Index
from rag.index.lock import WriterLock
from rag.settings import Settings


@contextmanager
def writable_index(settings: Settings) -> Iterator[Index]:
    """The index in `settings.data_dir`, open for writing while the block runs: this process holds the data
    folder's writer lock (IndexLockedError when another process does) until the index is closed after it."""
    # Here, not at the top: the watcher needs only ingest_and_reconcile, not every backend the factory builds.
    from rag.factory import open_default_index

    with WriterLock(settings.data_dir):
        index = open_default_index(settings)
        try:
            yield index
        finally:
            index.close()


def ingest_and_reconcile(
    ingester: Ingester, paths: Sequence[Path], on_file: ProgressCallback | None = None
) -> IngestReport:
    """Bring the index in line with `paths` (files and folders), then make its vectors match the catalog
    (what an earlier run interrupted left behind). A run stopped part-way (`ingester.stop()`) is not
    reconciled: the next run scans again and reconciles then. No paths: only the reconcile."""
    report = ingester.ingest_paths(paths, on_file=on_file) if paths else IngestReport()
    if not ingester.stopping.is_set():
        ingester.index.reconcile()
    return report
