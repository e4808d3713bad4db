"""The version store cannot lose, resurrect or launder a build (issue 14, items 1, 2, 4 and the smaller store
points), each through the real `recommender` CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recommender.catalogue.demo import demo_files
from recommender.cli import app
from recommender.errors import IndexFormatError
from recommender.query import Recommender
from recommender.storage.versions import IndexStore

pytestmark = pytest.mark.slow
RECOMMENDER = str(Path(sys.executable).parent / "recommender")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed command line, in its own process."""
    return subprocess.run([RECOMMENDER, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def three_builds(tmp_path_factory, cache_path):
    """An indexes root with three published builds of the demo corpus (copied per test)."""
    root = tmp_path_factory.mktemp("three") / "indexes"
    articles, views = demo_files()
    for _ in range(3):
        done = cli("build", str(articles), "--views", str(views), "--indexes", str(root), "--cache", str(cache_path))
        assert done.returncode == 0, done.stderr
    return root


def copy_root(source: Path, target: Path) -> Path:
    """A private copy of an indexes root (symlinks kept)."""
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.mark.parametrize("how", ["relative", "absolute", "symlinked"])
def test_gc_after_rollback_keeps_current_whatever_the_root(three_builds, tmp_path, how):
    """`rollback` then `gc --keep 1` keeps the build current points to, with a relative, an absolute and a
    symlinked root; `versions` marks it. (A relative root once made gc delete the current build: it compared a
    relative path with an absolute one, and `versions` never marked current.)"""
    root = copy_root(three_builds, tmp_path / "real")
    if how == "symlinked":
        (tmp_path / "link").symlink_to(root)
        where, cwd = str(tmp_path / "link"), None
    elif how == "relative":
        where, cwd = "real", tmp_path
    else:
        where, cwd = str(root), None
    builds = [p.name for p, _ in IndexStore(root).versions()]
    assert cli("rollback", "--indexes", where, cwd=cwd).returncode == 0
    assert IndexStore(root).current().name == builds[1]
    marked = json.loads(cli("versions", "--indexes", where, "--json", cwd=cwd).stdout)
    assert [v["current"] for v in marked] == [False, True, False]
    done = cli("gc", "--keep", "1", "--indexes", where, cwd=cwd)
    assert done.returncode == 0, done.stderr
    kept = [p.name for p, _ in IndexStore(root).versions()]
    assert builds[1] in kept and IndexStore(root).current().name == builds[1]
    assert cli("related", "demo-001", "--indexes", where, "--json", cwd=cwd).returncode == 0
    assert cli("info", "--verify", "--indexes", where, cwd=cwd).returncode == 0


def test_rollback_goes_only_to_builds_that_were_published(three_builds, tmp_path):
    """A complete build that was never made current (a rebuild killed after moving it into place) is listed as
    never published, refused by rollback, skipped by the default rollback and removed by gc's clean-up."""
    root = copy_root(three_builds, tmp_path / "indexes")
    store = IndexStore(root)
    first, second, third = [p for p, _ in store.versions()]
    orphan = store.builds / (second.name.split("-")[0] + "-999999ff")  # sorts between the second and third
    shutil.copytree(second, orphan)
    listed = cli("versions", "--indexes", str(root))
    assert "never published" in listed.stdout
    refused = cli("rollback", orphan.name, "--indexes", str(root))
    assert refused.returncode == 2 and "was never published" in refused.stderr and "Traceback" not in refused.stderr
    assert cli("rollback", "--indexes", str(root)).returncode == 0
    assert store.current() == second  # not the orphan, though its id sorts before the third build
    assert cli("gc", "--keep", "5", "--indexes", str(root)).returncode == 0
    assert not orphan.exists() and third.exists()


def replace_manifest(current: Path, text: str) -> None:
    """A manifest with this text and a digest that matches it (so the content checks are reached)."""
    import hashlib

    (current / "manifest.json").write_text(text)
    (current / "manifest.sha256").chmod(0o644)
    (current / "manifest.sha256").write_text(hashlib.sha256(text.encode()).hexdigest())


@pytest.mark.parametrize("damage, needle", [
    (lambda current: replace_manifest(current, "[]"), "not an object"),
    (lambda current: replace_manifest(current, "null"), "not an object"),
    (lambda current: ((current / "manifest.json").unlink(), (current / "manifest.json").mkdir()),
     "not a regular file"),
])
def test_malformed_manifests_give_one_line_errors(three_builds, tmp_path, damage, needle):
    """A manifest that is a list, null or a folder: every command exits 2 with one line, no traceback."""
    root = copy_root(three_builds, tmp_path / "indexes")
    current = IndexStore(root).current()
    (current / "manifest.json").chmod(0o644)
    damage(current)
    for command in (["info", "--indexes", str(root)], ["related", "demo-001", "--indexes", str(root)]):
        done = cli(*command)
        assert done.returncode == 2 and needle in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_current_is_reported_and_repaired_by_rollback(three_builds, tmp_path, kind):
    """A dangling or looping `current` gives a one-line error naming it, and `rollback` repairs it."""
    root = copy_root(three_builds, tmp_path / "indexes")
    link = root / "current"
    link.unlink()
    if kind == "dangling":
        link.symlink_to("builds/gone")
    else:
        link.symlink_to("current")
    done = cli("related", "demo-001", "--indexes", str(root))
    assert done.returncode == 2 and ("does not exist" in done.stderr or "symlink loop" in done.stderr)
    assert "Traceback" not in done.stderr
    with pytest.raises(IndexFormatError):
        IndexStore(root).current()
    repaired = cli("rollback", "--indexes", str(root))
    assert repaired.returncode == 0, repaired.stderr
    assert IndexStore(root).current().name == [p.name for p, _ in IndexStore(root).versions()][-1]


@pytest.mark.parametrize("damaged", ["vectors.npy", "related_state.npz"])
def test_a_damaged_current_is_never_laundered_into_a_new_build(three_builds, tmp_path, cache_path, damaged):
    """One flipped exponent byte in current's vectors.npy, or a damaged related_state.npz: `rebuild` does not reuse
    the file (and says so), and what it publishes has only finite unit vectors and verifies. (The rebuild once
    reused a damaged vectors.npy unchecked and published an infinite-norm vector; a damaged state crashed it.)"""
    root = copy_root(three_builds, tmp_path / "indexes")
    current = IndexStore(root).current()
    (current / damaged).chmod(0o644)
    with (current / damaged).open("r+b") as handle:
        if damaged == "vectors.npy":
            vectors = np.load(current / "vectors.npy")
            handle.seek((current / "vectors.npy").stat().st_size - vectors.nbytes + 3)
            byte = handle.read(1)  # the sign/exponent byte of the first component (little-endian float32)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0x40]))
        else:
            handle.seek(100)
            handle.write(b"\xff" * 64)
    articles, views = demo_files()
    done = cli("rebuild", "--articles", str(articles), "--views", str(views), "--indexes", str(root), "--cache",
               str(cache_path))
    assert done.returncode == 0, done.stderr
    assert "NOT reused from current" in done.stdout and damaged in done.stdout
    published = IndexStore(root).current()
    assert published != current
    new_vectors = np.load(published / "vectors.npy")
    assert np.isfinite(new_vectors).all() and np.allclose(np.linalg.norm(new_vectors, axis=1), 1.0, atol=1e-3)
    assert cli("info", "--verify", "--indexes", str(root)).returncode == 0
    source = Recommender.load(root).manifest.source
    assert source["related"]["mode"] == "full" and [damaged] == [r.split(":")[0] for r in source["reuse_refused"]]
    if damaged == "vectors.npy":
        assert source["reused"] == 0 and source["cached"] == 165  # every vector came from the cache instead


def test_published_build_files_are_read_only(three_builds):
    """Published files cannot be opened for writing by accident (the service may memory-map them)."""
    current = IndexStore(three_builds).current()
    for file in current.iterdir():
        assert not os.stat(file).st_mode & 0o222, file.name


def test_build_takes_the_rebuild_lock(three_builds, tmp_path):
    """`recommender build` refuses to run while another build holds the lock (exit 2, naming the holder)."""
    root = copy_root(three_builds, tmp_path / "indexes")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from recommender.build.lock import "
                               "RebuildLock; RebuildLock(sys.argv[1]).acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        articles, _ = demo_files()
        done = CliRunner().invoke(app, ["build", str(articles), "--indexes", str(root)])
        assert done.exit_code == 2 and "another rebuild is running" in done.stderr
    finally:
        holder.kill()
        holder.wait()
