"""The `recommender` command line (typer). Thin: parse options, build config, call one function, print.

Each command module registers its commands on ``common.app`` and imports its implementation lazily, so
``--help`` stays fast.
"""

from __future__ import annotations

from . import builds, evaluation, experiments, lists, rules, serve, takedowns, tuning  # noqa: F401 - registers the commands
from .common import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point."""
    app()
