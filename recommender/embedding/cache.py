"""The embedding cache: vectors keyed by (model fingerprint + backend, sha256 of the embedded text) in SQLite."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..sqlitedb import connect_wal
from .base import Embedder


def text_key(text: str) -> str:
    """Cache key of one embedded text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Vectors keyed by (model fingerprint, sha256 of the embedded text), in one SQLite file.

    A rebuild looks every text up first and embeds only the misses, so unchanged articles cost a read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect_wal(self.path, 60)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT NOT NULL, text_sha256 TEXT NOT NULL, "
                         "vector BLOB NOT NULL, PRIMARY KEY (fingerprint, text_sha256))")

    def get(self, fingerprint: str, keys: Sequence[str], dims: int) -> dict[str, np.ndarray]:
        """Cached vectors for those ``keys`` that are present."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT text_sha256, vector FROM vectors WHERE fingerprint = ? AND "
                                    f"text_sha256 IN ({marks})", [fingerprint, *chunk])
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape[0] == dims:
                    found[key] = vector
        return found

    def put(self, fingerprint: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (one row per key)."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                 [(fingerprint, k, np.asarray(v, dtype=np.float32).tobytes())
                                  for k, v in zip(keys, vectors)])

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def embed_cached(embedder: Embedder, texts: Sequence[str], cache: EmbeddingCache | None,
                 progress: bool = False) -> tuple[np.ndarray, int]:
    """Embed ``texts`` through the cache.

    Returns:
        (vectors (n, dims) float32, how many were embedded now rather than read from the cache).
    """
    identity = embedder.identity
    if cache is None:
        return embedder.encode(texts, progress=progress), len(texts)
    keys = [text_key(t) for t in texts]
    found = cache.get(identity.cache_tag, keys, identity.dims)
    missing = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
    vectors = np.zeros((len(texts), identity.dims), dtype=np.float32)
    if missing:
        fresh = embedder.encode([texts[i] for i in missing], progress=progress)
        cache.put(identity.cache_tag, [keys[i] for i in missing], fresh)
        for i, vector in zip(missing, fresh):
            found[keys[i]] = vector
    for i, key in enumerate(keys):
        vectors[i] = found[key]
    return vectors, len(missing)
