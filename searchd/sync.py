"""Reconcile: make the index equal to the folder.

Scan the folder, diff it against what the engine says is indexed, then add, update and delete in
batches. Used at start-up (catching changes made while no daemon ran), by the periodic rescan,
and by `searchd index`. Running it twice in a row changes nothing the second time. Many files
are parsed, and prepared for the engine (a Whoosh segment built), in worker processes.
"""

from __future__ import annotations

import logging
import os
import multiprocessing
import time
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from .articles import Article, FileStamp, Skip, read_article
from .engines import Engine
from .engines.base import BatchBuilder, ChangeBatch, EngineWriter, Indexed, Prepared
from .folder import FileRules, walk
from .processes import die_with_parent

log = logging.getLogger("searchd.sync")

# (files committed, files to commit): called often (also to let the caller stop a long run).
Progress = Callable[[int, int], None]

# Below this many files, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 400
_WORKERS = 2
# parse_all: files a worker parses per task, and tasks submitted ahead of the consumer.
_CHUNK = 64
_AHEAD = 8
# A bulk reconcile's workers each prepare whole batches (a Whoosh segment each); a batch holds at
# most this many times `batch_size` articles or this many bytes of files (what a worker keeps in
# memory), so 21,577 Reuters articles become 8 segments.
_MAX_BATCH_FACTOR = 4
_MAX_BATCH_BYTES = 16 << 20


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # id -> reason
    seconds: float = 0.0
    bytes_read: int = 0

    @property
    def changed(self) -> int:
        return self.added + self.updated + self.deleted

    def summary(self) -> str:
        line = (
            f"{self.added} added, {self.updated} updated, {self.deleted} deleted, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped"
        )
        if self.skipped:
            reasons = Counter(_reason_kind(reason) for reason in self.skipped.values())
            line += " (" + ", ".join(f"{count} {kind}" for kind, count in reasons.most_common()) + ")"
        return line + f" in {self.seconds:.1f}s"


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0]


@dataclass(frozen=True)
class Plan:
    read: list[tuple[str, Path]]  # new or changed on disk: must be parsed
    deletes: list[str]
    unchanged: int


def plan(indexed: dict[str, Indexed], on_disk: dict[str, tuple[Path, FileStamp]]) -> Plan:
    read = [
        (article_id, path)
        for article_id, (path, stamp) in on_disk.items()
        if (known := indexed.get(article_id)) is None
        or known.size != stamp.size
        or known.mtime_ns != stamp.mtime_ns
    ]
    deletes = sorted(indexed.keys() - on_disk.keys())
    return Plan(read=sorted(read), deletes=deletes, unchanged=len(on_disk) - len(read))


@dataclass(frozen=True)
class Parsed:
    article_id: str
    article: Article | None
    reason: str = ""


def parse_one(root: Path, path: Path, article_id: str, max_bytes: int) -> Parsed:
    try:
        return Parsed(article_id, read_article(root, path, max_bytes))
    except Skip as skip:
        return Parsed(article_id, None, skip.reason)
    except Exception as exc:  # a parser bug on one file must not stop the other 20,000
        log.exception("unexpected error parsing %s", article_id)
        return Parsed(article_id, None, f"parser error ({type(exc).__name__})")


