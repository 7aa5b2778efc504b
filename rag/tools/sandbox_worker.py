"""The sandbox's worker process: runs model-written Python in CPython compiled to WebAssembly (WASI).

Started by rag/tools/sandbox.py as `python -m rag.tools.sandbox_worker REQUEST` with a JSON request on the
command line (the runtime's files, the cache folder, the limits) and a pipe on stdin/stdout. It compiles the
CPython module once (or loads the compiled copy from the cache folder), then lowers its own limits, so that
nothing a calculation does can make this process write a file or take more memory than the limit plus
headroom, and serves one calculation at a time: each in a fresh wasmtime Store and instance (nothing carries
from one run to the next), with

- no network: WASI preview 1 has no way to open a socket, and the linker gives the module nothing else;
- no host files: the only preopened directory is the folder holding the standard library's zip, read-only,
  mapped at /usr/local/lib; no environment variables, no arguments but the code;
- CPU time: a watchdog thread reads this process's CPU clock and bumps wasmtime's epoch when the run has used
  its share; the compiled code checks the epoch at every loop head and function entry and traps;
- memory: the Store's limit on linear memory (CPython sees a failed allocation and raises MemoryError), and
  RLIMIT_DATA on this process as the backstop for anything wasmtime itself allocates;
- output: stdout and stderr come back through callbacks into memory, never to a file; once the printed text
  passes the limit, the run is stopped (the epoch again) and the rest is dropped.

The parent owns the wall clock: it kills this process when an answer does not come in time (a run blocked in
a host call, say `time.sleep`, uses no CPU and so never meets the CPU limit), and turns the report sent back
into a `Calculation` (rag/tools/sandbox.py: `calculation_from_report`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import resource
import select
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# The code runs inside this small program, given as `python -c PRELUDE CODE`: the code is read from argv (no
# quoting), printed lines reach the parent as they are printed (so what came before an endless loop is not
# lost in a buffer), and the value of a last bare expression is printed, as in a notebook (gpt-oss's python
# tool was trained on a Jupyter-like one). `_ast` is built in: `ast` would cost as much as starting CPython.
PRELUDE = """\
import sys as _s, _ast as _a
_s.stdout.reconfigure(line_buffering=True)
_t = compile(_s.argv.pop(), "<code>", "exec", _a.PyCF_ONLY_AST)
_e = _t.body.pop() if _t.body and isinstance(_t.body[-1], _a.Expr) else None
_g = {"__name__": "__main__"}
del _s
exec(compile(_t, "<code>", "exec"), _g)
if _e is not None:
    _v = eval(compile(_a.Expression(_e.value), "<code>", "eval"), _g)
    if _v is not None:
        print(repr(_v))
"""
GUEST_LIB = "/usr/local/lib"  # where CPython looks for python311.zip when it has no PYTHONHOME
STDERR_TAIL = 16 * 1024  # bytes of stderr kept: a traceback's end is what matters
DATA_HEADROOM = 192 * 1024 * 1024  # wasmtime's own allocations and this process's Python, above the guest's
WATCH_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Request:
    """What the parent asks of a new worker."""

    wasm: str
    stdlib_dir: str
    cache_dir: str
    memory_mb: int
    cpu_seconds: float
    output_chars: int
    idle_exit_s: float


# ----- the compiled module and its cache -----
def engine_config() -> Any:
    """The one wasmtime configuration the module is compiled for (the cache key includes it).

    Epoch interruption costs about a fifth of the CPU time of pure-Python loops (measured, bench/sandbox.py);
    fuel would cost more and count instructions, not seconds. The default memory reservation (4 GiB of
    address space, never touched) lets compiled code skip bounds checks: shrinking it to the memory limit
    made loops a fifth slower again, and RLIMIT_DATA does not count the untouched reservation.
    """
    from wasmtime import Config

    config = Config()
    config.epoch_interruption = True
    return config


CONFIG_TAG = "epoch1"  # change when engine_config changes: a module compiled for another config will not load


def cache_key(wasm: Path) -> str:
    """The compiled module's name: the wasm's digest, wasmtime's version, the config and the machine."""
    digest = hashlib.sha256(wasm.read_bytes()).hexdigest()[:16]
    version = metadata.version("wasmtime")
    machine = os.uname().machine
    return f"{wasm.stem}-{digest}-wasmtime{version}-{CONFIG_TAG}-{machine}.cwasm"


