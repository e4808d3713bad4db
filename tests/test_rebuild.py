"""Nightly rebuild (issue 4): incremental diff and embedding, quality gates, dry run, a PostgreSQL catalogue."""

from __future__ import annotations

import dataclasses
import json
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recommender.build import rebuild
from recommender.catalogue import embedding_texts, read_catalogue
from recommender.catalogue.demo import demo_files
from recommender.config import BuildConfig, GateConfig
from recommender.embedding import EmbeddingCache, text_key
from recommender.errors import GateFailedError
from recommender.query import Recommender
from recommender.storage.versions import IndexStore

from .conftest import PG_URL
from .manifests import reseal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_frame() -> pd.DataFrame:
    """The demo catalogue as a DataFrame (the ``story`` key kept for the metric gate)."""
    articles, _ = demo_files()
    return pd.read_json(articles, lines=True, dtype={"id": str})


@pytest.fixture()
def root(tmp_path, demo_frame, embedder, cache_path):
    """An indexes root whose current build is the demo corpus."""
    rebuild(demo_frame.drop(columns=["story"]), tmp_path, embedder=embedder, cache_path=cache_path)
    return tmp_path


def _gates(**changes: object) -> BuildConfig:
    return BuildConfig(gates=dataclasses.replace(GateConfig(), **changes))


def test_incremental_rebuild_embeds_only_new_and_changed(root, demo_frame, embedder, cache_path):
    """3 edited + 1 new article are embedded (nothing else); 2 deleted ones disappear; counts say so."""
    marker = uuid.uuid4().hex  # unseen text: a guaranteed cache miss on every run of the suite
    frame = demo_frame.drop(columns=["story"]).copy()
    edited = frame["id"].iloc[:3].tolist()
    frame.loc[frame["id"].isin(edited), "body"] += f" Update {marker}: officials confirmed the figures."
    deleted = frame["id"].iloc[3:5].tolist()
    frame = frame[~frame["id"].isin(deleted)]
    added = {**frame.iloc[10].to_dict(), "id": f"new-{marker[:8]}", "title": f"Fresh report {marker}"}
    frame = pd.concat([frame, pd.DataFrame([added])], ignore_index=True)
    before = IndexStore(root).current()

    report = rebuild(frame, root, embedder=embedder, cache_path=cache_path)

    assert report.published and report.previous == before.name
    assert (report.diff.new, report.diff.changed, report.diff.deleted) == (1, 3, 2)
    assert report.diff.unchanged == len(demo_frame) - 5
    assert report.embedded == 4 and report.reused == len(demo_frame) - 5 and report.cached == 0
    assert set(report.seconds) >= {"read", "embed", "index", "neighbours", "write", "verify", "gates", "publish"}
    engine = Recommender.load(root, embedder=embedder)
    assert not set(deleted) & set(engine.table.ids) and added["id"] in engine.row_of
    texts = embedding_texts(read_catalogue(frame).articles, BuildConfig().embedder.max_chars)
    rows = [engine.row(i) for i in [*edited, added["id"]]]
    fresh = embedder.encode([texts[r] for r in rows])
    np.testing.assert_allclose(engine.table.vectors[rows], fresh, atol=1e-5)
    assert json.loads((engine.directory / "manifest.json").read_text())["source"]["diff"]["changed"] == 3


def test_count_drop_gate_blocks_publishing(root, demo_frame, embedder, cache_path):
    """Losing half the catalogue fails the count gate with the size of the drop; current stays."""
    store = IndexStore(root)
    before = store.current()
    with pytest.raises(GateFailedError, match=r"count_drop: FAILED: 82 articles vs 165 in current \(-50.3%\)"
                                              r".*exceeded by 30.3%") as failure:
        rebuild(demo_frame.drop(columns=["story"]).iloc[:82], root, embedder=embedder, cache_path=cache_path)
    assert [g.name for g in failure.value.failures] == ["count_drop"]
    assert store.current() == before and len(store.versions()) == 1
    assert not list(store.builds.glob(".stage-*"))


