"""Logs of long commands: structured JSON lines for cron/orchestrators, short human lines on a terminal."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any, Callable, TextIO

from ..build.pipeline import CHECKPOINTS
from ..build.report import BuildReport

# Exit codes of `recommender rebuild` (documented in README "Nightly rebuild").
EXIT_PUBLISHED = 0
EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_LOCKED = 4


class RunLog:
    """Writes events to ``stream``: one JSON object per line when it is not a terminal, else a short line."""

    def __init__(self, stream: TextIO | None = None, as_json: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.as_json = (not self.stream.isatty()) if as_json is None else as_json

    def event(self, event: str, text: str, **fields: Any) -> None:
        """Log one event: ``text`` for people, ``fields`` for machines."""
        if self.as_json:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            line = json.dumps({"ts": stamp, "event": event, **fields}, sort_keys=True, default=str)
        else:
            line = text
        print(line, file=self.stream, flush=True)

    def stage(self, name: str, seconds: float) -> None:
        """A stage ended."""
        self.event("stage", f"  {name}: {seconds:.2f}s", stage=name, seconds=round(seconds, 3))

    def report(self, report: BuildReport) -> None:
        """Gate verdicts, then the whole report as the final structured line."""
        for gate in report.gates:
            self.event("gate", f"  gate {gate.name}: {gate.message}", **gate.to_dict())
        if report.lock_takeover:
            self.event("lock", f"  took over a stale lock of pid {report.lock_takeover.get('pid')}",
                       stale_holder=report.lock_takeover)
        if self.as_json:
            print(json.dumps({"ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                              **report.to_dict()}, sort_keys=True, default=str), file=self.stream, flush=True)


def pause_at(stage: str | None, log: RunLog, seconds: float = 3600.0) -> Callable[[str], None] | None:
    """A checkpoint that stops the process at ``stage`` (for crash tests), announcing it first; None if unset.

    Raises:
        ValueError: ``stage`` is not one of ``pipeline.CHECKPOINTS``.
    """
    if not stage:
        return None
    if stage not in CHECKPOINTS:
        raise ValueError(f"RECOMMENDER_PAUSE_AT={stage!r} is not a checkpoint; use one of {', '.join(CHECKPOINTS)}")

    def checkpoint(name: str) -> None:
        if name == stage:
            log.event("paused", f"  paused at {name} (pid {os.getpid()})", stage=name, pid=os.getpid())
            time.sleep(seconds)

    return checkpoint
