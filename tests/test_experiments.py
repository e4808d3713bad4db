"""Online experiments: definitions, assignment, team-draft interleaving, statistics, report verdicts, guardrail."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.config import BuildConfig
from recommender.experiments import (
    Arm,
    ArmCounts,
    Experiment,
    Guardrail,
    Outcomes,
    arms_to_stop,
    assign,
    credit,
    impression_rng,
    in_traffic,
    report,
    team_draft,
)
from recommender.experiments.assignment import unit_hash
from recommender.experiments.guardrail import win_share_line
from recommender.experiments.impression_token import NONCES, ImpressionSigner, new_key
from recommender.experiments.interleaving import FLIP_BITS, Flips, merge_pattern
from recommender.experiments.statistics import (
    ab_sample_size,
    more_ab_impressions,
    position_ctr,
    sign_test,
    sign_test_sample_size,
    two_proportion_z_test,
    wilson_interval,
)

Z95 = 1.959963984540054  # the standard normal 97.5% quantile


def ab(*arms: str, share: float = 1.0, name: str = "related-test", **options) -> Experiment:
    return Experiment(name, "ab", [Arm(a) for a in arms], traffic_share=share, **options)


def interleaved(control: str | None = None) -> Experiment:
    return Experiment("il-test", "interleave", [Arm("a"), Arm("b")], control=control)


# --- definition ---------------------------------------------------------------------------------------------------


def test_arm_settings_are_checked_against_the_build_config_sections():
    """A bad section, an unknown setting, a wrong type or range: a ValueError naming the arm and the key."""
    with pytest.raises(ValueError, match=r"arm 'x'.*unknown settings section 'rankin'"):
        Arm("x", {"rankin": {"mmr_lambda": 0.5}})
    with pytest.raises(ValueError, match=r"unknown settings section 'embedder'"):
        Arm("x", {"embedder": {"model": "other"}})  # a build-time section is not an arm's
    with pytest.raises(ValueError, match=r"unknown ranking setting\(s\) \['mmr'\]"):
        Arm("x", {"ranking": {"mmr": 0.5}})
    with pytest.raises(ValueError, match=r"\[ranking\] mmr_lambda"):
        Arm("x", {"ranking": {"mmr_lambda": "high"}})
    with pytest.raises(ValueError, match=r"mmr_lambda must be in \[0, 1\]"):
        Arm("x", {"ranking": {"mmr_lambda": 2.0}})
    with pytest.raises(ValueError, match="not a valid name"):
        Arm("Bad Name")
    arm = Arm("mmr", {"ranking": {"mmr_lambda": 0.7}, "popularity": {"window_hours": 24.0}})
    config = arm.build_config(BuildConfig())
    assert config.ranking.mmr_lambda == 0.7 and config.popularity.window_hours == 24.0
    assert config.ranking.weight_trending == BuildConfig().ranking.weight_trending  # the rest untouched


def test_experiment_validation_messages():
    """Each invalid definition is refused with a message saying what is wrong."""
    cases = [
        (dict(name="x", kind="split", arms=[Arm("a"), Arm("b")]), "kind must be one of"),
        (dict(name="x", kind="ab", arms=[Arm("a")]), "at least 2 arms"),
        (dict(name="x", kind="interleave", arms=[Arm("a"), Arm("b"), Arm("c")]), "exactly 2 arms"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("a")]), "unique"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("b")], control="c"), "control 'c' is not one of"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("b")], widgets=["sidebar"]), "widgets must be"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("b")], traffic_share=0), r"traffic_share must be in \(0, 1\]"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("b")], traffic_share=1.5), "traffic_share"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("b")], starts_at=datetime(2026, 6, 1)), "no time zone"),
        (dict(name="x", kind="ab", arms=[Arm("a"), Arm("b")], starts_at=datetime(2026, 6, 2, tzinfo=UTC),
              stops_at=datetime(2026, 6, 1, tzinfo=UTC)), "is not after starts_at"),
        (dict(name="../etc", kind="ab", arms=[Arm("a"), Arm("b")]), "not a valid name"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            Experiment(**kwargs)
    with pytest.raises(ValueError, match="margin"):
        Guardrail(margin=1.0)


def test_control_defaults_to_the_first_arm_and_widgets_are_normalised():
    experiment = ab("b", "a", widgets=["popular", "related"])
    assert experiment.control == "b"
    assert experiment.widgets == ("related", "popular")


def test_round_trip_through_json_and_toml():
    """to_dict -> JSON -> from_dict is the same experiment; a TOML file with native datetimes reads too."""
    experiment = Experiment("mmr-vs-blend", "ab",
                            [Arm("blend"), Arm("mmr", {"ranking": {"mmr_lambda": 0.7}}, weight=2.0),
                             Arm("next", build_id="20260529T020000Z-3f9c1a2")],
                            widgets=["related", "more-like-this"], traffic_share=0.25,
                            starts_at=datetime(2026, 6, 1, tzinfo=UTC), stops_at=datetime(2026, 6, 15, tzinfo=UTC),
                            guardrail=Guardrail(min_impressions=5000))
    assert Experiment.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment
    text = """
