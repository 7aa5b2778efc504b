"""Questions before indexing: work a person is waiting for goes ahead of background work.

The page's server answers questions while its watcher indexes, and both need the one embedding model. The
model runs one batch at a time (each batch already uses every core), and a plain lock is not fair: the
indexer, embedding batch after batch, releases and takes it again before a waiting question's thread wakes,
so a question could wait for a whole folder (bench/load.py measured answers of over 80 s during indexing,
2-4 s otherwise). A thread that does background work says so once (`mark_background`, which also lowers its
CPU priority); a `PriorityLock` then lets any waiting foreground thread in before the next background holder,
so a question waits at most for the batch in hand.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_thread = threading.local()


def mark_background(niceness: int = 10) -> None:
    """This thread (and the threads it starts) does background work: lower priority, yields to questions.

    On Linux a thread's nice value is its own and new threads inherit it, so the page's server stays
    responsive while its indexing thread runs at low priority; elsewhere only the lock order applies."""
    _thread.background = True
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def is_background() -> bool:
    return bool(getattr(_thread, "background", False))


class PriorityLock:
    """A mutex whose background holders give way: while a foreground thread waits for it, no background
    thread may take it (a background thread that holds it finishes first). A thread may take it again
    while it holds it (a question's many batches are held as one)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._owner: int | None = None
        self._depth = 0
        self._foreground_waiting = 0

    @property
    def foreground_waiting(self) -> int:
        """How many foreground threads wait for the lock now."""
        with self._condition:
            return self._foreground_waiting

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        me = threading.get_ident()
        background = is_background()
        with self._condition:
            if self._owner != me:
                if not background:
                    self._foreground_waiting += 1
                try:
                    while self._owner is not None or (background and self._foreground_waiting):
                        self._condition.wait()
                finally:
                    if not background:
                        self._foreground_waiting -= 1
                self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._condition:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._condition.notify_all()
