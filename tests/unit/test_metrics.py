from __future__ import annotations

import math

import pytest

from rag.metrics import mean, mrr_at, ndcg_at, percentile, recall_at


def test_ndcg_perfect_and_partial() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], relevant, 10) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at(["c", "a"], {"a": 1, "b": 1}, 10) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )
    assert expected > 0
    assert ndcg_at(["x"], relevant, 10) == 0.0


def test_recall_mrr_percentile() -> None:
    relevant = {"a": 1, "b": 1, "z": 0}
    assert recall_at(["a", "c", "b"], relevant, 2) == 0.5
    assert mrr_at(["c", "b"], relevant, 10) == 0.5
    assert mrr_at(["c"], relevant, 10) == 0.0
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile([5, 1, 3, 2, 4], 0.95) == 5
    assert mean([]) == 0.0
