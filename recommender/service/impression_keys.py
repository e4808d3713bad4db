"""The site's impression keys (``impression_token``: every worker and replica signs and reads impression ids with
them), kept in the experiment store.

Keys rotate with an overlap: the newest signs every id from the moment a worker syncs the rotation, and a
replaced key still verifies ids for ``KEY_OVERLAP_HOURS``: a click is credited while its list's hour is at most
``CLICK_HOURS`` old, i.e. up to 25 hours after it was served, plus an hour for the slowest worker's sync. So no
outstanding id loses its click. A key that leaked is revoked instead: every older key goes at once, and the ids
it signed are no longer credited. Keys past their overlap are deleted at the next rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ..experiments.impression_token import CLICK_HOURS, ImpressionSigner, new_key
from ..live.sql import utc_stamp

KEYS_META = sa.MetaData()
KEYS = sa.Table(
    "impression_keys", KEYS_META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # 1, 2, ...: the newest signs
    sa.Column("value", sa.LargeBinary, nullable=False),                  # the MAC key (KEY_BYTES)
    sa.Column("made_at", sa.String, nullable=False),                     # utc_stamp()
)
LEGACY_KEYS = "experiment_keys"  # before keys rotated: one row, name "impression" (its key becomes key 1)
KEY_OVERLAP_HOURS = CLICK_HOURS + 2


class RotationConflictError(ValueError):
    """Another rotation made the same key at the same moment (this one changed nothing)."""


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


@dataclass(frozen=True)
class SiteKeys:
    """The keys as last read: the signer (signs with the newest, verifies with it and those overlapping), the
    newest key's id, and every key listed."""

    signer: ImpressionSigner
    key_id: int
    keys: tuple[ImpressionKey, ...]


def seed_key(connection: sa.Connection) -> None:
    """Make the site's first key when the store has none: the key of a store written before keys rotated, or a
    new one (once: a worker that loses the race retries and finds the winner's)."""
    if connection.execute(sa.select(KEYS.c.id).limit(1)).first() is not None:
        return
    value = None
    if sa.inspect(connection).has_table(LEGACY_KEYS):
        legacy = sa.Table(LEGACY_KEYS, sa.MetaData(), autoload_with=connection)
        value = connection.execute(sa.select(legacy.c.value).where(legacy.c.name == "impression")).scalar()
    connection.execute(sa.insert(KEYS).values(id=1, value=value or new_key(), made_at=utc_stamp()))


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def read_keys(connection: sa.Connection) -> SiteKeys:
    """The site's keys, newest first, with the signer they make."""
    rows = connection.execute(sa.select(KEYS).order_by(KEYS.c.id.desc())).mappings().all()
    newest, *older = rows
    previous, listed = [], [ImpressionKey(newest["id"], newest["made_at"], None)]
    for replaced, successor in zip(older, rows):
        ends = _time(successor["made_at"]) + timedelta(hours=KEY_OVERLAP_HOURS)
        previous.append((replaced["value"], ends.timestamp()))
        listed.append(ImpressionKey(replaced["id"], replaced["made_at"], ends.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return SiteKeys(ImpressionSigner(newest["value"], tuple(previous)), newest["id"], tuple(listed))


def rotate(connection: sa.Connection, revoke: bool) -> ImpressionKey:
    """Make the next key in ``connection``'s transaction: keep the replaced key and those still in their overlap
    (none with ``revoke``), delete the rest (and a store's legacy key table). A concurrent rotation that made
    the same key first fails this one's insert (the transaction then changes nothing)."""
    now = datetime.now(UTC)
    keys = connection.execute(sa.select(KEYS.c.id, KEYS.c.made_at).order_by(KEYS.c.id.desc())).all()
    newest = keys[0].id
    keep = [] if revoke else [newest] + [replaced.id for replaced, successor in zip(keys[1:], keys)
                                         if now - _time(successor.made_at) < timedelta(hours=KEY_OVERLAP_HOURS)]
    # Only keys this rotation saw: one made meanwhile by another is left alone (and makes this insert fail).
    connection.execute(sa.delete(KEYS).where(KEYS.c.id <= newest, KEYS.c.id.not_in(keep)))
    if sa.inspect(connection).has_table(LEGACY_KEYS):
        connection.execute(sa.text(f"DROP TABLE {LEGACY_KEYS}"))
    made = ImpressionKey(newest + 1, utc_stamp(), None)
    connection.execute(sa.insert(KEYS).values(id=made.id, value=new_key(), made_at=made.made_at))
    return made