def load_module(engine: Any, wasm: Path, cache_dir: Path) -> tuple[Any, bool]:
    """The compiled module, from the cache when a good copy is there; (module, compiled now?).

    A serialized module is trusted machine code, so the copy is checked against the digest written beside it
    (a torn or altered file is recompiled, never run); it is written to a temporary name and renamed, so a
    reader never sees half a file; copies for other versions are removed when a new one is written.
    """
    from wasmtime import Module

    target = cache_dir / cache_key(wasm)
    check = target.with_name(target.name + ".sha256")
    try:
        if check.read_text().strip() == hashlib.sha256(target.read_bytes()).hexdigest():
            return Module.deserialize_file(engine, str(target)), False
    except (OSError, ValueError):
        pass
    except Exception:  # wasmtime refused the file (another engine build): compile afresh
        pass
    module = Module.from_file(engine, str(wasm))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        data = bytes(module.serialize())
        _write_atomically(check, hashlib.sha256(data).hexdigest() + "\n")
        _write_atomically(target, data)
        for old in cache_dir.glob(f"{wasm.stem}-*.cwasm*"):
            if old not in (target, check):
                old.unlink(missing_ok=True)
    except OSError as error:  # no cache: every start compiles, slower but correct
        print(f"archivist sandbox: cannot cache the compiled module in {cache_dir}: {error}", file=sys.stderr)
    return module, True


def _write_atomically(path: Path, content: bytes | str) -> None:
    data = content.encode() if isinstance(content, str) else content
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ----- one run -----
class _Capture:
    """One output stream, kept in memory: the head up to the limit (stdout) or the last bytes (stderr)."""

    def __init__(self, limit_chars: int | None, on_full: Any = None) -> None:
        self.limit_chars = limit_chars
        self.on_full = on_full
        self.data = bytearray()
        self.full = False

    def write(self, chunk: bytes) -> int:
        # Called by wasmtime from the guest's fd_write; it must not raise (wasmtime-py would print and fail
        # the write), and it claims every byte written, kept or not, so the guest never retries.
        try:
            if self.limit_chars is None:
                self.data += chunk
                del self.data[:-STDERR_TAIL]
            elif not self.full:
                self.data += chunk
                # Characters never outnumber bytes: decode only when the bytes alone pass the limit.
                if len(self.data) > self.limit_chars and len(self._text()) > self.limit_chars:
                    self.full = True
                    del self.data[4 * self.limit_chars + 4 :]
                    if self.on_full is not None:
                        self.on_full()
        except Exception:
            pass
        return len(chunk)

    def _text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Sandbox:
    """The compiled CPython and a way to run code in a fresh instance of it."""

    def __init__(self, request: Request) -> None:
        from wasmtime import Engine, Linker, WasiConfig

        if not hasattr(WasiConfig, "stdout_custom"):
            raise RuntimeError("wasmtime is too old for the sandbox (needs WasiConfig.stdout_custom, wasmtime 50)")
        self.request = request
        self.engine = Engine(engine_config())
        started = time.perf_counter()
        self.module, self.compiled = load_module(self.engine, Path(request.wasm), Path(request.cache_dir))
        self.load_seconds = time.perf_counter() - started
        self.linker = Linker(self.engine)
        self.linker.define_wasi()  # WASI preview 1 only: clocks, random, stdio, the preopened folder
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._cpu_deadline = 0.0
        self.cpu_stopped = False

    def run(self, code: str) -> dict[str, Any]:
        """Run `code` in a fresh instance; the facts of the run, for `calculation_from_report`."""
        from wasmtime import ExitTrap, Func, Memory, Store, Trap, WasiConfig

        memory_bytes = self.request.memory_mb * 1024 * 1024
        stdout = _Capture(self.request.output_chars, on_full=self.engine.increment_epoch)
        stderr = _Capture(None)
        wasi = WasiConfig()
        wasi.argv = ("python", "-I", "-S", "-c", PRELUDE, code)
        wasi.env = []
        wasi.stdout_custom = stdout.write
        wasi.stderr_custom = stderr.write
        wasi.preopen_dir(self.request.stdlib_dir, GUEST_LIB, False)  # read-only: fs_mutable=False
        store = Store(self.engine)
        store.set_wasi(wasi)
        store.set_limits(memory_size=memory_bytes)
        store.set_epoch_deadline(1)  # the next bump of the epoch ends the run
        exit_code: int | None = 0
        trap = ""
        memory_used = 0
        started = time.perf_counter()
        self.cpu_stopped = False
        self._cpu_deadline = time.process_time() + self.request.cpu_seconds
        self._running.set()
        watchdog = threading.Thread(target=self._watch, daemon=True)
        watchdog.start()
        instance = None
        try:
            instance = self.linker.instantiate(store, self.module)
            start = instance.exports(store)["_start"]
            if not isinstance(start, Func):
                raise TypeError("the sandbox's interpreter has no _start function")
            start(store)
        except ExitTrap as exited:
            exit_code = exited.code
        except Trap as stopped:  # the epoch (INTERRUPT), CPython's abort (UNREACHABLE), STACK_OVERFLOW, …
            exit_code = None
            trap = stopped.trap_code.name if stopped.trap_code is not None else stopped.message.split("\n", 1)[0]
        finally:
            self._running.clear()
            watchdog.join()
        if instance is not None:
            memory = instance.exports(store).get("memory")
            if isinstance(memory, Memory):
                memory_used = memory.data_len(store)
        # A trap's traceback holds this frame, and so the Store and the guest's whole memory, in a cycle: left
        # to the cyclic collector, a few stopped runs would pile up against this process's memory limit.
        del instance, store
        gc.collect()
        return {
            "stdout": stdout.data.decode("utf-8", errors="replace"),
            "output_full": stdout.full,
            "stderr": stderr.data.decode("utf-8", errors="replace"),
            "exit_code": exit_code,
            "trap": trap,
            "cpu_stopped": self.cpu_stopped,
            "memory_used": memory_used,
            "seconds": time.perf_counter() - started,
        }

    def _watch(self) -> None:
        # Process CPU time counts every thread the run keeps busy (wasmtime's included); this thread sleeps.
        while self._running.wait(0) and not self.cpu_stopped:
            if time.process_time() >= self._cpu_deadline:
                self.cpu_stopped = True
                self.engine.increment_epoch()
                return
            time.sleep(WATCH_INTERVAL_S)


