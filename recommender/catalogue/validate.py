"""Validate a catalogue: map columns, judge every record on its own, strip markup, split accepted rows from rejects.

Each record is accepted or rejected with the field and the reason; nothing is coerced silently: a number is not
a date, views are finite non-negative integers, URLs are http(s), ids are printable text of at most 200
characters (``/`` included: every route addresses them), tags are strings. Control characters are removed from
text (with a warning), and entities are never decoded into live markup (``&lt;img onerror=…&gt;`` in a title
is stripped like the tag it encodes).
"""

from __future__ import annotations

import datetime
import html
import json
import math
import re
import warnings
from typing import Any, Sequence
from urllib.parse import urlsplit

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
    r"section|small|source|span|strong|style|sub|sup|svg|table|tbody|td|th|thead|time|tr|u|ul|video)\b[^>]*|!--)>?",
    re.IGNORECASE)
_ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#[xX][0-9a-fA-F]+);")
# Lone surrogates: undecodable source bytes (read with surrogateescape) or a "\ud800" JSON escape.
_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls but tab, newline and carriage return; DEL; C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WS = re.compile(r"[ \t\r\f\v]+")
_NUMERIC = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
MAX_ID_CHARS = 200
MAX_VIEWS = 2 ** 53  # exactly representable; larger counts are not page views


