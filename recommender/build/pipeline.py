"""The build as a list of stages: read -> embed -> index -> neighbours -> related -> stories -> write -> verify.

Each stage is a function of the ``BuildRun`` that the previous stages filled; ``stage_build`` runs them in order
into a staging directory of the version store and returns the run. Publishing (and the quality gates that decide
it) is ``rebuild.rebuild``'s job, not the pipeline's.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import stories
from ..catalogue.read import read_catalogue, read_sql
from ..catalogue.schema import Catalogue
from ..catalogue.texts import embedding_texts, lexical_texts
from ..catalogue.views import read_views
from ..config import BuildConfig
from ..embedding.base import Embedder
from ..embedding.cache import EmbeddingCache, text_key
from ..embedding.tuned import describe as describe_tuned
from ..errors import IndexFormatError, RecommenderError
from ..storage import layout
from ..storage.index import FaissIndex
from ..storage.manifest import describe_files, write_manifest
from ..storage.reader import StoredBuild, empty_events, read_build
from ..storage.sharing import link_unchanged
from ..storage.versions import IndexStore, new_build_id
from ..storage.writer import make_manifest, write_build
from ..times import epoch_hours
from .current import Current, load_current, previous_state
from .embed import Embedded, embed_articles, unit_rows
from .executors import EmbedExecutor, LocalExecutor
from .index_update import IndexUpdate, index_articles
from .neighbours import neighbour_search
from .related_tables import Previous, RelatedTables, dense_table, related_tables
from .report import CatalogueDiff
from .toptable import TopTable

CACHE_FILE = "embedding-cache.sqlite"
# Points where ``checkpoint`` is called: the start of each stage, "write" once the data files are staged but
# before the manifest, "publish" after the stage is renamed into builds/ but before ``current`` is swapped.
CHECKPOINTS = ("read", "embed", "index", "neighbours", "write", "verify", "gates", "publish")
Checkpoint = Callable[[str], None]


@dataclass
class BuildRun:
    """One build in progress: its inputs and settings, then each stage's output.

    Attributes:
        source / views_source: the catalogue and page views (paths, database URLs or DataFrames).
        root: the indexes root; store: its version store; build_id: the new version's id.
        config: the build settings (copied into the manifest).
        embedder / executor / cache_path: how the embed stage embeds what it cannot reuse.
        rejects_path: where rejected rows go.
        progress: show progress bars.
        seconds: each finished stage's wall time.
    """

    source: str | Path | pd.DataFrame
    root: Path
    config: BuildConfig
    embedder: Embedder
    executor: EmbedExecutor
    views_source: str | Path | pd.DataFrame | None = None
    cache_path: Path | None = None
    rejects_path: Path | None = None
    progress: bool = False
    checkpoint: Checkpoint = lambda _name: None  # noqa: E731 - a no-op default
    store: IndexStore = field(init=False)
    build_id: str = field(init=False)
    seconds: dict[str, float] = field(default_factory=dict)
    catalogue: Catalogue | None = None
    articles: pd.DataFrame = field(default_factory=pd.DataFrame)
    events: pd.DataFrame = field(default_factory=empty_events)
    view_rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    texts: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    lexical_keys: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    current: Current | None = None
    diff: CatalogueDiff = field(default_factory=CatalogueDiff)
    embedded: Embedded | None = None
    index: FaissIndex | None = None
    index_update: IndexUpdate | None = None
    previous: Previous | None = None
    dense: TopTable | None = None
    dense_searched: int = 0
    related: RelatedTables | None = None
    stage: Path | None = None
    shared: list[str] = field(default_factory=list)
    staged: StoredBuild | None = None

    def __post_init__(self) -> None:
        self.store = IndexStore(self.root)
        self.build_id = new_build_id()
        self.rejects_path = self.rejects_path or self.root / "rejects" / f"{self.build_id}.csv"

    @property
    def ids(self) -> list[str]:
        """Article ids in row order."""
        return self.articles["id"].astype(str).tolist()

    @property
    def depth(self) -> int:
        """Dense table entries kept per row: the related count plus the margin for incremental merges."""
        return self.config.neighbour_count + self.config.neighbour_margin

    @property
    def state_meta(self) -> dict[str, object]:
        """The identity of the related state this build stores (model, depth, relatedness settings)."""
        return {"model": json.dumps(self.embedder.identity.to_dict(), sort_keys=True), "depth": self.depth,
                "relatedness": self.config.relatedness.state_settings()}

    @property
    def vectors(self) -> np.ndarray:
        """The build's vectors (after the embed stage)."""
        assert self.embedded is not None
        return self.embedded.vectors


