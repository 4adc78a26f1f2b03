"""Remote embedding providers (issue 26): `openai` and `ollama` against a real HTTP server.

The server is tests/embedding_server.py in a subprocess (the `embedding_server` fixture); the
CLI is the real `mm`. Unmarked tests use the server's hash models (`bge-m3` is `hash-1024`,
`e5-large` is `hash-1024-b`); those with the ONNX models are marked `integration`. No test
waits on a sleep or asserts a duration.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import MM, EmbeddingServer, Run, ok, queue_rows, write_config
from memwal.config import load_settings
from memwal.embedders import configured_embedder, embedder_for
from memwal.embedders.remote import (
    PROBE_TEXTS, SENTINEL, RemoteEmbedder, RemoteOptions, probe_digest,
)
from memwal.errors import ConfigError, EmbeddingConfigError, EmbeddingServerError, ModelChanged
from memwal.fingerprint import name_of
from memwal.models import Endpoint

KEY = "sk-test-S3CRET-key-0f1e2d3c"


def remote_config(server: EmbeddingServer, provider: str, model: str = "bge-m3",
                  **embedding: Any) -> dict[str, Any]:
    url = server.openai_url if provider == "openai" else server.url
    return {"embedding": {"provider": provider, "model": model, "url": url, **embedding}}


def index_state(home: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """What the index holds: chunks (with fingerprints), the ledger, the meta table."""
    conn = sqlite3.connect(home / "index.sqlite3")
    try:
        return (conn.execute("SELECT id, content_hash, fingerprint FROM chunks ORDER BY id")
                .fetchall(),
                conn.execute("SELECT batch_id FROM ledger ORDER BY batch_id").fetchall(),
                conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall())
    finally:
        conn.close()


def fingerprints_in_index(home: Path) -> set[str]:
    conn = sqlite3.connect(home / "index.sqlite3")
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT fingerprint FROM chunks")}
    finally:
        conn.close()


def one_line_error(run: Run, code: int, *words: str) -> str:
    """The run failed with `code` and said so in one line, no traceback, naming `words`."""
    assert run.code == code, str(run)
    assert "Traceback" not in run.stderr, str(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), str(run)
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


# -- the happy path: index and search through each provider ---------------------------------


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_index_and_search_through_a_remote_provider(provider: str, mm: MM, home: Path,
                                                    notes: Path,
                                                    embedding_server: EmbeddingServer) -> None:
    write_config(home, remote_config(embedding_server, provider, batch_size=2, concurrency=3))
    report = ok(mm("index", "--json", str(notes))).json()
    assert report["committed"] == report["records_enqueued"] > 0
    hits = ok(mm("search", "--json", "Ganymede moons of Jupiter")).json()
    assert hits[0]["source_file"].endswith("astronomy.md")
    (fingerprint,) = fingerprints_in_index(home)
    assert fingerprint.startswith(f"{provider}:bge-m3/")
    status = ok(mm("status", "--json")).json()
    assert status["active_model"]["name"] == f"{provider}:bge-m3"
    assert status["active_model"]["dim"] == 1024
    assert embedding_server.stats()["ok_requests"] > 2  # the probe and the batches


def test_a_model_name_with_slash_and_colon_is_one_fingerprint_name(
        mm: MM, home: Path, notes: Path, embedding_server: EmbeddingServer) -> None:
    embedding_server.control(aliases={"BAAI/bge-m3": "hash-1024"})
    write_config(home, remote_config(embedding_server, "openai", model="BAAI/bge-m3"))
    ok(mm("index", str(notes)))
    (fingerprint,) = fingerprints_in_index(home)
    assert name_of(fingerprint) == "openai:BAAI/bge-m3"
    assert ok(mm("status", "--json")).json()["active_model"]["name"] == "openai:BAAI/bge-m3"


def test_retries_on_429_and_503_succeed(mm: MM, home: Path, notes: Path,
                                        embedding_server: EmbeddingServer) -> None:
    write_config(home, remote_config(embedding_server, "openai"))
    embedding_server.control(faults=[{"kind": "429", "times": 2, "retry_after": 0},
                                     {"kind": "503", "times": 2}])
    ok(mm("index", str(notes)))
    stats = embedding_server.stats()
    assert stats["requests"] == stats["ok_requests"] + 4
    assert len(fingerprints_in_index(home)) == 1


# -- every failure a user can cause: one line, and the queue and index unharmed -------------

FAILURES = [
    # (id, fault or special, exit code, words the line must hold)
    ("down", None, 1, ["cannot be reached", "embedding.url"]),
    ("unknown-model", None, 2, ["has no model", "embedding.model"]),
    ("401", {"kind": "401"}, 2, ["answered 401", "MM_EMBEDDING_API_KEY"]),
    ("429", {"kind": "429", "retry_after": 0}, 1, ["429", "embedding.concurrency"]),
    ("500", {"kind": "500"}, 1, ["failed 5 times", "500"]),
    ("503", {"kind": "503"}, 1, ["failed 5 times", "503"]),
    ("slow", {"kind": "slow", "delay": 5}, 1, ["did not answer within 0.3 s", "embedding.timeout"]),
    ("dim", {"kind": "dim"}, 2, ["1023-dimensional", "embedding.dim is 1024"]),
    ("nan", {"kind": "nan"}, 1, ["non-finite"]),
    ("count", {"kind": "count"}, 1, ["vectors for"]),
    ("garbage", {"kind": "garbage"}, 1, ["not JSON"]),
    ("grow", {"kind": "grow"}, 1, ["different dimensions"]),
]


@pytest.mark.parametrize("provider", ["openai", "ollama"])
@pytest.mark.parametrize("case, fault, code, words", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failing_server_is_one_line_and_leaves_queue_and_index_unharmed(
        provider: str, case: str, fault: dict[str, Any] | None, code: int, words: list[str],
        mm: MM, home: Path, notes: Path, embedding_server: EmbeddingServer) -> None:
    config = remote_config(embedding_server, provider, dim=1024, timeout=0.3)
    write_config(home, config)
    ok(mm("index", str(notes)))
    before, queued = index_state(home), queue_rows(home)
    (notes / "new.md").write_text("# New\n\nA note that must not reach the queue.\n")
    if case == "down":
        embedding_server.stop()
    elif case == "unknown-model":
        config["embedding"]["model"] = "no-such-model"
        write_config(home, config)
        words = [*words, "ollama pull no-such-model" if provider == "ollama" else "GET /models"]
    else:
        embedding_server.control(faults=[{**fault, "times": -1}])
    one_line_error(mm("index", str(notes), check=None), code, *words)
    assert index_state(home) == before
    assert queue_rows(home) == queued
    if case != "down":
        embedding_server.control(clear=True)  # mm doctor (after the test) reads the index only


def test_a_failing_search_is_one_line(mm: MM, home: Path, notes: Path,
                                      embedding_server: EmbeddingServer) -> None:
    write_config(home, remote_config(embedding_server, "ollama"))
    ok(mm("index", str(notes)))
    embedding_server.stop()
    one_line_error(mm("search", "Ganymede", check=None), 1, embedding_server.url)


# -- swapped weights behind the same name ----------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_swapped_weights_get_a_new_fingerprint_and_mm_index_refuses(
        provider: str, mm: MM, home: Path, notes: Path,
        embedding_server: EmbeddingServer) -> None:
    write_config(home, remote_config(embedding_server, provider))
    ok(mm("index", str(notes)))
    (old,) = fingerprints_in_index(home)
    embedding_server.control(aliases={"bge-m3": "hash-1024-b"})  # same name, same dim
    (notes / "new.md").write_text("# New\n\nWritten after the weights changed.\n")
    queued = queue_rows(home)
    line = one_line_error(mm("index", str(notes), check=None), 2, "the index uses",
                          old, "mm embedding-reset")
    new = line.split("the configured model is ")[1].split(" (")[1].split(",")[0]
    assert new != old and name_of(new) == name_of(old) == f"{provider}:bge-m3"
    assert queue_rows(home) == queued
    assert fingerprints_in_index(home) == {old}  # nothing mixed; mm doctor runs after the test


def test_an_embedder_that_meets_other_weights_raises_and_reprobes(
        embedding_server: EmbeddingServer) -> None:
    embedder = RemoteEmbedder(Endpoint("ollama", "bge-m3", embedding_server.url),
                              RemoteOptions(batch_size=4))
    before = embedder.fingerprint
    texts = [f"note number {i}" for i in range(10)]
    kept = embedder.embed(texts)
    embedding_server.control(aliases={"bge-m3": "hash-1024-b"})
    with pytest.raises(ModelChanged) as raised:
        embedder.embed(texts)
    after = embedder.fingerprint
    assert after != before
    assert before in raised.value.message and after in raised.value.message
    assert "mm embedding-reset --mode migrate" in str(raised.value)
    embedding_server.control(aliases={"bge-m3": "hash-1024"})  # the old weights again
    with pytest.raises(ModelChanged):
        embedder.embed(texts)
    assert embedder.fingerprint == before
    assert np.array_equal(embedder.embed(texts), kept)


def test_reprobing_unchanged_weights_keeps_the_fingerprint(
        embedding_server: EmbeddingServer) -> None:
    embedder = RemoteEmbedder(Endpoint("openai", "e5-large", embedding_server.openai_url),
                              RemoteOptions(probe_interval=1e-9))
    before = embedder.fingerprint
    for _ in range(3):
        embedder.embed(["a text", "another"])  # each call probes again first
    assert embedder.fingerprint == before
    assert embedding_server.stats()["ok_requests"] == 1 + 3 * 2


# -- the probe -------------------------------------------------------------------------------


def test_probe_is_stable_across_batch_sizes_and_concurrency(
        embedding_server: EmbeddingServer, tmp_path: Path) -> None:
    prints = set()
    for batch_size, concurrency in ((1, 1), (3, 2), (32, 4), (7, 8)):
        embedder = RemoteEmbedder(Endpoint("ollama", "bge-m3", embedding_server.url),
                                  RemoteOptions(batch_size=batch_size, concurrency=concurrency))
        texts = [f"text {i} " * (i % 5 + 1) for i in range(20)]
        vectors = embedder.embed(texts)
        assert vectors.shape == (20, 1024) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)
        prints.add(embedder.fingerprint)
    assert len(prints) == 1
    other = RemoteEmbedder(Endpoint("ollama", "e5-large", embedding_server.url), RemoteOptions())
    assert other.fingerprint not in prints  # same dimension, other weights


def test_the_url_and_the_key_are_not_part_of_the_fingerprint(
        embedding_server: EmbeddingServer, tmp_path: Path) -> None:
    second = EmbeddingServer(tmp_path)
    try:
        a = RemoteEmbedder(Endpoint("openai", "bge-m3", embedding_server.openai_url),
                           RemoteOptions())
        b = RemoteEmbedder(Endpoint("openai", "bge-m3", second.openai_url),
                           RemoteOptions(api_key=KEY))
        assert a.fingerprint == b.fingerprint
        assert KEY not in repr(b) and KEY not in repr(b.options)
    finally:
        second.stop()


@pytest.mark.integration
@pytest.mark.parametrize("model", ["minilm", "paraphrase-minilm"])
def test_probe_digest_of_onnx_models_is_stable_across_batch_compositions(
        model: str, embedding_server: EmbeddingServer) -> None:
    embedder = RemoteEmbedder(Endpoint("openai", model, embedding_server.openai_url),
                              RemoteOptions())
    reference = embedder._request(PROBE_TEXTS, expect_dim=None)
    fillers = ["short", "a somewhat longer filler text about gardens and compost heaps " * 4]
    for layout in ([*PROBE_TEXTS], [*fillers, *PROBE_TEXTS], [*PROBE_TEXTS, *fillers * 8]):
        vectors = embedder._request(layout, expect_dim=None)
        found = np.stack([vectors[layout.index(text)] for text in PROBE_TEXTS])
        assert probe_digest(found) == probe_digest(reference)
        assert float(found[0] @ reference[0]) > 0.999999
    singles = np.stack([embedder._request([text, "x"], expect_dim=None)[0]
                        for text in PROBE_TEXTS])
    assert probe_digest(singles) == probe_digest(reference)
    assert SENTINEL == PROBE_TEXTS[0]


# -- the API key -----------------------------------------------------------------------------


def test_the_api_key_never_appears_in_outputs(mm: MM, home: Path, notes: Path,
                                              embedding_server: EmbeddingServer) -> None:
    write_config(home, remote_config(embedding_server, "openai"))
    embedding_server.control(api_key=KEY)
    env = {"MM_EMBEDDING_API_KEY": KEY}
    runs = [one_line_error(mm("index", str(notes), check=None), 2, "no key was sent")]
    wrong = {"MM_EMBEDDING_API_KEY": "sk-wrong-" + KEY[::-1]}
    line = one_line_error(mm("index", str(notes), env=wrong, check=None), 2, "was refused")
    assert wrong["MM_EMBEDDING_API_KEY"] not in line
    runs += [str(ok(mm(*args, env=env))) for args in (
        ("index", str(notes)), ("search", "Ganymede"), ("search", "--json", "compost"),
        ("config", "show"), ("config", "show", "--json"), ("status", "--json"), ("status",),
        ("doctor",), ("embedding-reset", "--json"))]
    for text in runs:
        assert KEY not in text
    settings = load_settings(home, environ=env)
    assert settings.api_key == KEY
    embedder = configured_embedder(settings)
    for text in (repr(settings), str(settings.describe()), repr(embedder), embedder.fingerprint,
                 json.dumps(settings.endpoint.as_dict())):
        assert KEY not in text
    for path in home.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_key_in_config_json_is_refused(mm: MM, home: Path,
                                         embedding_server: EmbeddingServer) -> None:
    config = remote_config(embedding_server, "openai")
    config["embedding"]["api_key"] = KEY
    write_config(home, config)
    run = mm("config", "show", check=None)
    line = one_line_error(run, 2, "MM_EMBEDDING_API_KEY", "never kept in config.json")
    assert KEY not in run.stdout + run.stderr + line
    write_config(home, {"embedding": {"model": "hash-384"}})  # for mm doctor after the test


# -- configuration and the interface the migration codes against -----------------------------


def test_settings_endpoint_and_embedder_for(tmp_path: Path,
                                            embedding_server: EmbeddingServer) -> None:
    home = tmp_path / "h"
    write_config(home, {"embedding": {"model": "hash-384"}})
    assert load_settings(home, environ={}).endpoint == Endpoint("hash", "hash-384")
    write_config(home, {"embedding": {"model": "minilm"}})
    assert load_settings(home, environ={}).endpoint == Endpoint("onnx", "minilm")
    settings = load_settings(home, environ={"MM_EMBEDDING_PROVIDER": "ollama",
                                            "MM_EMBEDDING_MODEL": "bge-m3:latest"})
    assert settings.endpoint == Endpoint("ollama", "bge-m3:latest", "http://127.0.0.1:11434")
    assert settings.endpoint.remote and settings.endpoint.name == "ollama:bge-m3:latest"
    assert Endpoint.from_dict(settings.endpoint.as_dict()) == settings.endpoint
    settings = load_settings(home, environ={"MM_EMBEDDING_PROVIDER": "openai",
                                            "MM_EMBEDDING_MODEL": "bge-m3",
                                            "MM_EMBEDDING_URL": embedding_server.openai_url + "/"})
    assert settings.endpoint.url == embedding_server.openai_url
    embedder = embedder_for(settings.endpoint, settings)
    assert embedder is configured_embedder(settings)  # one per process
    assert (embedder.endpoint, embedder.name) == (settings.endpoint, "openai:bge-m3")
    assert embedder.info.as_dict()["dim"] == 1024


@pytest.mark.parametrize("config, words", [
    ({"provider": "ollama"}, "needs embedding.model"),
    ({"provider": "hash", "model": "minilm"}, "takes only"),
    ({"provider": "vertex", "model": "x"}, "unknown embedding provider"),
    ({"provider": "openai", "model": "m", "url": "ftp://x"}, "http:// or https://"),
    ({"provider": "openai", "model": "m", "url": "http://u:pw@host"}, "without a password"),
    ({"provider": "onnx", "model": "bge-m3"}, "unknown embedding model"),
])
def test_bad_embedding_configuration_is_a_config_error(tmp_path: Path, config: dict[str, Any],
                                                       words: str) -> None:
    write_config(tmp_path / "h", {"embedding": config})
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path / "h", environ={})
    assert words in str(raised.value)


def test_error_kinds_carry_their_exit_codes() -> None:
    assert EmbeddingServerError("x").exit_code == 1
    assert EmbeddingConfigError("x").exit_code == 2
    assert ModelChanged("x").exit_code == 2


def test_status_reads_stay_up_when_the_embedding_server_is_down(
        mm: MM, home: Path, notes: Path, embedding_server: EmbeddingServer) -> None:
    """`mm status` and `mm embedding-reset` show what the index holds and name the configured
    model that does not answer, with its fix; they never fail because of it."""
    write_config(home, remote_config(embedding_server, "ollama"))
    ok(mm("index", str(notes)))
    embedding_server.stop()
    status = ok(mm("status", "--json")).json()
    configured = status["configured_model"]
    assert status["chunks"] > 0 and configured["fingerprint"] is None
    assert configured["name"] == "ollama:bge-m3" and "embedding.url" in configured["error"]
    text = ok(mm("status")).stdout
    assert "ollama:bge-m3 (not answering:" in text
    reset = ok(mm("embedding-reset", "--json")).json()
    assert reset["configured_model"]["error"] and reset["differ"] is None
    assert "unknown: the configured model does not answer" in ok(mm("embedding-reset")).stdout