def test_few_related_gate_reports_the_share(root, demo_frame, embedder, cache_path):
    """With an unreachable similarity bar every article has too few related ones; the message gives the share."""
    with pytest.raises(GateFailedError, match=r"few_related: FAILED: 100.0% of articles have fewer than 3 related "
                                              r"at cosine >= 0.99.*exceeded by 50.0%"):
        rebuild(demo_frame.drop(columns=["story"]), root, embedder=embedder, cache_path=cache_path,
                config=_gates(min_related_similarity=0.99))


def test_model_identity_gate_catches_a_foreign_cache_and_model(tmp_path, demo_frame, embedder):
    """Vectors cached by another model (random here) fail the probe; a current built by another model fails too."""
    frame = demo_frame.drop(columns=["story"])
    keys = [text_key(t) for t in embedding_texts(read_catalogue(frame).articles, 1_500)]
    cache = EmbeddingCache(tmp_path / "foreign.sqlite")
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(keys), embedder.identity.dims)).astype(np.float32)
    cache.put(embedder.identity.fingerprint + embedder.identity.backend, keys,
              noise / np.linalg.norm(noise, axis=1, keepdims=True))
    cache.close()
    with pytest.raises(GateFailedError, match="model_identity: FAILED: re-embedding 8 cached texts differs"):
        rebuild(frame, tmp_path / "idx", embedder=embedder, cache_path=tmp_path / "foreign.sqlite")
    assert IndexStore(tmp_path / "idx").current() is None


def test_model_identity_probe_tolerates_reduced_precision_rounding_only():
    """bf16 vectors move ~1e-3 with their batch: tolerated for a bf16 identity, not for fp32; a foreign model's
    vectors (differences of tenths) fail both."""
    from recommender.build.gates import model_identity
    from recommender.embedding import ModelIdentity

    rng = np.random.default_rng(0)
    stored = rng.normal(size=(8, 16)).astype(np.float32)

    class Fixed:
        def __init__(self, backend: str, vectors: np.ndarray) -> None:
            self.identity = ModelIdentity("m", 16, "f" * 64, backend)
            self.vectors = vectors

        def encode(self, texts, progress=False):  # noqa: ANN001, ANN201 - the Embedder protocol
            return self.vectors

    rounded = stored + 1e-3
    foreign = rng.normal(size=(8, 16)).astype(np.float32)
    texts = ["t"] * 8
    for backend, vectors, passes in (("torch-bf16", rounded, True), ("torch-fp32", rounded, False),
                                     ("torch-bf16", foreign, False), ("onnx-int8", foreign, False)):
        embedder = Fixed(backend, vectors)
        result = model_identity(embedder.identity, embedder.identity, embedder, texts, stored, GateConfig())
        assert result.passed is passes, (backend, result.message)


def test_model_change_against_current_needs_explicit_permission(root, demo_frame, embedder, cache_path):
    """A current build made by another model blocks the rebuild unless allow_model_change is set."""
    reseal(IndexStore(root).current(), lambda data: data["embedder"].update(fingerprint="0" * 64))
    frame = demo_frame.drop(columns=["story"])
    with pytest.raises(GateFailedError, match=r"differs from current.s .*\(fingerprint 000000000000"):
        rebuild(frame, root, embedder=embedder, cache_path=cache_path)
    report = rebuild(frame, root, embedder=embedder, cache_path=cache_path, config=_gates(allow_model_change=True))
    assert report.published and report.reused == 0 and report.cached == len(frame)


