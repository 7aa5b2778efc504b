"""What the Library page changes on the shared service: the watched folders, and checking, repairing and
resetting the index.

Each change that writes runs inside `ArchivistService.rewatching()`: the writer lock taken (if this process
was only reading), the watcher stopped, the change made, a watcher started on the folders as they are now.
The rules and the index work themselves are ingest/library.py's; this module only applies them to the
service. It knows nothing of Streamlit (ui/library_page.py draws).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest import library
from ingest.library import DocumentInfo, IndexCheck, IndexRepair
from ingest.pipeline import Ingester, absolute
from rag.errors import FolderError
from ui.service import ArchivistService


@dataclass(frozen=True)
class WatchedFolder:
    """One row of the Library page's folder list."""

    path: Path
    present: bool  # False: gone (an unplugged drive?); its documents stay until it is removed
    documents: int


def folders(service: ArchivistService) -> list[WatchedFolder]:
    """The watched folders, with whether each is there and how many documents it holds."""
    return [
        WatchedFolder(folder, folder.is_dir(), len(service.index.catalog.documents(under=str(folder))))
        for folder in service.watched()
    ]


def add_folder(service: ArchivistService, folder: Path) -> Path:
    """Watch `folder` from now on and at every start: it is saved, scanned and watched; returns it absolute.
    Raises FolderError (not a folder, unreadable, already watched or inside a watched folder) or
    IndexLockedError (another process owns the index). A folder containing watched ones replaces them."""
    with service.one_change():
        folder = absolute(folder.expanduser())
        outer = [other for other in service.watched() if not other.is_relative_to(folder) or other == folder]
        problem = library.check_on_disk(folder) or library.check_folder(folder, outer)
        if problem:
            raise FolderError(problem)
        with service.rewatching():
            service.library.add(folder)
            service.roots = tuple(root for root in service.roots if not root.is_relative_to(folder))
        return folder


def remove_folder(service: ArchivistService, folder: Path) -> list[str]:
    """Stop watching `folder` and take its documents out of the index; returns their paths. Raises
    FolderError when it is not watched, IndexLockedError when another process owns the index."""
    with service.one_change():
        folder = absolute(folder.expanduser())
        if folder not in service.watched():
            raise FolderError(f"{folder} is not a watched folder.")
        with service.rewatching():
            if folder in service.library.folders():
                service.library.remove(folder)
            service.roots = tuple(root for root in service.roots if root != folder)
            return library.forget_folder(service.index, folder)


def documents(service: ArchivistService) -> list[DocumentInfo]:
    """Every document in the index with its status, pages, chunks, failure reason, size and mtime."""
    return library.document_table(service.index)


def check_index(service: ArchivistService) -> IndexCheck:
    """Compare the index with the disk (reads only: works on a read-only page too)."""
    return library.check_index(service.index, service.watched(), service.settings.follow_symlinks)


def repair_index(service: ArchivistService, check: IndexCheck | None = None) -> IndexRepair:
    """Fix what a check found (a fresh check when none is given): re-read stale and unindexed files, retry
    failed ones, remove missing ones, reconcile the vectors. Runs now, even while indexing is paused; the
    watcher stops meanwhile and starts again after (with its usual scan)."""
    with service.rewatching():
        check = check or check_index(service)
        return library.repair_index(service.index, check, Ingester(service.index, service.settings))


def reset_index(service: ArchivistService, keep_embeddings: bool = False) -> None:
    """Delete everything indexed (and the embedding cache, unless `keep_embeddings`), then index the
    watched folders afresh in the background. The page asks for confirmation first."""
    with service.rewatching():
        library.clear_index(service.index, keep_embeddings)
        service.recent_problems.clear()
