"""The command line at its edges: permissions (met for real, with capabilities dropped), paths that are not
there, a reader that goes away, and file names and text that try to drive the terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import REPO, subprocess_env
from tests.unprivileged import unprivileged

pytestmark = pytest.mark.slow

OSC52 = "\x1b]52;c;aGVsbG8=\x07"  # would write "hello" to the clipboard of a terminal that obeys it


def run(args: Sequence[str], data_dir: Path, as_user: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ui.cli", *args, "--data-dir", str(data_dir)]
    return subprocess.run(unprivileged(command) if as_user else command, capture_output=True, text=True,
                          timeout=300, env=subprocess_env(), cwd=REPO, errors="surrogateescape")


def test_a_data_folder_that_is_not_writable_is_one_clear_line(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("Marmalade is made from Seville oranges.\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o555)
    result = run(["ingest", str(docs)], data_dir, as_user=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert f"The data folder {data_dir} is not writable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("Marmalade is made from Seville oranges.\n")
    result = run(["ingest", str(docs), str(tmp_path / "nowhere"), "--json"], tmp_path / "data")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["indexed"] == 1 and report["not_found"] == [str(tmp_path / "nowhere")]
    alone = run(["ingest", str(tmp_path / "nowhere")], tmp_path / "data")
    assert alone.returncode == 1 and "no such file or folder" in alone.stderr


def test_an_unreadable_folder_is_reported_and_what_it_held_stays_indexed(tmp_path: Path) -> None:
    docs, data_dir = tmp_path / "docs", tmp_path / "data"
    (docs / "private").mkdir(parents=True)
    (docs / "note.txt").write_text("Marmalade is made from Seville oranges.\n")
    (docs / "private" / "diary.txt").write_text("The quince tree flowered in April.\n")
    first = run(["ingest", str(docs), "--json"], data_dir, as_user=True)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["indexed"] == 2

    (docs / "private").chmod(0o000)
    try:
        again = run(["ingest", str(docs), "--json"], data_dir, as_user=True)
    finally:
        (docs / "private").chmod(0o755)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert {"path": str(docs / "private"), "error": "cannot open folder: permission denied"} in report["failed"]
    assert report["removed"] == 0  # the diary was indexed, and is still on disk: it is not lost
    hits = json.loads(run(["search", "quince tree", "--k", "1", "--json"], data_dir).stdout)
    assert Path(hits[0]["path"]).name == "diary.txt"


def test_status_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ui.cli", "status", "--data-dir", str(tmp_path / "data")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
                          cwd=REPO) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # `| head` that has read enough: the first write meets a closed pipe
        stderr = process.stderr.read().decode()
        process.wait(timeout=60)
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr


def test_escape_sequences_in_names_and_text_never_reach_the_terminal(tmp_path: Path) -> None:
    docs, data_dir = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    (docs / f"evil{OSC52}.txt").write_text(f"Zebras are striped.{OSC52} They live in Africa.\n")
    (docs / f"empty{OSC52}.txt").write_text("")
    outputs = [run(["ingest", str(docs)], data_dir), run(["search", "zebras"], data_dir),
               run(["status"], data_dir)]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        for stream in (result.stdout, result.stderr):
            assert "\x1b" not in stream and "\x07" not in stream, stream
    assert "evil\\x1b]52" in outputs[1].stdout  # shown, harmlessly
