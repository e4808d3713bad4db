"""Evaluation metrics against hand-computed values, ties and empty lists included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.evaluation import metrics
from recommender.evaluation.baselines import LexicalMethod, MostPopularMethod, RandomMethod


def test_precision_divides_by_k_and_empty_list_scores_zero():
    """p@k counts relevant items in the first k slots over k; missing slots count as misses."""
    assert metrics.precision_at_k(["a", "b", "c"], {"a", "c", "x"}, 3) == pytest.approx(2 / 3)
    assert metrics.precision_at_k(["a", "b", "c"], {"a", "c", "x"}, 5) == pytest.approx(2 / 5)
    assert metrics.precision_at_k(["a", "b", "c"], {"a", "c", "x"}, 1) == 1.0
    assert metrics.precision_at_k([], {"a"}, 3) == 0.0
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.precision_at_k(["a"], {"a"}, 0)


def test_recall_is_nan_without_relevant_items():
    """r@k = found relevant / all relevant; undefined (NaN) when nothing is relevant."""
    assert metrics.recall_at_k(["a", "b", "c"], {"a", "c", "x"}, 2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(["a", "b", "c"], {"a", "c", "x"}, 3) == pytest.approx(2 / 3)
    assert metrics.recall_at_k([], {"a"}, 3) == 0.0
    assert math.isnan(metrics.recall_at_k(["a"], set(), 3))


def test_ndcg_binary_graded_repeated_and_empty():
    """nDCG with gain / log2(rank + 1), by hand."""
    # DCG = 1 + 1/log2(4) = 1.5; ideal (3 relevant) = 1 + 1/log2(3) + 1/2.
    assert metrics.ndcg_at_k(["a", "b", "c"], {"a", "c", "x"}, 3) == pytest.approx(1.5 / (1.5 + 1 / np.log2(3)))
    # A repeated item gains once: DCG 1, ideal 1 + 1/log2(3).
    assert metrics.ndcg_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / (1 + 1 / np.log2(3)))
    # Graded gains: DCG = 1 + 3/log2(3), ideal = 3 + 1/log2(3).
    assert metrics.ndcg_at_k(["b", "a"], {"a": 3.0, "b": 1.0}, 2) == pytest.approx(
        (1 + 3 / np.log2(3)) / (3 + 1 / np.log2(3)))
    assert metrics.ndcg_at_k(["a", "c"], {"a", "c"}, 2) == pytest.approx(1.0)
    assert metrics.ndcg_at_k([], {"a"}, 3) == 0.0
    assert math.isnan(metrics.ndcg_at_k(["a"], set(), 3))


def test_pearson_and_spearman_with_ties():
    """Pearson by hand; Spearman gives tied values their mean rank."""
    assert metrics.pearson([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    # x ranks [1, 2.5, 2.5, 4], y ranks [1, 3, 2, 4]: 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10).
    assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / np.sqrt(10))
    assert metrics.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(metrics.pearson([1, 2, 3], [5, 5, 5]))
    assert math.isnan(metrics.spearman([1], [2]))
    assert math.isnan(metrics.pearson([], []))
    with pytest.raises(ValueError, match="equal length"):
        metrics.pearson([1, 2], [1, 2, 3])


def test_coverage_diversity_duplicates_age_and_popularity():
    """Beyond-accuracy metrics on tiny hand-made lists."""
    assert metrics.coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    assert metrics.coverage([[], []], 10) == 0.0
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([1.0, 0.0])}
    # [a, b, c]: distances 1, 0, 1 -> 2/3; [a, b]: 1; [a] has no pair and is skipped.
    assert metrics.intra_list_diversity([["a", "b", "c"], ["a", "b"], ["a"]], vectors.__getitem__) == \
        pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(metrics.intra_list_diversity([["a"], []], vectors.__getitem__))
    stories = {"a": 1, "b": 1, "c": 2}
    assert metrics.duplicate_rate([["b", "c", "d"]], stories, anchors=["a"]) == pytest.approx(1 / 3)
    assert metrics.duplicate_rate([["a", "b", "c"], ["d"]], stories) == pytest.approx(1 / 4)
    assert metrics.duplicate_rate([["c", "d"]], stories, anchors=["a"]) == 0.0
    assert math.isnan(metrics.duplicate_rate([[]], stories))
    published = {"a": 10.0, "b": 20.0, "c": float("nan")}
    assert metrics.median_age_hours([["a", "b", "c", "z"]], published, 30.0) == pytest.approx(15.0)
    assert math.isnan(metrics.median_age_hours([["c"]], published, 30.0))
    # Popularity ranks with ties: a 1, b 2.5, c 2.5, d 4 -> percentiles .125, .5, .5, .875.
    views = {"a": 0.0, "b": 10.0, "c": 10.0, "d": 30.0}
    assert metrics.popularity_bias([["d", "b"], ["a"]], views) == pytest.approx(0.5)
    assert metrics.popularity_bias([["d"]], views) == pytest.approx(0.875)
    assert math.isnan(metrics.popularity_bias([["a"]], {"a": 0.0, "b": 0.0}))


def test_story_groups_are_connected_components():
    """Same-story pairs chain: a~b and b~c put a, b, c in one story; d stays alone."""
    groups = metrics.story_groups(["a", "b", "c", "d"], [(0, 1), (2, 1)])
    assert groups["a"] == groups["b"] == groups["c"] != groups["d"]


def test_random_baseline_excludes_the_article_and_is_seeded():
    """Random lists never hold the article itself, have k items and repeat with the same seed."""
    ids = [f"n{i}" for i in range(30)]
    lists = RandomMethod(ids, seed=3).related_lists(ids, 5)
    assert all(len(items) == 5 and ids[n] not in items and len(set(items)) == 5 for n, items in enumerate(lists))
    assert lists == RandomMethod(ids, seed=3).related_lists(ids, 5)
    assert lists != RandomMethod(ids, seed=4).related_lists(ids, 5)


def test_most_popular_orders_by_views_then_recency():
    """Most viewed first, ties newer first; the article itself is skipped; no pair score."""
    method = MostPopularMethod(["a", "b", "c", "d"], np.array([0, 5, 5, 1]), np.array([1.0, 2.0, 1.0, np.nan]))
    assert method.related_lists(["a", "b"], 2) == [["b", "c"], ["c", "d"]]
    assert np.isnan(method.pair_scores([("a", "b")])).all()


def test_lexical_baseline_ranks_shared_terms_first():
    """TF-IDF more-like-this: the document sharing rare terms comes first; identical texts score 1."""
    texts = ["glacier melt alarms climate scientists", "scientists warn glacier melt is accelerating",
             "football club wins the cup final", "bank raises interest rates again", "glacier melt alarms climate"]
    method = LexicalMethod(["a", "b", "c", "d", "e"], texts)
    assert method.related_lists(["a"], 2)[0] == ["e", "b"]
    assert method.pair_scores([("a", "a"), ("a", "c")]) == pytest.approx([1.0, 0.0], abs=1e-6)
