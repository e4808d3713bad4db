"""Read catalogues: CSV, JSON Lines, Parquet, MIND news.tsv and SQL sources, then validate them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import CatalogueConfig
from ..errors import InvalidCatalogueError
from .schema import MIND_COLUMNS, Catalogue, reject_record
from .validate import NonFinite, validate


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
            return _read_csv(path)
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


def _read_csv(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A CSV file record by record: a malformed record (bad quoting, a field count other than the header's) is
    rejected with its record and line number; the others are read."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    rows, rejects = [], []
    with opener(path, "rt", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return pd.DataFrame(), []
        except csv.Error as exc:
            raise InvalidCatalogueError(f"cannot read the header of {path}: {exc}") from exc
        record = 0
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                record += 1
                rejects.append(reject_record(record, None, "", f"malformed CSV at line {line}: {exc}"))
                continue
            if not fields:
                continue
            record += 1
            if len(fields) != len(header):
                rejects.append(reject_record(record, fields[0] if fields else None, "",
                                             f"malformed CSV at line {line}: {len(fields)} fields, the header has "
                                             f"{len(header)}"))
                continue
            rows.append({**dict(zip(header, fields)), "__record": record})
    frame = pd.DataFrame(rows, columns=[*header, "__record"], dtype=object)
    return frame, rejects


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    rows, rejects = [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"), parse_constant=NonFinite)
            except UnicodeDecodeError as exc:
                rejects.append(reject_record(number, None, "", f"non-UTF-8 bytes: byte {exc.start} of the line; "
                                                               f"re-encode as UTF-8"))
                continue
            except json.JSONDecodeError as exc:
                rejects.append(reject_record(number, None, "", f"invalid JSON: {exc.msg} at column {exc.colno}"))
                continue
            if not isinstance(row, dict):
                rejects.append(reject_record(number, None, "", "invalid JSON: the line is not an object"))
                continue
            row["__record"] = number
            rows.append(row)
    return pd.DataFrame(rows, dtype=object), rejects


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
