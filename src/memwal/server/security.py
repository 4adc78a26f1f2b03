"""The HTTP server's doors: Host, Origin and token checks, login throttling, request size.

One pure-ASGI middleware in front of everything the server serves (`/mcp`, `/api` and the
pages), so no route can forget them. It runs as soon as a request's headers are complete and
before anything reads its body; every refusal closes the connection. In order:

- **one of each**: two Host, Origin or Authorization headers are refused (400): proxies and
  the server could each read a different one.
- **Host** (loopback binds): a browser page on an attacker's domain that resolves to 127.0.0.1
  sends that domain as Host; only `127.0.0.1`, `localhost`, `[::1]` and the bound address with
  our port pass.
- **Origin**: a request that carries an Origin (every cross-site browser request does) must come
  from the server's own origins, or one the operator allowed. With a token, the origin the
  browser reached the server at (`http(s)://<Host>`) passes too when the request carries the
  valid token, or is the login form: a DNS-rebinding page has the same Host but never the token.
- **Login throttle**: a login attempt, or a request with a wrong token, costs its client address
  one of a few attempts that refill at one a second; past them, 429 with Retry-After.
- **Token**: when the server has one (required on any non-loopback bind), every request must
  carry `Authorization: Bearer <token>` or a session cookie the login form set; 401 otherwise,
  or, for a page, the login page with the page asked for as its `next`. The cookie never holds
  the token: it is a random session id and an expiry signed (HMAC-SHA256) with a key only this
  server process holds (`Sessions`), so a forged, altered or expired one is refused, and a
  restart signs everyone out. The favicon is served to anyone.
- **Size**: a body must say its length (411 for a chunked one) and be at most
  `serve.max_body_bytes` (413), refused before a byte of it is read.

Every response gets `X-Frame-Options: DENY` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import time
import urllib.parse
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Iterable, MutableMapping

# ASGI's shapes, as Starlette types them (a scope or message is a mutable mapping).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

SINGLE = (b"host", b"origin", b"authorization")
SAFE_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff")]
CLOSE = (b"connection", b"close")
SESSION_COOKIE = "memwal_session"
SESSION_SECONDS = 7 * 24 * 3600
PUBLIC = ("/login", "/favicon.ico")  # served without the token
# The key that signs this process's sessions (with the token: see Sessions).
_PROCESS_KEY = secrets.token_bytes(32)


class Sessions:
    """Signed login sessions: the cookie value is `<id>.<expiry>.<mac>`, a random id and an
    expiry (epoch seconds) signed with HMAC-SHA256. The key is this process's random secret
    bound to the server's token, so the door (Doors) and the login form (the web app), made
    separately, sign and check alike, a session of another server or an earlier run is refused,
    and the token itself is never sent back."""

    def __init__(self, token: str, seconds: int = SESSION_SECONDS) -> None:
        self.key = hmac.new(_PROCESS_KEY, token.encode(), hashlib.sha256).digest()
        self.seconds = seconds

    def _mac(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        """A new session's cookie value."""
        payload = f"{secrets.token_urlsafe(18)}.{int(time.time()) + self.seconds}"
        return f"{payload}.{self._mac(payload)}"

    def valid(self, value: str) -> bool:
        """The value is one this server signed, unaltered and not expired."""
        parts = value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        payload = f"{parts[0]}.{parts[1]}"
        return hmac.compare_digest(self._mac(payload), parts[2]) and int(parts[1]) > time.time()


def safe_next(raw: str | None) -> str:
    """Where a login may send the browser back to: a path of this server (with its query), or
    `/`. Anything that could leave the origin (a scheme, `//host`, a backslash browsers read as
    a slash, control characters) gives `/`: never an open redirect."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in raw):
        return "/"
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def own_hosts(port: int, bound: str = "127.0.0.1") -> set[str]:
    """The Host values a loopback server answers: the usual names and the address it is bound to."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if is_loopback(bound):  # e.g. --host 127.0.0.2
        address = bound.strip("[]")
        names.add(f"[{address}]" if ":" in address else address)
    return {f"{name}:{port}" for name in names}


class Throttle:
    """A few attempts per client address, refilled at `rate` a second (a token bucket each)."""

    def __init__(self, burst: int = 5, rate: float = 1.0, clients: int = 10_000) -> None:
        self.burst, self.rate, self.clients = burst, rate, clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, client: str) -> float:
        """0 if this attempt may go ahead (and it is counted), else the seconds to wait."""
        now = time.monotonic()
        tokens, then = self.buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self.buckets[client] = (tokens, now)
        while len(self.buckets) > self.clients:  # bounded memory whatever the addresses
            self.buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) / self.rate


