"""Build orchestration: catalogue (+ views) -> diff -> embed -> index -> neighbours -> stage -> verify -> gates -> publish."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .articles import Catalogue, embedding_texts, lexical_texts, read_catalogue, read_sql
from .buildfiles import (LEXICAL_HASH_COLUMN, TEXT_HASH_COLUMN, compute_neighbours, make_manifest, verify_build,
                         with_stories, write_build)
from .config import BuildConfig
from .embedder import Embedder, EmbeddingCache, ModelIdentity, SentenceTransformerEmbedder, text_key
from .engine import ARTICLES_FILE, VECTORS_FILE, Recommender
from .errors import GateFailedError, IndexFormatError, RecommenderError
from .events import read_views
from .executors import EmbedExecutor, LocalExecutor
from .gates import GateResult, Metric, count_drop, few_related, metric_drop, model_identity, self_match, summarise
from .index import FaissIndex
from .lock import RebuildLock
from .manifest import read_manifest, write_manifest
from .report import BuildReport, CatalogueDiff, report_json
from .related_build import Previous, RelatedState, dense_table, related_tables, usable
from .store import IndexStore, new_build_id

__all__ = ["BuildReport", "build", "compute_neighbours", "rebuild", "report_json", "verify_build", "write_build"]
log = logging.getLogger("recommender.pipeline")
CACHE_FILE = "embedding-cache.sqlite"
# Points where ``checkpoint`` is called: the start of each stage, "write" once the data files are staged but
# before the manifest, "publish" after the stage is renamed into builds/ but before ``current`` is swapped.
CHECKPOINTS = ("read", "embed", "index", "neighbours", "write", "verify", "gates", "publish")


@dataclass
class _Current:
    """What the rebuild reuses from the published build."""

    path: Path
    count: int
    identity: ModelIdentity
    keys: dict[str, str]
    rows: dict[str, int]
    vectors: np.ndarray
    ids: list[str]
    lexical_keys: list[str] | None  # None: a build from before the column (its related state is not reused)


def _load_current(store: IndexStore, max_chars: int) -> _Current | None:
    path = store.current()
    if path is None:
        return None
    try:
        manifest = read_manifest(path, verify_files=False)
        import pyarrow.parquet as pq

        # Only ids and text hashes: the bodies are not needed (builds from before the hash column re-derive them).
        names = pq.read_schema(path / ARTICLES_FILE).names
        has_hash = TEXT_HASH_COLUMN in names
        columns = ["id", TEXT_HASH_COLUMN] + ([LEXICAL_HASH_COLUMN] if LEXICAL_HASH_COLUMN in names else [])
        table = pd.read_parquet(path / ARTICLES_FILE, columns=columns if has_hash else None)
        vectors = np.load(path / VECTORS_FILE, mmap_mode="r")
    except (IndexFormatError, OSError, ValueError) as exc:
        log.warning("current build %s is unreadable (%s); rebuilding from scratch", path, exc)
        return None
    ids = table["id"].astype(str).tolist()
    keys = (table[TEXT_HASH_COLUMN].astype(str).tolist() if TEXT_HASH_COLUMN in table else
            [text_key(t) for t in embedding_texts(table, max_chars)])
    lexical_keys = table[LEXICAL_HASH_COLUMN].astype(str).tolist() if LEXICAL_HASH_COLUMN in table else None
    return _Current(path, manifest.count, manifest.model, dict(zip(ids, keys)),
                    {a: r for r, a in enumerate(ids)}, vectors, ids, lexical_keys)


def _previous(current: _Current | None, meta: dict, config: BuildConfig, ids: np.ndarray, keys: list[str],
              lexical_keys: list[str]) -> Previous | None:
    """The current build's related state mapped onto this build, when it can seed it (else None: from scratch)."""
    if current is None or current.lexical_keys is None:
        return None
    try:
        state = RelatedState.load(current.path)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("related state of %s is unreadable (%s); computing the related stage from scratch",
                    current.path, exc)
        return None
    if not usable(state, meta["model"], meta["depth"], config.relatedness) or \
            state.dense.rows.shape[0] != len(current.ids):
        return None
    old_keys = [current.keys[a] + lk for a, lk in zip(current.ids, current.lexical_keys)]
    return Previous.match(state, current.ids, old_keys, ids.tolist(), [k + lk for k, lk in zip(keys, lexical_keys)])


