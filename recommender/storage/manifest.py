"""Build manifest: what a build directory holds, how it was made, and the checks that load it safely."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..embedding.base import ModelIdentity
from ..errors import IndexFormatError
from ..fileio import file_sha256, fsync_path
from .layout import MANIFEST

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``, written last: a directory with a manifest is a complete build."""

    build_id: str
    created_at: str
    recommender_version: str
    embedder: dict[str, Any]
    index: dict[str, Any]
    source: dict[str, Any]
    files: dict[str, dict[str, Any]]
    build: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def model(self) -> ModelIdentity:
        """The identity of the model that embedded this build."""
        return ModelIdentity(**self.embedder)

    @property
    def count(self) -> int:
        """Articles in the index."""
        return int(self.index["count"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def describe_files(directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 and size of each named file."""
    return {name: {"sha256": file_sha256(directory / name), "bytes": (directory / name).stat().st_size}
            for name in sorted(names)}


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (temp file, fsync, rename) and fsync the directory."""
    path = directory / MANIFEST
    temp = directory / (MANIFEST + ".tmp")
    temp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    fsync_path(temp)
    os.replace(temp, path)
    fsync_path(directory)
    return path


def read_manifest(directory: str | Path, verify_files: bool = True) -> Manifest:
    """Read and check a build's manifest.

    Raises:
        IndexFormatError: no manifest (an incomplete build), an unknown format version, or (with
            ``verify_files``) a missing file or a checksum that differs, each named in the message.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise IndexFormatError(f"{directory} is not a build directory; build one with `recommender build`")
    if not path.exists():
        raise IndexFormatError(f"{path} is missing: the build at {directory} is incomplete (interrupted?); "
                               f"rebuild it or point to another version")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path} is not valid JSON ({exc}); rebuild this version") from exc
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(f"{path} has format_version {version!r}; this recommender reads version "
                               f"{FORMAT_VERSION}: rebuild the index with this version")
    try:
        manifest = Manifest(**data)
    except TypeError as exc:
        raise IndexFormatError(f"{path} lacks or has unexpected fields ({exc}); rebuild this version") from exc
    if verify_files:
        for name, expected in manifest.files.items():
            file = directory / name
            if not file.exists():
                raise IndexFormatError(f"{file} listed in the manifest is missing; the build is damaged")
            if file.stat().st_size != expected["bytes"] or file_sha256(file) != expected["sha256"]:
                raise IndexFormatError(f"{file} does not match its sha256 in the manifest; the build is "
                                       f"damaged: roll back or rebuild")
    return manifest
