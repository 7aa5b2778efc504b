"""The library: which folders are watched (saved in the data folder), and what the documents table shows.

`FolderStore` keeps the watched folders in `folders.json`, so the page can add and remove them and the
next start watches the same ones. `check_folder` is the pure rule for what may be added; `forget_folder`
takes a removed folder's documents out of the index through the same delete path the pipeline uses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.control import IndexingControl
from ingest.parsers import kind_for
from ingest.pipeline import Ingester, IngestReport, absolute
from ingest.scan import walk_files
from rag.errors import FolderError
from rag.index.catalog import DocumentRow
from rag.index.index import Index

logger = logging.getLogger(__name__)

FOLDERS_FILE = "folders.json"


def check_folder(folder: Path, watched: Sequence[Path]) -> str | None:
    """Why `folder` (absolute) cannot join the `watched` folders, or None when it can. Pure: no disk.
    (A folder that contains watched folders may: it replaces them, see `FolderStore.add`.)"""
    for other in watched:
        if folder == other:
            return f"{folder} is already watched."
        if folder.is_relative_to(other):
            return f"{folder} is inside {other}, which is already watched."
    return None


def check_on_disk(folder: Path) -> str | None:
    """Why `folder` is not a readable folder, or None."""
    if not folder.exists():
        return f"{folder} does not exist."
    if not folder.is_dir():
        return f"{folder} is not a folder."
    if not os.access(folder, os.R_OK | os.X_OK):
        return f"{folder} cannot be read (permission denied)."
    return None


class FolderStore:
    """The watched folders of one data folder, kept in `folders.json` (written atomically)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / FOLDERS_FILE

    def folders(self) -> list[Path]:
        """The saved folders in the order they were added ([] when none are saved)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            # A damaged list must not stop the page: it starts with no folders and says so in the log.
            logger.warning("could not read the watched folders in %s: %s", self.path, error)
            return []
        folders = data.get("folders", []) if isinstance(data, dict) else []
        return [Path(folder) for folder in folders if isinstance(folder, str)]

    def add(self, folder: Path, create: bool = False) -> Path:
        """Save `folder` as watched and return it (absolute); FolderError says why it cannot be. Watched
        folders inside it are replaced by it.
        `create`: make a missing folder first (as `archivist watch` and `archivist ui PATH` always have)."""
        folder = absolute(folder.expanduser())
        saved = self.folders()
        # A folder holding watched folders takes their place: their documents lie under it anyway.
        inner = [other for other in saved if other != folder and other.is_relative_to(folder)]
        watched = [other for other in saved if other not in inner]
        problem = check_folder(folder, watched)
        if problem is None and create and not folder.exists():
            try:
                folder.mkdir(parents=True)
            except OSError as error:
                raise FolderError(f"{folder} could not be created: {error.strerror or error}") from None
        problem = check_on_disk(folder) or problem  # the most basic reason first
        if problem is not None:
            raise FolderError(problem)
        self._write([*watched, folder])
        return folder

    def remove(self, folder: Path) -> Path:
        """Stop saving `folder` as watched and return it; FolderError when it is not watched."""
        folder = absolute(folder.expanduser())
        watched = self.folders()
        if folder not in watched:
            raise FolderError(f"{folder} is not a watched folder.")
        self._write([other for other in watched if other != folder])
        return folder

    def _write(self, folders: Sequence[Path]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps({"folders": [str(f) for f in folders]}, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)  # readers see the old list or the new one, never half of one
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise


def forget_folder(index: Index, folder: Path) -> list[str]:
    """Remove every document under `folder` from the index (catalog rows, full-text rows, vectors)."""
    removed = []
    for document in index.catalog.documents(under=str(absolute(folder))):
        if index.remove_document(document.path):
            removed.append(document.path)
    return removed


@dataclass(frozen=True)
class DocumentInfo:
    """One row of the documents table."""

    path: str
    kind: str | None
    status: str  # indexed | failed | skipped | partial (a large file being written, or interrupted)
    pages: int
    chunks: int
    reason: str | None  # why it failed or was skipped
    size: int  # bytes, when last looked at
    modified_ns: int  # the file's mtime when last looked at (nanoseconds since the epoch)
    indexed_at: float  # when the catalog last wrote it (seconds since the epoch)
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def modified(self) -> float:
        """The mtime in seconds since the epoch."""
        return self.modified_ns / 1e9


def document_table(index: Index) -> list[DocumentInfo]:
    """Every document in the catalog, by path, with its chunk count."""
    catalog = index.catalog
    counts = catalog.chunk_counts()
    return [
        DocumentInfo(
            path=row.path, kind=row.kind, status=row.status, pages=row.page_count, chunks=int(counts.get(row.id, 0)),
            reason=row.error, size=row.size, modified_ns=row.mtime_ns, indexed_at=row.updated_at,
            warnings=row.warnings,
        )
        for row in catalog.documents()
    ]


# ----- checking the index against the disk -----
@dataclass(frozen=True)
class DiskFile:
    """What the file system says about one file."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class IndexCheck:
    """How the index differs from the disk. Duplicates are information, not a fault: nothing fixes them."""

    stale: tuple[str, ...] = ()  # changed on disk since it was indexed (or since it failed)
    missing: tuple[str, ...] = ()  # in the catalog, gone from the disk
    failed: tuple[FailedFile, ...] = ()  # tried and failed, unchanged since
    unindexed: tuple[str, ...] = ()  # a supported file in a watched folder the catalog does not know
    duplicates: tuple[tuple[str, ...], ...] = ()  # indexed paths sharing one content hash, one group each
    orphan_vectors: int = 0  # vectors whose chunk the catalog does not know
    missing_vectors: int = 0  # catalogued chunks without a vector
    # Watched folders that are not there (an unplugged drive?): their documents are not called missing, so
    # a repair does not throw away what comes back when the drive does.
    absent_folders: tuple[str, ...] = ()

    @property
    def problems(self) -> int:
        """How many things `repair_index` would fix."""
        return (len(self.stale) + len(self.missing) + len(self.failed) + len(self.unindexed)
                + self.orphan_vectors + self.missing_vectors)

    @property
    def ok(self) -> bool:
        return self.problems == 0


