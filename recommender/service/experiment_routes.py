"""Online experiment routes: define, list, report and stop experiments, and rotate the key their impression ids
are signed with (all need the write token)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from ..errors import IndexFormatError
from ..experiments.definition import NAME_PATTERN, Experiment
from .errors import ApiError
from .impression_keys import RotationConflictError
from .routes import ACTOR, ERRORS, REASON, State, Writer

router = APIRouter(tags=["experiments"], dependencies=[Writer])
NAME = Annotated[str, Path(pattern=NAME_PATTERN.pattern)]


def _known(state: State, name: str) -> None:
    state.experiments.store.sync()
    if name not in state.experiments.store.all():
        raise ApiError(404, "unknown_experiment", f"no experiment {name!r}; GET /v1/experiments lists them")


@router.post("/v1/experiments", status_code=201, responses=ERRORS)
def create(state: State, body: Annotated[dict[str, Any], Body(description="An experiment (docs/experiments.md).",
                                                                examples=[{"name": "mmr-test", "kind": "interleave",
                                                                           "arms": [{"name": "control"},
                                                                                    {"name": "mmr", "settings": {
                                                                                        "ranking": {
                                                                                            "mmr_lambda": 0.7}}}]}])],
           actor: str = ACTOR, reason: str = REASON) -> dict[str, Any]:
    """Define an experiment; every worker of every replica serves it within its next live-state poll. A malformed
    definition is a 422 naming the field."""
    try:
        experiment = Experiment.from_dict(body)
        for arm in experiment.arms:  # an arm's build must exist and load now, not at its first reader
            state.experiments.arms.loader(arm)
        running = state.experiments.store.create(experiment, actor, reason)
    except (ValueError, KeyError, IndexFormatError) as exc:  # a bad definition, or an arm's build that won't load
        raise ApiError(422, "invalid_experiment", str(exc).strip("'\"")) from None
    return {"experiment": running.to_dict(state.served.recommender.clock())}


@router.get("/v1/experiments", responses=ERRORS)
def list_experiments(state: State) -> dict[str, Any]:
    """Every experiment with its state (active, stopped arms, ended)."""
    state.experiments.store.sync()
    now = state.served.recommender.clock()
    return {"experiments": [r.to_dict(now) for _, r in sorted(state.experiments.store.all().items())]}


@router.get("/v1/experiments/{name}", responses=ERRORS)
def experiment_report(state: State, name: NAME) -> dict[str, Any]:
    """The decision: per arm impressions, clicks, CTR with a 95% interval and per position; interleaving's wins,
    losses and ties with a sign test; one line saying which arm wins or how much more data is needed; the counts
    per hour; the log (guardrail stops included). It counts every list served before it was asked: each worker
    writes its impressions within one flush interval (``experiment_flush_seconds``), so it waits that long."""
    _known(state, name)
    time.sleep(state.settings.experiment_flush_seconds * 1.5)
    report = state.experiments.report(name)
    return {"report": report.to_dict(), "verdict": report.verdict,
            "experiment": state.experiments.store.get(name).to_dict(state.served.recommender.clock()),
            "series": state.experiments.series(name), "log": state.experiments.store.history(name)}


@router.post("/v1/experiments/{name}/stop", responses=ERRORS)
def stop(state: State, name: NAME, arm: str | None = Query(None, description="Stop this arm only (its readers "
                                                                              "see control); none ends the "
                                                                              "experiment."),
         actor: str = ACTOR, reason: str = REASON) -> dict[str, Any]:
    """Stop an arm, or end the experiment (logged)."""
    _known(state, name)
    store = state.experiments.store
    if arm is None:
        store.end(name, actor, reason)
    else:
        if arm not in store.get(name).experiment.arm_names:
            raise ApiError(422, "invalid_experiment", f"experiment {name!r} has no arm {arm!r}")
        store.stop_arm(name, arm, actor, reason)
    return {"experiment": store.get(name).to_dict(state.served.recommender.clock())}


@router.get("/v1/impression-keys", responses=ERRORS)
def impression_keys(state: State) -> dict[str, Any]:
    """The site's impression keys, newest first: their ids and dates (never the key itself), which one signs,
    and until when each replaced one still verifies ids."""
    state.experiments.store.sync()
    return {"keys": [key.to_dict() for key in state.experiments.store.keys]}


@router.post("/v1/impression-keys", status_code=201, responses=ERRORS)
def rotate_impression_key(state: State, revoke: bool = Query(False, description="Drop every older key now (a key "
                                                                               "that leaked): the ids it signed are "
                                                                               "no longer credited."),
                          actor: str = ACTOR, reason: str = REASON) -> dict[str, Any]:
    """Make a new impression key (logged). Every worker of every replica signs with it from its next live-state
    poll; the replaced key still verifies ids as long as a click on them is credited, plus an hour. A 409 when
    another rotation made a key at the same moment."""
    store = state.experiments.store
    try:
        made = store.rotate_key(actor, reason, revoke=revoke)
    except RotationConflictError as exc:
        raise ApiError(409, "rotation_conflict", str(exc)) from None
    return {"key": made.to_dict(), "keys": [key.to_dict() for key in store.keys]}
