"""The tunable part of the Whoosh engine's ranking, in one record. Defaults are the configuration
measured in docs/relevance.md; `searchd eval` and the tests build other ones to compare."""

from __future__ import annotations

import math
from dataclasses import dataclass

from whoosh import scoring as whoosh_scoring


@dataclass(frozen=True)
class Ranking:
    """The tunable part of ranking. Defaults are the configuration measured in docs/relevance.md."""

    field_weights: tuple[tuple[str, float], ...] = (("title", 1.5), ("subtitle", 1.2), ("summary", 1.2), ("body", 1.0))
    # Up to this many words, a keyword search: articles with every word rank first, then
    # those with some of them (the page says so when it shows any).
    all_required_up_to: int = 3
    # Past it, the query is read as a sentence or a question: this share of its words must
    # match, and at least long_query_minimum; the rest only rank. Both are off by default:
    # on SciFact, asking for even 2 words of a claim cost 0.01 nDCG@10 and 4 points of recall
    # (docs/relevance.md); BM25F already ranks articles with more of the words first.
    should_match: float = 0.0
    long_query_minimum: int = 1
    # Function words (analysis.QUERY_STOP_WORDS: "how", "what", "does"...) count only in a
    # query of nothing else: they say nothing of the subject, and are rare (so weighty) in
    # the abstracts and articles a lay question is asked of.
    ignore_function_words: bool = True
    # Neighbouring words within this many positions (in order) earn a proximity bonus, in
    # queries of up to proximity_max_words words ("prime minister"), with this weight relative
    # to the words' own scores. Off: it cost nDCG on sentences (SciFact) and measured nothing
    # but small losses on keyword queries (NFCorpus, Cranfield; docs/relevance.md).
    proximity_slop: int = 3
    proximity_max_words: int = 4
    proximity_weight: float = 0.0
    # Coordination: a long query's score is multiplied by (words matched / words) ** this, so
    # that articles with more of the words rank higher (0 switches it off).
    coordination: float = 0.0
    # Pseudo-relevance feedback (feedback.py, a relevance model) for plain-word queries: the
    # terms of the first feedback_docs results make a query of feedback_terms terms, weighing as
    # much as feedback_weight of the query's own words, that re-ranks the first feedback_depth
    # results. With 10 documents it lifts NFCorpus, Cranfield and SciFact (docs/relevance.md);
    # the articles' terms and the terms' document frequencies are kept in the index for it
    # (termvectors.py), so it costs a query a fraction of a millisecond. 0 switches it off.
    feedback_docs: int = 10
    feedback_terms: int = 10
    feedback_weight: float = 2.0
    feedback_depth: int = 20
    # BM25 saturation (K1) and length normalisation (B), per field; "*" for the rest.
    bm25: tuple[tuple[str, float, float], ...] = (("*", 1.2, 0.75),)
    # True BM25F for words: weighted, length-normalised frequencies summed over the fields
    # before one saturation (K1 of "*"), instead of one BM25 score per field added up.
    bm25f: bool = True

    def k1_b(self, fieldname: str) -> tuple[float, float]:
        table = {name: (k1, b) for name, k1, b in self.bm25}
        return table.get(fieldname, table.get("*", (1.2, 0.75)))

    def weighting(self) -> whoosh_scoring.WeightingModel:
        return FieldBM25({name: (k1, b) for name, k1, b in self.bm25})

    def weights(self) -> dict[str, float]:
        return dict(self.field_weights)

    def minimum_match(self, words: int) -> int:
        """A few keywords: all of them. Anything longer: a share, at least long_query_minimum."""
        if words <= self.all_required_up_to:
            return words
        return max(self.long_query_minimum, math.ceil(words * self.should_match - 1e-9))


class FieldBM25(whoosh_scoring.BM25F):
    """Whoosh's BM25F (BM25 per field, summed over fields) with K1 as well as B set per field."""

    def __init__(self, parameters: dict[str, tuple[float, float]]):
        k1, b = parameters.get("*", (1.2, 0.75))
        super().__init__(B=b, K1=k1)
        self.parameters = parameters

    def scorer(self, searcher, fieldname, text, qf=1):  # type: ignore[override]
        if not searcher.schema[fieldname].scorable:
            return whoosh_scoring.WeightScorer.for_(searcher, fieldname, text)
        k1, b = self.parameters.get(fieldname, (self.K1, self.B))
        return whoosh_scoring.BM25FScorer(searcher, fieldname, text, b, k1, qf=qf)
