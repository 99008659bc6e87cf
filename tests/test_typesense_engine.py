"""The Typesense engine against a real server (one node for the session): the same folder indexed
by both engines answers the query language alike; snippets are escaped; facets, filters, paging
over folded copies, did-you-mean, completion and similar articles work; sources stay apart; one
writer per source; a schema change fills a new collection and swaps the alias."""

from __future__ import annotations

import os
import random
import time
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks.typesense_nodes import TypesenseCluster, http_json
from searchd.engines.base import ChangeBatch, IndexBusy, IndexMissing
from searchd.engines.whoosh import WhooshEngine
from searchd.folder import FileRules
from searchd.search import SearchRequest, Searcher
from searchd.sync import index_once, reconcile

from .conftest import write_files
from .test_paging import _generated_corpus, assert_pages_reach_total
from .typesense_helpers import engine, ids, view

FILLER = ("harbour council market railway school garden museum festival winter summer budget election "
          "stadium orchestra factory island forest village river bridge").split()


def _filler(seed: int, words: int = 90) -> str:
    """Words that make each article long and its own (near-copies are told apart by them)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(FILLER) + str(rng.randrange(40)) for _ in range(words))


def _md(title: str, date: str, tags: list[str], body: str, seed: int) -> str:
    return f"---\ntitle: {title}\ndate: {date}\ntags: [{', '.join(tags)}]\n---\n\n{body}\n\n{_filler(seed)}\n"


TALKS = _md("Peace talks resume", "2025-02-18", ["diplomacy"],
            "Diplomats met in Riyadh; Zelensky canceled a planned visit to the talks.", 7)
FILES = {
    "energy/crude.md": _md("Crude oil prices climb", "2024-03-05", ["opec", "markets"],
                           "Crude oil prices rose sharply after OPEC agreed to cut output. Analysts in Vienna "
                           "expect petroleum demand to stay firm.", 1),
    "energy/gas.md": _md("Natural gas glut", "2024-07-10", ["gas"],
                         "Natural gas stocks are high. Oil companies in Brazil look for buyers of liquefied gas.", 2),
    "farming/wheat.md": _md("Wheat harvest breaks records", "2023-08-01", ["grain"],
                            "The wheat harvest in Kansas broke records; corn and soybean prices fell.", 3),
    "farming/coffee.md": _md("Coffee prices soar", "2025-01-15", ["coffee", "markets"],
                             "Frost in Brazil sent coffee prices to a decade high. Roasters raised espresso costs.", 4),
    "tech/batteries.md": _md("Solid-state batteries", "2025-02-20", ["energy"],
                             "Battery makers promise faster charging; crude prototypes already exist in labs.", 5),
    "tech/chips.md": _md("Chip shortage eases", "2022-11-03", [],
                         "Semiconductor output recovered as factories in Taiwan expanded.", 6),
    "world/talks.md": TALKS,
    "world/copy-of-talks.md": TALKS,
    "world/near-talks.md": TALKS.replace("canceled a planned visit", "cancelled a planned visit"),
    "readme.txt": "About this folder\n\nA folder of sample articles about markets and energy.\n",
}

# Queries both engines read the same way (no stemming, no typo tolerance involved): the same
# articles must come back.
PARITY = [
    "crude", '"crude oil"', "oil -crude", "prices", "title:coffee", "title:prices brazil",
    "category:farming", "tag:markets", "date:2025", "after:2024-06 before:2025-01-31",
    "(coffee OR wheat) prices", "brazil -category:energy", "coffee OR wheat", "batter*",
    "zelenksy~2", "-tag:markets brazil", "brazil NOT (coffee OR frost)", "body:kansas",
    "oil sort:date", "category:tech OR tag:grain", "frost OR kansas OR taiwan", "(crude prices) OR espresso",
]


@pytest.fixture(scope="module")
def articles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("ts-engine") / "articles", FILES)


@pytest.fixture(scope="module")
def both(articles: Path, typesense_server: TypesenseCluster, tmp_path_factory: pytest.TempPathFactory):
    """(Whoosh searcher, Typesense searcher) over the same folder."""
    from .typesense_fixtures import drop_collections

    name = f"parity{os.getpid()}"
    ts = engine(typesense_server, name)
    index_once(ts, articles, FileRules(), 10 << 20)
    whoosh = WhooshEngine(tmp_path_factory.mktemp("ts-engine-whoosh"))
    index_once(whoosh, articles, FileRules(), 10 << 20)
    yield Searcher(whoosh.open_reader()), Searcher(ts.open_reader())
    drop_collections(typesense_server, name)


def _folded(searcher: Searcher, query: str) -> set[frozenset[str]]:
    """The results as sets of copies: which copy stands for a group is each engine's choice."""
    copies = {"world/talks.md", "world/copy-of-talks.md", "world/near-talks.md"}
    return {frozenset(copies) if hit in copies else frozenset([hit]) for hit in ids(searcher, query)}


