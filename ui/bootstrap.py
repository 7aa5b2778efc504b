"""Opening the process's one service: from the settings, the saved folders and `archivist ui PATH...`.

A server process has one service (ui/service.py), opened when the server starts (ui/server.py calls
`open_in_background`), not when the first browser connects: indexing must not wait for someone to open the
page. Every page session gets that same service (`process_service`, through ui/state.py).

Tests hand the page a service made of in-memory fakes with `inject(service)`; `current_service()` returns
that service, if any, before the app falls back to the process's real one.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from ingest.library import FolderStore
from ingest.pipeline import absolute
from rag.errors import ArchivistError, FolderError
from rag.settings import load_settings_with_sources
from ui.service import ArchivistService, read_only_note, take_writer_lock

logger = logging.getLogger(__name__)


def open_service(data_dir: Path | None, paths: Sequence[Path]) -> ArchivistService:
    """The real service: settings, the writer lock (when there is something to watch), index, Ollama.

    `paths` (from `archivist ui PATH...`) join the saved watched folders; the service watches all of them."""
    from rag.factory import make_chat, open_default_index

    flags: dict[str, object] = {"data_dir": data_dir} if data_dir is not None else {}
    settings, _ = load_settings_with_sources(**flags)
    library = FolderStore(settings.data_dir)
    problems = []
    for path in paths:
        folder = absolute(path.expanduser())
        if any(folder.is_relative_to(saved) for saved in library.folders()):
            continue  # watched already
        try:
            library.add(folder, create=True)  # a missing folder is made, as `archivist watch` always has
        except FolderError as error:
            problems.append(str(error))
    saved = library.folders()
    roots = [folder for folder in saved if folder.is_dir()]
    lock, note = take_writer_lock(settings.data_dir) if roots else (None, None)
    if roots and lock is None:
        note = read_only_note(settings.data_dir)
    try:
        index = open_default_index(settings)
        service = ArchivistService(settings, index, make_chat(settings), roots, lock=lock, note=note,
                                   flags=flags, make_chat=make_chat)
    except BaseException:
        # The page retries on its next run: a lock kept here would make that retry read-only.
        if lock is not None:
            lock.release()
        raise
    # Streamlit stops its server on SIGTERM and Ctrl-C and then the interpreter exits: release everything.
    atexit.register(service.close)
    service.recent_problems.extend(problems)
    service.recent_problems.extend(
        f"watched folder missing, not watched until it is back: {folder}" for folder in saved if not folder.is_dir()
    )
    return service.start()


# ----- the process's one service -----
_process_service: ArchivistService | None = None
_opening = threading.Lock()  # held while the service is being opened; a page waits on it


def process_service(data_dir: Path | None, paths: Sequence[Path]) -> ArchivistService:
    """The process's one service: the one opened (or still being opened) at server start, else opened now.

    Raises ArchivistError, with a message for a person, when it cannot be opened (a bad setting, an unwritable
    data folder); the next call tries again, so fixing the cause and reloading the page is enough."""
    global _process_service
    with _opening:
        if _process_service is None:
            try:
                _process_service = open_service(data_dir, paths)
            except ArchivistError:
                raise
            except Exception as error:  # shown on the page as a banner, not as a traceback
                logger.exception("opening the service failed")
                raise ArchivistError(f"Archivist could not start: {error}") from error
        return _process_service


def close_process_service() -> None:
    """Stop the process's service (its watcher first, after the file in hand) if one was opened; waits for
    one still being opened. Safe to call twice."""
    with _opening:
        service = _process_service
    if service is not None:
        service.close()


def open_in_background(data_dir: Path | None, paths: Sequence[Path]) -> threading.Thread:
    """Open the process's service now, in a thread, so indexing starts with the server; a page opened
    meanwhile waits for it. A failure is logged here and raised again to the page (see process_service)."""

    def run() -> None:
        try:
            process_service(data_dir, paths)
        except ArchivistError as error:
            logger.error("%s", error)

    thread = threading.Thread(target=run, name="archivist-open", daemon=True)
    thread.start()
    return thread


_injected: ArchivistService | None = None


def inject(service: ArchivistService | None) -> None:
    """Make the page use `service` instead of building the real one (tests); None undoes it."""
    global _injected
    _injected = service


def current_service() -> ArchivistService | None:
    """The injected service, if a test has set one."""
    return _injected
