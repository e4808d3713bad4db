"""One query path: the CLI's --json, the Python API, the evaluation's lists and the HTTP routes return the same ids
in the same order with the same scores, for every article of the demo corpus and every 4th of BBC News (557):
related, more-like-this (ids, negatives, text) and popular."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender.cli import app as cli
from recommender.evaluation.baselines import EngineMethod
from recommender.query import Recommender
from recommender.service.app import create_app

from .conftest import DEMO_NOW
from .service_helpers import make_settings, publish_copy

pytestmark = pytest.mark.slow
NOW = pd.Timestamp(DEMO_NOW).to_pydatetime()


def listed(items: list[dict]) -> list[tuple[str, float]]:
    """What a list shows, as the JSON of every path has it: ids in order with their (6-decimal) scores."""
    return [(item["article_id"], item["score"]) for item in items]


def api(results) -> list[tuple[str, float]]:
    """The Python API's results in the same form."""
    return listed([r.to_dict() for r in results])


@pytest.fixture(params=["demo", "bbc"])
def corpus(request, tmp_path, demo_root, embedder):
    """(indexes root with a private copy of the build, the loaded build, the ids to query, texts to query)."""
    source = request.getfixturevalue("bbc_engine").directory if request.param == "bbc" else \
        Recommender.load(demo_root, verify=False).directory
    root = tmp_path / "indexes"
    publish_copy(root, source)
    engine = Recommender.load(root, embedder=embedder)
    # Every 4th BBC article: each id is asked of four paths, as related and twice as more-like-this (all 2,225
    # took ~55 s of the suite).
    ids = [str(a) for a in engine.table.ids[::4 if request.param == "bbc" else 1]]
    # Free text costs an embedding per path and query: every 15th title of BBC, every 5th of the demo.
    step = 15 if request.param == "bbc" else 5
    texts = [str(t) for t in engine.table.titles[::step]]
    return root, engine, ids, texts


def test_cli_api_evaluation_and_http_give_the_same_lists(corpus, embedder, tmp_path):
    """Every path ranks through the one Recommender: identical lists for every article and query."""
    root, engine, ids, texts = corpus
    runner = CliRunner()
    with TestClient(create_app(make_settings(root), embedder=embedder, clock=lambda: NOW)) as client:
        # related: the installed `recommender` entry point (one process, every id), the API, the evaluation, HTTP
        script = str(Path(sys.executable).parent / "recommender")
        out = subprocess.run([script, "related", *ids, "-k", "6", "--now", DEMO_NOW, "--json", "-i", str(root)],
                             capture_output=True, text=True, check=True)
        by_cli = json.loads(out.stdout)
        evaluated = EngineMethod("full_blend", engine, NOW).related_lists(ids, 6)
        for article_id, lists_of_eval in zip(ids, evaluated):
            want = api(engine.related(article_id, k=6, now=NOW))
            http = client.get(f"/v1/articles/{article_id}/related", params={"k": 6}).json()["items"]
            assert listed(by_cli[article_id]) == want, article_id
            assert listed(http) == want, article_id
            assert lists_of_eval == [a for a, _ in want], article_id
        # more like this: by ids, with negatives, and free text
        queries = [{"ids": [a]} for a in ids]
        queries += [{"ids": [a], "negative_ids": [b]} for a, b in zip(ids, ids[1:] + ids[:1])]
        queries += [{"text": t} for t in texts]
        path = tmp_path / "queries.jsonl"
        path.write_text("\n".join(json.dumps({**q, "k": 5}) for q in queries))
        result = runner.invoke(cli, ["more-like-this", "--queries", str(path), "--now", DEMO_NOW, "--json", "-i",
                                     str(root)])
        assert result.exit_code == 0, result.output
        by_cli = json.loads(result.stdout)
        assert len(by_cli) == len(queries)
        for query, cli_list in zip(queries, by_cli):
            results = engine.more_like_this(**query, k=5, now=NOW)
            want = api(results)
            # Five, or fewer when the relatedness floor left the list short and the fallback (popular in the
            # section: BBC has no views) had no more.
            floor = engine.ranking.more_like_this_floor
            assert len(want) == 5 or floor is not None and all(
                r.relatedness >= floor for r in results if r.source == "ranked"), query
            assert listed(cli_list) == want, query
            assert listed(client.post("/v1/more-like-this", json={**query, "k": 5}).json()["items"]) == want, query
        # popular
        for params in ({"k": 10}, {"k": 5, "window_hours": 24}, {"k": 5, "section": str(engine.table.sections[0])}):
            options = [f"--{key.replace('_', '-')}={value}" for key, value in params.items() if key != "k"]
            result = runner.invoke(cli, ["popular", "-k", str(params["k"]), *options, "--now", DEMO_NOW, "--json",
                                         "-i", str(root)])
            assert result.exit_code == 0, result.output
            want = api(engine.popular(**params, now=NOW))
            assert want or not len(engine.stored.events), params  # the demo has views: its lists are not empty
            assert listed(json.loads(result.stdout)) == want, params
            assert listed(client.get("/v1/popular", params=params).json()["items"]) == want, params
