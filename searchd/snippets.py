"""Snippets: the passages of an article where the query's words are, as escaped HTML with
<mark> around each matched word (the only markup we emit).

A word matches when it reads as one of the query's terms (analysis.Normaliser: "talks" marks
"talk", "cafe" marks "café"). Up to `top` passages of at most SNIPPET_CHARS characters are
chosen, the ones with the most different query words first, and shown in text order. Long texts
are read a window at a time until enough matches are found, so a 10 MB article costs about
what its first windows cost.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable

from .analysis import TOKEN, Normaliser
from .lru import LruCache

SNIPPET_CHARS = 240
# Context kept before the first matched word of a passage.
SURROUND = 60
BETWEEN = " … "
_WINDOW = 64 * 1024
# Matches that are plenty to choose passages from; past them the rest of a long text is not read.
_ENOUGH = 24
_SPACE = re.compile(r"\s+")
# Characters that join word characters into one token ("U.S.", "don't").
_JOINERS = ".'’"


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    term: str


@dataclass(frozen=True)
class _Passage:
    start: int
    end: int
    spans: tuple[_Span, ...]

    @property
    def score(self) -> tuple[int, int]:
        return len({span.term for span in self.spans}), len(self.spans)


class Snippets:
    def __init__(self, normaliser: Normaliser | None = None, chars: int = SNIPPET_CHARS):
        self.normaliser = normaliser or Normaliser()
        self.chars = chars
        self._candidates: LruCache[re.Pattern[str]] = LruCache(512)

    def snippet(self, text: str, terms: frozenset[str] | set[str], top: int = 2) -> str:
        """The best passages of `text` for `terms`, or "" when no word of it matches."""
        if not text or not terms:
            return ""
        spans = self._matches(text, terms)
        if not spans:
            return ""
        passages = sorted(self._passages(text, spans), key=lambda p: (-p.score[0], -p.score[1], p.start))[:top]
        passages.sort(key=lambda p: p.start)
        return BETWEEN.join(_render(text, p.start, p.end, p.spans) for p in passages)

    def _matches(self, text: str, terms: frozenset[str] | set[str]) -> list[_Span]:
        """Matched words, a window at a time. Only the tokens that can read as a query term
        are normalised: stemming and folding keep a word's first letter, so the regular
        expression (one C-speed pass) finds just the tokens starting with a letter some query
        term starts with, or with a letter outside ASCII (which may fold to one)."""
        spans: list[_Span] = []
        term_of = self.normaliser.term
        # Compiling one costs about half a millisecond: the expressions of the last few hundred
        # sets of initials are kept.
        initials = frozenset(term[0] for term in terms if term)
        candidates = self._candidates.get(initials, lambda: _candidates(initials))
        start = 0
        while start < len(text) and len(spans) < _ENOUGH:
            end = min(len(text), start + _WINDOW)
            if end < len(text):  # end the window between words
                space = text.rfind(" ", start, end)
                end = space if space > start else end
            for match in candidates.finditer(text, start, end):
                token = match.group()
                if (term := term_of(token)) in terms and not (match.end() == end and _joined(text, end, 1)):
                    spans.append(_Span(match.start(), match.end(), term))
            start = end
        return spans

    def _passages(self, text: str, spans: list[_Span]) -> list[_Passage]:
        """Consecutive matches grouped into passages of at most `chars` characters, each
        starting a little before its first match (at a word boundary)."""
        passages: list[_Passage] = []
        i = 0
        while i < len(spans):
            first = spans[i]
            start = max(passages[-1].end if passages else 0, first.start - SURROUND)
            if start:
                space = text.find(" ", start, first.start)
                start = space + 1 if space >= 0 else first.start
            j = i
            while j + 1 < len(spans) and spans[j + 1].end - start <= self.chars:
                j += 1
            end = min(len(text), start + self.chars)
            if end < len(text):
                space = text.rfind(" ", spans[j].end, end)
                end = space if space >= 0 else max(end, spans[j].end)
            passages.append(_Passage(start, end, tuple(spans[i:j + 1])))
            i = j + 1
        return passages


def _candidates(initials: frozenset[str]) -> re.Pattern[str]:
    """TOKEN where a token starts (as TOKEN.findall would read it: not after a word character,
    nor after a joiner that follows one) with one of `initials`, in either case, or with a word
    character outside ASCII. The first character is matched before the lookbehinds that check
    it, and as one negated class (every ASCII character but the initials), so that re skips
    ahead to candidates at C speed: 5x faster than reading every token."""
    letters = {ord(c) for initial in initials if initial.isascii() for c in (initial, initial.upper())}
    excluded, low = [], 0
    for code in sorted(letters) + [128]:
        if code > low:
            excluded.append(f"\\x{low:02x}-\\x{code - 1:02x}")
        low = code + 1
    return re.compile("[^" + "".join(excluded) + r"](?<=\b\w)(?<!\w[" + _JOINERS + r"].)"
                      + TOKEN.pattern.replace(r"\w+", r"\w*", 1))


def _joined(text: str, i: int, step: int) -> bool:
    """Whether the character at i (just before or after a token) makes it part of a longer one:
    a word character, or a joiner with a word character beyond it."""
    if not 0 <= i < len(text):
        return False
    if _word(text[i]):
        return True
    beyond = i + step
    return text[i] in _JOINERS and 0 <= beyond < len(text) and _word(text[beyond])


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _render(text: str, start: int, end: int, spans: tuple[_Span, ...]) -> str:
    out, last = [], start
    for span in spans:
        out.append(_clean(text[last:span.start]))
        out.append("<mark>" + html.escape(text[span.start:span.end], quote=False) + "</mark>")
        last = span.end
    out.append(_clean(text[last:end]))
    return "".join(out).strip()


def _clean(piece: str) -> str:
    return html.escape(_SPACE.sub(" ", piece), quote=False)


def marked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """The text escaped, with <mark> around each (start, end) span (in order, not overlapping)."""
    out, last = [], 0
    for start, end in spans:
        out.append(html.escape(text[last:start], quote=False))
        out.append("<mark>" + html.escape(text[start:end], quote=False) + "</mark>")
        last = end
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


def lead(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The first words of a text, escaped: the snippet when nothing in the text matched."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return html.escape(text, quote=False)
