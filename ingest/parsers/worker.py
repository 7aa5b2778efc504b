"""Reading files in a separate, reused process, so that no file can take more than its share.

`parse_isolated` hands one file at a time to a long-lived child process (`python -m
ingest.parsers.worker`) that runs `parse_bytes` with its address space capped at
ARCHIVIST_PARSE_MEMORY_MB (RLIMIT_AS, set inside the child), while the parent waits at most
ARCHIVIST_PARSE_TIMEOUT_S for the answer. A file that runs over either limit, or a child that crashes,
fails that file with a reason a person understands (rag.errors.ResourceLimit); the child is killed and
a fresh one serves the next file. Nothing the child does can raise anything else in the parent.

Why a plain subprocess rather than multiprocessing: it is started by fork+exec (safe in the threaded
server, like multiprocessing's "spawn"), yet it never re-imports the parent's `__main__` (the CLI, or
Streamlit) as "spawn" and "forkserver" do, and it shares no process-wide start-method state.

One child serves the whole process and is reused across files and Ingesters: starting Python and the
parsers' imports costs a fraction of a second, far more than reading a small file. It goes away on its
own after a minute without work, when this process exits (an `atexit` hook; and if this process is
killed, the kernel signals the child through a pipe, see `_end_with_parent`), or on `shutdown()`.

The PDF page-text cache stays in the parent: the child asks for each page digest over the pipe
(`get`), and the pages it had to extract come back with the document for the parent to `put`. The
catalog keeps its single writer and an edited PDF still re-extracts only its changed pages.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.document import DocumentKind, PageTextCache, ParsedDocument
from rag.errors import DocumentError, ParseOutOfMemory, ParserCrashed, ParseTimeout
from rag.settings import Settings

logger = logging.getLogger(__name__)

IDLE_EXIT_S = 60.0  # a child without work for this long exits; the next file starts a new one
STARTUP_S = 120.0  # starting Python and importing the parsers; not counted against a file's time limit
_MIB = 1024 * 1024
# Plain text cannot expand (nothing in it is compressed) and its parser is linear: up to this size it
# takes a few MB and milliseconds, less than the round trip to the reading process, so it is read here.
# Everything else, Markdown included (its HTML-stripping regex can be made quadratic), goes to the child.
IN_PROCESS_TEXT_BYTES = 1 * _MIB
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `ingest` package


@dataclass(frozen=True)
class Limits:
    """What reading one file may take."""

    timeout_s: float
    memory_mb: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(timeout_s=settings.parse_timeout_s, memory_mb=settings.parse_memory_mb)


def parse_isolated(
    data: bytes, kind: DocumentKind, settings: Settings, *, page_cache: PageTextCache | None = None
) -> ParsedDocument:
    """`parse_bytes` within the limits the settings give, in the shared child process (or in this
    process when ARCHIVIST_PARSE_ISOLATION is off: no time or memory limit then; and for a small plain
    text file, see IN_PROCESS_TEXT_BYTES)."""
    if not settings.parse_isolation or (kind == "text" and len(data) <= IN_PROCESS_TEXT_BYTES):
        from ingest.parsers import parse_bytes

        return parse_bytes(data, kind, pdf_passwords=settings.pdf_passwords, page_cache=page_cache)
    worker = _shared(Limits.from_settings(settings))
    return worker.parse(data, kind, pdf_passwords=settings.pdf_passwords, page_cache=page_cache)


_SHARED: ParserProcess | None = None
_SHARED_LOCK = threading.Lock()


def _shared(limits: Limits) -> ParserProcess:
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED.limits != limits:  # the limits changed (the Settings page): new child
            if _SHARED is not None:
                _SHARED.close(finish=True)  # a file another thread is reading keeps the old limits
            _SHARED = ParserProcess(limits)
        return _SHARED


def shutdown() -> None:
    """Stop the shared child process, if one runs (the next parse starts another)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None:
            _SHARED.close()
            _SHARED = None


atexit.register(shutdown)


