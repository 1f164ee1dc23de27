"""Experiments: the same problem run by several strategies, each with several seeds.

An experiment is S strategies x R repeats studies that share the dataset, model, search space
and evaluation protocol, and differ only in strategy and seed. Its ID is the spec's ``name``;
its studies are ``<name>-<strategy>-s<seed>`` with the repeats' sampler seeds
``spec.sampler_seed .. spec.sampler_seed + R - 1`` (``spec.seed`` unless the spec gives
``sampler_seed``), and every study gets the same trial budget (``spec.n_trials``) and time
budget.

The data split across repeats (``split``, see ``SPLITS``) separates the two kinds of luck:
``"per_repeat"`` (the default, and what every experiment did before) gives repeat r the split
seed ``spec.split_seed + r`` too, so a repeat draws a new holdout, new folds and new model
seeds as well as a new sampler seed: the spread over repeats is split luck and sampler luck
together. ``"shared"`` gives every repeat ``spec.split_seed``: one holdout, one set of folds,
one model seed, and only the sampler's seed varies. Each study's stored spec holds its
``split_seed`` and ``sampler_seed``; ``split_design`` reads the design back from the specs.

Grid studies are the exception by design: a grid has as many points as it has, so
- a grid *larger* than the budget is cut: the runner shuffles the grid points with the study
  seed (a seeded random permutation, recorded in the ``hpdash.grid_order`` study attr) and
  runs the first ``n_trials`` of them, so each grid repeat evaluates a different random subset;
- a grid *smaller* than the budget runs every point once and stops early; its best-so-far
  curve then stays flat after its last trial (see ``hpdash.compare``).
``grid_note`` states which case applies, and the report shows it.

The experiment and its studies are recorded in the catalogue (``hpdash_experiments`` and
``hpdash_experiment_studies``), so the Compare page and the CLI find them by ID.

Running: an experiment's studies never all start at once. A queue (``run_queue``: the CLI's
``compare`` in its own process, ``python -m hpdash queue`` detached for the New study page)
runs at most ``max(1, config.max_workers() // workers)`` studies at a time, seed by seed
across strategies, and never starts a study that was stopped meanwhile. The detached queue
records itself (pid, host, started, last seen, ended) in ``hpdash_experiment_queue``;
``experiment_progress`` reads it with every study's state in one query.

Adding repeats until the verdict is settled (``until_settled``, up to ``max_repeats``): the queue
runs the planned R repeats; once every study has finished it looks at the per-repeat best CV
scores (``settle_verdict``: for every pair of strategies, the exact Wilcoxon signed-rank test
for a difference and its two one-sided tests for equivalence within ``±margin``, each family
Holm-adjusted) and, while some pair is neither different nor equivalent and the cap is not
reached, creates one more repeat of every strategy (the next seeds, the same way as the first
studies), records it in the catalogue and runs it. Each look tests at ``alpha / (cap - R + 1)``
(Bonferroni over the looks planned), so peeking after every repeat does not inflate the error
rate above ``alpha``. The plan, its rule and every look are kept in the experiment record
(``SettlePlan``, under ``SETTLE_RECORD`` in its stored spec); a stop of the experiment ends it.
The decision is computed here, on the studies' best values, because ``hpdash.compare`` sits
above this module; it is the test ``hpdash.compare`` runs on the paired design.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from scipy import stats

from hpdash import access, audit, config, runner, space, statistics
from hpdash import attrs as study_attrs
from hpdash.errors import HpdashError, SpecError, StorageError, StudyNotFoundError
from hpdash.spec import STRATEGIES, StudySpec, check_name, parse_spec
from hpdash.storage import open_storage, redact
from hpdash.store import Catalogue
from hpdash.strategies import check_comparison

DEFAULT_STRATEGIES: tuple[str, ...] = ("grid", "random", "tpe", "gp")
#: The data split across an experiment's repeats: key -> what it means (form, CLI help).
SPLITS: dict[str, str] = {
    "per_repeat": "a new split per repeat (split and sampler luck)",
    "shared": "the same split for every repeat (only sampler luck varies)",
}
DEFAULT_SPLIT = "per_repeat"
#: What ``split_design`` reports, with ``SPLITS``' two designs: studies whose split seeds
#: neither are all one nor differ between the repeats of each strategy.
MIXED_SPLIT = "mixed"
DEFAULT_REPEATS = 3
MAX_REPEATS = 20
QUEUE_BEAT_SECONDS = 5  # how often a running queue writes its last_seen
QUEUE_LOST_SECONDS = 30  # a queue not seen for this long counts as gone
#: "Add repeats until the verdict is settled": the key of its plan in the experiment record's
#: stored spec (``spec_json``), the default equivalence margin (in the metric's units) and alpha.
SETTLE_RECORD = study_attrs.SETTLE_RECORD
DEFAULT_MARGIN = 0.01
SETTLE_ALPHA = 0.05


class ExperimentNotFoundError(StudyNotFoundError):
    """No experiment of that ID in the catalogue."""


@dataclass
class ExperimentRun:
    """One study of an experiment."""

    study: str
    strategy: str
    seed: int


@dataclass
class Experiment:
    """An experiment as recorded in the catalogue."""

    name: str
    spec: StudySpec
    strategies: list[str]
    repeats: int
    runs: list[ExperimentRun] = field(default_factory=list)
    created_at: str | None = None
    #: The "add repeats until settled" plan and its looks (None: a fixed number of repeats).
    settle: SettlePlan | None = None

    @property
    def study_names(self) -> list[str]:
        return [r.study for r in self.runs]


def study_name(experiment: str, strategy: str, seed: int) -> str:
    """``<experiment>-<strategy>-s<seed>``, checked like any study name."""
    return check_name(f"{experiment}-{strategy}-s{seed}")


def parse_strategies(value: str | Sequence[str] | None) -> list[str]:
    """``"grid,random,tpe"`` or a list -> a checked list without duplicates, in given order."""
    if value is None:
        return list(DEFAULT_STRATEGIES)
    items = (
        [s.strip().lower() for s in value.split(",")]
        if isinstance(value, str)
        else [str(s).strip().lower() for s in value]
    )
    items = [s for s in items if s]
    if not items:
        raise SpecError("Pick at least one strategy to compare.")
    unknown = [s for s in items if s not in STRATEGIES]
    if unknown:
        raise SpecError(f"Unknown strategy {unknown[0]!r}: choose from {', '.join(STRATEGIES)}.")
    if len(set(items)) != len(items):
        raise SpecError("A strategy is listed twice.")
    return items


def check_split(split: Any) -> str:
    """``split`` if it is one of ``SPLITS``, else a ``SpecError`` saying what each one means."""
    if not isinstance(split, str) or split not in SPLITS:
        shown = repr(split)[:60]
        choices = "; ".join(f"'{key}': {text}" for key, text in SPLITS.items())
        raise SpecError(f"Unknown data split across repeats {shown}: choose {choices}.")
    return split


def repeat_seeds(spec: StudySpec, repeats: int, split: str = DEFAULT_SPLIT) -> list[tuple[int, int]]:
    """``(split_seed, sampler_seed)`` of each repeat r = 0 .. R-1: the sampler seed is
    ``spec.sampler_seed + r``; the split seed ``spec.split_seed + r`` (``"per_repeat"``) or
    ``spec.split_seed`` for every repeat (``"shared"``)."""
    check_split(split)
    return [(spec.split_seed + (r if split == "per_repeat" else 0), spec.sampler_seed + r) for r in range(repeats)]


def plan_experiment(
    spec: StudySpec,
    strategies: Sequence[str] | str | None = None,
    repeats: int = DEFAULT_REPEATS,
    split: str = DEFAULT_SPLIT,
) -> list[StudySpec]:
    """The study specs of an experiment: one per (strategy, repeat), same budget and protocol.

    Repeat r's study is named after its sampler seed, ``<name>-<strategy>-s<seed>``, and its
    spec holds ``seed`` = that sampler seed with ``split_seed`` and ``sampler_seed`` written
    out (``repeat_seeds``): ``split="per_repeat"`` (default) gives each repeat its own data
    split, exactly as before these seeds existed; ``"shared"`` gives every repeat the base
    spec's split seed, so only the sampler's luck varies between repeats.

    Raises ``SpecError`` for bad strategies, repeats, split or a budget that is not the same
    for all, a strategy whose package is missing, and strategies that would all be random
    search (``strategies.check_comparison``).
    """
    check_name(spec.name, "experiment ID")
    check_split(split)
    chosen = parse_strategies(strategies)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise SpecError(f"Repeats must be a whole number from 1 to {MAX_REPEATS}, got {repeats!r}.")
    if spec.n_trials is None and spec.timeout is None:
        raise SpecError("An experiment needs the same budget for every strategy: set 'n_trials' (and/or 'timeout').")
    n_studies = len(chosen) * repeats
    cap = config.max_experiment_studies()
    if n_studies > cap:
        raise SpecError(
            f"This experiment would create {len(chosen)} strategies x {repeats} repeats = {n_studies} "
            f"studies, over the limit of {cap} studies per experiment (HPDASH_MAX_EXPERIMENT_STUDIES). "
            "Pick fewer strategies or repeats, or raise HPDASH_MAX_EXPERIMENT_STUDIES."
        )
    _check_trial_total(spec, chosen, repeats)
    # Each strategy's package, and no two strategies that would run the same random trials
    # (a model-based one still in its start-up phase for the whole budget, against random).
    check_comparison(spec, chosen)
    seeds = repeat_seeds(spec, repeats, split)
    return [
        _repeat_spec(spec, strategy, split_seed, sampler_seed)
        for strategy in chosen
        for split_seed, sampler_seed in seeds
    ]


def _repeat_spec(spec: StudySpec, strategy: str, split_seed: int, sampler_seed: int) -> StudySpec:
    """The study spec of one (strategy, repeat) of the experiment whose base spec is ``spec``."""
    return spec.replace(
        name=study_name(spec.name, strategy, sampler_seed),
        strategy=strategy,
        seed=sampler_seed,
        split_seed=split_seed,
        sampler_seed=sampler_seed,
    )


def _split_seed_of(spec: Mapping[str, Any]) -> int:
    """A stored spec's effective split seed: ``split_seed`` when given, else ``seed``."""
    value = spec.get("split_seed")
    if value is None:
        value = spec.get("seed", 0)
    return int(value)


