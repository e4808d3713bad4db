"""Interleaving vs A/B on simulated readers of BBC News: how many impressions each needs to pick the better ranker.

Usage: python benchmarks/interleaving.py [--data ../shared/data] [--runs 200] [--articles N] [--out PATH]

Truth: BBC News (2,225 articles, 5 sections) is built for real (``recommender.build.build``, embeddings from the
cache) and an item is relevant to the page when it is in the page's section. Each arm's top-10 related list of
every article is computed once through ``Recommender.related``:

- ``full``: the full blend (the build's hybrid related table, default ``[ranking]``);
- ``embeddings``: embeddings only (``evaluation.baselines.embeddings_only``: FAISS cosine, nothing else);
- ``degraded``: the full blend's list with the items at positions 2 and 5 replaced by random catalogue articles
  (seeded, fixed per page): a deliberately worse configuration.

Readers: each impression is a page drawn uniformly from the catalogue. The reader scans the list top-down,
examines position ``i`` (1-based) with probability ``1 / log2(1 + i)`` (the DCG discount as a position-bias
curve) and is attracted by an examined item with ``p_rel`` if it is in the page's section, ``p_irr`` otherwise;
the first attractive item is clicked and the click takes the reader to that article, so a list gets at most one
click (a position-based model cut at the first click). Two click models by default: ``0.02:0.002`` (about 8% of
lists clicked: a related-articles widget) and ``0.2:0.02`` (about 60%: engaged readers, a sensitivity check).

Methods, for each pair (``full`` vs ``embeddings``, ``full`` vs ``degraded``, and ``full`` vs ``full``, an A/A test
where every decision is a false one) and each seeded run:

- A/B: every impression goes to one arm at random (a new reader each time, which is what hashing random reader ids
  gives); after every 100 impressions the two-proportion z-test of clicks per impression
  (``experiments.statistics.two_proportion_z_test``) is read, and the run stops at the first ``p < 0.05``;
- interleaving: every impression shows the team-draft merge of the two lists (``experiments.interleaving.team_draft``;
  the merge of every page under each of the 2^5 coin sequences is computed once and a sequence drawn per impression,
  which is the distribution ``impression_rng`` gives), each impression's clicks are credited
  (``interleaving.credit``) and the exact sign test on wins vs losses (``statistics.sign_test``) is read every 100
  impressions, stopping at the first ``p < 0.05``.

Each impression's outcome is drawn from its exact distribution under the click model (where the one click falls,
computed from the per-position probabilities; for a merge, which team ``credit`` gives it to), which is the same as
drawing every position's examination and attraction in turn, only faster. The tests are vectorised here and
checked against the package's functions at every decision. A/B counts the impressions of both arms: the traffic
the experiment used. The ``planned`` column is the package's own normal-approximation sample size for 80% power
(``statistics.ab_sample_size``, ``sign_test_sample_size``) at the exact expected rates: the simulation's fixed
horizons should land near it. Stopping at the first p < 0.05 while peeking every 100
impressions is what a dashboard invites, and it inflates the wrong-pick rate above 5%; the fixed-horizon columns
read the same runs once, at a fixed number of impressions, and give the smallest horizon of a doubling grid at
which the test picks the better arm in at least 80% of the runs (the usual planning power). A last table runs the
guardrail (``experiments.guardrail.arms_to_stop``, checked every 1,000 impressions per arm) on an A/B arm whose
CTR is a given fraction of control's.

Prints tables and writes benchmarks/out/interleaving.json (or ``--out``). A smoke run: ``--runs 10 --articles 400
--cap 50000 --guardrail-runs 20`` (seconds; not the benchmark's figures). The default run (500 runs, cap 2,000,000)
takes about 11 minutes (7 of CPU) on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from recommender.build import build  # noqa: E402
from recommender.config import BuildConfig  # noqa: E402
from recommender.evaluation.baselines import embeddings_only  # noqa: E402
from recommender.evaluation.datasets import load_bbc  # noqa: E402
from recommender.experiments import Arm, ArmCounts, Experiment, arms_to_stop, credit, team_draft  # noqa: E402
from recommender.experiments.statistics import (  # noqa: E402
    ab_sample_size,
    sign_test,
    sign_test_sample_size,
    two_proportion_z_test,
)
from recommender.query import Recommender  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
K = 10
CHECK_EVERY = 100
ALPHA = 0.05
# The last pair is an A/A test: any decision there is a false one (the peeking inflation, measured).
PAIRS = (("full", "embeddings"), ("full", "degraded"), ("full", "full"))
DEGRADED_SLOTS = (1, 4)  # 0-based positions 2 and 5


def examination(k: int) -> np.ndarray:
    """The position-bias curve: P(examine position i) = 1 / log2(1 + i), i = 1..k."""
    return 1.0 / np.log2(1.0 + np.arange(1, k + 1))


# --- the arms' lists -------------------------------------------------------------------------------------------------


def arm_lists(data_dir: str, articles: int | None, cache: str, work: Path, seed: int) -> tuple[dict, list, dict]:
    """Build BBC News and return ({arm: [top-10 ids per page]}, page ids, section of each id)."""
    dataset = load_bbc(data_dir, limit=articles, seed=seed)
    # A private copy of the embedding cache: the build writes to it (nothing new here, but never touch the original).
    cache_copy = work / "embeddings.sqlite"
    shutil.copyfile(cache, cache_copy)
    report = build(dataset.articles, work / "index", config=BuildConfig(), cache_path=cache_copy)
    print(report.summary())
    full = Recommender.load(work / "index")
    plain = Recommender(full.stored, embeddings_only(full.config))
    ids = list(full.table.ids)
    lists = {"full": [[r.article_id for r in full.related(a, k=K)] for a in ids],
             "embeddings": [[r.article_id for r in plain.related(a, k=K)] for a in ids]}
    rng = np.random.default_rng(seed + 1)
    degraded = []
    for page, items in zip(ids, lists["full"]):
        items = list(items)
        for slot in DEGRADED_SLOTS:
            while True:
                pick = ids[int(rng.integers(len(ids)))]
                if pick != page and pick not in items:
                    break
            items[slot] = pick
        degraded.append(items)
    lists["degraded"] = degraded
    return lists, ids, dataset.labels.to_dict()


def relevance(lists: list[list[str]], pages: list[str], section: dict) -> np.ndarray:
    """(pages, K) int8: 1 relevant, 0 not, -1 no item at that position."""
    out = np.full((len(pages), K), -1, dtype=np.int8)
    for row, (page, items) in enumerate(zip(pages, lists)):
        for i, item in enumerate(items[:K]):
            out[row, i] = int(section[item] == section[page])
    return out


def click_probabilities(rel: np.ndarray, p_rel: float, p_irr: float) -> np.ndarray:
    """P(click) at each position of each list under the click model (0 where there is no item)."""
    exam = examination(rel.shape[-1])
    return np.where(rel == 1, p_rel, np.where(rel == 0, p_irr, 0.0)) * exam


class PatternCoin:
    """Team-draft's coin, replaying the bits of one coin sequence (bit j = 1: team a picks first at tie j)."""

    def __init__(self, pattern: int, flips: int) -> None:
        self.pattern, self.flips, self.used = pattern, flips, 0

    def random(self) -> float:
        if self.used >= self.flips:
            raise RuntimeError("team_draft flipped more coins than planned")
        bit = (self.pattern >> self.used) & 1
        self.used += 1
        return 0.0 if bit else 0.75


