"""IndexStore: stage -> publish (atomic ``current`` swap) -> rollback -> keep the last N builds.

Every path is resolved before it is compared, so a relative, absolute or symlinked indexes root behaves the same
(a relative root once made ``gc`` delete the build ``current`` pointed to). Each publish and rollback is recorded
in ``published.jsonl``; rollback only goes to builds that were published (a rebuild killed between moving its
build into place and swapping ``current`` leaves a build that was never served).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

from ..errors import IndexFormatError
from ..fileio import fsync_path
from .manifest import Manifest, read_manifest
from .sharing import disk_bytes, freed_bytes

log = logging.getLogger("recommender.storage")
STAGE_PREFIX = ".stage-"
PUBLISH_LOG = "published.jsonl"


def new_build_id(now: datetime | None = None) -> str:
    """A unique build id that sorts by creation time: ``20261127T020000Z-123456ab`` (microseconds + random).

    The microseconds keep builds made within one second in order (``gc`` and ``rollback`` sort by id).
    """
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + f"-{now.microsecond:06d}" + secrets.token_hex(1)


def resolve_link(link: Path) -> Path | None:
    """Where a ``current`` link points, resolved; None when there is no link.

    Raises:
        IndexFormatError: the link dangles (its build is gone) or loops.
    """
    if not link.is_symlink() and not link.exists():
        return None
    try:
        return link.resolve(strict=True)
    except RuntimeError:  # Python 3.11 raises RuntimeError for a symlink loop
        raise IndexFormatError(f"{link} is a symlink loop; point it at a build: `recommender rollback BUILD_ID`") \
            from None
    except OSError:
        raise IndexFormatError(f"{link} points to {os.readlink(link)!r}, which does not exist (deleted by hand?); "
                               f"point it at a kept build: `recommender versions`, then `recommender rollback "
                               f"BUILD_ID`") from None


class IndexStore:
    """A directory of versioned builds with an atomically replaced ``current`` symlink.

    Layout::

        root/current -> builds/<build_id>
        root/builds/<build_id>/manifest.json ...
        root/builds/.stage-<build_id>/          in progress; never read
        root/published.jsonl                    every publish and rollback, in order
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.builds = self.root / "builds"
        self.current_link = self.root / "current"
        self.log = self.root / PUBLISH_LOG

    def stage(self, build_id: str) -> Path:
        """Create the staging directory of a new build (same filesystem as the published builds)."""
        self.builds.mkdir(parents=True, exist_ok=True)
        path = self.builds / f"{STAGE_PREFIX}{build_id}"
        path.mkdir()
        return path

    def publish(self, stage: Path, keep: int = 5, before_swap: Callable[[Path], None] | None = None) -> Path:
        """Move a verified stage into place and point ``current`` at it atomically.

        The stage must already hold its manifest. Order: make its files read-only, rename the stage to its final
        name, fsync ``builds/``, swap ``current`` (``point_current``), record the publish, then delete all but
        the newest ``keep`` builds (never the current one). ``before_swap`` runs between the rename and the swap
        (crash tests pause there).
        """
        read_manifest(stage, verify_files=False)
        for file in stage.iterdir():
            if file.is_file():  # nothing edits a build in place: the service may memory-map its arrays
                file.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        final = self.builds / stage.name.removeprefix(STAGE_PREFIX)
        os.rename(stage, final)
        fsync_path(self.builds)
        if before_swap is not None:
            before_swap(final)
        self.point_current(final)
        self.gc(keep)
        return final

    def _record(self, event: str, build_id: str) -> None:
        if not self.log.exists():  # a root from before the log: its complete builds were all published
            for path, manifest in self.versions():
                if manifest is not None and path.name != build_id:
                    self._append({"event": "publish", "build_id": path.name, "at": None, "seeded": True})
        self._append({"event": event, "build_id": build_id,
                      "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})

    def _append(self, record: dict[str, object]) -> None:
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def published(self) -> set[str]:
        """Ids of builds that were published (and so served): the log's, plus whatever ``current`` points at
        (a publish killed after its swap, before its log line). Without a log (a root from before it), every
        complete build counts."""
        if not self.log.exists():
            ids = {p.name for p, m in self.versions() if m is not None}
        else:
            ids = set()
            for line in self.log.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a crash mid-write
                if isinstance(record, dict) and record.get("event") == "publish":
                    ids.add(str(record.get("build_id")))
        try:
            current = self.current()
        except IndexFormatError:
            current = None
        return ids | ({current.name} if current is not None else set())

    def clean_stale(self) -> list[Path]:
        """Remove what a killed run left: ``builds/.stage-*`` dirs, ``current.tmp-*`` links, and complete builds
        that were never published (a rebuild killed between moving its build into place and the swap).

        Only call this while holding the rebuild lock: a stage directory of a live rebuild looks the same.
        """
        removed: list[Path] = []
        if self.builds.is_dir():
            for path in self.builds.glob(f"{STAGE_PREFIX}*"):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            if self.log.exists():
                published = self.published()
                for path, manifest in self.versions():
                    if manifest is not None and path.name not in published:
                        shutil.rmtree(path, ignore_errors=True)
                        removed.append(path)
        for path in self.root.glob("current.tmp-*"):
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def rollback(self, version: str | None = None) -> Path:
        """Point ``current`` at ``version`` (default: the newest published build older than ``current``, or the
        newest published build when ``current`` dangles or loops: the repair).

        The target must have been published, and its manifest and checksums are verified first; the swap is the
        same atomic rename as a publish.

        Raises:
            IndexFormatError: unknown or never-published version, nothing older to roll back to, or a damaged
                target build.
        """
        try:
            current = self.current()
        except IndexFormatError:
            current = None  # a broken pointer: any published build repairs it
        published = self.published()
        if version is None:
            older = [p for p, m in self.versions() if m is not None and p.name in published
                     and (current is None or p.name < current.name)]
            if not older:
                raise IndexFormatError(f"no published build older than {current.name if current else 'current'} "
                                       f"in {self.builds}; `recommender versions` lists them")
            target = older[-1]
        else:
            target = self.resolve(version)
            if target.name not in published:
                raise IndexFormatError(f"build {version} was never published (a rebuild stopped before making it "
                                       f"current); rollback goes only to builds that were served")
        read_manifest(target, verify_files=True)
        self.point_current(target, event="rollback")
        return target

    def point_current(self, build: Path, event: str = "publish") -> None:
        """Atomically make ``current`` point at ``build`` (relative symlink, replaced by rename), then record it
        in the publish log (``event``: "publish" or "rollback"): a build made current was served."""
        temp = self.root / f"current.tmp-{os.getpid()}"
        if temp.is_symlink() or temp.exists():
            temp.unlink()
        os.symlink(os.path.relpath(Path(build).resolve(), self.root), temp)
        os.replace(temp, self.current_link)
        fsync_path(self.root)
        self._record(event, Path(build).name)

    def current(self) -> Path | None:
        """The resolved directory of the published build, or None before the first publish.

        Raises:
            IndexFormatError: ``current`` dangles or loops (the message says how to repair it).
        """
        return resolve_link(self.current_link)

    def versions(self) -> list[tuple[Path, Manifest | None]]:
        """Builds in ``builds/``, oldest first, each with its manifest (None when incomplete or unreadable)."""
        if not self.builds.is_dir():
            return []
        found: list[tuple[Path, Manifest | None]] = []
        for path in sorted(p for p in self.builds.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                found.append((path.resolve(), read_manifest(path, verify_files=False)))
            except IndexFormatError:
                found.append((path.resolve(), None))
        return found

    def gc(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` published builds; the current one is always kept.

        Rejects files go with their build; those of builds that were never published (a failed gate, an
        invalid catalogue, a dry run) are kept for the newest ``keep`` such runs, for the post-mortem.

        Raises:
            IndexFormatError: ``current`` dangles or loops: nothing is deleted until it points at a build.
        """
        current = self.current()
        published = self.published()
        complete = [p for p, m in self.versions() if m is not None and p.name in published]
        doomed = [p for p in complete[: max(len(complete) - keep, 0)] if p != current]
        if doomed:  # files hard-linked into a kept build are not freed (storage/sharing.py)
            log.info("gc: deleting %d build(s), freeing %d bytes", len(doomed), freed_bytes(doomed))
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

    def disk_usage(self) -> dict[str, int]:
        """Bytes of every kept build: ``apparent`` (each build counted in full) and ``unique`` (on disk: a file
        hard-linked into several builds counted once)."""
        return disk_bytes(p for p, _ in self.versions())

    def resolve(self, version: str | None = None) -> Path:
        """Directory of a version id (or of ``current`` when None)."""
        if version is None:
            current = self.current()
            if current is None:
                raise IndexFormatError(f"{self.root} has no published build yet; run `recommender build`")
            return current
        path = self.builds / version
        if "/" in version or not path.is_dir():
            raise IndexFormatError(f"version {version!r} is not in {self.builds}; `recommender versions` lists them")
        return path.resolve()


def resolve_build_dir(path: str | Path) -> Path:
    """Accept a build directory, an indexes root (uses its ``current``), or a ``current`` link itself.

    Raises:
        IndexFormatError: not a build directory, or a ``current`` that dangles or loops.
    """
    path = Path(path)
    link = path / "current" if (path / "current").is_symlink() or (path / "current").is_dir() else path
    if link.is_symlink():
        resolved = resolve_link(link)
    else:
        try:
            resolved = link.resolve()
        except RuntimeError:
            raise IndexFormatError(f"{link} is a symlink loop; point it at a build directory") from None
    if resolved is None or not resolved.is_dir():
        raise IndexFormatError(f"{path} is not a build directory or an indexes root; run `recommender build`")
    return resolved