# ----- the process -----
def _lower_limits(memory_mb: int) -> None:
    """After the module is loaded: no file may grow (the cache is written), no core dump, and the data
    segment (heap and private writable mappings, where the guest's memory lives) capped at the guest's limit
    plus headroom. RLIMIT_AS would have to allow wasmtime's 4 GiB reservations and so would bound nothing."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    used = _vm_data_bytes()
    limits = [
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_DATA, used + memory_mb * 1024 * 1024 + DATA_HEADROOM),
    ]
    for kind, value in limits:
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError) as error:
            print(f"archivist sandbox: cannot set a process limit: {error}", file=sys.stderr)


def _vm_data_bytes() -> int:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 256 * 1024 * 1024


def _read_request(idle_exit_s: float) -> bytes | None:
    """The next request line from stdin; None when stdin closes or stays silent for `idle_exit_s`.

    Unbuffered reads on fd 0: the parent sends one request and waits for its answer, so a line never has a
    successor waiting behind it that a buffered reader could swallow."""
    line = bytearray()
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([0], [], [], idle_exit_s if not line else None)
        if not ready:
            return None
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return None
        line += chunk
    return bytes(line)


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def main(argv: list[str]) -> None:
    # The conversation is on stdin/stdout; anything else that writes to fd 1 (a library's stray print) must
    # not corrupt it, so the protocol gets its own copy of the descriptor and fd 1 goes to stderr.
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    request = Request(**json.loads(argv[0]))
    try:
        sandbox = Sandbox(request)
    except Exception as error:
        _send(protocol, {"ready": False, "error": f"{type(error).__name__}: {error}"})
        os._exit(1)
    # One run before the limits: wasmtime prepares the module's memory image (a memfd, which RLIMIT_FSIZE
    # would refuse) at the first instantiation, and the first real run is no slower than the others.
    sandbox.run("pass")
    _lower_limits(request.memory_mb)
    _send(protocol, {"ready": True, "compiled": sandbox.compiled, "load_seconds": sandbox.load_seconds})
    while (line := _read_request(request.idle_exit_s)) is not None:
        code = json.loads(line)["code"]
        try:
            report = sandbox.run(code)
        except Exception as error:  # a failure of the runtime, not of the code
            report = {"failure": f"{type(error).__name__}: {str(error)[:300]}"}
        _send(protocol, report)
    # stdin closed (the parent is gone or done) or nothing came for a while (the parent starts a new worker).
    # os._exit skips interpreter teardown, where wasmtime's runtime threads have been seen to panic ("panic in
    # a function that cannot unwind").
    protocol.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
