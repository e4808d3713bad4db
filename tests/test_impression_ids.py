"""Impression ids that carry their impression (issue 18): what a list showed travels in its id, signed with the
site's key, so a click is credited from the id alone and nothing is stored per impression."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.experiments.definition import WIDGETS, Experiment
from recommender.experiments.impression_token import (
    MAX_ID_CHARS,
    NONCES,
    ImpressionSigner,
    TokenError,
    experiment_tag,
    impression_flips,
    new_key,
)
from recommender.service.experiment_store import ExperimentStore
from recommender.service.impression_keys import KEY_OVERLAP_HOURS

AB = Experiment.from_dict({"name": "ab-test", "kind": "ab", "arms": [{"name": "control"}, {"name": "fresh"},
                                                                    {"name": "mmr"}]})
INTERLEAVED = Experiment.from_dict({"name": "il-test", "kind": "interleave",
                                    "arms": [{"name": "control"}, {"name": "fresh"}]})
SITE = {experiment_tag(e.name): e for e in (AB, INTERLEAVED)}
KEY = new_key()
article_ids = st.lists(st.text(min_size=1, max_size=40), min_size=0, max_size=100, unique=True)


@settings(max_examples=200, deadline=None)
@given(items=article_ids, widget=st.sampled_from(WIDGETS), hour=st.integers(0, 2**32 - 1),
       arm=st.sampled_from(AB.arm_names), teams=st.lists(st.booleans(), min_size=100, max_size=100),
       interleaved=st.booleans())
def test_an_id_says_what_its_list_showed(items, widget, hour, arm, teams, interleaved):
    """Both kinds, any list length the service serves (0-100), any article ids: the id read back gives the
    experiment, widget, hour, the arm of every position and each item's position; an article not shown has none."""
    signer = ImpressionSigner(KEY)
    experiment = INTERLEAVED if interleaved else AB
    arms = tuple(INTERLEAVED.arm_names[t] for t in teams[:len(items)]) if interleaved else (arm,) * len(items)
    nonce = NONCES.take()
    impression_id = signer.issue(signer.header(experiment, widget, hour, arms, items), nonce)
    assert len(impression_id) <= MAX_ID_CHARS
    assert set(impression_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    shown = signer.read(impression_id, SITE)
    assert (shown.experiment, shown.kind, shown.widget, shown.hour) == (experiment.name, experiment.kind, widget,
                                                                       hour)
    assert shown.arms == arms
    assert shown.team_arms == (("control", "fresh") if interleaved else ())
    assert shown.flips == int.from_bytes(nonce, "little") == impression_flips(impression_id)
    assert [shown.position(article_id) for article_id in items] == list(range(len(items)))
    if "never-shown" not in items:
        assert shown.position("never-shown") is None


def test_every_impression_of_one_list_has_its_own_id_and_row():
    signer = ImpressionSigner(KEY)
    header = signer.header(AB, "related", 490_000, ("fresh",) * 3, ("a", "b", "c"))
    ids = {signer.issue(header, NONCES.take()) for _ in range(1000)}
    assert len(ids) == 1000
    assert len({signer.read(i, SITE).key for i in ids}) == 1000  # each clicked impression its own row


def test_an_altered_or_foreign_id_is_refused():
    """Flipping any bit of an id, an id signed with another site's key, an experiment the site does not have, or
    what is not an id at all: refused (``TokenError``), never credited to some arm."""
    signer = ImpressionSigner(KEY)
    impression_id = signer.issue(signer.header(INTERLEAVED, "popular", 490_000, ("control", "fresh", "fresh"),
                                               ("a", "b", "c")), NONCES.take())
    raw = base64.urlsafe_b64decode(impression_id + "=" * (-len(impression_id) % 4))
    for byte in range(len(raw)):
        for bit in (0, 7):
            altered = bytearray(raw)
            altered[byte] ^= 1 << bit
            with pytest.raises(TokenError):
                signer.read(base64.urlsafe_b64encode(bytes(altered)).decode().rstrip("="), SITE)
    with pytest.raises(TokenError, match="signature"):
        ImpressionSigner(new_key()).read(impression_id, SITE)
    with pytest.raises(TokenError, match="no experiment"):
        signer.read(impression_id, {experiment_tag(AB.name): AB})
    for junk in ("", "x" * (MAX_ID_CHARS + 1), "not base64 !", "AAAA", impression_id[:-4]):
        with pytest.raises(TokenError):
            signer.read(junk, SITE)


def test_a_list_is_refused_an_id_for_arms_it_does_not_have():
    signer = ImpressionSigner(KEY)
    with pytest.raises(ValueError, match="no arm 'other'"):
        signer.header(AB, "related", 1, ("other",), ("a",))
    with pytest.raises(ValueError, match="one arm"):
        signer.header(AB, "related", 1, ("control", "fresh"), ("a", "b"))
    with pytest.raises(ValueError, match="each with its arm"):
        signer.header(AB, "related", 1, ("control",), ("a", "b"))


def _an_id(signer: ImpressionSigner) -> str:
    return signer.issue(signer.header(AB, "related", 490_000, ("fresh",) * 2, ("a", "b")), NONCES.take())


def test_the_site_key_is_made_once_and_shared_by_every_process_of_the_store(tmp_path):
    """Every worker opening the store (here two, as two processes would) signs with the same key, kept across
    restarts; another site's store has its own."""
    first, second = ExperimentStore(tmp_path / "experiments.sqlite"), ExperimentStore(tmp_path / "experiments.sqlite")
    issued = _an_id(first.signer)
    assert second.signer.read(issued, SITE).arms == ("fresh", "fresh") and first.key_id == second.key_id == 1
    first.close()
    second.close()
    again = ExperimentStore(tmp_path / "experiments.sqlite")
    other = ExperimentStore(tmp_path / "other.sqlite")
    assert again.signer.read(issued, SITE).experiment == "ab-test"
    with pytest.raises(TokenError, match="signature"):
        other.signer.read(issued, SITE)
    again.close()
    other.close()


def test_a_rotated_key_signs_new_ids_while_the_old_one_verifies_for_the_overlap_only(tmp_path):
    """Rotation: every process signs with the new key from its next sync; ids signed with the old key still read
    until ``KEY_OVERLAP_HOURS`` after the rotation (not a second longer); a revoke drops every older key at once.
    Each change is logged, and keys past their overlap are deleted at the next rotation."""
    admin, worker = ExperimentStore(tmp_path / "x.sqlite"), ExperimentStore(tmp_path / "x.sqlite")
    old_id = _an_id(worker.signer)
    made = admin.rotate_key("ops", "yearly rotation")
    assert made.id == 2 and admin.key_id == 2 and worker.key_id == 1  # the worker has not synced yet
    assert worker.sync() and worker.key_id == 2
    new_id = _an_id(worker.signer)
    rotated_at = datetime.strptime(made.made_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    ends = rotated_at + 3600 * KEY_OVERLAP_HOURS
    for signed in (old_id, new_id):
        assert worker.signer.read(signed, SITE, now=ends - 1).experiment == "ab-test"
    with pytest.raises(TokenError, match="no longer accepted"):
        worker.signer.read(old_id, SITE, now=ends)
    assert worker.signer.read(new_id, SITE, now=ends).experiment == "ab-test"
    assert [(k.id, k.verifies_until is None) for k in worker.keys] == [(2, True), (1, False)]

    admin.rotate_key("ops", "leaked in a log", revoke=True)
    worker.sync()
    assert [k.id for k in worker.keys] == [3]
    for signed in (old_id, new_id):
        with pytest.raises(TokenError):
            worker.signer.read(signed, SITE)
    assert [(e["action"], e["actor"], e["reason"]) for e in admin.history()][:2] == [
        ("revoke_keys", "ops", "leaked in a log"), ("rotate_key", "ops", "yearly rotation")]
    admin.close()
    worker.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_written_before_keys_rotated_keeps_its_key_until_the_first_rotation(tmp_path, request, backend):
    """Upgrade: the single key of the old ``experiment_keys`` table becomes key 1, so ids issued before the upgrade
    are still credited; the first rotation deletes the old table (its key lives on as key 1 for the overlap)."""
    import sqlalchemy as sa

    from recommender.live.sql import make_engine

    location = str(tmp_path / "experiments.sqlite") if backend == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(location)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE experiment_keys (name VARCHAR PRIMARY KEY, value BYTEA NOT NULL)"
                                   if backend == "postgresql" else
                                   "CREATE TABLE experiment_keys (name VARCHAR PRIMARY KEY, value BLOB NOT NULL)"))
        connection.execute(sa.text("INSERT INTO experiment_keys VALUES ('impression', :key)"), {"key": KEY})
    old_id = _an_id(ImpressionSigner(KEY))
    store = ExperimentStore(location)
    assert store.key_id == 1 and store.signer.read(old_id, SITE).experiment == "ab-test"
    store.rotate_key("ops", "first rotation")
    with engine.connect() as connection:
        assert not sa.inspect(connection).has_table("experiment_keys")
    assert store.key_id == 2 and store.signer.read(old_id, SITE).experiment == "ab-test"  # the overlap
    engine.dispose()
    store.close()


