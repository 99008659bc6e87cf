"""The Whoosh schema and its analyzers. Bump SCHEMA_VERSION whenever anything here changes what
is written to the index: an index stored with another version is rebuilt from the folder."""

from __future__ import annotations

import Stemmer
from whoosh import fields
from whoosh.analysis import (
    Analyzer,
    CharsetFilter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
)
from whoosh.support.charset import accent_map

# 2: field weights moved from index time to query time (tunable without a rebuild); spelling
#    (unstemmed) words kept for title and summary too, for autocomplete and did-you-mean.
SCHEMA_VERSION = 2

TEXT_FIELDS = ("title", "subtitle", "summary", "body")

# Words with inner dots or apostrophes ("U.S.", "don't") stay one token.
_TOKEN_PATTERN = r"\w+(?:[.'’]\w+)*"


_ENGLISH = Stemmer.Stemmer("english")


def stem_english(word: str) -> str:
    """Snowball English in C (PyStemmer). A module-level function because Whoosh pickles the
    schema, analyzers included, into the index's table of contents."""
    return _ENGLISH.stemWord(word)


def text_analyzer() -> Analyzer:
    """Tokenize, lowercase, fold accents (café = cafe), drop stop words, stem (talks = talk)."""
    return (
        RegexTokenizer(_TOKEN_PATTERN)
        | LowercaseFilter()
        | CharsetFilter(accent_map)
        | StopFilter(minsize=1)
        | StemFilter(stemfn=stem_english, cachesize=100_000)
    )


def build_schema() -> fields.Schema:
    analyzer = text_analyzer()
    return fields.Schema(
        id=fields.ID(stored=True, unique=True, sortable=True),
        # No index-time field_boost: Whoosh multiplies it into the term frequency, where BM25
        # saturates it away. Field weights are applied at query time instead (see query.py).
        title=fields.TEXT(analyzer=analyzer, stored=True, spelling=True),
        subtitle=fields.TEXT(analyzer=analyzer, stored=True),
        summary=fields.TEXT(analyzer=analyzer, stored=True, spelling=True),
        body=fields.TEXT(analyzer=analyzer, stored=True, spelling=True),
        category=fields.ID(stored=True, sortable=True),
        tags=fields.KEYWORD(stored=True, commas=True, lowercase=True, scorable=True),
        date=fields.DATETIME(stored=True, sortable=True),
        year=fields.ID(stored=False, sortable=True),
        url=fields.STORED(),
        author=fields.STORED(),
        format=fields.ID(stored=True),
        size=fields.NUMERIC(bits=64, stored=True, sortable=True),
        mtime_ns=fields.NUMERIC(bits=64, stored=True, sortable=True),
        checksum=fields.ID(stored=True, sortable=True),
    )
