"""ONNX Runtime backend: the model exported locally (once, cached), optionally int8-quantised, pooled like the model."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import EmbedderConfig
from ..errors import RecommenderError
from .base import Embedder, ModelIdentity
from .batching import encode_length_sorted, l2_normalise
from .models import model_fingerprint, pooled_dims, resolve_model

PRECISIONS = ("fp32", "int8")
# Texts per session run (benchmarks/embedding_backends.py on this project's 2-core machine: fp32 within noise of
# its best at 64; int8 best at 64 on titles and at 16 on title + lead, so 64 for both).
DEFAULT_BATCH_SIZES = {"fp32": 64, "int8": 64}


def exported_model(directory: Path, model_fingerprint: str, precision: str, export_dir: Path) -> Path:
    """The cached ONNX file of the model in ``directory``, exported (and quantised) first if it is missing.

    Files live under ``export_dir/<model fingerprint>/`` so another model, or a changed copy, never reuses them.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"ONNX precision must be one of {PRECISIONS}, got {precision!r}")
    folder = Path(export_dir) / model_fingerprint[:32]
    fp32 = folder / "model-fp32.onnx"
    if not fp32.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _export(directory, fp32)
    if precision == "fp32":
        return fp32
    int8 = folder / "model-int8-per-channel.onnx"
    if not int8.exists():
        _quantise(fp32, int8)
    return int8


def _export(directory: Path, target: Path) -> None:
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ImportError("exporting to ONNX needs torch and transformers (sentence-transformers brings both)") from exc
    try:
        import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it
    except ImportError as exc:
        raise ImportError('exporting to ONNX needs onnxscript: install the "onnx" extra') from exc

    class _Hidden(torch.nn.Module):
        # Keyword arguments: transformers' forward() takes other parameters positionally.
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = AutoModel.from_pretrained(str(directory), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    sample = tokenizer(["an example headline", "a second, somewhat longer example sentence"], padding=True,
                       return_tensors="pt", return_token_type_ids=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    # The TorchScript exporter (dynamo=False) bakes the sample's padding into transformers' masks: wrong vectors.
    torch.onnx.export(_Hidden(model), tuple(sample[n] for n in names), str(partial), input_names=names,
                      output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=18, dynamo=True,
                      external_data=False, verbose=False)
    _strip_provenance(partial)
    os.replace(partial, target)


def _strip_provenance(path: Path) -> None:
    """Drop what the exporter records about where it ran: per-node stack traces (source paths and line numbers)
    and doc strings. Without this the file, and so the model fingerprint, changed with the install path of this
    package: a build made on one machine was refused by the ONNX backend of another."""
    import onnx

    model = onnx.load(str(path))
    graphs = [model.graph, *(f for f in model.functions)]
    for graph in graphs:
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
    model.graph.doc_string = ""
    model.doc_string = ""
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        value.doc_string = ""
    onnx.save(model, str(path))


def _quantise(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ImportError('int8 quantisation needs onnxruntime and onnx: install the "onnx" extra') from exc
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    # Per-channel weight scales: one scale per tensor cost this model's vectors ~0.95 mean cosine to fp32 (measured
    # on 64 BBC texts), per channel ~0.993.
    quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True)
    os.replace(partial, target)


def pooling_mode(directory: Path) -> str:
    """"mean" or "cls", as the model's ``1_Pooling/config.json`` says (mean when the file is absent)."""
    path = directory / "1_Pooling" / "config.json"
    if not path.exists():
        return "mean"
    config = json.loads(path.read_text())
    modes = [m for m in ("mean", "cls", "max", "mean_sqrt_len", "weightedmean", "lasttoken")
             if config.get(f"pooling_mode_{m}_tokens") or config.get(f"pooling_mode_{m}_token")]
    if modes in (["mean"], ["cls"]):
        return modes[0]
    raise RecommenderError(f"{path} asks for pooling {modes}; the ONNX backend implements mean or cls pooling only")


def max_sequence_length(directory: Path) -> int:
    """Tokens per text the model sees (``sentence_bert_config.json``), as sentence-transformers truncates."""
    path = directory / "sentence_bert_config.json"
    if path.exists():
        return int(json.loads(path.read_text()).get("max_seq_length", 512))
    return 512


class OnnxEncoder:
    """Texts -> unit vectors with ONNX Runtime: fast tokenizer, length-sorted batches, pooling, L2 normalisation.

    Args:
        directory: the model directory (``tokenizer.json``, pooling config, weights to export).
        model_fingerprint: fingerprint of that directory (names the export folder).
        precision: "fp32" or "int8".
        export_dir: where exported files are cached.
        batch_size: texts per session run.
        threads: ONNX Runtime intra-op threads (None: one per core).
    """

    def __init__(self, directory: Path, model_fingerprint: str, precision: str, export_dir: Path,
                 batch_size: int = 64, threads: int | None = None) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ImportError('the onnx backend needs onnxruntime: install the "onnx" extra') from exc
        self.path = exported_model(directory, model_fingerprint, precision, export_dir)
        digest = hashlib.sha256(model_fingerprint.encode())
        with self.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        # Covers the source model and the exported graph: another export or quantiser gives another identity.
        self.fingerprint = digest.hexdigest()
        self.batch_size = batch_size
        self.pooling = pooling_mode(directory)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_sequence_length(directory))
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dims = int(self.session.get_outputs()[0].shape[-1])

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text after truncation (special tokens included)."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(n, dims) float32 unit vectors, in input order."""
        encodings = self.tokenizer.encode_batch(list(texts))
        return encode_length_sorted(encodings, [len(e.ids) for e in encodings], self.batch_size, self.dims,
                                    self._run, progress=progress)

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(encodings), width), dtype=np.int64)
                 for name in ("input_ids", "attention_mask", "token_type_ids")}
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            feeds["input_ids"][row, :n] = encoding.ids
            feeds["attention_mask"][row, :n] = encoding.attention_mask
            feeds["token_type_ids"][row, :n] = encoding.type_ids
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        if self.pooling == "cls":
            return l2_normalise(hidden[:, 0])
        mask = feeds["attention_mask"][:, :, None].astype(np.float32)
        return l2_normalise((hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9))


class OnnxEmbedder(Embedder):
    """The configured model run by ONNX Runtime on a local export ("fp32", or "int8" dynamically quantised).

    The export is made once per model fingerprint and cached (``EmbedderConfig.export_dir``, default
    ``~/.cache/recommender/onnx``); the identity's fingerprint covers the model and the exported graph.
    """

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig(backend="onnx")
        self.name, self.directory = resolve_model(self.config.model, self.config.allow_refused)
        export_dir = Path(self.config.export_dir or Path.home() / ".cache" / "recommender" / "onnx")
        self.encoder = OnnxEncoder(self.directory, model_fingerprint(self.directory), self.config.precision,
                                   export_dir, batch_size=self.config.batch_size or DEFAULT_BATCH_SIZES[
                                       self.config.precision])
        dims = pooled_dims(self.directory) or self.encoder.dims
        self.identity = ModelIdentity(self.name, dims, self.encoder.fingerprint, f"onnx-{self.config.precision}")

    @property
    def batch_size(self) -> int:
        """Texts per session run."""
        return self.encoder.batch_size

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        return self.encoder.encode(texts, progress=progress)
