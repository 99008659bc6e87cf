"""searchd's query tree -> a Whoosh query, for the numpy evaluator. The ranking policy lives here:

- each plain word is scored in every text field with BM25F (queries.BM25FWord, scoring.py), with
  query-time field weights;
- a few keywords: articles with all of them rank first, then those with some of them (the
  `below` tier); a long query (a pasted sentence or question) ranks articles by any of its words
  (or, with Ranking.should_match, needs a share of them);
- function words ("how", "does") count only when a query has nothing else;
- pairs of neighbouring words found close together in the text can get a proximity bonus (off
  by default: it measured small losses everywhere).

(docs/relevance.md has the measurements behind each choice.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from whoosh import query as wq
from whoosh.fields import Schema

from ...query import All, Any, Category, DateRange, Fuzzy, Node, Not, Phrase, Prefix, Tag, Word
from .queries import MAX_EXPANSION, BM25FWord, BoundedPrefix, FieldsOr, min_match
from .ranking import Ranking

FuzzyExpander = Callable[[str, int], list[str]]

NOTHING_LEFT = "only very common words, which are not indexed: nothing to search for"


@dataclass(frozen=True)
class Compiled:
    """A Whoosh query (None: nothing to search for), what was read differently, the analysed
    keywords when the query is nothing but keywords (pseudo-relevance feedback), and for a
    keyword query the looser reading (any of its words) whose other matches rank after the
    query's own."""

    query: wq.Query | None
    notice: str = ""
    words: tuple[str, ...] = ()
    below: wq.Query | None = None


class QueryCompiler:
    """Compiles trees against one index schema. `fuzzy` expands a misspelt word into known
    words within an edit distance (the reader's in-memory vocabulary)."""

    def __init__(self, schema: Schema, ranking: Ranking | None = None, fuzzy: FuzzyExpander | None = None):
        self.schema = schema
        self.ranking = ranking or Ranking()
        self.weights = {f: w for f, w in self.ranking.weights().items() if f in schema}
        self.analyzer = schema["body"].analyzer
        self.normaliser = self.analyzer.normaliser
        self.fuzzy = fuzzy

    def compile(self, tree: All | Any | Not | None) -> Compiled:
        if tree is None:
            return Compiled(None)
        build = _Build(self)
        query = build.top(tree)
        if query is None:
            return Compiled(None, NOTHING_LEFT if build.dropped_words and not build.had_terms else "")
        below = build.below.normalize() if build.below is not None else None
        return Compiled(query.normalize(), "", tuple(build.keywords), below)

    def compile_filter(self, category: str, date_from: object, date_to: object) -> wq.Query | None:
        """The request's category and date filters (they restrict, they never score)."""
        parts: list[wq.Query] = []
        if category:
            parts.append(wq.Term("category", category))
        if date_from or date_to:
            parts.append(wq.DateRange("date", date_from, date_to))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else wq.And(parts)

    def terms(self, text: str) -> list[str]:
        return [t.text for t in self.analyzer(text)]

    def word_query(self, term: str, boost: float = 1.0) -> wq.Query:
        if self.ranking.bm25f:
            return BM25FWord([wq.Term(f, term) for f in self.weights], self.ranking, boost=boost)
        return FieldsOr([wq.Term(f, term, boost=w * boost) for f, w in self.weights.items()])

    def proximity(self, terms: list[str]) -> wq.Query | None:
        ranking = self.ranking
        if ranking.proximity_weight <= 0 or not 2 <= len(terms) <= ranking.proximity_max_words:
            return None
        pairs = [(a, b) for a, b in zip(terms, terms[1:]) if a != b]
        clauses = [
            wq.Phrase(f, [a, b], slop=ranking.proximity_slop, boost=w * ranking.proximity_weight)
            for a, b in dict.fromkeys(pairs)
            for f, w in self.weights.items()
            if f in ("title", "body")
        ]
        return wq.Or(clauses) if clauses else None


