"""The ingest pipeline: bring the index in line with files and folders on disk, one file at a time.

For each file: cheap checks first (size and mtime unchanged → nothing to do), then the content hash
(same content → nothing to do; same content as a file that vanished → a move, no embedding), and only
then parse, chunk and write. One bad file is recorded with its reason and never stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ingest.chunk import chunk_blocks
from ingest.control import IndexingControl
from ingest.parsers import kind_for, parse_bytes, read_document
from ingest.scan import is_ignored, walk_files
from rag.errors import DocumentError, UnreadableFile, UnsupportedFileType
from rag.index import FileFacts, Index
from rag.settings import Settings

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    INDEXED = "indexed"
    UNCHANGED = "unchanged"
    MOVED = "moved"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class FileResult:
    path: str
    outcome: Outcome
    reason: str | None = None
    chunks: int = 0
    embedded: int = 0


@dataclass
class IngestReport:
    """What one run did. `to_json` is the `archivist ingest --json` contract."""

    results: list[FileResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def of(self, *outcomes: Outcome) -> list[FileResult]:
        return [result for result in self.results if result.outcome in outcomes]

    @property
    def embedded(self) -> int:
        return sum(result.embedded for result in self.results)

    def to_json(self) -> dict[str, object]:
        return {
            # a moved file and a duplicate are indexed under their new path, though nothing was embedded
            "indexed": len(self.of(Outcome.INDEXED, Outcome.MOVED)),
            "unchanged": len(self.of(Outcome.UNCHANGED)),
            "removed": len(self.removed),
            "failed": [{"path": r.path, "error": r.reason or ""} for r in self.of(Outcome.FAILED)],
            "skipped": [{"path": r.path, "error": r.reason or ""} for r in self.of(Outcome.SKIPPED)],
            "embedded_texts": self.embedded,
        }


ProgressCallback = Callable[[FileResult], None]


def absolute(path: Path) -> Path:
    """Absolute and normalised, without resolving symlinks (the user's path is the document's name)."""
    return Path(os.path.abspath(path))


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ingester:
    """Applies files and folders to an index. The caller holds the data folder's WriterLock."""

    def __init__(self, index: Index, settings: Settings, control: IndexingControl | None = None) -> None:
        self.index = index
        self.settings = settings
        self.control = control or IndexingControl(settings.data_dir)
        self.stopping = threading.Event()  # set by stop(): a long run ends after the file in hand

    def stop(self) -> None:
        self.stopping.set()

    # ----- whole runs -----
    def plan(self, paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
        """The files to look at, and the folders whose vanished documents should be removed."""
        files: list[Path] = []
        roots: list[Path] = []
        for given in paths:
            path = absolute(given)
            if path.is_dir():
                roots.append(path)
                files.extend(walk_files(path))
            else:
                files.append(path)  # a missing file is reported (or removed) when it is processed
        return list(dict.fromkeys(files)), roots

    def ingest_paths(self, paths: Iterable[Path], on_file: ProgressCallback | None = None) -> IngestReport:
        files, roots = self.plan(paths)
        report = IngestReport()
        on_disk = {str(file) for file in files}
        # Removals first would lose moves: a vanished document is still in the catalog while its new path is
        # processed, so the move is recognised by content hash and nothing is re-embedded.
        control = self.control
        control.update(state="indexing", total=len(files), done=0, failed=0, force=True)
        try:
            for done, file in enumerate(files):
                control.wait_while_paused(self.stopping)
                if self.stopping.is_set():
                    return report  # stopped: removals wait for the next run, which rescans anyway
                control.update(current=str(file), done=done)
                result = self.ingest_file(file)
                report.results.append(result)
                if result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
                    control.update(failed=control.progress.failed + 1)
                if on_file is not None:
                    on_file(result)
        finally:
            control.update(state="idle", current=None, done=control.progress.total, force=True)
        for root in roots:
            for document in self.index.catalog.documents(under=str(root)):
                if document.path not in on_disk and not os.path.lexists(document.path):
                    self.index.remove_document(document.path)
                    report.removed.append(document.path)
        return report

    # ----- one file -----
    def ingest_file(self, path: Path) -> FileResult:
        path = absolute(path)
        key = str(path)
        try:
            return self._ingest(path)
        except DocumentError as problem:
            return self._record(key, problem)
        except OSError as error:  # something the checks above did not foresee: still only this file fails
            logger.warning("could not read %s: %s", key, error)
            return self._record(key, UnreadableFile(f"could not read: {error.strerror or error}"))

    def _ingest(self, path: Path) -> FileResult:
        key = str(path)
        try:
            info = path.stat()
        except FileNotFoundError:
            if self.index.remove_document(key):
                return FileResult(key, Outcome.UNCHANGED, "removed: file no longer exists")
            raise UnreadableFile("no such file") from None
        except PermissionError:
            raise UnreadableFile("permission denied") from None
        kind = kind_for(path)
        if kind is None:
            raise UnsupportedFileType(f"unsupported file type {path.suffix or '(no extension)'}")
        existing = self.index.catalog.document_by_path(key)
        if existing and existing.size == info.st_size and existing.mtime_ns == info.st_mtime_ns:
            if existing.status == "indexed":
                return FileResult(key, Outcome.UNCHANGED)
            # Not retried until it changes, but still reported: the file is still not in the index.
            return FileResult(key, Outcome(existing.status), existing.error)
        data = read_document(path, max_bytes=self.settings.max_file_bytes)
        facts = FileFacts(key, hash_bytes(data), len(data), info.st_mtime_ns)
        if existing and existing.content_hash == facts.content_hash and existing.status == "indexed":
            self.index.touch_document(facts)
            return FileResult(key, Outcome.UNCHANGED)
        if existing is None:
            for twin in self.index.catalog.documents_with_hash(facts.content_hash):
                if not os.path.lexists(twin.path) and self.index.move_document(twin.path, facts):
                    logger.info("moved: %s -> %s", twin.path, key)
                    return FileResult(key, Outcome.MOVED, f"moved from {twin.path}")
        parsed = parse_bytes(data, kind, pdf_passwords=self.settings.pdf_passwords, page_cache=self.index.catalog)
        chunks = chunk_blocks(
            parsed.blocks,
            self.index.embedder.count_tokens,
            max_tokens=min(self.settings.chunk_tokens, self.index.embedder.max_tokens - 8),
            overlap_tokens=self.settings.chunk_overlap_tokens,
            split_pages=kind == "pdf",
        )
        written = self.index.write_document(facts, kind, parsed.page_count, chunks, parsed.warnings)
        return FileResult(key, Outcome.INDEXED, chunks=written.chunks, embedded=written.embedded)

    def _record(self, key: str, problem: DocumentError) -> FileResult:
        outcome = Outcome.SKIPPED if problem.status == "skipped" else Outcome.FAILED
        if isinstance(problem, UnreadableFile) and not os.path.lexists(key):
            return FileResult(key, outcome, problem.reason)  # nothing on disk to describe
        try:
            info = os.stat(key)
            size, mtime = info.st_size, info.st_mtime_ns
        except OSError:
            size, mtime = 0, 0
        existing = self.index.catalog.document_by_path(key)
        if isinstance(problem, UnreadableFile) and existing and existing.status == "indexed":
            # A passing problem (a permission flip, a file mid-replace): keep what was indexed.
            return FileResult(key, outcome, problem.reason)
        self.index.record_problem(FileFacts(key, "", size, mtime), problem.status, problem.reason, kind_for(Path(key)))
        return FileResult(key, outcome, problem.reason)

    def remove_path(self, path: Path) -> list[str]:
        """Forget a file, or every document under a folder (for deletions the watcher reports)."""
        key = str(absolute(path))
        removed = []
        if self.index.remove_document(key):
            removed.append(key)
        for document in self.index.catalog.documents(under=key):
            if document.path != key and not os.path.lexists(document.path):
                self.index.remove_document(document.path)
                removed.append(document.path)
        return removed


def is_candidate(path: Path, roots: Iterable[Path]) -> bool:
    """A path the watcher should care about: under a root, not hidden or temporary."""
    for root in roots:
        if path == root or path.is_relative_to(root):
            return not is_ignored(path, root)
    return False
