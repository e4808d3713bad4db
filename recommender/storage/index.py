"""FAISS vector index: exact and approximate behind one batch-first API; ``search`` returns article positions
(rows of ids.npy).

An index that a rebuild updated in place of building it again (``build/index_update.py``) holds more rows than
articles: the rows of removed and changed articles stay in the HNSW graph as tombstones (FAISS HNSW cannot
delete), and the changed vectors are appended. Its ``positions`` array maps each index row to the article
position it holds (-1 for a tombstone); ``search`` filters tombstones inside FAISS with an ``IDSelectorBitmap``
and returns positions, so a removed article is never found and callers see the same contract as a fresh index.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..config import IndexConfig
from ..errors import IndexFormatError, InvalidQueryError

if TYPE_CHECKING:
    import faiss


def choose_factory(count: int, config: IndexConfig) -> str:
    """The FAISS factory string for ``count`` vectors: exact below the threshold, HNSW above."""
    if config.factory:
        return config.factory
    return "Flat" if count <= config.exact_max_count else f"HNSW{config.hnsw_m},Flat"


class FaissIndex:
    """Inner product search over L2-normalised vectors (cosine similarity).

    Search results are article positions (the rows of the vectors given to ``build``, or what ``positions`` maps
    index rows to); mapping positions to article ids is the caller's job (``ids.npy`` in a build), so the two id
    spaces never mix.

    Attributes:
        index: the FAISS index.
        factory: its factory string.
        config: search parameters.
        positions: (ntotal,) int64 article position of each index row, -1 for a tombstone; None: row = position.
    """

    def __init__(self, index: faiss.Index, factory: str, config: IndexConfig,
                 positions: np.ndarray | None = None) -> None:
        self.index = index
        self.factory = factory
        self.config = config
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self._params: faiss.SearchParameters | None = None
        self._bitmap: np.ndarray | None = None
        self._selector: faiss.IDSelector | None = None
        if self.positions is not None:
            _check_positions(self.positions, int(index.ntotal))
        self._apply_search_params()

    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig | None = None) -> FaissIndex:
        """Index ``vectors`` ((n, d) float32, unit length), training first where the index type needs it."""
        import faiss

        config = config or IndexConfig()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D (n, d) array, got shape {vectors.shape}")
        factory = choose_factory(len(vectors), config)
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        hnsw = _hnsw_of(index)
        if hnsw is not None:
            hnsw.efConstruction = config.ef_construction
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        return cls(index, factory, config)

    def searching_with(self, ef_search: int) -> FaissIndex:
        """This index searching with another HNSW efSearch (the FAISS index is shared, not copied)."""
        return FaissIndex(self.index, self.factory, replace(self.config, ef_search=ef_search), self.positions)

    @property
    def count(self) -> int:
        """Number of indexed articles (tombstones not counted)."""
        if self.positions is None:
            return int(self.index.ntotal)
        return int((self.positions >= 0).sum())

    @property
    def rows_total(self) -> int:
        """Rows in the FAISS index, tombstones included."""
        return int(self.index.ntotal)

    @property
    def dead_rows(self) -> int:
        """Tombstoned rows (removed or changed articles still in the graph, never returned)."""
        return self.rows_total - self.count

    @property
    def dims(self) -> int:
        """Vector dimensionality."""
        return int(self.index.d)

    @property
    def exact(self) -> bool:
        """Whether search is exhaustive (an oracle) rather than approximate."""
        return self.factory == "Flat"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest rows of each query.

        Args:
            queries: (n, d) float32 unit vectors.
            k: neighbours per query; capped at the index size.

        Returns:
            rows (n, k) int64 (-1 where fewer than k exist) and scores (n, k) float32 (cosine similarity).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dims:
            raise InvalidQueryError(f"query vectors have {queries.shape[1]} dims, the index has {self.dims}")
        if k < 1:
            raise InvalidQueryError(f"k must be at least 1, got {k}")
        k = min(k, max(self.count, 1))
        if self._params is None:
            scores, rows = self.index.search(queries, k)
        else:
            scores, rows = self.index.search(queries, k, params=self._params)
        if self.positions is None:
            return rows.astype(np.int64), scores.astype(np.float32)
        found = np.where(rows >= 0, self.positions[np.maximum(rows, 0)], -1)
        return found.astype(np.int64), scores.astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the index to ``path`` (a build's ``layout.INDEX``)."""
        import faiss

        faiss.write_index(self.index, str(path))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, factory: str, config: IndexConfig | None = None,
             mmap: bool = True, positions: np.ndarray | None = None) -> FaissIndex:
        """Read an index file; memory-mapped where the index type allows it (``mmap``); ``positions``: the
        build's index-row -> article-position array (``layout.INDEX_POSITIONS``), where it has one."""
        import faiss

        path = Path(path)
        if not path.exists():
            raise IndexFormatError(f"{path} is missing; the build is incomplete, rebuild it")
        try:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            index = faiss.read_index(str(path), flags)
        except RuntimeError:
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:
                raise IndexFormatError(f"{path} is not a readable FAISS index ({exc}); rebuild it") from exc
        return cls(index, factory, config or IndexConfig(), positions)

    def _apply_search_params(self) -> None:
        import faiss

        hnsw = _hnsw_of(self.index)
        if hnsw is not None:
            hnsw.efSearch = self.config.ef_search
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = self.config.nprobe
        module: Any = faiss  # the stubs lack the SWIG keyword constructors of the search parameters
        if self.positions is None:
            if hnsw is not None:  # per search, so two FaissIndex objects over one FAISS index keep their own
                self._params = module.SearchParametersHNSW(efSearch=self.config.ef_search)
            return
        # FAISS filters the tombstones during the graph walk (they still route it); the bitmap must outlive
        # the selector, which keeps only a pointer to it.
        self._bitmap = np.packbits(self.positions >= 0, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(self.positions), faiss.swig_ptr(self._bitmap))
        if hnsw is not None:
            self._params = module.SearchParametersHNSW(sel=selector, efSearch=self.config.ef_search)
        elif ivf is not None:
            self._params = module.SearchParametersIVF(sel=selector, nprobe=self.config.nprobe)
        else:
            self._params = module.SearchParameters(sel=selector)
        self._selector = selector


