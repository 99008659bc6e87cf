"""Pseudo-relevance feedback: the first results of a plain-word query say what the query is about,
and re-rank the results near the top by it. A relevance model (RM3: Lavrenko & Croft 2001;
Abdul-Jaleel et al. 2004) of the first `feedback_docs` results: each one's term shares, weighted
by exp(score - best score) (scores read as log-likelihoods), summed; its `feedback_terms`
heaviest terms found in at most a tenth of the documents, weighing together `feedback_weight`
query words, are scored in each of the first `feedback_depth` results with BM25F (scoring.py,
from the article's own term counts), and added to its score.

The articles' terms come from the index (termvectors.py), a window at a time, so the whole
computation is a few array operations over the window's term vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from . import scoring
from .ranking import Ranking
from .schema import TEXT_FIELDS
from .termvectors import Window

# Feedback ignores terms found in more than this share of the documents.
FEEDBACK_MAX_DOCUMENTS = 0.1


@dataclass(frozen=True)
class Collection:
    """What feedback needs of the index: its size, the average length of each text field, and
    terms' document frequencies (in the field where each is most common), by their hashes."""

    size: int
    average_lengths: dict[str, float]
    frequencies: Callable[[np.ndarray], np.ndarray]


def feedback_scores(ranking: Ranking, scores: np.ndarray, window: Window, lengths: np.ndarray,
                    collection: Collection) -> np.ndarray:
    """What feedback adds to the scores of the first results (best first): `scores` are their
    first-pass scores, `window` their term vectors, `lengths[f, i]` the indexed length of text
    field f of result i."""
    model = min(ranking.feedback_docs, len(scores))
    if not model or ranking.feedback_weight <= 0 or not len(window.hashes):
        return np.zeros(len(scores))
    chosen = _expansion(ranking, scores[:model], window, collection)
    if chosen is None:
        return np.zeros(len(scores))
    hashes, weights, idfs = chosen
    order = np.argsort(hashes)
    hashes, weights, idfs = hashes[order], weights[order], idfs[order]
    term = np.minimum(np.searchsorted(hashes, window.hashes), len(hashes) - 1)
    entries = np.flatnonzero(hashes[term] == window.hashes)
    term, owner = term[entries], window.owner[entries]
    tf = (window.counts[:, entries] * _field_factors(ranking, lengths, collection)[:, owner]).sum(axis=0)
    found = weights[term] * scoring.saturated(tf, idfs[term], ranking.k1_b("*")[0])
    added = np.bincount(owner, weights=found, minlength=len(scores))
    return added * (ranking.feedback_weight / weights.sum())


def _field_factors(ranking: Ranking, lengths: np.ndarray, collection: Collection) -> np.ndarray:
    """factors[f, i]: what one occurrence in text field f of result i adds to a term's BM25F
    frequency (the field's weight, length-normalised)."""
    weights = ranking.weights()
    column = np.empty((len(TEXT_FIELDS), 1))
    averages, field_weights, bs = column.copy(), column.copy(), column.copy()
    for row, name in enumerate(TEXT_FIELDS):
        averages[row] = collection.average_lengths.get(name) or 1.0
        field_weights[row] = weights.get(name, 1.0)
        bs[row] = ranking.k1_b(name)[1]
    return scoring.normalised_tf(1.0, np.where(lengths > 0, lengths, 1.0), averages, field_weights, bs)


def _expansion(ranking: Ranking, scores: np.ndarray, window: Window,
               collection: Collection) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The expansion terms' hashes, relevance model weights and idfs, or None."""
    end = int(np.searchsorted(window.owner, len(scores)))  # the model's articles come first
    owner = window.owner[:end]
    occurrences = window.counts[:, :end].sum(axis=0)
    sizes = np.bincount(owner, weights=occurrences, minlength=len(scores))
    likelihoods = np.exp(scores - scores.max())
    shares = likelihoods[owner] * occurrences / np.maximum(sizes[owner], 1.0)
    # Each distinct term's weight, and where it was met first (np.unique's, a third cheaper).
    order = np.argsort(window.hashes[:end], kind="stable")
    ordered = window.hashes[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    hashes, first = ordered[starts], order[starts]
    model = np.add.reduceat(shares[order], starts) if len(starts) else np.zeros(0)
    # Their document frequencies are looked up a batch at a time, heaviest first: the first few
    # dozen terms usually hold the chosen ones.
    chosen, frequencies = [], []
    for candidates in _heaviest_first(model, first, 4 * ranking.feedback_terms):
        found = collection.frequencies(hashes[candidates])
        allowed = (found > 0) & (found <= FEEDBACK_MAX_DOCUMENTS * collection.size)
        chosen.append(candidates[allowed])
        frequencies.append(found[allowed])
        if sum(map(len, chosen)) >= ranking.feedback_terms:
            break
    picked = np.concatenate(chosen)[: ranking.feedback_terms] if chosen else np.zeros(0, dtype=np.int64)
    if not len(picked):
        return None
    found = np.concatenate(frequencies)[: ranking.feedback_terms]
    return hashes[picked], model[picked], scoring.word_idf(collection.size, found)


def _heaviest_first(weights: np.ndarray, first: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """Indices of `weights`, heaviest first (of equal weights, the smaller `first` first), about
    `batch` at a time: each batch is partitioned off the rest and only it is sorted."""
    rest = np.arange(len(weights))
    while len(rest):
        if len(rest) > batch:
            threshold = np.partition(weights[rest], len(rest) - batch)[len(rest) - batch]
            top = weights[rest] >= threshold  # ties at the threshold come along
            taken, rest = rest[top], rest[~top]
        else:
            taken, rest = rest, rest[:0]
        yield taken[np.lexsort((first[taken], -weights[taken]))]
