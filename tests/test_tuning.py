"""Tuning: pair mining, click pairs, the gate's rules, refused model directories, and one real tuning of the
packaged MiniLM on the demo corpus that a build then uses (and re-embeds for)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recommender.catalogue.demo import demo_files
from recommender.embedding.models import pooled_dims
from recommender.embedding.tuned import GATE_FILE, TunedIdentity, check_usable, describe
from recommender.errors import InvalidCatalogueError, RecommenderError
from recommender.tuning.clicks import click_pairs, popularity_negatives, read_clicks
from recommender.tuning.config import GateSettings, TuneConfig
from recommender.tuning.gate import judge, pair_recall
from recommender.tuning.mining import cap_pairs, mine_site_pairs, pairs_digest, split_rows

DATA = Path(os.environ.get("RECOMMENDER_DATA", "/work/shared/data"))


def articles_frame() -> pd.DataFrame:
    sections = ["sport"] * 4 + ["politics"] * 4 + ["business"] * 4
    body = " ".join(f"word{i}" for i in range(80))
    return pd.DataFrame({"id": [f"a{i}" for i in range(12)], "title": [f"Headline {i}" for i in range(12)],
                         "abstract": "", "body": body, "section": sections})


def test_split_is_seeded_and_does_not_move_when_the_catalogue_grows():
    """An article's side of the split depends only on its id and the seed."""
    ids = [f"id-{n}" for n in range(2000)]
    held = split_rows(ids, 0.2, seed=3)
    assert 0.15 < held.mean() < 0.25
    assert (split_rows(ids + ["new-1", "new-2"], 0.2, seed=3)[:2000] == held).all()
    assert (split_rows(ids, 0.2, seed=4) != held).any()


def test_site_pairs_stay_in_their_group_and_their_side_of_the_split():
    """Section and story pairs join two articles of one section / story, both from the rows mined."""
    articles = articles_frame()
    stories = np.array(["s1", "s1", "s2", "s3", "s4", "s4", "s5", "s6", "s7", "s8", "s9", "s9"], dtype=object)
    rows = np.arange(0, 12, 2)  # one side of a split: the even rows
    texts = [f"text {i}" for i in range(12)]
    pairs = mine_site_pairs(articles, texts, stories, np.arange(12), rows, ["section", "story", "headline"], 1, 200,
                            np.random.default_rng(0))
    group_kinds = pairs[pairs["kind"].isin(["section", "story"])]
    assert set(group_kinds["kind"]) == {"section"}  # no story has two even rows
    assert all(articles["section"][a] == articles["section"][p]
               for a, p in zip(group_kinds["anchor_row"], group_kinds["positive_row"]))
    assert set(pairs["anchor_row"]) <= set(rows) and set(group_kinds["positive_row"]) <= set(rows)
    headline = pairs[pairs["kind"] == "headline"]
    assert len(headline) == len(rows) and headline["anchor"].str.startswith("Headline").all()
    assert (headline["positive_row"] == -1).all()


def test_cap_pairs_spreads_over_kinds_and_the_digest_follows_the_pairs():
    """The cap keeps an equal share of each kind; a changed pair changes the training digest."""
    pairs = pd.DataFrame({"anchor": [f"a{i}" for i in range(30)], "positive": [f"p{i}" for i in range(30)],
                          "kind": ["story"] * 5 + ["section"] * 25, "group": 0})
    capped = cap_pairs(pairs, 10, np.random.default_rng(0))
    assert capped["kind"].value_counts().to_dict() == {"story": 5, "section": 5}
    changed = capped.copy()
    changed.loc[0, "positive"] = "other"
    assert pairs_digest(capped) != pairs_digest(changed) and pairs_digest(capped) == pairs_digest(capped.copy())


def test_clicks_without_a_source_or_a_reader_are_refused_naming_the_row(tmp_path):
    """A click row must say where it was followed from or who read it."""
    path = tmp_path / "clicks.csv"
    path.write_text("article_id,source_id,user_id\na1,a2,\na3,,\n")
    with pytest.raises(InvalidCatalogueError, match="clicks row 2: needs an article_id and a source_id"):
        read_clicks(path)
    path.write_text("article_id,user_id,count\na1,u1,0\n")
    with pytest.raises(InvalidCatalogueError, match="clicks row 1: count must be a positive integer"):
        read_clicks(path)


