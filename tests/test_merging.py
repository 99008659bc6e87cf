"""Big segments are merged into one in a process of their own while commits go on: what was
committed during the merge (updates, deletes, new articles) is all there after it, searches see
one segment fewer per merge, a failed or abandoned merge loses nothing, and the daemon publishes
a finished merge by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.store import MERGE_BUDGET_DOCS
from searchd.folder import FileRules
from searchd.sync import index_once, reconcile

from .daemon_helpers import (article, assert_index_equals_folder, eventually, hits, running, searcher, segments,
                             write)

BATCH = MERGE_BUDGET_DOCS  # each batch of a bulk index a big segment
MAX_BYTES = 10_000_000


def _bulk(folder: Path, index_dir: Path) -> None:
    """Three bulk indexes of BATCH + 50 new files each, then one of 100: three big segments and a
    small one."""
    n = 0
    for files in (BATCH + 50, BATCH + 50, BATCH + 50, 100):
        for n in range(n, n + files):
            write(folder / f"d{n % 7}" / f"a{n}.txt", article(f"token{n}", f"Harbour log {n}"))
        n += 1
        index_once(WhooshEngine(index_dir), folder, FileRules(), MAX_BYTES, batch_size=100 * BATCH)
    assert segments(index_dir) == 4


def _ids_by_segment(writer) -> list[list[str]]:
    """The live ids of each segment of the writer's index, in index order."""
    from whoosh.reading import SegmentReader

    ids = []
    for segment in writer.ix._segments():
        reader = SegmentReader(writer.ix.storage, writer.ix.schema, segment)
        try:
            ids.append([fields["id"] for _, fields in reader.iter_docs()])
        finally:
            reader.close()
    return ids


def _staged(index_dir: Path) -> list[Path]:
    return [path for path in index_dir.glob("ix-*/.staging/*")]


def test_what_is_committed_during_a_background_merge_is_all_there_after_it(tmp_path: Path) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    _bulk(folder, index_dir)
    writer = WhooshEngine(index_dir).open_writer()
    try:
        big = [ids for ids in _ids_by_segment(writer) if len(ids) >= BATCH]
        assert len(big) == 3
        assert writer.merge() is False and writer.merging  # started: nothing published yet
        # Commits while the merge copies its snapshot: into its sources and beside them.
        deleted, updated, emptied = big[0][:20], big[1][:20], big[2]
        for doc_id in deleted:
            (folder / doc_id).unlink()
        for doc_id in updated:
            write(folder / doc_id, article(f"renamed{doc_id.replace('/', '')}", "Ferry log"))
        for n in range(5):
            write(folder / "new" / f"b{n}.txt", article(f"fresh{n}"))
        reconcile(writer, folder, FileRules(), MAX_BYTES)
        # One source loses every document: the merge must not bring any of them back.
        for doc_id in emptied:
            (folder / doc_id).unlink()
        reconcile(writer, folder, FileRules(), MAX_BYTES)
        before = segments(index_dir)
        eventually(writer.merge_ready, timeout=120, interval=0.05)
        assert writer.merge() is True and not writer.merging
    finally:
        writer.close()
    assert segments(index_dir) == before - 2  # three sources, one merged segment
    assert_index_equals_folder(folder, index_dir, timeout=0)
    search = searcher(index_dir)
    token = lambda doc_id: "token" + doc_id.rsplit("/a", 1)[1].removesuffix(".txt")  # noqa: E731
    assert all(hits(search, token(doc_id)) == set() for doc_id in deleted + emptied[::50])
    assert all(hits(search, token(doc_id)) == set() for doc_id in updated)
    assert all(hits(search, f"renamed{doc_id.replace('/', '')}") == {doc_id} for doc_id in updated)
    kept = big[0][-1]
    assert hits(search, token(kept)) == {kept} and hits(search, "fresh4") == {"new/b4.txt"}
    assert _staged(index_dir) == []


def test_closing_the_writer_abandons_a_merge_and_leaves_nothing_staged(tmp_path: Path) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    _bulk(folder, index_dir)
    writer = WhooshEngine(index_dir).open_writer()
    assert writer.merge() is False and writer.merging
    writer.close()  # as a daemon stopping mid-merge does
    assert segments(index_dir) == 4
    writer = WhooshEngine(index_dir).open_writer()  # a leftover of a killed merge goes at the next open
    writer.close()
    assert _staged(index_dir) == []
    assert_index_equals_folder(folder, index_dir, timeout=0)


def test_a_merge_that_fails_loses_nothing_and_is_tried_again_later(tmp_path: Path, monkeypatch) -> None:
    from searchd.engines.whoosh import merging, writer as writer_module

    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    _bulk(folder, index_dir)
    writer = WhooshEngine(index_dir).open_writer()
    try:
        writer.merge()
        background = writer._background
        background._process.kill()  # the merge's process dies (out of memory, say)
        eventually(writer.merge_ready, timeout=30)
        with pytest.raises(RuntimeError, match="background merge of 3 segments failed"):
            writer.merge()
        assert not writer.merging and segments(index_dir) == 4
        writer.merge()
        assert not writer.merging, "a failed merge is not retried at once"
        monkeypatch.setattr(writer, "_background_after", 0.0)
        writer.merge()
        assert writer.merging
    finally:
        writer.close()
    assert isinstance(background, merging.BackgroundMerge) and writer_module.BACKGROUND_RETRY > 1
    assert_index_equals_folder(folder, index_dir, timeout=0)


def test_the_daemon_publishes_a_background_merge_and_reports_it(tmp_path: Path) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    _bulk(folder, index_dir)
    with running(folder, index_dir) as daemon:
        eventually(lambda: daemon.status()["merging"], timeout=30)
        write(folder / "late.txt", article("latecomer"))  # a change while it merges is not held up
        assert_index_equals_folder(folder, index_dir, timeout=30)
        eventually(lambda: not daemon.status()["merging"] and segments(index_dir) <= 3, timeout=120, interval=0.1)
        assert hits(searcher(index_dir), "latecomer") == {"late.txt"}
    assert_index_equals_folder(folder, index_dir, timeout=0)