def compare_index(
    disk: Mapping[str, DiskFile],
    documents: Iterable[DocumentRow],
    chunk_ids: set[str],
    vector_ids: set[str],
    supported: Callable[[str], bool],
    absent_folders: Sequence[str] = (),
) -> IndexCheck:
    """The pure core of a check: the disk's files (the watched folders' candidates, plus every catalogued
    path still present) against the catalog's documents and the vector store's ids."""
    stale, missing, failed = [], [], []
    by_hash: dict[str, list[str]] = {}
    known = set()
    absent = tuple(folder.rstrip("/") + "/" for folder in absent_folders)
    for document in documents:
        known.add(document.path)
        on_disk = disk.get(document.path)
        if on_disk is None:
            if not document.path.startswith(absent):
                missing.append(document.path)
        elif (on_disk.size, on_disk.mtime_ns) != (document.size, document.mtime_ns) or document.status == "partial":
            stale.append(document.path)
        elif document.status == "failed":
            failed.append(FailedFile(document.path, document.error or "failed"))
        if document.status == "indexed" and document.content_hash:
            by_hash.setdefault(document.content_hash, []).append(document.path)
    unindexed = sorted(path for path in disk if path not in known and supported(path))
    duplicates = sorted(tuple(sorted(paths)) for paths in by_hash.values() if len(paths) > 1)
    return IndexCheck(
        stale=tuple(sorted(stale)), missing=tuple(sorted(missing)),
        failed=tuple(sorted(failed, key=lambda item: item.path)), unindexed=tuple(unindexed),
        duplicates=tuple(duplicates), orphan_vectors=len(vector_ids - chunk_ids),
        missing_vectors=len(chunk_ids - vector_ids), absent_folders=tuple(absent_folders),
    )


