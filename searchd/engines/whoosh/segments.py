"""Documents -> one Whoosh segment on disk, written straight in Whoosh's own W3 format.

Whoosh's SegmentWriter sends every posting of every document through a generic pool (one
tuple, one size estimate and three assertions each), sorts them all, then writes them one call
at a time: most of the indexing time, in pure Python. A segment built here holds each term's
postings in compact arrays as documents arrive and writes them a block at a time, to the same
files with the same bytes (tests/test_segments.py compares the two byte for byte), so Whoosh
reads, searches and merges these segments like its own.

A segment is built in a staging directory and moved into the index only by the commit that
publishes it (writer.py), so a crash or a failed commit never leaves a half-written segment where
Whoosh would read it.
"""

from __future__ import annotations

import heapq
import os
import shutil
import uuid
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
import struct
import sys
from hashlib import md5
from itertools import accumulate, groupby
from operator import sub
from pickle import dumps, loads
from typing import Any, Iterable, Iterator
from whoosh.codec import default_codec
from whoosh.codec.whoosh3 import W3TermInfo, WHOOSH3_HEADER_MAGIC
from whoosh.fields import Schema
from whoosh.filedb.filestore import FileStorage
from whoosh.system import pack_int, pack_long, pack_ushort, unpack_int
from whoosh.util.numeric import byte_to_length, length_to_byte

from ...analysis import INDEXING_MEMO, Normaliser
from . import termvectors
from .schema import TEXT_FIELDS, WORDS_FIELD
from .vocabulary import WordList

STAGING = ".staging"
INDEX_NAME = "MAIN"
# Whoosh's W3 codec: postings per block, zlib level.
_BLOCK = 128
_COMPRESSION = 3
# Blocks whose pickle is shorter are written uncompressed (see _write_term).
COMPRESS_FROM = 256
# Whoosh's record layouts: a hash file's key and value lengths, W3TermInfo's fixed part.
_LENGTHS = struct.Struct("!ii")
_TERM_INFO = W3TermInfo._struct


@dataclass(frozen=True)
class StagedSegment:
    """A finished segment waiting in a staging directory for the commit that publishes it."""

    directory: str
    segment: Any  # whoosh.codec.whoosh3.W3Segment, picklable
    ids: tuple[str, ...]

    @property
    def filename(self) -> str:
        return self.segment.make_filename(self.segment.COMPOUND_EXT)

    def move_into(self, index_folder: str) -> None:
        os.replace(os.path.join(self.directory, self.filename), os.path.join(index_folder, self.filename))

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def staging_root(index_folder: str | Path) -> Path:
    return Path(index_folder) / STAGING


def posting_blocks(postfile: Any, info: W3TermInfo) -> Iterator[tuple[int, tuple[int, ...], Any, Any]]:
    """A term's posting blocks as Whoosh's W3 format stores them (per block of 128: a header
    tuple, then a pickled, maybe compressed, tuple of delta-coded ids, weights and values):
    (count, deltas, weights, values) per block, weights and values as stored (None for all 1.0
    or none, one float for all equal, else a tuple; values joined when of fixed size)."""
    if info.is_inlined():
        ids, weights, values = info.inlined_postings()
        yield len(ids), tuple(ids[:1]) + tuple(map(sub, ids[1:], ids[:-1])), tuple(weights), tuple(values)
        return
    # The extent's length as Whoosh reads it back is unusable (a tuple); blocks say where the
    # list ends instead (the last one has a negative size).
    position = info.extent()[0] + 4  # after the header tag
    last = False
    while not last:
        size = unpack_int(postfile.get(position, 4))[0]
        last = size < 0
        size = abs(size)
        block = postfile.get(position + 4, size)
        position += 4 + size
        header = loads(block)
        data = block[len(dumps(header, 2)):]
        if header[3]:  # compression level
            data = zlib.decompress(data)
        deltas, weights, values = loads(data)
        yield header[0], deltas, weights, values


