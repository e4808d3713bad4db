"""Fine-tuning with sentence-transformers' trainer: MNRL over mined pairs, early stopping on held-out pairs.

The loss is the library's ``MultipleNegativesRankingLoss`` with one change: an in-batch candidate of the same
group as the anchor (same section, else same story) is masked rather than counted as a negative. With five
sections and 16 pairs a batch, unmasked MNRL would push apart most of what the section pairs pull together.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import TuneConfig

log = logging.getLogger("recommender.tuning")


@dataclass(frozen=True)
class TrainStats:
    """What a training run did.

    Attributes:
        device: where it ran; precision: "fp32", "bf16" or "fp16".
        steps: optimiser steps; pairs_trained: pairs seen (steps x batch, repeats counted).
        seconds: wall time of ``trainer.train``; pairs_per_second: pairs_trained / seconds.
        best_eval_loss: the held-out loss of the checkpoint kept (None without held-out pairs).
    """

    device: str
    precision: str
    steps: int
    pairs_trained: int
    seconds: float
    pairs_per_second: float
    best_eval_loss: float | None


def choose_device(config: TuneConfig) -> tuple[str, str]:
    """(device, precision): CUDA when torch sees a GPU (fp16 under "auto"), else the CPU (fp32 under "auto":
    bf16 trained faster in short timing runs on this project's AVX-512 BF16 CPU, benchmarks/tune.py --bf16, but
    what it does to the tuned model's quality was never measured)."""
    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = config.precision
    if precision == "auto":
        precision = "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError(f"precision fp16 needs a CUDA device, not {device!r}; use fp32 or bf16")
    if precision == "bf16" and device == "cpu":
        from ..embedding.torch_backend import require_bf16

        require_bf16("cpu")
    return device, precision


def masked_loss(model: Any) -> Any:
    """The library's MNRL with same-group in-batch candidates masked (the dataset's ``label`` is the group)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import cos_sim

    class GroupMaskedMNRL(MultipleNegativesRankingLoss):
        """MNRL whose ``labels`` are group ids: a candidate of the anchor's group (other than its own positive
        and negative) is no negative. Groups < 0 mask nothing."""

        def __init__(self, model: Any) -> None:
            super().__init__(model, similarity_fct=self._masked)
            self._groups: torch.Tensor | None = None

        def forward(self, sentence_features: Any, labels: torch.Tensor) -> torch.Tensor:
            self._groups = labels
            try:
                return super().forward(sentence_features, labels)
            finally:
                self._groups = None

        def _masked(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            scores = cos_sim(a, b)
            groups = self._groups
            n = len(a)
            if groups is None or len(groups) != n or scores.shape[1] % n:
                return scores
            groups = groups.to(scores.device).long()
            columns = groups.repeat(scores.shape[1] // n)  # candidates: positives, then each negative column
            own = torch.arange(scores.shape[1], device=scores.device)[None, :] % n == torch.arange(
                n, device=scores.device)[:, None]
            same = (groups[:, None] == columns[None, :]) & (groups[:, None] >= 0) & ~own
            return scores.masked_fill(same, float("-inf"))

    return GroupMaskedMNRL(model)


def as_dataset(pairs: pd.DataFrame) -> Any:
    """The pairs as a ``datasets.Dataset`` of anchor, positive[, negative], label (the group)."""
    from datasets import Dataset

    columns = ["anchor", "positive"] + (["negative"] if "negative" in pairs else [])
    data = {c: pairs[c].astype(str).tolist() for c in columns}
    data["label"] = pairs["group"].astype(int).tolist()
    return Dataset.from_dict(data)


def train(base_directory: Path, train_pairs: pd.DataFrame, eval_pairs: pd.DataFrame, config: TuneConfig,
          out_dir: Path) -> TrainStats:
    """Fine-tune the model at ``base_directory`` on ``train_pairs`` and save the best checkpoint to ``out_dir``.

    Args:
        base_directory: a sentence-transformers model folder.
        train_pairs / eval_pairs: ``mining.PAIR_COLUMNS`` frames (plus ``negative``); the held-out loss on
            ``eval_pairs`` picks the checkpoint and stops training early.
        config: the run's settings.
        out_dir: where the tuned SentenceTransformer is saved.
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
        from transformers import EarlyStoppingCallback
    except ImportError as exc:
        raise ImportError(f"tuning needs the trainer's dependencies ({exc}): pip install 'recommender[tune]'") from exc

    device, precision = choose_device(config)
    model = SentenceTransformer(str(base_directory), device=device, local_files_only=True)
    serving_tokens = int(model.max_seq_length or config.train_max_tokens)
    model.max_seq_length = min(serving_tokens, config.train_max_tokens)
    has_eval = len(eval_pairs) >= 2
    total_steps = config.max_steps or math.ceil(math.ceil(len(train_pairs) / config.batch_size) * config.epochs)
    # A tenth of the steps warm up, rounded down: a run of a few steps would otherwise start (and end) at lr 0.
    warmup_steps = int(0.1 * total_steps)
    with tempfile.TemporaryDirectory(prefix="recommender-tune-") as checkpoints:
        args = SentenceTransformerTrainingArguments(
            output_dir=checkpoints, num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
            per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
            learning_rate=config.learning_rate, warmup_steps=warmup_steps, seed=config.seed, data_seed=config.seed,
            bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device == "cpu",
            eval_strategy="steps" if has_eval else "no", eval_steps=config.eval_steps,
            save_strategy="steps" if has_eval else "no", save_steps=config.eval_steps, save_total_limit=2,
            load_best_model_at_end=has_eval, metric_for_best_model="eval_loss", greater_is_better=False,
            logging_steps=max(1, config.eval_steps // 2), report_to="none", dataloader_num_workers=0,
            disable_tqdm=True)
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=as_dataset(train_pairs),
            eval_dataset=as_dataset(eval_pairs) if has_eval else None, loss=masked_loss(model),
            callbacks=[EarlyStoppingCallback(early_stopping_patience=config.patience)] if has_eval else [])
        started = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - started
        best = trainer.state.best_metric
    model.max_seq_length = serving_tokens  # serve with the base's limit: training was cut short for speed only
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    steps = int(output.global_step)
    trained = steps * config.batch_size
    log.info("trained %d steps (%d pairs) in %.1fs on %s/%s", steps, trained, seconds, device, precision)
    return TrainStats(device, precision, steps, trained, round(seconds, 2), round(trained / max(seconds, 1e-9), 3),
                      float(best) if best is not None else None)