class Doors:
    """Checks every HTTP request before the app sees it."""

    def __init__(self, app: ASGIApp, *, port: int, token: str | None, check_host: bool,
                 origins: Iterable[str] = (), bound: str = "127.0.0.1",
                 max_body_bytes: int = 16 * 1024 * 1024, throttle: Throttle | None = None) -> None:
        self.app = app
        self.hosts = own_hosts(port, bound)
        self.check_host = check_host
        self.origins = {f"http://{host}" for host in self.hosts} | set(origins)
        self.expected = f"Bearer {token}".encode() if token else None
        self.sessions = Sessions(token) if token else None
        self.max_body_bytes = max_body_bytes
        self.throttle = throttle or Throttle()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan; memwal serves no websockets
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(send)
            return

        async def send_safely(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in SAFE_HEADERS if h[0] not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        from starlette.requests import ClientDisconnect

        try:
            await self.app(scope, receive, send_safely)
        except ClientDisconnect:
            pass  # the client left, or was cut off at its body deadline: nobody to answer

    def _refusal(self, scope: Scope) -> Callable[[Any], Awaitable[None]] | None:
        """The answer that refuses this request, or None to let it in; in the documented order."""
        raw = scope.get("headers", [])
        names = [k.lower() for k, _ in raw]
        headers = {k.lower(): v for k, v in raw}
        doubled = [n.decode() for n in SINGLE if names.count(n) > 1]
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        path, method = scope["path"], scope["method"]
        login = path == "/login" and method == "POST"
        public = path in PUBLIC
        authorized = self.expected is not None and self._authorized(headers)
        if doubled:
            return _refuse(400, f"more than one {doubled[0]} header",
                           "Send each of Host, Origin and Authorization once.")
        if self.check_host and host not in self.hosts:
            return _refuse(421, f"Host {host!r} is not this server's",
                           "Use http://127.0.0.1:<port>/ (DNS-rebinding protection).")
        if origin and not self._origin_ok(origin, host, authorized or login):
            return _refuse(403, f"Origin {origin!r} is not allowed",
                           "Call the server from its own origin, or start it with --allow-origin.")
        # A stale cookie must not keep its browser from the login page itself.
        tries = login or (_offers_token(headers) and not public)
        if self.expected is not None and not authorized and tries:
            wait = self.throttle.wait(_client(scope))
            if wait:
                return _refuse(429, "too many login attempts from this address",
                               f"Wait {math.ceil(wait)} s.",
                               extra=[(b"retry-after", str(math.ceil(wait)).encode())])
        if self.expected is not None and not authorized and not public:
            if method == "GET" and not path.startswith(("/api", "/mcp")):
                # A person with a browser: sign in first, then back to the page asked for.
                asked = path + (f"?{scope['query_string'].decode('latin-1')}"
                                if scope.get("query_string") else "")
                back = safe_next(asked)
                return _redirect("/login" if back == "/" else
                                 "/login?" + urllib.parse.urlencode({"next": back}))
            return _refuse(401, "missing or wrong bearer token",
                           "Send 'Authorization: Bearer <token>' (the server's --token).",
                           extra=[(b"www-authenticate", b"Bearer")])
        return self._size_refusal(headers)

    def _origin_ok(self, origin: str, host: str, trusted: bool) -> bool:
        if origin in self.origins:
            return True
        # The page as the browser reached it (a remote machine's name or address): its own
        # origin, trusted once the request proves it holds the token (or is the login form).
        return trusted and self.expected is not None and bool(host) and \
            origin in (f"http://{host}", f"https://{host}")

    def _size_refusal(self, headers: dict[bytes, bytes]) -> Callable[[Any], Awaitable[None]] | None:
        if b"transfer-encoding" in headers:
            return _refuse(411, "a request body of unknown length (chunked) is not accepted",
                           "Send the body with a Content-Length header.")
        length = headers.get(b"content-length", b"0").strip()
        if not length.isdigit() or int(length) > self.max_body_bytes:
            return _refuse(413, f"the request body is larger than {self.max_body_bytes} bytes",
                           "Send less, or raise serve.max_body_bytes.")
        return None

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.expected is not None and self.sessions is not None
        if secrets.compare_digest(headers.get(b"authorization", b""), self.expected):
            return True
        return any(self.sessions.valid(value) for value in _session_cookies(headers))


def _session_cookies(headers: dict[bytes, bytes]) -> list[str]:
    """The values of the session cookies a request carries."""
    found = []
    for pair in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = pair.strip().partition("=")
        if name == SESSION_COOKIE:
            found.append(value)
    return found


def _offers_token(headers: dict[bytes, bytes]) -> bool:
    """The request tries a token or a session (a wrong one, since it was not authorized)."""
    return b"authorization" in headers or bool(_session_cookies(headers))


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def _redirect(location: str) -> Callable[[Any], Awaitable[None]]:
    async def answer(send: Any) -> None:
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"content-length", b"0"),
                                *SAFE_HEADERS]})
        await send({"type": "http.response.body", "body": b""})

    return answer


def _refuse(status: int, message: str, fix: str,
            extra: list[tuple[bytes, bytes]] = ()) -> Callable[[Any], Awaitable[None]]:  # type: ignore[assignment]
    """A JSON error answer that closes the connection (its body, if any, is never read)."""
    body = json.dumps({"error": {"message": message, "fix": fix, "status": status}}).encode()

    async def answer(send: Any) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), CLOSE,
                                *SAFE_HEADERS, *extra]})
        await send({"type": "http.response.body", "body": body})

    return answer
