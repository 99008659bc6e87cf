"""Pseudo-relevance feedback: the first results of a plain-word query say what the query is about,
and re-rank the results near the top by it. A relevance model (RM3: Lavrenko & Croft 2001;
Abdul-Jaleel et al. 2004) of the first `feedback_docs` results: each one's term shares, weighted
by exp(score - best score) (scores read as log-likelihoods), summed; its `feedback_terms`
heaviest terms found in at most a tenth of the documents, weighing together `feedback_weight`
query words, are scored in each of the first `feedback_depth` results with BM25F (scoring.py,
from the article's own term counts), and added to its score.

Off by default (Ranking.feedback_docs = 0): it lifts every judged collection (docs/relevance.md)
but reads the first results' text, which costs a query the caches have not seen 1.3 to 2.6 times
its time (docs/relevance.md).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable

from . import scoring
from .ranking import Ranking

# Feedback ignores terms found in more than this share of the documents.
FEEDBACK_MAX_DOCUMENTS = 0.1


@dataclass(frozen=True)
class ArticleTerms:
    """An article's terms as feedback reads them: their counts in each text field that has
    any, and each term's share of the article (of its terms of 2 to 20 letters or digits)."""

    counts: dict[str, dict[str, int]]
    shares: dict[str, float]

    @classmethod
    def of(cls, counts: dict[str, dict[str, int]]) -> "ArticleTerms":
        counts = {name: found for name, found in counts.items() if found}
        kept: dict[str, int] = {}
        for found in counts.values():
            for term, n in found.items():
                if 2 <= len(term) <= 20 and term.isalnum():
                    kept[term] = kept.get(term, 0) + n
        size = sum(kept.values()) or 1
        return cls(counts, {term: n / size for term, n in kept.items()})


@dataclass(frozen=True)
class FeedbackDocument:
    """A first-pass result: its score, its terms and the indexed length of each text field."""

    score: float
    terms: ArticleTerms
    lengths: dict[str, float]


def feedback_scores(ranking: Ranking, documents: list[FeedbackDocument], doc_frequency: Callable[[str], int],
                    size: int, average_lengths: dict[str, float]) -> list[float]:
    """What feedback adds to the scores of the first results (best first)."""
    model = documents[: ranking.feedback_docs]
    if not model or ranking.feedback_weight <= 0:
        return [0.0] * len(documents)
    chosen = _expansion(ranking, model, doc_frequency, size)
    if not chosen:
        return [0.0] * len(documents)
    scale = ranking.feedback_weight / sum(weight for weight, _ in chosen.values())
    k1 = ranking.k1_b("*")[0]
    field_weights = ranking.weights()

    def score(document: FeedbackDocument) -> float:
        factors = []  # each field's counts with its weight and length normalisation
        for name, counts in document.terms.counts.items():
            average = average_lengths.get(name) or 1.0
            factors.append((counts, scoring.normalised_tf(1.0, document.lengths.get(name, 1.0), average,
                                                          field_weights.get(name, 1.0), ranking.k1_b(name)[1])))
        total = 0.0
        for term, (weight, idf) in chosen.items():
            tf = sum(factor * counts.get(term, 0) for counts, factor in factors)
            if tf:
                total += weight * scoring.saturated(tf, idf, k1)
        return total * scale

    return [score(document) for document in documents]


def _expansion(ranking: Ranking, model: list[FeedbackDocument], doc_frequency: Callable[[str], int],
               size: int) -> dict[str, tuple[float, float]]:
    """term -> (relevance model weight, idf) of the expansion terms."""
    best = max(document.score for document in model)
    weights: dict[str, float] = {}
    for document in model:
        likelihood = math.exp(document.score - best)
        for term, share in document.terms.shares.items():
            weights[term] = weights.get(term, 0.0) + likelihood * share
    chosen: dict[str, tuple[float, float]] = {}
    # The heaviest terms first; most of the weight is in a few dozen of them.
    heaviest = heapq.nlargest(4 * ranking.feedback_terms, weights, key=weights.__getitem__)
    if len(heaviest) < len(weights):
        heaviest += sorted(set(weights) - set(heaviest), key=weights.__getitem__, reverse=True)
    for term in heaviest:
        frequency = doc_frequency(term)
        if 0 < frequency <= FEEDBACK_MAX_DOCUMENTS * size:
            chosen[term] = (weights[term], scoring.word_idf(size, frequency))
            if len(chosen) == ranking.feedback_terms:
                break
    return chosen
