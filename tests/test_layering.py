"""Imports flow one way: cli/service -> pipeline/engine -> leaf modules; typer and fastapi stay at the edges."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recommender"
LEAVES = {"errors", "config", "articles", "embedder", "index", "popularity", "events", "ranking", "manifest"}
TOP = {"cli", "service", "pipeline", "evaluation"}


def imports_of(path: Path) -> set[str]:
    """Top-level module names a file imports (package-relative imports resolved to their first part)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                names.add(node.module.split(".")[0])
            elif node.level:
                names |= {alias.name for alias in node.names}
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def test_leaf_modules_never_import_upwards():
    """Leaf modules import neither the pipeline, the CLI, the service nor the evaluation package."""
    for name in LEAVES:
        assert not imports_of(PACKAGE / f"{name}.py") & TOP, name


def test_typer_only_in_cli_and_fastapi_only_in_service():
    """Only cli.py imports typer; only recommender/service/ imports fastapi."""
    for path in PACKAGE.rglob("*.py"):
        found = imports_of(path)
        if path.name != "cli.py":
            assert "typer" not in found, path
        if "service" not in path.relative_to(PACKAGE).parts:
            assert "fastapi" not in found, path
