"""Under load: eight browser sessions ask questions while the page's watcher indexes a folder of 1,000 files
and another process polls `archivist status` every second. Nothing may fail, every citation must point at a
file that holds the quoted text, and afterwards the catalog and the vectors must agree (`archivist doctor`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Watch, running_app
from tests.conftest import REPO, subprocess_env
from tests.ollama_standin import OllamaStandIn
from tests.synthetic_library import SyntheticDocument, write_library

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FILES = 1000
SESSIONS = 8
QUESTIONS_PER_SESSION = 2
ASK_AFTER_INDEXED = 60  # start asking once this many files are in, while the rest are still being indexed
INDEXING_TIMEOUT_S = 1500.0
ANSWER_TIMEOUT_MS = 240_000
# What only a finished answer shows: its sources, the "nothing relevant" note, or the cut-short warning.
FINISHED = re.compile(r"^Sources$|Nothing in your documents came close|This answer was cut short")


def archivist(*args: str, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", *args, "--data-dir", str(data_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=subprocess_env())


class StatusPoller:
    """Another process's view: `archivist status --json` every second, every failure kept."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.failures: list[str] = []
        self.last: dict[str, object] = {}
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            result = archivist("status", "--json", data_dir=self.data_dir)
            self.polls += 1
            if result.returncode != 0 or "Traceback" in result.stderr:
                self.failures.append(f"exit {result.returncode}: {result.stderr[-2000:]}")
            else:
                self.last = json.loads(result.stdout)
            self._stop.wait(1.0)

    def indexed(self) -> int:
        documents = self.last.get("documents")
        return int(documents.get("indexed", 0)) if isinstance(documents, dict) else 0

    def __enter__(self) -> StatusPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(150)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SyntheticDocument]]:
    folder = tmp_path_factory.mktemp("library")
    return folder, write_library(folder, FILES)


@pytest.fixture(scope="module")
def standin() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as server:  # answers by quoting the first source's first sentence, citing it
        yield server


def ask(page: Page, question: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_enabled(timeout=ANSWER_TIMEOUT_MS)
    box.fill(question)
    box.press("Enter")


def asked(page: Page, question: str) -> None:
    """Make sure the question reached the page, sending it again if it did not: under this load a question
    submitted while the page was redrawing was once lost (its box emptied, no message drawn), as a person's
    would be, who would send it again. Noted on issue 12 for a closer look."""
    # The person's own messages only: the stand-in's reasoning repeats the question in the assistant's.
    sent = page.get_by_role("group", name="Chat message from user").filter(has_text=question)
    for _ in range(2):
        try:
            expect(sent).not_to_have_count(0, timeout=60_000)
            return
        except AssertionError:
            ask(page, question)
    expect(sent).not_to_have_count(0, timeout=60_000)


# Each quoted supporting sentence of the last answer, with the full path shown in its source's box.
_CITED = """(message) => Array.from(message.querySelectorAll('blockquote')).map(quote => {
    let box = quote.parentElement;
    while (box && !box.innerText.includes(DOCS)) box = box.parentElement;
    const line = box ? box.innerText.split('\\n').find(text => text.startsWith(DOCS)) : null;
    return [quote.innerText, line];
})"""


def citations(page: Page, turn: int, docs: Path) -> list[tuple[str, str | None]]:
    message = page.get_by_test_id("stChatMessage").nth(2 * turn + 1)
    found = message.evaluate(_CITED.replace("DOCS", json.dumps(str(docs))))
    return [(str(quote), None if line is None else str(line)) for quote, line in found]


def normalised(text: str) -> str:
    return " ".join(text.replace("“", " ").replace("”", " ").split())


@pytest.mark.timeout(INDEXING_TIMEOUT_S + 300)  # a thousand files on two busy cores: longer than the usual 600 s
def test_eight_sessions_ask_while_a_thousand_files_are_indexed(
    browser: Browser, library: tuple[Path, list[SyntheticDocument]], standin: OllamaStandIn,
    tmp_path: Path, artifacts: Path,
) -> None:
    docs, documents = library
    data_dir = tmp_path / "data"
    # The watcher reads files in name order: ask about the first ones, which are in by the time questions come.
    first = sorted(documents, key=lambda item: item.name)[: SESSIONS * QUESTIONS_PER_SESSION]
    with running_app(docs, data_dir, tmp_path / "app.log", standin.url) as url, StatusPoller(data_dir) as poller:
        contexts = [browser.new_context(viewport={"width": 1280, "height": 1000}) for _ in range(SESSIONS)]
        watches = [Watch(context) for context in contexts]
        pages = [watch.page(context.new_page()) for watch, context in zip(watches, contexts, strict=True)]
        for page in pages:
            page.goto(url)
        deadline = time.monotonic() + INDEXING_TIMEOUT_S
        while poller.indexed() < ASK_AFTER_INDEXED and time.monotonic() < deadline:
            time.sleep(0.5)
        assert poller.indexed() >= ASK_AFTER_INDEXED, f"indexing never got going: {poller.last}"

        answered_during_indexing = 0
        for turn in range(QUESTIONS_PER_SESSION):
            for number, page in enumerate(pages):  # all eight ask at once
                ask(page, first[turn * SESSIONS + number].question)
            for number, page in enumerate(pages):
                asked(page, first[turn * SESSIONS + number].question)
            for page in pages:
                answer = page.get_by_test_id("stChatMessage").nth(2 * turn + 1)
                # Finished, not merely begun: a turn's bubble is drawn empty before anything streams (and shows
                # only the reasoning before the answer starts), so "no cursor" alone passed on a fast machine.
                finished = answer.get_by_text(FINISHED).or_(answer.get_by_test_id("stAlert"))
                expect(finished.first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
                expect(answer.get_by_text("▌", exact=False)).to_have_count(0, timeout=ANSWER_TIMEOUT_MS)
            if poller.indexed() < FILES:
                answered_during_indexing += 1
        pages[0].screenshot(path=str(artifacts / "load-session.png"), full_page=True, animations="disabled")

        checked = 0
        for page in pages:
            assert not page.get_by_test_id("stException").count(), "a session showed a traceback"
            alerts = page.get_by_test_id("stAlertContentError")
            assert not alerts.count(), alerts.all_inner_texts()
            for turn in range(QUESTIONS_PER_SESSION):
                for quote, path in citations(page, turn, docs):
                    assert path is not None, f"a cited quote without its file: {quote!r}"
                    assert normalised(quote) in normalised(Path(path).read_text(encoding="utf-8")), (quote, path)
                    checked += 1
        assert checked >= SESSIONS, f"only {checked} citations to check: the answers did not cite their files"
        for watch in watches:
            watch.assert_clean()
        for context in contexts:
            context.close()

        while poller.indexed() < FILES and time.monotonic() < deadline:
            time.sleep(1.0)
        assert poller.indexed() == FILES, poller.last
    assert not poller.failures, poller.failures[:3]
    assert poller.polls > 10

    doctor = archivist("doctor", "--json", data_dir=data_dir)
    findings = {item["check"]: item for item in json.loads(doctor.stdout)["findings"]}
    assert findings["index"]["level"] == "ok", findings["index"]
    assert answered_during_indexing >= 1, "every question came after indexing had finished: no load tested"
