"""What a rebuild may reuse from the published build: its text hashes, its vectors and its related state."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalogue.texts import embedding_texts
from ..config import BuildConfig
from ..embedding.base import ModelIdentity
from ..embedding.cache import text_key
from ..errors import IndexFormatError
from ..storage import layout
from ..storage.manifest import read_manifest
from ..storage.versions import IndexStore
from .related_tables import Previous, RelatedState, usable

log = logging.getLogger("recommender.build")


@dataclass(frozen=True)
class Current:
    """The published build as a rebuild sees it.

    Attributes:
        path: its directory.
        count: its article count.
        identity: the model that embedded it.
        keys: article id -> sha256 of the embedded text.
        rows: article id -> row.
        vectors: (n, d) its vectors (memory-mapped).
        ids: article ids in row order.
        lexical_keys: sha256 of each row's lexical text; None for builds from before the column (their related
            state is not reused).
    """

    path: Path
    count: int
    identity: ModelIdentity
    keys: dict[str, str]
    rows: dict[str, int]
    vectors: np.ndarray
    ids: list[str]
    lexical_keys: list[str] | None


def load_current(store: IndexStore, max_chars: int) -> Current | None:
    """The published build's reusable parts, or None (no build yet, or unreadable: rebuilt from scratch)."""
    path = store.current()
    if path is None:
        return None
    try:
        manifest = read_manifest(path, verify_files=False)
        import pyarrow.parquet as pq

        # Only ids and text hashes: the bodies are not needed (builds from before the hash column re-derive them).
        names = pq.read_schema(path / layout.ARTICLES).names
        has_hash = layout.TEXT_HASH_COLUMN in names
        columns = ["id", layout.TEXT_HASH_COLUMN] + ([layout.LEXICAL_HASH_COLUMN]
                                                     if layout.LEXICAL_HASH_COLUMN in names else [])
        table = pd.read_parquet(path / layout.ARTICLES, columns=columns if has_hash else None)
        vectors = np.load(path / layout.VECTORS, mmap_mode="r")
    except (IndexFormatError, OSError, ValueError) as exc:
        log.warning("current build %s is unreadable (%s); rebuilding from scratch", path, exc)
        return None
    ids = table["id"].astype(str).tolist()
    keys = (table[layout.TEXT_HASH_COLUMN].astype(str).tolist() if layout.TEXT_HASH_COLUMN in table else
            [text_key(t) for t in embedding_texts(table, max_chars)])
    lexical_keys = (table[layout.LEXICAL_HASH_COLUMN].astype(str).tolist()
                    if layout.LEXICAL_HASH_COLUMN in table else None)
    return Current(path, manifest.count, manifest.model, dict(zip(ids, keys)),
                   {a: r for r, a in enumerate(ids)}, vectors, ids, lexical_keys)


def previous_state(current: Current | None, meta: dict[str, Any], config: BuildConfig, ids: list[str],
                   keys: list[str], lexical_keys: list[str]) -> Previous | None:
    """The current build's related state mapped onto this build, when it can seed it (else None: from scratch)."""
    if current is None or current.lexical_keys is None:
        return None
    try:
        state = RelatedState.load(current.path)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("related state of %s is unreadable (%s); computing the related stage from scratch",
                    current.path, exc)
        return None
    if not usable(state, meta["model"], meta["depth"], config.relatedness) or \
            state is None or state.dense.rows.shape[0] != len(current.ids):
        return None
    old_keys = [current.keys[a] + lk for a, lk in zip(current.ids, current.lexical_keys)]
    return Previous.match(state, current.ids, old_keys, ids, [k + lk for k, lk in zip(keys, lexical_keys)])
