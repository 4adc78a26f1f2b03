"""Screenshots of the web page with real data, for the README: docs/web-*.png.

    .venv/bin/python docs/gen_screenshots.py

Indexes this repository's docs with the default model into a temporary home, switches the model
midway so that a writer's old-model records land in the dead letters, serves the home with
`mm serve --worker`, and photographs the overview, the dead letters and a search in Debian's
chromium (Playwright).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import memwal
from memwal.producer import enqueue_items
from memwal.records import ChunkKey, Upsert

DOCS = Path(__file__).resolve().parent
MM = [sys.executable, "-m", "memwal"]


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
        subprocess.run([*MM, "index", str(DOCS), "--home", str(home)], check=True, env=env)
        settings = memwal.load_settings(home, environ={})
        old = memwal.load_settings(home, environ={}, flags={"embedding.model": "paraphrase-minilm"})
        from memwal.embedders import configured_embedder

        embedder = configured_embedder(old)
        subprocess.run([*MM, "embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
                        "--model", "paraphrase-minilm", "--home", str(home)], check=True, env=env)
        texts = ["A note the old writer kept sending after the switch.",
                 "Another record of the old model, refused by the committer."]
        vectors = embedder.embed(texts)
        enqueue_items(settings, [Upsert(ChunkKey("default", f"/agent/notes/{i}.md", f"{i:064x}", 1),
                                        1, ("Agent notes",), text, (), "minilm/old", 384,
                                        vectors[i].tobytes()) for i, text in enumerate(texts)])
        subprocess.run([*MM, "embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
                        "--home", str(home)], check=True, env=env)
        server = subprocess.Popen([*MM, "serve", "--port", "0", "--worker", "--home", str(home)],
                                  stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = server.stderr.readline()
            base = line.split("serving ")[1].split()[0].rsplit("/mcp", 1)[0]
            subprocess.run([*MM, "index", str(DOCS), "--force", "--home", str(home)], check=True,
                           env=env)
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1100, "height": 760})
                page.goto(base + "/")
                time.sleep(6)  # a screenshot, not a test: let the commits' 5-second bucket end
                page.screenshot(path=str(DOCS / "web-overview.png"))
                page.goto(base + "/dead-letters")
                page.screenshot(path=str(DOCS / "web-dead-letters.png"))
                page.goto(base + "/search?q=what+happens+when+the+committer+is+killed")
                page.screenshot(path=str(DOCS / "web-search.png"))
                browser.close()
        finally:
            server.terminate()
            server.wait()
    print("wrote docs/web-overview.png, docs/web-dead-letters.png, docs/web-search.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
