"""Related-articles recommendation engine for news sites."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Article", "Recommender", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy re-exports keep `import recommender` (and the CLI's --help) free of numpy/faiss/torch imports.
    if name == "Recommender":
        from .engine import Recommender

        return Recommender
    if name == "Article":
        from .articles import Article

        return Article
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")