def _parse_chunk(args: tuple[Path, list[tuple[str, Path]], int]) -> list[Parsed]:
    root, items, max_bytes = args
    return [parse_one(root, path, article_id, max_bytes) for article_id, path in items]


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """Fresh interpreters, not forks: the daemon forks from a process full of threads (observer,
    web server), and a fork can inherit a lock some other thread held at that instant."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def parse_all(root: Path, items: list[tuple[str, Path]], max_bytes: int) -> Iterator[Parsed]:
    """Parse files, on every core when there are many; results keep the input order."""
    if len(items) < _PARALLEL_THRESHOLD:
        for article_id, path in items:
            yield parse_one(root, path, article_id, max_bytes)
        return
    chunks = ((root, items[i:i + _CHUNK], max_bytes) for i in range(0, len(items), _CHUNK))
    with _worker_pool(_WORKERS) as pool:
        # A sliding window of submitted chunks (Executor.map would submit them all at once).
        window = deque(pool.submit(_parse_chunk, chunk) for chunk in islice(chunks, _AHEAD))
        while window:
            parsed = window.popleft().result()
            window.extend(pool.submit(_parse_chunk, chunk) for chunk in islice(chunks, 1))
            yield from parsed


# --- preparing batches in worker processes --------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What the reconcile needs to know of one file a worker read: indexed, or skipped why."""

    article_id: str
    reason: str = ""  # set when the file was skipped
    size: int = 0
    checksum: str = ""
    warning: str = ""


@dataclass(frozen=True)
class _BatchTask:
    root: Path
    items: list[tuple[str, Path]]
    max_bytes: int
    builder: Callable[[], BatchBuilder]  # the engine's, picklable


def _prepare_batch(task: _BatchTask) -> tuple[list[Outcome], Prepared | None]:
    """In a worker: parse the files and prepare them for the engine as one batch."""
    builder = task.builder()
    outcomes: list[Outcome] = []
    try:
        for article_id, path in task.items:
            parsed = parse_one(task.root, path, article_id, task.max_bytes)
            article = parsed.article
            if article is None:
                outcomes.append(Outcome(article_id, reason=parsed.reason))
                continue
            try:
                builder.add(article)
            except Exception as exc:  # a value the engine refuses: skip this one, keep the rest
                log.exception("cannot index %s", article_id)
                outcomes.append(Outcome(article_id, reason=f"cannot be indexed ({type(exc).__name__})"))
                continue
            outcomes.append(Outcome(article_id, size=article.size, checksum=article.checksum,
                                    warning=article.extra.get("warning", "")))
        prepared = builder.finish() if len(builder) else None
    except BaseException:
        builder.discard()
        raise
    if prepared is None:
        builder.discard()
    return outcomes, prepared


