"""What the Typesense engine stores: the articles collection's schema, an article as a Typesense
document, the collection names, and the small status collection the daemons share with readers.

Bump SCHEMA_VERSION whenever the document or the schema changes: a daemon that finds the alias
pointing to a collection of another version fills a new collection and swaps the alias to it once
complete (writer.py).

Ids are article ids (`world/x.txt`) or, for a daemon with a source, `<source>/<article id>`.
Typesense cannot filter ids by prefix, hence `source` (whose articles) and `folders` (a hash of
each folder of the id, so that a folder's documents can be deleted by one exact filter).
"""

from __future__ import annotations

import calendar
import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from ...analysis import TOKEN, Normaliser
from ...articles import Article
from ...folding import sketch

SCHEMA_VERSION = 1

# The `source` value of articles written by a daemon without --source (a source name always
# starts with a letter or digit, so it cannot be this).
NO_SOURCE = "_"
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
COLLECTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_)){0,62}")

# Typesense puts the document's own text between these (it does not escape it); neither can
# occur in an indexed text, so the reader escapes the snippet and turns them into <mark> tags.
MARK_START, MARK_END = "\ue000", "\ue001"
_MARKERS = str.maketrans("", "", MARK_START + MARK_END)
# Characters that separate words inside a token ("oil/gas", "well-known", "price,rate"): without
# them Typesense glues the parts into one word that nobody searches for.
TOKEN_SEPARATORS = ["/", "-", ",", ";", ":", "(", ")", "[", "]", "{", "}", '"', "&", "+", "=", "<", ">", "|",
                    "!", "?", "*", "#", "@", "%", "$", "~", "^", "\\"]
# Characters of an article's text kept for its result when no word of it matched.
LEAD_CHARS = 320

TEXT_FIELDS = ("title", "subtitle", "summary", "body")
# What a result list needs of each hit (never the body: it may be megabytes).
HIT_FIELDS = ("id", "display_title", "summary", "lead", "category", "tags", "date", "checksum", "length", "sketch")

FIELDS: list[dict[str, Any]] = [
    {"name": "title", "type": "string"},  # the real title ("" when the article has none)
    {"name": "subtitle", "type": "string", "optional": True},
    {"name": "summary", "type": "string", "optional": True},
    {"name": "body", "type": "string"},
    {"name": "category", "type": "string", "facet": True},
    {"name": "tags", "type": "string[]", "facet": True, "optional": True},
    {"name": "date", "type": "int64", "sort": True},  # UTC microseconds
    {"name": "year", "type": "int32", "facet": True},
    {"name": "checksum", "type": "string", "facet": True},  # group_by folds identical copies
    {"name": "source", "type": "string", "facet": True},
    {"name": "folders", "type": "string[]", "optional": True},
    # Each distinct word (lowercased, accents folded, no stop words): completion and did-you-mean
    # are facet queries on it, with document frequencies.
    {"name": "words", "type": "string[]", "facet": True, "optional": True},
    # Stored, never searched.
    {"name": "display_title", "type": "string", "index": False, "optional": True},
    {"name": "lead", "type": "string", "index": False, "optional": True},
    {"name": "url", "type": "string", "index": False, "optional": True},
    {"name": "author", "type": "string", "index": False, "optional": True},
    {"name": "format", "type": "string", "index": False, "optional": True},
    {"name": "size", "type": "int64", "index": False, "optional": True},
    {"name": "mtime_ns", "type": "int64", "index": False, "optional": True},
    {"name": "length", "type": "int32", "index": False, "optional": True},  # words, for folding
    {"name": "sketch", "type": "string", "index": False, "optional": True},  # folding.sketch
]

STATUS_FIELDS: list[dict[str, Any]] = [
    {"name": "kind", "type": "string", "facet": True},  # "status" or "lock"
    {"name": "source", "type": "string", "facet": True},
    {"name": "expires", "type": "int64"},  # a lock's lease, a status's heartbeat (UTC seconds)
    {"name": "holder", "type": "string", "index": False, "optional": True},
    {"name": "commits", "type": "int64", "index": False, "optional": True},
    {"name": "body", "type": "string", "index": False, "optional": True},
]


def articles_schema(name: str) -> dict[str, Any]:
    return {"name": name, "fields": FIELDS, "default_sorting_field": "date", "token_separators": TOKEN_SEPARATORS}


