"""The web page of `mm serve`, driven by a real headless Chromium (Debian's, through Playwright).

In CI these tests never skip (.ci/run installs the browser); elsewhere, without a browser, they
skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import MM, poll, upsert, write_config
from memwal.config import load_settings
from memwal.producer import enqueue_items
from test_mcp import HttpServer

CHROMIUM = os.environ.get("MM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
A, B = "hash-384", "hash-384-b"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium, or set MM_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, empty profile of its own.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield context.new_page()
    context.close()


def notes(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def number(page: Any, testid: str) -> str:
    return page.get_by_test_id(testid).inner_text().strip()


def test_the_page_shows_what_the_cli_shows_while_a_producer_runs(
        mm: MM, tmp_path: Path, page: Any) -> None:
    write_config(mm.home, {"embedding": {"model": A}, "queue": {"batch_records": 8}})
    root = tmp_path / "notes"
    mm("index", str(notes(root, {"seed.md": "# Seed\n\nThe first note.\n"})))
    server = HttpServer(mm.home, "--worker")
    producer: subprocess.Popen | None = None
    try:
        page.goto(server.base + "/")
        for n in range(200):
            (root / f"n{n:03d}.md").write_text(f"# Note {n}\n\nNote {n} about kestrels.\n")
        producer = mm.popen("index", str(root))
        # The plot gains points: commits happen while the page is open.
        poll(lambda: int(page.locator("#points").inner_text()) >= 1, "the plot to gain a point", 120)
        # Freeze the producer, let the page refresh, then compare with the CLI.
        producer.send_signal(signal.SIGSTOP)
        try:
            def settled() -> bool:
                queue = mm("queue", "status", "--json").json()
                if queue["pending"] or queue["inflight"]:
                    return False
                before = float(page.locator("body").get_attribute("data-refreshed") or 0)
                poll(lambda: float(page.locator("body").get_attribute("data-refreshed") or 0) > before,
                     "the page's next refresh", 60)
                return True

            poll(settled, "the queue to drain and the page to refresh", 120)
            queue, status = mm("queue", "status", "--json").json(), mm("status", "--json").json()
            assert number(page, "pending") == str(queue["pending"])
            assert number(page, "inflight") == str(queue["inflight"])
            assert number(page, "committed") == str(queue["ledger"]["committed"])
            assert number(page, "dead-letters") == str(queue["dead_letters"])
            assert number(page, "committer") == "alive"
            page.reload()
            assert number(page, "chunks") == str(status["chunks"])
            assert number(page, "files") == str(status["files"])
            assert number(page, "model-fingerprint") == status["active_model"]["fingerprint"]
        finally:
            producer.send_signal(signal.SIGCONT)
        assert producer.wait(timeout=120) == 0
        page.goto(server.base + "/")
        poll(lambda: int(page.locator("#points").inner_text()) >= 1, "the plot", 60)
    finally:
        if producer is not None and producer.poll() is None:
            producer.kill()
        server.stop()


def test_dead_letters_after_a_model_switch_show_both_fingerprints_and_replay_from_the_page(
        mm: MM, tmp_path: Path, page: Any) -> None:
    settings = load_settings(mm.home, environ={})
    mm("index", str(notes(tmp_path / "notes", {"a.md": "# A\n\nAlpha.\n"})))  # the index is on A
    mm("embedding-reset", "--mode", "apply-current", "--yes", env={"MM_EMBEDDING_MODEL": B})
    enqueue_items(settings, [upsert(f"late note {i}", source=f"/late/{i}.md") for i in range(3)])
    mm("queue", "worker", "--once")  # three A records behind the reset: dead-lettered
    mm("embedding-reset", "--mode", "apply-current", "--yes")  # back to A: replayable as they are
    server = HttpServer(mm.home, "--worker", "--allow-destructive")  # the page replays
    try:
        page.goto(server.base + "/dead-letters?reason=fingerprint_mismatch")
        rows = page.locator("[data-testid^=letter-]")
        assert rows.count() == 3
        first = rows.first
        assert first.get_by_test_id("reason").inner_text() == "fingerprint_mismatch"
        assert first.get_by_test_id("fingerprint").inner_text().startswith("hash-384/")
        assert first.get_by_test_id("active-then").inner_text().startswith("hash-384-b/")
        # Keyboard: tick every letter with the space bar, then go to the confirmation.
        for box in page.locator("input[name=ids]").all():
            box.focus()
            page.keyboard.press("Space")
        page.get_by_test_id("replay-selected").click()
        assert "Replay 3 dead letters?" in page.inner_text("h1")
        page.get_by_test_id("confirm-replay").click()
        note = page.get_by_test_id("replayed").inner_text()
        batch_id = note.split("batch ")[1].split(";")[0].strip()
        assert len(batch_id) == 32
        # The page shows the outcome by itself once the committer has applied the replay (it
        # reloads itself then: a reload from here would race it).
        page.wait_for_selector("[data-testid=replay-result][data-state=committed]", timeout=120_000)
        assert mm("queue", "status", "--json").json()["pending"] == 0
        replayed_by = [c.inner_text() for c in page.get_by_test_id("replayed-by").all()]
        assert replayed_by == [batch_id] * 3
        assert mm("queue", "dead-letters", "list", "--json").json() == []
        # The state of the page is its URL: a filter can be shared.
        page.goto(server.base + "/dead-letters?reason=no_such_reason")
        assert page.get_by_test_id("no-letters").is_visible()
    finally:
        server.stop()


def test_the_search_box_finds_the_right_note_first(mm: MM, tmp_path: Path, page: Any) -> None:
    mm("index", str(notes(tmp_path / "notes", {
        "garden.md": "# Garden\n\nTurn the compost heap every fortnight.\n",
        "sky.md": "# Sky\n\nJupiter has many moons; Ganymede is the largest.\n",
        "kitchen.md": "# Kitchen\n\nStir the risotto with warm stock.\n"})))
    server = HttpServer(mm.home)
    try:
        page.goto(server.base + "/search")
        page.get_by_test_id("query").fill("Ganymede moons")
        page.keyboard.press("Enter")
        page.wait_for_url("**/search?q=Ganymede+moons")
        first = page.get_by_test_id("hit").first
        assert first.get_by_test_id("source").inner_text().endswith("sky.md")
    finally:
        server.stop()


def test_a_hostile_note_renders_as_text_and_a_post_without_csrf_is_refused(
        mm: MM, tmp_path: Path, page: Any) -> None:
    hostile = ('# <script>document.title="pwned"</script>\n\n<img src=x onerror="document.title='
               '\'pwned\'"> bold <b>text</b> and <script>alert(1)</script>\n')
    mm("index", str(notes(tmp_path / "notes", {"evil.md": hostile})))
    server = HttpServer(mm.home)
    try:
        page.goto(server.base + "/search?q=bold+text")
        snippet = page.get_by_test_id("snippet").first.inner_text()
        assert "<img src=x onerror=" in snippet and "<script>" in snippet  # shown, not run
        assert page.title() != "pwned" and page.locator("img").count() == 0
        refused = page.request.post(server.base + "/dead-letters/replay", form={"ids": "1"})
        assert refused.status == 403
        cross_site = page.request.post(server.base + "/dead-letters/replay",
                                       form={"ids": "1", "csrf": "guess"},
                                       headers={"Origin": "http://evil.example"})
        assert cross_site.status == 403
        api = page.request.post(server.base + "/api/dead-letters/replay",
                                data=json.dumps({"ids": [1]}),
                                headers={"Content-Type": "application/json"})
        assert api.status == 403
    finally:
        server.stop()


def test_every_page_has_a_json_twin_and_reads_at_a_phones_width(
        mm: MM, tmp_path: Path, browser: Any) -> None:
    mm("index", str(notes(tmp_path / "notes", {"a.md": "# A\n\nAlpha beta.\n"})))
    server = HttpServer(mm.home)
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    try:
        for path in ("/", "/dead-letters", "/search?q=alpha"):
            page.goto(server.base + path)
            width = page.locator("html").evaluate("html => html.scrollWidth")
            assert width <= 376, (path, width)
        for path in ("/api/status", "/api/queue", "/api/throughput", "/api/dead-letters",
                     "/api/search?q=alpha"):
            response = page.request.get(server.base + path)
            assert response.ok and isinstance(response.json(), (dict, list)), path
    finally:
        context.close()
        server.stop()


def test_a_migration_started_from_the_page_shows_its_progress_and_ends_on_the_new_model(
        mm: MM, tmp_path: Path, page: Any) -> None:
    write_config(mm.home, {"embedding": {"model": A}, "queue": {"batch_records": 2}})
    mm("index", str(notes(tmp_path / "notes", {f"{i}.md": f"# Note {i}\n\nText {i}.\n"
                                               for i in range(12)})))
    server = HttpServer(mm.home, "--worker", "--allow-destructive",
                        env={"MM_EMBEDDING_MODEL": B})  # configured with the new model
    try:
        page.goto(server.base + "/")
        assert number(page, "model-name") == A and number(page, "configured-model") == B
        assert number(page, "migration") == "none: the configured model is not the index's"
        page.get_by_test_id("migrate").click()

        def moved() -> bool:  # the live cards read status and migration in two requests: both
            page.reload()
            return number(page, "model-name") == B and number(page, "migration") == "none"

        poll(moved, "the page to show the new model and no migration after the cutover", 120)
        assert mm("status", "--json", env={"MM_EMBEDDING_MODEL": B}).json()[
            "vectors_by_fingerprint"].keys() == {
            mm("embedding-reset", "--json", env={"MM_EMBEDDING_MODEL": B}).json()[
                "configured_model"]["fingerprint"]}
    finally:
        server.stop()


def test_the_migrate_form_is_refused_without_csrf_and_without_allow_destructive(
        mm: MM, tmp_path: Path) -> None:
    import httpx

    mm("index", str(notes(tmp_path / "notes", {"a.md": "# A\n\nAlpha.\n"})))
    for args, status in ((("--allow-destructive",), 403), ((), 403)):
        server = HttpServer(mm.home, *args, env={"MM_EMBEDDING_MODEL": B})
        try:
            answer = httpx.post(server.base + "/migrate", data={"action": "migrate"})
            assert answer.status_code == status
            assert mm("embedding-reset", "--json").json()["migration"] is None
        finally:
            server.stop()


# -- issue 27: the page tells the truth, live ------------------------------------------------


def late_letters(mm: MM, tmp_path: Path, count: int = 3) -> None:
    """`count` records of model A dead-lettered behind a switch to B (configured: B)."""
    settings = load_settings(mm.home, environ={})
    mm("index", str(notes(tmp_path / "notes", {"a.md": "# A\n\nAlpha.\n"})))  # the index is on A
    write_config(mm.home, {"embedding": {"model": B}})
    mm("embedding-reset", "--mode", "apply-current", "--yes")
    enqueue_items(settings, [upsert(f"late note {i} about herons", source=f"/late/{i}.md")
                             for i in range(count)])
    mm("queue", "worker", "--once")  # A records behind the reset to B: dead-lettered


def tick_all(page: Any) -> None:
    for box in page.locator("input[name=ids]:not([disabled])").all():
        box.check()


def refreshed(page: Any) -> None:
    """Wait for the overview's next refresh from the JSON API."""
    before = float(page.locator("body").get_attribute("data-refreshed") or 0)
    poll(lambda: float(page.locator("body").get_attribute("data-refreshed") or 0) > before,
         "the page's next refresh", 60)


