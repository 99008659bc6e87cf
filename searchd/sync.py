"""Reconcile: make the index equal to the folder.

Scan the folder, diff it against the manifest of what is indexed, then add, update and delete in
batches. Used at start-up (catching changes made while no daemon ran), by the periodic rescan,
and by `searchd index`. Running it twice in a row changes nothing the second time.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from .articles import Article, FileStamp, Skip, read_article
from .folder import FileRules, walk
from .index import ChangeBatch, Indexed, IndexWriter

log = logging.getLogger("searchd.sync")

Progress = Callable[[int, int], None]

# Below this many files, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 400
_CHUNK = 64
# Chunks parsed ahead of the writer. The writer (analysis and postings, one process) is several
# times slower than parsing, so without a bound every parsed article of a 100,000-file folder
# would wait in memory.
_AHEAD = 8
# A bulk reconcile commits its first batch at `batch_size` (the first results show up quickly)
# and doubles each following batch up to this many times `batch_size`: 21,577 Reuters articles
# become 5 segments instead of 22 (no merge needed afterwards, faster queries, a smaller index),
# while at most this many parsed articles are held in memory at once.
_MAX_BATCH_FACTOR = 8


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


def parse_all(root: Path, items: list[tuple[str, Path]], max_bytes: int) -> Iterator[Parsed]:
    """Parse files, on every core when there are many; results keep the input order."""
    if len(items) < _PARALLEL_THRESHOLD:
        for article_id, path in items:
            yield parse_one(root, path, article_id, max_bytes)
        return
    chunks = ((root, items[i:i + _CHUNK], max_bytes) for i in range(0, len(items), _CHUNK))
    with ProcessPoolExecutor(max_workers=2) as pool:
        # A sliding window of submitted chunks (Executor.map would submit them all at once).
        window = deque(pool.submit(_parse_chunk, chunk) for chunk in islice(chunks, _AHEAD))
        while window:
            parsed = window.popleft().result()
            window.extend(pool.submit(_parse_chunk, chunk) for chunk in islice(chunks, 1))
            yield from parsed


def reconcile(
    writer: IndexWriter,
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
    indexed = writer.manifest()
    on_disk = {article_id: (path, stamp) for article_id, path, stamp in walk(root, rules)}
    work = plan(indexed, on_disk)
    report.unchanged = work.unchanged
    total = len(work.read) + len(work.deletes)
    done = 0
    if progress:
        progress(0, total)

    batch = ChangeBatch(deletes=list(work.deletes))
    report.deleted = len(work.deletes)
    done += len(work.deletes)
    limit = batch_size
    for parsed in parse_all(root, work.read, max_bytes):
        known = indexed.get(parsed.article_id)
        if parsed.article is None:
            report.skipped[parsed.article_id] = parsed.reason
            log.warning("skipped %s: %s", parsed.article_id, parsed.reason)
            if on_skip:
                on_skip(parsed.article_id, parsed.reason)
            if known is not None:  # it was an article and is not one any more
                batch.deletes.append(parsed.article_id)
                report.deleted += 1
        else:
            article = parsed.article
            warning = article.extra.get("warning")
            if warning:
                log.warning("%s: %s", article.id, warning)
            report.bytes_read += article.size
            if known is None:
                report.added += 1
            elif known.checksum == article.checksum:
                report.unchanged += 1  # touched, same bytes: refresh the stamp only
            else:
                report.updated += 1
            batch.upserts.append(article)
        done += 1
        if len(batch) >= limit:
            writer.apply(batch)
            batch = ChangeBatch()
            limit = min(limit * 2, batch_size * _MAX_BATCH_FACTOR)
        if progress:
            progress(done, total)
    writer.apply(batch)
    report.seconds = time.monotonic() - started
    return report
