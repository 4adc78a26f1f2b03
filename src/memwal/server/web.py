"""The web page and its JSON API: one code path rendered twice (a page, and `/api/…` JSON).

Every handler gathers its data from the public API, then returns it as JSON under `/api/` (each
result's `as_json()`: what `--json` prints and the MCP tools return) or renders it through a
template (jinja2, autoescaped: a note's `<script>` is shown as text). Every
page state is a URL (filters and searches are GET parameters). The one state-changing request,
a replay, needs --allow-destructive and is a POST carrying the server's CSRF token, after a
confirmation page; the Doors in front of the app (security.py) check Host, Origin and the
token first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Callable

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import memwal
from memwal import remote
from memwal.config import MAX_TOP_K
from memwal.server.state import ServerState

TEMPLATES = Path(__file__).with_name("templates")


class Forbidden(memwal.UsageError):
    """A destructive action on a server started without --allow-destructive (HTTP 403)."""

    http_status = 403


def _when(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "never"


def _seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 60 else f"{s / 60:.1f} min"


def _snippet(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


class Web:
    """The page and API handlers of one server."""

    def __init__(self, state: ServerState, token: str | None) -> None:
        self.state = state
        self.token = token
        self.secret = secrets.token_bytes(32)
        self.csrf = hmac.new(self.secret, b"csrf", hashlib.sha256).hexdigest()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters.update(when=_when, seconds=_seconds, snippet=_snippet)

    # -- rendering ---------------------------------------------------------------------------

    def page(self, template: str, **data: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(home=str(self.state.settings.home), **data)
        return HTMLResponse(html, headers={"Content-Security-Policy": "default-src 'self'; "
                                           "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                           "img-src 'self' data:; frame-ancestors 'none'",
                                           "X-Content-Type-Options": "nosniff"})

    def guarded(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """Errors a user can act on become an answer with the fix (JSON or text), with the
        HTTP status the error's kind carries (4xx for the request's fault, 5xx for the server's)."""

        async def wrapper(request: Request) -> Response:
            import anyio

            try:
                return await anyio.to_thread.run_sync(handler, request)
            except Exception as exc:
                error = memwal.as_memwal_error(exc)
                if error is None:
                    raise
                if request.url.path.startswith("/api/"):
                    return JSONResponse({"error": error.as_json()}, status_code=error.http_status)
                return HTMLResponse(self.env.from_string(
                    "<!doctype html><title>error</title><p>{{ e }}</p><p><a href='/'>back</a>"
                ).render(e=str(error)), status_code=error.http_status)

        return wrapper

    # -- data, shared by pages and API --------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        settings = self.state.settings
        queue = memwal.queue_status(settings)
        committer = queue["committer"]
        where = committer.get("holder") or (f"{committer['host']} pid {committer['pid']}"
                                             if committer["running"] else "—")
        return {"status": memwal.index_status(settings), "queue": queue, "where": where,
                "now": time.time(), "migration": self.migration(),
                "destructive": self.state.allow_destructive, "csrf": self.csrf}

    def migration(self) -> dict[str, Any]:
        """The index's migration (from the index) and this server's migrator, if it runs one."""
        reset = memwal.reset_status(self.state.settings)
        return {"index": reset["migration"], "here": self.state.migration.state(),
                "active": reset["active_model"], "configured": reset["configured_model"],
                "differ": reset["differ"]}

    def letters(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        selection = memwal.Selection(reason=params.get("reason") or None,
                                     fingerprint=params.get("fingerprint") or None,
                                     include_replayed=params.get("replayed") in ("1", "true", "on"))
        filters = {"reason": selection.reason, "fingerprint": selection.fingerprint,
                   "replayed": selection.include_replayed}
        settings = self.state.settings
        every = memwal.list_dead_letters(settings, memwal.Selection(include_replayed=True))
        rows = memwal.list_dead_letters(settings, selection)
        with_status = memwal.queue_status(settings)
        return {"rows": rows, "filters": filters, "active": with_status["active_model"],
                "reasons": sorted({r["reason"] for r in every}),
                "fingerprints": sorted({r["fingerprint"] for r in every if r["fingerprint"]})}

    def letter(self, letter_id: int) -> dict[str, Any]:
        record = memwal.show_dead_letter(self.state.settings, letter_id)
        return {"letter": record, "active": memwal.queue_status(self.state.settings)["active_model"],
                "record_json": json.dumps(record.as_json()["item"], indent=2)}

    def _ids(self, values: list[str]) -> tuple[int, ...]:
        try:
            ids = tuple(int(v) for v in values if v.strip())
        except ValueError:
            raise memwal.DeadLetterError("dead letter ids are whole numbers.",
                                         "Select them in the table.") from None
        if not ids:
            raise memwal.DeadLetterError("no dead letter selected.", "Tick the ones to replay.")
        return ids

    # -- handlers ----------------------------------------------------------------------------

    def index_page(self, request: Request) -> Response:
        return self.page("overview.html", **self.overview())

    def api_status(self, request: Request) -> Response:
        return JSONResponse(memwal.index_status(self.state.settings).as_json())

    def api_queue(self, request: Request) -> Response:
        return JSONResponse(memwal.queue_status(self.state.settings).as_json())

    def api_throughput(self, request: Request) -> Response:
        seconds = _bounded(request.query_params.get("seconds"), 600, 10, 86_400)
        step = _bounded(request.query_params.get("step"), 5, 1, 3600)
        return JSONResponse(memwal.throughput(self.state.settings, seconds, step).as_json())

    def letters_page(self, request: Request) -> Response:
        replayed = None
        if request.query_params.get("replayed_batches"):
            batch_ids = request.query_params["replayed_batches"].split(",")
            replayed = {"batch_ids": batch_ids, "count": request.query_params.get("count", "")}
        return self.page("dead_letters.html", replayed=replayed,
                         destructive=self.state.allow_destructive, **self.letters(request))

    def api_letters(self, request: Request) -> Response:
        return JSONResponse([row.as_json() for row in self.letters(request)["rows"]])

    def letter_page(self, request: Request) -> Response:
        return self.page("dead_letter.html", **self.letter(_letter_id(request)))

    def api_letter(self, request: Request) -> Response:
        return JSONResponse(self.letter(_letter_id(request))["letter"].as_json())

    def destructive(self) -> None:
        """Replaying (like switching models or purging) needs --allow-destructive, as over MCP."""
        if not self.state.allow_destructive:
            raise Forbidden("replaying dead letters from this server is not allowed.",
                            "Start `mm serve` with --allow-destructive, or run "
                            "`mm queue dead-letters replay` on its machine.")

    def replay_page(self, request: Request) -> Response:
        self.destructive()
        ids = self._ids(request.query_params.getlist("ids"))
        rows = memwal.list_dead_letters(self.state.settings, memwal.Selection(ids=ids))
        if len(rows) != len(ids):
            raise memwal.DeadLetterNotFound("some of those dead letters do not exist.",
                                            "Go back to the list.")
        return self.page("replay.html", rows=rows, csrf=self.csrf,
                         active=memwal.queue_status(self.state.settings)["active_model"])

    def replay(self, ids: tuple[int, ...]) -> dict[str, Any]:
        return memwal.replay_dead_letters(self.state.settings, memwal.Selection(ids=ids)).as_json()

    async def replay_post(self, request: Request) -> Response:
        import anyio

        try:
            self.destructive()
            form = await request.form()
            if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf):
                return HTMLResponse("refused: this form did not come from this server's page "
                                    "(CSRF token missing or wrong)", status_code=403)
            ids = self._ids([str(v) for v in form.getlist("ids")])
            done = await anyio.to_thread.run_sync(self.replay, ids)
        except memwal.MemwalError as exc:
            return HTMLResponse(f"<p>{markupsafe.escape(str(exc))}</p>",
                                status_code=exc.http_status)
        return RedirectResponse(f"/dead-letters?replayed_batches={','.join(done['batch_ids'])}"
                                f"&count={done['replayed']}&replayed=1", status_code=303)

    async def api_replay(self, request: Request) -> Response:
        import anyio

        try:
            self.destructive()
            if not hmac.compare_digest(request.headers.get("x-csrf-token", ""), self.csrf):
                return JSONResponse({"error": {"message": "missing or wrong X-CSRF-Token header",
                                               "fix": "Read it from GET /api/csrf."}},
                                    status_code=403)
            body = await request.json()
            ids = self._ids([str(i) for i in body.get("ids", [])])
            return JSONResponse(await anyio.to_thread.run_sync(self.replay, ids))
        except memwal.MemwalError as exc:
            return JSONResponse({"error": exc.as_json()}, status_code=exc.http_status)
        except (ValueError, AttributeError):
            return JSONResponse({"error": {"message": "the body is JSON {\"ids\": [...]}"}},
                                status_code=400)

    def api_migration(self, request: Request) -> Response:
        return JSONResponse(self.migration())

    async def migrate_post(self, request: Request) -> Response:
        """Start (or cancel) a migration to the configured model, from the overview's form."""
        import anyio

        try:
            if not self.state.allow_destructive:
                raise Forbidden("switching models from this server is not allowed.",
                                "Start `mm serve` with --allow-destructive, or run "
                                "`mm embedding-reset --mode migrate` on its machine.")
            form = await request.form()
            if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf):
                return HTMLResponse("refused: this form did not come from this server's page "
                                    "(CSRF token missing or wrong)", status_code=403)
            if form.get("action") == "cancel":
                def cancel() -> None:
                    self.state.migration.close()
                    memwal.cancel_migration(self.state.settings)

                await anyio.to_thread.run_sync(cancel)
            else:
                await anyio.to_thread.run_sync(self.state.migration.start)
        except memwal.MemwalError as exc:
            return HTMLResponse(f"<p>{markupsafe.escape(str(exc))}</p><p><a href='/'>back</a>",
                                status_code=exc.http_status)
        return RedirectResponse("/", status_code=303)

    def api_csrf(self, request: Request) -> Response:
        return JSONResponse({"csrf": self.csrf})

    def search_data(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        q = params.get("q", "").strip()
        top_k = _bounded(params.get("k"), 10, 1, MAX_TOP_K)
        if not q:
            return {"q": "", "hits": [], "warnings": []}
        # The filters `mm search` has, for another home's `mm search` (search.url) to pass on.
        cap = params.get("max_per_doc")
        result = self.state.searcher.search(
            q, top_k=top_k, namespace=params.get("namespace") or None,
            source_glob=params.get("source") or None,
            max_per_doc=_bounded(cap, 0, 0, MAX_TOP_K) if cap is not None else None,
            forward=remote.FORWARDED not in request.headers)
        return {"q": q, "hits": result.as_json(), "warnings": result.warnings}

    def search_page(self, request: Request) -> Response:
        return self.page("search.html", **self.search_data(request))

    def api_search(self, request: Request) -> Response:
        return JSONResponse(self.search_data(request))

    def login_page(self, request: Request) -> Response:
        return self.page("login.html", failed=False)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        if not self.token or not hmac.compare_digest(str(form.get("token", "")), self.token):
            return self.page("login.html", failed=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie("memwal_token", self.token, httponly=True, samesite="strict")
        return response

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/", g(self.index_page)),
            Route("/api/status", g(self.api_status)),
            Route("/api/queue", g(self.api_queue)),
            Route("/api/throughput", g(self.api_throughput)),
            Route("/dead-letters", g(self.letters_page)),
            Route("/api/dead-letters", g(self.api_letters)),
            Route("/dead-letters/replay", g(self.replay_page), methods=["GET"]),
            Route("/dead-letters/replay", self.replay_post, methods=["POST"]),
            Route("/api/dead-letters/replay", self.api_replay, methods=["POST"]),
            Route("/api/csrf", g(self.api_csrf)),
            Route("/api/migration", g(self.api_migration)),
            Route("/migrate", self.migrate_post, methods=["POST"]),
            Route("/dead-letters/{letter_id}", g(self.letter_page)),
            Route("/api/dead-letters/{letter_id}", g(self.api_letter)),
            Route("/search", g(self.search_page)),
            Route("/api/search", g(self.api_search)),
            Route("/login", g(self.login_page), methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
        ]


def _letter_id(request: Request) -> int:
    raw = request.path_params["letter_id"]
    if not raw.isdigit() or not 1 <= int(raw) <= 2**63 - 1:
        raise memwal.DeadLetterNotFound(f"no dead letter {raw!r}:", "ids are whole numbers.")
    return int(raw)


def _bounded(raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or not raw.isdigit():
        return default
    return max(low, min(high, int(raw)))


def hostname() -> str:
    return socket.gethostname()
