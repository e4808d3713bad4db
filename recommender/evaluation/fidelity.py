"""Fidelity gate for embedder backends: the same neighbours and the same quality as torch fp32, or not."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..catalogue import embedding_texts, validate
from ..config import CatalogueConfig, EmbedderConfig
from ..storage.index import exact_search
from . import metrics
from .datasets import load_bbc, load_reuters

SLICES = {"bbc": load_bbc, "reuters": load_reuters}


@dataclass(frozen=True)
class FidelityConfig:
    """What a backend must keep of the reference (torch fp32) vectors to pass.

    Attributes:
        k: neighbours compared per article.
        min_overlap: mean share of the reference top-k neighbours the backend's vectors also return.
        metric_k: list length of the label metric (section/topic precision@metric_k).
        max_metric_move: largest allowed absolute change of that metric, either direction.
    """

    k: int = 10
    min_overlap: float = 0.95
    metric_k: int = 5
    max_metric_move: float = 0.005


@dataclass(frozen=True)
class Fidelity:
    """One backend measured against the reference on one dataset slice."""

    backend: str
    dataset: str
    articles: int
    overlap: float
    metric_reference: float
    metric_backend: float

    @property
    def metric_move(self) -> float:
        """Absolute change of the label metric."""
        return abs(self.metric_backend - self.metric_reference)

    def passed(self, config: FidelityConfig) -> bool:
        """Whether both the neighbour overlap and the metric stay within ``config``."""
        return self.overlap >= config.min_overlap and self.metric_move <= config.max_metric_move

    def to_dict(self, config: FidelityConfig) -> dict[str, object]:
        """JSON-ready, with the move and the verdict."""
        return {**asdict(self), "metric_move": self.metric_move, "passed": self.passed(config)}


def neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """Each row's exact top-``k`` rows by cosine, itself excluded: (n, k) int64."""
    rows, _ = exact_search(vectors, vectors, k + 1)
    own = np.arange(len(vectors))[:, None]
    # Identical texts tie with the row itself, so self is not always in column 0.
    return np.stack([r[r != i][:k] for r, i in zip(rows, own[:, 0])])


def neighbour_overlap(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> float:
    """Mean share of each article's reference top-``k`` neighbours that ``candidate``'s vectors also return."""
    if reference.shape != candidate.shape:
        raise ValueError(f"reference vectors {reference.shape} and candidate vectors {candidate.shape} differ")
    first, second = neighbours(reference, k), neighbours(candidate, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(first, second)]))


def label_precision(vectors: np.ndarray, labels: Sequence[str], k: int = 5) -> float:
    """Mean precision@k of exact nearest neighbours (self excluded), relevant = same section/topic label."""
    label_array = np.asarray(labels, dtype=object)
    return float(np.mean([metrics.precision_at_k(label_array[row].tolist(), {label_array[i]}, k)
                          for i, row in enumerate(neighbours(vectors, k))]))


def measure(reference: np.ndarray, candidate: np.ndarray, labels: Sequence[str], backend: str, dataset: str,
            config: FidelityConfig | None = None) -> Fidelity:
    """Compare one backend's vectors with the reference vectors of the same texts."""
    config = config or FidelityConfig()
    return Fidelity(backend=backend, dataset=dataset, articles=len(reference),
                    overlap=neighbour_overlap(reference, candidate, config.k),
                    metric_reference=label_precision(reference, labels, config.metric_k),
                    metric_backend=label_precision(candidate, labels, config.metric_k))


def verdicts(results: Sequence[Fidelity], config: FidelityConfig | None = None) -> dict[str, bool]:
    """Backend -> passed; a backend passes only when it passes on every dataset it was measured on."""
    config = config or FidelityConfig()
    passed: dict[str, bool] = {}
    for result in results:
        passed[result.backend] = passed.get(result.backend, True) and result.passed(config)
    return passed


def may_be_default(backend: str, results: Sequence[Fidelity], config: FidelityConfig | None = None,
                   reference: str = "torch-fp32") -> bool:
    """Whether ``backend`` may be the embedder default: the reference itself, or a backend that passed the gate."""
    return backend == reference or verdicts(results, config).get(backend, False)


def load_slice(data_dir: str | Path, dataset: str, limit: int, seed: int = 0,
               max_chars: int = EmbedderConfig().max_chars) -> tuple[list[str], list[str]]:
    """A seeded slice of BBC News or Reuters-21578 as (embedding texts as a build makes them, labels)."""
    if dataset not in SLICES:
        raise ValueError(f"unknown fidelity dataset {dataset!r}; choose one of {sorted(SLICES)}")
    loaded = SLICES[dataset](data_dir, limit=limit, seed=seed)
    articles: pd.DataFrame = validate(loaded.articles.copy(), CatalogueConfig()).articles
    labels: Mapping[str, str] = loaded.labels
    return embedding_texts(articles, max_chars), [str(labels[a]) for a in articles["id"]]
