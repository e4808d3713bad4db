"""Where online experiments are defined: their definitions, the arms stopped (by hand or by the guardrail), a log
of every change and the site's impression keys (``impression_token``: every worker and replica signs and reads
impression ids with them), in SQLite next to the indexes or PostgreSQL shared by replicas (polled like the live
state).

Keys are rotated with an overlap: ids are signed with the newest key from the moment a worker syncs the rotation,
and a replaced key still verifies ids for ``KEY_OVERLAP_HOURS`` (the 24 hours a click is credited for, plus an
hour for the slowest worker's sync), so no outstanding id loses its click. A key that leaked is revoked instead:
every older key goes at once, and the ids it signed are no longer credited.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from ..experiments.definition import Experiment
from ..experiments.impression_token import CLICK_HOURS, ImpressionSigner, new_key
from ..live.sql import create_tables, make_engine, read, rows_if_changed, utc_stamp, written

_META = sa.MetaData()
EXPERIMENTS = sa.Table(
    "experiments", _META,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),         # Experiment.to_dict as JSON
    sa.Column("stopped", sa.Text, nullable=False),      # JSON list of stopped arm names
    sa.Column("ended_at", sa.String, nullable=True),    # ended by hand before its stops_at
)
LOG = sa.Table(
    "experiment_log", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),     # "create" | "stop_arm" | "end"
    sa.Column("experiment", sa.String, nullable=False),
    sa.Column("arm", sa.String, nullable=True),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
)
KEYS = sa.Table(
    "impression_keys", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # 1, 2, ...: the newest signs
    sa.Column("value", sa.LargeBinary, nullable=False),                  # the MAC key (KEY_BYTES)
    sa.Column("made_at", sa.String, nullable=False),                     # utc_stamp()
)
LEGACY_KEYS = "experiment_keys"  # before rotation: one row, name "impression" (its key becomes key 1)
KEY_OVERLAP_HOURS = CLICK_HOURS + 1


@dataclass(frozen=True)
class Running:
    """An experiment as stored: its definition, the arms stopped, and when it was ended by hand."""

    experiment: Experiment
    stopped: frozenset[str]
    ended_at: str | None

    def active(self, now: datetime) -> bool:
        """Whether it runs at ``now``: within its schedule, not ended, and (interleaving) no arm stopped."""
        if self.ended_at is not None or not self.experiment.active(now):
            return False
        return self.experiment.kind != "interleave" or not self.stopped

    def to_dict(self, now: datetime) -> dict[str, object]:
        """JSON-ready: the definition with its state."""
        return {**self.experiment.to_dict(), "stopped_arms": sorted(self.stopped), "ended_at": self.ended_at,
                "active": self.active(now)}


@dataclass(frozen=True)
class ImpressionKey:
    """One of the site's impression keys, as listed (never its bytes)."""

    id: int
    made_at: str
    verifies_until: str | None  # None: it signs (the newest); else when it stops verifying ids

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {"id": self.id, "made_at": self.made_at, "signs": self.verifies_until is None,
                "verifies_until": self.verifies_until}


def _seed_key(connection: sa.Connection) -> None:
    """Make the site's first impression key when the store has none: the key of a store written before keys
    rotated, or a new one (once: a worker that loses the race retries and finds the winner's)."""
    if connection.execute(sa.select(KEYS.c.id).limit(1)).first() is not None:
        return
    value = None
    if sa.inspect(connection).has_table(LEGACY_KEYS):
        legacy = sa.Table(LEGACY_KEYS, sa.MetaData(), autoload_with=connection)
        value = connection.execute(sa.select(legacy.c.value).where(legacy.c.name == "impression")).scalar()
    connection.execute(sa.insert(KEYS).values(id=1, value=value or new_key(), made_at=utc_stamp()))


