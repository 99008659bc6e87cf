"""The Whoosh engine's vocabulary (searchd/vocabulary.py), expanding a fuzzy word into at most as
many words as a Whoosh query expands a prefix into; and each segment's word list, the file
`<segment id>.voc` inside the segment (its `words` field's terms, UTF-8, one a line, in order),
which the segment writer keeps so that reading the vocabulary is a file read per segment rather
than a walk of Whoosh's term dictionaries (0.7 s of Python for Reuters' 61,000 words, which a web
worker's other requests wait for)."""

from __future__ import annotations

from typing import Any

from ...vocabulary import Vocabulary as _Vocabulary
from .queries import MAX_EXPANSION
from .schema import WORDS_FIELD

WORDS = ".voc"


class Vocabulary(_Vocabulary):
    def __init__(self, words: list[str]):
        super().__init__(words, MAX_EXPANSION)

    @classmethod
    def of_lists(cls, lists: list[list[str]]) -> "Vocabulary":
        """From the segments' word lists (`segment_words`): their words, sorted and distinct."""
        words: set[str] = set()
        for found in lists:
            words.update(found)
        # Made anew in sorted order, so that they lie in memory in the order did-you-mean scans
        # them (scanning strings scattered over the segments' lists took twice as long).
        return cls("\n".join(sorted(words)).split("\n") if words else [])


class WordList:
    """Writes a segment's word list a word at a time, as the segment writer meets them in order."""

    def __init__(self, storage: Any, segment: Any):
        self._out = segment.create_file(storage, WORDS)
        self._separator = b""

    def add(self, word: bytes) -> None:
        self._out.write(self._separator + word)
        self._separator = b"\n"

    def close(self) -> None:
        self._out.close()


def segment_words(leaf: Any) -> list[str]:
    """A segment's words: its word list, or, for a segment written without one, its term
    dictionary's."""
    name = leaf.segment().make_filename(WORDS)
    if leaf._storage.file_exists(name):
        with leaf._storage.open_file(name) as data:
            raw = data.read()
        return raw.decode("utf-8").split("\n") if raw else []
    if WORDS_FIELD not in leaf.schema or WORDS_FIELD not in leaf._terms._fieldmap:
        return []
    return [word.decode("utf-8") for word in leaf.lexicon(WORDS_FIELD)]
