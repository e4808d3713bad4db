"""One out-of-sample measurement of `recommender tune`: tune on half A, measure base vs tuned on half B + SemEval.

1. Topical: BBC News, Reuters-21578 and AG News (a seeded sample of ``--limit`` rows each; BBC whole) are split
   into halves by a hash of the article id. The model is tuned on half A of the three together (the default
   recipe: same-story + same-section pairs, section names prefixed by dataset) through ``recommender.tuning.tune``
   (its gate runs too, on SemEval en-en and half A's own held-out pairs). Then, on half B, the embedding-only
   same-label precision: BBC p@5, Reuters p@10, AG News p@10 (the k nearest other half-B articles by cosine), and
   SemEval-2022 T8 en-en Pearson. SemEval is never a training source.
2. Co-reading: the MIND-small sample's readers are split into halves by a hash of the user id; the model is
   tuned on the co-reads of half-A readers (plus MIND story/section pairs), and co-reading recall@10 is measured
   with half-B readers' co-read pairs (every article with a half-B partner; partners among the 10 nearest MIND
   articles).
3. Throughput: pairs/s of both trainings (from the trainer's wall time), and an extrapolation to 10k and 100k
   article catalogues (two pairs per article: all pairs, and the default cap of 2,000 pairs).
4. ``--bf16``: a short fp32 vs bf16 training on the same pairs (pairs/s only).

    nice .venv/bin/python benchmarks/tune.py --limit 3000 --max-pairs 800
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.catalogue import embedding_texts, validate
from recommender.config import CatalogueConfig, EmbedderConfig
from recommender.embedding.cache import EmbeddingCache, embed_cached
from recommender.embedding.factory import make_embedder
from recommender.evaluation.datasets import load_ag_news, load_bbc, load_mind, load_reuters, partners
from recommender.evaluation.gate import semeval_pearson
from recommender.tuning import TuneConfig, tune
from recommender.tuning.gate import section_precision
from recommender.tuning.mining import split_rows
from recommender.tuning.training import train

TOPICAL = {"bbc": (load_bbc, 5), "reuters": (load_reuters, 10), "ag_news": (load_ag_news, 10)}


def vectors_of(model: str, articles: pd.DataFrame, cache: Path) -> np.ndarray:
    embedder = make_embedder(EmbedderConfig(model=model, allow_refused=True))
    store = EmbeddingCache(cache)
    try:
        return embed_cached(embedder, embedding_texts(articles, 1500), store)[0]
    finally:
        store.close()


def halves(name: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    articles = validate(frame.copy(), CatalogueConfig(max_reject_ratio=1.0)).articles.reset_index(drop=True)
    articles["id"] = name + ":" + articles["id"].astype(str)
    articles["section"] = name + ":" + articles["section"].astype(str)
    held = split_rows(articles["id"].tolist(), 0.5, seed=1)
    return articles[~held].reset_index(drop=True), articles[held].reset_index(drop=True)


def coread_recall(vectors: np.ndarray, ids: list[str], pairs: dict[str, set[str]], k: int = 10) -> float:
    row = {a: n for n, a in enumerate(ids)}
    queries = [a for a in ids if pairs.get(a)]
    scores = vectors[[row[a] for a in queries]] @ vectors.T
    scores[np.arange(len(queries)), [row[a] for a in queries]] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    found = [len({ids[j] for j in top[n]} & pairs[a]) / len(pairs[a]) for n, a in enumerate(queries)]
    return float(np.mean(found))


def topical(args: argparse.Namespace, data: Path, work: Path) -> dict:
    parts = {name: halves(name, loader(data, args.bbc_limit if name == "bbc" else args.limit, 0).articles)
             for name, (loader, _) in TOPICAL.items()}
    half_a = pd.concat([a for a, _ in parts.values()], ignore_index=True)
    config = TuneConfig(max_pairs=args.max_pairs, epochs=args.epochs, seed=0, eval_steps=args.eval_steps,
                        eval_pairs=128)
    started = time.perf_counter()
    result = tune(half_a, work / "topical", config, data_dir=data, cache_path=args.cache, on_step=print)
    seconds = time.perf_counter() - started
    print(result.gate.table(), flush=True)
    half_b = {}
    for name, (_, k) in TOPICAL.items():
        b = parts[name][1]
        scores = {label: section_precision(vectors_of(model, b, args.cache), b["section"].tolist(), k)
                  for label, model in (("base", config.base_model), ("tuned", str(result.directory)))}
        half_b[f"{name}_p@{k}"] = {**scores, "delta": scores["tuned"] - scores["base"], "articles": len(b)}
        print(name, half_b[f"{name}_p@{k}"], flush=True)
    semeval = {label: semeval_pearson(make_embedder(EmbedderConfig(model=model, allow_refused=True)), data)
               for label, model in (("base", config.base_model), ("tuned", str(result.directory)))}
    half_b["semeval_en_pearson"] = {**semeval, "delta": semeval["tuned"] - semeval["base"], "pairs": 161}
    return {"half_a_articles": len(half_a), "half_b": half_b, "gate": result.gate.to_dict(),
            "train": result.identity.recipe["train"], "pairs": result.identity.pairs, "seconds": round(seconds, 1)}


def coreading(args: argparse.Namespace, data: Path, work: Path) -> dict:
    mind = load_mind(data)
    news = validate(mind.articles.copy(), CatalogueConfig(max_reject_ratio=1.0)).articles.reset_index(drop=True)
    behaviors = pd.read_csv(data / "mind-small-sample" / "behaviors.tsv", sep="\t", header=None, dtype=str,
                            names=["impression", "user_id", "time", "history", "impressions"], keep_default_na=False)
    known = set(news["id"])
    reads = []
    for user, history, shown in zip(behaviors["user_id"], behaviors["history"], behaviors["impressions"]):
        clicked = history.split() + [i[:-2] for i in shown.split() if i.endswith("-1")]
        reads += [(user, a) for a in dict.fromkeys(clicked) if a in known]
    clicks = pd.DataFrame(reads, columns=["user_id", "article_id"]).drop_duplicates()
    held = split_rows(clicks["user_id"].tolist(), 0.5, seed=1)
    train_clicks, test_clicks = clicks[~held], clicks[held]
    test_pairs: dict[str, set[str]] = {}
    for _, group in test_clicks.groupby("user_id")["article_id"]:
        items = sorted(set(group))
        for a in items:
            test_pairs.setdefault(a, set()).update(set(items) - {a})
    config = TuneConfig(kinds=("story", "section", "co_read"), max_pairs=args.mind_pairs, epochs=args.epochs,
                        eval_steps=args.eval_steps, eval_pairs=128)
    started = time.perf_counter()
    result = tune(news, work / "mind", config, clicks_source=train_clicks, data_dir=data, cache_path=args.cache,
                  on_step=print)
    seconds = time.perf_counter() - started
    print(result.gate.table(), flush=True)
    ids = news["id"].astype(str).tolist()
    recall = {label: coread_recall(vectors_of(model, news, args.cache), ids, test_pairs)
              for label, model in (("base", config.base_model), ("tuned", str(result.directory)))}
    return {"articles": len(news), "train_readers": int(train_clicks["user_id"].nunique()),
            "test_readers": int(test_clicks["user_id"].nunique()), "test_queries": len(test_pairs),
            "coread_recall@10": {**recall, "delta": recall["tuned"] - recall["base"]},
            "mind_pairs_in_dataset": len(partners(mind.co_reading)), "gate": result.gate.to_dict(),
            "train": result.identity.recipe["train"], "pairs": result.identity.pairs, "seconds": round(seconds, 1)}


def precision_speed(args: argparse.Namespace, data: Path, work: Path) -> dict:
    from recommender.embedding.models import resolve_model

    _, base = resolve_model("all-MiniLM-L6-v2")
    bbc = load_bbc(data).articles.head(400)
    texts = embedding_texts(validate(bbc.copy(), CatalogueConfig()).articles, 1500)
    pairs = pd.DataFrame({"anchor": texts[0::2], "positive": texts[1::2], "group": -1, "kind": "section"})
    speeds = {}
    for precision in ("fp32", "bf16"):
        config = TuneConfig(precision=precision, max_steps=args.speed_steps, eval_steps=10_000)
        stats = train(base, pairs, pairs.iloc[:0], config, work / f"speed-{precision}")
        speeds[precision] = {"pairs_per_second": stats.pairs_per_second, "steps": stats.steps,
                             "seconds": stats.seconds}
        print(precision, speeds[precision], flush=True)
    return speeds


def extrapolate(pairs_per_second: float, embed_per_second: float) -> dict:
    out = {}
    for n in (10_000, 100_000):
        embed_minutes = n / embed_per_second / 60
        out[str(n)] = {"all_pairs_minutes": round(2 * n / pairs_per_second / 60 + embed_minutes, 1),
                       "capped_2000_pairs_minutes": round(2000 / pairs_per_second / 60 + embed_minutes, 1),
                       "base_embedding_minutes": round(embed_minutes, 1)}
    return out


def embed_speed(data: Path) -> float:
    texts = embedding_texts(validate(load_reuters(data, 256, 5).articles.copy(), CatalogueConfig()).articles, 1500)
    embedder = make_embedder()
    embedder.encode(texts[:8])
    started = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=3000, help="Reuters / AG News rows (BBC is read whole)")
    parser.add_argument("--bbc-limit", type=int, default=None, help="BBC rows (default all 2,225)")
    parser.add_argument("--max-pairs", type=int, default=800, help="topical training pairs")
    parser.add_argument("--mind-pairs", type=int, default=400, help="MIND training pairs")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--eval-steps", type=int, default=20, help="steps between held-out losses")
    parser.add_argument("--skip", action="append", default=[], help="topical, mind (repeatable)")
    parser.add_argument("--bf16", action="store_true", help="also time fp32 vs bf16 training")
    parser.add_argument("--speed-steps", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings.sqlite"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/tune.json"))
    args = parser.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    data = Path(os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    started = time.perf_counter()
    out: dict = {"date": datetime.now(UTC).strftime("%Y-%m-%d"),
                 "machine": f"{platform.machine()} {os.cpu_count()} cpus, shared", "command":
                 f"nice benchmarks/tune.py --limit {args.limit} --max-pairs {args.max_pairs} --mind-pairs "
                 f"{args.mind_pairs} --epochs {args.epochs} --eval-steps {args.eval_steps}"
                 f"{' --bf16' if args.bf16 else ''}"}
    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        work = Path(tmp)
        for phase, run in (("topical", topical), ("mind", coreading), ("precision_speed", precision_speed)):
            if phase in args.skip or (phase == "precision_speed" and not args.bf16):
                continue
            out[phase] = run(args, data, work)
            save(args.out, out)  # each phase as it ends: a long run killed later keeps what it measured
    out["embed_texts_per_second"] = round(embed_speed(data), 2)
    speeds = [out[p]["train"]["pairs_per_second"] for p in ("topical", "mind") if p in out]
    if speeds:
        out["extrapolated"] = extrapolate(min(speeds), out["embed_texts_per_second"])
    out["seconds"] = round(time.perf_counter() - started, 1)
    save(args.out, out)
    print(json.dumps(out, indent=2, default=str))


def save(path: Path, out: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
