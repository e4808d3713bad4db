"""File helpers every stage shares: sha256 of a file, fsync of a file or folder, atomic replacement of a file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fsync_path(path: Path) -> None:
    """Fsync a file or a directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file, fsync it, rename it over ``path``, fsync the folder."""
    path = Path(path)
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temp.write_bytes(data)
    fsync_path(temp)
    os.replace(temp, path)
    fsync_path(path.parent)
    return path
