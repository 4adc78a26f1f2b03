"""Files whose snapshot a waiting `mm index` sent but the committer skipped, kept until a later
run sees them committed as they are on disk (`<home>/not-applied.json`).

The committer skips a snapshot only when another producer committed a newer read of the same
file after this one looked (docs/wire-format.md). The next run is based on what is committed
then, so it heals; until it runs, `mm doctor` names the files whose committed content differs from
what the last `mm index` read, and how to fix it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable

from memwal.config import Settings
from memwal.safeio import NotRegularFile, TooLarge, read_regular, write_atomically

MAX_BYTES = 16 << 20
FILE_NAME = "not-applied.json"


def _path(settings: Settings) -> Path:
    return settings.home / FILE_NAME


def load(settings: Settings) -> dict[str, dict[str, str]]:
    """`{source_file: {"namespace", "digest"}}`: the digest the last run read of each file."""
    try:
        data = json.loads(read_regular(_path(settings), MAX_BYTES))
    except (OSError, ValueError, NotRegularFile, TooLarge):
        return {}
    return data if isinstance(data, dict) else {}


def record(settings: Settings, namespace: str, seen: Iterable[str],
           not_applied: dict[str, str]) -> None:
    """After a waiting run: forget the files it saw committed (or unchanged), remember those it
    sent and saw skipped (`not_applied`: source file → the digest it read)."""
    before = load(settings)
    after = {source: entry for source, entry in before.items()
             if not (entry.get("namespace") == namespace and source in set(seen))}
    after.update({source: {"namespace": namespace, "digest": digest}
                  for source, digest in not_applied.items()})
    if after == before:
        return
    try:
        if after:
            write_atomically(_path(settings), json.dumps(after, sort_keys=True).encode())
        else:
            _path(settings).unlink(missing_ok=True)
    except OSError:
        pass  # only a report: a full disk must not fail the run that committed everything else


def disagreements(settings: Settings, committed_digest: Callable[[str, str], str | None]
                  ) -> list[str]:
    """The recorded files whose committed digest is neither what the last run read nor, where the
    file can be read here, what the file holds now."""
    found = []
    for source, entry in sorted(load(settings).items()):
        committed = committed_digest(str(entry.get("namespace", "")), source) or ""
        if committed == entry.get("digest"):
            continue
        try:
            if hashlib.sha256(read_regular(Path(source), 64 << 20)).hexdigest() == committed:
                continue  # the file is what is committed: the skipped read was an older one
        except (OSError, NotRegularFile, TooLarge):
            if not committed and not Path(source).exists():
                continue  # gone here and gone from the index
        found.append(source)
    return found