def test_metric_gate_blocks_a_worse_build(root, demo_frame, embedder, cache_path):
    """An evaluation metric (same-story share of each article's top related) that falls blocks publishing."""
    story = dict(zip(demo_frame["id"], demo_frame["story"]))

    def same_story_at_1(directory) -> float:
        engine = Recommender.load(directory, verify=False)
        top = np.asarray(engine.related_rows[:, 0])
        return float(np.mean([story[a] == story[engine.table.ids[t]] for a, t in zip(engine.table.ids, top)]))

    frame = demo_frame.drop(columns=["story"])
    # Texts moved to the wrong ids: every text is still cached, but the related lists no longer match the stories.
    text_columns = ["title", "abstract", "body"]
    shuffled = frame.copy()
    shuffled[text_columns] = frame[text_columns].sample(frac=1.0, random_state=1).to_numpy()
    # A worse build is published first (the gate allowed to drop), then the good catalogue rebuilds over it: the
    # gate's value is the drop from current, -(improvement), computed here independently of the gate.
    worse = rebuild(shuffled, root, embedder=embedder, cache_path=cache_path, metric=same_story_at_1,
                    metric_name="s@1", config=_gates(max_metric_drop=1.0))
    ok = rebuild(frame, root, embedder=embedder, cache_path=cache_path, metric=same_story_at_1, metric_name="s@1")
    drop = same_story_at_1(worse.path) - same_story_at_1(ok.path)
    assert drop < -0.3  # a real improvement, not two identical builds
    assert ok.published and ok.gates[-1].name == "metric:s@1" and ok.gates[-1].value == pytest.approx(drop)
    with pytest.raises(GateFailedError, match=r"metric:s@1: FAILED: s@1 0\.\d+ vs 0\.\d+ in current"):
        rebuild(shuffled, root, embedder=embedder, cache_path=cache_path, metric=same_story_at_1, metric_name="s@1")


def test_dry_run_runs_the_gates_but_publishes_nothing(root, demo_frame, embedder, cache_path):
    """publish=False still reports every gate, and current and the version list stay as they were."""
    store = IndexStore(root)
    before = store.current()
    report = rebuild(demo_frame.drop(columns=["story"]), root, embedder=embedder, cache_path=cache_path,
                     publish=False)
    assert not report.published and len(report.gates) == 4 and not report.failed_gates
    assert store.current() == before and len(store.versions()) == 1 and report.path is None
    assert not list(store.builds.glob(f"*{report.build_id}*"))  # the staged folder is gone


def test_rebuild_from_a_postgresql_table_and_query(tmp_path, demo_frame, embedder, cache_path):
    """A catalogue (a table, then a SELECT) and page views in PostgreSQL rebuild like files do."""
    table = f"articles_{uuid.uuid4().hex[:10]}"
    frame = demo_frame.drop(columns=["story"]).copy()
    frame["tags"] = frame["tags"].map(lambda tags: ";".join(tags))
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    views = pd.read_csv(demo_files()[1])
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    frame.to_sql(table, engine, index=False)
    views.to_sql(f"{table}_views", engine, index=False)
    try:
        report = rebuild(f"{PG_URL}#{table}", tmp_path, views_source=f"{PG_URL}#{table}_views", embedder=embedder,
                         cache_path=cache_path)
        assert report.published and report.articles == len(frame) and report.rejected == 0
        assert report.views == len(views) and report.views_rejected == 0
        loaded = Recommender.load(tmp_path, embedder=embedder)
        assert list(loaded.table.ids) == frame["id"].tolist()
        assert loaded.article("demo-001")["published_at"] == frame["published_at"].iloc[0]
        query = f"{PG_URL}#SELECT * FROM {table} WHERE id <> 'demo-001'"
        again = rebuild(query, tmp_path, embedder=embedder, cache_path=cache_path)
        assert (again.diff.deleted, again.diff.unchanged, again.embedded) == (1, len(frame) - 1, 0)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP TABLE IF EXISTS "{table}", "{table}_views"'))
        engine.dispose()


def test_diff_against_a_build_without_text_hashes(root, demo_frame, embedder, cache_path):
    """A current build from before the text-hash column is diffed by re-deriving its embedded texts."""
    current = IndexStore(root).current()
    articles_file = current / "articles.parquet"
    articles_file.chmod(0o644)
    pd.read_parquet(articles_file).drop(columns=["text_sha256"]).to_parquet(articles_file, index=False)
    reseal(current, refreshed=("articles.parquet",), legacy=True)
    report = rebuild(demo_frame.drop(columns=["story"]), root, embedder=embedder, cache_path=cache_path)
    assert (report.diff.unchanged, report.reused, report.embedded) == (len(demo_frame), len(demo_frame), 0)
