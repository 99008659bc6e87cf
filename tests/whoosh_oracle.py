"""Whoosh matchers for searchd's own query classes: the oracle the numpy evaluator is checked
against (tests/test_engine.py runs the same query through Whoosh's searcher and through the
evaluator and compares documents and scores). Production never runs Whoosh's matchers, so they
live here, and `install()` gives the query classes their `matcher` methods for the tests only.
"""

from __future__ import annotations

from typing import Any, Iterator

from whoosh.matching import mcore

from searchd.engines.whoosh import scoring
from searchd.engines.whoosh.queries import BM25FWord, MinimumMatch


def install() -> None:
    BM25FWord.matcher = _bm25f_word_matcher  # type: ignore[method-assign]
    MinimumMatch._matcher = _minimum_match_matcher  # type: ignore[method-assign]


def _bm25f_word_matcher(self: BM25FWord, searcher: Any, context: Any = None) -> mcore.Matcher:
    parent = searcher.get_parent()
    weights = self.ranking.weights()
    children = []
    frequency = 0
    for term in self.subqueries:
        matcher = term.matcher(searcher, context)
        if not matcher.is_active():
            continue
        fieldname = term.fieldname
        frequency = max(frequency, parent.doc_frequency(fieldname, term.text))
        b = self.ranking.k1_b(fieldname)[1]
        children.append((matcher, fieldname, weights.get(fieldname, 1.0), b, parent.avg_field_length(fieldname) or 1.0))
    if not children:
        return mcore.NullMatcher()
    total = parent.doc_count_all()
    idf = scoring.word_idf(total, frequency)
    k1 = self.ranking.k1_b("*")[0]
    return BM25FMatcher(children, searcher.reader(), idf, k1, self.boost)


def _minimum_match_matcher(self: MinimumMatch, subs: list, searcher: Any, context: Any) -> mcore.Matcher:
    children = [q.matcher(searcher, context) for q in subs]
    return MinimumMatchMatcher(children, self.minmatch, self.boost, self.coordination)


class BM25FMatcher(mcore.Matcher):
    def __init__(self, children: list[tuple], reader, idf: float, k1: float, boost: float):
        self._all = children
        self._reader = reader
        self._idf = idf
        self._k1 = k1
        self._boost = boost
        self._id: int | None = None
        self._settle()

    def _settle(self) -> None:
        ids = [c[0].id() for c in self._all if c[0].is_active()]
        self._id = min(ids) if ids else None

    def _here(self) -> list[tuple]:
        return [c for c in self._all if c[0].is_active() and c[0].id() == self._id]

    def is_active(self) -> bool:
        return self._id is not None

    def id(self) -> int:
        return self._id  # type: ignore[return-value]

    def next(self) -> None:
        for child in self._here():
            child[0].next()
        self._settle()

    def skip_to(self, target: int) -> None:
        for matcher, *_ in self._all:
            if matcher.is_active() and matcher.id() < target:
                matcher.skip_to(target)
        self._settle()

    def weight(self) -> float:
        return sum(c[0].weight() for c in self._here())

    def score(self) -> float:
        docnum = self._id
        tf = 0.0
        for matcher, fieldname, weight, b, average in self._here():
            length = self._reader.doc_field_length(docnum, fieldname, 0) or 1
            tf += scoring.normalised_tf(matcher.weight(), length, average, weight, b)
        return self._boost * scoring.saturated(tf, self._idf, self._k1)

    def supports(self, astype: str) -> bool:
        return False

    def max_quality(self) -> float:
        return float("inf")

    def children(self) -> list[mcore.Matcher]:
        return [c[0] for c in self._all]

    def copy(self) -> "BM25FMatcher":
        copies = [(c[0].copy(), *c[1:]) for c in self._all]
        return BM25FMatcher(copies, self._reader, self._idf, self._k1, self._boost)

    def reset(self) -> None:
        for child in self._all:
            child[0].reset()
        self._settle()


class MinimumMatchMatcher(mcore.Matcher):
    def __init__(self, children: list[mcore.Matcher], minimum: int, boost: float = 1.0, coordination: float = 0.0):
        self._coordination = coordination
        self._all = children
        self._children = [c for c in children if c.is_active()]
        self._minimum = max(1, minimum)
        self._boost = boost
        self._id: int | None = None
        self._find(None)

    def _find(self, at_least: int | None) -> None:
        """Move to the first document >= at_least that `minimum` children share. The m-th
        smallest child position is the first place such a document can be."""
        minimum = self._minimum
        while True:
            children = [c for c in self._children if c.is_active()]
            self._children = children
            if len(children) < minimum:
                self._id = None
                return
            target = sorted(c.id() for c in children)[minimum - 1]
            if at_least is not None and target < at_least:
                target = at_least
            for child in children:
                if child.is_active() and child.id() < target:
                    child.skip_to(target)
            here = sum(1 for c in children if c.is_active() and c.id() == target)
            if here >= minimum:
                self._id = target
                return
            at_least = target + 1

    def is_active(self) -> bool:
        return self._id is not None

    def id(self) -> int:
        return self._id  # type: ignore[return-value]

    def next(self) -> None:
        current = self._id
        for child in self._children:
            if child.is_active() and child.id() == current:
                child.next()
        self._find(current + 1 if current is not None else None)

    def skip_to(self, target: int) -> None:
        if self._id is not None and target > self._id:
            self._find(target)

    def score(self) -> float:
        here = [c for c in self._children if c.is_active() and c.id() == self._id]
        score = self._boost * sum(c.score() for c in here)
        if self._coordination:
            score *= (len(here) / len(self._all)) ** self._coordination
        return score

    def weight(self) -> float:
        return sum(c.weight() for c in self._children if c.is_active() and c.id() == self._id)

    def supports(self, astype: str) -> bool:
        return False

    def max_quality(self) -> float:
        """An upper bound of any score (binary matchers ask even without block quality)."""
        if all(c.supports_block_quality() for c in self._children):
            return self._boost * sum(c.max_quality() for c in self._children)
        return float("inf")

    def children(self) -> list[mcore.Matcher]:
        return list(self._children)

    def copy(self) -> "MinimumMatchMatcher":
        return MinimumMatchMatcher([c.copy() for c in self._all], self._minimum, self._boost, self._coordination)

    def reset(self) -> None:
        for child in self._all:
            child.reset()
        self._children = [c for c in self._all if c.is_active()]
        self._find(None)

    def all_ids(self) -> Iterator[int]:
        while self.is_active():
            yield self.id()
            self.next()
