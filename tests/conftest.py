"""Shared fixtures: an isolated data folder for every test, the real embedding model loaded once,
the shared data folder (skipped with a reason when absent), and the Ollama stand-in; and the rule that a
test may skip only for a documented reason (DOCUMENTED_SKIPS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from rag import offline

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (as in CI); ARCHIVIST_SHARED_DATA points elsewhere, e.g. from a clone in /tmp.
SHARED_DATA = Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")

# The only reasons a test may skip: what a machine cannot change about itself. Everything else a test needs
# (Chromium, llama.cpp's server, setpriv, unshare, a complete ../shared) `make dev` installs or the checkout
# brings, so a skip for any other reason fails the run (pytest_sessionfinish below): a missing tool must
# not pass quietly as "all green". A skip's reason starts with one of these.
SHARED_DATA_ABSENT = "the shared data folder is absent"  # ../shared (or ARCHIVIST_SHARED_DATA) is not there
NEEDS_ROOT = "needs root"  # e.g. a network namespace (unshare --net), when not running as root
NOT_AS_ROOT = "cannot run as root"  # a test that means nothing with root's powers (none today: see unprivileged)
DOCUMENTED_SKIPS = (SHARED_DATA_ABSENT, NEEDS_ROOT, NOT_AS_ROOT)


class Closable(Protocol):
    def close(self) -> None: ...


ClosableT = TypeVar("ClosableT", bound=Closable)

_opened: list[Closable] = []


def closed_after_the_test(client: ClosableT) -> ClosableT:
    """Every client a test makes this way is closed after it: its pooled connections would otherwise be
    left open (an unclosed socket is an error in the tests)."""
    _opened.append(client)
    return client


@pytest.fixture(autouse=True)
def close_the_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test ever touches the user's real index."""
    data_dir = tmp_path_factory.mktemp("archivist-data")
    monkeypatch.setenv("ARCHIVIST_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA_ABSENT} ({SHARED_DATA}); these tests read its real documents")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The packaged all-MiniLM-L6-v2, loaded once per test session (it takes seconds)."""
    from rag.index.local_model import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def ollama() -> Iterator[object]:
    from tests.ollama_standin import OllamaStandIn

    with OllamaStandIn() as server:
        yield server


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one, offline, plus `extra`."""
    env = dict(os.environ)
    env.update(offline.OFFLINE_ENVIRONMENT)
    env.update(extra)
    return env


UNPRIVILEGED_RUN = "ARCHIVIST_TEST_UNPRIVILEGED"


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test marked `unprivileged` meets real permission checks: as root (sessions and CI), its body runs in
    a pytest of its own with every capability dropped (tests/unprivileged.py), and passes when that does."""
    if pyfuncitem.get_closest_marker("unprivileged") is None or os.geteuid() != 0 or os.environ.get(UNPRIVILEGED_RUN):
        return None
    import subprocess
    import sys

    from tests.unprivileged import unprivileged

    command = unprivileged([sys.executable, "-m", "pytest", pyfuncitem.nodeid, "-q", "-p", "no:cacheprovider"])
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={**os.environ, UNPRIVILEGED_RUN: "1"})
    assert result.returncode == 0, f"without root's capabilities:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert "1 passed" in result.stdout, result.stdout[-4000:]  # run, not skipped
    return True


_undocumented_skips: list[tuple[str, str]] = []  # (test id, reason), for this session


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped report gives (pytest keeps it as "Skipped: <reason>" in a (path, line, text))."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if not reason.startswith(DOCUMENTED_SKIPS):
            _undocumented_skips.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _undocumented_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _undocumented_skips:
        return
    terminalreporter.section("skips for undocumented reasons (these fail the run)", red=True)
    allowed = "; ".join(repr(reason) for reason in DOCUMENTED_SKIPS)
    terminalreporter.line(f"A test may skip only when {allowed} (tests/conftest.py, DOCUMENTED_SKIPS). "
                          "Install what is missing (`make dev`) and run again:")
    for nodeid, reason in _undocumented_skips:
        terminalreporter.line(f"  {nodeid}: {reason}", red=True)
