"""Create, launch, stop, resume and refit studies; the worker process loop.

A study is an ordinary Optuna study. Its spec lives in the study's user attrs, so a worker on
any machine needs only the study name and the storage URL. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from hpdash import access, audit, config, datasets, export_model, models, objective, space, strategies
from hpdash import attrs as study_attrs
from hpdash.datasets.stored import fetch_dataset, upload_dataset
from hpdash.errors import DatasetError, HpdashError, SpecError
from hpdash.spec import StudySpec, check_name

# Re-exported: callers read a study's status through runner too.
from hpdash.status import (  # noqa: F401
    WORKER_LOST_SECONDS,
    StudyStatus,
    _now,
    _pid_alive,
    _starting_up,
    _UserAttrs,
    dataset_of,
    failure_reasons,
    load_spec_of,
    load_study,
    metric_of,
    refit_error,
    refit_info,
    status_from,
    study_status,
    workers_of,
)
from hpdash.storage import (
    BudgetExhausted,
    WorkerStudy,
    claim_study_user_attr,
    create_budgeted_study,
    heartbeat_interval,
    open_storage,
    open_study_storage,
    set_study_user_attr_unless,
    taken_over,
)

# The study user attrs (hpdash/attrs.py), by the names the rest of this module uses.
SPEC_ATTR = study_attrs.SPEC
DATASET_ATTR = study_attrs.DATASET
STATE_ATTR = study_attrs.STATE
STOP_ATTR = study_attrs.STOP
BUDGET_ATTR = study_attrs.BUDGET
STARTED_ATTR = study_attrs.STARTED
REFIT_ATTR = study_attrs.REFIT
GRID_ATTR = study_attrs.GRID
ERROR_ATTR = study_attrs.ERROR
WORKER_PREFIX = study_attrs.WORKER_PREFIX
WORKER_BEAT_SECONDS = 5
_SHA256 = re.compile(r"[0-9a-f]{64}")  # a stored dataset's name in the content-addressed store

log = logging.getLogger("hpdash")


# --------------------------------------------------------------------------------------------
# Planning: turn a spec into everything a worker needs, checking it all before anything runs.
# --------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """A validated spec with its data, task, metric and concrete search spaces.

    ``split`` is the holdout split of the evaluation protocol (X_train, X_test, y_train,
    y_test), made and checked by :func:`plan_study`, so a worker given this plan
    (:meth:`problem`) fits exactly what was checked.
    """

    spec: StudySpec
    prepared: datasets.PreparedData
    spaces: dict[str, space.SearchSpace]
    metric: str
    dataset_sha256: str | None
    split: tuple[Any, Any, Any, Any] | None = None

    @property
    def task(self) -> str:
        return self.prepared.task

    def grid(self) -> list[dict[str, Any]]:
        return space.grid_points(self.spaces, self.spec.grid_points)

    def problem(self) -> objective.Problem:
        """The worker's view of this plan: the holdout split and the CV folds of its
        training part, computed once."""
        spec, prepared = self.spec, self.prepared
        X_train, X_test, y_train, y_test = self.split or _holdout(spec, prepared)
        cv = objective.make_cv(prepared.task, spec.folds, spec.repeats, spec.split_seed)
        try:
            splits = list(cv.split(X_train, y_train))
        except ValueError as exc:  # plan_study checked the sizes; this is scikit-learn's word
            raise DatasetError(f"Cannot make {spec.folds} CV folds from the training part: {exc}") from exc
        return objective.Problem(
            task=prepared.task,
            metric=self.metric,
            X_train=X_train,
            y_train=y_train,
            X_test=X_test,
            y_test=y_test,
            numeric=prepared.numeric,
            categorical=prepared.categorical,
            splits=splits,
            seed=spec.split_seed,
            spaces=self.spaces,
            pos_label=spec.pos_label,
        )


def resolve_spaces(spec: StudySpec, task: str) -> dict[str, space.SearchSpace]:
    """Model key -> validated search space (registry defaults where the spec gives none)."""
    keys = spec.models
    for key in keys:
        models.estimator_class(key, task)  # SpecError when the task cannot use it
    raw = spec.space or {}
    if len(keys) > 1 and raw and not set(raw) <= set(keys):
        raise SpecError(
            "With several models, 'space' maps each model key to its own hyperparameters, "
            f"e.g. space: {{{keys[0]}: {{...}}}}. Unknown keys: {', '.join(sorted(set(raw) - set(keys)))}."
        )
    spaces: dict[str, space.SearchSpace] = {}
    for key in keys:
        given = raw.get(key) if len(keys) > 1 else raw
        parsed = models.parse_model_space(key, task, given or None)
        if not parsed:
            raise SpecError(f"The search space of {key} is empty: give at least one hyperparameter.")
        spaces[key] = parsed
    return spaces


def plan_study(spec: StudySpec, data: Any = None) -> Plan:
    """Load and check the dataset, the models, the space, the metric, the strategy, the
    budget, and the evaluation protocol on the real data: the holdout split and the CV folds
    of its training part (``check_protocol``), so a study that cannot be evaluated is refused
    here, before any worker starts, not by its workers.

    ``data`` may carry an already loaded frame (the UI has it) to avoid reading twice.
    """
    strategies.check_strategy(spec.strategy)
    check_budget(spec.n_trials)
    frame, sha = data if data is not None else datasets.load_dataset(spec.dataset)
    prepared = datasets.prepare(frame, spec.target, task=spec.task, folds=spec.folds, keep_columns=spec.keep_columns)
    spaces = resolve_spaces(spec, prepared.task)
    # The metric with the target and the models together: the task, two-class metrics, the
    # positive class, and the probabilities or decision scores the scorer needs.
    metric = objective.check_metric(spec.metric, prepared.task, prepared.y, spaces, spec.pos_label)
    plan = Plan(spec, prepared, spaces, metric, sha)
    if spec.strategy == "grid":
        size = space.total_grid_size(spaces, spec.grid_points)
        space.check_grid_size(size, detail=space.grid_size_detail(spaces, spec.grid_points))
        check_budget(size if spec.n_trials is None else min(spec.n_trials, size))
    plan.split = check_protocol(spec, prepared)
    plan.spaces = fit_default_spaces(spec, plan)
    return plan


def fit_default_spaces(spec: StudySpec, plan: Plan) -> dict[str, space.SearchSpace]:
    """The plan's spaces, with a registry default that the table cannot run cut to fit it:
    a row-bounded hyperparameter (k-NN's ``n_neighbors``, up to 50 by default) gets the rows
    the smallest CV fold trains on as its upper end. A space the spec gives is left as it is
    (``objective.smoke_check`` refuses it, saying what to lower)."""
    raw = spec.space or {}
    bounded = {
        key: models.get_family(key).row_bounded
        for key in plan.spaces
        if not (raw.get(key) if len(spec.models) > 1 else raw)
    }
    bounded = {key: names for key, names in bounded.items() if names}
    if not bounded or plan.split is None:
        return plan.spaces
    X_train, _, y_train, _ = plan.split
    cv = objective.make_cv(plan.prepared.task, spec.folds, spec.repeats, spec.split_seed)
    fold_rows = min(len(train) for train, _ in cv.split(X_train, y_train))
    spaces = dict(plan.spaces)
    for key, names in bounded.items():
        changed = dict(spaces[key])
        for name in names:
            hp = changed.get(name)
            if hp is None or hp.type != "int":
                continue
            low, high = hp.bounds()
            if high > fold_rows >= low:
                changed[name] = dataclasses.replace(hp, high=fold_rows)
        spaces[key] = changed
    return spaces


def check_budget(n_trials: int | None) -> None:
    """SpecError when a study's trial budget is over ``config.max_trials()`` (every trial is
    a slot row written when the study is created, and a cross-validated fit)."""
    limit = config.max_trials()
    if n_trials is not None and n_trials > limit:
        raise SpecError(
            f"The budget is {n_trials:,} trials, more than the limit of {limit:,} trials per study "
            f"(HPDASH_MAX_TRIALS). Ask for {limit:,} or fewer (a time budget, 'timeout', can "
            "bound a long search instead), or raise HPDASH_MAX_TRIALS."
        )


def _holdout(spec: StudySpec, prepared: datasets.PreparedData) -> tuple[Any, Any, Any, Any]:
    return objective.holdout_split(prepared.X, prepared.y, prepared.task, spec.test_size, spec.split_seed)


def check_protocol(spec: StudySpec, prepared: datasets.PreparedData) -> tuple[Any, Any, Any, Any]:
    """Make the holdout split and check that the CV splitter can cut its training part;
    returns the split (X_train, X_test, y_train, y_test), or raises SpecError naming the sizes
    and the fix.

    Classification: the stratified holdout needs a row of every class on each side, and
    every class needs at least ``folds`` rows in the training part, so that every CV fold
    tests every class (``datasets.prepare`` asks the same of the whole table; the holdout
    takes its share first). Regression: the training part needs at least ``folds`` rows.
    """
    n = len(prepared.y)
    folds, test_size = spec.folds, spec.test_size
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    fixes = "use fewer CV folds ('cv: {folds: N}'), a smaller test_size, or a table with more rows"
    if prepared.task == "classification":
        counts = prepared.y.astype(str).value_counts()
        k = len(counts)
        if n_test < k:
            smallest = math.ceil(100 * k / n) / 100
            raise SpecError(
                f"The holdout of test_size {test_size:g} is {n_test} row(s) of {n}, fewer than the "
                f"{k} classes of the target {spec.target!r}: the stratified holdout needs a row "
                f"of every class. Use a test_size of at least {smallest:g}, or a table with more rows."
            )
        if n_train < k:
            raise SpecError(
                f"The training part left by test_size {test_size:g} is {n_train} row(s) of {n}, "
                f"fewer than the {k} classes of the target {spec.target!r}. Use a smaller test_size."
            )
    elif n_train < folds:
        raise SpecError(
            f"The training part left by test_size {test_size:g} is {n_train} row(s) of {n}, too "
            f"few for {folds} CV folds: {fixes}."
        )
    split = _holdout(spec, prepared)
    if prepared.task == "classification":
        train_counts = split[2].astype(str).value_counts()
        rare = train_counts[train_counts < folds]
        if len(rare):
            listed = ", ".join(f"{c!r} ({m} row{'s' if m != 1 else ''})" for c, m in rare.head(5).items())
            more = f" and {len(rare) - 5} more" if len(rare) > 5 else ""
            most = int(train_counts.min())
            fewer = f"use at most {most} CV folds, " if most >= 2 else ""
            which = "class" if len(rare) == 1 else "classes"
            has = "has" if len(rare) == 1 else "have"
            raise SpecError(
                f"After the holdout (test_size {test_size:g}), {which} {listed}{more} of the target "
                f"{spec.target!r} {has} fewer rows in the training part than the {folds} CV folds, "
                "so some folds would not test it (StratifiedKFold needs every class in every "
                f"fold): {fewer}use a smaller test_size, or add rows of {'that class' if len(rare) == 1 else 'those classes'}."
            )
    return split


def stored_dataset_ref(dataset: Any, dataset_sha256: Any) -> str:
    """The dataset reference a stored study may load: its recorded SHA-256 (a file in the
    data directory's content-addressed store), else a bundled ``sklearn:NAME`` sample or a
    stored dataset's SHA-256 given as the spec's dataset. Raises DatasetError otherwise.

    A stored study is data anyone with the storage URL can write, so it never names a file
    to read: a spec whose dataset is a path, with no recorded SHA-256, is refused (CLI specs
    name paths; ``create_study`` stores such a file and records its SHA-256).
    """
    if dataset_sha256 is not None:
        sha = str(dataset_sha256).strip().lower()
        if not _SHA256.fullmatch(sha):
            raise DatasetError(
                f"The study's recorded dataset SHA-256 ({DATASET_ATTR}) is {str(dataset_sha256)[:80]!r}, "
                "which is not a SHA-256, so no dataset was read. Create the study again from its spec."
            )
        return sha
    ref = str(dataset or "").strip()
    if ref.startswith("sklearn:") or _SHA256.fullmatch(ref.lower()):
        return ref if ref.startswith("sklearn:") else ref.lower()
    raise DatasetError(
        f"The study's dataset is the file path {ref[:200]!r} with no recorded SHA-256 ({DATASET_ATTR}), "
        "so it was not read: a stored study loads only a bundled sklearn:NAME sample or a dataset "
        f"stored in {config.datasets_dir()} by its SHA-256. Store the file (Datasets page, or "
        "create the study from its spec with `hpdash run`, which stores it) and create the study again."
    )


def load_problem(spec: StudySpec, dataset_sha256: str | None, dataset_artifact: Any = None) -> objective.Problem:
    """Build the worker's view of the data: prepared table, holdout split and CV folds.

    The dataset is a bundled sample or a stored dataset read by its SHA-256 from the data
    directory (``stored_dataset_ref``), and the bytes are verified; never a path from the spec.
    A stored dataset missing here is fetched from the team's artifact store by the study's
    ``dataset_artifact`` record (``attrs.DATASET_ARTIFACT``), verified, and kept here.
    """
    ref = stored_dataset_ref(spec.dataset, dataset_sha256)
    expected = None if ref.startswith("sklearn:") else ref
    if expected is not None and dataset_artifact is not None:
        fetch_dataset(expected, dataset_artifact)
    return plan_study(spec, data=datasets.load_dataset(ref, expected_sha256=expected)).problem()


# --------------------------------------------------------------------------------------------
# Creating a study
# --------------------------------------------------------------------------------------------
def study_exists(name: str, storage: str | None = None) -> bool:
    """Whether a study of that name is in the storage."""
    names = optuna.get_all_study_names(storage=open_storage(storage, heartbeat=False))
    return name in names


def _ingest_dataset(spec: StudySpec, checked_sha256: str | None = None) -> str | None:
    """Store a dataset given by path in the content-addressed store; return its SHA-256.

    ``checked_sha256``: the SHA-256 of bytes a plan already prepared with this spec; bytes
    with that hash are stored without preparing them again."""
    ref = spec.dataset
    if ref.startswith("sklearn:"):
        return None
    if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
        if fetch_dataset(ref) is None:  # here, or in the team's artifact store
            raise DatasetError(f"No stored dataset has SHA-256 {ref}. Upload it again.")
        return ref
    path = Path(ref)
    if not path.is_file():
        raise DatasetError(f"Dataset file not found: {ref}")
    data = path.read_bytes()
    checked = checked_sha256 is not None and datasets.sha256_bytes(data) == checked_sha256
    stored = datasets.store_dataset(
        data,
        path.name,
        target=None if checked else spec.target,
        task=spec.task,
        folds=spec.folds,
        keep_columns=spec.keep_columns,
    )
    return stored.sha256


def create_study(spec: StudySpec, storage: str | None = None, *, plan: Plan | None = None) -> optuna.Study:
    """Validate ``spec``, store its dataset, create the Optuna study and its budget slots.

    ``plan``: ``plan_study(spec)`` made by the caller (the CLI plans, then checks, then
    creates); it is used when the stored dataset is the one it was made from, so the data
    are not read and checked twice. The study row, its user attrs and its budget slots are
    written in one transaction (``storage.create_budgeted_study``): a crash part way leaves
    no study, never one without its budget.
    """
    access.require_writable("create a study")
    check_name(spec.name)
    store = open_storage(storage, heartbeat=False)  # one storage for the check and the creation
    if spec.name in optuna.get_all_study_names(storage=store):
        raise SpecError(f"A study named {spec.name!r} already exists. Pick another name, or resume that study.")
    planned = plan if plan is not None and plan.spec == spec else None
    sha = _ingest_dataset(spec, planned.dataset_sha256 if planned is not None else None)
    if planned is None or planned.dataset_sha256 != sha:
        planned = plan_study(spec, data=datasets.load_dataset(sha or spec.dataset))
    plan = planned
    budget_attrs, slots = _budget_slots(plan)
    warm: dict[str, Any] | None = None
    if spec.warm_start is not None:
        warm, seeds = warm_start_points(plan, sha, store)
        slots = _seeded_slots(slots, seeds)
    user_attrs = {
        SPEC_ATTR: spec.to_dict(),
        DATASET_ATTR: sha,
        study_attrs.TASK: plan.task,
        study_attrs.METRIC: plan.metric,
        study_attrs.SPACE: {k: space.space_to_dict(s) for k, s in plan.spaces.items()},
        study_attrs.CREATED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        STATE_ATTR: "created",
        strategies.SAMPLER_ATTR: strategies.sampler_record(spec),
        **budget_attrs,
        **({study_attrs.WARM_START: warm} if warm is not None else {}),
    }
    try:
        study = create_budgeted_study(
            store,
            spec.name,
            "maximize",  # scikit-learn scorers are "greater is better"
            user_attrs,
            slots,
            sampler=strategies.make_sampler(spec.strategy, spec.sampler_seed),
            pruner=strategies.make_pruner(spec.pruner, spec.folds * spec.repeats),
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise SpecError(
            f"A study named {spec.name!r} already exists. Pick another name, or resume that study."
        ) from None
    if sha is not None:
        _share_dataset(study, sha, store)
    audit.record("create study", study=spec.name, detail=f"{spec.model} by {spec.strategy}", url=storage)
    return study


def warm_start_points(plan: Plan, sha: str | None, storage: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The params of the best ``warm_start.trials`` COMPLETE trials of the spec's past study,
    best first, that lie inside the plan's space, with the record of what was taken and what
    was skipped (and why). Refused (``SpecError``) when the past study is missing or was on
    another dataset or model: its scores would say nothing about this study's."""
    spec = plan.spec
    assert spec.warm_start is not None
    source = spec.warm_start["study"]
    try:
        past = optuna.load_study(study_name=source, storage=storage)
    except KeyError:
        raise SpecError(
            f"warm_start: no study named {source!r}. Pick a finished study on the same dataset and model."
        ) from None
    past_attrs = past.user_attrs
    past_spec = past_attrs.get(SPEC_ATTR) or {}
    if past_attrs.get(DATASET_ATTR) != sha or (sha is None and past_spec.get("dataset") != spec.dataset):
        raise SpecError(f"warm_start: study {source!r} ran on another dataset; its scores do not carry over.")
    if past_spec.get("model") != spec.model or past_spec.get("target") != spec.target:
        raise SpecError(
            f"warm_start: study {source!r} tuned {past_spec.get('model')!r} for target {past_spec.get('target')!r}, "
            f"not {spec.model!r} for {spec.target!r}; warm starts need the same model and target."
        )
    if len(plan.spaces) != 1:
        raise SpecError("warm_start: algorithm selection studies cannot be warm-started yet; tune one model.")
    (hps,) = plan.spaces.values()
    complete = [t for t in past.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    best = sorted(complete, key=lambda t: (-float(t.value or 0.0), t.number))
    taken: list[int] = []
    skipped: list[dict[str, Any]] = []
    seeds: list[dict[str, Any]] = []
    wanted = int(spec.warm_start["trials"])
    for trial in best:
        if len(seeds) == wanted:
            break
        reason = _outside(trial.params, hps)
        if reason:
            skipped.append({"number": trial.number, "reason": reason})
            continue
        seeds.append({name: value for name, value in trial.params.items() if name in hps})
        taken.append(trial.number)
    if not seeds:
        raise SpecError(
            f"warm_start: none of the best trials of {source!r} lies inside this study's search space "
            f"({'; '.join(s['reason'] for s in skipped[:3]) or 'it has no complete trial'}). Widen the space or start cold."
        )
    record = {"study": source, "trials": taken, "skipped": skipped, "asked": wanted}
    return record, seeds


def _outside(params: dict[str, Any], hps: space.SearchSpace) -> str | None:
    """Why a past trial's params cannot be run in the space ``hps`` (None if they can)."""
    for name, value in params.items():
        hp = hps.get(name)
        if hp is None:
            continue  # a hyperparameter this study fixes or leaves at its default
        if hp.type == "categorical":
            if value not in (hp.choices or ()):
                return f"{name}={value!r} is not among the choices"
        elif hp.low is not None and hp.high is not None and not hp.low <= value <= hp.high:
            return f"{name}={value!r} is outside {hp.low}..{hp.high}"
    return None


def _seeded_slots(slots: list[dict[str, Any]], seeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The budget slots with the first ones running ``seeds`` (what ``enqueue_trial`` stores):
    the seeded trials count in the budget. A time budget alone (no slots) gets them added."""
    seeded = [{"fixed_params": params, "hpdash_slot": True} for params in seeds]
    if not slots:
        return seeded
    return seeded[: len(slots)] + slots[len(seeded) :]


def _share_dataset(study: optuna.Study, sha: str, store: Any) -> None:
    """Put the study's stored dataset in the team's artifact store and record where
    (``attrs.DATASET_ARTIFACT``), so a worker on any machine fetches it. A study whose
    dataset cannot be shared is deleted again: it exists whole or not at all."""
    try:
        study.set_user_attr(study_attrs.DATASET_ARTIFACT, upload_dataset(study, sha))
    except BaseException:
        optuna.delete_study(study_name=study.study_name, storage=store)
        raise


def _budget_slots(plan: Plan) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The budget as study user attrs and WAITING trials' system attrs ("slots"): a grid gets
    one slot per grid point in a recorded order, a trial budget one plain slot per trial, and
    a time budget alone none (workers then create trials freely)."""
    spec = plan.spec
    if spec.strategy == "grid":
        points = plan.grid()
        # Optuna's GridSampler visits points in random order; hpdash shuffles with the study's
        # sampler seed (the search's luck, not the data's), so the order is reproducible, and
        # a budget below the grid size is a seeded random subset of the grid.
        order = np.random.default_rng(spec.sampler_seed).permutation(len(points))
        budget = len(points) if spec.n_trials is None else min(spec.n_trials, len(points))
        # What study.enqueue_trial(point) stores for each point.
        slots = [{"fixed_params": points[int(i)]} for i in order[:budget]]
        grid = {
            "grid_size": len(points),
            "budget": budget,
            "order": "seeded random permutation",
            "cut": budget < len(points),
        }
        return {GRID_ATTR: grid, BUDGET_ATTR: budget}, slots
    if spec.n_trials is None:
        return {BUDGET_ATTR: None}, []
    return {BUDGET_ATTR: spec.n_trials}, [{"hpdash_slot": True}] * spec.n_trials


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------
def _worker_name() -> str:
    """The ``worker`` user attr of the trials this process runs: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_key() -> str:
    return f"{WORKER_PREFIX}{socket.gethostname()}.{os.getpid()}"


def run_worker(
    name: str,
    storage: str | None = None,
    worker_index: int = 0,
    *,
    stop_event: threading.Event | None = None,
    progress: Callable[[], None] | None = None,
    problem: objective.Problem | None = None,
) -> int:
    """Run trials of study ``name`` until the budget is spent, time is up or a stop is asked.

    Returns the number of trials this worker finished. Installs a SIGTERM handler (in the
    main thread): the current trial stops at its next fold boundary and its slot is given
    back. A study whose first ``fail_fast_trials`` trials all fail is stopped as ``failed``
    with the commonest reason in ``hpdash.error`` (see ``fail_fast_verdict``).

    For a worker that runs in its caller's process (``run_here``): ``stop_event`` is the
    caller's stop (Ctrl-C sets it); when it was set, the stop flag is written as
    ``stop_study`` writes it, so the study ends ``stopped`` and resumes where it stopped.
    ``progress`` is called after each trial, in this thread. ``problem``: the caller's
    ``plan_study(spec).problem()`` for this study, instead of loading the data again.
    """
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _install_trial_log_filter()
    store = open_study_storage(storage)  # one storage for the whole worker (a database or a proxy)
    plain = load_study(name, storage, store=store)
    spec = load_spec_of(plain)
    budgeted = plain.user_attrs.get(BUDGET_ATTR) is not None
    store.budgeted = budgeted
    study = WorkerStudy(
        study_name=name,
        storage=store,
        # Each worker gets its own seed stream (derived from the study seed and the worker
        # index), or parallel workers would repeat points, and the study's start-up trials.
        sampler=strategies.sampler_for(spec, worker_index),
        pruner=strategies.make_pruner(spec.pruner, spec.folds * spec.repeats),
    )
    study.claim_attrs = {"worker": _worker_name()}
    user_stop = stop_event
    stop_event = stop_event or threading.Event()
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():
        previous_sigterm = signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    key = _worker_key()
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "index": worker_index,
        "started": _now(),
        "last_seen": _now(),
        "status": "running",
        **config.dask_worker_record(),  # the Dask worker it runs on, when hpdash.cluster started it
    }
    study.set_user_attr(key, info)
    beat_stop = threading.Event()

    def beat() -> None:
        while not beat_stop.wait(WORKER_BEAT_SECONDS):
            try:
                study.set_user_attr(key, {**info, "last_seen": _now()})
                if study.user_attrs.get(STOP_ATTR):
                    stop_event.set()
            except Exception as exc:  # a missed beat is harmless; the next one retries
                log.debug("Worker beat of %s not written (the next one retries): %s", name, exc)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    count = _TrialCount()
    budget = plain.user_attrs.get(BUDGET_ATTR)
    fail_fast = _FailFast(fail_fast_trials(budget))

    def counted(func: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
        """Count this worker's trials, stop after one when a stop was asked, and stop the
        study when its first trials all failed. Done in the objective, not in an Optuna
        callback: Optuna re-reads each finished trial from the storage for its callbacks (one
        read a trial we do not need)."""

        def run(trial: optuna.Trial) -> float:
            count.current = trial
            failure: str | None = None
            try:
                return func(trial)
            except (optuna.TrialPruned, objective.StopRequested):
                raise
            except Exception as exc:
                failure = str(trial.user_attrs.get("fail_reason") or f"{type(exc).__name__}: {exc}")
                raise
            finally:
                count.done += 1
                if failure is not None and fail_fast.check(study, trial.number, failure):
                    info["status"] = "failed"
                    study.stop()
                # The beat thread reads the stop flag every WORKER_BEAT_SECONDS (and SIGTERM
                # sets the event at once): no storage read per trial here.
                if stop_event.is_set():
                    study.stop()
                if progress is not None:
                    progress()

        return run

    trial_objective: objective.Objective | None = None
    try:
        if problem is None:
            problem = load_problem(
                spec, plain.user_attrs.get(DATASET_ATTR), plain.user_attrs.get(study_attrs.DATASET_ARTIFACT)
            )
        started = float(plain.user_attrs.get(STARTED_ATTR) or _now())
        timeout = None if spec.timeout is None else max(0.0, spec.timeout - (_now() - started))
        if timeout == 0.0:
            return 0
        # With a trial_timeout each trial's CV runs in a child process killed at the limit.
        trial_objective = objective.make_objective(
            problem, stop_event, spec.trial_timeout, predictions=objective.prediction_store(spec)
        )
        _optimize_until_no_work(
            study,
            counted(_with_slot_return(study, trial_objective)),
            timeout=timeout,
            stop_event=stop_event,
            budgeted=budgeted,
            count=count,
        )
        if info["status"] != "failed":
            info["status"] = "stopped" if stop_event.is_set() else "done"
    except Exception as exc:
        info["status"] = "failed"
        message = str(exc) if isinstance(exc, HpdashError) else f"{type(exc).__name__}: {exc}"
        # One conditional write: a study another worker already finished stays finished.
        if not set_study_user_attr_unless(
            study, STATE_ATTR, "failed", unless=("finished",), extra={ERROR_ATTR: message}
        ):
            log.warning("Study %s is already finished, so this worker's error is not recorded on it: %s", name, message)
        raise
    finally:
        if trial_objective is not None:
            trial_objective.close()  # ends the trials' child process, if it has one
        beat_stop.set()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        record = {**info, "trials": count.done, "last_seen": _now(), "ended": _now()}
        if count.dropped:
            record["dropped"] = count.dropped
        study.set_user_attr(key, record)
        if user_stop is not None and user_stop.is_set() and not study.user_attrs.get(STOP_ATTR):
            study.set_user_attr(STOP_ATTR, True)  # the caller's stop, recorded as stop_study does
        _settle_state(study, problem)
    return count.done


class _TrialLogFilter(logging.Filter):
    """Drops Optuna's "Trial N failed ..." warnings (with their traceback) for a trial the
    user stopped (``objective.StopRequested``): a stop is no error, its slot is given back
    (``_with_slot_return``) and the trial's ``fail_reason`` says so. Warnings of trials that
    really failed pass, without the traceback for an ``objective.TrialError`` (a time limit,
    an error in the trials' child process): its message is the whole reason, and the
    traceback would only show hpdash's own frames.

    Optuna logs two records for a failed trial (``optuna.study._optimize._log_failed_trial``):
    the error with its ``exc_info``, then "Trial N failed with value ...", which has none and
    is recognised by its trial number.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stopped: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if isinstance(exc, objective.StopRequested):
            number = re.match(r"Trial (\d+) ", message)
            if number:
                self._stopped.add(int(number.group(1)))
            return False
        if isinstance(exc, objective.TrialError):
            record.exc_info, record.exc_text = None, None
            return True
        number = re.match(r"Trial (\d+) failed with value ", message)
        if number and int(number.group(1)) in self._stopped:
            self._stopped.discard(int(number.group(1)))
            return False
        return True


#: The logger of Optuna's trial loop, which reports failed trials.
_OPTIMIZE_LOGGER = "optuna.study._optimize"


def _install_trial_log_filter() -> None:
    """Install ``_TrialLogFilter`` on Optuna's trial-loop logger, once per process (a filter
    on a logger applies to the records created on it)."""
    logger = logging.getLogger(_OPTIMIZE_LOGGER)
    if not any(isinstance(f, _TrialLogFilter) for f in logger.filters):
        logger.addFilter(_TrialLogFilter())


#: A study stops as ``failed`` when this many of its first trials (or its whole budget, if
#: smaller) all failed: enough to see that the failure is the setup's, not one unlucky
#: combination's (an algorithm-selection study of 4 models gives each about 2 tries).
FAIL_FAST_TRIALS = 10
#: What a trial stopped by the user is failed with; its slot is given back, so it is no
#: failure of the setup.
STOPPED_REASON = "stopped by the user before it finished; resume runs it again"


def fail_fast_trials(budget: int | None) -> int:
    """How many first trials must all fail to stop a study: ``min(10, budget)``."""
    return FAIL_FAST_TRIALS if budget is None else max(1, min(FAIL_FAST_TRIALS, int(budget)))


def fail_fast_verdict(
    trials: list[optuna.trial.FrozenTrial], n: int, current: tuple[int, str] | None = None
) -> tuple[bool | None, list[tuple[str, int]]]:
    """Whether the study's first ``n`` trials all failed.

    ``trials``: the study's trials; ``current``: ``(number, reason)`` of a trial that has
    just failed but is not written FAIL yet. Trials that were given back (stopped by the
    user) or retried after their worker died (a FAIL with no reason that another trial
    retries) are no verdict on the setup and are skipped. Returns ``(verdict, reasons)``:
    True when the first ``n`` counted trials are all FAIL (``reasons``: the reasons with
    their counts, commonest first), False once one of them succeeded or was pruned (it never
    changes after that), None while some of them are still to finish.
    """
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    counted: list[tuple[TrialState, str | None]] = []
    for t in sorted(trials, key=lambda t: t.number):
        if len(counted) == n:
            break
        state, reason = t.state, t.user_attrs.get("fail_reason")
        if current is not None and t.number == current[0]:
            state, reason = TrialState.FAIL, current[1]
        if state == TrialState.FAIL and (reason == STOPPED_REASON or (reason is None and t.number in retried)):
            continue
        counted.append((state, reason))
    if any(state in (TrialState.COMPLETE, TrialState.PRUNED) for state, _ in counted):
        return False, []
    if len(counted) < n or any(state != TrialState.FAIL for state, _ in counted):
        return None, []
    tally: dict[str, int] = {}
    for _, reason in counted:
        key = str(reason) if reason else "failed (no reason recorded)"
        tally[key] = tally.get(key, 0) + 1
    return True, sorted(tally.items(), key=lambda item: (-item[1], item[0]))


class _FailFast:
    """A worker's fail-fast check: run after each failed trial until the verdict is known."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.settled = False  # a first trial succeeded: the study is not failing as a whole

    def check(self, study: optuna.Study, number: int, reason: str) -> bool:
        """True when this failure completes a first ``n`` that all failed; the study is then
        marked ``failed`` (never over ``finished``) with the commonest reason."""
        if self.settled:
            return False
        verdict, reasons = fail_fast_verdict(study.get_trials(deepcopy=False), self.n, (number, reason))
        if verdict is False:
            self.settled = True
        if not verdict:
            return False
        top, times = reasons[0]
        message = (
            f"The first {self.n} trial(s) all failed, so the study was stopped. Commonest reason "
            f"({times} of {self.n}): {top}"
        )
        if len(reasons) > 1:
            message += f" (and {len(reasons) - 1} other reason(s): see the Trials table or `hpdash show`)"
        set_study_user_attr_unless(study, STATE_ATTR, "failed", unless=("finished",), extra={ERROR_ATTR: message})
        return True


@dataclass
class _TrialCount:
    """A worker's trials: how many it finished, how many it dropped (taken over by another
    worker while this one was away), and the one it runs now."""

    done: int = 0
    dropped: int = 0
    current: optuna.Trial | None = None


FIRST_WAIT_SECONDS = 0.05  # first wait for other workers' last trials; doubles up to 1 s


def _optimize_until_no_work(
    study: optuna.Study,
    func: Callable[[optuna.Trial], float],
    *,
    timeout: float | None,
    stop_event: threading.Event,
    budgeted: bool,
    count: _TrialCount | None = None,
) -> None:
    """``study.optimize`` until the budget is spent, time is up or a stop is asked.

    When every slot is taken (``BudgetExhausted``) but a trial is still RUNNING, that trial
    may belong to a worker that died (SIGKILL, lost machine). This worker then waits, running
    Optuna's ``fail_stale_trials`` each second: once the dead trial's heartbeat is older than
    the grace period it is failed, ``RetryHeartbeatStaleTrialCallback`` adds a retry slot with
    the same params, and this worker runs it. So the surviving workers finish the budget
    themselves; a resume is only needed when every worker is gone. Trials of live workers keep
    beating and are never failed, so the wait ends when they finish.

    A worker that was away longer than the grace period (paused, swapped out, cut off from
    the database) may find its trial failed as stale and retried by another worker. Its writes
    to that trial are refused by the storage, and Optuna's ``tell`` then raises; that trial
    (``count.current``) is dropped (``_drop_taken_over``) and this worker carries on.
    """
    deadline = None if timeout is None else _now() + timeout
    poll = min(1.0, float(heartbeat_interval()))
    wait = FIRST_WAIT_SECONDS
    while True:
        if stop_event.is_set():
            return  # stopped before a trial was claimed (e.g. Ctrl-C while the data loaded)
        remaining = None if deadline is None else deadline - _now()
        if remaining is not None and remaining <= 0:
            return
        try:
            study.optimize(func, timeout=remaining, catch=(Exception,))
            return  # stopped by the user or out of time
        except BudgetExhausted:
            pass
        except Exception:
            if count is None or count.current is None or not taken_over(count.current):
                raise
            _drop_taken_over(count)
            if stop_event.is_set() or study.user_attrs.get(STOP_ATTR):
                return
            continue  # claim the next slot, or find the budget spent
        if not budgeted:
            return
        while True:
            if stop_event.is_set() or study.user_attrs.get(STOP_ATTR):
                return
            if deadline is not None and _now() >= deadline:
                return
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            open_states = {
                t.state for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
            }
            if TrialState.WAITING in open_states:
                break  # a retry slot (or a given-back slot) appeared: run it
            if TrialState.RUNNING not in open_states:
                return  # nothing left anywhere
            # Short waits first: usually the other workers are on their last trials, and the
            # study ends (and is refitted) only once this worker has seen them finish.
            stop_event.wait(wait)
            wait = min(2 * wait, poll)


def _drop_taken_over(count: _TrialCount) -> None:
    """Forget the trial another worker took over: it counts for that worker's retry, not here."""
    trial = count.current
    assert trial is not None
    count.current = None
    count.done -= 1
    count.dropped += 1
    log.warning(
        "Trial %d was failed as stale by another worker while this worker was away (no heartbeat "
        "for longer than the grace period, HPDASH_GRACE_PERIOD): this worker's result for it is "
        "dropped (its retry, if it has one left, counts instead), and the worker carries on.",
        trial.number,
    )


def _with_slot_return(study: optuna.Study, func: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """On a user stop mid-trial, give the slot back (same params) and fail the cut trial."""

    worker = _worker_name()

    def wrapped(trial: optuna.Trial) -> float:
        if trial.user_attrs.get("worker") != worker:  # a claimed slot has it already
            trial.set_user_attr("worker", worker)  # which process ran it (scale-out diagnostics)
        try:
            return func(trial)
        except objective.StopRequested:
            trial.set_user_attr("fail_reason", STOPPED_REASON)
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    system_attrs={"fixed_params": dict(trial.params), "hpdash_slot": True},
                )
            )
            study.stop()
            raise

    return wrapped


def _timed_out(spec: StudySpec, attrs: dict[str, Any]) -> bool:
    started = float(attrs.get(STARTED_ATTR) or _now())
    return spec.timeout is not None and _now() - started >= spec.timeout


def _settle_state(study: optuna.Study, problem: objective.Problem | None = None) -> None:
    """After a worker ends: record stopped, or finished (and refit) once no work is left.

    Of several workers finishing together, only the one that marks the study finished refits
    (``claim_study_user_attr``), with the data it already loaded (``problem``).
    """
    attrs = study.user_attrs
    if attrs.get(STATE_ATTR) in ("failed", "finished"):
        return  # settled for good: a late worker changes nothing (nor refits again)
    open_trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    if any(t.state == TrialState.RUNNING for t in open_trials):
        return  # another worker is still on it (a dead worker's trial goes stale, then retried)
    if open_trials and attrs.get(STOP_ATTR):
        # Conditional: another worker may have finished or failed it since the read above.
        set_study_user_attr_unless(study, STATE_ATTR, "stopped", unless=("finished", "failed"))
        return
    if open_trials and not _timed_out(load_spec_of(study), attrs):
        return  # slots left and time left: resumable
    if not claim_study_user_attr(study, STATE_ATTR, "finished"):
        return  # another worker finished it and refits
    try:
        _refit(study.study_name, study=study, problem=problem)
    except HpdashError as exc:
        study.set_user_attr(REFIT_ATTR, {"error": str(exc)})


# --------------------------------------------------------------------------------------------
# Launch, stop, resume, delete
# --------------------------------------------------------------------------------------------
def workers_log_dir() -> Path:
    path = config.data_dir() / "workers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_log_path(name: str, index: int) -> Path:
    """The log file of worker ``index`` of study ``name``: ``<data>/workers/<stem>-<index>.log``,
    with the file-safe stem of the name (``export_model.file_stem``: the name itself for
    every name hpdash accepts)."""
    return workers_log_dir() / worker_log_name(name, index)


def worker_log_name(name: str, index: int) -> str:
    """The file name of worker ``index``'s log in the workers folder of a data directory."""
    return f"{export_model.file_stem(name)}-{int(index)}.log"


def worker_command(name: str, url: str, index: int) -> list[str]:
    """The command of worker ``index`` of study ``name`` on storage ``url``, with this
    process's Python: what ``launch_workers`` starts here and ``hpdash.cluster`` on a Dask worker."""
    return [sys.executable, "-m", "hpdash", "worker", name, "--storage", url, "--worker-index", str(index)]


def _worker_logs(name: str) -> list[Path]:
    """The worker log files of study ``name`` (exactly ``<stem>-<digits>.log``)."""
    pattern = re.compile(re.escape(export_model.file_stem(name)) + r"-[0-9]+\.log")
    folder = workers_log_dir()
    return [
        folder / entry.name
        for entry in os.scandir(folder)
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
    ]


def check_worker_count(workers: int) -> int:
    """``workers`` if one launch may start that many processes here, else SpecError."""
    cap = config.max_workers()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise SpecError(f"The number of workers must be a whole number of at least 1, got {workers!r}.")
    if workers > cap:
        raise SpecError(
            f"{workers} workers were asked for, but one launch may start at most {cap} on this machine "
            "(HPDASH_MAX_WORKERS, default: the usable CPUs). Ask for "
            f"{cap} or fewer, or set HPDASH_MAX_WORKERS higher for this machine."
        )
    return workers


def launch_workers(name: str, storage: str | None = None, workers: int = 1) -> list[subprocess.Popen]:
    """Start ``workers`` detached processes: ``python -m hpdash worker NAME --storage URL``.

    They run in their own session, so closing the browser or the terminal does not stop them.
    At most ``config.max_workers()`` per launch (``check_worker_count``, before anything starts).
    """
    access.require_writable("launch workers")
    check_worker_count(workers)
    _mark_launched(load_study(name, storage))
    url = config.storage_url(storage)
    env = {**os.environ, "HPDASH_DATA_DIR": str(config.data_dir()), "HPDASH_STORAGE": url}
    procs = []
    for i in range(workers):
        log_path = worker_log_path(name, i)
        with open(log_path, "ab") as out:
            procs.append(
                subprocess.Popen(
                    worker_command(name, url, i),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            )
    audit.record("launch workers", study=name, detail=f"{workers} on {socket.gethostname()}", url=storage)
    return procs


def mark_launched(name: str, storage: str | None = None) -> None:
    """Record a launch of study ``name`` whose workers start elsewhere (``hpdash.cluster``)."""
    _mark_launched(load_study(name, storage))


def _mark_launched(study: optuna.Study) -> None:
    """Record a launch: no stop asked, running since now, and no error of an earlier run."""
    study.set_user_attr(STOP_ATTR, False)
    study.set_user_attr(STATE_ATTR, "running")
    study.set_user_attr(STARTED_ATTR, _now())
    if study.user_attrs.get(ERROR_ATTR) is not None:
        study.set_user_attr(ERROR_ATTR, None)


def run_here(
    name: str,
    storage: str | None = None,
    *,
    stop_event: threading.Event | None = None,
    progress: Callable[[], None] | None = None,
    problem: objective.Problem | None = None,
) -> int:
    """Launch study ``name`` with one worker that is this process: ``run_worker`` after the
    launch record ``launch_workers`` writes, without starting a second Python (its imports
    and storage opening cost about as much as the trials of a small study). For one worker
    asked from the command line; the dashboard always starts detached workers, which
    outlive the page. Returns the number of trials run; see ``run_worker`` for the rest."""
    access.require_writable("launch workers")
    _mark_launched(load_study(name, storage))
    audit.record("launch workers", study=name, detail=f"1 in this process on {socket.gethostname()}", url=storage)
    return run_worker(name, storage, 0, stop_event=stop_event, progress=progress, problem=problem)


def stop_study(name: str, storage: str | None = None) -> None:
    """Ask every worker to stop: a flag in storage plus SIGTERM to workers on this machine.

    The running trial stops at its next fold boundary, is marked FAIL with the reason, and its
    slot is given back so ``resume_study`` runs it again.
    """
    access.require_writable("stop a study")
    study = load_study(name, storage)
    study.set_user_attr(STOP_ATTR, True)
    for w in workers_of(study):
        if w["alive"] and w.get("host") == socket.gethostname():
            try:
                os.kill(int(w["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                pass
    if not any(w["alive"] for w in workers_of(study)):
        # A study that already ended keeps its state: stopping it changes nothing.
        set_study_user_attr_unless(study, STATE_ATTR, "stopped", ("finished", "failed"))
    audit.record("stop", study=name, url=storage)


def resume_study(name: str, storage: str | None = None, workers: int | None = None) -> list[subprocess.Popen]:
    """Start workers again on a stopped (or lost) study; they pop the remaining slots."""
    access.require_writable("resume a study")
    study = load_study(name, storage)
    spec = load_spec_of(study)
    attrs = study.user_attrs
    missing = [key for key in (STATE_ATTR, BUDGET_ATTR) if key not in attrs]
    if missing:
        raise SpecError(
            f"Study {name!r} has no {' and no '.join(missing)} record, which hpdash writes with every "
            "study it creates: it was not created completely (or not by hpdash), and resuming it "
            "would run without its budget. Delete it and create it again from its spec."
        )
    audit.record("resume", study=name, url=storage)
    return launch_workers(name, storage, workers or spec.workers)


def delete_study(name: str, storage: str | None = None) -> None:
    """Stop the study's workers, then delete it (with its notes, which live in the study) and
    the files it owns in the data directory: its model files (``export_model.model_files``), its artifacts folder (the
    trials' out-of-fold predictions, ``objective.artifacts_folder``) and its worker logs, all
    found by the study's name, never by a value stored in the study."""
    access.require_writable("delete a study")
    study = load_study(name, storage)
    if any(w["alive"] for w in workers_of(study)):
        stop_study(name, storage)
    optuna.delete_study(study_name=name, storage=open_storage(storage, heartbeat=False))
    export_model.delete_model_files(name)
    objective.delete_artifacts(name)
    for log_path in _worker_logs(name):
        log_path.unlink(missing_ok=True)
    audit.record("delete study", study=name, url=storage)


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Final model
# --------------------------------------------------------------------------------------------
@dataclass
class RefitResult:
    """The final model: best params refit on the whole training part, scored once on holdout."""

    study: str
    trial_number: int
    model: str
    params: dict[str, Any]
    metric: str
    cv_score: float
    holdout_score: float
    path: str
    sha256: str
    created_at: str
    artifact_id: str | None = None  # the joblib file in the team's artifact store

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def refit(name: str, storage: str | None = None, study: optuna.Study | None = None) -> RefitResult:
    """Refit the best trial's hyperparameters on the training part and score the holdout.

    Writes ``<data>/models/<name>.joblib`` with its SHA-256 in ``<name>.joblib.sha256`` beside
    it; the safe ``.skops`` copy is made from it on first download (see hpdash/export_model.py).
    The ``path`` and ``sha256`` in the study's refit record are for display only.
    """
    access.require_writable("refit a model")
    result = _refit(name, storage, study)
    audit.record(
        "refit", study=name, detail=f"trial {result.trial_number}, holdout {result.holdout_score:.4g}", url=storage
    )
    return result


def _refit(
    name: str, storage: str | None = None, study: optuna.Study | None = None, problem: objective.Problem | None = None
) -> RefitResult:
    """``refit`` without the read-only check: a worker finishing its study always refits
    (with its ``problem``: the same spec and dataset, already loaded)."""
    study = study or load_study(name, storage)
    spec = load_spec_of(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise SpecError(f"Study {name!r} has no completed trial to refit.")
    best = study.best_trial
    assert best.value is not None  # the best trial is a completed one
    if problem is None:
        problem = load_problem(
            spec, study.user_attrs.get(DATASET_ATTR), study.user_attrs.get(study_attrs.DATASET_ARTIFACT)
        )
    model_key, params = space.decode_params(best.params, problem.models)
    pipe = problem.pipeline(model_key, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(problem.X_train, problem.y_train)
    holdout = float(problem.scorer(pipe, problem.X_test, problem.y_test))
    # <data>/models/<stem>.joblib and its digest file, each written atomically; the skops
    # copy is made on first download (export_model.ensure_skops).
    path, sha = export_model.save_joblib(name, pipe)
    # ... and uploaded with its digest, so a dashboard on another machine downloads it.
    artifact_id = export_model.upload_model(study, name)
    result = RefitResult(
        study=name,
        trial_number=best.number,
        model=model_key,
        params=params,
        metric=problem.metric,
        cv_score=float(best.value),
        holdout_score=holdout,
        path=str(path),
        sha256=sha,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        artifact_id=artifact_id,
    )
    study.set_user_attr(REFIT_ATTR, json.loads(json.dumps(result.to_dict(), default=str)))
    return result


def wait_for(procs: list[subprocess.Popen], poll: Callable[[], None] | None = None, interval: float = 0.5) -> list[int]:
    """Wait for worker processes, calling ``poll`` every ``interval`` seconds and once more
    at the end; returns their exit codes.

    Waits on the processes themselves (``Popen.wait`` with a timeout), so it returns as
    soon as the last one exits, whatever ``interval`` is: a long interval only spaces the
    calls to ``poll``.
    """
    deadline = time.monotonic() + interval
    for proc in procs:
        while True:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                if poll:
                    poll()
                deadline = time.monotonic() + interval
    if poll:
        poll()
    return [p.returncode for p in procs]
