"""An experiment's count fields (``experiment_counts``) read back: per-arm counts and interleaving's outcomes for the
report and the guardrail, and impressions and clicks per hour for the notebook's running result."""

from __future__ import annotations

from ..experiments.definition import Experiment
from ..experiments.statistics import ArmCounts, Outcomes


def tallies(experiment: Experiment, fields: dict[str, int]) -> tuple[dict[str, ArmCounts], Outcomes | None]:
    """Per-arm counts (and interleaving's outcomes) from the count fields (``experiment_counts``)."""
    impressions: dict[str, int] = {}
    clicks: dict[str, int] = {}
    positions: dict[str, dict[int, list[int]]] = {}
    outcomes = {"a": 0, "b": 0, "tie": 0}
    for field, count in fields.items():
        kind, name, *rest = field.split("|")
        if kind == "imp":
            impressions[name] = impressions.get(name, 0) + count
        elif kind == "clk":
            clicks[name] = clicks.get(name, 0) + count
        elif kind in ("pimp", "pclk"):
            slot = positions.setdefault(name, {}).setdefault(int(rest[0]), [0, 0])
            slot[kind == "pclk"] += count
        elif kind == "out":
            outcomes[name] += count
    shared = impressions.get("*")  # interleaving: every interleaved impression shows both teams
    counts = {}
    for arm in experiment.arm_names:
        depth = max(positions.get(arm, {0: [0, 0]}), default=-1) + 1
        slots = [positions.get(arm, {}).get(p, [0, 0]) for p in range(depth)]
        counts[arm] = ArmCounts(shared if shared is not None else impressions.get(arm, 0), clicks.get(arm, 0),
                                [s[0] for s in slots], [min(s[1], s[0]) for s in slots])
    if experiment.kind != "interleave":
        return counts, None
    total = shared or 0
    return counts, Outcomes(outcomes["a"], outcomes["b"], outcomes["tie"], max(total, sum(outcomes.values())))


def hourly_series(fields: dict[str, int]) -> list[dict[str, object]]:
    """Impressions and clicks per hour and arm (interleaving: clicks per team, impressions shared), oldest first:
    what a notebook plots as the running result."""
    rows: dict[tuple[int, str], list[int]] = {}
    for field, count in fields.items():
        kind, arm, *rest = field.split("|")
        if kind in ("imp", "clk"):
            slot = rows.setdefault((int(rest[1]), arm), [0, 0])
            slot[kind == "clk"] += count
    return [{"hour": hour, "arm": arm, "impressions": n[0], "clicks": n[1]}
            for (hour, arm), n in sorted(rows.items())]
