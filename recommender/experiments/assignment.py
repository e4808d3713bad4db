"""Deterministic assignment of readers to an experiment's arms.

A reader is the random id the widget keeps in ``localStorage`` (no cookie). Two 64-bit BLAKE2b hashes of the
experiment's name and that id decide, with no state stored anywhere:

- whether the reader is in the experiment: ``traffic_hash < traffic_share`` (hash scaled to [0, 1));
- which arm an A/B reader sees: a second, independent hash placed on the arms' cumulative weights.

So a reader keeps their arm for the experiment's whole life, on every replica, process and restart (Python's
``hash()`` is salted per process and is never used). Raising ``traffic_share`` only adds readers, and the readers
already in keep their arm, because the two hashes are separate. Renaming the experiment reshuffles everyone: the
name is the salt, which also makes two experiments split readers independently of each other.
"""

from __future__ import annotations

import hashlib

from .definition import Experiment

MAX_READER_ID_CHARS = 200
_SCALE = float(2**64)


def unit_hash(*parts: str) -> float:
    """A stable number in [0, 1) from ``parts`` (BLAKE2b, 8 bytes; the parts joined by NUL, which no name holds)."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def _check_reader(reader_id: str) -> None:
    if not isinstance(reader_id, str) or not reader_id or len(reader_id) > MAX_READER_ID_CHARS:
        raise ValueError(f"reader_id must be a non-empty string of at most {MAX_READER_ID_CHARS} characters, "
                         f"got {reader_id!r:.60}")


def in_traffic(experiment: Experiment, reader_id: str) -> bool:
    """Whether ``reader_id`` falls in ``experiment``'s traffic share (both kinds)."""
    _check_reader(reader_id)
    return unit_hash(experiment.name, "traffic", reader_id) < experiment.traffic_share


def assign(experiment: Experiment, reader_id: str) -> str | None:
    """The arm an A/B experiment shows this reader, or None when the reader is outside its traffic share.

    Args:
        experiment: an A/B experiment (interleaving merges both arms for every reader in the share: see
            ``in_traffic``).
        reader_id: the widget's random reader id.

    Returns:
        The arm's name, the same for the same experiment name and reader on every call; arms are chosen in
        proportion to their weights (uniformly by default).

    Raises:
        ValueError: an empty or over-long reader id, or an interleaving experiment.
    """
    if experiment.kind != "ab":
        raise ValueError(f"experiment {experiment.name!r} interleaves its arms: every reader in its traffic share "
                         f"sees both (use in_traffic), none is assigned one arm")
    if not in_traffic(experiment, reader_id):
        return None
    return arm_in_traffic(experiment, reader_id)


def arm_in_traffic(experiment: Experiment, reader_id: str) -> str:
    """``assign`` for a reader already known to be in the traffic share (``in_traffic``): one hash, not two."""
    point = unit_hash(experiment.name, "arm", reader_id) * sum(a.weight for a in experiment.arms)
    for arm in experiment.arms:
        point -= arm.weight
        if point < 0:
            return arm.name
    return experiment.arms[-1].name  # rounding at the very top of the range
