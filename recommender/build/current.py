"""What a rebuild may reuse from the published build: its text hashes, its vectors and its related state."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
        vectors: (n, d) its vectors (memory-mapped); None when ``vectors.npy`` failed its checksum (nothing is
            reused from it then).
        ids: article ids in row order.
        lexical_keys: sha256 of each row's lexical text; None for builds from before the column (their related
            state is not reused).
        manifest_files: the manifest's file list (each reused file is checked against it first).
        refused: what could not be reused and why (reported in the build's manifest and summary).
        factory: its FAISS factory string (the index stage updates an HNSW index of the same factory).
    """

    path: Path
    count: int
    identity: ModelIdentity
    keys: dict[str, str]
    rows: dict[str, int]
    vectors: np.ndarray | None
    ids: list[str]
    lexical_keys: list[str] | None
    manifest_files: dict[str, dict[str, object]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    factory: str = ""


def load_current(store: IndexStore, max_chars: int) -> Current | None:
    """The published build's reusable parts, or None (no build yet, or unreadable: rebuilt from scratch)."""
    path = store.current()
    if path is None:
        return None
    try:
        manifest = read_manifest(path, verify_files=False)
        import pyarrow.parquet as pq

        verified(path, layout.ARTICLES, manifest.files)

        # Only ids and text hashes: the bodies are not needed (builds from before the hash column re-derive them).
        names = pq.read_schema(path / layout.ARTICLES).names
        has_hash = layout.TEXT_HASH_COLUMN in names
        columns = ["id", layout.TEXT_HASH_COLUMN] + ([layout.LEXICAL_HASH_COLUMN]
                                                     if layout.LEXICAL_HASH_COLUMN in names else [])
        table = pd.read_parquet(path / layout.ARTICLES, columns=columns if has_hash else None)
    except (IndexFormatError, OSError, ValueError) as exc:
        log.warning("current build %s is unreadable (%s); rebuilding from scratch", path, exc)
        return None
    refused: list[str] = []
    try:
        verified(path, layout.VECTORS, manifest.files)
        vectors: np.ndarray | None = np.load(path / layout.VECTORS, mmap_mode="r")
    except (IndexFormatError, OSError, ValueError) as exc:
        log.warning("not reusing the vectors of %s (%s): every article is embedded or read from the cache",
                    path, exc)
        refused.append(f"{layout.VECTORS}: {exc}")
        vectors = None
    ids = table["id"].astype(str).tolist()
    keys = (table[layout.TEXT_HASH_COLUMN].astype(str).tolist() if layout.TEXT_HASH_COLUMN in table else
            [text_key(t) for t in embedding_texts(table, max_chars)])
    lexical_keys = (table[layout.LEXICAL_HASH_COLUMN].astype(str).tolist()
                    if layout.LEXICAL_HASH_COLUMN in table else None)
    return Current(path, manifest.count, manifest.model, dict(zip(ids, keys)),
                   {a: r for r, a in enumerate(ids)}, vectors, ids, lexical_keys, dict(manifest.files), refused,
                   str(manifest.index["factory"]))


def verified(directory: Path, name: str, files: dict[str, dict[str, object]]) -> None:
    """Raise ``IndexFormatError`` unless ``name`` is listed in the manifest and matches its size and sha256."""
    from ..fileio import file_sha256

    expected = files.get(name)
    path = directory / name
    if expected is None:
        raise IndexFormatError(f"{name} is not listed in the manifest of {directory}")
    if not path.is_file() or path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
        raise IndexFormatError(f"{path} does not match its sha256 in the manifest")


def previous_state(current: Current | None, meta: dict[str, Any], config: BuildConfig, ids: list[str],
                   keys: list[str], lexical_keys: list[str]) -> Previous | None:
    """The current build's related state mapped onto this build, when it can seed it (else None: from scratch)."""
    if current is None or current.lexical_keys is None or current.vectors is None:
        return None
    if layout.RELATED_STATE not in current.manifest_files:
        return None
    try:
        verified(current.path, layout.RELATED_STATE, current.manifest_files)
        state = RelatedState.load(current.path)
    except Exception as exc:  # noqa: BLE001 - any damage: the stage runs from scratch, and says so
        log.warning("related state of %s is unusable (%s); computing the related stage from scratch",
                    current.path, exc)
        current.refused.append(f"{layout.RELATED_STATE}: {type(exc).__name__}: {exc}")
        return None
    if not usable(state, meta["model"], meta["depth"], config.relatedness) or \
            state is None or state.dense.rows.shape[0] != len(current.ids):
        return None
    old_keys = [current.keys[a] + lk for a, lk in zip(current.ids, current.lexical_keys)]
    return Previous.match(state, current.ids, old_keys, ids, [k + lk for k, lk in zip(keys, lexical_keys)])
