"""A list response's bytes: each item serialised once, the body assembled around them.

A list is rendered item by item (``rendered``: one JSON object per item, the score components, duplicates and
reasons only with ``explain``) and the body is joined around those bytes (``body``), so an experiment can keep
each arm's rendered list and serve an A/B list or a team-draft merge of two of them per impression without
ranking or serialising again. Kept as bytes, not as result objects: the garbage collector does not walk them
(with tens of thousands of kept result objects, full collections made the p99 of interleaved lists 6x worse
in one run: 85 against 14 ms, one worker).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import orjson
from fastapi import Response

from .degraded import DEGRADED_HEADER

if TYPE_CHECKING:
    from ..query.recommender import Recommender
    from ..query.results import Recommendation
    from .experiment_impressions import Served

_SERIALS = itertools.count()


@dataclass(frozen=True)
class RenderedList:
    """A ranked list as the service sends it.

    Attributes:
        ids: the article ids, in order.
        items: each item's JSON object, in the same order.
        fallback: the reason of the first item that came from the fallback ("popular in section 'world'"), or
            None.
    """

    ids: tuple[str, ...]
    items: tuple[bytes, ...]
    fallback: str | None = None
    # What users of the list derive from it and keep as long as it lives (the experiments' prepared impressions:
    # ``experiment_impressions.ShownLists``; its body's start, by build: ``body``); not part of its value.
    derived: dict = field(default_factory=dict, compare=False, repr=False)
    # Names this list among every list the process made (never reused, unlike ``id``): what is derived from
    # several lists is kept by their serials, without holding the lists (``ShownLists._merged``).
    serial: int = field(default_factory=_SERIALS.__next__, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def picked(self, ids: Sequence[str], others: Sequence[RenderedList]) -> RenderedList:
        """The list of ``ids`` (each in this list or one of ``others``), items as rendered there."""
        by_id = {a: item for lst in (*reversed(others), self) for a, item in zip(lst.ids, lst.items)}
        fallback = next((lst.fallback for lst in (self, *others) if lst.fallback is not None), None)
        return RenderedList(tuple(ids), tuple(by_id[a] for a in ids), fallback)


def rendered(results: Sequence[Recommendation], explain: bool) -> RenderedList:
    """Serialise each result (the explanation fields only with ``explain``)."""
    items = []
    fallback = None
    for result in results:
        if result.source == "fallback" and fallback is None:
            fallback = result.reasons[0]  # "popular in section 'world'" (query.popular.fallback)
        items.append(orjson.dumps(result.to_dict(explain)))
    return RenderedList(tuple(r.article_id for r in results), tuple(items), fallback)


def ranked(method: str, explain: bool, kwargs: tuple[tuple[str, object], ...], engine: Recommender) -> RenderedList:
    """``engine.<method>(**kwargs)`` rendered: a route's list, as ``functools.partial(ranked, method, explain,
    kwargs)``, which experiments keep per kept arm list to rank it again. A partial over plain tuples, not a
    closure: each kept list's closures (a function and a cell per captured name, ~11 a list) made the garbage
    collector's full passes over 20,000 kept lists take 100-170 ms (benchmarks/RESULTS.md)."""
    return rendered(getattr(engine, method)(**dict(kwargs)), explain)


def body(build_id: str, listed: RenderedList, served: Served | None = None) -> bytes:
    """A list response's JSON body: the items as rendered; inside an experiment, its impression id, experiment
    and A/B arm (the part before them kept on the list, as every impression of it shares it)."""
    if served is None:
        return _head(build_id, listed) + b"}"
    head = listed.derived.get(build_id)
    if head is None:
        head = listed.derived[build_id] = _head(build_id, listed)
    # Impression ids are URL-safe base64 and names are slugs (``definition.NAME_PATTERN``): nothing to escape.
    arm = "null" if served.arm is None else f'"{served.arm}"'
    return head + (f',"impression_id":"{served.impression_id}","experiment":"{served.experiment}","arm":{arm}}}'
                   .encode("ascii"))


def _head(build_id: str, listed: RenderedList) -> bytes:
    return (b'{"build_id":' + orjson.dumps(build_id) + b',"items":[' + b",".join(listed.items) + b'],"fallback":'
            + orjson.dumps(listed.fallback))


def respond(build_id: str, listed: RenderedList, degraded: bool = False, served: Served | None = None) -> Response:
    """The list response (the hot path skips response-model validation; repeated GETs of the same list are
    answered by the response cache, ``microcache.py``), flagged when live views are stale."""
    headers = {DEGRADED_HEADER: "views"} if degraded else None
    return Response(body(build_id, listed, served), media_type="application/json", headers=headers)