def read_stage(run: BuildRun) -> None:
    """Read and validate the catalogue (rejects written whatever happens) and the page views; diff the texts
    against ``current``."""
    try:
        catalogue = read_catalogue(run.source, run.config.catalogue)
    except RecommenderError as exc:
        failed = getattr(exc, "catalogue", None)
        if failed is not None:
            failed.write_rejects(run.rejects_path)
        raise
    assert run.rejects_path is not None  # set by BuildRun.__post_init__
    catalogue.write_rejects(run.rejects_path)
    if catalogue.articles.empty:
        raise RecommenderError("the catalogue has no valid articles; nothing to index")
    run.catalogue, run.articles = catalogue, catalogue.articles
    views = run.views_source
    if isinstance(views, str) and "://" in views:
        views = read_sql(views)  # page views aggregated in the CMS/analytics database
    if views is not None:
        run.events, run.view_rejects = read_views(views)
    if len(run.view_rejects):
        assert run.rejects_path is not None
        run.view_rejects.to_csv(run.rejects_path.with_name(run.rejects_path.stem + "-views.csv"), index=False)
    run.texts = embedding_texts(run.articles, run.config.embedder.max_chars)
    run.keys = [text_key(t) for t in run.texts]
    run.documents = lexical_texts(run.articles)
    run.lexical_keys = [text_key(t) for t in run.documents]
    run.current = load_current(run.store, run.config.embedder.max_chars)
    run.diff = CatalogueDiff.compare(np.asarray(run.ids, dtype=object), run.keys,
                                     run.current.keys if run.current else None)


def embed_stage(run: BuildRun) -> None:
    """Vectors: reused from current, then the embedding cache, then embedded."""
    cache = EmbeddingCache(run.cache_path or run.root / CACHE_FILE)
    try:
        run.embedded = embed_articles(run.texts, run.keys, run.ids, run.current, run.embedder, run.executor, cache,
                                      run.progress)
    finally:
        cache.close()


def index_stage(run: BuildRun) -> None:
    """The FAISS index over the vectors: the current build's HNSW updated, or a new one (``index_update``),
    searching at the efSearch that reaches the recall target (``index_calibration``)."""
    update = index_articles(run.vectors, run.ids, run.keys, run.current, run.embedder.identity, run.config.index)
    run.index_update = update.calibrated(run.vectors, run.config.index)
    run.index = run.index_update.index


def neighbours_stage(run: BuildRun) -> None:
    """The dense neighbour table (updated from the previous build's where it can seed it)."""
    index = run.index
    assert index is not None
    run.previous = previous_state(run.current, run.state_meta, run.config, run.ids, run.keys, run.lexical_keys)
    search = neighbour_search(run.executor.shard_runner(run.config.query_shard_rows), index, run.vectors, run.depth)
    run.dense, run.dense_searched = dense_table(search, run.vectors, run.depth, run.config.neighbour_count,
                                                run.previous)


def related_stage(run: BuildRun) -> None:
    """The related table: the hybrid relatedness of each article's candidates (``related_tables``)."""
    assert run.dense is not None
    run.related = related_tables(run.vectors, run.documents, run.dense, run.config.neighbour_count, run.config,
                                 run.state_meta, run.previous, tags=run.articles["tags"].tolist(),
                                 shards=run.executor.shard_runner(run.config.query_shard_rows))
    run.related.stats.update(mode="incremental" if run.previous else "full", dense_rows_searched=run.dense_searched)


def stories_stage(run: BuildRun) -> None:
    """Copy groups and stories of the whole catalogue (``recommender.stories``), and the text hash columns."""
    assert run.dense is not None
    rows, cosines = run.dense.head(run.config.neighbour_count)
    grouped = stories.story_table(run.ids, run.articles["title"].tolist(), rows, cosines,
                                  np.asarray(epoch_hours(run.articles["published_at"]), dtype=np.float64),
                                  run.config.ranking, run.config.stories)
    run.articles = run.articles.assign(**{layout.TEXT_HASH_COLUMN: run.keys, layout.LEXICAL_HASH_COLUMN:
                                          run.lexical_keys}, copy_group=grouped.copy_groups,
                                       story_id=grouped.story_ids.astype(str))


def write_stage(run: BuildRun) -> None:
    """The data files into a staging directory, those equal to current's hard-linked to them
    (``storage.sharing``), then (after the "write" checkpoint) the manifest, last."""
    assert run.index is not None and run.related is not None and run.embedded is not None
    run.stage = run.store.stage(run.build_id)
    names = write_build(run.stage, run.articles, run.vectors, run.index, run.related.related, run.events,
                        run.related.state)
    files = describe_files(run.stage, names)
    if run.current is not None:
        run.shared = link_unchanged(run.stage, run.current.path, run.current.manifest_files, files)
    run.checkpoint("write")  # data files staged, manifest not yet written
    write_manifest(run.stage, make_manifest(run.stage, run.build_id, names, run.embedder.identity, run.index,
                                            int(run.related.related[0].shape[1]), source_summary(run),
                                            run.seconds, run.config.to_dict(), files))


