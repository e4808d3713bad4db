"""Imports flow one way between the stage folders: every module of the package is parsed (absolute and relative
imports, at module level and inside functions) and each import must point at a layer its own may use."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recommender"
# Pure leaves shared by every stage.
LEAVES = {"config", "config_files", "errors", "times", "pairs", "sqlitedb", "fileio", "version"}
# What each part of the package may import besides the leaves (and itself). The build never ranks and the query
# side never builds: the two share only storage and the leaves (``stories`` included).
ALLOWED: dict[str, set[str]] = {
    "config": set(), "errors": set(), "times": set(), "pairs": set(), "sqlitedb": set(), "fileio": set(),
    "version": set(), "config_files": set(),
    "stories": set(),
    "catalogue": set(),
    "embedding": set(),
    "storage": {"embedding"},
    "query": {"storage", "embedding", "stories"},
    "live": {"query", "storage", "embedding"},
    "build": {"catalogue", "embedding", "storage", "stories"},
    "evaluation": {"catalogue", "embedding", "storage", "build", "query", "stories", "experiments"},
    "experiments": {"query", "storage", "embedding", "stories"},
    "service": {"catalogue", "embedding", "storage", "query", "live", "experiments"},
    # Tuning fine-tunes the embedder on mined pairs and gates it with the evaluation's metrics; it never builds.
    "tuning": {"embedding", "catalogue", "evaluation", "stories"},
    "cli": {"catalogue", "embedding", "storage", "query", "live", "build", "evaluation", "service", "experiments",
            "tuning"},
    "__init__": {"query"},
}
# Third-party frameworks stay at the edges.
EDGE_ONLY = {"typer": {"cli"}, "fastapi": {"service"}, "starlette": {"service"}, "uvicorn": {"cli", "service"}}


def part_of(path: Path) -> str:
    """The layer a module belongs to: its top folder, or its own name for a top-level module."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(package parts imported, third-party top-level modules imported) by one file of the package."""
    return parse_imports(path.read_text(), list(path.relative_to(PACKAGE).with_suffix("").parts))


def parse_imports(source: str, module_parts: list[str]) -> tuple[set[str], set[str]]:
    """(package parts imported, third-party modules imported) by ``source``, the module at ``module_parts``
    inside the package; relative imports are resolved against its package."""
    package = module_parts[:-1]  # the module's own package inside recommender
    internal, external = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "recommender":
                    internal.add(parts[1] if len(parts) > 1 else "__init__")
                else:
                    external.add(parts[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    internal.add(target[0])
                else:  # "from . import x" at the top of the package
                    internal |= {alias.name for alias in node.names}
            elif node.module:
                parts = node.module.split(".")
                if parts[0] == "recommender":
                    internal.add(parts[1] if len(parts) > 1 else "__init__")
                else:
                    external.add(parts[0])
    return internal, external


def modules() -> list[Path]:
    """Every Python module of the package."""
    return sorted(PACKAGE.rglob("*.py"))


def forbidden(part: str, internal: set[str]) -> set[str]:
    """The imported parts a module of ``part`` may not use."""
    return internal - {part} - LEAVES - ALLOWED[part]


def test_every_import_follows_the_layer_direction():
    """No module imports a layer its own may not use (e.g. build -> query, query -> build, storage -> query)."""
    violations = []
    for path in modules():
        part = part_of(path)
        assert part in ALLOWED, f"{path} is in no known layer; add {part!r} to ALLOWED"
        for target in forbidden(part, imports_of(path)[0]):
            violations.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not violations, "\n".join(violations)


def test_the_check_catches_relative_absolute_and_nested_imports_against_the_direction():
    """Imports against the direction are caught however they are written (so the test above can fail)."""
    cases = {
        "def f():\n    from ..query.recommender import Recommender\n": "query",   # relative, in a function
        "import recommender.query.ranking\n": "query",                           # absolute
        "from recommender.service import app\n": "service",
        "from .. import evaluation\n": "evaluation",                             # the package's own name
    }
    for source, target in cases.items():
        internal, _ = parse_imports(source, ["build", "pipeline"])
        assert forbidden("build", internal) == {target}, source
    same_folder, _ = parse_imports("from . import gates\nfrom .toptable import TopTable\n", ["build", "x"])
    assert forbidden("build", same_folder) == set()
    assert forbidden("query", parse_imports("from ..build import rebuild\n", ["query", "x"])[0]) == {"build"}


def test_frameworks_stay_at_the_edges():
    """typer only in the CLI; fastapi/starlette only in the service; uvicorn only where the service is run."""
    for path in modules():
        _, external = imports_of(path)
        for framework, owners in EDGE_ONLY.items():
            if framework in external:
                assert part_of(path) in owners, f"{path.relative_to(PACKAGE)} imports {framework}"


def test_modules_are_small():
    """No module above 400 lines (the aim is 50-300; a newcomer reads one in a sitting)."""
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
