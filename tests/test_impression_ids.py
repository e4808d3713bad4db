"""Impression ids that carry their impression (issue 18): what a list showed travels in its id, signed with the
site's key, so a click is credited from the id alone and nothing is stored per impression."""

from __future__ import annotations

import base64

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


def test_the_site_key_is_made_once_and_shared_by_every_process_of_the_store(tmp_path):
    """Every worker opening the store (here two, as two processes would) signs with the same key, kept across
    restarts; another site's store has its own."""
    first, second = ExperimentStore(tmp_path / "experiments.sqlite"), ExperimentStore(tmp_path / "experiments.sqlite")
    assert first.impression_key == second.impression_key and len(first.impression_key) == 32
    first.close()
    second.close()
    again = ExperimentStore(tmp_path / "experiments.sqlite")
    other = ExperimentStore(tmp_path / "other.sqlite")
    assert again.impression_key == first.impression_key != other.impression_key
    again.close()
    other.close()
