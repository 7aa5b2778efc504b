"""The page guard's pure core (names, origins, tokens) and its ASGI shell, driven without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ui.guard import (
    TOKEN_COOKIE,
    GuardMiddleware,
    GuardPolicy,
    allowed_hosts,
    check_request,
    host_allowed,
)

LOOPBACK = allowed_hosts("127.0.0.1", 8501)


@pytest.mark.parametrize("host", ["127.0.0.1:8501", "localhost:8501", "[::1]:8501", "LOCALHOST:8501"])
def test_loopback_names_on_the_port_are_allowed(host: str) -> None:
    assert check_request(host, None, LOOPBACK) is None


@pytest.mark.parametrize(
    "host",
    ["evil.example:8501", "evil.example", "127.0.0.1:8502", "localhost", "127.0.0.1", "localhost.:8501",
     "127.0.0.1:8501.evil.example", "localhost:8501@evil.example", "[::1]", "localhost:abc", ""],
)
def test_other_names_are_refused(host: str) -> None:
    reason = check_request(host, None, LOOPBACK)
    assert reason is not None and reason.startswith("Refused:")


def test_a_missing_host_is_refused() -> None:
    assert check_request(None, None, LOOPBACK) == "Refused: the request names no host."


def test_dns_rebinding_names_the_foreign_host() -> None:
    reason = check_request("evil.example:8501", None, LOOPBACK)
    assert reason is not None and "'evil.example:8501'" in reason and "ARCHIVIST_ALLOWED_HOSTS" in reason


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8501", "http://localhost:8501", "http://[::1]:8501"])
def test_same_origins_are_allowed(origin: str) -> None:
    assert check_request("127.0.0.1:8501", origin, LOOPBACK) is None


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example:8501", "http://evil.example", "null", "file://", "http://localhost:8502",
     "ftp://localhost:8501", "http://localhost", "https://localhost"],
)
def test_foreign_origins_are_refused(origin: str) -> None:
    assert check_request("127.0.0.1:8501", origin, LOOPBACK) == f"Refused: requests from {origin!r} are not allowed."


def test_a_specific_bind_address_is_allowed_but_a_wildcard_is_not() -> None:
    assert "192.168.1.5:8501" in allowed_hosts("192.168.1.5", 8501)
    assert "[fe80::1]:8501" in allowed_hosts("fe80::1", 8501)
    wildcard = allowed_hosts("0.0.0.0", 8501)
    assert wildcard == LOOPBACK
    assert check_request("0.0.0.0:8501", None, wildcard) is not None
    assert allowed_hosts("::", 8501) == LOOPBACK


def test_extra_names_with_and_without_ports() -> None:
    allowed = allowed_hosts("0.0.0.0", 8501, ["archivist.lan", " Box.Local:9000 ", "", "::2", "[fe80::2]:80"])
    assert allowed == LOOPBACK | {"archivist.lan", "box.local:9000", "[::2]", "[fe80::2]:80"}
    assert host_allowed("archivist.lan:1234", allowed)  # no port given: any port
    assert host_allowed("archivist.lan", allowed)
    assert host_allowed("box.local:9000", allowed)
    assert not host_allowed("box.local:8501", allowed)
    assert host_allowed("[::2]:8501", allowed)
    assert host_allowed("[fe80::2]", allowed, default_port="80")
    # an Origin without a port means the scheme's default port
    assert check_request("box.local:9000", "http://archivist.lan", allowed) is None
    assert check_request("box.local:9000", "http://box.local", allowed) is not None


def test_the_token_is_required_when_set() -> None:
    need = "Refused: this page needs its access token; open it once as /?token=YOUR_TOKEN."
    assert check_request("localhost:8501", None, LOOPBACK, token="s3cret") == need
    assert check_request("localhost:8501", None, LOOPBACK, token="s3cret", offered_tokens=[None, "wrong"]) == need
    assert check_request("localhost:8501", None, LOOPBACK, token="s3cret", offered_tokens=[None, "s3cret"]) is None
    # the name is checked before the token: a right token from a foreign name is still refused
    assert check_request("evil.example:8501", None, LOOPBACK, token="s", offered_tokens=["s"]) != need


# ----- the ASGI shell -----
class App:
    """The wrapped application: records that it was reached and answers 200."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope["path"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"page"})


