"""Reciprocal rank fusion: merging ranked lists by rank alone, so scores on different scales need no
calibration (Cormack, Clarke and Büttcher, SIGIR 2009)."""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: float = 60.0, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Items of all rankings (best first each), ordered by sum of weight / (k + rank), best first.

    Ties keep the order in which items were first seen, so the result is deterministic."""
    weights = weights if weights is not None else [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def convex_combination(
    rankings: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]
) -> list[tuple[str, float]]:
    """Items of all rankings, ordered by the weighted sum of their min-max normalised scores, best first (an
    item missing from a ranking scores 0 there). Unlike RRF it keeps how far ahead an item is, which often
    fuses dense and BM25 better once the weight is tuned (Bruch, Gai and Ingber, ACM TOIS 2023)."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, high = min(values), max(values)
        span = high - low
        for item, score in ranking:
            normalised = (score - low) / span if span > 0 else 1.0
            scores[item] = scores.get(item, 0.0) + weight * normalised
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def cap_per_group(items: Sequence[tuple[str, float]], group_of: dict[str, str], cap: int) -> list[tuple[str, float]]:
    """Keep at most `cap` items of each group (document), in order: one long file must not crowd out the rest."""
    if cap <= 0:
        return list(items)
    seen: dict[str, int] = {}
    kept = []
    for item, score in items:
        group = group_of.get(item, item)
        if seen.get(group, 0) < cap:
            seen[group] = seen.get(group, 0) + 1
            kept.append((item, score))
    return kept
