"""Kept versions share the files that did not change: a staged file whose bytes equal the current build's file
of the same name is replaced by a hard link to it, and disk use counts each shared file once.

Safe because nothing writes a build's file in place: every file is written new into a stage (a new inode), a
link is made only after the file is complete, and publishing makes every file read-only. ``gc`` deletes whole
build directories, which only unlinks: a file shared with a kept build stays until its last link goes.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..fileio import file_sha256

log = logging.getLogger("recommender.storage")


def link_unchanged(stage: Path, previous: Path | None, previous_files: Mapping[str, Mapping[str, Any]],
                   files: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Replace each staged file that equals the previous build's file of the same name by a hard link to it.

    Args:
        stage: the staged build directory (its files already written and fsynced).
        previous: the current build's directory (None: nothing to share).
        previous_files: the current build's manifest ``files`` (sha256 and bytes of each).
        files: the staged files' sha256 and bytes (``manifest.describe_files``).

    Returns:
        The names now shared with ``previous``. A previous file that no longer matches its manifest (damaged)
        is not linked; on another filesystem (``EXDEV``) the staged copy is kept.
    """
    if previous is None:
        return []
    shared = []
    for name, described in files.items():
        before = previous_files.get(name)
        source = previous / name
        if before is None or before.get("sha256") != described["sha256"] or before.get("bytes") != \
                described["bytes"] or not source.is_file() or source.stat().st_size != described["bytes"]:
            continue
        if file_sha256(source) != described["sha256"]:
            log.warning("%s differs from its sha256 in the manifest; not sharing it with the new build", source)
            continue
        temp = stage / f".link-{name}"
        try:
            os.link(source, temp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                continue  # another filesystem or no hard links here: the staged copy stays
            raise
        os.replace(temp, stage / name)
        shared.append(name)
    return shared


def disk_bytes(directories: Iterable[Path]) -> dict[str, int]:
    """Bytes the files under ``directories`` take: ``apparent`` sums every file, ``unique`` counts each inode
    (a file hard-linked into several builds) once."""
    seen: set[tuple[int, int]] = set()
    apparent = unique = 0
    for directory in directories:
        for path in Path(directory).rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            info = path.stat()
            apparent += info.st_size
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                unique += info.st_size
    return {"apparent": apparent, "unique": unique}


def freed_bytes(doomed: Iterable[Path]) -> int:
    """Bytes deleting the ``doomed`` directories frees: files whose every link lies inside them."""
    links: dict[tuple[int, int], list[int]] = {}
    for directory in doomed:
        for path in Path(directory).rglob("*"):
            if path.is_file() and not path.is_symlink():
                info = path.stat()
                entry = links.setdefault((info.st_dev, info.st_ino), [0, info.st_nlink, info.st_size])
                entry[0] += 1
    return sum(size for inside, total, size in links.values() if inside >= total)
