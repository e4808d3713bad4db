"""Build orchestration: catalogue (+ views) -> embeddings -> index -> neighbours -> staged build -> publish."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import __version__
from .articles import Catalogue, embedding_texts, read_catalogue
from .config import BuildConfig
from .embedder import Embedder, EmbeddingCache, SentenceTransformerEmbedder, embed_cached
from .engine import (ARTICLES_FILE, IDS_FILE, NEIGHBOUR_SCORES_FILE, NEIGHBOURS_FILE, VECTORS_FILE, VIEWS_FILE,
                     Recommender)
from .errors import IndexFormatError, RecommenderError
from .events import read_views
from .index import FaissIndex
from .manifest import Manifest, describe_files, fsync_path, write_manifest
from .store import IndexStore, new_build_id

log = logging.getLogger("recommender.pipeline")
CACHE_FILE = "embedding-cache.sqlite"


@dataclass
class BuildReport:
    """What a build did: counts, per-stage seconds and where it landed."""

    build_id: str
    path: Path
    articles: int
    rejected: int
    embedded: int
    cached: int
    seconds: dict[str, float] = field(default_factory=dict)
    catalogue_summary: str = ""
    rejects_path: Path | None = None
    views: int = 0
    views_rejected: int = 0

    @property
    def total_seconds(self) -> float:
        """Wall time of all stages."""
        return sum(self.seconds.values())

    def summary(self) -> str:
        """The final one-line summary."""
        rate = self.embedded / self.seconds["embed"] if self.seconds.get("embed") and self.embedded else 0.0
        stages = ", ".join(f"{name} {s:.1f}s" for name, s in self.seconds.items())
        return (f"built {self.build_id}: {self.articles} articles ({self.rejected} rejected), {self.embedded} "
                f"embedded ({rate:.0f}/s), {self.cached} from cache, {self.views} view rows; "
                f"{self.total_seconds:.1f}s ({stages})")


def compute_neighbours(index: FaissIndex, vectors: np.ndarray, k: int,
                       batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows (self removed), in batches.

    Returns:
        rows (n, k) int32 (-1 padding) and cosine scores (n, k) float32.
    """
    n = len(vectors)
    k = max(min(k, n - 1), 0)
    rows = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return rows, scores
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        found, sims = index.search(vectors[start:stop], k + 1)
        for offset, (r, s) in enumerate(zip(found, sims)):
            keep = (r != start + offset) & (r >= 0)
            r, s = r[keep][:k], s[keep][:k]
            rows[start + offset, : len(r)] = r
            scores[start + offset, : len(s)] = s
    return rows, scores


def write_build(directory: Path, articles: pd.DataFrame, vectors: np.ndarray, index: FaissIndex,
                neighbours: tuple[np.ndarray, np.ndarray], events: pd.DataFrame) -> list[str]:
    """Write a build's data files (everything but the manifest) and fsync them."""
    articles.to_parquet(directory / ARTICLES_FILE, index=False)
    np.save(directory / IDS_FILE, articles["id"].to_numpy(dtype=str))
    np.save(directory / VECTORS_FILE, vectors)
    np.save(directory / NEIGHBOURS_FILE, neighbours[0])
    np.save(directory / NEIGHBOUR_SCORES_FILE, neighbours[1])
    events.to_parquet(directory / VIEWS_FILE, index=False)
    index.save(directory)
    names = [ARTICLES_FILE, IDS_FILE, VECTORS_FILE, NEIGHBOURS_FILE, NEIGHBOUR_SCORES_FILE, VIEWS_FILE,
             FaissIndex.FILENAME]
    for name in names:
        fsync_path(directory / name)
    return names


def verify_build(directory: Path, embedder: Embedder, sample_size: int = 100, seed: int = 0) -> Recommender:
    """Reload a staged build through the normal loader and check each sampled article is its own top neighbour.

    Raises:
        IndexFormatError: checksums, counts or the self-neighbour check fail.
    """
    recommender = Recommender.load(directory, embedder=embedder, verify=True)
    n = len(recommender)
    if n == 0:
        return recommender
    sample = np.random.default_rng(seed).choice(n, size=min(sample_size, n), replace=False)
    rows, _ = recommender.index.search(np.asarray(recommender.table.vectors[sample]), 2)
    vectors = recommender.table.vectors
    for row, found in zip(sample, rows):
        # An exact duplicate vector may tie with the article itself; either is "itself".
        if row not in found and not np.allclose(vectors[found[0]], vectors[row], atol=1e-6):
            raise IndexFormatError(f"staged build {directory.name}: article {recommender.table.ids[row]!r} "
                                   f"is not its own nearest neighbour; the index is broken, nothing published")
    return recommender


