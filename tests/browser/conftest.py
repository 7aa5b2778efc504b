"""Fixtures for the browser tests: the real app served through the CLI, an Ollama stand-in, and Chromium.

The app is started once per module (the embedding model takes seconds to load) as `archivist ui DOCS`,
in its own process group so that teardown stops Streamlit and everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Request, sync_playwright

from rag.offline import OFFLINE_ENVIRONMENT
from tests.ollama_standin import OllamaStandIn, free_port
from tests.pdf_factory import text_pdf

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu",
                 "--no-first-run", "--disable-sync"]
STARTUP_TIMEOUT_S = 120.0
FACT = "The Zorblax reactor runs at 42 kelvin."
PDF_FACT = "The Quibble pump moves 300 litres of brine an hour."
DOCUMENT = f"""\
{FACT} Its coolant is liquid helium, recycled every night.

The reactor was commissioned in 1999 by the Zorblax Institute and has been refuelled twice since.
"""


@pytest.fixture(scope="module")
def standin() -> Iterator[OllamaStandIn]:
    """Ollama's stand-in, streaming slowly enough that the page visibly streams."""
    with OllamaStandIn(chunk_delay_s=0.02) as server:
        yield server


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "zorblax-reactor.md").write_text(DOCUMENT, encoding="utf-8")
    (folder / "pump-manual.pdf").write_bytes(text_pdf([["Maintenance of the Quibble pump."],
                                                      [PDF_FACT, "Check the seals every spring."]]))
    return folder


@pytest.fixture(scope="module")
def app_url(standin: OllamaStandIn, docs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`archivist ui DOCS` on a free port, until its health check answers; stopped with its process group."""
    with running_app(docs_dir, tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("logs") / "app.log",
                     standin.url) as url:
        yield url


@contextmanager
def running_app(docs_dir: Path, data_dir: Path, log_path: Path, ollama_url: str) -> Iterator[str]:
    """`archivist ui DOCS` on a free port, from when its health check answers until the block ends; then
    stopped with its process group, and its log checked for tracebacks."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARCHIVIST_")}
    env.update(OFFLINE_ENVIRONMENT, OLLAMA_HOST=ollama_url)
    command = [sys.executable, "-m", "ui.cli", "ui", str(docs_dir), "--port", str(port), "--data-dir", str(data_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, process, log_path)
        yield url
    finally:
        _stop_group(process)
    # Errors the page swallowed or a failed shutdown (the atexit hook) show up only in the log.
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.25)
    pytest.fail(f"the app did not answer within {STARTUP_TIMEOUT_S:.0f} s:\n{log_path.read_text(errors='replace')}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    # SIGTERM first: Streamlit then exits normally and the app's atexit hook releases the index.
    for signum, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (`make dev` installs it)")
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (a new Streamlit session) with a window tall enough to show a whole answer."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    tab = context.new_page()
    yield tab
    context.close()


# Reports every CSP violation the page sees, including those inside frames, to the test (see `Watch`).
_VIOLATION_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.archivistViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} `
                            + `(${event.sourceFile}:${event.lineNumber})`);
}, true);
"""


class Watch:
    """What a browser context did that a page must never do: every request made (attempted: a request the
    CSP blocks never reaches the network but is reported as a violation), and every CSP violation, seen both
    by a `securitypolicyviolation` listener and in the console."""

    def __init__(self, context: BrowserContext) -> None:
        self.requests: list[str] = []
        self.violations: list[str] = []
        context.on("request", self._request)
        context.expose_binding("archivistViolation", lambda _source, text: self.violations.append(str(text)))
        context.add_init_script(_VIOLATION_LISTENER)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def page(self, page: Page) -> Page:
        """Also watch `page`'s console, where Chromium reports what its CSP refused."""
        page.on("console", self._console)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(f"console: {message.text}")

    def off_machine(self, local: frozenset[str] = frozenset({"127.0.0.1"})) -> list[str]:
        return [url for url in self.requests if urlsplit(url).scheme not in ("data", "blob", "about")
                and urlsplit(url).hostname not in local]

    def assert_clean(self) -> None:
        assert self.requests, "no request was recorded at all"
        assert not self.off_machine(), f"the page tried to reach other hosts: {self.off_machine()}"
        assert not self.violations, f"CSP violations: {self.violations}"


@pytest.fixture
def watched(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    """Like `page`, with its requests and CSP violations recorded from the start."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    watch = Watch(context)
    tab = watch.page(context.new_page())
    yield tab, watch
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
