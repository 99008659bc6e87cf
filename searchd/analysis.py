"""Text -> index terms: the one tokenizer, normaliser and stemmer shared by the index writer,
the query reader and the snippets, so that all three read a word the same way.

A token is a run of word characters with inner dots or apostrophes ("U.S.", "don't"). Its word
is the token lowercased and accent-folded (café = cafe), or nothing for a stop word; its term is
the word stemmed with Snowball English (talks = talk). Stop words do not count as positions, so
"Bank of England" is the phrase "bank england". This is what Whoosh's RegexTokenizer |
LowercaseFilter | CharsetFilter | StopFilter | StemFilter chain computes one token at a time
through five generators; here it is one regular expression pass and a dictionary lookup per
token.
"""

from __future__ import annotations

import re
from typing import Iterator

import Stemmer
from whoosh.analysis import STOP_WORDS
from whoosh.support.charset import accent_map

TOKEN = re.compile(r"\w+(?:[.'’]\w+)*")

# Distinct raw tokens a normaliser remembers before its memo starts again: an indexer meets a
# few hundred thousand in a big archive (numbers and names included); a searcher, which only
# reads the hits it shows, keeps a smaller one (each entry costs ~150 bytes).
INDEXING_MEMO = 400_000
SEARCHING_MEMO = 50_000

_STOP = (None, None)


class Normaliser:
    """Raw token -> (word, term), memoised: a collection repeats its words, so after the first
    few hundred articles almost every token costs one dictionary lookup."""

    def __init__(self, stem: bool = True, memo: int = SEARCHING_MEMO):
        self.stem = stem
        self.memo_limit = memo
        self._stemmer = Stemmer.Stemmer("english") if stem else None
        self._memo: dict[str, tuple[str | None, str | None]] = {}

    def __getstate__(self) -> dict:  # pickled with the schema: the memo stays behind
        return {"stem": self.stem}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["stem"])

    def __call__(self, token: str) -> tuple[str | None, str | None]:
        known = self._memo.get(token)
        if known is None:
            known = self._normalise(token)
            if len(self._memo) >= self.memo_limit:
                self._memo.clear()
            self._memo[token] = known
        return known

    def _normalise(self, token: str) -> tuple[str | None, str | None]:
        word = token.lower().translate(accent_map)
        if not word or word in STOP_WORDS:
            return _STOP
        return word, (self._stemmer.stemWord(word) if self._stemmer is not None else word)

    def term(self, token: str) -> str | None:
        return self(token)[1]

    def terms(self, text: str) -> list[str]:
        """The terms of a text in order (what a query's words become)."""
        normal = self.__call__
        return [term for token in TOKEN.findall(text) if (term := normal(token)[1]) is not None]

    def index(self, text: str, start: int = 0) -> tuple[dict[str, list[int]], set[str], int]:
        """What the index keeps of a text: term -> its positions (counted in terms, from
        `start`), the set of unstemmed words (for did-you-mean and autocomplete), and how many
        terms there were."""
        memo = self._memo.get
        normal = self.__call__
        found: dict[str, list[int]] = {}
        words: set[str] = set()
        position = start
        for token in TOKEN.findall(text):
            word, term = memo(token) or normal(token)
            if term is None:
                continue
            words.add(word)
            places = found.get(term)
            if places is None:
                found[term] = [position]
            else:
                places.append(position)
            position += 1
        return found, words, position - start

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[str | None, int, int]]:
        """(term or None, start, end) of every token of text[start:end], offsets into `text`."""
        normal = self.__call__
        for match in TOKEN.finditer(text, start, len(text) if end is None else end):
            yield normal(match.group())[1], match.start(), match.end()
