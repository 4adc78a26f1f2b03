"""The Procfile deployment: `honcho start` runs the committer, which commits what `mm index` enqueues."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import MM, assert_doctor_ok, mm_env, write_config
from helpers import poll

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def queue_status(mm: MM) -> dict[str, Any] | None:
    """`mm queue status --json`, or None while it cannot be read yet (the committer is starting)."""
    run = mm("queue", "status", "--json", check=None)
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError:
        return None


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_repo_env_points_mm_home_at_the_queue_folder_which_warns_against_deleting_it() -> None:
    assert env_file(REPO / ".env").get("MM_HOME") == "queue"
    readme = (REPO / "queue" / "README.md").read_text()
    assert "queue.sqlite3" in readme
    warning = " ".join(readme.split()).lower()
    assert "never delete `queue.sqlite3` while a committer runs" in warning, readme


def test_honcho_runs_the_committer_which_commits_what_index_enqueues(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, {"embedding": {"model": "hash-384"}})
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(REPO / "Procfile", deploy / "Procfile")
    (deploy / ".env").write_text(f"MM_HOME={home}\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "harbour.md").write_text("# Harbour\n\nThe ferry to the island leaves at dawn.\n")
    mm = MM(home)

    env = mm_env({"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    log = (tmp_path / "honcho.log").open("w")
    honcho = subprocess.Popen([str(VENV_BIN / "honcho"), "start"], cwd=deploy, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def running() -> bool:
            assert honcho.poll() is None, (tmp_path / "honcho.log").read_text()
            status = queue_status(mm)
            return bool(status and status["committer"]["running"])

        poll(running, "the Procfile worker to take the committer role")
        report = mm("index", "--no-wait", "--json", str(notes)).json()
        assert report["batches"] >= 1 and "committed" not in report

        def drained() -> dict[str, Any] | None:
            status = queue_status(mm)
            done = status and status["pending"] == 0 and status["inflight"] == 0 \
                and status["ledger"]["batches"] >= 1
            return status if done else None

        status = poll(drained, "the worker to commit the batch")
        assert status["ledger"]["committed"] == report["records_enqueued"]
        assert status["committer"]["running"] is True
        hits = mm("search", "--json", "ferry").json()
        assert Path(hits[0]["source_file"]).name == "harbour.md"
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
            raise AssertionError("honcho and its worker ignored SIGTERM for 30 s")
        finally:
            log.close()
    poll(lambda: (s := queue_status(mm)) and not s["committer"]["running"],
         "the committer lock to be released")
    assert "committer stopped" in (tmp_path / "honcho.log").read_text()
    assert_doctor_ok(home)
