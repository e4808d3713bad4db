"""CPU per list of the real service app called directly (ASGI, no sockets, no wrk): hot related lists with a new
reader id each, outside or inside a running experiment.

``service_load.py`` measures the service as a site sees it, but on a 2-core machine wrk shares the cores and
its figures move 10-20% between runs of the same code. This calls the app itself (``create_app`` with its
lifespan, so the background loops run: live sync, popularity, the impression flush) from one event loop,
requests of 1,000 hot ids with random readers, the loop given a turn after each, and reads the process CPU
(all threads) per request. It moves a few percent between runs, so two settings can be compared in one sitting.

Usage: python benchmarks/app_loop.py [--experiment none|ab|interleave] [--requests 40000] [--reps 3]
       [--due-after 0.75,0.95] [--list-cache-seconds 30] [--ids hot|uniform]

``--ids uniform`` asks for ids uniform over all 100k articles instead (the long tail: hardly a request repeats).
Each rep also reports the garbage collector's full (generation 2) collections while it ran: how many, the longest
and their total, and the objects it tracks at the end (``gc.callbacks``): what kept lists cost beyond CPU; and the
time of a full collection asked for at the end (the fastest of three ``gc.collect()``), which does not depend on
whether the run happened to trigger one.

Uses (and builds when missing) ``service_load.py``'s synthetic 100k index under benchmarks/out/service-index
(the experiment written into its store, replacing any). Prints one line per rep and saves JSON
(benchmarks/out/app_loop.json, or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import service_load  # noqa: E402 - the index and the experiment of the load test

HOT = [f"syn-{i * 97:06d}" for i in range(1000)]  # service_load.py's 1,000 hot ids at 100k
UNIFORM = [f"syn-{i:06d}" for i in range(100_000)]  # every article of the index


class FullCollections:
    """The wall time of each full (generation 2) garbage collection while it is installed."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses_ms.append(1e3 * (time.perf_counter() - self._start))

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def timed_collection() -> float:
    """Milliseconds of one full collection, asked for now."""
    started = time.perf_counter()
    gc.collect()
    return 1e3 * (time.perf_counter() - started)


async def call(app, path: str, query: bytes) -> int:
    """One GET through the app's ASGI interface; its status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
             "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765),
             "app": app, "state": {}}
    status: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def requests(app, n: int, rng: random.Random, ids: list[str]) -> None:
    """``n`` related lists of ``ids``, each for a new reader."""
    for _ in range(n):
        query = f"k=10&reader=reader{rng.randrange(10**8):08d}".encode()
        status = await call(app, f"/v1/articles/{ids[rng.randrange(len(ids))]}/related", query)
        if status != 200:
            raise RuntimeError(f"status {status}")
        await asyncio.sleep(0)  # the background loops' turn, as between a server's requests


async def measure(app, args: argparse.Namespace) -> list[dict[str, float]]:
    rng = random.Random(1)
    ids = HOT if args.ids == "hot" else UNIFORM
    reps = []
    async with app.router.lifespan_context(app):
        await requests(app, args.warmup, rng, ids)  # (hot ids) every arm list kept, every header template made
        for rep in range(args.reps):
            with FullCollections() as full:
                cpu, wall = time.process_time(), time.perf_counter()
                await requests(app, args.requests, rng, ids)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            pauses = full.pauses_ms
            collect_ms = min(timed_collection() for _ in range(3))
            reps.append({"cpu_us_per_request": round(1e6 * cpu / args.requests, 1),
                         "wall_us_per_request": round(1e6 * wall / args.requests, 1),
                         "full_collections": len(pauses), "full_collection_max_ms": round(max(pauses, default=0), 1),
                         "full_collection_total_ms": round(sum(pauses), 1), "collect_ms": round(collect_ms, 2),
                         "tracked_objects": len(gc.get_objects())})
            print(f"rep {rep}: {reps[-1]['cpu_us_per_request']} µs of CPU, {reps[-1]['wall_us_per_request']} µs "
                  f"of wall time per request; {len(pauses)} full collections, longest "
                  f"{reps[-1]['full_collection_max_ms']} ms, {reps[-1]['full_collection_total_ms']} ms in all; "
                  f"a full collection now {collect_ms:.2f} ms; "
                  f"{reps[-1]['tracked_objects']:,} tracked objects", flush=True)
    return reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=["none", "ab", "interleave"], default="ab")
    parser.add_argument("--requests", type=int, default=40_000, help="per timed rep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--due-after", default="", help="kept_lists.DUE_AFTER for this run, e.g. 0.5,0.8")
    parser.add_argument("--list-cache-seconds", type=float, default=30.0)
    parser.add_argument("--ids", choices=["hot", "uniform"], default="hot",
                        help="1,000 hot ids, or ids uniform over all 100k")
    parser.add_argument("--out", default=str(service_load.OUT / "app_loop.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = service_load.OUT / "service-index"
    service_load.build_index(root, 100_000, 3_000, REPO / ".cache" / "embeddings.sqlite")
    for stale in root.glob("*.sqlite*"):
        stale.unlink()
    if args.experiment != "none":
        service_load.write_experiment(root, args.experiment)

    from recommender.service import kept_lists
    from recommender.service.app import create_app
    from recommender.service.settings import ServiceSettings

    if args.due_after:
        kept_lists.DUE_AFTER = tuple(float(x) for x in args.due_after.split(","))  # type: ignore[assignment]
    settings = ServiceSettings(index=root / "current", reload_poll_seconds=1, warm_model=False,
                               list_cache_seconds=args.list_cache_seconds)
    reps = asyncio.run(measure(create_app(settings), args))
    result = {"experiment": args.experiment, "ids": args.ids, "requests_per_rep": args.requests, "warmup": args.warmup,
              "due_after": list(kept_lists.DUE_AFTER), "list_cache_seconds": args.list_cache_seconds, "reps": reps,
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
