"""Articles in: read a catalogue (files, MIND, SQL), validate it row by row, derive the texts a build uses."""

from __future__ import annotations

from .read import mind_entity_labels, read_catalogue, read_sql
from .schema import FIELDS, Catalogue
from .texts import embedding_text, embedding_texts, lexical_texts
from .validate import strip_html, validate
from .views import read_views

__all__ = ["FIELDS", "Catalogue", "embedding_text", "embedding_texts", "lexical_texts", "mind_entity_labels",
           "read_catalogue", "read_sql", "read_views", "strip_html", "validate"]