def test_click_pairs_cap_popular_articles_and_negatives_follow_popularity():
    """A hub article anchors at most the cap; negatives are never co-read with the anchor and are drawn by
    popularity (the popular article is drawn more than a rare one)."""
    rows = {f"a{i}": i for i in range(6)}
    reads = [(f"u{n}", "a0") for n in range(30)] + [(f"u{n}", f"a{1 + n % 4}") for n in range(30)]
    clicks = read_clicks(pd.DataFrame(reads, columns=["user_id", "article_id"]).sort_values("user_id"))
    followed = read_clicks(pd.DataFrame({"article_id": ["a1"], "source_id": ["a5"]}))
    pairs, linked = click_pairs(pd.concat([clicks, followed]), rows, 3, np.random.default_rng(0))
    assert sum(1 for a, _, _ in pairs if a == 0) <= 3
    assert {k for _, _, k in pairs} == {"co_read", "followed"}
    counts = np.array([300.0, 1, 1, 1, 1, 1])
    negatives = popularity_negatives([5] * 400, counts, {5: {1}}, np.random.default_rng(0))
    assert 5 not in negatives and 1 not in negatives
    assert negatives.count(0) > 2 * negatives.count(2)


def test_gate_needs_a_real_gain_on_must_beat_metrics_and_tolerates_small_losses_elsewhere():
    """Beat the base on the must-beat metrics, stay within tolerance on the rest; an unmeasured metric fails."""
    settings = GateSettings(must_beat=("semeval_en_pearson",), tolerance=0.01)
    base = {"semeval_en_pearson": 0.85, "site_section_p@10": 0.80}
    assert judge(base, {"semeval_en_pearson": 0.86, "site_section_p@10": 0.795}, settings).accepted
    refused = judge(base, {"semeval_en_pearson": 0.86, "site_section_p@10": 0.78}, settings)
    assert not refused.accepted and "site_section_p@10" in refused.reason
    assert not judge(base, {"semeval_en_pearson": 0.85, "site_section_p@10": 0.9}, settings).accepted  # a tie
    assert not judge({}, {}, settings).accepted  # SemEval not measured
    assert "FAIL" in refused.table() and refused.to_dict()["status"] == "refused"
    with pytest.raises(ValueError, match="unknown gate metric"):
        GateSettings(must_beat=("bleu",))


def test_pair_recall_finds_the_positive_among_all_positives():
    """Recall@k of held-out pairs: 1 when each anchor's nearest positive is its own, lower when it is not."""
    eye = np.eye(4, dtype=np.float32)
    vectors = {"a1": eye[0], "a2": eye[1], "p1": eye[0], "p2": eye[1], "p3": eye[2]}
    assert pair_recall(vectors, ["a1", "a2"], ["p1", "p2"], k=1) == 1.0
    assert pair_recall(vectors, ["a1", "a2"], ["p2", "p1"], k=1) == 0.0
    with pytest.raises(ValueError):
        TuneConfig(kinds=("nope",))


def _tuned_dir(path: Path, status: str | None) -> Path:
    path.mkdir()
    TunedIdentity("tuned/x/abc", "base", "f" * 64, "d" * 64, "2026-01-01T00:00:00Z").save(path)
    if status:
        (path / GATE_FILE).write_text(json.dumps({"status": status, "reason": "failed: semeval"}))
    return path


def test_a_refused_or_never_gated_tuned_model_is_refused_unless_allowed(tmp_path):
    """Only a tuned directory its gate accepted is used by default; --allow-refused overrides."""
    assert check_usable(_tuned_dir(tmp_path / "ok", "accepted")).name == "tuned/x/abc"
    with pytest.raises(RecommenderError, match="refused by its gate.*--allow-refused"):
        check_usable(_tuned_dir(tmp_path / "no", "refused"))
    with pytest.raises(RecommenderError, match="never gated"):
        check_usable(_tuned_dir(tmp_path / "half", None))
    assert check_usable(tmp_path / "no", allow_refused=True) is not None
    assert check_usable(tmp_path) is None  # not a tuned model: nothing to check
    assert describe(str(tmp_path / "no"))["gate"] == "refused"


