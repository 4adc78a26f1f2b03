"""The seed scenario end to end with the models users run: two remote 1024-d models of one
dimension behind a real HTTP embedding server (tests/embedding_server.py: `bge-m3` is served as
hash-1024 over Ollama's API, `e5-large` as hash-1024-b over OpenAI's).

An old `mm serve` configured with model A keeps writing (mem_add over MCP) and searching while a
migration to B runs in another process and cuts over; a process configured with B searches all
along. Afterwards the index holds one fingerprint, a late A record is a dead letter, no search
ran without its vector leg, and the old server refuses to write with a fix an agent can act on.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import threading
from pathlib import Path

from helpers import MM, EmbeddingServer, mm_command, mm_env, ok, upsert, write_config
from memwal.config import load_settings
from memwal.embedders import configured_embedder
from memwal.producer import enqueue_items
from test_mcp import HttpServer, call, http_session, refused


def fingerprints(home: Path) -> set[str]:
    conn = sqlite3.connect(home / "index.sqlite3")
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT fingerprint FROM chunks")}
    finally:
        conn.close()


async def test_a_live_swap_between_two_remote_1024_d_models_mixes_nothing_and_never_drops_the_vector_leg(
        mm: MM, home: Path, tmp_path: Path, embedding_server: EmbeddingServer) -> None:
    server = embedding_server
    write_config(home, {"embedding": {"provider": "ollama", "model": "bge-m3", "url": server.url},
                        "queue": {"batch_records": 8}, "search": {"bm25_weight": 0}})
    b_env = {"MM_EMBEDDING_PROVIDER": "openai", "MM_EMBEDDING_MODEL": "e5-large",
             "MM_EMBEDDING_URL": server.openai_url}
    notes = tmp_path / "notes"
    notes.mkdir()
    for number in range(120):
        (notes / f"{number}.md").write_text(f"# Heron {number}\n\nThe heron {number} waits by "
                                            f"the river for fish number {number}.\n")
    ok(mm("index", str(notes)))
    a_fingerprint = configured_embedder(load_settings(home, environ={})).fingerprint
    b_settings = load_settings(home, environ=b_env)
    b_fingerprint = configured_embedder(b_settings).fingerprint
    assert a_fingerprint != b_fingerprint and a_fingerprint.startswith("ollama:bge-m3/")

    old = HttpServer(home, "--worker")  # started with A; it commits too
    searched_with_b: list[tuple[int, list[str]]] = []
    try:
        async with http_session(old.url) as session:
            migrator = subprocess.Popen(
                mm_command("embedding-reset", "--mode", "migrate", "--json", "--home", str(home)),
                env=mm_env(b_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            done = threading.Event()

            def search_with_b() -> None:
                import memwal

                searcher = memwal.Searcher(b_settings)
                try:
                    while not done.is_set():
                        result = searcher.search("heron waiting by the river")
                        searched_with_b.append((len(result.hits), list(result.warnings)))
                finally:
                    searcher.close()

            b_thread = threading.Thread(target=search_with_b)
            b_thread.start()
            added = 0
            try:
                while migrator.poll() is None:  # the old server writes and searches meanwhile
                    hits = await call(session, "mem_search", query="heron by the river")
                    # After the cutover it embeds with B (as the index recorded it) and warns.
                    assert hits["hits"] and not any("keyword results only" in w
                                                    for w in hits.get("warnings", [])), hits
                    result = await session.call_tool(
                        "mem_add", {"content": f"Heron sighting {added} during the migration."},
                        read_timeout_seconds=120)
                    added += not result.is_error
                out, err = await asyncio.to_thread(migrator.communicate, timeout=300)
                assert migrator.returncode == 0, err
            finally:
                done.set()
                b_thread.join()
            assert added > 0, "the old server wrote during the migration"

            # A record embedded with A before the cutover and queued after it: a dead letter.
            settings_a = load_settings(home, environ={})
            a_embedder = configured_embedder(settings_a)
            late = upsert("A late heron from the old model.", source="/web/late.md")
            late = type(late)(**{**late.__dict__, "fingerprint": a_fingerprint, "dim": 1024,
                                 "vector": a_embedder.embed([late.content])[0].astype("<f4")
                                 .tobytes()})
            enqueue_items(settings_a, [late], command="old writer (model A)")
            mm("queue", "status")
            # The old server's own writes are refused now, with what to do in MCP terms.
            message = await refused(session, "mem_add", content="After the cutover.")
            assert "e5-large" in message and "bge-m3" in message and "restart this MCP server" in message
            assert "MM_EMBEDDING_PROVIDER=openai MM_EMBEDDING_MODEL=e5-large" in message
            status = await call(session, "mem_status")
            assert status["active_model"]["fingerprint"] == b_fingerprint
    finally:
        old.stop()
    ok(mm("queue", "worker", "--once", env=b_env))
    assert fingerprints(home) == {b_fingerprint}
    letters = mm("queue", "dead-letters", "list", "--json", env=b_env).json()
    assert any(row["source_file"] == "/web/late.md" and row["reason"] == "fingerprint_mismatch"
               for row in letters), letters
    assert searched_with_b and all(hits > 0 and not any("keyword results only" in w for w in warnings)
                                   for hits, warnings in searched_with_b), \
        [entry for entry in searched_with_b if not entry[0] or entry[1]][:5]
    # Every note the old server wrote is in the index with a B vector, or (queued behind the
    # cutover) a dead letter that `replay --reembed` or the next `mm index` of the notes recovers.
    late_notes = [row for row in letters if row["source_file"] != "/web/late.md"]
    assert all(row["reason"] == "fingerprint_mismatch" and row["fingerprint"] == a_fingerprint
               for row in late_notes)
    status = mm("status", "--json", env=b_env).json()
    assert status["chunks"] + len(late_notes) == 120 + added and status["migration"] is None