name = "mmr-vs-blend"
kind = "interleave"
widgets = ["related"]
starts_at = 2026-06-01T00:00:00Z
[[arms]]
name = "blend"
[[arms]]
name = "mmr"
settings = { ranking = { mmr_lambda = 0.7 } }
[guardrail]
margin = 0.1
"""
    parsed = Experiment.from_dict(tomllib.loads(text))
    assert parsed.kind == "interleave" and parsed.arm("mmr").settings == {"ranking": {"mmr_lambda": 0.7}}
    assert parsed.starts_at == datetime(2026, 6, 1, tzinfo=UTC) and parsed.guardrail.margin == 0.1
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['arm'\]"):
        Experiment.from_dict({"name": "x", "kind": "ab", "arm": []})


def test_active_between_start_and_stop():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    experiment = ab("a", "b", starts_at=start, stops_at=start + timedelta(days=7))
    assert not experiment.active(start - timedelta(seconds=1))
    assert experiment.active(start) and experiment.active(start + timedelta(days=6))
    assert not experiment.active(start + timedelta(days=7))  # stops_at is exclusive
    assert ab("a", "b").active(start)  # open-ended
    assert experiment.covers("related", start) and not experiment.covers("popular", start)
    with pytest.raises(ValueError, match="no time zone"):
        experiment.active(datetime(2026, 6, 2))


# --- assignment ---------------------------------------------------------------------------------------------------


def test_unit_hash_is_blake2b_of_the_parts():
    """The hash is BLAKE2b-64 of the NUL-joined parts, computed here by hand: no process-salted hash()."""
    import hashlib

    digest = hashlib.blake2b(b"related-test\x00arm\x00reader-1", digest_size=8).digest()
    assert unit_hash("related-test", "arm", "reader-1") == int.from_bytes(digest, "big") / 2**64


def test_assignment_is_stable_across_calls_and_processes():
    """The same reader gets the same arm on every call, and in another process with another hash seed."""
    experiment = ab("control", "mmr", name="related-mmr")
    readers = [f"reader-{i}" for i in range(200)]
    here = [assign(experiment, r) for r in readers]
    assert here == [assign(experiment, r) for r in readers]
    # Pinned: a change of hash or split would move readers between arms of running experiments.
    assert here[:8] == ["control", "mmr", "control", "control", "control", "control", "control", "mmr"]
    code = ("import json, sys\nfrom recommender.experiments import Arm, Experiment, assign\n"
            "e = Experiment('related-mmr', 'ab', [Arm('control'), Arm('mmr')])\n"
            "print(json.dumps([assign(e, f'reader-{i}') for i in range(200)]))\n")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""})
        assert json.loads(out.stdout) == here


def test_split_is_close_to_uniform_and_respects_weights():
    """10,000 readers: each of 2 arms within 4 sigma of 5,000; weights 1:2:1 give 25/50/25%."""
    readers = [f"r{i:05d}" for i in range(10_000)]
    two = [assign(ab("a", "b"), r) for r in readers]
    assert abs(two.count("a") - 5000) < 4 * math.sqrt(10_000 * 0.25)
    weighted = Experiment("weighted", "ab", [Arm("a"), Arm("b", weight=2.0), Arm("c")])
    got = [assign(weighted, r) for r in readers]
    for arm, share in (("a", 0.25), ("b", 0.5), ("c", 0.25)):
        assert abs(got.count(arm) - 10_000 * share) < 4 * math.sqrt(10_000 * share * (1 - share)), arm


def test_traffic_share_is_respected_and_growing_it_keeps_arms():
    """30% of readers are in at share 0.3, split evenly; at 0.6 those stay in with the same arm, and more join."""
    readers = [f"r{i:05d}" for i in range(10_000)]
    small = {r: assign(ab("a", "b", share=0.3), r) for r in readers}
    inside = [r for r, arm in small.items() if arm is not None]
    assert abs(len(inside) - 3000) < 4 * math.sqrt(10_000 * 0.3 * 0.7)
    # Inside the share the arms still split evenly (arm and traffic hashes are independent).
    assert abs(sum(small[r] == "a" for r in inside) - len(inside) / 2) < 4 * math.sqrt(len(inside) / 4)
    large = {r: assign(ab("a", "b", share=0.6), r) for r in readers}
    assert all(large[r] == small[r] for r in inside)
    assert abs(sum(a is not None for a in large.values()) - 6000) < 4 * math.sqrt(10_000 * 0.6 * 0.4)


def test_experiments_split_independently():
    """Two experiments' arms agree for about half the readers (the name salts the hash)."""
    readers = [f"r{i:05d}" for i in range(10_000)]
    same = sum(assign(ab("a", "b", name="one"), r) == assign(ab("a", "b", name="two"), r) for r in readers)
    assert abs(same - 5000) < 4 * 50


