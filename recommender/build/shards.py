"""Query shards: the catalogue-sized stages (dense neighbours, the related stage) cut into runs of consecutive
rows, each computed by one shard function over read-only state, and merged in shard order.

A ``ShardRunner`` runs a shard function on every shard: ``LocalShards`` in this process, one after another, and
``ray_stages.RayShards`` on Ray actors that hold the state. Both cut the rows the same way (``split_rows``), so a
build gives the same bytes whichever runs it, even where a computation is not invariant to how many rows share
a call (FAISS's exact search sums in another order for another batch size or thread count; ``neighbours``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import scipy.sparse as sp

from ..config import DEFAULT_QUERY_SHARD_ROWS

State = Mapping[str, Any]
ShardFn = Callable[[State, np.ndarray], Any]


class ShardRunner(Protocol):
    """Runs a shard function over the query shards of ``rows``; results come back in shard order."""

    name: str
    shard_rows: int

    def map(self, fn: ShardFn, state: State, rows: np.ndarray) -> list[Any]:
        """``[fn(state, shard) for shard in split_rows(rows, shard_rows)]``, wherever it runs.

        Args:
            fn: a module-level function (Ray sends it by reference), pure in ``state`` and the shard's rows.
            state: read-only inputs every shard reads (the index, vectors, matrices, settings).
            rows: (q,) int64 the query rows, in the order their results are wanted.
        """
        ...


def split_rows(rows: np.ndarray, shard_rows: int) -> list[np.ndarray]:
    """``rows`` cut into consecutive shards of ``shard_rows`` (the last one shorter)."""
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    rows = np.asarray(rows, dtype=np.int64)
    return [rows[start:start + shard_rows] for start in range(0, len(rows), shard_rows)]


class LocalShards:
    """Every shard in this process, in order (the local executor's runner)."""

    name = "local"

    def __init__(self, shard_rows: int = DEFAULT_QUERY_SHARD_ROWS) -> None:
        if shard_rows < 1:
            raise ValueError(f"query_shard_rows must be >= 1, got {shard_rows}")
        self.shard_rows = shard_rows

    def map(self, fn: ShardFn, state: State, rows: np.ndarray) -> list[Any]:
        """Run ``fn`` on each shard of ``rows`` here."""
        return [fn(state, part) for part in split_rows(rows, self.shard_rows)]


def stack_rows(parts: Sequence[np.ndarray], width: int, fill: float | int) -> np.ndarray:
    """Row blocks of at most ``width`` columns stacked into one (sum of rows, width) array, each block padded at
    the right with ``fill`` (shards of a candidate table are as wide as their own widest row)."""
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=fill) for p in parts]
    return np.concatenate(padded, axis=0)


def stack_sparse(parts: Sequence[sp.csr_matrix], columns: int) -> sp.csr_matrix:
    """CSR row blocks of ``columns`` columns stacked into one matrix (indices and their order kept)."""
    if not parts:
        return sp.csr_matrix((0, columns), dtype=np.float32)
    return sp.csr_matrix(sp.vstack(list(parts), format="csr"))