def status_schema(name: str) -> dict[str, Any]:
    return {"name": name, "fields": STATUS_FIELDS}


def data_collection(alias: str, version: int = SCHEMA_VERSION) -> str:
    """The real collection behind the alias for a schema version (never the alias's own name: a
    collection named like an alias hides it)."""
    return f"{alias}__v{version}"


def version_of(collection: str, alias: str) -> int | None:
    prefix = f"{alias}__v"
    if collection.startswith(prefix) and collection[len(prefix):].isdigit():
        return int(collection[len(prefix):])
    return None


def status_collection(alias: str) -> str:
    return f"{alias}__status"


def check_source(source: str | None) -> str | None:
    if source is not None and not SOURCE_NAME.fullmatch(source):
        raise ValueError(f"--source {source!r}: use lowercase letters, digits, '.', '_' and '-' "
                         "(at most 64, starting with a letter or digit)")
    return source


def check_collection(name: str) -> str:
    if not COLLECTION_NAME.fullmatch(name):
        raise ValueError(f"--collection {name!r}: use letters, digits, '-' and single '_' "
                         "(at most 63, starting with a letter or digit)")
    return name


def full_id(source: str | None, article_id: str) -> str:
    return f"{source}/{article_id}" if source else article_id


def folder_keys(doc_id: str) -> list[str]:
    """"a/b/c.txt" -> hashes of "a/" and "a/b/" (exact and case-sensitive, which Typesense's
    string filters are not)."""
    parts = doc_id.split("/")[:-1]
    return [folder_key("/".join(parts[: i + 1]) + "/") for i in range(len(parts))]


def folder_key(prefix: str) -> str:
    return hashlib.blake2b(prefix.encode("utf-8"), digest_size=10).hexdigest()


def to_epoch(when: datetime) -> int:
    """A naive UTC datetime (as articles carry them) -> UTC microseconds."""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return calendar.timegm(when.timetuple()) * 1_000_000 + when.microsecond


def from_epoch(microseconds: int | None) -> str | None:
    if microseconds is None:
        return None
    return (_EPOCH + timedelta(microseconds=microseconds)).isoformat()


_EPOCH = datetime(1970, 1, 1)


class Encoder:
    """Article -> one JSONL line of the import. Keeps a word normaliser across articles (its
    memo makes the words of a collection cheap after the first few hundred articles)."""

    def __init__(self, source: str | None):
        self.source = source
        self._words = Normaliser(stem=False, memo=400_000)

    def line(self, article: Article) -> bytes:
        return orjson.dumps(self.document(article))

    def document(self, article: Article) -> dict[str, Any]:
        title, subtitle, summary = _clean(article.title), _clean(article.subtitle), _clean(article.summary)
        body = _clean(article.text)
        # As the Whoosh engine dates an undated article: its file's time, read as local time.
        when = article.date or datetime.fromtimestamp(article.mtime_ns / 1e9)
        doc_id = full_id(self.source, article.id)
        words = self._distinct_words(title, subtitle, summary, body)
        return {
            "id": doc_id,
            "title": title,
            "subtitle": subtitle,
            "summary": summary,
            "body": body,
            "category": article.category,
            "tags": list(article.tags),
            "date": to_epoch(when),
            "year": when.year,
            "checksum": article.checksum,
            "source": self.source or NO_SOURCE,
            "folders": folder_keys(doc_id),
            "words": words,
            "display_title": _clean(article.display_title),
            "lead": " ".join((summary or subtitle or body)[: LEAD_CHARS * 4].split())[:LEAD_CHARS],
            "url": article.url,
            "author": article.author,
            "format": article.format,
            "size": article.size,
            "mtime_ns": article.mtime_ns,
            "length": len(_WORD.findall(title)) + len(_WORD.findall(body)),
            "sketch": sketch(f"{title} {body}"),
        }

    def _distinct_words(self, *texts: str) -> list[str]:
        normal = self._words
        found: dict[str, None] = {}
        for text in texts:
            for token in TOKEN.findall(text):
                word = normal(token)[0]
                if word is not None:
                    found[word] = None
        return list(found)


_WORD = re.compile(r"\w+")


def _clean(text: str) -> str:
    return text.translate(_MARKERS)
