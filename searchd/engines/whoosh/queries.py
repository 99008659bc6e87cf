"""The Whoosh query classes searchd adds to Whoosh's own: a word scored with BM25F across the
text fields, a minimum-should-match conjunction, and a prefix whose expansion is bounded. The
numpy evaluator (evaluator.py) evaluates them; they carry no Whoosh matchers of their own."""

from __future__ import annotations

from whoosh import query as wq

from .ranking import Ranking

# Wildcard and fuzzy words expand to at most this many index terms: no query can take seconds.
MAX_EXPANSION = 64
# A prefix reads at most this many index terms (per field) to choose the most frequent ones.
MAX_PREFIX_SCAN = 1000


def min_match(queries: list[wq.Query], minimum: int, coordination: float = 0.0) -> wq.Query:
    if len(queries) == 1:
        return queries[0]
    if minimum >= len(queries):
        return wq.And(queries)
    if minimum <= 1 and not coordination:
        return wq.Or(queries)
    return MinimumMatch(queries, max(1, minimum), coordination=coordination)


class BM25FWord(wq.CompoundQuery):
    """One word in every text field, scored with BM25F (scoring.py): evaluated by the numpy
    evaluator; tests/whoosh_oracle.py gives it a Whoosh matcher to check that evaluator against."""

    JOINT = " F "

    def __init__(self, subqueries: list[wq.Query], ranking: "Ranking", boost: float = 1.0):
        super().__init__(subqueries, boost=boost)
        self.ranking = ranking

    def normalize(self) -> wq.Query:
        return self

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and getattr(other, "ranking", None) == self.ranking

    def __hash__(self) -> int:
        return super().__hash__()

    def requires(self) -> set:
        return set()


class FieldsOr(wq.Or):
    """One word in each text field. Always a lazy tree of union matchers: Whoosh's default for
    small segments reads every posting of every term into arrays up front, which costs more
    than it saves when most documents will never be scored against the top ten."""

    matcher_type = wq.Or.DEFAULT_MATCHER


class BoundedPrefix(wq.Prefix):
    """A prefix that expands to the MAX_EXPANSION most frequent of the first MAX_PREFIX_SCAN
    matching terms: `a*` on a big index must not turn into ten thousand term lookups."""

    def _btexts(self, ixreader):  # type: ignore[override]
        # Whoosh asks twice per search (size estimate, then matcher): expand once per reader.
        cached = self.__dict__.get("_expansion")
        if cached is not None and cached[0] is ixreader:
            return cached[1]
        found: list[tuple[int, bytes]] = []
        for count, (text, info) in enumerate(ixreader.iter_prefix(self.fieldname, self.text)):
            if count >= MAX_PREFIX_SCAN:
                break
            found.append((info.doc_frequency(), text))
        found.sort(key=lambda item: -item[0])
        field_type = ixreader.schema[self.fieldname]
        expansion = [field_type.to_bytes(text) for _, text in found[:MAX_EXPANSION]]
        self.__dict__["_expansion"] = (ixreader, expansion)
        return expansion


class MinimumMatch(wq.CompoundQuery):
    """Matches documents that match at least `minmatch` of the subqueries; scores like Or, times
    (matched / all) ** coordination. (Whoosh's Or takes a `minmatch` argument but does not
    implement it.) Not an Or subclass, so Whoosh's normalisation never merges it into an
    enclosing Or."""

    JOINT = " MM "

    def __init__(self, subqueries: list[wq.Query], minmatch: int = 1, boost: float = 1.0, coordination: float = 0.0):
        super().__init__(subqueries, boost=boost)
        self.minmatch = minmatch
        self.coordination = coordination

    def __eq__(self, other: object) -> bool:
        return (super().__eq__(other) and getattr(other, "minmatch", None) == self.minmatch
                and getattr(other, "coordination", None) == self.coordination)

    def __hash__(self) -> int:
        return hash((super().__hash__(), self.minmatch, self.coordination))

    def __repr__(self) -> str:
        return f"MinimumMatch({self.subqueries!r}, {self.minmatch})"

    def normalize(self) -> wq.Query:
        subs = [q.normalize() for q in self.subqueries]
        subs = [q for q in subs if q is not wq.NullQuery]
        if len(subs) < self.minmatch:
            return wq.NullQuery
        if len(subs) != len(self.subqueries):
            return min_match(subs, self.minmatch, self.coordination)
        return MinimumMatch(subs, self.minmatch, self.boost, self.coordination)

    def requires(self) -> set:
        return set()
