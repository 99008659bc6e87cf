"""What pseudo-relevance feedback reads from the index, so that it never analyses a text or looks
a term up one at a time while a query waits (Anserini keeps "document vectors" for RM3 for the
same reason). Terms are named by their CRC-32 (of the UTF-8 term): a window of articles and the
term statistics meet in array operations. Two terms with the same CRC-32 in one window or one
segment are the rare price of 4 bytes a term.

Only terms feedback may use are kept: 2 to 20 letters or digits.

- A `terms` column, one value per article, little-endian:

      uint32 number of terms n | uint8 a bit per text field with terms (TEXT_FIELDS order)
      n x uint32 the terms' CRC-32s, ascending
      per field with terms, n x uint8 the term's count in that field (capped at 255)

- A table of document frequencies per segment, the file `<segment id>.dfs` inside the segment,
  little-endian:

      uint32 number of terms n | n x uint32 CRC-32s, ascending
      per text field (TEXT_FIELDS order), n x uint32 the term's document frequency in that field
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from .schema import TEXT_FIELDS

COLUMN = "terms"
FREQUENCIES = ".dfs"
_HEADER = struct.Struct("<IB")
_COUNT = struct.Struct("<I")
_MAX_COUNT = 255


def usable(term: str) -> bool:
    """Whether feedback may use a term: 2 to 20 letters or digits."""
    return 2 <= len(term) <= 20 and term.isalnum()


def term_hashes(terms: list[bytes]) -> np.ndarray:
    return np.fromiter(map(zlib.crc32, terms), dtype=np.uint32, count=len(terms))


# --- the column ---------------------------------------------------------------------------------

def encode(fields: Mapping[str, Mapping[str, Sized]]) -> bytes:
    """One article's column value from its analysed text fields: field -> term -> its positions
    (anything with a length: the count)."""
    present = [(bit, fields[name]) for bit, name in enumerate(TEXT_FIELDS) if fields.get(name)]
    terms = list(dict.fromkeys(term for _, found in present for term in found if usable(term)))
    hashes = term_hashes([term.encode("utf-8") for term in terms])
    # In hash order: a window of articles is then a few sorted runs, which sort fast together.
    order = np.argsort(hashes, kind="stable")
    parts = [_HEADER.pack(len(terms), sum(1 << bit for bit, _ in present)), hashes[order].astype("<u4").tobytes()]
    for _, found in present:
        counts = np.fromiter((len(found.get(term, ())) for term in terms), dtype=np.int64, count=len(terms))
        parts.append(np.minimum(counts[order], _MAX_COUNT).astype(np.uint8).tobytes())
    return b"".join(parts)


@dataclass(frozen=True)
class Window:
    """The term vectors of a window of articles laid end to end: entry i is term `hashes[i]` of
    article `owner[i]` (its place in the window), found `counts[f, i]` times in text field f."""

    hashes: np.ndarray  # uint32
    counts: np.ndarray  # float64, (len(TEXT_FIELDS), entries)
    owner: np.ndarray  # int64

    @classmethod
    def of(cls, values: list[bytes]) -> "Window":
        # Slices of the values joined, so that each part is one array whatever the window's size.
        sizes, hashes = [], []
        rows: list[list[bytes]] = [[] for _ in TEXT_FIELDS]
        for value in values:
            n, mask = _HEADER.unpack_from(value) if value else (0, 0)
            sizes.append(n)
            at = _HEADER.size + 4 * n
            hashes.append(value[_HEADER.size:at])
            for bit, row in enumerate(rows):
                if mask >> bit & 1:
                    row.append(value[at:at + n])
                    at += n
                else:
                    row.append(bytes(n))
        counts = np.frombuffer(b"".join(b"".join(row) for row in rows), dtype=np.uint8)
        return cls(np.frombuffer(b"".join(hashes), dtype="<u4").astype(np.uint32, copy=False),
                   counts.reshape(len(TEXT_FIELDS), -1).astype(np.float64),
                   np.repeat(np.arange(len(values), dtype=np.int64), sizes))


# --- the table of document frequencies ----------------------------------------------------------

@dataclass(frozen=True)
class Frequencies:
    """One segment's document frequencies: `table[f, i]` articles have term `hashes[i]` in text
    field f (deleted ones included, as Whoosh counts). Held in memory by every web worker, so
    only the fields with terms are kept (`rows`), in the narrowest integers that hold them."""

    hashes: np.ndarray  # uint32, ascending
    table: np.ndarray  # (len(TEXT_FIELDS), terms); see `compact`
    rows: tuple[int, ...] = tuple(range(len(TEXT_FIELDS)))  # the text fields `table` has, in order

    def compact(self) -> "Frequencies":
        rows = tuple(int(f) for f in np.flatnonzero(self.table.any(axis=1)))
        table = self.table[list(rows)]
        narrow = np.uint16 if not table.size or table.max() <= np.iinfo(np.uint16).max else np.uint32
        return Frequencies(self.hashes, table.astype(narrow), rows)

    def full_table(self) -> np.ndarray:
        table = np.zeros((len(TEXT_FIELDS), len(self.hashes)), dtype=np.uint32)
        table[list(self.rows)] = self.table
        return table

    @classmethod
    def of(cls, fields: Mapping[str, Iterable[tuple[bytes, int]]]) -> "Frequencies":
        """From each text field's (term as UTF-8, document frequency) pairs."""
        counter = FrequencyCounter()
        for name, pairs in fields.items():
            for term, frequency in pairs:
                counter.add(name, term, frequency)
        return counter.table()

    def to_bytes(self) -> bytes:
        return _COUNT.pack(len(self.hashes)) + self.hashes.astype("<u4").tobytes() + self.full_table().astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Frequencies":
        (n,) = _COUNT.unpack_from(data)
        hashes = np.frombuffer(data, dtype="<u4", count=n, offset=_COUNT.size).astype(np.uint32)
        table = np.frombuffer(data, dtype="<u4", count=len(TEXT_FIELDS) * n, offset=_COUNT.size + 4 * n)
        return cls(hashes, table.astype(np.uint32).reshape(len(TEXT_FIELDS), n))

    def write(self, storage: Any, segment: Any) -> None:
        with segment.create_file(storage, FREQUENCIES) as out:
            out.write(self.to_bytes())

    @classmethod
    def read(cls, leaf: Any) -> "Frequencies":
        """A Whoosh segment reader's table: its file, or, for a segment written without one, the
        same figures from its term dictionary (a second or so for a large segment)."""
        name = leaf.segment().make_filename(FREQUENCIES)
        if leaf._storage.file_exists(name):
            with leaf._storage.open_file(name) as data:
                return cls.from_bytes(data.read()).compact()
        fields = {name: [(term, info.doc_frequency()) for term, info in _terms(leaf, name)]
                  for name in TEXT_FIELDS}
        return cls.of(fields).compact()

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """found[f, i]: the document frequency in text field f of term `hashes[i]` (0: none)."""
        found = np.zeros((len(TEXT_FIELDS), len(hashes)), dtype=np.int64)
        if len(self.hashes):
            at = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
            found[list(self.rows)] = np.where(self.hashes[at] == hashes, self.table[:, at], 0)
        return found


