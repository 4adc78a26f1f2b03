"""Dead letters: list, show, export (read-only), replay (through the queue) and purge.

Nothing here writes the index behind the committer's back: replay enqueues batches whose
`replays` field lets the committer mark the dead letters, and purge enqueues a batch whose
`purge` field the committer applies (both in queue order, so both work while any committer
runs). Both then wait for the commit and report what the committer did.
"""

from __future__ import annotations

import base64
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from memwal import store
from memwal.config import Settings
from memwal.embedders import configured_embedder
from memwal.errors import DeadLetterError, DeadLetterNotFound
from memwal.queue import Role, open_queue
from memwal.records import (
    Batch, MalformedItem, Producer, ShadowVector, Upsert, encode_batch, parse_item, unpack_item,
)
from memwal.results import JsonResult, with_iso_times
from memwal.store import reads
from memwal.store.reads import DEAD_LETTER_COLUMNS as LIST_COLUMNS
from memwal.store.reads import DEAD_LETTER_DETAIL_COLUMNS as DETAIL_COLUMNS
from memwal.vectors import to_bytes
from memwal.worker import wait_committed

MAX_ID = 2**63 - 1  # SQLite's largest integer


@dataclass(frozen=True)
class Selection:
    """Which dead letters a call is about: ids, or all, narrowed by reason, model fingerprint
    and source-file glob; replayed ones are left out unless asked for."""

    ids: tuple[int, ...] = ()
    all: bool = False
    reason: str | None = None
    fingerprint: str | None = None
    source_glob: str | None = None
    include_replayed: bool = False
    replayed_only: bool = False

    def __post_init__(self) -> None:
        bad = [i for i in self.ids if isinstance(i, bool) or not isinstance(i, int) or
               not 1 <= i <= MAX_ID]
        if bad:
            raise DeadLetterError(f"dead letter ids are whole numbers from 1 to {MAX_ID}, not "
                                  f"{', '.join(map(repr, bad[:3]))}.",
                                  "See `mm queue dead-letters list` for the ids.")

    def is_empty(self) -> bool:
        return not (self.ids or self.all or self.reason or self.fingerprint or self.replayed_only)


def _rows(conn: store.Connection, selection: Selection, columns: Sequence[str]
          ) -> Iterator[JsonResult]:
    replayed = ("only" if selection.replayed_only else
                "include" if selection.include_replayed else "exclude")
    for record in reads.dead_letter_rows(conn, columns, ids=selection.ids, reason=selection.reason,
                                         fingerprint=selection.fingerprint, replayed=replayed):
        source = record.get("source_file")
        if selection.source_glob and not (source and fnmatch.fnmatchcase(source, selection.source_glob)):
            continue
        yield with_iso_times(JsonResult(record))  # `enqueued_at` and `enqueued_at_iso`...


def list_dead_letters(settings: Settings, selection: Selection) -> list[JsonResult]:
    """Dead letters matching `selection`, one row each (a JsonResult), in their original queue
    order.

    Replayed ones only with `selection.include_replayed`. Read-only.
    """
    with store.reading(settings.index_path) as conn:
        return [] if conn is None else list(_rows(conn, selection, LIST_COLUMNS))


