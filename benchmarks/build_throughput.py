"""Full build time and articles/second for the demo corpus and BBC News, from an empty embedding cache.

Usage: python benchmarks/build_throughput.py [--data ../shared/data] [--corpora demo bbc-news] [--out FILE]
Prints one line per corpus and writes benchmarks/out/build_throughput.json (or ``--out``). A smoke run:
``--corpora demo --out /tmp/build_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender.build import build  # noqa: E402
from recommender.catalogue.demo import demo_files  # noqa: E402
from recommender.config import BuildConfig, CatalogueConfig  # noqa: E402
from recommender.embedding import make_embedder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Build each corpus twice: from an empty cache (full) and again unchanged (all cached)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--corpora", nargs="+", default=["demo", "bbc-news"], choices=["demo", "bbc-news"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "build_throughput.json"))
    args = parser.parse_args()
    articles, views = demo_files()
    corpora = {
        "demo": (articles, views, BuildConfig()),
        "bbc-news": (Path(args.data) / "bbc-news" / "bbc_news.csv", None,
                     BuildConfig(catalogue=CatalogueConfig(column_map={"category": "section", "text": "body"}))),
    }
    embedder = make_embedder()
    embedder.encode(["warm-up"])  # model load is start-up cost, not per-article cost
    results = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
               "corpora": {}}
    for name in args.corpora:
        source, views_source, config = corpora[name]
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            full = build(source, root, views_source=views_source, config=config, embedder=embedder)
            full_seconds = time.perf_counter() - started
            started = time.perf_counter()
            again = build(source, root, views_source=views_source, config=config, embedder=embedder)
            cached_seconds = time.perf_counter() - started
        row = {"articles": full.articles, "full_seconds": round(full_seconds, 2),
               "articles_per_second": round(full.articles / full_seconds, 1),
               "embed_texts_per_second": round(full.embedded / full.seconds["embed"], 1),
               "stages": {k: round(v, 2) for k, v in full.seconds.items()},
               "unchanged_rebuild_seconds": round(cached_seconds, 2), "unchanged_embedded": again.embedded}
        results["corpora"][name] = row
        print(f"{name}: {row['articles']} articles, full build {row['full_seconds']}s "
              f"({row['articles_per_second']} articles/s; embedding {row['embed_texts_per_second']} texts/s), "
              f"unchanged rebuild {row['unchanged_rebuild_seconds']}s ({again.embedded} embedded)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
