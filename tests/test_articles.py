"""Catalogue reading and validation: formats, column maps, every reject reason, nothing lost silently."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from recommender.catalogue import embedding_text, read_catalogue, strip_html
from recommender.config import CatalogueConfig
from recommender.errors import CatalogueWarning, InvalidCatalogueError

ROWS = [
    {"id": "a1", "title": "Council approves harbour bridge repairs", "body": "The council voted 7-2.",
     "section": "local", "published_at": "2026-11-20T08:00:00Z", "tags": "Port Ellery;council", "views": "12"},
    {"id": "a2", "title": "Storm closes coastal road", "body": "<p>Heavy rain.</p><p>Road <em>shut</em>.</p>",
     "section": "local", "published_at": "2026-11-21 09:30", "views": ""},
]


def test_csv_jsonl_parquet_give_the_same_articles(tmp_path):
    """The three file formats are read into one schema."""
    frame = pd.DataFrame(ROWS)
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.to_parquet(tmp_path / "c.parquet")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    results = [read_catalogue(tmp_path / f"c.{ext}").articles for ext in ("csv", "jsonl", "parquet")]
    for articles in results:
        assert list(articles["id"]) == ["a1", "a2"]
        assert articles.loc[0, "tags"] == ["Port Ellery", "council"]
        assert articles.loc[0, "views"] == 12
        assert str(articles["published_at"].dt.tz) == "UTC"
        assert articles.loc[1, "body"] == "Heavy rain.\n\nRoad shut."


def test_column_map_and_aliases(tmp_path):
    """Source columns are mapped by option, common spellings by alias."""
    pd.DataFrame({"guid": ["x"], "headline": ["Hello world"], "text": ["Body"], "kind": ["sport"]}).to_csv(
        tmp_path / "c.csv", index=False)
    catalogue = read_catalogue(tmp_path / "c.csv", CatalogueConfig(column_map={"guid": "id", "kind": "section"}))
    row = catalogue.articles.iloc[0]
    assert (row["id"], row["title"], row["body"], row["section"]) == ("x", "Hello world", "Body", "sport")


def test_missing_required_column_is_a_clear_error(tmp_path):
    """A catalogue without a title column names the column and the fix."""
    pd.DataFrame({"id": ["x"], "body": ["b"]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InvalidCatalogueError, match="no 'title' column.*--column"):
        read_catalogue(tmp_path / "c.csv")


def test_malformed_catalogue_every_reason_and_nothing_lost(tmp_path):
    """Each kind of bad row is rejected with its reason; accepted + rejected == records read."""
    lines = [
        json.dumps({"id": "ok1", "title": "Fine article", "body": "x", "published_at": "2026-11-01T00:00:00Z"}),
        json.dumps({"title": "No id here"}),
        json.dumps({"id": "notitle", "body": "text without a title"}),
        json.dumps({"id": "emptytext", "title": "<p> </p>"}),
        json.dumps({"id": "baddate", "title": "Bad date", "published_at": "yesterday-ish"}),
        json.dumps({"id": "dup", "title": "Old version", "updated_at": "2026-11-01T00:00:00Z"}),
        json.dumps({"id": "dup", "title": "New version", "updated_at": "2026-11-02T00:00:00Z"}),
        json.dumps({"id": "badviews", "title": "Negative views", "views": -3}),
        '{"id": "broken", "title": ',
        json.dumps({"id": "long", "title": "Long body", "body": "word " * 30}),
    ]
    raw = ("\n".join(lines) + "\n").encode() + b'{"id": "latin1", "title": "Caf\xe9"}\n'
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw)
    config = CatalogueConfig(max_text_chars=100, max_reject_ratio=1.0)
    with pytest.warns(CatalogueWarning, match="truncated"):
        catalogue = read_catalogue(path, config)
    reasons = dict(zip(catalogue.rejects["record"], catalogue.rejects["reason"]))
    assert reasons[2].startswith("missing id")
    assert reasons[3].startswith("missing title")
    assert reasons[4].startswith("empty text")
    assert reasons[5].startswith("unparseable date in published_at: 'yesterday-ish'")
    assert reasons[6].startswith("duplicate id: superseded by record 7")
    assert reasons[8].startswith("views must be a non-negative integer")
    assert reasons[9].startswith("invalid JSON")
    assert reasons[11].startswith("non-UTF-8 bytes")
    assert list(catalogue.articles["id"]) == ["ok1", "dup", "long"]
    assert catalogue.articles.set_index("id").loc["dup", "title"] == "New version"
    assert catalogue.truncated_ids == ["long"]
    assert len(catalogue.articles.set_index("id").loc["long", "body"]) == 100
    assert len(catalogue.articles) + len(catalogue.rejects) == catalogue.records_in == 11
    out = catalogue.write_rejects(tmp_path / "rejects.csv")
    written = pd.read_csv(out)
    assert len(written) == 8 and set(written.columns) == {"record", "id", "field", "reason"}
    assert "8 rejected" in catalogue.summary() and "1 truncated" in catalogue.summary()


def test_non_utf8_csv_row_is_rejected(tmp_path):
    """Undecodable bytes in a CSV cell reject that row, naming the field."""
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,title\ngood,Fine headline\nbad,Caf\xe9 opens\n")
    catalogue = read_catalogue(path, CatalogueConfig(max_reject_ratio=1.0))
    assert list(catalogue.articles["id"]) == ["good"]
    assert catalogue.rejects.iloc[0]["reason"].startswith("non-UTF-8 bytes in title")


def test_reject_ratio_fails_the_read_and_keeps_the_rejects(tmp_path):
    """Over the maximum reject ratio the read fails clearly instead of returning a smaller catalogue."""
    rows = [{"id": f"r{i}", "title": "" if i % 2 else f"Headline {i}"} for i in range(10)]
    pd.DataFrame(rows).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InvalidCatalogueError, match=r"5 of 10 records rejected \(50.0%\)") as info:
        read_catalogue(tmp_path / "c.csv", CatalogueConfig(max_reject_ratio=0.2))
    assert len(info.value.catalogue.rejects) == 5


def test_mind_news_tsv(tmp_path):
    """MIND's headerless news.tsv maps to the schema, entity labels becoming tags."""
    entities = json.dumps([{"Label": "Port Ellery", "Type": "G", "WikidataId": "Q1"}])
    line = "\t".join(["N1", "news", "newsworld", "Ferry resumes", "Service is back.", "https://x", entities, "[]"])
    (tmp_path / "news.tsv").write_text(line + "\n")
    article = read_catalogue(tmp_path / "news.tsv").articles.iloc[0]
    assert (article.id, article.section, article.title, article.abstract) == ("N1", "news", "Ferry resumes",
                                                                              "Service is back.")
    assert list(article.tags) == ["Port Ellery"]


