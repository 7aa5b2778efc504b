"""The ingest pipeline: bring the index in line with files and folders on disk, one file at a time.

For each file: cheap checks first (size and mtime unchanged → nothing to do), then the content hash
(same content → nothing to do; same content as a file that vanished → a move, no embedding), and only
then parse, chunk and write. One bad file is recorded with its reason and never stops the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ingest.chunk import chunk_blocks
from ingest.control import IndexingControl
from ingest.document import DocumentKind, ParsedDocument
from ingest.parsers import kind_for, read_document
from ingest.parsers.worker import parse_isolated
from ingest.scan import is_ignored, walk_files
from rag.errors import DocumentError, UnreadableFile, UnsupportedFileType
from rag.index import DocumentWrite, FileFacts, Index, NewChunk, text_hash
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


READ_AHEAD = 64  # files prepared ahead of the embedder
EMBED_BATCH_TARGET = 256  # new texts gathered across files before one embedding call


@dataclass(frozen=True)
class _Done:
    """Nothing to write: the result is known."""

    result: FileResult

    @property
    def path(self) -> str:
        return self.result.path


@dataclass(frozen=True)
class _Problem:
    path: str
    problem: DocumentError


@dataclass(frozen=True)
class _Vanished:
    path: str


@dataclass(frozen=True)
class _Touch:
    """Same content, new mtime."""

    path: str
    facts: FileFacts


@dataclass(frozen=True)
class _Move:
    """New path whose content matches documents whose files are gone: probably a move."""

    path: str
    facts: FileFacts
    candidates: list[str]
    data: bytes
    kind: DocumentKind


@dataclass(frozen=True)
class _Write:
    """A new or changed file, parsed and chunked, ready to be written."""

    path: str
    facts: FileFacts
    kind: DocumentKind
    parsed: ParsedDocument
    chunks: list[NewChunk]
    new_texts: dict[str, str]  # text hash -> text, for chunks the document did not have before


_Action = _Done | _Problem | _Vanished | _Touch | _Move | _Write


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

    def is_gone(self, path: Path) -> bool:
        """No longer a document on disk: deleted, or now a symbolic link that is not to be followed."""
        if not os.path.lexists(path):
            return True
        return not self.settings.follow_symlinks and os.path.islink(path)

    # ----- whole runs -----
    def plan(self, paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
        """The files to look at, and the folders whose vanished documents should be removed."""
        files: list[Path] = []
        roots: list[Path] = []
        for given in paths:
            path = absolute(given)
            if path.is_dir():
                roots.append(path)
                files.extend(walk_files(path, follow_symlinks=self.settings.follow_symlinks))
            else:
                files.append(path)  # a missing file is reported (or removed) when it is processed
        return list(dict.fromkeys(files)), roots

    def ingest_paths(self, paths: Iterable[Path], on_file: ProgressCallback | None = None) -> IngestReport:
        """Bring the index in line with these files and folders (a folder's vanished files are removed).

        A reader thread runs ahead, checking, reading, parsing and chunking the next files while this thread
        embeds and writes: parsing (pure Python) overlaps the model's work, and the chunks of many small
        files are embedded together in full batches rather than one short batch per file.
        """
        files, roots = self.plan(paths)
        report = IngestReport()
        on_disk = {str(file) for file in files}
        control = self.control
        control.update(state="indexing", total=len(files), done=0, failed=0, force=True)
        ahead: queue.Queue[_Action | None] = queue.Queue(maxsize=READ_AHEAD)
        halt = threading.Event()
        reader = threading.Thread(
            target=self._read_ahead, args=(files, ahead, halt), name="archivist-reader", daemon=True
        )
        reader.start()
        try:
            def record(results: list[FileResult]) -> None:
                for result in results:
                    report.results.append(result)
                    if result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
                        control.update(failed=control.progress.failed + 1)
                    if on_file is not None:
                        on_file(result)

            for batch in self._batches(ahead):
                newly_embedded = self._embed_batch(batch)
                writes: list[_Write] = []  # consecutive new versions, written together
                for action in batch:
                    control.wait_while_paused(self.stopping)
                    if self.stopping.is_set():
                        return report  # stopped: the next run rescans anyway (unwritten files included)
                    control.update(current=action.path, done=len(report.results) + len(writes))
                    if isinstance(action, _Write):
                        writes.append(action)
                        continue
                    record(self._write(writes, newly_embedded))  # in order: earlier files first
                    writes = []
                    record([self._apply(action, newly_embedded)])
                record(self._write(writes, newly_embedded))
        finally:
            halt.set()
            while reader.is_alive():  # it may be blocked on a full queue after an early stop
                with contextlib.suppress(queue.Empty):
                    ahead.get(timeout=0.1)
            control.update(state="idle", current=None, done=len(report.results), force=True)
        # Removals come last: a vanished document is still in the catalog while its new path is processed,
        # so a move is recognised by content hash and nothing is re-embedded.
        for root in roots:
            for document in self.index.catalog.documents(under=str(root)):
                if document.path not in on_disk and self.is_gone(Path(document.path)):
                    self.index.remove_document(document.path)
                    report.removed.append(document.path)
        return report

    def _read_ahead(self, files: list[Path], ahead: queue.Queue[_Action | None], halt: threading.Event) -> None:
        try:
            for file in files:
                self.control.wait_while_paused(halt, self.stopping)
                if halt.is_set() or self.stopping.is_set():
                    return
                ahead.put(self._prepare(file))
        finally:
            ahead.put(None)

    def _batches(self, ahead: queue.Queue[_Action | None]) -> Iterator[list[_Action]]:
        """Prepared files in order, grouped until they hold a full embedding batch of new texts."""
        target = max(self.settings.embed_batch_size, EMBED_BATCH_TARGET)
        while True:
            first = ahead.get()
            if first is None:
                return
            batch, texts = [first], len(first.new_texts) if isinstance(first, _Write) else 0
            finished = False
            while texts < target:
                try:
                    item = ahead.get_nowait()
                except queue.Empty:
                    break  # the model should not wait on the reader: embed what is here
                if item is None:
                    finished = True
                    break
                batch.append(item)
                texts += len(item.new_texts) if isinstance(item, _Write) else 0
            yield batch
            if finished:
                return

    def _embed_batch(self, batch: list[_Action]) -> set[str]:
        texts: dict[str, str] = {}
        for action in batch:
            if isinstance(action, _Write):
                texts.update(action.new_texts)
        return self.index.ensure_vectors(texts) if texts else set()

    # ----- one file -----
    def ingest_file(self, path: Path) -> FileResult:
        """Bring the index in line with one file (the watcher's unit of work)."""
        action = self._prepare(absolute(path))
        return self._apply(action, self._embed_batch([action]))

    def _prepare(self, path: Path) -> _Action:
        """Decide what a file needs, reading and parsing it if it changed. Writes nothing to the index."""
        key = str(path)
        try:
            return self._examine(path)
        except DocumentError as problem:
            return _Problem(key, problem)
        except OSError as error:  # something the checks did not foresee: still only this file fails
            logger.warning("could not read %s: %s", key, error)
            return _Problem(key, UnreadableFile(f"could not read: {error.strerror or error}"))

    def _examine(self, path: Path) -> _Action:
        key = str(path)
        if self.is_gone(path):
            return _Vanished(key)
        try:
            info = path.stat()
        except FileNotFoundError:
            return _Vanished(key)
        except PermissionError:
            raise UnreadableFile("permission denied") from None
        kind = kind_for(path)
        if kind is None:
            raise UnsupportedFileType(f"unsupported file type {path.suffix or '(no extension)'}")
        existing = self.index.catalog.document_by_path(key)
        if existing and existing.size == info.st_size and existing.mtime_ns == info.st_mtime_ns:
            if existing.status == "indexed":
                return _Done(FileResult(key, Outcome.UNCHANGED))
            # Not retried until it changes, but still reported: the file is still not in the index.
            return _Done(FileResult(key, Outcome(existing.status), existing.error))
        data = read_document(path, max_bytes=self.settings.max_file_bytes)
        facts = FileFacts(key, hash_bytes(data), len(data), info.st_mtime_ns)
        if existing and existing.content_hash == facts.content_hash and existing.status == "indexed":
            return _Touch(key, facts)
        if existing is None:
            gone = [twin.path for twin in self.index.catalog.documents_with_hash(facts.content_hash)]
            gone = [twin for twin in gone if not os.path.lexists(twin)]
            if gone:
                return _Move(key, facts, gone, data, kind)
        return self._parse(key, facts, data, kind, existing.id if existing else None)

    def _parse(self, key: str, facts: FileFacts, data: bytes, kind: DocumentKind, document_id: str | None) -> _Write:
        parsed = parse_isolated(data, kind, self.settings, page_cache=self.index.catalog)
        embedder = self.index.embedder
        chunks = chunk_blocks(
            parsed.blocks,
            embedder.count_tokens,
            max_tokens=min(self.settings.chunk_tokens, embedder.max_tokens - 8),
            overlap_tokens=self.settings.chunk_overlap_tokens,
            min_fill=self.settings.chunk_min_fill,
            split_pages=kind == "pdf",
        )
        known = {row.text_hash for row in self.index.catalog.chunks_of(document_id)} if document_id else set()
        new_texts = {}
        for chunk in chunks:
            digest = text_hash(chunk.embedding_text)
            if digest not in known:
                new_texts[digest] = chunk.embedding_text
        return _Write(key, facts, kind, parsed, chunks, new_texts)

    def _apply(self, action: _Action, newly_embedded: set[str]) -> FileResult:
        """Carry out what `_prepare` decided: the only place a run writes to the index."""
        key = action.path
        try:
            if isinstance(action, _Done):
                return action.result
            if isinstance(action, _Problem):
                return self._record(key, action.problem)
            if isinstance(action, _Vanished):
                if self.index.remove_document(key):
                    return FileResult(key, Outcome.UNCHANGED, "removed: file no longer exists")
                if os.path.islink(key):  # named explicitly; nothing to record in the catalog
                    return FileResult(key, Outcome.SKIPPED, "symbolic link, not followed (ARCHIVIST_FOLLOW_SYMLINKS)")
                return self._record(key, UnreadableFile("no such file"))
            if isinstance(action, _Touch):
                self.index.touch_document(action.facts)
                return FileResult(key, Outcome.UNCHANGED)
            if isinstance(action, _Move):
                for old_path in action.candidates:
                    if self.index.move_document(old_path, action.facts):
                        logger.info("moved: %s -> %s", old_path, key)
                        return FileResult(key, Outcome.MOVED, f"moved from {old_path}")
                # Another new file took that move first (two copies of one vanished file): index this one.
                action = self._parse(key, action.facts, action.data, action.kind, None)
                newly_embedded = newly_embedded | self._embed_batch([action])
            assert isinstance(action, _Write)
            return self._write([action], newly_embedded)[0]
        except DocumentError as problem:
            return self._record(key, problem)

    def _write(self, writes: list[_Write], newly_embedded: set[str]) -> list[FileResult]:
        """Index new versions of files, all in one go (see Index.write_documents)."""
        if not writes:
            return []
        written = self.index.write_documents([
            DocumentWrite(write.facts, write.kind, write.parsed.page_count, tuple(write.chunks),
                          tuple(write.parsed.warnings))
            for write in writes
        ])
        results = []
        for write, result in zip(writes, written, strict=True):
            embedded = len(newly_embedded.intersection(write.new_texts))
            newly_embedded.difference_update(write.new_texts)  # a text shared by two files counts once
            results.append(FileResult(write.path, Outcome.INDEXED, chunks=result.chunks,
                                      embedded=embedded + result.embedded))
        return results

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
            if document.path != key and self.is_gone(Path(document.path)):
                self.index.remove_document(document.path)
                removed.append(document.path)
        return removed


def is_candidate(path: Path, roots: Iterable[Path]) -> bool:
    """A path the watcher should care about: under a root, not hidden or temporary."""
    for root in roots:
        if path == root or path.is_relative_to(root):
            return not is_ignored(path, root)
    return False
