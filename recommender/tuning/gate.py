"""The tuning gate: base vs tuned on what the tuning never saw, one table, one verdict.

Metrics (higher is better):

- ``semeval_en_pearson``: SemEval-2022 Task 8 en-en Pearson (``evaluation.gate.semeval_pearson``); never a
  training source.
- ``site_pairs_recall@10``: the held-out articles' own pairs: for each pair, is its positive among the anchor's
  10 most similar positives of all held-out pairs.
- ``site_section_p@10``: among held-out articles with a section, the share of each one's 10 nearest held-out
  articles in its section (only when the catalogue has sections).

A metric in ``GateSettings.must_beat`` passes when tuned - base > ``min_gain``; any other passes when tuned -
base >= -``tolerance``. The model is accepted when every row passes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..embedding.base import Embedder
from ..embedding.tuned import ACCEPTED, GATE_FILE, REFUSED
from ..evaluation.gate import semeval_pearson
from ..evaluation.metrics import nanmean
from .config import GateSettings


@dataclass(frozen=True)
class GateRow:
    """One metric of the gate."""

    metric: str
    base: float
    tuned: float
    delta: float
    rule: str
    passed: bool


@dataclass(frozen=True)
class GateResult:
    """The gate's table and verdict."""

    rows: tuple[GateRow, ...]
    settings: GateSettings

    @property
    def accepted(self) -> bool:
        """Whether every row passed."""
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def reason(self) -> str:
        """One line: what failed, or that all passed."""
        failed = [f"{r.metric} {r.tuned:.4f} vs base {r.base:.4f} ({r.rule})" for r in self.rows if not r.passed]
        return "passed: " + ", ".join(r.metric for r in self.rows) if not failed else "failed: " + "; ".join(failed)

    def table(self) -> str:
        """The table as fixed-width text."""
        lines = [f"{'metric':<24} {'base':>8} {'tuned':>8} {'delta':>8}  {'rule':<22} result"]
        for r in self.rows:
            lines.append(f"{r.metric:<24} {r.base:8.4f} {r.tuned:8.4f} {r.delta:+8.4f}  {r.rule:<22} "
                         f"{'pass' if r.passed else 'FAIL'}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: status, reason, settings and rows."""
        return {"status": ACCEPTED if self.accepted else REFUSED, "reason": self.reason,
                "settings": asdict(self.settings), "table": [asdict(r) for r in self.rows]}

    def save(self, directory: Path) -> Path:
        """Write ``gate.json`` into the model directory (the verdict builds obey)."""
        path = Path(directory) / GATE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def pair_recall(vectors_of: dict[str, np.ndarray], anchors: Sequence[str], positives: Sequence[str],
                k: int = 10) -> float:
    """Share of (anchor, positive) pairs whose positive is among the anchor's ``k`` nearest of all positives."""
    candidates = list(dict.fromkeys(positives))
    if len(candidates) < 2:
        return float("nan")
    index = {text: n for n, text in enumerate(candidates)}
    matrix = np.stack([vectors_of[t] for t in candidates])
    relevant: dict[str, set[int]] = {}
    for a, p in zip(anchors, positives):
        relevant.setdefault(a, set()).add(index[p])
    hits = []
    unique_anchors = list(relevant)
    scores = np.stack([vectors_of[a] for a in unique_anchors]) @ matrix.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    for n, a in enumerate(unique_anchors):
        found = set(top[n].tolist())
        hits += [float(p in found) for p in relevant[a]]
    return nanmean(hits)


def section_precision(vectors: np.ndarray, sections: Sequence[str], k: int = 10) -> float:
    """Mean share of each article's ``k`` nearest others (cosine) in its own section."""
    labels = np.asarray(sections, dtype=object)
    if len(labels) <= k:
        return float("nan")
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(labels[top] == labels[:, None]))


def measure(embedder: Embedder, held_out: pd.DataFrame, held_out_articles: pd.DataFrame,
            held_out_texts: Sequence[str], data_dir: Path | None, settings: GateSettings,
            max_chars: int) -> dict[str, float]:
    """Every gate metric of one model (see the module doc).

    Args:
        embedder: the model measured.
        held_out: the held-out pairs (``anchor``, ``positive``).
        held_out_articles / held_out_texts: the held-out articles and their embedding texts.
        data_dir: the shared datasets folder with SemEval-2022 T8 (None leaves that metric out).
        settings: the gate settings (the SemEval sample).
        max_chars: characters embedded per SemEval article.
    """
    found: dict[str, float] = {}
    if data_dir is not None:
        found["semeval_en_pearson"] = semeval_pearson(embedder, data_dir, lang_pairs=("en-en",), max_chars=max_chars,
                                                      limit=settings.semeval_limit)
    texts = list(dict.fromkeys([*held_out["anchor"], *held_out["positive"]]))
    if texts:
        vectors = embedder.encode(texts)
        vectors_of = dict(zip(texts, vectors))
        found["site_pairs_recall@10"] = pair_recall(vectors_of, held_out["anchor"].tolist(),
                                                    held_out["positive"].tolist())
    if "section" in held_out_articles:
        sections = held_out_articles["section"].fillna("").astype(str)
        keep = (sections != "").to_numpy()
        if keep.sum() > 10 and sections[keep].nunique() > 1:
            vectors = embedder.encode([t for t, k in zip(held_out_texts, keep) if k])
            found["site_section_p@10"] = section_precision(vectors, sections[keep].tolist())
    return found


def judge(base: dict[str, float], tuned: dict[str, float], settings: GateSettings) -> GateResult:
    """The gate table of two measurements (``measure``); a must-beat metric that could not be measured fails."""
    rows = []
    for metric in [*settings.must_beat, *(m for m in base if m not in settings.must_beat)]:
        b, t = base.get(metric, float("nan")), tuned.get(metric, float("nan"))
        delta = t - b
        if metric in settings.must_beat:
            rule, passed = f"must beat by > {settings.min_gain:g}", bool(delta > settings.min_gain)
        else:
            rule, passed = f"within -{settings.tolerance:g}", bool(delta >= -settings.tolerance)
        rows.append(GateRow(metric, float(b), float(t), float(delta), rule, passed))
    return GateResult(tuple(rows), settings)
