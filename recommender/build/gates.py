"""Quality gates run on a staged build before it may replace ``current``; each says what failed and by how much."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import GateConfig
from ..embedding.base import Embedder, ModelIdentity
from ..storage.checks import GateResult, self_match

__all__ = ["GateResult", "Metric", "count_drop", "few_related", "metric_drop", "model_identity", "self_match",
           "summarise"]

# A metric over a build directory, higher is better, e.g. ``recommender.evaluation.gate.semeval_gate(data_dir)``:
# Pearson against SemEval-2022 Task 8 judgements. The build never ranks: the metric loads what it needs.
Metric = Callable[[Path], float]


def count_drop(count: int, current_count: int | None, config: GateConfig) -> GateResult:
    """The article count must not fall by more than ``max_count_drop`` against ``current``."""
    if not current_count:
        return GateResult("count_drop", True, 0.0, config.max_count_drop, f"{count} articles; no current build")
    drop = (current_count - count) / current_count
    passed = drop <= config.max_count_drop
    verdict = "ok" if passed else "FAILED"
    return GateResult("count_drop", passed, drop, config.max_count_drop,
                      f"{verdict}: {count} articles vs {current_count} in current ({-drop:+.1%}); the maximum drop "
                      f"is {config.max_count_drop:.0%}" + ("" if passed else
                                                         f", exceeded by {drop - config.max_count_drop:.1%}"))


def few_related(neighbour_scores: np.ndarray, config: GateConfig) -> GateResult:
    """At most ``max_few_related_share`` of articles may have fewer than ``min_related`` related articles."""
    n = len(neighbour_scores)
    if n == 0:
        return GateResult("few_related", True, 0.0, config.max_few_related_share, "no articles")
    related = (np.asarray(neighbour_scores) >= config.min_related_similarity).sum(axis=1)
    share = float((related < config.min_related).mean())
    passed = share <= config.max_few_related_share
    head = "ok" if passed else "FAILED"
    return GateResult("few_related", passed, share, config.max_few_related_share,
                      f"{head}: {share:.1%} of articles have fewer than {config.min_related} related at cosine >= "
                      f"{config.min_related_similarity}; the maximum is {config.max_few_related_share:.0%}"
                      + ("" if passed else f", exceeded by {share - config.max_few_related_share:.1%}"))


def model_identity(identity: ModelIdentity, current: ModelIdentity | None, embedder: Embedder,
                   probe_texts: Sequence[str], probe_vectors: np.ndarray, config: GateConfig) -> GateResult:
    """The model must be the current build's, and vectors reused from the cache/current must be this model's.

    The probe re-embeds a few reused texts and compares: a cache filled by another model or backend (or a
    damaged one) shows up as a difference larger than ``max_probe_diff`` (``max_probe_diff_reduced`` for bf16,
    fp16, int8 and 4-bit backends, whose vectors move with the batch a text was embedded in).
    """
    limit = config.max_probe_diff if identity.backend.endswith("-fp32") else config.max_probe_diff_reduced
    problems = []
    if current is not None and current != identity and not config.allow_model_change:
        problems.append(f"model {identity.name} (fingerprint {identity.fingerprint[:12]}, {identity.backend}) differs "
                        f"from current's {current.name} (fingerprint {current.fingerprint[:12]}, {current.backend}); "
                        f"set gates.allow_model_change for a deliberate full re-embed")
    diff = 0.0
    if len(probe_texts):
        fresh = embedder.encode(list(probe_texts))
        diff = float(np.abs(fresh - np.asarray(probe_vectors)).max())
        if diff > limit:
            problems.append(f"re-embedding {len(probe_texts)} cached texts differs from their stored vectors by "
                            f"{diff:.2e} (maximum {limit:.0e}): the embedding cache was filled by "
                            f"another model; delete it or point --cache elsewhere")
    passed = not problems
    against = "matches current" if current is not None else "(no current build)"
    message = (f"ok: model {identity.name} {against}; {len(probe_texts)} reused vectors re-embedded within "
               f"{diff:.1e}") if passed else "FAILED: " + "; ".join(problems)
    return GateResult("model_identity", passed, diff, limit, message)


def metric_drop(metric: Metric, name: str, staged: Path, current: Path | None, config: GateConfig) -> GateResult:
    """An evaluation metric on the staged build must not fall by more than ``max_metric_drop`` against current.

    ``staged`` and ``current`` are build directories, the metric's argument.
    """
    new = float(metric(staged))
    if current is None:
        return GateResult(f"metric:{name}", True, new, config.max_metric_drop, f"{name} = {new:.4f}; no current build")
    old = float(metric(current))
    drop = old - new
    passed = drop <= config.max_metric_drop
    return GateResult(f"metric:{name}", passed, drop, config.max_metric_drop,
                      f"{'ok' if passed else 'FAILED'}: {name} {new:.4f} vs {old:.4f} in current (drop {drop:+.4f}; "
                      f"maximum {config.max_metric_drop})"
                      + ("" if passed else f", exceeded by {drop - config.max_metric_drop:.4f}"))


def summarise(results: Sequence[GateResult]) -> str:
    """One message naming every failed gate (for ``GateFailedError``)."""
    failed = [r for r in results if not r.passed]
    return ("quality gate(s) failed, nothing published: " + " | ".join(f"{r.name}: {r.message}" for r in failed)
            if failed else "all gates passed")