@pytest.mark.parametrize("query", PARITY)
def test_both_engines_find_the_same_articles(both, query: str) -> None:
    whoosh, typesense = both
    expected = _folded(whoosh, query)
    assert expected, f"{query!r} finds nothing: a useless case"
    assert _folded(typesense, query) == expected


def test_totals_facets_and_request_filters_agree(both) -> None:
    whoosh, typesense = both
    for request in (SearchRequest(q="prices"), SearchRequest(q="prices", category="farming"),
                    SearchRequest(q="oil OR gas OR prices", date_from=datetime(2024, 1, 1),
                                  date_to=datetime(2024, 12, 31, 23, 59, 59))):
        mine, theirs = typesense.search(request), whoosh.search(request)
        assert (mine.total, mine.facets) == (theirs.total, theirs.facets), request


def test_a_sentence_finds_articles_with_any_of_its_words_the_rarest_counting_most(both) -> None:
    _, typesense = both
    result = typesense.search(SearchRequest(q="what did analysts in Vienna say about petroleum demand or espresso"))
    found = [hit.id for hit in result.hits]
    assert found[0] == "energy/crude.md" and "farming/coffee.md" in found
    assert result.total == len(found) and result.notice == ""


def test_newest_first(both) -> None:
    _, typesense = both
    result = typesense.search(SearchRequest(q="prices OR oil OR gas", sort="date"))
    dates = [hit.date for hit in result.hits]
    assert dates == sorted(dates, reverse=True) and len(dates) >= 4


def test_copies_fold_into_one_hit_that_counts_them(both) -> None:
    _, typesense = both
    result = typesense.search(SearchRequest(q="zelensky"))
    assert result.total == 1 and len(result.hits) == 1
    assert result.hits[0].duplicates == 2  # one byte-identical copy, one near copy


def test_what_typesense_cannot_express_is_said(both) -> None:
    _, typesense = both
    proximity = typesense.search(SearchRequest(q='"crude prices"~3'))
    assert "proximity" in proximity.notice and {h.id for h in proximity.hits} == {"energy/crude.md"}
    group = typesense.search(SearchRequest(q='("crude oil" OR frost) brazil'))
    assert "inside OR" in group.notice and {h.id for h in group.hits} == {"farming/coffee.md"}


def test_snippets_are_escaped_except_for_our_marks(typesense_server, typesense_collection, tmp_path) -> None:
    folder = write_files(tmp_path / "a", {"x.txt": 'Tricky\n\nthe script tag <script>alert("oil")</script> '
                                                   'oil & gas "quoted" text <mark>fake</mark> \ue000odd\ue001 end\n'})
    ts = engine(typesense_server, typesense_collection)
    index_once(ts, folder, FileRules(), 1 << 20)
    snippet = Searcher(ts.open_reader()).search(SearchRequest(q="oil")).hits[0].snippet
    assert "<script>" not in snippet and "&lt;script&gt;alert" in snippet
    assert "&lt;mark&gt;fake&lt;/mark&gt;" in snippet and "&amp; gas" in snippet
    assert snippet.count("<mark>") == snippet.count("</mark>") == 2  # "oil" twice, nothing else
    assert "\ue000" not in snippet and "odd" in snippet


def test_did_you_mean_completion_and_near_words(both) -> None:
    _, typesense = both
    result = typesense.search(SearchRequest(q="petrolium"))
    assert result.suggestion == "petroleum" and result.results_for == "petroleum"
    assert [h.id for h in result.hits] == ["energy/crude.md"]
    assert typesense.search(SearchRequest(q="petroleum")).suggestion is None
    assert typesense.suggest("cof") == ["coffee"]
    assert typesense.suggest("the co")[0].startswith("the co")
    assert "prices" in typesense.near_words("pricez", 1)


def test_similar_articles_exclude_the_article_and_its_copies(both) -> None:
    _, typesense = both
    similar = [hit.id for hit in typesense.similar("energy/crude.md", size=3)]
    assert similar and "energy/crude.md" not in similar
    talks = [hit.id for hit in typesense.similar("world/talks.md", size=5)]
    assert not {"world/talks.md", "world/copy-of-talks.md", "world/near-talks.md"} & set(talks)
    assert typesense.similar("no/such.md", size=3) == []


