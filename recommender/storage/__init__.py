"""Builds on disk: the file layout, the manifest, the version store (stage, publish, rollback, gc), the FAISS
index, and the writer and reader of a build directory."""

from __future__ import annotations

from .index import FaissIndex
from .manifest import Manifest, read_manifest
from .reader import StoredBuild, read_build
from .versions import IndexStore, new_build_id, resolve_build_dir

__all__ = ["FaissIndex", "IndexStore", "Manifest", "StoredBuild", "new_build_id", "read_build", "read_manifest",
           "resolve_build_dir"]
