"""The Whoosh index on disk: layout, the single writer, change batches, the manifest, stats.

Layout of the index directory::

    index/CURRENT        name of the live index directory (replaced atomically)
    index/ix-<n>/        a Whoosh index (with searchd.json: schema version, creation time)
    index/daemon.lock    held (flock) by the one process allowed to write
    index/status.json    what the writer last reported (pending changes, skipped files, ...)
    index/broken-<ts>/   an index that could not be opened, kept aside, never deleted

Only the process holding daemon.lock calls `IndexWriter`; everyone else opens an `IndexReader`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.query import Prefix
from whoosh.searching import Searcher as WhooshSearcher
from whoosh.writing import CLEAR

from .articles import Article
from .schema import SCHEMA_VERSION, build_schema
from .segments import SegmentBuilder, StagedSegment, staging_root

log = logging.getLogger("searchd.index")

CURRENT = "CURRENT"
META = "searchd.json"
STATUS = "status.json"
LOCK = "daemon.lock"
# Past this many small segments the writer merges the smallest ones when it is idle (never on a
# commit that someone is waiting for: Whoosh's merge-on-commit is where multi-second latencies come
# from). A merge copies at most MERGE_BUDGET_DOCS documents, well under a second: Whoosh merges at
# a few milliseconds per document, and the writer cannot take updates while it merges. Segments
# past the budget (the batches of a bulk index) are left as they are.
MAX_SEGMENTS = 8
MERGE_BUDGET_DOCS = 500
# Seconds a reader trusts unchanged file times for the index generation (IndexReader.version).
VERSION_RECHECK = 1.0


class IndexBusy(Exception):
    def __init__(self, lock_path: Path, holder: str):
        super().__init__(
            f"another searchd process already writes to {lock_path.parent} ({holder}); "
            "stop it first, or point this one at another --index directory"
        )
        self.holder = holder


class IndexMissing(Exception):
    pass


class Interrupted(Exception):
    """A large batch was abandoned (its writer cancelled) because the process is stopping; the
    index keeps its last commit and the next reconcile redoes the work."""


@dataclass(frozen=True)
class Indexed:
    """What the index remembers of a file, to tell whether the file changed since."""

    size: int
    mtime_ns: int
    checksum: str


@dataclass
class ChangeBatch:
    """A plain unit of work for the index side: articles to add or replace, ids and folders to
    delete, and segments already built from articles by worker processes (sync.py), which
    replace any indexed article with the same id. No Whoosh object is handled by the caller."""

    upserts: list[Article] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    delete_prefixes: list[str] = field(default_factory=list)
    staged: list[StagedSegment] = field(default_factory=list)
    # False when the caller lists in `deletes` every indexed id its staged segments replace
    # (a bulk reconcile knows them): spares a term lookup per new article.
    replace_staged: bool = True

    def __len__(self) -> int:
        return (len(self.upserts) + len(self.deletes) + len(self.delete_prefixes)
                + sum(len(s.ids) for s in self.staged))

    def unique_upserts(self) -> list[Article]:
        """One article per id, the last one wins. Whoosh's update_document only deletes documents
        of earlier commits, so the same id twice in one writer would leave two documents."""
        return list({article.id: article for article in self.upserts}.values())


@dataclass(frozen=True)
class IndexStats:
    documents: int
    segments: int
    generation: int
    last_commit: float | None
    directory: str
    schema_version: int
    small_segments: int = 0  # segments under MERGE_BUDGET_DOCS documents: the ones merges touch


# --- layout ----------------------------------------------------------------------------------

def current_dir(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return index_dir / name if name else None


def _write_atomic(path: Path, text: str, durable: bool = True) -> None:
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


def _storage(directory: Path, readonly: bool = False) -> FileStorage:
    """Index files are read with pread, not mapped (see _read_segments_with_pread)."""
    return FileStorage(str(directory), readonly=readonly, supports_mmap=False)


def _next_dir_name(index_dir: Path) -> str:
    numbers = [int(p.name[3:]) for p in index_dir.glob("ix-*") if p.name[3:].isdigit()]
    return f"ix-{max(numbers, default=0) + 1}"


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# --- a Whoosh inefficiency ---------------------------------------------------------------------

def _remember_missing_length_columns() -> None:
    """Whoosh looks up a field's length column once per posting while it writes a segment, and
    caches only the columns it finds: for fields stored without lengths (words, id, category) each
    lookup is a stat() of a file that does not exist, ~120,000 per 1,000 articles and a fifth of
    the indexing time. Segment files never change once written, so "not there" can be cached too."""
    from whoosh.codec import whoosh3

    reader_class = whoosh3.W3PerDocReader
    if getattr(reader_class, "_searchd_caches_missing", False):
        return
    original = reader_class._cached_reader

    def cached_reader(self: Any, fieldname: str, column: Any) -> Any:
        if fieldname in self._readers:
            return self._readers[fieldname]
        reader = original(self, fieldname, column)
        if reader is None:
            self._readers[fieldname] = None
        return reader

    reader_class._cached_reader = cached_reader
    reader_class._searchd_caches_missing = True


_remember_missing_length_columns()


class _PreadReader:
    """The file-like side of a _PreadFile: sequential reads, each one os.pread."""

    def __init__(self, fd: int, offset: int, length: int):
        self._fd, self._offset, self._length = fd, offset, length
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._position
        size = left if size is None or size < 0 else max(0, min(size, left))
        data = os.pread(self._fd, size, self._offset + self._position)
        self._position += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # pickle.load asks for it; protocol 2 never uses it
        line = b""
        while not line.endswith(b"\n") and (piece := self.read(1)):
            line += piece
        return line

    def seek(self, position: int, whence: int = 0) -> int:
        self._position = {0: 0, 1: self._position, 2: self._length}[whence] + position
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        pass

    def flush(self) -> None:
        pass


def _read_segments_with_pread() -> None:
    """Whoosh reads a file inside a segment's compound file either through a memory map, as
    BytesIO(map) (which copies the whole file: every reader held a private copy of every
    postings file and term dictionary) or through a shared file object (a seek and a read, in
    Python, per read, and one position for all threads). Here each read is one os.pread: no
    copy, no mapping (the page cache keeps the index, the process does not), and no shared
    position. The readers of searchd open storage with supports_mmap=False to take this path."""
    from whoosh.filedb import compound, structfile

    if getattr(compound.CompoundStorage, "_searchd_pread", False) or not hasattr(os, "pread"):
        return

    class PreadFile(structfile.StructFile):
        def __init__(self, owner: Any, offset: int, length: int, name: str | None = None):
            self._owner = owner  # keeps the descriptor open while any part of the file is read
            self._fd, self._offset, self._length = owner.fileno(), offset, length
            self._name = name
            self.file = _PreadReader(self._fd, offset, length)
            self.onclose = None
            self.is_real = False
            self.is_closed = False

        def get(self, position: int, length: int) -> bytes:
            return os.pread(self._fd, max(0, min(length, self._length - position)), self._offset + position)

        def subset(self, position: int, length: int, name: str | None = None) -> "PreadFile":
            return PreadFile(self._owner, self._offset + position, length, name or self._name)

        def close(self) -> None:
            self.is_closed = True

    original = compound.CompoundStorage.open_file

    def open_file(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._source is None and self._file is not None and hasattr(self._file, "fileno") and not self.is_closed:
            offset, length = self.range(name)
            return PreadFile(self._file, offset, length, name=name)
        return original(self, name, *args, **kwargs)

    compound.CompoundStorage.open_file = open_file
    compound.CompoundStorage._searchd_pread = True


_read_segments_with_pread()


# --- the writer lock ---------------------------------------------------------------------------

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


def die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


os.register_at_fork(after_in_child=_after_fork_in_child)


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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise IndexBusy(self.path, holder) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        _HELD_LOCK_FDS.add(fd)
        return self

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


# --- documents -------------------------------------------------------------------------------

def to_document(article: Article) -> dict[str, Any]:
    when = article.date or datetime.fromtimestamp(article.mtime_ns / 1e9)
    return {
        "id": article.id,
        "title": article.title,
        # Untitled articles show their first words; only a real title is indexed as a title.
        "_stored_title": article.display_title,
        "subtitle": article.subtitle,
        "summary": article.summary,
        "body": article.text,
        "category": article.category,
        "tags": ",".join(article.tags),
        "date": when,
        "year": str(when.year),
        "url": article.url,
        "author": article.author,
        "format": article.format,
        "size": article.size,
        "mtime_ns": article.mtime_ns,
        "checksum": article.checksum,
    }


# --- reading ---------------------------------------------------------------------------------

class IndexReader:
    """Read-only access for the search side. Never takes the writer lock."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self._live: Path | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._version: tuple[str, int] = ("", -1)

    def open(self) -> whoosh_index.Index:
        missing = f"no index in {self.index_dir}: run `searchd index` or `searchd serve` first"
        for attempt in range(10):
            directory = current_dir(self.index_dir)
            if directory is None:
                raise IndexMissing(missing)
            try:
                return _RefreshSafeIndex(_storage(directory, readonly=True))
            except whoosh_index.EmptyIndexError:
                raise IndexMissing(missing) from None
            except FileNotFoundError:
                # A commit replaced the table of contents between listing and reading it (or
                # the index directory was swapped): the next one is there, read again.
                if attempt == 9:
                    raise
                time.sleep(0.005)
        raise IndexMissing(missing)

    def open_reader(self, previous: Any = None) -> Any:
        """A Whoosh reader of the current generation, reusing the segment readers of `previous`
        (a reader of the same index directory) for segments that did not change. Nothing of
        `previous` is closed: queries still running on it finish, and its files close when the
        last reference to it goes."""
        for attempt in range(10):
            ix = self.open()
            try:
                return ix.reader(reuse=previous, close_unused=False) if previous is not None else ix.reader()
            except FileNotFoundError:  # a commit replaced the TOC or a merge removed a segment
                if attempt == 9:
                    raise
                time.sleep(0.005)
        raise IndexMissing(f"no index in {self.index_dir}")

    def version(self) -> tuple[str, int]:
        """Changes whenever a reader must look again: a new commit or a swapped index.

        Reading it means listing the index directory (half a millisecond); asked for every query,
        it is first answered from the modification times of CURRENT and of the live directory,
        which every commit changes. On a file system whose times are coarser than the commits
        come, the listing is still redone at least every VERSION_RECHECK seconds."""
        try:
            stamp = (os.stat(self.index_dir / CURRENT).st_mtime_ns, os.stat(self._live).st_mtime_ns)
        except (OSError, TypeError):
            stamp = None
        now = time.monotonic()
        if stamp is not None and stamp == self._stamp and now - self._checked < VERSION_RECHECK:
            return self._version
        version = self._read_version()
        self._stamp, self._checked, self._version = stamp, now, version
        self._live = self.index_dir / version[0] if version[0] else None
        return version

    def _read_version(self) -> tuple[str, int]:
        directory = current_dir(self.index_dir)
        if directory is None:
            return ("", -1)
        try:
            generation = whoosh_index.FileIndex(FileStorage(str(directory))).latest_generation()
        except Exception:
            generation = -1
        return (directory.name, generation)


