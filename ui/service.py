"""The background service behind the page: one index, one watcher and one LLM client per server process.

Every browser session of a Streamlit server shares the same service (the app creates it once, through
`st.cache_resource`), so the folders are watched and indexed once, however many tabs are open. This module
knows nothing of Streamlit, so it can be built and tested as plain Python.

Tests hand the page a service made of in-memory fakes with `inject(service)`; `current_service()` returns
that service, if any, before the app falls back to building the real one.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.pipeline import FileResult, Ingester, Outcome, absolute
from ingest.watch import Watcher
from rag.answer import AnswerEvent, ask
from rag.errors import ArchivistError, IndexLockedError
from rag.index import Index
from rag.llm import ChatModel
from rag.lock import WriterLock
from rag.prompt import Exchange
from rag.retrieve import Filters, Hit, search
from rag.settings import Effort, Settings, load_settings

logger = logging.getLogger(__name__)

MAX_RECENT_PROBLEMS = 20


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

    @property
    def documents(self) -> int:
        return self.indexed + self.failed + self.skipped


class ArchivistService:
    """Owns the index, the watcher of `roots` and the chat model; answers searches and questions."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        chat: ChatModel,
        roots: Sequence[Path] = (),
        lock: WriterLock | None = None,
        note: str | None = None,
        quiet_seconds: float = 0.5,
    ) -> None:
        self.settings = settings
        self.index = index
        self.chat = chat
        self.lock = lock
        self.note = note
        self.roots = tuple(absolute(root) for root in roots)
        self.recent_problems: deque[str] = deque(maxlen=MAX_RECENT_PROBLEMS)
        self.startup_error: str | None = None
        self._started = threading.Event()  # set once start-up (model load, watcher start) is over
        self._closed = False
        # Without the lock nobody may write, so there is nothing to watch: the index is read as it is.
        self.watcher: Watcher | None = None
        if self.roots and lock is not None:
            self.watcher = Watcher(Ingester(index, settings), self.roots, quiet_seconds, on_file=self._on_file)

    # ----- lifecycle -----
    def start(self) -> ArchivistService:
        """Load the embedding model and start the watcher, in the background: the page must not wait."""
        threading.Thread(target=self._start, name="archivist-startup", daemon=True).start()
        return self

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
        return self.watcher is None or self.watcher.ready.wait(timeout)

    def close(self) -> None:
        """Stop watching, close the index and let another process write. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.watcher is not None:
            self.watcher.stop()
        self.index.close()
        if self.lock is not None:
            self.lock.release()

    # ----- what the page asks -----
    @property
    def indexing(self) -> bool:
        if self.startup_error is not None:
            return False
        if not self._started.is_set():
            return self.watcher is not None
        return self.watcher is not None and not self.watcher.ready.is_set()

    def status(self) -> ServiceStatus:
        counts = self.index.catalog.status_counts()
        errors = [self.startup_error] if self.startup_error else []
        if self.watcher is not None and self.watcher.last_error:
            errors.append(self.watcher.last_error)
        errors.extend(self.recent_problems)
        return ServiceStatus(
            indexed=counts.get("indexed", 0),
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
            chunks=self.index.catalog.chunk_count(),
            indexing=self.indexing,
            pending=self.watcher.pending if self.watcher is not None else 0,
            roots=self.roots,
            note=self.note,
            errors=tuple(errors),
        )

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return search(self.index, query, k or self.settings.sources)

    def ask(
        self, question: str, effort: Effort | None = None, sources: int | None = None,
        history: Sequence[Exchange] = (), filters: Filters | None = None,
    ) -> Iterator[AnswerEvent]:
        """The answer as a stream of events (passages first); LLM failures raise LLMError mid-stream.
        `history`: the earlier questions and answers of this conversation, oldest first."""
        settings = self.settings
        if sources is not None and sources != settings.sources:
            settings = settings.model_copy(update={"sources": sources})
        return ask(question, self.index, self.chat, settings, effort, history=history, filters=filters)

    def _on_file(self, result: FileResult) -> None:
        if result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
            self.recent_problems.append(f"{result.outcome.value}: {Path(result.path).name}: {result.reason}")


def take_writer_lock(data_dir: Path) -> tuple[WriterLock | None, str | None]:
    """The data folder's writer lock, or None and a note naming its owner when another process holds it."""
    try:
        return WriterLock(data_dir).acquire(), None
    except IndexLockedError as error:
        # Another process writes; this page can still search and answer from what is indexed.
        logger.warning("%s", error)
        return None, f"Read-only: {error}"


def open_service(data_dir: Path | None, paths: Sequence[Path]) -> ArchivistService:
    """The real service: settings, the writer lock (when there is something to watch), index, Ollama."""
    from rag.factory import make_chat, open_default_index

    settings = load_settings(data_dir=data_dir)
    lock, note = take_writer_lock(settings.data_dir) if paths else (None, None)
    try:
        index = open_default_index(settings)
        service = ArchivistService(settings, index, make_chat(settings), paths, lock=lock, note=note)
    except BaseException:
        # The page retries on its next run: a lock kept here would make that retry read-only.
        if lock is not None:
            lock.release()
        raise
    # Streamlit stops its server on SIGTERM and Ctrl-C and then the interpreter exits: release everything.
    atexit.register(service.close)
    return service.start()


_injected: ArchivistService | None = None


def inject(service: ArchivistService | None) -> None:
    """Make the page use `service` instead of building the real one (tests); None undoes it."""
    global _injected
    _injected = service


def current_service() -> ArchivistService | None:
    """The injected service, if a test has set one."""
    return _injected
