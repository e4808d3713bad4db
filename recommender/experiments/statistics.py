"""The statistics of an experiment's counts: Wilson intervals, the two-proportion z-test, the sign test, and the
sample size still needed.

Everything takes plain counts (impressions and clicks per arm and per position; interleaving wins, losses and
ties), so the service can feed it from its counter store. CTR is clicks per impression, an impression being
one list served (``clicks <= impressions``: a reader clicks at most once per list for the purpose of these
tests; the rare second click of a list is still a click and only makes the binomial model slightly optimistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats

ALPHA = 0.05
POWER = 0.8
# With no click yet there is no rate to plan with: a related-articles widget's CTR is typically 1-3%.
FALLBACK_CTR = 0.02
# Smaller differences are not worth detecting (and observed ones near 0 would ask for an endless run): the
# sample size is planned for at least this relative lift in CTR (interleaving: 1.05 wins per win of the other).
MIN_RELATIVE_LIFT = 0.05


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class ArmCounts:
    """What the counter store holds for one arm.

    Attributes:
        impressions: lists served with this arm (interleaving: interleaved lists served).
        clicks: clicks on them (interleaving: on this arm's team's items).
        position_impressions / position_clicks: the same per 0-based position (optional; same length).
    """

    impressions: int
    clicks: int
    position_impressions: Sequence[int] = ()
    position_clicks: Sequence[int] = ()

    def __post_init__(self) -> None:
        _count(self.impressions, "impressions")
        _count(self.clicks, "clicks")
        if self.clicks > self.impressions:
            raise ValueError(f"clicks ({self.clicks}) exceed impressions ({self.impressions})")
        shown, clicked = tuple(self.position_impressions), tuple(self.position_clicks)
        if len(shown) != len(clicked):
            raise ValueError(f"position_impressions ({len(shown)}) and position_clicks ({len(clicked)}) differ "
                             f"in length")
        for i, (n, c) in enumerate(zip(shown, clicked)):
            if _count(c, f"position_clicks[{i}]") > _count(n, f"position_impressions[{i}]"):
                raise ValueError(f"position {i}: clicks ({c}) exceed impressions ({n})")
        object.__setattr__(self, "position_impressions", shown)
        object.__setattr__(self, "position_clicks", clicked)

    @property
    def ctr(self) -> float:
        """Clicks per impression (NaN without impressions)."""
        return self.clicks / self.impressions if self.impressions else math.nan


@dataclass(frozen=True)
class Outcomes:
    """An interleaving experiment's per-impression outcomes (``interleaving.credit``).

    Attributes:
        wins_a / wins_b: impressions whose clicks went more to team "a" (the first arm) / "b".
        ties: impressions with as many clicks on both teams.
        impressions: interleaved impressions served, clicked or not.
    """

    wins_a: int
    wins_b: int
    ties: int
    impressions: int

    def __post_init__(self) -> None:
        for name in ("wins_a", "wins_b", "ties", "impressions"):
            _count(getattr(self, name), name)
        if self.wins_a + self.wins_b + self.ties > self.impressions:
            raise ValueError(f"wins + ties ({self.wins_a + self.wins_b + self.ties}) exceed impressions "
                             f"({self.impressions})")


def z_quantile(probability: float) -> float:
    """The standard normal quantile."""
    return float(stats.norm.ppf(probability))


def wilson_interval(clicks: int, impressions: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a CTR (Wilson 1927); (0, 1) without impressions.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = clicks / n`` and ``z`` the two-sided
    quantile of ``confidence``.
    """
    _count(clicks, "clicks")
    if _count(impressions, "impressions") == 0:
        return 0.0, 1.0
    if clicks > impressions:
        raise ValueError(f"clicks ({clicks}) exceed impressions ({impressions})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = z_quantile(0.5 + confidence / 2)
    n, p = impressions, clicks / impressions
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # The bounds at 0 and n clicks are exactly 0 and 1; rounding would leave them a hair off.
    low = 0.0 if clicks == 0 else max(0.0, centre - half)
    return low, 1.0 if clicks == impressions else min(1.0, centre + half)


def two_proportion_z_test(clicks_1: int, impressions_1: int, clicks_2: int, impressions_2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of two CTRs, two-sided.

    Returns:
        (z, p): ``z = (p2 - p1) / sqrt(p̄(1-p̄)(1/n1 + 1/n2))``, p̄ the pooled CTR; (0.0, 1.0) when there is no
        variance to test (an arm without impressions, or no click at all / every impression clicked).
    """
    for c, n, arm in ((clicks_1, impressions_1, 1), (clicks_2, impressions_2, 2)):
        if _count(c, f"clicks_{arm}") > _count(n, f"impressions_{arm}"):
            raise ValueError(f"clicks_{arm} ({c}) exceed impressions_{arm} ({n})")
    if impressions_1 == 0 or impressions_2 == 0:
        return 0.0, 1.0
    pooled = (clicks_1 + clicks_2) / (impressions_1 + impressions_2)
    variance = pooled * (1 - pooled) * (1 / impressions_1 + 1 / impressions_2)
    if variance <= 0:
        return 0.0, 1.0
    z = (clicks_2 / impressions_2 - clicks_1 / impressions_1) / math.sqrt(variance)
    return z, float(2 * stats.norm.sf(abs(z)))


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test of wins against losses at 1/2, ties excluded (1.0 with no outcome)."""
    _count(wins, "wins")
    _count(losses, "losses")
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def position_ctr(position_clicks: Sequence[int], position_impressions: Sequence[int]) -> list[float | None]:
    """CTR at each position (None where nothing was shown there)."""
    if len(position_clicks) != len(position_impressions):
        raise ValueError("position_clicks and position_impressions differ in length")
    return [c / n if n else None for c, n in zip(position_clicks, position_impressions)]


def ab_sample_size(ctr_1: float, ctr_2: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Impressions per arm for a two-sided two-proportion z-test at ``alpha`` to detect ``ctr_1`` vs ``ctr_2`` with
    ``power`` (normal approximation): ``(z_α/2·sqrt(2p̄q̄) + z_β·sqrt(p1q1 + p2q2))² / (p1 - p2)²``."""
    if not (0 <= ctr_1 <= 1 and 0 <= ctr_2 <= 1) or ctr_1 == ctr_2:
        raise ValueError(f"need two different CTRs in [0, 1], got {ctr_1} and {ctr_2}")
    z_a, z_b = z_quantile(1 - alpha / 2), z_quantile(power)
    mean = (ctr_1 + ctr_2) / 2
    spread = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(ctr_1 * (1 - ctr_1) + ctr_2 * (1 - ctr_2))
    return math.ceil(spread**2 / (ctr_1 - ctr_2) ** 2)


def sign_test_sample_size(win_share: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Decided outcomes (wins + losses) for a two-sided sign test at ``alpha`` to detect a win share of
    ``win_share`` against 1/2 with ``power`` (normal approximation): ``((z_α/2·½ + z_β·sqrt(pq)) / (p - ½))²``."""
    if not 0 < win_share < 1 or win_share == 0.5:
        raise ValueError(f"need a win share in (0, 1) other than 0.5, got {win_share}")
    z_a, z_b = z_quantile(1 - alpha / 2), z_quantile(power)
    return math.ceil(((z_a * 0.5 + z_b * math.sqrt(win_share * (1 - win_share))) / (win_share - 0.5)) ** 2)


def planned_ctrs(control: ArmCounts, arm: ArmCounts, min_lift: float = MIN_RELATIVE_LIFT) -> tuple[float, float, bool]:
    """The two CTRs to plan with: the observed ones, the difference raised to at least ``min_lift`` of the pooled
    CTR; ``FALLBACK_CTR`` and ``min_lift`` when neither arm has a click yet (third value True)."""
    impressions = control.impressions + arm.impressions
    pooled = (control.clicks + arm.clicks) / impressions if impressions else 0.0
    if pooled == 0:
        return FALLBACK_CTR, FALLBACK_CTR * (1 + min_lift), True
    base = control.ctr if control.impressions else pooled
    other = arm.ctr if arm.impressions else pooled
    step = min_lift * pooled
    if abs(other - base) < step:
        other = base + step if other >= base and base + step <= 1 else base - step
    return base, other, False


def more_ab_impressions(control: ArmCounts, arm: ArmCounts, alpha: float = ALPHA, power: float = POWER) -> int:
    """Roughly how many more impressions each of the two arms needs before the z-test can decide: the planned
    sample size (``planned_ctrs``) less what the smaller arm has, and at least a tenth more than that (an
    experiment already at its planned size without a decision saw a smaller difference than planned)."""
    base, other, _ = planned_ctrs(control, arm)
    have = min(control.impressions, arm.impressions)
    return max(ab_sample_size(base, other, alpha, power) - have, math.ceil(0.1 * have), 1)


def more_interleaved_impressions(outcomes: Outcomes, alpha: float = ALPHA, power: float = POWER,
                                 min_lift: float = MIN_RELATIVE_LIFT) -> int:
    """Roughly how many more interleaved impressions the sign test needs: the decided outcomes it needs at the
    observed win share (at least ``(1 + min_lift) / (2 + min_lift)``) over the observed share of impressions with
    an outcome (``FALLBACK_CTR`` with none yet), less what was served, and at least a tenth more."""
    decided = outcomes.wins_a + outcomes.wins_b
    share = max(outcomes.wins_a, outcomes.wins_b) / decided if decided else 0.5
    # Planned for at least the smallest lift worth detecting, and below 1 (all decided outcomes one way so far).
    share = min(max(share, (1 + min_lift) / (2 + min_lift)), 0.95)
    rate = decided / outcomes.impressions if decided else FALLBACK_CTR
    needed = math.ceil(sign_test_sample_size(share, alpha, power) / rate)
    return max(needed - outcomes.impressions, math.ceil(0.1 * outcomes.impressions), 1)
