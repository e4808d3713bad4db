"""Helpers of the service tests: a private indexes root holding a copy of the demo build, and publishing."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recommender.service.app import create_app
from recommender.service.settings import ServiceSettings
from recommender.storage.manifest import Manifest, write_manifest
from recommender.storage.versions import IndexStore, new_build_id

TOKEN = "test-write-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORIGIN = "https://news.example"


def make_settings(root: Path, **overrides: object) -> ServiceSettings:
    """Deterministic settings: no background reload polling, popularity refreshed on every change."""
    values: dict[str, object] = dict(index=root / "current", write_token=TOKEN, reload_poll_seconds=0,
                                     popularity_refresh_seconds=0, list_cache_seconds=0, warm_model=False,
                                     cors_origins=[ORIGIN])
    values.update(overrides)
    return ServiceSettings(**values)


def publish_copy(root: Path, source: Path, damage: str | None = None) -> Path:
    """Copy a build into ``root/builds`` under a new id and point ``current`` at it.

    ``damage``: None (a good copy), ``"checksum"`` (a data file changed after the manifest was written) or
    ``"model"`` (the manifest names another model).
    """
    store = IndexStore(root)
    store.builds.mkdir(parents=True, exist_ok=True)
    build_id = new_build_id()
    target = store.builds / build_id
    shutil.copytree(source, target)
    for file in target.iterdir():
        file.chmod(0o644)  # published builds are read-only; this copy is edited below
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["build_id"] = build_id
    if damage == "model":
        manifest["embedder"]["fingerprint"] = "0" * 64
    for name in ("manifest.json", "manifest.sha256"):
        (target / name).unlink(missing_ok=True)
    # A consistent manifest (its digest rewritten): a legacy format-1 copy stays format 1, without a digest.
    if manifest["format_version"] >= 2:
        write_manifest(target, Manifest(**manifest))
    else:
        (target / "manifest.json").write_text(json.dumps(manifest))
    if damage == "checksum":
        with (target / "ids.npy").open("ab") as handle:
            handle.write(b"\0")
    store.point_current(target)
    return target


def service_root(demo_root: Path, tmp_path: Path) -> Path:
    """A private indexes root (own counters and delta) serving a copy of the demo build."""
    root = tmp_path / "indexes"
    publish_copy(root, IndexStore(demo_root).current())
    return root


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def root(demo_root, tmp_path):
    """A private indexes root with a copy of the demo build."""
    return service_root(demo_root, tmp_path)


@pytest.fixture
def client(root, embedder):
    """A running app (lifespan entered) over the private root; reloads happen when a test calls ``check_reload``."""
    with TestClient(create_app(make_settings(root), embedder=embedder)) as test_client:
        yield test_client