def decode_postings(postfile: Any, info: W3TermInfo, fmt: Any) -> tuple[list[int], list[float] | None, list[bytes] | None]:
    """A term's postings: ascending document numbers, weights (None when all are 1), and each
    posting's value bytes (None for formats without values)."""
    fixed = fmt.fixed_value_size()
    ids: list[int] = []
    weights: list[float] = []
    values: list[bytes] | None = None if fixed == 0 else []
    ones = True
    for count, deltas, block_weights, block_values in posting_blocks(postfile, info):
        ids.extend(accumulate(deltas))
        if block_weights is None:
            weights.extend([1.0] * count)
        elif isinstance(block_weights, float):
            weights.extend([block_weights] * count)
            ones = ones and block_weights == 1.0
        else:
            weights.extend(block_weights)
            ones = False
        if values is not None:
            if fixed is None or fixed < 0:
                values.extend(block_values)
            else:
                values.extend(block_values[i:i + fixed] for i in range(0, len(block_values), fixed))
    return ids, (None if ones else weights), values


class SegmentBuilder:
    """Add documents (the dicts of index.to_document), then `finish()` writes the segment.

    Text fields are analysed with analysis.Normaliser (the analyzer the schema declares), and the
    `words` field is filled from their unstemmed words; every other field is analysed by its own
    Whoosh field type, exactly as Whoosh's writer would."""

    def __init__(self, schema: Schema, index_folder: str | Path, compress_from: int = COMPRESS_FROM):
        self.schema = schema
        self.compress_from = compress_from
        self.directory = staging_root(index_folder) / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.directory.mkdir(parents=True)
        self.storage = FileStorage(str(self.directory))
        self.codec = default_codec()
        self.segment = self.codec.new_segment(self.storage, INDEX_NAME)
        self._perdoc = self.codec.per_document_writer(self.storage, self.segment)
        self._normaliser = Normaliser(memo=INDEXING_MEMO)
        self._names = sorted(name for name in schema.names() if name != WORDS_FIELD)
        # field -> term -> (document numbers, frequencies, positions of all of them in a row)
        self._text: dict[str, dict[str, tuple[array, array, array]]] = {name: {} for name in TEXT_FIELDS}
        self._words: dict[str, array] = {}
        # other indexed fields: field -> term bytes -> [(docnum, weight, value bytes)]
        self._other: dict[str, dict[bytes, list[tuple[int, float, bytes]]]] = {}
        # field -> docnum -> length as Whoosh will read it back (a byte, decoded)
        self._lengths: dict[str, dict[int, int]] = {}
        self._ids: list[str] = []
        # Segments being copied (a merge): their readers and old -> new document numbers.
        self._sources: list[tuple[Any, list[int]]] = []

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, document: dict[str, Any]) -> None:
        """Analyse first, then record: a document whose analysis fails (a value a field type
        refuses) raises and leaves the segment exactly as it was."""
        schema = self.schema
        docnum = len(self._ids)
        text: dict[str, dict[str, list[int]]] = {}
        other: dict[str, list[tuple[bytes, float, bytes]]] = {}
        words: set[str] = set()
        perdoc: list[tuple[str, Any, Any, int, Any]] = []  # name, field, stored, length, column value
        for name in self._names:
            value = document.get(name)
            if value is None:
                continue
            field = schema[name]
            length = 0
            if name in self._text:
                text[name], field_words, length = self._normaliser.index(value)
                words |= field_words
            elif field.indexed:
                items = other[name] = []
                for term, frequency, weight, encoded in field.index(value):
                    length += frequency
                    items.append((term, weight * 1.0, encoded))
            stored = document.get(f"_stored_{name}", value)
            column = field.to_column_value(stored) if field.column_type and stored is not None else None
            perdoc.append((name, field, stored if field.stored else None, length if field.scorable else 0, column))

        writer = self._perdoc
        writer.start_doc(docnum)
        for name, field, stored, length, column in perdoc:
            writer.add_field(name, field, stored, length)
            if column is not None:
                writer.add_column_value(name, field.column_type, column)
            if length:
                self._lengths.setdefault(name, {})[docnum] = byte_to_length(length_to_byte(length))
        if termvectors.COLUMN in schema:
            writer.add_column_value(termvectors.COLUMN, schema[termvectors.COLUMN].column_type,
                                    termvectors.encode(text))
        writer.finish_doc()
        for name, found in text.items():
            postings = self._text[name]
            for term, places in found.items():
                entry = postings.get(term)
                if entry is None:
                    postings[term] = entry = (array("I"), array("I"), array("I"))
                entry[0].append(docnum)
                entry[1].append(len(places))
                entry[2].extend(places)
        for name, items in other.items():
            postings = self._other.setdefault(name, {})
            for term, weight, encoded in items:
                postings.setdefault(term, []).append((docnum, weight, encoded))
        if WORDS_FIELD in schema:
            for word in words:
                docs = self._words.get(word)
                if docs is None:
                    self._words[word] = docs = array("I")
                docs.append(docnum)
        self._ids.append(document["id"])

    def copy(self, leaves: list[Any]) -> None:
        """Take the live documents of existing segments (Whoosh segment readers, in index order)
        as they are: stored fields, lengths, columns and postings, renumbered. This is a merge:
        what Whoosh's add_reader does one posting at a time, a posting list at a time."""
        if self._ids or self._sources:
            raise ValueError("a segment copies other segments or adds documents, not both")
        for leaf in leaves:
            self._sources.append((leaf, self._copy_documents(leaf)))

    def renumbering(self) -> list[list[int]]:
        """Per copied segment, its document numbers -> this segment's (-1: not copied, deleted)."""
        return [numbers for _, numbers in self._sources]

    def _copy_documents(self, leaf: Any) -> list[int]:
        schema = self.schema
        perdoc = self._perdoc
        names = [name for name in self._names if name in schema]
        columns = {name: leaf.column_reader(name, translate=False) for name in names
                   if schema[name].column_type and leaf.has_column(name)}
        deleted = set(leaf.segment().deleted_docs() or ())
        renumbered = [-1] * leaf.doc_count_all()
        for old in range(leaf.doc_count_all()):
            if old in deleted:
                continue
            docnum = len(self._ids)
            stored = leaf.stored_fields(old)
            perdoc.start_doc(docnum)
            for name in names:
                field = schema[name]
                length = (leaf.doc_field_length(old, name) or 0) if field.scorable else 0
                perdoc.add_field(name, field, stored.get(name) if field.stored else None, length)
                if length:
                    self._lengths.setdefault(name, {})[docnum] = length
                if name in columns:
                    perdoc.add_column_value(name, field.column_type, columns[name][old])
            perdoc.finish_doc()
            renumbered[old] = docnum
            self._ids.append(stored["id"])
        return renumbered

    def _copied_postings(self, fieldname: str) -> Iterator[tuple[bytes, Any, Any, Any]]:
        """The field's terms across the copied segments, in order, with their live postings."""
        fmt = self.schema[fieldname].format
        keeps_values = fmt.fixed_value_size() != 0
        streams = [_terms_of(leaf, fieldname, number) for number, (leaf, _) in enumerate(self._sources)
                   if fieldname in leaf._terms._fieldmap]
        for term, group in groupby(heapq.merge(*streams, key=lambda item: item[0]), key=lambda item: item[0]):
            ids: list[int] = []
            weights: list[float] = []
            values: list[bytes] = []
            ones = True
            for _, number, info in group:
                leaf, renumbered = self._sources[number]
                found_ids, found_weights, found_values = decode_postings(leaf._terms._postfile, info, fmt)
                for i, old in enumerate(found_ids):
                    new = renumbered[old]
                    if new < 0:
                        continue
                    ids.append(new)
                    weights.append(1.0 if found_weights is None else found_weights[i])
                    if found_values is not None:
                        values.append(found_values[i])
                ones = ones and found_weights is None
            if ids:
                yield term, ids, None if ones else weights, values if keeps_values else None

    def finish(self) -> StagedSegment:
        """Write the postings and the term index, pack the segment into one file and return it,
        still staged."""
        try:
            self._perdoc.close()
            self._write_postings()
            self.segment.set_doc_count(len(self._ids))
            self.segment.create_compound_file(self.storage)
        except BaseException:
            self.discard()
            raise
        return StagedSegment(str(self.directory), self.segment, tuple(self._ids))

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _write_postings(self) -> None:
        fieldwriter = self.codec.field_writer(self.storage, self.segment)
        postings_out = _Output(fieldwriter._postfile)
        terms_out = _TermTable(fieldwriter._tindex)
        fields: dict[str, Iterable[tuple[bytes, Any, Any, Any]]] = {}
        for name, postings in self._text.items():
            if postings:
                fields[name] = _text_postings(postings)
        if self._words:
            fields[WORDS_FIELD] = ((word.encode("utf-8"), docs, None, None) for word, docs in sorted(self._words.items()))
        for name, postings in self._other.items():
            if postings:
                fields[name] = ((term, [p[0] for p in entry], [p[1] for p in entry], [p[2] for p in entry])
                                for term, entry in sorted(postings.items()))
        for leaf, _ in self._sources:
            for name in leaf._terms._fieldmap:
                if name in self.schema and name not in fields:
                    fields[name] = self._copied_postings(name)
        # What feedback and did-you-mean read, taken down as the terms go by (termvectors.py,
        # vocabulary.py).
        frequencies = termvectors.FrequencyCounter()
        words = WordList(self.storage, self.segment)
        for name in sorted(fields):
            field = self.schema[name]
            fieldwriter.start_field(name, field)
            key_prefix = pack_ushort(fieldwriter._fieldid)
            lengths = self._lengths.get(name, {})
            fixed = field.format.fixed_value_size()
            counted, listed = name in TEXT_FIELDS, name == WORDS_FIELD
            for term, docs, weights, values in fields[name]:
                info = _write_term(postings_out, fixed, docs, weights, values, lengths, self.compress_from)
                terms_out.add(key_prefix + term, info)
                if counted:
                    frequencies.add(name, term, len(docs))
                elif listed:
                    words.add(term)
            postings_out.flush()
            terms_out.flush()
            fieldwriter.finish_field()
        fieldwriter.close()
        words.close()
        frequencies.table().write(self.storage, self.segment)


