"""Shared fixtures: an isolated data folder for every test, the real embedding model loaded once,
the shared data folder (skipped with a reason when absent), and the Ollama stand-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import offline

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (as in CI); ARCHIVIST_SHARED_DATA points elsewhere, e.g. from a clone in /tmp.
SHARED_DATA = Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test ever touches the user's real index."""
    data_dir = tmp_path_factory.mktemp("archivist-data")
    monkeypatch.setenv("ARCHIVIST_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder is absent ({SHARED_DATA}); these tests read its real documents")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The packaged all-MiniLM-L6-v2, loaded once per test session (it takes seconds)."""
    from rag.embedder import SentenceTransformerEmbedder

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
