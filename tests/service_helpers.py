"""Helpers of the service tests: a private indexes root holding a copy of the demo build, and publishing."""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from recommender.service.app import create_app
from recommender.service.kept_responses import KeptResponses
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
                                     cors_origins=[ORIGIN], demo_pages=True)
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


def serve(root: Path, port: int, workers: int, *options: str, defaults: bool = False,
          **env: str) -> subprocess.Popen:
    """`recommender serve` in its own process (real uvicorn) over ``root/current``; stderr in ``server.log`` beside
    the root. ``env``: extra RECOMMENDER_* settings. Quick polling for the tests unless ``defaults``: then every
    setting is the shipped default but the write token."""
    quick = {} if defaults else {"RECOMMENDER_WARM_MODEL": "false", "RECOMMENDER_POPULARITY_REFRESH_SECONDS": "0.5"}
    variables = {**os.environ, "RECOMMENDER_WRITE_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", **quick, **env}
    polling = [] if defaults else ["--reload-poll-seconds", "0.2"]
    return subprocess.Popen([sys.executable, "-m", "recommender.cli", "serve", "--index", str(root / "current"),
                             "--port", str(port), "--workers", str(workers), *polling, "--log-level", "warning",
                             *options], env=variables, stdout=subprocess.DEVNULL,
                            stderr=(root.parent / "server.log").open("ab"))  # a file: a full pipe would block it


def wait_ready(base: str, process: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    """Wait until ``/readyz`` answers 200 (the server exiting first is a failure with its log)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server was not ready within {seconds}s")


def hidden_from_collector(kept: KeptResponses) -> bool:
    """Whether no object the garbage collector tracks holds a key or body of ``kept`` (so a full collection never
    visits them), apart from the list ``keys()`` makes and the frames of this check."""
    keys = kept.keys()
    assert keys, "nothing is kept: the check would pass vacuously"
    held = [*keys, *(hit[1] for hit in map(kept.get, keys) if hit is not None and hit[1])]
    return all(referrer is keys or referrer is held or isinstance(referrer, types.FrameType)
               for item in held for referrer in gc.get_referrers(item))
