"""The response cache's store of kept responses, against a plain OrderedDict model of the same bounds."""

from __future__ import annotations

import gc
import random
from collections import OrderedDict

from recommender.service.kept_responses import KeptResponses

HEADERS = [((b"", b"1"), (b"content-type", b"application/json")),
           ((b"", b"2"), (b"content-type", b"application/json"), (b"x-degraded", b"views"))]


def _size(headers: tuple, body: bytes) -> int:
    return len(body) + sum(len(name) + len(value) for name, value in headers)


def test_kept_responses_match_an_ordered_dict_under_random_puts_gets_and_expiry():
    rng = random.Random(7)
    kept = KeptResponses(max_entries=40, max_bytes=3_000)
    model: OrderedDict[str, tuple[tuple, bytes, float]] = OrderedDict()
    now = 0.0
    for step in range(5_000):
        now += rng.random()
        key = f"/v1/articles/a{rng.randrange(120)}/related\x00k={rng.choice([5, 10])}"
        action = rng.random()
        if action < 0.5:
            headers, body = rng.choice(HEADERS), bytes(rng.randrange(0, 400))
            assert kept.put(key, headers, body, now)
            model.pop(key, None)
            model[key] = (headers, body, now)
            while sum(_size(h, b) for h, b, _ in model.values()) > 3_000 or len(model) > 40:
                model.popitem(last=False)
        elif action < 0.9:
            hit = kept.get(key)
            assert hit == (model[key][:2] if key in model else None), step
        else:
            kept.expire(now, 30.0)
            for name in [k for k, (_, _, at) in model.items() if now - at >= 30.0]:
                del model[name]
        assert kept.keys() == list(model) and len(kept) == len(model)
        assert kept.bytes == sum(_size(h, b) for h, b, _ in model.values())


def test_a_response_over_the_byte_bound_is_not_kept_and_clear_forgets_everything():
    kept = KeptResponses(max_entries=10, max_bytes=100)
    assert not kept.put("big", HEADERS[0], bytes(200), 0.0) and kept.get("big") is None and len(kept) == 0
    assert kept.put("small", HEADERS[0], b"{}", 0.0) and kept.get("small") == (HEADERS[0], b"{}")
    kept.clear()
    assert kept.get("small") is None and kept.bytes == 0 and kept.keys() == []


def test_kept_responses_stay_out_of_the_garbage_collectors_reach():
    """Every container that holds a key or body is one the collector does not track, so full collections skip
    them however many are kept (the interned header sets are a few tracked tuples)."""
    kept = KeptResponses(max_entries=1_000, max_bytes=10**7)
    for i in range(1_000):
        kept.put(f"/v1/articles/a{i}/related", HEADERS[i % 2], b"x" * (i + 1), float(i))
    gc.collect()
    containers = [value for value in vars(kept).values() if isinstance(value, dict) and value is not
                  kept._header_index]
    assert len(containers) == 4 and not any(gc.is_tracked(c) for c in containers)
    assert len(kept._header_sets) == 2


def test_header_sets_are_bounded_and_an_oversized_response_interns_nothing():
    """A CORS policy that reflects any Origin makes a header set per origin: past the bound everything kept goes
    and interning starts over, so memory stays bounded and new responses are still kept."""
    from recommender.service.kept_responses import MAX_HEADER_SETS

    kept = KeptResponses(max_entries=10 * MAX_HEADER_SETS, max_bytes=10**8)
    assert not kept.put("big", ((b"", b"1"), (b"x-new", b"set")), bytes(10**8), 0.0) and not kept._header_sets
    for i in range(MAX_HEADER_SETS + 5):
        origin = ((b"", b"1"), (b"access-control-allow-origin", f"https://site{i}.example".encode()))
        assert kept.put(f"key{i}", origin, b"{}", float(i))
        assert len(kept._header_sets) <= MAX_HEADER_SETS
    assert len(kept) == 5 and kept.keys() == [f"key{i}" for i in range(MAX_HEADER_SETS, MAX_HEADER_SETS + 5)]
