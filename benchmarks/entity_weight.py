"""Entity weight of the hybrid relatedness, on the two catalogues here that carry entities.

Usage: python benchmarks/entity_weight.py [--data ../shared/data] [--weights 0 0.25 0.5 1 2] [--mind-articles N]

For each ``RelatednessConfig.entity_weight`` the related table is computed exactly as a build computes it
(``build.related_tables.related_tables``, the build's related stage, over the exact dense top-50 + the TF-IDF top-100
candidates, with ``entity_matrix`` of the catalogue's tags) and scored on its first 10 entries:
- MIND-small sample (2,000 news; tags = the Wikidata labels of title and abstract entities, as the catalogue reader
  makes them): precision@5 of the same *subcategory* (143 values), and co-reading recall@10 (585 articles);
- the demo corpus (165 articles with team-written tags): precision@5 of the same story (its ground-truth key).
Each figure is also given on the even / odd rows, so a gain can be checked on both halves. With ``--engine`` the
same two catalogues are also built for real (``recommender.build.build``) at entity_weight 0 and the default, and
scored through ``Recommender.related(k=5)`` (filters, popularity blend, copy collapse; the demo with its views, at
``DEMO_EPOCH``).

Prints a table and writes benchmarks/out/entity_weight.json (or ``--out``). A smoke run: ``--weights 0 0.5
--mind-articles 300 --cache /tmp/embeddings.sqlite --out /tmp/entity_weight.json`` (the first 300 MIND news only:
not the benchmark's figures).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recommender.build import build  # noqa: E402
from recommender.build.related_tables import related_tables  # noqa: E402
from recommender.build.toptable import TopTable  # noqa: E402
from recommender.catalogue import embedding_texts, lexical_texts, read_catalogue  # noqa: E402
from recommender.catalogue.demo import DEMO_EPOCH, demo_files  # noqa: E402
from recommender.config import BuildConfig, EmbedderConfig, RelatednessConfig  # noqa: E402
from recommender.embedding import Embedder, EmbeddingCache, embed_cached, make_embedder  # noqa: E402
from recommender.evaluation.datasets import MIND_NEWS_COLUMNS, load_mind, partners  # noqa: E402
from recommender.query import Recommender  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DENSE = 50  # dense candidates per article: the build's neighbour_count
LISTED = 10  # related entries scored per article


@dataclass(frozen=True)
class Catalogue:
    """Validated articles, their vectors and lexical texts, and the exact dense candidate table."""

    articles: pd.DataFrame
    vectors: np.ndarray
    texts: list[str]
    dense: TopTable


def catalogue(path: Path, embedder: Embedder, cache: EmbeddingCache) -> Catalogue:
    """The catalogue at ``path``, embedded through the cache, with each article's exact dense top-``DENSE`` (brute
    force: these catalogues are small)."""
    articles = read_catalogue(path).articles
    vectors, _ = embed_cached(embedder, embedding_texts(articles, EmbedderConfig().max_chars), cache)
    similarities = vectors @ vectors.T
    np.fill_diagonal(similarities, -np.inf)
    rows = np.argsort(-similarities, axis=1, kind="stable")[:, :DENSE]
    scores = np.take_along_axis(similarities, rows, axis=1)
    return Catalogue(articles, vectors, lexical_texts(articles), TopTable.from_search(rows, scores, DENSE))


def related_rows(data: Catalogue, relatedness: RelatednessConfig) -> np.ndarray:
    """The first ``LISTED`` entries of each article's related table, as the build's related stage ranks them
    (exact TF-IDF candidate search below ``exact_lexical_max_count`` articles, as a build of this size)."""
    config = BuildConfig(relatedness=relatedness, neighbour_count=DENSE)
    tables = related_tables(data.vectors, data.texts, data.dense, DENSE, config, {}, None,
                            tags=data.articles["tags"].tolist())
    return tables.related[0][:, :LISTED]


def precision(rows: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int = 5) -> float:
    """Mean share of each masked row's first ``k`` related articles that carry its label."""
    hits = [np.mean(labels[r[r >= 0][:k]] == labels[i]) for i, r in enumerate(rows) if mask[i]]
    return float(np.mean(hits))


def recall(rows: np.ndarray, ids: np.ndarray, read_with: dict[str, set[str]], mask: np.ndarray, k: int = 10) -> float:
    """Mean share of each masked co-read article's partners found in its first ``k`` related articles."""
    found = [len(set(ids[r[r >= 0][:k]]) & read_with[ids[i]]) / len(read_with[ids[i]])
             for i, r in enumerate(rows) if mask[i] and ids[i] in read_with]
    return float(np.mean(found))


