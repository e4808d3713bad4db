"""Validate a catalogue: map columns, judge every record, strip markup, split accepted rows from rejects."""

from __future__ import annotations

import html
import json
import re
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..config import CatalogueConfig
from ..errors import CatalogueWarning, InvalidCatalogueError
from .schema import ALIASES, DATE_FIELDS, FIELDS, STRING_FIELDS, TEXT_FIELDS, Catalogue, reject_record

# Markup worth a parser: a known HTML element or a comment. Wire copy writes tickers as "<IBM>" and "<BP.L>",
# which an HTML parser would delete as unknown tags; those stay text.
_HTML_TAG = re.compile(
    r"<(?:/?(?:a|abbr|article|aside|b|blockquote|body|br|caption|cite|code|del|div|em|figcaption|figure|footer|"
    r"h[1-6]|head|header|hr|html|i|iframe|img|ins|li|link|main|meta|nav|noscript|ol|p|picture|pre|q|s|script|"
    r"section|small|source|span|strong|style|sub|sup|table|tbody|td|th|thead|time|tr|u|ul|video)\b[^>]*|!--)>?",
    re.IGNORECASE)
_ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#[xX][0-9a-fA-F]+);")
_SURROGATE = re.compile("[\udc80-\udcff]")
_WS = re.compile(r"[ \t\r\f\v]+")


