"""Torch backend: sentence-transformers in length-sorted batches, fp32 or bf16 autocast on CPUs built for bf16."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .batching import encode_length_sorted, l2_normalise
from .errors import RecommenderError

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


def encode_torch(model: Any, texts: Sequence[str], batch_size: int, dims: int, bf16: bool = False,
                 progress: bool = False) -> np.ndarray:
    """Embed with a SentenceTransformer in token-length-sorted batches; (n, dims) float32 unit vectors in order.

    Args:
        model: a loaded SentenceTransformer.
        texts: the texts.
        batch_size: texts per forward pass.
        dims: vector size.
        bf16: run the forward pass under CPU bf16 autocast (check ``require_bf16`` first).
        progress: show a progress bar over batches (on a terminal).
    """
    import torch

    def run(batch: list[str]) -> np.ndarray:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            vectors = model.encode(batch, batch_size=len(batch), convert_to_tensor=True, normalize_embeddings=False,
                                   show_progress_bar=False)
        # Normalise in fp32: a bf16 norm would add its own rounding to every component.
        return l2_normalise(vectors.float().cpu().numpy())

    return encode_length_sorted(texts, token_lengths(model, texts), batch_size, dims, run, progress=progress)
