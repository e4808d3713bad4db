"""Dataset adapters: each public evaluation dataset read from a data directory into one of two shapes.

``PairDataset`` holds human-judged article pairs (SemEval-2022 Task 8). ``CorpusDataset`` holds a catalogue
(the columns ``pipeline.build`` reads) with what counts as relevant: a section/topic label per article and/or
co-reading pairs, plus page views and dates where the dataset has them. Nothing is copied out of ``data_dir``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..catalogue import mind_entity_labels, strip_html

ORIGINAL_PAIR = re.compile(r"\d+_\d+")
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
MIND_NEWS_COLUMNS = ["id", "section", "subsection", "title", "abstract", "url", "title_entities", "abstract_entities"]
MIND_BEHAVIOR_COLUMNS = ["impression_id", "user_id", "time", "history", "impressions"]


@dataclass(frozen=True)
class PairDataset:
    """Article pairs with a human similarity score.

    Attributes:
        name: dataset key.
        pairs: ``pair_id``, ``lang_pair``, ``id1``, ``id2``, ``overall`` (1 = very similar ... 4 = very dissimilar).
        articles: catalogue of every article of every pair (``id``, ``title``, ``body``, ``language``).
        note: what was selected, for reports.
    """

    name: str
    pairs: pd.DataFrame
    articles: pd.DataFrame
    note: str = ""


@dataclass(frozen=True)
class CorpusDataset:
    """A catalogue and its relevance signals.

    Attributes:
        name: dataset key.
        articles: catalogue (``id``, ``title``, ``abstract``, ``body``, ``section``, ``published_at``) for ``build``.
        labels: article id -> section/topic label (empty when the dataset has none).
        co_reading: ``id1``, ``id2``, ``users`` (distinct readers of both); empty when the dataset has none.
        views: page views (``article_id``, ``timestamp``, ``count``) for popularity; empty when none.
        split: article id -> split name (e.g. Reuters' ``lewissplit``), used to tune on one and report on another.
        note: how the rows were selected and what the dataset lacks, for reports.
    """

    name: str
    articles: pd.DataFrame
    labels: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    co_reading: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["id1", "id2", "users"]))
    views: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["article_id", "timestamp", "count"]))
    split: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    note: str = ""

    @property
    def has_dates(self) -> bool:
        """Whether any article has a publication time."""
        return "published_at" in self.articles and bool(pd.to_datetime(self.articles["published_at"],
                                                                        utc=True).notna().any())


def _file(data_dir: str | Path, *parts: str) -> Path:
    path = Path(data_dir).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: pass the shared datasets folder as data_dir "
                                f"(the CLI reads RECOMMENDER_DATA or --data)")
    return path


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    # dtype=object and no NA parsing: the same strings pipeline.build reads, so embedding-cache keys match.
    return pd.read_csv(path, dtype=object, keep_default_na=False, encoding="utf-8", **kwargs)


def sample_rows(frame: pd.DataFrame, limit: int | None, seed: int = 0) -> pd.DataFrame:
    """A seeded random sample of ``limit`` rows in their original order (all rows when ``limit`` is None)."""
    if limit is None or limit >= len(frame):
        return frame.reset_index(drop=True)
    if limit < 1:
        raise ValueError(f"limit must be a positive number of rows, got {limit}")
    return frame.sample(n=limit, random_state=seed).sort_index().reset_index(drop=True)


def load_semeval(data_dir: str | Path, original_only: bool = True, lang_pairs: Sequence[str] | None = None,
                 limit: int | None = None, seed: int = 0) -> PairDataset:
    r"""SemEval-2022 Task 8 pairs (``semeval2022-t8/training_set.csv``).

    Args:
        data_dir: the shared datasets folder.
        original_only: keep only pairs whose ``pair_id`` matches ``\\d+_\\d+`` (drop HFL's machine translations).
        lang_pairs: keep only these language pairs (e.g. ``["en-en"]``); None keeps all.
        limit: a seeded sample of this many pairs.
        seed: sample seed.
    """
    frame = _read_csv(_file(data_dir, "semeval2022-t8", "training_set.csv"))
    frame["lang_pair"] = frame["lang1"] + "-" + frame["lang2"]
    if original_only:
        frame = frame[frame["pair_id"].str.fullmatch(ORIGINAL_PAIR.pattern)]
    if lang_pairs is not None:
        unknown = sorted(set(lang_pairs) - set(frame["lang_pair"]))
        if unknown:
            raise ValueError(f"language pair(s) {unknown} not in the SemEval data; known: "
                             f"{sorted(frame['lang_pair'].unique())}")
        frame = frame[frame["lang_pair"].isin(list(lang_pairs))]
    frame = sample_rows(frame, limit, seed)
    # Per-row article ids: one article id can carry different scraped text in different rows.
    key = frame["Unnamed: 0"]
    pairs = pd.DataFrame({"pair_id": frame["pair_id"], "lang_pair": frame["lang_pair"], "id1": key + ":1",
                          "id2": key + ":2", "overall": frame["Overall"].astype(float)})
    halves = [(key + f":{n}", frame[f"text{n}"], frame[f"lang{n}"]) for n in (1, 2)]
    articles = pd.concat([_split_title(ids, texts, langs) for ids, texts, langs in halves], ignore_index=True)
    note = (f"{len(pairs)} pairs ({'original ids only' if original_only else 'with translated augmentations'}"
            f"{', ' + ', '.join(lang_pairs) if lang_pairs else ''}); score = engine relatedness vs -Overall")
    return PairDataset("semeval", pairs, articles, note)


def _split_title(ids: pd.Series, texts: pd.Series, languages: pd.Series) -> pd.DataFrame:
    # HFL's text is "title  body": the first double space ends the headline (else the first 120 characters).
    titles, bodies = [], []
    for text in texts:
        text = str(text).strip()
        cut = text.find("  ")
        cut = cut if 0 < cut <= 300 else min(len(text), 120)
        titles.append(text[:cut].strip() or text[:120])
        bodies.append(text[cut:].strip())
    return pd.DataFrame({"id": ids.to_numpy(), "title": titles, "body": bodies, "language": languages.to_numpy()})


def load_bbc(data_dir: str | Path, limit: int | None = None, seed: int = 0) -> CorpusDataset:
    """BBC News (``bbc-news/bbc_news.csv``): 2,225 articles in 5 sections; no dates, no views."""
    frame = sample_rows(_read_csv(_file(data_dir, "bbc-news", "bbc_news.csv")), limit, seed)
    articles = pd.DataFrame({"id": frame["id"], "title": frame["title"], "body": frame["text"],
                             "section": frame["category"]})
    note = (f"{len(articles)} articles, relevant = same section (5); no dates or views: freshness and trending "
            f"are 0 for every article, so the blend reduces to similarity + same-story collapse")
    return CorpusDataset("bbc", articles, labels=articles.set_index("id")["section"], note=note)


def load_reuters(data_dir: str | Path, limit: int | None = None, seed: int = 0) -> CorpusDataset:
    """Reuters-21578 (``reuters-21578/reuters21578.csv``): single-topic stories with a title and a body.

    8,654 stories: the 8,702 with exactly one topic and a body, less 48 whose title is empty.
    """
    frame = _read_csv(_file(data_dir, "reuters-21578", "reuters21578.csv"))
    topics = frame["topics"].str.strip()
    # A title that is only markup (e.g. "<COMPANY NAME>") is empty once stripped: the catalogue would reject it.
    titled = frame["title"].map(lambda t: strip_html(t).strip() != "")
    keep = (frame["body"].str.strip() != "") & titled & (topics != "") & ~topics.str.contains(";", regex=False)
    frame = sample_rows(frame[keep], limit, seed)
    articles = pd.DataFrame({"id": "reuters-" + frame["newid"], "title": frame["title"], "body": frame["body"],
                             "section": frame["topics"].str.strip(), "published_at": frame["date_iso"]})
    note = (f"{len(articles)} single-topic stories with a title and body; relevant = same topic; dated 1987 "
            f"(freshness measured from the newest story); no views")
    return CorpusDataset("reuters", articles, labels=articles.set_index("id")["section"],
                         split=pd.Series(frame["lewissplit"].to_numpy(), index=articles["id"]), note=note)


def load_ag_news(data_dir: str | Path, limit: int | None = None, seed: int = 0) -> CorpusDataset:
    """AG News test split (``ag-news-test/test.csv``): 7,600 headlines + leads in 4 classes; no dates, no views."""
    frame = sample_rows(_read_csv(_file(data_dir, "ag-news-test", "test.csv")).reset_index(), limit, seed)
    unknown = sorted(set(frame["label"]) - set(AG_LABELS))
    if unknown:
        raise ValueError(f"AG News labels {unknown} are not 1-4; is {data_dir} the AG News test split?")
    # The original escapes: "#36;" is "$" and a backslash is a line break.
    lead = frame["description"].str.replace("#36;", "$", regex=False).str.replace("\\", " ", regex=False)
    articles = pd.DataFrame({"id": "ag-" + frame["index"].astype(str), "title": frame["title"], "abstract": lead,
                             "section": frame["label"].map(AG_LABELS)})
    note = (f"{len(articles)} headlines with leads; relevant = same class (4); no dates or views: the blend "
            f"reduces to similarity + same-story collapse")
    return CorpusDataset("ag_news", articles, labels=articles.set_index("id")["section"], note=note)


def load_mind(data_dir: str | Path, min_users: int = 1) -> CorpusDataset:
    """MIND-small sample: 2,000 news (title + abstract) and co-reading pairs from its click logs.

    Clicks are each user's history plus clicked impressions, restricted to articles in ``news.tsv`` (the two
    files were sampled independently, so most clicks point to absent articles). A pair counts when at least
    ``min_users`` users read both. Each click also becomes one page view at the user's first impression time.
    """
    news = pd.read_csv(_file(data_dir, "mind-small-sample", "news.tsv"), sep="\t", header=None,
                       names=MIND_NEWS_COLUMNS, dtype=object, keep_default_na=False, quoting=csv.QUOTE_NONE)
    behaviors = pd.read_csv(_file(data_dir, "mind-small-sample", "behaviors.tsv"), sep="\t", header=None,
                            names=MIND_BEHAVIOR_COLUMNS, dtype=object, keep_default_na=False, quoting=csv.QUOTE_NONE)
    known = set(news["id"])
    behaviors["time"] = pd.to_datetime(behaviors["time"], format="%m/%d/%Y %I:%M:%S %p", utc=True)
    clicks: dict[str, set[str]] = {}
    first_seen = behaviors.groupby("user_id")["time"].min()
    for user, history, impressions in zip(behaviors["user_id"], behaviors["history"], behaviors["impressions"]):
        read = {n for n in history.split() if n in known}
        read |= {i[:-2] for i in impressions.split() if i.endswith("-1") and i[:-2] in known}
        clicks.setdefault(user, set()).update(read)
    counts: dict[tuple[str, str], int] = {}
    for read in clicks.values():
        ordered = sorted(read)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                counts[(a, b)] = counts.get((a, b), 0) + 1
    pairs = pd.DataFrame([(a, b, n) for (a, b), n in counts.items() if n >= min_users],
                         columns=["id1", "id2", "users"]).sort_values(["id1", "id2"], ignore_index=True)
    views = pd.DataFrame([(a, first_seen[u], 1) for u, read in clicks.items() for a in sorted(read)],
                         columns=["article_id", "timestamp", "count"])
    articles = news[["id", "title", "abstract", "url", "section"]].copy()
    articles["tags"] = [mind_entity_labels(a, b) for a, b in zip(news["title_entities"], news["abstract_entities"])]
    partners = len(set(pairs["id1"]) | set(pairs["id2"]))
    note = (f"{len(articles)} news; {len(pairs)} co-reading pairs (>= {min_users} shared readers) over {partners} "
            f"articles from {sum(1 for r in clicks.values() if len(r) > 1)} users: a SMALL signal (about 3% of the "
            f"clicks in the sample point to articles in news.tsv); views = those clicks; no publication dates")
    return CorpusDataset("mind", articles, labels=articles.set_index("id")["section"], co_reading=pairs,
                         views=views, note=note)


def partners(co_reading: pd.DataFrame) -> dict[str, set[str]]:
    """Article id -> the articles co-read with it (both directions)."""
    found: dict[str, set[str]] = {}
    for a, b in zip(co_reading["id1"], co_reading["id2"]):
        found.setdefault(a, set()).add(b)
        found.setdefault(b, set()).add(a)
    return found


def label_groups(labels: pd.Series) -> dict[str, set[str]]:
    """Label -> the ids carrying it."""
    return {str(label): set(ids) for label, ids in labels.groupby(labels).groups.items()}


def query_sample(ids: Sequence[str], count: int | None, seed: int = 0) -> list[str]:
    """A seeded sample of ``count`` query ids (all when None), in input order."""
    ids = list(ids)
    if count is None or count >= len(ids):
        return ids
    chosen = np.sort(np.random.default_rng(seed).choice(len(ids), size=count, replace=False))
    return [ids[i] for i in chosen]


LOADERS = {"bbc": load_bbc, "reuters": load_reuters, "ag_news": load_ag_news}
