"""Reading the live Whoosh index: open it (retrying when a commit swaps its table of contents
mid-read), reuse unchanged segment readers across generations, and tell cheaply when a new
generation is there. Readers never take the writer lock."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

from ..base import IndexMissing
from .store import CURRENT, RefreshSafeIndex, current_dir, storage

# Seconds a reader trusts unchanged file times for the index generation (IndexReader.version).
VERSION_RECHECK = 1.0


class IndexReader:
    """Read-only access for the search side. Never takes the writer lock."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self._current_file = self.index_dir / CURRENT  # stat'ed for every query: joined once
        self._live: Path | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._version: tuple[str, int] = ("", -1)

    def open(self) -> whoosh_index.Index:
        missing = f"no index in {self.index_dir}: run `searchd index` or `searchd serve` first"
        for attempt in range(10):
            directory = current_dir(self.index_dir)
            if directory is None:
                raise IndexMissing(missing)
            try:
                return RefreshSafeIndex(storage(directory, readonly=True))
            except whoosh_index.EmptyIndexError:
                raise IndexMissing(missing) from None
            except FileNotFoundError:
                # A commit replaced the table of contents between listing and reading it (or
                # the index directory was swapped): the next one is there, read again.
                if attempt == 9:
                    raise
                time.sleep(0.005)
        raise IndexMissing(missing)

    def open_reader(self, previous: Any = None) -> Any:
        """A Whoosh reader of the current generation, reusing the segment readers of `previous`
        (a reader of the same index directory) for segments that did not change. Nothing of
        `previous` is closed: queries still running on it finish, and its files close when the
        last reference to it goes."""
        for attempt in range(10):
            ix = self.open()
            try:
                return ix.reader(reuse=previous, close_unused=False) if previous is not None else ix.reader()
            except FileNotFoundError:  # a commit replaced the TOC or a merge removed a segment
                if attempt == 9:
                    raise
                time.sleep(0.005)
        raise IndexMissing(f"no index in {self.index_dir}")

    def version(self) -> tuple[str, int]:
        """Changes whenever a reader must look again: a new commit or a swapped index.

        Reading it means listing the index directory (half a millisecond); asked for every query,
        it is first answered from the modification times of CURRENT and of the live directory,
        which every commit changes. On a file system whose times are coarser than the commits
        come, the listing is still redone at least every VERSION_RECHECK seconds."""
        try:
            stamp = (os.stat(self._current_file).st_mtime_ns, os.stat(self._live).st_mtime_ns)
        except (OSError, TypeError):
            stamp = None
        now = time.monotonic()
        if stamp is not None and stamp == self._stamp and now - self._checked < VERSION_RECHECK:
            return self._version
        version = self._read_version()
        self._stamp, self._checked, self._version = stamp, now, version
        self._live = self.index_dir / version[0] if version[0] else None
        return version

    def _read_version(self) -> tuple[str, int]:
        directory = current_dir(self.index_dir)
        if directory is None:
            return ("", -1)
        try:
            generation = whoosh_index.FileIndex(FileStorage(str(directory))).latest_generation()
        except Exception:
            generation = -1
        return (directory.name, generation)
