"""What an online experiment is: its arms, kind, widgets, traffic share, schedule and guardrail, validated."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

from ..config import BuildConfig, PopularityConfig, RankingConfig, RelatednessConfig
from ..config_files import typed

KINDS = ("ab", "interleave")
WIDGETS = ("related", "more-like-this", "popular")
# The build sections an arm may override, and the dataclass each section's settings are checked against.
ARM_SECTIONS: Mapping[str, type] = types.MappingProxyType(
    {"ranking": RankingConfig, "popularity": PopularityConfig, "relatedness": RelatednessConfig})
# Experiment and arm names: lower-case slugs, safe in a file name, a URL, a metric label and a counter key.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ValueError(f"{what} {value!r} is not a valid name: use 1-64 lower-case letters, digits, '-' or '_', "
                         f"starting with a letter or digit")
    return value


@dataclass(frozen=True)
class Arm:
    """One ranking configuration under test.

    Attributes:
        name: the arm's slug ("control", "mmr-07").
        settings: section -> {setting: value} overriding the build's ``[ranking]``, ``[popularity]`` and
            ``[relatedness]`` (``{"ranking": {"mmr_lambda": 0.7}}``). Query-time settings apply at once; most
            ``[relatedness]`` settings shape the build's related table, so an arm changing them needs a build made
            with them (``build_id``), except ``enabled = false`` (lists from a FAISS search instead of the table).
        build_id: a published build this arm ranks from; None = the build the service serves.
        weight: the arm's relative share of an A/B experiment's readers (ignored by interleaving).
    """

    name: str
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    build_id: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check_name(self.name, "arm name")
        if not isinstance(self.settings, Mapping):
            raise ValueError(f"arm {self.name!r}: settings must be a table of sections, got {self.settings!r}")
        frozen: dict[str, Mapping[str, Any]] = {}
        for section, values in self.settings.items():
            if section not in ARM_SECTIONS:
                raise ValueError(f"arm {self.name!r}: unknown settings section {section!r}; an arm may override "
                                 f"{sorted(ARM_SECTIONS)}")
            if not isinstance(values, Mapping):
                raise ValueError(f"arm {self.name!r}: [{section}] must be a table of settings, got {values!r}")
            known = {f.name for f in dataclasses.fields(ARM_SECTIONS[section])}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"arm {self.name!r}: unknown {section} setting(s) {unknown}; known: {sorted(known)}")
            try:  # types and ranges, exactly as a build's config file is checked
                typed(ARM_SECTIONS[section], values, section)
            except ValueError as exc:
                raise ValueError(f"arm {self.name!r}: {exc}") from None
            frozen[section] = dict(values)
        # Copies (plain dicts, so an experiment pickles): the caller's tables can change, this arm's do not.
        object.__setattr__(self, "settings", frozen)
        if self.build_id is not None and (not isinstance(self.build_id, str) or not self.build_id.strip()):
            raise ValueError(f"arm {self.name!r}: build_id must be a non-empty string or unset, got {self.build_id!r}")
        if (not isinstance(self.weight, (int, float)) or isinstance(self.weight, bool)
                or not math.isfinite(self.weight) or self.weight <= 0):
            raise ValueError(f"arm {self.name!r}: weight must be a positive number, got {self.weight!r}")

    def build_config(self, base: BuildConfig) -> BuildConfig:
        """``base`` (the build's config) with this arm's settings applied."""
        changes = {section: typed(ARM_SECTIONS[section], {**dataclasses.asdict(getattr(base, section)), **values},
                                  section)
                   for section, values in self.settings.items()}
        return dataclasses.replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready copy (unset fields left out)."""
        out: dict[str, Any] = {"name": self.name}
        if self.settings:
            out["settings"] = {s: dict(v) for s, v in self.settings.items()}
        if self.build_id is not None:
            out["build_id"] = self.build_id
        if self.weight != 1.0:
            out["weight"] = self.weight
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arm:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an arm must be a table, got {data!r}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"arm {data.get('name')!r}: unknown key(s) {unknown}; known: name, settings, build_id, "
                             f"weight")
        if "name" not in data:
            raise ValueError(f"an arm needs a name, got {dict(data)!r}")
        return cls(**data)


@dataclass(frozen=True)
class Guardrail:
    """When an arm is stopped automatically (the rule itself: ``guardrail.arms_to_stop``).

    Attributes:
        enabled: False never stops an arm.
        min_impressions: an A/B arm and its control both need this many impressions (an interleaving experiment
            this many interleaved impressions) before the rule is applied.
        margin: an arm is stopped when it is clearly more than this share worse than control (0.2: CTR below 80%
            of control's; interleaving: fewer than 0.8 wins per win of control).
        confidence: of the Wilson interval whose upper bound must lie below that line (0.99).
    """

    enabled: bool = True
    min_impressions: int = 1_000
    margin: float = 0.2
    confidence: float = 0.99

    def __post_init__(self) -> None:
        if not isinstance(self.min_impressions, int) or isinstance(self.min_impressions, bool) \
                or self.min_impressions < 1:
            raise ValueError(f"guardrail min_impressions must be an integer >= 1, got {self.min_impressions!r}")
        if not isinstance(self.margin, (int, float)) or not 0 <= self.margin < 1:
            raise ValueError(f"guardrail margin must be in [0, 1), got {self.margin!r}")
        if not isinstance(self.confidence, (int, float)) or not 0.5 <= self.confidence < 1:
            raise ValueError(f"guardrail confidence must be in [0.5, 1), got {self.confidence!r}")


def _aware(value: datetime | str | None, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a time, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value.isoformat()} has no time zone; give one (e.g. 2026-06-01T00:00:00Z)")
    return value