def test_strip_html_keeps_plain_text_untouched():
    """Markup becomes text; text without markup is returned as is."""
    assert strip_html("<div><p>One &amp; two</p><script>x()</script><p>Three</p></div>") == "One & two\n\nThree"
    assert strip_html("5 < 6 and 7 > 2") == "5 < 6 and 7 > 2"
    # Wire copy's tickers are not markup: they stay; entities are decoded without a parser.
    assert strip_html("Shares of <IBM> and <BP.L> rose &amp; fell") == "Shares of <IBM> and <BP.L> rose & fell"


def test_embedding_text_is_title_abstract_then_body_within_the_limit():
    """The embedded text starts with the headline, then the standfirst, then the body, cut at a word."""
    text = embedding_text("Bridge reopens", "Repairs finished early.", "Cars returned on Monday. " * 200, 300)
    assert text.startswith("Bridge reopens. Repairs finished early. Cars returned on Monday.")
    assert len(text) <= 300 and not text.endswith(" ")
    assert embedding_text("Why now?", "", "Body", 100) == "Why now? Body"


def test_parquet_and_csv_with_no_warnings_for_clean_input(tmp_path):
    """Clean input raises no repair warning."""
    pd.DataFrame(ROWS).to_csv(tmp_path / "c.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CatalogueWarning)
        assert len(read_catalogue(tmp_path / "c.csv").articles) == 2


def test_dataframe_source_with_missing_dates():
    """A DataFrame with NaT/None dates (e.g. from a database) is valid: missing is not unparseable."""
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["One", "Two"],
                          "published_at": pd.to_datetime(["2026-11-20T08:00Z", None], utc=True),
                          "updated_at": [None, None]})
    catalogue = read_catalogue(frame)
    assert len(catalogue.articles) == 2 and catalogue.rejects.empty
    assert catalogue.articles["published_at"].isna().tolist() == [False, True]
