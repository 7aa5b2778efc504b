"""The calculation sandbox for real: CPython for WASI in wasmtime, in its worker process (rag/tools/sandbox.py).

Every refusal is checked by its effect on the host: nothing arrives at a listening server, a secret written
here never comes back, a marker file a command would create is not created, the test process and the next
run are fine. The compiled module is cached in the user's cache folder like the int8 embedding model (the
first run on a machine compiles it: 10-20 s); test_compiled_module_is_cached uses a fresh folder.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.tools.calculator import Calculation
from rag.tools.sandbox import Limits, SandboxCalculator, default_cache_dir

LIMITS = Limits(cpu_seconds=1.0, memory_mb=96, output_chars=500)


@pytest.fixture(scope="module")
def calculator() -> Iterator[SandboxCalculator]:
    calculator = SandboxCalculator(LIMITS, cache_dir=default_cache_dir())
    calculator.start()
    yield calculator
    calculator.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _works(calculator: SandboxCalculator) -> None:
    """The next run after a refusal or a limit is a normal one."""
    result = calculator.run("print(6 * 7)")
    assert (result.output, result.error, result.truncated) == ("42\n", "", False)


# ----- what a calculation is for -----
def test_printed_arithmetic_comes_back(calculator: SandboxCalculator) -> None:
    result = calculator.run("print((4350-3975)/3975)")
    assert result.ok and not result.truncated
    assert result.output == f"{(4350 - 3975) / 3975}\n"
    assert isinstance(result.seconds, float)  # recorded (how long is bench/sandbox.py's business)


def test_statements_loops_and_functions(calculator: SandboxCalculator) -> None:
    code = (
        "revenue = {2022: 3975, 2023: 4350}\n"
        "def growth(a, b):\n"
        "    return (b - a) / a\n"
        "total = 0\n"
        "for year in sorted(revenue):\n"
        "    total += revenue[year]\n"
        "i = 0\n"
        "while i < 3:\n"
        "    i += 1\n"
        "if total > 8000:\n"
        "    print(f'{growth(revenue[2022], revenue[2023]):.1%}', total, i, [y for y in revenue if y > 2022])\n"
    )
    result = calculator.run(code)
    assert (result.output, result.error) == ("9.4% 8325 3 [2023]\n", "")


def test_math_statistics_decimal_fractions(calculator: SandboxCalculator) -> None:
    code = (
        "import math, statistics, decimal, fractions\n"
        "print(math.sqrt(2), statistics.median([3, 1, 2]), decimal.Decimal('0.1') + decimal.Decimal('0.2'),\n"
        "      fractions.Fraction(1, 3) + fractions.Fraction(1, 6))"
    )
    result = calculator.run(code)
    assert result.ok, result.error
    assert result.output == f"{2 ** 0.5} 2 0.3 1/2\n"


def test_a_last_expression_is_shown_as_in_a_notebook(calculator: SandboxCalculator) -> None:
    assert calculator.run("x = 1577\nx * 2").output == "3154\n"
    assert calculator.run("print('once')").output == "once\n"  # print's None is not echoed


def test_an_error_comes_back_as_the_traceback_last_line_with_what_was_printed(calculator: SandboxCalculator) -> None:
    result = calculator.run("print('before')\nx = 1\nx / 0")
    assert result.output == "before\n"
    assert result.error == "ZeroDivisionError: division by zero (line 3)"
    assert calculator.run("print((1, 2)").error == "SyntaxError: '(' was never closed (line 1)"


# ----- what it must not reach -----
@pytest.mark.parametrize(
    "code",
    [
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\ns.connect(('127.0.0.1', PORT))\n"
        "s.sendall(b'leak')",
        "import socket\nsocket.create_connection(('127.0.0.1', PORT)).sendall(b'leak')",
        "import urllib.request\nprint(urllib.request.urlopen('http://127.0.0.1:PORT/').read())",
        "import http.client\nc = http.client.HTTPConnection('127.0.0.1', PORT)\nc.request('GET', '/')",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'leak', ('127.0.0.1', PORT))",
    ],
    ids=["socket.connect", "create_connection", "urllib", "http.client", "udp"],
)
def test_no_network(calculator: SandboxCalculator, code: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        port = server.getsockname()[1]
        udp.bind(("127.0.0.1", port))  # the same port number over UDP: a datagram would wait here
        result = calculator.run(code.replace("PORT", str(port)))
        assert not result.ok
        pending, _, _ = select.select([server, udp], [], [], 0.2)
        assert pending == [], "something reached the server"
    _works(calculator)


@pytest.mark.parametrize(
    "code",
    [
        "print(open(SECRET).read())",
        "import pathlib\nprint(pathlib.Path(SECRET).read_text())",
        "import io\nprint(io.FileIO(SECRET).read())",
        "import os\nprint(os.listdir(FOLDER))",
        "print(open('/usr/local/lib/../../..' + SECRET).read())",
        "import os\nfor root, folders, files in os.walk('/'):\n    print(root, files)",
        "import os\nprint(os.listdir('/'))",
        "print(open('/etc/passwd').read(), open('/proc/self/environ').read())",
        "import os\nos.chdir(FOLDER)\nprint(open('secret.txt').read())",
    ],
    ids=["open", "pathlib", "FileIO", "listdir", "dotdot-from-stdlib", "walk", "listdir-root", "system-files", "chdir"],
)
def test_no_host_files(calculator: SandboxCalculator, tmp_path: Path, code: str) -> None:
    secret = "the-secret-" + os.urandom(8).hex()
    (tmp_path / "secret.txt").write_text(secret)
    code = code.replace("SECRET", repr(str(tmp_path / "secret.txt"))).replace("FOLDER", repr(str(tmp_path)))
    result = calculator.run(code)
    assert secret not in result.output and secret not in result.error
    assert "secret.txt" not in result.output and "root:" not in result.output
    if "walk" not in code:  # os.walk swallows the errors and lists nothing
        assert not result.ok
    _works(calculator)


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.system('touch MARKER')",
        "import subprocess\nsubprocess.run(['touch', MARKER])",
        "import os\nos.execv('/usr/bin/touch', ['touch', MARKER])",
        "import os\nos.posix_spawn('/usr/bin/touch', ['touch', MARKER], {})",
        "import ctypes\nctypes.CDLL(None).system(b'touch ' + MARKER.encode())",
        "open(MARKER, 'w').write('x')",
        "open('/usr/local/lib/marker', 'w').write('x')",
        "import os\nos.kill(os.getppid(), 9)",
    ],
    ids=["os.system", "subprocess", "execv", "posix_spawn", "ctypes", "write-file", "write-stdlib-folder", "kill"],
)
def test_no_processes_and_no_writes(calculator: SandboxCalculator, tmp_path: Path, code: str) -> None:
    marker = tmp_path / "marker"
    result = calculator.run(code.replace("MARKER", repr(str(marker))))
    assert not result.ok
    assert not marker.exists()
    assert not (calculator.runtime.stdlib_zip.parent / "marker").exists()
    _works(calculator)


def test_no_environment_reaches_the_guest_or_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_OPENAI_API_KEY", "sk-do-not-leak")
    calculator = SandboxCalculator(LIMITS, cache_dir=default_cache_dir())
    try:
        assert calculator.run("import os\nprint(dict(os.environ))").output == "{}\n"
        assert calculator.pid is not None
        assert b"sk-do-not-leak" not in Path(f"/proc/{calculator.pid}/environ").read_bytes()
    finally:
        calculator.close()


# ----- the limits -----
@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass",
        "print('started')\nn = 0\nwhile True:\n    n += 1",
        "print(sum(range(10 ** 15)))",  # a loop inside CPython's C code, compiled to WebAssembly too
        "import re\nre.match('(a*)*b', 'a' * 64)",
    ],
    ids=["pass-loop", "counting-loop", "builtin-sum", "regex-backtracking"],
)
def test_an_endless_computation_is_stopped_by_the_cpu_limit(calculator: SandboxCalculator, code: str) -> None:
    result = calculator.run(code)
    assert result.error == "CPU time limit (1 s) reached"
    if "started" in code:
        assert result.output == "started\n"  # printed lines are not lost in a buffer
    _works(calculator)


@pytest.mark.parametrize(
    "code",
    [
        "x = []\nwhile True:\n    x.append(' ' * 10 ** 6)",
        "x = bytearray(2 ** 31 - 1)",  # the guest is 32-bit: 2 ** 31 would be an OverflowError, not memory
        "x = ' ' * (2 ** 31 - 1)",
        "x = [0] * 10 ** 8",
        "x = [[0] * 10 ** 5 for _ in range(10 ** 4)]",
    ],
    ids=["growing-list", "bytearray", "string", "list", "nested-lists"],
)
def test_a_memory_bomb_is_stopped_by_the_memory_limit(calculator: SandboxCalculator, code: str) -> None:
    before = _rss_mb()
    result = calculator.run(code)
    assert result.error == "memory limit (96 MB) reached"
    assert _rss_mb() < before + 50  # the test process did not pay for it
    assert calculator.pid is not None
    status = Path(f"/proc/{calculator.pid}/status").read_text()
    worker_peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
    assert worker_peak_mb < LIMITS.memory_mb + 200  # the worker's high-water mark: the guest's memory, bounded
    _works(calculator)


def test_stopped_runs_do_not_pile_up_in_the_worker(calculator: SandboxCalculator) -> None:
    """Each stopped run's memory is released before the next (a trap's traceback once kept it alive)."""
    for _ in range(5):  # each holds 80 MB when the CPU limit stops it
        assert calculator.run("x = ' ' * (80 * 10 ** 6)\nwhile True:\n    pass").error.startswith("CPU time limit")
    assert calculator.pid is not None
    status = Path(f"/proc/{calculator.pid}/status").read_text()
    assert int(status.split("VmRSS:")[1].split()[0]) / 1024 < 100  # back to the idle worker's size
    _works(calculator)


@pytest.mark.parametrize(
    "code",
    ["while True:\n    print('x' * 100)", "print('é' * 10 ** 6)", "import sys\nsys.stdout.write('y' * 10 ** 7)"],
    ids=["print-loop", "one-long-line", "write-without-newline"],
)
def test_a_flood_of_output_is_cut(calculator: SandboxCalculator, code: str) -> None:
    before = _rss_mb()
    result = calculator.run(code)
    assert result.truncated
    assert len(result.output) == LIMITS.output_chars
    assert result.error.startswith("output cut at 500 characters")
    assert _rss_mb() < before + 50
    _works(calculator)


def test_a_flood_on_stderr_is_dropped_and_stopped(calculator: SandboxCalculator) -> None:
    result = calculator.run("import sys\nwhile True:\n    sys.stderr.write('z' * 10000)")
    assert result.error == "CPU time limit (1 s) reached"
    assert result.output == ""
    _works(calculator)


def test_a_recursion_is_stopped(calculator: SandboxCalculator) -> None:
    assert calculator.run("def f(n):\n    return f(n + 1)\nf(0)").error.startswith("RecursionError")
    deep = calculator.run("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1)\nf(0)")
    assert not deep.ok  # Python frames live on the heap: the CPU or the memory limit
    nested = "import sys\nsys.setrecursionlimit(10 ** 6)\nx = []\nfor _ in range(10 ** 5):\n    x = [x]\nrepr(x)"
    assert calculator.run(nested).error == "stack limit reached: the recursion is too deep"  # C recursion: a trap
    _works(calculator)


def test_state_does_not_carry_from_one_run_to_the_next(calculator: SandboxCalculator) -> None:
    first = calculator.run(
        "import math, sys\nsecret_total = 1577\nmath.marker = 'left behind'\nsys.modules['leftover'] = math\n"
        "import builtins\nbuiltins.print = lambda *a, **k: None"
    )
    assert first.ok, first.error
    second = calculator.run(
        "import math, sys\nprint('secret_total' in globals(), hasattr(math, 'marker'), 'leftover' in sys.modules)"
    )
    assert second.output == "False False False\n"


@pytest.mark.slow
def test_code_that_waits_is_stopped_by_the_wall_clock(calculator: SandboxCalculator) -> None:
    """time.sleep uses no CPU: the parent kills the worker when the answer is late; a new one serves next."""
    started = calculator.started
    result = calculator.run("import time\nprint('going to sleep')\ntime.sleep(600)")
    assert result.error.startswith(f"time limit ({LIMITS.wall_seconds:g} s) reached")
    assert calculator.started == started  # the next run starts the new worker
    _works(calculator)
    assert calculator.started == started + 1


def test_a_crash_of_the_worker_is_a_failed_calculation_not_a_crash_of_the_app() -> None:
    calculator = SandboxCalculator(Limits(cpu_seconds=30, memory_mb=96, output_chars=500))
    try:
        calculator.start()
        pid = calculator.pid
        assert pid is not None
        results: list[Calculation] = []
        runner = threading.Thread(target=lambda: results.append(calculator.run("while True:\n    pass")))
        runner.start()
        time.sleep(1.0)  # well inside the run's 30 s of CPU
        os.kill(pid, signal.SIGKILL)  # as a crash inside wasmtime would end it
        runner.join(timeout=60)
        assert results and "ended unexpectedly (SIGKILL" in results[0].error
        _works(calculator)
    finally:
        calculator.close()


def test_the_worker_runs_under_process_limits(calculator: SandboxCalculator) -> None:
    assert calculator.pid is not None
    table = Path(f"/proc/{calculator.pid}/limits").read_text().splitlines()
    limits = {line[:26].strip(): line[26:].split()[:2] for line in table}
    assert limits["Max file size"] == ["0", "0"]  # it cannot write a byte to any file
    assert limits["Max core file size"] == ["0", "0"]
    data_soft = limits["Max data size"][0]
    assert data_soft != "unlimited" and int(data_soft) < (LIMITS.memory_mb + 1024) * 1024 * 1024


def test_concurrent_calculations_each_get_their_own_answer(calculator: SandboxCalculator) -> None:
    results: dict[int, Calculation] = {}

    def run(n: int) -> None:
        results[n] = calculator.run(f"print({n} * {n})")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {n: result.output for n, result in results.items()} == {n: f"{n * n}\n" for n in range(4)}


def test_the_test_process_is_fine_after_everything(calculator: SandboxCalculator) -> None:
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 * 1024  # kB: under 4 GB
    _works(calculator)


@pytest.mark.slow
def test_compiled_module_is_cached(tmp_path: Path) -> None:
    """First start compiles and writes the module atomically; the next loads it; a damaged copy is
    recompiled, never run; copies for other versions are removed."""
    (tmp_path / "python-3.11.1-0000-wasmtime1.0-epoch1-x86_64.cwasm").write_bytes(b"stale")
    first = SandboxCalculator(LIMITS, cache_dir=tmp_path)
    try:
        assert first.run("print(1)").output == "1\n"
        assert first.compiled
    finally:
        first.close()
    cached = sorted(path.name for path in tmp_path.glob("*.cwasm*"))
    assert len(cached) == 2 and cached[1] == cached[0] + ".sha256"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    module = tmp_path / cached[0]

    second = SandboxCalculator(LIMITS, cache_dir=tmp_path)
    try:
        assert second.run("print(2)").output == "2\n"
        assert not second.compiled
    finally:
        second.close()

    data = bytearray(module.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xcc" * 64  # as a disk or an edit might
    module.write_bytes(bytes(data))
    third = SandboxCalculator(LIMITS, cache_dir=tmp_path)
    try:
        assert third.run("print(3)").output == "3\n"
        assert third.compiled
    finally:
        third.close()


def test_prepare_compiles_ahead_and_checks_a_calculation(capsys: pytest.CaptureFixture[str]) -> None:
    from rag.tools.sandbox import main

    assert main(["prepare"]) == 0
    assert "compiled in" in capsys.readouterr().out
    assert main(["something-else"]) == 2


def test_an_idle_worker_leaves_and_the_next_calculation_starts_another() -> None:
    calculator = SandboxCalculator(LIMITS, cache_dir=default_cache_dir(), idle_exit_s=0.5)
    try:
        _works(calculator)
        first = calculator.pid
        assert first is not None
        deadline = time.monotonic() + 30
        while calculator.pid is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert calculator.pid is None  # it left on its own
        _works(calculator)
        assert calculator.started == 2
    finally:
        calculator.close()