class ParserProcess:
    """One child process that parses files one at a time, restarted after it is killed or crashes."""

    def __init__(self, limits: Limits, *, idle_exit_s: float = IDLE_EXIT_S) -> None:
        self.limits = limits
        self.idle_exit_s = idle_exit_s
        self._lock = threading.Lock()  # one file at a time through the pipe
        self._process: subprocess.Popen[bytes] | None = None
        self._to_child: Connection | None = None
        self._from_child: Connection | None = None
        self.started = 0  # how many children this object has started (for tests and measurements)
        self._closing = False
        self._lifeline: int | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def parse(
        self,
        data: bytes,
        kind: DocumentKind,
        *,
        pdf_passwords: Sequence[str] = (),
        page_cache: PageTextCache | None = None,
    ) -> ParsedDocument:
        with self._lock:
            for _ in range(2):
                self._ensure_started()
                try:
                    return self._exchange(data, kind, pdf_passwords, page_cache)
                except _ChildWentIdle:
                    # It left on its idle timer just as this file came (exit status 0, nothing read):
                    # nothing was attempted, so one retry with a fresh child is safe.
                    self._stop()
            raise ParserCrashed("could not start the process that reads files")

    def close(self, *, finish: bool = False) -> None:
        """Stop the child. With `finish`, a file being read is finished first; otherwise the child is
        killed at once, without waiting for the lock: a thread reading a slow file holds it, and must not
        keep this (or interpreter exit) waiting for up to the time limit. That file fails."""
        process = self._process
        if not finish and process is not None and process.poll() is None:
            self._closing = True
            process.kill()
        with self._lock:
            self._stop()
            self._closing = False

    # ----- the parent's side of the conversation -----
    def _exchange(
        self, data: bytes, kind: DocumentKind, pdf_passwords: Sequence[str], page_cache: PageTextCache | None
    ) -> ParsedDocument:
        to_child, from_child = self._to_child, self._from_child
        if to_child is None or from_child is None:  # not started, or stopped meanwhile
            raise self._died(answered=False)
        try:
            to_child.send(("parse", kind, tuple(pdf_passwords), page_cache is not None))
            to_child.send_bytes(data)  # unpickled bytes: no second copy of a large file
        except OSError:
            raise self._died(answered=False) from None
        deadline = time.monotonic() + self.limits.timeout_s
        answered = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not from_child.poll(remaining):
                # A process at its memory limit can spend minutes failing allocations and retrying
                # instead of raising MemoryError: then memory, not time, is what it ran out of.
                at_limit = self._process is not None and _near_limit(self.limits.memory_mb * _MIB, self._process.pid)
                self._stop()
                if at_limit:
                    raise self._out_of_memory()
                raise ParseTimeout(
                    f"took longer than {self.limits.timeout_s:g} s to read; raise ARCHIVIST_PARSE_TIMEOUT_S "
                    "if it is expected to"
                )
            try:
                message: tuple[Any, ...] = from_child.recv()
            except (EOFError, OSError):
                raise self._died(answered=answered) from None
            answered = True
            tag = message[0]
            if tag == "get":  # the page-text cache, asked one page digest at a time
                try:
                    to_child.send(page_cache.get(message[1]) if page_cache is not None else None)
                except OSError:
                    raise self._died(answered=True) from None
            elif tag == "done":
                document, new_pages = message[1], message[2]
                if page_cache is not None:
                    for key, paragraphs in new_pages:
                        page_cache.put(key, paragraphs)
                if not isinstance(document, ParsedDocument):
                    raise ParserCrashed(f"could not be read: the reading process answered {type(document).__name__}")
                return document
            elif tag == "failed":
                problem = message[1]
                if not isinstance(problem, DocumentError):
                    raise ParserCrashed(f"could not be read: the reading process answered {type(problem).__name__}")
                raise problem
            elif tag == "memory":
                self._stop()  # a MemoryError can leave a library half-way: the next file gets a fresh child
                raise self._out_of_memory()
            else:  # "error": a bug in a parser, not a problem of the file; the child stays usable
                logger.warning("parser error: %s", message[1])
                raise ParserCrashed(f"could not be read: {message[1]}")

    def _out_of_memory(self) -> ParseOutOfMemory:
        return ParseOutOfMemory(
            f"needed more than {_gb(self.limits.memory_mb)} of memory to read; raise ARCHIVIST_PARSE_MEMORY_MB "
            "if it is expected to"
        )

    def _died(self, *, answered: bool) -> Exception:
        """The child's end of the pipe closed: why, for a person (or _ChildWentIdle to retry)."""
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=5)
        self._stop()
        if self._closing:
            return ParserCrashed("reading was stopped: Archivist is shutting down")
        if code == 0 and not answered:
            return _ChildWentIdle()
        if code is not None and code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGKILL:  # the kernel's OOM killer, or someone else
                return ParserCrashed(
                    f"the process reading it was killed ({name}), perhaps for lack of memory; "
                    "it will be tried again when it changes"
                )
            return ParserCrashed(
                f"the process reading it crashed ({name}), perhaps on reaching the "
                f"{_gb(self.limits.memory_mb)} memory limit (ARCHIVIST_PARSE_MEMORY_MB)"
            )
        return ParserCrashed(f"the process reading it stopped unexpectedly (exit status {code})")

    def _ensure_started(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            return
        self._stop()
        # The child imports this copy of the code whatever the caller's working folder.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        read_request, write_request = os.pipe()
        read_answer, write_answer = os.pipe()
        # Never written to: when this process ends, however it ends, the child's end sees EOF.
        read_lifeline, write_lifeline = os.pipe()
        try:
            arguments = [str(self.limits.memory_mb * _MIB), str(self.idle_exit_s), str(os.getpid())]
            fds = [str(read_request), str(write_answer), str(read_lifeline)]
            process = subprocess.Popen(
                [sys.executable, "-m", "ingest.parsers.worker", *arguments, *fds],
                pass_fds=(read_request, write_answer, read_lifeline),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                cwd=str(_ROOT),
                # Its own session: a Ctrl-C in the terminal is the parent's to handle, not the child's.
                start_new_session=True,
            )
        except BaseException:
            for fd in (read_request, write_request, read_answer, write_answer, read_lifeline, write_lifeline):
                os.close(fd)
            raise
        os.close(read_request)
        os.close(write_answer)
        os.close(read_lifeline)
        self._lifeline = write_lifeline
        self._process = process
        self._to_child = Connection(write_request, readable=False)
        self._from_child = Connection(read_answer, writable=False)
        self.started += 1
        # Wait for its imports, so a file's time limit measures reading that file only.
        try:
            ready = self._from_child.poll(STARTUP_S) and self._from_child.recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop()
            raise ParserCrashed("could not start the process that reads files")

    def _stop(self) -> None:
        """Close the pipes and make sure the child is gone (killed if it does not leave at once)."""
        for connection in (self._to_child, self._from_child):
            if connection is not None:
                connection.close()
        self._to_child = self._from_child = None
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()  # it may be deep inside a parse: there is nothing to wait for
            process.wait()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


class _ChildWentIdle(Exception):
    pass


def _gb(megabytes: int) -> str:
    return f"{megabytes / 1024:g} GB" if megabytes >= 1024 else f"{megabytes} MB"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ----- the child's side -----
class _RemoteCache:
    """The parent's page-text cache, as seen from the child: lookups over the pipe, new pages kept for
    the answer (the parent stores them)."""

    def __init__(self, requests: Connection, answers: Connection) -> None:
        self._requests = requests
        self._answers = answers
        self.new: list[tuple[str, list[str]]] = []

    def get(self, key: str) -> list[str] | None:
        self._answers.send(("get", key))
        found: list[str] | None = self._requests.recv()
        return found

    def put(self, key: str, paragraphs: list[str]) -> None:
        self.new.append((key, list(paragraphs)))


def _serve(memory_bytes: int, idle_exit_s: float, parent: int, requests: Connection, answers: Connection) -> None:
    # Import every parser up front: the imports are paid once per child, not once per file.
    import resource

    from ingest.parsers import docx, html, markdown, parse_bytes, pdf, text  # noqa: F401

    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ValueError, OSError) as error:  # e.g. a system that does not enforce it: the time limit remains
        print(f"archivist: no memory limit for reading files: {error}", file=sys.stderr)
    answers.send(("ready",))
    while requests.poll(idle_exit_s):
        try:
            _, kind, passwords, use_cache = requests.recv()
            data = requests.recv_bytes()
        except EOFError:
            return  # the parent closed the pipe: done
        cache = _RemoteCache(requests, answers) if use_cache else None
        try:
            document = parse_bytes(data, kind, pdf_passwords=passwords, page_cache=cache)
            answer: tuple[Any, ...] = ("done", document, cache.new if cache is not None else [])
        except DocumentError as problem:
            answer = ("failed", type(problem)(problem.reason))
        except MemoryError:
            answer = ("memory",)
        except Exception as error:  # a parser's bug: report it, keep serving
            answer = ("error", f"{type(error).__name__}: {str(error)[:200]}")
        del data
        if answer[0] != "done" and _near_limit(memory_bytes):
            # C libraries out of memory rarely raise MemoryError: lxml reports "unknown error", pypdf's
            # zlib a damaged stream. Having touched the limit says what really happened.
            answer = ("memory",)
        try:
            answers.send(answer)
        except MemoryError:
            answers.send(("memory",))
        if _near_limit(memory_bytes):
            return  # the high-water mark cannot be reset: a fresh child for the next file


