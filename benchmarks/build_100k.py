"""A full build of 100k real-length articles, split by stage, with the fast embedder against torch fp32.

Usage:
    python benchmarks/build_100k.py [--articles 100000] [--precision bf16] [--fp32-sample 5000]

Corpus (nothing is written to the repo): the 15,149 Reuters-21578 NORM stories with a title and a body of 300+
characters and the 2,225 BBC News articles, real text, 17,374 articles. To reach ``--articles``, variant ``v`` of
an article has its sentences rotated by ``v`` (same words, same length, a different embedded text, so no
variant is a cache hit); a one-sentence article gets " (update v)" appended instead. Ids, dates and sections
are the originals' (Reuters dates shifted by ``v`` days, so stories form as in a dated archive).

Runs, in this process and on the same corpus:
1. ``recommender.build.build`` of all ``--articles`` with ``EmbedderConfig(precision=--precision)``, empty embedding
   cache, stage by stage (read, embed, index, neighbours, stories, write, verify, gates, publish);
2. the torch fp32 embedder on a seeded ``--fp32-sample`` of the same embedded texts (a full fp32 build of 100k
   takes over an hour here), and the fast embedder on the same sample, for the speed ratio on equal texts.

Prints a summary and writes benchmarks/out/build_100k.json. ``--incremental 1`` then rebuilds that full build
(rolled back to first if an earlier incremental run was published over it) with 1% of the articles edited by a
correction line new to every run (so they are embedded, not cache hits), gates on, and writes
build_100k-incremental.json with the ratio to the full build and what the related stage reused.

``--out-dir`` puts the builds, the embedding cache and the JSON elsewhere than benchmarks/out (a smoke run:
``--articles 300 --fp32-sample 32 --out-dir /tmp/b100k``, then the same with ``--incremental 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402

from recommender.build import build  # noqa: E402
from recommender.catalogue import embedding_texts  # noqa: E402
from recommender.config import BuildConfig, EmbedderConfig  # noqa: E402
from recommender.embedding import make_embedder  # noqa: E402

OUT = Path(__file__).parent / "out"
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def base_corpus(data: Path) -> pd.DataFrame:
    """Reuters-21578 stories (body >= 300 characters) and BBC News articles: real text and length."""
    reuters = pd.read_csv(data / "reuters-21578" / "reuters21578.csv", dtype=str, keep_default_na=False)
    reuters = reuters[(reuters["text_type"] == "NORM") & (reuters["body"].str.len() >= 300) & (reuters["title"] != "")]
    bbc = pd.read_csv(data / "bbc-news" / "bbc_news.csv", dtype=str, keep_default_na=False)
    return pd.concat([
        pd.DataFrame({"id": "reuters-" + reuters["newid"], "title": reuters["title"], "body": reuters["body"],
                      "section": reuters["topics"].str.split(";").str[0],
                      "published_at": pd.to_datetime(reuters["date_iso"], utc=True, errors="coerce")}),
        pd.DataFrame({"id": "bbc-" + bbc["id"].astype(str), "title": bbc["title"], "body": bbc["text"],
                      "section": bbc["category"], "published_at": pd.NaT}),
    ], ignore_index=True)


def variant(body: str, v: int) -> str:
    """Variant ``v`` of a body: sentences rotated by ``v`` (v=0 is the original)."""
    if v == 0:
        return body
    sentences = _SENTENCE.split(body.strip())
    if len(sentences) < 2:
        return f"{body} (update {v})"
    shift = v % len(sentences) or 1
    return " ".join(sentences[shift:] + sentences[:shift])


def corpus(data: Path, count: int) -> pd.DataFrame:
    """``count`` articles: the base corpus, then its variants, in order."""
    base = base_corpus(data)
    rows = []
    for v in range(-(-count // len(base))):
        part = base.copy()
        if v:
            part["id"] = part["id"] + f"-v{v}"
            part["body"] = [variant(b, v) for b in part["body"]]
            part["published_at"] = part["published_at"] + pd.Timedelta(days=v)
        rows.append(part)
    frame = pd.concat(rows, ignore_index=True).head(count)
    frame["published_at"] = frame["published_at"].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return frame


def main() -> None:
    """Build, then the fp32-vs-fast sample; print and save JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--precision", default="bf16", help="the fast embedder's precision (torch backend)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--fp32-sample", type=int, default=5_000)
    parser.add_argument("--base", default=None, help="with --incremental: the build to rebuild from (default: the "
                        "full build of build_100k.json)")
    parser.add_argument("--incremental", type=float, default=None, metavar="PERCENT",
                        help="instead: rebuild the published 100k build with PERCENT of the articles edited "
                             "(a correction line prepended to the body), gates on, and compare with its full build")
    parser.add_argument("--out-dir", default=str(OUT), help="where the builds, the embedding cache and the JSON go "
                        "(default benchmarks/out; related_stage.py reads the cache from the same folder)")
    args = parser.parse_args()
    if args.incremental is not None:
        incremental(args)
        return
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = corpus(Path(args.data), args.articles)
    root = out / "build-100k-indexes"
    shutil.rmtree(root, ignore_errors=True)
    fast_config = EmbedderConfig(backend=args.backend, precision=args.precision)
    config = BuildConfig(embedder=fast_config)
    process = psutil.Process()
    started = time.perf_counter()
    report = build(frame, root, config=config, cache_path=out / "build-100k-cache.sqlite",
                   on_stage=lambda stage, seconds: print(f"  {stage}: {seconds:.1f} s", flush=True))
    wall = time.perf_counter() - started
    peak_rss_gib = process.memory_info().rss / 2**30
    texts = embedding_texts(frame.assign(abstract=""), config.embedder.max_chars)
    sample = [texts[i] for i in np.random.default_rng(0).choice(len(texts), min(args.fp32_sample, len(texts)),
                                                                replace=False)]
    rates = {}
    for name, embedder_config in (("torch-fp32", EmbedderConfig()), (f"{args.backend}-{args.precision}", fast_config)):
        embedder = make_embedder(embedder_config)
        embedder.encode(sample[:16])  # model load and warm-up are not per-text cost
        begun = time.perf_counter()
        embedder.encode(sample)
        rates[name] = len(sample) / (time.perf_counter() - begun)
    fp32_rate = rates["torch-fp32"]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
        "build_id": report.build_id, "articles": report.articles, "embedded": report.embedded,
        "embedder": f"{args.backend}-{args.precision}",
        "wall_seconds": round(wall, 1), "stages": {k: round(v, 2) for k, v in report.seconds.items()},
        "articles_per_second": round(report.articles / wall, 1), "peak_rss_gib_after_build": round(peak_rss_gib, 2),
        "sample_texts": len(sample), "sample_texts_per_second": {k: round(v, 1) for k, v in rates.items()},
        "fast_over_fp32_on_sample": round(rates[f"{args.backend}-{args.precision}"] / fp32_rate, 2),
        # Only distinct texts are embedded (report.embedded); the other stages are the same for either embedder.
        "fp32_full_build_estimate_seconds": round(report.embedded / fp32_rate + wall - report.seconds["embed"], 0),
    }
    result["full_build_speedup_estimate"] = round(result["fp32_full_build_estimate_seconds"] / wall, 2)
    print(json.dumps(result, indent=2))
    (out / "build_100k.json").write_text(json.dumps(result, indent=2))


