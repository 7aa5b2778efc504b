"""The page's gatekeeper: refuse requests for foreign Host or Origin names, and optionally without a token.

Why: a page served on 127.0.0.1 can still be driven by any web site the user visits, through DNS
rebinding (evil.example first resolves to the attacker, then to 127.0.0.1, and its scripts become
"same-origin" with us). Such requests carry `Host: evil.example:8501`, so answering only to the names
we are really reached by defeats it. The optional access token (ARCHIVIST_ACCESS_TOKEN) is for when the
page is bound to a network address.

Allowed names: 127.0.0.1, localhost and [::1] on the page's port; the bind address itself on that port
when it is a specific address (not 0.0.0.0 / ::); and ARCHIVIST_ALLOWED_HOSTS (`name` = any port,
`name:port` = that port). The Origin header, when a browser sends one, must be http(s) on an allowed
name too (`null` is refused).

Token: when set, every request needs it, except /_stcore/health (health checks reveal nothing). It is
accepted as `Authorization: Bearer TOKEN`, as the `archivist_token` cookie, or as `?token=TOKEN`; a
plain page load with `?token=` is answered with a redirect to the same address without it, setting the
cookie (HttpOnly, SameSite=Strict), so the token leaves the address bar and history and the browser
sends it with every later request, the websocket included.

Every response also carries the page's security headers (`security_headers`), the refusals and the token
redirect included: a Content-Security-Policy that lets the page load and connect only to itself
(`default-src 'self'`, images also from data:/blob: URLs, fonts also from data: URLs, connections only to
this page and its websocket,
no plugins, no <base>, forms only to itself, `frame-ancestors 'none'`), with inline styles allowed
(Streamlit's styling needs them) and inline scripts only by the SHA-256 of each inline script in the
index.html the installed Streamlit serves, read at start-up so an upgrade keeps working; plus
`X-Frame-Options: DENY` (framing refused for older browsers too: a foreign page cannot put Remove or Reset
index inside an invisible frame), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
The CSP is the second line of defence: ui/safe_markdown.py already keeps rendered text from loading or
linking anything.

Where it hooks in (the thin shell): Streamlit (1.5x+, served by Starlette under uvicorn) has no
middleware option for `streamlit run`, but it builds its app from the list returned by
`streamlit.web.server.starlette.starlette_app.create_streamlit_middleware()`. `install()` wraps that
function to put `GuardMiddleware` first, so every route — the page, static files, /_stcore/* and the
websocket /_stcore/stream — passes the guard before Streamlit's own code. `python -m ui.guard run APP`
(what ui/launch.py starts) installs it, then hands over to Streamlit's own command line, so the guard
is in place before the server serves its first request. If the hook point is missing (another
Streamlit version), `install()` raises rather than serving unguarded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_COOKIE = "archivist_token"
TOKEN_PARAMETER = "token"
TOKEN_EXEMPT_PATHS = frozenset({"/_stcore/health"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# ----- the pure core -----
def _bracketed(host: str) -> str:
    """IPv6 literals are written in brackets in Host headers and URLs."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _split_netloc(netloc: str) -> tuple[str, str | None]:
    """`name[:port]` → (name, port or None); IPv6 names keep their brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return netloc, None
        name, rest = netloc[: end + 1], netloc[end + 1 :]
        return name, rest[1:] if rest.startswith(":") else None
    if netloc.count(":") == 1:
        name, port = netloc.split(":")
        return name, port
    return netloc, None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names the page answers to: `name:port` entries, and `name` entries meaning any port."""
    names = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if bind_host.strip() not in _WILDCARD_BINDS and not _is_loopback(bind_host):
        names.add(f"{_bracketed(bind_host)}:{port}")
    for entry in extra:
        entry = entry.strip().lower()
        if entry:
            name, entry_port = _split_netloc(entry if entry.startswith("[") or entry.count(":") <= 1
                                             else _bracketed(entry))
            names.add(f"{name}:{entry_port}" if entry_port else name)
    return frozenset(names)


def host_allowed(netloc: str, allowed: frozenset[str], default_port: str | None = None) -> bool:
    """Whether `name[:port]` (a Host header or an Origin's netloc) is one of `allowed`."""
    name, port = _split_netloc(netloc)
    port = port or default_port
    if not name or (port is not None and not port.isdigit()):
        return False
    return name in allowed or (port is not None and f"{name}:{port}" in allowed)


