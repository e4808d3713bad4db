"""Build and publish: take the lock, clean what a killed run left, stage the build, run the gates, then publish
(or, for a dry run, report and discard). ``build`` is the same without the quality gates."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GateFailedError, IndexFormatError
from ..storage.checks import GateResult
from .gates import Metric, count_drop, few_related, metric_drop, model_identity, self_match, summarise
from .lock import RebuildLock
from .pipeline import BuildRun, stage_build
from .report import BuildReport

log = logging.getLogger("recommender.build")


def run_gates(run: BuildRun, metric: Metric | None, metric_name: str, enforce: bool) -> list[GateResult]:
    """The staged build's integrity check (always) and, with ``enforce``, the quality gates of
    ``config.gates``: count drop, articles with too few related, model identity (a probe of reused vectors),
    and the optional evaluation metric against current."""
    assert run.staged is not None and run.embedded is not None and run.dense is not None and run.stage
    gate = run.config.gates
    results = [self_match(run.staged.index, run.staged.vectors, gate)]
    if not enforce:
        return results
    current = run.current
    results.append(count_drop(len(run.texts), current.count if current else None, gate))
    results.append(few_related(run.dense.head(run.config.neighbour_count)[1], gate))
    not_embedded = run.embedded.not_embedded
    probe = (sorted(np.random.default_rng(0).choice(not_embedded, size=min(gate.cache_probe, len(not_embedded)),
                                                    replace=False).tolist()) if not_embedded else [])
    results.append(model_identity(run.embedder.identity, current.identity if current else None, run.embedder,
                                  [run.texts[i] for i in probe], run.vectors[probe], gate))
    if metric is not None:
        results.append(metric_drop(metric, metric_name, run.stage, current.path if current else None, gate))
    return results


def report_of(run: BuildRun) -> BuildReport:
    """The report of a staged run (published or not yet)."""
    assert run.catalogue is not None and run.embedded is not None
    return BuildReport(build_id=run.build_id, path=None, articles=len(run.articles),
                       rejected=len(run.catalogue.rejects), embedded=run.embedded.embedded,
                       cached=run.embedded.cached, seconds=run.seconds, catalogue_summary=run.catalogue.summary(),
                       rejects_path=run.rejects_path, views=len(run.events), views_rejected=len(run.view_rejects),
                       reused=run.embedded.reused, diff=run.diff, executor=run.executor.name,
                       previous=run.current.path.name if run.current else None,
                       reuse_refused=list(run.current.refused) if run.current else [],
                       vectors_repaired=run.embedded.repaired)


def rebuild(articles_source: str | Path | pd.DataFrame, indexes_root: str | Path, gates: bool = True,
            publish: bool = True, metric: Metric | None = None, metric_name: str = "metric",
            **options: object) -> BuildReport:
    """Build a new version under ``indexes_root`` and publish it as ``current`` if it passes.

    Args:
        articles_source / indexes_root: as ``pipeline.stage_build``.
        gates: enforce the quality gates of ``config.gates`` (a failure raises ``GateFailedError``); without,
            the self-nearest-neighbour integrity check still runs.
        publish: False runs every stage and gate and publishes nothing (a dry run; ``report.path`` is None).
        metric: an evaluation metric over a build directory for the metric gate, e.g.
            ``recommender.evaluation.gate.semeval_gate(data_dir)``; metric_name: its name in messages.
        options: the keyword options of ``pipeline.stage_build`` (config, embedder, views_source, checkpoint...).

    Raises:
        RebuildLockedError: another build or rebuild is running on ``indexes_root``.
        GateFailedError: a quality gate failed (nothing is published; the report is attached).
        InvalidCatalogueError, IndexFormatError: as ``stage_build``; nothing is published.
    """
    root = Path(indexes_root)
    with RebuildLock(root) as lock:
        from ..storage.versions import IndexStore

        cleaned = IndexStore(root).clean_stale()
        if lock.stale_holder:
            log.warning("took over the rebuild lock left by pid %s (no longer running)", lock.stale_holder.get("pid"))
        run = stage_build(articles_source, root, **options)  # type: ignore[arg-type]
        on_stage = options.get("on_stage")
        assert run.stage is not None
        report = report_of(run)
        report.stale_cleaned, report.lock_takeover = len(cleaned), lock.stale_holder
        try:
            run.checkpoint("gates")
            started = time.perf_counter()
            report.gates = run_gates(run, metric, metric_name, gates)
            run.seconds["gates"] = time.perf_counter() - started
            if callable(on_stage):
                on_stage("gates", run.seconds["gates"])
            if gates and report.failed_gates:
                raise GateFailedError(summarise(report.gates), report.failed_gates, report)
            if not gates and not report.gates[0].passed:
                raise IndexFormatError(f"staged build {run.build_id}: {report.gates[0].message}; nothing published")
            if publish:
                started = time.perf_counter()
                report.path = run.store.publish(run.stage, keep=run.config.keep_versions,
                                                before_swap=lambda _p: run.checkpoint("publish"))
                report.published = True
                run.seconds["publish"] = time.perf_counter() - started
                if callable(on_stage):
                    on_stage("publish", run.seconds["publish"])
        finally:
            if not report.published:
                shutil.rmtree(run.stage, ignore_errors=True)
        return report


def build(articles_source: str | Path | pd.DataFrame, indexes_root: str | Path, **options: object) -> BuildReport:
    """``rebuild`` without the quality gates (the integrity check still runs): ``recommender build``, the demo
    and the evaluation's builds. Takes the same lock."""
    return rebuild(articles_source, indexes_root, gates=False, **options)  # type: ignore[arg-type]