def incremental(args: argparse.Namespace) -> None:
    """``recommender.build.rebuild`` of the published build with ``args.incremental`` % of its articles edited."""
    from recommender.build import rebuild
    from recommender.storage.manifest import read_manifest
    from recommender.storage.versions import IndexStore

    out = Path(args.out_dir)
    root = out / "build-100k-indexes"
    full = json.loads((out / "build_100k.json").read_text())
    # Always against the same base: the full build, or --base (an earlier incremental run may have been published
    # over it, and only the newest keep_versions builds stay).
    store = IndexStore(root)
    base = args.base or full["build_id"]
    if store.current().name != base:
        store.rollback(base)
    frame = corpus(Path(args.data), args.articles)
    edited = np.random.default_rng(1).choice(len(frame), int(len(frame) * args.incremental / 100), replace=False)
    # A new correction text every run, so the edited articles are embedded now (not found in the cache).
    note = f"Correction ({time.strftime('%H:%M:%S')}): an earlier version misstated a figure. "
    frame.loc[edited, "body"] = note + frame.loc[edited, "body"]
    config = BuildConfig(embedder=EmbedderConfig(backend=args.backend, precision=args.precision))
    started = time.perf_counter()
    report = rebuild(frame, root, config=config, cache_path=out / "build-100k-cache.sqlite",
                     on_stage=lambda stage, seconds: print(f"  {stage}: {seconds:.1f} s", flush=True))
    wall = time.perf_counter() - started
    assert report.path is not None  # published (a gate failure raises)
    result = {"base": base, "articles": report.articles, "edited": len(edited), "embedded": report.embedded,
              "reused": report.reused, "wall_seconds": round(wall, 1),
              "stages": {k: round(v, 2) for k, v in report.seconds.items()},
              "related": read_manifest(report.path, verify_files=False).source.get("related"),
              "full_build_wall_seconds": full["wall_seconds"], "speedup": round(full["wall_seconds"] / wall, 1)}
    print(json.dumps(result, indent=2))
    (out / "build_100k-incremental.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
