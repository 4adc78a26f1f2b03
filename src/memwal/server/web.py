"""The web page and its JSON API: one code path rendered twice (a page, and `/api/…` JSON).

Every handler gathers its data from the public API, then returns it as JSON under `/api/` (each
result's `as_json()`: what `--json` prints and the MCP tools return) or renders it through a
template (jinja2, autoescaped: a note's `<script>` is shown as text). Every
page state is a URL (filters and searches are GET parameters, and a replay's plan is in the
URL its result is shown at). The state-changing requests, a replay (as is or re-embedded) and a
migration, need --allow-destructive and are POSTs carrying the server's CSRF token, after a
confirmation page; the Doors in front of the app (security.py) check Host, Origin and the
token (or the signed session the login form sets) first. Errors on a page are written for the
page: what went wrong and which link, button or choice to use, never a command-line flag.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import re
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import memwal
from memwal import remote
from memwal.config import MAX_TOP_K
from memwal.server.security import SESSION_COOKIE, Sessions, safe_next
from memwal.server.state import ServerState

TEMPLATES = Path(__file__).with_name("templates")
MAX_ID = 2**63 - 1
BATCH_ID = re.compile(r"[0-9a-f]{32}")
LIST = "Go back to the Dead letters list"
# The icon of every page (and /favicon.ico): a stack of pages with the index's blue.
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
           '<rect x="7" y="3" width="20" height="24" rx="3" fill="#c7d7f5"/>'
           '<rect x="4" y="6" width="20" height="23" rx="3" fill="#1f5fbf"/>'
           '<path d="M9 13h10M9 18h10M9 23h6" stroke="#fff" stroke-width="2.2" '
           'stroke-linecap="round"/></svg>')


class Forbidden(memwal.UsageError):
    """A destructive action on a server started without --allow-destructive (HTTP 403)."""

    http_status = 403


class Refused(memwal.UsageError):
    """A form that did not come from this server's page: CSRF token missing or stale (403)."""

    http_status = 403


class AlreadyReplayed(memwal.DeadLetterError):
    """Dead letters a replay was asked for, which a replay has already claimed (409)."""

    http_status = 409


# The page's words for errors whose fix, as the library words it, is a command line.
NOT_FOUND = (f"{LIST}: it shows those that exist (tick “include replayed” to see the replayed "
             "ones too).")
PAGE_FIXES: tuple[tuple[type[memwal.MemwalError], str], ...] = (
    (memwal.DeadLetterNotFound, NOT_FOUND),
    (memwal.DeadLetterError, f"{LIST} and tick the ones to replay."),
    (memwal.MigrationError, "The Model card of the Overview shows where the migration stands."),
    (memwal.ModelMismatch, "The Model card of the Overview shows both models; a server that allows "
                           "changes offers to migrate there."),
)