def test_interleaving_has_no_arm_assignment_and_reader_ids_are_checked():
    with pytest.raises(ValueError, match="in_traffic"):
        assign(interleaved(), "reader-1")
    assert in_traffic(interleaved(), "reader-1")
    for bad in ("", "x" * 201):
        with pytest.raises(ValueError, match="reader_id"):
            assign(ab("a", "b"), bad)


# --- team-draft interleaving --------------------------------------------------------------------------------------


class Coins:
    """A coin that returns the given values in turn (0.0 = heads: team a picks first)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_team_draft_by_hand():
    """a = [1, 2, 3], b = [2, 4, 5], coins heads then tails: a picks 1, b 2, tails -> b picks 4, a 3, b alone 5."""
    merged, teams = team_draft(["1", "2", "3"], ["2", "4", "5"], 10, Coins(0.0, 0.9))
    assert merged == ["1", "2", "4", "3", "5"]
    assert teams == ["a", "b", "b", "a", "b"]
    assert team_draft(["1", "2", "3"], ["2", "4", "5"], 3, Coins(0.0, 0.0)) == (["1", "2", "3"], ["a", "b", "a"])


lists = st.lists(st.sampled_from([f"n{i}" for i in range(14)]), max_size=14)


@settings(max_examples=300, deadline=None)
@given(a=lists, b=lists, k=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_team_draft_properties(a, b, k, seed):
    """Every item from one of the lists, no duplicates, min(k, |union|) long, each pick the team's best unused
    item, teams within one pick of each other while both lists have unused items, reproducible from the seed."""
    merged, teams = team_draft(a, b, k, random.Random(seed))
    assert len(merged) == len(teams) == min(k, len(set(a) | set(b)))
    assert len(set(merged)) == len(merged)
    assert set(teams) <= {"a", "b"}
    picks = {"a": 0, "b": 0}
    for i, (item, team) in enumerate(zip(merged, teams)):
        shown = set(merged[:i])
        unused = {t: [x for x in (a if t == "a" else b) if x not in shown] for t in ("a", "b")}
        assert unused[team] and unused[team][0] == item  # the contributing team's best item not yet shown
        both = bool(unused["a"] and unused["b"])
        if both and picks["a"] != picks["b"]:
            assert picks[team] < picks["b" if team == "a" else "a"]  # the team behind picks
        picks[team] += 1
        if both:  # while both could pick, the draft keeps the teams within one pick of each other
            assert abs(picks["a"] - picks["b"]) <= 1
    assert team_draft(a, b, k, random.Random(seed)) == (merged, teams)
    for position, team in enumerate(teams):
        assert credit(teams, [position]) == team  # a click is credited to the team that contributed the item


def test_team_draft_is_reproducible_from_the_impression_id():
    """A merge is rebuilt from its impression id alone (its random bits: ``impression_rng``); other ids give other
    coins."""
    experiment = Experiment.from_dict({"name": "t", "kind": "interleave", "arms": [{"name": "a"}, {"name": "b"}]})
    signer = ImpressionSigner(new_key())
    header = signer.header(experiment, "related", 1, ("a",) * 3, ("x", "y", "z"))
    ids = [signer.issue(header, NONCES.take()) for _ in range(50)]
    a, b = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]
    first = team_draft(a, b, 10, impression_rng(ids[0]))
    assert first == team_draft(a, b, 10, impression_rng(ids[0]))
    assert len({tuple(team_draft(a, b, 10, impression_rng(i))[1]) for i in ids}) > 10


@settings(max_examples=300, deadline=None)
@given(a=lists, b=lists, k=st.integers(1, 100), bits=st.integers(0, 2**FLIP_BITS - 1))
def test_a_merge_is_decided_by_its_pattern_of_flips(a, b, k, bits):
    """The service keeps one merge per pattern (``merge_pattern``): the flips past it never change a draft."""
    assert team_draft(a, b, k, Flips(bits)) == team_draft(a, b, k, Flips(merge_pattern(bits, k)))


def test_team_draft_credit_is_fair_to_both_teams():
    """Disjoint lists and a click on a random position: each team wins about half the impressions; with the same
    list for both arms, position 1 goes to each team half the time (no side is favoured by the merge)."""
    rng = random.Random(7)
    a, b = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]
    wins = {"a": 0, "b": 0}
    first_a = 0
    n = 4000
    for i in range(n):
        _, teams = team_draft(a, b, 10, random.Random(i))
        wins[str(credit(teams, [rng.randrange(10)]))] += 1
        first_a += team_draft(a, list(a), 10, random.Random(i))[1][0] == "a"
    sigma = math.sqrt(n * 0.25)
    assert abs(wins["a"] - n / 2) < 4 * sigma and abs(first_a - n / 2) < 4 * sigma


def test_credit_outcomes():
    teams = ["a", "b", "a", "b"]
    assert credit(teams, []) is None
    assert credit(teams, [0, 2, 1]) == "a"
    assert credit(teams, [1]) == "b"
    assert credit(teams, [0, 1]) == "tie"
    assert credit(teams, [1, 1, 0]) == "tie"  # a repeated click counts once
    with pytest.raises(ValueError, match="outside"):
        credit(teams, [4])


# --- statistics ---------------------------------------------------------------------------------------------------


def test_wilson_interval_by_hand():
    """30/1000 at 95% from the formula written out here, and Newcombe's (1998) published 81/263: 0.2553-0.3662."""
    n, p, z = 1000, 0.03, Z95
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low, high = wilson_interval(30, 1000)
    assert low == pytest.approx(centre - half, abs=1e-12) and high == pytest.approx(centre + half, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.0211, 0.0425)
    assert tuple(round(v, 4) for v in wilson_interval(81, 263)) == (0.2553, 0.3662)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 100)[0] == 0.0


