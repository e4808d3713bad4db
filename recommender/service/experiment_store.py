"""Where online experiments are defined: their definitions, the arms stopped (by hand or by the guardrail), a log
of every change and the site's impression keys (``impression_token``: every worker and replica signs and reads
impression ids with them), in SQLite next to the indexes or PostgreSQL shared by replicas (polled like the live
state).

The keys rotate with an overlap, or are revoked (``impression_keys.py``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from ..experiments.definition import Experiment
from ..experiments.impression_token import ImpressionSigner
from ..live.sql import StoreUnavailableError, create_tables, make_engine, read, rows_if_changed, utc_stamp, written
from .impression_keys import KEYS_META, ImpressionKey, RotationConflictError, SiteKeys, read_keys, rotate, seed_key

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
        self._sync_lock = threading.Lock()  # one sync at a time: an older read never lands after a newer one
        self._token: tuple[int, int] = (-1, -1)
        self._keys: SiteKeys
        create_tables(self.engine, _META, f"the experiment store {self.location}")
        create_tables(self.engine, KEYS_META, f"the experiment store {self.location}", seed=seed_key)
        self.sync()

    @property
    def signer(self) -> ImpressionSigner:
        """Signs with the newest key; verifies with it and the replaced keys still in their overlap."""
        return self._keys.signer

    @property
    def key_id(self) -> int:
        """The newest key's id (it changes when the key rotates)."""
        return self._keys.key_id

    @property
    def keys(self) -> tuple[ImpressionKey, ...]:
        """Every key, newest first (as last synced)."""
        return self._keys.keys

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
        """Re-read the experiments and keys when the store changed (in any process); True when they did."""
        with self._sync_lock:
            changed = rows_if_changed(self.engine, LOG, EXPERIMENTS, self._token,
                                      f"the experiment store {self.location}")
            if changed is None:
                return False
            token, rows = changed
            running = {row["name"]: Running(Experiment.from_dict(json.loads(row["body"])),
                                            frozenset(json.loads(row["stopped"])), row["ended_at"]) for row in rows}
            with read(self.engine, f"the experiment store {self.location}") as connection:
                keys = read_keys(connection)
            with self._lock:
                self._keys, self._running, self._token = keys, running, token
        return True

    def rotate_key(self, actor: str, reason: str, revoke: bool = False) -> ImpressionKey:
        """Make a new impression key, which signs every id from each worker's next sync. The replaced key still
        verifies ids for ``KEY_OVERLAP_HOURS``; with ``revoke`` every older key goes now (a key that leaked: the
        ids it signed are no longer credited). Keys past their overlap are deleted. Logged."""
        try:
            with written(self.engine, f"the experiment store {self.location}") as connection:
                made = rotate(connection, revoke)
                connection.execute(sa.insert(LOG).values(
                    at=made.made_at, action="revoke_keys" if revoke else "rotate_key", experiment="", arm=None,
                    actor=actor, reason=reason or f"impression key {made.id} made"))
        except StoreUnavailableError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise RotationConflictError("another rotation made a new impression key at the same moment; this "
                                            "one changed nothing (GET /v1/impression-keys lists the keys)") from None
            raise
        self.sync()
        return made

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
