"""Searcher extensions the web layer builds on: similar articles, autocomplete, did-you-mean,
duplicate folding. Real folders in tmp_path, real indexes built by the real reconcile."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import build_index
from searchd.engines.whoosh import Ranking, WhooshEngine
from searchd.search import Hit, SearchRequest, Searcher

ARTICLES = {
    "energy/solar.txt": "Solar panels on every roof\n\nSolar panels convert sunlight into electricity. "
    "Rooftop solar installations grew fast as panel prices fell.",
    "energy/solar-copy.txt": "Solar panels on every roof\n\nSolar panels convert sunlight into electricity. "
    "Rooftop solar installations grew fast as panel prices fell.",
    "energy/wind.txt": "Wind farms at sea\n\nOffshore wind turbines produce electricity far from the coast. "
    "Wind power prices fell as turbines grew larger.",
    "energy/solar-prices.txt": "Cheaper panels\n\nThe price of solar panels fell again this year, and rooftop "
    "installations of solar electricity doubled.",
    "food/bread.txt": "Baking sourdough bread\n\nSourdough bread needs a starter, flour, water and patience.",
    "food/government.txt": "Government food policy\n\nThe government announced a food policy for schools.",
}


@pytest.fixture
def searcher(tmp_path: Path, make_folder) -> Searcher:
    folder = make_folder(ARTICLES)
    build_index(folder, tmp_path / "index")
    return Searcher(WhooshEngine(tmp_path / "index").open_reader())


def test_similar_finds_articles_on_the_same_subject_and_excludes_the_article_and_its_copies(searcher: Searcher) -> None:
    similar = searcher.similar("energy/solar.txt", size=3)
    ids = [hit.id for hit in similar]
    assert ids[0] == "energy/solar-prices.txt"
    assert "energy/solar.txt" not in ids and "energy/solar-copy.txt" not in ids
    assert "food/bread.txt" not in ids
    assert all(isinstance(hit, Hit) for hit in similar)


def test_similar_of_an_unknown_id_is_empty(searcher: Searcher) -> None:
    assert searcher.similar("no/such.txt") == []


def test_suggest_completes_the_last_word_most_frequent_first(searcher: Searcher) -> None:
    assert searcher.suggest("sol") == ["solar"]
    completions = searcher.suggest("rooftop pa", size=8)
    assert completions[0] == "rooftop panels"
    assert all(c.startswith("rooftop pa") for c in completions)
    assert searcher.suggest("") == [] and searcher.suggest("solar ") == []


def test_did_you_mean_corrects_typos_and_shows_the_corrected_results_for_zero_hits(searcher: Searcher) -> None:
    result = searcher.search(SearchRequest(q="sourdogh bred"))
    assert result.suggestion == "sourdough bread"
    assert [hit.id for hit in result.hits] == ["food/bread.txt"]
    assert "showing results for sourdough bread" in result.notice


def test_no_suggestion_when_the_query_is_spelled_right(searcher: Searcher) -> None:
    result = searcher.search(SearchRequest(q="government"))
    assert result.suggestion is None and result.total == 1 and result.notice == ""


def test_identical_articles_show_once_with_a_count(searcher: Searcher) -> None:
    result = searcher.search(SearchRequest(q="rooftop solar"))
    ids = [hit.id for hit in result.hits]
    assert len([i for i in ids if i in ("energy/solar.txt", "energy/solar-copy.txt")]) == 1
    folded = next(hit for hit in result.hits if hit.id in ("energy/solar.txt", "energy/solar-copy.txt"))
    assert folded.duplicates == 1
    assert "energy/solar-prices.txt" in ids


def test_minimum_should_match_keeps_only_articles_with_enough_of_the_words(tmp_path: Path, make_folder) -> None:
    # Off by default (docs/relevance.md); a Ranking can ask for a share of a long query's words.
    build_index(make_folder(ARTICLES), tmp_path / "index")
    text = "solar panels rooftop sunlight electricity bread"
    loose = Searcher(WhooshEngine(tmp_path / "index").open_reader()).search(SearchRequest(q=text, size=20))
    strict_ranking = Ranking(should_match=0.5, long_query_minimum=2)
    strict = Searcher(WhooshEngine(tmp_path / "index", strict_ranking).open_reader()).search(SearchRequest(q=text, size=20))
    assert "food/bread.txt" in [hit.id for hit in loose.hits]  # one word of six is enough by default
    ids = {hit.id for hit in strict.hits}
    assert len(ids) == 2 and "energy/solar-prices.txt" in ids
    assert ids & {"energy/solar.txt", "energy/solar-copy.txt"}  # the article and its copy, folded
    assert sum(hit.duplicates for hit in strict.hits) == 1
