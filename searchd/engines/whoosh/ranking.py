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
    # Up to this many words, every word is required (keyword search).
    all_required_up_to: int = 3
    # Past it, the query is read as a sentence or a question: this share of its words must
    # match, and at least long_query_minimum; the rest only rank. Both are off by default:
    # on SciFact, asking for even 2 words of a claim cost 0.01 nDCG@10 and 4 points of recall
    # (docs/relevance.md); BM25F already ranks articles with more of the words first.
    should_match: float = 0.0
    long_query_minimum: int = 1
    # Neighbouring words within this many positions (in order) earn the proximity bonus, in
    # queries of up to proximity_max_words words (keyword queries: "prime minister"). On
    # sentence-long queries it cost nDCG (docs/relevance.md).
    proximity_slop: int = 3
    proximity_max_words: int = 4
    # Weight of the proximity bonus relative to the words' own scores (0 switches it off).
    proximity_weight: float = 0.3
    # Coordination: a long query's score is multiplied by (words matched / words) ** this, so
    # that articles with more of the words rank higher (0 switches it off).
    coordination: float = 0.0
    # Pseudo-relevance feedback for queries of at least feedback_min_words plain words: the key
    # terms (Bo1) of the first feedback_docs results re-rank the matches, with this weight.
    feedback_docs: int = 0
    feedback_terms: int = 10
    feedback_weight: float = 0.3
    feedback_min_words: int = 4
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
