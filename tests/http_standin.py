"""What the LLM stand-ins share: a real HTTP server on 127.0.0.1 in a daemon thread, scripted replies, and a
record of every request. `tests/ollama_standin.py` and `tests/openai_standin.py` add their wire protocols.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

logger = logging.getLogger(__name__)

Reply = TypeVar("Reply")


@dataclass
class RecordedRequest:
    """One HTTP request a stand-in received; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None
    raw: bytes = b""  # the body exactly as sent, for byte-for-byte comparisons


class StandInServer(Generic[Reply]):
    """Serves `handler` on 127.0.0.1 (`port` 0: a free one); use as a context manager or start()/stop().

    Tests script replies with `enqueue()`; when the queue is empty `responder` answers. `requests` keeps
    every request, the way simonw/llm's MockModel keeps its history: a fake, not a mock."""

    handler: type[BaseHTTPRequestHandler]
    thread_name = "standin"

    def __init__(self, port: int, chunk_delay_s: float, responder: Callable[[dict[str, Any]], Reply]) -> None:
        self.port = port
        self.chunk_delay_s = chunk_delay_s
        self.responder = responder
        self._lock = threading.Lock()
        self._queue: collections.deque[Reply] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._httpd: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # streaming handlers check it between chunks

    def start(self) -> Self:
        """Bind and serve; after a stop() it comes back on the same port (the server "restarted")."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = LoopbackServer(("127.0.0.1", self.port), self.handler, self)
        self.port = int(self._httpd.server_address[1])
        # A short poll interval keeps stop() quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.thread_name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection, even mid-stream; new connections are refused."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.drop_connections()  # wakes handlers blocked on idle keep-alive connections
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        """Script the next replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(body)


class LoopbackServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections so stop() can cut them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 standin: StandInServer[Any]) -> None:
        self.standin = standin
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)  # the handler thread closes it on its way out

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (or stop() cutting them off) is normal for a test double; don't spam stderr.
        logger.debug("stand-in connection from %s ended with an error", client_address, exc_info=True)


class StandInHandler(BaseHTTPRequestHandler):
    """One request to a stand-in: subclasses route it in `route`, after `read_and_record`."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like the real servers
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stand-in: " + format, *args)

    def do_GET(self) -> None:
        self.route()

    def do_POST(self) -> None:
        self.route()

    def route(self) -> None:
        raise NotImplementedError

    def read_and_record(self) -> tuple[bytes, Any, dict[str, str]]:
        """The raw body, its JSON (None when empty or not JSON) and the lower-cased headers; recorded."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.standin.record(
            RecordedRequest(self.command, self.path, headers, body if isinstance(body, dict) else None, raw)
        )
        return raw, body, headers
