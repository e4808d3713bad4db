"""`recommender rebuild / versions / rollback / gc`: exit codes, JSON log lines, atomic rollback, clean-up."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from typer.testing import CliRunner

from recommender.build import rebuild
from recommender.catalogue.demo import demo_files
from recommender.cli import app
from recommender.cli.runlog import EXIT_GATE_FAILED, EXIT_INVALID_INPUT, EXIT_PUBLISHED
from recommender.storage.versions import IndexStore

pytestmark = pytest.mark.slow


def _rebuild(*args: str):
    articles, views = demo_files()
    return CliRunner().invoke(app, ["rebuild", "--articles", str(articles), "--views", str(views), *args])


def test_rebuild_exit_codes_and_structured_log(tmp_path, cache_path):
    """0 publishes with JSON stage lines and a summary; bad input exits 2; a failed gate exits 3; a dry run
    publishes nothing."""
    root = tmp_path / "idx"
    ok = _rebuild("--indexes", str(root), "--cache", str(cache_path))
    assert ok.exit_code == EXIT_PUBLISHED, ok.output
    assert ok.stdout.strip().splitlines()[-1].startswith("published ")
    events = [json.loads(line) for line in ok.stderr.splitlines()]  # stderr is not a terminal: JSON only
    assert [e["stage"] for e in events if e["event"] == "stage"] == [
        "read", "embed", "index", "neighbours", "related", "stories", "write", "verify", "gates", "publish"]
    final = events[-1]
    assert final["event"] == "rebuild" and final["published"] and final["new"] == final["articles"] == 165
    assert {g["name"] for g in final["gates"]} == {"self_match", "count_drop", "few_related", "model_identity"}

    missing = CliRunner().invoke(app, ["rebuild", "--articles", str(tmp_path / "nope.csv"), "--indexes", str(root)])
    assert missing.exit_code == EXIT_INVALID_INPUT and "nope.csv does not exist" in missing.stderr

    strict = tmp_path / "strict.toml"
    strict.write_text("[gates]\nmin_related_similarity = 0.99\n")
    gated = _rebuild("--indexes", str(root), "--cache", str(cache_path), "--config", str(strict))
    assert gated.exit_code == EXIT_GATE_FAILED, gated.output
    assert gated.stdout.startswith("NOT published (gate failed)")
    error = json.loads(gated.stderr.splitlines()[-1])
    assert error["kind"] == "gate_failed" and "few_related: FAILED" in error["message"]

    dry = _rebuild("--indexes", str(root), "--cache", str(cache_path), "--dry-run")
    assert dry.exit_code == EXIT_PUBLISHED and dry.stdout.startswith("not published (dry run)")
    assert len(IndexStore(root).versions()) == 1


def test_versions_rollback_and_gc(tmp_path, embedder, cache_path):
    """versions lists builds with * on current; rollback moves current (verified first); gc keeps current."""
    root = tmp_path / "idx"
    builds = [rebuild(demo_files()[0], root, embedder=embedder, cache_path=cache_path).build_id for _ in range(3)]
    store, runner = IndexStore(root), CliRunner()

    listed = json.loads(runner.invoke(app, ["versions", "--indexes", str(root), "--json"]).stdout)
    assert [v["build_id"] for v in listed] == builds and [v["current"] for v in listed] == [False, False, True]
    assert listed[0]["new"] == 165 and listed[1]["unchanged"] == 165 and listed[2]["articles"] == 165
    table = runner.invoke(app, ["versions", "--indexes", str(root)]).stdout.splitlines()
    assert table[-1].startswith(f"* {builds[2]}") and "165 articles" in table[-1]

    back = runner.invoke(app, ["rollback", "--indexes", str(root)])
    assert back.exit_code == 0 and back.stdout.strip() == f"current -> {builds[1]} (was {builds[2]})"
    assert store.current().name == builds[1] and store.current_link.is_symlink()
    assert runner.invoke(app, ["rollback", builds[0], "--indexes", str(root)]).exit_code == 0
    assert store.current().name == builds[0]

    from recommender.build.lock import RebuildLock

    with RebuildLock(root):
        locked = runner.invoke(app, ["rollback", builds[2], "--indexes", str(root)])
    assert locked.exit_code == 2 and "another rebuild is running" in locked.stderr
    assert store.current().name == builds[0]
    unknown = runner.invoke(app, ["rollback", "20990101T000000Z-000000", "--indexes", str(root)])
    assert unknown.exit_code == 2 and "is not in" in unknown.stderr
    (store.builds / builds[2] / "ids.npy").write_bytes(b"damaged")
    damaged = runner.invoke(app, ["rollback", builds[2], "--indexes", str(root)])
    assert damaged.exit_code == 2 and "does not match its sha256" in damaged.stderr
    assert store.current().name == builds[0]

    (store.builds / ".stage-leftover").mkdir()
    cleaned = runner.invoke(app, ["gc", "--keep", "1", "--indexes", str(root)])
    assert cleaned.exit_code == 0 and "removed 1 old build(s) and 1 stale" in cleaned.stdout
    assert [p.name for p, _ in store.versions()] == [builds[0], builds[2]]  # newest kept, and current
    assert not (root / "rejects" / f"{builds[1]}.csv").exists() and (root / "rejects" / f"{builds[0]}.csv").exists()


def test_build_ids_sort_by_creation_time_within_a_second():
    """Builds made in the same second keep their order (gc keeps the newest; it once kept a random one)."""
    from datetime import datetime

    from recommender.storage.versions import new_build_id

    stamps = [datetime(2026, 11, 27, 2, 0, 0, micro, tzinfo=UTC) for micro in (5, 40, 999_999)]
    ids = [new_build_id(s) for s in stamps]
    assert sorted(ids) == ids and ids[0].startswith("20261127T020000Z-000005")


def test_semeval_metric_gate_is_wired(tmp_path, cache_path, monkeypatch):
    """--metric-gate semeval scores each build with the evaluation package and compares it with current's."""
    from .conftest import DATA

    monkeypatch.setenv("RECOMMENDER_DATA", str(DATA))
    from recommender.embedding import make_embedder
    from recommender.evaluation import semeval_pearson

    root = tmp_path / "idx"
    first = _rebuild("--indexes", str(root), "--cache", str(cache_path), "--metric-gate", "semeval")
    assert first.exit_code == EXIT_PUBLISHED, first.output
    gate = [g for g in json.loads(first.stderr.splitlines()[-1])["gates"] if g["name"] == "metric:semeval"][0]
    # The gate's number is the evaluation package's Pearson for this model (computed here independently).
    expected = semeval_pearson(make_embedder(), DATA, cache_path=cache_path)
    assert gate["passed"] and gate["value"] == pytest.approx(expected, abs=1e-9) and expected > 0.8
    # It compares with current: a rebuild that must improve by 0.01 (it cannot: same model) fails, exit 3.
    strict = tmp_path / "improve.toml"
    strict.write_text("[gates]\nmax_metric_drop = -0.01\n")
    second = _rebuild("--indexes", str(root), "--cache", str(cache_path), "--metric-gate", "semeval", "--config",
                      str(strict))
    assert second.exit_code == EXIT_GATE_FAILED, second.output
    assert f"semeval {expected:.4f} vs {expected:.4f} in current" in second.stderr
    unknown = _rebuild("--indexes", str(root), "--metric-gate", "ndcg")
    assert unknown.exit_code == EXIT_INVALID_INPUT and "--metric-gate 'ndcg' is unknown" in unknown.stderr
