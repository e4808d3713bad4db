"""Dataset adapters on the real shared files: counts and fields as SOURCE.md documents them."""

from __future__ import annotations

import pandas as pd
import pytest

from recommender.evaluation import datasets

from .conftest import DATA, data_path

pytestmark = pytest.mark.slow  # the shared datasets


def test_semeval_keeps_original_pairs_per_language():
    """Original ids only by default (796 rows, 161 en-en); augmentations only on request; scores 1-4."""
    data_path("semeval2022-t8", "training_set.csv")
    pairs = datasets.load_semeval(DATA).pairs
    assert len(pairs) == 796 and pairs["pair_id"].str.fullmatch(r"\d+_\d+").all()
    assert pairs["lang_pair"].value_counts()["en-en"] == 161
    assert pairs["overall"].between(1, 4).all()
    english = datasets.load_semeval(DATA, lang_pairs=["en-en"])
    assert len(english.pairs) == 161 and set(english.articles["language"]) == {"en"}
    assert set(english.pairs["id1"]) | set(english.pairs["id2"]) == set(english.articles["id"])
    assert english.articles["id"].is_unique and (english.articles["title"].str.len() > 0).all()
    assert len(datasets.load_semeval(DATA, original_only=False).pairs) == 1283
    with pytest.raises(ValueError, match=r"language pair\(s\) \['xx-xx'\]"):
        datasets.load_semeval(DATA, lang_pairs=["xx-xx"])


def test_bbc_sections_and_seeded_slice():
    """2,225 articles in 5 sections with the documented counts; a limit is a seeded, stable sample."""
    bbc = datasets.load_bbc(DATA)
    assert len(bbc.articles) == 2225 and not bbc.has_dates
    assert bbc.labels.value_counts().to_dict() == {"sport": 511, "business": 510, "politics": 417, "tech": 401,
                                                   "entertainment": 386}
    assert (bbc.articles["body"].str.len() > 0).all()
    small = datasets.load_bbc(DATA, limit=40, seed=1)
    assert len(small.articles) == 40 and small.articles["id"].tolist() == datasets.load_bbc(
        DATA, limit=40, seed=1).articles["id"].tolist()
    assert small.labels.nunique() > 1
    with pytest.raises(ValueError, match="limit must be a positive"):
        datasets.load_bbc(DATA, limit=0)


def test_reuters_single_topic_stories_with_dates_and_split():
    """Single-topic stories with a title and body, dated 1987, carrying Lewis' split."""
    reuters = datasets.load_reuters(DATA)
    # 8,702 single-topic with body, minus 48 with no title once markup goes (tickers such as "<AMRO>" are text,
    # not markup, and stay).
    assert len(reuters.articles) == 8654
    assert not reuters.labels.str.contains(";").any() and reuters.has_dates
    dates = pd.to_datetime(reuters.articles["published_at"], utc=True)
    assert dates.min().year == dates.max().year == 1987
    assert set(reuters.split) == {"TRAIN", "TEST", "NOT-USED"}
    assert reuters.labels.value_counts().index[0] == "earn"


def test_ag_news_classes_and_unescaped_leads():
    """7,600 items, 1,900 per class; the '#36;' escape is turned back into '$'."""
    ag = datasets.load_ag_news(DATA)
    assert len(ag.articles) == 7600 and set(ag.labels.value_counts()) == {1900}
    assert not ag.articles["abstract"].str.contains("#36;", regex=False).any()
    assert ag.articles["id"].is_unique


def test_mind_co_reading_pairs_restricted_to_news():
    """Co-reading pairs over articles in news.tsv only: 5,233 pairs over 585 articles, 1,030 with 2+ readers."""
    mind = datasets.load_mind(DATA)
    known = set(mind.articles["id"])
    assert len(mind.co_reading) == 5233
    assert set(mind.co_reading["id1"]) | set(mind.co_reading["id2"]) <= known
    assert len(set(mind.co_reading["id1"]) | set(mind.co_reading["id2"])) == 585
    assert (mind.co_reading["id1"] < mind.co_reading["id2"]).all()
    assert len(datasets.load_mind(DATA, min_users=2).co_reading) == 1030
    assert set(mind.views["article_id"]) <= known and mind.views["timestamp"].dt.year.eq(2019).all()
    assert "SMALL" in mind.note
    # The Wikidata entities of title and abstract become tags (the entity signal of the relatedness).
    tagged = mind.articles.set_index("id")["tags"]
    assert tagged.map(len).gt(0).sum() == 1736
    assert "Fort Lauderdale, Florida" in tagged["N34700"]
    partners = datasets.partners(mind.co_reading)
    a, b = mind.co_reading.iloc[0][["id1", "id2"]]
    assert b in partners[a] and a in partners[b]


def test_missing_data_dir_names_the_file_and_the_fix(tmp_path):
    """A wrong data folder fails with the missing path and how to point at the datasets."""
    with pytest.raises(FileNotFoundError, match="bbc_news.csv is missing.*RECOMMENDER_DATA"):
        datasets.load_bbc(tmp_path)
