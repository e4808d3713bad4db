"""Experiment arms' rendered lists, kept per request for the list cache's lifetime and re-ranked ahead of expiry.

Inside an experiment each response is its own impression (a new id, counted), so the response cache cannot send
one again; what can be kept is each arm's rendered list for the request (route and parameters), so a hot
article's lists cost an A/B lookup or one team-draft merge instead of one or two rankings. Entries live
``list_cache_seconds``, bounded in entries (oldest out first), and all of them go when the served build, the live
state or the rules in force change (the ``generation``, the one the response cache keys on). They are a plain
dict in insertion order, which is expiry order (every entry lives as long), as the response cache keeps its own:
``cachetools.TTLCache``, used before, cost 3.5 µs a lookup (its timer context and expiry walk), most of the
lookup's cost on every list served inside an experiment (benchmarks/JOURNAL.md, 2026-12-02).

An entry is *due* once it is older than a random 75-95% of its lifetime (drawn when it is kept, so lists kept
together, e.g. after a takedown cleared them all, are not all ranked again in the same second): the response
cache, having sent a list assembled from it, ranks it again after the response (``refresh``), so a list asked
for at least every 1.5 s (the last 5% of 30) is never ranked on a request, and none is served older than
``list_cache_seconds``. (Without this, every kept list ran out once per lifetime and its next request ranked it
through the app: a third of the requests of 1,000 hot articles in an A/B test at 5 s, and the tail of their
latency.)

A list is kept the *second* time its request is ranked within a lifetime, not the first: the first only leaves
the hash of its key (an int to a float, which the garbage collector does not track). On pages asked for once,
the long tail of an archive, keeping every list filled the cache with tens of thousands of tracked objects that
no request read again, and each full collection walked them all (100+ ms pauses serving ids uniform over 100k
inside an A/B test; benchmarks/JOURNAL.md, 2026-12-02). A hot page pays one more ranking per generation.
"""

from __future__ import annotations

import itertools
import logging
import operator
import random
import threading
import time
from typing import Callable, Hashable, TypeVar

from .rendering import RenderedList

log = logging.getLogger("recommender.service")
Generation = Callable[[], Hashable]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Kept = tuple[RenderedList, int]  # the rendered list and the list length the request asked for
Remake = Callable[[], Kept]  # ranks and renders the entry again (the request's own parameters and arm)
# An entry: (the kept list, when it is due, when it expires (timer seconds), its remake).
Entry = tuple[Kept, float, float, Remake]
# Of the lifetime: a kept list older than a draw in this range is ranked again, about 1/0.85 times a lifetime
# (1/0.65 at the former (0.5, 0.8)). ``benchmarks/app_loop.py --list-cache-seconds 6`` (five times the default's
# refreshes): hot A/B lists cost 107-119 µs of CPU each against 124-140 at (0.5, 0.8), and 90-95 with none due.
DUE_AFTER = (0.75, 0.95)