def test_every_card_refreshes_without_a_reload(mm: MM, tmp_path: Path, page: Any) -> None:
    root = notes(tmp_path / "notes", {"seed.md": "# Seed\n\nThe first note.\n"})
    mm("index", str(root))
    server = HttpServer(mm.home, "--worker")
    try:
        page.goto(server.base + "/")
        # Every value on every card is one the page refreshes (none is rendered once).
        assert page.locator(".card dd").count() >= 10
        assert page.locator(".card dd:not([data-live])").count() == 0
        assert number(page, "chunks") == "1" and number(page, "files") == "1"
        for n in range(20):
            (root / f"n{n:02d}.md").write_text(f"# Note {n}\n\n## Part\n\nNote {n} on kestrels.\n")
        mm("index", str(root))  # waits for its commit
        status = mm("status", "--json").json()
        assert status["files"] == 21

        def caught_up() -> bool:
            refreshed(page)
            return (number(page, "chunks"), number(page, "files")) == \
                (str(status["chunks"]), str(status["files"]))

        poll(caught_up, "the Index card to show the new chunks and files, without a reload", 60)
        queue = mm("queue", "status", "--json").json()
        assert number(page, "committed") == str(queue["ledger"]["committed"])
        assert number(page, "model-name") == status["active_model"]["name"]
        assert number(page, "model-fingerprint") == status["active_model"]["fingerprint"]
    finally:
        server.stop()


