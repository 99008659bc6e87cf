"""The embedded engine: a Whoosh index in a local directory, one writer process (holding the
directory's lock) and any number of reader processes, which share the index files through the
page cache."""

from __future__ import annotations

from pathlib import Path

from .ranking import Ranking
from .store import WriterLock, writer_holds
from .writer import MAX_SEGMENTS, WhooshWriter


class WhooshEngine:
    name = "whoosh"

    def __init__(self, index_dir: Path, ranking: Ranking | None = None):
        self.index_dir = Path(index_dir)
        self.ranking = ranking or Ranking()

    def describe(self) -> str:
        return f"index {self.index_dir}"

    def open_writer(self, max_segments: int = MAX_SEGMENTS) -> WhooshWriter:
        """The one writer (raises IndexBusy naming the process that already writes)."""
        lock = WriterLock(self.index_dir).acquire()
        try:
            return WhooshWriter(self.index_dir, max_segments, lock=lock)
        except BaseException:
            lock.release()
            raise

    def open_reader(self) -> "WhooshReader":
        from .searcher import WhooshReader

        return WhooshReader(self.index_dir, self.ranking)

    def writer_running(self) -> bool:
        """Whether a daemon (or `searchd index`) holds the index now."""
        return writer_holds(self.index_dir)
