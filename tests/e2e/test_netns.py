"""Zero egress, proven: ingest, search, ask and the page all work in a network namespace that has only
loopback, and the egress guard of every Archivist process refused nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NEEDS_ROOT, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
FACT = "The Zorblax reactor runs at 42 kelvin."


def namespace_tools_missing() -> str | None:
    if os.geteuid() != 0:
        return f"{NEEDS_ROOT}: a network namespace (unshare --net) needs root here"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (util-linux, iproute2; `make dev` installs them)"
    return None


@pytest.mark.skipif(namespace_tools_missing() is not None, reason=str(namespace_tools_missing()))
def test_everything_works_with_only_loopback_and_nothing_tries_to_leave(tmp_path: Path) -> None:
    docs, data_dir, log = tmp_path / "docs", tmp_path / "data", tmp_path / "egress.log"
    docs.mkdir()
    (docs / "reactor.md").write_text(f"# Reactor\n\n{FACT} It was commissioned in 1999.\n", encoding="utf-8")
    env = subprocess_env(ARCHIVIST_EGRESS_LOG=str(log))
    env.pop("OLLAMA_HOST", None)
    command = ["unshare", "--net", "--", "sh", "-c",
               'ip link set lo up && exec "$0" -m tests.netns_session "$1" "$2"', sys.executable, str(docs),
               str(data_dir)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["outside"].startswith("OSError") or "unreachable" in report["outside"].lower(), report["outside"]
    for step in ("ingest", "search", "ask"):
        assert report[step]["code"] == 0, (step, report[step]["stderr"])
    assert FACT in json.loads(report["search"]["stdout"])[0]["text"]
    answer = json.loads(report["ask"]["stdout"])
    assert FACT in answer["answer"] and answer["citations"]
    page = report["page"]
    assert FACT in page["answer_text"]
    assert page["refused_caption"].strip().endswith("refused since start: 0")
    assert all(url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")) for url in page["requests"])
    assert report["chat_requests"] >= 2  # the CLI's question and the page's
    assert "Traceback" not in report["ui_log"]
    # The proof: not one connection off the machine was attempted by any Archivist process.
    assert not log.exists(), log.read_text()
