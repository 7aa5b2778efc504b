"""The page's service over its life: the "still indexing" notice, taking over the writer lock when another
process frees it, opening once per process, and a failure to open shown as a banner."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest.control import IndexingControl, Progress, indexing_notice
from ingest.watch import Watcher
from rag.answer.ask import Answer, Finished
from rag.answer.prompt import NOT_IN_DOCUMENTS
from rag.errors import ArchivistError
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.index.lock import WriterLock
from rag.settings import Settings, load_settings
from tests.conftest import subprocess_env
from tests.fakes import HashingEmbedder, InMemoryVectorStore, ScriptedChat
from tests.unit.test_watch_lifecycle import BlockedIngester
from ui import bootstrap
from ui.safe_markdown import safe
from ui.service import ArchivistService, read_only_note, take_writer_lock
from ui.settings_changes import save_changes

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "ui" / "app.py")


def fake_index(settings: Settings) -> Index:
    return Index(Catalog(settings.data_dir / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def answer_of(service: ArchivistService, question: str) -> Answer:
    finished = [event for event in service.ask(question) if isinstance(event, Finished)]
    return finished[-1].answer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", min_relevance=0.0)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("The Zorblax reactor runs at 42 kelvin.\n")
    (folder / "b.txt").write_text("The Quux valve opens at dawn.\n")
    return folder


# ----- the notice -----
def test_the_notice_counts_files_while_indexing() -> None:
    assert indexing_notice(Progress(state="indexing", total=2, done=1)) == (
        "Still indexing: 1 of 2 files; answers may change as the rest is read.")
    assert indexing_notice(Progress(state="idle", total=2, done=2)) is None
    assert indexing_notice(None) is None
    assert indexing_notice(None, starting=True) is not None  # the model is loading: no count yet


def test_an_answer_given_while_the_service_indexes_says_so(settings: Settings, docs: Path) -> None:
    lock = WriterLock(settings.data_dir).acquire()
    service = ArchivistService(settings, fake_index(settings), ScriptedChat(), [docs], lock=lock)
    try:
        # Not started: the first scan has not run, so nothing is indexed and the answer is "not found" ...
        assert service.watcher is not None
        service.watcher.ingester.control.update(state="indexing", total=2, done=1)
        answer = answer_of(service, "How cold does the Zorblax reactor run?")
        assert answer.answer == NOT_IN_DOCUMENTS
        # ... but it says why, first.
        assert answer.notices[0] == "Still indexing: 1 of 2 files; answers may change as the rest is read."
        service.start()
        assert service.wait_until_ready(30)
        assert not any(n.startswith("Still indexing") for n in answer_of(service, "Zorblax reactor").notices)
    finally:
        service.close()


def test_a_read_only_page_reports_the_other_process_indexing(settings: Settings) -> None:
    service = ArchivistService(settings, fake_index(settings), ScriptedChat())
    try:
        IndexingControl(settings.data_dir).update(state="indexing", total=5, done=2, force=True)  # our pid: alive
        assert answer_of(service, "anything").notices[0].startswith("Still indexing: 2 of 5 files")
        IndexingControl(settings.data_dir).update(state="idle", done=5, force=True)
        assert not answer_of(service, "anything").notices
    finally:
        service.close()


# ----- taking over the writer lock -----
HOLDER = """
import sys
from pathlib import Path
from rag.index.lock import WriterLock
lock = WriterLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_a_read_only_page_takes_over_indexing_when_the_other_process_stops(
    settings: Settings, docs: Path
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(settings.data_dir)], cwd=REPO,
                              env=subprocess_env(PYTHONPATH=str(REPO)), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock, _ = take_writer_lock(settings.data_dir)
        assert lock is None
        service = ArchivistService(settings, fake_index(settings), ScriptedChat(), [docs], lock=None,
                                   note=read_only_note(settings.data_dir), quiet_seconds=0.05)
        bootstrap.inject(service.start())
        try:
            status = service.status()
            assert status.note is not None and f"will take over indexing when pid {holder.pid} stops" in status.note
            assert status.documents == 0 and service.watcher is None
            page = AppTest.from_file(APP, default_timeout=60)
            page.run()
            assert any(f"pid {holder.pid} stops" in info.value for info in page.info)

            assert holder.stdin is not None
            holder.stdin.close()  # the other process exits, and the kernel frees its lock
            holder.wait(30)
            wait_for(lambda: service.status().indexed == 2, "the page indexed the folder")
            assert service.lock is not None and service.status().note is None
            page.run()
            assert not any("will take over" in info.value for info in page.info)
            # The lock is really ours now: a third process is refused.
            with pytest.raises(ArchivistError):
                WriterLock(settings.data_dir).acquire()
        finally:
            bootstrap.inject(None)
            service.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_page_with_nothing_to_watch_does_not_try_for_the_lock(settings: Settings) -> None:
    service = ArchivistService(settings, fake_index(settings), ScriptedChat()).start()
    try:
        assert service._take_over_thread is None
    finally:
        service.close()


