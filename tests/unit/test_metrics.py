"""The evaluation metrics themselves (evaluation/metrics.py), against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from evaluation.metrics import hit_at, mean, mrr_at, ndcg_at, percentile, recall_at, set_recall_at


def discount(position: int) -> float:
    """The DCG discount of a 1-based rank."""
    return 1 / math.log2(position + 1)


def test_ndcg_perfect_partial_and_none() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], relevant, 10) == pytest.approx(1.0)
    # "a" at rank 2 and "b" missing: DCG 1/log2(3), against the ideal 1 + 1/log2(3).
    assert ndcg_at(["c", "a"], relevant, 10) == pytest.approx(discount(2) / (discount(1) + discount(2)))
    assert ndcg_at(["c", "a"], relevant, 10) == pytest.approx(0.3869, abs=1e-4)
    assert ndcg_at(["x"], relevant, 10) == 0.0


def test_ndcg_uses_graded_gains() -> None:
    relevant = {"best": 2, "good": 1, "judged_irrelevant": 0}
    # Linear gains: the gain-2 document first is the ideal; swapped, it is worth less.
    assert ndcg_at(["best", "good"], relevant, 10) == pytest.approx(1.0)
    swapped = (1 * discount(1) + 2 * discount(2)) / (2 * discount(1) + 1 * discount(2))
    assert ndcg_at(["good", "best"], relevant, 10) == pytest.approx(swapped)
    assert swapped < 1
    # Binary gains would score the swap as perfect: the grades must matter.
    assert ndcg_at(["good", "best"], relevant, 10) < ndcg_at(["good", "best"], {"best": 1, "good": 1}, 10)
    # A document judged 0 earns nothing.
    assert ndcg_at(["judged_irrelevant"], relevant, 10) == 0.0


def test_ndcg_ideal_list_is_cut_at_k() -> None:
    # Three relevant documents, k = 2: the best possible top two are two relevant ones, which is a perfect
    # score. An ideal list not cut at k would put the third one's gain in the denominator too.
    relevant = {"a": 1, "b": 1, "c": 1}
    assert ndcg_at(["a", "b", "x"], relevant, 2) == pytest.approx(1.0)
    assert ndcg_at(["a", "x", "b"], relevant, 2) == pytest.approx(1 / (discount(1) + discount(2)))
    # Likewise for grades: the ideal top one is the gain-3 document only.
    assert ndcg_at(["top"], {"top": 3, "other": 2}, 1) == pytest.approx(1.0)


def test_a_repeated_id_counts_once() -> None:
    # Two chunks of one document, or two files mapped to one id, must not earn its gain twice (it did:
    # nDCG 1.63 for this ranking).
    relevant = {"a": 1}
    assert ndcg_at(["a", "a"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "a", "a"], {"a": 1, "b": 1}, 10) == pytest.approx(discount(2) / (discount(1) + discount(2)))
    assert recall_at(["a", "a", "a"], {"a": 1, "b": 1}, 10) == 0.5
    assert mrr_at(["x", "a", "a"], relevant, 10) == 0.5


def test_recall_and_mrr() -> None:
    relevant = {"a": 1, "b": 1, "z": 0}
    assert recall_at(["a", "c", "b"], relevant, 2) == 0.5  # "b" is third, beyond k
    assert recall_at(["a", "c", "b"], relevant, 3) == 1.0
    assert recall_at(["z"], relevant, 10) == 0.0  # judged 0 is not relevant
    assert recall_at(["a"], {"z": 0}, 10) == 0.0  # nothing relevant: 0, not a division by zero
    assert mrr_at(["c", "b"], relevant, 10) == 0.5
    assert mrr_at(["c", "b"], relevant, 1) == 0.0
    assert mrr_at(["c"], relevant, 10) == 0.0


def test_page_hit_is_any_and_page_recall_is_the_share() -> None:
    # Each result holds the pages it spans; a question has two evidence pages.
    results = [{("doc", 3)}, {("doc", 7), ("doc", 8)}, {("other", 1)}, {("doc", 9)}]
    evidence = {("doc", 8), ("doc", 9)}
    assert hit_at(results, evidence, 1) == 0.0
    assert hit_at(results, evidence, 2) == 1.0
    assert set_recall_at(results, evidence, 2) == 0.5  # one of the two pages: a hit, but half the evidence
    assert set_recall_at(results, evidence, 4) == 1.0
    assert set_recall_at(results * 2, evidence, 8) == 1.0  # a page found twice counts once
    assert set_recall_at(results, set(), 4) == 0.0 and hit_at(results, set(), 4) == 0.0


def test_percentile_and_mean() -> None:
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile([5, 1, 3, 2, 4], 0.95) == 5
    assert percentile([5, 1, 3, 2, 4], 0.0) == 1
    assert percentile([], 0.5) == 0.0
    assert mean([1.0, 2.0]) == 1.5
    assert mean([]) == 0.0
