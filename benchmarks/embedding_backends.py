"""Texts/s of each embedder backend and batch size (titles; title + ~80-word lead), and the fidelity gate, one run.

Usage: python benchmarks/embedding_backends.py [--data ../shared/data] [--repeats 3] [--batch-sizes 16 64 128]
       [--fidelity-bbc 2225] [--fidelity-reuters 1000]
Backends and batch sizes are interleaved within each repeat (the machine is shared: compare medians of one run).
Prints a table and writes benchmarks/out/embedding_backends.json (or ``--out``). A smoke run: ``--repeats 1
--batch-sizes 16 --titles 16 --leads 8 --fidelity-bbc 100 --fidelity-reuters 100 --out /tmp/embedding_backends.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender.config import EmbedderConfig  # noqa: E402
from recommender.embedding import Embedder, EmbeddingCache, embed_cached, make_embedder  # noqa: E402
from recommender.embedding.onnx_backend import OnnxEmbedder  # noqa: E402
from recommender.evaluation.datasets import load_bbc  # noqa: E402
from recommender.evaluation.fidelity import FidelityConfig, load_slice, measure, verdicts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def backends(export_dir: Path) -> dict[str, EmbedderConfig]:
    """The four configurations compared."""
    return {"torch-fp32": EmbedderConfig(), "torch-bf16": EmbedderConfig(precision="bf16"),
            "onnx-fp32": EmbedderConfig(backend="onnx", export_dir=str(export_dir)),
            "onnx-int8": EmbedderConfig(backend="onnx", precision="int8", export_dir=str(export_dir))}


def speed_texts(data: Path, titles: int, leads: int) -> dict[str, list[str]]:
    """BBC titles, and title + the body's first 80 words (a title + abstract + lead)."""
    articles = load_bbc(data, limit=max(titles, leads), seed=1).articles
    lead = [f"{t}. {' '.join(str(b).split()[:80])}" for t, b in zip(articles["title"], articles["body"])]
    return {"titles": articles["title"].astype(str).tolist()[:titles], "title+lead": lead[:leads]}


def set_batch_size(embedder: Embedder, size: int) -> None:
    """Texts per forward pass of an embedder already loaded: the torch backend reads its config on every call, the
    ONNX backend's encoder holds its own."""
    embedder.config = dataclasses.replace(embedder.config, batch_size=size)
    if isinstance(embedder, OnnxEmbedder):
        embedder.encoder.batch_size = size


def main() -> None:
    """Speed (interleaved repeats, medians) then fidelity against torch fp32 on BBC and Reuters."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--titles", type=int, default=512)
    parser.add_argument("--leads", type=int, default=128)
    parser.add_argument("--fidelity-bbc", type=int, default=None, help="BBC articles (default: all 2,225)")
    parser.add_argument("--fidelity-reuters", type=int, default=1000)
    parser.add_argument("--cache", default=str(REPO / ".cache" / "embeddings.sqlite"))
    parser.add_argument("--export-dir", default=str(REPO / ".cache" / "onnx"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "embedding_backends.json"))
    args = parser.parse_args()
    data = Path(args.data)
    embedders = {}
    load_seconds = {}
    for name, config in backends(Path(args.export_dir)).items():
        started = time.perf_counter()
        embedders[name] = make_embedder(config)
        embedders[name].encode(["warm-up"])
        load_seconds[name] = round(time.perf_counter() - started, 2)
    texts = speed_texts(data, args.titles, args.leads)
    samples: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.repeats):
        for kind, batch in texts.items():
            for name, embedder in embedders.items():
                for size in args.batch_sizes:
                    set_batch_size(embedder, size)
                    started = time.perf_counter()
                    embedder.encode(batch)
                    samples.setdefault((kind, name, size), []).append(len(batch) / (time.perf_counter() - started))
    speed = [{"texts": kind, "backend": name, "batch_size": size, "texts_per_second": round(statistics.median(v), 1)}
             for (kind, name, size), v in samples.items()]
    for row in speed:
        print(f"{row['texts']:>10} {row['backend']:>10} batch {row['batch_size']:>4}: "
              f"{row['texts_per_second']:8.1f} texts/s")

    config = FidelityConfig()
    cache = EmbeddingCache(args.cache)
    fidelity = []
    try:
        for dataset, limit in (("bbc", args.fidelity_bbc), ("reuters", args.fidelity_reuters)):
            slice_texts, labels = load_slice(data, dataset, limit)
            reference, _ = embed_cached(embedders["torch-fp32"], slice_texts, cache)
            for name, embedder in embedders.items():
                if name == "torch-fp32":
                    continue
                vectors, _ = embed_cached(embedder, slice_texts, cache)
                result = measure(reference, vectors, labels, name, dataset, config)
                fidelity.append(result)
                print(f"fidelity {dataset} ({result.articles}) {name}: top-{config.k} overlap {result.overlap:.4f}, "
                      f"precision@{config.metric_k} {result.metric_reference:.4f} -> {result.metric_backend:.4f} "
                      f"({'pass' if result.passed(config) else 'FAIL'})")
    finally:
        cache.close()
    results = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
               "load_seconds": load_seconds, "speed": speed, "repeats": args.repeats,
               "text_counts": {k: len(v) for k, v in texts.items()},
               "fidelity": [r.to_dict(config) for r in fidelity], "verdicts": verdicts(fidelity, config),
               "gate": config.__dict__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
