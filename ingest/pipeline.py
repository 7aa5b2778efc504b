"""The ingest pipeline: bring the index in line with files and folders on disk, one file at a time.

For each file: cheap checks first (size and mtime unchanged → nothing to do), then the content hash
(same content → nothing to do; same content as a file that vanished → a move, no embedding), and only
then parse, chunk and write. One bad file is recorded with its reason and never stops the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from ingest.chunk import chunk_blocks
from ingest.control import IndexingControl
from ingest.document import DocumentKind, ParsedDocument
from ingest.parsers import kind_for, read_document
from ingest.parsers.worker import parse_isolated
from ingest.scan import is_ignored, walk_files
from rag.errors import DocumentError, IngestAborted, UnexpectedFailure, UnreadableFile, UnsupportedFileType
from rag.index.index import DocumentWrite, FileFacts, Index, NewChunk, text_hash
from rag.index.paths import display_path
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


class _Stopped(Exception):
    """stop() was called while a large file was written in parts: its committed parts stay (`partial`)."""


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


class Plan(NamedTuple):
    """What a run over some paths will look at."""

    files: list[Path]
    roots: list[Path]  # folders whose vanished documents are removed
    unreadable: dict[str, str]  # folder -> why it could not be listed; nothing under it is removed


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
        # Told (passages written, passages) after each part of a file written in parts (a progress bar).
        self.on_passages: Callable[[int, int], None] | None = None

    def stop(self) -> None:
        self.stopping.set()

    def is_gone(self, path: Path) -> bool:
        """No longer a document on disk: deleted, or now a symbolic link that is not to be followed.

        A file that cannot be looked at (its folder's permissions changed, a drive's I/O error) is not gone:
        `os.path.lexists` would say False, and what was indexed would be lost over a passing problem."""
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:
            return False
        return not self.settings.follow_symlinks and stat.S_ISLNK(info.st_mode)

    # ----- whole runs -----
    def plan(self, paths: Iterable[Path]) -> Plan:
        """The files to look at, the folders whose vanished documents should be removed, and the folders that
        could not be listed (their documents stay as they are)."""
        files: list[Path] = []
        roots: list[Path] = []
        unreadable: dict[str, str] = {}

        def note(folder: Path, error: OSError) -> None:
            reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
            unreadable.setdefault(str(absolute(folder)), f"cannot open folder: {reason}")

        for given in paths:
            path = absolute(given)
            if path.is_dir():
                roots.append(path)
                files.extend(walk_files(path, follow_symlinks=self.settings.follow_symlinks, on_error=note))
            else:
                files.append(path)  # a missing file is reported (or removed) when it is processed
        return Plan(list(dict.fromkeys(files)), roots, unreadable)

    def ingest_paths(self, paths: Iterable[Path], on_file: ProgressCallback | None = None) -> IngestReport:
        """Bring the index in line with these files and folders (a folder's vanished files are removed).

        A reader thread runs ahead, checking, reading, parsing and chunking the next files while this thread
        embeds and writes: parsing (pure Python) overlaps the model's work, and the chunks of many small
        files are embedded together in full batches rather than one short batch per file.
        """
        files, roots, unreadable = self.plan(paths)
        report = IngestReport()
        for folder, reason in unreadable.items():
            result = FileResult(folder, Outcome.FAILED, reason)
            report.results.append(result)
            if on_file is not None:
                on_file(result)
        on_disk = {str(file) for file in files}
        control = self.control
        control.update(state="indexing", total=len(files), done=0, failed=0, force=True)
        ahead: queue.Queue[_Action | None] = queue.Queue(maxsize=READ_AHEAD)
        halt = threading.Event()
        died: list[BaseException] = []  # the reader's own failure (not a file's), raised here
        reader = threading.Thread(
            target=self._read_ahead, args=(files, ahead, halt, died), name="archivist-reader", daemon=True
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

            try:
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
            except _Stopped:
                return report  # mid-file: its committed parts stay, marked partial; the next run goes on
            if died:
                raise IngestAborted(
                    f"Indexing stopped after {len(report.results)} of {len(files)} files: the reader failed "
                    f"({type(died[0]).__name__}: {died[0]}). The files not reached were not indexed; run again."
                ) from died[0]
        finally:
            halt.set()
            while reader.is_alive():  # it may be blocked on a full queue after an early stop
                with contextlib.suppress(queue.Empty):
                    ahead.get(timeout=0.1)
            control.update(state="idle", current=None, done=len(report.results), passages_done=0, passages_total=0,
                           force=True)
        # Removals come last: a vanished document is still in the catalog while its new path is processed,
        # so a move is recognised by content hash and nothing is re-embedded.
        for root in roots:
            for document in self.index.catalog.documents(under=str(root)):
                if document.path not in on_disk and self.is_gone(Path(document.path)):
                    self.index.remove_document(document.path)
                    report.removed.append(document.path)
        return report

    def _read_ahead(
        self, files: list[Path], ahead: queue.Queue[_Action | None], halt: threading.Event, died: list[BaseException]
    ) -> None:
        try:
            for file in files:
                self.control.wait_while_paused(halt, self.stopping)
                if halt.is_set() or self.stopping.is_set():
                    return
                ahead.put(self._prepare(file))
        except BaseException as error:  # handed to the run, which raises it: never end short silently
            died.append(error)
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
            # A file written in parts embeds part by part as it writes (bounded memory, work kept as it goes).
            if isinstance(action, _Write) and len(action.chunks) <= self.settings.commit_chunks:
                texts.update(action.new_texts)
        return self.index.ensure_vectors(texts) if texts else set()

    # ----- one file -----
    def ingest_file(self, path: Path) -> FileResult:
        """Bring the index in line with one file (the watcher's unit of work)."""
        action = self._prepare(absolute(path))
        try:
            return self._apply(action, self._embed_batch([action]))
        except _Stopped:
            return FileResult(action.path, Outcome.SKIPPED, "stopped part-way; the next run finishes it")

    def _prepare(self, path: Path) -> _Action:
        """Decide what a file needs, reading and parsing it if it changed. Writes nothing to the index."""
        key = str(path)
        try:
            return self._examine(path)
        except DocumentError as problem:
            return _Problem(key, problem)
        except OSError as error:  # something the checks did not foresee: still only this file fails
            logger.warning("could not read %s: %s", display_path(key), error)
            return _Problem(key, UnreadableFile(f"could not read: {error.strerror or error}"))
        except Exception as error:  # a bug or a library's surprise: this file fails, the run goes on
            logger.exception("unexpected error preparing %s", display_path(key))
            return _Problem(key, UnexpectedFailure(f"unexpected error: {type(error).__name__}: {error}"))

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
        if existing and existing.status == "partial":
            pass  # a large file whose writing was interrupted: read it again, the write goes on where it stopped
        elif existing and existing.size == info.st_size and existing.mtime_ns == info.st_mtime_ns:
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
            self.settings.chunking,
            split_pages=kind == "pdf",
            model_limit=embedder.max_tokens - 8,
        )
        known = {key[3] for key in self.index.catalog.chunk_keys(document_id).values()} if document_id else set()
        new_texts = {}
        for chunk in chunks:
            digest = text_hash(chunk.embedding_text)
            if digest not in known:
                new_texts[digest] = chunk.embedding_text
        # The blocks are chunked now; dropping them halves what a large file keeps in memory until written.
        return _Write(key, facts, kind, dataclasses.replace(parsed, blocks=()), chunks, new_texts)

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
                write = self._parse(key, action.facts, action.data, action.kind, None)
                return self._write([write], newly_embedded | self._embed_batch([write]))[0]
            return self._write([action], newly_embedded)[0]
        except DocumentError as problem:
            return self._record(key, problem)

    def _write(self, writes: list[_Write], newly_embedded: set[str]) -> list[FileResult]:
        """Index new versions of files, all in one go (see Index.write_documents)."""
        if not writes:
            return []
        def on_part(document: DocumentWrite, done: int, total: int) -> None:
            # Forced: parts are seconds apart, and a reader should see each one.
            self.control.update(current=document.facts.path, passages_done=done, passages_total=total, force=True)
            if self.on_passages is not None:
                self.on_passages(done, total)
            if 0 < done < total:  # between parts, as between files: pause here, or stop (the next run goes on)
                self.control.wait_while_paused(self.stopping)
                if self.stopping.is_set():
                    raise _Stopped

        written = self.index.write_documents(
            [
                DocumentWrite(write.facts, write.kind, write.parsed.page_count, tuple(write.chunks),
                              tuple(write.parsed.warnings))
                for write in writes
            ],
            on_part=on_part,
            part_chunks=self.settings.commit_chunks,
        )
        if any(len(write.chunks) > self.settings.commit_chunks for write in writes):
            self.control.update(passages_done=0, passages_total=0, force=True)
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
