"""Load test of the lookup service with wrk on loopback, against a 100k-article index; plus reloads under load.

The 100k index: embedding 100,000 real articles is out of reach on this 2-core machine, so it is built from
real all-MiniLM-L6-v2 embeddings of the first ``--seed-titles`` AG News test headlines, each expanded into
copies by small random perturbations of the vector (Gaussian noise, renormalised; cosine to the seed ~0.85),
with synthetic ids, titles, sections, dates and page views. Nothing derived from the dataset's text is written
outside benchmarks/out/ (gitignored).

Usage (needs ``apt-get install -y wrk``):
    python benchmarks/service_load.py [--articles 100000] [--duration 10] [--workers 2] [--connections 32]

Writes benchmarks/out/service_load.json (or ``--out``; with the index, the server log and the wrk script, under
``--out-dir``, default benchmarks/out) and prints one line per scenario: req/s, latency percentiles, and the
workers' CPU per request (user + system CPU of the worker processes over the timed run, from ``/proc``, divided by
its requests; wrk runs on the same cores, so this moves far less from run to run than the p99). A smoke run:
``--articles 2000 --seed-titles 200 --duration 2 --warmup 1 --workers 1 --connections 4 --reload-seconds 4
--publish-every 1 --out-dir /tmp/service-load``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
DATA = Path(os.environ.get("RECOMMENDER_DATA", REPO.parent / "shared" / "data"))
TOKEN = "bench-token"
SECTIONS = ["world", "business", "politics", "sport", "science", "tech", "culture", "local"]
LUA_DONE = """
local counter = 1
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args) math.randomseed(tid * 7919 + os.time()) end
function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


