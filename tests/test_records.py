"""The wire contract: encode/decode round trips, the frozen v1 sample, and what must not decode."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from memwal.records import (
    Batch, CancelMigration, ChunkKey, ChunkVector, Cutover, FileSnapshot, MalformedItem, Migrate,
    Producer, Reset, ShadowVector, UndecodableBatch, Upsert, decode_batch, encode_batch, parse_item,
)

FROZEN_V1 = Path(__file__).parent / "data" / "batch-v1.msgpack"


def test_frozen_v1_sample_still_decodes() -> None:
    batch = decode_batch(FROZEN_V1.read_bytes())
    assert batch.version == 1
    assert batch.id == "0123456789abcdef0123456789abcdef"
    assert batch.producer == {"host": "host-1", "pid": 4242, "command": "mm index notes"}
    assert batch.enqueued_at == 1700000000.5
    snapshot, upsert, reset = (parse_item(raw) for raw in batch.raw_items)
    assert snapshot == FileSnapshot("default", "/notes/a.md", "d" * 64, 120, 1700000000000000000,
                                    (("a" * 64, 1), ("b" * 64, 5)))
    assert snapshot.base is None  # v1 batches before `base`: the committer orders them by mtime
    assert isinstance(upsert, Upsert)
    assert upsert.key == ChunkKey("default", "/notes/a.md", "a" * 64, 1)
    assert upsert.heading_path == ("Title",) and upsert.tags == ("x",)
    assert np.frombuffer(upsert.vector, "<f4").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert reset == Reset("hash-4-b/111111111111111111111111", "hash-4-b", 4)
    # Written before the optional envelope fields existed: none of them is read into it.
    assert (batch.replays, batch.replay_again, batch.purge) == ((), False, ())
    assert batch.endpoints == {} and upsert.shadow is None  # nor the migration's extensions


def test_a_purge_travels_as_an_envelope_field_and_round_trips() -> None:
    batch = Batch(items=(), producer=Producer("h", 1, "c"), purge=(3, 5, 8))
    decoded = decode_batch(encode_batch(batch))
    assert decoded.purge == (3, 5, 8) and decoded.raw_items == ()
    plain = decode_batch(encode_batch(Batch(items=(), producer=Producer("h", 1, "c"))))
    assert plain.purge == () and b"purge" not in encode_batch(Batch(items=(), producer=Producer("h", 1, "c")))


@pytest.mark.parametrize("purge", [5, [0], [True], ["3"], [2**63]])
def test_a_bad_purge_field_makes_the_batch_undecodable(purge: object) -> None:
    data = msgpack.packb({"v": 1, "id": "x", "items": [], "enqueued_at": 1.0, "purge": purge})
    with pytest.raises(UndecodableBatch, match="'purge'"):
        decode_batch(data)


def test_round_trip_keeps_every_field() -> None:
    items = (Reset("m/1", "m", 3),
             FileSnapshot("ns", "/f.md", "d", 4, 5, (("h", 2),), base="batch-1"),
             FileSnapshot("ns", "/g.md", "d", 4, 5, (), base=""),
             FileSnapshot("ns", "/h.md", "", 0, 5, ()),
             Upsert(ChunkKey("ns", "/f.md", "h", 2), 9, ("A", "B"), "text", ("t1", "t2"), "m/1", 3,
                    np.ones(3, "<f4").tobytes()))
    batch = Batch(items=items, producer=Producer("h", 1, "c"))
    decoded = decode_batch(encode_batch(batch))
    assert decoded.id == batch.id
    assert tuple(parse_item(raw) for raw in decoded.raw_items) == items


def test_the_migration_items_and_extensions_round_trip() -> None:
    key = ChunkKey("ns", "/f.md", "h", 2)
    vector = np.ones(3, "<f4").tobytes()
    items = (Migrate("m/2", "m", 3, {"provider": "ollama", "model": "bge-m3", "url": "http://x"}),
             Migrate("m/2", "m", 3),
             Upsert(key, 9, (), "text", (), "m/1", 3, vector, shadow=ShadowVector("m/2", 3, vector)),
             ChunkVector(key, "m/2", 3, vector), Cutover("m/2"), CancelMigration("m/2"))
    endpoints = {"m/2": {"provider": "ollama", "model": "bge-m3", "url": "http://x"}}
    decoded = decode_batch(encode_batch(Batch(items=items, producer=Producer("h", 1, "c"),
                                              endpoints=endpoints)))
    assert tuple(parse_item(raw) for raw in decoded.raw_items) == items
    assert decoded.endpoints == endpoints
    # A plain upsert carries no `shadow` key: what older committers read is unchanged.
    plain = encode_batch(Batch(items=(items[2].__class__(key, 9, (), "t", (), "m/1", 3, vector),),
                               producer=Producer("h", 1, "c")))
    assert b"shadow" not in plain and b"endpoints" not in plain


@pytest.mark.parametrize("raw", [
    {"kind": "vector", "namespace": "n", "source_file": "f", "content_hash": "h", "start_line": 0,
     "fingerprint": "m", "dim": 3, "vector": b"x"},
    {"kind": "migrate", "fingerprint": "m", "name": "m", "dim": 3, "endpoint": {"url": 5}},
    {"kind": "cutover"},
    {"kind": "upsert", "namespace": "n", "source_file": "f", "content_hash": "h", "start_line": 1,
     "end_line": 1, "heading_path": [], "content": "", "tags": [], "fingerprint": "m", "dim": 3,
     "vector": b"x" * 12, "shadow": [1]},
])
def test_malformed_migration_items_are_rejected(raw: object) -> None:
    with pytest.raises(MalformedItem):
        parse_item(raw)


@pytest.mark.parametrize("data, reason", [
    (b"", "undecodable"),
    (b"\xc1garbage", "undecodable"),
    (msgpack.packb([1, 2, 3]), "undecodable"),
    (msgpack.packb({"v": 99, "id": "x", "items": [], "enqueued_at": 1.0}), "unsupported_version"),
    (msgpack.packb({"id": "x", "items": []}), "unsupported_version"),
    (msgpack.packb({"v": 1, "id": "", "items": [], "enqueued_at": 1.0}), "undecodable"),
    (msgpack.packb({"v": 1, "id": "x", "items": {}, "enqueued_at": 1.0}), "undecodable"),
])
def test_bad_envelopes_are_undecodable_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UndecodableBatch) as caught:
        decode_batch(data)
    assert caught.value.reason == reason


def test_truncated_batch_is_undecodable() -> None:
    data = FROZEN_V1.read_bytes()
    for cut in (1, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(UndecodableBatch):
            decode_batch(data[:cut])


def test_msgpack_ext_types_never_become_objects() -> None:
    # An ext value (what a pickle-smuggling payload would need) stays inert data.
    data = msgpack.packb({"v": 1, "id": "x", "enqueued_at": 1.0,
                          "items": [msgpack.ExtType(42, b"os.system('x')")]})
    batch = decode_batch(data)
    with pytest.raises(MalformedItem):
        parse_item(batch.raw_items[0])


@pytest.mark.parametrize("raw", [
    "not a map",
    {"kind": "nope"},
    {"kind": "upsert", "namespace": "n"},
    {"kind": "reset", "fingerprint": "f", "name": "n", "dim": 0},
    {"kind": "file", "namespace": "n", "source_file": "s", "digest": "d", "size": 1,
     "mtime_ns": 1, "keys": [["h"]]},
    {"kind": "file", "namespace": "n", "source_file": "s", "digest": "d", "size": 1,
     "mtime_ns": 1, "keys": [], "base": 7},
    {"kind": "upsert", "namespace": "n", "source_file": "s", "content_hash": "h", "start_line": 5,
     "end_line": 2, "heading_path": [], "content": "", "tags": [], "fingerprint": "f", "dim": 1,
     "vector": b"\0\0\0\0"},
    {"kind": "upsert", "namespace": "n", "source_file": "s", "content_hash": "h", "start_line": True,
     "end_line": 2, "heading_path": [], "content": "", "tags": [], "fingerprint": "f", "dim": 1,
     "vector": b"\0\0\0\0"},
])
def test_malformed_items_are_rejected_one_by_one(raw: object) -> None:
    with pytest.raises(MalformedItem):
        parse_item(raw)


def decode_everything(data: bytes) -> None:
    """Decode a batch and each of its items; only the two documented errors may come out."""
    try:
        batch = decode_batch(data)
    except UndecodableBatch:
        return
    for raw in batch.raw_items:
        try:
            parse_item(raw)
        except MalformedItem:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_decoder_never_raises_anything_but_undecodable(data: bytes) -> None:
    decode_everything(data)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "id", "enqueued_at", "items", "producer", "x"]), _values))
def test_decoder_survives_structured_garbage(wire: dict) -> None:
    decode_everything(msgpack.packb(wire, use_bin_type=True))
