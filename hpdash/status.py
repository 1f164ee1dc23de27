"""A study's status, and what pages and commands read of a study, without the fitting code.

``hpdash list``, ``hpdash show``, the Studies table and the live headers need a study's state,
progress, workers and refit record, not scikit-learn: this module imports Optuna and the trial
readers only, so those commands start without loading the modelling stack. ``hpdash.runner``
(which writes these records) re-exports every name here.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from hpdash import attrs as study_attrs
from hpdash import config, results
from hpdash.errors import SpecError, StudyNotFoundError
from hpdash.progress import StudyProgress
from hpdash.spec import StudySpec, parse_spec
from hpdash.storage import open_storage, open_study_storage

BUDGET_ATTR = study_attrs.BUDGET
DATASET_ATTR = study_attrs.DATASET
ERROR_ATTR = study_attrs.ERROR
REFIT_ATTR = study_attrs.REFIT
STARTED_ATTR = study_attrs.STARTED
STATE_ATTR = study_attrs.STATE
SPEC_ATTR = study_attrs.SPEC
WORKER_PREFIX = study_attrs.WORKER_PREFIX
#: A worker whose last beat is older than this is lost (it beats every few seconds).
WORKER_LOST_SECONDS = 30


def _now() -> float:
    return time.time()


def load_study(name: str, storage: str | None = None, *, store: Any = None, **storage_kwargs: Any) -> optuna.Study:
    """Load a study by name, with a clear error when it does not exist. ``store``: a storage
    this process already opened on ``storage`` (otherwise one is opened, without heartbeats;
    a ``grpc://`` proxy URL works too)."""
    if store is None:
        store = open_study_storage(storage, **{"heartbeat": False, **storage_kwargs})
    try:
        return optuna.load_study(study_name=name, storage=store)
    except KeyError as exc:
        raise StudyNotFoundError(
            f"No study named {name!r} in {config.storage_url(storage)}. It may have been deleted."
        ) from exc


def failure_reasons(study: optuna.Study) -> list[tuple[str, int]]:
    """The FAIL trials' reasons with their counts, commonest first (``"failed (no reason
    recorded)"`` for a trial without one)."""
    tally: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        reason = t.user_attrs.get("fail_reason")
        key = str(reason) if reason else "failed (no reason recorded)"
        tally[key] = tally.get(key, 0) + 1
    return sorted(tally.items(), key=lambda item: (-item[1], item[0]))


class _UserAttrs(Protocol):
    """What ``workers_of`` reads of a study: an ``optuna.Study``, or any object holding the
    user attrs of one already read."""

    @property
    def user_attrs(self) -> Mapping[str, Any]: ...


def workers_of(study: _UserAttrs) -> list[dict[str, Any]]:
    """The workers that have run this study, with an ``alive`` flag from their last beat."""
    now = _now()
    out = []
    for key, info in study.user_attrs.items():
        if key.startswith(WORKER_PREFIX) and isinstance(info, dict):
            alive = "ended" not in info and now - float(info.get("last_seen", 0)) < WORKER_LOST_SECONDS
            if alive and info.get("host") == socket.gethostname():
                alive = _pid_alive(int(info["pid"]))
            out.append({**info, "alive": alive})
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


@dataclass
class StudyStatus:
    """What the progress header and the studies table show."""

    name: str
    state: str  # created | running | finished | stopped | failed | worker lost
    done: int  # finished trials (COMPLETE, PRUNED, FAIL)
    complete: int
    running: int
    budget: int | None
    best_value: float | None
    workers_alive: int
    started_at: float | None
    elapsed_s: float | None
    eta_s: float | None
    error: str | None

    @property
    def fraction(self) -> float:
        if self.budget:
            return min(1.0, self.done / self.budget)
        return 1.0 if self.state == "finished" else 0.0


def study_status(study: optuna.Study, cache: results.TrialsCache | None = None) -> StudyStatus:
    """Progress of a study, derived from its trials and worker beats.

    With ``cache`` (a ``results.TrialsCache`` of this study, refreshed by the caller) the trial
    counts come from its frame (``TrialsCache.progress``), so a live poll reads only what
    changed; without it, from aggregate queries over the study. Both give the same status.
    """
    attrs = study.user_attrs
    # A poll with a cache costs the changed trials; aggregate queries cost the study's size.
    progress = cache.progress() if cache is not None else results.study_progress(study)
    return status_from(study.study_name, attrs, progress)


def status_from(name: str, attrs: Mapping[str, Any], progress: StudyProgress) -> StudyStatus:
    """A study's status from its user attrs and its ``StudyProgress`` (from
    ``results.study_progress``, or ``results.progress_of_studies`` for a table of every study)."""
    holder = _Attrs(attrs)
    running, waiting = progress.n_running, progress.n_waiting
    # A FAIL trial that was given a new slot (stale heartbeat or a stop) does not use budget.
    done = progress.n_done
    budget = attrs.get(BUDGET_ATTR)
    workers_alive = sum(w["alive"] for w in workers_of(holder))
    state = attrs.get(STATE_ATTR, "created")
    started_at = attrs.get(STARTED_ATTR)
    if state == "running" and workers_alive == 0 and not _starting_up(holder, started_at):
        state = "finished" if budget is not None and waiting == 0 and running == 0 else "worker lost"
    best = progress.best_value
    first, last = progress.first_start, progress.last_complete
    elapsed = None
    if first is not None:
        end = last if state != "running" and last is not None else datetime.now(UTC)
        elapsed = max(0.0, (end - first).total_seconds())
    eta = None
    if state == "running" and budget and done and elapsed:
        eta = elapsed / done * max(0, budget - done)
    return StudyStatus(
        name=name,
        state=state,
        done=done,
        complete=progress.n_complete,
        running=running,
        budget=budget,
        best_value=best,
        workers_alive=workers_alive,
        started_at=float(started_at) if started_at else None,
        elapsed_s=elapsed,
        eta_s=eta,
        error=attrs.get(ERROR_ATTR),
    )


@dataclass(frozen=True)
class _Attrs:
    """User attrs already read, in the shape ``workers_of`` takes."""

    user_attrs: Mapping[str, Any]


def _starting_up(study: _UserAttrs, started_at: Any) -> bool:
    """Workers take a few seconds to import and register after ``launch_workers``: within
    ``WORKER_LOST_SECONDS`` of a launch, no beat yet means "starting", not "worker lost"."""
    if started_at is None or _now() - float(started_at) >= WORKER_LOST_SECONDS:
        return False
    # Once a worker of this launch has registered, its beats (or their absence) decide.
    return not any(float(w.get("started", 0)) >= float(started_at) for w in workers_of(study))


def refit_info(study: optuna.Study) -> dict[str, Any] | None:
    """The stored refit record, or None."""
    info = study.user_attrs.get(REFIT_ATTR)
    return info if info and "holdout_score" in info else None


def refit_error(study: optuna.Study) -> str | None:
    """Why the automatic refit failed, or None."""
    error = (study.user_attrs.get(REFIT_ATTR) or {}).get("error")
    return str(error) if error else None


def dataset_of(study: optuna.Study) -> str | None:
    """The stored dataset (SHA-256) a study runs on, or None for a study hpdash did not create."""
    sha = study.user_attrs.get(DATASET_ATTR)
    return str(sha) if sha else None


def metric_of(study: optuna.Study) -> str | None:
    """The metric a study is scored with (``hpdash.attrs.metric_of``)."""
    return study_attrs.metric_of(study.user_attrs)


def load_spec_of(study: optuna.Study) -> StudySpec:
    """The spec stored on a study."""
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise SpecError(f"Study {study.study_name!r} was not created by hpdash (it has no spec).")
    return parse_spec(raw)


def statuses(storage: str | None = None) -> list[tuple[str, dict[str, Any], StudyStatus]]:
    """(name, stored spec, status) of every study of a storage, by name: a few grouped queries
    on an RDB storage (``results.progress_of_studies``), study by study otherwise."""
    store = open_storage(storage, heartbeat=False)
    progress = results.progress_of_studies(store)
    out = []
    for frozen in sorted(store.get_all_studies(), key=lambda s: s.study_name):
        attrs = frozen.user_attrs
        if progress is not None and frozen.study_name in progress:
            status = status_from(frozen.study_name, attrs, progress[frozen.study_name])
        else:
            status = study_status(load_study(frozen.study_name, storage, store=store))
        out.append((frozen.study_name, study_attrs.spec_of(attrs), status))
    return out
