"""Fuzz the wire decoder, then the committer, with random and mutated batches; exit 1 on a crash.

Phase 1 feeds `--count` inputs to `memwal.records.decode_batch` and every item of a decodable
batch to `parse_item`. The only exceptions allowed are `UndecodableBatch` (the envelope) and
`MalformedItem` (one item); anything else is a crash. Inputs are real encoded batches (built here
with the chunker and the hash-384 embedder, plus tests/data/batch-v1.msgpack) after bit flips,
byte stamps, truncations, splices, insertions and deletions; random msgpack structures; deeply
nested arrays; and wire-level mutations (one field of the envelope or of an item replaced by a
random value of any msgpack type, or removed).

Phase 2 enqueues `--worker-count` mutated batches (each re-stamped with a fresh id, so none is
skipped as a redelivery), interleaved with valid ones, into a real queue in a temporary home, and
drains them with the real committer in-process. An exception escaping `Committer.apply` is a
crash: the harness acknowledges that message (the committer would otherwise meet it again
forever) and goes on. Afterwards the queue must be empty, every other message must be in the
ledger, and `run_doctor` must pass.

Everything is derived from `--seed`, so a crash found once is found again.

    .venv/bin/python benchmarks/fuzz_decoder.py                          # 100,000 + 2,000
    .venv/bin/python benchmarks/fuzz_decoder.py --count 3000 --worker-count 100 --seed 7
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

import memwal
from benchlib import (
    REPO, chunk_upserts, committer, embedder, ledger_batch_ids, make_home, put_raw, work_folder,
)
# The wire format is what this script fuzzes: its encoder, decoder and item types (docs/wire-format.md).
from memwal.records import (
    Batch, FileSnapshot, MalformedItem, Producer, Reset, UndecodableBatch, decode_batch, encode_batch,
    parse_item,
)

FROZEN_V1 = REPO / "tests" / "data" / "batch-v1.msgpack"
PRODUCER = Producer("fuzz-host", 1, "fuzz_decoder")
# Integers at the edges of what msgpack, SQLite (int64) and C longs can hold.
EDGE_INTS = (0, 1, -1, 127, 128, 255, 256, 2**15, 2**16, 2**31 - 1, 2**31, 2**32, 2**53,
             2**63 - 1, 2**63, 2**64 - 1, -2**31, -2**63, 8192, 8193)
EDGE_FLOATS = (0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324)
# Bytes that change a msgpack value's type or length: nil, never-used, ext, 64-bit ints,
# array/map/str headers.
STAMP_BYTES = (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC4, 0xC7, 0xCB,
               0xCF, 0xD3, 0xD4, 0xD9, 0xDC, 0xDD, 0xDE, 0xDF, 0xFF)


# -- seeds: real batches -------------------------------------------------------------------


SAMPLE_NOTE = """---
tags: [fuzz, wire]
---
# Harbour log

The catamaran left the harbour at dawn; the lighthouse keeper logged it.

## Weather

Wind from the north-west, force five, rain later. Visibility good.

## Cargo