def for_page(error: memwal.MemwalError) -> tuple[str, str]:
    """An error's message and fix as the page says them: a fix that is a command line (a flag,
    an `mm` command) is replaced by the page's way to do it, where the page has one."""
    message, fix = error.message, error.fix
    if "`" in fix or " --" in fix or fix.startswith("--"):
        fix = next((words for kind, words in PAGE_FIXES if isinstance(error, kind)), fix)
        if fix != error.fix and message.endswith(":"):  # it led into the command line's fix
            message = message[:-1] + "."
    return message, fix


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
        self.sessions = Sessions(token) if token else None
        self.secret = secrets.token_bytes(32)
        self.csrf = hmac.new(self.secret, b"csrf", hashlib.sha256).hexdigest()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters.update(when=_when, seconds=_seconds, snippet=_snippet)

    # -- rendering ---------------------------------------------------------------------------

    def page(self, template: str, http_status: int = 200, **data: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(home=str(self.state.settings.home), **data)
        return HTMLResponse(html, status_code=http_status, headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; img-src 'self' data:; "
                                       "frame-ancestors 'none'",
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
                return self.error(request, error)

        return wrapper

    def error(self, request: Request, error: memwal.MemwalError) -> Response:
        """The answer to an error: JSON under /api/, else a page in the page's words; both with
        the HTTP status of the error's kind."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": error.as_json()}, status_code=error.http_status)
        message, fix = for_page(error)
        return self.page("error.html", http_status=error.http_status, message=message, fix=fix)

    def check_csrf(self, sent: object) -> None:
        if not hmac.compare_digest(str(sent or ""), self.csrf):
            raise Refused("this form did not come from this server's page (its CSRF token is "
                          "missing or out of date).",
                          "Reload the page and submit the form again from there.")

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
            ids = (0,)
        if any(not 1 <= i <= MAX_ID for i in ids):
            raise memwal.DeadLetterError("dead letter ids are whole numbers.",
                                         "Select them in the table.")
        if not ids:
            raise memwal.DeadLetterError("no dead letter selected.", "Tick the ones to replay.")
        return ids

    def replayable(self, ids: tuple[int, ...]) -> list[memwal.JsonResult]:
        """The rows of dead letters a replay is asked for; DeadLetterNotFound (404) when one is
        gone, AlreadyReplayed (409) when a replay claimed one since the list was shown."""
        rows = memwal.list_dead_letters(self.state.settings, memwal.Selection(ids=ids))
        missing = sorted(set(ids) - {r["id"] for r in rows})
        if missing:
            raise memwal.DeadLetterNotFound(
                f"dead letter{_s(missing)} {_listed(missing)} do{'es' if len(missing) == 1 else ''}"
                " not exist (purged since the list was shown?).", NOT_FOUND)
        done = [r for r in rows if r["replayed_by"]]
        if done:
            raise AlreadyReplayed(
                f"dead letter{_s(done)} {_listed([r['id'] for r in done])} "
                f"{'was' if len(done) == 1 else 'were'} already replayed (by batch "
                f"{_listed(sorted({r['replayed_by'] for r in done}))}); each is replayed once.",
                f"{LIST} and tick “include replayed” to see what became of "
                f"{'it' if len(done) == 1 else 'them'}: a record refused again is a new dead "
                "letter there, which you can tick and replay.")
        return rows

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
        plan = _plan_of(request.query_params)
        replay = None
        if plan is not None:
            replay = {**self.replay_outcome(plan),
                      "reembed": request.query_params.get("reembed") == "1"}
        return self.page("dead_letters.html", replay=replay,
                         result_query=_plan_query(plan, reembed=False)[1:] if plan else "",
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
            raise Forbidden("replaying dead letters is turned off on this server: it was started "
                            "without allowing changes.",
                            "Whoever runs it can restart it allowing them (mm serve "
                            "--allow-destructive); until then the list is read-only.")

    def replay_page(self, request: Request) -> Response:
        self.destructive()
        ids = self._ids(request.query_params.getlist("ids"))
        reembed = request.query_params.get("reembed") in ("1", "true", "on")
        rows = self.replayable(ids)
        return self.page("replay.html", rows=rows, csrf=self.csrf, reembed=reembed,
                         configured=self.migration()["configured"],
                         active=memwal.queue_status(self.state.settings)["active_model"])

    def replay(self, ids: tuple[int, ...], reembed: bool) -> memwal.ReplayPlan:
        self.replayable(ids)
        return memwal.replay_dead_letters(self.state.settings, memwal.Selection(ids=ids),
                                          reembed=reembed)

    async def replay_post(self, request: Request) -> Response:
        import anyio

        try:
            self.destructive()
            form = await request.form()
            self.check_csrf(form.get("csrf"))
            ids = self._ids([str(v) for v in form.getlist("ids")])
            reembed = form.get("reembed") in ("1", "true", "on")
            plan = await anyio.to_thread.run_sync(self.replay, ids, reembed)
        except memwal.MemwalError as exc:
            return self.error(request, exc)
        return RedirectResponse("/dead-letters" + _plan_query(plan, reembed), status_code=303)

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
            reembed = body.get("reembed") is True
            plan = await anyio.to_thread.run_sync(self.replay, ids, reembed)
        except memwal.MemwalError as exc:
            return JSONResponse({"error": exc.as_json()}, status_code=exc.http_status)
        except (ValueError, AttributeError):
            return JSONResponse({"error": {"message": "the body is JSON {\"ids\": [...]}"}},
                                status_code=400)
        return JSONResponse({**plan.as_json(), "reembed": reembed,
                             "letters": [{"id": letter, "batch_id": batch}
                                         for letter, batch in plan.letters.items()],
                             "result": "/api/dead-letters/replay-result"
                                       + _plan_query(plan, reembed)})

    def replay_outcome(self, plan: memwal.ReplayPlan) -> dict[str, Any]:
        """What the committer did with each letter of a replay: `state` "queued" until all its
        batches are committed, then "committed", each letter's `outcome` one of committed,
        dead_lettered (again: the new dead letter's id, reason and detail), claimed (another
        replay had it first), purged or not_replayable. Read-only: never waits, never commits."""
        settings = self.state.settings
        done = memwal.replay_result(settings, plan, timeout=0, take_role=False) \
            if plan.batch_ids else None
        letters: list[dict[str, Any]] = [
            {"id": letter, "batch_id": None, "outcome": "not_replayable", "why": why}
            for letter, why in plan.not_replayable]
        state = "committed" if done is not None or not plan.batch_ids else "queued"
        rows = {r["id"]: r for r in memwal.list_dead_letters(
            settings, memwal.Selection(ids=tuple(plan.letters)))} if plan.letters else {}
        again: dict[tuple[str, int], memwal.JsonResult] = {}
        if state == "committed" and plan.letters:
            ours = set(plan.batch_ids)
            for new in memwal.list_dead_letters(settings, memwal.Selection(include_replayed=True)):
                if new["batch_id"] in ours:
                    full = memwal.show_dead_letter(settings, new["id"])
                    again[(full["batch_id"], full["item_index"])] = full
        place: dict[str, int] = {}
        for letter, batch in plan.letters.items():
            index = place[batch] = place.get(batch, -1) + 1  # its place in its batch
            row = rows.get(letter)
            entry: dict[str, Any] = {"id": letter, "batch_id": batch,
                                     "source_file": row["source_file"] if row else None}
            if state == "queued":
                entry["outcome"] = "queued"
            elif row is None:
                entry["outcome"] = "purged"
            elif row["replayed_by"] != batch:
                entry.update(outcome="claimed", claimed_by=row["replayed_by"])
            elif (batch, index) in again:
                new = again[(batch, index)]
                entry.update(outcome="dead_lettered", new_id=new["id"], reason=new["reason"],
                             detail=new["detail"])
            else:
                entry["outcome"] = "committed"
            letters.append(entry)
        counts = {kind: sum(1 for e in letters if e["outcome"] == kind)
                  for kind in ("committed", "dead_lettered", "claimed", "purged",
                               "not_replayable", "queued")}
        committer = memwal.queue_status(settings)["committer"]["running"]
        return {"state": state, "batch_ids": plan.batch_ids, "replayed": plan.replayed,
                "letters": letters, "counts": counts, "committer_running": committer}

    def api_replay_result(self, request: Request) -> Response:
        plan = _plan_of(request.query_params)
        if plan is None:
            raise memwal.DeadLetterError("no replay named: pass the batch parameters the replay "
                                         "answered with.", "See POST /api/dead-letters/replay.")
        return JSONResponse(self.replay_outcome(plan))

    def api_migration(self, request: Request) -> Response:
        return JSONResponse(self.migration())

    async def migrate_post(self, request: Request) -> Response:
        """Start (or cancel) a migration to the configured model, from the overview's form."""
        import anyio

        try:
            if not self.state.allow_destructive:
                raise Forbidden("switching models is turned off on this server: it was started "
                                "without allowing changes.",
                                "Whoever runs it can restart it allowing them (mm serve "
                                "--allow-destructive).")
            form = await request.form()
            self.check_csrf(form.get("csrf"))
            if form.get("action") == "cancel":
                def cancel() -> None:
                    self.state.migration.close()
                    memwal.cancel_migration(self.state.settings)

                await anyio.to_thread.run_sync(cancel)
            else:
                await anyio.to_thread.run_sync(self.state.migration.start)
        except memwal.MemwalError as exc:
            return self.error(request, exc)
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
        return self.page("login.html", failed=False,
                         next=safe_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        """The login form: with the server's token, a signed session cookie (never the token)
        and back to the page asked for (`next`: a path of this server, else /)."""
        form = await request.form()
        back = safe_next(str(form.get("next") or "/"))
        if self.sessions is None or self.token is None or \
                not hmac.compare_digest(str(form.get("token", "")), self.token):
            return self.page("login.html", http_status=401, failed=True, next=back)
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(SESSION_COOKIE, self.sessions.issue(), max_age=self.sessions.seconds,
                            path="/", httponly=True, samesite="strict")
        return response

    def favicon(self, request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})

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
            Route("/api/dead-letters/replay-result", g(self.api_replay_result)),
            Route("/api/csrf", g(self.api_csrf)),
            Route("/api/migration", g(self.api_migration)),
            Route("/migrate", self.migrate_post, methods=["POST"]),
            Route("/dead-letters/{letter_id}", g(self.letter_page)),
            Route("/api/dead-letters/{letter_id}", g(self.api_letter)),
            Route("/search", g(self.search_page)),
            Route("/api/search", g(self.api_search)),
            Route("/login", g(self.login_page), methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/favicon.ico", self.favicon),
        ]


def _letter_id(request: Request) -> int:
    raw = request.path_params["letter_id"]
    if not raw.isdigit() or not 1 <= int(raw) <= 2**63 - 1:
        raise memwal.DeadLetterNotFound(f"no dead letter {raw!r}:", "ids are whole numbers.")
    return int(raw)


def _s(items: list[Any]) -> str:
    return "" if len(items) == 1 else "s"


def _listed(values: list[Any], most: int = 5) -> str:
    shown = ", ".join(map(str, values[:most]))
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def _plan_query(plan: memwal.ReplayPlan, reembed: bool) -> str:
    """The query string that names a replay: each batch with its letters in order (`batch=
    <id>:<letter>,<letter>…`), the letters it could not replay, and whether it re-embedded."""
    pairs = [("replayed", "1")]
    for batch in plan.batch_ids:
        pairs.append(("batch", f"{batch}:" + ",".join(
            str(letter) for letter, b in plan.letters.items() if b == batch)))
    pairs += [("skipped", f"{letter}:{why}") for letter, why in plan.not_replayable]
    if reembed:
        pairs.append(("reembed", "1"))
    return "?" + urllib.parse.urlencode(pairs)


def _plan_of(params: Any) -> memwal.ReplayPlan | None:
    """The replay a query string names (`_plan_query`), or None if it names none or is garbled."""
    batches = params.getlist("batch")
    skipped = params.getlist("skipped")
    if not batches and not skipped:
        return None
    letters: dict[int, str] = {}
    not_replayable: list[tuple[int, str]] = []
    try:
        for value in batches:
            batch, _, ids = value.partition(":")
            if not BATCH_ID.fullmatch(batch):
                return None
            letters.update((int(letter), batch) for letter in ids.split(",") if letter)
        for value in skipped:
            letter, _, why = value.partition(":")
            not_replayable.append((int(letter), why[:200]))
    except ValueError:
        return None
    if any(not 1 <= letter <= MAX_ID for letter in [*letters, *(i for i, _ in not_replayable)]):
        return None
    batch_ids = list(dict.fromkeys(letters.values()))
    return memwal.ReplayPlan(batch_ids, len(letters), not_replayable, letters)


def _bounded(raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or not raw.isdigit():
        return default
    return max(low, min(high, int(raw)))


def hostname() -> str:
    return socket.gethostname()