def test_pooled_dims_reads_the_key_sentence_transformers_6_saves(tmp_path):
    """sentence-transformers 6 saves "embedding_dimension", older versions "word_embedding_dimension"."""
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"embedding_dimension": 384}')
    assert pooled_dims(tmp_path) == 384


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory):
    """One real tuning of the packaged MiniLM on the demo corpus (one step), refused by an impossible gain."""
    from recommender.cli import app

    folder = tmp_path_factory.mktemp("tuned")
    out, articles = folder / "model", folder / "articles.jsonl"
    # 60 of the demo's 165 articles keep the test within a minute on two cores.
    articles.write_text("".join(demo_files()[0].read_text().splitlines(keepends=True)[:60]))
    result = CliRunner().invoke(app, ["tune", "--articles", str(articles), "--out", str(out), "--max-steps", "1",
                                      "--batch-size", "4", "--max-pairs", "16", "--semeval-limit", "8",
                                      "--min-gain", "1", "--data", str(DATA), "--lr", "1e-4"])
    return out, articles, result


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tune_writes_a_new_model_identity_and_a_refused_verdict(tuned_model):
    """`tune` saves a model whose vectors differ from its base, its identity, and the gate table; a model that
    fails the gate exits 3 and is marked refused."""
    from recommender.config import EmbedderConfig
    from recommender.embedding.factory import make_embedder

    out, _, result = tuned_model
    assert result.exit_code == 3, result.output
    assert "refused" in result.output and "semeval_en_pearson" in result.output
    identity = json.loads((out / "tuned_model.json").read_text())
    assert identity["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert identity["name"] == f"tuned/all-MiniLM-L6-v2/{identity['training_digest'][:12]}"
    assert identity["recipe"]["train"]["steps"] == 1
    verdict = json.loads((out / GATE_FILE).read_text())
    assert verdict["status"] == "refused"
    assert {r["metric"] for r in verdict["table"]} >= {"semeval_en_pearson", "site_pairs_recall@10"}
    base = make_embedder(EmbedderConfig())
    tuned = make_embedder(EmbedderConfig(model=str(out), allow_refused=True))
    assert tuned.identity.name == identity["name"] and tuned.identity.fingerprint != base.identity.fingerprint
    assert tuned.identity.dims == 384
    texts = ["Chancellor raises fuel duty in winter budget", "Harbour bridge workers strike over pay"]
    assert not np.allclose(base.encode(texts), tuned.encode(texts), atol=1e-4)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_build_refuses_a_refused_model_and_re_embeds_everything_for_an_allowed_one(tuned_model, tmp_path):
    """`build --model DIR` refuses a refused tuning; with --allow-refused it embeds every article anew (no reuse of
    the base model's vectors or cache) and the manifest records the tuned identity."""
    from recommender.cli import app
    from recommender.storage.manifest import read_manifest
    from recommender.storage.versions import IndexStore

    out, articles, _ = tuned_model
    runner, root = CliRunner(), tmp_path / "indexes"
    refused = runner.invoke(app, ["build", str(articles), "--indexes", str(root), "--model", str(out)])
    assert refused.exit_code == 2 and "refused by its gate" in refused.output
    assert runner.invoke(app, ["build", str(articles), "--indexes", str(root)]).exit_code == 0
    allowed = runner.invoke(app, ["build", str(articles), "--indexes", str(root), "--model", str(out),
                                  "--allow-refused"])
    assert allowed.exit_code == 0, allowed.output
    manifest = read_manifest(IndexStore(root).current())
    identity = json.loads((out / "tuned_model.json").read_text())
    assert manifest.embedder["name"] == identity["name"]
    assert manifest.source["tuned_model"]["training_digest"] == identity["training_digest"]
    assert manifest.source["tuned_model"]["gate"] == "refused"
    assert manifest.source["reused"] == 0 and manifest.source["cached"] == 0
    assert manifest.source["embedded"] == manifest.count


def test_the_loss_masks_in_batch_candidates_of_the_anchors_group_only():
    """Same-group candidates are no negatives (-inf); the own positive and own negative stay; group -1 masks
    nothing."""
    import torch

    from recommender.tuning.training import masked_loss

    loss = masked_loss(torch.nn.Linear(2, 2))  # the masking needs no real model
    loss._groups = torch.tensor([0, 0, 1, -1])
    vectors = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    scores = loss._masked(vectors, torch.cat([vectors, vectors]))  # positives, then one negative column
    masked = torch.isinf(scores)
    expected = torch.zeros(4, 8, dtype=torch.bool)
    for row, col in ((0, 1), (1, 0), (0, 5), (1, 4)):
        expected[row, col] = True
    assert torch.equal(masked, expected)


def test_hard_negatives_skip_the_positive_the_anchors_groups_and_the_other_side():
    """A hard negative is a near neighbour in no group of the anchor's, on the allowed side of the split."""
    from recommender.tuning.neighbours import hard_negatives, nearest

    vectors = np.eye(6, dtype=np.float32) + 0.1
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows, _ = nearest(vectors, 5)
    sections = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    allowed = np.array([True, True, True, False, True, True])
    found = hard_negatives(np.array([0]), np.array([1]), rows, [sections], allowed, skip=0)
    assert found[0] in (2, 4, 5)
    assert hard_negatives(np.array([0]), np.array([1]), rows, [sections], allowed, skip=5)[0] == -1