def test_the_plot_has_axes_with_units_and_buckets_that_stay_put(
        mm: MM, tmp_path: Path, page: Any) -> None:
    mm("index", str(notes(tmp_path / "notes", {f"{i}.md": f"# N{i}\n\nText {i}.\n"
                                               for i in range(5)})))
    server = HttpServer(mm.home)
    try:
        first = page.request.get(server.base + "/api/throughput").json()
        assert first["step"] == 5 and first["unit"] == "records/s"
        # Buckets end on wall-clock multiples of the step: a later read does not shift them.
        assert all(point[0] % first["step"] == 0 for point in first["points"])
        assert first["points"][-1][0] <= first["now"]
        committed = mm("queue", "status", "--json").json()["ledger"]["committed"]

        def all_counted() -> bool:  # once the commit's bucket is complete
            points = page.request.get(server.base + "/api/throughput").json()["points"]
            return round(sum(p[1] for p in points) * first["step"]) == committed

        poll(all_counted, "the commits to be counted in the plot's buckets", 60)
        minute = page.request.get(server.base + "/api/throughput?seconds=3600&step=60").json()
        assert all(point[0] % 60 == 0 for point in minute["points"])
        page.goto(server.base + "/")
        refreshed(page)
        plot = page.get_by_test_id("plot")
        assert plot.locator("[data-testid=y-unit]").text_content() == "records/s"
        ticks = [t.text_content() or "" for t in plot.locator("[data-testid=x-tick]").all()]
        assert len(ticks) >= 3 and all(len(t.split(":")) == 3 for t in ticks), ticks
        assert plot.locator("[data-testid=y-tick]").count() >= 2
        buckets = plot.locator("[data-testid=bucket]")
        assert buckets.count() == len(first["points"])
        # The plot draws what the API says, one bucket per point, labelled with its time.
        first = page.request.get(server.base + "/api/throughput").json()
        second = page.request.get(server.base + "/api/throughput").json()
        before = {p[0]: p[1] for p in first["points"]}
        assert all(before.get(t, rate) == rate for t, rate in second["points"])
    finally:
        server.stop()


