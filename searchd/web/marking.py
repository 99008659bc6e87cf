"""Marking the words of a query in an article's text, the way the index reads them: "talks"
marks "talk", "cafe" marks "café", "negot*" marks "negotiations", "zelenksy~" marks "zelensky".
The words come from the query tree (negated parts and filters mark nothing)."""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ..analysis import TOKEN, Normaliser
from ..query import Fuzzy, Phrase, Prefix, QueryTooLong, Word, parse, positive_leaves
from ..snippets import marked

NearWords = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Marker:
    """Output is escaped text plus <mark>."""

    stems: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def for_query(cls, q: str, near_words: NearWords | None = None) -> "Marker":
        try:
            tree = parse(q).tree
        except QueryTooLong:
            tree = None
        if tree is None:
            return cls(frozenset(), ())
        normaliser = _normaliser()
        stems: set[str] = set()
        prefixes: list[str] = []
        for leaf in positive_leaves(tree):
            if isinstance(leaf, (Word, Phrase)):
                stems.update(normaliser.terms(leaf.text))
            elif isinstance(leaf, Prefix):
                prefixes.append(_fold(leaf.text))
            elif isinstance(leaf, Fuzzy):
                words = [leaf.text, *(near_words(leaf.text, leaf.distance) if near_words else [])]
                stems.update(term for word in words for term in normaliser.terms(word))
        return cls(frozenset(stems), tuple(p for p in prefixes if p))

    def __bool__(self) -> bool:
        return bool(self.stems or self.prefixes)

    def mark(self, text: str) -> str:
        if not self:
            return html.escape(text, quote=False)
        spans: list[tuple[int, int]] = []
        normalise = _normaliser()
        for token in TOKEN.finditer(text):
            term = normalise(token.group())[1]
            if term is None:
                continue
            if term in self.stems or (self.prefixes and _fold(token.group()).startswith(self.prefixes)):
                spans.append(token.span())
        return marked(text, spans)


@lru_cache(maxsize=1)
def _normaliser() -> Normaliser:
    """The index's own analysis (built once: its stemming memo is worth keeping)."""
    return Normaliser()


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
