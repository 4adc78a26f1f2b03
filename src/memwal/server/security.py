"""The HTTP server's doors: a bearer token, and Host and Origin checks against DNS rebinding.

One pure-ASGI middleware in front of everything the server serves (`/mcp`, and later `/api` and
the pages), so no route can forget them:

- **Host** (loopback binds): a browser page on an attacker's domain that resolves to 127.0.0.1
  sends that domain as Host; only `127.0.0.1`, `localhost` and `[::1]` with our port pass.
- **Origin**: a request that carries an Origin (every cross-site browser request does) must come
  from the server's own origins, or one the operator allowed.
- **Token**: when the server has one (required on any non-loopback bind), every request must
  carry `Authorization: Bearer <token>`; answered 401 otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from typing import Any, Awaitable, Callable, Iterable

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                   Awaitable[None]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def own_hosts(port: int) -> set[str]:
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


class Doors:
    """Checks every HTTP request before the app sees it."""

    def __init__(self, app: ASGIApp, *, port: int, token: str | None, check_host: bool,
                 origins: Iterable[str] = ()) -> None:
        self.app = app
        self.hosts = own_hosts(port)
        self.check_host = check_host
        self.origins = {f"http://{host}" for host in self.hosts} | set(origins)
        self.expected = f"Bearer {token}".encode() if token else None
        self.cookie = f"memwal_token={token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan; memwal serves no websockets
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if self.check_host and host not in self.hosts:
            await _refuse(send, 421, f"Host {host!r} is not this server's",
                          "Use http://127.0.0.1:<port>/ (DNS-rebinding protection).")
        elif origin and origin not in self.origins:
            await _refuse(send, 403, f"Origin {origin!r} is not allowed",
                          "Call the server from its own origin, or start it with --allow-origin.")
        elif self.expected and not self._authorized(headers) and scope["path"] != "/login":
            if scope["method"] == "GET" and not scope["path"].startswith(("/api", "/mcp")):
                await _redirect(send, "/login")  # a person with a browser: sign in first
            else:
                await _refuse(send, 401, "missing or wrong bearer token",
                              "Send 'Authorization: Bearer <token>' (the server's --token).",
                              extra=[(b"www-authenticate", b"Bearer")])
        else:
            await self.app(scope, receive, send)


    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.expected is not None and self.cookie is not None
        if secrets.compare_digest(headers.get(b"authorization", b""), self.expected):
            return True
        cookies = [c.strip() for c in headers.get(b"cookie", b"").split(b";")]
        return any(secrets.compare_digest(c, self.cookie) for c in cookies)


async def _redirect(send: Any, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(send: Any, status: int, message: str, fix: str,
                  extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    body = json.dumps({"error": {"message": message, "fix": fix, "status": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