def build_index(root: Path, articles: int, seed_titles: int, cache_path: Path) -> Path:
    """Publish a synthetic ``articles``-row build under ``root`` (reused when one of that size exists).

    Written with the build's own writer (``storage.writer``): the related table is the dense neighbour table (the
    build's related stage needs article texts; these articles have none), copy groups and stories are grouped
    from it by ``stories.story_table`` as the build's stories stage does, and the manifest is written last.
    """
    from recommender.build.neighbours import compute_neighbours
    from recommender.config import BuildConfig
    from recommender.embedding import EmbeddingCache, embed_cached, make_embedder
    from recommender.storage.index import FaissIndex
    from recommender.storage.manifest import read_manifest, write_manifest
    from recommender.storage.reader import read_build
    from recommender.storage.versions import IndexStore, new_build_id
    from recommender.storage.writer import make_manifest, write_build
    from recommender.stories import story_table
    from recommender.times import epoch_hours

    store = IndexStore(root)
    current = store.current()
    if current is not None and read_manifest(current, verify_files=False).count == articles:
        return current
    titles = pd.read_csv(DATA / "ag-news-test" / "test.csv")["title"].astype(str).head(seed_titles).tolist()
    embedder = make_embedder()
    cache = EmbeddingCache(cache_path)
    started = time.perf_counter()
    seeds, _ = embed_cached(embedder, titles, cache)
    cache.close()
    rng = np.random.default_rng(0)
    vectors = seeds[np.arange(articles) % len(seeds)] + rng.normal(0, 0.035, (articles, seeds.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    frame = pd.DataFrame({
        "id": [f"syn-{i:06d}" for i in range(articles)],
        # Headlines must not look like copies of each other: "Synthetic article 5 seed 5" and "... 3005 seed 5"
        # share 4 of 5 words (Jaccard 0.8), which makes them wire copies of one piece to the copy-group rule.
        "title": [f"Synthetic article {i:06d} on subject s{i % len(seeds)}" for i in range(articles)],
        "section": [SECTIONS[i % len(SECTIONS)] for i in range(articles)],
        "url": [f"https://bench.example/a/{i}" for i in range(articles)],
        "published_at": now - pd.to_timedelta(rng.uniform(0, 14 * 24, articles), unit="h"),
        "language": "en",
    })
    views = pd.DataFrame({"article_id": frame["id"].sample(50_000, replace=True, random_state=1).to_numpy(),
                          "timestamp": now - pd.to_timedelta(rng.uniform(0, 72, 50_000), unit="h"),
                          "count": rng.integers(1, 50, 50_000)})
    config = BuildConfig()
    index = FaissIndex.build(vectors, config.index)
    related = compute_neighbours(index, vectors, config.neighbour_count)
    grouped = story_table(frame["id"].tolist(), frame["title"].tolist(), related[0], related[1],
                          np.asarray(epoch_hours(frame["published_at"]), dtype=np.float64), config.ranking,
                          config.stories)
    frame = frame.assign(copy_group=grouped.copy_groups, story_id=grouped.story_ids.astype(str))
    build_id = new_build_id()
    stage = store.stage(build_id)
    names = write_build(stage, frame, vectors, index, related, views)
    manifest = make_manifest(stage, build_id, names, embedder.identity, index, int(related[0].shape[1]),
                             {"synthetic": True, "seed_titles": len(seeds)},
                             {"total": time.perf_counter() - started}, config.to_dict())
    write_manifest(stage, manifest)
    read_build(stage, verify=True)  # the reader's checks (every sha256, counts, order) before it is published
    return store.publish(stage, keep=2)


def republish(root: Path) -> str:
    """Publish the current build again under a new id (hard links + a new manifest): a new version to load.

    Staged and published through the version store like a build (``IndexStore.stage`` / ``publish``), so the
    copy is a published version (the store's log, gc of the oldest) with its own manifest and digest.
    """
    from dataclasses import replace

    from recommender.storage import layout
    from recommender.storage.manifest import read_manifest, write_manifest
    from recommender.storage.versions import IndexStore, new_build_id

    store = IndexStore(root)
    source = store.current()
    build_id = new_build_id()
    stage = store.stage(build_id)
    for path in source.iterdir():
        if path.name not in (layout.MANIFEST, layout.MANIFEST_DIGEST):
            os.link(path, stage / path.name)
    write_manifest(stage, replace(read_manifest(source, verify_files=False), build_id=build_id))
    store.publish(stage, keep=3)
    return build_id


def write_rules(root: Path, count: int, articles: int) -> dict[str, int]:
    """``count`` editorial rules in the root's rule store (replacing any), a seeded mix of every kind over random
    synthetic articles: 40% blocks (a third everywhere, the rest beside one article), 20% pins beside one
    article, 15% boosts / buries by section, 10% guardrails between synthetic tags, 15% embargoes."""
    from recommender.live.rules import RuleStore
    from recommender.query.rules import Rule

    for stale in root.glob("rules.sqlite*"):
        stale.unlink()
    rng = np.random.default_rng(7)
    made, kinds = [], {}
    pinned: set[tuple[str, int]] = set()
    for n in range(count):
        draw, a, b = rng.random(), int(rng.integers(articles)), int(rng.integers(articles))
        base = {"id": f"bench-{n}", "author": "bench", "reason": "benchmark"}
        if draw < 0.4:
            rule = {"kind": "block", "article_id": f"syn-{a:06d}", **({} if n % 3 == 0 else
                                                                      {"beside": f"syn-{b:06d}"})}
        elif draw < 0.6 and a != b and (b, n % 5 + 1) not in pinned:
            pinned.add((b, n % 5 + 1))
            rule = {"kind": "pin", "article_id": f"syn-{a:06d}", "beside": f"syn-{b:06d}", "position": n % 5 + 1}
        elif draw < 0.75:
            rule = {"kind": "boost", "section": SECTIONS[n % len(SECTIONS)], "multiply": 1.01} if n % 2 else {
                "kind": "bury", "section": SECTIONS[n % len(SECTIONS)], "multiply": 0.99}
        elif draw < 0.85:
            rule = {"kind": "guardrail", "tag": f"tag-{n}", "never_beside_tag": f"tag-{n + 1}"}
        else:
            rule = {"kind": "embargo", "article_id": f"syn-{a:06d}", "until": "2027-01-01T00:00:00Z"}
        made.append(Rule.from_dict({**base, **rule}))
        kinds[made[-1].kind] = kinds.get(made[-1].kind, 0) + 1
    store = RuleStore(root / "rules.sqlite")
    store.add_many(made)
    store.close()
    return kinds


def write_experiment(root: Path, kind: str) -> None:
    """One running experiment over every widget and every reader (``kind``: ab or interleave) in the root's
    experiment store (replacing any): control against a freshness-weighted arm of the served build."""
    from recommender.experiments.definition import Experiment
    from recommender.service.experiment_store import ExperimentStore

    for stale in root.glob("experiments.sqlite*"):
        stale.unlink()
    store = ExperimentStore(root / "experiments.sqlite")
    store.create(Experiment.from_dict({
        "name": f"bench-{kind}", "kind": kind, "widgets": ["related", "more-like-this", "popular"],
        "traffic_share": 1.0, "arms": [{"name": "control"},
                                       {"name": "fresh", "settings": {"ranking": {"weight_freshness": 0.3}}}]}),
        "bench", "benchmark")
    store.close()


def wrk(url: str, script: str, duration: float, connections: int, out: Path, threads: int = 2) -> dict:
    """One bounded wrk run (its Lua script written under ``out``); returns its RESULT line as a dict."""
    path = out / "wrk-script.lua"
    path.write_text(script + LUA_DONE)
    run = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(int(duration), 1)}s", "--timeout", "5s",
                          "-s", str(path), url], capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {run.stdout[-800:]} {run.stderr[-800:]}")
    result = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return result


