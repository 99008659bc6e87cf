"""Merging the big segments of an index into one, in a process of its own, while commits go on.

A search reads every segment: each query word costs a term look-up and a posting read per segment
and field. A bulk index leaves one segment per batch (eight on Reuters-21578), and the writer's
idle merge (writer.py) leaves segments past MERGE_BUDGET_DOCS alone, because merging them takes
seconds (Reuters: about 9) and the writer cannot commit while it merges. On one segment instead
of eight, a Reuters search costs 8 to 15% less CPU (benchmarks/segment_count.py).

So big segments are merged from a snapshot: a spawned process (no interpreter lock shared with the
writer, no fork of a process full of threads) copies the snapshot's live documents into a staged
segment, the writer goes on committing meanwhile, and a later commit swaps the staged segment in
for its sources, deleting from it what was deleted from them since the snapshot (an update is a
delete plus a new document elsewhere). Nothing else touches a segment being merged: the idle
merge works on small segments only, and a source that every document left meanwhile is still
accounted for.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

from ...processes import die_with_parent
from .segments import SegmentBuilder, StagedSegment
from .store import MERGE_BUDGET_DOCS

log = logging.getLogger("searchd.index")

# Big segments (MERGE_BUDGET_DOCS documents or more) an index may keep before they are merged.
MAX_BIG_SEGMENTS = 2
# A largest segment with this many times the documents of the other big ones together stays out
# of their merge: merging it again for every new batch would copy the whole index each time.
LARGEST_APART = 4


def choose(segments: list[Any]) -> list[Any]:
    """The segments to merge into one, in index order ([] when none is worth it)."""
    big = sorted((s for s in segments if s.doc_count_all() >= MERGE_BUDGET_DOCS and s.doc_count() > 0),
                 key=lambda s: s.doc_count(), reverse=True)
    if len(big) <= MAX_BIG_SEGMENTS:
        return []
    largest, rest = big[0], big[1:]
    chosen = rest if largest.doc_count() > LARGEST_APART * sum(s.doc_count() for s in rest) else big
    if len(chosen) < 2:
        return []
    names = {s.segment_id() for s in chosen}
    return [s for s in segments if s.segment_id() in names]


@dataclass
class Merged:
    staged: StagedSegment
    # Per source, its old document numbers -> the merged segment's (-1: deleted at the snapshot).
    renumbering: list[list[int]]


class BackgroundMerge:
    """One merge of a snapshot of `sources` (Whoosh segment objects of a table of contents read
    for it alone, so later commits do not change their deletions)."""

    def __init__(self, schema: Any, folder: str, sources: list[Any]):
        self.names = [source.segment_id() for source in sources]
        self.documents = sum(source.doc_count() for source in sources)
        self._deleted = [frozenset(source.deleted_docs()) for source in sources]
        context = multiprocessing.get_context("spawn")
        self._results, sending = context.Pipe(duplex=False)
        self._process = context.Process(target=_merge_in_child, name="searchd-merge", daemon=True,
                                         args=(sending, pickle.dumps(schema), folder, sources, os.getpid()))
        self._process.start()
        sending.close()
        self._outcome: Merged | BaseException | None = None

    def done(self) -> bool:
        if self._outcome is None and (self._results.poll() or not self._process.is_alive()):
            self._outcome = self._receive()
        return self._outcome is not None

    def _receive(self) -> Merged | BaseException:
        try:
            outcome = self._results.recv()
        except (EOFError, OSError):
            self._process.join(5)
            return RuntimeError(f"the merge process exited with status {self._process.exitcode}")
        self._process.join(5)
        return outcome

    def result(self) -> Merged:
        """The staged segment (raises what the merge raised); call once done()."""
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        assert self._outcome is not None
        return self._outcome

    def swap_policy(self, merged: Merged) -> Callable[[Any, list[Any]], list[Any]]:
        """A Whoosh merge policy for the commit that publishes the merge: the merged segment takes
        the place of the first of its sources, carrying the deletions made since the snapshot."""
        names = set(self.names)

        def policy(writer: Any, segments: list[Any]) -> list[Any]:
            current = {segment.segment_id(): segment for segment in segments}
            segment = merged.staged.segment
            for name, before, numbers in zip(self.names, self._deleted, merged.renumbering):
                source = current.get(name)
                # A source no longer listed lost every document meanwhile.
                gone = range(len(numbers)) if source is None else set(source.deleted_docs()) - before
                for old in gone:
                    if numbers[old] >= 0:
                        segment.delete_document(numbers[old])
            merged.staged.move_into(writer.storage.folder)
            kept: list[Any] = []
            for existing in segments:
                if existing.segment_id() not in names:
                    kept.append(existing)
                elif segment not in kept:
                    kept.append(segment)
            return kept if segment in kept else [*kept, segment]

        return policy

    def cancel(self) -> None:
        """Stop the merge and remove what it staged."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)
        if isinstance(self._outcome, Merged):
            self._outcome.staged.discard()
        self._results.close()


def _merge_in_child(results: Connection, schema: bytes, folder: str, sources: list[Any], parent: int) -> None:
    die_with_parent(parent)
    from whoosh.filedb.filestore import FileStorage
    from whoosh.reading import SegmentReader

    try:
        storage = FileStorage(folder)
        loaded = pickle.loads(schema)
        readers = [SegmentReader(storage, loaded, source) for source in sources]
        builder = SegmentBuilder(loaded, folder)
        try:
            builder.copy(readers)
            staged = builder.finish()
        finally:
            for reader in readers:
                reader.close()
        outcome: Merged | BaseException = Merged(staged, builder.renumbering())
    except BaseException as exc:  # sent back whole: the writer logs it and tries again later
        outcome = RuntimeError(f"{type(exc).__name__}: {exc}")
    results.send(outcome)
    results.close()
