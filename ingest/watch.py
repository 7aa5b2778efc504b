"""Keeping the index in step with folders: watchdog events, coalesced per path and debounced.

Every event only marks a path as dirty. A worker thread picks up a path once it has been quiet for a
moment and its size and mtime have stopped changing (so a file still being copied is read once, whole),
then asks the Ingester to index it, or to forget it if it is gone. A reconcile scan runs at start, so
what changed while Archivist was not running is picked up too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ingest.control import lower_thread_priority
from ingest.indexing import ingest_and_reconcile
from ingest.pipeline import FileResult, Ingester, IngestReport, absolute, is_candidate
from rag.errors import WatcherStillRunning

logger = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 1.0  # after an error, the first rescan waits this long ...
RETRY_MAX_SECONDS = 60.0  # ... and each further failure doubles the wait, up to this


def retry_delay(failures: int, first: float = RETRY_FIRST_SECONDS, cap: float = RETRY_MAX_SECONDS) -> float:
    """Seconds to wait before the rescan after `failures` failures in a row: doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(first * 2 ** min(failures - 1, 32), cap))


@dataclass
class _Dirty:
    last_event: float
    signature: tuple[int, int] | None  # (size, mtime_ns) when last looked at; None if absent
    writing: bool = False  # written to and not yet closed by its writer (where the OS reports closes)
    complete: bool = False  # its writer closed it, or it was renamed into place: it needs only a short wait


def _reports_closes(observer: object) -> bool:
    """Whether this platform's observer reports a writer closing a file (Linux inotify does)."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return False
    return isinstance(observer, InotifyObserver)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


class _Handler(FileSystemEventHandler):
    """Turns watchdog's events into marks: which path changed, and is its writer still at work."""

    def __init__(self, mark: Callable[[str, bool, bool], None], reports_closes: bool) -> None:
        self._mark = mark
        self._reports_closes = reports_closes

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return  # reads, not changes
        if event.is_directory and kind == "modified":
            return  # a child changed; the child's own event says which
        # Where the OS reports closes (inotify), a file created or modified stays "being written" until its
        # writer closes it: a slow copy is then read once, whole, however long its pauses.
        writing = self._reports_closes and not event.is_directory and kind in ("created", "modified")
        self._mark(os.fsdecode(event.src_path), writing, kind == "closed")
        dest = getattr(event, "dest_path", "")
        if dest:
            self._mark(os.fsdecode(dest), False, True)  # a rename is atomic: the new name is complete