class FrequencyCounter:
    """Collects a segment's (field, term, document frequency) as the segment writer writes its
    terms, in arrays (a merged segment has hundreds of thousands of terms)."""

    def __init__(self) -> None:
        self._fields = {name: (array("I"), array("I")) for name in TEXT_FIELDS}

    def add(self, fieldname: str, term: bytes, frequency: int) -> None:
        found = self._fields.get(fieldname)
        if found is not None and usable(term.decode("utf-8")):
            found[0].append(zlib.crc32(term))
            found[1].append(frequency)

    def table(self) -> Frequencies:
        columns = [(np.frombuffer(hashes, dtype=np.uint32), np.frombuffer(frequencies, dtype=np.uint32))
                   for hashes, frequencies in self._fields.values()]
        hashes = np.unique(np.concatenate([found for found, _ in columns]))
        table = np.zeros((len(TEXT_FIELDS), len(hashes)), dtype=np.uint32)
        for bit, (found, frequencies) in enumerate(columns):
            table[bit, np.searchsorted(hashes, found)] = frequencies
        return Frequencies(hashes, table)


def _terms(leaf: Any, fieldname: str) -> Iterable[tuple[bytes, Any]]:
    if fieldname not in leaf.schema or fieldname not in leaf._terms._fieldmap:
        return
    for (name, term), info in leaf._terms.items_from(fieldname, b""):
        if name != fieldname:
            return
        yield term, info