@dataclass(frozen=True)
class Experiment:
    """An online experiment between ranking configurations.

    Attributes:
        name: the experiment's slug (``recommender experiment report NAME``); it also salts assignment, so two
            experiments split readers independently.
        kind: "ab" (each reader sees one arm) or "interleave" (team-draft: every list merges two arms).
        arms: two or more arms (interleaving: exactly two, the first merged as team "a").
        control: the arm others are compared with and guarded against; None = the first arm.
        widgets: the widgets the experiment covers, of ``WIDGETS``.
        traffic_share: share of readers in the experiment, in (0, 1]; the others see the served build.
        starts_at / stops_at: aware times; None = open-ended on that side.
        guardrail: the automatic stop rule's parameters.
    """

    name: str
    kind: str
    arms: Sequence[Arm]
    control: str | None = None
    widgets: Sequence[str] = ("related",)
    traffic_share: float = 1.0
    starts_at: datetime | None = None
    stops_at: datetime | None = None
    guardrail: Guardrail = field(default_factory=Guardrail)

    def __post_init__(self) -> None:
        _check_name(self.name, "experiment name")
        if self.kind not in KINDS:
            raise ValueError(f"experiment {self.name!r}: kind must be one of {list(KINDS)}, got {self.kind!r}")
        arms = tuple(self.arms)
        if not all(isinstance(a, Arm) for a in arms):
            raise ValueError(f"experiment {self.name!r}: arms must be Arm objects")
        if len(arms) < 2:
            raise ValueError(f"experiment {self.name!r}: needs at least 2 arms, got {len(arms)}")
        if self.kind == "interleave" and len(arms) != 2:
            raise ValueError(f"experiment {self.name!r}: interleaving merges exactly 2 arms, got {len(arms)}")
        names = [a.name for a in arms]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"experiment {self.name!r}: arm names must be unique, repeated: {duplicated}")
        object.__setattr__(self, "arms", arms)
        control = names[0] if self.control is None else self.control
        if control not in names:
            raise ValueError(f"experiment {self.name!r}: control {control!r} is not one of its arms {names}")
        object.__setattr__(self, "control", control)
        widgets = (self.widgets,) if isinstance(self.widgets, str) else tuple(self.widgets)
        unknown = sorted(set(widgets) - set(WIDGETS))
        if unknown or not widgets:
            raise ValueError(f"experiment {self.name!r}: widgets must be a non-empty subset of {list(WIDGETS)}, "
                             f"got {list(widgets)}")
        object.__setattr__(self, "widgets", tuple(w for w in WIDGETS if w in widgets))
        share = self.traffic_share
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 1:
            raise ValueError(f"experiment {self.name!r}: traffic_share must be in (0, 1], got {share!r}")
        starts = _aware(self.starts_at, f"experiment {self.name!r}: starts_at")
        stops = _aware(self.stops_at, f"experiment {self.name!r}: stops_at")
        if starts is not None and stops is not None and stops <= starts:
            raise ValueError(f"experiment {self.name!r}: stops_at {stops.isoformat()} is not after starts_at "
                             f"{starts.isoformat()}")
        object.__setattr__(self, "starts_at", starts)
        object.__setattr__(self, "stops_at", stops)
        if not isinstance(self.guardrail, Guardrail):
            raise ValueError(f"experiment {self.name!r}: guardrail must be a Guardrail")

    @functools.cached_property
    def arm_names(self) -> tuple[str, ...]:
        """The arms' names in order (computed once: every list served inside the experiment reads them)."""
        return tuple(a.name for a in self.arms)

    def arm(self, name: str) -> Arm:
        """The arm called ``name``."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"experiment {self.name!r} has no arm {name!r}; arms: {list(self.arm_names)}")

    def active(self, now: datetime) -> bool:
        """Whether the experiment runs at ``now`` (aware): ``starts_at <= now < stops_at``."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now {now.isoformat()} has no time zone")
        return (self.starts_at is None or self.starts_at <= now) and (self.stops_at is None or now < self.stops_at)

    def covers(self, widget: str, now: datetime) -> bool:
        """Whether a list of ``widget`` served at ``now`` is part of the experiment."""
        return widget in self.widgets and self.active(now)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready copy: times as ISO 8601 strings, unset times left out."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "arms": [a.to_dict() for a in self.arms],
                               "control": self.control, "widgets": list(self.widgets),
                               "traffic_share": self.traffic_share, "guardrail": dataclasses.asdict(self.guardrail)}
        for key in ("starts_at", "stops_at"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """Inverse of ``to_dict`` (times may also be TOML datetimes); unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an experiment must be a table, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"experiment {data.get('name')!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"name", "kind", "arms"} - set(data))
        if missing:
            raise ValueError(f"experiment {data.get('name')!r}: missing key(s) {missing}")
        kwargs = dict(data)
        arms = kwargs["arms"]
        if isinstance(arms, (str, bytes)) or not isinstance(arms, Sequence):
            raise ValueError(f"experiment {data['name']!r}: arms must be a list of tables, got {arms!r}")
        kwargs["arms"] = tuple(Arm.from_dict(a) for a in arms)
        if "guardrail" in kwargs:
            guard = kwargs["guardrail"]
            if not isinstance(guard, Mapping):
                raise ValueError(f"experiment {data['name']!r}: guardrail must be a table, got {guard!r}")
            unknown = sorted(set(guard) - {f.name for f in dataclasses.fields(Guardrail)})
            if unknown:
                raise ValueError(f"experiment {data['name']!r}: unknown guardrail setting(s) {unknown}")
            kwargs["guardrail"] = Guardrail(**guard)
        if "widgets" in kwargs and isinstance(kwargs["widgets"], list):
            kwargs["widgets"] = tuple(kwargs["widgets"])
        return cls(**kwargs)