def test_a_replay_refused_again_says_so_per_record_and_a_reembedding_replay_commits_them(
        mm: MM, tmp_path: Path, page: Any) -> None:
    late_letters(mm, tmp_path)
    server = HttpServer(mm.home, "--worker", "--allow-destructive")
    try:
        page.goto(server.base + "/dead-letters")
        originals = [int(v) for v in page.locator("input[name=ids]").evaluate_all(
            "boxes => boxes.map(b => b.value)")]
        assert len(originals) == 3
        tick_all(page)
        page.get_by_test_id("replay-selected").click()  # as they are: still model A
        page.get_by_test_id("confirm-replay").click()
        # Once committed, the page says (without a reload) what the committer did with each.
        for letter in originals:
            poll(lambda: "dead-lettered again" in page.get_by_test_id(f"outcome-{letter}").inner_text(),
                 "the outcome of the replay", 120)
            outcome = page.get_by_test_id(f"outcome-{letter}").inner_text()
            assert "fingerprint_mismatch" in outcome, outcome
        banner = page.get_by_test_id("replayed").inner_text()
        assert "committed in queue order" not in banner
        assert "0 committed" in banner and "3 dead-lettered again" in banner, banner
        for letter in originals:  # the rows replayed show as replayed
            row = page.get_by_test_id(f"letter-{letter}")
            assert row.get_by_test_id("state").inner_text() == "replayed"
            assert row.locator("input[name=ids]").is_disabled()
        # The re-embedding replay: the only one that fixes a fingerprint mismatch.
        page.goto(server.base + "/dead-letters")
        again = [int(v) for v in page.locator("input[name=ids]").evaluate_all(
            "boxes => boxes.map(b => b.value)")]
        assert len(again) == 3 and not set(again) & set(originals)
        tick_all(page)
        page.get_by_test_id("replay-reembed").click()
        assert "re-embedding" in page.inner_text("h1")
        assert B in page.get_by_test_id("reembed-model").inner_text()
        page.get_by_test_id("confirm-replay").click()
        for letter in again:
            poll(lambda: page.get_by_test_id(f"outcome-{letter}").inner_text() == "committed",
                 "the re-embedded replay to be committed", 120)
        assert "3 committed" in page.get_by_test_id("replayed").inner_text()
        assert mm("queue", "dead-letters", "list", "--json").json() == []
        hits = mm("search", "herons", "--json").json()
        assert any(h["source_file"].startswith("/late/") for h in hits)
    finally:
        server.stop()


