"""Domain errors: every message names the offending value and the fix."""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownArticleError(RecommenderError, KeyError):
    """An article id that is not in the loaded build (or live delta)."""

    def __init__(self, article_id: str) -> None:
        self.article_id = article_id
        super().__init__(article_id)

    def __str__(self) -> str:
        return f"unknown article id {self.article_id!r}: it is not in the loaded index"


class InvalidCatalogueError(RecommenderError):
    """A catalogue that cannot be read, or rejects too many of its rows.

    ``catalogue`` holds what was validated (rejects included) when the failure is the reject ratio, so a
    caller can still write the rejects file.
    """

    def __init__(self, message: str, catalogue: object | None = None) -> None:
        super().__init__(message)
        self.catalogue = catalogue


class IndexFormatError(RecommenderError):
    """A build directory that is incomplete, corrupted, of another format or another model."""


class ModelMismatchError(IndexFormatError):
    """The query-time embedder is not the one the index was built with."""


class ModelIntegrityError(RecommenderError):
    """Packaged model weights whose checksum differs from the pinned one."""


class InvalidQueryError(RecommenderError, ValueError):
    """A query argument out of range (k, empty query, ...)."""


class CatalogueWarning(UserWarning):
    """Input that was repaired automatically (truncated text, stripped HTML, ...)."""


class GateFailedError(RecommenderError):
    """A rebuild failed a quality gate; nothing was published. ``failures`` holds the failed ``GateResult``s."""

    def __init__(self, message: str, failures: list | None = None, report: object | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.report = report


class RebuildLockedError(RecommenderError):
    """Another rebuild holds the lock of this indexes root."""
