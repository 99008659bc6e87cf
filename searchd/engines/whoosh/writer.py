"""The one writer of a Whoosh index: open it (or build a fresh one beside an index it cannot read
or of an older schema, swapped in once complete), apply change batches as commits, merge small
segments when idle."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from whoosh import index as whoosh_index
from whoosh.query import Prefix
from whoosh.searching import Searcher as WhooshSearcher

from ...articles import Article
from ..base import ChangeBatch, Durations, EngineWriter, Indexed, IndexStats, Interrupted
from .schema import SCHEMA_VERSION, build_schema, to_document
from .merging import BackgroundMerge, choose
from .segments import SegmentBuilder, StagedSegment, staging_root
from .store import (CURRENT, META, MERGE_BUDGET_DOCS, RefreshSafeIndex, current_dir, index_stats, next_dir_name,
                    read_manifest, read_meta, storage, write_atomic, write_status, WriterLock)

log = logging.getLogger("searchd.index")

# Past this many small segments the writer merges the smallest ones when it is idle (never on a
# commit that someone is waiting for: Whoosh's merge-on-commit is where multi-second latencies come
# from). A merge copies at most MERGE_BUDGET_DOCS documents, well under a second: Whoosh merges at
# a few milliseconds per document, and the writer cannot take updates while it merges. Segments
# past the budget (the batches of a bulk index) are left as they are.
MAX_SEGMENTS = 8
# Past max_segments * this, merge even while busy (constant churn).
HARD_SEGMENT_FACTOR = 2
# After a background merge failed, seconds before another may start.
BACKGROUND_RETRY = 60.0


class WhooshWriter(EngineWriter):
    """The one writer. Opens (or creates, or rebuilds) the live index and applies change batches.

    An index that cannot be opened or read, or was written with another schema version, is not
    touched: a fresh one is built beside it and swapped in by `finish_rebuild()` once it holds the
    folder. Only the holder of the WriterLock may create one (WhooshEngine.open_writer takes it).
    """

    def __init__(self, index_dir: Path, max_segments: int = MAX_SEGMENTS, lock: WriterLock | None = None):
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.max_segments = max_segments
        self._lock = lock
        self.rebuild_reason: str | None = None
        self._old_dir: Path | None = None
        self.ix = self._open()
        self._remove_unpublished(keep=Path(self.ix.storage.folder))
        self.last_commit: float | None = None
        self.commits = 0
        self.commit_seconds = Durations()
        self._lookup: Any = None  # a reader kept across commits to find the documents to replace
        self._background: BackgroundMerge | None = None  # big segments being merged (merging.py)
        self._background_after = 0.0  # after a failed one, no other before this (monotonic)
        # Set when the process is stopping: a large batch is then abandoned between documents
        # (SIGTERM must not wait for thousands of documents to be analysed).
        self.stop_requested: threading.Event | None = None

    def _open(self) -> whoosh_index.Index:
        directory = current_dir(self.index_dir)
        if directory is not None and directory.exists():
            meta = read_meta(directory)
            try:
                ix = RefreshSafeIndex(storage(directory))
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
        directory = self.index_dir / next_dir_name(self.index_dir)
        directory.mkdir()
        whoosh_index.create_in(str(directory), build_schema())
        ix = RefreshSafeIndex(storage(directory))
        write_atomic(directory / META, json.dumps({"schema_version": SCHEMA_VERSION, "created": time.time()}))
        if publish:
            write_atomic(self.index_dir / CURRENT, directory.name + "\n")
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
        write_atomic(self.index_dir / CURRENT, new_dir.name + "\n")
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

    def indexed(self) -> dict[str, Indexed]:
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
        started = time.perf_counter()
        staged: list[StagedSegment] = list(batch.prepared)  # type: ignore[arg-type]
        try:
            upserts = batch.unique_upserts()
            built = self._build(upserts) if upserts else None
            if built is not None:
                staged.append(built)
            # Every upsert replaces its older version, also one Whoosh refused to index: the
            # index must not keep showing text the file no longer has.
            deletes = [*batch.deletes, *(article.id for article in upserts)]
            if batch.replace_prepared:
                deletes += [doc_id for segment in batch.prepared for doc_id in segment.ids]
            self._commit(deletes, batch.delete_prefixes, staged)
        finally:
            for segment in staged:
                segment.discard()
        self._committed(started)

    def builder(self) -> "ArticleSegments":
        return ArticleSegments(pickle.dumps(self.ix.schema), self.ix.storage.folder)

    def publish_status(self, status: dict[str, Any]) -> None:
        write_status(self.index_dir, status)

    def _build(self, articles: list[Article]) -> StagedSegment | None:
        builder = SegmentBuilder(self.ix.schema, self.ix.storage.folder)
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
        """Close the reader kept for finding documents to replace, and release the writer lock
        (the index stays as it is)."""
        self._forget_lookup()
        if self._background is not None:
            self._background.cancel()
            self._background = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _forget_lookup(self) -> None:
        if self._lookup is not None:
            try:
                self._lookup.close()
            except Exception:
                pass
            self._lookup = None

    def _small_segments(self) -> int:
        return sum(1 for segment in self.ix._segments() if segment.doc_count_all() < MERGE_BUDGET_DOCS)

    def merge_urgent(self, stats: IndexStats) -> bool:
        """Under constant churn (never idle), merge anyway past twice max_segments small ones."""
        return stats.small_segments > self.max_segments * HARD_SEGMENT_FACTOR

    @property
    def merging(self) -> bool:
        return self._background is not None

    def merge_ready(self) -> bool:
        return self._background is not None and self._background.done()

    def merge(self) -> bool:
        """Upkeep when idle: publish a finished background merge of big segments; when there are
        more than max_segments small segments, merge the smallest ones, at most MERGE_BUDGET_DOCS
        documents in all; start a background merge when big segments pile up."""
        changed = self._finish_background()
        if self._small_segments() > self.max_segments:
            keep = frozenset(self._background.names if self._background else ())
            self._commit_segments(_merge_smallest(max(1, self.max_segments // 2), MERGE_BUDGET_DOCS, keep), limitmb=128)
            changed = True
        self._start_background()
        return changed

    def _commit_segments(self, policy: Callable[[Any, list[Any]], list[Any]], limitmb: int) -> None:
        """A commit that changes only which segments make the index (a Whoosh merge policy)."""
        started = time.perf_counter()
        writer = self.ix.writer(limitmb=limitmb)
        try:
            writer.commit(mergetype=policy)
        except BaseException:
            _cancel(writer)
            raise
        self._committed(started)

    def _start_background(self) -> None:
        if self._background is not None or self.rebuilding or time.monotonic() < self._background_after:
            return
        sources = choose(self.ix._read_toc().segments)  # objects of their own: commits leave them be
        if sources:
            self._background = BackgroundMerge(self.ix.schema, self.ix.storage.folder, sources)
            log.info("merging %d segments (%d documents) in the background", len(sources), self._background.documents)

    def _finish_background(self) -> bool:
        background = self._background
        if background is None or not background.done():
            return False
        self._background = None
        try:
            merged = background.result()
        except Exception as exc:
            self._background_after = time.monotonic() + BACKGROUND_RETRY
            background.cancel()
            raise RuntimeError(f"background merge of {len(background.names)} segments failed: {exc}") from None
        try:
            self._commit_segments(background.swap_policy(merged), limitmb=32)
        finally:
            merged.staged.discard()
        log.info("published the merge of %d segments (%d documents)", len(background.names), background.documents)
        return True

    def _committed(self, started: float) -> None:
        self.last_commit = time.time()
        self.commits += 1
        self.commit_seconds.observe(time.perf_counter() - started)


@dataclass(frozen=True)
class ArticleSegments:
    """Makes segment builders in worker processes: the schema travels pickled, the segment is
    staged inside the index folder until the writer's commit publishes it."""

    schema: bytes
    folder: str

    def __call__(self) -> "ArticleSegment":
        return ArticleSegment(SegmentBuilder(pickle.loads(self.schema), self.folder))


