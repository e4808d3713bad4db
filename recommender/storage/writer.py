"""Write a staged build's data files (fsynced) and its manifest contents."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..embedding.base import ModelIdentity
from ..fileio import fsync_path
from ..version import __version__
from . import layout
from .index import FaissIndex
from .manifest import FORMAT_VERSION, POSITIONS_FORMAT_VERSION, Manifest, describe_files


class StateFile(Protocol):
    """Something a build stores for the next rebuild (``build.related_tables.RelatedState``)."""

    def save(self, directory: Path) -> str:
        """Write the file into ``directory``; returns its name."""
        ...


def write_build(directory: Path, articles: pd.DataFrame, vectors: np.ndarray, index: FaissIndex,
                related: tuple[np.ndarray, np.ndarray], events: pd.DataFrame,
                state: StateFile | None = None) -> list[str]:
    """Write a build's data files (everything but the manifest) into ``directory`` and fsync them.

    Args:
        articles: one row per article in row order (``layout.TABLE_COLUMNS``, story and hash columns).
        vectors: (n, d) float32 unit vectors, row order.
        index: the FAISS index over ``vectors``.
        related: each row's related rows (n, k) and their relatedness scores (n, k).
        events: the page-view events the build was given.
        state: what the next rebuild's related stage reuses.

    Returns:
        The names of the files written (for the manifest).
    """
    articles.to_parquet(directory / layout.ARTICLES, index=False)
    np.save(directory / layout.IDS, articles["id"].to_numpy(dtype=str))
    np.save(directory / layout.VECTORS, vectors)
    np.save(directory / layout.RELATED_ROWS, related[0])
    np.save(directory / layout.RELATED_SCORES, related[1])
    events.to_parquet(directory / layout.VIEWS, index=False)
    index.save(directory / layout.INDEX)
    names = list(layout.DATA_FILES)
    if index.positions is not None:
        np.save(directory / layout.INDEX_POSITIONS, index.positions)
        names.append(layout.INDEX_POSITIONS)
    if state is not None:
        names.append(state.save(directory))
    for name in names:
        fsync_path(directory / name)
    return names


def make_manifest(stage: Path, build_id: str, names: list[str], model: ModelIdentity, index: FaissIndex,
                  related_count: int, source: dict[str, Any], seconds: dict[str, float],
                  config: dict[str, Any], files: dict[str, dict[str, Any]] | None = None) -> Manifest:
    """The manifest of a staged build (per-file sha256 included, or ``files`` where the caller hashed them);
    written last by the caller."""
    return Manifest(
        build_id=build_id, created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        recommender_version=__version__, embedder=model.to_dict(),
        index={"factory": index.factory, "metric": "inner_product", "count": index.count, "dims": index.dims,
               "neighbour_count": related_count, "rows_total": index.rows_total, "dead_rows": index.dead_rows,
               "ef_search": index.config.ef_search},
        source=source, files=files or describe_files(stage, names),
        build={"python": platform.python_version(), "faiss": _version("faiss-cpu"),
               "sentence_transformers": _version("sentence-transformers"), "numpy": np.__version__,
               "seconds": {k: round(v, 3) for k, v in seconds.items()}, "config": config},
        format_version=POSITIONS_FORMAT_VERSION if layout.INDEX_POSITIONS in names else FORMAT_VERSION,
    )


def _version(distribution: str) -> str:
    # Package metadata, not an import: importing sentence_transformers pulls in torch (seconds).
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
