"""Article schema; read and validate catalogues (CSV, JSON Lines, Parquet, MIND news.tsv, SQL)."""

from __future__ import annotations

import csv
import html
import json
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .config import CatalogueConfig
from .errors import CatalogueWarning, InvalidCatalogueError

FIELDS = ("id", "title", "abstract", "body", "url", "section", "published_at", "updated_at", "language", "tags", "views")
TEXT_FIELDS = ("title", "abstract", "body")
STRING_FIELDS = ("id", "title", "abstract", "body", "url", "section", "language")
DATE_FIELDS = ("published_at", "updated_at")
# Common alternative spellings, applied only when the schema name is absent from the source.
ALIASES = {
    "article_id": "id", "news_id": "id", "headline": "title", "text": "body", "content": "body",
    "lead": "abstract", "summary": "abstract", "description": "abstract", "category": "section",
    "date": "published_at", "published": "published_at", "entities": "tags", "lang": "language",
}
MIND_COLUMNS = ("id", "section", "subsection", "title", "abstract", "url", "title_entities", "abstract_entities")
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


@dataclass(frozen=True)
class Article:
    """One news article as the engine sees it."""

    id: str
    title: str
    abstract: str = ""
    body: str = ""
    url: str = ""
    section: str = ""
    published_at: datetime | None = None
    updated_at: datetime | None = None
    language: str = ""
    tags: tuple[str, ...] = ()
    views: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Article":
        """Build from a validated catalogue row (as in ``Catalogue.articles``)."""
        def when(value: Any) -> datetime | None:
            return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()

        return cls(
            id=row["id"], title=row["title"], abstract=row.get("abstract", ""), body=row.get("body", ""),
            url=row.get("url", ""), section=row.get("section", ""), published_at=when(row.get("published_at")),
            updated_at=when(row.get("updated_at")), language=row.get("language", ""),
            tags=tuple(row.get("tags") or ()), views=int(row.get("views", 0) or 0),
        )


