"""An experiment's report: per-arm impressions, clicks, CTR with its interval, position-wise CTR, interleaving
wins / losses / ties, and a one-line verdict.

The decision, at ``alpha`` (0.05):

- A/B: every other arm is z-tested against control (``statistics.two_proportion_z_test``) at ``alpha / (arms - 1)``
  (Bonferroni). The arm with the highest CTR among those significantly above control wins; control wins when
  every other arm is significantly below it; otherwise there is not enough data yet, and the verdict says how many
  more impressions per arm the slowest undecided comparison roughly needs (``statistics.more_ab_impressions``).
- Interleaving: the exact sign test on wins vs losses, ties left out (``statistics.sign_test``); the arm with more
  wins wins when ``p < alpha``, else roughly how many more interleaved impressions are needed.

The tests are fixed-horizon tests: reading the report over and over and stopping at the first ``p < 0.05`` makes
a wrong pick far more likely than 5% (benchmarks/interleaving.py: two identical arms, read every 100 impressions,
were declared different in about 65% of runs before 2,000,000 impressions; read once, in 4-5%). Decide on the
sample size the first report asks for, or treat an early verdict as provisional.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from .definition import Experiment
from .statistics import (
    ALPHA,
    FALLBACK_CTR,
    MIN_RELATIVE_LIFT,
    ArmCounts,
    Outcomes,
    more_ab_impressions,
    more_interleaved_impressions,
    planned_ctrs,
    position_ctr,
    sign_test,
    two_proportion_z_test,
    wilson_interval,
)


@dataclass(frozen=True)
class ArmRow:
    """One arm's line of the report.

    Attributes:
        ctr / ctr_low / ctr_high: CTR and its 95% Wilson interval (NaN, 0, 1 without impressions).
        position_ctr: CTR at each 0-based position (None where nothing was shown).
        p_value: A/B: the z-test against control (None for control); interleaving: None.
        wins / losses: interleaving: impressions this arm won / lost (None in A/B).
    """

    arm: str
    control: bool
    impressions: int
    clicks: int
    ctr: float
    ctr_low: float
    ctr_high: float
    position_ctr: tuple[float | None, ...]
    p_value: float | None = None
    wins: int | None = None
    losses: int | None = None


@dataclass(frozen=True)
class Report:
    """``recommender experiment report NAME``.

    Attributes:
        winner: the winning arm, None while undecided.
        p_value: the p-value the verdict rests on (the winner's, or the closest undecided comparison's).
        more_impressions: while undecided, roughly how many more impressions (A/B: per arm) are needed.
        ties: interleaving: impressions with as many clicks for both teams (None in A/B).
        verdict: the one-line conclusion.
    """

    experiment: str
    kind: str
    rows: tuple[ArmRow, ...]
    winner: str | None
    p_value: float | None
    more_impressions: int | None
    verdict: str
    ties: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (NaN CTRs as None)."""
        out = asdict(self)
        for row in out["rows"]:
            row["ctr"] = None if math.isnan(row["ctr"]) else row["ctr"]
            row["position_ctr"] = list(row["position_ctr"])
        return out

    def lines(self) -> list[str]:
        """The report as text: one line per arm, then the verdict."""
        out = []
        for r in self.rows:
            ctr = "-" if math.isnan(r.ctr) else f"{_pct(r.ctr)} [{_pct(r.ctr_low)}, {_pct(r.ctr_high)}]"
            extra = f"  p = {_p(r.p_value)}" if r.p_value is not None else ""
            if r.wins is not None:
                extra = f"  wins {r.wins:,}  losses {r.losses:,}"
            positions = " ".join("-" if c is None else _pct(c) for c in r.position_ctr[:10])
            out.append(f"{r.arm}{' (control)' if r.control else ''}: {r.impressions:,} impressions, {r.clicks:,} "
                       f"clicks, CTR {ctr}{extra}" + (f"; by position {positions}" if positions else ""))
        if self.ties is not None:
            out.append(f"ties: {self.ties:,}")
        out.append(self.verdict)
        return out


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _p(value: float) -> str:
    return "< 0.0001" if value < 1e-4 else f"{value:.2g}"


def _roughly(n: int) -> str:
    """``n`` to two significant figures, with thousands separators (12,345 -> "12,000")."""
    digits = max(0, len(str(n)) - 2)
    return f"{round(n, -digits):,}"


def _row(arm: str, counts: ArmCounts, control: bool, **extra: Any) -> ArmRow:
    low, high = wilson_interval(counts.clicks, counts.impressions)
    return ArmRow(arm, control, counts.impressions, counts.clicks, counts.ctr, low, high,
                  tuple(position_ctr(counts.position_clicks, counts.position_impressions)), **extra)