def engine_precision(path: Path, labels: dict[str, str], weight: float, embedder: Embedder,
                     cache: Path, views: Path | None = None) -> tuple[float, float, float]:
    """(all, even, odd) precision@5 of ``related(k=5)`` over every article of a real build with this weight."""
    config = BuildConfig(relatedness=dataclasses.replace(RelatednessConfig(), entity_weight=weight))
    with tempfile.TemporaryDirectory() as root:
        build(path, root, config=config, views_source=views, embedder=embedder, cache_path=cache)
        engine = Recommender.load(root, embedder=embedder)
        hits = np.array([np.mean([labels[r.article_id] == labels[a] for r in engine.related(a, k=5, now=DEMO_EPOCH)])
                         for a in engine.table.ids])
    even = np.arange(len(hits)) % 2 == 0
    return float(hits.mean()), float(hits[even].mean()), float(hits[~even].mean())


def main() -> None:
    """Sweep the entity weight on MIND and the demo corpus; print and write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--cache", default=str(REPO / ".cache" / "embeddings.sqlite"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "entity_weight.json"))
    parser.add_argument("--engine", action="store_true", help="also score real builds through related()")
    parser.add_argument("--mind-articles", type=int, default=None,
                        help="only the first N MIND news (a smoke run; default all 2,000)")
    args = parser.parse_args()
    embedder, cache = make_embedder(), EmbeddingCache(args.cache)
    news_path = Path(args.data) / "mind-small-sample" / "news.tsv"
    if args.mind_articles is not None:  # a smoke run: the first N lines of news.tsv, everywhere below
        head = Path(tempfile.mkdtemp(prefix="entity-weight-")) / "news.tsv"
        head.write_text("".join(news_path.read_text().splitlines(keepends=True)[: args.mind_articles]))
        news_path = head
    mind = catalogue(news_path, embedder, cache)
    news = pd.read_csv(news_path, sep="\t", header=None, names=MIND_NEWS_COLUMNS, dtype=object,
                       keep_default_na=False, quoting=csv.QUOTE_NONE)
    subsection = news.set_index("id")["subsection"]
    mind_ids = mind.articles["id"].to_numpy(dtype=object)
    mind_labels = subsection.loc[mind_ids].to_numpy(dtype=object)
    read_with = partners(load_mind(args.data).co_reading)
    articles_path, _ = demo_files()
    demo = catalogue(articles_path, embedder, cache)
    cache.close()
    stories = {r["id"]: r["story"] for r in map(json.loads, articles_path.read_text().splitlines())}
    demo_labels = np.array([stories[i] for i in demo.articles["id"]], dtype=object)
    results = []
    for weight in args.weights:
        config = dataclasses.replace(RelatednessConfig(), entity_weight=weight)
        row: dict[str, float] = {"entity_weight": weight}
        for name, data, labels in (("mind", mind, mind_labels), ("demo", demo, demo_labels)):
            rows = related_rows(data, config)
            even = np.arange(len(rows)) % 2 == 0
            for half, mask in (("all", np.ones(len(rows), dtype=bool)), ("even", even), ("odd", ~even)):
                key = "subcategory_p5" if name == "mind" else "story_p5"
                row[f"{name}_{key}_{half}"] = round(precision(rows, labels, mask), 4)
                if name == "mind":
                    row[f"mind_coread_r10_{half}"] = round(recall(rows, mind_ids, read_with, mask), 4)
        results.append(row)
        print(f"entity_weight {weight:<5}  MIND subcategory p@5 {row['mind_subcategory_p5_all']:.4f} "
              f"({row['mind_subcategory_p5_even']:.4f} / {row['mind_subcategory_p5_odd']:.4f})  "
              f"MIND co-read r@10 {row['mind_coread_r10_all']:.4f} "
              f"({row['mind_coread_r10_even']:.4f} / {row['mind_coread_r10_odd']:.4f})  "
              f"demo story p@5 {row['demo_story_p5_all']:.4f} "
              f"({row['demo_story_p5_even']:.4f} / {row['demo_story_p5_odd']:.4f})", flush=True)
    through_engine = []
    if args.engine:
        for weight in (0.0, RelatednessConfig().entity_weight):
            mind_p5 = engine_precision(news_path, dict(zip(mind_ids, mind_labels)), weight, embedder,
                                       Path(args.cache))
            demo_p5 = engine_precision(articles_path, stories, weight, embedder, Path(args.cache),
                                       views=demo_files()[1])
            through_engine.append({"entity_weight": weight, "mind_subcategory_p5": [round(x, 4) for x in mind_p5],
                                   "demo_story_p5": [round(x, 4) for x in demo_p5]})
            print(f"through related(), entity_weight {weight:<5}  MIND subcategory p@5 {mind_p5[0]:.4f} "
                  f"({mind_p5[1]:.4f} / {mind_p5[2]:.4f})  demo story p@5 {demo_p5[0]:.4f} "
                  f"({demo_p5[1]:.4f} / {demo_p5[2]:.4f})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cores",
                               "through_engine": through_engine,
                               "mind_articles": len(mind.articles),
                               "mind_tagged_articles": int(mind.articles["tags"].map(len).gt(0).sum()),
                               "demo_tagged_articles": int(demo.articles["tags"].map(len).gt(0).sum()),
                               "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
