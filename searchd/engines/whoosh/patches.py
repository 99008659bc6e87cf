"""Every change searchd makes to Whoosh's own code, each with the reason, in one place: applied
once when the engine package is imported, after checking that the installed whoosh-reloaded is a
release they were verified against (they reach into private attributes, which a new release may
rename or change)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

# Releases of whoosh-reloaded whose internals the patches here, the segment writer
# (segments.py) and the evaluator (evaluator.py) were checked against, byte for byte by
# tests/test_segments.py.
VERIFIED_RELEASES = ("2.7.4", "2.7.5")


class UnverifiedWhoosh(RuntimeError):
    pass


def check_release() -> str:
    try:
        release = version("whoosh-reloaded")
    except PackageNotFoundError:
        raise UnverifiedWhoosh(
            "searchd needs the whoosh-reloaded distribution (pip install 'whoosh-reloaded>=2.7.5,<2.8'); "
            "another distribution of the `whoosh` module is installed or none is") from None
    if release not in VERIFIED_RELEASES:
        raise UnverifiedWhoosh(
            f"whoosh-reloaded {release} is installed; searchd's Whoosh engine reads and writes Whoosh's "
            f"files directly and was verified on {', '.join(VERIFIED_RELEASES)} only: install one of those")
    return release


def apply() -> None:
    check_release()
    _remember_missing_length_columns()
    _read_segments_with_pread()
    _read_schemas_pickled_before_the_engine_package()


def _read_schemas_pickled_before_the_engine_package() -> None:
    """An index's table of contents holds its schema pickled, which names the classes of our
    analyzer and position format by module. Indexes written before this package existed name
    `searchd.schema`; the classes are the same, they now live in this package's schema module."""
    from . import schema

    sys.modules.setdefault("searchd.schema", schema)


def _remember_missing_length_columns() -> None:
    """Whoosh looks up a field's length column once per posting while it writes a segment, and
    caches only the columns it finds: for fields stored without lengths (words, id, category) each
    lookup is a stat() of a file that does not exist, ~120,000 per 1,000 articles and a fifth of
    the indexing time. Segment files never change once written, so "not there" can be cached too."""
    from whoosh.codec import whoosh3

    reader_class = whoosh3.W3PerDocReader
    if getattr(reader_class, "_searchd_caches_missing", False):
        return
    original = reader_class._cached_reader

    def cached_reader(self: Any, fieldname: str, column: Any) -> Any:
        if fieldname in self._readers:
            return self._readers[fieldname]
        reader = original(self, fieldname, column)
        if reader is None:
            self._readers[fieldname] = None
        return reader

    reader_class._cached_reader = cached_reader
    reader_class._searchd_caches_missing = True



class _PreadReader:
    """The file-like side of a _PreadFile: sequential reads, each one os.pread."""

    def __init__(self, fd: int, offset: int, length: int):
        self._fd, self._offset, self._length = fd, offset, length
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._position
        size = left if size is None or size < 0 else max(0, min(size, left))
        data = os.pread(self._fd, size, self._offset + self._position)
        self._position += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # pickle.load asks for it; protocol 2 never uses it
        line = b""
        while not line.endswith(b"\n") and (piece := self.read(1)):
            line += piece
        return line

    def seek(self, position: int, whence: int = 0) -> int:
        self._position = {0: 0, 1: self._position, 2: self._length}[whence] + position
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        pass

    def flush(self) -> None:
        pass


def _read_segments_with_pread() -> None:
    """Whoosh reads a file inside a segment's compound file either through a memory map, as
    BytesIO(map) (which copies the whole file: every reader held a private copy of every
    postings file and term dictionary) or through a shared file object (a seek and a read, in
    Python, per read, and one position for all threads). Here each read is one os.pread: no
    copy, no mapping (the page cache keeps the index, the process does not), and no shared
    position. The readers of searchd open storage with supports_mmap=False to take this path."""
    from whoosh.filedb import compound, structfile

    if getattr(compound.CompoundStorage, "_searchd_pread", False) or not hasattr(os, "pread"):
        return

    class PreadFile(structfile.StructFile):
        def __init__(self, owner: Any, offset: int, length: int, name: str | None = None):
            self._owner = owner  # keeps the descriptor open while any part of the file is read
            self._fd, self._offset, self._length = owner.fileno(), offset, length
            self._name = name
            self.file = _PreadReader(self._fd, offset, length)
            self.onclose = None
            self.is_real = False
            self.is_closed = False

        def get(self, position: int, length: int) -> bytes:
            return os.pread(self._fd, max(0, min(length, self._length - position)), self._offset + position)

        def subset(self, position: int, length: int, name: str | None = None) -> "PreadFile":
            return PreadFile(self._owner, self._offset + position, length, name or self._name)

        def close(self) -> None:
            self.is_closed = True

    original = compound.CompoundStorage.open_file

    def open_file(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._source is None and self._file is not None and hasattr(self._file, "fileno") and not self.is_closed:
            offset, length = self.range(name)
            return PreadFile(self._file, offset, length, name=name)
        return original(self, name, *args, **kwargs)

    compound.CompoundStorage.open_file = open_file
    compound.CompoundStorage._searchd_pread = True
