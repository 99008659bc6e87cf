"""The evaluation measures against values worked out by hand with trec_eval's definitions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from searchd.evaluate import average_precision, detect_gains, doc_key, evaluate, ndcg, read_qrels, recall, reciprocal_rank

JUDGED = {"a": 2, "b": 1, "c": 0}


def test_ndcg_uses_grades_as_gains_and_the_ideal_order_of_all_judged_documents() -> None:
    # DCG = 1/log2(2) + 2/log2(3); ideal = 2/log2(2) + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg(["b", "a", "x"], JUDGED, 10) == pytest.approx(expected)
    assert ndcg(["a", "b"], JUDGED, 10) == pytest.approx(1.0)
    assert ndcg(["x", "y", "a"], JUDGED, 2) == 0.0


def test_map_recall_and_mrr() -> None:
    ranking = ["x", "a", "y", "b"]
    assert average_precision(ranking, JUDGED) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert recall(ranking, JUDGED) == 1.0 and recall(ranking[:2], JUDGED) == 0.5
    assert reciprocal_rank(ranking, JUDGED) == 0.5 and reciprocal_rank(["x"], JUDGED) == 0.0


def test_cranfield_codes_become_gains(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("1\t10\t1\n1\t11\t4\n1\t12\t-1\n2\t10\t3\n")
    assert detect_gains(qrels) == "cranfield"
    assert read_qrels(qrels, "cranfield") == {"1": {"10": 4, "11": 1, "12": 0}, "2": {"10": 2}}
    assert read_qrels(qrels) == {"1": {"10": 1, "11": 4, "12": 0}, "2": {"10": 3}}


def test_evaluate_averages_over_judged_queries_only() -> None:
    queries = {"q1": "one", "q2": "two", "q3": "unjudged"}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    rankings = {"one": ["a"], "two": ["x", "b"], "unjudged": ["a"]}
    scores = evaluate(lambda text: rankings[text], queries, qrels)
    assert scores.queries == 2
    assert scores.mrr == pytest.approx((1 + 0.5) / 2)


def test_doc_key_is_the_file_name_without_extension() -> None:
    assert doc_key("docs/4983.txt") == "4983" and doc_key("12.txt") == "12"