def test_replaying_with_reembedding_needs_csrf_and_allow_destructive(
        mm: MM, tmp_path: Path, page: Any) -> None:
    import httpx

    late_letters(mm, tmp_path, count=1)
    letter = mm("queue", "dead-letters", "list", "--json").json()[0]["id"]
    server = HttpServer(mm.home)  # no --allow-destructive
    try:
        page.goto(server.base + "/dead-letters")
        assert page.get_by_test_id("replay-reembed").count() == 0
        answer = page.goto(server.base + f"/dead-letters/replay?ids={letter}&reembed=1")
        assert answer is not None and answer.status == 403
    finally:
        server.stop()
    server = HttpServer(mm.home, "--allow-destructive")
    try:
        refused = httpx.post(server.base + "/dead-letters/replay",
                             data={"ids": str(letter), "reembed": "1"})
        assert refused.status_code == 403
        csrf = httpx.get(server.base + "/api/csrf").json()["csrf"]
        api = httpx.post(server.base + "/api/dead-letters/replay",
                         json={"ids": [letter], "reembed": True}, headers={"X-CSRF-Token": csrf})
        assert api.status_code == 200, api.text
        assert api.json()["replayed"] == 1 and api.json()["reembed"] is True
    finally:
        server.stop()


def test_errors_on_the_page_say_which_button_to_use_not_a_cli_flag(
        mm: MM, tmp_path: Path, page: Any) -> None:
    late_letters(mm, tmp_path, count=1)
    letter = mm("queue", "dead-letters", "list", "--json").json()[0]["id"]
    refused = mm("queue", "dead-letters", "replay", str(letter), check=None)
    assert "dead-lettered 1" in refused.stderr  # refused again: replayed once
    server = HttpServer(mm.home, "--allow-destructive")
    try:
        def error_page(path: str, status: int) -> str:
            answer = page.goto(server.base + path)
            assert answer is not None and answer.status == status, (path, answer and answer.status)
            text = page.locator("main").inner_text()
            assert "--" not in text and "`" not in text and "mm " not in text, text
            return text

        text = error_page(f"/dead-letters/replay?ids={letter}", 409)
        assert "already replayed" in text and "include replayed" in text
        text = error_page("/dead-letters/98765", 404)
        assert "no dead letter 98765" in text and "Dead letters" in text
        error_page("/dead-letters/replay?ids=98765", 404)
        error_page("/dead-letters/replay?ids=x", 400)
        error_page("/dead-letters/replay", 400)
        stale = page.request.post(server.base + "/dead-letters/replay",
                                  form={"ids": str(letter), "csrf": "stale"})
        assert stale.status == 403 and "reload" in stale.text().lower()
        api = page.request.get(server.base + "/api/dead-letters/98765")
        assert api.status == 404 and api.json()["error"]["message"]
    finally:
        server.stop()


