"""searchd/segments.py writes Whoosh segments itself: they must be Whoosh's own, byte for byte
where the same choices are made, and read back the same everywhere else."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.writing import NO_MERGE

from searchd.articles import Article
from searchd.engines.base import ChangeBatch
from searchd.engines.whoosh.schema import TEXT_FIELDS, build_schema, to_document
from searchd.engines.whoosh.segments import SegmentBuilder
from searchd.engines.whoosh.writer import WhooshWriter

WORDS = ("oil price market bank rate government trade share offer profit company year growth "
         "café naïve Zürich U.S. don't 1987 3.5 shares fell rose sharply monday investors").split()


def _articles(count: int, seed: int = 1) -> list[Article]:
    """Varied articles: common words (posting lists of several blocks), rare ones, accents,
    empty and missing fields, tags, every format's metadata."""
    rng = random.Random(seed)
    articles = []
    for n in range(count):
        body = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) + f" unique{n}"
                for _ in range(rng.randint(1, 4))]
        articles.append(Article(
            id=f"{rng.choice(['energy', 'markets', ''])}/a{n}.txt".lstrip("/"),
            title=" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6))),
            summary=" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))),
            subtitle=rng.choice(["", "Sub heading with oil"]),
            body=tuple(body),
            date=datetime(2020, 1, 1) + timedelta(days=rng.randint(0, 2000)) if n % 7 else None,
            category=rng.choice(["energy", "markets", ""]),
            tags=tuple(rng.sample(["oil", "banks", "trade", "Asia"], rng.randint(0, 3))),
            url=f"https://example.org/{n}" if n % 3 else "",
            author=rng.choice(["", "A. Writer"]),
            format="txt",
            size=rng.randint(10, 10_000),
            mtime_ns=1_600_000_000_000_000_000 + n,
            checksum=f"{n:040x}",
        ))
    return articles


def _whoosh_segment(folder: Path, documents: list[dict[str, Any]]) -> Any:
    """The same documents through Whoosh's own writer (which needs the `words` text spelled out)."""
    folder.mkdir()
    ix = whoosh_index.create_in(str(folder), build_schema())
    writer = ix.writer()
    for document in documents:
        words = "\n".join(document.get(name) or "" for name in TEXT_FIELDS)
        writer.add_document(**document, words=words)
    writer.commit(mergetype=NO_MERGE)
    [segment] = ix._segments()
    return segment


def _files(folder: str, segment: Any) -> dict[str, bytes]:
    compound = segment.open_compound_file(FileStorage(folder))
    return {name.replace(segment.segment_id(), "SEG"): compound.open_file(name).read() for name in compound.list()}


def test_a_segment_is_byte_for_byte_what_whoosh_writes(tmp_path: Path) -> None:
    documents = [to_document(a) for a in _articles(400)]
    theirs = _whoosh_segment(tmp_path / "whoosh", documents)
    builder = SegmentBuilder(build_schema(), tmp_path / "ours", compress_from=0)  # Whoosh compresses every block
    for document in documents:
        builder.add(document)
    ours = builder.finish()
    expected, written = _files(str(tmp_path / "whoosh"), theirs), _files(ours.directory, ours.segment)
    # Three files more: two that only pseudo-relevance feedback reads (termvectors.py;
    # test_termvectors.py),
    # and the word list did-you-mean reads (engines/whoosh/vocabulary.py).
    assert set(written) - set(expected) == {"SEG.dfs", "SEG.terms.col", "SEG.voc"}
    assert set(expected) <= set(written)
    for name in expected:
        assert written[name] == expected[name], name
    assert ours.segment._fieldlengths == theirs._fieldlengths
    assert ours.segment.doc_count_all() == theirs.doc_count_all() == 400


def _read_back(folder: Path) -> dict[str, Any]:
    """Everything Whoosh reads from an index: postings with values, stored fields, lengths."""
    ix = whoosh_index.open_dir(str(folder))
    with ix.reader() as reader:
        postings = {(fieldname, term): _walk(reader.postings(fieldname, term))
                    for fieldname, term in reader.all_terms()}
        stored = [reader.stored_fields(n) for n in range(reader.doc_count_all())]
        lengths = {(n, f): reader.doc_field_length(n, f) for n in range(reader.doc_count_all()) for f in TEXT_FIELDS}
    return {"postings": postings, "stored": stored, "lengths": lengths}


def _walk(matcher: Any) -> list[tuple[int, float, bytes]]:
    found = []
    while matcher.is_active():
        found.append((matcher.id(), matcher.weight(), matcher.value()))
        matcher.next()
    return found