def test_documents_by_id(both) -> None:
    whoosh, typesense = both
    for doc_id in ("energy/crude.md", "readme.txt"):
        assert typesense.document(doc_id) == whoosh.document(doc_id)
    assert typesense.document("no/such.md") is None and typesense.document("") is None


def test_paging_reaches_the_total_over_folded_copies(typesense_server, typesense_collection, tmp_path) -> None:
    folder = write_files(tmp_path / "paging", _generated_corpus(random.Random(13)))
    ts = engine(typesense_server, typesense_collection)
    index_once(ts, folder, FileRules(), 1 << 20)
    searcher = Searcher(ts.open_reader())
    for query in ({"q": "river"}, {"q": "river OR winter", "sort": "date"}, {"q": "bridge", "category": "news"}):
        ten = assert_pages_reach_total(searcher, 10, **query)
        assert ten == assert_pages_reach_total(searcher, 100, **query)
        assert len(ten) > 100  # the window of near-copy folding and the pages beyond it


def test_odd_ids_round_trip_and_delete(typesense_server, typesense_collection, tmp_path) -> None:
    names = ["a b%20c.txt", "q?x#y.txt", "tick`name.txt", "ünïcode/straße.txt", "comma,semi;colon.txt"]
    folder = write_files(tmp_path / "odd", {name: f"Title {i}\n\nbody wombat{i}\n" for i, name in enumerate(names)})
    ts = engine(typesense_server, typesense_collection)
    index_once(ts, folder, FileRules(), 1 << 20)
    searcher = Searcher(ts.open_reader())
    for name in names:
        assert searcher.document(name) is not None, name
    for name in names:
        (folder / name).unlink()
    assert index_once(ts, folder, FileRules(), 1 << 20).deleted == len(names)
    assert view(ts) == {}


def test_sources_share_a_collection_and_never_touch_each_other(typesense_server, typesense_collection, tmp_path) -> None:
    same = {"news/a.txt": "Alpha\n\nshared words aardvark\n", "news/b.txt": "Beta\n\nshared words badger\n",
            "top.txt": "Top\n\nshared words top\n"}
    left = write_files(tmp_path / "left", same)
    right = write_files(tmp_path / "right", {name: text + "on the right\n" for name, text in same.items()})
    one, two = engine(typesense_server, typesense_collection, "one"), engine(typesense_server, typesense_collection, "two")
    index_once(one, left, FileRules(), 1 << 20)
    index_once(two, right, FileRules(), 1 << 20)
    searcher = Searcher(one.open_reader())
    assert ids(searcher, "aardvark") == {"one/news/a.txt", "two/news/a.txt"}
    assert searcher.search(SearchRequest(q="shared", category="news")).total == 4  # categories inside a source

    # A folder, a file and a rescan of one source: the other keeps everything.
    writer = one.open_writer()
    try:
        writer.apply(ChangeBatch(delete_prefixes=["news/"], deletes=["top.txt"]))
        assert view(one) == {} and len(view(two)) == 3
        reconcile(writer, left, FileRules(), 1 << 20)
    finally:
        writer.close()
    (right / "news" / "b.txt").unlink()
    assert index_once(two, right, FileRules(), 1 << 20).deleted == 1
    assert set(view(one)) == set(same) and set(view(two)) == {"news/a.txt", "top.txt"}


def test_one_writer_per_source(typesense_server, typesense_collection) -> None:
    first = engine(typesense_server, typesense_collection, "one").open_writer()
    try:
        with pytest.raises(IndexBusy, match=f"pid {os.getpid()}"):
            engine(typesense_server, typesense_collection, "one").open_writer()
        with pytest.raises(IndexBusy, match="source 'one'"):  # without a source: the whole collection
            engine(typesense_server, typesense_collection).open_writer()
        other = engine(typesense_server, typesense_collection, "two").open_writer()
        other.close()
        assert engine(typesense_server, typesense_collection, "one").writer_running()
    finally:
        first.close()
    assert not engine(typesense_server, typesense_collection, "one").writer_running()
    engine(typesense_server, typesense_collection, "one").open_writer().close()


