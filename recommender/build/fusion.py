"""The related stage of a build without a usable previous state, by query shard: TF-IDF candidate search, pair
values, shared-neighbour sets (phase one), then shared-neighbour counts, entity scores and the fused ranking
(phase two, which reads every row's neighbour set). Each phase is a shard function over read-only state, run by a
``ShardRunner``; the driver only merges in shard order. Every value of a row depends on that row's inputs and the
global state alone, so the result is the same for any shard size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..config import RelatednessConfig
from ..pairs import pair_cosines, pair_dots
from .relatedness import candidate_matrix, lexical_search, member_matrix, ranked
from .shards import ShardRunner, State, stack_rows, stack_sparse
from .toptable import TopTable


@dataclass(frozen=True)
class Fused:
    """What ``fused_tables`` computes: the lexical table, every (row, candidate) pair's values and the ranking."""

    lexical: TopTable
    candidates: np.ndarray      # (n, c) int32, -1 padding
    cosines: np.ndarray         # (n, c) float32
    lexical_scores: np.ndarray  # (n, c) float32
    shared: np.ndarray          # (n, c) uint16
    related: tuple[np.ndarray, np.ndarray]
    stats: dict[str, int]


def lexical_shard(state: State, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The TF-IDF candidate search of one shard (state: ``queries``, ``transposed``, ``k``)."""
    return lexical_search(state["queries"][rows], state["transposed"], rows, state["k"])


def _pair_rows(candidates: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shard row, column, target row) of every non-padding pair of a shard's candidates, row-major."""
    at, cols = np.nonzero(candidates >= 0)
    return at, cols, candidates[at, cols].astype(np.int64)


def candidates_shard(state: State, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Phase one of a shard: its lexical table, candidates, their cosines and TF-IDF cosines, and its
    shared-neighbour sets as (q, n) CSR rows (state: ``queries``, ``transposed``, ``vectors``, ``matrix``,
    ``dense_rows``, ``depth``, ``lexical_candidates``, ``snn_size``)."""
    n = len(state["vectors"])
    found, scores = lexical_search(state["queries"][rows], state["transposed"], rows, min(state["depth"], n - 1))
    lexical = TopTable.from_search(found, scores, state["depth"])
    candidates = candidate_matrix(state["dense_rows"][rows], lexical.head(state["lexical_candidates"])[0],
                                  own=rows, count=n)
    at, cols, targets = _pair_rows(candidates, rows)
    cosines = np.zeros(candidates.shape, dtype=np.float32)
    lexical_scores = np.zeros(candidates.shape, dtype=np.float32)
    cosines[at, cols] = pair_cosines(state["vectors"], rows[at], targets)
    lexical_scores[at, cols] = pair_dots(state["matrix"], rows[at], targets)
    members = member_matrix(candidates, cosines, lexical_scores, state["snn_size"], own=rows)
    members = sp.csr_matrix((members.data, members.indices, members.indptr), shape=(len(rows), n))
    return lexical.rows, lexical.scores, lexical.floor, candidates, cosines, lexical_scores, members


def ranking_shard(state: State, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Phase two of a shard: shared-neighbour counts, entity scores and the fused top ``k`` (state: ``members``,
    ``entities``, ``candidates``, ``cosines``, ``lexical_scores``, ``k``, ``settings``)."""
    candidates = state["candidates"][rows]
    at, cols, targets = _pair_rows(candidates, rows)
    shared = np.zeros(candidates.shape, dtype=np.uint16)
    shared[at, cols] = np.rint(pair_dots(state["members"], rows[at], targets)).astype(np.uint16)
    entities = None
    if state["entities"] is not None:
        entities = np.zeros(candidates.shape, dtype=np.float32)
        entities[at, cols] = pair_dots(state["entities"], rows[at], targets)
    settings: RelatednessConfig = state["settings"]
    related_rows, related_scores = ranked(candidates, state["cosines"][rows], state["lexical_scores"][rows], shared,
                                          state["k"], settings, entities, count=state["members"].shape[0])
    return shared, related_rows, related_scores


def fused_tables(shards: ShardRunner, vectors: np.ndarray, matrix: sp.csr_matrix, queries: sp.csr_matrix,
                 transposed: sp.csr_matrix, dense_rows: np.ndarray, k: int, depth: int,
                 settings: RelatednessConfig, entities: sp.csr_matrix | None) -> Fused:
    """The lexical table, pair values and fused related table of every row, by query shard on ``shards``.

    Args:
        vectors: (n, d) unit vectors; matrix: (n, V) TF-IDF rows; queries: their query form
            (``lexical_queries``); transposed: ``matrix.T`` as CSR.
        dense_rows: (n, k) each row's dense candidates (the dense table's head).
        k: related entries per row; depth: lexical table entries per row (candidates + margin).
        entities: the entity matrix (``entity_matrix``) or None.
    """
    n = len(vectors)
    rows = np.arange(n, dtype=np.int64)
    first: dict[str, Any] = {"queries": queries, "transposed": transposed, "vectors": vectors, "matrix": matrix,
                             "dense_rows": dense_rows, "depth": depth,
                             "lexical_candidates": settings.lexical_candidates, "snn_size": settings.snn_size}
    parts = shards.map(candidates_shard, first, rows)
    lexical = TopTable(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
    width = max(p[3].shape[1] for p in parts)
    candidates = stack_rows([p[3] for p in parts], width, -1)
    cosines, lexical_scores = (stack_rows([p[i] for p in parts], width, 0) for i in (4, 5))
    members = stack_sparse([p[6] for p in parts], n)
    second = {"members": members, "entities": entities, "candidates": candidates, "cosines": cosines,
              "lexical_scores": lexical_scores, "k": k, "settings": settings}
    ranking = shards.map(ranking_shard, second, rows)
    shared = stack_rows([p[0] for p in ranking], width, 0)
    related = (np.concatenate([p[1] for p in ranking]), np.concatenate([p[2] for p in ranking]))
    pairs = int((candidates >= 0).sum())
    stats = {"pairs": pairs, "pair_scores_computed": pairs, "lexical_scores_computed": pairs,
             "shared_counts_computed": pairs, "neighbour_sets_changed": n}
    return Fused(lexical, candidates, cosines, lexical_scores, shared, related, stats)
