"""The indexing daemon: watch the folder, coalesce events, keep the index equal to the folder.

One writer thread owns the index. Watchdog's observer thread only records which paths changed;
the writer thread waits until a path has been quiet for a moment (editors and downloads write in
bursts), then looks at the file system as it is *now* and makes the index agree. Deciding from the
current state rather than from the event kind is what makes renames, atomic saves, directory moves
and dropped events all come out right.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from .articles import FileStamp, Skip, read_article, stamp_of
from .config import Config
from .folder import FileRules, walk
from .index import ChangeBatch, Indexed, IndexWriter, WriterLock, write_status
from .sync import SyncReport, reconcile

log = logging.getLogger("searchd.daemon")

_TICK = 0.02
_IDLE_MERGE_AFTER = 2.0
_RETRY_MAX = 30.0


@dataclass
class _Pending:
    first_seen: float
    last_event: float
    stamp: FileStamp | None


class _Handler(FileSystemEventHandler):
    def __init__(self, inbox: "queue.SimpleQueue[tuple[str, float]]"):
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's own mtime changes with every file in it; the files tell us more
        now = time.monotonic()
        self.inbox.put((os.fsdecode(event.src_path), now))
        dest = getattr(event, "dest_path", "")
        if dest:
            self.inbox.put((os.fsdecode(dest), now))


class Daemon:
    """Owns the writer lock, the writer thread and the observer. `start()`, then `stop()`."""

    def __init__(self, config: Config):
        self.config = config
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
        self._inbox: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._pending: dict[str, _Pending] = {}
        self._startup_remaining = 0
        self._manifest: dict[str, Indexed] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._caught_up = threading.Event()
        self._status_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "Daemon":
        if not self.root.is_dir():
            raise FileNotFoundError(f"article folder {self.root} does not exist")
        self.lock.acquire()
        try:
            self.writer = IndexWriter(self.index_dir)
            self._start_observer()
        except BaseException:
            self.lock.release()
            raise
        self._thread = threading.Thread(target=self._run, name="searchd-writer", daemon=True)
        self._thread.start()
        return self

    def _start_observer(self) -> None:
        if not self.config.polling:
            try:
                observer = Observer()
                observer.schedule(_Handler(self._inbox), str(self.root), recursive=True)
                observer.start()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENFILE):
                    raise
                log.warning(
                    "inotify watch limit reached (%s); falling back to polling the folder. "
                    "Raise fs.inotify.max_user_watches for instant updates.", exc.strerror
                )
            else:
                self._observer, self.observer_kind = observer, "inotify"
                return
        observer = PollingObserver(timeout=1.0)
        observer.schedule(_Handler(self._inbox), str(self.root), recursive=True)
        observer.start()
        self._observer, self.observer_kind = observer, "polling"

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is pending, commit, release the lock."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.state = "stopped"
        self._write_status()
        self.lock.release()

    def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        return self._caught_up.wait(timeout)

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        assert self.writer is not None
        self.state = "indexing"
        self._reconcile(startup=True)
        if self.writer.rebuilding:
            self.writer.finish_rebuild()
        self.state = "ok"
        self._caught_up.set()
        self._write_status()
        next_rescan = time.monotonic() + self.config.rescan_seconds
        last_work = time.monotonic()
        merged_since_work = True
        while True:
            stopping = self._stop.is_set()
            self._drain_inbox()
            now = time.monotonic()
            due = self._due_paths(now, flush=stopping)
            if due:
                self._apply_paths(due)
                last_work, merged_since_work = now, False
            if stopping and not self._pending:
                break
            if now >= next_rescan:
                self._reconcile(startup=False)
                next_rescan = time.monotonic() + self.config.rescan_seconds
            if not merged_since_work and not self._pending and now - last_work > _IDLE_MERGE_AFTER:
                self._merge()
                merged_since_work = True
            time.sleep(_TICK)

    def _reconcile(self, startup: bool) -> None:
        assert self.writer is not None

        def progress(done: int, total: int) -> None:
            self._startup_remaining = total - done
            if done == 0 or done % 500 == 0:
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
            except OSError as exc:  # disk full, folder gone for a moment: retry, keep serving
                self._note_error(f"reconcile failed, will retry: {exc}")
                if self._stop.is_set():
                    return
                time.sleep(min(_RETRY_MAX, 2.0 ** attempt))
                attempt += 1
        self._startup_remaining = 0
        self.last_report = report
        self._manifest = self.writer.manifest()
        self.skipped = {k: v for k, v in self.skipped.items() if k in report.skipped or k not in self._manifest}
        level = logging.INFO if startup or report.changed else logging.DEBUG
        log.log(level, "%s: %s", "start-up reconcile" if startup else "rescan", report.summary())
        self._write_status()

    def _drain_inbox(self) -> None:
        while True:
            try:
                path, seen = self._inbox.get_nowait()
            except queue.Empty:
                return
            pending = self._pending.get(path)
            if pending is None:
                self._pending[path] = _Pending(seen, seen, _stamp(path))
            else:
                pending.last_event = seen

    def _due_paths(self, now: float, flush: bool) -> list[str]:
        """Paths quiet for the debounce window whose size and mtime have stopped changing."""
        due = []
        for path, pending in list(self._pending.items()):
            if not flush and now - pending.last_event < self.config.debounce_seconds:
                continue
            stamp = _stamp(path)
            if not flush and stamp != pending.stamp:  # still being written
                pending.stamp, pending.last_event = stamp, now
                continue
            due.append(path)
        return due

    def _apply_paths(self, paths: list[str]) -> None:
        assert self.writer is not None
        batch = ChangeBatch()
        for path in paths:
            self._resolve(Path(path), batch)
        if len(batch):
            try:
                self.writer.apply(batch)
            except Exception as exc:  # disk full, permissions: keep the paths pending and retry
                self._note_error(f"commit failed, will retry: {type(exc).__name__}: {exc}")
                time.sleep(min(_RETRY_MAX, 1.0))
                return
            for article in batch.upserts:
                self._manifest[article.id] = Indexed(article.size, article.mtime_ns, article.checksum)
            for doc_id in batch.deletes:
                self._manifest.pop(doc_id, None)
            for prefix in batch.delete_prefixes:
                for doc_id in [d for d in self._manifest if d.startswith(prefix)]:
                    del self._manifest[doc_id]
            self.last_error = ""
            log.info(
                "committed %d updated, %d deleted%s",
                len(batch.upserts), len(batch.deletes),
                f", {len(batch.delete_prefixes)} folders removed" if batch.delete_prefixes else "",
            )
        for path in paths:
            self._pending.pop(path, None)
        self._write_status()

    def _resolve(self, path: Path, batch: ChangeBatch) -> None:
        """Make the index agree with what is at `path` now."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return
        if not relative.parts:
            return self._resolve_all(batch)
        article_id = PurePosixPath(*relative.parts).as_posix()
        is_link = path.is_symlink()
        if is_link and not self.config.follow_symlinks:
            self._forget(article_id, batch)
            return
        if path.is_dir():
            if any(self.rules.ignores_dir(part) for part in relative.parts):
                return
            on_disk = set()
            for child_id, child_path, stamp in walk(path, self.rules):
                full_id = f"{article_id}/{child_id}"
                on_disk.add(full_id)
                self._upsert_if_changed(full_id, child_path, stamp, batch)
            for known in [d for d in self._manifest if d.startswith(article_id + "/") and d not in on_disk]:
                batch.deletes.append(known)
            return
        if not path.exists():
            self._forget(article_id, batch)
            return
        if not self.rules.wants(article_id):
            return
        try:
            stamp = stamp_of(path.stat())
        except OSError:
            self._forget(article_id, batch)
            return
        self._upsert_if_changed(article_id, path, stamp, batch)

    def _resolve_all(self, batch: ChangeBatch) -> None:
        for article_id, path, stamp in walk(self.root, self.rules):
            self._upsert_if_changed(article_id, path, stamp, batch)

    def _forget(self, article_id: str, batch: ChangeBatch) -> None:
        if article_id in self._manifest:
            batch.deletes.append(article_id)
        prefix = article_id + "/"
        if any(d.startswith(prefix) for d in self._manifest):
            batch.delete_prefixes.append(prefix)
        self.skipped.pop(article_id, None)

    def _upsert_if_changed(self, article_id: str, path: Path, stamp: FileStamp, batch: ChangeBatch) -> None:
        known = self._manifest.get(article_id)
        if known is not None and (known.size, known.mtime_ns) == (stamp.size, stamp.mtime_ns):
            return
        try:
            article = read_article(self.root, path, self.config.max_file_bytes)
        except Skip as skip:
            log.warning("skipped %s: %s", article_id, skip.reason)
            self.skipped[article_id] = skip.reason
            if known is not None:
                batch.deletes.append(article_id)
            return
        except Exception as exc:
            log.exception("unexpected error parsing %s", article_id)
            self.skipped[article_id] = f"parser error ({type(exc).__name__})"
            return
        self.skipped.pop(article_id, None)
        batch.upserts.append(article)

    def _merge(self) -> None:
        assert self.writer is not None
        try:
            if self.writer.merge_if_needed():
                log.info("merged segments (now %d)", self.writer.segment_count())
        except Exception as exc:
            self._note_error(f"merge failed: {type(exc).__name__}: {exc}")

    def _note_error(self, message: str) -> None:
        self.last_error = message
        log.error(message)
        self._write_status()

    # --- visibility -----------------------------------------------------------------------------

    def pending(self) -> int:
        return len(self._pending) + self._inbox.qsize() + self._startup_remaining

    def lag_seconds(self) -> float:
        oldest = min((p.first_seen for p in list(self._pending.values())), default=None)
        return round(time.monotonic() - oldest, 3) if oldest is not None else 0.0

    def status(self) -> dict[str, Any]:
        assert self.writer is not None
        stats = self.writer.stats()
        pending = self.pending()
        return {
            "status": _overall(self.state, pending),
            "documents": stats.documents,
            "segments": stats.segments,
            "pending": pending,
            "last_commit": self.writer.last_commit or stats.last_commit,
            "observer": self.observer_kind,
            "lag_seconds": self.lag_seconds(),
            "skipped": dict(sorted(self.skipped.items())),
            "folder": str(self.root),
            "error": self.last_error,
            "pid": os.getpid(),
            "updated": time.time(),
        }

    def _write_status(self) -> None:
        if self.writer is None:
            return
        with self._status_lock:
            try:
                write_status(self.index_dir, self.status())
            except OSError as exc:
                log.debug("cannot write status file: %s", exc)


def _overall(state: str, pending: int) -> str:
    if state == "ok":
        return "ok" if pending == 0 else "indexing"
    return "stopped" if state == "stopped" else "indexing"


def _stamp(path: str) -> FileStamp | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None
