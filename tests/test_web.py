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
        poll(lambda: mm("queue", "status", "--json").json()["pending"] == 0, "the replay commit", 120)
        page.reload()
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

        def moved() -> bool:
            page.reload()
            return number(page, "model-name") == B

        poll(moved, "the page to show the new model after the cutover", 120)
        assert number(page, "migration") == "none"
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