def interleavings(a: list[list[str]], b: list[list[str]], pages: list[str], section: dict) -> tuple[np.ndarray, ...]:
    """Every page's team-draft merge under each of its coin sequences: (rel (pages, patterns, K) as ``relevance``,
    credited_b (same) bool: ``interleaving.credit`` of a click at that position goes to team b)."""
    flips = math.ceil(K / 2)  # the teams tie, and a coin is flipped, at most before every second pick
    patterns = 2**flips
    rel = np.full((len(pages), patterns, K), -1, dtype=np.int8)
    credited_b = np.zeros((len(pages), patterns, K), dtype=bool)
    for row, page in enumerate(pages):
        for pattern in range(patterns):
            merged, teams = team_draft(a[row], b[row], K, PatternCoin(pattern, flips))
            for i, item in enumerate(merged):
                rel[row, pattern, i] = int(section[item] == section[page])
                credited_b[row, pattern, i] = credit(teams, [i]) == "b"
    return rel, credited_b


def first_click(probs: np.ndarray) -> np.ndarray:
    """P(the first, and only, click is at position i) from the per-position probabilities that an item is examined
    and attracts (the reader scans top-down and leaves at the first)."""
    before = np.cumprod(1 - probs, axis=-1)
    return probs * np.concatenate([np.ones_like(before[..., :1]), before[..., :-1]], axis=-1)


