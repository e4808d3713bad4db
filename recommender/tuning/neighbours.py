"""The base model's nearest neighbours of a catalogue (exact, in batches), and hard negatives drawn from them."""

from __future__ import annotations

import numpy as np


def nearest(vectors: np.ndarray, k: int, batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most similar other rows by cosine, exact (unit vectors, one matrix product per batch).

    Returns:
        rows (n, k) int64 (-1 padding when there are fewer than k others) and cosines (n, k) float32, best first.
    """
    n = len(vectors)
    k_found = max(min(k, n - 1), 0)
    rows = np.full((n, k), -1, dtype=np.int64)
    cosines = np.zeros((n, k), dtype=np.float32)
    if k_found == 0:
        return rows, cosines
    for start in range(0, n, batch_size):
        block = vectors[start:start + batch_size] @ vectors.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # never yourself
        top = np.argpartition(-block, k_found - 1, axis=1)[:, :k_found]
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(top, order, axis=1)
        rows[start:start + len(block), :k_found] = best
        cosines[start:start + len(block), :k_found] = np.take_along_axis(block, best, axis=1)
    return rows, cosines


def hard_negatives(anchors: np.ndarray, positives: np.ndarray, neighbour_rows: np.ndarray,
                   same_group: list[np.ndarray], allowed: np.ndarray, skip: int = 2) -> np.ndarray:
    """For each (anchor, positive) pair, the anchor's nearest neighbour that is a safe negative, or -1.

    Safe: allowed (the same side of the split), not the positive, and in none of the anchor's groups (story,
    copy group, section: one (n,) label array each). The ``skip`` nearest safe ones are passed over: the very
    nearest "different" article is the likeliest to be a missed duplicate.

    Args:
        anchors / positives: (p,) row numbers (a positive of -1 is a text part of the anchor itself).
        neighbour_rows: (n, k) the base model's neighbours (``nearest``).
        same_group: label arrays; a neighbour sharing any label with its anchor is never a negative.
        allowed: (n,) bool, the rows a negative may be drawn from.
        skip: safe neighbours passed over before one is taken.
    """
    out = np.full(len(anchors), -1, dtype=np.int64)
    for n, (anchor, positive) in enumerate(zip(anchors.tolist(), positives.tolist())):
        passed = 0
        for row in neighbour_rows[anchor].tolist():
            if row < 0 or row == positive or not allowed[row]:
                continue
            if any(labels[row] == labels[anchor] and labels[anchor] not in ("", None) for labels in same_group):
                continue
            if passed < skip:
                passed += 1
                continue
            out[n] = row
            break
    return out
