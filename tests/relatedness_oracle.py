"""A brute-force oracle of the fused relatedness, written from the formula with dense numpy (no library code):
the build's related stage, full or incremental, must give the same table."""

from __future__ import annotations

import numpy as np


def fused_oracle(vectors: np.ndarray, tfidf: np.ndarray, dense_rows: np.ndarray, lexical_rows: np.ndarray, k: int,
                 lexical_weight: float, snn_weight: float, snn_size: int, entity_weight: float = 0.0,
                 entities: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best candidates by ``min(1, (cos + wl*tfidf + ws*snn + we*entities) / (1 + wl + ws))``.

    Args:
        vectors: (n, d) unit vectors; tfidf: (n, V) dense L2-normalised TF-IDF rows.
        dense_rows / lexical_rows: (n, *) candidate rows, -1 padded; candidates = their union without the row.
        entities: (n, T) dense L2-normalised entity TF-IDF rows, or None.

    Returns:
        rows (n, k) (-1 padded) and scores (n, k), best first (ties: lower row first).
    """
    n = len(vectors)
    cos = vectors @ vectors.T
    lex = tfidf @ tfidf.T
    ent = entities @ entities.T if entities is not None else np.zeros((n, n))
    candidates = []
    for r in range(n):
        found = {int(c) for c in np.concatenate([dense_rows[r], lexical_rows[r]]) if c >= 0 and c != r}
        candidates.append(sorted(found))
    members = []
    for r in range(n):
        ranked = sorted(candidates[r], key=lambda c: (-(cos[r, c] + lex[r, c]), c))[: snn_size - 1]
        members.append(set(ranked) | {r})
    rows = np.full((n, k), -1, dtype=np.int64)
    scores = np.zeros((n, k))
    total = 1 + lexical_weight + snn_weight
    for r in range(n):
        fused = [(min(1.0, (cos[r, c] + lexical_weight * lex[r, c] + snn_weight * len(members[r] & members[c])
                            / snn_size + entity_weight * ent[r, c]) / total), c) for c in candidates[r]]
        fused.sort(key=lambda pair: (-pair[0], pair[1]))
        for position, (score, c) in enumerate(fused[:k]):
            rows[r, position], scores[r, position] = c, score
    return rows, scores