def disk_snapshot(roots: Iterable[Path], paths: Iterable[str], follow_symlinks: bool = False) -> dict[str, DiskFile]:
    """The candidate files under `roots` (as a scan sees them), plus whichever of `paths` still exist."""
    found: dict[str, DiskFile] = {}

    def look(path: Path) -> None:
        if not follow_symlinks and path.is_symlink():
            return  # as the pipeline treats it: gone
        try:
            info = path.stat()
        except OSError:
            return
        if stat.S_ISREG(info.st_mode):
            found[str(path)] = DiskFile(str(path), info.st_size, info.st_mtime_ns)

    for root in roots:
        if root.is_dir():
            for file in walk_files(root, follow_symlinks=follow_symlinks):
                look(file)
    for path in paths:
        if path not in found:
            look(Path(path))
    return found


def check_index(index: Index, roots: Sequence[Path], follow_symlinks: bool = False) -> IndexCheck:
    """Compare the index with the disk (reads only: safe beside the writer)."""
    documents = index.catalog.documents()
    disk = disk_snapshot(roots, (document.path for document in documents), follow_symlinks)
    return compare_index(disk, documents, index.catalog.all_chunk_ids(), index.vectors.ids(),
                         lambda path: kind_for(Path(path)) is not None,
                         absent_folders=[str(root) for root in roots if not root.is_dir()])


@dataclass
class IndexRepair:
    """What `repair_index` did."""

    report: IngestReport = field(default_factory=IngestReport)  # the stale, unindexed and failed files read
    removed: list[str] = field(default_factory=list)  # missing files taken out of the index
    orphan_vectors_removed: int = 0
    missing_vectors_restored: int = 0


class _Unpaused(IndexingControl):
    """The pause file does not hold back a repair the person asked for just now."""

    @property
    def paused(self) -> bool:
        return False


def repair_index(index: Index, check: IndexCheck, ingester: Ingester) -> IndexRepair:
    """Fix what `check` found: re-read stale and unindexed files, retry failed ones, remove missing ones, and
    make the vectors match the catalog. The caller holds the writer lock and has stopped the watcher."""
    repair = IndexRepair()
    ingester.control = _Unpaused(ingester.control.data_dir)
    for failed in check.failed:
        index.remove_document(failed.path)  # else an unchanged file's failure is only reported again
    paths = [*check.stale, *check.unindexed, *(failed.path for failed in check.failed)]
    if paths:
        repair.report = ingester.ingest_paths([Path(path) for path in dict.fromkeys(paths)])
    # Removals after reading, as a scan does: a moved file's new path finds its old document by content.
    for path in check.missing:
        if ingester.is_gone(Path(path)) and index.remove_document(path):
            repair.removed.append(path)
    reconciled = index.reconcile()
    repair.orphan_vectors_removed = reconciled.orphans_removed
    repair.missing_vectors_restored = reconciled.missing_restored
    return repair


def clear_index(index: Index, keep_embeddings: bool = False) -> None:
    """Empty the index: every document, chunk, full-text row and vector, and (unless `keep_embeddings`) the
    embedding and PDF page caches. The caller holds the writer lock and has stopped the watcher."""
    # The catalog first, in one transaction: a crash after it leaves only orphan vectors, which search never
    # shows and the next start's reconcile removes.
    chunks = index.catalog.all_chunk_hashes() if keep_embeddings else {}
    index.catalog.clear(keep_caches=keep_embeddings)
    # Kept embeddings: the vectors move from the store into the (bounded) cache before they are deleted.
    index.retire(chunks)
    leftover = sorted(index.vectors.ids())
    if leftover:
        index.vectors.delete(leftover)
