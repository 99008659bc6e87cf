"""Query text -> a Whoosh query. Every input string gets a reading: when the query language
cannot make sense of it, the words alone are searched and the caller is told so."""

from __future__ import annotations

import re
from dataclasses import dataclass

from whoosh import query as wq
from whoosh.fields import Schema
from whoosh.qparser import AndGroup, MultifieldParser, plugins

from .schema import TEXT_FIELDS

MAX_QUERY_CHARS = 1000

FIELD_ALIASES = {"tags": ["tag"], "category": ["cat"]}

# Query-time field weights: a word in the title says more about the article than one in its body.
FIELD_WEIGHTS = {"title": 3.0, "subtitle": 1.5, "summary": 1.5, "body": 1.0}


class QueryTooLong(ValueError):
    pass


@dataclass(frozen=True)
class ParsedQuery:
    query: wq.Query
    # Set when the text was not read as written, e.g. "unbalanced quote: searched for the words".
    notice: str = ""


class QueryReader:
    def __init__(self, schema: Schema):
        self.schema = schema
        self.parser = MultifieldParser(list(TEXT_FIELDS), schema, fieldboosts=FIELD_WEIGHTS, group=AndGroup)
        self.parser.add_plugin(plugins.FuzzyTermPlugin())
        self.parser.add_plugin(plugins.FieldAliasPlugin(FIELD_ALIASES))
        self.parser.add_plugin(plugins.GtLtPlugin())
        # No syntax at all: the fallback reading of text the query language could not parse.
        self.plain = MultifieldParser(list(TEXT_FIELDS), schema, fieldboosts=FIELD_WEIGHTS, group=AndGroup, plugins=[])

    def read(self, text: str) -> ParsedQuery:
        if len(text) > MAX_QUERY_CHARS:
            raise QueryTooLong(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
        text = text.strip()
        if not text:
            return ParsedQuery(wq.NullQuery)
        prepared = _minus_to_not(text)
        problem = _syntax_problem(prepared)
        if not problem:
            try:
                parsed = self.parser.parse(prepared)
            except Exception as exc:  # Whoosh raises a zoo of types on odd input
                problem = f"query syntax not understood ({type(exc).__name__})"
            else:
                if not _has_errors(parsed) and parsed is not wq.NullQuery:
                    return ParsedQuery(parsed)
                problem = problem or "query syntax not understood"
        words = plain_words(text)
        if not words:
            return ParsedQuery(wq.NullQuery, f"{problem}; no searchable words left")
        return ParsedQuery(self.plain.parse(" ".join(words)), f"{problem}: searched for the words {' '.join(words)}")


def _minus_to_not(text: str) -> str:
    return re.sub(r"(^|\s)-(?=[\w\"(])", r"\1NOT ", text)


def _syntax_problem(text: str) -> str:
    if text.count('"') % 2:
        return "unbalanced quote"
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return "unbalanced parenthesis"
    if depth:
        return "unbalanced parenthesis"
    if text.count("[") != text.count("]"):
        return "unbalanced bracket"
    return ""


def _has_errors(query: wq.Query) -> bool:
    """Whoosh marks what it could not parse with an `error` attribute instead of raising."""
    if getattr(query, "error", None):
        return True
    return any(_has_errors(child) for child in query.children())


_WORD = re.compile(r"\w+(?:[.'’]\w+)*")


def plain_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.upper() not in {"AND", "OR", "NOT", "ANDNOT", "ANDMAYBE"}]