def _near_limit(memory_bytes: int, pid: int | None = None) -> bool:
    """Whether a process's (this one's) address space has ever come within 10% of `memory_bytes`
    (its VmPeak; Linux)."""
    try:
        with open(f"/proc/{pid or 'self'}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024 >= 0.9 * memory_bytes
    except (OSError, ValueError, IndexError):
        pass
    return False


def _end_with_parent(parent: int, lifeline: int) -> None:
    """Have the kernel end this process when its parent is gone, even in the middle of a parse.

    The parent never writes to the lifeline pipe, so it becomes readable (EOF) only when the parent's
    end closes: when the parent exits or is killed. O_ASYNC makes that a SIGIO, whose default action
    ends the process. A thread polling getppid() would need the GIL, which a parse stuck at the memory
    limit may never give up; the signal needs nothing from this process.
    """
    import fcntl

    signal.signal(signal.SIGIO, signal.SIG_DFL)
    fcntl.fcntl(lifeline, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(lifeline, fcntl.F_SETFL, fcntl.fcntl(lifeline, fcntl.F_GETFL) | os.O_ASYNC)
    if os.getppid() != parent:  # it was gone before the signal was armed
        os._exit(0)


def _main(argv: Sequence[str]) -> None:
    memory_bytes, idle_exit_s, parent, request_fd, answer_fd, lifeline_fd = argv
    _end_with_parent(int(parent), int(lifeline_fd))
    requests = Connection(int(request_fd), writable=False)
    answers = Connection(int(answer_fd), readable=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    logging.getLogger().addHandler(logging.NullHandler())  # no log lines from the child on the terminal
    _serve(int(memory_bytes), float(idle_exit_s), int(parent), requests, answers)


if __name__ == "__main__":
    _main(sys.argv[1:])
