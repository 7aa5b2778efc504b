"""One writer per data folder: an advisory lock file that names the process holding it."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from rag.errors import DataFolderError, IndexLockedError


class WriterLock:
    """Held by the one process allowed to change the index; released when that process exits, even by
    SIGKILL, because the kernel drops flock locks with the file descriptor."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "writer.lock"
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise data_folder_error(self.path.parent, error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexLockedError(self._refusal()) from None
        owner = {"pid": os.getpid(), "command": " ".join(sys.argv), "since": time.time()}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(owner).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def owner(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _refusal(self) -> str:
        owner = self.owner() or {}
        who = f"pid {owner.get('pid', '?')}"
        if owner.get("command"):
            who += f", `{owner['command']}`"
        return (
            f"Another Archivist process ({who}) is already indexing the data folder {self.path.parent}. "
            "Only one may write at a time: stop it first, or use `archivist search`/`status`/`ask`, "
            "which work alongside it."
        )

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def data_folder_error(data_dir: Path, error: OSError) -> DataFolderError:
    """Why the data folder cannot be used, with what to do about it."""
    if isinstance(error, PermissionError):
        problem = "is not writable by you (permission denied)"
    elif isinstance(error, (FileExistsError, NotADirectoryError)):
        problem = "is not a folder (a file is in the way)"
    else:
        problem = f"cannot be used ({error.strerror or error})"
    return DataFolderError(
        f"The data folder {data_dir} {problem}. Choose another with --data-dir or ARCHIVIST_DATA_DIR, "
        "or fix its permissions."
    )
