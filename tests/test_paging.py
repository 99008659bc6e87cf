"""Paging reaches every result `total` promises: pages are full but the last, and pages of any
size cut the same list, also when many results are copies or near-copies of each other (folded
into one hit). Real folders in tmp_path, real indexes built by the real reconcile."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .conftest import build_index
from searchd.engines.whoosh import WhooshEngine
from searchd.folding import NEAR_DUPLICATE_WINDOW
from searchd.search import MAX_PAGE_SIZE, SearchRequest, Searcher

WORDS = ("river bridge market council harbour railway school garden museum festival winter summer "
         "budget election stadium orchestra factory island forest village").split()
CATEGORIES = ("news", "sport", "arts")


def _article(rng: random.Random, dated: bool) -> tuple[str, list[str]]:
    # Skewed word choice: a few words match most articles, so queries have hundreds of results.
    body = rng.choices(WORDS, weights=[1 / (i + 1) for i in range(len(WORDS))], k=rng.randint(60, 90))
    title = " ".join(rng.sample(WORDS, 3)).capitalize()
    return (f"---\ntitle: {title}\ndate: 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}\n---\n\n"
            if dated else f"{title}\n\n"), body


def _generated_corpus(rng: random.Random) -> dict[str, str]:
    """~400 articles: 300 originals (some dated, some not), 50 byte-identical copies in other
    folders, 50 near-copies (one word of 60-90 changed: ~90% of their 4-word runs shared)."""
    files: dict[str, str] = {}
    originals: list[tuple[str, str, list[str]]] = []
    for n in range(300):
        head, body = _article(rng, dated=n % 3 != 0)
        name = f"{CATEGORIES[n % 3]}/{n:03d}.{'md' if head.startswith('---') else 'txt'}"
        files[name] = head + " ".join(body) + ".\n"
        originals.append((name, head, body))
    for n, (name, head, body) in enumerate(rng.sample(originals, 50)):
        files[f"{CATEGORIES[(n + 1) % 3]}/copy-{n:03d}{Path(name).suffix}"] = files[name]
    for n, (name, head, body) in enumerate(rng.sample(originals, 50)):
        changed = list(body)
        changed[rng.randrange(len(changed))] = "lighthouse"
        files[f"{CATEGORIES[(n + 2) % 3]}/near-{n:03d}{Path(name).suffix}"] = head + " ".join(changed) + ".\n"
    return files


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    root = tmp_path_factory.mktemp("paging")
    folder = root / "articles"
    for name, text in _generated_corpus(random.Random(13)).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    build_index(folder, root / "index")
    return Searcher(WhooshEngine(root / "index").open_reader())


def walk(searcher: Searcher, size: int, **query: str) -> tuple[int, list[list[str]]]:
    """(total, the ids of every page) from page 1 to the last page `total` promises."""
    first = searcher.search(SearchRequest(size=size, **query))
    pages = [[hit.id for hit in first.hits]]
    for page in range(2, first.pages + 1):
        result = searcher.search(SearchRequest(size=size, page=page, **query))
        assert result.total == first.total, "total changes from page to page"
        pages.append([hit.id for hit in result.hits])
    return first.total, pages


def assert_pages_reach_total(searcher: Searcher, size: int, **query: str) -> list[str]:
    total, pages = walk(searcher, size, **query)
    ids = [doc_id for page in pages for doc_id in page]
    assert len(ids) == total, f"paging reaches {len(ids)} results of the {total} promised"
    assert len(set(ids)) == len(ids), "a result shows up on two pages"
    assert all(len(page) == size for page in pages[:-1]), [len(page) for page in pages]
    if total:
        beyond = searcher.search(SearchRequest(size=size, page=len(pages) + 1, **query))
        assert beyond.hits == [] and beyond.total == total
    return ids


queries = st.one_of(
    st.sampled_from(WORDS[:8]),
    st.lists(st.sampled_from(WORDS), min_size=2, max_size=3).map(" ".join),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS)).map(lambda ab: f"{ab[0]} OR {ab[1]}"),
    st.sampled_from(["lighthouse", "river -bridge", "market*", "*"]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries, size=st.integers(5, 30), sort=st.sampled_from(["relevance", "date"]),
       category=st.sampled_from(["", "news"]))
def test_pages_of_any_size_cut_one_list_that_holds_total_results(searcher: Searcher, q: str, size: int,
                                                                 sort: str, category: str) -> None:
    query = {"q": q, "sort": sort, "category": category}
    ids = assert_pages_reach_total(searcher, size, **query)
    assert ids == assert_pages_reach_total(searcher, MAX_PAGE_SIZE, **query)


def test_the_generated_corpus_has_folded_copies_past_the_near_duplicate_window(searcher: Searcher) -> None:
    """The property above is only worth something if paging crosses the window in which near-copies
    are folded, and copies and near-copies are actually folded."""
    result = searcher.search(SearchRequest(q="river", size=MAX_PAGE_SIZE))
    assert result.total > NEAR_DUPLICATE_WINDOW + MAX_PAGE_SIZE // 2
    assert sum(hit.duplicates for hit in result.hits) >= 10
    shown = {hit.id for hit in result.hits}
    copies = {doc_id.replace("copy-", "") for doc_id in shown if "/copy-" in doc_id}
    assert not any(doc_id in shown for doc_id in copies)


@pytest.mark.corpus
def test_bbc_paging_reaches_every_result(tmp_path: Path, corpus) -> None:
    """BBC has 98 byte-identical pairs and more near-identical articles: `music` promised 261
    results and walking its pages reached 100 of them."""
    build_index(corpus("bbc"), tmp_path / "index")
    searcher = Searcher(WhooshEngine(tmp_path / "index").open_reader())
    for q in ("music", "film", "mobile phone", "election"):
        ids = assert_pages_reach_total(searcher, 10, q=q)
        assert ids[:MAX_PAGE_SIZE] == [hit.id for hit in searcher.search(SearchRequest(q=q, size=MAX_PAGE_SIZE)).hits]
