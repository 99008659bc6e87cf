"""What pseudo-relevance feedback reads from the index (termvectors.py): every article's terms with
their counts per field, and every segment's document frequencies, must say what the text and
Whoosh's own term dictionary say, in new segments, merged segments and after deletions."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from whoosh import index as whoosh_index
from whoosh.reading import SegmentReader

from searchd.analysis import Normaliser
from searchd.engines.base import ChangeBatch
from searchd.engines.whoosh import termvectors
from searchd.engines.whoosh.schema import TEXT_FIELDS, to_document
from searchd.engines.whoosh.termvectors import Frequencies, Window
from searchd.engines.whoosh.writer import WhooshWriter

from .test_segments import _articles, _whoosh_segment


def _expected_vector(document: dict) -> dict[int, list[int]]:
    """crc32 of each usable term -> its count in each text field, from the text itself."""
    normaliser = Normaliser()
    found: dict[int, list[int]] = {}
    for bit, name in enumerate(TEXT_FIELDS):
        for term, count in normaliser.counts(document.get(name) or "").items():
            if termvectors.usable(term):
                found.setdefault(zlib.crc32(term.encode("utf-8")), [0] * len(TEXT_FIELDS))[bit] = min(count, 255)
    return found


def _vector(window: Window, place: int) -> dict[int, list[int]]:
    entries = np.flatnonzero(window.owner == place)
    return {int(window.hashes[i]): [int(c) for c in window.counts[:, i]] for i in entries}


def _whoosh_frequencies(reader) -> dict[int, list[int]]:
    """crc32 of each usable term -> its document frequency in each text field, as Whoosh counts."""
    found: dict[int, list[int]] = {}
    for bit, name in enumerate(TEXT_FIELDS):
        if name not in reader._terms._fieldmap:
            continue
        for (field, term), info in reader._terms.items_from(name, b""):
            if field != name:
                break
            if termvectors.usable(term.decode("utf-8")):
                found.setdefault(zlib.crc32(term), [0] * len(TEXT_FIELDS))[bit] = info.doc_frequency()
    return found


def _table(frequencies: Frequencies) -> dict[int, list[int]]:
    table = frequencies.full_table()
    return {int(h): [int(v) for v in table[:, i]] for i, h in enumerate(frequencies.hashes)}


def _index(tmp_path: Path, articles: list, batches: int = 3) -> WhooshWriter:
    writer = WhooshWriter(tmp_path / "index")
    step = -(-len(articles) // batches)
    for start in range(0, len(articles), step):
        writer.apply(ChangeBatch(upserts=articles[start:start + step]))
    return writer


def test_each_article_s_terms_and_counts_are_its_text_s(tmp_path: Path) -> None:
    articles = _articles(120, seed=3)
    writer = _index(tmp_path, articles)
    ix = whoosh_index.open_dir(str(writer.ix.storage.folder))
    with ix.reader() as reader:
        for leaf, _ in reader.leaf_readers():
            column = leaf.column_reader(termvectors.COLUMN, translate=False)
            window = Window.of([column[n] for n in range(leaf.doc_count_all())])
            for n in range(leaf.doc_count_all()):
                document = to_document(next(a for a in articles if a.id == leaf.stored_fields(n)["id"]))
                assert _vector(window, n) == _expected_vector(document)


def test_each_segment_s_frequencies_are_whoosh_s_after_deletes_and_a_merge(tmp_path: Path) -> None:
    articles = _articles(150, seed=6)
    writer = _index(tmp_path, articles)
    writer.apply(ChangeBatch(deletes=[a.id for a in articles[10:30]]))
    folder = Path(writer.ix.storage.folder)
    ix = whoosh_index.open_dir(str(folder))
    # Fresh segments (deleted articles still counted, as Whoosh counts them until a merge).
    with ix.reader() as reader:
        for leaf, _ in reader.leaf_readers():
            assert _table(Frequencies.read(leaf)) == _whoosh_frequencies(leaf)
    writer.max_segments = 0
    assert writer.merge()
    with whoosh_index.open_dir(str(folder)).reader() as reader:
        leaves = [leaf for leaf, _ in reader.leaf_readers()]
        merged = [leaf for leaf in leaves if leaf.doc_count_all() > 50]
        assert merged, "the merge wrote one larger segment"
        for leaf in leaves:
            table = _table(Frequencies.read(leaf))
            assert table == _whoosh_frequencies(leaf)
        assert sum(leaf.doc_count() for leaf in leaves) == 130


def test_a_segment_written_without_a_table_gets_the_same_one_from_its_terms(tmp_path: Path) -> None:
    documents = [to_document(a) for a in _articles(200, seed=8)]
    segment = _whoosh_segment(tmp_path / "whoosh", documents)  # Whoosh's own writer: no table
    ix = whoosh_index.open_dir(str(tmp_path / "whoosh"))
    leaf = SegmentReader(ix.storage, ix.schema, segment)
    try:
        assert not leaf._storage.file_exists(segment.make_filename(termvectors.FREQUENCIES))
        assert _table(Frequencies.read(leaf)) == _whoosh_frequencies(leaf)
    finally:
        leaf.close()


def test_the_table_reads_back_and_looks_up_unknown_terms_as_absent() -> None:
    table = Frequencies.of({"title": [(b"oil", 2), (b"u.s", 9)], "body": [(b"oil", 5), (b"bank", 1)]})
    again = Frequencies.from_bytes(table.to_bytes()).compact()
    assert _table(again) == _table(table)
    assert again.rows == (TEXT_FIELDS.index("title"), TEXT_FIELDS.index("body")) and again.table.dtype == np.uint16
    hashes = np.array([zlib.crc32(b"oil"), zlib.crc32(b"bank"), zlib.crc32(b"u.s"), zlib.crc32(b"none")], dtype=np.uint32)
    found = again.lookup(hashes)
    title, body = TEXT_FIELDS.index("title"), TEXT_FIELDS.index("body")
    assert found[title].tolist() == [2, 0, 0, 0]  # "u.s" is not a term feedback may use
    assert found[body].tolist() == [5, 1, 0, 0]


def test_each_segment_s_word_list_is_its_words_field_after_deletes_and_a_merge(tmp_path: Path) -> None:
    from searchd.engines.whoosh.vocabulary import segment_words

    articles = _articles(150, seed=9)
    writer = _index(tmp_path, articles)
    writer.apply(ChangeBatch(deletes=[a.id for a in articles[40:70]]))
    folder = Path(writer.ix.storage.folder)

    def check() -> None:
        with whoosh_index.open_dir(str(folder)).reader() as reader:
            for leaf, _ in reader.leaf_readers():
                assert segment_words(leaf) == [w.decode("utf-8") for w in leaf.lexicon("words")]
                assert leaf._storage.file_exists(leaf.segment().make_filename(".voc"))

    check()
    writer.max_segments = 0
    assert writer.merge()
    check()
    documents = [to_document(a) for a in _articles(50, seed=10)]
    segment = _whoosh_segment(tmp_path / "whoosh", documents)  # Whoosh's own writer: no list
    ix = whoosh_index.open_dir(str(tmp_path / "whoosh"))
    leaf = SegmentReader(ix.storage, ix.schema, segment)
    try:
        assert segment_words(leaf) == [w.decode("utf-8") for w in leaf.lexicon("words")]
    finally:
        leaf.close()
