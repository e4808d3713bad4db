"""The typer CLI end to end: build -> related/more-like-this/popular/info, exit codes, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from recommender.catalogue.demo import demo_files
from recommender.cli import app

runner = CliRunner()


def test_help_imports_nothing_heavy():
    """`--help` and importing the CLI load neither torch, faiss, pandas nor sentence-transformers."""
    code = ("import sys, recommender.cli; heavy = {'torch', 'faiss', 'pandas', 'sentence_transformers', 'numpy'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "related" in result.output


@pytest.mark.slow
def test_build_then_query_from_the_command_line(tmp_path, cache_path):
    """build publishes; related/more-like-this/popular print explained lists; info prints the manifest."""
    articles, views = demo_files()
    root = tmp_path / "indexes"
    result = runner.invoke(app, ["build", str(articles), "--views", str(views), "--indexes", str(root),
                                 "--cache", str(cache_path)])
    assert result.exit_code == 0, result.output
    assert "165 accepted" in result.output
    now = ["--now", "2026-11-27T00:00:00Z", "--indexes", str(root)]
    result = runner.invoke(app, ["related", "demo-001", "-k", "3", "--json", *now])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert len(listed) == 3
    assert {"relatedness", "trending", "freshness", "same_story"} == set(listed[0]["components"])
    result = runner.invoke(app, ["related", "demo-001", "-k", "3", *now])
    assert "relatedness" in result.output and "Tarsova" in result.output
    result = runner.invoke(app, ["more-like-this", "--id", "demo-001", "--not", "demo-003", "-k", "2", *now])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["popular", "-k", "2", "--json", *now])
    assert result.exit_code == 0 and len(json.loads(result.output)) == 2
    result = runner.invoke(app, ["info", "--indexes", str(root), "--verify"])
    assert result.exit_code == 0 and json.loads(result.output)["index"]["count"] == 165


@pytest.mark.slow
def test_user_errors_exit_non_zero_with_one_line(tmp_path, cache_path):
    """Unknown id, bad k, missing index and too many rejects: non-zero exit, one line, no traceback."""
    articles, _ = demo_files()
    root = tmp_path / "indexes"
    assert runner.invoke(app, ["build", str(articles), "-i", str(root), "--cache", str(cache_path)]).exit_code == 0
    for args, message in [
        (["related", "no-such-id", "-i", str(root)], "unknown article id 'no-such-id'"),
        (["related", "demo-001", "-k", "0", "-i", str(root)], "k must be an integer from 1 to 100"),
        (["related", "demo-001", "-i", str(tmp_path / "empty")], "not a build directory"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and message in result.output
        assert "Traceback" not in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\n1,\n2,\n3,Fine\n")
    result = runner.invoke(app, ["build", str(bad), "-i", str(root), "--max-reject-ratio", "0.1"])
    assert result.exit_code != 0 and "2 of 3 records rejected" in result.output
