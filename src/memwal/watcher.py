"""The watcher: a long-lived producer that keeps the roots indexed as files change.

It never trusts events to be complete. Every pass is a full `index_paths` over the roots, which
skips unchanged files by size and mtime and so costs little; events only say *when* to pass. A
pass runs at start, after each burst of changes (debounced), whenever the index's model changes,
and at least every `RESCAN_SECONDS`, so nothing changed while it was down, busy or dropping
events is missed.

A file this watcher queued is not queued again while it is unchanged (QueuedSnapshots), even
when nothing commits it: the committed state alone would say it changed on every pass.

It follows model resets: when the queue carries a reset to a model it can build, it switches to
that model for everything it enqueues after; its old-model records that land behind the reset are
dead-lettered as usual, and the pass that follows the reset's commit re-embeds those files with
the new model (their chunks lack a current vector), so nothing waits for a manual replay. If it
cannot build the new model it stops enqueueing and says why in its status file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from memwal.config import Settings, ensure_home
from memwal.embedders import Embedder, configured_embedder
from memwal.embedders.indexed import embedder_of
from memwal.errors import MemwalError, as_memwal_error
from memwal.fingerprint import ModelInfo
from memwal.producer import IndexReport, QueuedSnapshots, index_paths
from memwal.progress import Progress
from memwal.safeio import write_atomically
from memwal.status import watcher_folder
from memwal.worker import Host, hosting

RESCAN_SECONDS = 60.0
TICK_MS = 500  # how often the loop wakes to look at the model and the stop flag
DEBOUNCE_MS = 300


class Watcher:
    """Watches `roots` for one home; `run()` blocks until `stop()` (from another thread)."""

    def __init__(self, settings: Settings, roots: Sequence[Path],
                 on_pass: Callable[[IndexReport], None] | None = None,
                 on_stage: Callable[[Progress], None] | None = None) -> None:
        self.settings = settings
        self.roots = [Path(root) for root in roots]
        self.on_pass = on_pass
        self.on_stage = on_stage  # each pass's progress (index_paths' on_stage)
        self._stop = threading.Event()
        self.embedder: Embedder | None = configured_embedder(settings)
        self.state: dict[str, object] = {"pid": os.getpid(), "roots": [str(r) for r in self.roots],
                                         "state": "starting", "passes": 0, "started_at": time.time()}
        self._active: str | None = None
        self._last_pass = time.monotonic()
        # What this watcher queued: with no committer (or a slow one) the committed state does
        # not move, and without this every pass would queue the same files again.
        self.queued = QueuedSnapshots()
        self.host: Host | None = None  # while running: one queue handle, one read connection

    def stop(self) -> None:
        self._stop.set()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        import watchfiles

        ensure_home(self.settings.home)
        self.settings.notes_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with hosting(self.settings) as self.host:
            self._watch(watchfiles)

    def _watch(self, watchfiles: Any) -> None:
        try:
            self._pass("start")
            self._last_pass = time.monotonic()
            while not self._stop.is_set():
                watched = self._watched()
                if not watched:  # nothing to watch yet: look again (and at the model) each tick
                    self._stop.wait(TICK_MS / 1000)
                    self._maybe_pass(set())
                    continue
                try:
                    for changes in watchfiles.watch(
                            *watched, debounce=DEBOUNCE_MS, step=50, stop_event=self._stop,
                            rust_timeout=TICK_MS, yield_on_timeout=True, raise_interrupt=False,
                            watch_filter=_indexable):
                        if self._stop.is_set():
                            break
                        self._maybe_pass(changes)
                        if self._watched() != watched:
                            break  # a root appeared or vanished: watch the new set
                except OSError as exc:  # a root vanished under the watcher: rescan, watch anew
                    self.state.update(state="error", error=f"watching failed: {exc}")
                    self._write_status()
                    self._stop.wait(TICK_MS / 1000)
                    self._pass("rescan")
        finally:
            self._status_file().unlink(missing_ok=True)

    def _watched(self) -> list[Path]:
        return [root for root in self.roots if root.is_dir()]

    def _maybe_pass(self, changes: set) -> None:
        due = time.monotonic() - self._last_pass >= RESCAN_SECONDS
        if changes or due or self._model_changed():
            self._pass("changes" if changes else "rescan" if due else "model")
            self._last_pass = time.monotonic()

    def _pass(self, why: str) -> None:
        embedder = self._follow_model()
        if embedder is None:
            self._write_status()
            return
        try:
            report = index_paths(self.settings, [r for r in self.roots if r.exists()], wait=False,
                                 command="mm watch", embedder=embedder, remember=self.queued,
                                 host=self.host, on_stage=self.on_stage)
        except MemwalError as exc:
            self.state.update(state="error", error=str(exc))
        except Exception as exc:
            error = as_memwal_error(exc)
            if error is None:
                raise
            self.state.update(state="error", error=str(error))
        else:
            self.state.update(state="watching", error=None, last_pass=time.time(), last_reason=why,
                              passes=int(self.state["passes"]) + 1,  # type: ignore[call-overload]
                              last_enqueued=report.records_enqueued,
                              committer_running=report.committer_running)
            if self.on_pass:
                self.on_pass(report)
        self._write_status()

    # -- following the index's model ---------------------------------------------------------

    def _models(self) -> tuple[ModelInfo | None, ModelInfo | None]:
        """(active, target): the index's model now, and once the queue drains (through the same
        committed state as `mm index`: the published one on a shared queue)."""
        assert self.host is not None
        committed = self.host.committed
        return committed.active_model(), committed.target_model()

    def _model_changed(self) -> bool:
        try:
            active, _ = self._models()
        except Exception as exc:
            if as_memwal_error(exc) is None:
                raise
            return False
        fingerprint = active.fingerprint if active else None
        changed, self._active = fingerprint != self._active, fingerprint
        return changed

    def _follow_model(self) -> Embedder | None:
        """The embedder for this pass: the configured one, or the one a queued reset names."""
        try:
            active, target = self._models()
        except Exception as exc:
            if as_memwal_error(exc) is None:
                raise
            return self.embedder
        self._active = active.fingerprint if active else None
        current = self.embedder
        if target is None or (current is not None and current.fingerprint == target.fingerprint):
            return current
        assert self.host is not None
        # The model the index moves to, built from its name, or (a remote one) reached as the
        # index recorded it; None if this process cannot build it.
        candidate = embedder_of(self.settings, target,
                                self.host.committed.endpoint_of(target.fingerprint),
                                configured=current)
        if candidate is None:
            self.embedder = None
            self.state.update(state="stopped", error=(
                f"the index switches to {target.name} ({target.fingerprint}), which this process "
                "cannot build: no vectors are enqueued until it is installed (or the index is "
                "switched back)"))
            return None
        self.embedder = candidate
        self.state.update(state="watching", model=candidate.info.as_dict(), switched_at=time.time())
        return candidate

    # -- status ------------------------------------------------------------------------------

    def _status_file(self) -> Path:
        return watcher_folder(self.settings) / f"{os.getpid()}-{id(self)}.json"

    def _write_status(self) -> None:
        if self.embedder is not None:
            self.state["model"] = self.embedder.info.as_dict()
        try:
            self._status_file().parent.mkdir(mode=0o700, exist_ok=True)
            write_atomically(self._status_file(), json.dumps(self.state).encode())
        except OSError:
            pass  # status is for people; a full disk must not stop the watching


def _indexable(change: object, path: str) -> bool:
    """Only files memwal indexes, and no temporary files of atomic writes."""
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith((".md", ".markdown", ".txt"))


def watch(settings: Settings, roots: Sequence[Path] | None = None,
          on_pass: Callable[[IndexReport], None] | None = None,
          stop: threading.Event | None = None,
          on_stage: Callable[[Progress], None] | None = None) -> None:
    """Keep `roots` (default: the configured roots and the notes folder) indexed until `stop` is
    set or SIGINT/SIGTERM: what `mm watch` runs. Never writes the index; it only enqueues.
    `on_pass(report)` is told what each pass did, `on_stage(progress)` where it is (see
    `index_paths`)."""
    import signal

    watcher = Watcher(settings, roots or settings.roots, on_pass, on_stage)
    if stop is not None:
        def stop_when_set() -> None:
            stop.wait()
            watcher.stop()

        threading.Thread(target=stop_when_set, daemon=True).start()
    restore = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            restore[signum] = signal.signal(signum, lambda *_: watcher.stop())
    try:
        watcher.run()
    finally:
        for signum, handler in restore.items():
            signal.signal(signum, handler)
