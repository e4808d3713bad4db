"""The evaluation harness end to end on real data: every method in one run, the gate metric, sweeps, the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.evaluation import EvaluationConfig, evaluate, format_table, semeval_gate, semeval_pearson
from recommender.evaluation.datasets import load_reuters
from recommender.evaluation.runner import build_or_load
from recommender.evaluation.sweeps import run_sweeps, sweep_dataset

from .conftest import DATA, data_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory, embedder, cache_path):
    """SemEval en-en pairs and the whole BBC catalogue (300 query articles), all five methods, one run."""
    data_path("bbc-news", "bbc_news.csv")
    config = EvaluationConfig(data_dir=DATA, tasks=("semeval", "bbc"), semeval_lang_pairs=("en-en",), queries=300,
                              work_dir=tmp_path_factory.mktemp("evaluation"), cache_path=cache_path)
    return evaluate(config, embedder=embedder)


def metric(result, task: str, method: str, column: str) -> float:
    """One cell of the table."""
    table = result.table.set_index(["task", "method"])
    return float(table.loc[(task, method), column])


def test_every_method_runs_on_every_task(result):
    """One row per task x method, the same query count for every method of a task."""
    table = result.table
    assert sorted(set(table["task"])) == ["bbc section", "semeval en-en"]
    assert table.groupby("task")["method"].apply(sorted).map(len).tolist() == [5, 5]
    assert table.groupby("task")["queries"].nunique().eq(1).all()
    text = format_table(table, 10)
    assert "precision@10" in text and "full_blend" in text


def test_bbc_section_agreement_beats_random_and_popular(result):
    """Embeddings, lexical and the blend find same-section articles far above the random and popular floors."""
    floor = max(metric(result, "bbc section", m, "precision@k") for m in ("random", "most_popular"))
    assert floor < 0.35
    for method in ("lexical", "embeddings", "full_blend"):
        assert metric(result, "bbc section", method, "precision@k") > 0.85 > 2 * floor
    assert metric(result, "bbc section", "most_popular", "coverage") <= 11 / 2225


def test_full_blend_collapses_the_duplicates_embeddings_alone_show(result):
    """BBC's identical bodies appear in embeddings-only lists; the blend's same-story collapse removes them."""
    assert metric(result, "bbc section", "embeddings", "duplicates") > 0.01
    assert metric(result, "bbc section", "full_blend", "duplicates") == 0.0
    assert math.isnan(metric(result, "bbc section", "full_blend", "median_age_h"))  # BBC has no dates


def test_semeval_correlations_and_the_gate_metric(result, embedder, cache_path, tmp_path):
    """Embeddings beat TF-IDF beat random on human judgements; the gate function gives the same Pearson."""
    embeddings = metric(result, "semeval en-en", "embeddings", "pearson")
    lexical = metric(result, "semeval en-en", "lexical", "pearson")
    assert embeddings > 0.8 and embeddings > lexical > 0.6 > abs(metric(result, "semeval en-en", "random", "pearson"))
    assert math.isnan(metric(result, "semeval en-en", "most_popular", "pearson"))
    assert semeval_pearson(embedder, DATA, cache_path=cache_path) == pytest.approx(embeddings, abs=1e-6)
    gate = semeval_gate(DATA, cache_path=cache_path)
    engine = build_or_load(*_semeval_build(tmp_path, cache_path), embedder)
    assert gate(engine.directory) == pytest.approx(embeddings, abs=1e-6)


def _semeval_build(tmp_path, cache_path):
    from recommender.evaluation.datasets import load_semeval

    config = EvaluationConfig(data_dir=DATA, tasks=("semeval",), work_dir=tmp_path, cache_path=cache_path)
    return load_semeval(DATA, lang_pairs=["en-en"]), config


def test_results_are_written_as_json_and_csv(result, tmp_path):
    """results.json holds every row, the notes and the settings; results.csv the same table."""
    csv_path, json_path = result.write(tmp_path / "out")
    written = json.loads(json_path.read_text())
    assert len(written["results"]) == len(result.table) == len(pd.read_csv(csv_path))
    assert set(written["notes"]) == {"semeval", "bbc"} and written["config"]["k"] == 10
    assert "no dates or views" in written["notes"]["bbc"]


def test_freshness_sweep_on_reuters_trades_topic_for_recency(tmp_path, embedder, cache_path):
    """More freshness weight recommends newer stories; the sweep tunes on TRAIN queries and reports on TEST."""
    dataset = load_reuters(DATA, limit=250)
    config = EvaluationConfig(data_dir=DATA, tasks=("reuters",), limit=250, work_dir=tmp_path, cache_path=cache_path)
    engine = build_or_load(dataset, config, embedder)
    curves, choice, how = sweep_dataset(dataset, engine, ["weight_freshness", "mmr_lambda"], per_split=60)
    assert "TRAIN" in how and "TEST" in how
    fresh = curves[(curves["parameter"] == "weight_freshness") & (curves["split"] == "report")].set_index("value")
    assert fresh.loc[0.5, "median_age_h"] < fresh.loc[0.0, "median_age_h"]
    mmr = curves[(curves["parameter"] == "mmr_lambda") & (curves["split"] == "report")].set_index("value")
    assert mmr.loc[0.3, "diversity"] > mmr.loc[1.0, "diversity"]
    assert set(choice["parameter"]) == {"weight_freshness", "mmr_lambda"}
    assert choice.set_index("parameter").loc["weight_freshness", "chosen"] in (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def test_run_sweeps_writes_curves_choices_and_plots(tmp_path, embedder, cache_path):
    """A BBC slice: candidate pool and MMR curves, the choice table and a PNG."""
    config = EvaluationConfig(data_dir=DATA, tasks=("bbc",), limit=150, work_dir=tmp_path / "work",
                              cache_path=cache_path)
    choices, how = run_sweeps(config, tmp_path / "out", embedder=embedder, per_split=40)
    assert set(choices["parameter"]) == {"candidate_count", "mmr_lambda"} and "random half" in how[0]
    assert (tmp_path / "out" / "sweep-bbc.png").stat().st_size > 10_000
    assert len(pd.read_csv(tmp_path / "out" / "sweeps.csv")) == 2 * (6 + 6)


def test_cli_evaluate_end_to_end_on_a_slice(tmp_path, cache_path):
    """`recommender evaluate` on a 120-article BBC slice prints the table and writes JSON and CSV."""
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(DATA), "--task", "bbc", "--limit", "120", "--queries", "30",
            "--method", "random", "--method", "embeddings", "--method", "full_blend", "--work-dir",
            str(tmp_path / "work"), "--cache", str(cache_path), "--out", str(out)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "bbc section" in run.output and "precision@10" in run.output and "results.json" in run.output
    table = pd.read_csv(out / "results.csv")
    assert table["method"].tolist() == ["random", "embeddings", "full_blend"]
    assert (table["queries"] == 30).all()
    assert table.set_index("method").loc["embeddings", "precision@k"] > table.set_index("method").loc[
        "random", "precision@k"]


def test_cli_evaluate_bad_input_names_the_fix(tmp_path):
    """Unknown task or malformed --build: exit 2 with one line naming the value and the choices."""
    run = CliRunner().invoke(app, ["evaluate", "--data", str(DATA), "--task", "nope", "--out", str(tmp_path)])
    assert run.exit_code == 2 and "unknown task(s) ['nope']" in run.output and "bbc" in run.output
    run = CliRunner().invoke(app, ["evaluate", "--data", str(tmp_path), "--task", "bbc", "--out", str(tmp_path)])
    assert run.exit_code == 2 and "bbc_news.csv is missing" in run.output


def test_mind_co_reading_rows_use_views_for_popularity(tmp_path, embedder, cache_path):
    """MIND's 585 co-read articles: most popular finds partners above random and shows its popularity bias."""
    import dataclasses

    from recommender.evaluation.baselines import make_methods
    from recommender.evaluation.datasets import load_mind
    from recommender.evaluation.runner import corpus_rows, reference_time, views_per_row

    mind = load_mind(DATA)
    read = set(mind.co_reading["id1"]) | set(mind.co_reading["id2"])
    mind = dataclasses.replace(mind, articles=mind.articles[mind.articles["id"].isin(read)],
                               views=mind.views[mind.views["article_id"].isin(read)])
    config = EvaluationConfig(data_dir=DATA, tasks=("mind",), work_dir=tmp_path, cache_path=cache_path)
    engine = build_or_load(mind, config, embedder)
    views, now = views_per_row(engine, mind.views), reference_time(mind)
    assert now is not None and views.sum() == len(mind.views)
    methods = make_methods(["random", "most_popular", "full_blend"], engine, mind.articles, views, now)
    rows = {r["method"]: r for r in corpus_rows(mind, methods, engine, views, config, now)}
    assert {r["task"] for r in rows.values()} == {"mind co-reading"} and rows["random"]["queries"] == 585
    assert rows["most_popular"]["recall@k"] > 2 * rows["random"]["recall@k"]
    assert rows["most_popular"]["popularity_bias"] > 0.9 > rows["full_blend"]["popularity_bias"]
    assert abs(rows["random"]["popularity_bias"] - 0.5) < 0.1


