"""A real full disk (an ext4 image, loop-mounted in a private mount namespace): every command says
the disk is full and how much room is left, nothing is lost, nothing is left behind, and a
committer that stops on it is reported by doctor even though no new file could be written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import mm_env

SCRIPT = r"""
set -u
mount -o loop "$IMAGE" "$DISK" || exit 90
mm() { "$PY" -m memwal "$@" --home "$DISK/home"; }
step() { name=$1; shift; "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; echo $? > "$OUT/$name.rc"; }
fill() { dd if=/dev/zero of="$DISK/filler" bs=64k 2>/dev/null; dd if=/dev/zero of="$DISK/filler2" bs=1k 2>/dev/null; sync; }
step first mm index "$NOTES"
step queued mm index --no-wait "$MORE"
"$PY" -c "from memwal.worker import FailureRecord; from pathlib import Path; FailureRecord(Path('$DISK/home/committer-failure.json'))"
fill
step index_full mm index "$EVEN_MORE"
step worker_full mm queue worker --once
step status_full mm status
"$PY" - <<PYTHON > "$OUT/record.out" 2>&1
from pathlib import Path
from memwal.worker import FailureRecord
FailureRecord(Path("$DISK/home/committer-failure.json")).record(42, OSError(28, "No space left on device"))
PYTHON
step doctor_full mm doctor --json
ls -A "$DISK/home" > "$OUT/listing"
rm -f "$DISK/filler" "$DISK/filler2"
step worker_after mm queue worker --once
step index_after mm index "$EVEN_MORE"
step status_after mm status --json
step doctor_after mm doctor --json
"""


def corpus(root: Path, files: int, word: str) -> Path:
    root.mkdir()
    for n in range(files):
        body = "\n\n".join(f"## {word} {n} part {p}\n\n{word} note {n} paragraph {p} " + "filler " * 40
                           for p in range(8))
        (root / f"{word}-{n:03d}.md").write_text(f"# {word} {n}\n\n{body}\n")
    return root


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("unshare"),
                    reason="a real full disk needs root (a loop mount in a private mount namespace)")
def test_a_full_disk_is_named_nothing_is_lost_and_the_stopped_committer_is_reported(
        tmp_path: Path) -> None:
    image, disk, out = tmp_path / "disk.ext4", tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    subprocess.run(["truncate", "-s", "24M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    (disk / "placeholder").touch()  # the home is made on the mounted disk, not here
    env = mm_env({"IMAGE": str(image), "DISK": str(disk), "OUT": str(out), "PY": sys.executable,
                  "NOTES": str(corpus(tmp_path / "notes", 5, "alpha")),
                  "MORE": str(corpus(tmp_path / "more", 40, "beta")),
                  "EVEN_MORE": str(corpus(tmp_path / "even", 60, "gamma")),
                  "MM_EMBEDDING_MODEL": "hash-384"})
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", SCRIPT],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 90, f"loop mount failed: {run.stderr}"

    def step(name: str) -> tuple[int, str, str]:
        return (int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
                (out / f"{name}.err").read_text())

    assert step("first")[0] == 0 and step("queued")[0] == 0, (step("first"), step("queued"))
    for name in ("index_full", "worker_full"):
        code, _, err = step(name)
        assert code == 1, (name, code, err)
        assert "the disk is full (" in err and "bytes free on" in err, (name, err)
        assert "nothing was lost" in err and "Traceback" not in err, (name, err)
    code, _, err = step("status_full")
    assert "I/O error" not in err and "Traceback" not in err, err
    assert code == 0 or "the disk is full" in err, (code, err)
    # The failure file could not be written the usual way: the reserve held it.
    doctor = json.loads(step("doctor_full")[1])
    (progress,) = [c for c in doctor["checks"] if c["name"] == "committer_progress"]
    assert not progress["ok"] and "42" in progress["detail"], (progress, (out / "record.out").read_text())
    assert not [name for name in (out / "listing").read_text().split() if name.endswith(".tmp")]

    # Room again: everything queued before is committed, nothing was lost.
    assert step("worker_after")[0] == 0, step("worker_after")
    assert step("index_after")[0] == 0, step("index_after")
    assert json.loads(step("status_after")[1])["files"] == 105
    assert json.loads(step("doctor_after")[1])["ok"], step("doctor_after")