def _check_positions(positions: np.ndarray, ntotal: int) -> None:
    """The live entries of ``positions`` must be every article position exactly once."""
    if positions.ndim != 1 or len(positions) != ntotal:
        raise IndexFormatError(f"the index-row positions hold {positions.shape} entries for an index of {ntotal} "
                               f"rows; the build is damaged: rebuild it")
    alive = np.sort(positions[positions >= 0])
    if not np.array_equal(alive, np.arange(len(alive))) or (positions < -1).any():
        raise IndexFormatError("the index-row positions are not each article position exactly once; the build is "
                               "damaged: rebuild it")


def _hnsw_of(index: faiss.Index) -> faiss.HNSW | None:
    """The HNSW graph of ``index`` or of the index it wraps (``base_index``); None when neither has one."""
    import faiss

    for candidate in (index, getattr(index, "base_index", None)):
        if candidate is not None:
            try:
                # cast: the stub types downcast_index as returning Index; it returns the concrete class, and one
                # without an HNSW graph raises the AttributeError below
                return cast("faiss.IndexHNSW", faiss.downcast_index(candidate)).hnsw
            except AttributeError:
                continue
    return None


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k by inner product in numpy: the oracle approximate indexes are checked against."""
    scores = np.atleast_2d(queries) @ vectors.T
    k = min(k, vectors.shape[0])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64), np.take_along_axis(top_scores, order, axis=1)


def recall_at_k(approximate_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """Mean share of the exact top-k rows that the approximate search also returned."""
    hits = [len(set(a[a >= 0]) & set(e[e >= 0])) / max((e >= 0).sum(), 1)
            for a, e in zip(approximate_rows, exact_rows)]
    return float(np.mean(hits)) if hits else 0.0
