"""``tune``: catalogue (+ clicks) -> mined pairs -> fine-tuned model directory -> gate verdict.

1. read and validate the catalogue as a build does; embed it with the base model (through the embedding cache);
   group it into copy groups and stories with the build's rules (``stories.story_table``);
2. split the articles (and the click readers) into training and held-out sides; mine pairs inside each side
   (``mining``, ``clicks``); add hard negatives from the base model's neighbours where configured;
3. train (``training.train``): the held-out pairs' loss picks the checkpoint and stops early;
4. save the model with its identity (``embedding.tuned``), then measure base and tuned on SemEval and the
   held-out side (``gate``) and write the verdict. Only an accepted directory is used by a build.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import stories
from ..catalogue import embedding_texts, read_catalogue
from ..config import EmbedderConfig, RankingConfig, StoryConfig
from ..embedding.base import Embedder
from ..embedding.cache import EmbeddingCache, embed_cached
from ..embedding.factory import make_embedder
from ..embedding.models import model_fingerprint, resolve_model
from ..embedding.tuned import TunedIdentity
from ..errors import RecommenderError
from ..times import epoch_hours
from . import clicks as click_pairs
from .config import CLICK_KINDS, TuneConfig
from .gate import GateResult, judge, measure
from .mining import PAIR_COLUMNS, cap_pairs, mine_site_pairs, pairs_digest, split_rows
from .neighbours import hard_negatives, nearest
from .training import TrainStats, train

log = logging.getLogger("recommender.tuning")
NEIGHBOURS = 20


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` made: the model directory, its identity, the training run and the gate."""

    directory: Path
    identity: TunedIdentity
    stats: TrainStats
    gate: GateResult
    held_out_pairs: int


@dataclass
class _Site:
    articles: pd.DataFrame
    texts: list[str]
    vectors: np.ndarray
    story_ids: np.ndarray
    copy_groups: np.ndarray
    held_out: np.ndarray
    neighbour_rows: np.ndarray


def _read_site(source: str | Path | pd.DataFrame, base: Embedder, config: TuneConfig,
               cache_path: Path | None, progress: bool) -> _Site:
    articles = read_catalogue(source).articles.reset_index(drop=True)
    if len(articles) < 4:
        raise RecommenderError(f"tuning needs at least 4 valid articles, the catalogue has {len(articles)}")
    texts = embedding_texts(articles, config.max_chars)
    cache = EmbeddingCache(cache_path) if cache_path is not None else None
    try:
        vectors, _ = embed_cached(base, texts, cache, progress=progress)
    finally:
        if cache is not None:
            cache.close()
    rows, cosines = nearest(vectors, NEIGHBOURS)
    hours = np.asarray(epoch_hours(articles["published_at"]), dtype=np.float64)
    table = stories.story_table(articles["id"].astype(str).tolist(), articles["title"].astype(str).tolist(), rows,
                                cosines, hours, RankingConfig(), StoryConfig())
    held_out = split_rows(articles["id"].astype(str).tolist(), config.held_out_share, config.seed)
    return _Site(articles, texts, vectors, table.story_ids, table.copy_groups, held_out, rows)


def _mine(site: _Site, clicks: pd.DataFrame | None, config: TuneConfig, held: bool,
          rng: np.random.Generator) -> pd.DataFrame:
    """The pairs of one side of the split (held-out when ``held``), negatives included where configured."""
    rows = np.flatnonzero(site.held_out == held)
    site_kinds = [k for k in config.kinds if k not in CLICK_KINDS]
    pairs = mine_site_pairs(site.articles, site.texts, site.story_ids, site.copy_groups, rows, site_kinds,
                            config.pairs_per_article, config.max_chars, rng)
    if config.hard_negatives and len(pairs):
        sections = (site.articles["section"].fillna("").astype(str).to_numpy(dtype=object)
                    if "section" in site.articles else np.full(len(site.articles), "", dtype=object))
        negatives = hard_negatives(pairs["anchor_row"].to_numpy(), pairs["positive_row"].to_numpy(),
                                   site.neighbour_rows, [site.story_ids, site.copy_groups.astype(object), sections],
                                   site.held_out == held)
        pairs = pairs[negatives >= 0].assign(negative=[site.texts[r] for r in negatives[negatives >= 0]])
    if clicks is not None and len(clicks):
        side = clicks[click_pairs.split_readers(clicks, config.held_out_share, config.seed) == held]
        row_of = {a: int(r) for r, a in enumerate(site.articles["id"].astype(str))}
        found, linked = click_pairs.click_pairs(side, row_of, config.pairs_per_article * 4, rng)
        found = [f for f in found if f[2] in config.kinds or not set(config.kinds) & set(CLICK_KINDS)]
        if found:
            per_row = np.zeros(len(site.articles))
            for article_id, count in zip(side["article_id"], side["count"]):
                if article_id in row_of:
                    per_row[row_of[article_id]] += count
            anchors = [a for a, _, _ in found]
            drawn = click_pairs.popularity_negatives(anchors, per_row, linked, rng)
            frame = pd.DataFrame({"anchor": [site.texts[a] for a in anchors],
                                  "positive": [site.texts[b] for _, b, _ in found],
                                  "kind": [k for _, _, k in found], "group": -1, "anchor_row": anchors,
                                  "positive_row": [b for _, b, _ in found],
                                  "negative": [site.texts[n] for n in drawn]})
            if "negative" not in pairs:
                # MNRL takes one column layout per dataset: site pairs borrow a popularity-sampled negative too.
                site_negatives = click_pairs.popularity_negatives(pairs["anchor_row"].tolist(), per_row, {}, rng)
                pairs = pairs.assign(negative=[site.texts[n] for n in site_negatives])
            pairs = pd.concat([pairs, frame], ignore_index=True)
    return pairs.reindex(columns=PAIR_COLUMNS + (["negative"] if "negative" in pairs else []))


