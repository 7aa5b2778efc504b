"""`archivist ui DOCS` indexes DOCS from the moment the server starts, with no browser ever opening the page:
seen from outside, through `archivist status --json` in another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rag.offline import OFFLINE_ENVIRONMENT
from tests.browser.conftest import _stop_group, _wait_for_health
from tests.ollama_standin import free_port
from tests.synthetic_library import write_library

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INDEXING_TIMEOUT_S = 180.0  # the real model loads first (seconds; more on a busy machine)


@contextmanager
def serving(docs: Path, data: Path, log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """`archivist ui DOCS` from when its health check answers (no page session exists) until the block ends,
    with the environment it runs in; then stopped with its process group."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARCHIVIST_")}
    env.update(OFFLINE_ENVIRONMENT, OLLAMA_HOST=f"http://127.0.0.1:{free_port()}")
    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "ui", str(docs), "--port", str(port), "--data-dir", str(data)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_health(f"http://127.0.0.1:{port}", server, log_path)
        yield server, env
    finally:
        _stop_group(server)


def status(data: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """`archivist status --json` from another process; None when it could not answer."""
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli", "status", "--json", "--data-dir", str(data)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_the_server_indexes_its_folders_without_a_browser(tmp_path: Path) -> None:
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    (docs / "reactor.md").write_text("# Reactor\n\nThe Zorblax reactor runs at 42 kelvin.\n", encoding="utf-8")
    (docs / "valve.txt").write_text("The Quux valve opens at dawn and closes at dusk.\n", encoding="utf-8")
    log_path = tmp_path / "app.log"
    with serving(docs, data, log_path) as (server, env):
        deadline = time.monotonic() + INDEXING_TIMEOUT_S
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert server.poll() is None, log_path.read_text(errors="replace")
            last = status(data, env) or last
            if last and last["documents"] == {"indexed": 2, "failed": 0, "skipped": 0, "partial": 0}:
                break
            time.sleep(1.0)
        else:
            pytest.fail(f"not indexed without a browser; last status {last}\n{log_path.read_text(errors='replace')}")
        assert last["chunks"]
    assert "Traceback" not in log_path.read_text(errors="replace")


def test_stopping_the_server_mid_indexing_is_clean(tmp_path: Path) -> None:
    """Ctrl-C (SIGTERM here) while the watcher is indexing: the server stops after the file in hand, with no
    traceback. It once failed at exit: the interpreter shut the embedder's thread pools before the service was
    closed, under the running scan ("cannot schedule new futures after shutdown")."""
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    write_library(docs, 400)
    log_path = tmp_path / "app.log"
    with serving(docs, data, log_path) as (server, env):
        deadline = time.monotonic() + INDEXING_TIMEOUT_S
        indexed = 0
        while indexed == 0 and time.monotonic() < deadline:  # indexing under way: some files in, not all
            time.sleep(0.5)
            now = status(data, env)
            indexed = int(now["documents"]["indexed"]) if now else 0
        assert 0 < indexed < 400, f"indexing was not under way when stopped ({indexed} of 400)"
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log and "failed" not in log, log
