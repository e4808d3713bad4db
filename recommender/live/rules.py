"""The editorial rule store: the pins, blocks, boosts, guardrails and embargoes every list obeys, and their log.

Rules are durable state apart from any build: they survive rebuilds, reloads, rollbacks and restarts, and every
worker of every replica that shares the store picks up a change within its next live-state poll (0.25 s by
default). Each change is written to an audit log (who, when, what, why). SQLite next to the indexes by default,
PostgreSQL (``--rules postgresql://...``) when replicas share the rules. A rule that expires stays stored (and
listed as expired) but stops acting at its ``expires_at`` without any change to the store.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Sequence

import sqlalchemy as sa

from ..query.rules import Rule, RuleError, RuleSet
from .sql import create_tables, make_engine, read, rows_if_changed, utc_stamp, written

_META = sa.MetaData()
RULES = sa.Table(
    "editorial_rules", _META,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the rule's JSON (Rule.to_dict)
)
LOG = sa.Table(
    "editorial_rule_log", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),  # "add" | "remove"
    sa.Column("rule_id", sa.String, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
# One row every writer updates first: it serialises adds, so two replicas cannot store contradicting rules at once.
LOCK = sa.Table("editorial_rule_lock", _META, sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("writes", sa.Integer, nullable=False))

Check = Callable[[Rule, RuleSet], None]


def _seed_lock(connection: sa.Connection) -> None:
    if connection.execute(sa.select(sa.func.count()).select_from(LOCK)).scalar_one() == 0:
        connection.execute(sa.insert(LOCK).values(id=1, writes=0))


def _ruleset(rows: list[sa.RowMapping], seq: object) -> RuleSet:
    return RuleSet(tuple(Rule.from_dict(json.loads(row["body"])) for row in sorted(rows, key=lambda r: r["id"])),
                   seq)


class RuleStore:
    """The rules of one site: ``add`` (checked against the stored rules), ``remove``, the snapshot and the log.

    It is a ``query.rules.RuleSource`` (``ruleset``).

    Args:
        location: a SQLite file path or a ``postgresql://`` URL.
    """

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        self.engine = make_engine(location)
        self._lock = threading.Lock()
        self._ruleset = RuleSet(seq=(-1, -1))
        create_tables(self.engine, _META, f"the rule store {self.location}", _seed_lock)
        self.sync()

    @property
    def ruleset(self) -> RuleSet:
        """The rules as last synced (``seq``: the store's change token)."""
        return self._ruleset

    def add(self, rule: Rule, check: Check | None = None) -> Rule:
        """Store a rule and log it (by its author, for its reason); ``check(rule, stored rules)`` runs against the
        rules as stored now, under the store's write lock, and may refuse it (``RuleError``)."""
        return self.add_many([rule], check)[0]

    def add_many(self, rules: Sequence[Rule], check: Check | None = None) -> list[Rule]:
        """Store several rules in one transaction (all or none), each checked against the stored ones and those
        before it."""
        with written(self.engine, f"the rule store {self.location}") as connection:
            connection.execute(sa.update(LOCK).values(writes=LOCK.c.writes + 1))  # the write lock, held to commit
            self.sync()  # what is committed now: no other writer can commit until this transaction ends
            stored = self._ruleset
            ids = {r.id for r in stored.rules}
            for rule in rules:
                if rule.id in ids:
                    raise RuleError(f"a rule with id {rule.id!r} exists; remove it first or choose another id",
                                    [rule.id])
                if check is not None:
                    check(rule, stored)
                    stored = RuleSet((*stored.rules, rule))
                ids.add(rule.id)
            bodies = [json.dumps(r.to_dict(), sort_keys=True) for r in rules]
            if rules:
                connection.execute(sa.insert(RULES), [{"id": r.id, "kind": r.kind, "body": body}
                                                      for r, body in zip(rules, bodies)])
                connection.execute(sa.insert(LOG), [{"at": utc_stamp(), "action": "add", "rule_id": r.id,
                                                     "actor": r.author, "reason": r.reason, "body": body}
                                                    for r, body in zip(rules, bodies)])
        self.sync()
        return list(rules)

    def remove(self, rule_id: str, actor: str, reason: str) -> Rule | None:
        """Remove a rule (it stops acting everywhere) and log it; None when there is no such rule."""
        with written(self.engine, f"the rule store {self.location}") as connection:
            connection.execute(sa.update(LOCK).values(writes=LOCK.c.writes + 1))
            row = connection.execute(sa.select(RULES).where(RULES.c.id == rule_id)).mappings().first()
            if row is None:
                return None
            connection.execute(sa.delete(RULES).where(RULES.c.id == rule_id))
            connection.execute(sa.insert(LOG).values(at=utc_stamp(), action="remove", rule_id=rule_id, actor=actor,
                                                     reason=reason, body=row["body"]))
        self.sync()
        return Rule.from_dict(json.loads(row["body"]))

    def history(self, limit: int = 1000, rule_id: str | None = None) -> list[dict[str, object]]:
        """The newest ``limit`` entries of the audit log (of one rule), newest first; ``rule`` is its JSON."""
        query = sa.select(LOG).order_by(LOG.c.id.desc()).limit(limit)
        if rule_id is not None:
            query = query.where(LOG.c.rule_id == rule_id)
        with read(self.engine, f"the rule store {self.location}") as connection:
            rows = connection.execute(query).mappings().all()
        return [{**{k: v for k, v in row.items() if k != "body"}, "rule": json.loads(row["body"])} for row in rows]

    def sync(self) -> bool:
        """Re-read the rules when the store changed (in any process); True when they did."""
        changed = rows_if_changed(self.engine, LOG, RULES, self._ruleset.seq, f"the rule store {self.location}")
        if changed is None:
            return False
        token, rows = changed
        ruleset = _ruleset(rows, token)
        with self._lock:
            self._ruleset = ruleset
        return True

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