def _embed(texts: list[str], keys: list[str], ids: np.ndarray, current: _Current | None, embedder: Embedder,
           executor: EmbedExecutor, cache: EmbeddingCache | None, progress: bool
           ) -> tuple[np.ndarray, int, int, int, list[int]]:
    """Vectors from current (unchanged text, same model), then the cache, then the executor for the rest.

    Returns:
        (vectors, reused, cached, embedded, positions whose vectors were not embedded now).
    """
    identity = embedder.identity
    vectors = np.zeros((len(texts), identity.dims), dtype=np.float32)
    done = np.zeros(len(texts), dtype=bool)
    if current is not None and current.identity == identity:
        for i, (article_id, key) in enumerate(zip(ids, keys)):
            if current.keys.get(article_id) == key:
                vectors[i] = current.vectors[current.rows[article_id]]
                done[i] = True
    reused = int(done.sum())
    tag = identity.fingerprint + identity.backend
    if cache is not None:
        todo = [keys[i] for i in np.flatnonzero(~done)]
        found = cache.get(tag, todo, identity.dims)
        for i in np.flatnonzero(~done):
            if keys[i] in found:
                vectors[i] = found[keys[i]]
                done[i] = True
    cached = int(done.sum()) - reused
    first: dict[str, int] = {}
    for i in np.flatnonzero(~done):
        first.setdefault(keys[i], int(i))
    unique = list(first.values())
    if unique:
        fresh = executor.embed([texts[i] for i in unique], embedder, progress=progress)
        if cache is not None:
            cache.put(tag, [keys[i] for i in unique], fresh)
        by_key = {keys[i]: v for i, v in zip(unique, fresh)}
        for i in np.flatnonzero(~done):
            vectors[i] = by_key[keys[i]]
    return vectors, reused, cached, len(unique), [int(i) for i in np.flatnonzero(done)]


