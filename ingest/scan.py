"""Which files under a folder are candidates for the index, and which are noise to ignore."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from pathlib import Path

# Editors' and office suites' temporary and lock files, and partial downloads: never documents.
IGNORED_NAME_PATTERNS = (
    "~$*",  # Microsoft Office lock files
    ".#*",  # Emacs lock files
    "#*#",  # Emacs auto-save
    "*.swp", "*.swo", "*.swx",  # Vim
    "*~",  # backup copies
    "*.tmp", "*.temp", "*.part", "*.crdownload", "*.download",
    "4913",  # Vim's write-permission probe file
)


def is_ignored_name(name: str) -> bool:
    return name.startswith(".") or any(fnmatch.fnmatchcase(name, pattern) for pattern in IGNORED_NAME_PATTERNS)


def is_ignored(path: Path, root: Path | None = None) -> bool:
    """Hidden anywhere below `root` (e.g. `.git/…`), or an editor's temporary or lock file."""
    parts = path.relative_to(root).parts if root is not None and path.is_relative_to(root) else (path.name,)
    return any(is_ignored_name(part) for part in parts)


def walk_files(
    root: Path, follow_symlinks: bool = False, on_error: Callable[[Path, OSError], None] | None = None
) -> Iterator[Path]:
    """Every candidate file under `root`, sorted, skipping hidden folders; symlinks only if asked.

    A folder that cannot be listed (permission denied, gone meanwhile) is passed to `on_error` with the
    error; without `on_error` it is skipped, as before. Either way the walk goes on with the rest."""
    seen_dirs: set[tuple[int, int]] = set()  # (device, inode): a symlink loop is visited once

    def report(error: OSError) -> None:
        if on_error is not None:
            on_error(Path(error.filename) if error.filename is not None else root, error)

    for folder, dirnames, filenames in os.walk(root, onerror=report, followlinks=follow_symlinks):
        if follow_symlinks:
            try:
                info = os.stat(folder)
            except OSError as error:
                report(error)
                dirnames[:] = []
                continue
            if (info.st_dev, info.st_ino) in seen_dirs:
                dirnames[:] = []
                continue
            seen_dirs.add((info.st_dev, info.st_ino))
        dirnames[:] = sorted(name for name in dirnames if not is_ignored_name(name))
        for name in sorted(filenames):
            if is_ignored_name(name):
                continue
            path = Path(folder) / name
            if not follow_symlinks and path.is_symlink():
                continue
            yield path
