"""Impression ids that carry their impression: what a list inside an experiment showed travels, signed, in the
id the widget sends back with a click, so nothing is stored per impression.

An id holds the experiment (a 48-bit tag of its name), the widget, the hour it was served, the arm shown (A/B)
or the team of every position (interleaving), a 32-bit hash of every item in order, 64 random bits (the
impression's own: they seed its team draft and tell two impressions of one list apart) and a 128-bit keyed
BLAKE2b MAC over all of it (BLAKE2's keyed mode is a MAC by design: RFC 7693 section 2.9), with the site's key
from the experiment store, shared by every worker and replica. A click is credited from the id alone: the MAC
checked, the clicked article found among the item hashes. Only counts, and one row per *clicked* impression
(its clicks so far, so a repeat counts once), are stored: ~0 bytes per list served instead of a ~390-byte record
kept a day (36 GB a day at 1,000 lists a second).

Layout (bytes; the id is their URL-safe base64, no padding): version 1, experiment tag 6, hour 4 (big-endian,
hours since the epoch), widget 1, arm 1 (its index; 255 when interleaved), length n 1, team bits ceil(n/8)
(interleaving only: bit i set when position i is the second arm's pick), item hashes 4n, zero bytes up to a
multiple of 3; then nonce 8 and MAC 16. The part before the nonce is the same for every impression of one list,
widget and hour, and its length a multiple of 3, so its base64 is computed once per list (``Header``) and an
impression costs a MAC and 32 characters of base64. At k = 10: 104 characters (A/B), 108 (interleaving).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from .definition import WIDGETS, Experiment

VERSION = 1
KEY_BYTES = 32
TAG_BYTES = 6
ITEM_HASH_BYTES = 4
NONCE_BYTES = 8
MAC_BYTES = 16
INTERLEAVED = 255
# A click is credited when its list was served within this many hours (by the hour its id carries).
CLICK_HOURS = 24
MAX_ITEMS = 255
_FIXED = 1 + TAG_BYTES + 4 + 1 + 1 + 1  # version, tag, hour, widget, arm, length
_TAIL = NONCE_BYTES + MAC_BYTES  # 24 bytes: 32 characters of base64, no padding
# The longest id: 100 items interleaved (the service's largest k). The click route accepts up to this.
MAX_ID_CHARS = 4 * (_FIXED + 13 + ITEM_HASH_BYTES * 100 + 2 + _TAIL) // 3


class TokenError(ValueError):
    """An impression id that is not one this site's service issued (malformed, unknown experiment, bad MAC)."""


def experiment_tag(name: str) -> bytes:
    """The 48-bit tag that names an experiment in its impression ids."""
    return hashlib.blake2b(name.encode(), digest_size=TAG_BYTES, person=b"experiment").digest()


@functools.lru_cache(maxsize=65_536)
def item_hash(article_id: str) -> bytes:
    """The 32-bit hash that stands for an item of a list in its impression id (kept for the hot articles: each
    new interleaved merge of two kept lists hashes its items)."""
    return hashlib.blake2b(article_id.encode("utf-8", "surrogatepass"), digest_size=ITEM_HASH_BYTES).digest()


# What every impression of one list, widget and hour shares in its id: (the base64 of the header bytes, the id's
# start; the keyed BLAKE2b state after them, copied and fed the nonce per impression). A plain tuple: the garbage
# collector stops tracking an exact tuple of untracked objects (a NamedTuple it tracks for good), and the service
# keeps tens of thousands of them.
Header = tuple[str, "hashlib.blake2b"]