def run(
    policy: GuardPolicy, path: str = "/", headers: dict[str, str] | None = None, *, kind: str = "http",
    query: str = "", extensions: dict[str, Any] | None = None,
) -> tuple[App, list[dict[str, Any]]]:
    app = App()
    sent: list[dict[str, Any]] = []
    scope: dict[str, Any] = {"type": kind, "path": path, "method": "GET", "query_string": query.encode(),
                             "root_path": "",
                             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    if extensions is not None:
        scope["extensions"] = extensions

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(GuardMiddleware(app, policy)(scope, receive, send))  # type: ignore[arg-type]
    return app, sent


POLICY = GuardPolicy(LOOPBACK)
TOKEN_POLICY = GuardPolicy(LOOPBACK, token="s3cret")


def test_an_allowed_request_reaches_the_page() -> None:
    app, sent = run(POLICY, headers={"Host": "localhost:8501"})
    assert app.calls == ["/"] and sent[0]["status"] == 200


def test_a_refused_request_gets_403_in_plain_text_and_never_reaches_the_page() -> None:
    app, sent = run(POLICY, "/static/js/main.js", headers={"Host": "evil.example:8501"})
    assert app.calls == []
    assert sent[0]["status"] == 403 and (b"content-type", b"text/plain; charset=utf-8") in sent[0]["headers"]
    assert sent[1]["body"].startswith(b"Refused: this page does not answer to the name 'evil.example:8501'")


def test_a_refused_websocket_is_closed_before_it_is_accepted() -> None:
    app, sent = run(POLICY, "/_stcore/stream", headers={"Host": "evil.example:8501"}, kind="websocket")
    assert app.calls == [] and sent == [{"type": "websocket.close", "code": 1008}]
    app, sent = run(POLICY, "/_stcore/stream", headers={"Host": "evil.example:8501"}, kind="websocket",
                    extensions={"websocket.http.response": {}})
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert sent[0]["status"] == 403


def test_lifespan_passes_through() -> None:
    app, _ = run(POLICY, kind="lifespan")
    assert app.calls == ["/"]


def test_the_token_in_the_address_becomes_a_cookie() -> None:
    app, sent = run(TOKEN_POLICY, headers={"Host": "localhost:8501"}, query="token=s3cret&embed=true")
    assert app.calls == []
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 303 and headers[b"location"] == b"/?embed=true"
    assert headers[b"set-cookie"] == f"{TOKEN_COOKIE}=s3cret; Path=/; HttpOnly; SameSite=Strict".encode()


def test_a_token_with_cookie_unsafe_characters_survives_the_round_trip() -> None:
    policy = GuardPolicy(LOOPBACK, token="a b;c,d%")
    _, sent = run(policy, headers={"Host": "localhost:8501"}, query="token=a+b%3Bc%2Cd%25")
    cookie = dict(sent[0]["headers"])[b"set-cookie"].decode().split(";")[0]
    assert cookie == f"{TOKEN_COOKIE}=a%20b%3Bc%2Cd%25"
    app, sent = run(policy, headers={"Host": "localhost:8501", "Cookie": cookie})
    assert app.calls == ["/"]


@pytest.mark.parametrize(
    "headers",
    [{"Cookie": f"theme=dark; {TOKEN_COOKIE}=s3cret"}, {"Authorization": "Bearer s3cret"}],
)
def test_the_token_from_a_cookie_or_a_bearer_header_is_accepted(headers: dict[str, str]) -> None:
    app, sent = run(TOKEN_POLICY, "/_stcore/stream", headers={"Host": "localhost:8501", **headers}, kind="websocket")
    assert app.calls == ["/_stcore/stream"] and sent == []


def test_without_the_token_the_page_is_refused_but_health_answers() -> None:
    app, sent = run(TOKEN_POLICY, headers={"Host": "localhost:8501", "Cookie": f"{TOKEN_COOKIE}=wrong"})
    assert app.calls == [] and sent[0]["status"] == 403
    app, sent = run(TOKEN_POLICY, "/_stcore/health", headers={"Host": "localhost:8501"})
    assert app.calls == ["/_stcore/health"]
    app, sent = run(TOKEN_POLICY, "/_stcore/health", headers={"Host": "evil.example:8501"})
    assert app.calls == [] and sent[0]["status"] == 403


def test_policy_from_settings_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.guard import policy_from_settings

    monkeypatch.setenv("ARCHIVIST_ALLOWED_HOSTS", "archivist.lan, box:9000")
    monkeypatch.setenv("ARCHIVIST_ACCESS_TOKEN", "s3cret")
    policy = policy_from_settings("0.0.0.0", 8501)
    assert policy == GuardPolicy(LOOPBACK | {"archivist.lan", "box:9000"}, token="s3cret")
    monkeypatch.setenv("ARCHIVIST_ACCESS_TOKEN", "")
    assert policy_from_settings("127.0.0.1", 8501).token is None


def test_install_puts_the_guard_first_once() -> None:
    from streamlit.web.server.starlette import starlette_app

    from ui.guard import install

    original = starlette_app.create_streamlit_middleware
    try:
        install()
        install()
        stack = starlette_app.create_streamlit_middleware()
        classes: list[object] = [item.cls for item in stack]
        assert classes[0] is GuardMiddleware and classes.count(GuardMiddleware) == 1
    finally:
        starlette_app.create_streamlit_middleware = original
