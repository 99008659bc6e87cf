"""Searcher extensions the web layer builds on: similar articles, autocomplete, did-you-mean,
duplicate folding. Real folders in tmp_path, real indexes built by the real reconcile."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import build_index
from searchd.engines.whoosh import Ranking, WhooshEngine
from searchd.engines.whoosh import schema as whoosh_schema
from searchd.engines.whoosh import writer as whoosh_writer
from searchd.engines.whoosh.store import current_dir
from searchd.folding import NEAR_DUPLICATE_SCORE
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


def test_a_typographic_apostrophe_reads_as_a_straight_one(tmp_path: Path, make_folder) -> None:
    build_index(make_folder({
        "health/alzheimer.txt": "Diet and Alzheimer's disease\n\nVegetables and berries in the diet of older adults.",
        "health/heart.txt": "Diet and heart disease\n\nSalt and saturated fat in the diet of older adults.",
        "health/parkinson.txt": "Coffee and Parkinson’s disease\n\nCoffee drinkers in a cohort of older adults.",
    }), tmp_path / "index")
    searcher = Searcher(WhooshEngine(tmp_path / "index").open_reader())
    result = searcher.search(SearchRequest(q="Alzheimer’s disease"))
    assert result.hits[0].id == "health/alzheimer.txt"
    assert "only 1 article has all the words" in result.notice  # and it is this one
    assert [hit.id for hit in searcher.search(SearchRequest(q="parkinson's")).hits] == ["health/parkinson.txt"]


def test_question_words_do_not_count_as_words_the_articles_must_have(searcher: Searcher) -> None:
    for text in ("what is sourdough", "How to bake sourdough bread?"):
        result = searcher.search(SearchRequest(q=text))
        assert result.hits[0].id == "food/bread.txt", text
        assert result.notice == "", text  # every word that says what is looked for is there


def test_a_query_of_only_function_words_still_searches_them(tmp_path: Path, make_folder) -> None:
    build_index(make_folder({"music/who.txt": "The Who\n\nThe band who played Tommy.",
                             "music/kinks.txt": "The Kinks\n\nA band from London."}), tmp_path / "index")
    assert [hit.id for hit in Searcher(WhooshEngine(tmp_path / "index").open_reader()).search(SearchRequest(q="The Who")).hits] == ["music/who.txt"]


def test_feedback_ranks_an_article_on_the_subject_of_the_best_matches_above_a_passing_mention(
        tmp_path: Path, make_folder) -> None:
    # Four articles about solar power, one about the same subject that says "solar" once, one
    # about cooking that says it once too (and is shorter, so it wins on the word alone), and
    # enough other articles that the subject's words are rare.
    rich = ("Solar photovoltaic panels feed an inverter. The inverter turns the photovoltaic current of "
            "the solar panels into household current; solar output peaks at noon.")
    files = {f"energy/solar-{i}.txt": f"Solar power {i}\n\n{rich}" for i in range(4)}
    files["energy/inverters.txt"] = ("Choosing an inverter\n\nA photovoltaic inverter must match the panels: "
                                     "the inverter of a solar roof converts photovoltaic current all day long.")
    files["food/oven.txt"] = "Slow cooking\n\nA solar oven cooks beans slowly in the garden."
    files.update({f"town/note-{i}.txt": f"Council note {i}\n\nThe council met to discuss roads, parks and the "
                                        f"library budget for district {i}." for i in range(60)})
    build_index(make_folder(files), tmp_path / "index")

    def order(ranking: Ranking | None = None) -> list[str]:
        hits = Searcher(WhooshEngine(tmp_path / "index", ranking).open_reader()).search(SearchRequest(q="solar")).hits
        return [hit.id for hit in hits if hit.id in ("energy/inverters.txt", "food/oven.txt")]

    assert order(Ranking(feedback_docs=0)) == ["food/oven.txt", "energy/inverters.txt"]  # the word alone
    assert order() == ["energy/inverters.txt", "food/oven.txt"]  # feedback is on by default


# A wire story, a correction of it (one word changed: ~90% of its 4-word runs shared) and a
# follow-up on the same subject that repeats its first half word for word (a third of the runs).
_FIRST_HALF = ("The port authority said on Monday that container traffic through the harbour rose by "
               "eleven percent in the first quarter, helped by new shipping routes to Asia and a rebound "
               "in car exports from the plants along the river.")
_SECOND_HALF = ("Dock workers agreed a two year wage deal last month, ending a dispute that had slowed "
                "loading at the northern terminals since the autumn, and the authority expects volumes "
                "to keep growing through the summer season.")
_FOLLOW_UP = ("Fishing crews protested outside the town hall on Tuesday against plans to move their moorings "
              "to the eastern basin, saying the new berths were too shallow for trawlers and too far "
              "from the fish market.")
NEAR_COPIES = {
    "news/port.txt": f"Port traffic rises\n\n{_FIRST_HALF} {_SECOND_HALF}",
    "news/port-corrected.txt": f"Port traffic rises\n\n{_FIRST_HALF} {_SECOND_HALF.replace('two year', 'three year')}",
    "news/port-fishing.txt": f"Port traffic rises\n\n{_FIRST_HALF} {_FOLLOW_UP}",
    "news/bakery.txt": "Bakery opens\n\nA bakery opened near the harbour selling bread and cakes.",
}


def _assert_folds_near_copies_only(searcher: Searcher) -> None:
    hits = {hit.id: hit for hit in searcher.search(SearchRequest(q="harbour traffic")).hits}
    story = hits.get("news/port.txt") or hits.get("news/port-corrected.txt")
    assert story is not None and story.duplicates == 1, "the corrected story is shown once, with a count"
    assert not {"news/port.txt", "news/port-corrected.txt"} <= hits.keys()
    follow_up = hits["news/port-fishing.txt"]
    # They score alike (what folding looks at first), yet the follow-up is an article of its own.
    assert follow_up.score >= NEAR_DUPLICATE_SCORE * story.score
    assert follow_up.duplicates == 0


def test_a_near_copy_is_folded_and_an_article_sharing_half_its_text_is_not(tmp_path: Path, make_folder) -> None:
    build_index(make_folder(NEAR_COPIES), tmp_path / "index")
    _assert_folds_near_copies_only(Searcher(WhooshEngine(tmp_path / "index").open_reader()))


def test_an_index_written_before_sketches_folds_the_same_and_is_rebuilt_once(tmp_path: Path, make_folder,
                                                                                monkeypatch) -> None:
    """Indexes of schema 4 have no `sketch` column: they are served (folding by the texts) until
    the writer has rebuilt them, after which folding uses the sketches."""
    folder = make_folder(NEAR_COPIES)

    def schema_without_sketches():
        schema = whoosh_schema.build_schema()
        schema.remove("sketch")
        return schema

    with monkeypatch.context() as old:
        old.setattr(whoosh_writer, "build_schema", schema_without_sketches)
        old.setattr(whoosh_writer, "SCHEMA_VERSION", 4)
        build_index(folder, tmp_path / "index")
    before = current_dir(tmp_path / "index")
    searcher = Searcher(WhooshEngine(tmp_path / "index").open_reader())
    assert "sketch" not in WhooshEngine(tmp_path / "index").open_reader().index.open().schema
    _assert_folds_near_copies_only(searcher)

    assert build_index(folder, tmp_path / "index").added == len(NEAR_COPIES)  # rebuilt
    assert current_dir(tmp_path / "index") != before
    assert "sketch" in WhooshEngine(tmp_path / "index").open_reader().index.open().schema
    _assert_folds_near_copies_only(searcher)
    assert build_index(folder, tmp_path / "index").added == 0  # once


def test_a_warm_up_begun_before_the_first_index_exists_loads_it_once_it_does(tmp_path: Path, make_folder) -> None:
    """A web worker starts before the first bulk index is published: its warm-up keeps trying,
    so the did-you-mean vocabulary is read before a query needs it, not by the first that does."""
    import threading

    reader = WhooshEngine(tmp_path / "index").open_reader()
    warming = threading.Thread(target=Searcher(reader).warm_up, kwargs={"retry_every": 0.01}, daemon=True)
    warming.start()
    # The index appears whole, as a first bulk index publishes it.
    build_index(make_folder({"energy/solar.txt": "Solar power\n\nPanels on every roof."}), tmp_path / "built")
    (tmp_path / "built").rename(tmp_path / "index")
    warming.join(timeout=60)
    assert not warming.is_alive()
    assert reader._vocabulary is not None and "solar" in reader._vocabulary.words
