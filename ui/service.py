"""The background service behind the page: one index, one watcher and one LLM client per server process.

Every browser session of a Streamlit server shares the same service, opened when the server starts
(ui/bootstrap.py, called from ui/server.py), so the folders are watched and indexed once, however many tabs
are open, and whether or not any is. This module knows nothing of Streamlit, so it can be built and tested
as plain Python. It holds the service's core: start-up, taking over the writer lock, the watcher, and what
the pages ask (status, search, answers). What the Library page changes (folders, repair, reset) is in
ui/library.py, what the Settings page changes in ui/settings_changes.py; both make their change inside
`ArchivistService.rewatching()` or `one_change()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingest.control import IndexingControl, Progress, indexing_notice, read_progress
from ingest.library import FolderStore
from ingest.pipeline import FileResult, Ingester, Outcome, absolute
from ingest.watch import Watcher
from rag.answer.ask import AnswerEvent, Finished, Mode, ask
from rag.answer.prompt import Exchange
from rag.errors import ArchivistError, IndexLockedError, LLMError
from rag.index.index import Index
from rag.index.lock import WriterLock
from rag.llm.chat import ChatModel
from rag.records import Effort, Filters, Hit
from rag.search.retrieve import close_lexical_pool, search
from rag.settings import Settings
from rag.tools.calculator import Calculator

logger = logging.getLogger(__name__)

MAX_RECENT_PROBLEMS = 20
LLM_CHECK_SECONDS = 10.0  # how long a check of the LLM server stands before the page asks again
TAKE_OVER_POLL_SECONDS = 1.0  # how often a read-only page tries for the writer lock


@dataclass(frozen=True)
class ServiceStatus:
    """What the page shows about the index: counts, whether indexing is running, and what went wrong."""

    indexed: int
    failed: int
    skipped: int
    chunks: int
    indexing: bool  # the first scan (or the model load before it) is still running
    pending: int  # changed files waiting for their quiet period
    roots: tuple[Path, ...]
    note: str | None = None  # e.g. why this process only reads the index
    errors: tuple[str, ...] = field(default_factory=tuple)
    paused: bool = False  # indexing is paused (by the page or `archivist pause`)

    @property
    def documents(self) -> int:
        return self.indexed + self.failed + self.skipped


class ArchivistService:
    """Owns the index, the watcher of `roots` and the chat model; answers searches and questions.

    Adding or removing folders, repairing and resetting need this process to hold the writer lock (taken on
    first need); they stop the watcher while they work, one at a time, and restart it on the new folders:
    each runs inside `rewatching()`."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        chat: ChatModel,
        roots: Sequence[Path] = (),
        lock: WriterLock | None = None,
        note: str | None = None,
        quiet_seconds: float = 0.5,
        flags: Mapping[str, object] | None = None,
        make_chat: Callable[[Settings], ChatModel] | None = None,
        calculator: Calculator | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.chat = chat
        self.lock = lock
        self.note = note
        self.roots = tuple(absolute(root) for root in roots)  # watched now (saved folders that exist)
        self.library = FolderStore(settings.data_dir)
        self.control = IndexingControl(settings.data_dir)
        # What the command line said, to reload the settings after the page saves some.
        self.flags = dict(flags) if flags is not None else {"data_dir": settings.data_dir}
        self._make_chat = make_chat  # rebuilds the chat model after the LLM settings change; None: keep it
        # Research mode's sandbox, one for every page session; made at the first research answer (its worker
        # process starts at the first calculation).
        self._calculator = calculator
        self._calculator_lock = threading.Lock()
        self.quiet_seconds = quiet_seconds
        self.recent_problems: deque[str] = deque(maxlen=MAX_RECENT_PROBLEMS)
        self._llm_check: tuple[float, ChatModel | None, str | None] = (float("-inf"), None, None)
        self.startup_error: str | None = None
        self._started = threading.Event()  # set once start-up (model load, watcher start) is over
        self._closed = False
        self._changing = threading.RLock()  # one change of folders, repair or reset at a time
        self._start_requested = False
        self._rewatching = threading.Event()  # set between stopping the watcher and starting the next one
        self._closing = threading.Event()  # ends the take-over poll (see _take_over)
        self._take_over_thread: threading.Thread | None = None
        # Without the lock nobody may write, so there is nothing to watch: the index is read as it is, until
        # the process that holds the lock stops (see _take_over).
        self.watcher: Watcher | None = self._new_watcher()

    def _new_watcher(self) -> Watcher | None:
        if not self.roots or self.lock is None:
            return None
        # A fresh Ingester each time: stopping a watcher leaves its Ingester stopped for good.
        return Watcher(Ingester(self.index, self.settings), self.roots, self.quiet_seconds, on_file=self._on_file)

    # ----- lifecycle -----
    def start(self) -> ArchivistService:
        """Load the embedding model and start the watcher, in the background: the page must not wait.
        Read-only for want of the lock, with folders to watch: take over indexing once the lock frees."""
        self._start_requested = True
        threading.Thread(target=self._start, name="archivist-startup", daemon=True).start()
        if self.lock is None and self.roots:
            self._take_over_thread = threading.Thread(target=self._take_over, name="archivist-take-over",
                                                      daemon=True)
            self._take_over_thread.start()
        return self

    def _take_over(self) -> None:
        """While another process holds the writer lock, try for it every TAKE_OVER_POLL_SECONDS; once it is
        ours, say so and start watching, as if this process had held it from the start."""
        while not self._closing.wait(TAKE_OVER_POLL_SECONDS):
            with self._changing:
                if self._closed:
                    return
                if self.lock is not None:
                    return  # taken meanwhile by a change of folders (see _take_writer)
                if not self.watched():
                    continue  # nothing to index: reading is enough
                try:
                    self.lock = WriterLock(self.settings.data_dir).acquire()
                except IndexLockedError:
                    if self.note is not None:
                        self.note = read_only_note(self.settings.data_dir)  # the holder may have changed
                    continue
                logger.info("the writer lock is free: this process indexes from now on")
                self.note = None
                self._started.wait()  # start-up (model load) first, so the embedder is loaded once
                self._rewatching.set()
                try:
                    self.index.refresh()  # the other process wrote: see its vectors before writing ours
                    self._start_watcher()
                except Exception as error:  # shown on the page rather than lost in a thread
                    logger.exception("taking over indexing failed")
                    self.recent_problems.append(f"could not start indexing: {error}")
                finally:
                    self._rewatching.clear()
                return

    def _start(self) -> None:
        try:
            # Loaded once here, before the watcher's thread and a first question could each load a copy.
            _ = self.index.embedder
            if self.watcher is not None and not self._closed:
                self.watcher.start()
        except ArchivistError as error:
            self.startup_error = str(error)
        except Exception as error:  # shown on the page rather than lost in a thread
            logger.exception("start-up failed")
            self.startup_error = f"Archivist could not start: {error}"
        finally:
            self._started.set()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until start-up and the first scan are done (for tests and scripts)."""
        if not self._started.wait(timeout):
            return False
        watcher = self.watcher  # read once: a change of folders may swap it meanwhile
        return watcher is None or watcher.ready.wait(timeout)

    def close(self) -> None:
        """Stop watching, close the index, the chat client and the thread pools, and let another process
        write. Safe to call twice. Waits for the watcher to finish the file in hand: the index is never
        closed under a worker that still writes."""
        self._closing.set()
        with self._changing:
            if self._closed:
                return
            self._closed = True
            if self.watcher is not None:
                self.watcher.stop()  # no deadline: returns once the worker has really ended
            self.index.close()
            close_lexical_pool()
            self.chat.close()
            if self._calculator is not None:
                self._calculator.close()
            if self.lock is not None:
                self.lock.release()

    # ----- changes: one at a time; those that write stop the watcher meanwhile -----
    @contextmanager
    def one_change(self) -> Iterator[None]:
        """Hold off every other change (of folders or settings, a repair, a reset, a take-over) meanwhile."""
        with self._changing:
            yield

    @contextmanager
    def rewatching(self) -> Iterator[None]:
        """Take the writer lock, stop the watcher, run the block, then start a watcher on the watched folders
        as they are then (with its scan first), whether or not the block succeeded. One change at a time.
        Raises IndexLockedError when another process owns the index, ArchivistError while shutting down."""
        with self._changing:
            self._take_writer()
            self._stop_watcher()
            try:
                yield
            finally:
                self._start_watcher()

    def _take_writer(self) -> None:
        """Hold the writer lock, taking it now if this process has only been reading."""
        if self._closed:
            raise ArchivistError("Archivist is shutting down.")
        if self.lock is not None:
            return
        lock, note = take_writer_lock(self.settings.data_dir)
        if lock is None:
            raise IndexLockedError((note or "Another process owns the index.").removeprefix("Read-only: "))
        self.lock, self.note = lock, None
        self.index.refresh()  # another process may have written until now

    def _stop_watcher(self) -> None:
        self._rewatching.set()  # the page shows "indexing" until the next watcher has scanned
        if self._start_requested:
            self._started.wait()  # start-up may be starting the watcher right now
        if self.watcher is not None:
            # No deadline: the next watcher (or a repair, a reset) must not write beside this one.
            self.watcher.stop()
            self.watcher = None

    def _start_watcher(self) -> None:
        """Watch the watched folders that exist (with a scan first); a missing one waits until it is back."""
        watched = self.watched()
        for folder in watched:
            if not folder.is_dir():
                self.recent_problems.append(f"watched folder missing, not watched until it is back: {folder}")
        self.roots = tuple(folder for folder in watched if folder.is_dir())
        try:
            self.watcher = self._new_watcher()
            if self.watcher is not None:
                self.watcher.start()
        finally:
            self._rewatching.clear()

    def watched(self) -> list[Path]:
        """The saved folders, plus any this service was given that are not saved (tests, older callers)."""
        saved = self.library.folders()
        return saved + [root for root in self.roots if not any(root.is_relative_to(folder) for folder in saved)]

    def use_settings(self, settings: Settings) -> None:
        """Work with `settings` from now on: a new chat model (when this service can build one) and, from the
        next file on, the watcher's indexing (e.g. new PDF passwords). Call inside `one_change()`."""
        self.settings = settings
        if self._make_chat is not None:
            replaced, self.chat = self.chat, self._make_chat(settings)
            replaced.close()  # once the answers still streaming from it have ended
        if self.watcher is not None:
            self.watcher.ingester.settings = settings

    # ----- pausing -----
    @property
    def paused(self) -> bool:
        return self.control.paused

    def pause_indexing(self) -> None:
        """Pause whichever process owns the index (this one or another): it finishes the file in hand."""
        self.control.pause()

    def resume_indexing(self) -> None:
        self.control.resume()

    def progress(self) -> Progress | None:
        """What this process's indexing is doing now, or None when it does not index."""
        watcher = self.watcher
        return watcher.ingester.control.progress if watcher is not None else None

    # ----- what the page asks -----
    def llm_problem(self) -> str | None:
        """Why the LLM cannot answer right now (server down, model missing), with the fix; None when it can.
        Asked at most every LLM_CHECK_SECONDS, so drawing the page does not wait on the server each time."""
        now = time.monotonic()
        checked_at, chat, problem = self._llm_check
        if chat is self.chat and now - checked_at < LLM_CHECK_SECONDS:
            return problem
        chat = self.chat
        try:
            chat.check()
            problem = None
        except LLMError as error:
            problem = str(error)
        self._llm_check = (now, chat, problem)
        return problem

    @property
    def indexing(self) -> bool:
        if self.startup_error is not None:
            return False
        if self._rewatching.is_set():
            return True
        if not self._started.is_set():
            return self.watcher is not None
        watcher = self.watcher  # read once: a change of folders may swap it meanwhile
        return watcher is not None and not watcher.ready.is_set()

    def status(self) -> ServiceStatus:
        counts = self.index.catalog.status_counts()
        errors = [self.startup_error] if self.startup_error else []
        watcher = self.watcher  # read once: a change of folders may swap it meanwhile
        if watcher is not None and watcher.last_error:
            errors.append(watcher.last_error)
        errors.extend(self.recent_problems)
        return ServiceStatus(
            indexed=counts.get("indexed", 0),
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
            chunks=self.index.catalog.chunk_count(),
            indexing=self.indexing,
            pending=watcher.pending if watcher is not None else 0,
            roots=self.roots,
            note=self.note,
            errors=tuple(errors),
            paused=self.control.paused,
        )

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return search(self.index, query, k or self.settings.sources, tuning=self.settings.retrieval)

    def ask(
        self, question: str, effort: Effort | None = None, sources: int | None = None,
        history: Sequence[Exchange] = (), filters: Filters | None = None, mode: Mode | None = None,
    ) -> Iterator[AnswerEvent]:
        """The answer as a stream of events (passages first); LLM failures raise LLMError mid-stream.
        `history`: the earlier questions and answers of this conversation, oldest first."""
        settings = self.settings
        if sources is not None and sources != settings.sources:
            settings = settings.model_copy(update={"sources": sources})
        events = ask(question, self.index, self.chat, settings, effort, history=history, filters=filters, mode=mode,
                     calculator=self.calculator())
        return self._with_indexing_notice(events)

    def calculator(self) -> Calculator:
        with self._calculator_lock:
            if self._calculator is None:
                from rag.factory import make_calculator

                self._calculator = make_calculator(self.settings)
            return self._calculator

    def _with_indexing_notice(self, events: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
        """The answer, noting when indexing was still under way as it finished: it may then say "not in your
        documents" about what is simply not indexed yet."""
        for event in events:
            if isinstance(event, Finished):
                notice = self.indexing_notice()
                if notice is not None:
                    event.answer.notices.insert(0, notice)
            yield event

    def indexing_notice(self) -> str | None:
        """"Still indexing: N of M files; answers may change" while this process (or, for a read-only page,
        the process that owns the index) indexes; None when the index is up to date."""
        if self.lock is None:
            return indexing_notice(read_progress(self.settings.data_dir))
        if not self.indexing:
            return None
        return indexing_notice(self.progress(), starting=True)

    def _on_file(self, result: FileResult) -> None:
        if result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
            self.recent_problems.append(f"{result.outcome.value}: {Path(result.path).name}: {result.reason}")


def read_only_note(data_dir: Path) -> str:
    """The page's note while another process holds the writer lock: who, and that this one takes over."""
    owner = WriterLock(data_dir).owner() or {}
    pid = owner.get("pid")
    who = f"pid {pid}" if pid is not None else "another process"
    command = f", `{owner['command']}`" if owner.get("command") else ""
    return (f"Read-only: another Archivist process ({who}{command}) is indexing this data folder. Answers use what "
            f"it has indexed; this page will take over indexing when {who} stops.")


def take_writer_lock(data_dir: Path) -> tuple[WriterLock | None, str | None]:
    """The data folder's writer lock, or None and a note naming its owner when another process holds it."""
    try:
        return WriterLock(data_dir).acquire(), None
    except IndexLockedError as error:
        # Another process writes; this page can still search and answer from what is indexed.
        logger.warning("%s", error)
        return None, f"Read-only: {error}"