# ----- one service per process, opened at server start; a failure is a banner -----
@pytest.fixture
def fresh_process_service() -> Iterator[None]:
    saved = bootstrap._process_service
    bootstrap._process_service = None
    yield
    if bootstrap._process_service is not None:
        bootstrap._process_service.close()
    bootstrap._process_service = saved


def test_the_process_service_is_opened_once_and_shared(
    fresh_process_service: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[ArchivistService] = []

    def fake_open(data_dir: Path | None, paths: object) -> ArchivistService:
        settings = load_settings(data_dir=data_dir)
        opened.append(ArchivistService(settings, fake_index(settings), ScriptedChat()))
        return opened[-1]

    monkeypatch.setattr(bootstrap, "open_service", fake_open)
    bootstrap.open_in_background(tmp_path / "data", []).join(30)
    assert len(opened) == 1
    assert bootstrap.process_service(tmp_path / "data", []) is opened[0]
    assert len(opened) == 1


def test_a_service_that_cannot_open_is_a_banner_on_the_page(
    fresh_process_service: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_open(data_dir: Path | None, paths: object) -> ArchivistService:
        raise ValueError("chunk_size must be positive")  # what a bad setting may raise deep inside

    monkeypatch.setattr(bootstrap, "open_service", broken_open)
    monkeypatch.setattr(sys, "argv", ["app.py", "--data-dir", str(tmp_path / "data")])
    page = AppTest.from_file(APP, default_timeout=60)
    page.run()
    assert not page.exception
    assert [error.value for error in page.error] == [safe("Archivist could not start: chunk_size must be positive")]


def test_a_bad_setting_is_a_banner_on_the_page(
    fresh_process_service: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVIST_NUM_CTX", "lots")
    monkeypatch.setattr(sys, "argv", ["app.py", "--data-dir", str(tmp_path / "data")])
    page = AppTest.from_file(APP, default_timeout=60)
    page.run()
    assert not page.exception
    assert len(page.error) == 1 and safe("num_ctx") in page.error[0].value
    # Fixed, the next run of the page opens it (a failure is not kept).
    monkeypatch.delenv("ARCHIVIST_NUM_CTX")
    page.run()
    assert not page.exception and not page.error


class ClosingChat(ScriptedChat):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_replaced_chat_client_and_the_services_own_are_closed(settings: Settings) -> None:
    made: list[ClosingChat] = []

    def make_chat(_: Settings) -> ClosingChat:
        made.append(ClosingChat())
        return made[-1]

    first = ClosingChat()
    service = ArchivistService(settings, fake_index(settings), first, make_chat=make_chat)
    save_changes(service, {"effort": "low"})
    assert first.closed and service.chat is made[0] and not made[0].closed
    service.close()
    assert made[0].closed


def test_the_server_entry_takes_the_app_options_after_the_separator() -> None:
    from ui.launch import streamlit_command
    from ui.server import app_arguments

    command = streamlit_command("127.0.0.1", 8501, Path("/data"), [Path("/docs")])
    assert command[1:3] == ["-m", "ui.server"]
    assert app_arguments(command[3:]) == ["--data-dir", "/data", "/docs"]
    assert os.path.basename(command[0]).startswith("python")


# ----- stop means stopped -----
class WatchfulIndex(Index):
    """Notes whether a watcher was still at work when the index was closed."""

    watcher: Watcher | None = None
    closed_under_a_running_watcher = False

    def close(self) -> None:
        if self.watcher is not None and self.watcher.running:
            self.closed_under_a_running_watcher = True
        super().close()


@pytest.mark.slow
def test_close_waits_for_the_watcher_before_closing_the_index(settings: Settings, docs: Path) -> None:
    index = WatchfulIndex(Catalog(settings.data_dir / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())
    ingester = BlockedIngester(index, settings)

    class Service(ArchivistService):
        def _new_watcher(self) -> Watcher | None:
            index.watcher = Watcher(ingester, self.roots)
            return index.watcher

    service = Service(settings, index, ScriptedChat(), [docs], lock=WriterLock(settings.data_dir).acquire())
    service.start()
    assert ingester.entered.wait(30)
    # The file in hand takes longer than any deadline the old close() allowed the watcher (10 s).
    opener = threading.Timer(12.0, ingester.gate.set)
    opener.start()
    try:
        service.close()
    finally:
        ingester.gate.set()
        opener.cancel()
    assert not index.closed_under_a_running_watcher
    assert index.watcher is not None and not index.watcher.running