def _terms_of(leaf: Any, fieldname: str, number: int) -> Iterator[tuple[bytes, int, W3TermInfo]]:
    """(term, number, term info) of each term of a field in a segment, in order."""
    for (name, term), info in leaf._terms.items_from(fieldname, b""):
        if name != fieldname:
            return
        yield term, number, info


def _text_postings(postings: dict[str, tuple[array, array, array]]) -> Iterator[tuple[bytes, Any, Any, Any]]:
    for term, (docs, frequencies, positions) in sorted(postings.items()):
        if sys.byteorder != "little":
            positions = array("I", positions)
            positions.byteswap()
        raw = positions.tobytes()
        if len(docs) == 1:
            values = [raw]
        else:
            values = []
            start = 0
            for frequency in frequencies:
                end = start + 4 * frequency
                values.append(raw[start:end])
                start = end
        yield term.encode("utf-8"), docs, frequencies, values


class _Output:
    """Appends to a Whoosh file, keeping the position itself and writing in large pieces."""

    def __init__(self, dbfile: Any):
        self.dbfile = dbfile
        self.position = dbfile.tell()
        self._parts: list[bytes] = []
        self._pending = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self.position += len(data)
        self._pending += len(data)
        if self._pending >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self.dbfile.write(b"".join(self._parts))
            self._parts.clear()
            self._pending = 0