def token_matches(expected: str, offered: Iterable[str | None]) -> bool:
    """Constant-time comparison of each offered token against the expected one."""
    found = False
    for candidate in offered:
        if candidate is not None and hmac.compare_digest(candidate.encode(), expected.encode()):
            found = True
    return found


def check_request(
    host_header: str | None,
    origin_header: str | None,
    allowed: frozenset[str],
    *,
    token: str | None = None,
    offered_tokens: Sequence[str | None] = (),
) -> str | None:
    """None when the request may proceed, else the short reason it is refused."""
    if not host_header:
        return "Refused: the request names no host."
    if not host_allowed(host_header, allowed):
        return (f"Refused: this page does not answer to the name {host_header!r}. "
                "Open it as http://127.0.0.1 or add the name to ARCHIVIST_ALLOWED_HOSTS.")
    if origin_header is not None:
        origin = urlsplit(origin_header.strip())
        if origin.scheme not in _DEFAULT_PORTS or not host_allowed(
            origin.netloc, allowed, default_port=_DEFAULT_PORTS[origin.scheme]
        ):
            return f"Refused: requests from {origin_header!r} are not allowed."
    if token and not token_matches(token, offered_tokens):
        return "Refused: this page needs its access token; open it once as /?token=YOUR_TOKEN."
    return None


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard enforces: the allowed names and the access token, if any."""

    allowed: frozenset[str]
    token: str | None = None


def policy_from_settings(bind_host: str, port: int) -> GuardPolicy:
    """The policy for a page bound to `bind_host:port`, from ARCHIVIST_ALLOWED_HOSTS / _ACCESS_TOKEN."""
    from rag.settings import load_settings

    settings = load_settings()
    token = settings.access_token.get_secret_value() if settings.access_token is not None else None
    extra = settings.allowed_hosts.split(",")
    return GuardPolicy(allowed=allowed_hosts(bind_host, port, extra), token=token or None)


# Inline <script> elements (no src attribute) and their exact text, which is what a CSP hash covers.
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
# A Host header that is safe to write into the policy (it was checked against the allowed names already).
_CSP_HOST = re.compile(r"[a-z0-9.\-]+(:\d{1,5})?|\[[0-9a-f:.]+\](:\d{1,5})?")


def inline_script_hashes(html: str) -> tuple[str, ...]:
    """The CSP source expressions (`'sha256-…'`) allowing exactly the inline scripts in `html`."""
    return tuple(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    )


def content_security_policy(script_hashes: Sequence[str], host: str | None = None) -> str:
    """The page's Content-Security-Policy: nothing from or to any other host, no framing.

    `host` is the request's (already allowed) Host header: the websocket's address is named explicitly,
    because not every browser lets 'self' cover ws:// (CSP level 3 does).
    """
    websocket = ""
    if host and _CSP_HOST.fullmatch(host.strip().lower()):
        websocket = f" ws://{host.strip().lower()} wss://{host.strip().lower()}"
    directives = [
        "default-src 'self'",
        # 'wasm-unsafe-eval': Streamlit's protobuf decoder (long.js) compiles a tiny WebAssembly module
        # of its own for 64-bit arithmetic; it lets scripts already allowed compile WebAssembly, not run
        # JavaScript from strings ('unsafe-eval' stays off) nor load anything.
        "script-src 'self' 'wasm-unsafe-eval'" + "".join(f" {digest}" for digest in script_hashes),
        "style-src 'self' 'unsafe-inline'",  # Streamlit's components style themselves inline
        "img-src 'self' data: blob:",
        "font-src 'self' data:",  # Streamlit's stylesheet embeds a font as a data: URL
        "connect-src 'self'" + websocket,
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def security_headers(script_hashes: Sequence[str], host: str | None = None) -> list[tuple[bytes, bytes]]:
    """The headers every response of the page carries."""
    return [
        (b"content-security-policy", content_security_policy(script_hashes, host).encode("latin-1")),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


def streamlit_script_hashes() -> tuple[str, ...]:
    """The hashes of the inline scripts in the index.html the installed Streamlit serves (read at start-up)."""
    from pathlib import Path

    from streamlit import file_util

    index = Path(file_util.get_static_dir()) / "index.html"
    try:
        html = index.read_text(encoding="utf-8")
    except OSError as error:  # no page to serve, or one we cannot vouch for: refuse to start
        raise RuntimeError(f"Streamlit's page {index} cannot be read ({error.strerror}); the page is not "
                           "served without its Content-Security-Policy.") from error
    hashes = inline_script_hashes(html)
    logger.info("page guard: %d inline script(s) in %s allowed by hash", len(hashes), index)
    return hashes


# ----- the ASGI shell -----
def _headers(scope: Scope) -> dict[str, str]:
    # A repeated header keeps its first value; browsers send Host and Origin once.
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        headers.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
    return headers


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return unquote(value)
    return None


def _bearer(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class GuardMiddleware:
    """ASGI middleware applying `check_request` to every HTTP and websocket request."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy | None = None,
                 script_hashes: Sequence[str] | None = None) -> None:
        self.app = app
        self._policy = policy
        # Read when the server builds its app, i.e. at start-up, from the files it is about to serve.
        self.script_hashes = tuple(script_hashes) if script_hashes is not None else streamlit_script_hashes()

    @property
    def policy(self) -> GuardPolicy:
        # Built on first use: Streamlit's config (address, port) is final once requests arrive.
        if self._policy is None:
            from streamlit import config

            address = str(config.get_option("server.address") or "127.0.0.1")
            self._policy = policy_from_settings(address, int(config.get_option("server.port")))
            logger.info("page guard: answering to %s%s", ", ".join(sorted(self._policy.allowed)),
                        " with an access token" if self._policy.token else "")
        return self._policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        policy = self.policy
        headers = _headers(scope)
        send = _adding_headers(send, security_headers(self.script_hashes, headers.get("host")))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        from_query = query.get(TOKEN_PARAMETER)
        exempt = scope.get("path") in TOKEN_EXEMPT_PATHS
        reason = check_request(
            headers.get("host"),
            headers.get("origin"),
            policy.allowed,
            token=None if exempt else policy.token,
            offered_tokens=(_bearer(headers.get("authorization")), _cookie(headers.get("cookie"), TOKEN_COOKIE),
                            from_query),
        )
        if reason is not None:
            logger.warning("page guard: %s %s: %s", scope["type"], scope.get("path"), reason)
            await _refuse(scope, send, reason)
            return
        if policy.token and from_query is not None and scope["type"] == "http" and scope.get("method") == "GET":
            await _remember_token(scope, send, query, policy.token)
            return
        await self.app(scope, receive, send)