@dataclass
class Catalogue:
    """A validated catalogue: the accepted articles, the rejected rows and what was repaired.

    Attributes:
        articles: one row per accepted article, columns ``FIELDS``, ``published_at``/``updated_at`` aware UTC.
        rejects: ``record`` (1-based position in the source), ``id``, ``field``, ``reason``.
        truncated_ids: ids whose text was longer than ``max_text_chars`` and was cut.
        ignored_columns: source columns that map to no schema field.
        records_in: records read from the source.
    """

    articles: pd.DataFrame
    rejects: pd.DataFrame
    truncated_ids: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    records_in: int = 0

    def summary(self) -> str:
        """One line for a terminal or a log."""
        reasons = self.rejects["reason"].str.split(":").str[0].value_counts().to_dict() if len(self.rejects) else {}
        parts = [f"{self.records_in} records read", f"{len(self.articles)} accepted", f"{len(self.rejects)} rejected"]
        if reasons:
            parts[-1] += " (" + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) + ")"
        if self.truncated_ids:
            parts.append(f"{len(self.truncated_ids)} truncated")
        if self.ignored_columns:
            parts.append("ignored columns: " + ", ".join(self.ignored_columns))
        return "; ".join(parts)

    def write_rejects(self, path: str | Path) -> Path:
        """Write the rejected rows with their reasons as CSV (an empty file with a header when none)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rejects.to_csv(path, index=False)
        return path


def read_catalogue(source: str | Path | pd.DataFrame, config: CatalogueConfig | None = None) -> Catalogue:
    """Read and validate a catalogue.

    Args:
        source: a path (``.csv``, ``.jsonl``/``.ndjson``, ``.parquet``, MIND ``news.tsv``), a SQLAlchemy URL
            (``postgresql://...#table`` or ``...?query=SELECT...``; see ``read_sql``) or a DataFrame.
        config: column mapping and limits.

    Returns:
        The validated ``Catalogue``.

    Raises:
        InvalidCatalogueError: the source cannot be read, lacks an id or title column, or rejects more than
            ``config.max_reject_ratio`` of its records.
    """
    config = config or CatalogueConfig()
    pre_rejects: list[dict[str, Any]] = []
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    elif isinstance(source, str) and "://" in source:
        frame = read_sql(source)
    else:
        frame, pre_rejects = _read_file(Path(source))
    catalogue = validate(frame, config, pre_rejects=pre_rejects)
    ratio = len(catalogue.rejects) / max(catalogue.records_in, 1)
    if ratio > config.max_reject_ratio:
        raise InvalidCatalogueError(
            f"{len(catalogue.rejects)} of {catalogue.records_in} records rejected ({ratio:.1%}), over the "
            f"maximum reject ratio {config.max_reject_ratio:.1%}; fix the source or raise max_reject_ratio. "
            f"First reasons: " + "; ".join(
                f"record {r.record} ({r.id or 'no id'}): {r.reason}" for r in catalogue.rejects.head(3).itertuples()
            ),
            catalogue,
        )
    return catalogue


def read_sql(url: str) -> pd.DataFrame:
    """Read a catalogue from a database with SQLAlchemy.

    ``url`` is a SQLAlchemy URL followed by ``#table_name`` or by ``#SELECT ...`` (a query), for example
    ``postgresql+psycopg://cms@db/news#articles``. ``postgresql://`` is read with psycopg 3.
    """
    import sqlalchemy as sa

    if "#" not in url:
        raise InvalidCatalogueError(f"database source {url!r} names no table: append '#table' or '#SELECT ...'")
    address, what = url.split("#", 1)
    if address.startswith("postgresql://"):
        address = "postgresql+psycopg://" + address[len("postgresql://"):]
    query = what if what.strip().lower().startswith("select") else f"SELECT * FROM {sa.table(what)}"
    try:
        engine = sa.create_engine(address)
        with engine.connect() as connection:
            return pd.read_sql_query(sa.text(query), connection)
    except Exception as exc:  # any driver error becomes one clear message
        raise InvalidCatalogueError(f"cannot read catalogue from {address}: {exc}") from exc


def _read_file(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    if not path.exists():
        raise InvalidCatalogueError(f"catalogue file {path} does not exist")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz"):
            frame = pd.read_csv(path, dtype=object, keep_default_na=False, encoding="utf-8",
                                encoding_errors="surrogateescape")
            return frame, []
        if suffix in (".jsonl", ".ndjson", ".json"):
            return _read_jsonl(path)
        if suffix == ".parquet":
            return pd.read_parquet(path), []
        if suffix == ".tsv":
            frame = pd.read_csv(path, sep="\t", header=None, names=list(MIND_COLUMNS), dtype=object,
                                keep_default_na=False, quoting=csv.QUOTE_NONE, encoding="utf-8",
                                encoding_errors="surrogateescape")
            return _from_mind(frame), []
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidCatalogueError(f"cannot read catalogue {path}: {exc}") from exc
    raise InvalidCatalogueError(
        f"catalogue {path} has an unknown format {suffix!r}; use .csv, .jsonl, .parquet or a MIND news.tsv"
    )


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    rows, rejects = [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                rejects.append(_reject(number, None, "", f"non-UTF-8 bytes: byte {exc.start} of the line; re-encode as UTF-8"))
                continue
            except json.JSONDecodeError as exc:
                rejects.append(_reject(number, None, "", f"invalid JSON: {exc.msg} at column {exc.colno}"))
                continue
            if not isinstance(row, dict):
                rejects.append(_reject(number, None, "", "invalid JSON: the line is not an object"))
                continue
            row["__record"] = number
            rows.append(row)
    return pd.DataFrame(rows), rejects


def mind_entity_labels(*cells: str) -> list[str]:
    """The distinct entity labels of MIND ``title_entities`` / ``abstract_entities`` JSON cells, in order
    (a cell that is not such JSON contributes none)."""
    found: list[str] = []
    for cell in cells:
        try:
            for entity in json.loads(cell) if cell else []:
                if entity.get("Label") and entity["Label"] not in found:
                    found.append(entity["Label"])
        except (json.JSONDecodeError, AttributeError, TypeError):
            continue
    return found


def _from_mind(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["tags"] = [mind_entity_labels(a, b) for a, b in zip(frame["title_entities"], frame["abstract_entities"])]
    return frame.drop(columns=["title_entities", "abstract_entities", "subsection"])


def _reject(record: int, article_id: Any, field_name: str, reason: str) -> dict[str, Any]:
    return {"record": int(record), "id": "" if article_id is None else str(article_id), "field": field_name,
            "reason": reason}


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
            rejects.append(_reject(records[position], raw_ids[position], field_name, reason))
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
        rejects.append(_reject(record, article_id, "id",
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


def embedding_text(title: str, abstract: str, body: str, max_chars: int) -> str:
    """The one text embedded per article: title, then abstract (standfirst), then the start of the body.

    The headline carries the story; the standfirst and lead paragraph carry who/where/what. all-MiniLM-L6-v2
    reads at most 256 word pieces (~1,000-1,200 characters of English), so ``max_chars`` (1,500 by default) is
    cut at a word boundary and the model truncates the rest: later paragraphs would never be seen anyway.
    """
    title = title.strip()
    head = title if not title or title[-1] in ".!?:" else title + "."
    text = " ".join(part for part in (head, abstract.strip(), " ".join(body.split())) if part)
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


def lexical_texts(articles: pd.DataFrame) -> list[str]:
    """Title + abstract + the whole body of each row: the document of the lexical (TF-IDF) relatedness."""
    parts = [articles[c].fillna("").astype(str) if c in articles else pd.Series("", index=articles.index)
             for c in ("title", "abstract", "body")]
    return [" ".join(p for p in row if p) for row in zip(*parts)]


def embedding_texts(articles: pd.DataFrame, max_chars: int) -> list[str]:
    """``embedding_text`` for every row of a validated catalogue frame."""
    return [embedding_text(t, a, b, max_chars) for t, a, b in
            zip(articles["title"], articles["abstract"], articles["body"])]
