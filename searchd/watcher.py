"""The indexing daemon: watch the folder, coalesce events, keep the index equal to the folder.

One writer thread owns the index. Watchdog's observer thread only records which paths changed;
the writer thread waits until a path has been quiet for a moment (editors and downloads write in
bursts), then looks at the file system as it is *now* and makes the index agree. Deciding from the
current state rather than from the event kind is what makes renames, atomic saves, directory moves
and dropped events all come out right.

Timing, in the writer thread:
- a path is *settled* once it had no event for its quiet window and its size and mtime did not
  change across that window. The window starts at `debounce_seconds` and grows (up to
  `_SETTLE_MAX`) for a file that keeps changing, so a slow download is not indexed half-written;
- settled paths are committed together as soon as nothing else is still settling, or when the
  batch is full, or when the oldest has waited `_MAX_BATCH_DELAY`: a burst of 10,000 new files
  costs a handful of commits while a single save is visible within ~100 ms;
- commits never merge segments; merging happens when the writer has been idle for a moment.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from .articles import FileStamp, stamp_of
from .config import Config
from .folder import FileRules, walk
from .index import MAX_SEGMENTS, ChangeBatch, Indexed, Interrupted, IndexStats, IndexWriter, WriterLock, write_status
from .sync import SyncReport, parse_all, reconcile

log = logging.getLogger("searchd.daemon")

_SETTLE_MAX = 2.0  # longest quiet window asked of a file that keeps changing
_MAX_BATCH_DELAY = 0.5  # a settled change waits at most this long for others to join its commit
_IDLE_MERGE_AFTER = 1.0  # seconds without work before segments are merged
_HARD_SEGMENT_FACTOR = 2  # past max_segments * this, merge even while busy (constant churn)
_HEALTH_EVERY = 1.0  # seconds between observer health checks (and status updates while busy)
_RETRY_FIRST, _RETRY_MAX = 0.5, 8.0  # back-off after a failed commit (disk full, read-only)
_STOP_GRACE = 5.0  # how long stop() keeps retrying a failing final commit
_POLL_INTERVAL = 1.0
# A new file is expected to be closed by the program writing it (inotify reports the close); one
# that stays open and quiet this long is indexed anyway (a file moved in from elsewhere looks like
# a creation without a close).
_OPEN_WAIT = 1.0
_PROGRESS_EVERY = 0.5  # seconds between status updates during a bulk reconcile
# After a close-after-write the file is complete; wait only this long for the rest of its burst
# (e.g. the rename of an atomic save) unless the file has shown slow, spaced-out writes.
_AFTER_CLOSE = 0.01
_MIN_PASS = 0.01  # while changes are pending, look at them at most every 10 ms (event floods)


_WAITING_FOR_FOLDER = "waiting for folder"

# Every kind of event but opens and closes after reading: those change nothing, and the kernel
# then does not even send them (a bulk index reads every file, and the Python side of watchdog
# spent seconds on a flood of 40,000 such events from the parser workers).
_EVENT_KINDS = [FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, DirModifiedEvent, FileMovedEvent,
                DirMovedEvent, FileDeletedEvent, DirDeletedEvent, FileClosedEvent]


@dataclass
class _Pending:
    first_seen: float
    last_event: float
    stamp: FileStamp | None
    quiet: float
    settled: bool = False  # quiet window passed with the stamp unchanged (until the next event)
    open_for_write: bool = False  # created and not yet closed (inotify tells us both)
    closed: bool = False  # the last event was a close after writing: the writer is done


@dataclass(frozen=True)
class _Event:
    path: str
    is_directory: bool
    seen: float
    kind: str = ""  # "created" (a program opened a new file), "closed" (it closed it), or ""


class _Count:
    """A number that one thread increases and others read."""

    def __init__(self) -> None:
        self.value = 0


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: records paths (and counts them), nothing else."""

    def __init__(self, inbox: "queue.SimpleQueue[_Event | None]", received: _Count):
        self.inbox = inbox
        self.received = received

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads, including our own
        if event.is_directory and event.event_type == "modified":
            return  # a directory's own mtime changes with every file in it; the files tell us more
        now = time.monotonic()
        kind = ""
        if event.event_type == "closed" or (event.event_type == "created" and not event.is_synthetic):
            kind = event.event_type
        self._put(_Event(os.fsdecode(event.src_path), event.is_directory, now, kind))
        dest = getattr(event, "dest_path", "")
        if dest:
            self._put(_Event(os.fsdecode(dest), event.is_directory, now))

    def _put(self, event: _Event) -> None:
        self.received.value += 1  # before the put: the writer thread cannot count it as noted first
        self.inbox.put(event)