class KeptLists:
    """Rendered arm lists by (experiment, arm, request key).

    Args:
        seconds / entries: how long and how many are kept (either 0: nothing is).
        generation: what every kept list depends on; when it changes, every entry is dropped.
        timer: the clock of the lifetimes (monotonic seconds).
    """

    def __init__(self, seconds: float, entries: int, generation: Generation,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.generation = generation
        self.seconds = seconds
        self.entries = entries
        self.timer = timer
        self._cache: dict[Hashable, Entry] | None = {} if seconds > 0 and entries > 0 else None
        self._generation: Hashable = None
        self._refreshing: set[Hashable] = set()
        # Keys ranked once (their hash) and when that sighting runs out; insertion order is expiry order.
        self._asked: dict[int, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether anything is kept."""
        return self._cache is not None

    def _locked_entry(self, key: Hashable, generation: Hashable, now: float) -> Entry | None:
        """The entry in ``generation`` (every entry dropped when it moved on) not expired at ``now``; call with the
        lock held."""
        if self._cache is None:
            return None
        if generation != self._generation:
            self._drop_all()
            self._generation = generation
        entry = self._cache.get(key)
        if entry is not None and now >= entry[2]:
            del self._cache[key]
            return None
        return entry

    def _entry(self, key: Hashable, generation: Hashable = None) -> tuple[Entry | None, Hashable]:
        if generation is None:
            generation = self.generation()
        with self._lock:
            return self._locked_entry(key, generation, self.timer()), generation

    def get(self, key: Hashable) -> tuple[Kept | None, Hashable]:
        """The kept entry (or None) and the generation it was looked up in (pass it to ``put``)."""
        entry, generation = self._entry(key)
        return (entry[0] if entry is not None else None), generation

    def put(self, key: Hashable, kept: Kept, generation: Hashable, remake: Remake) -> bool:
        """Keep an entry computed in ``generation`` (dropped if the generation moved on meanwhile), if it is kept
        already or its key was ranked once before within a lifetime (otherwise only that sighting is kept);
        ``remake`` computes it again when it is due. Whether it is kept now."""
        with self._lock:
            self._refreshing.discard(key)
            cache = self._cache
            if cache is None or generation != self._generation:
                return False
            now = self.timer()
            if cache.pop(key, None) is None and not self._seen_before(hash(key), now):  # pop: to the end, the newest
                return False
            cache[key] = (kept, now + self.seconds * random.uniform(*DUE_AFTER), now + self.seconds, remake)
            _trim(cache, self.entries, now, operator.itemgetter(2))
            return True

    def _seen_before(self, hashed: int, now: float) -> bool:
        """Whether a key of this hash was ranked within a lifetime (then forgotten: it is kept now); otherwise the
        sighting is recorded. Call with the lock held."""
        asked = self._asked
        if asked.pop(hashed, 0.0) > now:
            return True
        asked[hashed] = now + self.seconds
        _trim(asked, self.entries, now, float)
        return False

    def lookup(self, key: Hashable, generation: Hashable = None) -> tuple[Kept | None, bool]:
        """The kept entry (or None) and whether it is due: past its draw of ``DUE_AFTER`` and not being ranked again
        already (it then is, as far as later calls know: the caller must ``refresh`` it). ``generation``: the
        caller's reading of it, this request's (None: read it now)."""
        if generation is None:
            generation = self.generation()
        now = self.timer()
        with self._lock:  # one acquisition: this runs for every list served inside an experiment
            entry = self._locked_entry(key, generation, now)
            if entry is None:
                return None, False
            if now < entry[1] or key in self._refreshing:
                return entry[0], False
            self._refreshing.add(key)
            return entry[0], True

    def refresh(self, key: Hashable) -> None:
        """Rank a due entry again and keep the new list (an entry gone meanwhile, or one that no longer ranks,
        e.g. its arm's build lacks the article now, is left to run out; logged)."""
        entry, generation = self._entry(key)
        try:
            if entry is not None:
                self.put(key, entry[3](), generation, entry[3])
        except Exception:  # noqa: BLE001 - a refresh runs after its response: nobody else would see the error
            log.exception("experiment list %r: ranking it again failed; it runs out at its lifetime", key)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._drop_all()

    def _drop_all(self) -> None:
        """Every entry, sighting and refresh mark gone; call with the lock held."""
        if self._cache is not None:
            self._cache.clear()
        self._asked.clear()
        self._refreshing.clear()


def _trim(entries: dict[K, V], bound: int, now: float, expires: Callable[[V], float]) -> None:
    """Drop from the front of an insertion-ordered dict (the oldest first) what ran out at ``now`` or is over
    ``bound``; a few at a time, as each put adds one."""
    for oldest in list(itertools.islice(entries, 8)):
        if len(entries) <= bound and now < expires(entries[oldest]):
            break
        del entries[oldest]
