"""Crash safety (issue 4): a real `recommender rebuild` process SIGKILLed at several points never harms `current`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from recommender.build import rebuild
from recommender.catalogue.demo import demo_files
from recommender.cli import app
from recommender.cli.runlog import EXIT_LOCKED
from recommender.errors import RebuildLockedError
from recommender.query import Recommender
from recommender.storage.versions import IndexStore

pytestmark = pytest.mark.slow


@pytest.fixture()
def root(tmp_path, embedder, cache_path):
    """An indexes root with the demo corpus published."""
    articles, views = demo_files()
    rebuild(articles, tmp_path / "idx", views_source=views, embedder=embedder, cache_path=cache_path)
    return tmp_path / "idx"


def _paused_rebuild(root, cache_path, point: str) -> tuple[subprocess.Popen, dict]:
    """Start a real rebuild process that stops at ``point``; return it once it says it has paused."""
    articles, views = demo_files()
    env = {**os.environ, "RECOMMENDER_PAUSE_AT": point, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender.cli", "rebuild", "--articles", str(articles), "--views", str(views),
         "--indexes", str(root), "--cache", str(cache_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("{") and json.loads(line).get("event") == "paused":
            return process, json.loads(line)
    process.wait()
    pytest.fail(f"the rebuild exited ({process.returncode}) before pausing at {point}: {''.join(seen)[-2000:]}")


@pytest.mark.parametrize("point", ["embed", "write", "publish"])
def test_killed_rebuild_leaves_current_and_the_next_run_recovers(point, root, embedder, cache_path):
    """Killed at `point`: current is byte-identical and loads; the lock blocks others until the kill; next run works."""
    store = IndexStore(root)
    before = store.current()
    manifest_before = (before / "manifest.json").read_bytes()
    process, paused = _paused_rebuild(root, cache_path, point)
    try:
        assert paused["stage"] == point and paused["pid"] == process.pid
        with pytest.raises(RebuildLockedError, match=f"pid {process.pid}"):
            rebuild(demo_files()[0], root, embedder=embedder, cache_path=cache_path)
        cli = CliRunner().invoke(app, ["rebuild", "--articles", str(demo_files()[0]), "--indexes", str(root)])
        assert cli.exit_code == EXIT_LOCKED and "another rebuild is running" in cli.output
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    assert store.current() == before and (before / "manifest.json").read_bytes() == manifest_before
    assert Recommender.load(root, embedder=embedder).related("demo-001", k=3)
    stages = list(store.builds.glob(".stage-*"))
    if point == "write":  # data files staged, no manifest: an incomplete build that nothing may read
        assert len(stages) == 1 and (stages[0] / "vectors.faiss").exists()
        assert not (stages[0] / "manifest.json").exists()
    else:
        assert stages == []
    orphans = [p for p, m in store.versions() if p != before]
    assert len(orphans) == (1 if point == "publish" else 0)  # renamed into builds/, never made current
    assert not set(p.name for p in orphans) & store.published()  # so rollback will never go there

    report = rebuild(demo_files()[0], root, views_source=demo_files()[1], embedder=embedder, cache_path=cache_path)
    assert report.published and store.current() == report.path != before
    assert report.lock_takeover["pid"] == process.pid and report.lock_takeover["alive"] is False
    # The staged folder (killed at write) or the never-published build (killed at publish) is cleaned up.
    assert report.stale_cleaned == (1 if point in ("write", "publish") else 0)
    assert not [p for p in orphans if p.exists()]
    assert not list(store.builds.glob(".stage-*"))
    assert len(Recommender.load(root, embedder=embedder)) == report.articles
