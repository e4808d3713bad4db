"""Training pairs from readers: followed recommendations and co-reads, with popularity-sampled negatives.

The click events are what the widget sends to ``POST /v1/events/click`` (``article_id``, ``widget``,
``source_id``: the page the recommendation was on) plus, for co-reads, the site's own reader key ``user_id``
(a session or account id from its analytics; the service never stores one). One row per click, in CSV, JSONL or
Parquet; ``count`` (default 1) repeats a row. A row with a ``source_id`` is a followed recommendation
(source -> clicked); rows sharing a ``user_id`` are co-reads.

Clicks follow popularity: the most read articles are co-read with almost everything, and a model trained on raw
co-reads learns "popular" rather than "related". Two counters: each article anchors at most
``max_pairs_per_article`` pairs, and each pair gets a negative drawn with probability proportional to
clicks**0.75 (word2vec's unigram smoothing) among articles the anchor was never read with, so a popular
article is as often a negative as it is a positive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidCatalogueError

NEGATIVE_POWER = 0.75


def read_clicks(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Click events as ``article_id``, ``source_id`` and ``user_id`` (str, "" when absent), ``count`` (int).

    Raises:
        InvalidCatalogueError: unreadable file, no ``article_id`` column, or a row that has neither a
            ``source_id`` nor a ``user_id`` or has a bad count (the message names the row).
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.exists():
            raise InvalidCatalogueError(f"clicks file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            raise InvalidCatalogueError(f"clicks file {path} must be .csv, .jsonl or .parquet")
    if "article_id" not in frame:
        raise InvalidCatalogueError(f"clicks need an article_id column (and source_id and/or user_id); columns: "
                                    f"{list(frame.columns)}")
    out = pd.DataFrame({c: frame[c].fillna("").astype(str).str.strip() if c in frame else ""
                        for c in ("article_id", "source_id", "user_id")})
    count = pd.to_numeric(frame["count"], errors="coerce") if "count" in frame else pd.Series(1, index=frame.index)
    for n in range(len(out)):
        if out["article_id"].iat[n] == "" or (out["source_id"].iat[n] == "" and out["user_id"].iat[n] == ""):
            raise InvalidCatalogueError(f"clicks row {n + 1}: needs an article_id and a source_id (the page the "
                                        f"recommendation was on) or a user_id (the reader); got "
                                        f"{frame.iloc[n].to_dict()}")
        value = count.iat[n]
        if not (value == value and value >= 1 and float(value).is_integer()):
            raise InvalidCatalogueError(f"clicks row {n + 1}: count must be a positive integer, got "
                                        f"{frame['count'].iat[n]!r}")
    out["count"] = count.astype("int64").to_numpy()
    return out


def split_readers(clicks: pd.DataFrame, held_out_share: float, seed: int = 0) -> pd.Series:
    """(rows,) bool, True for the clicks of held-out readers (a seeded draw per ``user_id``; a click without a
    reader is held out by its source page)."""
    from .mining import split_rows

    keys = np.where(clicks["user_id"] != "", "user:" + clicks["user_id"], "page:" + clicks["source_id"])
    unique, inverse = np.unique(keys, return_inverse=True)
    return pd.Series(split_rows(unique.tolist(), held_out_share, seed)[inverse], index=clicks.index)


def click_pairs(clicks: pd.DataFrame, row_of: dict[str, int], max_pairs_per_article: int,
                rng: np.random.Generator) -> tuple[list[tuple[int, int, str]], dict[int, set[int]]]:
    """(anchor row, positive row, kind) pairs of articles in the catalogue, and every row's co-clicked rows.

    Followed recommendations come first, then co-reads (consecutive articles of each reader, so a reader of n
    articles gives n - 1 pairs, not n squared); each article anchors at most ``max_pairs_per_article`` pairs.
    """
    known = clicks[clicks["article_id"].isin(row_of.keys())]
    candidates: list[tuple[int, int, str]] = []
    followed = known[known["source_id"].isin(row_of.keys()) & (known["source_id"] != known["article_id"])]
    candidates += [(row_of[s], row_of[a], "followed") for s, a in zip(followed["source_id"], followed["article_id"])]
    for _, read in known[known["user_id"] != ""].groupby("user_id", sort=True)["article_id"]:
        ordered = list(dict.fromkeys(read.tolist()))
        candidates += [(row_of[a], row_of[b], "co_read") for a, b in zip(ordered, ordered[1:])]
    linked: dict[int, set[int]] = {}
    for a, b, _ in candidates:
        linked.setdefault(a, set()).add(b)
        linked.setdefault(b, set()).add(a)
    used: dict[int, int] = {}
    kept = []
    for n in rng.permutation(len(candidates)).tolist():
        a, b, kind = candidates[n]
        if used.get(a, 0) < max_pairs_per_article:
            used[a] = used.get(a, 0) + 1
            kept.append((a, b, kind))
    return kept, linked


def popularity_negatives(anchors: list[int], clicks_per_row: np.ndarray, linked: dict[int, set[int]],
                         rng: np.random.Generator, tries: int = 20) -> list[int]:
    """A negative row per anchor, drawn by clicks**0.75 (every row at least one click's weight) and never the
    anchor or an article read with it."""
    weights = np.maximum(np.asarray(clicks_per_row, dtype=np.float64), 1.0) ** NEGATIVE_POWER
    weights /= weights.sum()
    draws = rng.choice(len(weights), size=(len(anchors), tries), p=weights)
    negatives = []
    for anchor, row in zip(anchors, draws):
        banned = linked.get(anchor, set()) | {anchor}
        negatives.append(next((int(r) for r in row if int(r) not in banned), int(row[0])))
    return negatives
