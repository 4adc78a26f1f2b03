"""The wire contract of a queued batch: msgpack, versioned, never pickle (see docs/wire-format.md).

Decoding is split in two on purpose. `decode_batch` checks only the envelope: a batch that fails
it cannot be attributed to anyone and goes to the dead letters as raw bytes. Items are parsed one
by one with `parse_item` by the committer, so one malformed item dead-letters alone and never
blocks the rest of its batch.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Union

import msgpack

WIRE_VERSION = 1
SUPPORTED_VERSIONS = (1,)
# SQLite integers are signed 64-bit; anything outside would fail at the INSERT, not here.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_DIM = 8192


class ChunkKey(NamedTuple):
    """The embedding-independent identity of a chunk."""

    namespace: str
    source_file: str
    content_hash: str
    start_line: int


@dataclass(frozen=True)
class ShadowVector:
    """A second vector of an upsert's chunk, of the model a migration moves to (optional)."""

    fingerprint: str
    dim: int
    vector: bytes  # little-endian float32, `dim` values


@dataclass(frozen=True)
class Upsert:
    """Store (or replace) one chunk and its vector."""

    key: ChunkKey
    end_line: int
    heading_path: tuple[str, ...]
    content: str
    tags: tuple[str, ...]
    fingerprint: str
    dim: int
    vector: bytes  # little-endian float32, `dim` values
    # During a migration, the chunk's vector of the model it moves to (kept as a shadow vector).
    shadow: ShadowVector | None = None

    kind = "upsert"


@dataclass(frozen=True)
class FileSnapshot:
    """The complete state of one file as a producer read it; no keys means the file vanished."""

    namespace: str
    source_file: str
    digest: str
    size: int
    mtime_ns: int
    keys: tuple[tuple[str, int], ...]  # (content_hash, start_line) of every chunk of the file
    # The id of the batch whose snapshot of this file the producer diffed against ("" when none
    # was committed); None from producers that did not say (the field is optional on the wire).
    # A snapshot based on what is committed now succeeds it, whatever the file's clock says.
    base: str | None = None

    kind = "file"


@dataclass(frozen=True)
class Reset:
    """Switch the active model; vectors of other models are removed when it is applied."""

    fingerprint: str
    name: str
    dim: int

    kind = "reset"


@dataclass(frozen=True)
class ChunkVector:
    """A vector for a chunk that is already stored (the migrator's re-embedding of its text):
    a shadow vector when `fingerprint` is the model a migration moves to, the chunk's vector when
    it is the active model. A chunk that is no longer stored makes it skipped."""

    key: ChunkKey
    fingerprint: str
    dim: int
    vector: bytes

    kind = "vector"


@dataclass(frozen=True)
class Migrate:
    """Start a migration to a model: search keeps the active model while shadow vectors of this
    one are built. `endpoint` says how to reach the model (provider, model, url; never a key)."""

    fingerprint: str
    name: str
    dim: int
    endpoint: dict[str, Any] | None = None

    kind = "migrate"


@dataclass(frozen=True)
class Cutover:
    """End a migration: if the model it moves to covers every chunk, make it the active model
    (atomically, in queue order); otherwise skipped, and the migrator catches up first."""

    fingerprint: str

    kind = "cutover"


@dataclass(frozen=True)
class CancelMigration:
    """Drop a migration's shadow vectors; the active model stays."""

    fingerprint: str

    kind = "cancel"


Item = Union[Upsert, FileSnapshot, Reset, ChunkVector, Migrate, Cutover, CancelMigration]


@dataclass(frozen=True)
class Producer:
    """Who enqueued a batch."""

    host: str
    pid: int
    command: str

    @classmethod
    def current(cls, command: str | None = None) -> "Producer":
        return cls(socket.gethostname(), os.getpid(), command or " ".join(sys.argv[:3]))


