"""The derived keyword index of a long-lived reader: FTS5's own BM25, from postings kept in memory.

FTS5 stays the record. A query of common words matches most rows, and FTS5 scores every match
before it sorts (about 1 µs a row: 100 ms at 100,000 chunks). A reader that searches again and
again (`mm serve`, `mm mcp`) keeps, per query word, the rows that hold it and how often, read
once from FTS5's own postings (an fts5vocab table: FTS5's tokenizer, never a second one), and
each row's length; a search is then a few vector operations over those arrays.

It is stamped with the commit sequence it was read at, and it never answers differently from
FTS5 (`ORDER BY bm25(chunks_fts), rowid`):
- the scores are FTS5's bm25 formula (k1 1.2, b 0.75, both columns weighted 1), operation for
  operation in float64, with the row count, token total and rows per word of the current
  snapshot;
- rows written after the stamp (found by `chunks_by_seq`) are scored by FTS5 itself and their
  kept postings ignored; kept rows that were deleted since are dropped before they are returned;
- a query word FTS5 would not see as one plain token (anything but ASCII letters and digits) and
  a filtered search are left to FTS5 (`ranking` returns None).
When the stamp falls far behind (many rows written since, or many searches behind it), the kept
postings are dropped and read again at the current snapshot.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Sequence

from memwal import store
from memwal.store import reads

if TYPE_CHECKING:
    import numpy as np

K1, B = 1.2, 0.75  # FTS5's bm25 constants
PLAIN_TOKEN = re.compile(r"[A-Za-z0-9]+")  # unicode61 keeps these whole and only lowercases them
BEHIND_ROWS = 2_000  # rows written since the stamp, beyond which the postings are read again...
BEHIND_SEARCHES = 200  # ...or searches answered behind the same stamp
# Rows kept across words (20 bytes each: id, count, and the word's bm25 term at the stamp), the
# least recently used word dropped beyond it: at most about 400 MB.
MAX_POSTINGS = 20_000_000


def _varints(data: bytes) -> list[int]:
    """SQLite varints (big-endian 7-bit groups; a ninth byte carries 8 bits)."""
    values, value, used = [], 0, 0
    for byte in data:
        used += 1
        if used == 9:
            values.append((value << 8) | byte)
            value, used = 0, 0
        elif byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            values.append((value << 7) | byte)
            value, used = 0, 0
    return values


def _totals(conn: store.Connection) -> tuple[int, int] | None:
    """FTS5's (row count, token total over all columns), or None if it cannot be read."""
    record = reads.fts_totals_record(conn)
    values = _varints(record) if record else []
    return (values[0], sum(values[1:])) if len(values) >= 2 else None