def test_uncompressed_small_blocks_read_back_the_same_as_whoosh_segments(tmp_path: Path) -> None:
    documents = [to_document(a) for a in _articles(300, seed=2)]
    _whoosh_segment(tmp_path / "whoosh", documents)
    ours_dir = tmp_path / "ours"
    ours_dir.mkdir()
    ix = whoosh_index.create_in(str(ours_dir), build_schema())
    builder = SegmentBuilder(build_schema(), ours_dir)  # the default: small blocks stay uncompressed
    for document in documents:
        builder.add(document)
    staged = builder.finish()
    staged.move_into(str(ours_dir))
    writer = ix.writer()
    writer.commit(mergetype=lambda w, segments: [*segments, staged.segment])
    staged.discard()
    theirs, ours = _read_back(tmp_path / "whoosh"), _read_back(ours_dir)
    assert ours["postings"].keys() == theirs["postings"].keys()
    assert ours == theirs
    # Whoosh's own merge reads these segments as well as its own.
    writer = ix.writer()
    writer.commit(optimize=True)
    assert _read_back(ours_dir)["postings"] == theirs["postings"]


def test_a_document_whoosh_refuses_leaves_the_segment_as_it_was(tmp_path: Path) -> None:
    builder = SegmentBuilder(build_schema(), tmp_path / "ours")
    good = [to_document(a) for a in _articles(3, seed=3)]
    builder.add(good[0])
    bad = dict(good[1], tags=12345)  # not text: Whoosh's KEYWORD field raises
    with pytest.raises(Exception):
        builder.add(bad)
    builder.add(good[2])
    staged = builder.finish()
    assert staged.ids == (good[0]["id"], good[2]["id"])
    assert staged.segment.doc_count_all() == 2


def test_an_article_whoosh_refuses_is_skipped_and_its_old_version_removed(tmp_path: Path) -> None:
    from dataclasses import replace

    from searchd.search import SearchRequest

    from .daemon_helpers import searcher as open_searcher

    good, changed = _articles(2, seed=4)
    writer = WhooshWriter(tmp_path / "index")
    writer.apply(ChangeBatch(upserts=[good, changed]))
    refused = replace(changed, body=("a new text with zebras",), tags=(7,))  # a tag that is not text
    writer.apply(ChangeBatch(upserts=[refused]))
    searcher = open_searcher(tmp_path / "index")
    assert searcher.document_count() == 1
    assert searcher.document(good.id) is not None and searcher.document(changed.id) is None
    assert searcher.search(SearchRequest(q="zebras")).total == 0


def test_a_merge_keeps_exactly_what_whoosh_s_own_merge_keeps(tmp_path: Path) -> None:
    import shutil

    from whoosh.reading import SegmentReader


    articles = _articles(150, seed=6)
    writer = WhooshWriter(tmp_path / "index")
    for start in range(0, 150, 50):
        writer.apply(ChangeBatch(upserts=articles[start:start + 50]))
    writer.apply(ChangeBatch(deletes=[a.id for a in articles[10:30]] + [articles[120].id]))
    folder = Path(writer.ix.storage.folder)
    theirs = tmp_path / "whoosh-merged"
    shutil.copytree(folder, theirs)
    whoosh_index.open_dir(str(theirs)).writer().commit(optimize=True)

    ix = whoosh_index.open_dir(str(folder))
    readers = [SegmentReader(ix.storage, ix.schema, segment) for segment in ix._segments()]
    builder = SegmentBuilder(ix.schema, folder)
    builder.copy(readers)
    merged = builder.finish()
    merged.move_into(str(folder))
    ix.writer().commit(mergetype=lambda w, segments: [merged.segment])
    merged.discard()

    expected, found = _read_back(theirs), _read_back(folder)
    assert found["postings"] == expected["postings"]
    assert found["stored"] == expected["stored"] and len(found["stored"]) == 150 - 21
    assert found["lengths"] == expected["lengths"]
    [ours_segment], [their_segment] = whoosh_index.open_dir(str(folder))._segments(), whoosh_index.open_dir(str(theirs))._segments()
    assert dict(ours_segment._fieldlengths) == dict(their_segment._fieldlengths)
    with whoosh_index.open_dir(str(folder)).reader() as ours, whoosh_index.open_dir(str(theirs)).reader() as whoosh:
        for column in ("id", "date", "size", "checksum", "category", "year"):
            assert list(ours.column_reader(column)) == list(whoosh.column_reader(column)), column


def test_indexes_written_before_the_engine_package_still_open() -> None:
    """Their tables of contents pickle the schema naming `searchd.schema`, where the analyzer
    and position format lived before searchd/engines/whoosh/ (checked by hand too: an index
    built by ef26dce opens, searches and reconciles with 0 changes)."""
    import pickle

    from searchd.engines.whoosh.schema import RawPositions, TextAnalyzer

    assert pickle.loads(b"csearchd.schema\nTextAnalyzer\n.") is TextAnalyzer
    assert pickle.loads(b"csearchd.schema\nRawPositions\n.") is RawPositions