@dataclass(frozen=True)
class Batch:
    """What a producer enqueues: items applied in order, in one index transaction."""

    items: tuple[Item, ...]
    producer: Producer
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueued_at: float = field(default_factory=time.time)
    # For a replay: the dead-letter id each item replays, item by item (optional; v1 readers
    # ignore it), and whether letters already replayed are to be replayed once more.
    replays: tuple[int, ...] = ()
    replay_again: bool = False
    # For a purge: the dead-letter ids the committer deletes in the batch's transaction
    # (optional, like `replays`: a purge travels in order with everything else in the queue).
    purge: tuple[int, ...] = ()
    # How to reach the models whose vectors the batch carries (fingerprint → endpoint map, no
    # key; optional): the committer records the active model's, so a process configured with
    # another model (during a migration) can still embed queries with the active one.
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedBatch:
    """A batch whose envelope is valid; its items are still raw wire maps."""

    version: int
    id: str
    producer: dict[str, Any]
    enqueued_at: float
    raw_items: tuple[Any, ...]
    replays: tuple[int, ...] = ()
    replay_again: bool = False
    purge: tuple[int, ...] = ()
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)


class UndecodableBatch(ValueError):
    """The bytes are not a batch we can read; `reason` is a dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class MalformedItem(ValueError):
    """One item of a valid batch cannot be parsed."""


def item_to_wire(item: Item) -> dict[str, Any]:
    """The msgpack map of one item."""
    if isinstance(item, Upsert):
        return {
            "kind": "upsert",
            "namespace": item.key.namespace,
            "source_file": item.key.source_file,
            "content_hash": item.key.content_hash,
            "start_line": item.key.start_line,
            "end_line": item.end_line,
            "heading_path": list(item.heading_path),
            "content": item.content,
            "tags": list(item.tags),
            "fingerprint": item.fingerprint,
            "dim": item.dim,
            "vector": item.vector,
            **({} if item.shadow is None else {"shadow": {
                "fingerprint": item.shadow.fingerprint, "dim": item.shadow.dim,
                "vector": item.shadow.vector}}),
        }
    if isinstance(item, FileSnapshot):
        return {
            "kind": "file",
            "namespace": item.namespace,
            "source_file": item.source_file,
            "digest": item.digest,
            "size": item.size,
            "mtime_ns": item.mtime_ns,
            "keys": [[content_hash, start_line] for content_hash, start_line in item.keys],
            **({} if item.base is None else {"base": item.base}),
        }
    if isinstance(item, Reset):
        return {"kind": "reset", "fingerprint": item.fingerprint, "name": item.name, "dim": item.dim}
    if isinstance(item, ChunkVector):
        return {"kind": "vector", "namespace": item.key.namespace,
                "source_file": item.key.source_file, "content_hash": item.key.content_hash,
                "start_line": item.key.start_line, "fingerprint": item.fingerprint,
                "dim": item.dim, "vector": item.vector}
    if isinstance(item, Migrate):
        return {"kind": "migrate", "fingerprint": item.fingerprint, "name": item.name,
                "dim": item.dim, **({} if item.endpoint is None else {"endpoint": item.endpoint})}
    if isinstance(item, (Cutover, CancelMigration)):
        return {"kind": item.kind, "fingerprint": item.fingerprint}
    raise TypeError(f"not an item: {item!r}")


def encode_batch(batch: Batch) -> bytes:
    """The queued bytes of a batch."""
    wire: dict[str, Any] = {
        "v": WIRE_VERSION,
        "id": batch.id,
        "producer": {"host": batch.producer.host, "pid": batch.producer.pid,
                     "command": batch.producer.command},
        "enqueued_at": batch.enqueued_at,
        "items": [item_to_wire(item) for item in batch.items],
    }
    if batch.replays:
        wire["replays"] = list(batch.replays)
    if batch.replay_again:
        wire["replay_again"] = True
    if batch.purge:
        wire["purge"] = list(batch.purge)
    if batch.endpoints:
        wire["endpoints"] = batch.endpoints
    return msgpack.packb(wire, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    # No ext hook and no object hook: decoding can build only plain values, never run code.
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)


def decode_batch(data: bytes) -> DecodedBatch:
    """Check a queued batch's envelope; raise UndecodableBatch if it cannot be attributed."""
    try:
        wire = _unpack(bytes(data))
    except msgpack.ExtraData:
        raise UndecodableBatch("undecodable", "trailing bytes after the batch") from None
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        raise UndecodableBatch("undecodable", f"not msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(wire, dict):
        raise UndecodableBatch("undecodable", f"a batch is a map, got {type(wire).__name__}")
    version = wire.get("v")
    if version not in SUPPORTED_VERSIONS:
        raise UndecodableBatch("unsupported_version",
                               f"version {version!r}; this memwal reads {list(SUPPORTED_VERSIONS)}")
    batch_id, producer = wire.get("id"), wire.get("producer", {})
    enqueued_at, items = wire.get("enqueued_at"), wire.get("items")
    if not isinstance(batch_id, str) or not batch_id:
        raise UndecodableBatch("undecodable", "the batch has no id")
    if not isinstance(items, list):
        raise UndecodableBatch("undecodable", "the batch has no item list")
    if not isinstance(enqueued_at, (int, float)) or isinstance(enqueued_at, bool) \
            or not -1e15 < enqueued_at < 1e15:
        raise UndecodableBatch("undecodable", "the batch has no valid enqueue time")
    if not isinstance(producer, dict):
        producer = {}
    # Only plain text and numbers: the producer is stored as JSON in the ledger.
    producer = {str(k): v for k, v in producer.items()
                if isinstance(v, (str, float)) or isinstance(v, int) and INT_MIN <= v <= INT_MAX}
    replays = _letter_ids(wire, "replays")
    if replays and len(replays) != len(items):
        raise UndecodableBatch("undecodable", "'replays' should name one dead letter per item")
    again = wire.get("replay_again", False)
    if not isinstance(again, bool):
        raise UndecodableBatch("undecodable", "'replay_again' should be a boolean")
    return DecodedBatch(version, batch_id, producer, float(enqueued_at), tuple(items),
                        tuple(replays), again, tuple(_letter_ids(wire, "purge")),
                        _endpoints(wire))


def _endpoints(wire: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The optional `endpoints` map; entries that are not a text → map of plain text are dropped
    (it is a hint for readers, never a reason to refuse a batch)."""
    raw = wire.get("endpoints")
    if not isinstance(raw, dict):
        return {}
    return {fp: dict(ep) for fp, ep in raw.items()
            if isinstance(fp, str) and isinstance(ep, dict)
            and all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in ep.items())}


def _letter_ids(wire: dict[str, Any], name: str) -> list[int]:
    """An optional envelope list of dead-letter ids (`replays`, `purge`); absent means none."""
    ids = wire.get(name, [])
    if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= INT_MAX for i in ids):
        raise UndecodableBatch("undecodable", f"{name!r} should be a list of dead-letter ids")
    return ids


def _field(raw: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedItem(f"field {name!r} should be {expected}, got {type(value).__name__}")
    return value


def _int(raw: dict[str, Any], name: str, low: int = INT_MIN, high: int = INT_MAX) -> int:
    value = _field(raw, name, int)
    if not low <= value <= high:
        raise MalformedItem(f"field {name!r} = {value} is outside {low}..{high}")
    return value


def _optional_str(raw: dict[str, Any], name: str) -> str | None:
    return None if raw.get(name) is None else _field(raw, name, str)


def _str_list(raw: dict[str, Any], name: str) -> tuple[str, ...]:
    values = _field(raw, name, list)
    if not all(isinstance(v, str) for v in values):
        raise MalformedItem(f"field {name!r} should be a list of strings")
    return tuple(values)


def parse_item(raw: Any) -> Item:
    """One wire map → a typed item; raise MalformedItem with what is wrong."""
    if not isinstance(raw, dict):
        raise MalformedItem(f"an item is a map, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind == "upsert":
        start_line = _int(raw, "start_line", 1)
        end_line = _int(raw, "end_line", 1)
        if start_line < 1 or end_line < start_line:
            raise MalformedItem(f"bad line range {start_line}-{end_line}")
        shadow = raw.get("shadow")
        if shadow is not None:
            if not isinstance(shadow, dict):
                raise MalformedItem("field 'shadow' should be a map")
            shadow = ShadowVector(_field(shadow, "fingerprint", str),
                                  _int(shadow, "dim", 1, MAX_DIM), _field(shadow, "vector", bytes))
        return Upsert(
            shadow=shadow,
            key=_key(raw, start_line),
            end_line=end_line,
            heading_path=_str_list(raw, "heading_path"),
            content=_field(raw, "content", str),
            tags=_str_list(raw, "tags"),
            fingerprint=_field(raw, "fingerprint", str),
            dim=_int(raw, "dim", 1, MAX_DIM),
            vector=_field(raw, "vector", bytes),
        )
    if kind == "file":
        keys = _field(raw, "keys", list)
        if not all(isinstance(k, list) and len(k) == 2 and isinstance(k[0], str)
                   and isinstance(k[1], int) and not isinstance(k[1], bool)
                   and 1 <= k[1] <= INT_MAX for k in keys):
            raise MalformedItem("field 'keys' should be a list of [content_hash, start_line]")
        return FileSnapshot(
            namespace=_field(raw, "namespace", str),
            source_file=_field(raw, "source_file", str),
            digest=_field(raw, "digest", str),
            size=_int(raw, "size", 0),
            mtime_ns=_int(raw, "mtime_ns"),
            keys=tuple((k[0], k[1]) for k in keys),
            base=_optional_str(raw, "base"),
        )
    if kind == "reset":
        dim = _int(raw, "dim", 1, MAX_DIM)
        return Reset(_field(raw, "fingerprint", str), _field(raw, "name", str), dim)
    if kind == "vector":
        return ChunkVector(_key(raw, _int(raw, "start_line", 1)), _field(raw, "fingerprint", str),
                           _int(raw, "dim", 1, MAX_DIM), _field(raw, "vector", bytes))
    if kind == "migrate":
        endpoint = raw.get("endpoint")
        if endpoint is not None and not (isinstance(endpoint, dict) and all(
                isinstance(k, str) and (v is None or isinstance(v, str))
                for k, v in endpoint.items())):
            raise MalformedItem("field 'endpoint' should be a map of text")
        return Migrate(_field(raw, "fingerprint", str), _field(raw, "name", str),
                       _int(raw, "dim", 1, MAX_DIM), endpoint)
    if kind == "cutover":
        return Cutover(_field(raw, "fingerprint", str))
    if kind == "cancel":
        return CancelMigration(_field(raw, "fingerprint", str))
    raise MalformedItem(f"unknown item kind {kind!r}")


def _key(raw: dict[str, Any], start_line: int) -> ChunkKey:
    return ChunkKey(_field(raw, "namespace", str), _field(raw, "source_file", str),
                    _field(raw, "content_hash", str), start_line)


def describe_item(raw: Any) -> dict[str, Any]:
    """Best-effort identifying fields of a raw item, for dead-letter rows (never raises)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for name, kind in (("kind", str), ("namespace", str), ("source_file", str),
                       ("content_hash", str), ("start_line", int), ("fingerprint", str)):
        value = raw.get(name)
        if isinstance(value, kind) and not isinstance(value, bool):
            if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                continue
            out[name] = value
    return out


def pack_item(raw: Any) -> bytes:
    """The msgpack bytes of a raw item, stored whole in a dead letter."""
    return msgpack.packb(raw, use_bin_type=True)


def unpack_item(data: bytes) -> Any:
    """Inverse of pack_item."""
    return _unpack(data)

