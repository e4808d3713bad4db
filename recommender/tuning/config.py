"""The settings of one tuning run and of its gate, with every default in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import DEFAULT_MODEL

SITE_KINDS = ("story", "section", "copy", "headline", "halves")
CLICK_KINDS = ("followed", "co_read")
KINDS = SITE_KINDS + CLICK_KINDS
# The recipe an earlier exploration measured best for topical relatedness (docs/tuning.md): same-story and
# same-section pairs, MNRL with same-group in-batch negatives masked, lr 5e-5.
DEFAULT_KINDS = ("story", "section")
GATE_METRICS = ("semeval_en_pearson", "site_pairs_recall@10", "site_section_p@10")


@dataclass(frozen=True)
class GateSettings:
    """When a tuned model may replace its base.

    Attributes:
        must_beat: metrics the tuned model must raise above the base's by more than ``min_gain``.
        min_gain: the smallest rise that counts as beating the base.
        tolerance: every other metric may fall by at most this much.
        semeval_limit: a seeded sample of this many SemEval-2022 en-en pairs (None: all 1,800 or so).
    """

    must_beat: tuple[str, ...] = ("semeval_en_pearson", "site_pairs_recall@10")
    min_gain: float = 0.0
    tolerance: float = 0.01
    semeval_limit: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.must_beat) - set(GATE_METRICS))
        if unknown:
            raise ValueError(f"unknown gate metric(s) {unknown}; choose from {list(GATE_METRICS)}")
        if self.tolerance < 0 or self.min_gain < 0:
            raise ValueError(f"gate tolerance and min_gain must be >= 0, got {self.tolerance} and {self.min_gain}")
        if self.semeval_limit is not None and self.semeval_limit < 3:
            raise ValueError(f"semeval_limit must be at least 3 pairs, got {self.semeval_limit}")


@dataclass(frozen=True)
class TuneConfig:
    """One fine-tuning of the packaged embedder on a site's own articles (and readers).

    Attributes:
        base_model: the model tuned (a packaged name, an alias or a local directory).
        kinds: which pairs to mine (``SITE_KINDS``; ``CLICK_KINDS`` are added when clicks are given).
        pairs_per_article: group pairs (story, section, copy) drawn per article and kind.
        max_pairs: training pairs kept after mining (a seeded sample, spread over the kinds); None keeps all.
        held_out_share: share of the articles (and of the click readers) held out: never trained on, used for
            early stopping and by the gate.
        hard_negatives: add each anchor's nearest base-model neighbour outside its story, copy group and section
            as a third column (the loss's hard negative). Click pairs always get a popularity-sampled negative.
        learning_rate: AdamW learning rate.
        batch_size: pairs per step (the in-batch negatives of MNRL).
        epochs: passes over the training pairs.
        max_steps: stop after this many steps (None: the epochs decide).
        train_max_tokens: word pieces per text while training (the saved model keeps the base's limit).
        eval_steps: steps between held-out losses (early stopping and the checkpoint kept).
        eval_pairs: held-out pairs in that loss (the gate measures on all of them).
        patience: evaluations without a better held-out loss before training stops.
        precision: "auto" (fp16 on a CUDA GPU, else fp32), "fp32", "bf16" or "fp16".
        device: None picks CUDA when torch sees a GPU, else the CPU.
        max_chars: characters embedded per article (as the build's ``EmbedderConfig.max_chars``).
        seed: article split, pair sampling, negatives and training order.
        gate: when the tuned model is accepted.
    """

    base_model: str = DEFAULT_MODEL
    kinds: tuple[str, ...] = DEFAULT_KINDS
    pairs_per_article: int = 1
    max_pairs: int | None = 2_000
    held_out_share: float = 0.2
    hard_negatives: bool = False
    learning_rate: float = 5e-5
    batch_size: int = 16
    epochs: float = 1.0
    max_steps: int | None = None
    train_max_tokens: int = 128
    eval_steps: int = 50
    eval_pairs: int = 256
    patience: int = 2
    precision: str = "auto"
    device: str | None = None
    max_chars: int = 1_500
    seed: int = 0
    gate: GateSettings = field(default_factory=GateSettings)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"unknown or no pair kinds {unknown or list(self.kinds)}; choose from {list(KINDS)}")
        if not 0 < self.held_out_share < 1:
            raise ValueError(f"held_out_share must be in (0, 1), got {self.held_out_share}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        for name in ("pairs_per_article", "batch_size", "train_max_tokens", "eval_steps", "eval_pairs", "patience",
                     "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise ValueError(f"max_pairs must be at least 2 (or None for all), got {self.max_pairs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1 (or None), got {self.max_steps}")
        if not (self.learning_rate > 0 and self.epochs > 0):
            raise ValueError(f"learning_rate and epochs must be positive, got {self.learning_rate}, {self.epochs}")