class _OverflowWatch(logging.Handler):
    """Watchdog only logs when the kernel's inotify queue overflowed (events were lost); this
    turns that log line into a rescan request instead of waiting for the periodic rescan."""

    def __init__(self, daemon: "Daemon"):
        super().__init__(logging.WARNING)
        self.daemon = daemon

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.daemon.request_rescan("the inotify event queue overflowed")


_WATCHDOG_LOGGERS = ("watchdog.observers.inotify", "watchdog.observers.inotify_c")


class _Stopping(Exception):
    """Raised inside a long reconcile when stop() was asked for."""


class Daemon:
    """Owns the writer lock, the writer thread and the observer. `start()`, then `stop()`."""

    def __init__(self, config: Config, max_segments: int = MAX_SEGMENTS):
        self.config = config
        self.max_segments = max_segments
        self.root = Path(config.folder).resolve()
        self.index_dir = Path(config.index_dir)
        self.rules = FileRules(config.include, config.exclude, config.follow_symlinks)
        self.lock = WriterLock(self.index_dir)
        self.writer: IndexWriter | None = None
        self.state = "starting"
        self.observer_kind = ""
        self.skipped: dict[str, str] = {}
        self.last_report: SyncReport | None = None
        self.last_error = ""
        self._inbox: queue.SimpleQueue[_Event | None] = queue.SimpleQueue()
        self._pending: dict[str, _Pending] = {}
        # pending() = paths waiting + events not yet looked at + files a reconcile has still to
        # make searchable; before the start-up reconcile has compared the folder with the index,
        # that last part is unknown and counts as 1 (never 0).
        self._received = _Count()  # events the observer handed over ...
        self._noted = 0  # ... and those the writer thread has taken into _pending (or dropped)
        self._progress: tuple[int, int] | None = None  # (committed, to do) of a running reconcile
        self._compared = False
        self._manifest: dict[str, Indexed] = {}
        self._folders: Counter[str] = Counter()  # "a/", "a/b/" -> documents below: O(1) folder checks
        self._stats: IndexStats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._caught_up = threading.Event()
        self._status_lock = threading.Lock()
        self._retry_at = 0.0
        self._retry_delay = _RETRY_FIRST
        self._rescan_requested = False
        self._overflow_watch = _OverflowWatch(self)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "Daemon":
        if not self.root.is_dir():
            raise FileNotFoundError(f"article folder {self.root} does not exist")
        self.lock.acquire()
        self._write_status()  # readers in other processes: a stale status.json must not say 0 pending
        try:
            self.writer = IndexWriter(self.index_dir, self.max_segments)
            self.writer.stop_requested = self._stop
            self._stats = self.writer.stats()
            self._start_observer()
        except BaseException:
            if self._observer is not None:
                self._observer.stop()
            self.lock.release()
            raise
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._overflow_watch)
        self._thread = threading.Thread(target=self._run, name="searchd-writer", daemon=True)
        self._thread.start()
        log.info("watching %s with %s; index %s", self.root, self.observer_kind, self.index_dir)
        return self

    def _native_observer(self) -> Any:
        """The platform's observer (inotify on Linux). A method so the ENOSPC fallback can be
        exercised by a test without exhausting the machine's inotify watches."""
        return Observer()

    def _start_observer(self) -> None:
        if not self.config.polling:
            observer = self._native_observer()
            try:
                observer.schedule(_Handler(self._inbox, self._received), str(self.root), recursive=True,
                                  event_filter=_EVENT_KINDS)
                observer.start()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENFILE):
                    raise
                observer.stop()
                log.warning(
                    "inotify limit reached (%s); falling back to polling the folder every %.0fs. "
                    "Raise fs.inotify.max_user_watches / max_user_instances for instant updates.",
                    exc.strerror or exc, _POLL_INTERVAL,
                )
            else:
                self._observer, self.observer_kind = observer, "inotify"
                return
        self._start_polling()

    def _start_polling(self) -> None:
        observer = PollingObserver(timeout=_POLL_INTERVAL)
        observer.schedule(_Handler(self._inbox, self._received), str(self.root), recursive=True, event_filter=_EVENT_KINDS)
        observer.start()
        self._observer, self.observer_kind = observer, "polling"

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is pending, commit, release the lock."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._overflow_watch)
        self._stop.set()
        self._inbox.put(None)  # wake the writer thread
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Releasing the lock now would let a second writer in beside this thread; when
                # the process exits the kernel releases it, and the next start reconciles.
                log.error("writer thread did not stop within %.0fs; keeping the index lock", timeout)
                return
        self.state = "stopped"
        self._write_status()
        if self.writer is not None:
            self.writer.close()
        self.lock.release()
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
        merged_since_work = True
        stop_deadline: float | None = None
        while True:
            stopping = self._stop.is_set()
            if stopping and stop_deadline is None:
                stop_deadline = time.monotonic() + _STOP_GRACE
                self._retry_at, self._retry_delay = 0.0, _RETRY_FIRST  # one more try right away
            self._drain_inbox()
            now = time.monotonic()
            ready, settling = self._settled(now, flush=stopping)
            if ready and (stopping or self._commit_now(ready, settling, now)) and now >= self._retry_at:
                self._apply_paths(ready)
                last_work, merged_since_work = time.monotonic(), False
            if stopping:
                if not self._pending:
                    return
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    log.error("stopping with %d changes not committed (%s); the next start-up "
                              "reconcile will index them", len(self._pending), self.last_error)
                    return
                time.sleep(0.05)
                continue
            if now >= next_health:
                self._check_observer()
                next_health = now + _HEALTH_EVERY
                if self._pending:  # readers in other processes see pending work and lag grow
                    self._write_status()
            if now >= next_rescan or self._rescan_requested:
                self._rescan_requested = False
                self._reconcile(startup=False)
                next_rescan = time.monotonic() + self.config.rescan_seconds
            busy = len(self._pending) > 0
            if not merged_since_work and ((not busy and now - last_work > _IDLE_MERGE_AFTER)
                                          or self._small_segments() > self._hard_segment_limit()):
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
        if self._pending:
            time.sleep(max(0.0, min(seconds, _MIN_PASS - (time.monotonic() - started))))

    def _next_wakeup(self, now: float, next_rescan: float, next_health: float,
                     merged: bool, last_work: float) -> float:
        wake = min(next_rescan, next_health)
        if self._retry_at > now:  # backing off after a failed commit: only new events wake us
            wake = min(wake, self._retry_at)
        else:
            for pending in self._pending.values():
                if pending.settled:
                    wake = min(wake, pending.first_seen + _MAX_BATCH_DELAY)
                else:
                    wake = min(wake, pending.last_event + self._quiet(pending))
        if not merged:
            wake = min(wake, last_work + _IDLE_MERGE_AFTER + 0.01)
        return min(1.0, max(0.0, wake - now))

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
        self._load_manifest(self.writer.manifest())
        self._refresh_stats()
        if not self.writer.rebuilding:  # else nothing is searchable before the swap (_startup)
            self._progress = None
        self.skipped = {k: v for k, v in self.skipped.items() if k in report.skipped or k not in self._manifest}
        self.last_error = ""
        level = logging.INFO if startup or report.changed else logging.DEBUG
        log.log(level, "%s: %s", "start-up reconcile" if startup else "rescan", report.summary())
        self._write_status()

    # --- events -> settled paths ----------------------------------------------------------------

    def _drain_inbox(self) -> None:
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._note(event)

    def _note(self, event: _Event | None) -> None:
        if event is None:
            return
        try:
            self._note_event(event)
        finally:
            self._noted += 1  # after the path is in _pending: see pending()

    def _note_event(self, event: _Event) -> None:
        if not self._relevant(event):
            return
        pending = self._pending.get(event.path)
        if pending is None:
            pending = self._pending[event.path] = _Pending(
                event.seen, event.seen, _stamp(event.path), self.config.debounce_seconds)
            self._note_open(pending, event)
            if len(self._pending) == 1:
                self._write_status()  # a reader in another process must not see 0 pending now
            return
        self._note_open(pending, event)
        # Events spaced out in time mean someone is still writing: ask for a longer quiet window.
        pending.settled = False
        pending.stamp = _stamp(event.path)  # size and mtime as of the latest event
        gap = event.seen - pending.last_event
        pending.quiet = min(_SETTLE_MAX, max(pending.quiet, gap * 1.5))
        pending.last_event = max(pending.last_event, event.seen)

    def _note_open(self, pending: _Pending, event: _Event) -> None:
        pending.closed = False
        if self.observer_kind != "inotify" or event.is_directory:
            return  # polling sees no opens and closes: size and mtime alone must tell
        if event.kind == "created":
            pending.open_for_write = True
        elif event.kind == "closed":
            pending.open_for_write = False
            pending.closed = True

    def _relevant(self, event: _Event) -> bool:
        """Drop events of files no rule wants (editor swap files, hidden folders) before they can
        hold up a commit; a rename's other side arrives as its own event."""
        try:
            relative = Path(event.path).relative_to(self.root)
        except ValueError:
            return False
        if not relative.parts:
            return True
        if any(self.rules.ignores_dir(part) for part in relative.parts[:-1]):
            return False
        if event.is_directory:
            return True
        article_id = PurePosixPath(*relative.parts).as_posix()
        # An id we hold must always be looked at (e.g. a rule changed how it reads); else ask rules.
        return article_id in self._manifest or self.rules.wants(article_id) or self._is_dir_now(event.path)

    @staticmethod
    def _is_dir_now(path: str) -> bool:
        return os.path.isdir(path)

    def _settled(self, now: float, flush: bool) -> tuple[list[str], int]:
        """Paths whose quiet window has passed with their size and mtime unchanged, and how many
        others are still settling."""
        ready, settling = [], 0
        for path, pending in self._pending.items():
            if flush or pending.settled:
                ready.append(path)
                continue
            quiet = self._quiet(pending)
            if now - pending.last_event < quiet:
                settling += 1
                continue
            stamp = _stamp(path)
            if stamp != pending.stamp:  # changed without telling us (polling, NFS): wait longer
                pending.stamp, pending.last_event = stamp, now
                pending.quiet = min(_SETTLE_MAX, pending.quiet * 2)
                settling += 1
                continue
            pending.settled = True
            ready.append(path)
        return ready, settling

    def _quiet(self, pending: _Pending) -> float:
        """How long a path must be quiet before it is looked at."""
        if pending.open_for_write:
            return _OPEN_WAIT
        if pending.closed and pending.quiet <= self.config.debounce_seconds:
            return min(pending.quiet, _AFTER_CLOSE)
        return pending.quiet

    def _commit_now(self, ready: list[str], settling: int, now: float) -> bool:
        if settling == 0 or len(ready) >= self.config.batch_size:
            return True
        oldest = min(self._pending[path].first_seen for path in ready)
        return now - oldest >= _MAX_BATCH_DELAY

    # --- settled paths -> one commit ------------------------------------------------------------

    def _apply_paths(self, paths: list[str]) -> None:
        assert self.writer is not None
        started = time.monotonic()
        batch = ChangeBatch()
        try:
            to_read: dict[str, Path] = {}
            for path in paths:
                self._resolve(Path(path), batch, to_read)
            self._read(to_read, batch)
            if len(batch):
                self.writer.apply(batch)
        except Exception as exc:  # disk full, read-only, a folder we may not read: keep the paths
            self._retry_at = time.monotonic() + self._retry_delay  # pending, serve the last
            self._note_error(f"commit failed, will retry in {self._retry_delay:.1f}s: "  # good state
                             f"{type(exc).__name__}: {exc}")
            self._retry_delay = min(_RETRY_MAX, self._retry_delay * 2)
            return
        if len(batch):
            self._remember(batch)
            self._refresh_stats()
            self._log_commit(batch, time.monotonic() - started)
        if self.last_error:
            log.info("commits succeed again")
        self.last_error = ""
        self._retry_delay = _RETRY_FIRST
        for path in paths:
            self._pending.pop(path, None)
        self._write_status()

    def _remember(self, batch: ChangeBatch) -> None:
        """Update the in-memory manifest in the order the writer applied the batch: prefixes,
        then single deletes, then upserts (an id deleted and re-added in one batch is live)."""
        for prefix in batch.delete_prefixes:
            for doc_id in self._ids_under(prefix):
                self._unset(doc_id)
        for doc_id in batch.deletes:
            self._unset(doc_id)
        for article in batch.upserts:
            self._set(article.id, Indexed(article.size, article.mtime_ns, article.checksum))

    # The manifest: what the index holds (id -> stamp), plus a count of documents per folder.

    def _load_manifest(self, manifest: dict[str, Indexed]) -> None:
        self._manifest = {}
        self._folders = Counter()
        for doc_id, indexed in manifest.items():
            self._set(doc_id, indexed)

    def _set(self, doc_id: str, indexed: Indexed) -> None:
        if doc_id not in self._manifest:
            self._folders.update(_folders_of(doc_id))
        self._manifest[doc_id] = indexed

    def _unset(self, doc_id: str) -> None:
        if self._manifest.pop(doc_id, None) is not None:
            self._folders.subtract(_folders_of(doc_id))
            for folder in _folders_of(doc_id):
                if self._folders[folder] <= 0:
                    del self._folders[folder]

    def _ids_under(self, prefix: str) -> list[str]:
        if prefix and prefix not in self._folders:
            return []
        return [d for d in self._manifest if d.startswith(prefix)]

    def _log_commit(self, batch: ChangeBatch, seconds: float) -> None:
        names = [a.id for a in batch.upserts] + [f"-{d}" for d in batch.deletes] + [f"-{p}*" for p in batch.delete_prefixes]
        shown = ", ".join(names[:5]) + (f", … ({len(names) - 5} more)" if len(names) > 5 else "")
        log.info("committed %d indexed, %d deleted%s in %.0f ms: %s",
                 len(batch.upserts), len(batch.deletes),
                 f", {len(batch.delete_prefixes)} folders removed" if batch.delete_prefixes else "",
                 seconds * 1000, shown)

    def _resolve(self, path: Path, batch: ChangeBatch, to_read: dict[str, Path]) -> None:
        """Work out what the index needs so that it agrees with what is at `path` now."""
        relative = path.relative_to(self.root)
        if not relative.parts:
            self._resolve_dir(self.root, "", batch, to_read)
            return
        article_id = PurePosixPath(*relative.parts).as_posix()
        if path.is_symlink() and not self.config.follow_symlinks:
            self._forget(article_id, batch)
            return
        if path.is_dir():
            if any(self.rules.ignores_dir(part) for part in relative.parts):
                self._forget(article_id, batch)  # renamed to a hidden name: its files are gone
                return
            self._resolve_dir(path, article_id + "/", batch, to_read)
            return
        # A file (or nothing). Anything we held under this name as a folder is gone.
        self._forget_folder(article_id, batch)
        if not path.exists() or not self.rules.wants(article_id):
            self._forget(article_id, batch)
            return
        try:
            stamp = stamp_of(path.stat())
        except OSError:
            self._forget(article_id, batch)
            return
        self._read_if_changed(article_id, path, stamp, to_read)

    def _resolve_dir(self, directory: Path, prefix: str, batch: ChangeBatch, to_read: dict[str, Path]) -> None:
        on_disk = set()
        for child_id, child_path, stamp in walk(directory, self.rules):
            full_id = prefix + child_id
            on_disk.add(full_id)
            self._read_if_changed(full_id, child_path, stamp, to_read)
        batch.deletes.extend(d for d in self._ids_under(prefix) if d not in on_disk)
        if prefix:
            self._forget_file(prefix[:-1], batch)  # a file that had this folder's name

    def _forget(self, article_id: str, batch: ChangeBatch) -> None:
        self._forget_file(article_id, batch)
        self._forget_folder(article_id, batch)

    def _forget_file(self, article_id: str, batch: ChangeBatch) -> None:
        if article_id in self._manifest:
            batch.deletes.append(article_id)
        self.skipped.pop(article_id, None)

    def _forget_folder(self, article_id: str, batch: ChangeBatch) -> None:
        prefix = article_id + "/"
        if prefix in self._folders:
            batch.delete_prefixes.append(prefix)
        for skipped in [s for s in self.skipped if s.startswith(prefix)]:
            del self.skipped[skipped]

    def _read_if_changed(self, article_id: str, path: Path, stamp: FileStamp, to_read: dict[str, Path]) -> None:
        known = self._manifest.get(article_id)
        if known is not None and (known.size, known.mtime_ns) == (stamp.size, stamp.mtime_ns):
            return
        to_read[article_id] = path

    def _read(self, to_read: dict[str, Path], batch: ChangeBatch) -> None:
        """Parse the files to (re)index; many at once (a folder moved in) use both cores."""
        for parsed in parse_all(self.root, sorted(to_read.items()), self.config.max_file_bytes):
            if parsed.article is None:
                log.warning("skipped %s: %s", parsed.article_id, parsed.reason)
                self.skipped[parsed.article_id] = parsed.reason
                if parsed.article_id in self._manifest:  # it was an article and is not one now
                    batch.deletes.append(parsed.article_id)
                continue
            self.skipped.pop(parsed.article_id, None)
            batch.upserts.append(parsed.article)

    # --- upkeep ---------------------------------------------------------------------------------

    def _small_segments(self) -> int:
        return self._stats.small_segments if self._stats else 0

    def _hard_segment_limit(self) -> int:
        assert self.writer is not None
        return self.writer.max_segments * _HARD_SEGMENT_FACTOR

    def _merge(self) -> None:
        assert self.writer is not None
        try:
            before = self._stats.segments if self._stats else 0
            started = time.monotonic()
            if self.writer.merge_if_needed():
                self._refresh_stats()
                after = self._stats.segments if self._stats else 0
                log.info("merged segments %d -> %d in %.2fs", before, after, time.monotonic() - started)
                self._write_status()
        except Exception as exc:
            self._note_error(f"merge failed (will try again when idle): {type(exc).__name__}: {exc}")

    def _check_observer(self) -> None:
        """An inotify observer can die (e.g. the watch limit reached on a new subfolder): switch to
        polling and rescan, rather than go blind."""
        observer = self._observer
        if observer is None or self._stop.is_set():
            return
        alive = observer.is_alive() and all(emitter.is_alive() for emitter in observer.emitters)
        if alive:
            return
        if not self.root.is_dir():
            # The folder itself was deleted or unmounted: nothing can watch it. Wait for it to come
            # back rather than let the writer thread die on FileNotFoundError.
            if self.observer_kind != _WAITING_FOR_FOLDER:
                log.warning("the folder %s is gone; waiting for it to come back", self.root)
                try:
                    observer.stop()
                except Exception:
                    pass
                self.observer_kind = _WAITING_FOR_FOLDER
            return
        try:
            observer.stop()
        except Exception:
            pass
        if self.observer_kind == _WAITING_FOR_FOLDER:
            log.warning("the folder %s is back; watching it again and rescanning", self.root)
            self._start_observer()
        else:
            log.warning("the %s observer stopped working; falling back to polling and rescanning", self.observer_kind)
            self._start_polling()
        self._rescan_requested = True

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
        from any thread while the writer thread works: `_noted` is read before `_pending` (an
        event is in `_pending` before it counts as noted) and `_received` last (an event counts as
        received before it is in the inbox), so an event on its way is counted at least once."""
        noted = self._noted
        paths = len(self._pending)
        return paths + (self._received.value - noted) + self._unindexed()

    def _unindexed(self) -> int:
        """Files the running reconcile has still to make searchable."""
        progress = self._progress
        if progress is None:
            return 0 if self._compared else 1
        done, total = progress
        rebuilding = self.writer is not None and self.writer.rebuilding
        return total if rebuilding else total - done

    def lag_seconds(self) -> float:
        oldest = min((p.first_seen for p in list(self._pending.values())), default=None)
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
            "observer": self.observer_kind,
            "lag_seconds": self.lag_seconds(),
            "skipped": dict(sorted(self.skipped.items())),
            "folder": str(self.root),
            "index": stats.directory if stats else "",
            "rebuilding": (writer.rebuild_reason if writer else None) or "",
            "error": self.last_error,
            "pid": os.getpid(),
            "updated": time.time(),
        }

    def _write_status(self) -> None:
        with self._status_lock:
            try:
                write_status(self.index_dir, self.status())
            except OSError as exc:
                log.debug("cannot write status file: %s", exc)


def _overall(state: str, pending: int, error: str) -> str:
    if state in ("stopped", "failed"):
        return state
    if error:
        return "degraded"
    return "ok" if pending == 0 else "indexing"


def _folders_of(doc_id: str) -> list[str]:
    """"a/b/c.txt" -> ["a/", "a/b/"]"""
    parts = doc_id.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def _stamp(path: str) -> FileStamp | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None
