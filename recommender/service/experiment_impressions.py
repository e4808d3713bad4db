"""What a list served inside an experiment shows and how its impression is counted: the A/B arm's list or the
team-draft merge of two arms' lists, its signed impression id (``experiments.impression_token``) and its count
keys' tally in the worker's buffer (``impression_buffer.py``). Nothing else is stored per impression.

What every impression of one shown list, widget and hour shares (its count keys and its id's signed header) is
prepared once: kept on an A/B arm's list (``RenderedList.derived``), or with the merge it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..experiments.definition import Experiment
from ..experiments.impression_token import NONCES, Header, ImpressionSigner
from ..experiments.interleaving import Flips, merge_pattern, team_draft
from .experiment_counts import ExperimentCounts
from .impression_batch import CountKeys, count_keys
from .rendering import RenderedList

# Team-draft merges kept (``ShownLists._merged``): at most 2**5 per pair of kept lists at k = 10; when there are
# more, all are dropped (they are rebuilt from the kept lists at one draft each).
MERGES_KEPT = 65_536
# Prepared impressions kept on one shown list (one per experiment, widget and hour).
PREPARED_PER_LIST = 16
# What every impression of one shown list, widget and hour shares: (its count keys, its id's signed header).
Prepared = tuple[CountKeys, Header]
# A kept merge, by (list a's serial, list b's, k, pattern, experiment, widget, hour): the merged list's ids, items
# and fallback, and its prepared impression. Exact tuples of strings, bytes and hash states, so the garbage
# collector stops tracking them: tens of thousands are kept, and as objects (a list, its dicts, named tuples:
# ~6 tracked objects a merge) they made each full collection take 20-50 ms, the interleaved lists' p99
# (benchmarks/RESULTS.md).
Merge = tuple[tuple[str, ...], tuple[bytes, ...], "str | None", Prepared]
MergeKey = tuple[int, int, int, int, str, str, int]


@dataclass(frozen=True)
class Served:
    """What a list served inside an experiment says about itself (in the response: ``impression_id``,
    ``experiment`` and, A/B, ``arm``)."""

    impression_id: str
    experiment: str
    arm: str | None


class ShownLists:
    """The lists shown inside experiments, and their impressions.

    Args:
        signer: signs the impression ids (the site's key).
        counts: where impressions are counted (the service's is buffered).
    """

    def __init__(self, signer: ImpressionSigner, counts: ExperimentCounts) -> None:
        self.signer = signer
        self.counts = counts
        self._merges: dict[MergeKey, Merge] = {}

    def clear(self) -> None:
        """Drop every kept merge (a new build: new arm lists)."""
        self._merges.clear()

    def show(self, experiment: Experiment, widget: str, now: datetime, lists: dict[str, RenderedList], k: int,
             kept: bool = True) -> tuple[RenderedList, Served]:
        """The list shown from the arms' ``lists`` (the A/B arm's, or the team-draft merge its impression's random
        bits decide, at most ``k`` long) and its impression, counted. ``kept``: whether the lists are kept (a
        merge of lists that are not is never kept: no later request can show the same pair)."""
        nonce = NONCES.take()
        hour = int(now.timestamp() // 3600)
        if experiment.kind == "ab":
            (arm, results), = lists.items()
            prepared = self._prepared(results, experiment, widget, hour, arm)
        else:
            first, second = experiment.arm_names
            results, prepared = self._merged(experiment, widget, hour, lists[first], lists[second], k,
                                             merge_pattern(int.from_bytes(nonce, "little"), k), kept)
            arm = None
        if results:
            self.counts.served(prepared[0])
        return results, Served(self.signer.issue(prepared[1], nonce), experiment.name, arm)

    def _prepared(self, results: RenderedList, experiment: Experiment, widget: str, hour: int, arm: str,
                  ) -> Prepared:
        """An A/B arm's list's prepared impression in ``widget`` and ``hour`` (kept on the list: it leaves when the
        list does)."""
        key = (experiment.name, widget, hour)
        prepared: Prepared | None = results.derived.get(key)
        if prepared is None:
            if len(results.derived) >= PREPARED_PER_LIST:
                results.derived.clear()  # hours pass: a list kept long does not collect them
            arms = (arm,) * len(results)
            prepared = (count_keys(experiment.name, arm, widget, hour, arms),
                        self.signer.header(experiment, widget, hour, arms, results.ids))
            results.derived[key] = prepared
        return prepared

    def _merged(self, experiment: Experiment, widget: str, hour: int, a: RenderedList, b: RenderedList, k: int,
                pattern: int, keep: bool = True) -> tuple[RenderedList, Prepared]:
        """The team-draft merge of ``a`` (the first arm's list) and ``b`` decided by ``pattern``
        (``merge_pattern``), and its prepared impression: kept per pair of kept lists (``keep``), so a hot list's
        impressions draft once per pattern (the draft was ~60% of assembling an interleaved list from kept lists,
        measured in a loop). The long tail's merges are not kept: 65,536 of them, never read again, held ~10
        items each and made the worker's allocations (orjson's output buffers among them) several times slower,
        ~1.5x the CPU of an interleaved list (benchmarks/JOURNAL.md)."""
        key = (a.serial, b.serial, k, pattern, experiment.name, widget, hour)
        merge = self._merges.get(key)
        if merge is None:
            first, second = experiment.arm_names
            merged, teams = team_draft(a.ids, b.ids, k, Flips(pattern))
            listed = a.picked(merged, [b])
            arms = tuple(first if t == "a" else second for t in teams)
            merge = (listed.ids, listed.items, listed.fallback,
                     (count_keys(experiment.name, "*", widget, hour, arms),
                      self.signer.header(experiment, widget, hour, arms, listed.ids)))
            if keep:
                if len(self._merges) >= MERGES_KEPT:
                    self._merges.clear()
                self._merges[key] = merge
        return RenderedList(merge[0], merge[1], merge[2]), merge[3]

