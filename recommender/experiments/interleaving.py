"""Team-draft interleaving: merge two arms' lists into one, remember which arm contributed each position, and
credit a click to that arm.

Team-draft (Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval quality?", CIKM 2008;
Chapelle, Joachims, Radlinski and Yue, "Large-scale validation and analysis of interleaved search evaluation",
TOIS 2012): like two captains picking players, the team with fewer picks so far picks next, a coin deciding
when both have as many; each picks its highest-ranked item not yet in the merged list. One change: when one
list has no unused item left, the other keeps filling the list up to ``k`` (the original stops there), so a
widget always shows ``min(k, |a ∪ b|)`` items; those extra picks are credited to the team that made them.

The coin comes from ``rng``: in the service, the flips of a BLAKE2b hash of the impression id (``impression_rng``),
so the merge, and its teams, can be rebuilt from the impression id the widget sends back with a click. The draft
flips only when both teams have picked as often, so at most every other pick and ``flips_per_merge(k)`` in all:
a merge is decided by the id's first flips (``merge_pattern``), and the service keeps each of the few merges of
a pair of kept lists (32 at ``k`` = 10) instead of drafting again per impression.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

TEAMS = ("a", "b")


class Coin(Protocol):
    """Anything with ``random.Random``'s ``random()``: a float in [0, 1)."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


def new_impression_id() -> str:
    """A fresh opaque impression id: 12 hex digits of the serving time in milliseconds, then 16 URL-safe
    characters (96 random bits). Time first, so the counter store's impression key grows at its end (a random key
    made SQLite's insert 3.5x slower with 300k impressions stored: ``benchmarks/impression_writes.py``)."""
    return f"{time.time_ns() // 1_000_000:012x}{_RANDOM.token()}"


class _RandomPool:
    """96-bit URL-safe tokens cut from ``os.urandom`` read 4 KiB at a time (one system call per 341 ids instead
    of one per id: ``secrets.token_urlsafe`` was 4% of a worker's time serving experiment lists)."""

    def __init__(self, chunk_bytes: int = 4092) -> None:
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the bytes read (a forked child must not reuse its parent's)."""
        self._bytes = b""
        self._at = 0

    def token(self) -> str:
        with self._lock:
            if self._at + 12 > len(self._bytes):
                self._bytes, self._at = os.urandom(self.chunk_bytes), 0
            piece = self._bytes[self._at:self._at + 12]
            self._at += 12
        return base64.urlsafe_b64encode(piece).decode("ascii")


_RANDOM = _RandomPool()
os.register_at_fork(after_in_child=_RANDOM.reset)


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


FLIP_BITS = 128  # an impression's flips: enough for any k the service accepts (at most 100: 50 flips)


def impression_flips(impression_id: str) -> int:
    """The flips of one impression: a BLAKE2b hash of its id (stable across processes and Python versions, unlike
    ``hash()``), as a ``FLIP_BITS``-bit integer."""
    if not isinstance(impression_id, str) or not impression_id:
        raise ValueError(f"impression_id must be a non-empty string, got {impression_id!r}")
    digest = hashlib.blake2b(impression_id.encode("utf-8", "surrogatepass"), digest_size=FLIP_BITS // 8).digest()
    return int.from_bytes(digest, "little")


def impression_rng(impression_id: str) -> Flips:
    """The coin of one impression's team draft (``impression_flips``)."""
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