def _full(record: JsonResult) -> JsonResult:
    """A dead letter with its item decoded: content, vector dimension and norm."""
    item_bytes, raw = record.pop("item"), record.pop("raw")
    record["item"] = None
    record["raw_bytes"] = len(raw) if raw is not None else None
    if item_bytes is not None:
        item = unpack_item(bytes(item_bytes))
        if isinstance(item, dict):
            vector = item.get("vector")
            shown = {k: v for k, v in item.items() if k != "vector"}
            if isinstance(vector, bytes):
                values = np.frombuffer(vector[: len(vector) // 4 * 4], dtype="<f4")
                shown["vector_dim"] = int(values.size)
                shown["vector_norm"] = float(np.linalg.norm(values)) if values.size else 0.0
            record["item"] = shown
            record["content"] = item.get("content")
    return record


def show_dead_letter(settings: Settings, letter_id: int) -> JsonResult:
    """One dead letter in full (a JsonResult): its row, its item decoded (vector shown as
    dimension and norm), its text; its `as_json()` shows a malformed item's bytes as text.
    Raises DeadLetterNotFound (a DeadLetterError, exit 2) if there is no such dead letter."""
    with store.reading(settings.index_path) as conn:
        if conn is None:
            raise DeadLetterNotFound(f"no dead letter {letter_id}: the index is empty.")
        rows = list(_rows(conn, Selection(ids=(letter_id,)), DETAIL_COLUMNS))
    if not rows:
        raise DeadLetterNotFound(f"no dead letter {letter_id}:", "see `mm queue dead-letters list`")
    return _full(rows[0])


def export_dead_letters(settings: Settings, selection: Selection) -> Iterator[JsonResult]:
    """Dead letters as lossless JSON-ready records, in original order: the whole item (vector
    in base64) or, for an undecodable batch, its raw bytes in base64. Read-only."""
    with store.reading(settings.index_path) as conn:
        if conn is None:
            return
        for record in _rows(conn, selection, DETAIL_COLUMNS):
            item_bytes, raw = record.pop("item"), record.pop("raw")
            if item_bytes is not None:
                item = unpack_item(bytes(item_bytes))
                if isinstance(item, dict) and isinstance(item.get("vector"), bytes):
                    item = {**item, "vector": base64.b64encode(item["vector"]).decode()}
                record["item"] = _jsonable(item)
            record["raw_base64"] = base64.b64encode(bytes(raw)).decode() if raw is not None else None
            yield record


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class ReplayPlan:
    """What a replay enqueued: its batch ids, how many letters (`replayed`: queued, not yet
    committed), those it could not replay, and which batch carries each letter. `as_json()`
    is the first three: what the web's replay answers."""

    batch_ids: list[str]
    replayed: int
    not_replayable: list[tuple[int, str]]
    letters: dict[int, str] = field(default_factory=dict)  # dead-letter id -> batch id
    again: bool = False

    def as_json(self) -> dict[str, Any]:
        """What the web's replay answers: batch ids, how many letters, those not replayable."""
        return {"batch_ids": self.batch_ids, "replayed": self.replayed,
                "not_replayable": [{"id": letter_id, "why": why}
                                   for letter_id, why in self.not_replayable]}


@dataclass(frozen=True)
class ReplayResult:
    """What the committer did with a replay: how many letters it replayed, and those another
    replay had claimed first (`claimed_by`: letter id -> that replay's batch id). `committed` and
    `dead_lettered` count the replayed items (one refused again is a new dead letter)."""

    replayed: int
    already_replayed: int
    claimed_by: dict[int, str]
    committed: int
    dead_lettered: int

    def as_json(self) -> dict[str, Any]:
        """What `mm queue dead-letters replay --json` and `mem_replay_dead_letters` add once
        the replay is committed."""
        return {"replayed": self.replayed, "already_replayed": self.already_replayed,
                "claimed_by": [{"id": letter_id, "batch_id": batch_id}
                               for letter_id, batch_id in sorted(self.claimed_by.items())],
                "committed": self.committed, "dead_lettered": self.dead_lettered}


def replay_dead_letters(settings: Settings, selection: Selection, *, reembed: bool = False, again: bool = False,
           batch_records: int | None = None) -> ReplayPlan:
    """Re-enqueue dead letters through the queue, in their original order.

    As-is (re-checked against the active model) or, with `reembed`, with vectors recomputed from
    the stored text by the configured model. The committer marks each letter replayed by the
    replay's batch id, in the same transaction as the replayed items. Letters already replayed
    are skipped unless `again`. Returns a ReplayPlan (batch ids, count, letters that cannot be
    replayed and why). Raises DeadLetterError (exit 2) for an empty selection, and
    DeadLetterNotFound (one, HTTP 404) for unknown ids.
    """
    if selection.is_empty():
        raise DeadLetterError("say which dead letters to replay:", "IDs, --all, --reason or --fingerprint")
    with store.reading(settings.index_path) as conn:
        if conn is None:
            raise DeadLetterError("there are no dead letters: the index is empty.")
        chosen = Selection(selection.ids, selection.all, selection.reason, selection.fingerprint,
                           selection.source_glob, include_replayed=again)
        rows = list(_rows(conn, chosen, ("id", "item", "replayed_by")))
    if selection.ids:
        found = {r["id"] for r in rows}
        missing = [i for i in selection.ids if i not in found]
        if missing:
            raise DeadLetterNotFound(f"dead letter(s) {', '.join(map(str, missing))} not found.",
                                  "See `mm queue dead-letters list --include-replayed`.")
        already = [r["id"] for r in rows if r["replayed_by"]]
        if already and not again:
            raise DeadLetterError(f"dead letter(s) {', '.join(map(str, already))} were already "
                                  "replayed:", "add --again to replay them once more")
    embedder = shadow = None
    if reembed:
        from memwal.worker import hosting

        # During a migration, the active model's vectors and the new model's as shadows, as
        # any producer sends them (Committed.embedders_for); else the configured model's.
        with hosting(settings) as host:
            embedder, shadow = host.committed.embedders_for(configured_embedder(settings))
    items: list[tuple[int, Upsert]] = []
    not_replayable: list[tuple[int, str]] = []
    for row in rows:
        if row["item"] is None:
            not_replayable.append((row["id"], "an undecodable batch has no item to replay"))
            continue
        try:
            item = parse_item(unpack_item(bytes(row["item"])))
        except MalformedItem as exc:
            not_replayable.append((row["id"], f"malformed item: {exc}"))
            continue
        if not isinstance(item, Upsert):
            not_replayable.append((row["id"], f"a {item.kind} item is not replayed"))
            continue
        items.append((row["id"], item))
    if embedder is not None and items:
        texts = [item.content for _, item in items]
        vectors = embedder.embed(texts)
        shadows = shadow.embed(texts) if shadow is not None else [None] * len(items)
        items = [(letter_id, Upsert(
                    item.key, item.end_line, item.heading_path, item.content, item.tags,
                    embedder.fingerprint, embedder.dim, to_bytes(vector),
                    shadow=None if shadow is None or extra is None else ShadowVector(
                        shadow.fingerprint, shadow.dim, to_bytes(extra))))
                 for (letter_id, item), vector, extra in zip(items, vectors, shadows)]
    limit = batch_records or settings["queue.batch_records"]
    producer = Producer.current("mm queue dead-letters replay")
    queue = open_queue(settings, Role.PRODUCER)
    plan = ReplayPlan([], len(items), not_replayable, again=again)
    try:
        for start in range(0, len(items), limit):
            part = items[start:start + limit]
            batch = Batch(items=tuple(item for _, item in part), producer=producer,
                          replays=tuple(letter_id for letter_id, _ in part), replay_again=again)
            queue.put(encode_batch(batch))
            plan.batch_ids.append(batch.id)
            plan.letters.update((letter_id, batch.id) for letter_id, _ in part)
    finally:
        queue.close()
    return plan


def replay_result(settings: Settings, plan: ReplayPlan, *, timeout: float | None = None,
                  take_role: bool = True) -> ReplayResult | None:
    """Wait until a replay's batches are committed, then say what they did (a ReplayResult).

    Two replays planned before either was committed both queue a letter; the committer lets the
    first one it applies claim it and skips the other's copy. This reads, after the commit, which
    replay each letter is marked with, so the second caller learns it was already replayed and
    by which batch. Waiting is `wait_committed`'s: when no committer is alive this process
    takes the role (unless `take_role` is False). Returns None if `timeout` passed first (the
    replay stays queued and will be committed).
    """
    counts = wait_committed(settings, plan.batch_ids, timeout=timeout, take_role=take_role)
    if counts is None:
        return None
    ours = set(plan.batch_ids)
    claimed_by = {} if plan.again else {
        letter: by for letter, by in _replayed_by(settings, list(plan.letters)).items()
        if by is not None and by not in ours}
    # The ledger's count of skipped copies is the truth on a home without the index (a
    # producer of a shared queue cannot read who claimed them); where it can, it agrees.
    already = max(counts.skipped, len(claimed_by))
    return ReplayResult(plan.replayed - already, already, claimed_by, counts.committed,
                        counts.dead_lettered)


def _replayed_by(settings: Settings, letter_ids: list[int]) -> dict[int, str | None]:
    """The batch each of these dead letters is marked replayed by (missing: purged, or no index)."""
    if not letter_ids:
        return {}  # (no ids is no filter to dead_letter_rows: every letter)
    with store.reading(settings.index_path) as conn:
        if conn is None:
            return {}
        return {row["id"]: row["replayed_by"] for row in reads.dead_letter_rows(
            conn, ("id", "replayed_by"), ids=letter_ids, replayed="include")}


def purge_dead_letters(settings: Settings, selection: Selection, *, timeout: float | None = None,
                       take_role: bool = True) -> int | None:
    """Delete the selected dead letters for good (the only way one goes away); return how many.

    The selection is resolved to ids here, and the ids travel through the queue as a purge that
    the committer applies in order, in one transaction: so a purge works while any committer
    runs, and a letter purged meanwhile by someone else is not counted. Waits for the commit
    like `wait_committed` (takes the committer role if none is alive, unless `take_role` is
    False); returns None if `timeout` passed first (the purge stays queued). Raises
    DeadLetterError (exit 2) for an empty selection.
    """
    if selection.is_empty():
        raise DeadLetterError("say which dead letters to purge:", "IDs, --all or --replayed")
    ids = _purge_ids(settings, selection)
    if not ids:
        return 0
    batch = Batch(items=(), producer=Producer.current("mm queue dead-letters purge"),
                  purge=tuple(ids))
    queue = open_queue(settings, Role.PRODUCER)
    try:
        queue.put(encode_batch(batch))
    finally:
        queue.close()
    counts = wait_committed(settings, [batch.id], timeout=timeout, take_role=take_role)
    return None if counts is None else counts.committed


def _purge_ids(settings: Settings, selection: Selection) -> list[int]:
    """The ids a purge selection names now (replayed ones included), read from the index."""
    with store.reading(settings.index_path) as conn:
        if conn is None:
            return []
        chosen = Selection(selection.ids, selection.all, selection.reason, selection.fingerprint,
                           selection.source_glob, include_replayed=True,
                           replayed_only=selection.replayed_only)
        return [r["id"] for r in _rows(conn, chosen, ("id", "source_file"))]