class Watcher:
    """Watches folders and applies their changes to the index until `stop()`."""

    def __init__(
        self,
        ingester: Ingester,
        roots: Sequence[Path],
        quiet_seconds: float = 0.5,
        complete_quiet_seconds: float = 0.1,
        open_file_grace_seconds: float = 10.0,
        on_report: Callable[[IngestReport], None] | None = None,
        on_file: Callable[[FileResult], None] | None = None,
        wait_before_retry: Callable[[float], bool] | None = None,
    ) -> None:
        self.ingester = ingester
        self.roots = [absolute(root) for root in roots]
        self.quiet_seconds = quiet_seconds
        # A file its writer has closed (or renamed into place) is complete: a short wait still coalesces
        # the events of one save (write, close, chmod, rename) but a save is searchable well within a second.
        self.complete_quiet_seconds = min(complete_quiet_seconds, quiet_seconds)
        # A file its writer never closes (a log kept open) is indexed after this long without changes.
        self.open_file_grace_seconds = open_file_grace_seconds
        self.on_report = on_report
        self.on_file = on_file
        self._dirty: dict[str, _Dirty] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()  # start() and stop() one at a time
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._worker: threading.Thread | None = None
        self.ready = threading.Event()  # set once the first reconcile scan has finished
        self.last_error: str | None = None  # the error that made the last scan fail; None once one succeeds
        self.failures = 0  # failed attempts in a row; the next rescan waits retry_delay(failures)
        # Waits out a retry delay; returns True when stop() was called meanwhile. Tests pass one that records.
        self._wait_before_retry = wait_before_retry or self._stopping.wait

    # ----- lifecycle -----
    def start(self) -> Watcher:
        """Scan, then watch, in threads of its own. A watcher that was stopped (even before it started, as
        a service closing during its start-up does) stays stopped: start() then does nothing."""
        with self._lifecycle:
            if self._stopping.is_set():
                return self
            self._start()
        return self

    def _start(self) -> None:
        observer = Observer()
        handler = _Handler(self._mark, reports_closes=_reports_closes(observer))
        for root in self.roots:
            root.mkdir(parents=True, exist_ok=True)
            observer.schedule(
                handler, str(root), recursive=True, follow_symlink=self.ingester.settings.follow_symlinks
            )
        observer.daemon = True
        observer.start()  # before the scan: nothing changed during the scan is missed
        self._observer = observer
        self._worker = threading.Thread(target=self._run, name="archivist-watcher", daemon=True)
        self._worker.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching and wait until the worker has ended at a safe point (after the file in hand).

        Returns only once nothing of this watcher writes any more, so the caller may close the index or start
        another watcher. With a `timeout`, raises WatcherStillRunning if the worker is still at work then (the
        caller must then leave the index open); stop() may be called again to keep waiting."""
        with self._lifecycle:  # a start() under way finishes first; none begins after this
            self._stopping.set()
            observer, worker = self._observer, self._worker
        self.ingester.stop()  # a long scan ends after the file in hand
        self._wake.set()
        if observer is not None:
            observer.stop()
            observer.join()  # its thread only marks paths: it ends at once
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
            if worker.is_alive():
                raise WatcherStillRunning(
                    f"Indexing did not stop within {timeout:g} s (a large file is still being read); "
                    "the index stays open until it has."
                )

    @property
    def running(self) -> bool:
        """Whether the worker thread is still alive (it may write to the index)."""
        return self._worker is not None and self._worker.is_alive()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._dirty)

    # ----- internals -----
    def _mark(self, raw_path: str, writing: bool, complete: bool = False) -> None:
        path = absolute(Path(raw_path))
        if not is_candidate(path, self.roots):
            return
        with self._lock:
            self._dirty[str(path)] = _Dirty(time.monotonic(), _signature(path), writing, complete)
        self._wake.set()

    def _quiet_needed(self, dirty: _Dirty) -> float:
        return self.complete_quiet_seconds if dirty.complete else self.quiet_seconds

    def _next_look(self) -> float:
        """Seconds until the earliest dirty path may have settled (bounded, so stop() is noticed)."""
        longest = self.quiet_seconds / 2
        with self._lock:
            if not self._dirty:
                return longest
            now = time.monotonic()
            due = min(dirty.last_event + self._quiet_needed(dirty) - now for dirty in self._dirty.values())
        return min(max(due, 0.01), longest)

    def _run(self) -> None:
        lower_thread_priority()
        rescan = not self._reconcile()
        self.ready.set()
        while not self._stopping.is_set():
            if rescan:
                # An error left the index out of step with the disk: rescan, but only after a wait that
                # doubles with each failure in a row, so an error that persists does not loop at full speed.
                if self._wait_before_retry(retry_delay(self.failures)):
                    return  # stopped while waiting
                rescan = not self._reconcile()
                continue
            self._wake.wait(timeout=self._next_look())
            self._wake.clear()
            self.ingester.control.update(pending=self.pending)
            if self.ingester.control.paused:
                continue  # changes stay queued until indexing resumes
            try:
                self._process(self._settled())
            except Exception as error:
                self._failed(error, "watcher error; re-scanning to recover")
                rescan = True

    def _failed(self, error: Exception, what: str) -> None:
        self.failures += 1
        delay = retry_delay(self.failures)
        self.last_error = f"Indexing failed: {error} (attempt {self.failures}; trying again in {delay:g} s)"
        logger.exception("%s (retrying in %g s)", what, delay)

    def _reconcile(self) -> bool:
        """Scan the roots and apply what changed; False when it failed (the error is kept for the status)."""
        try:
            report = ingest_and_reconcile(self.ingester, self.roots, on_file=self.on_file)
            if self._stopping.is_set():
                return True  # stopped mid-scan: the next start scans again
        except Exception as error:
            self._failed(error, "reconcile scan failed")
            return False
        self.failures, self.last_error = 0, None
        if self.on_report is not None:
            self.on_report(report)
        return True

    def _settled(self) -> list[Path]:
        """Dirty paths that have been quiet long enough and whose size and mtime held still."""
        now = time.monotonic()
        ready: list[Path] = []
        with self._lock:
            for key, dirty in list(self._dirty.items()):
                quiet_for = now - dirty.last_event
                if quiet_for < self._quiet_needed(dirty):
                    continue
                if dirty.writing and quiet_for < self.open_file_grace_seconds:
                    continue  # its writer has not closed it yet
                signature = _signature(Path(key))
                if signature != dirty.signature:  # still being written: look again after another quiet spell
                    self._dirty[key] = _Dirty(now, signature, dirty.writing)
                    continue
                del self._dirty[key]
                ready.append(Path(key))
        return ready

    def _process(self, paths: list[Path]) -> None:
        if not paths:
            return
        # A symbolic link (not followed) counts as gone: a file replaced by one leaves the index.
        present = [path for path in paths if not self.ingester.is_gone(path)]
        gone = [path for path in paths if self.ingester.is_gone(path)]
        report = IngestReport()
        # Present paths first: a move's new path then finds its content still catalogued at the old one.
        for path in present:
            if self._stopping.is_set():
                return  # stop() was called: the rest waits for the next start's scan
            if path.is_dir():
                sub = self.ingester.ingest_paths([path], on_file=self.on_file)
                report.results.extend(sub.results)
                report.removed.extend(sub.removed)
            else:
                result = self.ingester.ingest_file(path)
                report.results.append(result)
                if self.on_file is not None:
                    self.on_file(result)
        for path in gone:
            report.removed.extend(self.ingester.remove_path(path))
        if self.on_report is not None:
            self.on_report(report)
