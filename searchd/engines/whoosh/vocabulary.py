"""The Whoosh engine's vocabulary (searchd/vocabulary.py), expanding a fuzzy word into at most as
many words as a Whoosh query expands a prefix into."""

from __future__ import annotations

from ...vocabulary import Vocabulary as _Vocabulary
from .queries import MAX_EXPANSION


class Vocabulary(_Vocabulary):
    def __init__(self, words: list[str]):
        super().__init__(words, MAX_EXPANSION)