def build(articles_source: str | Path | pd.DataFrame, indexes_root: str | Path,
          views_source: str | Path | pd.DataFrame | None = None, config: BuildConfig | None = None,
          embedder: Embedder | None = None, cache_path: str | Path | None = None, progress: bool = False,
          publish: bool = True, rejects_path: str | Path | None = None,
          on_stage: Callable[[str, float], None] | None = None) -> BuildReport:
    """Build a new index version under ``indexes_root`` and (by default) publish it as ``current``.

    Args:
        articles_source: catalogue file, database URL or DataFrame (see ``articles.read_catalogue``).
        indexes_root: the versioned index directory (``builds/`` and ``current`` inside).
        views_source: page-view events or aggregates (CSV/Parquet) for popularity.
        config: build settings (copied into the manifest).
        embedder: defaults to ``SentenceTransformerEmbedder(config.embedder)``.
        cache_path: embedding cache file; defaults to ``indexes_root/embedding-cache.sqlite``.
        progress: show progress bars (on a terminal).
        publish: False stages and verifies the build but leaves ``current`` alone (a dry run).
        rejects_path: where rejected rows go; defaults to ``indexes_root/rejects/<build_id>.csv``.
        on_stage: called with (stage name, seconds) as each stage ends (for logs).

    Raises:
        InvalidCatalogueError: unreadable catalogue or too many rejects (nothing is published).
        IndexFormatError: the staged build failed verification (nothing is published).
    """
    config = config or BuildConfig()
    root = Path(indexes_root)
    store = IndexStore(root)
    build_id = new_build_id()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now
        if on_stage:
            on_stage(stage, seconds[stage])

    rejects_file = Path(rejects_path) if rejects_path else root / "rejects" / f"{build_id}.csv"
    try:
        catalogue: Catalogue = read_catalogue(articles_source, config.catalogue)
    except RecommenderError as exc:
        failed = getattr(exc, "catalogue", None)
        if failed is not None:
            failed.write_rejects(rejects_file)
        raise
    catalogue.write_rejects(rejects_file)
    articles = catalogue.articles
    if articles.empty:
        raise RecommenderError("the catalogue has no valid articles; nothing to index")
    events, view_rejects = (read_views(views_source) if views_source is not None
                            else (pd.DataFrame({"article_id": pd.Series(dtype=str),
                                                "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                                                "count": pd.Series(dtype="int64")}), pd.DataFrame()))
    if len(view_rejects):
        view_rejects.to_csv(rejects_file.with_name(rejects_file.stem + "-views.csv"), index=False)
    done("read")

    embedder = embedder or SentenceTransformerEmbedder(config.embedder)
    cache = EmbeddingCache(cache_path or root / CACHE_FILE)
    try:
        texts = embedding_texts(articles, config.embedder.max_chars)
        vectors, embedded = embed_cached(embedder, texts, cache, progress=progress)
    finally:
        cache.close()
    done("embed")

    index = FaissIndex.build(vectors, config.index)
    done("index")
    neighbours = compute_neighbours(index, vectors, config.neighbour_count)
    done("neighbours")

    stage = store.stage(build_id)
    try:
        names = write_build(stage, articles, vectors, index, neighbours, events)
        manifest = Manifest(
            build_id=build_id, created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            recommender_version=__version__, embedder=embedder.identity.to_dict(),
            index={"factory": index.factory, "metric": "inner_product", "count": index.count, "dims": index.dims,
                   "neighbour_count": int(neighbours[0].shape[1])},
            source={"records_in": catalogue.records_in, "accepted": len(articles),
                    "rejected": len(catalogue.rejects), "truncated": len(catalogue.truncated_ids),
                    "view_rows": len(events), "view_rows_rejected": len(view_rejects),
                    "rejects_file": str(rejects_file)},
            files=describe_files(stage, names),
            build={"python": platform.python_version(), "faiss": _version("faiss"),
                   "sentence_transformers": _version("sentence_transformers"), "numpy": np.__version__,
                   "seconds": {k: round(v, 3) for k, v in seconds.items()}, "config": config.to_dict()},
        )
        write_manifest(stage, manifest)
        done("write")
        verify_build(stage, embedder)
        done("verify")
        final = store.publish(stage, keep=config.keep_versions) if publish else stage
        done("publish")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if not publish:
        shutil.rmtree(stage, ignore_errors=True)
    return BuildReport(build_id=build_id, path=final, articles=len(articles), rejected=len(catalogue.rejects),
                       embedded=embedded, cached=len(articles) - embedded, seconds=seconds,
                       catalogue_summary=catalogue.summary(), rejects_path=rejects_file, views=len(events),
                       views_rejected=len(view_rejects))


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except (ImportError, AttributeError):
        return "unknown"


def report_json(report: BuildReport) -> str:
    """A structured log line for cron and orchestrators."""
    return json.dumps({"event": "build", "build_id": report.build_id, "path": str(report.path),
                       "articles": report.articles, "rejected": report.rejected, "embedded": report.embedded,
                       "cached": report.cached, "seconds": {k: round(v, 3) for k, v in report.seconds.items()}},
                      sort_keys=True)
