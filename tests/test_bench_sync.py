"""Bulk reconcile speed-related behaviour of searchd/sync.py: segments built by worker
processes in growing sizes (few segments after a bulk index, the first results early) and
bounded, order-keeping parallel parsing."""

from __future__ import annotations

from pathlib import Path

from searchd.folder import FileRules
from searchd.engines.whoosh import WhooshEngine
from searchd.search import SearchRequest
from searchd.sync import _PARALLEL_THRESHOLD, parse_all, reconcile

from .daemon_helpers import searcher as open_searcher


def _write_articles(folder: Path, count: int) -> None:
    for n in range(count):
        directory = folder / ("markets" if n % 2 else "energy")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{n:05d}.txt").write_text(
            f"Report number {n}\n\nThe article {n} talks about oil and markets, word{n} included.\n",
            encoding="utf-8",
        )


def test_bulk_segments_grow_so_a_big_folder_makes_few_segments(tmp_path: Path) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    _write_articles(folder, 1_250)
    writer = WhooshEngine(index_dir).open_writer()
    generation = writer.ix.latest_generation()
    report = reconcile(writer, folder, FileRules(), 1 << 20, batch_size=100)
    # Half a batch first, then doubling up to four batches: 50, 100, 200, 400, 400 and the
    # rest (100), one commit each, not twenty-five.
    assert report.added == 1_250
    assert writer.ix.latest_generation() - generation == 6
    assert writer.stats().segments == 6
    assert not any((index_dir / writer.ix.storage.folder).joinpath(".staging").iterdir())
    reader = open_searcher(index_dir)
    assert reader.search(SearchRequest(q="oil")).total == 1_250
    assert [hit.id for hit in reader.search(SearchRequest(q="word1249")).hits] == ["markets/01249.txt"]
    again = reconcile(writer, folder, FileRules(), 1 << 20, batch_size=100)
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 1_250)


def test_parallel_parsing_keeps_the_input_order(tmp_path: Path) -> None:
    count = _PARALLEL_THRESHOLD + 300  # over the threshold: parsed by worker processes
    _write_articles(tmp_path, count)
    items = sorted((p.relative_to(tmp_path).as_posix(), p) for p in tmp_path.rglob("*.txt"))
    parsed = list(parse_all(tmp_path, items, 1 << 20))
    assert [p.article_id for p in parsed] == [article_id for article_id, _ in items]
    assert all(p.article is not None and p.article.title.startswith("Report number") for p in parsed)