def test_two_proportion_z_test_by_hand():
    """300/10,000 vs 360/10,000: pooled z written out, p = erfc(|z| / sqrt 2)."""
    pooled = 660 / 20_000
    z = (0.036 - 0.03) / math.sqrt(pooled * (1 - pooled) * (2 / 10_000))
    got_z, got_p = two_proportion_z_test(300, 10_000, 360, 10_000)
    assert got_z == pytest.approx(z, rel=1e-12)
    assert got_p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert two_proportion_z_test(0, 100, 0, 100) == (0.0, 1.0)


def test_sign_test_by_hand():
    """15 wins, 5 losses: p = 2 * sum_{i<=5} C(20, i) / 2^20 = 0.0414 (ties never enter)."""
    hand = 2 * sum(math.comb(20, i) for i in range(6)) / 2**20
    assert sign_test(15, 5) == pytest.approx(hand, rel=1e-12)
    assert sign_test(5, 15) == pytest.approx(hand, rel=1e-12)
    assert sign_test(0, 0) == 1.0
    experiment = interleaved()
    with_ties = report(experiment, {}, Outcomes(15, 5, 400, 1000))
    assert with_ties.p_value == pytest.approx(hand, rel=1e-12)


def test_position_ctr():
    assert position_ctr([10, 5, 0], [100, 100, 0]) == [0.1, 0.05, None]