def split_design(specs: Sequence[Mapping[str, Any]]) -> str:
    """How the studies of a comparison split the data, read from their specs (plain dicts, as
    stored in each study's ``hpdash.spec`` attr, or ``StudySpec.to_dict()``).

    - ``"shared"``: more than one spec, and every effective split seed (``split_seed``, else
      ``seed``) is the same: one holdout, one set of folds and one model seed for all, so the
      differences between repeats are the samplers' luck alone.
    - ``"per_repeat"``: within each strategy every study has its own split seed (a single
      spec, or none, counts as this): the spread over repeats mixes split luck and sampler
      luck. Every experiment created before ``split`` existed is this.
    - ``"mixed"``: anything else (some repeats of a strategy share a split, others do not).
    """
    seeds = [_split_seed_of(spec) for spec in specs]
    if len(seeds) > 1 and len(set(seeds)) == 1:
        return "shared"
    by_strategy: dict[Any, list[int]] = {}
    for spec, seed in zip(specs, seeds):
        by_strategy.setdefault(spec.get("strategy"), []).append(seed)
    if all(len(set(group)) == len(group) for group in by_strategy.values()):
        return "per_repeat"
    return MIXED_SPLIT


def study_specs(names: Sequence[str], storage: str | None = None, *, store: Any = None) -> dict[str, dict[str, Any]]:
    """The stored spec (``hpdash.spec``, a plain dict) of each study in ``names`` that has
    one, in one query on Optuna's tables. ``store``: a storage already open on ``storage``."""
    if not names:
        return {}
    query = sqlalchemy.text(
        "SELECT s.study_name, a.value_json FROM studies s "
        "JOIN study_user_attributes a ON a.study_id = s.study_id "
        "WHERE a.key = :key AND s.study_name IN :names"
    ).bindparams(sqlalchemy.bindparam("names", expanding=True))
    opened = store is None
    if opened:
        store = open_storage(storage, heartbeat=False)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(query, {"key": runner.SPEC_ATTR, "names": list(names)}).all()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"Could not read the studies' specs from {redact(config.storage_url(storage))}: {exc}. "
            "Try again in a moment."
        ) from exc
    finally:
        if opened:
            store.engine.dispose()
    return {study: json.loads(value) for study, value in rows}


def experiment_split(name: str, storage: str | None = None, *, store: Any = None) -> str:
    """``split_design`` of experiment ``name``'s studies (those still in the storage)."""
    experiment = load_experiment(name, storage)
    specs = study_specs(experiment.study_names, storage, store=store)
    return split_design([specs[run.study] for run in experiment.runs if run.study in specs])


def _check_trial_total(spec: StudySpec, chosen: list[str], repeats: int) -> None:
    """Refuse an experiment whose studies' trial budgets add up to more than
    ``config.max_experiment_trials()``. A grid study's budget is its grid when that is
    smaller; the grid is sized (which reads the dataset) only when the cheap upper bound,
    ``n_trials`` for every study, is over the cap. A study with a time budget only has no
    trial budget to count."""
    cap = config.max_experiment_trials()
    per: dict[str, int | None] = {s: spec.n_trials for s in chosen}
    if sum(v or 0 for v in per.values()) * repeats <= cap and ("grid" not in per or per["grid"] is not None):
        return
    if "grid" in per:
        size = grid_size_of(spec)
        if size is not None:
            per["grid"] = size if spec.n_trials is None else min(spec.n_trials, size)
    total = sum(v or 0 for v in per.values()) * repeats
    if total <= cap:
        return
    parts = ", ".join(f"{s}: {n:,}" for s, n in per.items() if n)
    raise SpecError(
        f"This experiment would run {total:,} trials in all ({len(chosen) * repeats} studies; trials per "
        f"study {parts}; x {repeats} repeats), over the limit of {cap:,} trials per experiment "
        "(HPDASH_MAX_EXPERIMENT_TRIALS). Lower n_trials, pick fewer strategies or repeats, or "
        "raise HPDASH_MAX_EXPERIMENT_TRIALS."
    )


