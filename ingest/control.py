"""Steering indexing from outside the process that does it: pause and resume, and a progress board.

Both live as small files in the data folder, so any face (`archivist pause` in another terminal, the
page, `archivist status`) can see and steer the one process that owns the index, without a socket.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rag.index.priority import mark_background

PAUSE_FILE = "indexing.paused"
PROGRESS_FILE = "indexing.progress.json"


@dataclass
class Progress:
    """What the index owner is doing now; published for other processes to read."""

    state: str = "idle"  # idle | indexing | paused
    total: int = 0  # files in the current run
    done: int = 0
    current: str | None = None
    pending: int = 0  # changes the watcher has seen but not yet applied
    failed: int = 0
    # Within the file being written (a large file is written in parts): passages stored / its passages.
    passages_done: int = 0
    passages_total: int = 0
    pid: int = field(default_factory=os.getpid)
    updated_at: float = field(default_factory=time.time)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def passages_fraction(self) -> float | None:
        """How far the current file is written, or None when no file is being written in parts."""
        return self.passages_done / self.passages_total if self.passages_total else None


class IndexingControl:
    """Pause flag and progress board of one data folder."""

    def __init__(self, data_dir: Path, publish_every_s: float = 0.5) -> None:
        self.data_dir = data_dir
        self.progress = Progress()
        self._publish_every_s = publish_every_s
        self._published_at = 0.0
        self._lock = threading.Lock()

    # ----- pause and resume (any process) -----
    @property
    def paused(self) -> bool:
        return (self.data_dir / PAUSE_FILE).exists()

    def pause(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / PAUSE_FILE).write_text(json.dumps({"paused_at": time.time(), "by_pid": os.getpid()}))

    def resume(self) -> None:
        (self.data_dir / PAUSE_FILE).unlink(missing_ok=True)

    def wait_while_paused(self, *stopping: threading.Event, poll_s: float = 0.25) -> None:
        """Block between files while paused; returns at once when not paused or any `stopping` is set."""
        if not self.paused:
            return
        self.update(state="paused", force=True)
        while self.paused and not any(event.is_set() for event in stopping):
            time.sleep(poll_s)
        self.update(state="indexing" if self.progress.total > self.progress.done else "idle", force=True)

    # ----- progress (written by the owner, read by anyone) -----
    def update(self, force: bool = False, **changes: object) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self.progress, name, value)
            self.progress.updated_at = time.time()
            if force or self.progress.updated_at - self._published_at >= self._publish_every_s:
                self._publish()

    def _publish(self) -> None:
        path = self.data_dir / PROGRESS_FILE
        temporary = path.with_suffix(".tmp")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(asdict(self.progress)))
            os.replace(temporary, path)  # readers never see half a file
            self._published_at = self.progress.updated_at
        except OSError:
            pass  # progress is a courtesy: never fail indexing over it

    def clear(self) -> None:
        (self.data_dir / PROGRESS_FILE).unlink(missing_ok=True)


def read_progress(data_dir: Path) -> Progress | None:
    """The owner's last published progress, or None when no live process owns the index."""
    try:
        data = json.loads((data_dir / PROGRESS_FILE).read_text())
        known = {f.name for f in fields(Progress)}
        # A newer or older owner may publish fields this one does not know: read what is shared.
        progress = Progress(**{name: value for name, value in data.items() if name in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    try:
        os.kill(progress.pid, 0)
    except ProcessLookupError:
        return None  # left behind by a process that died
    except PermissionError:
        pass  # alive, another user's
    return progress


def indexing_notice(progress: Progress | None, starting: bool = False) -> str | None:
    """What an answer given now should say about indexing under way (None when there is nothing to say).

    `progress` is the indexing process's board (its own, or `read_progress` from another process);
    `starting`: indexing is known to be under way even if the board does not count files yet (the model
    is loading, or the scan is listing the folders)."""
    counting = progress is not None and progress.state in ("indexing", "paused") and progress.total > 0
    if counting and progress is not None and progress.done < progress.total:
        paused = " (paused)" if progress.state == "paused" else ""
        return (f"Still indexing{paused}: {progress.done:,} of {progress.total:,} files; answers may change "
                "as the rest is read.")
    if starting or (progress is not None and progress.state == "indexing"):
        return "Still indexing your documents; answers may change as the rest is read."
    return None


def lower_thread_priority(niceness: int = 10) -> None:
    """Let indexing yield the CPU to the person's own work, and the embedding model to questions (see
    rag.index.priority): called by the thread that indexes, before it starts."""
    mark_background(niceness)
