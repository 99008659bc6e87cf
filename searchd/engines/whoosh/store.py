"""The Whoosh index directory on disk: its layout, the writer lock, the table of contents
(document count, manifest), and the status file the daemon shares with readers.

Layout of the index directory::

    index/CURRENT        name of the live index directory (replaced atomically)
    index/ix-<n>/        a Whoosh index (with searchd.json: schema version, creation time)
    index/daemon.lock    held (flock) by the one process allowed to write
    index/status.json    what the writer last reported (pending changes, skipped files, ...)
    index/broken-<ts>/   an index that could not be opened, kept aside, never deleted

Only the process holding daemon.lock writes (writer.py); everyone else reads (reader.py).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

from ...processes import die_with_parent
from ..base import IndexBusy, Indexed, IndexStats

log = logging.getLogger("searchd.index")

CURRENT = "CURRENT"
META = "searchd.json"
STATUS = "status.json"
LOCK = "daemon.lock"
# Segments under this many documents are "small": the ones an idle merge works on (writer.py).
MERGE_BUDGET_DOCS = 500


# --- layout ----------------------------------------------------------------------------------

def current_dir(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return index_dir / name if name else None


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # disk full: leave no half-written temporaries behind
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def storage(directory: Path, readonly: bool = False) -> FileStorage:
    """Index files are read with pread, not mapped (see _read_segments_with_pread)."""
    return FileStorage(str(directory), readonly=readonly, supports_mmap=False)


def next_dir_name(index_dir: Path) -> str:
    numbers = [int(p.name[3:]) for p in index_dir.glob("ix-*") if p.name[3:].isdigit()]
    return f"ix-{max(numbers, default=0) + 1}"


def read_meta(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# --- the writer lock ----------------------------------------------------------------------------

# Descriptors of writer locks this process holds. Process-wide by nature: fork() copies every
# descriptor, and a flock is held as long as any copy is open, so a worker forked to parse files
# would keep the index locked after its parent was killed. Forked children close their copies.
_HELD_LOCK_FDS: set[int] = set()


def _after_fork_in_child() -> None:
    if not _HELD_LOCK_FDS:
        return
    for fd in list(_HELD_LOCK_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCK_FDS.clear()
    # A parser worker of a writer that is killed -9 would otherwise wait forever for work on a
    # pipe it holds open itself: ask the kernel to end it with its parent (Linux only).
    die_with_parent()


os.register_at_fork(after_in_child=_after_fork_in_child)


# How long a writer keeps trying for a lock that is held: long enough to outlast a reader's
# probe (`WriterLock.held`, microseconds), far too short to wait for another writer.
_PROBE_WAIT = 0.2


def _lock_exclusive(fd: int) -> None:
    deadline = time.monotonic() + _PROBE_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class WriterLock:
    """An OS lock (flock) on index/daemon.lock: released by the kernel when the process dies, so
    a kill -9 never leaves a stale lock behind (forked workers drop their copy, see above)."""

    def __init__(self, index_dir: Path):
        self.path = index_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_exclusive(fd)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise IndexBusy(str(self.path.parent), holder) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        _HELD_LOCK_FDS.add(fd)
        return self

    def held(self) -> bool:
        """Whether a writer holds the lock now. A shared lock, taken for a moment and never
        written: a writer starting at the same moment waits it out (see _lock_exclusive)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True
            raise
        finally:
            os.close(fd)  # closing drops a lock taken
        return False

    def release(self) -> None:
        if self._fd is not None:
            _HELD_LOCK_FDS.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()



# --- reading the table of contents ------------------------------------------------------------

