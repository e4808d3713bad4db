"""Length-aware batching: texts of similar token length share a batch, so little compute goes to padding."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import numpy as np


def length_sorted_batches(token_lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Positions grouped into batches of at most ``batch_size``, longest texts first.

    Longest first so that a run that runs out of memory does so on its first batch, not its last.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = np.argsort(-np.asarray(token_lengths, dtype=np.int64), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def encode_length_sorted(texts: Sequence[Any], token_lengths: Sequence[int], batch_size: int, dims: int,
                         encode_batch: Callable[[list[Any]], np.ndarray], progress: bool = False) -> np.ndarray:
    """Encode ``texts`` batch by batch in token-length order and return the vectors in input order.

    Args:
        texts: the texts (or their tokenisations: whatever ``encode_batch`` takes).
        token_lengths: tokens of each text after truncation (same order as ``texts``).
        batch_size: texts per call of ``encode_batch``.
        dims: vector size (for the empty case and the output array).
        encode_batch: texts -> (len(texts), dims) float32 vectors.
        progress: show a progress bar over batches (on a terminal).

    Returns:
        (len(texts), dims) float32, row i belonging to ``texts[i]``.
    """
    if len(texts) != len(token_lengths):
        raise ValueError(f"{len(texts)} texts but {len(token_lengths)} token lengths")
    vectors = np.zeros((len(texts), dims), dtype=np.float32)
    batches = length_sorted_batches(token_lengths, batch_size)
    if progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        batches = tqdm(batches, unit="batch")
    for positions in batches:
        vectors[positions] = encode_batch([texts[i] for i in positions])
    return vectors


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
