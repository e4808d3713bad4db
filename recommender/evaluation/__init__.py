"""Offline evaluation on public datasets: adapters, metrics, baselines, sweeps and the runner."""

from .gate import semeval_gate, semeval_pearson
from .runner import EvaluationConfig, EvaluationResult, evaluate, format_table

__all__ = ["EvaluationConfig", "EvaluationResult", "evaluate", "format_table", "semeval_gate", "semeval_pearson"]