def verify_stage(run: BuildRun) -> None:
    """Reload the staged build through the normal reader: manifest, every sha256, counts and order."""
    assert run.stage is not None
    run.staged = read_build(run.stage, verify=True)
    run.embedder.identity.check_matches(run.staged.manifest.model)
    bad = np.flatnonzero(~unit_rows(run.staged.vectors))
    if len(bad):
        raise IndexFormatError(f"staged build {run.build_id}: {len(bad)} vector(s) are not finite unit vectors "
                               f"(first: article {run.ids[int(bad[0])]!r}); nothing published")


def source_summary(run: BuildRun) -> dict[str, object]:
    """The manifest's ``source`` section: what went in, what was rejected, reused and recomputed."""
    assert run.catalogue is not None and run.embedded is not None and run.related is not None
    catalogue, embedded = run.catalogue, run.embedded
    return {"records_in": catalogue.records_in, "accepted": len(run.articles), "rejected": len(catalogue.rejects),
            "truncated": len(catalogue.truncated_ids), "view_rows": len(run.events),
            "view_rows_rejected": len(run.view_rejects), "rejects_file": str(run.rejects_path),
            "diff": run.diff.to_dict(), "embedded": embedded.embedded, "reused": embedded.reused,
            "cached": embedded.cached, "executor": run.executor.name,
            "previous": run.current.path.name if run.current else None, "related": run.related.stats,
            "reuse_refused": list(run.current.refused) if run.current else [],
            "vectors_repaired": embedded.repaired, "tuned_model": describe_tuned(run.config.embedder.model),
            "index": run.index_update.to_dict() if run.index_update else None,
            "shared_with_previous": run.shared}


STAGES: tuple[tuple[str, Callable[[BuildRun], None]], ...] = (
    ("read", read_stage), ("embed", embed_stage), ("index", index_stage), ("neighbours", neighbours_stage),
    ("related", related_stage), ("stories", stories_stage), ("write", write_stage), ("verify", verify_stage))
PAUSED_BEFORE = {"read", "embed", "index", "neighbours", "verify"}


def stage_build(source: str | Path | pd.DataFrame, indexes_root: str | Path,
                views_source: str | Path | pd.DataFrame | None = None, config: BuildConfig | None = None,
                embedder: Embedder | None = None, cache_path: str | Path | None = None, progress: bool = False,
                rejects_path: str | Path | None = None, on_stage: Callable[[str, float], None] | None = None,
                executor: EmbedExecutor | None = None, checkpoint: Checkpoint | None = None) -> BuildRun:
    """Run every stage into a staging directory under ``indexes_root``; nothing is published.

    Args:
        source: catalogue file, database URL or DataFrame (``catalogue.read_catalogue``).
        indexes_root: the versioned index directory.
        views_source: page-view events or aggregates (CSV/Parquet, a database URL, or a DataFrame).
        config: build settings; embedder: default ``make_embedder(config.embedder)``.
        cache_path: embedding cache file (default ``indexes_root/embedding-cache.sqlite``).
        progress: progress bars; rejects_path: default ``indexes_root/rejects/<build_id>.csv``.
        on_stage: called with (stage, seconds) as each stage ends.
        executor: where the embed stage runs (default in-process).
        checkpoint: called with each name of ``CHECKPOINTS`` as the build reaches it (crash tests pause there).

    Returns:
        The finished run; ``run.stage`` holds the verified staged build. On failure the stage is removed.

    Raises:
        InvalidCatalogueError: unreadable catalogue or too many rejects.
        IndexFormatError: the staged build failed verification.
    """
    from ..embedding.factory import make_embedder

    config = config or BuildConfig()
    run = BuildRun(source, Path(indexes_root), config, embedder or make_embedder(config.embedder),
                   executor or LocalExecutor(), views_source, Path(cache_path) if cache_path else None,
                   Path(rejects_path) if rejects_path else None, progress, checkpoint or (lambda _name: None))
    try:
        for name, stage in STAGES:
            if name in PAUSED_BEFORE:
                run.checkpoint(name)
            started = time.perf_counter()
            stage(run)
            run.seconds[name] = time.perf_counter() - started
            if on_stage:
                on_stage(name, run.seconds[name])
    except BaseException:
        if run.stage is not None:
            shutil.rmtree(run.stage, ignore_errors=True)
        raise
    return run