class _TermTable:
    """OrderedHashWriter.add for many keys: the same records, hash buckets and key index,
    without a tell() and three writes per term."""

    def __init__(self, table: Any):
        self.table = table
        self.out = _Output(table.dbfile)
        self.buckets = table.buckets
        self.index = table.index

    def add(self, key: bytes, info: W3TermInfo) -> None:
        value = _term_info_bytes(info)
        position = self.out.position
        self.index.append(position)
        self.out.write(_LENGTHS.pack(len(key), len(value)) + key + value)
        digest = int.from_bytes(md5(key, usedforsecurity=False).digest()[12:], "big")
        self.buckets[digest & 255].append((digest, position))
        self.table.lastkey = key

    def flush(self) -> None:
        self.out.flush()


def _term_info_bytes(info: W3TermInfo) -> bytes:
    """W3TermInfo.to_bytes for postings that are not inlined."""
    minlength = 0 if info._minlength is None else length_to_byte(info._minlength)
    return _TERM_INFO.pack(0, info._weight, info._df, minlength, length_to_byte(info._maxlength),
                           info._maxweight, info._minid, info._maxid) + pack_long(info._offset) + pack_int(info._length)


def _write_term(out: _Output, fixed: int | None, docs: Any, frequencies: Any, values: list[bytes] | None,
                lengths: dict[int, int], compress_from: int) -> W3TermInfo:
    """One posting list, in blocks of _BLOCK postings, as W3PostingsWriter writes it. `frequencies`
    are the postings' weights (None: all 1). Blocks whose pickle is shorter than `compress_from`
    bytes are stored uncompressed (Whoosh's block header says which; zlib costs ~90 us a call
    whatever the size, more than it saves on the few postings of a rare term)."""
    info = W3TermInfo()
    start = out.position
    count = len(docs)
    out.write(WHOOSH3_HEADER_MAGIC)
    total_weight = 0.0
    max_weight_all = 0.0
    min_length_all = None
    max_length_all = 0
    for first in range(0, count, _BLOCK):
        last = min(first + _BLOCK, count)
        whole = count <= _BLOCK
        ids = docs if whole else docs[first:last]
        size = last - first
        if frequencies is None:
            mini_weights, max_weight, weight = None, 1.0, float(size)
        else:
            block = frequencies if whole else frequencies[first:last]
            max_weight = float(max(block))
            weight = float(sum(block))
            if max_weight == 1.0 and weight == size:
                mini_weights = None
            elif weight == max_weight * size:
                mini_weights = max_weight
            else:
                mini_weights = tuple(map(float, block))
        if lengths:
            if size == 1:
                min_length = max_length = lengths[ids[0]]
            else:
                block_lengths = [lengths[d] for d in ids]
                min_length, max_length = min(block_lengths), max(block_lengths)
            if min_length_all is None or min_length < min_length_all:
                min_length_all = min_length
            if max_length > max_length_all:
                max_length_all = max_length
        else:
            min_length, max_length = None, 0
        total_weight += weight
        if max_weight > max_weight_all:
            max_weight_all = max_weight

        # Whoosh delta-encodes each block from zero.
        deltas = (ids[0],) if size == 1 else (ids[0], *map(sub, ids[1:], ids[:-1]))
        if fixed == 0:
            block_values = None
        else:
            present = values if whole else values[first:last]
            block_values = tuple(present) if fixed is None or fixed < 0 else b"".join(present)
        data = dumps((deltas, mini_weights, block_values), 2)
        compression = _COMPRESSION if len(data) >= compress_from else 0
        if compression:
            data = zlib.compress(data, compression)
        header = dumps((size, ids[-1], max_weight, compression,
                        length_to_byte(min_length), length_to_byte(max_length)), 2)
        length = len(header) + len(data)
        out.write(pack_int(-length if last == count else length) + header + data)
    info._weight = total_weight
    info._df = count
    info._minlength = min_length_all
    info._maxlength = max_length_all
    info._maxweight = max_weight_all
    info._minid = docs[0]
    info._maxid = docs[-1]
    info.set_extent(start, out.position - start)
    return info
