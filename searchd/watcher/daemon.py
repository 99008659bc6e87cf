"""The indexing daemon: watch the folder, coalesce events, keep the index equal to the folder.

One writer thread owns the engine's writer. Watchdog's observer thread only records which paths
changed (events.py); the writer thread lets them settle (coalescer.py), then looks at the file
system as it is *now* and makes the index agree (resolve.py). At start-up, and every
`rescan_seconds`, a reconcile (sync.py) compares the whole folder with the index, which catches
what happened while no daemon ran and anything the observer missed. Commits never merge
segments; merging happens when the writer has been idle for a moment.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from watchdog.observers import Observer

from ..config import Config
from ..engines import Engine, open_engine
from ..engines.base import ChangeBatch, EngineWriter, Interrupted, IndexStats
from ..folder import FileRules
from ..sync import SyncReport, reconcile
from .coalescer import Coalescer
from .events import Event, OverflowWatch
from .manifest import Manifest
from .observers import ObserverSupervisor
from .resolve import Resolver

log = logging.getLogger("searchd.daemon")

_IDLE_MERGE_AFTER = 1.0  # seconds without work before segments are merged
_HEALTH_EVERY = 1.0  # seconds between observer health checks (and status updates while busy)
_RETRY_FIRST, _RETRY_MAX = 0.5, 8.0  # back-off after a failed commit (disk full, read-only)
_STOP_GRACE = 5.0  # how long stop() keeps retrying a failing final commit
_PROGRESS_EVERY = 0.5  # seconds between status updates during a bulk reconcile
_MIN_PASS = 0.01  # while changes are pending, look at them at most every 10 ms (event floods)


class _Stopping(Exception):
    """Raised inside a long reconcile when stop() was asked for."""


class Daemon:
    """Owns the engine's writer, the writer thread and the observer. `start()`, then `stop()`.
    `writer_options` go to the engine's `open_writer` (e.g. max_segments)."""

    def __init__(self, config: Config, engine: Engine | None = None, native_observer: Callable[[], Any] = Observer,
                 publish: Callable[[dict[str, Any]], None] | None = None, **writer_options: Any):
        self.config = config
        # Also handed every status the engine publishes: `searchd serve` keeps it outside the
        # index (its web workers read it there, also when the index's disk is full).
        self.publish = publish
        self.engine = engine or open_engine(config)
        self.writer_options = writer_options
        self.root = Path(config.folder).resolve()
        self.rules = FileRules(config.include, config.exclude, config.follow_symlinks)
        self.writer: EngineWriter | None = None
        self.state = "starting"
        self.skipped: dict[str, str] = {}
        self.last_report: SyncReport | None = None
        self.last_error = ""
        self._inbox: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._changes = Coalescer(config.debounce_seconds, config.batch_size)
        self._manifest = Manifest()
        self._resolver = Resolver(self.root, self.rules, config.max_file_bytes, self._manifest, self.skipped)
        self.observers = ObserverSupervisor(self.root, self._inbox, config.polling, native_observer)
        # pending() = paths waiting + events not yet looked at + files a reconcile has still to
        # make searchable; before the start-up reconcile has compared the folder with the index,
        # that last part is unknown and counts as 1 (never 0).
        self._noted = 0  # events the writer thread has taken in (or dropped), of observers.received
        self._progress: tuple[int, int] | None = None  # (committed, to do) of a running reconcile
        self._compared = False
        self._stats: IndexStats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._caught_up = threading.Event()
        self._status_lock = threading.Lock()
        self._retry_at = 0.0
        self._retry_delay = _RETRY_FIRST
        self._rescan_requested = False
        self._overflow_watch = OverflowWatch(self.request_rescan)

    @property
    def observer_kind(self) -> str:
        return self.observers.kind

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "Daemon":
        if not self.root.is_dir():
            raise FileNotFoundError(f"article folder {self.root} does not exist")
        self.writer = self.engine.open_writer(**self.writer_options)
        self._write_status()  # readers in other processes: a stale status must not say 0 pending
        try:
            self.writer.stop_requested = self._stop
            self._stats = self.writer.stats()
            self.observers.start()
        except BaseException:
            self.observers.stop(timeout=5)
            self.state = "stopped"  # not "starting" for ever, in the status readers see
            self._write_status()
            self.writer.close()
            raise
        self._overflow_watch.install()
        self._thread = threading.Thread(target=self._run, name="searchd-writer", daemon=True)
        self._thread.start()
        log.info("watching %s with %s; %s", self.root, self.observer_kind, self.engine.describe())
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is pending, commit, release the writer."""
        self.observers.stop(timeout)
        self._overflow_watch.remove()
        self._stop.set()
        self._inbox.put(None)  # wake the writer thread
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Releasing the writer now would let a second writer in beside this thread; when
                # the process exits the kernel releases it, and the next start reconciles.
                log.error("writer thread did not stop within %.0fs; keeping the index lock", timeout)
                return
        self.state = "stopped"
        self._write_status()
        if self.writer is not None:
            self.writer.close()
        log.info("stopped")

    def request_rescan(self, reason: str) -> None:
        """Compare the whole folder with the index soon (thread-safe)."""
        log.warning("%s; rescanning the folder", reason)
        self._rescan_requested = True
        self._inbox.put(None)

    def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        return self._caught_up.wait(timeout)

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._startup()
            self._loop()
        except _Stopping:
            log.warning("stopped during the start-up reconcile; the next start finishes it")
        except Exception as exc:  # a bug: say so loudly rather than go quietly blind
            log.exception("the writer thread failed")
            self.state = "failed"
            self.last_error = f"writer thread failed: {type(exc).__name__}: {exc}"
            self._write_status()

    def _startup(self) -> None:
        assert self.writer is not None
        self.state = "indexing"
        self._reconcile(startup=True)
        if self.writer.rebuilding:
            self.writer.finish_rebuild()
            self._progress = None  # the rebuilt index is the one readers open now
        self.state = "ok"
        self._caught_up.set()
        self._write_status()

    def _loop(self) -> None:
        next_rescan = time.monotonic() + self.config.rescan_seconds
        next_health = time.monotonic() + _HEALTH_EVERY
        last_work = time.monotonic()
        merged_since_work = False  # upkeep once idle after the start too (an index `searchd index` left)
        stop_deadline: float | None = None
        while True:
            stopping = self._stop.is_set()
            if stopping and stop_deadline is None:
                stop_deadline = time.monotonic() + _STOP_GRACE
                self._retry_at, self._retry_delay = 0.0, _RETRY_FIRST  # one more try right away
            self._drain_inbox()
            now = time.monotonic()
            ready, settling = self._changes.settled(flush=stopping)
            if ready and (stopping or self._changes.commit_now(ready, settling)) and now >= self._retry_at:
                self._apply_paths(ready)
                last_work, merged_since_work = time.monotonic(), False
            if stopping:
                if not len(self._changes):
                    return
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    log.error("stopping with %d changes not committed (%s); the next start-up "
                              "reconcile will index them", len(self._changes), self.last_error)
                    return
                time.sleep(0.05)
                continue
            if now >= next_health:
                if self.observers.check():
                    self._rescan_requested = True
                next_health = now + _HEALTH_EVERY
                if len(self._changes):  # readers in other processes see pending work and lag grow
                    self._write_status()
            if now >= next_rescan or self._rescan_requested:
                self._rescan_requested = False
                self._reconcile(startup=False)
                next_rescan = time.monotonic() + self.config.rescan_seconds
            busy = len(self._changes) > 0
            if self.writer.merge_ready():  # a background merge, done: publish it, busy or not
                self._merge()
            if not merged_since_work and ((not busy and now - last_work > _IDLE_MERGE_AFTER)
                                          or (self._stats is not None and self.writer.merge_urgent(self._stats))):
                self._merge()
                merged_since_work = True  # the next commit re-arms it
            self._wait(self._next_wakeup(now, next_rescan, next_health, merged_since_work, last_work))

    def _wait(self, seconds: float) -> None:
        """Sleep until an event arrives or `seconds` pass; while changes are pending, not less than
        _MIN_PASS, so that a flood of events is gathered rather than rescanned per event."""
        started = time.monotonic()
        try:
            event = self._inbox.get(timeout=max(0.001, seconds))
        except queue.Empty:
            return
        self._note(event)
        if len(self._changes):
            time.sleep(max(0.0, min(seconds, _MIN_PASS - (time.monotonic() - started))))

    def _next_wakeup(self, now: float, next_rescan: float, next_health: float,
                     merged: bool, last_work: float) -> float:
        wake = min(next_rescan, next_health)
        if self._retry_at > now:  # backing off after a failed commit: only new events wake us
            wake = min(wake, self._retry_at)
        else:
            wake = min(wake, self._changes.next_look() or wake)
        if not merged:
            wake = min(wake, last_work + _IDLE_MERGE_AFTER + 0.01)
        return min(1.0, max(0.0, wake - now))

    def _drain_inbox(self) -> None:
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._note(event)

    def _note(self, event: Event | None) -> None:
        if event is None:
            return
        try:
            if self._resolver.relevant(event):
                first = not len(self._changes)
                self._changes.note(event, sees_opens=self.observer_kind == "inotify")
                if first:
                    self._write_status()  # a reader in another process must not see 0 pending now
        finally:
            self._noted += 1  # after the path is in the coalescer: see pending()

    def _reconcile(self, startup: bool) -> None:
        assert self.writer is not None

        last_report = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last_report
            if self._stop.is_set() and startup:
                raise _Stopping
            if self._progress is None or done != self._progress[0]:
                self._refresh_stats()  # a commit: `documents` keeps up with what progress says
            self._progress, self._compared = (done, total), True
            if time.monotonic() - last_report >= _PROGRESS_EVERY:  # `searchd status` shows progress
                last_report = time.monotonic()
                self._refresh_stats()
                self._write_status()

        def on_skip(article_id: str, reason: str) -> None:
            self.skipped[article_id] = reason

        attempt = 0
        while True:
            try:
                report = reconcile(
                    self.writer, self.root, self.rules, self.config.max_file_bytes,
                    batch_size=self.config.batch_size, progress=progress, on_skip=on_skip,
                )
                break
            except (_Stopping, Interrupted) as exc:
                if startup:
                    raise _Stopping from exc
                log.info("rescan interrupted by stop; the next start-up reconcile finishes it")
                return
            except Exception as exc:  # disk full, folder gone for a moment: retry, keep serving
                self._note_error(f"{'start-up reconcile' if startup else 'rescan'} failed, will retry: "
                                 f"{type(exc).__name__}: {exc}")
                if self._stop.is_set():
                    return
                self._stop.wait(min(_RETRY_MAX, _RETRY_FIRST * 2.0 ** attempt))
                attempt += 1
        self.last_report = report
        self._reload_manifest()
        self._refresh_stats()
        if not self.writer.rebuilding:  # else nothing is searchable before the swap (_startup)
            self._progress = None
        for article_id in [k for k in self.skipped if k not in report.skipped and k in self._manifest]:
            del self.skipped[article_id]
        self.last_error = ""
        level = logging.INFO if startup or report.changed else logging.DEBUG
        log.log(level, "%s: %s", "start-up reconcile" if startup else "rescan", report.summary())
        self._write_status()

    def _reload_manifest(self) -> None:
        assert self.writer is not None
        self._manifest = Manifest(self.writer.indexed())
        self._resolver.manifest = self._manifest

    # --- settled paths -> one commit ------------------------------------------------------------

    def _apply_paths(self, paths: list[str]) -> None:
        assert self.writer is not None
        started = time.monotonic()
        try:
            batch = self._resolver.batch(paths)
            if len(batch):
                self.writer.apply(batch)
        except Exception as exc:  # disk full, read-only, a folder we may not read: keep the paths
            self._retry_at = time.monotonic() + self._retry_delay  # pending, serve the last
            self._note_error(f"commit failed, will retry in {self._retry_delay:.1f}s: "  # good state
                             f"{type(exc).__name__}: {exc}")
            self._retry_delay = min(_RETRY_MAX, self._retry_delay * 2)
            return
        if len(batch):
            self._manifest.remember(batch)
            self._refresh_stats()
            _log_commit(batch, time.monotonic() - started)
        if self.last_error:
            log.info("commits succeed again")
        self.last_error = ""
        self._retry_delay = _RETRY_FIRST
        self._changes.done(paths)
        self._write_status()

    # --- upkeep ---------------------------------------------------------------------------------

    def _merge(self) -> None:
        assert self.writer is not None
        try:
            before = self._stats.segments if self._stats else 0
            started, was_merging = time.monotonic(), self.writer.merging
            if self.writer.merge():
                self._refresh_stats()
                after = self._stats.segments if self._stats else 0
                log.info("merged segments %d -> %d in %.2fs", before, after, time.monotonic() - started)
                self._write_status()
            elif self.writer.merging != was_merging:  # a background merge started
                self._write_status()
        except Exception as exc:
            self._note_error(f"merge failed (will try again when idle): {type(exc).__name__}: {exc}")

    def _refresh_stats(self) -> None:
        assert self.writer is not None
        try:
            self._stats = self.writer.stats()
        except Exception as exc:
            log.debug("cannot read index stats: %s", exc)

    def _note_error(self, message: str) -> None:
        self.last_error = message
        log.error(message)
        self._write_status()

    # --- visibility -----------------------------------------------------------------------------

    def pending(self) -> int:
        """Changes seen and not yet searchable; 0 means every file seen so far is searchable. Read
        from any thread while the writer thread works: `_noted` is read before the coalescer (an
        event is in the coalescer before it counts as noted) and `received` last (an event counts
        as received before it is in the inbox), so an event on its way is counted at least once."""
        noted = self._noted
        paths = len(self._changes)
        return paths + (self.observers.received.value - noted) + self._unindexed()

    def _unindexed(self) -> int:
        """Files the running reconcile has still to make searchable."""
        progress = self._progress
        if progress is None:
            return 0 if self._compared else 1
        done, total = progress
        rebuilding = self.writer is not None and self.writer.rebuilding
        return total if rebuilding else total - done

    def lag_seconds(self) -> float:
        oldest = self._changes.oldest()
        return round(time.monotonic() - oldest, 3) if oldest is not None else 0.0

    def status(self) -> dict[str, Any]:
        """Cheap and thread-safe: built from what the writer thread last recorded."""
        writer, stats = self.writer, self._stats
        pending = self.pending()
        progress = self._progress
        return {
            "status": _overall(self.state, pending, self.last_error),
            "state": self.state,
            "documents": stats.documents if stats else 0,
            "segments": stats.segments if stats else 0,
            "generation": stats.generation if stats else -1,
            "pending": pending,
            # A bulk index (the start-up reconcile or a rescan that found work): files committed.
            "progress": {"done": progress[0], "total": progress[1]} if progress and progress[1] else None,
            "last_commit": (writer.last_commit if writer else None) or (stats.last_commit if stats else None),
            "commits": writer.commits if writer else 0,
            # How long commits took (a histogram's buckets, for /metrics of any web process).
            "commit_seconds": writer.commit_seconds.to_json() if writer and writer.commit_seconds else None,
            "observer": self.observer_kind,
            "lag_seconds": self.lag_seconds(),
            "skipped": dict(sorted(self.skipped.items())),
            "folder": str(self.root),
            "index": stats.location if stats else "",
            "rebuilding": (writer.rebuild_reason if writer else None) or "",
            "merging": bool(writer and writer.merging),
            "error": self.last_error,
            "pid": os.getpid(),
            "updated": time.time(),
        }

    def _write_status(self) -> None:
        if self.writer is None:
            return
        with self._status_lock:
            status = self.status()
            for publish in filter(None, (self.publish, self.writer.publish_status)):
                try:
                    publish(status)
                except OSError as exc:
                    log.debug("cannot publish the status: %s", exc)


def _overall(state: str, pending: int, error: str) -> str:
    if state in ("stopped", "failed"):
        return state
    if error:
        return "degraded"
    return "ok" if pending == 0 else "indexing"


def _log_commit(batch: ChangeBatch, seconds: float) -> None:
    names = [a.id for a in batch.upserts] + [f"-{d}" for d in batch.deletes] + [f"-{p}*" for p in batch.delete_prefixes]
    shown = ", ".join(names[:5]) + (f", … ({len(names) - 5} more)" if len(names) > 5 else "")
    log.info("committed %d indexed, %d deleted%s in %.0f ms: %s",
             len(batch.upserts), len(batch.deletes),
             f", {len(batch.delete_prefixes)} folders removed" if batch.delete_prefixes else "",
             seconds * 1000, shown)