- three crates of tomatoes
- one barrel of compost
"""


def seed_batches(rng: random.Random) -> list[bytes]:
    """Real encoded batches of every item kind, small enough to keep phase 2 quick."""
    model, other = embedder("hash-384"), embedder("hash-384-b")
    source = "/fuzz/notes/harbour.md"
    upserts = chunk_upserts(SAMPLE_NOTE, source, max_chars=200, min_chars=20)
    snapshot = FileSnapshot("default", source, "d" * 64, len(SAMPLE_NOTE), 1_700_000_000_000_000_000,
                            tuple((u.key.content_hash, u.key.start_line) for u in upserts))
    batches = [
        Batch((snapshot, *upserts), PRODUCER, id=_fresh_id(rng), enqueued_at=1_700_000_000.0),
        Batch((upserts[0],), PRODUCER, id=_fresh_id(rng), enqueued_at=1_700_000_001.0),
        Batch((FileSnapshot("default", "/fuzz/gone.md", "", 0, 2, ()),), PRODUCER,
              id=_fresh_id(rng), enqueued_at=1_700_000_002.0),
        Batch((Reset(model.fingerprint, model.name, model.dim),), PRODUCER,
              id=_fresh_id(rng), enqueued_at=1_700_000_003.0),
        Batch((Reset(other.fingerprint, other.name, other.dim),
               Reset(model.fingerprint, model.name, model.dim)), PRODUCER,
              id=_fresh_id(rng), enqueued_at=1_700_000_004.0, replays=(1, 2)),
    ]
    encoded = [encode_batch(b) for b in batches]
    if FROZEN_V1.exists():
        encoded.append(FROZEN_V1.read_bytes())
    return encoded


def _fresh_id(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128)).hex


# -- generators and mutators ---------------------------------------------------------------


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any value msgpack can encode: edge numbers, text, bytes, ext, nested arrays and maps."""
    kinds = ["nil", "bool", "int", "edge_int", "float", "edge_float", "str", "bytes", "ext"]
    if depth < 3:
        kinds += ["list", "map"]
    kind = rng.choice(kinds)
    if kind == "nil":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-1000, 1000)
    if kind == "edge_int":
        return rng.choice(EDGE_INTS)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "edge_float":
        return rng.choice(EDGE_FLOATS)
    if kind == "str":
        alphabet = "abc/#-_ é€𝄞\n\x00"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
    if kind == "bytes":
        return rng.randbytes(rng.choice((0, 1, 3, 4, 16, 1536)))
    if kind == "ext":
        return msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.randint(0, 8)))
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["v", "id", "kind", "items", "dim", "vector", "keys", "producer", "x"]
    return {rng.choice(keys) if rng.random() < 0.7 else random_value_key(rng):
            random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_value_key(rng: random.Random) -> str | bytes:
    # strict_map_key allows only str and bytes keys; both must be handled.
    return rng.choice(["", "kind", "ü", "\x00"]) if rng.random() < 0.7 else rng.randbytes(3)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def mutate_bytes(rng: random.Random, data: bytes, seeds: list[bytes]) -> tuple[str, bytes]:
    """One byte-level mutation of `data`, named."""
    buf = bytearray(data)
    how = rng.choice(["bitflip", "stamp", "truncate", "splice", "insert", "delete", "duplicate",
                      "trailing"])
    if not buf:
        how = "insert"
    if how == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif how == "stamp":
        for _ in range(rng.randint(1, 3)):
            buf[rng.randrange(len(buf))] = rng.choice(STAMP_BYTES)
    elif how == "truncate":
        del buf[rng.randrange(len(buf)):]
    elif how == "splice":
        other = rng.choice(seeds)
        buf = buf[:rng.randrange(len(buf) + 1)] + other[rng.randrange(len(other) + 1):]
    elif how == "insert":
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.randbytes(rng.randint(1, 16))
    elif how == "delete":
        at = rng.randrange(len(buf))
        del buf[at:at + rng.randint(1, 16)]
    elif how == "duplicate":
        at = rng.randrange(len(buf))
        piece = buf[at:at + rng.randint(1, 64)]
        buf[at:at] = piece
    else:
        buf += rng.randbytes(rng.randint(1, 8))
    return how, bytes(buf)


def mutate_wire(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Replace or remove one field of the envelope or of one item, then re-encode."""
    wire = msgpack.unpackb(data, raw=False)
    target: dict[str, Any] = wire
    where = "envelope"
    items = wire.get("items")
    if isinstance(items, list) and items and rng.random() < 0.75:
        index = rng.randrange(len(items))
        if isinstance(items[index], dict):
            target, where = items[index], f"item.{items[index].get('kind')}"
        else:
            items[index] = random_value(rng)
            return "wire:item-replaced", pack(wire)
    name = rng.choice(sorted(target, key=str)) if target and rng.random() < 0.9 else "extra"
    action = rng.choice(["replace", "replace", "remove", "edge", "edge"])
    if action == "remove" and name in target:
        del target[name]
    elif action == "edge":
        target[name] = rng.choice(EDGE_INTS + EDGE_FLOATS)
    else:
        target[name] = random_value(rng)
    return f"wire:{where}.{name}:{action}", pack(wire)


def deep_nesting(rng: random.Random) -> bytes:
    depth = rng.choice((100, 1000, 10_000, 100_000))
    return bytes([rng.choice((0x91, 0x81, 0xDC))]) * depth + b"\xc0"


def make_input(rng: random.Random, seeds: list[bytes], for_committer: bool) -> tuple[str, bytes]:
    """One fuzz input and the name of how it was made.

    For the committer every input starts from a seed re-stamped with a fresh id (else most would
    be skipped as redeliveries), and wire-level mutations dominate: byte-level ones almost
    always give an undecodable batch, which phase 1 covers by the thousand.
    """
    seed = rng.choice(seeds)
    if for_committer:
        seed = _restamp(rng, seed)
    roll = rng.random()
    byte_share, wire_share = (0.15, 0.90) if for_committer else (0.45, 0.85)
    if roll < byte_share - 0.05:
        return mutate_bytes(rng, seed, seeds)
    if roll < byte_share:
        # Mutations stacked: a byte-level mutation of a byte-level mutation.
        how, data = mutate_bytes(rng, seed, seeds)
        how2, data = mutate_bytes(rng, data, seeds)
        return f"{how}+{how2}", data
    if roll < wire_share:
        return mutate_wire(rng, seed)
    if roll < wire_share + 0.08:
        return "random-structure", pack(random_value(rng))
    if roll < wire_share + 0.10:
        return "deep-nesting", deep_nesting(rng)
    return "random-bytes", rng.randbytes(rng.randint(0, 256))


# -- phase 1: decoder ----------------------------------------------------------------------


@dataclass
class Crashes:
    """Exceptions that should never escape, grouped by type and the memwal line that raised."""

    count: int = 0
    kinds: Counter = field(default_factory=Counter)
    examples: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)

    def add(self, how: str, data: bytes, exc: BaseException) -> None:
        self.count += 1
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "memwal" in f.filename and "benchmarks" not in f.filename]
        frame = (ours or frames or [None])[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}" if frame else "?"
        key = f"{type(exc).__name__} at {where}"
        self.kinds[key] += 1
        if key not in self.examples:
            self.examples[key] = (how, data, str(exc)[:160])

    def report(self, label: str) -> None:
        for key, n in self.kinds.most_common():
            how, data, message = self.examples[key]
            print(f"  {label} crash x{n}: {key}\n    e.g. {message}\n    made by {how}; input "
                  f"({len(data)} bytes) starts {data[:40].hex()}")


def fuzz_decoder(count: int, rng: random.Random, seeds: list[bytes]) -> Crashes:
    outcomes: Counter = Counter()
    crashes = Crashes()
    started = time.perf_counter()
    for _ in range(count):
        how, data = make_input(rng, seeds, for_committer=False)
        try:
            batch = decode_batch(data)
        except UndecodableBatch as exc:
            outcomes[f"batch {exc.reason}"] += 1
            continue
        except Exception as exc:  # the point of the exercise: anything else is a crash
            crashes.add(how, data, exc)
            continue
        outcomes["batch decoded"] += 1
        for raw in batch.raw_items:
            try:
                parse_item(raw)
            except MalformedItem:
                outcomes["item malformed"] += 1
            except Exception as exc:
                crashes.add(how, data, exc)
            else:
                outcomes["item parsed"] += 1
    elapsed = time.perf_counter() - started
    print(f"phase 1 (decode_batch + parse_item): {count:,} inputs in {elapsed:.1f} s "
          f"({count / elapsed if elapsed else 0:,.0f}/s), crashes {crashes.count}")
    for name, n in sorted(outcomes.items()):
        print(f"  {name:<26} {n:>9,}")
    crashes.report("decoder")
    return crashes


# -- phase 2: the committer ----------------------------------------------------------------


def fuzz_committer(count: int, rng: random.Random, seeds: list[bytes]) -> tuple[Crashes, bool]:
    """Enqueue `count` mutated batches among valid ones; drain with the real committer."""
    crashes = Crashes()
    messages: list[tuple[str, bytes]] = []
    for n in range(count):
        if n % 10 == 0:  # a valid batch now and then, so the index keeps real content
            messages.append(("valid", _restamp(rng, rng.choice(seeds[:5]))))
        messages.append(make_input(rng, seeds, for_committer=True))
    with work_folder() as work:
        settings = make_home(work / "home")
        made = dict(zip(put_raw(settings, (data for _, data in messages)), messages))
        started = time.perf_counter()
        outcomes: Counter = Counter()
        crashed: set[int] = set()
        with committer(settings) as session:
            while (delivery := session.queue.take()) is not None:
                try:
                    outcome = session.apply(delivery)
                except Exception as exc:
                    crashes.add(*made[delivery.position], exc)
                    crashed.add(delivery.position)
                    # A poison message would come back forever: drop it so the run goes on.
                    session.queue.acknowledge(delivery.position)
                    continue
                outcomes["duplicate" if outcome.duplicate else "applied"] += 1
                outcomes["items committed"] += outcome.committed
                outcomes["items dead-lettered"] += outcome.dead_lettered
                outcomes["items skipped"] += outcome.skipped
        elapsed = time.perf_counter() - started
        doctor = memwal.run_doctor(settings)
        ledger = ledger_batch_ids(settings)
    # Messages that neither crashed nor left a ledger row (by batch id, or position if undecodable).
    missing = sum(_ledger_id(position, data) not in ledger
                  for position, (_, data) in made.items() if position not in crashed)
    print(f"phase 2 (queue + committer): {len(made):,} messages ({count:,} mutated) drained "
          f"in {elapsed:.1f} s, crashes {crashes.count}, doctor "
          f"{'ok' if doctor['ok'] else 'FAILED'}, not in the ledger {missing}")
    for name, n in sorted(outcomes.items()):
        print(f"  {name:<26} {n:>9,}")
    for check in doctor["checks"]:
        if not check["ok"]:
            print(f"  doctor: {check['name']}: {check['detail']}")
    crashes.report("committer")
    return crashes, doctor["ok"] and missing == 0


def _restamp(rng: random.Random, data: bytes) -> bytes:
    wire = msgpack.unpackb(data, raw=False)
    wire["id"] = _fresh_id(rng)
    return pack(wire)


def _ledger_id(position: int, data: bytes) -> str:
    try:
        return decode_batch(data).id
    except UndecodableBatch:
        return f"undecodable@{position}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="phase 1 inputs")
    parser.add_argument("--worker-count", type=int, default=2_000,
                        help="phase 2 mutated batches (0 skips phase 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    seeds = seed_batches(rng)
    print(f"fuzz_decoder seed {args.seed}: {len(seeds)} seed batches "
          f"({', '.join(str(len(s)) for s in seeds)} bytes)")
    failed = fuzz_decoder(args.count, rng, seeds).count > 0
    if args.worker_count > 0:
        crashes, consistent = fuzz_committer(args.worker_count, rng, seeds)
        failed = failed or crashes.count > 0 or not consistent
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