def test_a_lock_whose_holder_is_gone_is_taken_over(typesense_server, typesense_collection) -> None:
    import socket

    writer = engine(typesense_server, typesense_collection, "one").open_writer()
    writer.close()
    gone = _dead_pid()
    status = f"{typesense_collection}__status"
    for holder, expires in ((f"pid {gone} on {socket.gethostname()} (x)", time.time() + 600),
                            ("pid 1 on elsewhere (y)", time.time() - 1)):
        http_json(f"{typesense_server.urls[0]}/collections/{status}/documents?action=upsert", typesense_server.api_key,
                  method="POST", body=(f'{{"id": "lock:one", "kind": "lock", "source": "one", "holder": "{holder}", '
                                       f'"expires": {int(expires)}}}').encode())
        engine(typesense_server, typesense_collection, "one").open_writer().close()
    live = "pid 1 on elsewhere (z)"
    http_json(f"{typesense_server.urls[0]}/collections/{status}/documents?action=upsert", typesense_server.api_key,
              method="POST", body=(f'{{"id": "lock:one", "kind": "lock", "source": "one", "holder": "{live}", '
                                   f'"expires": {int(time.time() + 600)}}}').encode())
    with pytest.raises(IndexBusy, match="elsewhere"):
        engine(typesense_server, typesense_collection, "one").open_writer()


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_no_collection_yet_is_index_missing(typesense_server, typesense_collection) -> None:
    reader = engine(typesense_server, typesense_collection).open_reader()
    with pytest.raises(IndexMissing):
        reader.stats()
    for text in ("anything", "a sentence of many words read as any of them"):
        with pytest.raises(IndexMissing):
            Searcher(reader).search(SearchRequest(q=text))
    assert reader.document_count() == 0 and reader.daemon_status() == {}


def test_a_schema_change_fills_a_new_collection_and_swaps_the_alias(typesense_server, typesense_collection,
                                                                    tmp_path) -> None:
    import orjson

    from searchd.articles import read_article
    from searchd.engines.typesense.schema import Encoder, articles_schema

    base, key = typesense_server.urls[0], typesense_server.api_key
    old = f"{typesense_collection}__v0"
    http_json(f"{base}/collections", key, method="POST", body=orjson.dumps(articles_schema(old)))
    theirs = write_files(tmp_path / "theirs", {"x.txt": "Their zebra\n\ntheir zebra\n"})
    mine = write_files(tmp_path / "mine", {"old.txt": "Old zebra\n\nold zebra\n"})
    lines = [Encoder("theirs").line(read_article(theirs, theirs / "x.txt", 1 << 20)),
             Encoder("mine").line(read_article(mine, mine / "old.txt", 1 << 20))]
    http_json(f"{base}/collections/{old}/documents/import?action=create", key, method="POST", body=b"\n".join(lines))
    http_json(f"{base}/aliases/{typesense_collection}", key, method="PUT", body=orjson.dumps({"collection_name": old}))
    (mine / "old.txt").unlink()
    write_files(mine, {"new.txt": "New\n\nnew zebra\n"})
    ts = engine(typesense_server, typesense_collection, "mine")
    writer = ts.open_writer()
    try:
        assert writer.rebuilding and "schema version 0" in (writer.rebuild_reason or "")
        reconcile(writer, mine, FileRules(), 1 << 20)
        searcher = Searcher(ts.open_reader())
        # Readers keep the old collection, whole, until the new one is complete.
        assert ids(searcher, "zebra") == {"theirs/x.txt", "mine/old.txt"}
        writer.finish_rebuild()
    finally:
        writer.close()
    # The other source's article moved over as it was; this source's is the folder's.
    assert ids(searcher, "zebra") == {"theirs/x.txt", "mine/new.txt"}
    status, _ = http_json(f"{base}/collections/{old}", key)
    assert status == 404  # dropped by its real name; the alias serves the new one


def test_a_cluster_that_does_not_answer_is_a_503_and_healthz_says_so(tmp_path) -> None:
    from benchmarks.typesense_nodes import free_ports
    from searchd.config import Config
    from searchd.web import create_app

    nobody = [f"http://127.0.0.1:{port}" for port in free_ports(2)]
    app = create_app(Config(engine="typesense", typesense_urls=tuple(nobody), typesense_key="k", folder=tmp_path))
    client = app.test_client()
    answer = client.get("/api/search?q=anything")
    assert answer.status_code == 503 and "no Typesense node answered" in answer.get_json()["error"]["message"]
    health = client.get("/healthz").get_json()
    assert health["status"] == "unavailable"
    assert health["nodes"] == [{"url": url, "ok": False, "role": ""} for url in nobody]
    guarded = create_app(Config(engine="typesense", typesense_urls=tuple(nobody), typesense_key="k", token="secret",
                                folder=tmp_path)).test_client().get("/healthz").get_json()
    assert guarded["nodes"] == {"answering": 0, "total": 2} and "127.0.0.1" not in str(guarded)
