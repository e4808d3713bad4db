"""Read a build directory: the manifest (verified), the settings it was built with, and its data files."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..config import BuildConfig, IndexConfig
from ..config_files import as_built
from ..errors import IndexFormatError
from . import layout
from .index import FaissIndex
from .manifest import Manifest, read_manifest
from .versions import resolve_build_dir


@dataclass(frozen=True)
class StoredBuild:
    """What one build directory holds, read and checked against its manifest.

    Attributes:
        directory: the resolved build directory.
        manifest: its verified manifest.
        config: the settings it was built with (older builds' missing settings filled as they were then).
        index: the FAISS index (search parameters from the reader's ``IndexConfig``).
        articles: ``layout.TABLE_COLUMNS`` and, where stored, ``layout.STORY_COLUMNS``, in row order.
        vectors: (n, d) float32 unit vectors.
        related_rows / related_scores: each row's related rows and their relatedness, (n, k).
        events: the page-view events the build was given (``layout.VIEW_COLUMNS``).
    """

    directory: Path
    manifest: Manifest
    config: BuildConfig
    index: FaissIndex
    articles: pd.DataFrame
    vectors: np.ndarray
    related_rows: np.ndarray
    related_scores: np.ndarray
    events: pd.DataFrame

    def __len__(self) -> int:
        return len(self.articles)


def data_file(directory: Path, name: str) -> Path:
    """A data file of a build, under its current name or, for builds written before a rename, its old one."""
    path = directory / name
    legacy = layout.LEGACY_NAMES.get(name)
    if not path.exists() and legacy is not None and (directory / legacy).exists():
        return directory / legacy
    return path


def empty_events() -> pd.DataFrame:
    """No page-view events, typed as a build stores them."""
    return pd.DataFrame({"article_id": pd.Series(dtype=str), "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                         "count": pd.Series(dtype="int64")})


def read_build(path: str | Path, verify: bool = True, index_config: IndexConfig | None = None,
               mmap: bool = True) -> StoredBuild:
    """Read a build, verifying its manifest and (with ``verify``) every file's sha256.

    Args:
        path: a build directory, an indexes root (its ``current`` is resolved once) or a ``current`` link.
        verify: check every file's sha256 against the manifest.
        index_config: search parameters (efSearch, nprobe) for the index; default: the build's own (its
            calibrated efSearch, ``manifest.index.ef_search``, unless ``index_config`` sets another).
        mmap: memory-map the large arrays and the index instead of reading them into memory.

    Raises:
        IndexFormatError: incomplete, damaged or foreign build, naming the file and the fix.
    """
    directory = resolve_build_dir(path)
    manifest = read_manifest(directory, verify_files=verify)
    config = BuildConfig.from_dict(as_built(manifest.build.get("config", {})))
    positions = (np.load(directory / layout.INDEX_POSITIONS) if layout.INDEX_POSITIONS in manifest.files
                 else None)
    search = index_config or config.index
    if "ef_search" in manifest.index and search.ef_search == config.index.ef_search:
        # The build's calibrated efSearch (``build/index_calibration.py``), unless the caller asks for another.
        search = replace(search, ef_search=int(manifest.index["ef_search"]))
    index = FaissIndex.load(directory / layout.INDEX, manifest.index["factory"], search, mmap=mmap,
                            positions=positions)
    import pyarrow.parquet as pq

    present = set(pq.read_schema(directory / layout.ARTICLES).names)
    columns = [c for c in (*layout.TABLE_COLUMNS, *layout.STORY_COLUMNS) if c in present]
    articles = pd.read_parquet(directory / layout.ARTICLES, columns=columns)
    mode: Literal["r"] | None = "r" if mmap else None
    vectors = np.load(directory / layout.VECTORS, mmap_mode=mode)
    ids = np.load(directory / layout.IDS)
    if not (len(articles) == len(ids) == index.count == vectors.shape[0] == manifest.count) or \
            not np.array_equal(ids.astype(str), articles["id"].to_numpy(dtype=str)):
        raise IndexFormatError(f"{directory}: articles, ids, vectors and index disagree on the article count "
                               f"or order; the build is damaged: rebuild it")
    related_rows = np.load(data_file(directory, layout.RELATED_ROWS), mmap_mode=mode)
    related_scores = np.load(data_file(directory, layout.RELATED_SCORES), mmap_mode=mode)
    views = directory / layout.VIEWS
    events = pd.read_parquet(views) if views.exists() else empty_events()
    return StoredBuild(directory, manifest, config, index, articles, vectors, related_rows, related_scores, events)
