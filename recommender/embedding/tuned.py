"""Tuned model directories: the identity a fine-tuned model carries and the gate verdict that lets a build use it.

``recommender tune`` saves a SentenceTransformer into a local directory and adds two files:

- ``tuned_model.json`` (``TunedIdentity``): name, base model and its fingerprint, the digest of the training
  pairs, the recipe. Written with the weights; it is fingerprinted with them, so two tunings on different data
  are different models to every manifest and embedding-cache key.
- ``gate.json``: the gate's verdict (``accepted`` or ``refused``) and its table. Not fingerprinted (it does not
  change what the model computes). A directory without it was never gated (a tuning that died half-way).

A build uses a tuned directory only when the gate accepted it, unless its ``[embedder] allow_refused`` is set
(``recommender build --allow-refused``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RecommenderError

IDENTITY_FILE = "tuned_model.json"
GATE_FILE = "gate.json"
ACCEPTED, REFUSED = "accepted", "refused"


@dataclass(frozen=True)
class TunedIdentity:
    """Who a tuned model is.

    Attributes:
        name: the model's name in manifests (``tuned/<base short name>/<training digest[:12]>``).
        base_model: the canonical name of the model it was tuned from.
        base_fingerprint: that model's fingerprint.
        training_digest: sha256 over the training pairs (texts and kinds, in order).
        created_at: when the tuning finished (UTC, ISO 8601).
        pairs: training pairs by kind.
        recipe: the training settings (``TuneConfig`` as a dict).
    """

    name: str
    base_model: str
    base_fingerprint: str
    training_digest: str
    created_at: str
    pairs: dict[str, int] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def save(self, directory: Path) -> None:
        """Write ``tuned_model.json`` into ``directory``."""
        (directory / IDENTITY_FILE).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))


def read_identity(directory: Path) -> TunedIdentity | None:
    """The tuned identity of a model directory; None when it is not a tuned model."""
    path = Path(directory) / IDENTITY_FILE
    if not path.exists():
        return None
    try:
        return TunedIdentity(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise RecommenderError(f"{path} is not a tuned-model identity ({exc}); tune the model again") from None


def read_verdict(directory: Path) -> dict[str, Any] | None:
    """The gate verdict of a tuned model directory (``status``, ``reason``, ``table``); None when never gated."""
    path = Path(directory) / GATE_FILE
    if not path.exists():
        return None
    try:
        verdict = json.loads(path.read_text())
    except ValueError as exc:
        raise RecommenderError(f"{path} is not valid JSON ({exc}); run recommender tune again") from None
    if not isinstance(verdict, dict) or verdict.get("status") not in (ACCEPTED, REFUSED):
        raise RecommenderError(f"{path} has no status 'accepted' or 'refused'; run recommender tune again")
    return verdict


def check_usable(directory: Path, allow_refused: bool = False) -> TunedIdentity | None:
    """Raise ``RecommenderError`` when ``directory`` is a tuned model its gate did not accept.

    Args:
        directory: a local model directory (not tuned: nothing to check).
        allow_refused: use a refused or never-gated tuned model anyway.

    Returns:
        The tuned identity, or None for a model that was not tuned here.
    """
    identity = read_identity(directory)
    if identity is None or allow_refused:
        return identity
    verdict = read_verdict(directory)
    if verdict is None:
        raise RecommenderError(f"tuned model {directory} was never gated (no {GATE_FILE}: the tuning did not "
                               f"finish); run recommender tune again, or pass --allow-refused to use it anyway")
    if verdict["status"] != ACCEPTED:
        raise RecommenderError(f"tuned model {directory} was refused by its gate ({verdict.get('reason', '')}); "
                               f"see {directory / GATE_FILE}, or pass --allow-refused ([embedder] allow_refused = "
                               f"true) to build with it anyway")
    return identity


def describe(model: str) -> dict[str, Any] | None:
    """What a build records in its manifest about a tuned ``model`` (identity + gate status); None otherwise."""
    directory = Path(model).expanduser()
    if not directory.is_dir():
        return None
    identity = read_identity(directory)
    if identity is None:
        return None
    verdict = read_verdict(directory)
    return {**identity.to_dict(), "directory": str(directory.resolve()),
            "gate": verdict["status"] if verdict else "never gated"}