class RefreshSafeIndex(whoosh_index.FileIndex):
    """A FileIndex whose `reader(reuse=...)`, which readers call after every commit, is correct.

    whoosh-reloaded 2.7.5 reuses the old segment readers keyed by segment id alone, so deletions
    made since are not seen (a deleted article keeps turning up), and it puts back segments a merge
    removed. Here a segment reader is reused only when its segment has the same id and the same
    number of deletions (deletions only accumulate), so the big segment of a bulk index stays open
    across refreshes while anything that changed is opened afresh."""

    def reader(self, reuse: Any = None, close_unused: bool = True) -> Any:
        if reuse is None:
            return super().reader()
        from whoosh.reading import EmptyReader, MultiReader, SegmentReader

        for attempt in range(10):  # a commit may delete the TOC we are about to read: read again
            try:
                toc = self._read_toc()
                break
            except OSError:
                if attempt == 9:
                    raise
                time.sleep(0.005)
        reusable = {}
        for leaf, _ in reuse.leaf_readers():
            segment = leaf.segment()
            if segment is not None:
                reusable[(segment.segment_id(), segment.deleted_count())] = leaf
        readers = []
        for segment in toc.segments:
            leaf = reusable.pop((segment.segment_id(), segment.deleted_count()), None)
            readers.append(leaf or SegmentReader(self.storage, toc.schema, segment, generation=toc.generation))
        if close_unused:
            for leaf in reusable.values():
                leaf.close()
        if not readers:
            return EmptyReader(toc.schema)
        if len(readers) == 1:
            return readers[0]
        return MultiReader(readers, generation=toc.generation)


def index_stats(ix: whoosh_index.Index) -> IndexStats:
    """Read from the table of contents alone (no segment is opened), so it is cheap enough to call
    after every commit."""
    directory = Path(ix.storage.folder)
    toc = ix._read_toc()
    return IndexStats(
        documents=sum(segment.doc_count() for segment in toc.segments),
        segments=len(toc.segments),
        generation=toc.generation,
        last_commit=ix.last_modified() if toc.segments else None,
        location=directory.name,
        schema_version=read_meta(directory).get("schema_version", 0),
        small_segments=sum(1 for segment in toc.segments if segment.doc_count_all() < MERGE_BUDGET_DOCS),
    )


def read_manifest(ix: whoosh_index.Index) -> dict[str, Indexed]:
    """path -> (size, mtime, checksum) of every live document, read from column storage so that
    the stored bodies are never unpickled."""
    manifest: dict[str, Indexed] = {}
    with ix.reader() as reader:
        for leaf, offset in reader.leaf_readers():
            if leaf.doc_count_all() == 0:
                continue
            ids = leaf.column_reader("id")
            sizes = leaf.column_reader("size")
            mtimes = leaf.column_reader("mtime_ns")
            sums = leaf.column_reader("checksum")
            for docnum in leaf.all_doc_ids():
                key = ids[docnum]
                if isinstance(key, bytes):
                    key = key.decode("utf-8")
                checksum = sums[docnum]
                if isinstance(checksum, bytes):
                    checksum = checksum.decode("ascii")
                manifest[key] = Indexed(int(sizes[docnum]), int(mtimes[docnum]), checksum)
    return manifest


# --- status shared with readers ---------------------------------------------------------------

def write_status(index_dir: Path, status: dict[str, Any]) -> None:
    # Not fsynced: the status is advice for `searchd status`, rewritten after every commit, and
    # an fsync there would sit on the path of every update.
    write_atomic(Path(index_dir) / STATUS, json.dumps(status, default=str), durable=False)


def read_status(index_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(index_dir) / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# What a writer that holds the index but has published nothing yet is said to be doing: a new
# index exists (empty) a moment before its daemon's first report, and `searchd index` never
# reports; neither may read as "nothing pending".
UNREPORTED_WRITER = {"status": "indexing", "state": "starting", "pending": 1, "progress": None}
NO_WRITER = "the indexing daemon is not running (it did not stop cleanly); start it to catch up"


def reported_status(index_dir: Path) -> dict[str, Any]:
    """What the writer last published, as it stands now: a writer that holds the index and has
    said nothing yet is indexing, and one that died without a word (kill -9, a crash) is stopped
    whatever it last said."""
    report = read_status(index_dir)
    if report.get("state") in ("stopped", "failed"):
        return report
    held = writer_holds(index_dir)
    if not report:
        return dict(UNREPORTED_WRITER) if held else {}
    if held:
        return report
    return {**report, "status": "stopped", "state": "stopped", "error": report.get("error") or NO_WRITER}


def writer_holds(index_dir: Path) -> bool:
    """Whether a daemon (or `searchd index`) holds the index now."""
    try:
        return WriterLock(Path(index_dir)).held()
    except OSError:
        return False