# --- the tests, vectorised -------------------------------------------------------------------------------------------


def z_test_p(c1: np.ndarray, n1: np.ndarray, c2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """``two_proportion_z_test``'s p over arrays of counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (c1 + c2) / (n1 + n2)
        variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
        z = (c2 / n2 - c1 / n1) / np.sqrt(variance)
    p = 2 * stats.norm.sf(np.abs(z))
    return np.where((n1 > 0) & (n2 > 0) & (variance > 0), p, 1.0)


def sign_test_p(wins: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """``sign_test``'s p (exact, two-sided, at 1/2) over arrays: 2 * P(X <= min(w, l)), at most 1."""
    n = wins + losses
    return np.where(n > 0, np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(wins, losses), n, 0.5)), 1.0)


# --- one run ---------------------------------------------------------------------------------------------------------

CHUNK = 100_000  # impressions drawn at a time (a multiple of CHECK_EVERY)


def ab_trajectory(click_a: np.ndarray, click_b: np.ndarray, cap: int, rng: np.random.Generator) -> dict:
    """Cumulative (impressions, clicks) of each arm at every checkpoint of one A/B run up to ``cap``.

    ``click_x[page]``: P(the list of arm x on that page is clicked).
    """
    blocks = cap // CHECK_EVERY
    n_b = np.zeros(blocks, dtype=np.int64)
    c = np.zeros((blocks, 2), dtype=np.int64)
    for start in range(0, cap, CHUNK):
        size = min(CHUNK, cap - start)
        page = rng.integers(len(click_a), size=size)
        arm_b = rng.random(size) < 0.5  # a new reader per impression, assigned at random
        clicked = rng.random(size) < np.where(arm_b, click_b[page], click_a[page])
        b0, per = start // CHECK_EVERY, size // CHECK_EVERY
        n_b[b0:b0 + per] = arm_b.reshape(per, CHECK_EVERY).sum(axis=1)
        c[b0:b0 + per, 1] = (clicked & arm_b).reshape(per, CHECK_EVERY).sum(axis=1)
        c[b0:b0 + per, 0] = (clicked & ~arm_b).reshape(per, CHECK_EVERY).sum(axis=1)
    n_b, c = n_b.cumsum(), c.cumsum(axis=0)
    n = np.stack([CHECK_EVERY * np.arange(1, blocks + 1) - n_b, n_b], axis=1)
    p = z_test_p(c[:, 0], n[:, 0], c[:, 1], n[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        b_better = c[:, 1] / n[:, 1] > c[:, 0] / n[:, 0]
    return {"p": p, "b_better": b_better, "n": n, "c": c}


def interleave_trajectory(win: np.ndarray, cap: int, rng: np.random.Generator) -> dict:
    """Cumulative wins of each team at every checkpoint of one interleaving run up to ``cap``.

    ``win[page, pattern]``: (P(team a gets the click), P(team b gets it)) of that merge; no click otherwise, and
    with one click at most there are no ties.
    """
    pages, patterns, _ = win.shape
    blocks = cap // CHECK_EVERY
    wins = np.zeros((blocks, 2), dtype=np.int64)
    for start in range(0, cap, CHUNK):
        size = min(CHUNK, cap - start)
        merge = win[rng.integers(pages, size=size), rng.integers(patterns, size=size)]  # page, then its coins
        u = rng.random(size)
        a_won = u < merge[:, 0]
        b_won = ~a_won & (u < merge[:, 0] + merge[:, 1])
        b0, per = start // CHECK_EVERY, size // CHECK_EVERY
        wins[b0:b0 + per, 0] = a_won.reshape(per, CHECK_EVERY).sum(axis=1)
        wins[b0:b0 + per, 1] = b_won.reshape(per, CHECK_EVERY).sum(axis=1)
    wins = wins.cumsum(axis=0)
    return {"p": sign_test_p(wins[:, 0], wins[:, 1]), "b_better": wins[:, 1] > wins[:, 0], "wins": wins}


def check_against_package(method: str, t: dict, i: int) -> None:
    """The vectorised p at checkpoint ``i`` equals the package's function on the same counts."""
    if method == "ab":
        n, c = t["n"][i], t["c"][i]
        expected = two_proportion_z_test(int(c[0]), int(n[0]), int(c[1]), int(n[1]))[1]
    else:
        w = t["wins"][i]
        expected = sign_test(int(w[0]), int(w[1]))
    if not math.isclose(float(t["p"][i]), expected, rel_tol=1e-6, abs_tol=1e-12):
        raise AssertionError(f"{method}: vectorised p {t['p'][i]} != package {expected} at checkpoint {i}")


@dataclass
class Outcome:
    impressions: int | None  # at the first p < alpha (None: undecided at the cap)
    wrong: bool
    fixed: dict  # horizon -> "right" | "wrong" | "undecided"


def outcome(method: str, t: dict, better_is_a: bool | None, horizons: list[int]) -> Outcome:
    """Where one run stopped, whether it picked the worse arm (``better_is_a`` None: the arms are the same, and
    any pick is wrong), and what a single look at each horizon says."""
    decided = np.flatnonzero(t["p"] < ALPHA)

    def wrong(i: int) -> bool:
        return better_is_a is None or bool(t["b_better"][i]) == better_is_a

    fixed = {h: "undecided" if t["p"][h // CHECK_EVERY - 1] >= ALPHA else "wrong" if wrong(h // CHECK_EVERY - 1)
             else "right" for h in horizons}
    check_against_package(method, t, len(t["p"]) - 1)
    if not len(decided):
        return Outcome(None, False, fixed)
    i = int(decided[0])
    check_against_package(method, t, i)
    return Outcome((i + 1) * CHECK_EVERY, wrong(i), fixed)


# --- summaries -------------------------------------------------------------------------------------------------------


def summarise(outcomes: list[Outcome], cap: int, horizons: list[int]) -> dict:
    decided = [o.impressions for o in outcomes if o.impressions is not None]
    runs = len(outcomes)
    # Undecided runs count at the cap: the median is then a lower bound once they are over half.
    at_cap = sorted(decided + [cap] * (runs - len(decided)))
    power80 = None
    fixed = {}
    for h in horizons:
        right = sum(o.fixed[h] == "right" for o in outcomes) / runs
        wrong = sum(o.fixed[h] == "wrong" for o in outcomes) / runs
        fixed[h] = {"right": right, "wrong": wrong}
        if power80 is None and right >= 0.8:
            power80 = h
    return {"runs": runs, "decided": len(decided), "undecided_share": 1 - len(decided) / runs,
            "fixed_wrong_mean": float(np.mean([f["wrong"] for f in fixed.values()])),
            "median_impressions": float(np.median(at_cap)), "mean_impressions_decided":
            float(np.mean(decided)) if decided else None,
            "wrong_share": sum(o.wrong for o in outcomes) / runs,
            "fixed_horizon_80": power80,
            "fixed_horizon_80_wrong": fixed[power80]["wrong"] if power80 else None, "fixed": fixed}


def expected_truth(click: dict, win: dict) -> dict:
    """Exact expectations: each arm's CTR (share of lists clicked), each interleaved pair's win rate per team
    (averaged over pages and coin sequences), and the package's 80%-power sample sizes at those values (A/B:
    both arms together) to set beside the simulated fixed horizons."""
    ctr = {arm: float(c.mean()) for arm, c in click.items()}
    out: dict = {"ctr": ctr, "interleaved_win_rates": {}, "planned_80": {}}
    for pair, w in win.items():
        a, b = pair.split(" vs ")
        rates = w.mean(axis=(0, 1))
        share = max(rates) / rates.sum()
        out["interleaved_win_rates"][pair] = [float(rates[0]), float(rates[1])]
        if a == b:
            continue
        out["planned_80"][pair] = {"ab": 2 * ab_sample_size(ctr[a], ctr[b]),
                                   "interleave": math.ceil(sign_test_sample_size(share) / rates.sum())}
    return out


def guardrail_check(control_ctr: float, ratios: list[float], runs: int, per_arm: int, seed: int) -> dict:
    """Share of runs whose treatment arm (CTR = ratio * control's) the guardrail stops within ``per_arm``
    impressions per arm, checked every 1,000 impressions per arm, and the median impressions at the stop."""
    experiment = Experiment("guardrail-check", "ab", [Arm("control"), Arm("treatment")])
    out = {}
    step = 1_000
    for ratio in ratios:
        rng = np.random.default_rng([seed, int(ratio * 1000)])
        stops = []
        for _ in range(runs):
            control = rng.binomial(step, min(1.0, control_ctr), size=per_arm // step).cumsum()
            treated = rng.binomial(step, min(1.0, ratio * control_ctr), size=per_arm // step).cumsum()
            stopped = None
            for j in range(per_arm // step):
                n = (j + 1) * step
                counts = {"control": ArmCounts(n, int(control[j])), "treatment": ArmCounts(n, int(treated[j]))}
                if arms_to_stop(experiment, counts):
                    stopped = n
                    break
            stops.append(stopped)
        hit = [s for s in stops if s is not None]
        out[f"{ratio:g}"] = {"stopped_share": len(hit) / runs,
                             "median_impressions_per_arm": float(np.median(hit)) if hit else None}
    return out


def fmt(v: float | None, suffix: str = "") -> str:
    return "-" if v is None else f"{v:,.0f}{suffix}"


def simulate(rel: dict, merges: dict, p_rel: float, p_irr: float, runs: int, cap: int, horizons: list[int],
             seed: int) -> dict:
    """Every pair x method under one click model: outcomes, truth and ratios."""
    click = {arm: first_click(click_probabilities(r, p_rel, p_irr)).sum(axis=1) for arm, r in rel.items()}
    win = {}
    for pair, (merged_rel, credited_b) in merges.items():
        first = first_click(click_probabilities(merged_rel, p_rel, p_irr))
        win[pair] = np.stack([(first * ~credited_b).sum(axis=2), (first * credited_b).sum(axis=2)], axis=2)
    truth = expected_truth(click, win)
    results: dict = {}
    for a, b in PAIRS:
        pair = f"{a} vs {b}"
        better_is_a = None if a == b else truth["ctr"][a] > truth["ctr"][b]
        for method in ("ab", "interleave"):
            outcomes = []
            t0 = time.perf_counter()
            for run in range(runs):
                rng = np.random.default_rng([seed, PAIRS.index((a, b)), method == "ab", run])
                t = (ab_trajectory(click[a], click[b], cap, rng) if method == "ab"
                     else interleave_trajectory(win[pair], cap, rng))
                outcomes.append(outcome(method, t, better_is_a, horizons))
            results[f"{pair} / {method}"] = {**summarise(outcomes, cap, horizons), "seconds": time.perf_counter() - t0}
            print(f"  p_rel {p_rel} {pair} / {method}: {time.perf_counter() - t0:.0f}s", flush=True)
    ratios = {}
    for a, b in PAIRS[:-1]:
        pair = f"{a} vs {b}"
        ab_r, il_r = results[f"{pair} / ab"], results[f"{pair} / interleave"]
        ratios[pair] = {
            "median": ab_r["median_impressions"] / il_r["median_impressions"],
            "median_is_lower_bound": ab_r["undecided_share"] >= 0.5,
            "fixed_horizon_80": (ab_r["fixed_horizon_80"] / il_r["fixed_horizon_80"]
                                 if ab_r["fixed_horizon_80"] and il_r["fixed_horizon_80"] else None),
            "planned_80": truth["planned_80"][pair]["ab"] / truth["planned_80"][pair]["interleave"]}
    return {"p_rel": p_rel, "p_irr": p_irr, "precision_at_10": {arm: float((r == 1).mean()) for arm, r in rel.items()},
            "truth": truth, "results": results, "ratio_ab_over_interleaving": ratios}


def print_model(model: dict, runs: int, cap: int) -> None:
    truth = model["truth"]
    print(f"click model: examine 1/log2(1+pos), p_rel {model['p_rel']}, p_irr {model['p_irr']}, one click at most; "
          f"{runs} runs; test every {CHECK_EVERY}; cap {cap:,}")
    print("  CTR (share of lists clicked): " + ", ".join(f"{arm} {v:.4f}" for arm, v in truth["ctr"].items()))
    for pair, (a, b) in truth["interleaved_win_rates"].items():
        print(f"  interleaved {pair}: wins per impression {a:.4f} / {b:.4f} (win share {max(a, b) / (a + b):.3f})")
    header = (f"{'pair':<20} {'method':<11} {'median':>9} {'mean(dec.)':>11} {'wrong':>7} {'undecided':>10} "
              f"{'fixed@80%':>10} {'wrong@fix':>9} {'planned':>9}")
    print(header)
    print("-" * len(header))
    for key, r in model["results"].items():
        pair, method = key.split(" / ")
        aa = pair.split(" vs ")[0] == pair.split(" vs ")[1]
        wrong_fixed = ("-" if r["fixed_horizon_80_wrong"] is None and not aa
                       else format(r["fixed_wrong_mean"] if aa else r["fixed_horizon_80_wrong"], ".1%"))
        planned = "-" if aa else fmt(truth["planned_80"][pair][method])
        print(f"{pair:<20} {method:<11} {fmt(r['median_impressions']):>9} {fmt(r['mean_impressions_decided']):>11} "
              f"{r['wrong_share']:>7.1%} {r['undecided_share']:>10.1%} {fmt(r['fixed_horizon_80']):>10} "
              f"{wrong_fixed:>9} {planned:>9}")
    for pair, r in model["ratio_ab_over_interleaving"].items():
        fixed = "-" if r["fixed_horizon_80"] is None else f"{r['fixed_horizon_80']:.1f}x"
        print(f"ratio A/B / interleaving, {pair}: sequential median {'>= ' if r['median_is_lower_bound'] else ''}"
              f"{r['median']:.1f}x, fixed horizon at 80% power {fixed}, planned {r['planned_80']:.1f}x")
    print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--runs", type=int, default=500, help="seeded runs per pair, method and click model")
    parser.add_argument("--articles", type=int, default=None, help="a seeded sample of BBC (default: all 2,225)")
    parser.add_argument("--cap", type=int, default=2_000_000, help="impressions per run at most")
    parser.add_argument("--models", nargs="+", default=["0.02:0.002", "0.2:0.02"],
                        help="click models P_REL:P_IRR (click probability of an examined relevant / other item)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guardrail-runs", type=int, default=200)
    parser.add_argument("--cache", default=str(REPO / ".cache" / "embeddings.sqlite"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "interleaving.json"))
    args = parser.parse_args()
    cap = args.cap // CHECK_EVERY * CHECK_EVERY
    # Fixed horizons: a quarter-octave grid from 100 impressions to the cap.
    horizons = sorted({min(cap, max(CHECK_EVERY, round(CHECK_EVERY * 2 ** (j / 4) / CHECK_EVERY) * CHECK_EVERY))
                       for j in range(200) if CHECK_EVERY * 2 ** ((j - 1) / 4) < cap})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interleaving-") as work:
        lists, pages, section = arm_lists(args.data, args.articles, args.cache, Path(work), args.seed)
    build_seconds = time.perf_counter() - started
    rel = {arm: relevance(items, pages, section) for arm, items in lists.items()}
    merges = {f"{a} vs {b}": interleavings(lists[a], lists[b], pages, section) for a, b in PAIRS}
    models = []
    for spec in args.models:
        p_rel, p_irr = (float(v) for v in spec.split(":"))
        models.append(simulate(rel, merges, p_rel, p_irr, args.runs, cap, horizons, args.seed))
    control_ctr = models[0]["truth"]["ctr"]["full"]
    guardrail = guardrail_check(control_ctr, [1.0, 0.9, 0.8, 0.7, 0.6], args.guardrail_runs, 100_000, args.seed)
    print()
    print(f"BBC News, {len(pages)} pages; p@10 (same section): "
          + ", ".join(f"{arm} {p:.3f}" for arm, p in models[0]["precision_at_10"].items()))
    print()
    for model in models:
        print_model(model, args.runs, cap)
    print(f"guardrail (A/B, control CTR {control_ctr:.4f}, checked every 1,000 impressions per arm up to 100,000, "
          f"{args.guardrail_runs} runs): treatment CTR / control -> share stopped, median impressions per arm")
    for ratio, g in guardrail.items():
        print(f"  {ratio:>4}: {g['stopped_share']:6.1%}  {fmt(g['median_impressions_per_arm'])}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "dataset": "bbc", "pages": len(pages), "k": K,
        "arms": {"full": "full blend (Recommender.related, default config)",
                 "embeddings": "evaluation.baselines.embeddings_only",
                 "degraded": f"full blend with 0-based positions {list(DEGRADED_SLOTS)} replaced by random articles"},
        "click_model": {"examination": "1/log2(1+position)", "relevant": "same section",
                        "clicks": "independent per position"},
        "runs": args.runs, "check_every": CHECK_EVERY, "alpha": ALPHA, "cap": cap, "horizons": horizons,
        "models": models, "guardrail": {"control_ctr": control_ctr, "by_ratio": guardrail},
        "build_seconds": build_seconds, "seconds": time.perf_counter() - started,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count()},
    }, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
