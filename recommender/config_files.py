"""Build settings from files and manifests: each value checked against its type, renamed settings read under
their new names, and the settings older builds did not record filled in as they were then."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, Mapping

from .config import (
    BuildConfig,
    CatalogueConfig,
    EmbedderConfig,
    GateConfig,
    IndexConfig,
    PopularityConfig,
    RankingConfig,
    RelatednessConfig,
    StoryConfig,
)

_ADAPTERS: dict[type, dict[str, Any]] = {}


def typed(cls: type, values: Mapping[str, Any], section: str) -> Any:
    """``cls(**values)`` with every value checked against its annotated type (pydantic, strict: a string is not
    a number, a float is not an integer), then the class's own range checks.

    Raises:
        ValueError: naming the section, the setting and what was wrong.
    """
    import typing

    from pydantic import TypeAdapter, ValidationError

    adapters = _ADAPTERS.get(cls)
    if adapters is None:
        hints = typing.get_type_hints(cls)
        adapters = _ADAPTERS[cls] = {f.name: TypeAdapter(hints[f.name]) for f in dataclasses.fields(cls)}
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = adapters[name].validate_python(value, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"[{section}] {name}: {first.get('msg')} (got {value!r})") from None
    try:
        return cls(**checked)
    except ValueError as exc:
        raise ValueError(f"[{section}] {exc}") from None


def as_built(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest's build settings with what builds from before a setting existed did in its place: the entity
    term (``RelatednessConfig.entity_weight``) was 0 before it was introduced."""
    stored = dict(stored) if isinstance(stored, Mapping) else stored
    relatedness = stored.get("relatedness") if isinstance(stored, dict) else None
    if isinstance(relatedness, Mapping) and "entity_weight" not in relatedness:
        return {**stored, "relatedness": {**relatedness, "entity_weight": 0.0}}
    return stored


# Settings renamed for what they hold: old name -> (section, new name). Files and manifests written with the old
# names still load.
RENAMED = {"weight_similarity": ("ranking", "weight_relatedness")}


def renamed_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with renamed settings under their current names (a setting given under both names: the new wins)."""
    out = dict(data)
    for old, (section, new) in RENAMED.items():
        part = out.get(section)
        if isinstance(part, Mapping) and old in part:
            part = dict(part)
            value = part.pop(old)
            part.setdefault(new, value)
            out[section] = part
    return out



def build_config(data: Mapping[str, Any]) -> BuildConfig:
    """``BuildConfig.from_dict``: build settings from a table of sections; unknown keys are an error naming them."""
    parts = {
        "catalogue": CatalogueConfig,
        "embedder": EmbedderConfig,
        "index": IndexConfig,
        "popularity": PopularityConfig,
        "ranking": RankingConfig,
        "stories": StoryConfig,
        "relatedness": RelatednessConfig,
        "gates": GateConfig,
    }
    kwargs: dict[str, Any] = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"build settings must be a table of sections, got {type(data).__name__}")
    data = renamed_settings(data)
    for key, value in data.items():
        if key in parts:
            if not isinstance(value, Mapping):
                raise ValueError(f"[{key}] must be a table of settings, got {value!r}")
            known = {f.name for f in dataclasses.fields(parts[key])}
            unknown = set(value) - known
            if unknown:
                raise ValueError(f"unknown {key} setting(s) {sorted(unknown)}; known: {sorted(known)}")
            kwargs[key] = typed(parts[key], value, key)
        elif key in {"neighbour_count", "neighbour_margin", "keep_versions", "query_shard_rows"}:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{key} must be an integer, got {value!r}")
            kwargs[key] = value
        else:
            raise ValueError(f"unknown build setting {key!r}")
    return BuildConfig(**kwargs)

def load_build_config(path: str | Path) -> BuildConfig:
    """Read build settings from a TOML or JSON file with the sections of ``BuildConfig``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
    else:
        data = tomllib.loads(path.read_text())
    return BuildConfig.from_dict(data)
