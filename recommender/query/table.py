"""Per-row article data the ranker reads: one build's table, the live articles' table, and the two as one row space."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from ..times import iso_hours


def object_array(values: list) -> np.ndarray:
    """A 1-D object array, element by element (equal-length tag tuples must not become a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


@dataclass(frozen=True)
class ArticleTable:
    """Per-row article data, aligned with index rows.

    Attributes:
        ids / titles / sections / urls: (n,) object str.
        published_hours: (n,) float64 hours since the epoch, NaN when unknown.
        vectors: (n, d) float32 unit vectors.
        copy_groups: (n,) int64 copy group of each row (copies of one piece share it; ``recommender.stories``).
        story_ids: (n,) object str, the story of each row (the id of its first article).
        tags: (n,) object, tuples of tag / entity names.
        languages: (n,) object language codes, "" when unknown.
        authors: (n,) object str, "" when unknown (editorial boosts match it).
        embargo_hours: (n,) float64 hours since the epoch before which the row is never listed (NaN: none; a
            publication time in the future embargoes too, see ``query.editorial``).
    """

    ids: np.ndarray
    titles: np.ndarray
    sections: np.ndarray
    urls: np.ndarray
    published_hours: np.ndarray
    vectors: np.ndarray
    copy_groups: np.ndarray
    story_ids: np.ndarray
    tags: np.ndarray
    languages: np.ndarray
    authors: np.ndarray
    embargo_hours: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, dims: int) -> ArticleTable:
        """A table without rows."""
        none = np.zeros(0, dtype=object)
        return cls(none, none, none, none, np.zeros(0), np.zeros((0, dims), dtype=np.float32),
                   np.zeros(0, dtype=np.int64), none, none, none, none, np.zeros(0))

    def story(self, row: int) -> str | None:
        """Story id of a row, None when unknown."""
        story = self.story_ids[row]
        return None if story is None or story == "" else str(story)

    def row_tags(self, row: int) -> tuple[str, ...]:
        """Tags / entities of a row."""
        tags = self.tags[row]
        return tuple(tags) if tags is not None else ()

    def record(self, row: int) -> dict[str, object]:
        """The fields of a row as JSON-ready values (id, title, section, url, published_at, language, tags,
        author)."""
        return {"id": str(self.ids[row]), "title": str(self.titles[row]), "section": str(self.sections[row]),
                "url": str(self.urls[row]), "published_at": self.published_iso(row),
                "language": str(self.languages[row]), "tags": list(self.row_tags(row)),
                "author": str(self.authors[row])}

    def published_iso(self, row: int) -> str | None:
        """ISO 8601 UTC of a row's publication time."""
        return iso_hours(float(self.published_hours[row]))


@dataclass(frozen=True)
class Anchor:
    """An article a list is for (the article being read, or a more-like-this example).

    Attributes:
        row: its row in the listed row space (``ListedArticles``).
        story / hours / tags: its story, publication time and tags (explanations, same-story boost).
        group: its copy group (its copies are never listed beside it).
        language: its language ("" unknown).
        section: its section (editorial blocks in a section's lists; the fallback of a list the floor left short).
    """

    row: int
    story: str | None
    hours: float
    tags: tuple[str, ...]
    group: int
    language: str
    section: str = ""
    vector: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0, dtype=np.float32))

    @cached_property
    def folded_tags(self) -> frozenset[str]:
        """Its tags case-folded (what a result's shared tags are matched against), once per list."""
        return frozenset(t.casefold() for t in self.tags)


@dataclass(frozen=True)
class ListedArticles:
    """A build's rows and the live articles' rows as one row space (build rows 0..n-1, live rows n..n+m-1), with
    what may not be listed.

    Attributes:
        build: the build's table.
        live: the live articles (upserted since the build), their copy groups and stories assigned on arrival.
        hidden: (n + m,) bool: rows never listed (taken down, or a build row replaced by a live edit).
        live_row_of: article id -> live row (0-based within ``live``).
        seq: the overlay snapshot these rows come from.
        build_row_of: article id -> build row.
    """

    build: ArticleTable
    live: ArticleTable
    hidden: np.ndarray
    live_row_of: Mapping[str, int] = field(default_factory=dict)
    seq: object = 0
    build_row_of: Mapping[str, int] = field(default_factory=dict)

    # Read several times per result of every list: computed once per snapshot (the tables never change).
    @cached_property
    def n_build(self) -> int:
        """Rows of the build."""
        return len(self.build)

    @cached_property
    def n_live(self) -> int:
        """Rows of the live articles."""
        return len(self.live)

    def __len__(self) -> int:
        return self.n_build + self.n_live

    def take(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Column ``name`` (an ``ArticleTable`` field) at global ``rows``."""
        base = getattr(self.build, name)
        if not self.n_live:
            return base[rows]
        rows = np.asarray(rows, dtype=np.int64)
        extra = getattr(self.live, name)
        low = rows < self.n_build
        out = np.empty((len(rows), *base.shape[1:]), dtype=base.dtype)
        out[low] = base[rows[low]]
        out[~low] = extra[rows[~low] - self.n_build]
        return out

    def row_of(self, article_id: str) -> int | None:
        """The row an id is listed at (its live row when it was edited live), or None: not held, or hidden."""
        live_row = self.live_row_of.get(article_id)
        row = self.n_build + live_row if live_row is not None else self.build_row_of.get(article_id)
        return None if row is None or self.hidden[row] else row

    def rows_of(self, article_ids: Sequence[str]) -> list[int]:
        """The listed rows of those ids that are listed."""
        return [r for r in map(self.row_of, article_ids) if r is not None]

    def anchor(self, row: int) -> Anchor:
        """A listed row as the article a list is for."""
        table, local = self.source(row)
        return Anchor(row, table.story(local), float(table.published_hours[local]), table.row_tags(local),
                      int(table.copy_groups[local]), str(table.languages[local]), str(table.sections[local]),
                      np.asarray(table.vectors[local], dtype=np.float32))

    def source(self, row: int) -> tuple[ArticleTable, int]:
        """(the table holding a global row, its row there)."""
        return (self.build, row) if row < self.n_build else (self.live, row - self.n_build)