class _RefreshSafeIndex(whoosh_index.FileIndex):
    """A FileIndex whose `reader(reuse=...)`, which `Searcher.refresh()` calls, is correct.

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
        directory=directory.name,
        schema_version=_read_meta(directory).get("schema_version", 0),
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


# --- writing ---------------------------------------------------------------------------------

class IndexWriter:
    """The one writer. Opens (or creates, or rebuilds) the live index and applies change batches.

    An index that cannot be opened or read, or was written with another schema version, is not
    touched: a fresh one is built beside it and swapped in by `finish_rebuild()` once it holds the
    folder. Only the holder of the WriterLock may create one.
    """

    def __init__(self, index_dir: Path, max_segments: int = MAX_SEGMENTS):
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.max_segments = max_segments
        self.rebuild_reason: str | None = None
        self._old_dir: Path | None = None
        self.ix = self._open()
        self._remove_unpublished(keep=Path(self.ix.storage.folder))
        self.last_commit: float | None = None
        self.commits = 0
        self._lookup: Any = None  # a reader kept across commits to find the documents to replace
        # Set when the process is stopping: a large batch is then abandoned between documents
        # (SIGTERM must not wait for thousands of documents to be analysed).
        self.stop_requested: threading.Event | None = None

    def _open(self) -> whoosh_index.Index:
        directory = current_dir(self.index_dir)
        if directory is not None and directory.exists():
            meta = _read_meta(directory)
            try:
                ix = _RefreshSafeIndex(_storage(directory))
                read_manifest(ix)  # opens every segment: damage past the TOC shows up here, not later
            except Exception as exc:  # any damage at all: rebuild, never delete in place
                self.rebuild_reason = f"index {directory.name} cannot be opened ({type(exc).__name__}: {exc})"
            else:
                if meta.get("schema_version") == SCHEMA_VERSION:
                    return ix
                self.rebuild_reason = (
                    f"index {directory.name} has schema version {meta.get('schema_version')}, "
                    f"this searchd writes {SCHEMA_VERSION}"
                )
            self._old_dir = directory
            log.warning("%s: rebuilding into a new directory; the old one stays until the swap", self.rebuild_reason)
            return self._create(publish=False)
        return self._create(publish=True)

    def _remove_unpublished(self, keep: Path) -> None:
        """Delete ix-* directories that CURRENT never pointed to and nobody builds any more: the
        leftovers of a rebuild that a crash interrupted. We hold the writer lock, so none is in use;
        the live index and broken-* directories are never touched."""
        live = current_dir(self.index_dir)
        for directory in self.index_dir.glob("ix-*"):
            if directory in (live, keep) or not directory.is_dir():
                continue
            log.info("removing %s, left over by an interrupted rebuild", directory.name)
            shutil.rmtree(directory, ignore_errors=True)
        for directory in self.index_dir.glob("retired-*"):  # an old-schema index half deleted
            shutil.rmtree(directory, ignore_errors=True)
        for directory in self.index_dir.glob("ix-*"):  # segments a crash left unpublished
            shutil.rmtree(staging_root(directory), ignore_errors=True)

    def _create(self, publish: bool) -> whoosh_index.Index:
        directory = self.index_dir / _next_dir_name(self.index_dir)
        directory.mkdir()
        whoosh_index.create_in(str(directory), build_schema())
        ix = _RefreshSafeIndex(_storage(directory))
        _write_atomic(directory / META, json.dumps({"schema_version": SCHEMA_VERSION, "created": time.time()}))
        if publish:
            _write_atomic(self.index_dir / CURRENT, directory.name + "\n")
        return ix

    @property
    def rebuilding(self) -> bool:
        return self.rebuild_reason is not None

    def finish_rebuild(self) -> None:
        """Publish the rebuilt index (one atomic rename of CURRENT) and move the old one aside:
        a damaged index is kept for a person to inspect, a healthy one of an older schema is
        deleted once nothing points to it."""
        if not self.rebuilding:
            return
        new_dir = Path(self.ix.storage.folder)
        _write_atomic(self.index_dir / CURRENT, new_dir.name + "\n")
        old, reason = self._old_dir, self.rebuild_reason
        self.rebuild_reason = None
        self._old_dir = None
        if old is None or not old.exists():
            return
        if "schema version" in (reason or ""):
            retired = self.index_dir / f"retired-{old.name}"
            old.rename(retired)  # out of the ix-* namespace first, so a crash mid-delete is harmless
            shutil.rmtree(retired, ignore_errors=True)
            log.warning("index rebuilt for schema version %d; the old index was removed", SCHEMA_VERSION)
            return
        aside = self.index_dir / f"broken-{time.strftime('%Y%m%d-%H%M%S')}-{old.name}"
        old.rename(aside)
        log.warning("index rebuilt into %s; the one that could not be opened is kept at %s", new_dir.name, aside)

    def manifest(self) -> dict[str, Indexed]:
        return read_manifest(self.ix)

    def stats(self) -> IndexStats:
        return index_stats(self.ix)

    def apply(self, batch: ChangeBatch) -> None:
        """Apply one batch as one commit, without merging segments. The batch's articles become
        one new segment (segments.py), staged segments are published as they are, and every
        older document with the id of one of them is deleted, all in the same commit. A failed
        commit is cancelled, so the index stays at its last good state and unlocked, and the
        caller can retry."""
        if not len(batch):
            return
        staged = list(batch.staged)
        try:
            upserts = batch.unique_upserts()
            built = self._build(upserts) if upserts else None
            if built is not None:
                staged.append(built)
            # Every upsert replaces its older version, also one Whoosh refused to index: the
            # index must not keep showing text the file no longer has.
            deletes = [*batch.deletes, *(article.id for article in upserts)]
            if batch.replace_staged:
                deletes += [doc_id for segment in batch.staged for doc_id in segment.ids]
            self._commit(deletes, batch.delete_prefixes, staged)
        finally:
            for segment in staged:
                segment.discard()
        self.last_commit = time.time()
        self.commits += 1

    def new_segment(self) -> SegmentBuilder:
        return SegmentBuilder(self.ix.schema, self.ix.storage.folder)

    def _build(self, articles: list[Article]) -> StagedSegment | None:
        builder = self.new_segment()
        try:
            for number, article in enumerate(articles):
                if number % 50 == 49 and self.stop_requested is not None and self.stop_requested.is_set():
                    raise Interrupted(f"stopping: {len(articles) - number} documents of this batch not indexed")
                try:
                    builder.add(to_document(article))
                except Exception as exc:  # a value Whoosh refuses: this article only
                    log.error("cannot index %s (%s: %s); skipped", article.id, type(exc).__name__, exc)
            if not len(builder):
                builder.discard()
                return None
            return builder.finish()
        except BaseException:
            builder.discard()
            raise

    def _commit(self, deletes: list[str], delete_prefixes: list[str], staged: list[StagedSegment]) -> None:
        writer = self.ix.writer(limitmb=32)
        try:
            # Whoosh's delete_by_term opens every segment afresh (copying each terms file into
            # memory) on every writer: most of a small commit's time on a large index. A reader
            # kept across commits, refreshed segment by segment, finds the documents to replace;
            # it sees exactly the writer's segments, in the same order, as we hold the lock.
            self._lookup = self.ix.reader(reuse=self._lookup)
            lookup = WhooshSearcher(self._lookup)
            for prefix in dict.fromkeys(delete_prefixes):
                writer.delete_by_query(Prefix("id", prefix), searcher=lookup)
            for doc_id in dict.fromkeys(deletes):
                writer.delete_by_term("id", doc_id, searcher=lookup)
            folder = self.ix.storage.folder
            for segment in staged:
                segment.move_into(folder)
            # The files moved in before the table of contents names them: if this commit fails,
            # Whoosh removes them as unknown files at the next one.
            writer.commit(mergetype=_adding([segment.segment for segment in staged]))
        except BaseException:
            _cancel(writer)
            self._forget_lookup()
            raise

    def close(self) -> None:
        """Close the reader kept for finding documents to replace (the index stays as it is)."""
        self._forget_lookup()

    def _forget_lookup(self) -> None:
        if self._lookup is not None:
            try:
                self._lookup.close()
            except Exception:
                pass
            self._lookup = None

    def segment_count(self) -> int:
        return len(self.ix._segments())

    def small_segment_count(self) -> int:
        return sum(1 for segment in self.ix._segments() if segment.doc_count_all() < MERGE_BUDGET_DOCS)

    def merge_if_needed(self) -> bool:
        """When there are more than max_segments small segments (called when the writer is idle),
        merge the smallest ones, at most MERGE_BUDGET_DOCS documents in all."""
        if self.small_segment_count() <= self.max_segments:
            return False
        writer = self.ix.writer(limitmb=128)
        try:
            writer.commit(mergetype=_merge_smallest(max(1, self.max_segments // 2), MERGE_BUDGET_DOCS))
        except BaseException:
            _cancel(writer)
            raise
        self.last_commit = time.time()
        self.commits += 1
        return True

    def clear(self) -> None:
        writer = self.ix.writer()
        try:
            writer.commit(mergetype=CLEAR)
        except BaseException:
            _cancel(writer)
            raise


def _cancel(writer: Any) -> None:
    """Cancel a writer whose commit failed. On a full disk cancel() itself can fail while closing
    the segment files; the Whoosh lock must be released anyway or every later commit would fail."""
    try:
        writer.cancel()
    except Exception as exc:
        log.debug("cancelling the failed writer also failed (%s); releasing its lock", exc)
        lock = getattr(writer, "writelock", None)
        if lock is not None:
            try:
                lock.release()
            except Exception:
                pass
        writer.is_closed = True


def _adding(segments: list[Any]) -> Callable[[Any, list[Any]], list[Any]]:
    """A Whoosh merge policy that merges nothing and appends segments built outside the writer."""

    def policy(writer: Any, existing: list[Any]) -> list[Any]:
        return [*existing, *segments]

    return policy


def _merge_smallest(target: int, budget: int) -> Callable[[Any, list[Any]], list[Any]]:
    """A Whoosh merge policy: drop fully deleted segments, then merge the smallest small segments
    (fewer than `budget` documents each) into one, as many as it takes to leave `target` small
    ones but not more than `budget` documents in all. Whoosh's MERGE_SMALL bounds neither the count
    (it leaves alone any segment past a Fibonacci threshold) nor the time (it may rewrite most of
    the index while every update waits). The merged segment is written by segments.py (a posting
    list at a time, not Whoosh's posting at a time) and takes the place of the first it replaces."""

    def policy(writer: Any, segments: list[Any]) -> list[Any]:
        from whoosh.reading import SegmentReader

        live = [segment for segment in segments if segment.doc_count() > 0]
        small = sorted((s for s in live if s.doc_count_all() < budget), key=lambda s: s.doc_count_all())
        merge, total = [], 0
        for segment in small[: max(0, len(small) - target + 1)]:
            if merge and total + segment.doc_count_all() > budget:
                break
            merge.append(segment)
            total += segment.doc_count_all()
        if len(merge) < 2:
            return live
        chosen = {id(segment) for segment in merge}
        in_order = [segment for segment in live if id(segment) in chosen]
        readers = [SegmentReader(writer.storage, writer.schema, segment) for segment in in_order]
        builder = SegmentBuilder(writer.schema, writer.storage.folder)
        try:
            builder.copy(readers)
            staged = builder.finish()
        except BaseException:
            builder.discard()
            raise
        finally:
            for reader in readers:
                reader.close()
        staged.move_into(writer.storage.folder)
        staged.discard()
        merged: list[Any] = []
        for segment in live:
            if id(segment) not in chosen:
                merged.append(segment)
            elif segment is in_order[0]:
                merged.append(staged.segment)
        return merged

    return policy


# --- status shared with readers ---------------------------------------------------------------

def write_status(index_dir: Path, status: dict[str, Any]) -> None:
    # Not fsynced: the status is advice for `searchd status`, rewritten after every commit, and
    # an fsync there would sit on the path of every update.
    _write_atomic(Path(index_dir) / STATUS, json.dumps(status, default=str), durable=False)


def read_status(index_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(index_dir) / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
