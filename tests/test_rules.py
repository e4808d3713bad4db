"""Editorial rules through the Python API (issue 16): every kind of rule in every list, with oracles computed from
the rule-free lists of the same recommender, and the relatedness floor with its fallback."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from recommender.config import BuildConfig
from recommender.query import Recommender
from recommender.query.ranking import blend
from recommender.query.rule_check import checked, rule_report
from recommender.query.rules import Rule, RuleError, RuleSet, check_rule

from .conftest import DEMO_EPOCH, DEMO_SHIFT

NOW = DEMO_EPOCH + DEMO_SHIFT
ANCHOR = "demo-001"


def rule(**fields) -> Rule:
    """A rule set by the test desk."""
    return Rule.from_dict({"author": "test desk", "reason": "test", **fields}, NOW - timedelta(days=1))


def engine(demo_engine, *rules: Rule, config: BuildConfig | None = None) -> Recommender:
    """The demo build obeying ``rules`` (a recommender of its own: the session's stays rule-free)."""
    return Recommender(demo_engine.stored, config, demo_engine.embedder, rules=RuleSet(tuple(rules), seq=len(rules)))


def ids(results) -> list[str]:
    return [r.article_id for r in results]


def victim_of(recommender: Recommender, article_id: str = ANCHOR) -> str:
    """An article of the list without copies (blocking one with copies shows a copy in its place)."""
    return next(r.article_id for r in recommender.related(article_id, k=5, now=NOW) if not r.duplicates)


def tags_of(recommender: Recommender, article_id: str) -> set[str]:
    return {str(t).casefold() for t in recommender.article(article_id)["tags"]}


@pytest.fixture(scope="module")
def plain(demo_engine) -> Recommender:
    return engine(demo_engine)


def test_without_rules_the_lists_are_the_rule_free_ones(demo_engine, plain):
    """No rules: every list equals the session engine's (and says it was ranked, without a label)."""
    assert [r.to_dict() for r in plain.related(ANCHOR, k=10, now=NOW)] == \
        [r.to_dict() for r in demo_engine.related(ANCHOR, k=10, now=NOW)]
    assert all(r.source == "ranked" and r.label == "" for r in plain.related(ANCHOR, k=10, now=NOW))


def test_a_pin_takes_its_position_with_its_label_and_the_rest_keep_their_order(demo_engine, plain):
    base = ids(plain.related(ANCHOR, k=5, now=NOW))
    outsider = next(a for a in ids(plain.related(ANCHOR, k=40, now=NOW))[10:])
    pinned = engine(demo_engine, rule(kind="pin", article_id=outsider, beside=ANCHOR, position=2))
    results = pinned.related(ANCHOR, k=5, now=NOW)
    assert ids(results) == [base[0], outsider, *base[1:4]]
    assert (results[1].label, results[1].source) == ("Chosen by the editors", "pinned")
    assert results[1].reasons[0].startswith("chosen by the editors (rule ")
    # Only beside that article: another article's list is unchanged.
    assert ids(pinned.related("demo-050", k=5, now=NOW)) == ids(plain.related("demo-050", k=5, now=NOW))


def test_a_pin_already_in_the_list_moves_there_and_is_not_shown_twice(demo_engine, plain):
    base = ids(plain.related(ANCHOR, k=5, now=NOW))
    pinned = engine(demo_engine, rule(kind="pin", article_id=base[3], beside=ANCHOR, position=1, label="Must read"))
    results = pinned.related(ANCHOR, k=5, now=NOW)
    assert ids(results)[:4] == [base[3], base[0], base[1], base[2]] and ids(results).count(base[3]) == 1
    assert results[0].label == "Must read"


def test_a_story_pin_applies_beside_every_article_of_the_story(demo_engine, plain):
    story = plain.related(ANCHOR, k=10, now=NOW)
    same_story = [r.article_id for r in story if r.relation.startswith("same story")]
    assert same_story, "the demo story has several pieces"
    outsider = "demo-124"  # technology: never in a war story's list
    pinned = engine(demo_engine, rule(kind="pin", article_id=outsider, story=ANCHOR, position=3))
    for article_id in [ANCHOR, *same_story[:3]]:
        assert ids(pinned.related(article_id, k=5, now=NOW))[2] == outsider, article_id
    assert outsider not in ids(pinned.related("demo-050", k=5, now=NOW))


def test_pins_in_more_like_this_and_popular_lists(demo_engine, plain):
    popular = ids(plain.popular(k=5, now=NOW))
    quiet = next(a for a in plain.listed().build.ids if a not in ids(plain.popular(k=100, now=NOW))
                 and plain.article(a)["section"] == plain.article(popular[0])["section"])
    section = plain.article(popular[0])["section"]
    mlt = ids(plain.more_like_this(ids=[ANCHOR], k=5, now=NOW))
    pinned = engine(demo_engine, rule(kind="pin", article_id=quiet, list="popular", section=section, position=1),
                    rule(kind="pin", article_id="demo-124", list="more_like_this", beside=ANCHOR, position=5))
    assert ids(pinned.popular(k=5, section=section, now=NOW))[0] == quiet
    assert quiet not in ids(pinned.popular(k=5, now=NOW))  # that section's popular list only
    assert ids(pinned.more_like_this(ids=[ANCHOR], k=5, now=NOW)) == [*mlt[:4], "demo-124"]
    assert "demo-124" not in ids(pinned.related(ANCHOR, k=5, now=NOW))  # the related list is another list


def test_a_block_leaves_no_gap_in_any_list(demo_engine, plain):
    victim = victim_of(plain)
    blocked = engine(demo_engine, rule(kind="block", article_id=victim))
    for results, before in ((blocked.related(ANCHOR, k=5, now=NOW), plain.related(ANCHOR, k=6, now=NOW)),
                            (blocked.popular(k=5, now=NOW), plain.popular(k=6, now=NOW)),
                            (blocked.more_like_this(ids=[ANCHOR], k=5, now=NOW),
                             plain.more_like_this(ids=[ANCHOR], k=6, now=NOW))):
        assert ids(results) == [a for a in ids(before) if a != victim][:5]
    assert victim not in ids(blocked.story(ANCHOR, now=NOW)) and victim in ids(plain.story(ANCHOR, now=NOW))


def test_blocks_beside_an_article_a_tag_or_in_a_section(demo_engine, plain):
    victim = victim_of(plain)
    neighbour = next(a for a in ids(plain.related(ANCHOR, k=5, now=NOW)) if victim in
                     ids(plain.related(a, k=10, now=NOW)) and a != victim)
    beside = engine(demo_engine, rule(kind="block", article_id=victim, beside=ANCHOR))
    assert victim not in ids(beside.related(ANCHOR, k=10, now=NOW))
    assert victim in ids(beside.related(neighbour, k=10, now=NOW))
    tag = sorted(tags_of(plain, ANCHOR))[0]
    by_tag = engine(demo_engine, rule(kind="block", article_id=victim, beside_tag=tag))
    assert victim not in ids(by_tag.related(ANCHOR, k=10, now=NOW))
    section = plain.article(ANCHOR)["section"]
    in_section = engine(demo_engine, rule(kind="block", article_id=victim, section=section))
    assert victim not in ids(in_section.related(ANCHOR, k=10, now=NOW))
    assert victim not in ids(in_section.popular(k=100, section=section, now=NOW))


def test_boosts_and_buries_move_scores_by_the_rule_and_say_so(demo_engine, plain):
    config = plain.ranking
    results = plain.related(ANCHOR, k=10, now=NOW)
    target = results[0]
    buried = engine(demo_engine, rule(kind="bury", tag=sorted(tags_of(plain, target.article_id)
                                                               - tags_of(plain, ANCHOR))[0] if
                                      tags_of(plain, target.article_id) - tags_of(plain, ANCHOR) else "x",
                                      multiply=0.9))
    after = {r.article_id: r for r in buried.related(ANCHOR, k=40, now=NOW)}
    moved = [r for r in after.values() if any("demoted by the editors" in why for why in r.reasons)]
    assert moved, "the bury matched something"
    for r in moved:
        expected = 0.9 * float(blend(np.array([r.relatedness]), np.array([r.trending]), np.array([r.freshness]),
                                     np.array([r.same_story]), config)[0])
        assert r.score == pytest.approx(expected, abs=1e-9)
    longer = plain.related(ANCHOR, k=20, now=NOW)
    low = next(r for r in longer[8:] if tags_of(plain, r.article_id) - set().union(
        *(tags_of(plain, x.article_id) for x in longer[:5])))
    tag = sorted(tags_of(plain, low.article_id) - set().union(*(tags_of(plain, x.article_id) for x in longer[:5])))[0]
    boosted = engine(demo_engine, rule(kind="boost", tag=tag, add=1.0, label="Editors' pick"))
    top = boosted.related(ANCHOR, k=5, now=NOW)
    promoted = next(r for r in top if r.article_id == low.article_id)
    assert promoted.label == "Editors' pick" and promoted.score == pytest.approx(low.score + 1.0, abs=1e-9)
    assert all(r.label == "" for r in top if tag not in tags_of(plain, r.article_id))


def test_an_age_range_boost_acts_on_the_ages_in_it(demo_engine, plain):
    young = engine(demo_engine, rule(kind="boost", max_age_hours=24.0, add=5.0))
    top = young.popular(k=3, now=NOW)  # popular ignores the blend: only related/more-like-this scores move
    assert ids(top) == ids(plain.popular(k=3, now=NOW))
    results = young.more_like_this(text="ceasefire talks", k=5, now=NOW)
    now_hours = NOW.timestamp() / 3600
    for r in results:
        published = young.article(r.article_id)["published_at"].timestamp() / 3600
        assert (now_hours - published <= 24.0) == (r.label == "Promoted by the editors"), r.article_id


def test_a_guardrail_keeps_two_tags_apart_both_ways_and_within_lists(demo_engine, plain):
    results = plain.related(ANCHOR, k=10, now=NOW)
    mine = tags_of(plain, ANCHOR)
    other_tag = next(t for r in results for t in sorted(tags_of(plain, r.article_id)) if t not in mine)
    guarded = engine(demo_engine, rule(kind="guardrail", tag=sorted(mine)[0], never_beside_tag=other_tag))
    assert all(other_tag not in tags_of(plain, r.article_id) for r in guarded.related(ANCHOR, k=10, now=NOW))
    carrier = next(r.article_id for r in results if other_tag in tags_of(plain, r.article_id))
    assert all(sorted(mine)[0] not in tags_of(plain, r.article_id)
               for r in guarded.related(carrier, k=10, now=NOW))
    # Within one list without an anchor article: never both tags.
    text = guarded.more_like_this(text=plain.article(ANCHOR)["title"], k=20, now=NOW)
    present = [tags_of(plain, r.article_id) for r in text]
    assert not any(sorted(mine)[0] in a and other_tag in b for i, a in enumerate(present)
                   for j, b in enumerate(present) if i != j)
    before = [tags_of(plain, r.article_id) for r in plain.more_like_this(text=plain.article(ANCHOR)["title"], k=20,
                                                                          now=NOW)]
    assert any(sorted(mine)[0] in a and other_tag in b for i, a in enumerate(before)
               for j, b in enumerate(before) if i != j), "without the guardrail the list has both"


def test_embargoes_hold_until_their_time_in_every_list(demo_engine, plain):
    victim = victim_of(plain)
    until = NOW + timedelta(hours=2)
    embargoed = engine(demo_engine, rule(kind="embargo", article_id=victim, until=until.isoformat()))
    assert victim not in ids(embargoed.related(ANCHOR, k=10, now=NOW))
    assert victim not in ids(embargoed.popular(k=100, now=NOW))
    later = embargoed.related(ANCHOR, k=10, now=until)
    assert victim in ids(later)  # lifted at its time
    # A publication time in the future embargoes without a rule: the newest article, one hour before it.
    table = plain.table
    newest = int(np.nanargmax(table.published_hours))
    when = NOW.fromtimestamp(float(table.published_hours[newest]) * 3600 - 3600, NOW.tzinfo)
    assert str(table.ids[newest]) not in ids(plain.popular(k=100, now=when))
    assert str(table.ids[newest]) not in ids(plain.more_like_this(ids=[str(table.ids[newest - 1])], k=100,
                                                                   now=when))


def test_a_rule_acts_only_from_its_start_until_its_expiry(demo_engine, plain):
    victim = victim_of(plain)
    windowed = engine(demo_engine, rule(kind="block", article_id=victim, starts_at=NOW.isoformat(),
                                        expires_at=(NOW + timedelta(hours=1)).isoformat()))
    assert victim in ids(windowed.related(ANCHOR, k=5, now=NOW - timedelta(minutes=1)))
    assert victim not in ids(windowed.related(ANCHOR, k=5, now=NOW + timedelta(minutes=30)))
    assert victim in ids(windowed.related(ANCHOR, k=5, now=NOW + timedelta(hours=1)))


def test_contradictions_and_impossible_rules_are_refused_naming_the_problem(plain):
    info = checked(plain, NOW)
    victim = victim_of(plain)
    block = rule(kind="block", article_id=victim, id="block-1")
    with pytest.raises(RuleError) as refused:
        info(rule(kind="pin", article_id=victim, beside=ANCHOR, position=1), RuleSet((block,)))
    assert refused.value.conflicts == ("block-1",) and "blocks article" in str(refused.value)
    pin = rule(kind="pin", article_id=victim, beside=ANCHOR, position=1, id="pin-1")
    with pytest.raises(RuleError) as refused:
        info(rule(kind="block", article_id=victim, beside=ANCHOR), RuleSet((pin,)))
    assert refused.value.conflicts == ("pin-1",)
    with pytest.raises(RuleError, match="already holds position 1"):
        info(rule(kind="pin", article_id="demo-124", beside=ANCHOR, position=1), RuleSet((pin,)))
    with pytest.raises(RuleError, match="not a listed article"):
        info(rule(kind="pin", article_id="no-such-article", beside=ANCHOR, position=1), RuleSet())
    for bad, message in (({"kind": "pin", "article_id": victim, "beside": ANCHOR, "position": 0}, "position"),
                         ({"kind": "pin", "article_id": victim, "beside": ANCHOR, "position": 101}, "position"),
                         ({"kind": "bury", "tag": "x", "multiply": 2.0}, "lowers"),
                         ({"kind": "guardrail", "tag": "a", "never_beside_tag": "A"}, "different tags"),
                         ({"kind": "block", "article_id": victim, "colour": "red"}, "no field"),
                         ({"kind": "block", "article_id": victim, "expires_at": "tomorrow"}, "ISO 8601")):
        with pytest.raises(RuleError, match=message):
            Rule.from_dict({"author": "desk", "reason": "test", **bad})
    with pytest.raises(RuleError, match="author is required"):
        Rule.from_dict({"kind": "block", "article_id": victim, "reason": "x"})
    guard = rule(kind="guardrail", tag=sorted(tags_of(plain, ANCHOR))[0],
                 never_beside_tag=sorted(tags_of(plain, "demo-124"))[0], id="guard-1")
    with pytest.raises(RuleError) as refused:
        check_rule(rule(kind="pin", article_id="demo-124", beside=ANCHOR, position=2), RuleSet((guard,)),
                   lambda a: (plain.article(a)["section"], frozenset(tags_of(plain, a))), NOW.timestamp() / 3600)
    assert refused.value.conflicts == ("guard-1",)


def test_check_reports_what_the_rules_do_to_an_article_list(demo_engine, plain):
    victim = victim_of(plain)
    ruled = engine(demo_engine, rule(kind="block", article_id=victim, id="b1"),
                   rule(kind="pin", article_id="demo-124", beside=ANCHOR, position=1, id="p1"))
    report = rule_report(ruled, ANCHOR, k=5, now=NOW)
    assert {r["id"] for r in report["rules_naming"]} == {"p1"}
    assert report["related"]["removed"] == [{"article_id": victim, "why": "blocked everywhere"}]
    assert report["related"]["added"][0]["article_id"] == "demo-124"
    assert report["related"]["without_rules"] == ids(plain.related(ANCHOR, k=5, now=NOW))


def test_the_floor_shortens_a_list_or_fills_it_from_popular_in_the_section_under_the_rules(demo_engine, plain):
    results = plain.related(ANCHOR, k=10, now=NOW)
    floor = sorted(r.relatedness for r in results)[4] + 1e-9  # five pass
    short = engine(demo_engine, config=replace(plain.config, ranking=replace(
        plain.ranking, related_floor=floor, floor_fallback="none")))
    kept = short.related(ANCHOR, k=10, now=NOW)
    assert ids(kept) == [r.article_id for r in results if r.relatedness >= floor]
    filled_config = replace(plain.config, ranking=replace(plain.ranking, related_floor=floor))
    filled = engine(demo_engine, config=filled_config).related(ANCHOR, k=10, now=NOW)
    section = plain.article(ANCHOR)["section"]
    assert ids(filled)[:len(kept)] == ids(kept) and len(filled) == 10
    tail = filled[len(kept):]
    assert all(r.source == "fallback" and r.section == section for r in tail)
    assert tail[0].reasons[0] == f"popular in section {section!r}"
    # A guardrail holds in the fallback: against the article and against the list's own entries.
    mine = sorted(tags_of(plain, ANCHOR))[0]
    other = next(t for r in tail for t in sorted(tags_of(plain, r.article_id)) if t not in tags_of(plain, ANCHOR))
    guarded = engine(demo_engine, rule(kind="guardrail", tag=mine, never_beside_tag=other), config=filled_config)
    again = guarded.related(ANCHOR, k=10, now=NOW)
    assert all(other not in tags_of(plain, r.article_id) for r in again)
    assert any(r.source == "fallback" for r in again)