def tune(source: str | Path | pd.DataFrame, out_dir: str | Path, config: TuneConfig | None = None,
         clicks_source: str | Path | pd.DataFrame | None = None, data_dir: str | Path | None = None,
         cache_path: str | Path | None = None, progress: bool = False,
         on_step: Callable[[str], None] | None = None) -> TuneResult:
    """Fine-tune the base model on a catalogue (and its clicks) into ``out_dir`` and gate it (module doc).

    Args:
        source: the catalogue (as ``recommender build`` reads it).
        out_dir: the model directory to create (must not exist or be empty).
        config: the recipe and the gate.
        clicks_source: click events (``clicks.read_clicks``): adds followed / co-read pairs.
        data_dir: the shared datasets folder with SemEval-2022 T8 (None: SemEval is not measured, so a gate
            that must beat the base on it refuses).
        cache_path: embedding cache for the base model's vectors.
        progress: progress bars; on_step: called with a line as each step ends.

    Returns:
        The result; ``result.gate.accepted`` says whether a build may use the model.
    """
    config = config or TuneConfig()
    say = on_step or (lambda line: log.info("%s", line))
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise RecommenderError(f"{out} exists and is not empty; choose a new model directory (a tuned model is "
                               f"never overwritten in place)")
    base_name, base_directory = resolve_model(config.base_model)
    base = make_embedder(EmbedderConfig(model=config.base_model, max_chars=config.max_chars))
    site = _read_site(source, base, config, Path(cache_path) if cache_path else None, progress)
    clicks = click_pairs.read_clicks(clicks_source) if clicks_source is not None else None
    rng = np.random.default_rng(config.seed)
    train_pairs = cap_pairs(_mine(site, clicks, config, False, rng), config.max_pairs, rng)
    held_pairs = cap_pairs(_mine(site, clicks, config, True, rng), max(config.max_pairs or 0, 500), rng)
    if len(train_pairs) < 2:
        raise RecommenderError(f"only {len(train_pairs)} training pair(s) could be mined from {len(site.articles)} "
                               f"articles with kinds {list(config.kinds)}; add kinds (e.g. headline, halves) or "
                               f"articles")
    say(f"mined {len(train_pairs)} training and {len(held_pairs)} held-out pairs "
        f"({train_pairs['kind'].value_counts().to_dict()})")
    stats = train(base_directory, train_pairs, held_pairs.iloc[: config.eval_pairs], config, out)
    say(f"trained {stats.steps} steps, {stats.pairs_trained} pairs in {stats.seconds:.0f}s "
        f"({stats.pairs_per_second:.2f} pairs/s, {stats.device}/{stats.precision})")
    digest = pairs_digest(train_pairs)
    identity = TunedIdentity(
        name=f"tuned/{base_name.rsplit('/', 1)[-1]}/{digest[:12]}", base_model=base_name,
        base_fingerprint=model_fingerprint(base_directory), training_digest=digest,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        pairs={str(k): int(v) for k, v in train_pairs["kind"].value_counts().items()},
        recipe={**{k: v for k, v in asdict(config).items() if k != "gate"}, "kinds": list(config.kinds),
                "train": asdict(stats)})
    identity.save(out)
    # Until gate.json is written the directory is "never gated", which a build refuses like "refused".
    tuned = make_embedder(EmbedderConfig(model=str(out), max_chars=config.max_chars, allow_refused=True))
    held_articles = site.articles[site.held_out]
    held_texts = [t for t, h in zip(site.texts, site.held_out) if h]
    data = Path(data_dir) if data_dir is not None else None
    base_scores = measure(base, held_pairs, held_articles, held_texts, data, config.gate, config.max_chars)
    tuned_scores = measure(tuned, held_pairs, held_articles, held_texts, data, config.gate, config.max_chars)
    gate = judge(base_scores, tuned_scores, config.gate)
    gate.save(out)
    return TuneResult(out, identity, stats, gate, len(held_pairs))
