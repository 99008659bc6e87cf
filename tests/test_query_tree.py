"""The query language reads into searchd's own query tree, the same for every engine."""

from __future__ import annotations

from datetime import datetime

import pytest

from searchd.query import (All, Any, Category, DateRange, Fuzzy, Not, Phrase, Prefix, QueryTooLong, Tag, Word,
                           parse, plain_words, positive_leaves, relaxed)


def test_keywords_phrases_fields_and_negation() -> None:
    tree = parse('ukraine "common ground"~3 title:talks -russia').tree
    assert tree == All((Word("ukraine"), Phrase("common ground", 3), Word("talks", "title"), Not(Word("russia"))))


def test_or_groups_prefixes_fuzzy_and_filters() -> None:
    tree = parse("(coffee OR tea*) zelenksy~2 category:business tag:climate").tree
    assert tree == All((Any((All((Word("coffee"),)), All((Prefix("tea"),)))), Fuzzy("zelenksy", 2),
                        Category("business"), Tag("climate")))


def test_dates_read_as_periods() -> None:
    parsed = parse("oil date:2025-02 after:2024 before:2026-01-15 date:[2025-01 to 2025-03]")
    ranges = [node for node in parsed.tree.parts if isinstance(node, DateRange)]
    assert ranges[0] == DateRange(datetime(2025, 2, 1), datetime(2025, 2, 28, 23, 59, 59, 999999))
    assert ranges[1].start == datetime(2025, 1, 1) and ranges[1].end is None
    assert ranges[2].start is None and ranges[2].end == datetime(2026, 1, 14, 23, 59, 59, 999999)
    assert ranges[3] == DateRange(datetime(2025, 1, 1), datetime(2025, 3, 31, 23, 59, 59, 999999))


def test_what_cannot_be_read_is_dropped_with_a_notice() -> None:
    parsed = parse('oil "price date:2025-02-30 OR')
    assert parsed.tree == All((Word("oil"), Word("price")))
    assert "unbalanced quote ignored" in parsed.notice
    assert "date date:2025-02-30 not understood" in parsed.notice
    assert "OR without words after it ignored" in parsed.notice


def test_sort_typed_in_the_box_and_the_length_limit() -> None:
    parsed = parse("oil sort:newest")
    assert parsed.sort == "date" and parsed.tree == All((Word("oil"),))
    with pytest.raises(QueryTooLong):
        parse("x" * 1001)


def test_parentheses_around_plain_words_join_the_keywords() -> None:
    tree = parse("sudden infant death syndrome (SIDS) risk").tree
    assert plain_words(tree) == ["sudden", "infant", "death", "syndrome", "SIDS", "risk"]


def test_the_looser_reading_and_the_words_to_mark() -> None:
    tree = parse("oil prices -opec").tree
    assert relaxed(tree) == All(tree.parts, any_word=True)
    assert relaxed(parse("oil").tree) is None  # one word: nothing looser
    assert relaxed(parse('oil "crude price"').tree) is None  # a phrase is required either way
    assert list(positive_leaves(tree)) == [Word("oil"), Word("prices")]
