"""The command line's own behaviour, in process (the end-to-end tests run it as a subprocess)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ui.cli import build_parser, main
from ui.launch import streamlit_command


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("ingest", "search", "ask", "status", "watch", "ui"):
        assert command in out
    assert "ARCHIVIST_DATA_DIR" in out and "OLLAMA_HOST" in out


def test_status_of_an_empty_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json", "--data-dir", str(tmp_path / "new")]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["documents"] == {"indexed": 0, "failed": 0, "skipped": 0, "partial": 0} and status["chunks"] == 0


def test_a_bad_setting_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARCHIVIST_NUM_CTX", "12")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("archivist: Invalid settings: num_ctx") and len(err.strip().splitlines()) == 1


def test_ui_binds_to_loopback_without_telemetry_by_default(tmp_path: Path) -> None:
    args = build_parser().parse_args(["ui", str(tmp_path)])
    command = streamlit_command(args.host, args.port, tmp_path / "data", args.paths)
    flags = dict(itertools.pairwise(command))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8501"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--client.toolbarMode"] == "minimal"
    assert command[-1] == str(tmp_path)


@pytest.mark.parametrize("command", ["watch", "ui", "pause", "resume"])
def test_help_mentions_json_only_where_there_is_json(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--json" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["ingest", "search", "ask", "status", "doctor"])
def test_help_of_json_commands_says_what_json_does(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "exactly one JSON document" in capsys.readouterr().out


@pytest.mark.parametrize("k", ["0", "-1", "two"])
def test_a_passage_count_below_one_is_a_usage_error(k: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "anything", "--k", k])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--k" in err and ("at least 1" in err or "whole number" in err)


@pytest.mark.parametrize(("command", "word"), [("search", "query"), ("ask", "question")])
def test_an_empty_question_is_a_usage_error(command: str, word: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "   "])
    assert exit_info.value.code == 2
    assert f"the {word} is empty" in capsys.readouterr().err
