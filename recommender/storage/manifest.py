"""Build manifest: what a build directory holds, how it was made, and the checks that load it safely.

``manifest.json`` is written after the data files and ``manifest.sha256`` (its own digest) last: a directory
with both, agreeing, is a complete build. Reading checks the digest (so no edit of the manifest, however small,
is served or reused), then every field against a schema and the build settings against the config types,
then (on request) each data file's size and sha256. Builds of format 1 (before the digest) are read with the
schema check only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import BuildConfig
from ..config_files import as_built
from ..embedding.base import ModelIdentity
from ..errors import IndexFormatError
from ..fileio import file_sha256, write_atomic
from . import layout

FORMAT_VERSION = 2
# Builds whose index has tombstones and an index-row -> position array (``layout.INDEX_POSITIONS``): a reader from
# before it would return tombstoned (removed) articles and wrong rows, so it must refuse them by their version.
POSITIONS_FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
DIGEST = layout.MANIFEST_DIGEST
_HEX64 = r"^[0-9a-f]{64}$"


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``."""

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


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Embedder(_Strict):
    name: str = Field(min_length=1)
    dims: int = Field(ge=1)
    fingerprint: str = Field(min_length=1)
    backend: str = Field(pattern=r"^[a-z0-9]+-[a-z0-9]+$")


class _Index(_Strict):
    model_config = ConfigDict(strict=True, extra="allow")
    factory: str = Field(min_length=1)
    metric: Literal["inner_product"]
    count: int = Field(ge=0)
    dims: int = Field(ge=1)
    neighbour_count: int = Field(ge=0)
    ef_search: int | None = Field(default=None, ge=1)  # the calibrated efSearch (build/index_calibration.py)


class _File(_Strict):
    sha256: str = Field(pattern=_HEX64)
    bytes: int = Field(ge=0)


class _Manifest(_Strict):
    build_id: str = Field(pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,}$")
    created_at: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    recommender_version: str
    embedder: _Embedder
    index: _Index
    source: dict[str, Any]
    files: dict[str, _File]
    build: dict[str, Any]
    format_version: int


def manifest_bytes(manifest: Manifest) -> bytes:
    """The exact bytes written as ``manifest.json`` (and hashed into ``manifest.sha256``)."""
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def describe_files(directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 and size of each named file."""
    return {name: {"sha256": file_sha256(directory / name), "bytes": (directory / name).stat().st_size}
            for name in sorted(names)}


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json``, then its digest ``manifest.sha256`` (each atomically, fsynced)."""
    data = manifest_bytes(manifest)
    path = write_atomic(directory / layout.MANIFEST, data)
    write_atomic(directory / DIGEST, (hashlib.sha256(data).hexdigest() + "\n").encode())
    return path


def _fail(path: Path, problem: str) -> IndexFormatError:
    return IndexFormatError(f"{path}: {problem}; the build is damaged or was edited: roll back "
                            f"(`recommender rollback`) or rebuild it")


def _load_checked(directory: Path) -> dict[str, Any]:
    """The manifest's JSON object, its digest checked (format 2) and every field against the schema."""
    path = directory / layout.MANIFEST
    if not directory.is_dir():
        raise IndexFormatError(f"{directory} is not a build directory; build one with `recommender build`")
    if not path.exists() and not path.is_symlink():
        raise IndexFormatError(f"{path} is missing: the build at {directory} is incomplete (interrupted?); "
                               f"rebuild it or point to another version")
    if not path.is_file():
        raise _fail(path, "is not a regular file")
    raw = path.read_bytes()
    digest_path = directory / DIGEST
    if digest_path.exists():
        stored = digest_path.read_bytes()
        if stored not in (hashlib.sha256(raw).hexdigest().encode(), hashlib.sha256(raw).hexdigest().encode() + b"\n"):
            raise _fail(path, f"does not match its digest in {DIGEST}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _fail(path, f"holds a JSON {type(data).__name__}, not an object")
    version = data.get("format_version")
    if version not in READABLE_FORMATS or isinstance(version, bool):
        raise IndexFormatError(f"{path} has format_version {version!r}; this recommender reads versions "
                               f"{READABLE_FORMATS}: rebuild the index with this version")
    if version >= 2 and not digest_path.exists():
        raise IndexFormatError(f"{digest_path} is missing: the build at {directory} is incomplete (interrupted?) "
                               f"or its digest was removed; rebuild it or point to another version")
    try:
        _Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise _fail(path, f"field {where}: {first.get('msg')}") from None
    return data


def _check_contents(path: Path, data: dict[str, Any]) -> None:
    """Cross-field checks: the settings' types and ranges, the files a build must list, no path in a name."""
    try:
        BuildConfig.from_dict(as_built(data["build"].get("config", {})))
    except (ValueError, TypeError) as exc:
        raise _fail(path, f"build.config: {exc}") from None
    names = set(data["files"])
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
            raise _fail(path, f"files lists {name!r}, which is not a file name of a build")
    for required in layout.DATA_FILES:
        if required not in names and layout.LEGACY_NAMES.get(required) not in names:
            raise _fail(path, f"files does not list {required}")
    if data["format_version"] == POSITIONS_FORMAT_VERSION and layout.INDEX_POSITIONS not in names:
        raise _fail(path, f"format {POSITIONS_FORMAT_VERSION} without {layout.INDEX_POSITIONS} (the index rows of "
                          f"its articles)")
    if data["index"]["dims"] != data["embedder"]["dims"]:
        raise _fail(path, f"index.dims {data['index']['dims']} differs from embedder.dims "
                          f"{data['embedder']['dims']}")


def read_manifest(directory: str | Path, verify_files: bool = True) -> Manifest:
    """Read and check a build's manifest.

    Raises:
        IndexFormatError: no manifest (an incomplete build), a manifest that differs from its digest, is not a
            JSON object, misses or mistypes a field, names an unknown format version, or (with
            ``verify_files``) a listed file that is missing or whose size or sha256 differ; each names the file
            and the fix.
    """
    directory = Path(directory)
    path = directory / layout.MANIFEST
    data = _load_checked(directory)
    _check_contents(path, data)
    manifest = Manifest(**data)
    if verify_files:
        for name, expected in manifest.files.items():
            file = directory / name
            if not file.is_file():
                raise IndexFormatError(f"{file} listed in the manifest is missing; the build is damaged")
            if file.stat().st_size != expected["bytes"] or file_sha256(file) != expected["sha256"]:
                raise IndexFormatError(f"{file} does not match its sha256 in the manifest; the build is "
                                       f"damaged: roll back or rebuild")
    return manifest