def test_sample_sizes_by_hand():
    """The power formulas written out (alpha 0.05 two-sided, power 0.8)."""
    z_b = 0.8416212335729143
    p1, p2 = 0.03, 0.036
    mean = (p1 + p2) / 2
    hand = (Z95 * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / 0.006**2
    assert ab_sample_size(p1, p2) == math.ceil(hand)
    hand_sign = ((Z95 * 0.5 + z_b * math.sqrt(0.6 * 0.4)) / 0.1) ** 2
    assert sign_test_sample_size(0.6) == math.ceil(hand_sign)
    # An observed difference: the plan less what the smaller arm already has.
    control, arm = ArmCounts(1000, 30), ArmCounts(1000, 36)
    assert more_ab_impressions(control, arm) == math.ceil(hand) - 1000


# --- report verdicts ----------------------------------------------------------------------------------------------


def test_ab_verdict_names_the_winner():
    experiment = ab("a", "b")
    counts = {"a": ArmCounts(10_000, 320, (10_000, 10_000), (200, 120)), "b": ArmCounts(10_000, 410)}
    result = report(experiment, counts)
    p = two_proportion_z_test(320, 10_000, 410, 10_000)[1]
    assert result.winner == "b" and result.p_value == pytest.approx(p)
    assert result.verdict == f"arm b wins: CTR 4.10% vs 3.20% for control a (p = {p:.2g})"
    row = result.rows[0]
    assert row.control and row.position_ctr == (0.02, 0.012)
    assert (row.ctr_low, row.ctr_high) == wilson_interval(320, 10_000)
    json.dumps(result.to_dict())
    flipped = report(experiment, {"a": counts["b"], "b": counts["a"]})
    assert flipped.winner == "a" and flipped.verdict.startswith("arm a (control) wins: CTR 4.10% vs 3.20% for b")


def test_ab_verdict_says_how_much_more_data():
    """Undecided: the per-arm plan at the observed CTRs, less what the arms have, to two significant figures."""
    result = report(ab("a", "b"), {"a": ArmCounts(1000, 30), "b": ArmCounts(1000, 36)})
    more = ab_sample_size(0.03, 0.036) - 1000
    assert result.winner is None and result.more_impressions == more
    assert result.verdict == f"not enough data yet: roughly {round(more, -(len(str(more)) - 2)):,} more impressions " \
                             f"per arm"
    empty = report(ab("a", "b"), {})
    assert empty.verdict.startswith("not enough data yet (no clicks yet: planned for a 2.00% CTR and a 5% lift)")
    assert empty.more_impressions == ab_sample_size(0.02, 0.021)


def test_ab_with_three_arms_uses_bonferroni():
    """A p of about 0.04 wins with one comparison, not with two (each then needs p < 0.025)."""
    counts = {"a": ArmCounts(20_000, 600), "b": ArmCounts(20_000, 672)}
    p = two_proportion_z_test(600, 20_000, 672, 20_000)[1]
    assert 0.025 < p < 0.05
    assert report(ab("a", "b"), counts).winner == "b"
    three = report(ab("a", "b", "c"), {**counts, "c": ArmCounts(20_000, 610)})
    assert three.winner is None
    # The plan is at the corrected level too, for the slower of the two comparisons (c: the smaller difference).
    assert three.more_impressions == max(more_ab_impressions(counts["a"], counts["b"], 0.025),
                                         more_ab_impressions(counts["a"], ArmCounts(20_000, 610), 0.025))


def test_interleave_verdict():
    experiment = interleaved()
    won = report(experiment, {"a": ArmCounts(1000, 30), "b": ArmCounts(1000, 50)}, Outcomes(25, 45, 5, 1000))
    p = sign_test(25, 45)
    assert won.winner == "b" and won.verdict == f"arm b wins: 45 wins to 25, 5 ties (sign test p = {p:.2g})"
    assert [(r.wins, r.losses) for r in won.rows] == [(25, 45), (45, 25)]
    open_ = report(experiment, {}, Outcomes(30, 25, 5, 1000))
    assert open_.winner is None and "more interleaved impressions" in open_.verdict
    # The plan: decided outcomes at win share 30/55 over the observed 5.5% decided rate, less the 1000 served.
    assert open_.more_impressions == math.ceil(sign_test_sample_size(30 / 55) / 0.055) - 1000
    with pytest.raises(ValueError, match="outcomes"):
        report(experiment, {})


# --- guardrail ----------------------------------------------------------------------------------------------------


def test_guardrail_stops_an_arm_far_below_control():
    """2% vs control's 4% over 5,000 impressions each: the 99% upper bound (2.58%) is under 80% of 4% (3.2%)."""
    stops = arms_to_stop(ab("a", "b"), {"a": ArmCounts(5000, 200), "b": ArmCounts(5000, 100)})
    assert [s.arm for s in stops] == ["b"]
    assert "below 80% of control a's 4.00%" in stops[0].reason and "stopped by the guardrail" in stops[0].message()


def test_guardrail_waits_for_enough_impressions_and_respects_the_margin():
    experiment = ab("a", "b")
    assert arms_to_stop(experiment, {"a": ArmCounts(5000, 200), "b": ArmCounts(999, 0)}) == []  # too few for b
    assert arms_to_stop(experiment, {"a": ArmCounts(999, 200), "b": ArmCounts(5000, 0)}) == []  # too few for control
    # 10% below control with a million impressions each: clearly worse, but within the 20% margin.
    assert arms_to_stop(experiment, {"a": ArmCounts(10**6, 40_000), "b": ArmCounts(10**6, 36_000)}) == []
    # Control is never stopped, however it does.
    assert arms_to_stop(experiment, {"a": ArmCounts(5000, 100), "b": ArmCounts(5000, 200)}) == []
    disabled = ab("a", "b", guardrail=Guardrail(enabled=False))
    assert arms_to_stop(disabled, {"a": ArmCounts(5000, 200), "b": ArmCounts(5000, 0)}) == []


def test_guardrail_line_is_the_wilson_upper_bound():
    """At the edge: b stops exactly when its 99% Wilson upper bound falls below 0.8 x control's CTR."""
    control = ArmCounts(10_000, 500)  # line: 0.8 * 5% = 4%
    for clicks in range(250, 400):
        high = wilson_interval(clicks, 10_000, 0.99)[1]
        stopped = arms_to_stop(ab("a", "b"), {"a": control, "b": ArmCounts(10_000, clicks)})
        assert bool(stopped) == (high < 0.04), clicks


def test_guardrail_for_interleaving():
    """The non-control arm losing clearly (99% upper bound of its win share under 4/9) is stopped; control is not."""
    assert win_share_line(0.2) == pytest.approx(4 / 9)
    stops = arms_to_stop(interleaved(), {}, Outcomes(100, 40, 10, 2000))
    assert [s.arm for s in stops] == ["b"]
    assert arms_to_stop(interleaved(), {}, Outcomes(100, 90, 10, 2000)) == []  # close: not clearly losing
    assert arms_to_stop(interleaved(), {}, Outcomes(100, 40, 10, 999)) == []  # too few impressions
    assert arms_to_stop(interleaved(control="b"), {}, Outcomes(100, 40, 10, 2000)) == []  # the loser is control
    assert [s.arm for s in arms_to_stop(interleaved(control="b"), {}, Outcomes(40, 100, 10, 2000))] == ["a"]