class Rejected(Exception):
    """A record is rejected: ``field`` and ``reason`` go to the rejects file."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name = field_name
        self.reason = reason


def _soup_text(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    for tag in soup.find_all(["p", "br", "div", "li", "h1", "h2", "h3", "h4"]):
        tag.insert_before("\n\n")
    lines = [_WS.sub(" ", line).strip() for line in soup.get_text().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_html(text: str) -> str:
    """Markup to plain text (BeautifulSoup), paragraphs kept as blank lines; text without HTML elements only has
    its character entities decoded ("&amp;" -> "&"); plain text passes unchanged. Markup that decoding produces
    ("&lt;img …&gt;") is stripped in turn, so no known element survives."""
    for _ in range(4):
        if _HTML_TAG.search(text):
            text = _soup_text(text)
        elif _ENTITY.search(text):
            decoded = html.unescape(text)
            if not _HTML_TAG.search(decoded):
                return decoded
            text = decoded
        else:
            return text
    return _HTML_TAG.sub("", text)


class NonFinite(str):
    """A ``NaN`` / ``Infinity`` JSON constant as read from a JSON Lines catalogue: a value, not an empty cell, and
    never a number of views or a text."""


def _printable(text: str) -> str:
    """Text safe to write into the rejects file (undecodable characters replaced)."""
    return _CONTROL.sub("\ufffd", _SURROGATE.sub("\ufffd", text))


def _missing(value: Any) -> bool:
    """None, NaN or NaT (a DataFrame source's empty cell)."""
    return value is None or (not isinstance(value, (str, list, tuple, np.ndarray)) and bool(pd.isna(value)))


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _string(value: Any, name: str) -> str:
    """A string field's text: empty cells are empty, other types are refused (a number is not a title)."""
    if isinstance(value, NonFinite):
        raise Rejected(name, f"{name} must be text, got {value}")
    if _missing(value):
        return ""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and \
            name in ("id", "section", "language"):
        return str(value)  # numeric ids and codes are common in CMS exports: their text is unambiguous
    if not isinstance(value, str):
        raise Rejected(name, f"{name} must be text, got {_shown(value)}")
    if _SURROGATE.search(value):
        raise Rejected(name, f"non-UTF-8 bytes in {name} (undecodable bytes, or a lone surrogate such as a "
                             f"\\ud800 escape); re-encode the source as UTF-8")
    return value


def _tags(value: Any) -> list[str]:
    if isinstance(value, NonFinite):
        raise Rejected("tags", f"tags must be a list of strings or a ';'-separated string, got {value}")
    if _missing(value):
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
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise Rejected("tags", f"tags must be a list of strings or a ';'-separated string, got {_shown(value)}")
    tags = []
    for n, tag in enumerate(value):
        if not isinstance(tag, str):
            raise Rejected("tags", f"tags[{n}] must be a string, got {_shown(tag)}")
        if _SURROGATE.search(tag):
            raise Rejected("tags", "non-UTF-8 bytes in tags (undecodable bytes or a lone surrogate); re-encode the "
                                   "source as UTF-8")
        tag = _CONTROL.sub("", tag).strip()
        if tag:
            tags.append(tag)
    return tags


def _views(value: Any) -> int:
    if isinstance(value, NonFinite):
        raise Rejected("views", f"views must be a non-negative integer, got {value}")
    if _missing(value) or (isinstance(value, str) and value.strip() in ("", "nan")):
        return 0
    if isinstance(value, bool):
        raise Rejected("views", f"views must be a non-negative integer, got {value!r}")
    number: float
    if isinstance(value, str):
        if not _NUMERIC.match(value.strip()):
            raise Rejected("views", f"views must be a non-negative integer, got {_shown(value)}")
        number = float(value)
    elif isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
    else:
        raise Rejected("views", f"views must be a non-negative integer, got {_shown(value)}")
    if not math.isfinite(number) or number < 0 or number != math.floor(number) or number > MAX_VIEWS:
        raise Rejected("views", f"views must be a non-negative integer (at most 2^53), got {_shown(value)}")
    return int(number)


def _url(value: str) -> str:
    url = value.strip()
    if not url:
        return ""
    if _CONTROL.search(url) or any(c.isspace() for c in url):
        raise Rejected("url", f"url contains spaces or control characters: {_shown(url)}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise Rejected("url", f"url must be an absolute http(s) URL, got {_shown(url)}")
    return url


def _dates(raw: list[Any], name: str) -> tuple[list[pd.Timestamp | None], dict[int, str]]:
    """Parsed dates (None where absent) and the reason of each position that is not a date."""
    problems: dict[int, str] = {}
    texts: dict[int, str] = {}
    parsed: list[pd.Timestamp | None] = [None] * len(raw)
    for i, value in enumerate(raw):
        if isinstance(value, NonFinite):
            problems[i] = f"{name} must be a date (ISO 8601), got {value}"
            continue
        if _missing(value) or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, (pd.Timestamp, np.datetime64, datetime.date)):
            stamp = pd.Timestamp(value)
            parsed[i] = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        elif isinstance(value, str) and not _NUMERIC.match(value.strip()):
            texts[i] = value.strip()
        else:
            problems[i] = (f"{name} must be a date (ISO 8601, e.g. 2026-11-27T08:00:00Z), got {_shown(value)}: a "
                           f"number is not a date")
    if texts:
        positions = list(texts)
        values = pd.to_datetime(pd.Series([texts[i] for i in positions], dtype=object), utc=True,
                                errors="coerce", format="mixed")
        for i, stamp in zip(positions, values):
            if pd.isna(stamp):
                problems[i] = f"unparseable date in {name}: {_shown(texts[i])}; use ISO 8601 (2026-11-27T08:00:00Z)"
            else:
                parsed[i] = stamp
    return parsed, problems


def _judge(values: dict[str, Any], config: CatalogueConfig, dates: dict[str, Any],
           repaired: list[str], truncated: list[str]) -> dict[str, Any]:
    """One record as an article, or ``Rejected``."""
    article: dict[str, Any] = {}
    for name in STRING_FIELDS:
        text = _string(values.get(name), name)
        if _CONTROL.search(text):
            if name == "id":
                raise Rejected("id", f"id contains control characters: {_shown(text)}")
            text = _CONTROL.sub("", text)
            repaired.append(name)
        article[name] = text.strip() if name in ("id", "url", "section", "language", "author") else text
    if not article["id"]:
        raise Rejected("id", "missing id: every article needs a unique id")
    if len(article["id"]) > MAX_ID_CHARS:
        raise Rejected("id", f"id has {len(article['id'])} characters; the limit is {MAX_ID_CHARS}")
    article["url"] = _url(article["url"])
    raw_title = article["title"]
    for name in TEXT_FIELDS:
        article[name] = strip_html(article[name]) if article[name] else article[name]
    article["title"] = article["title"].strip()
    if not article["title"]:
        raise Rejected("title", "empty text: the title is empty once markup is stripped" if raw_title.strip()
                       else "missing title")
    for name in TEXT_FIELDS:
        if len(article[name]) > config.max_text_chars:
            article[name] = article[name][: config.max_text_chars]
            truncated.append(article["id"])
    for name in DATE_FIELDS:
        problem = dates[name][1]
        if problem is not None:
            raise Rejected(name, problem)
        article[name] = dates[name][0]
    article["tags"] = _tags(values.get("tags"))
    article["views"] = _views(values.get("views"))
    return article


def validate(frame: pd.DataFrame, config: CatalogueConfig, pre_rejects: Sequence[dict[str, Any]] = ()) -> Catalogue:
    """Map columns, judge every record and split the frame into accepted articles and rejects.

    Raises:
        InvalidCatalogueError: the source has no id or title column (after mapping).
    """
    rejects: list[dict[str, Any]] = list(pre_rejects)
    records = frame.pop("__record").astype(int).to_numpy() if "__record" in frame else np.arange(1, len(frame) + 1)
    frame = frame.rename(columns=dict(config.column_map))
    frame = frame.rename(columns={a: f for a, f in ALIASES.items() if a in frame and f not in frame})
    ignored = [c for c in frame.columns if c not in FIELDS]
    records_in = len(frame) + len(pre_rejects)
    for required in ("id", "title"):
        if required not in frame:
            raise InvalidCatalogueError(f"the catalogue has no {required!r} column (columns: {list(frame.columns)}); "
                                        f"map one with column_map / --column SOURCE={required}")
    columns = {name: frame[name].astype(object).tolist() if name in frame else [None] * len(frame)
               for name in FIELDS}
    parsed_dates = {name: _dates(columns[name], name) for name in DATE_FIELDS}
    accepted: list[dict[str, Any]] = []
    repaired: list[str] = []
    truncated: list[str] = []
    for i in range(len(frame)):
        values = {name: columns[name][i] for name in FIELDS}
        dates = {name: (parsed_dates[name][0][i], parsed_dates[name][1].get(i)) for name in DATE_FIELDS}
        raw_id = "" if _missing(values["id"]) else _printable(str(values["id"])[:MAX_ID_CHARS].strip())
        try:
            article = _judge(values, config, dates, repaired, truncated)
        except Rejected as exc:
            rejects.append(reject_record(records[i], raw_id, exc.field_name, exc.reason))
            continue
        article["__record"] = int(records[i])
        accepted.append(article)
    articles = _latest_of_each_id(accepted, rejects)
    if truncated:
        warnings.warn(f"{len(truncated)} article(s) truncated to {config.max_text_chars} characters: "
                      f"{sorted(set(truncated))[:5]}", CatalogueWarning, stacklevel=2)
    if repaired:
        warnings.warn(f"control characters removed from {len(repaired)} value(s) (fields: "
                      f"{', '.join(sorted(set(repaired)))})", CatalogueWarning, stacklevel=2)
    reject_frame = pd.DataFrame(rejects, columns=["record", "id", "field", "reason"]).sort_values("record",
                                                                                                 kind="stable")
    return Catalogue(articles=articles, rejects=reject_frame.reset_index(drop=True),
                     truncated_ids=sorted(set(truncated)), ignored_columns=ignored, records_in=records_in,
                     repaired=len(repaired))


def _latest_of_each_id(accepted: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> pd.DataFrame:
    """Duplicate ids: keep the newest edit (updated_at, else published_at, else the later record); the others are
    rejected naming the record that superseded them."""
    columns = [*FIELDS, "__record"]
    out = pd.DataFrame(accepted, columns=columns)
    for name in DATE_FIELDS:
        out[name] = pd.to_datetime(out[name], utc=True)
    recency = out["updated_at"].fillna(out["published_at"])
    order = out.assign(__recency=recency).sort_values(["__recency", "__record"], ascending=False, na_position="last")
    duplicated = order["id"].duplicated(keep="first")
    kept_record = order.drop_duplicates("id").set_index("id")["__record"]
    for record, article_id in zip(order.loc[duplicated, "__record"], order.loc[duplicated, "id"]):
        rejects.append(reject_record(record, article_id, "id",
                                     f"duplicate id: superseded by record {kept_record[article_id]} (newer "
                                     f"updated_at)"))
    articles = order[~duplicated].sort_values("__record").drop(columns=["__recency", "__record"])
    articles = articles.reset_index(drop=True)[list(FIELDS)]
    for name in STRING_FIELDS:
        articles[name] = articles[name].astype(str)
    articles["views"] = articles["views"].astype("int64")
    return articles
