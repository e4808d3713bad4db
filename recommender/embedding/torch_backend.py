"""Torch backend: sentence-transformers in length-sorted batches: fp32, bf16 on CPUs built for it, fp16 on CUDA."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import EmbedderConfig
from ..errors import RecommenderError
from .base import Embedder, ModelIdentity
from .batching import encode_length_sorted, l2_normalise, length_sorted_batches
from .models import model_fingerprint, pooled_dims, resolve_model

# Instructions that make bf16 matrix products fast; without them autocast emulates bf16 and is slower than fp32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The instruction-set flags listed in a ``/proc/cpuinfo`` text."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return flags


def bf16_supported(cpuinfo: str | None = None) -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX) and torch's oneDNN can use it.

    Args:
        cpuinfo: a ``/proc/cpuinfo`` text; None reads this machine's (where there is none, torch's own check).
    """
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if not path.exists():
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        cpuinfo = path.read_text()
    return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))


def require_fp16(device: str | None) -> None:
    """Raise ``RecommenderError`` unless ``device`` is a CUDA device that torch can see."""
    import torch

    if device is None or not str(device).startswith("cuda"):
        raise RecommenderError(f"precision fp16 is for a CUDA GPU (device 'cuda'), not {device or 'cpu'!r}; on the "
                               f"CPU use fp32 or bf16")
    if not torch.cuda.is_available():
        raise RecommenderError("precision fp16 needs a CUDA GPU, and torch sees none here (torch "
                               f"{torch.__version__}, CUDA build {torch.version.cuda}); use fp32 or bf16")


def require_bf16(device: str | None, cpuinfo: str | None = None) -> None:
    """Raise ``RecommenderError`` unless bf16 autocast can run on ``device`` here."""
    if device not in (None, "cpu"):
        raise RecommenderError(f"precision bf16 is implemented for the CPU only, not device {device!r}; use fp32")
    if not bf16_supported(cpuinfo):
        raise RecommenderError(f"this CPU has none of {list(BF16_CPU_FLAGS)}: bf16 would be emulated and slower "
                               f"than fp32; configure precision fp32 (or the onnx backend)")


def token_lengths(model: Any, texts: Sequence[str]) -> list[int]:
    """Tokens of each text after the model's truncation (special tokens included)."""
    encoded = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)
    return [len(ids) for ids in encoded["input_ids"]]


def encode_torch(model: Any, texts: Sequence[str], batch_size: int, dims: int, precision: str = "fp32",
                 overlap: bool | None = None, progress: bool = False) -> np.ndarray:
    """Embed with a SentenceTransformer in length-sorted batches; (n, dims) float32 unit vectors in input order.

    Args:
        model: a loaded SentenceTransformer (for "bf16" its weights already cast to bfloat16, for "fp16" to
            float16 on a GPU; see ``prepare_model``).
        texts: the texts.
        batch_size: texts per forward pass.
        dims: vector size.
        precision: "fp32", "bf16" (CPU autocast; check ``require_bf16`` first) or "fp16" (CUDA).
        overlap: tokenise the next batch in a background thread while the current one runs, and sort by
            character length instead of tokenising everything twice. Default: on for a CUDA device, where
            tokenisation on the CPU is most of the wall time; off on the CPU, where the two compete for cores.
        progress: show a progress bar over batches (on a terminal).
    """
    import torch

    device = torch.device(model.device)
    overlap = device.type == "cuda" if overlap is None else overlap

    def autocast() -> Any:
        if precision == "bf16" and device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run_features(features: dict[str, Any]) -> np.ndarray:
        moved = {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in features.items()}
        with torch.inference_mode(), autocast():
            vectors = model(moved)["sentence_embedding"]
        # Normalise in fp32: a bf16/fp16 norm would add its own rounding to every component.
        return l2_normalise(vectors.float().cpu().numpy())

    if not overlap:
        return encode_length_sorted(texts, token_lengths(model, texts), batch_size, dims,
                                    lambda batch: run_features(model.preprocess(batch)), progress=progress)
    return _encode_prefetched(model, texts, batch_size, dims, run_features)


def _encode_prefetched(model: Any, texts: Sequence[str], batch_size: int, dims: int,
                       run_features: Any) -> np.ndarray:
    """Batches by character length; batch i+1 is tokenised on a worker thread while batch i runs."""
    from concurrent.futures import ThreadPoolExecutor

    batches = length_sorted_batches([len(t) for t in texts], batch_size)
    vectors = np.zeros((len(texts), dims), dtype=np.float32)
    if not batches:
        return vectors
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenise") as pool:
        pending = pool.submit(model.preprocess, [texts[i] for i in batches[0]])
        for n, positions in enumerate(batches):
            features = pending.result()
            if n + 1 < len(batches):
                pending = pool.submit(model.preprocess, [texts[i] for i in batches[n + 1]])
            vectors[positions] = run_features(features)
    return vectors


def prepare_model(model: Any, precision: str) -> Any:
    """Cast a loaded SentenceTransformer's weights for ``precision`` ("bf16": bfloat16, "fp16": float16)."""
    import torch

    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "fp16":
        return model.half()
    return model


# Texts per forward pass by precision. fp32 and bf16: measured on this project's 2-core AVX-512/AMX machine
# (benchmarks/embedding_backends.py: fp32 flat from 64 up; bf16 weights best at 16-32, slower at 128).
# fp16 (CUDA): not measured here (no GPU was lent); large batches to keep a GPU busy.
DEFAULT_BATCH_SIZES = {"fp32": 64, "bf16": 32, "fp16": 512}


class TorchEmbedder(Embedder):
    """A sentence-transformers model loaded offline from a package, split packages or a local directory.

    Precisions: "fp32"; "bf16" (bfloat16 weights + autocast, CPUs with AVX-512 BF16 / AMX only); "fp16" (a CUDA
    GPU: half weights, tokenisation overlapped with the GPU). The model is loaded on the first ``encode``
    (importing torch costs seconds); the identity is known before that.
    """

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        self.name, self.directory = resolve_model(self.config.model, self.config.allow_refused)
        if self.config.precision == "bf16":
            require_bf16(self.config.device)
        if self.config.precision == "fp16":
            require_fp16(self.config.device)
        self._model: Any = None
        dims = pooled_dims(self.directory) or int(self.model.get_sentence_embedding_dimension())
        self.identity = ModelIdentity(self.name, dims, model_fingerprint(self.directory),
                                      f"torch-{self.config.precision}")

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError("sentence-transformers is not available: pip install sentence-transformers") from exc
            model = SentenceTransformer(str(self.directory), device=self.config.device or "cpu",
                                        local_files_only=True)
            self._model = prepare_model(model, self.config.precision)
        return self._model

    @property
    def batch_size(self) -> int:
        """Texts per forward pass: the configured size, else the measured default of the precision."""
        return self.config.batch_size or DEFAULT_BATCH_SIZES[self.config.precision]

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        return encode_torch(self.model, texts, self.batch_size, self.identity.dims, self.config.precision,
                            progress=progress)