def build(articles_source: str | Path | pd.DataFrame, indexes_root: str | Path,
          views_source: str | Path | pd.DataFrame | None = None, config: BuildConfig | None = None,
          embedder: Embedder | None = None, cache_path: str | Path | None = None, progress: bool = False,
          publish: bool = True, rejects_path: str | Path | None = None,
          on_stage: Callable[[str, float], None] | None = None, executor: EmbedExecutor | None = None,
          gates: bool = False, metric: Metric | None = None, metric_name: str = "metric",
          checkpoint: Callable[[str], None] | None = None) -> BuildReport:
    """Build a new index version under ``indexes_root`` and (by default) publish it as ``current``.

    Unchanged articles (same id and embedded text as in ``current``, same model) reuse current's vectors; the
    rest are looked up in the embedding cache and only the misses are embedded (by ``executor``).

    Args:
        articles_source: catalogue file, database URL or DataFrame (see ``articles.read_catalogue``).
        indexes_root: the versioned index directory (``builds/`` and ``current`` inside).
        views_source: page-view events or aggregates (CSV/Parquet, or a database URL as for articles).
        config: build settings (copied into the manifest); ``config.gates`` holds the gate thresholds.
        embedder: defaults to ``SentenceTransformerEmbedder(config.embedder)``.
        cache_path: embedding cache file; defaults to ``indexes_root/embedding-cache.sqlite``.
        progress: show progress bars (on a terminal).
        publish: False runs everything (gates included) but leaves ``current`` alone (a dry run).
        rejects_path: where rejected rows go; defaults to ``indexes_root/rejects/<build_id>.csv``.
        on_stage: called with (stage name, seconds) as each stage ends (for logs).
        executor: where the embedding stage runs (default in-process).
        gates: enforce the quality gates of ``config.gates`` (a failure raises ``GateFailedError``);
            without, the self-nearest-neighbour check still runs as an integrity check.
        metric: optional evaluation metric over a loaded build (higher is better) for the metric gate, e.g.
            ``recommender.evaluation.gate.semeval_gate(data_dir)``.
        metric_name: its name in messages.
        checkpoint: called with each name of ``CHECKPOINTS`` as the build reaches it (crash tests pause there).

    Raises:
        InvalidCatalogueError: unreadable catalogue or too many rejects (nothing is published).
        GateFailedError: a quality gate failed (nothing is published; the report is attached).
        IndexFormatError: the staged build failed verification (nothing is published).
    """
    config = config or BuildConfig()
    root = Path(indexes_root)
    store = IndexStore(root)
    executor = executor or LocalExecutor()
    pause = checkpoint or (lambda _name: None)
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

    pause("read")
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
    if isinstance(views_source, str) and "://" in views_source:
        views_source = read_sql(views_source)  # page views aggregated in the CMS/analytics database
    events, view_rejects = (read_views(views_source) if views_source is not None
                            else (pd.DataFrame({"article_id": pd.Series(dtype=str),
                                                "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                                                "count": pd.Series(dtype="int64")}), pd.DataFrame()))
    if len(view_rejects):
        view_rejects.to_csv(rejects_file.with_name(rejects_file.stem + "-views.csv"), index=False)
    texts = embedding_texts(articles, config.embedder.max_chars)
    keys = [text_key(t) for t in texts]
    documents = lexical_texts(articles)
    lexical_keys = [text_key(t) for t in documents]
    ids = articles["id"].to_numpy(dtype=object)
    current = _load_current(store, config.embedder.max_chars)
    diff = CatalogueDiff.compare(ids, keys, current.keys if current else None)
    done("read")

    pause("embed")
    embedder = embedder or SentenceTransformerEmbedder(config.embedder)
    cache = EmbeddingCache(cache_path or root / CACHE_FILE)
    try:
        vectors, reused, cached, embedded, not_embedded = _embed(texts, keys, ids, current, embedder, executor,
                                                                 cache, progress)
    finally:
        cache.close()
    done("embed")

    pause("index")
    index = FaissIndex.build(vectors, config.index)
    done("index")
    pause("neighbours")
    depth = config.neighbour_count + config.neighbour_margin
    state_meta = {"model": json.dumps(embedder.identity.to_dict(), sort_keys=True), "depth": depth,
                  "relatedness": config.relatedness.state_settings()}
    previous = _previous(current, state_meta, config, ids, keys, lexical_keys)
    dense, searched = dense_table(lambda rows: compute_neighbours(index, vectors, depth, rows), vectors, depth,
                                  config.neighbour_count, previous)
    neighbours = dense.head(config.neighbour_count)
    done("neighbours")
    tables = related_tables(vectors, documents, dense, config.neighbour_count, config, state_meta, previous,
                            tags=articles["tags"].tolist())
    tables.stats.update(mode="incremental" if previous else "full", dense_rows_searched=searched)
    related = tables.related
    done("related")
    articles = with_stories(articles.assign(**{TEXT_HASH_COLUMN: keys, LEXICAL_HASH_COLUMN: lexical_keys}),
                            neighbours, config)
    done("stories")

    report = BuildReport(build_id=build_id, path=root / "builds" / build_id, articles=len(articles),
                         rejected=len(catalogue.rejects), embedded=embedded, cached=cached, seconds=seconds,
                         catalogue_summary=catalogue.summary(), rejects_path=rejects_file, views=len(events),
                         views_rejected=len(view_rejects), reused=reused, diff=diff, executor=executor.name,
                         previous=current.path.name if current else None)
    stage = store.stage(build_id)
    try:
        names = write_build(stage, articles, vectors, index, related, events, tables.state)
        pause("write")  # data files staged, manifest not yet written
        source = {"records_in": catalogue.records_in, "accepted": len(articles), "rejected": len(catalogue.rejects),
                  "truncated": len(catalogue.truncated_ids), "view_rows": len(events),
                  "view_rows_rejected": len(view_rejects), "rejects_file": str(rejects_file),
                  "diff": diff.to_dict(), "embedded": embedded, "reused": reused, "cached": cached,
                  "executor": executor.name, "previous": report.previous, "related": tables.stats}
        write_manifest(stage, make_manifest(stage, build_id, names, embedder, index, int(related[0].shape[1]),
                                            source, seconds, config.to_dict()))
        done("write")
        pause("verify")
        staged = verify_build(stage, embedder)
        done("verify")
        pause("gates")
        report.gates = _run_gates(config, staged, neighbours[1], current, embedder, texts, vectors, not_embedded,
                                  metric, metric_name, gates)
        done("gates")
        if gates and report.failed_gates:
            raise GateFailedError(summarise(report.gates), report.failed_gates, report)
        if not gates and report.gates and not report.gates[0].passed:
            raise IndexFormatError(f"staged build {build_id}: {report.gates[0].message}; nothing published")
        if publish:
            report.path = store.publish(stage, keep=config.keep_versions, before_swap=lambda _p: pause("publish"))
            report.published = True
        done("publish")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if not publish:
        shutil.rmtree(stage, ignore_errors=True)
        report.path = stage
    return report


def _run_gates(config: BuildConfig, staged: Recommender, neighbour_scores: np.ndarray, current: _Current | None,
               embedder: Embedder, texts: list[str], vectors: np.ndarray, not_embedded: list[int],
               metric: Metric | None, metric_name: str, enforce: bool) -> list[GateResult]:
    gate = config.gates
    results = [self_match(staged.index, staged.table.vectors, gate)]
    if not enforce:
        return results
    results.append(count_drop(len(texts), current.count if current else None, gate))
    results.append(few_related(neighbour_scores, gate))
    probe = (sorted(np.random.default_rng(0).choice(not_embedded, size=min(gate.cache_probe, len(not_embedded)),
                                                    replace=False).tolist()) if not_embedded else [])
    results.append(model_identity(embedder.identity, current.identity if current else None, embedder,
                                  [texts[i] for i in probe], vectors[probe], gate))
    if metric is not None:
        same_model = current is not None and current.identity == embedder.identity
        current_build = (Recommender.load(current.path, embedder=embedder if same_model else None, verify=False)
                         if current else None)
        results.append(metric_drop(metric, metric_name, staged, current_build, gate))
    return results


def rebuild(articles_source: str | Path | pd.DataFrame, indexes_root: str | Path, **options: object) -> BuildReport:
    """The nightly rebuild: take the lock, clean what a killed run left, then ``build`` with the gates enforced.

    Takes the keyword options of ``build`` (``gates`` is always on).

    Raises:
        RebuildLockedError: another rebuild is running on ``indexes_root``.
        GateFailedError, InvalidCatalogueError, IndexFormatError: as ``build``; nothing is published.
    """
    root = Path(indexes_root)
    with RebuildLock(root) as lock:
        cleaned = IndexStore(root).clean_stale()
        if lock.stale_holder:
            log.warning("took over the rebuild lock left by pid %s (no longer running)", lock.stale_holder.get("pid"))
        try:
            report = build(articles_source, root, gates=True, **options)  # type: ignore[arg-type]
        except GateFailedError as exc:
            if exc.report is not None:
                exc.report.stale_cleaned, exc.report.lock_takeover = len(cleaned), lock.stale_holder
            raise
        report.stale_cleaned, report.lock_takeover = len(cleaned), lock.stale_holder
        return report
