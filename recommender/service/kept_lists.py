"""Experiment arms' rendered lists, kept per request for the list cache's lifetime.

Inside an experiment each response is its own impression (a new id, counted), so the response cache cannot send
one again; what can be kept is each arm's rendered list for the request (route and parameters), so a hot
article's lists cost an A/B lookup or one team-draft merge instead of one or two rankings. Entries live
``list_cache_seconds`` (``cachetools.TTLCache``, bounded in entries) and all of them go when the served build, the
live state or the rules in force change (the ``generation``, the one the response cache keys on).
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable

from cachetools import TTLCache

from .rendering import RenderedList

Generation = Callable[[], Hashable]
Kept = tuple[RenderedList, int]  # the rendered list and the list length the request asked for


class KeptLists:
    """Rendered arm lists by (experiment, arm, request key).

    Args:
        seconds / entries: how long and how many are kept (either 0: nothing is).
        generation: what every kept list depends on; when it changes, every entry is dropped.
    """

    def __init__(self, seconds: float, entries: int, generation: Generation) -> None:
        self.generation = generation
        self._cache: TTLCache | None = TTLCache(entries, seconds) if seconds > 0 and entries > 0 else None
        self._generation: Hashable = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether anything is kept."""
        return self._cache is not None

    def get(self, key: Hashable) -> tuple[Kept | None, Hashable]:
        """The kept entry (or None) and the generation it was looked up in (pass it to ``put``)."""
        generation = self.generation()
        with self._lock:
            if self._cache is None:
                return None, generation
            if generation != self._generation:
                self._cache.clear()
                self._generation = generation
            return self._cache.get(key), generation

    def put(self, key: Hashable, kept: Kept, generation: Hashable) -> None:
        """Keep an entry computed in ``generation`` (dropped if the generation moved on meanwhile)."""
        with self._lock:
            if self._cache is not None and generation == self._generation:
                self._cache[key] = kept

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            if self._cache is not None:
                self._cache.clear()