@dataclass(frozen=True)
class ShownList:
    """What an impression id says its list showed.

    Attributes:
        experiment / kind / widget / hour: the experiment, "ab" or "interleave", the widget, hours since the epoch.
        arms: the arm that showed each position (A/B: one arm throughout; interleaving: the team's arm).
        team_arms: interleaving: the arms of teams "a" and "b" (the experiment's first and second arm).
        items: each position's item hash (``item_hash``).
        flips: the impression's random bits (its team draft's coin: ``interleaving.Flips``).
        key: names this impression among all others (hex of its MAC): the row its clicks are kept under.
    """

    experiment: str
    kind: str
    widget: str
    hour: int
    arms: tuple[str, ...]
    team_arms: tuple[str, ...]
    items: tuple[bytes, ...]
    flips: int
    key: str

    def position(self, article_id: str) -> int | None:
        """The 0-based position ``article_id`` was shown at, or None when the list did not show it."""
        wanted = item_hash(article_id)
        return next((p for p, h in enumerate(self.items) if h == wanted), None)


class ImpressionSigner:
    """Issues and reads the impression ids of one site.

    Args:
        key: the site's MAC key (``KEY_BYTES`` random bytes, kept in the experiment store): it signs, and verifies.
        previous: replaced keys that still verify, each with the time (epoch seconds) it stops.
    """

    def __init__(self, key: bytes, previous: Sequence[tuple[bytes, float]] = ()) -> None:
        self._mac = _keyed(key)
        self._previous = tuple((_keyed(old), until) for old, until in previous)

    def header(self, experiment: Experiment, widget: str, hour: int, arms: Sequence[str],
               items: Sequence[str]) -> Header:
        """The shared part of the ids of a list showing ``items`` (each shown by ``arms[i]``) in ``widget``."""
        n = len(items)
        if len(arms) != n or n > MAX_ITEMS:
            raise ValueError(f"an impression shows at most {MAX_ITEMS} items, each with its arm: got {n} items and "
                             f"{len(arms)} arms")
        names = experiment.arm_names
        unknown = sorted(set(arms) - set(names))
        if unknown:
            raise ValueError(f"experiment {experiment.name!r} has no arm {unknown[0]!r}; arms: {list(names)}")
        if experiment.kind == "ab":
            if len(set(arms)) > 1:
                raise ValueError(f"an A/B list shows one arm, got {sorted(set(arms))}")
            arm, teams = (names.index(arms[0]) if arms else 0), b""
        else:
            bits = sum(1 << p for p, shown in enumerate(arms) if shown == names[1])
            arm, teams = INTERLEAVED, bits.to_bytes((n + 7) // 8, "little")
        head = (bytes((VERSION,)) + experiment_tag(experiment.name) + hour.to_bytes(4, "big")
                + bytes((WIDGETS.index(widget), arm, n)) + teams + b"".join(item_hash(a) for a in items))
        head += bytes(-len(head) % 3)
        mac = self._mac.copy()
        mac.update(head)
        return base64.urlsafe_b64encode(head).decode("ascii"), mac

    @staticmethod
    def issue(header: Header, nonce: bytes) -> str:
        """The id of one impression of ``header``'s list (``nonce``: its ``NONCE_BYTES`` random bytes)."""
        mac = header[1].copy()
        mac.update(nonce)
        return header[0] + base64.urlsafe_b64encode(nonce + mac.digest()).decode("ascii")

    def _verifies(self, signed: bytes, signature: bytes, now: float) -> bool:
        for mac_of_key, until in ((self._mac, None), *self._previous):
            if until is not None and now >= until:
                continue
            mac = mac_of_key.copy()
            mac.update(signed)
            if hmac.compare_digest(mac.digest(), signature):
                return True
        return False

    def read(self, impression_id: str, experiments: Mapping[bytes, Experiment], now: float | None = None,
             ) -> ShownList:
        """What the list of ``impression_id`` showed. ``experiments``: the site's, by ``experiment_tag``; ``now``
        (epoch seconds; default: the clock) decides which replaced keys still verify.

        Raises:
            TokenError: not an id this key issued (malformed, altered, or of an experiment not in ``experiments``).
        """
        raw = _decoded(impression_id)
        if len(raw) < _FIXED + _TAIL or raw[0] != VERSION:
            raise TokenError("not an impression id of this service (unknown version or too short)")
        n, arm = raw[_FIXED - 1], raw[_FIXED - 2]
        team_bytes = (n + 7) // 8 if arm == INTERLEAVED else 0
        head_length = _FIXED + team_bytes + ITEM_HASH_BYTES * n
        head_length += -head_length % 3
        if len(raw) != head_length + _TAIL:
            raise TokenError(f"an impression id of {n} items has {head_length + _TAIL} bytes, this one {len(raw)}")
        signed, signature = raw[:head_length + NONCE_BYTES], raw[head_length + NONCE_BYTES:]
        if not self._verifies(signed, signature, time.time() if now is None else now):
            raise TokenError("the impression id's signature does not match (altered, or signed with another key or "
                             "one no longer accepted)")
        experiment = experiments.get(raw[1:1 + TAG_BYTES])
        widget = raw[_FIXED - 3]
        if experiment is None or widget >= len(WIDGETS) or (arm == INTERLEAVED) != (experiment.kind != "ab"):
            raise TokenError("the impression id names no experiment of this site")
        names = experiment.arm_names
        if arm == INTERLEAVED:
            bits = int.from_bytes(raw[_FIXED:_FIXED + team_bytes], "little")
            arms, team_arms = tuple(names[(bits >> p) & 1] for p in range(n)), names[:2]
        elif arm < len(names):
            arms, team_arms = (names[arm],) * n, ()
        else:
            raise TokenError(f"the impression id names arm {arm} of {experiment.name!r}, which has {len(names)}")
        start = _FIXED + team_bytes
        items = tuple(raw[start + ITEM_HASH_BYTES * p:start + ITEM_HASH_BYTES * (p + 1)] for p in range(n))
        nonce = raw[head_length:head_length + NONCE_BYTES]
        return ShownList(experiment.name, experiment.kind, WIDGETS[widget], int.from_bytes(raw[7:11], "big"), arms,
                         team_arms, items, int.from_bytes(nonce, "little"),
                         raw[head_length + NONCE_BYTES:].hex())


def impression_flips(impression_id: str) -> int:
    """The random bits of an impression id (its team draft's coin), read without the key."""
    raw = _decoded(impression_id)
    if len(raw) < _FIXED + _TAIL:
        raise TokenError("not an impression id of this service (too short)")
    return int.from_bytes(raw[-_TAIL:-MAC_BYTES], "little")


def _decoded(impression_id: str) -> bytes:
    if not isinstance(impression_id, str) or not 0 < len(impression_id) <= MAX_ID_CHARS:
        raise TokenError(f"an impression id is a string of 1-{MAX_ID_CHARS} characters")
    try:
        return base64.urlsafe_b64decode(impression_id + "=" * (-len(impression_id) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("an impression id is URL-safe base64") from None


class NoncePool:
    """Random nonces cut from ``os.urandom`` read 4 KiB at a time (one system call per 512 impressions instead of
    one per impression: ``secrets.token_urlsafe`` per id was 4% of a worker's time serving experiment lists)."""

    def __init__(self, chunk_bytes: int = 4096) -> None:
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the bytes read (a forked child must not reuse its parent's)."""
        self._bytes = b""
        self._at = 0

    def take(self) -> bytes:
        """``NONCE_BYTES`` fresh random bytes."""
        with self._lock:
            if self._at + NONCE_BYTES > len(self._bytes):
                self._bytes, self._at = os.urandom(self.chunk_bytes), 0
            piece = self._bytes[self._at:self._at + NONCE_BYTES]
            self._at += NONCE_BYTES
        return piece


NONCES = NoncePool()
os.register_at_fork(after_in_child=NONCES.reset)


def _keyed(key: bytes) -> hashlib.blake2b:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"an impression key must be {KEY_BYTES} bytes, got {len(key)!r}")
    return hashlib.blake2b(key=key, digest_size=MAC_BYTES, person=b"impression")


def new_key() -> bytes:
    """A fresh MAC key for a site."""
    return os.urandom(KEY_BYTES)
