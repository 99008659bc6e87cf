"""The Whoosh schema and its analyzers. Bump SCHEMA_VERSION whenever anything here changes what
is written to the index: an index stored with another version is rebuilt from the folder."""

from __future__ import annotations

import sys
from array import array
from datetime import datetime
from typing import Any, Iterator

from whoosh import columns, fields, formats
from whoosh.analysis import Analyzer, Token

from ...analysis import TOKEN, Normaliser
from ...articles import Article
from ...folding import SKETCH_BYTES, sketch_row

# 2: field weights moved from index time to query time (tunable without a rebuild); spelling
#    (unstemmed) words kept for title and summary too, for autocomplete and did-you-mean.
# 3: positions stored as raw 32-bit integers (a block of postings decodes in one numpy call);
#    one `words` field of unstemmed words per article replaces Whoosh's spelling fields, which
#    filed every word under document 0 of its segment.
# 4: a typographic apostrophe reads as a straight one (analysis.FOLDING): "Putin’s" indexed as
#    "putin", the term of "Putin's" and "Putin".
# 5: a `sketch` column (folding.sketch_row of the shown title and the body): near-duplicate
#    folding compares sketches instead of reading texts.
# 6: a `terms` column (termvectors.py: each article's terms and counts per text field):
#    pseudo-relevance feedback reads it instead of analysing the first results' texts.
SCHEMA_VERSION = 6

TEXT_FIELDS = ("title", "subtitle", "summary", "body")
WORDS_FIELD = "words"


class TextAnalyzer(Analyzer):
    """Whoosh's view of analysis.Normaliser, for the Whoosh code that analyses text itself
    (query terms, key terms of similar articles). Terms, or unstemmed words with stem=False."""

    def __init__(self, stem: bool = True):
        self.normaliser = Normaliser(stem)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.normaliser.stem == self.normaliser.stem

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.normaliser.stem))

    def has_morph(self) -> bool:
        return self.normaliser.stem

    def __call__(self, value: str, positions: bool = False, chars: bool = False, keeporiginal: bool = False,
                 removestops: bool = True, start_pos: int = 0, start_char: int = 0, tokenize: bool = True,
                 mode: str = "", **kwargs: Any) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        position = start_pos
        stem = self.normaliser.stem
        for start, end in _spans(value, tokenize):
            word, term = self.normaliser(value[start:end])
            if term is None:
                continue
            token.text = term if stem else word
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = value[start:end]
            if positions:
                token.pos = position
            if chars:
                token.startchar, token.endchar = start_char + start, start_char + end
            position += 1
            yield token


def _spans(value: str, tokenize: bool) -> Iterator[tuple[int, int]]:
    if not tokenize:
        yield 0, len(value)
        return
    for match in TOKEN.finditer(value):
        yield match.span()


class RawPositions(formats.Format):
    """A term's positions in a document as little-endian 32-bit integers. Whoosh's Positions
    format pickles each posting's position deltas, which the search side would have to unpickle
    one posting at a time; these decode a whole posting list with one numpy call."""

    posting_size = -1

    def word_values(self, value: Any, analyzer: Any, **kwargs: Any) -> Iterator[tuple[str, int, float, bytes]]:
        if isinstance(analyzer, TextAnalyzer) and isinstance(value, str):
            found, _, _ = analyzer.normaliser.index(value)
        else:
            found = {}
            for position, token in enumerate(formats.tokens(value, analyzer, {"positions": True})):
                found.setdefault(token.text, []).append(position)
        for term, places in found.items():
            yield term, len(places), float(len(places)) * self.field_boost, encode_positions(places)

    def encode(self, positions: list[int]) -> bytes:
        return encode_positions(positions)

    def decode_positions(self, value: bytes) -> list[int]:
        decoded = array("I", value)
        if sys.byteorder != "little":
            decoded.byteswap()
        return decoded.tolist()

    def decode_frequency(self, value: bytes) -> int:
        return len(value) // 4

    def decode_weight(self, value: bytes) -> float:
        return self.decode_frequency(value) * self.field_boost

    def decode_position_boosts(self, value: bytes) -> list[tuple[int, float]]:
        return [(position, 1.0) for position in self.decode_positions(value)]

    def combine(self, values: list[bytes]) -> bytes:
        return encode_positions(sorted({p for value in values for p in self.decode_positions(value)}))


def encode_positions(positions: list[int]) -> bytes:
    encoded = array("I", positions)
    if sys.byteorder != "little":
        encoded.byteswap()
    return encoded.tobytes()


def _text_field(analyzer: TextAnalyzer) -> fields.TEXT:
    field = fields.TEXT(analyzer=analyzer, stored=True)
    field.format = RawPositions()
    return field


def _words_field() -> fields.TEXT:
    """Each distinct unstemmed word of an article, once: the vocabulary of did-you-mean and
    autocomplete, with real document frequencies. Not scored, not stored."""
    field = fields.TEXT(analyzer=TextAnalyzer(stem=False), phrase=False)
    field.format = formats.Existence()
    field.scorable = False
    return field


def _column_only(field: fields.FieldType) -> fields.FieldType:
    """Kept in a column (and stored, if the field says so) but not indexed: dates, sizes and
    checksums are read per document or compared in bulk by the search side, never looked up
    as terms, and Whoosh indexes each 64-bit number as four terms."""
    field.indexed = False
    return field


def build_schema() -> fields.Schema:
    analyzer = TextAnalyzer()
    return fields.Schema(
        id=fields.ID(stored=True, unique=True, sortable=True),
        # No index-time field_boost: Whoosh multiplies it into the term frequency, where BM25
        # saturates it away. Field weights are applied at query time instead (see query.py).
        title=_text_field(analyzer),
        subtitle=_text_field(analyzer),
        summary=_text_field(analyzer),
        body=_text_field(analyzer),
        words=_words_field(),
        category=fields.ID(stored=True, sortable=True),
        tags=fields.KEYWORD(stored=True, commas=True, lowercase=True, scorable=True),
        date=_column_only(fields.DATETIME(stored=True, sortable=True)),
        year=_column_only(fields.ID(stored=False, sortable=True)),
        url=fields.STORED(),
        author=fields.STORED(),
        format=fields.STORED(),
        size=_column_only(fields.NUMERIC(bits=64, stored=True, sortable=True)),
        mtime_ns=_column_only(fields.NUMERIC(bits=64, stored=True, sortable=True)),
        checksum=_column_only(fields.ID(stored=True, sortable=True)),
        sketch=fields.COLUMN(columns.FixedBytesColumn(SKETCH_BYTES)),
        # Filled by the segment builder from the analysed text fields (termvectors.py).
        terms=fields.COLUMN(columns.VarBytesColumn()),
    )


def to_document(article: Article) -> dict[str, Any]:
    when = article.date or datetime.fromtimestamp(article.mtime_ns / 1e9)
    return {
        "id": article.id,
        "title": article.title,
        # Untitled articles show their first words; only a real title is indexed as a title.
        "_stored_title": article.display_title,
        "subtitle": article.subtitle,
        "summary": article.summary,
        "body": article.text,
        "category": article.category,
        "tags": ",".join(article.tags),
        "date": when,
        "year": str(when.year),
        "url": article.url,
        "author": article.author,
        "format": article.format,
        "size": article.size,
        "mtime_ns": article.mtime_ns,
        "checksum": article.checksum,
        # What the search side folds by: the text a _LazyFields candidate reads (searcher.py).
        "sketch": sketch_row(f"{article.display_title} {article.text}"),
    }
