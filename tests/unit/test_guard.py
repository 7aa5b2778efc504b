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
    content_security_policy,
    host_allowed,
    inline_script_hashes,
    streamlit_script_hashes,
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
    assert check_request("0.0.0.0:8501", None, wildcard) == (
        "Refused: this page does not answer to the name '0.0.0.0:8501'. "
        "Open it as http://127.0.0.1 or add the name to ARCHIVIST_ALLOWED_HOSTS.")
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
    assert check_request("box.local:9000", "http://box.local", allowed) == (
        "Refused: requests from 'http://box.local' are not allowed.")  # port 80, not 9000


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


# ----- security headers: CSP, framing -----
INDEX = """<html><head><script>
      window.prerenderReady = false
    </script><script type="module" crossorigin src="./static/js/index.js"></script>
<SCRIPT type="text/javascript">var a = 1;</SCRIPT></head></html>"""


def test_inline_scripts_are_hashed_and_scripts_with_a_source_are_not() -> None:
    import base64
    import hashlib

    def digest(body: str) -> str:
        return f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"

    assert inline_script_hashes(INDEX) == (digest("\n      window.prerenderReady = false\n    "),
                                           digest("var a = 1;"))
    assert inline_script_hashes("<p>no scripts</p>") == ()


def test_the_policy_allows_only_this_page() -> None:
    policy = content_security_policy(("'sha256-abc'",), "localhost:8501")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split("; ")}
    assert directives == {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'wasm-unsafe-eval'", "'sha256-abc'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", "ws://localhost:8501", "wss://localhost:8501"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    assert "unsafe-inline" not in " ".join(directives["script-src"])
    assert "'unsafe-eval'" not in directives["script-src"]
    assert "*" not in policy and "http:" not in policy


@pytest.mark.parametrize("host", ["evil.example; script-src *", "a b", "", None, "x\r\ny"])
def test_a_strange_host_never_reaches_the_policy(host: str | None) -> None:
    assert "connect-src 'self';" in content_security_policy((), host)


def test_the_installed_streamlit_inline_script_is_allowed_by_its_hash() -> None:
    from pathlib import Path

    from streamlit import file_util

    html = (Path(file_util.get_static_dir()) / "index.html").read_text(encoding="utf-8")
    hashes = streamlit_script_hashes()
    assert hashes == inline_script_hashes(html)
    assert len(hashes) == html.count("<script>")


def _security(sent: list[dict[str, Any]]) -> dict[bytes, bytes]:
    headers = dict(sent[0]["headers"])
    return {name: headers[name] for name in (b"content-security-policy", b"x-frame-options",
                                             b"x-content-type-options", b"referrer-policy") if name in headers}


def _assert_secured(sent: list[dict[str, Any]]) -> None:
    headers = _security(sent)
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"
    assert b"frame-ancestors 'none'" in headers[b"content-security-policy"]
    assert b"default-src 'self'" in headers[b"content-security-policy"]


def test_every_kind_of_response_carries_the_security_headers() -> None:
    _assert_secured(run(POLICY, headers={"Host": "localhost:8501"})[1])  # the page
    _assert_secured(run(POLICY, "/static/js/main.js", headers={"Host": "evil.example:8501"})[1])  # refused
    _assert_secured(run(TOKEN_POLICY, headers={"Host": "localhost:8501"}, query="token=s3cret")[1])  # redirect
    _, sent = run(POLICY, "/_stcore/stream", headers={"Host": "evil.example:8501"}, kind="websocket",
                  extensions={"websocket.http.response": {}})
    _assert_secured(sent)  # a refused websocket upgrade


def test_the_page_own_headers_of_the_same_names_are_replaced_not_doubled() -> None:
    class Framable(App):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"X-Frame-Options", b"ALLOWALL"), (b"content-type", b"text/html")]})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    scope = {"type": "http", "path": "/", "method": "GET", "query_string": b"",
             "headers": [(b"host", b"localhost:8501")]}
    asyncio.run(GuardMiddleware(Framable(), POLICY, script_hashes=())(scope, receive, send))  # type: ignore[arg-type]
    names = [name.lower() for name, _ in sent[0]["headers"]]
    assert names.count(b"x-frame-options") == 1 and (b"x-frame-options", b"DENY") in sent[0]["headers"]
    assert (b"content-type", b"text/html") in sent[0]["headers"]


def test_an_accepted_websocket_carries_the_headers_too() -> None:
    class Accepting(App):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "websocket.accept", "subprotocol": "streamlit"})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/_stcore/stream", "query_string": b"",
             "headers": [(b"host", b"localhost:8501"), (b"origin", b"http://localhost:8501")]}
    asyncio.run(GuardMiddleware(Accepting(), POLICY, script_hashes=())(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["subprotocol"] == "streamlit"
    _assert_secured(sent)
