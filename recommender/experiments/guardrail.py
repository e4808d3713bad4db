"""The automatic stop rule: an arm doing clearly worse than control is stopped.

The rule, with the experiment's ``Guardrail`` (defaults: ``min_impressions = 1000``, ``margin = 0.2``,
``confidence = 0.99``); control itself is never stopped:

- A/B: a non-control arm is stopped when it and control each have at least ``min_impressions`` impressions,
  control has at least one click, and the upper bound of the arm's ``confidence`` (99%) Wilson interval of CTR is
  below ``(1 - margin)`` times control's observed CTR: even at its most favourable plausible value the arm's CTR
  is more than 20% below control's.
- Interleaving: the non-control arm is stopped when at least ``min_impressions`` lists were interleaved and the
  upper bound of the ``confidence`` Wilson interval of its share of the decided impressions (its wins over its
  wins + its losses; ties left out) is below ``(1 - margin) / (2 - margin)`` (4/9 = 0.444 at the default): even
  at best it wins fewer than 0.8 impressions per impression control wins, the interleaving counterpart of
  "CTR below 80% of control's".

The rule is meant to be applied repeatedly (on every counter flush). Repeated looks raise the chance of stopping
an arm that is not actually worse, which is why the interval is at 99% and the margin is wide. Measured with the
defaults (benchmarks/interleaving.py: control CTR 8.4%, checked every 1,000 impressions per arm up to 100,000, 200
runs): an arm as good as control was never stopped, one 10% worse in 0.5% of runs, one exactly on the line (20%
worse) in 17%, and arms 30% / 40% worse always, at a median 5,000 / 2,000 impressions per arm. Control's CTR
enters as its point estimate, so the first looks, near ``min_impressions``, are the noisiest. The function is
pure: the caller marks the arms stopped and logs each ``Stop.message()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .definition import Experiment
from .statistics import ArmCounts, Outcomes, wilson_interval


@dataclass(frozen=True)
class Stop:
    """One arm the guardrail stops, and why."""

    experiment: str
    arm: str
    reason: str

    def message(self) -> str:
        """The log line of the event."""
        return f"experiment {self.experiment}: arm {self.arm} stopped by the guardrail: {self.reason}"


def win_share_line(margin: float) -> float:
    """The win share below which an interleaved arm wins fewer than ``1 - margin`` impressions per control win."""
    return (1 - margin) / (2 - margin)


def arms_to_stop(experiment: Experiment, counts: Mapping[str, ArmCounts],
                 outcomes: Outcomes | None = None) -> list[Stop]:
    """The arms of ``experiment`` the guardrail stops now (none when ``guardrail.enabled`` is False).

    Args:
        experiment: its ``guardrail`` holds the rule's parameters.
        counts: impressions and clicks per arm (A/B).
        outcomes: interleaving's wins, losses and ties (required for an interleaving experiment).

    Returns:
        One ``Stop`` per arm to stop, in the experiment's arm order, with the numbers that decided it.
    """
    rule = experiment.guardrail
    if not rule.enabled:
        return []
    control = str(experiment.control)
    if experiment.kind == "interleave":
        if outcomes is None:
            raise ValueError(f"experiment {experiment.name!r} interleaves: its guardrail needs the outcomes")
        return _interleaved(experiment, outcomes)
    base = counts.get(control, ArmCounts(0, 0))
    if base.impressions < rule.min_impressions or base.clicks == 0:
        return []
    line = (1 - rule.margin) * base.ctr
    stops = []
    for name in experiment.arm_names:
        arm = counts.get(name, ArmCounts(0, 0))
        if name == control or arm.impressions < rule.min_impressions:
            continue
        _, high = wilson_interval(arm.clicks, arm.impressions, rule.confidence)
        if high < line:
            stops.append(Stop(experiment.name, name,
                              f"CTR {arm.ctr:.2%} over {arm.impressions:,} impressions ({rule.confidence:.0%} upper "
                              f"bound {high:.2%}) is below {1 - rule.margin:.0%} of control {control}'s "
                              f"{base.ctr:.2%} ({line:.2%})"))
    return stops


def _interleaved(experiment: Experiment, outcomes: Outcomes) -> list[Stop]:
    rule = experiment.guardrail
    control = str(experiment.control)
    if outcomes.impressions < rule.min_impressions:
        return []
    first, second = experiment.arm_names
    arm = second if control == first else first
    wins, losses = (outcomes.wins_b, outcomes.wins_a) if arm == second else (outcomes.wins_a, outcomes.wins_b)
    if wins + losses == 0:
        return []
    _, high = wilson_interval(wins, wins + losses, rule.confidence)
    line = win_share_line(rule.margin)
    if high >= line:
        return []
    return [Stop(experiment.name, arm,
                 f"won {wins:,} of {wins + losses:,} decided impressions against control {control} "
                 f"({rule.confidence:.0%} upper bound of its win share {high:.3f}, below {line:.3f}: fewer than "
                 f"{1 - rule.margin:.2g} wins per control win) over {outcomes.impressions:,} interleaved impressions")]
