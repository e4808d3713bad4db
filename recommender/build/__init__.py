"""Articles to a published build: the stages (read, embed, index, neighbours, related, stories, write, verify),
the hybrid relatedness, the quality gates, the lock, and the rebuild that publishes."""

from __future__ import annotations

from .rebuild import build, rebuild
from .report import BuildReport

__all__ = ["BuildReport", "build", "rebuild"]