def test_login_returns_to_the_page_asked_for_with_a_signed_session_not_the_token(
        mm: MM, tmp_path: Path, page: Any) -> None:
    import httpx

    token = "s3cret-token-of-this-server"
    mm("index", str(notes(tmp_path / "notes", {"a.md": "# A\n\nAlpha.\n"})))
    server = HttpServer(mm.home, "--token", token)

    def login(next_path: str, given: str = token) -> httpx.Response:
        def attempt() -> httpx.Response | None:
            answer = httpx.post(server.base + "/login", data={"token": given, "next": next_path})
            return None if answer.status_code == 429 else answer  # a few tries a second

        return poll(attempt, "the login throttle to let a try through", 30)

    try:
        page.goto(server.base + "/search?q=alpha&k=3")
        assert "/login?next=" in page.url
        page.locator("input[name=token]").fill(token)
        page.keyboard.press("Enter")
        page.wait_for_url("**/search?q=alpha&k=3")
        assert page.get_by_test_id("hit").count() == 1
        cookies = page.context.cookies()
        assert [c["name"] for c in cookies] == ["memwal_session"]
        value = cookies[0]["value"]
        assert token not in value and cookies[0]["httpOnly"]
        # The session works, and nothing else that looks like it does.
        assert httpx.get(server.base + "/api/status",
                         cookies={"memwal_session": value}).status_code == 200
        sid, expires, mac = value.split(".")
        def changed_last(text: str) -> str:  # never the text itself, whatever it ends in
            return text[:-1] + ("y" if text[-1] == "x" else "x")

        forged = [f"{sid}.{int(expires) + 1}.{mac}", f"{sid}.{expires}.{changed_last(mac)}",
                  f"{changed_last(sid)}.{expires}.{mac}", token, ""]
        assert value not in forged
        for cookie in forged:
            answer = httpx.get(server.base + "/api/status", cookies={"memwal_session": cookie})
            assert answer.status_code in (401, 429), cookie
        old_style = httpx.get(server.base + "/api/status", cookies={"memwal_token": token})
        assert old_style.status_code in (401, 429)
        # `next` is a path of this server, never another site.
        for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example",
                        "http:/evil.example", " //evil.example", "javascript:alert(1)"):
            answer = login(hostile)
            assert answer.status_code == 303 and answer.headers["location"] == "/", hostile
        assert login("/dead-letters?reason=x").headers["location"] == "/dead-letters?reason=x"
        # A wrong token: 401 (scripts see the refusal), the form again with what went wrong.
        wrong = login("/", token + "x")
        assert wrong.status_code == 401 and "memwal_session" not in wrong.cookies
        assert "That token is not the server's." in wrong.text and 'name="token"' in wrong.text
    finally:
        server.stop()


def test_the_page_has_a_favicon_and_no_request_of_it_fails(mm: MM, page: Any) -> None:
    server = HttpServer(mm.home, "--token", "t0ken")
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    try:
        icon = page.request.get(server.base + "/favicon.ico")  # no login needed for the icon
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        page.goto(server.base + "/")
        page.locator("input[name=token]").fill("t0ken")
        page.keyboard.press("Enter")
        page.wait_for_url(server.base + "/")
        href = page.locator("link[rel=icon]").get_attribute("href")
        assert href is not None and page.request.get(server.base + href).ok
        assert failed == []
    finally:
        server.stop()


def test_serve_help_mentions_the_web_page(mm: MM) -> None:
    text = " ".join(mm("serve", "--help").stdout.split())
    assert "web page" in text and "/mcp" in text
