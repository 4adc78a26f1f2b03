"""What the committer remembers of its queue, so that a queue lost or re-created under it is loud.

A queue's storage has an epoch (`QueueGeneration`: a new queue file, or a Redis queue whose keys
were lost, has a new one) and a position counter. The committer keeps a mark in the index's meta
(`queue_mark`, written in the transaction of the batches it commits): the queue's name and epoch,
the highest position it has seen (delivered, or the counter when it looked), and the highest it
committed. Before each take it compares the queue with its mark (`QueueWatch.check`):

- the same epoch, the counter at or past the mark: all is well;
- another epoch, or the counter below the mark: the queue was re-created. Positions the
  committer saw but did not commit are lost; on a shared (Redis) queue, batches producers put
  after the last one the committer saw may be lost too, and nobody can count them. That is an
  incident, kept in `<home>/queue-incidents/` until dismissed (`mm queue lost --dismiss`):
  `mm queue status` shows it and `mm doctor` fails while it is open.

A SQLite queue file deleted while empty (docs/operations.md says it is safe) is an incident too,
but a quiet one: nothing the committer saw was lost, so it is recorded already dismissed. Either
way the ledger ids of undecodable batches carry the epoch (`undecodable@<epoch>:<position>`),
so a position used again by a new queue is never taken for one already applied.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from memwal import store
from memwal.config import Settings
from memwal.queue import QueueGeneration, WriteAheadQueue
from memwal.safeio import NotRegularFile, read_regular, write_atomically
from memwal.store import reads, writes

INCIDENTS_FOLDER = "queue-incidents"
RESEND_FIX = ("Re-run `mm index` on every home that writes to this queue (and re-add notes sent "
              "with mem_add): unchanged files are sent again only if they are missing from the "
              "index. Then run `mm queue lost --dismiss`.")


@dataclass(frozen=True)
class QueueMark:
    """The committer's mark of one queue: its epoch, the highest position seen and committed."""

    queue: str
    epoch: str | None
    seen: int = 0
    committed: int = 0

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, raw: str | None) -> "QueueMark | None":
        try:
            data = json.loads(raw) if raw else None
            return None if not isinstance(data, dict) else cls(
                str(data["queue"]), data.get("epoch"), int(data.get("seen", 0)),
                int(data.get("committed", 0)))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class QueueIncident:
    """A queue found re-created under its committer: what it had, and what may be lost."""

    queue: str
    old_epoch: str | None
    new_epoch: str | None
    committed: int     # the last position committed from the old epoch
    seen: int          # the highest position the committer saw in the old epoch
    counter: int       # the queue's position counter when it was found
    shared: bool
    at: float
    dismissed_at: float | None = None

    @property
    def lost(self) -> tuple[int, int] | None:
        """The positions the committer saw but never committed (first, last), if any."""
        return (self.committed + 1, self.seen) if self.seen > self.committed else None

    @property
    def loud(self) -> bool:
        """Whether batches may be lost: some seen were not committed, or the queue is shared
        (producers elsewhere may have put batches after the last one the committer saw)."""
        return self.lost is not None or self.shared

    def describe(self) -> str:
        """One paragraph: what happened, what is lost, how to re-send it."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        what = ("its keys vanished (a FLUSHDB, an eviction, a server restored without them)"
                if self.shared else "its file was re-created (deleted, or replaced)")
        text = (f"the queue {self.queue} was found re-created at {when}: {what}; its position "
                f"counter is at {self.counter}, below the {self.seen} the committer had seen")
        if self.shared:
            first = self.committed + 1
            upper = f" to {self.seen} at least" if self.seen >= first else " on"
            text += (f". Lost: the batches at positions {first}{upper} that were not committed "
                     f"(the last committed was {self.committed}); batches other homes queued "
                     "after the committer last looked are lost too, however many")
        elif self.lost:
            text += f". Lost: the batches at positions {self.lost[0]} to {self.lost[1]}"
        else:
            text += ". Nothing the committer had seen was lost"
        return text + (f". {RESEND_FIX}" if self.loud else ".")

    def as_dict(self) -> dict[str, Any]:
        lost = self.lost
        return {**asdict(self), "loud": self.loud, "detail": self.describe(),
                "lost_positions": ({"first": lost[0], "last": lost[1]} if lost else
                                   {"first": self.committed + 1, "last": None} if self.shared
                                   else None)}


def judge(mark: QueueMark | None, queue: str, generation: QueueGeneration, shared: bool,
          first_committed: int = 0) -> tuple[QueueMark, QueueIncident | None]:
    """The mark after looking at `generation`, and the incident if the queue was re-created.

    Without a mark for this queue (a new index, an index from before marks, or another queue
    name), the queue is adopted as it is: its positions up to `first_committed` count as
    committed. A queue that lives only as long as its process (memory) is adopted every time.
    """
    if mark is None or mark.queue != queue or not generation.persistent:
        committed = min(first_committed, generation.last_position)
        return QueueMark(queue, generation.epoch, generation.last_position, committed), None
    if mark.epoch is None:  # found empty after an incident: what it holds now is all new
        return QueueMark(queue, generation.epoch, generation.last_position, 0), None
    if generation.epoch == mark.epoch and generation.last_position >= mark.seen:
        return QueueMark(queue, mark.epoch, generation.last_position, mark.committed), None
    incident = QueueIncident(queue, mark.epoch, generation.epoch, mark.committed, mark.seen,
                             generation.last_position, shared, time.time())
    return QueueMark(queue, generation.epoch, generation.last_position, 0), incident


class QueueWatch:
    """The committer's side: checks the queue before each take, keeps the mark current.

    `on_incident` records an incident durably before the mark moves past it (`record_incident`);
    `rebind` stamps a shared queue again (its stamp went with its other keys); `notify`, if set,
    is told each incident in words (a worker prints it).
    """

    def __init__(self, conn: store.Connection, queue: WriteAheadQueue,
                 on_incident: Callable[[QueueIncident], None] | None = None,
                 rebind: Callable[[], None] | None = None) -> None:
        self.conn = conn
        self.queue = queue
        self.on_incident = on_incident
        self.rebind = rebind
        self.notify: Callable[[str], None] | None = None
        self.mark = QueueMark.loads(reads.queue_mark(conn))
        self._stored = self.mark

    def check(self) -> QueueIncident | None:
        """Compare the queue with the mark; record an incident if it was re-created."""
        generation = self.queue.generation()
        mark, incident = judge(self.mark, self.queue.name, generation,
                               self.queue.publication is not None,
                               self._first_committed())
        if incident is not None:
            if self.on_incident:
                self.on_incident(incident)
            if self.notify:
                self.notify(incident.describe())
            if self.rebind:
                self.rebind()  # gives the queue an epoch again, if nothing was put yet
            mark = QueueMark(self.queue.name, None)
            self.mark = mark
            self.flush()  # the incident is recorded: the mark may move past it now
            return self.check() or incident
        self.mark = mark
        return None

    def _first_committed(self) -> int:
        return reads.last_ledger_position(self.conn) if self.mark is None else 0

    def committed(self, position: int) -> None:
        """A delivery is being committed, inside the index transaction: the mark goes with it."""
        mark = self.mark or QueueMark(self.queue.name, None)
        self.mark = QueueMark(mark.queue, mark.epoch, max(mark.seen, position),
                              max(mark.committed, position))
        writes.set_queue_mark(self.conn, self.mark.dumps())
        self._stored = self.mark

    def flush(self) -> None:
        """Store the mark if it moved since it was last stored (an idle committer's look)."""
        if self.mark is not None and self.mark != self._stored:
            with writes.transaction(self.conn):
                writes.set_queue_mark(self.conn, self.mark.dumps())
            self._stored = self.mark

    def ledger_id(self, position: int) -> str:
        """The ledger id of an undecodable batch: its position, within its queue's epoch."""
        epoch = self.mark.epoch if self.mark else None
        return f"undecodable@{epoch[:12]}:{position}" if epoch else f"undecodable@{position}"


# -- incidents, kept in the home until dismissed ----------------------------------------------


def incidents_folder(home: Path) -> Path:
    return home / INCIDENTS_FOLDER


def record_incident(home: Path, incident: QueueIncident) -> None:
    """Keep an incident in `<home>/queue-incidents/` (one file each, 0600, written whole).

    Its name comes from the old epoch and position, so finding the same incident again (a
    committer killed before its mark moved) rewrites the same file.
    """
    folder = incidents_folder(home)
    if folder.is_symlink():
        raise NotRegularFile(folder, "a symlink")
    folder.mkdir(mode=0o700, exist_ok=True)
    if not incident.loud:  # nothing was lost: kept for the record, not shown as open
        incident = QueueIncident(**{**asdict(incident), "dismissed_at": incident.at})
    write_atomically(folder / _file_name(incident), json.dumps(asdict(incident), sort_keys=True).encode())


def _file_name(incident: QueueIncident) -> str:
    return f"{incident.queue}-{(incident.old_epoch or 'none')[:12]}-{incident.seen}.json"


def incidents(home: Path) -> list[QueueIncident]:
    """The open (not dismissed) incidents kept in the home, oldest first."""
    folder = incidents_folder(home)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(read_regular(path, max_bytes=1 << 16))
            incident = QueueIncident(**data)
        except (OSError, ValueError, TypeError):
            continue
        if incident.dismissed_at is None:
            found.append(incident)
    return sorted(found, key=lambda incident: incident.at)


def dismiss_queue_losses(settings: Settings) -> int:
    """Dismiss the queue's recorded incidents once what was lost is re-sent (`mm queue lost
    --dismiss`): `mm doctor` passes again. The records stay in `<home>/queue-incidents/`, marked
    dismissed. Returns how many were dismissed. Writes only those files, never the index, so it
    works while a committer runs."""
    return dismiss_incidents(settings.home)


def dismiss_incidents(home: Path) -> int:
    """Mark every open incident dismissed (the files stay: an audit trail); how many."""
    count = 0
    folder = incidents_folder(home)
    for incident in incidents(home):
        done = QueueIncident(**{**asdict(incident), "dismissed_at": time.time()})
        write_atomically(folder / _file_name(done), json.dumps(asdict(done), sort_keys=True).encode())
        count += 1
    return count


def live_incident(mark_raw: str | None, queue: WriteAheadQueue) -> QueueIncident | None:
    """What a reader sees: the queue compared with the committer's stored mark, recording
    nothing (a committer may not run; it records the incident when it next looks)."""
    mark = QueueMark.loads(mark_raw)
    if mark is None:
        return None
    return judge(mark, queue.name, queue.generation(), queue.publication is not None)[1]


__all__ = ["QueueIncident", "QueueMark", "QueueWatch", "dismiss_incidents", "dismiss_queue_losses",
           "incidents",
           "judge", "live_incident", "record_incident"]
