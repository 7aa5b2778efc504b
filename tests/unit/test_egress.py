"""The egress guard: connections off this machine are refused, counted and logged; loopback and configured
servers go through. The hook is live in every test process (rag.offline installs it), so the whole suite
runs under it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag import egress
from rag.egress import EgressRefused, Policy, allow_urls, refused_count
from tests.conftest import subprocess_env

# TEST-NET addresses (RFC 5737/3849): never routed, so nothing could leave even if the guard failed.
OUTSIDE_V4 = "192.0.2.10"
OUTSIDE_V6 = "2001:db8::10"


def test_the_policy_allows_loopback_and_configured_addresses_only() -> None:
    policy = Policy(addresses={"198.51.100.7"})
    assert policy.allows("127.0.0.1") and policy.allows("127.8.9.1") and policy.allows("::1")
    assert policy.allows("::ffff:127.0.0.1")
    assert policy.allows("198.51.100.7")
    assert not policy.allows(OUTSIDE_V4) and not policy.allows(OUTSIDE_V6) and not policy.allows("0.0.0.0")


def test_the_hook_is_installed_by_importing_rag() -> None:
    assert egress._STATE.installed


def test_a_connection_off_the_machine_is_refused_counted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "egress.log"
    monkeypatch.setenv(egress.LOG_VARIABLE, str(log))
    before = refused_count()
    with pytest.raises(EgressRefused, match=rf"refused a connection to {OUTSIDE_V4}:443") as refused:
        socket.create_connection((OUTSIDE_V4, 443), timeout=1)
    assert isinstance(refused.value, ConnectionRefusedError)  # libraries see "network down"
    with pytest.raises(EgressRefused), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"telemetry", (OUTSIDE_V4, 53))
    assert refused_count() == before + 2
    address, port, where = log.read_text().splitlines()[0].split("\t")[1:]
    assert (address, port) == (OUTSIDE_V4, "443")
    assert "test_egress.py" in where


def test_loopback_goes_through() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepting = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
        accepting.start()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
        accepting.join(5)  # before the listening socket closes under its accept()


def test_a_configured_server_goes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(egress._STATE, "policy", Policy())
    allow_urls([f"http://{OUTSIDE_V4}:11434"])
    with socket.socket() as sock:
        sock.settimeout(0.05)
        try:
            sock.connect((OUTSIDE_V4, 11434))
        except EgressRefused:
            pytest.fail("a configured server was refused")
        except OSError:
            pass  # TEST-NET is not routed: the guard let it try, which is all this checks


def test_a_fresh_process_refuses_too_and_says_so_in_its_log(tmp_path: Path) -> None:
    log = tmp_path / "egress.log"
    code = (
        "import rag, urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen('http://{OUTSIDE_V4}/', timeout=1)\n"
        "except OSError as error:\n"
        "    print(type(error).__name__, error)\n"
        "from rag.egress import refused_count\n"
        "print('refused', refused_count())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=subprocess_env(ARCHIVIST_EGRESS_LOG=str(log)), cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert "refused 1" in result.stdout
    assert OUTSIDE_V4 in log.read_text()
