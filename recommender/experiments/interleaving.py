"""Team-draft interleaving: merge two arms' lists into one, remember which arm contributed each position, and
credit a click to that arm.

Team-draft (Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval quality?", CIKM 2008;
Chapelle, Joachims, Radlinski and Yue, "Large-scale validation and analysis of interleaved search evaluation",
TOIS 2012): like two captains picking players, the team with fewer picks so far picks next, a coin deciding
when both have as many; each picks its highest-ranked item not yet in the merged list. One change: when one
list has no unused item left, the other keeps filling the list up to ``k`` (the original stops there), so a
widget always shows ``min(k, |a ∪ b|)`` items; those extra picks are credited to the team that made them.

The coin comes from ``rng``: in the service, the random bits of the impression id (``impression_rng``), drawn
before the merge; the id then carries the merge's teams (``impression_token``). The draft
flips only when both teams have picked as often, so at most every other pick and ``flips_per_merge(k)`` in all:
a merge is decided by the id's first flips (``merge_pattern``), and the service keeps each of the few merges of
a pair of kept lists (32 at ``k`` = 10) instead of drafting again per impression.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .impression_token import NONCE_BYTES, impression_flips

TEAMS = ("a", "b")


class Coin(Protocol):
    """Anything with ``random.Random``'s ``random()``: a float in [0, 1)."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


class Flips:
    """A coin that reads its flips from the bits of an integer, lowest first: a 1 is heads (``random()`` gives
    0.25, so ``random() < 0.5`` holds), a 0 tails (0.75). Team draft asks only ``< 0.5`` of its coin."""

    __slots__ = ("bits",)

    def __init__(self, bits: int) -> None:
        self.bits = bits

    def random(self) -> float:
        """The next flip, as a float in [0, 1)."""
        heads = self.bits & 1
        self.bits >>= 1
        return 0.25 if heads else 0.75


FLIP_BITS = 8 * NONCE_BYTES  # an impression's flips: its id's random bits, enough for k <= 100 (50 flips)


def impression_rng(impression_id: str) -> Flips:
    """The coin of one impression's team draft: the random bits of its id (``impression_token``)."""
    return Flips(impression_flips(impression_id))


def flips_per_merge(k: int) -> int:
    """The most coins a team draft of length ``k`` flips: one per pair of picks."""
    return (k + 1) // 2


def merge_pattern(flips: int, k: int) -> int:
    """The flips that decide a team draft of length ``k`` (the first ``flips_per_merge(k)``): impressions with the
    same pattern over the same two lists get the same merge."""
    if flips_per_merge(k) > FLIP_BITS:
        raise ValueError(f"k = {k} needs more than {FLIP_BITS} coin flips")
    return flips & ((1 << flips_per_merge(k)) - 1)


def team_draft(a: Sequence[str], b: Sequence[str], k: int, rng: Coin) -> tuple[list[str], list[str]]:
    """Merge the ranked lists ``a`` and ``b`` by team draft.

    Args:
        a, b: the two arms' lists of article ids, best first (team "a" is the experiment's first arm).
        k: length of the merged list, >= 1.
        rng: the impression's coin (``impression_rng(impression_id)``).

    Returns:
        (merged ids, team per position): ``len == min(k, |set(a) | set(b)|)``, no id twice, every id from ``a``
        or ``b``, and ``teams[i]`` is "a" or "b", the arm that picked position ``i``.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    lists = (list(a), list(b))
    merged: list[str] = []
    teams: list[str] = []
    used: set[str] = set()
    nexts = [0, 0]
    picks = [0, 0]
    while len(merged) < k:
        for side in (0, 1):  # skip what the other team (or a repeat in the same list) already placed
            while nexts[side] < len(lists[side]) and lists[side][nexts[side]] in used:
                nexts[side] += 1
        left = [nexts[side] < len(lists[side]) for side in (0, 1)]
        if not any(left):
            break
        if all(left):
            side = 0 if picks[0] < picks[1] or (picks[0] == picks[1] and rng.random() < 0.5) else 1
        else:
            side = 0 if left[0] else 1
        item = lists[side][nexts[side]]
        merged.append(item)
        teams.append(TEAMS[side])
        used.add(item)
        picks[side] += 1
    return merged, teams


def credit(teams: Sequence[str], clicked_positions: Iterable[int]) -> str | None:
    """The outcome of one interleaved impression.

    Args:
        teams: the team of each position of the merged list (``team_draft``'s second value).
        clicked_positions: 0-based positions of the merged list that were clicked (a repeat counts once).

    Returns:
        "a" or "b" for the team whose items got more clicks, "tie" for as many, None for no click (no outcome).
    """
    clicked = set()
    for position in clicked_positions:
        if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < len(teams):
            raise ValueError(f"clicked position {position!r} is outside the list's 0..{len(teams) - 1}")
        clicked.add(position)
    if not clicked:
        return None
    on_a = sum(1 for p in clicked if teams[p] == "a")
    on_b = len(clicked) - on_a
    return "a" if on_a > on_b else "b" if on_b > on_a else "tie"
