"""Evaluation metrics: ranking accuracy, correlation and beyond-accuracy measures. Pure functions, no I/O.

Conventions (tested against hand-computed values):
- ``precision_at_k`` divides by ``k``: a list shorter than ``k`` (or empty) is penalised for the missing slots.
- ``recall_at_k`` and ``ndcg_at_k`` are NaN when nothing is relevant (undefined); ``nanmean`` skips those queries.
- Correlations are NaN for fewer than two points or a constant input; Spearman gives tied values their mean rank.
- ``popularity_bias`` is the mean popularity percentile of recommended items (ties share their mean rank):
  0.5 is what a uniform random recommender gets on average; 1.0 means always the most viewed.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Hashable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def precision_at_k(recommended: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the ``k`` slots holding a relevant item."""
    _check_k(k)
    relevant = set(relevant)
    return sum(1 for item in recommended[:k] if item in relevant) / k


def recall_at_k(recommended: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the relevant items found in the top ``k``; NaN when nothing is relevant."""
    _check_k(k)
    relevant = set(relevant)
    if not relevant:
        return float("nan")
    return len(relevant.intersection(recommended[:k])) / len(relevant)


def ndcg_at_k(recommended: Sequence[Hashable], relevant: Collection[Hashable] | Mapping[Hashable, float],
              k: int) -> float:
    """Normalised discounted cumulative gain at ``k`` with gain / log2(rank + 1).

    Args:
        recommended: the list, best first (a repeated item gains only once).
        relevant: relevant items (gain 1) or item -> graded gain.
        k: cut-off.

    Returns:
        DCG / ideal DCG in [0, 1]; NaN when no item has a positive gain.
    """
    _check_k(k)
    gains = dict(relevant) if isinstance(relevant, Mapping) else {item: 1.0 for item in relevant}
    ideal_gains = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    if not ideal_gains:
        return float("nan")
    seen: set[Hashable] = set()
    dcg = 0.0
    for rank, item in enumerate(recommended[:k], start=1):
        if item not in seen:
            dcg += gains.get(item, 0.0) / np.log2(rank + 1)
            seen.add(item)
    ideal = sum(g / np.log2(rank + 1) for rank, g in enumerate(ideal_gains, start=1))
    return float(dcg / ideal)


def _paired(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correlation needs two 1-D sequences of equal length, got shapes {a.shape} and {b.shape}")
    return a, b


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN for fewer than 2 points or a constant input."""
    a, b = _paired(x, y)
    if len(a) < 2:
        return float("nan")
    dx, dy = a - a.mean(), b - b.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman correlation: Pearson of the ranks, tied values sharing their mean rank."""
    a, b = _paired(x, y)
    if len(a) < 2:
        return float("nan")
    return pearson(rankdata(a), rankdata(b))


def nanmean(values: Sequence[float]) -> float:
    """Mean ignoring NaN; NaN when every value is NaN or there are none."""
    array = np.asarray(values, dtype=np.float64)
    kept = array[~np.isnan(array)]
    return float(kept.mean()) if len(kept) else float("nan")


def coverage(lists: Sequence[Sequence[Hashable]], catalogue_size: int) -> float:
    """Share of the catalogue appearing in at least one list."""
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be positive, got {catalogue_size}")
    return len({item for items in lists for item in items}) / catalogue_size


def intra_list_diversity(lists: Sequence[Sequence[Hashable]], vector_of: Callable[[Hashable], np.ndarray]) -> float:
    """Mean over lists of the mean pairwise cosine distance (1 - cosine) between a list's items.

    ``vector_of`` returns an item's unit vector. Lists with fewer than two items have no pairs and are skipped;
    NaN when no list has two items.
    """
    per_list = []
    for items in lists:
        if len(items) < 2:
            continue
        vectors = np.stack([np.asarray(vector_of(i), dtype=np.float64) for i in items])
        similarity = vectors @ vectors.T
        upper = similarity[np.triu_indices(len(items), k=1)]
        per_list.append(float(np.mean(1.0 - upper)))
    return nanmean(per_list)


def duplicate_rate(lists: Sequence[Sequence[Hashable]], story_of: Mapping[Any, Hashable],
                   anchors: Sequence[Hashable] | None = None) -> float:
    """Share of recommended items repeating a story already shown: the anchor's or an earlier item's.

    Args:
        lists: recommendation lists.
        story_of: item -> story id (items absent from the map are stories of their own).
        anchors: the article each list was made for (same order as ``lists``); None ignores anchors.

    Returns:
        duplicates / recommended items; NaN when every list is empty.
    """
    if anchors is not None and len(anchors) != len(lists):
        raise ValueError(f"anchors has {len(anchors)} entries for {len(lists)} lists")
    shown = duplicates = 0
    for n, items in enumerate(lists):
        seen = {story_of.get(anchors[n], ("item", anchors[n]))} if anchors is not None else set()
        for item in items:
            story = story_of.get(item, ("item", item))
            duplicates += story in seen
            seen.add(story)
            shown += 1
    return duplicates / shown if shown else float("nan")


def median_age_hours(lists: Sequence[Sequence[Hashable]], published_hours: Mapping[Hashable, float],
                     now_hours: float) -> float:
    """Median age at ``now_hours`` of recommended items with a known date; NaN when none has one."""
    ages = [now_hours - published_hours[i] for items in lists for i in items
            if i in published_hours and not np.isnan(published_hours[i])]
    return float(np.median(ages)) if ages else float("nan")


def popularity_percentiles(popularity: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Item -> (mean rank - 0.5) / n of its popularity over the catalogue; empty when popularity is constant."""
    items = list(popularity)
    values = np.array([popularity[i] for i in items], dtype=np.float64)
    if len(values) == 0 or np.all(values == values[0]):
        return {}
    percentiles = (rankdata(values) - 0.5) / len(values)
    return dict(zip(items, percentiles.tolist()))


def popularity_bias(lists: Sequence[Sequence[Hashable]], popularity: Mapping[Hashable, float]) -> float:
    """Mean popularity percentile of every recommended item (see module doc); NaN without popularity data."""
    percentiles = popularity_percentiles(popularity)
    if not percentiles:
        return float("nan")
    return nanmean([percentiles.get(i, float("nan")) for items in lists for i in items])


def story_groups(ids: Sequence[Hashable], pairs: Sequence[tuple[int, int]]) -> dict[Any, int]:
    """Connected components of "same story" pairs of row positions: id -> story number (union-find)."""
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {item: root(i) for i, item in enumerate(ids)}
