"""The files of one build: neighbour precompute, writing + fsync, manifest contents and reload-verification."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .embedder import Embedder
from .config import BuildConfig
from .engine import (ARTICLES_FILE, IDS_FILE, NEIGHBOUR_SCORES_FILE, NEIGHBOURS_FILE, VECTORS_FILE, VIEWS_FILE,
                     Recommender, epoch_hours)
from .index import FaissIndex
from .manifest import Manifest, describe_files, fsync_path
from .related_build import RelatedState
from .stories import story_table

# Column of articles.parquet holding sha256 of each article's embedded text: the next rebuild diffs against it.
TEXT_HASH_COLUMN = "text_sha256"
# ... and of its lexical text (title + abstract + whole body): the related stage's incremental update diffs both.
LEXICAL_HASH_COLUMN = "lexical_sha256"


def compute_neighbours(index: FaissIndex, vectors: np.ndarray, k: int, rows: np.ndarray | None = None,
                       batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of each of ``rows`` (default: every row; self removed), in batches.

    Returns:
        rows (q, k) int32 (-1 padding) and cosine scores (q, k) float32.
    """
    queries = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.int64)
    k = max(min(k, len(vectors) - 1), 0)
    found_rows = np.full((len(queries), k), -1, dtype=np.int32)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    if k == 0:
        return found_rows, scores
    for start in range(0, len(queries), batch_size):
        batch = queries[start:start + batch_size]
        found, sims = index.search(np.ascontiguousarray(vectors[batch]), k + 1)
        for offset, (r, s) in enumerate(zip(found, sims)):
            keep = (r != batch[offset]) & (r >= 0)
            r, s = r[keep][:k], s[keep][:k]
            found_rows[start + offset, : len(r)] = r
            scores[start + offset, : len(s)] = s
    return found_rows, scores


def with_stories(articles: pd.DataFrame, neighbours: tuple[np.ndarray, np.ndarray], config: BuildConfig
                 ) -> pd.DataFrame:
    """The articles with their copy group and story id columns (``stories.py``), as a build stores them."""
    stories = story_table(articles["id"].tolist(), articles["title"].tolist(), neighbours[0], neighbours[1],
                          np.asarray(epoch_hours(articles["published_at"]), dtype=np.float64), config.ranking,
                          config.stories)
    return articles.assign(copy_group=stories.copy_groups, story_id=stories.story_ids.astype(str))


def write_build(directory: Path, articles: pd.DataFrame, vectors: np.ndarray, index: FaissIndex,
                neighbours: tuple[np.ndarray, np.ndarray], events: pd.DataFrame,
                state: RelatedState | None = None) -> list[str]:
    """Write a build's data files (everything but the manifest) and fsync them; ``state`` is what the next
    rebuild's related stage reuses (``related_build.py``)."""
    articles.to_parquet(directory / ARTICLES_FILE, index=False)
    np.save(directory / IDS_FILE, articles["id"].to_numpy(dtype=str))
    np.save(directory / VECTORS_FILE, vectors)
    np.save(directory / NEIGHBOURS_FILE, neighbours[0])
    np.save(directory / NEIGHBOUR_SCORES_FILE, neighbours[1])
    events.to_parquet(directory / VIEWS_FILE, index=False)
    index.save(directory)
    names = [ARTICLES_FILE, IDS_FILE, VECTORS_FILE, NEIGHBOURS_FILE, NEIGHBOUR_SCORES_FILE, VIEWS_FILE,
             FaissIndex.FILENAME]
    if state is not None:
        names.append(state.save(directory))
    for name in names:
        fsync_path(directory / name)
    return names


def make_manifest(stage: Path, build_id: str, names: list[str], embedder: Embedder, index: FaissIndex,
                  neighbour_count: int, source: dict[str, Any], seconds: dict[str, float],
                  config: dict[str, Any]) -> Manifest:
    """The manifest of a staged build (per-file sha256 included); written last by the caller."""
    return Manifest(
        build_id=build_id, created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        recommender_version=__version__, embedder=embedder.identity.to_dict(),
        index={"factory": index.factory, "metric": "inner_product", "count": index.count, "dims": index.dims,
               "neighbour_count": neighbour_count},
        source=source, files=describe_files(stage, names),
        build={"python": platform.python_version(), "faiss": _version("faiss-cpu"),
               "sentence_transformers": _version("sentence-transformers"), "numpy": np.__version__,
               "seconds": {k: round(v, 3) for k, v in seconds.items()}, "config": config},
    )


def verify_build(directory: Path, embedder: Embedder) -> Recommender:
    """Reload a staged build through the normal loader: manifest, every sha256, counts, order and model.

    The self-nearest-neighbour check is the ``self_match`` gate (``gates.py``), run by the pipeline right after.

    Raises:
        IndexFormatError: checksums, counts or the model identity do not match.
    """
    return Recommender.load(directory, embedder=embedder, verify=True)


def _version(distribution: str) -> str:
    # Package metadata, not an import: importing sentence_transformers pulls in torch (seconds).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