_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})


def _adding_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, with `extra` replacing any headers of the same names on the response's start."""
    names = {name for name, _ in extra}

    async def wrapped(message: Message) -> None:
        if message["type"] in _STARTS:
            kept = [(name, value) for name, value in message.get("headers") or [] if bytes(name).lower() not in names]
            message = {**message, "headers": [*kept, *extra]}
        await send(message)

    return wrapped


async def _refuse(scope: Scope, send: Send, reason: str) -> None:
    body = (reason + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
        return
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _remember_token(scope: Scope, send: Send, query: dict[str, str], token: str) -> None:
    """Redirect to the same address without `?token=`, leaving the token in an HttpOnly cookie."""
    rest = {key: value for key, value in query.items() if key != TOKEN_PARAMETER}
    location = scope.get("root_path", "") + scope.get("path", "/") + (f"?{urlencode(rest)}" if rest else "")
    # Quoted: a token may hold characters a cookie value cannot (`;`, `,`, spaces).
    cookie = f"{TOKEN_COOKIE}={quote(token, safe='')}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
                            (b"cache-control", b"no-store"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def install() -> None:
    """Put GuardMiddleware first in the middleware Streamlit builds its server from (idempotent)."""
    from starlette.middleware import Middleware
    from streamlit.web.server.starlette import starlette_app

    original = getattr(starlette_app, "create_streamlit_middleware", None)
    if original is None:
        raise RuntimeError("This Streamlit version has no create_streamlit_middleware; the page guard cannot "
                           "be installed, so the page is not served.")
    if getattr(original, "archivist_guard", False):
        return

    def create_streamlit_middleware() -> list[Middleware]:
        return [Middleware(GuardMiddleware), *original()]

    create_streamlit_middleware.archivist_guard = True  # type: ignore[attr-defined]
    starlette_app.create_streamlit_middleware = create_streamlit_middleware


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m ui.guard run APP ...`: Streamlit's own command line, with the guard installed first."""
    from streamlit.web import cli

    install()
    if argv is not None:
        sys.argv = ["streamlit", *argv]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
