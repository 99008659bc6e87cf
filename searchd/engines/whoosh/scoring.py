"""The scoring formulas of the Whoosh engine, in one place. They take numbers or numpy arrays
alike: the numpy evaluator scores whole posting lists with them, and the Whoosh-matcher oracle
of the tests (tests/whoosh_oracle.py) one document at a time.

- A term in one field (fielded words, phrases, prefixes): Whoosh's BM25F scorer, which is BM25
  per field with Whoosh's idf, log(N / (df + 1)) + 1.
- A plain word across the text fields: true BM25F (Robertson & Zaragoza 2009; what
  Elasticsearch's combined_fields does): the fields' weighted, length-normalised frequencies
  are summed, tf~ = sum of weight * tf / (1 - b + b * length / average length), and saturated
  once, idf * tf~ (k1 + 1) / (tf~ + k1), with the probabilistic idf
  log(1 + (N - df + 0.5) / (df + 0.5)) of the field where the word is most common.
"""

from __future__ import annotations

import math

import numpy as np
from typing import TypeVar

Number = TypeVar("Number")  # a float or a numpy array of them


def field_idf(documents: int, frequency: int) -> float:
    """Whoosh's idf of a term in one field."""
    return math.log(documents / (frequency + 1)) + 1


def field_bm25(tf: Number, length: Number, average: float, idf: float, k1: float, b: float) -> Number:
    """BM25 of a term in one field of a document (or of many documents at once)."""
    return idf * (tf * (k1 + 1)) / (tf + k1 * ((1 - b) + b * length / average))


def word_idf(documents: int, frequency: Number) -> Number:
    """BM25F's idf of a word; `frequency` is its document frequency in its most common field."""
    return np.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))


def normalised_tf(tf: Number, length: Number, average: float, weight: float, b: float) -> Number:
    """One field's contribution to a word's BM25F frequency."""
    return weight * tf / ((1 - b) + b * length / average)


def saturated(tf: Number, idf: float, k1: float) -> Number:
    """A word's BM25F score from its summed, normalised frequency."""
    return idf * tf * (k1 + 1) / (tf + k1)
