"""A real Chroma server for tests: `chroma run` (from the chromadb wheel) on a free loopback port, telemetry
off, stopped with its whole process group afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import subprocess_env
from tests.ollama_standin import free_port

CHROMA = Path(sys.executable).with_name("chroma")
STARTUP_TIMEOUT_S = 60


@contextmanager
def running_chroma_server(folder: Path) -> Iterator[str]:
    """The server's URL while the block runs; its data in `folder`/data, its output in `folder`/server.log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=subprocess_env(ANONYMIZED_TELEMETRY="FALSE"),
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chroma run did not come up: {log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
