"""Tune the embedder on a site's own articles and readers: mined pairs, sentence-transformers training, a gate."""

from __future__ import annotations

from .config import GateSettings, TuneConfig
from .runner import TuneResult, tune

__all__ = ["GateSettings", "TuneConfig", "TuneResult", "tune"]
