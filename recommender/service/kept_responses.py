"""The response cache's kept responses, held where the garbage collector never looks.

A full collection walks every container it tracks and reads every object each one holds, tracked or not: one
cache miss per key and value per pass. With the kept responses and experiment header templates in OrderedDicts
of tuples (20,000 of each per worker on long-tail pages), full collections while serving took 32-49 ms, and one
asked for took 6-24 ms over only 4k-13k tracked objects (benchmarks/RESULTS.md, "Related inside a running
experiment", ids uniform over 100k). Here an entry is spread over exact dicts of str keys and bytes, floats and
ints: CPython creates such a dict untracked and keeps it untracked while only untracked objects go in, so a
collection never visits them. The headers are interned: an entry names its header set by a small int.

Entries are kept in insertion order (which is expiry order) by serial number, so the oldest is found by its
serial instead of scanning a dict's deleted slots from the front.
"""

from __future__ import annotations

Headers = tuple[tuple[bytes, bytes], ...]
_INDEX_BITS = 16  # an entry's info: its serial << _INDEX_BITS | its header set's index
_INDEX_MASK = (1 << _INDEX_BITS) - 1
# Header sets interned at most; when a new one would pass this, every entry goes and interning starts over. A
# site's lists have a handful (route, CORS origin, degraded or not); a CORS policy that reflects any Origin lets
# clients make more.
MAX_HEADER_SETS = 1024


class KeptResponses:
    """Bodies and their header sets by str key, oldest first out, bounded in entries and bytes.

    Args:
        max_entries / max_bytes: the bounds (bytes: each body and its headers).
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clear()

    def clear(self) -> None:
        """Drop every entry (and the interned header sets)."""
        self._bodies: dict[str, bytes] = {}
        self._info: dict[str, int] = {}
        self._keys: dict[int, str] = {}  # serial -> key
        self._kept_at: dict[int, float] = {}  # serial -> when kept
        self._oldest = self._next = 0  # the serials kept lie in [_oldest, _next)
        self._header_sets: list[Headers] = []
        self._header_bytes: list[int] = []
        self._header_index: dict[Headers, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._bodies)

    def keys(self) -> list[str]:
        """The keys kept, oldest first."""
        return [self._keys[serial] for serial in sorted(self._keys)]

    def get(self, key: str) -> tuple[Headers, bytes] | None:
        """The headers and body kept under ``key``, or None."""
        body = self._bodies.get(key)
        if body is None:
            return None
        return self._header_sets[self._info[key] & _INDEX_MASK], body

    def put(self, key: str, headers: Headers, body: bytes, now: float) -> bool:
        """Keep ``body`` with ``headers`` under ``key`` (replacing what was there), dropping the oldest entries
        beyond the bounds; False (not kept) when it alone is over ``max_bytes``."""
        index = self._header_index.get(headers)
        header_bytes = (sum(len(name) + len(value) for name, value in headers) if index is None
                        else self._header_bytes[index])
        size = len(body) + header_bytes
        if size > self.max_bytes:
            return False
        if index is None:
            if len(self._header_sets) >= MAX_HEADER_SETS:
                self.clear()
            index = self._header_index[headers] = len(self._header_sets)
            self._header_sets.append(headers)
            self._header_bytes.append(header_bytes)
        if key in self._bodies:
            self._drop(self._info[key] >> _INDEX_BITS)
        serial = self._next
        self._next += 1
        self._bodies[key] = body
        self._info[key] = serial << _INDEX_BITS | index
        self._keys[serial] = key
        self._kept_at[serial] = now
        self.bytes += size
        while self._bodies and (self.bytes > self.max_bytes or len(self._bodies) > self.max_entries):
            self._drop_oldest()
        return True

    def expire(self, now: float, max_age_seconds: float) -> None:
        """Drop the entries kept ``max_age_seconds`` or longer before ``now``."""
        while self._skip_gaps() and now - self._kept_at[self._oldest] >= max_age_seconds:
            self._drop_oldest()

    def _skip_gaps(self) -> bool:
        """Move ``_oldest`` past replaced entries' serials; whether anything is kept."""
        while self._oldest < self._next and self._oldest not in self._keys:
            self._oldest += 1
        return self._oldest < self._next

    def _drop_oldest(self) -> None:
        if self._skip_gaps():
            self._drop(self._oldest)
            self._oldest += 1

    def _drop(self, serial: int) -> None:
        key = self._keys.pop(serial)
        del self._kept_at[serial]
        info = self._info.pop(key)
        self.bytes -= len(self._bodies.pop(key)) + self._header_bytes[info & _INDEX_MASK]