def test_cli_evaluate_reports_what_the_rules_change_and_cost(tmp_path, cache_path):
    """`--rules FILE`: a full_blend+rules row per corpus task, with the share of lists the rules changed (checked
    against the two lists compared by hand) and metrics of the lists as served under them (issue 16)."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"kind": "bury", "section": "sport", "multiply": 0.5, "author": "desk",
                                  "reason": "fewer sport links under other stories"},
                                 {"kind": "guardrail", "tag": "politics", "never_beside_tag": "sport",
                                  "author": "desk", "reason": "test"}]))
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(DATA), "--task", "bbc", "--limit", "120", "--queries", "30", "--method",
            "full_blend", "--work-dir", str(tmp_path / "work"), "--cache", str(cache_path), "--out", str(out),
            "--rules", str(rules)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    table = pd.read_csv(out / "results.csv").set_index("method")
    assert table.index.tolist() == ["full_blend", "full_blend+rules"]
    changed = table.loc["full_blend+rules", "lists_changed"]
    # The oracle: the same build with and without the bury, on the same 30 query articles.
    from recommender.evaluation.datasets import load_bbc, query_sample
    from recommender.evaluation.runner import reference_time, relevance
    from recommender.query import Recommender
    from recommender.query.rules import Rule, RuleSet

    dataset = load_bbc(DATA, 120, 0)
    engine = Recommender.load(tmp_path / "work" / "bbc")
    _, relevant = relevance(dataset)
    queries = query_sample(sorted(relevant, key=engine.row_of.__getitem__), 30, 0)
    now = reference_time(dataset)
    ruled = Recommender(engine.stored, rules=RuleSet(tuple(Rule.from_dict(r) for r in json.loads(rules.read_text()))))
    differ = [[r.article_id for r in engine.related(q, k=10, now=now)] !=
              [r.article_id for r in ruled.related(q, k=10, now=now)] for q in queries]
    assert changed == pytest.approx(sum(differ) / len(differ)) and 0 < changed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"kind": "bury", "section": "sport", "multiply": 2, "author": "a", "reason": "b"}]))
    refused = CliRunner().invoke(app, [*args[:-1], str(bad)])
    assert refused.exit_code == 2 and "rule [0]" in refused.output
