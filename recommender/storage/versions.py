"""IndexStore: stage -> write -> verify -> publish (atomic ``current`` swap) -> keep the last N builds."""

from __future__ import annotations

import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import IndexFormatError
from ..fileio import fsync_path
from .manifest import Manifest, read_manifest

STAGE_PREFIX = ".stage-"


def new_build_id(now: datetime | None = None) -> str:
    """A unique build id that sorts by creation time: ``20261127T020000Z-123456ab`` (microseconds + random).

    The microseconds keep builds made within one second in order (``gc`` and ``rollback`` sort by id).
    """
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + f"-{now.microsecond:06d}" + secrets.token_hex(1)


class IndexStore:
    """A directory of versioned builds with an atomically replaced ``current`` symlink.

    Layout::

        root/current -> builds/<build_id>
        root/builds/<build_id>/manifest.json ...
        root/builds/.stage-<build_id>/          in progress; never read
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.builds = self.root / "builds"
        self.current_link = self.root / "current"

    def stage(self, build_id: str) -> Path:
        """Create the staging directory of a new build (same filesystem as the published builds)."""
        self.builds.mkdir(parents=True, exist_ok=True)
        path = self.builds / f"{STAGE_PREFIX}{build_id}"
        path.mkdir()
        return path

    def publish(self, stage: Path, keep: int = 5, before_swap: Callable[[Path], None] | None = None) -> Path:
        """Move a verified stage into place and point ``current`` at it atomically.

        The stage must already hold its manifest. Order: rename the stage to its final name, fsync ``builds/``,
        write ``current.tmp`` and ``os.replace`` it over ``current``, fsync the root, then delete all but the
        newest ``keep`` builds (never the current one). ``before_swap`` runs between the rename and the swap
        (crash tests pause there).
        """
        read_manifest(stage, verify_files=False)
        final = self.builds / stage.name.removeprefix(STAGE_PREFIX)
        os.rename(stage, final)
        fsync_path(self.builds)
        if before_swap is not None:
            before_swap(final)
        self.point_current(final)
        self.gc(keep)
        return final

    def clean_stale(self) -> list[Path]:
        """Remove what a killed run left: ``builds/.stage-*`` dirs and ``current.tmp-*`` links.

        Only call this while holding the rebuild lock: a stage directory of a live rebuild looks the same.
        """
        removed: list[Path] = []
        if self.builds.is_dir():
            for path in self.builds.glob(f"{STAGE_PREFIX}*"):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        for path in self.root.glob("current.tmp-*"):
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def rollback(self, version: str | None = None) -> Path:
        """Point ``current`` at ``version`` (default: the newest complete build older than ``current``).

        The target's manifest and checksums are verified first; the swap is the same atomic rename as a publish.

        Raises:
            IndexFormatError: unknown version, nothing older to roll back to, or a damaged target build.
        """
        current = self.current()
        if version is None:
            older = [p for p, m in self.versions() if m is not None and current is not None and p.name < current.name]
            if not older:
                raise IndexFormatError(f"no complete build older than {current.name if current else 'current'} "
                                       f"in {self.builds}; `recommender versions` lists them")
            target = older[-1]
        else:
            target = self.resolve(version)
        read_manifest(target, verify_files=True)
        self.point_current(target)
        return target

    def point_current(self, build: Path) -> None:
        """Atomically make ``current`` point at ``build`` (relative symlink, replaced by rename)."""
        temp = self.root / f"current.tmp-{os.getpid()}"
        if temp.is_symlink() or temp.exists():
            temp.unlink()
        os.symlink(os.path.relpath(build, self.root), temp)
        os.replace(temp, self.current_link)
        fsync_path(self.root)

    def current(self) -> Path | None:
        """The resolved directory of the published build, or None before the first publish."""
        if not self.current_link.is_symlink() and not self.current_link.exists():
            return None
        return self.current_link.resolve()

    def versions(self) -> list[tuple[Path, Manifest | None]]:
        """Published builds, oldest first, each with its manifest (None when unreadable)."""
        if not self.builds.is_dir():
            return []
        found = []
        for path in sorted(p for p in self.builds.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                found.append((path, read_manifest(path, verify_files=False)))
            except IndexFormatError:
                found.append((path, None))
        return found

    def gc(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` complete builds; the current one is always kept.

        Rejects files go with their build; those of builds that were never published (a failed gate, an
        invalid catalogue, a dry run) are kept for the newest ``keep`` such runs, for the post-mortem.
        """
        current = self.current()
        complete = [p for p, m in self.versions() if m is not None]
        doomed = [p for p in complete[: max(len(complete) - keep, 0)] if p != current]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
            for rejects in (self.root / "rejects").glob(f"{path.name}*.csv"):
                rejects.unlink(missing_ok=True)  # the rejected rows of a build that no longer exists
        existing = {p.name for p in self.builds.iterdir()} if self.builds.is_dir() else set()
        orphans = sorted({f.name.split(".")[0].removesuffix("-views") for f in (self.root / "rejects").glob("*.csv")}
                         - existing)  # build ids sort by time
        for build_id in orphans[: max(len(orphans) - keep, 0)]:
            for rejects in (self.root / "rejects").glob(f"{build_id}*.csv"):
                rejects.unlink(missing_ok=True)
        return doomed

    def resolve(self, version: str | None = None) -> Path:
        """Directory of a version id (or of ``current`` when None)."""
        if version is None:
            current = self.current()
            if current is None:
                raise IndexFormatError(f"{self.root} has no published build yet; run `recommender build`")
            return current
        path = self.builds / version
        if not path.is_dir():
            raise IndexFormatError(f"version {version!r} is not in {self.builds}; `recommender versions` lists them")
        return path


def resolve_build_dir(path: str | Path) -> Path:
    """Accept a build directory, an indexes root (uses its ``current``), or a ``current`` link itself."""
    path = Path(path)
    if (path / "current").is_symlink() or (path / "current").is_dir():
        path = path / "current"
    resolved = path.resolve()
    if not resolved.is_dir():
        raise IndexFormatError(f"{path} is not a build directory or an indexes root; run `recommender build`")
    return resolved