def _stamp_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class ExperimentStore:
    """The experiments of one site.

    Args:
        location: a SQLite file path or a ``postgresql://`` URL.
    """

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        self.engine = make_engine(location)
        self._lock = threading.Lock()
        self._running: dict[str, Running] = {}
        self._token: tuple[int, int] = (-1, -1)
        self.signer: ImpressionSigner  # signs with the newest key, verifies with it and those still overlapping
        self.key_id = 0  # the newest key's id (changes when the key rotates)
        self.keys: tuple[ImpressionKey, ...] = ()
        create_tables(self.engine, _META, f"the experiment store {self.location}", seed=_seed_key)
        self.sync()

    @property
    def token(self) -> tuple[int, int]:
        """Changes with every change of the store (as last synced)."""
        return self._token

    def all(self) -> dict[str, Running]:
        """Every stored experiment by name (as last synced)."""
        return dict(self._running)

    def get(self, name: str) -> Running:
        """One experiment; ``KeyError`` naming the known ones when there is none."""
        found = self._running.get(name)
        if found is None:
            raise KeyError(f"no experiment {name!r}; known: {sorted(self._running) or 'none'}")
        return found

    def create(self, experiment: Experiment, actor: str, reason: str) -> Running:
        """Store a new experiment (a name is used once: counts are kept by name)."""
        with written(self.engine, f"the experiment store {self.location}") as connection:
            exists = connection.execute(sa.select(EXPERIMENTS.c.name).where(
                EXPERIMENTS.c.name == experiment.name)).first()
            if exists is not None:
                raise ValueError(f"experiment {experiment.name!r} exists; choose another name (counts are kept by "
                                 f"name)")
            connection.execute(sa.insert(EXPERIMENTS).values(name=experiment.name,
                                                             body=json.dumps(experiment.to_dict()), stopped="[]"))
            connection.execute(sa.insert(LOG).values(at=utc_stamp(), action="create", experiment=experiment.name,
                                                     arm=None, actor=actor, reason=reason))
        self.sync()
        return self.get(experiment.name)

    def stop_arm(self, name: str, arm: str, actor: str, reason: str) -> bool:
        """Stop one arm (its readers see control from now on; an interleaving experiment stops); False when it was
        stopped already."""
        with written(self.engine, f"the experiment store {self.location}") as connection:
            row = connection.execute(sa.select(EXPERIMENTS).where(EXPERIMENTS.c.name == name)).mappings().first()
            if row is None:
                raise KeyError(f"no experiment {name!r}")
            arms = Experiment.from_dict(json.loads(row["body"])).arm_names
            if arm not in arms:
                raise KeyError(f"experiment {name!r} has no arm {arm!r}; arms: {list(arms)}")
            stopped = set(json.loads(row["stopped"]))
            if arm in stopped:
                return False
            connection.execute(sa.update(EXPERIMENTS).where(EXPERIMENTS.c.name == name).values(
                stopped=json.dumps(sorted(stopped | {arm}))))
            connection.execute(sa.insert(LOG).values(at=utc_stamp(), action="stop_arm", experiment=name, arm=arm,
                                                     actor=actor, reason=reason))
        self.sync()
        return True

    def end(self, name: str, actor: str, reason: str) -> None:
        """End an experiment now (every reader sees the served build again)."""
        with written(self.engine, f"the experiment store {self.location}") as connection:
            done = connection.execute(sa.update(EXPERIMENTS).where(EXPERIMENTS.c.name == name).values(
                ended_at=utc_stamp())).rowcount
            if not done:
                raise KeyError(f"no experiment {name!r}")
            connection.execute(sa.insert(LOG).values(at=utc_stamp(), action="end", experiment=name, arm=None,
                                                     actor=actor, reason=reason))
        self.sync()

    def history(self, name: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
        """The newest log entries (of one experiment), newest first."""
        query = sa.select(LOG).order_by(LOG.c.id.desc()).limit(limit)
        if name is not None:
            query = query.where(LOG.c.experiment == name)
        with read(self.engine, f"the experiment store {self.location}") as connection:
            return [dict(r) for r in connection.execute(query).mappings().all()]

    def sync(self) -> bool:
        """Re-read the experiments when the store changed (in any process); True when they did."""
        changed = rows_if_changed(self.engine, LOG, EXPERIMENTS, self._token,
                                  f"the experiment store {self.location}")
        if changed is None:
            return False
        token, rows = changed
        running = {row["name"]: Running(Experiment.from_dict(json.loads(row["body"])),
                                        frozenset(json.loads(row["stopped"])), row["ended_at"]) for row in rows}
        with read(self.engine, f"the experiment store {self.location}") as connection:
            keys = connection.execute(sa.select(KEYS).order_by(KEYS.c.id.desc())).mappings().all()
        newest, *older = keys
        until, listed = [], [ImpressionKey(newest["id"], newest["made_at"], None)]
        for replaced, successor in zip(older, keys):
            ends = _stamp_time(successor["made_at"]) + timedelta(hours=KEY_OVERLAP_HOURS)
            until.append((replaced["value"], ends.timestamp()))
            listed.append(ImpressionKey(replaced["id"], replaced["made_at"], ends.strftime("%Y-%m-%dT%H:%M:%SZ")))
        with self._lock:
            if newest["id"] != self.key_id or len(listed) != len(self.keys):
                self.signer = ImpressionSigner(newest["value"], tuple(until))
                self.key_id, self.keys = newest["id"], tuple(listed)
            self._running, self._token = running, token
        return True

    def rotate_key(self, actor: str, reason: str, revoke: bool = False) -> ImpressionKey:
        """Make a new impression key, which signs every id from each worker's next sync. The replaced key still
        verifies ids for ``KEY_OVERLAP_HOURS``; with ``revoke`` every older key goes now (a key that leaked: the
        ids it signed are no longer credited). Keys past their overlap are deleted. Logged."""
        now = datetime.now(UTC)
        with written(self.engine, f"the experiment store {self.location}") as connection:
            keys = connection.execute(sa.select(KEYS.c.id, KEYS.c.made_at).order_by(KEYS.c.id.desc())).all()
            # Keep only the keys that still verify after this rotation: the newest (now replaced) and those whose
            # successor was made within the overlap.
            keep = [] if revoke else [keys[0].id] + [
                replaced.id for replaced, successor in zip(keys[1:], keys)
                if now - _stamp_time(successor.made_at) < timedelta(hours=KEY_OVERLAP_HOURS)]
            connection.execute(sa.delete(KEYS).where(KEYS.c.id.not_in(keep)))
            made = ImpressionKey(keys[0].id + 1, utc_stamp(), None)
            connection.execute(sa.insert(KEYS).values(id=made.id, value=new_key(), made_at=made.made_at))
            connection.execute(sa.insert(LOG).values(
                at=made.made_at, action="revoke_keys" if revoke else "rotate_key", experiment="", arm=None,
                actor=actor, reason=reason or f"impression key {made.id} made"))
        self.sync()
        return made

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
