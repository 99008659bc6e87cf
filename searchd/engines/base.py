"""The engine seam: what the daemon, the search service, the web app and the CLI need of a search
engine, in plain data. An engine has two sides:

- the write side (`EngineWriter`, one per source, only in the daemon or `searchd index`): apply a
  batch of upserted articles and deleted ids as one commit, report what is indexed (ids with
  size, mtime and checksum) for reconcile, publish the daemon's status;
- the read side (`EngineReader`, any number, in any process): a search request (searchd's own
  query tree, filters, sort, a window of hits) in, hits with snippets, total and facets out;
  documents, similar articles, completions, spelling corrections, status.

Nothing above this module knows which engine runs: each engine lives in its own package
(`engines/whoosh`, `engines/typesense`) and `engines.open_engine` picks one from the settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Hashable, Protocol

from ..articles import Article
from ..query import All, Any as AnyOf, Not

QueryTree = All | AnyOf | Not


class IndexBusy(Exception):
    """Another process already writes to this index (one writer per source)."""

    def __init__(self, where: str, holder: str, instead: str = "point this one at another --index directory"):
        super().__init__(f"another searchd process already writes to {where} ({holder}); stop it first, or {instead}")
        self.holder = holder


class IndexMissing(Exception):
    """Nothing to read yet: no index has been built (HTTP 503)."""


class Interrupted(Exception):
    """A large batch was abandoned because the process is stopping; the index keeps its last
    commit and the next reconcile redoes the work."""


class EngineUnavailable(Exception):
    """The engine cannot be reached now (a server down, a cluster without a leader): the caller
    retries, and readers answer 503."""


# --- the write side -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Indexed:
    """What the index remembers of a file, to tell whether the file changed since."""

    size: int
    mtime_ns: int
    checksum: str


class Prepared(Protocol):
    """Articles an engine prepared in a worker process (a segment built, documents encoded),
    waiting for the commit that publishes them."""

    ids: tuple[str, ...]

    def discard(self) -> None: ...


class BatchBuilder(Protocol):
    """Prepares articles in a worker process. `add` raises for an article the engine refuses
    (that article only is skipped)."""

    def add(self, article: Article) -> None: ...

    def __len__(self) -> int: ...

    def finish(self) -> Prepared: ...

    def discard(self) -> None: ...


@dataclass
class ChangeBatch:
    """One commit's worth of work: articles to add or replace, ids and folders to delete, and
    articles prepared by worker processes, which replace any indexed article with the same id."""

    upserts: list[Article] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    delete_prefixes: list[str] = field(default_factory=list)
    prepared: list[Prepared] = field(default_factory=list)
    # False when the caller lists in `deletes` every indexed id its prepared articles replace
    # (a bulk reconcile knows them): spares a lookup per new article.
    replace_prepared: bool = True

    def __len__(self) -> int:
        return (len(self.upserts) + len(self.deletes) + len(self.delete_prefixes)
                + sum(len(p.ids) for p in self.prepared))

    def unique_upserts(self) -> list[Article]:
        """One article per id, the last one wins."""
        return list({article.id: article for article in self.upserts}.values())


@dataclass(frozen=True)
class IndexStats:
    documents: int
    generation: int
    last_commit: float | None
    location: str  # where the index lives: a directory name, a collection
    schema_version: int
    segments: int = 0
    small_segments: int = 0  # what merging would work on (engines that merge)


@dataclass
class Durations:
    """How long something took, counted in fixed buckets (a Prometheus histogram's shape), small
    enough to publish with the daemon's status after every commit."""

    bounds: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
    counts: list[int] = field(default_factory=list)  # per bound, then one for "more"
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[next((i for i, bound in enumerate(self.bounds) if seconds <= bound), len(self.bounds))] += 1
        self.total += seconds

    def to_json(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": self.counts or [0] * (len(self.bounds) + 1),
                "sum": round(self.total, 6)}


class EngineWriter(ABC):
    """The one writer of a source. Counts its commits (and, engines that time them, how long
    they took); `stop_requested`, when set, lets a long batch give up between documents (a
    stopping process must not index thousands first)."""

    commits: int = 0
    last_commit: float | None = None
    commit_seconds: Durations | None = None
    rebuild_reason: str | None = None
    stop_requested: Any = None  # a threading.Event

    @abstractmethod
    def indexed(self) -> dict[str, Indexed]:
        """id -> what is indexed of it, for every document of this source."""

    @abstractmethod
    def apply(self, batch: ChangeBatch) -> None:
        """Apply the batch as one commit; on failure nothing of it is visible and the caller may
        retry the same batch."""

    @abstractmethod
    def builder(self) -> Callable[[], BatchBuilder]:
        """A picklable factory of builders for worker processes."""

    @abstractmethod
    def stats(self) -> IndexStats: ...

    def merge(self) -> bool:
        """Upkeep (merging segments) if worthwhile, called when the writer is idle; True when
        something changed. Engines that need none do nothing."""
        return False

    def merge_urgent(self, stats: IndexStats) -> bool:
        """Whether upkeep should run even though work is waiting (constant churn)."""
        return False

    @property
    def merging(self) -> bool:
        """Whether a merge runs in the background (its result not yet published)."""
        return False

    def merge_ready(self) -> bool:
        """Whether a background merge has finished: `merge()` publishes it."""
        return False

    @property
    def rebuilding(self) -> bool:
        return self.rebuild_reason is not None

    def finish_rebuild(self) -> None:
        """Make a rebuilt index the live one, once it holds the whole folder."""

    @abstractmethod
    def publish_status(self, status: dict[str, Any]) -> None:
        """Make the daemon's status readable by readers in other processes."""

    def close(self) -> None:
        """Release what the writer holds (the index stays as it is)."""


# --- the read side --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    id: str
    title: str
    summary: str
    snippet: str  # HTML: escaped text with <mark> around matched words
    score: float
    date: str | None
    category: str
    path: str
    tags: list[str] = field(default_factory=list)
    # How many other identical or near-identical articles were folded into this hit.
    duplicates: int = 0


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    summary: str
    subtitle: str
    body: list[str]
    date: str | None
    category: str
    tags: list[str]
    url: str
    author: str
    format: str
    size: int


@dataclass(frozen=True)
class EngineQuery:
    """What to find and which window of the ranked, near-duplicate-folded results to return."""

    tree: QueryTree
    offset: int = 0
    limit: int = 10
    sort: str = "relevance"  # or "date": newest first
    category: str = ""
    date_from: datetime | None = None
    date_to: datetime | None = None
    snippets: bool = True
    facets: bool = True


@dataclass(frozen=True)
class EngineResults:
    total: int  # distinct results (near-duplicates folded): what paging reaches
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    # What the engine read differently from the tree (e.g. "only very common words").
    notice: str = ""
    # Of `total`, those with all the words of a keyword query, ranked before the others, which
    # have some of them (None: every result matches the query as read); and whether `hits`
    # shows any of the others.
    complete: int | None = None
    partial: bool = False

    @property
    def matched(self) -> int:
        """Results that match the query as read (all the words of a keyword query)."""
        return self.total if self.complete is None else self.complete


class EngineReader(ABC):
    """Thread-safe; any number of them, in any process."""

    @abstractmethod
    def generation(self) -> Hashable:
        """Changes whenever what a search returns may have changed (caches key on it)."""

    @abstractmethod
    def search(self, query: EngineQuery) -> EngineResults: ...

    @abstractmethod
    def count(self, tree: QueryTree) -> int:
        """How many documents match (did-you-mean compares readings by it)."""

    @abstractmethod
    def document(self, doc_id: str) -> Document | None: ...

    @abstractmethod
    def similar(self, doc_id: str, size: int) -> list[Hit]:
        """Articles like `doc_id` (itself and its copies excluded)."""

    @abstractmethod
    def complete(self, prefix: str, size: int) -> list[str]:
        """Indexed words starting with `prefix`, most frequent first."""

    @abstractmethod
    def correct(self, word: str) -> str | None:
        """The indexed word a misspelt `word` most likely stands for, or None."""

    @abstractmethod
    def near_words(self, word: str, distance: int) -> list[str]:
        """Indexed words within `distance` edits of `word` (what `word~` matches)."""

    @abstractmethod
    def document_count(self) -> int: ...

    @abstractmethod
    def indexed(self) -> dict[str, Indexed]:
        """id -> what is indexed of it, as readers see the index now (for checks and tests:
        the writer's reconcile asks its own side)."""

    @abstractmethod
    def stats(self) -> IndexStats:
        """Raises IndexMissing when there is no index yet."""

    @abstractmethod
    def daemon_status(self) -> dict[str, Any]:
        """What the writer last published ({} when it never did)."""

    def warm_up(self) -> bool:
        """Load what the first searches would otherwise wait for; False when there is nothing to
        load yet (no index: a first bulk index still running), to be asked again later."""
        return True

    def nodes(self) -> list[dict[str, Any]]:
        """The servers of a clustered engine, each {url, ok, role} ([] for an embedded one)."""
        return []
