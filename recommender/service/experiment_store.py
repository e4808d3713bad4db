"""Where online experiments are defined: their definitions, the arms stopped (by hand or by the guardrail), a log
of every change and the site's impression key (``impression_token``: every worker and replica signs and reads
impression ids with it), in SQLite next to the indexes or PostgreSQL shared by replicas (polled like the live
state).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from ..experiments.definition import Experiment
from ..experiments.impression_token import new_key
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
    "experiment_keys", _META,
    sa.Column("name", sa.String, primary_key=True),    # "impression": the impression ids' MAC key
    sa.Column("value", sa.LargeBinary, nullable=False),
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


def _seed_key(connection: sa.Connection) -> None:
    """Make the site's impression key when the store has none (once: a worker that loses the race retries and
    finds the winner's)."""
    if connection.execute(sa.select(KEYS.c.name).where(KEYS.c.name == "impression")).first() is None:
        connection.execute(sa.insert(KEYS).values(name="impression", value=new_key()))


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
        create_tables(self.engine, _META, f"the experiment store {self.location}", seed=_seed_key)
        with read(self.engine, f"the experiment store {self.location}") as connection:
            self.impression_key: bytes = connection.execute(
                sa.select(KEYS.c.value).where(KEYS.c.name == "impression")).scalar_one()
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
        with self._lock:
            self._running, self._token = running, token
        return True

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
