"""Test helper: edit a build's manifest (or replace one of its files) the way an older build, or a deliberate
operator edit, would have it: the manifest's checksums and digest rewritten to match, so the edit under test is
the only difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from recommender.storage.manifest import Manifest, describe_files, write_manifest


def reseal(build: Path, edit: Callable[[dict], None] | None = None, refreshed: tuple[str, ...] = (),
           legacy: bool = False) -> None:
    """Rewrite ``build``'s manifest after ``edit(data)``, with the sha256 of the ``refreshed`` files recomputed.

    ``legacy``: write it as a format-1 build, from before the manifest digest (no ``manifest.sha256``).
    """
    for file in build.iterdir():
        file.chmod(0o644)
    data = json.loads((build / "manifest.json").read_text())
    if edit is not None:
        edit(data)
    data["files"].update(describe_files(build, list(refreshed)))
    (build / "manifest.sha256").unlink(missing_ok=True)
    if legacy:
        data["format_version"] = 1
        (build / "manifest.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    else:
        write_manifest(build, Manifest(**data))
