"""The two packaged English models side by side: SemEval-2022 T8 en-en, BBC related lists, speed, in one run.

Usage: python benchmarks/english_models.py [--data ../shared/data] [--models minilm mpnet [mpnet-bf16]] [--bbc 2225]
       [--speed-texts 64] [--repeats 3]

For each model (all-MiniLM-L6-v2, the default; all-mpnet-base-v2, the option; ``mpnet-bf16``, the option with
``precision = "bf16"``, CPUs with AVX-512 BF16 or AMX only):
- SemEval en-en: ``evaluation.semeval_pearson`` (the gate metric: texts embedded exactly as a build does);
- BBC News: a real build (``pipeline.build``, hybrid relatedness on) of the first ``--bbc`` articles, then
  ``related(k=5)`` for every article: precision@5 of the same section, with the same build's lists with fusion off
  (embeddings alone) beside it;
- speed: texts/s and texts per CPU-second on ``--speed-texts`` BBC title + lead texts, models interleaved within
  each repeat (medians), after a warm-up.
Vectors go through the embedding cache (``--cache``), so a rerun only re-times. Prints a table and writes
benchmarks/out/english_models.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from recommender.build import build  # noqa: E402
from recommender.config import BuildConfig, CatalogueConfig, EmbedderConfig  # noqa: E402
from recommender.embedding import Embedder, make_embedder  # noqa: E402
from recommender.evaluation import semeval_pearson  # noqa: E402
from recommender.evaluation.datasets import load_bbc  # noqa: E402
from recommender.query import Recommender  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = {"minilm": EmbedderConfig(model="all-MiniLM-L6-v2"), "mpnet": EmbedderConfig(model="all-mpnet-base-v2"),
          "mpnet-bf16": EmbedderConfig(model="all-mpnet-base-v2", precision="bf16")}


def section_precision(engine: Recommender, k: int = 5) -> float:
    """Mean share of each article's ``k`` related articles in its own section."""
    sections = engine.table.sections
    return float(np.mean([np.mean([r.section == sections[row] for r in engine.related(article_id, k=k)])
                          for row, article_id in enumerate(engine.table.ids)]))


def bbc_precision(data: Path, embedder: Embedder, config: BuildConfig, limit: int,
                  cache: Path) -> tuple[float, float, float]:
    """(hybrid p@5, embeddings-alone p@5, build seconds) of a BBC build with this embedder."""
    articles = load_bbc(data, limit=limit if limit < 2225 else None).articles
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        build(articles, root, config=config, embedder=embedder, cache_path=cache)
        seconds = time.perf_counter() - started
        engine = Recommender.load(root, embedder=embedder)
        dense = Recommender.load(engine.directory, verify=False, embedder=embedder, config=dataclasses.replace(
            engine.config, relatedness=dataclasses.replace(engine.config.relatedness, enabled=False)))
        return section_precision(engine), section_precision(dense), seconds


def main() -> None:
    """Score and time each model; print and write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--models", nargs="+", default=["minilm", "mpnet"], choices=list(MODELS))
    parser.add_argument("--bbc", type=int, default=2225, help="BBC articles built (2,225 = all)")
    parser.add_argument("--speed-texts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default=str(REPO / ".cache" / "embeddings.sqlite"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "english_models.json"))
    args = parser.parse_args()
    data = Path(args.data)
    embedders = {name: make_embedder(MODELS[name]) for name in args.models}
    bbc = load_bbc(data, limit=args.speed_texts, seed=1).articles
    texts = [f"{t}. {' '.join(str(b).split()[:80])}" for t, b in zip(bbc["title"], bbc["body"])]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in embedders}
    for embedder in embedders.values():
        embedder.encode(texts[:4])
    for _ in range(args.repeats):
        for name, embedder in embedders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            embedder.encode(texts)
            samples[name].append((len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)))
    results = {}
    for name, embedder in embedders.items():
        config = BuildConfig(catalogue=CatalogueConfig(), embedder=embedder.config)
        started = time.perf_counter()
        semeval = semeval_pearson(embedder, data, cache_path=args.cache)
        semeval_seconds = time.perf_counter() - started
        hybrid, dense, seconds = bbc_precision(data, embedder, config, args.bbc, Path(args.cache))
        results[name] = {"model": embedder.identity.name, "backend": embedder.identity.backend,
                         "dims": embedder.identity.dims,
                         "semeval_en_en_pearson": round(semeval, 4), "semeval_seconds": round(semeval_seconds, 1),
                         "bbc_articles": args.bbc, "bbc_related_p5_hybrid": round(hybrid, 4),
                         "bbc_related_p5_embeddings_alone": round(dense, 4), "bbc_build_seconds": round(seconds, 1),
                         "texts_per_second": round(statistics.median(s[0] for s in samples[name]), 2),
                         "texts_per_cpu_second": round(statistics.median(s[1] for s in samples[name]), 2)}
        print(json.dumps({name: results[name]}), flush=True)
    print(f"\n{'model':<11}{'SemEval en-en':>15}{'BBC p@5 hybrid':>16}{'alone':>8}{'texts/s':>9}{'per CPU-s':>11}")
    for name, row in results.items():
        print(f"{name:<11}{row['semeval_en_en_pearson']:>15.4f}{row['bbc_related_p5_hybrid']:>16.4f}"
              f"{row['bbc_related_p5_embeddings_alone']:>8.4f}{row['texts_per_second']:>9.2f}"
              f"{row['texts_per_cpu_second']:>11.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cores",
                               "speed_texts": len(texts), "repeats": args.repeats, "models": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