class _Build:
    """One compilation: remembers whether words were dropped (stop words) and whether any word
    had terms, to tell "nothing to search for" from "no match"."""

    def __init__(self, compiler: QueryCompiler):
        self.c = compiler
        self.keywords: list[str] = []
        self.below: wq.Query | None = None
        self.dropped_words = False
        self.had_terms = False

    def top(self, tree: Node) -> wq.Query | None:
        if isinstance(tree, All):
            return self.conjunction(tree, top=True)
        return self.node(tree)

    def node(self, node: Node) -> wq.Query | None:
        if isinstance(node, Any):
            parts = [q for q in (self.node(part) for part in node.parts) if q is not None]
            return wq.Or(parts) if parts else None
        if isinstance(node, All):
            return self.conjunction(node, top=False)
        if isinstance(node, Not):  # a NOT outside a conjunction: everything but
            inner = self.node(node.part)
            return wq.Not(inner) if inner is not None else None
        return self.leaf(node)

    def conjunction(self, node: All, top: bool) -> wq.Query | None:
        """Plain words: all required (few) or minimum-should-match (many), plus proximity.
        Everything else (phrases, fields, prefixes, groups) is required; NOT excludes."""
        words: list[str] = []
        content: list[str] = []
        required: list[wq.Query] = []
        excluded: list[wq.Query] = []
        for part in node.parts:
            if isinstance(part, Word) and part.field is None:
                terms = self.c.terms(part.text)
                if not terms:
                    self.dropped_words = True
                words.extend(terms)
                if self.c.ranking.ignore_function_words:
                    content.extend(self.c.normaliser.content_terms(part.text))
            elif isinstance(part, Not):
                inner = self.node(part.part)
                if inner is not None:
                    excluded.append(inner)
            else:
                compiled = self.node(part)
                if compiled is not None:
                    required.append(compiled)
        if words:
            self.had_terms = True
        if content:  # function words count only in a query of nothing else ("The Who")
            words = content
        unique = list(dict.fromkeys(words))
        scoring = None
        looser = None
        if unique:
            ranking = self.c.ranking
            word_queries = [self.c.word_query(t) for t in unique]
            minimum = 1 if node.any_word else ranking.minimum_match(len(unique))
            scoring = min_match(word_queries, minimum, ranking.coordination)
            if top and not required and 1 < minimum == len(unique):
                looser = min_match(word_queries, 1, ranking.coordination)
        if top and not required and not excluded:
            self.keywords = unique
        parts = ([scoring] if scoring is not None else []) + required
        if not parts:
            return None
        query: wq.Query = parts[0] if len(parts) == 1 else wq.And(parts)
        proximity = self.c.proximity(words)
        negative = (excluded[0] if len(excluded) == 1 else wq.Or(excluded)) if excluded else None
        query = _finish(query, proximity, negative)
        if looser is not None:
            self.below = _finish(looser, proximity, negative)
        return query

    def leaf(self, node: Node) -> wq.Query | None:
        if isinstance(node, Word):
            return self.word(node)
        if isinstance(node, Phrase):
            return self.phrase(node)
        if isinstance(node, Prefix):
            return self.prefix(node)
        if isinstance(node, Fuzzy):
            return self.fuzzy(node)
        if isinstance(node, Category):
            return wq.Or([wq.Term("category", node.name), wq.Term("category", node.name.lower())])
        if isinstance(node, Tag):
            return wq.Term("tags", node.name)
        if isinstance(node, DateRange):
            return wq.DateRange("date", node.start, node.end)
        raise TypeError(f"not a query node: {node!r}")

    def fields(self, fieldname: str | None) -> list[str]:
        if fieldname is not None and fieldname in self.c.schema:
            return [fieldname]
        return list(self.c.weights)

    def word(self, node: Word) -> wq.Query | None:
        terms = self.c.terms(node.text)
        if not terms:
            self.dropped_words = True
            return None
        self.had_terms = True
        if node.field is None or node.field not in self.c.schema:
            return min_match([self.c.word_query(t) for t in terms], len(terms))
        return wq.And([wq.Term(node.field, t) for t in terms])

    def phrase(self, node: Phrase) -> wq.Query | None:
        terms = self.c.terms(node.text)
        if not terms:
            self.dropped_words = bool(node.text.strip())
            return None
        self.had_terms = True
        weights = self.c.weights
        fields = self.fields(node.field)
        if len(terms) == 1:
            return wq.Or([wq.Term(f, terms[0], boost=weights.get(f, 1.0)) for f in fields])
        return wq.Or([wq.Phrase(f, terms, slop=max(1, node.slop), boost=weights.get(f, 1.0)) for f in fields])

    def prefix(self, node: Prefix) -> wq.Query:
        self.had_terms = True
        weights = self.c.weights
        return wq.Or([BoundedPrefix(f, node.text, boost=weights.get(f, 1.0)) for f in self.fields(node.field)])

    def fuzzy(self, node: Fuzzy) -> wq.Query | None:
        words = [node.text]
        if self.c.fuzzy is not None:
            words += self.c.fuzzy(node.text, node.distance)
        terms = list(dict.fromkeys(t for w in words[:MAX_EXPANSION] for t in self.c.terms(w)))
        if not terms:
            return None
        self.had_terms = True
        weights = self.c.weights
        return wq.Or([wq.Term(f, t, boost=weights.get(f, 1.0)) for f in self.fields(node.field) for t in terms])


def _finish(query: wq.Query, proximity: wq.Query | None, negative: wq.Query | None) -> wq.Query:
    """A conjunction's query with its proximity bonus and its exclusions."""
    if proximity is not None:
        query = wq.AndMaybe(query, proximity)
    if negative is not None:
        query = wq.AndNot(query, negative)
    return query
