"""Related-articles recommendation engine for news sites."""

from __future__ import annotations

from .version import __version__

__all__ = ["Recommendation", "Recommender", "Rule", "RuleSet", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy re-exports keep `import recommender` (and the CLI's --help) free of numpy/faiss/torch imports.
    if name in ("Recommender", "Recommendation", "Rule", "RuleSet"):
        from . import query

        return getattr(query, name)
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")