def _batch_tasks(writer: EngineWriter, root: Path, items: list[tuple[str, Path, int]],
                 max_bytes: int, batch_size: int) -> Iterator[_BatchTask]:
    """Consecutive runs of files, one prepared batch each: the first of half a batch (the first
    results are searchable quickly), then doubling up to _MAX_BATCH_FACTOR batches or
    _MAX_BATCH_BYTES of files, whichever comes first (a worker holds one batch in memory)."""
    builder = writer.builder()
    limit = max(1, batch_size // 2)
    run: list[tuple[str, Path]] = []
    run_bytes = 0
    for article_id, path, size in items:
        run.append((article_id, path))
        run_bytes += size
        if len(run) >= limit or run_bytes >= _MAX_BATCH_BYTES:
            yield _BatchTask(root, run, max_bytes, builder)
            run, run_bytes = [], 0
            limit = min(limit * 2, batch_size * _MAX_BATCH_FACTOR)
    if run:
        yield _BatchTask(root, run, max_bytes, builder)


def _prepared_in_workers(writer: EngineWriter, root: Path, items: list[tuple[str, Path, int]], max_bytes: int,
                         batch_size: int, waiting: Callable[[], None]) -> Iterator[tuple[list[Outcome], Prepared | None]]:
    """Batches prepared by _WORKERS processes, in the order of `items`. `waiting` is called about
    twice a second while none is ready (progress reports; raising there stops everything)."""
    tasks = _batch_tasks(writer, root, items, max_bytes, batch_size)
    pool = _worker_pool(_WORKERS)
    window: deque[Future] = deque(pool.submit(_prepare_batch, task) for task in islice(tasks, _WORKERS + 1))
    try:
        while window:
            while True:
                try:
                    result = window[0].result(timeout=0.5)
                    break
                except FutureTimeout:
                    waiting()
            window.popleft()
            window.extend(pool.submit(_prepare_batch, task) for task in islice(tasks, 1))
            yield result
    except BaseException:
        # Stopping (or a failed commit): do not wait for batches nobody will publish.
        for future in window:
            future.cancel()
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        for future in window:
            if future.done() and not future.cancelled() and future.exception() is None:
                prepared = future.result()[1]
                if prepared is not None:
                    prepared.discard()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- the reconcile ---------------------------------------------------------------------------------

def reconcile(
    writer: EngineWriter,
    root: Path,
    rules: FileRules,
    max_bytes: int,
    batch_size: int = 1000,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> SyncReport:
    started = time.monotonic()
    root = Path(root)
    report = SyncReport()
    indexed = writer.indexed()
    on_disk = {article_id: (path, stamp) for article_id, path, stamp in walk(root, rules)}
    work = plan(indexed, on_disk)
    report.unchanged = work.unchanged
    total = len(work.read) + len(work.deletes)
    done = 0

    def tell() -> None:
        if progress:
            progress(done, total)

    tell()
    if work.deletes:
        writer.apply(ChangeBatch(deletes=list(work.deletes)))
        report.deleted = len(work.deletes)
        done += len(work.deletes)
        tell()

    def account(outcome: Outcome, batch: ChangeBatch) -> bool:
        """Count one file in the report; True when it is (to be) indexed."""
        known = indexed.get(outcome.article_id)
        if outcome.reason:
            report.skipped[outcome.article_id] = outcome.reason
            log.warning("skipped %s: %s", outcome.article_id, outcome.reason)
            if on_skip:
                on_skip(outcome.article_id, outcome.reason)
            if known is not None:  # it was an article and is not one any more
                batch.deletes.append(outcome.article_id)
                report.deleted += 1
            return False
        if outcome.warning:
            log.warning("%s: %s", outcome.article_id, outcome.warning)
        report.bytes_read += outcome.size
        if known is not None and not batch.replace_prepared:
            batch.deletes.append(outcome.article_id)
        if known is None:
            report.added += 1
        elif known.checksum == outcome.checksum:
            report.unchanged += 1  # touched, same bytes: refresh the stamp only
        else:
            report.updated += 1
        return True

    if len(work.read) >= _PARALLEL_THRESHOLD:
        items = [(article_id, path, on_disk[article_id][1].size) for article_id, path in work.read]
        for outcomes, prepared in _prepared_in_workers(writer, root, items, max_bytes, batch_size, tell):
            batch = ChangeBatch(prepared=[prepared] if prepared is not None else [], replace_prepared=False)
            for outcome in outcomes:
                account(outcome, batch)
            writer.apply(batch)
            done += len(outcomes)
            tell()
    else:
        batch = ChangeBatch()
        read = 0  # files parsed since the last commit: `done` counts what is searchable
        for parsed in parse_all(root, work.read, max_bytes):
            article = parsed.article
            outcome = (Outcome(parsed.article_id, reason=parsed.reason) if article is None else
                       Outcome(article.id, size=article.size, checksum=article.checksum,
                               warning=article.extra.get("warning", "")))
            if account(outcome, batch):
                batch.upserts.append(article)
            read += 1
            if len(batch) >= batch_size:
                writer.apply(batch)
                batch = ChangeBatch()
                done, read = done + read, 0
            tell()
        writer.apply(batch)
        done += read
        tell()
    report.seconds = time.monotonic() - started
    return report


def index_once(engine: Engine, root: Path, rules: FileRules, max_bytes: int, batch_size: int = 1000,
               progress: Progress | None = None) -> SyncReport:
    """Bring the engine's index in line with the folder once, as the only writer (what `searchd
    index` does; a no-op when nothing changed since)."""
    writer = engine.open_writer()
    try:
        report = reconcile(writer, root, rules, max_bytes, batch_size=batch_size, progress=progress)
        writer.finish_rebuild()
    finally:
        writer.close()
    return report
