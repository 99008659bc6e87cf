"""searchd's own query tree: what a query asks for, in plain data, before any engine reads it.

The query language (parser.py) produces it; each engine compiles it (the Whoosh engine into its
query objects and numpy evaluation, the Typesense engine into search parameters); the web layer
reads it to mark the words of a query in an article. Words are kept as typed: how a word is
analysed (stemmed, folded, split) is the engine's business.

Ranking is not in the tree either: an `All` of plain words says "these words, together"; whether
all of them are required or only some (a long, sentence-like query), and how they are scored, is
the engine's ranking policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Union

# Fields a word, phrase or prefix can be restricted to (`title:coffee`).
TEXT_FIELDS = ("title", "subtitle", "summary", "body")


@dataclass(frozen=True)
class Word:
    """A word as typed ("talks", "covid-19"); in a field, or in every text field (None)."""

    text: str
    field: str | None = None


@dataclass(frozen=True)
class Phrase:
    """Words in this order, each at most `slop` positions after the one before (0: adjacent)."""

    text: str
    slop: int = 0
    field: str | None = None


@dataclass(frozen=True)
class Prefix:
    """Words starting with `text` (`batter*`)."""

    text: str
    field: str | None = None


@dataclass(frozen=True)
class Fuzzy:
    """Words within `distance` edits of `text` (`zelenksy~`, `zelenksy~2`)."""

    text: str
    distance: int = 1
    field: str | None = None


@dataclass(frozen=True)
class Category:
    """Articles of one category (their first folder); matched as written or lowercased."""

    name: str


@dataclass(frozen=True)
class Tag:
    name: str


@dataclass(frozen=True)
class DateRange:
    """Articles dated within [start, end] (both inclusive; None: open)."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class All:
    """Every part must match; negated parts (`Not`) must not. The plain words among the parts
    (unfielded `Word`s) are the query's keywords: the engine's ranking decides how many of them
    a match needs and how they score together; with `any_word`, one of them is enough (the
    looser reading of a keyword query that found nothing)."""

    parts: tuple["Node", ...] = ()
    any_word: bool = False


@dataclass(frozen=True)
class Any:
    """At least one part must match (`OR`)."""

    parts: tuple["Node", ...] = ()


@dataclass(frozen=True)
class Not:
    """Inside an `All`: excludes what `part` matches. Alone: everything but that."""

    part: "Node"


Leaf = Union[Word, Phrase, Prefix, Fuzzy, Category, Tag, DateRange]
Node = Union[Leaf, All, Any, Not]


def keywords(node: All) -> list[Word]:
    """The plain words of a conjunction, in order: what its ranking treats as one bag."""
    return [part for part in node.parts if isinstance(part, Word) and part.field is None]


def positive_leaves(node: Node) -> Iterator[Leaf]:
    """Every leaf the query looks for, negated parts left out: the words to mark in a text."""
    if isinstance(node, Not):
        return
    if isinstance(node, (All, Any)):
        for part in node.parts:
            yield from positive_leaves(part)
        return
    yield node


def plain_words(node: Node) -> list[str] | None:
    """The words of a query that is nothing but plain words (no operators, fields, phrases or
    filters), else None: such a query can be read more loosely, or spell-corrected word by word."""
    if not isinstance(node, All) or not node.parts:
        return None
    words = keywords(node)
    return [word.text for word in words] if len(words) == len(node.parts) else None


def relaxed(node: Node) -> All | None:
    """The looser reading of a keyword query, any of its words instead of all of them, for when
    the strict one finds nothing; None when there is no looser reading (fewer than two plain
    words, or other required parts)."""
    if not isinstance(node, All) or node.any_word:
        return None
    words = keywords(node)
    others = [part for part in node.parts if not (isinstance(part, Word) and part.field is None)]
    if len(words) < 2 or any(not isinstance(part, Not) for part in others):
        return None
    return All(node.parts, any_word=True)