def ab_report(experiment: Experiment, counts: Mapping[str, ArmCounts], alpha: float = ALPHA) -> Report:
    """The report of an A/B experiment from each arm's counts (an arm without counts has none yet)."""
    control = str(experiment.control)
    empty = ArmCounts(0, 0)
    arms = {name: counts.get(name, empty) for name in experiment.arm_names}
    level = alpha / (len(arms) - 1)
    tests = {name: two_proportion_z_test(arms[control].clicks, arms[control].impressions, c.clicks, c.impressions)[1]
             for name, c in arms.items() if name != control}
    rows = tuple(_row(name, c, name == control, p_value=tests.get(name)) for name, c in arms.items())
    better = [n for n, p in tests.items() if p < level and arms[n].ctr > arms[control].ctr]
    worse = [n for n, p in tests.items() if p < level and arms[n].ctr < arms[control].ctr]
    base = arms[control]
    if better:
        best = max(better, key=lambda n: arms[n].ctr)
        return Report(experiment.name, "ab", rows, best, tests[best], None,
                      f"arm {best} wins: CTR {_pct(arms[best].ctr)} vs {_pct(base.ctr)} for control {control} "
                      f"(p = {_p(tests[best])})")
    if len(worse) == len(tests):
        runner_up = max(worse, key=lambda n: arms[n].ctr)
        return Report(experiment.name, "ab", rows, control, tests[runner_up], None,
                      f"arm {control} (control) wins: CTR {_pct(base.ctr)} vs {_pct(arms[runner_up].ctr)} for "
                      f"{runner_up} (p = {_p(tests[runner_up])})")
    undecided = [n for n in tests if n not in worse]
    more = max(more_ab_impressions(base, arms[n], level) for n in undecided)
    closest = min(tests[n] for n in undecided)
    assumed = all(planned_ctrs(base, arms[n])[2] for n in undecided)
    note = (f" (no clicks yet: planned for a {_pct(FALLBACK_CTR)} CTR and a {MIN_RELATIVE_LIFT:.0%} lift)"
            if assumed else "")
    return Report(experiment.name, "ab", rows, None, closest, more,
                  f"not enough data yet{note}: roughly {_roughly(more)} more impressions per arm")


def interleave_report(experiment: Experiment, counts: Mapping[str, ArmCounts], outcomes: Outcomes,
                      alpha: float = ALPHA) -> Report:
    """The report of a team-draft interleaving experiment: per-team counts and the impressions' outcomes."""
    first, second = experiment.arm_names
    empty = ArmCounts(0, 0)
    wins = {first: outcomes.wins_a, second: outcomes.wins_b}
    rows = tuple(_row(name, counts.get(name, empty), name == experiment.control, wins=wins[name],
                      losses=wins[second if name == first else first]) for name in (first, second))
    p = sign_test(outcomes.wins_a, outcomes.wins_b)
    leader, trailer = (first, second) if outcomes.wins_a >= outcomes.wins_b else (second, first)
    tally = f"{wins[leader]:,} wins to {wins[trailer]:,}, {outcomes.ties:,} ties"
    if p < alpha and wins[leader] > wins[trailer]:
        return Report(experiment.name, "interleave", rows, leader, p, None,
                      f"arm {leader} wins: {tally} (sign test p = {_p(p)})", ties=outcomes.ties)
    more = more_interleaved_impressions(outcomes, alpha)
    note = (f" (no clicks yet: planned for a {_pct(FALLBACK_CTR)} click rate)"
            if outcomes.wins_a + outcomes.wins_b == 0 else f" ({tally}, p = {_p(p)})")
    return Report(experiment.name, "interleave", rows, None, p, more,
                  f"not enough data yet{note}: roughly {_roughly(more)} more interleaved impressions",
                  ties=outcomes.ties)


def report(experiment: Experiment, counts: Mapping[str, ArmCounts], outcomes: Outcomes | None = None,
           alpha: float = ALPHA) -> Report:
    """The report of ``experiment`` from its counts (interleaving also needs ``outcomes``)."""
    unknown = sorted(set(counts) - set(experiment.arm_names))
    if unknown:
        raise ValueError(f"counts for unknown arm(s) {unknown} of experiment {experiment.name!r}")
    if experiment.kind == "ab":
        return ab_report(experiment, counts, alpha)
    if outcomes is None:
        raise ValueError(f"experiment {experiment.name!r} interleaves: its report needs the impressions' outcomes")
    return interleave_report(experiment, counts, outcomes, alpha)


def running_ctr(series: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """The running result: per arm and hour, the cumulative impressions, clicks, CTR and its Wilson interval.

    Args:
        series: rows of ``hour``, ``arm``, ``impressions``, ``clicks`` (the service's ``Experiments.series``); an
            interleaving experiment's impressions are under arm "*" and shared by both teams' arms.
        confidence: of the interval.
    """
    shared = {row["hour"]: row["impressions"] for row in series if row["arm"] == "*"}
    arms = sorted({row["arm"] for row in series if row["arm"] != "*"})
    hours = sorted({row["hour"] for row in series})
    by = {(row["hour"], row["arm"]): row for row in series}
    out = []
    for arm in arms:
        impressions = clicks = 0
        for hour in hours:
            row = by.get((hour, arm), {"impressions": 0, "clicks": 0})
            impressions += shared.get(hour, 0) if shared else row["impressions"]
            clicks += row["clicks"]
            low, high = wilson_interval(min(clicks, impressions), impressions, confidence) if impressions else (
                math.nan, math.nan)
            out.append({"hour": hour, "arm": arm, "impressions": impressions, "clicks": clicks,
                        "ctr": clicks / impressions if impressions else math.nan, "ctr_low": low, "ctr_high": high})
    return out