class ArticleSegment:
    """A BatchBuilder: articles in, one staged segment out."""

    def __init__(self, builder: SegmentBuilder):
        self._builder = builder

    def add(self, article: Article) -> None:
        self._builder.add(to_document(article))

    def __len__(self) -> int:
        return len(self._builder)

    def finish(self) -> StagedSegment:
        return self._builder.finish()

    def discard(self) -> None:
        self._builder.discard()


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


def _merge_smallest(target: int, budget: int, keep: frozenset[str] = frozenset()) -> Callable[[Any, list[Any]], list[Any]]:
    """A Whoosh merge policy: drop fully deleted segments, then merge the smallest small segments
    (fewer than `budget` documents each) into one, as many as it takes to leave `target` small
    ones but not more than `budget` documents in all. Whoosh's MERGE_SMALL bounds neither the count
    (it leaves alone any segment past a Fibonacci threshold) nor the time (it may rewrite most of
    the index while every update waits). The merged segment is written by segments.py (a posting
    list at a time, not Whoosh's posting at a time) and takes the place of the first it replaces."""

    def policy(writer: Any, segments: list[Any]) -> list[Any]:
        from whoosh.reading import SegmentReader

        # A segment a background merge reads stays, even with no document left: the merge's
        # process may not have opened its file yet.
        live = [segment for segment in segments if segment.doc_count() > 0 or segment.segment_id() in keep]
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