class KeywordIndex:
    """Kept postings and row lengths of one index file; one search at a time (the caller's lock)."""

    def __init__(self, max_postings: int = MAX_POSTINGS) -> None:
        self.max_postings = max_postings
        self._stamp: int | None = None
        self._lengths: np.ndarray | None = None
        self._totals: tuple[int, int] = (0, 0)
        self._postings: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # at the stamp's totals
        self._held = 0
        self._behind = 0
        self.usable = True

    @staticmethod
    def terms_of(tokens: Sequence[str]) -> list[str] | None:
        """The FTS5 tokens of the query's words, if each is one plain token; else None."""
        if not tokens or not all(PLAIN_TOKEN.fullmatch(token) for token in tokens):
            return None
        return [token.lower() for token in tokens]

    def ranking(self, conn: store.Connection, terms: Sequence[str], match: str,
                depth: int) -> list[int] | None:
        """Chunk ids of the FTS5 query `match` (whose phrases are `terms`) by bm25, best first,
        ties by id: what `reads.bm25_ranking` returns, or None when only FTS5 can answer."""
        import numpy as np

        now = reads.commit_seq(conn)
        if self._stamp is None or now < self._stamp or self._behind >= BEHIND_SEARCHES or \
                (not self.usable and now != self._stamp):  # (an empty index has no totals yet)
            self._restamp(conn, now)
        tail: list[int] = []
        if now != self._stamp:
            tail = reads.ids_written_after(conn, self._stamp)  # type: ignore[arg-type]
            if len(tail) > BEHIND_ROWS:
                self._restamp(conn, now)
                tail = []
            else:
                self._behind += 1
        if not self.usable:
            return None
        current = now == self._stamp
        totals = self._totals if current else _totals(conn)
        if totals is None or totals[0] == 0:
            return None
        rows, tokens = totals
        average = tokens / rows
        assert self._lengths is not None
        scores = np.zeros(len(self._lengths), dtype=np.float64)
        for term in terms:
            ids, counts = self._postings_of(conn, term)
            holding = len(ids) if current else reads.fts_term_rows(conn, term)
            idf = math.log((rows - holding + 0.5) / (holding + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            ids, part = self._parts[term] if current and term in self._parts else \
                self._part(ids, counts, average)
            if current:
                self._parts[term] = (ids, part)
            scores[ids] += idf * part
        if tail:
            scores[np.asarray([i for i in tail if i < len(scores)], dtype=np.int64)] = 0.0
        chosen = self._best(conn, scores, depth, check_alive=not current)
        if tail:
            written = set(tail)
            fresh = [(-score, chunk_id) for chunk_id, score in
                     reads.bm25_scores_from(conn, match, min(tail)) if chunk_id in written]
            chosen = sorted(chosen + fresh, key=lambda pair: (-pair[0], pair[1]))[:depth]
        return [chunk_id for _, chunk_id in chosen]

    def _best(self, conn: store.Connection, scores: np.ndarray, depth: int,
              check_alive: bool) -> list[tuple[float, int]]:
        """The `depth` best (score, id) among positive scores, ties by id; deleted ids skipped."""
        import numpy as np

        rows = np.flatnonzero(scores)
        values = scores[rows]
        matched = len(rows)
        take = depth
        while True:
            if take < matched:
                # (among the matched rows only: a selection over many equal zeros is slow)
                threshold = np.partition(values, matched - take)[matched - take]
                candidates = rows[values >= threshold]
            else:
                candidates = rows
            order = candidates[np.lexsort((candidates, -scores[candidates]))]
            chosen = [(float(scores[i]), int(i)) for i in order]
            if check_alive:
                alive = reads.existing_ids(conn, [i for _, i in chosen])
                chosen = [pair for pair in chosen if pair[1] in alive]
            if len(chosen) >= depth or take >= matched:
                return chosen[:depth]
            take *= 2

    def _part(self, ids: np.ndarray, counts: np.ndarray,
              average: float) -> tuple[np.ndarray, np.ndarray]:
        """A word's rows known at the stamp (newer ones are the tail's), and its bm25 term
        without the idf: FTS5's expression in its order of operations, so equal rows tie
        exactly and every score is FTS5's to the bit."""
        import numpy as np

        known = ids < len(self._lengths)  # type: ignore[arg-type]
        if not known.all():
            ids, counts = ids[known], counts[known]
        lengths = self._lengths[ids]  # type: ignore[index]
        counts = counts.astype(np.float64)
        return ids, (counts * (K1 + 1.0)) / (counts + K1 * (1 - B + B * lengths / average))

    def _postings_of(self, conn: store.Connection, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, counts) of the rows holding `term`, read once and kept."""
        import numpy as np

        kept = self._postings.get(term)
        if kept is not None:
            self._postings.move_to_end(term)
            return kept
        pairs = reads.fts_term_counts(conn, term)
        ids = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
        counts = np.fromiter((p[1] for p in pairs), dtype=np.float32, count=len(pairs))  # exact
        self._postings[term] = (ids, counts)
        self._held += len(ids)
        while self._held > self.max_postings and len(self._postings) > 1:
            dropped, (old, _) = self._postings.popitem(last=False)
            self._parts.pop(dropped, None)
            self._held -= len(old)
        return ids, counts

    def _restamp(self, conn: store.Connection, now: int) -> None:
        """Drop what is kept and read the row lengths and totals of this snapshot."""
        import numpy as np

        self._postings.clear()
        self._parts.clear()
        self._held, self._behind, self._stamp = 0, 0, now
        sizes = reads.fts_row_sizes(conn)
        top = max((row_id for row_id, _ in sizes), default=-1)
        lengths = np.zeros(top + 1, dtype=np.float64)
        for row_id, blob in sizes:
            blob = bytes(blob)
            lengths[row_id] = sum(blob) if max(blob, default=0) < 0x80 else sum(_varints(blob))
        totals = _totals(conn)
        # FTS5's totals and its per-row sizes must agree, or this is not the format we read.
        self.usable = totals is not None and totals == (len(sizes), int(lengths.sum()))
        self._lengths, self._totals = lengths, totals or (0, 0)