def test_keys_past_their_overlap_are_deleted_at_the_next_rotation(tmp_path):
    import sqlalchemy as sa

    store = ExperimentStore(tmp_path / "x.sqlite")
    store.rotate_key("ops", "")
    past = (datetime.now(UTC) - timedelta(hours=KEY_OVERLAP_HOURS, minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with store.engine.begin() as connection:  # key 2 was made longer ago than the overlap: key 1 verifies nothing
        connection.execute(sa.text("UPDATE impression_keys SET made_at = :at WHERE id = 2"), {"at": past})
    store.rotate_key("ops", "")
    assert [k.id for k in store.keys] == [3, 2]
    store.close()


def test_a_worker_that_has_not_synced_a_rotation_yet_credits_ids_signed_with_the_new_key(tmp_path):
    """Another process rotated the key and signs with it; this one, between polls, syncs on the id it cannot read
    (at most once a second) instead of refusing the click."""
    from recommender.service.experiment_counts import SQLiteExperimentCounts
    from recommender.service.experiments import Experiments

    admin, lagging = ExperimentStore(tmp_path / "x.sqlite"), ExperimentStore(tmp_path / "x.sqlite")
    admin.create(AB, "ops", "")
    lagging.sync()
    counts = SQLiteExperimentCounts(tmp_path / "views.sqlite")
    experiments = Experiments(lagging, counts, lambda arm: None)
    admin.rotate_key("ops", "")
    now = datetime.fromtimestamp(490_000 * 3600 + 60, UTC)
    assert experiments.clicked(_an_id(admin.signer), "a", now) == "ab-test" and lagging.key_id == 2
    assert experiments.clicked(_an_id(ImpressionSigner(new_key())), "a", now) is None  # a foreign id still fails
    counts.close()
    admin.close()
    lagging.close()


def test_two_rotations_at_once_lose_no_key(tmp_path, monkeypatch):
    """Two rotations that read the same keys: the second's insert meets the first's key and it changes nothing
    (a 409 through the API), so no worker is left signing with a key that was deleted."""
    from recommender.service import impression_keys

    first, second = ExperimentStore(tmp_path / "x.sqlite"), ExperimentStore(tmp_path / "x.sqlite")
    first.rotate_key("ops", "")  # two keys: the overlap check runs between a rotation's read and its writes
    original, racing = impression_keys._time, []

    def with_a_rival(stamp: str):  # the first rotation commits after the second read the keys
        if not racing:
            racing.append(True)
            first.rotate_key("ops", "first")
        return original(stamp)

    monkeypatch.setattr(impression_keys, "_time", with_a_rival)
    with pytest.raises(impression_keys.RotationConflictError, match="another rotation"):
        second.rotate_key("ops", "second")
    second.sync()
    assert [k.id for k in second.keys] == [3, 2, 1] and second.keys == first.keys
    first.close()
    second.close()