def check_workers(workers: Any) -> int:
    """``workers`` (worker processes per study) as checked against ``config.max_workers()``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError(f"Workers per study must be a whole number of at least 1, got {workers!r}.")
    cap = config.max_workers()
    if workers > cap:
        raise SpecError(
            f"{workers} worker processes per study is over this machine's limit of {cap} "
            "(HPDASH_MAX_WORKERS, default: the CPUs this process may use). Use at most "
            f"{cap} workers per study; the experiment runs fewer studies at once instead. Raise "
            "HPDASH_MAX_WORKERS only if the machine has the cores for it."
        )
    return workers


def parallel_limit(workers: int, parallel: int | None = None) -> int:
    """How many studies run at once with ``workers`` each: ``parallel`` when given (checked
    so that parallel x workers stays within ``config.max_workers()``), else
    ``max(1, config.max_workers() // workers)``."""
    cap = config.max_workers()
    if parallel is None:
        return max(1, cap // workers)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise SpecError(f"Studies at once (--parallel) must be a whole number of at least 1, got {parallel!r}.")
    if parallel > 1 and parallel * workers > cap:
        raise SpecError(
            f"{parallel} studies at once x {workers} worker(s) each = {parallel * workers} worker "
            f"processes, over this machine's limit of {cap} (HPDASH_MAX_WORKERS). Use --parallel "
            f"{max(1, cap // workers)} or fewer, or leave it out for that default."
        )
    return parallel


def grid_note(grid_order: dict[str, Any] | None, n_trials: int | None, seed: int | None = None) -> str:
    """Plain-English account of how a grid study was ordered and cut (from ``hpdash.grid_order``)."""
    if not grid_order:
        return ""
    size = int(grid_order.get("grid_size", 0))
    budget = int(grid_order.get("budget", size))
    seeded = f" (seed {seed})" if seed is not None else ""
    order = grid_order.get("order", "seeded random permutation")
    if grid_order.get("cut"):
        return (
            f"The grid has {size} points, more than the budget of {budget} trials: the points are "
            f"visited in a {order}{seeded} and the first {budget} are run, so this grid study "
            f"covers a random {budget}/{size} subset of the grid."
        )
    if n_trials is not None and size < n_trials:
        return (
            f"The grid has {size} points, fewer than the budget of {n_trials} trials: every point "
            f"is run once (in a {order}{seeded}) and the study stops after {size} trials; its "
            "best-so-far stays flat after that."
        )
    return f"The grid has {size} points, all run once, in a {order}{seeded}."


def experiment_exists(name: str, storage: str | None = None) -> bool:
    """Whether the catalogue has an experiment of that ID."""
    return Catalogue(storage=storage).get_experiment(name) is not None


def create_experiment(
    spec: StudySpec,
    strategies: Sequence[str] | str | None = None,
    repeats: int = DEFAULT_REPEATS,
    storage: str | None = None,
    split: str = DEFAULT_SPLIT,
    *,
    until_settled: bool = False,
    max_repeats: int | None = None,
    margin: float = DEFAULT_MARGIN,
) -> Experiment:
    """Create the S x R studies (with their budget slots) and record the experiment.

    ``split``: the data split across repeats (``SPLITS``; see ``plan_experiment``). Each
    study's stored spec holds its split and sampler seeds, so ``experiment_split`` (and
    ``split_design`` on the specs) tells a reader which design ran.

    ``until_settled``: the queue adds one repeat of every strategy at a time, after the R
    planned ones, until the verdict is settled or ``max_repeats`` repeats have run
    (``SettlePlan``; ``margin``: the equivalence margin in the metric's units). The caps are
    checked for ``max_repeats`` repeats (``check_until_settled``) and no study of a repeat up
    to the cap may exist yet.

    Everything is checked before anything is created: the ID, the size caps, the workers per
    study (``spec.workers``), the split, every study name and the plan of the first study
    (dataset, model, space, metric). If creating a later study fails, the studies created so
    far are deleted again.
    """
    check_workers(spec.workers)
    specs = plan_experiment(spec, strategies, repeats, split)
    settle: SettlePlan | None = None
    names = [s.name for s in specs]
    if until_settled:
        settle = check_until_settled(spec, strategies, repeats, max_repeats, split, margin)
        chosen_now = parse_strategies(strategies)
        names += [
            _repeat_spec(spec, strategy, split_seed, sampler_seed).name
            for split_seed, sampler_seed in repeat_seeds(spec, settle.cap, split)[repeats:]
            for strategy in chosen_now
        ]
    elif max_repeats is not None:
        raise SpecError("A cap on repeats (max_repeats) applies only when repeats are added until settled.")
    if experiment_exists(spec.name, storage):
        raise SpecError(f"An experiment with ID {spec.name!r} already exists. Pick another name.")
    existing = set(optuna.get_all_study_names(storage=open_storage(storage, heartbeat=False)))
    clash = [name for name in names if name in existing]
    if clash:
        raise SpecError(f"A study named {clash[0]!r} already exists. Pick another experiment ID.")
    created: list[str] = []
    try:
        for one in specs:
            runner.create_study(one, storage)
            created.append(one.name)
    except BaseException:
        for name in created:
            with contextlib.suppress(KeyError, HpdashError, OSError):  # best effort; the original error matters more
                optuna.delete_study(study_name=name, storage=open_storage(storage, heartbeat=False))
        raise
    chosen = parse_strategies(strategies)
    runs = [ExperimentRun(s.name, s.strategy, s.seed) for s in specs]
    Catalogue(storage=storage).add_experiment(
        {
            "name": spec.name,
            "spec_json": _spec_json(spec, settle),
            "strategies": json.dumps(chosen),
            "repeats": repeats,
        },
        [{"experiment": spec.name, "study": r.study, "strategy": r.strategy, "seed": r.seed} for r in runs],
    )
    return load_experiment(spec.name, storage)


def list_experiments(storage: str | None = None) -> list[dict[str, Any]]:
    """Catalogue rows of every experiment, newest first (name, strategies, repeats, created_at)."""
    rows = Catalogue(storage=storage).list_experiments()
    return [{**row, "strategies": json.loads(row["strategies"] or "[]")} for row in rows]


def load_experiment(name: str, storage: str | None = None) -> Experiment:
    """An experiment by ID, with its runs ordered by strategy (as chosen) then seed."""
    catalogue = Catalogue(storage=storage)
    row = catalogue.get_experiment(name)
    if row is None:
        raise ExperimentNotFoundError(f"No experiment with ID {name!r} in {redact(config.storage_url(storage))}.")
    chosen = json.loads(row["strategies"] or "[]")
    order = {s: i for i, s in enumerate(chosen)}
    runs = [ExperimentRun(r["study"], r["strategy"], int(r["seed"])) for r in catalogue.experiment_studies(name)]
    runs.sort(key=lambda r: (order.get(r.strategy, len(order)), r.seed))
    stored = json.loads(row["spec_json"])
    settle = stored.pop(SETTLE_RECORD, None)
    return Experiment(
        name=name,
        spec=parse_spec(stored),
        strategies=chosen,
        repeats=int(row["repeats"]),
        runs=runs,
        created_at=row.get("created_at"),
        settle=SettlePlan.from_dict(settle) if isinstance(settle, dict) else None,
    )


def _spec_json(spec: StudySpec, settle: SettlePlan | None) -> str:
    """The experiment record's ``spec_json``: the base spec, with the until-settled plan (its
    rule and looks) under ``SETTLE_RECORD`` when there is one."""
    data = spec.to_dict()
    if settle is not None:
        data[SETTLE_RECORD] = settle.to_dict()
    return json.dumps(data)


def _interleaved(experiment: Experiment) -> list[ExperimentRun]:
    """The runs seed by seed, strategies in their chosen order within a seed, so every
    strategy meets the same machine load."""
    order = {s: i for i, s in enumerate(experiment.strategies)}
    return sorted(experiment.runs, key=lambda r: (r.seed, order.get(r.strategy, len(order))))


def queue_log_path(name: str) -> Path:
    """The log of an experiment's detached queue process: ``<data>/queues/<ID>.log``."""
    path = config.data_dir() / "queues"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{check_name(name, 'experiment ID')}.log"


def queue_alive(row: dict[str, Any] | None) -> bool:
    """Whether the queue of this catalogue record is still running: not ended, seen in the
    last ``QUEUE_LOST_SECONDS`` (its start counts until its first beat) and, on this host,
    its process still there."""
    if not row or row.get("ended") is not None:
        return False
    seen = row.get("last_seen") or row.get("started")
    if seen is None or time.time() - float(seen) >= QUEUE_LOST_SECONDS:
        return False
    if row.get("pid") is not None and row.get("host") == socket.gethostname():
        return runner._pid_alive(int(row["pid"]))
    return True


def _stop_requested(catalogue: Catalogue, name: str) -> bool:
    row = catalogue.experiment_queue(name)
    return bool(row and row.get("stop_requested"))


def _not_startable(store: Any, study: str) -> str | None:
    """Why the queue must not start ``study`` now (None when it may): only a study that was
    never launched and has no stop flag is started."""
    try:
        attrs = store.get_study_user_attrs(store.get_study_id_from_name(study))
    except KeyError:
        return "it was deleted"
    if attrs.get(runner.STOP_ATTR):
        return "it was stopped"
    state = attrs.get(runner.STATE_ATTR, "created")
    if state != "created":
        return f"it is already {state}"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, HpdashError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _run_queue(
    experiment: Experiment,
    storage: str | None,
    workers: int,
    limit: int,
    *,
    poll: Callable[[], None] | None = None,
    interval: float = 0.5,
    tick: Callable[[], None] | None = None,
    halt: threading.Event | None = None,
    say: Callable[[str], None] | None = None,
) -> list[int]:
    """The queue's loop: keep up to ``limit`` studies running, each with ``workers`` worker
    processes, until none is left to start and none runs. Before each launch the study's own
    state and stop flag and the experiment's stop request are read again, so a stopped study
    is never started. Returns the exit codes of the workers it waited for.

    An experiment with a ``settle`` plan then looks at its verdict (``_settle_look``) and runs
    one more repeat of every strategy while it is not settled, up to the plan's cap.

    ``poll`` and ``tick`` are called once per round (the CLI's progress line, the queue's
    beat); ``halt`` ends the loop at the next round without waiting for running studies.
    """
    say = say or (lambda _text: None)
    catalogue = Catalogue(storage=storage)
    store = open_storage(storage, heartbeat=False)  # one storage for every check of this queue
    pending = _interleaved(experiment)
    active: list[tuple[str, list[subprocess.Popen]]] = []
    codes: list[int] = []
    try:
        while pending or active:
            still = []
            for study, group in active:
                if any(p.poll() is None for p in group):
                    still.append((study, group))
                else:
                    codes += [p.returncode for p in group]
                    say(f"{study}: its workers ended (exit codes {[p.returncode for p in group]})")
            active = still
            if halt is not None and halt.is_set():
                say(f"halted: {len(pending)} queued studies not started, {len(active)} left running")
                break
            if pending and _stop_requested(catalogue, experiment.name):
                say(f"the experiment was stopped: {len(pending)} queued studies will not start")
                pending.clear()
            while pending and len(active) < limit:
                run = pending.pop(0)
                reason = _not_startable(store, run.study)
                if reason:
                    say(f"{run.study}: not started, {reason}")
                    continue
                try:
                    group = runner.launch_workers(run.study, storage, workers)
                except StudyNotFoundError:
                    say(f"{run.study}: not started, it was deleted")
                    continue
                active.append((run.study, group))
                say(
                    f"{run.study}: started {workers} worker(s) ({len(active)} of at most {limit} running, "
                    f"{len(pending)} queued)"
                )
                # launch_workers clears the study's stop flag; a stop of the whole experiment
                # that came in meanwhile is in the catalogue, so it is honoured here.
                if _stop_requested(catalogue, experiment.name):
                    runner.stop_study(run.study, storage)
            if tick:
                tick()
            if poll:
                poll()
            if active:
                if halt is not None:
                    halt.wait(interval)
                else:
                    time.sleep(interval)
            elif not pending and experiment.settle is not None and not (halt is not None and halt.is_set()):
                # Every study has ended: look at the verdict, and queue one more repeat if it
                # is not settled and the cap allows (nothing when it is, or on a stop).
                pending = _settle_look(experiment, storage, store, catalogue, say)
    finally:
        store.engine.dispose()
        catalogue.close()
    if poll:
        poll()
    return codes


def run_queue(
    name: str,
    storage: str | None = None,
    workers: int = 1,
    parallel: int | None = None,
    *,
    poll: Callable[[], None] | None = None,
    interval: float = 0.5,
    halt: threading.Event | None = None,
    say: Callable[[str], None] | None = None,
) -> list[int]:
    """Run the experiment's studies in this process, at most ``parallel_limit(workers,
    parallel)`` at a time, and wait until none is left to start and none runs.

    The queue records itself in the catalogue (``experiment_queue``: pid, host, started,
    last_seen every ``QUEUE_BEAT_SECONDS``, ended, error) and refuses to start while another
    live queue runs the same experiment. Returns the worker exit codes.
    """
    access.require_writable("run an experiment's studies")
    check_workers(workers)
    limit = parallel_limit(workers, parallel)
    experiment = load_experiment(name, storage)
    catalogue = Catalogue(storage=storage)
    pid, host = os.getpid(), socket.gethostname()
    row = catalogue.experiment_queue(name)
    # launch_experiment writes the record with pid None before this process exists, then
    # this process's pid: either way the record is this queue's own.
    own = row is not None and row.get("host") == host and row.get("pid") in (None, pid)
    if row and not own and queue_alive(row):
        raise SpecError(
            f"Experiment {name!r} is already being run by queue process {row.get('pid')} on "
            f"{row.get('host')}. Wait for it to end (the Compare page shows its progress), or "
            "stop the experiment first."
        )
    now = time.time()
    started = row["started"] if own and row is not None and row.get("started") and row.get("ended") is None else now
    catalogue.set_experiment_queue(
        name,
        pid=pid,
        host=host,
        started=started,
        last_seen=now,
        ended=None,
        error=None,
        workers=workers,
        parallel=limit,
    )
    say = say or (lambda _text: None)
    beat = [now]

    def tick() -> None:
        if time.time() - beat[0] < QUEUE_BEAT_SECONDS:
            return
        beat[0] = time.time()
        try:
            catalogue.set_experiment_queue(name, last_seen=beat[0])
        except StorageError as exc:  # the next beat tries again; a lost queue is seen after 30 s
            say(f"could not record the queue's beat: {exc}")

    def finish(error: str | None) -> None:
        try:
            catalogue.set_experiment_queue(name, ended=time.time(), error=error)
        except StorageError as exc:  # the record then ages out (QUEUE_LOST_SECONDS)
            say(f"could not record the end of the queue: {exc}")

    try:
        codes = _run_queue(
            experiment, storage, workers, limit, poll=poll, interval=interval, tick=tick, halt=halt, say=say
        )
    except BaseException as exc:
        finish(_describe(exc))
        raise
    finish("halted by a signal before every study started" if halt is not None and halt.is_set() else None)
    catalogue.close()
    return codes


def run_experiment(
    name: str,
    storage: str | None = None,
    workers: int = 1,
    parallel: int | None = None,
    poll: Callable[[], None] | None = None,
    interval: float = 0.5,
) -> list[int]:
    """Run every study of the experiment to its end and wait (the CLI's headless mode).

    At most ``parallel`` studies run at the same time (default: ``config.max_workers()``
    divided by ``workers``, at least 1; parallel x workers may not exceed that cap); the
    studies are started interleaved across strategies (seed by seed), so every strategy meets
    the same machine load. Returns the worker exit codes. See ``run_queue``.
    """
    return run_queue(name, storage, workers, parallel, poll=poll, interval=interval)


def launch_experiment(name: str, storage: str | None = None, workers: int = 1) -> list[subprocess.Popen]:
    """Start the experiment's queue as one detached process and return it (in a list).

    ``python -m hpdash queue ID --workers W --storage URL`` runs in its own session (closing
    the browser or the terminal does not stop it), reads nothing from stdin and logs to
    ``queue_log_path(ID)``. It runs ``max(1, config.max_workers() // W)`` studies at a time.
    """
    access.require_writable("launch an experiment")
    check_workers(workers)
    limit = parallel_limit(workers)
    load_experiment(name, storage)
    catalogue = Catalogue(storage=storage)
    row = catalogue.experiment_queue(name)
    if row is not None and queue_alive(row):
        raise SpecError(
            f"Experiment {name!r} is already being run by queue process {row.get('pid')} on "
            f"{row.get('host')}. Wait for it to end, or stop the experiment first."
        )
    url = config.storage_url(storage)
    log_path = queue_log_path(name)
    catalogue.set_experiment_queue(
        name,
        pid=None,
        host=socket.gethostname(),
        started=time.time(),
        last_seen=None,
        ended=None,
        error=None,
        workers=workers,
        parallel=limit,
        log=str(log_path),
    )
    env = {**os.environ, "HPDASH_DATA_DIR": str(config.data_dir()), "HPDASH_STORAGE": url}
    command = [sys.executable, "-m", "hpdash", "queue", name, "--workers", str(workers)]
    if redact(url) == url:  # a URL with a password goes by the environment only, not into `ps`
        command += ["--storage", url]
    try:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
    except OSError as exc:
        message = (
            f"Could not start the queue process of experiment {name!r}: {exc.strerror or exc}. "
            f"Its studies are created; start them with: python -m hpdash queue {name} "
            f"--workers {workers}"
        )
        catalogue.set_experiment_queue(name, ended=time.time(), error=message)
        raise StorageError(message) from exc
    catalogue.set_experiment_queue(name, pid=proc.pid)
    catalogue.close()
    audit.record("launch experiment", detail=f"{name}, {workers} worker(s) per study", url=storage)
    return [proc]


def stop_experiment(name: str, storage: str | None = None) -> None:
    """Stop the experiment: its queue starts no further study, and every study is asked to
    stop (running ones end at their next fold; queued ones are marked stopped)."""
    access.require_writable("stop an experiment")
    experiment = load_experiment(name, storage)
    # First the request the queue reads before and after each launch, then the studies.
    Catalogue(storage=storage).set_experiment_queue(name, stop_requested=time.time())
    for run in experiment.runs:
        try:
            runner.stop_study(run.study, storage)
        except StudyNotFoundError:
            continue  # deleted meanwhile: nothing to stop
    audit.record("stop experiment", detail=name, url=storage)


@dataclass
class LaunchedExperiment:
    """What ``compare_strategies`` returns to the New study page."""

    experiment: Experiment
    processes: list[subprocess.Popen]  # the queue process (one)

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def queue(self) -> subprocess.Popen:
        return self.processes[0]


def compare_strategies(
    spec: StudySpec,
    strategies: Sequence[str] | str | None = DEFAULT_STRATEGIES,
    repeats: int = DEFAULT_REPEATS,
    workers: int = 1,
    storage: str | None = None,
    split: str = DEFAULT_SPLIT,
    *,
    until_settled: bool = False,
    max_repeats: int | None = None,
    margin: float = DEFAULT_MARGIN,
) -> LaunchedExperiment:
    """ "Compare strategies" on the New study page: create the S x R studies and queue them.

    ``spec.name`` becomes the experiment ID, ``spec.strategy`` is ignored and ``spec.seed`` is
    the first seed; every study records ``workers`` as its workers. ``split``: the data split
    across repeats (``SPLITS``, see ``plan_experiment``). ``until_settled``, ``max_repeats``,
    ``margin``: add repeats until the verdict is settled, up to that cap (see
    ``create_experiment``). One detached queue process runs the studies a few at a time
    (``launch_experiment``); open ``pages/compare.py?experiment=<ID>`` to watch
    (``experiment_progress``).
    """
    check_workers(workers)
    check_split(split)
    experiment = create_experiment(
        spec.replace(workers=workers),
        strategies,
        repeats,
        storage,
        split,
        until_settled=until_settled,
        max_repeats=max_repeats,
        margin=margin,
    )
    return LaunchedExperiment(experiment, launch_experiment(experiment.name, storage, workers))


# --------------------------------------------------------------------------------------------
# Adding repeats until the verdict is settled
# --------------------------------------------------------------------------------------------
#: A pair's outcome at a look: a significant difference, shown equivalent, or neither yet.
DIFFERENT, EQUIVALENT, OPEN = "different", "equivalent", "open"
SETTLE_TEST = "exact Wilcoxon signed-rank test on the per-repeat differences of the best CV scores"


@dataclass
class SettlePlan:
    """Adding repeats until the verdict is settled, up to a cap: what was planned, and each look.

    The queue runs ``planned`` repeats, then looks after every repeat (``planned``,
    ``planned + 1``, ..., ``cap``: ``looks_planned`` looks); each look tests at ``look_alpha`` =
    ``alpha / looks_planned`` (Bonferroni over the looks), so the chance of a false difference
    over all looks together stays at most ``alpha``. ``looks`` holds one record per look made
    (repeats, settled, the pairs); ``outcome`` says why no more repeats were added.
    """

    planned: int
    cap: int
    margin: float = DEFAULT_MARGIN
    alpha: float = SETTLE_ALPHA
    looks: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None

    @property
    def looks_planned(self) -> int:
        return self.cap - self.planned + 1

    @property
    def look_alpha(self) -> float:
        return self.alpha / self.looks_planned

    @property
    def first_possible(self) -> tuple[int, int]:
        """The fewest repeats at which the exact tests can reach ``look_alpha`` at all: a
        difference (two-sided, smallest p 2/2^n) and an equivalence (one-sided, 1/2^n). With
        several pairs, Holm asks more of the smallest p."""
        difference = next(n for n in itertools.count(1) if statistics.min_paired_p_value(n) < self.look_alpha)
        equivalence = next(n for n in itertools.count(1) if 0.5**n < self.look_alpha)
        return difference, equivalence

    @property
    def rule(self) -> str:
        """The rule in words (the form's help, the experiment record, the queue's log)."""
        difference, equivalence = self.first_possible
        text = (
            f"Repeats are added one at a time after the {self.planned} planned ones until every pair of "
            f"strategies is either significantly different or shown equivalent within ±{self.margin:g}, "
            f"or {self.cap} repeats have run. The verdict is looked at after {self.planned}"
            + (f"..{self.cap}" if self.cap > self.planned else "")
            + f" repeats ({self.looks_planned} look{'s' if self.looks_planned != 1 else ''} planned), each at alpha "
            f"{self.alpha:g}/{self.looks_planned} = {self.look_alpha:.3g} (Bonferroni over the looks, so that "
            f"peeking after every repeat keeps the chance of any false claim at most {self.alpha:g}): "
            f"difference by the {SETTLE_TEST}, equivalence by its two one-sided tests against ±{self.margin:g} "
            "(TOST), each family Holm-adjusted over the pairs. The exact test cannot reach that alpha "
            f"before {difference} repeats for a difference, {equivalence} for an equivalence."
        )
        if self.cap < min(difference, equivalence):
            text += f" With a cap of {self.cap} repeats the verdict can never settle: raise the cap."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "cap": self.cap,
            "margin": self.margin,
            "alpha": self.alpha,
            "looks_planned": self.looks_planned,
            "look_alpha": self.look_alpha,
            "rule": self.rule,
            "looks": list(self.looks),
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SettlePlan:
        return cls(
            planned=int(data["planned"]),
            cap=int(data["cap"]),
            margin=float(data.get("margin", DEFAULT_MARGIN)),
            alpha=float(data.get("alpha", SETTLE_ALPHA)),
            looks=list(data.get("looks") or []),
            outcome=data.get("outcome"),
        )


def check_until_settled(
    spec: StudySpec,
    strategies: Sequence[str] | str | None,
    repeats: int,
    max_repeats: Any,
    split: str = DEFAULT_SPLIT,
    margin: Any = DEFAULT_MARGIN,
) -> SettlePlan:
    """The until-settled plan of an experiment, refused (``SpecError``) when it could not run:
    a cap that is not a whole number above ``repeats`` and at most ``MAX_REPEATS``; a split
    other than ``"per_repeat"`` (the settled rule is the paired test, and only a new split per
    repeat pairs the strategies within a repeat); fewer than two strategies; a margin that is not
    a positive number; and a cap whose studies or trials would exceed
    ``config.max_experiment_studies()`` or ``config.max_experiment_trials()``."""
    chosen = parse_strategies(strategies)
    if isinstance(max_repeats, bool) or not isinstance(max_repeats, int) or not repeats < max_repeats <= MAX_REPEATS:
        raise SpecError(
            f"The cap on repeats must be a whole number above the {repeats} planned repeat(s) and at most "
            f"{MAX_REPEATS}, got {max_repeats!r}."
        )
    if check_split(split) != "per_repeat":
        raise SpecError(
            "Adding repeats until the verdict is settled needs a new split per repeat ('per_repeat'): the "
            "verdict is the paired test, and only then do the strategies of a repeat share its holdout and "
            "folds. With the same split for every repeat, run a fixed number of repeats instead."
        )
    if len(chosen) < 2:
        raise SpecError("Adding repeats until the verdict is settled needs at least two strategies to compare.")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin) or margin <= 0:
        raise SpecError(f"The equivalence margin must be a positive number in the metric's units, got {margin!r}.")
    n_studies, cap = len(chosen) * max_repeats, config.max_experiment_studies()
    if n_studies > cap:
        raise SpecError(
            f"Adding repeats up to {max_repeats} would make {len(chosen)} strategies x {max_repeats} repeats = "
            f"{n_studies} studies, over the limit of {cap} studies per experiment "
            "(HPDASH_MAX_EXPERIMENT_STUDIES). Lower the cap on repeats, pick fewer strategies, or raise "
            "HPDASH_MAX_EXPERIMENT_STUDIES."
        )
    try:
        _check_trial_total(spec, chosen, max_repeats)
    except SpecError as exc:
        raise SpecError(f"With repeats added up to the cap of {max_repeats}: {exc}") from exc
    return SettlePlan(planned=repeats, cap=max_repeats, margin=float(margin))


@dataclass(frozen=True)
class PairSettle:
    """One pair of strategies at a look: Holm-adjusted p of the difference and of equivalence."""

    a: str
    b: str
    n: int  # repeats where both have a best CV score
    p_difference: float
    p_equivalence: float
    outcome: str  # DIFFERENT, EQUIVALENT or OPEN

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "n": self.n,
            "p_difference": self.p_difference,
            "p_equivalence": self.p_equivalence,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class SettleVerdict:
    """Whether every pair of strategies is settled (``settle_verdict``)."""

    settled: bool
    pairs: list[PairSettle]
    alpha: float
    margin: float
    method: str

    @property
    def text(self) -> str:
        if self.settled:
            return "settled: " + "; ".join(f"{p.a} vs {p.b} {p.outcome}" for p in self.pairs) + "."
        open_pairs = [p for p in self.pairs if p.outcome == OPEN]
        return (
            "not settled: "
            + "; ".join(
                f"{p.a} vs {p.b} open (p = {p.p_difference:.3g} for a difference, {p.p_equivalence:.3g} for "
                f"equivalence within ±{self.margin:g}; {p.n} repeats)"
                for p in open_pairs
            )
            + f", at alpha {self.alpha:.3g}."
        )


def _zero_noise(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``d`` with differences that are only floating-point noise (|d| <= 1e-12 of the values) set to 0."""
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    return np.where(np.abs(d) <= 1e-12 * scale, 0.0, d)


def _one_sided(x: np.ndarray, alternative: str) -> float:
    """One-sided p of the signed-rank test that the median of ``x`` is below 0 ("less") or above
    ("greater"): half ``statistics.paired_test``'s two-sided p on the side the data lean to (the
    null is symmetric), at least 1/2 on the other side."""
    result = statistics.paired_test(x, np.zeros_like(x))
    if result.n == 0:
        return 1.0
    nonzero = x[x != 0]
    ranks = stats.rankdata(np.abs(nonzero))
    balance = float(ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum())
    toward = balance < 0 if alternative == "less" else balance > 0
    return result.p_value / 2 if toward else 1 - result.p_value / 2


def _holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``ps`` (in their order)."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted = [1.0] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def settle_verdict(
    bests: Mapping[str, Mapping[int, float | None]], margin: float, alpha: float = SETTLE_ALPHA
) -> SettleVerdict:
    """Whether the verdict on per-repeat best CV scores is settled at ``alpha``.

    ``bests``: strategy -> {repeat (its seed): best CV score, None when the run has none}.
    For every pair (a, b), on the repeats where both have a score, d = a - b (differences of
    floating-point noise are 0):

    - **different**: the two-sided exact Wilcoxon signed-rank test (``statistics.paired_test``)
      has a Holm-adjusted p (over the pairs) below ``alpha``;
    - **equivalent**: otherwise, both one-sided signed-rank tests of d - margin < 0 and
      d + margin > 0 reject (TOST; p the larger of the two, Holm-adjusted over the pairs) at
      ``alpha``: the difference is shown to lie within ±margin;
    - **open**: neither.

    Settled when no pair is open. The direction of the metric does not matter: both tests are
    symmetric in a and b.
    """
    pairs = []
    for a, b in itertools.combinations(list(bests), 2):
        both = [(bests[a][r], bests[b].get(r)) for r in sorted(bests[a])]
        kept = [(u, v) for u, v in both if u is not None and v is not None and math.isfinite(u) and math.isfinite(v)]
        x = np.array([u for u, _ in kept], dtype="float64")
        y = np.array([v for _, v in kept], dtype="float64")
        d = _zero_noise(x - y, x, y)
        if d.size == 0:
            pairs.append((a, b, 0, 1.0, 1.0))
            continue
        p_diff = statistics.paired_test(d, np.zeros_like(d)).p_value
        p_eq = max(_one_sided(d - margin, "less"), _one_sided(d + margin, "greater"))
        pairs.append((a, b, int(d.size), p_diff, p_eq))
    diff_adj = _holm([p[3] for p in pairs])
    eq_adj = _holm([p[4] for p in pairs])
    out = []
    for (a, b, n, _, _), p_diff, p_eq in zip(pairs, diff_adj, eq_adj):
        outcome = DIFFERENT if p_diff < alpha else EQUIVALENT if p_eq < alpha else OPEN
        out.append(PairSettle(a, b, n, p_diff, p_eq, outcome))
    method = (
        f"{SETTLE_TEST} (difference) and its two one-sided tests against ±{margin:g} (equivalence, TOST), "
        f"Holm-adjusted over {len(out)} pair{'s' if len(out) != 1 else ''}, at alpha {alpha:.3g}"
    )
    return SettleVerdict(all(p.outcome != OPEN for p in out), out, alpha, margin, method)


def _run_bests(store: Any, runs: Sequence[ExperimentRun]) -> dict[str, float | None]:
    """Each run's best CV score (its best COMPLETE trial; None without one or when deleted)."""
    out: dict[str, float | None] = {}
    for run in runs:
        try:
            value = store.get_best_trial(store.get_study_id_from_name(run.study)).value
        except (KeyError, ValueError):
            value = None
        out[run.study] = None if value is None else float(value)
    return out


def experiment_settle_verdict(
    experiment: Experiment, storage: str | None = None, *, store: Any = None
) -> SettleVerdict:
    """``settle_verdict`` of the experiment's runs now, at its plan's ``look_alpha`` and margin
    (``DEFAULT_MARGIN`` and ``SETTLE_ALPHA`` without a plan)."""
    opened = store is None
    if opened:
        store = open_storage(storage, heartbeat=False)
    try:
        values = _run_bests(store, experiment.runs)
    finally:
        if opened:
            store.engine.dispose()
    bests: dict[str, dict[int, float | None]] = {s: {} for s in experiment.strategies}
    for run in experiment.runs:  # a repeat's runs share its seed (split and sampler seeds move together)
        bests.setdefault(run.strategy, {})[run.seed] = values[run.study]
    plan = experiment.settle
    return settle_verdict(
        bests,
        plan.margin if plan is not None else DEFAULT_MARGIN,
        plan.look_alpha if plan is not None else SETTLE_ALPHA,
    )


def _record_settle(catalogue: Catalogue, experiment: Experiment, runs: Sequence[ExperimentRun] = ()) -> None:
    """Write the experiment's plan, looks and repeats (and its new runs) to the catalogue."""
    row: dict[str, Any] = {
        "name": experiment.name,
        "spec_json": _spec_json(experiment.spec, experiment.settle),
        "strategies": json.dumps(experiment.strategies),
        "repeats": experiment.repeats,
    }
    if experiment.created_at is not None:
        row["created_at"] = experiment.created_at
    catalogue.add_experiment(
        row, [{"experiment": experiment.name, "study": r.study, "strategy": r.strategy, "seed": r.seed} for r in runs]
    )


def _end_settle(
    catalogue: Catalogue, experiment: Experiment, outcome: str, say: Callable[[str], None]
) -> list[ExperimentRun]:
    assert experiment.settle is not None
    experiment.settle.outcome = outcome
    _record_settle(catalogue, experiment)
    say(f"until settled: {outcome}")
    return []


def _settle_look(
    experiment: Experiment, storage: str | None, store: Any, catalogue: Catalogue, say: Callable[[str], None]
) -> list[ExperimentRun]:
    """One look of an until-settled experiment whose studies have all ended: record the
    verdict; when it is not settled and the cap allows, create the next repeat of every
    strategy (recorded in the catalogue) and return its runs for the queue, else [] (with the
    reason in the plan's ``outcome``). Nothing is added after a stop of the experiment, or when
    a study did not finish."""
    plan = experiment.settle
    assert plan is not None
    if plan.outcome is not None:
        return []
    if _stop_requested(catalogue, experiment.name):
        return _end_settle(catalogue, experiment, "the experiment was stopped: no repeat added", say)
    progress = experiment_progress(experiment.name, storage, store=store)
    unfinished = {state: n for state, n in progress.counts.items() if n and state != "finished"}
    if unfinished:
        counts = ", ".join(f"{n} {state}" for state, n in unfinished.items())
        return _end_settle(catalogue, experiment, f"not every study finished ({counts}): no repeat added", say)
    verdict = experiment_settle_verdict(experiment, storage, store=store)
    plan.looks.append(
        {
            "repeats": experiment.repeats,
            "alpha": plan.look_alpha,
            "settled": verdict.settled,
            "pairs": [p.to_dict() for p in verdict.pairs],
        }
    )
    say(f"look {len(plan.looks)} of {plan.looks_planned} after {experiment.repeats} repeats: {verdict.text}")
    if verdict.settled:
        return _end_settle(catalogue, experiment, f"settled after {experiment.repeats} repeats", say)
    if experiment.repeats >= plan.cap:
        return _end_settle(
            catalogue, experiment, f"the cap of {plan.cap} repeats was reached with the verdict not settled", say
        )
    r = experiment.repeats
    split_seed, sampler_seed = repeat_seeds(experiment.spec, r + 1)[r]
    specs = [_repeat_spec(experiment.spec, s, split_seed, sampler_seed) for s in experiment.strategies]
    created: list[str] = []
    try:
        for one in specs:
            runner.create_study(one, storage)
            created.append(one.name)
    except BaseException as exc:  # the repeat is added whole or not at all
        for name in created:
            with contextlib.suppress(KeyError, HpdashError, OSError):
                optuna.delete_study(study_name=name, storage=store)
        if not isinstance(exc, HpdashError):
            raise
        return _end_settle(catalogue, experiment, f"could not add repeat {r + 1}: {exc}", say)
    runs = [ExperimentRun(s.name, s.strategy, s.seed) for s in specs]
    experiment.runs += runs
    experiment.repeats = r + 1
    try:
        _record_settle(catalogue, experiment, runs)
    except BaseException:  # studies the catalogue does not know would belong to no experiment
        for name in created:
            with contextlib.suppress(KeyError, HpdashError, OSError):
                optuna.delete_study(study_name=name, storage=store)
        raise
    say(f"until settled: added repeat {r + 1} of at most {plan.cap} (seed {sampler_seed})")
    if _stop_requested(catalogue, experiment.name):  # a stop that came in while they were created
        for run in runs:
            runner.stop_study(run.study, storage)
    return runs


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------
PROGRESS_STATES = ("queued", "running", "finished", "stopped", "failed", "lost", "missing")


@dataclass
class ExperimentProgress:
    """Where an experiment's studies are, for the Compare page.

    ``states`` maps each study to one of ``PROGRESS_STATES``: ``queued`` (created, not
    started, no stop flag), ``running`` (workers alive or starting), ``finished``,
    ``stopped``, ``failed`` (``errors`` has the message), ``lost`` (marked running but no
    worker alive and trials left) or ``missing`` (deleted from the storage).
    """

    name: str
    states: dict[str, str]
    errors: dict[str, str]
    queue: dict[str, Any] | None  # the catalogue's queue record, None when never queued
    queue_alive: bool

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)

    @property
    def total(self) -> int:
        return len(self.states)

    @property
    def queued(self) -> int:
        return self.count("queued")

    @property
    def running(self) -> int:
        return self.count("running")

    @property
    def finished(self) -> int:
        return self.count("finished")

    @property
    def stopped(self) -> int:
        return self.count("stopped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def lost(self) -> int:
        return self.count("lost")

    @property
    def missing(self) -> int:
        return self.count("missing")

    @property
    def counts(self) -> dict[str, int]:
        return {state: self.count(state) for state in PROGRESS_STATES}

    @property
    def active(self) -> bool:
        """Something is still happening: the queue is alive or a study runs."""
        return self.queue_alive or self.running > 0

    @property
    def stalled(self) -> bool:
        """Studies wait in the queue but no queue process runs (it was killed or failed):
        ``python -m hpdash queue ID --workers W`` starts them."""
        return self.queued > 0 and not self.queue_alive


_PROGRESS_KEYS = (runner.STATE_ATTR, runner.STOP_ATTR, runner.STARTED_ATTR, runner.BUDGET_ATTR, runner.ERROR_ATTR)


def _batch_attrs(store: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """The progress attrs (state, stop flag, start, budget, error, worker records) of every
    study in ``names`` that exists, in one query on Optuna's tables."""
    query = sqlalchemy.text(
        "SELECT s.study_name, a.key, a.value_json FROM studies s "
        "LEFT JOIN study_user_attributes a ON a.study_id = s.study_id "
        "AND (a.key IN :keys OR a.key LIKE :workers) WHERE s.study_name IN :names"
    ).bindparams(sqlalchemy.bindparam("keys", expanding=True), sqlalchemy.bindparam("names", expanding=True))
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(
            query, {"keys": list(_PROGRESS_KEYS), "workers": f"{runner.WORKER_PREFIX}%", "names": names}
        ).all()
    for study, key, value in rows:
        attrs = out.setdefault(study, {})
        if key is not None:
            attrs[key] = json.loads(value)
    return out


def _open_trials(store: Any, names: list[str]) -> dict[str, int]:
    """WAITING + RUNNING trials of each study in ``names`` (one query)."""
    query = sqlalchemy.text(
        "SELECT s.study_name, count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name IN :names AND t.state IN ('WAITING', 'RUNNING') GROUP BY s.study_name"
    ).bindparams(sqlalchemy.bindparam("names", expanding=True))
    with store.engine.connect() as conn:
        return {study: int(n) for study, n in conn.execute(query, {"names": names}).all()}


def _progress_state(attrs: dict[str, Any], now: float) -> str:
    """A study's progress state from its attrs; "check trials" when only its open trials can
    tell finished from lost (as ``runner.study_status`` does)."""
    state = attrs.get(runner.STATE_ATTR, "created")
    if state == "created":
        return "stopped" if attrs.get(runner.STOP_ATTR) else "queued"
    if state in ("finished", "stopped", "failed"):
        return state
    workers = runner.workers_of(SimpleNamespace(user_attrs=attrs))
    if any(w["alive"] for w in workers):
        return "running"
    started = attrs.get(runner.STARTED_ATTR)
    # Workers take a few seconds to import and register after a launch.
    if (
        started is not None
        and now - float(started) < runner.WORKER_LOST_SECONDS
        and not any(float(w.get("started", 0)) >= float(started) for w in workers)
    ):
        return "running"
    return "check trials"


def experiment_progress(name: str, storage: str | None = None, *, store: Any = None) -> ExperimentProgress:
    """Counts of queued / running / finished / stopped / failed (and lost, missing) studies of
    experiment ``name``, and whether its queue process is alive.

    Reads the catalogue (the experiment's studies and its queue record) and then every
    study's state in one query on one storage (plus one query for open trials when a study
    marked running has no live worker). ``store``: a storage this process already opened on
    ``storage`` (otherwise one is opened and closed again). Raises
    ``ExperimentNotFoundError`` for an unknown ID.
    """
    catalogue = Catalogue(storage=storage)
    if catalogue.get_experiment(name) is None:
        raise ExperimentNotFoundError(f"No experiment with ID {name!r} in {redact(config.storage_url(storage))}.")
    names = [row["study"] for row in catalogue.experiment_studies(name)]
    queue = catalogue.experiment_queue(name)
    catalogue.close()
    opened = store is None
    if opened:
        store = open_storage(storage, heartbeat=False)
    try:
        attrs = _batch_attrs(store, names) if names else {}
        now = time.time()
        states = {study: _progress_state(attrs[study], now) if study in attrs else "missing" for study in names}
        unsure = [study for study, state in states.items() if state == "check trials"]
        if unsure:
            open_trials = _open_trials(store, unsure)
            for study in unsure:
                budgeted = attrs[study].get(runner.BUDGET_ATTR) is not None
                states[study] = "finished" if budgeted and not open_trials.get(study) else "lost"
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"Could not read the progress of experiment {name!r} from "
            f"{redact(config.storage_url(storage))}: {exc}. Try again in a moment."
        ) from exc
    finally:
        if opened:
            store.engine.dispose()
    errors = {
        study: str(attrs[study][runner.ERROR_ATTR])
        for study, state in states.items()
        if state == "failed" and attrs.get(study, {}).get(runner.ERROR_ATTR)
    }
    return ExperimentProgress(name=name, states=states, errors=errors, queue=queue, queue_alive=queue_alive(queue))


@dataclass
class ExperimentBudget:
    """The budget of an experiment in trials, and in wall time when a trial time is known."""

    per_study: dict[str, int | None]  # strategy -> trials per study (grid: its own size)
    studies: int
    total_trials: int | None
    timeout_s: float | None
    total_s: float | None  # estimated wall time

    def describe(self) -> str:
        parts = [f"{self.studies} studies"]
        if self.total_trials is not None:
            parts.append(f"{self.total_trials} trials in all")
        text = ", ".join(parts)
        per = "; ".join(f"{k}: {'time budget' if v is None else v} trials/study" for k, v in self.per_study.items())
        text += f" ({per})"
        if self.total_s is not None:
            text += f"; about {_duration(self.total_s)} of wall time"
        if self.timeout_s is not None:
            text += f"; each study stops after {_duration(self.timeout_s)} at most"
        return text + "."


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def experiment_budget(
    spec: StudySpec,
    strategies: Sequence[str] | str | None = None,
    repeats: int = DEFAULT_REPEATS,
    per_trial_s: float | None = None,
    parallel: int = 1,
    grid_size: int | None = None,
) -> ExperimentBudget:
    """Trials per study and, given the time of one trial, the experiment's wall time.

    ``grid_size`` is the number of grid points (``space.grid_size`` summed over the models);
    without it a grid study is assumed to use the full trial budget. ``parallel`` is how many
    studies run at once.
    """
    chosen = parse_strategies(strategies)
    per: dict[str, int | None] = {}
    for s in chosen:
        n = spec.n_trials
        if s == "grid" and grid_size is not None:
            n = grid_size if n is None else min(n, grid_size)
        per[s] = n
    known = [v for v in per.values() if v is not None]
    total = sum(known) * repeats if len(known) == len(per) else None
    wall = None
    if per_trial_s is not None and total is not None:
        wall = per_trial_s * total / max(1, parallel)
        if spec.timeout is not None:
            wall = min(wall, spec.timeout * len(chosen) * repeats / max(1, parallel))
    elif per_trial_s is not None and spec.timeout is not None:
        wall = spec.timeout * len(chosen) * repeats / max(1, parallel)
    return ExperimentBudget(per, len(chosen) * repeats, total, spec.timeout, wall)


def grid_size_of(spec: StudySpec) -> int | None:
    """Number of grid points of the spec's space (None when it cannot be worked out yet)."""
    try:
        plan = runner.plan_study(spec.replace(strategy="grid"))
    except HpdashError:
        return None
    return sum(space.grid_size(s, spec.grid_points) for s in plan.spaces.values())
