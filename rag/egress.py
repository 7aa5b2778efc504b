"""Proof of "nothing leaves the machine": an audit hook that refuses, counts and records every connection to an
address that is neither loopback nor a server the person configured (a remote Ollama, an OpenAI-compatible
server, a Chroma server).

`sys.addaudithook` sees every `socket.connect` and `socket.sendto` in this process, whatever library makes
it (telemetry, a model hub, an update check), before a packet leaves. A refused connection raises
`EgressRefused`, a ConnectionRefusedError, so libraries treat it as the network being down. With
`ARCHIVIST_EGRESS_LOG=<file>` every refusal is appended there (address, port, and where in the code).

Installed by `rag.offline` at import, loopback only; `allow_urls` adds configured servers, by their resolved
addresses, so service names under docker compose work.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rag.errors import EgressRefused

LOG_VARIABLE = "ARCHIVIST_EGRESS_LOG"
_EVENTS = frozenset({"socket.connect", "socket.sendto"})


@dataclass(frozen=True)
class Policy:
    """Which addresses a connection may go to: loopback always, plus the configured servers.

    Never changed in place: a change builds a new Policy under _STATE.lock and swaps it in, so the hook (which
    runs in every thread, on every connect) reads one consistent policy without taking the lock."""

    addresses: frozenset[str] = frozenset()  # resolved IP addresses of configured servers
    names: frozenset[str] = frozenset()  # their host names, resolved again when a connection is refused

    def adding(self, names: Iterable[str] = (), addresses: Iterable[str] = ()) -> Policy:
        return Policy(self.addresses | frozenset(addresses), self.names | frozenset(names))

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return host in self.names  # not an address (some libraries pass names through)
        if address.is_loopback or (address.version == 6 and address.ipv4_mapped is not None
                                   and address.ipv4_mapped.is_loopback):
            return True
        return str(address) in self.addresses


@dataclass
class _State:
    policy: Policy = field(default_factory=Policy)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    installed: bool = False


_STATE = _State()


def refused_count() -> int:
    """Connections refused since this process started."""
    return _STATE.refused


def destination(event: str, args: tuple[Any, ...]) -> tuple[str, int] | None:
    """The (host, port) an audited socket event goes to, or None for what is not an internet socket."""
    sock, address = args[0], args[-1]
    family = getattr(sock, "family", None)
    if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple) or len(address) < 2:
        return None  # Unix sockets, netlink, ...: they stay on this machine
    return str(address[0]), int(address[1])


def _resolve(name: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()  # not resolvable yet (a compose service still starting): tried again on a refusal


def allow_urls(urls: Iterable[str | None]) -> None:
    """Let connections go to the hosts of these URLs (`http://host:port/...` or `host:port`)."""
    for url in urls:
        if not url:
            continue
        host = urlsplit(url if "://" in url else f"http://{url}").hostname
        if not host:
            continue
        _allow(names=[host])
        _allow(addresses=_resolve(host))  # resolved outside the lock: DNS may take a while


def _allow(names: Iterable[str] = (), addresses: Iterable[str] = ()) -> None:
    with _STATE.lock:
        _STATE.policy = _STATE.policy.adding(names, addresses)


def _where() -> str:
    """The innermost frames outside the standard library's socket code: who tried to connect."""
    plumbing = {__file__, socket.__file__, getattr(sys.modules.get("ssl"), "__file__", "")}
    frames = [frame for frame in traceback.extract_stack() if frame.filename not in plumbing]
    return " < ".join(f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" for frame in reversed(frames[-4:]))


def _refuse(host: str, port: int) -> None:
    with _STATE.lock:
        _STATE.refused += 1
    log = os.environ.get(LOG_VARIABLE)
    where = _where()
    if log:
        try:
            with open(log, "a", encoding="utf-8") as file:
                file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{host}\t{port}\t{where}\n")
        except OSError:
            pass  # the refusal stands whether or not it could be written down
    raise EgressRefused(
        f"Archivist refused a connection to {host}:{port} ({where}): nothing leaves this machine unless you "
        "configure that server (OLLAMA_HOST, ARCHIVIST_OPENAI_BASE_URL, ARCHIVIST_CHROMA_URL)."
    )


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:  # every audited event passes here (open, import, ...): leave fast
        return
    target = destination(event, args)
    policy = _STATE.policy  # one snapshot: another thread may swap in a new policy meanwhile
    if target is None or policy.allows(target[0]):
        return
    # A configured name may not have resolved when it was allowed, or may have moved: look again once.
    _allow(addresses={address for name in policy.names for address in _resolve(name)})
    if not _STATE.policy.allows(target[0]):
        _refuse(*target)


def install() -> None:
    """Install the hook once per process (audit hooks cannot be removed)."""
    with _STATE.lock:
        if _STATE.installed:
            return
        _STATE.installed = True
    sys.addaudithook(_hook)