def strip_html(text: str) -> str:
    """Markup to plain text (BeautifulSoup), paragraphs kept as blank lines; text without HTML elements only has
    its character entities decoded ("&amp;" -> "&"); plain text passes unchanged."""
    if not _HTML_TAG.search(text):
        return html.unescape(text) if _ENTITY.search(text) else text
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    for tag in soup.find_all(["p", "br", "div", "li", "h1", "h2", "h3", "h4"]):
        tag.insert_before("\n\n")
    text = soup.get_text()
    lines = [_WS.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _missing(value: Any) -> bool:
    """None, NaN or NaT (a DataFrame source's empty cell)."""
    return value is None or (not isinstance(value, (str, list, tuple, np.ndarray)) and bool(pd.isna(value)))


def _parse_tags(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip("[]").split(",")
        else:
            value = re.split(r"[;|]", value)
    return [str(t).strip() for t in value if str(t).strip()]


def validate(frame: pd.DataFrame, config: CatalogueConfig, pre_rejects: Sequence[dict[str, Any]] = ()) -> Catalogue:
    """Map columns, check every record and split the frame into accepted articles and rejects."""
    rejects: list[dict[str, Any]] = list(pre_rejects)
    records = frame.pop("__record").astype(int).to_numpy() if "__record" in frame else np.arange(1, len(frame) + 1)
    frame = frame.rename(columns=dict(config.column_map))
    frame = frame.rename(columns={a: f for a, f in ALIASES.items() if a in frame and f not in frame})
    ignored = [c for c in frame.columns if c not in FIELDS]
    records_in = len(frame) + len(pre_rejects)
    for required in ("id", "title"):
        if required not in frame:
            raise InvalidCatalogueError(
                f"the catalogue has no {required!r} column (columns: {list(frame.columns)}); "
                f"map one with column_map / --column SOURCE={required}"
            )
    out = pd.DataFrame(index=frame.index)
    bad = pd.Series(False, index=frame.index)
    raw_ids = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in frame["id"]]

    def reject(mask: pd.Series, field_name: str, reasons: Iterable[str]) -> None:
        nonlocal bad
        mask = mask & ~bad
        for position, reason in zip(np.flatnonzero(mask.to_numpy()), reasons):
            rejects.append(reject_record(records[position], raw_ids[position], field_name, reason))
        bad = bad | mask

    for name in STRING_FIELDS:
        # Python objects, not Arrow strings: undecodable bytes survive reading as surrogates, found here.
        values = [("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
                  for v in (frame[name] if name in frame else [""] * len(frame))]
        has_bad_bytes = pd.Series([bool(_SURROGATE.search(v)) for v in values], index=frame.index)
        reject(has_bad_bytes, name, (f"non-UTF-8 bytes in {name}; re-encode the source as UTF-8"
                                     for _ in range(int(has_bad_bytes.sum()))))
        values = [_SURROGATE.sub("\ufffd", v) for v in values] if has_bad_bytes.any() else values
        if name in ("id", "url", "section", "language"):
            values = [v.strip() for v in values]
        out[name] = pd.Series(values, index=frame.index, dtype=object)
    reject(out["id"] == "", "id", (("missing id: every article needs a unique id") for _ in range(len(out))))
    for name in TEXT_FIELDS:
        out[name] = [strip_html(t) if t else t for t in out[name]]
    out["title"] = [t.strip() for t in out["title"]]
    empty = out["title"] == ""
    raw_title_present = pd.Series([isinstance(v, str) and v.strip() != "" for v in frame["title"]], index=frame.index)
    reject(empty & ~raw_title_present, "title", ("missing title" for _ in range(len(out))))
    reject(empty & raw_title_present, "title", ("empty text: the title is empty once markup is stripped"
                                                 for _ in range(len(out))))
    truncated: list[str] = []
    for name in TEXT_FIELDS:
        too_long = out[name].str.len() > config.max_text_chars
        for position in np.flatnonzero(too_long.to_numpy()):
            truncated.append(out["id"].iloc[position])
            out.iloc[position, out.columns.get_loc(name)] = out[name].iloc[position][: config.max_text_chars]
    for name in DATE_FIELDS:
        raw = frame[name].astype(object) if name in frame else pd.Series(None, index=frame.index, dtype=object)
        given = pd.Series([not _missing(v) and str(v).strip() != "" for v in raw], index=frame.index)
        parsed = pd.to_datetime(raw.where(given, None), utc=True, errors="coerce", format="mixed")
        unparseable = given & parsed.isna()
        reject(unparseable, name, (f"unparseable date in {name}: {v!r}; use ISO 8601 (2026-11-27T08:00:00Z)"
                                   for v in raw[unparseable & ~bad]))
        out[name] = parsed
    out["tags"] = [_parse_tags(v) for v in frame["tags"]] if "tags" in frame else [[] for _ in range(len(frame))]
    views = pd.to_numeric(frame["views"], errors="coerce") if "views" in frame else pd.Series(0, index=frame.index)
    views_given = (pd.Series([v is not None and str(v).strip() not in ("", "nan") for v in frame["views"]],
                             index=frame.index) if "views" in frame else bad)
    invalid_views = views_given & (views.isna() | (views < 0))
    reject(invalid_views, "views", (f"views must be a non-negative integer, got {v!r}"
                                    for v in frame["views"][invalid_views & ~bad]) if "views" in frame else ())
    out["views"] = views.fillna(0).clip(lower=0).astype("int64")
    out["__record"] = records[: len(out)]
    out = out[~bad]
    # Duplicate ids: keep the newest edit (updated_at, else published_at, else the later record).
    recency = out["updated_at"].fillna(out["published_at"])
    order = out.assign(__recency=recency).sort_values(["__recency", "__record"], ascending=False, na_position="last")
    duplicated = order["id"].duplicated(keep="first")
    kept_record = order.drop_duplicates("id").set_index("id")["__record"]
    for record, article_id in zip(order.loc[duplicated, "__record"], order.loc[duplicated, "id"]):
        rejects.append(reject_record(record, article_id, "id",
                               f"duplicate id: superseded by record {kept_record[article_id]} (newer updated_at)"))
    articles = order[~duplicated].sort_values("__record").drop(columns=["__recency", "__record"])
    articles = articles.reset_index(drop=True)[list(FIELDS)]
    for name in STRING_FIELDS:
        articles[name] = articles[name].astype(str)
    if truncated:
        warnings.warn(f"{len(truncated)} article(s) truncated to {config.max_text_chars} characters: "
                      f"{truncated[:5]}", CatalogueWarning, stacklevel=2)
    reject_frame = pd.DataFrame(rejects, columns=["record", "id", "field", "reason"]).sort_values("record",
                                                                                                 kind="stable")
    return Catalogue(articles=articles, rejects=reject_frame.reset_index(drop=True),
                     truncated_ids=sorted(set(truncated)), ignored_columns=ignored, records_in=records_in)