def workers_cpu_seconds(server_pid: int) -> float | None:
    """User + system CPU seconds of the server's worker processes so far (Linux ``/proc``; None elsewhere): per
    request, what a scenario costs the workers, which the shared 2-core machine's scheduling moves far less
    than the p99."""
    try:
        children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
        ticks = 0
        for pid in children:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def impression_flushes(base: str) -> dict[str, float]:
    """The workers' experiment impression flushes so far, from ``/metrics`` (all workers: multiprocess mode):
    how many, their total wall seconds, how many took over 0.25 s, and the impressions pending now."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    found = {"flushes": 0.0, "flush_seconds": 0.0, "flushes_over_250ms": 0.0, "pending": 0.0}
    under = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "recommender_experiment_flush_seconds_count":
                found["flushes"] += sample.value
            elif sample.name == "recommender_experiment_flush_seconds_sum":
                found["flush_seconds"] += sample.value
            elif sample.name == "recommender_experiment_flush_seconds_bucket" and sample.labels["le"] == "0.25":
                under += sample.value
            elif sample.name == "recommender_experiment_impressions_pending":
                found["pending"] += sample.value
    found["flushes_over_250ms"] = found["flushes"] - under
    return found


def scenarios(articles: int) -> dict[str, str]:
    """wrk Lua request generators per scenario."""
    rid = f'string.format("syn-%06d", math.random(0, {articles - 1}))'
    # 1,000 hot ids spread over the catalogue: every 97th article (as measured at 100k); a smaller catalogue
    # (a smoke run) gets a stride that stays inside it.
    hot = min(1000, articles)
    stride = 97 if (hot - 1) * 97 < articles else max((articles - 1) // max(hot - 1, 1), 1)
    post = 'wrk.format("POST", "{path}", {{["Content-Type"]="application/json"{auth}}}, {body})'
    auth = f', ["Authorization"]="Bearer {TOKEN}"'
    texts = ["stocks fall as oil prices rise", "team wins the championship final", "new vaccine trial results",
             "election campaign enters final week", "tech company unveils new phone", "storm floods coastal towns"]
    lua_texts = "{" + ",".join(json.dumps(t) for t in texts) + "}"
    return {
        "healthz (trivial route, baseline)": 'request = function() return wrk.format("GET", "/healthz") end',
        "related (uniform over all ids)": f'request = function() return wrk.format("GET", "/v1/articles/" .. {rid} '
                                          f'.. "/related?k=10") end',
        "related (uniform, a reader id: in the experiment when one runs)": (
            'request = function() return wrk.format("GET", "/v1/articles/" .. '
            f'{rid} .. "/related?k=10&reader=" .. string.format("reader%08d", math.random(0, 99999999))) end'),
        "related (1,000 hot ids)": 'request = function() return wrk.format("GET", "/v1/articles/" .. '
                                   f'string.format("syn-%06d", math.random(0, {hot - 1}) * {stride}) .. '
                                   '"/related?k=10") end',
        "related (1,000 hot ids, a reader id: in the experiment when one runs)": (
            'request = function() return wrk.format("GET", "/v1/articles/" .. '
            f'string.format("syn-%06d", math.random(0, {hot - 1}) * {stride}) .. '
            '"/related?k=10&reader=" .. string.format("reader%08d", math.random(0, 99999999))) end'),
        "more-like-this (2 ids)": 'request = function() return ' + post.format(
            path="/v1/more-like-this", auth="",
            body=f'\'{{"k": 10, "ids": ["\' .. {rid} .. \'", "\' .. {rid} .. \'"]}}\'') + ' end',
        "more-like-this (text)": f'local texts = {lua_texts}\nrequest = function() return ' + post.format(
            path="/v1/more-like-this", auth="",
            body='\'{"k": 10, "text": "\' .. texts[math.random(1, #texts)] .. \' " }\'') + ' end',
        "popular": 'request = function() return wrk.format("GET", "/v1/popular?k=10") end',
        "events (batches of 10)": 'request = function() local e = {} for i = 1, 10 do e[i] = \'{"article_id": "\' '
                                  f'.. {rid} .. \'"}}\' end return ' + post.format(
            path="/v1/events", auth=auth, body='\'{"events": [\' .. table.concat(e, ",") .. \']}\'') + ' end',
    }


def main() -> None:
    """Build (or reuse) the index, start the server, run every scenario, then the reload run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--seed-titles", type=int, default=3_000)
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per wrk run.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Unmeasured wrk seconds before each run.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--reload-seconds", type=float, default=30.0)
    parser.add_argument("--publish-every", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--server-env", nargs="*", default=[], metavar="RECOMMENDER_X=VALUE",
                        help="Extra service settings, e.g. RECOMMENDER_RESPONSE_CACHE_ENTRIES=0 (cache off).")
    parser.add_argument("--out", default="service_load.json", help="JSON file name under --out-dir.")
    parser.add_argument("--out-dir", default=str(OUT), help="where the index, the server log and the JSON go "
                        "(default benchmarks/out)")
    parser.add_argument("--cache", default=str(REPO / ".cache" / "embeddings.sqlite"),
                        help="embedding cache of the seed headlines")
    parser.add_argument("--only", default="", help="Run only scenarios whose name contains this (no reload run).")
    parser.add_argument("--rules", type=int, default=0, help="Editorial rules loaded (a seeded mix of every kind).")
    parser.add_argument("--experiment", choices=["none", "ab", "interleave"], default="none",
                        help="An experiment running over every widget and reader (the reader-id scenario).")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = out / "service-index"
    started = time.perf_counter()
    source = build_index(root, args.articles, args.seed_titles, Path(args.cache))
    print(f"index: {args.articles} articles at {source} ({time.perf_counter() - started:.0f}s)", flush=True)
    env = {**os.environ, "RECOMMENDER_WRITE_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1",
           **dict(item.split("=", 1) for item in args.server_env)}
    for stale in root.glob("*.sqlite*"):
        stale.unlink()
    results_rules = write_rules(root, args.rules, args.articles) if args.rules else {}
    if args.experiment != "none":
        write_experiment(root, args.experiment)
    log = (out / "service-server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "recommender.cli", "serve", "--index", str(root / "current"),
                               "--port", str(args.port), "--workers", str(args.workers), "--log-level", "warning",
                               "--reload-poll-seconds", "1"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{args.port}"
    results: dict[str, object] = {"articles": args.articles, "workers": args.workers, "warmup_s": args.warmup,
                                  "connections": args.connections, "duration_s": args.duration, "runs": {},
                                  "rules": args.rules, "rule_kinds": results_rules, "experiment": args.experiment}
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit(f"server not ready; see {out / 'service-server.log'}")
                time.sleep(1)
        for name, script in scenarios(args.articles).items():
            if args.only not in name:
                continue
            if args.warmup:
                wrk(base, script, args.warmup, args.connections, out)  # fills the per-article caches; not reported
            cpu_before = workers_cpu_seconds(server.pid)
            flushes_before = impression_flushes(base) if args.experiment != "none" else None
            result = wrk(base, script, args.duration, args.connections, out)
            cpu_after = workers_cpu_seconds(server.pid)
            if flushes_before is not None:
                after = impression_flushes(base)
                result["impression_flushes"] = {name: (after[name] if name == "pending" else
                                                       after[name] - flushes_before[name]) for name in after}
            used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
            result["worker_cpu_us_per_request"] = None if used is None else round(1e6 * used / max(result["requests"],
                                                                                                   1), 1)
            results["runs"][name] = result
            print(f"{name:34s} {result['rps']:8.0f} req/s  p50 {result['p50_us'] / 1000:6.2f} ms  p95 "
                  f"{result['p95_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms  errors "
                  f"{result['errors']}  worker CPU {result['worker_cpu_us_per_request']} µs/request", flush=True)
            if "impression_flushes" in result:
                flushed = result["impression_flushes"]
                print(f"{'':34s} impression flushes {flushed['flushes']:.0f} (mean "
                      f"{1e3 * flushed['flush_seconds'] / max(flushed['flushes'], 1):.1f} ms, "
                      f"{flushed['flushes_over_250ms']:.0f} over 250 ms), {flushed['pending']:.0f} pending at the end",
                      flush=True)
        if args.only:
            return
        published: list[str] = []
        stop = threading.Event()

        def publisher() -> None:
            while not stop.wait(args.publish_every):
                published.append(republish(root))

        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        reload_run = wrk(base, scenarios(args.articles)["related (uniform over all ids)"], args.reload_seconds,
                         args.connections, out)
        stop.set()
        thread.join()
        time.sleep(3 * args.workers)
        served = {httpx.get(f"{base}/readyz", timeout=5).json()["build_id"] for _ in range(8 * args.workers)}
        reload_run.update(published=len(published), last_published=published[-1] if published else None,
                          served_after=sorted(served))
        results["runs"]["related during reloads"] = reload_run
        print(f"reloads: {len(published)} versions published every {args.publish_every:g}s during "
              f"{args.reload_seconds:g}s; {reload_run['requests']} requests, {reload_run['errors']} errors, "
              f"{reload_run['rps']:.0f} req/s, p99 {reload_run['p99_us'] / 1000:.2f} ms; serving {sorted(served)}")
    finally:
        server.terminate()
        server.wait(timeout=60)
        results["server_env"] = args.server_env
        (out / args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {out / args.out}")


if __name__ == "__main__":
    main()
