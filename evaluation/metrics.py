"""Evaluation metrics as pure functions: rankings of ids against relevance judgements (as trec_eval computes
them), sets of evidence found among ranked results, and summaries of measurements."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence, Set
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def _first_occurrences(ranked: Sequence[str]) -> list[str | None]:
    """`ranked` with every repeat of an id blanked: an id is credited once, where it first appears (two chunks
    of one document, or two files that map to one id, must not count its gain twice)."""
    seen: set[str] = set()
    kept: list[str | None] = []
    for item in ranked:
        kept.append(None if item in seen else item)
        seen.add(item)
    return kept


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain at k, with graded (linear) gains; the ideal ranking is the judged
    gains, best first, cut at k. Each id counts once, at its first position."""
    gains = [relevant.get(item, 0) if item is not None else 0 for item in _first_occurrences(ranked[:k])]
    dcg = sum(gain / math.log2(position + 2) for position, gain in enumerate(gains) if gain > 0)
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(position + 2) for position, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """The share of the relevant ids (gain above 0) among the first k."""
    wanted = {item for item, gain in relevant.items() if gain > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """The reciprocal rank of the first relevant id among the first k, else 0."""
    for position, item in enumerate(ranked[:k], start=1):
        if relevant.get(item, 0) > 0:
            return 1.0 / position
    return 0.0


def hit_at(found: Sequence[Set[T]], wanted: Set[T], k: int) -> float:
    """1 when any wanted item is among what the first k results hold (each result holds a set, e.g. the pages
    a passage spans), else 0: a hit rate once averaged, not a recall."""
    return float(any(not wanted.isdisjoint(items) for items in found[:k]))


def set_recall_at(found: Sequence[Set[T]], wanted: Set[T], k: int) -> float:
    """The share of the wanted items that the first k results hold between them (0 when nothing is wanted)."""
    if not wanted:
        return 0.0
    held: set[T] = set()
    for items in found[:k]:
        held.update(items)
    return len(held & wanted) / len(wanted)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of the values lie (nearest rank)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
