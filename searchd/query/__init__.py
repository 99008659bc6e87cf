"""The query language and searchd's own query tree (see parser.py and tree.py)."""

from .dates import period
from .parser import FIELD_NAMES, MAX_QUERY_CHARS, ParsedQuery, QueryTooLong, parse, split_sort
from .tree import (TEXT_FIELDS, All, Any, Category, DateRange, Fuzzy, Leaf, Node, Not, Phrase, Prefix, Tag,
                   Word, keywords, plain_words, positive_leaves, relaxed)

__all__ = [
    "FIELD_NAMES", "MAX_QUERY_CHARS", "TEXT_FIELDS", "All", "Any", "Category", "DateRange", "Fuzzy", "Leaf",
    "Node", "Not", "ParsedQuery", "Phrase", "Prefix", "QueryTooLong", "Tag", "Word", "keywords", "parse",
    "period", "plain_words", "positive_leaves", "relaxed", "split_sort",
]
