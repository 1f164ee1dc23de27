"""Experiments: the same problem run by several strategies, each with several seeds.

An experiment is S strategies x R repeats studies that share the dataset, model, search space
and evaluation protocol, and differ only in strategy and seed. Its ID is the spec's ``name``;
its studies are ``<name>-<strategy>-s<seed>`` with seeds ``spec.seed .. spec.seed + R - 1``,
and every study gets the same trial budget (``spec.n_trials``) and time budget.

Grid studies are the exception by design: a grid has as many points as it has, so
- a grid *larger* than the budget is cut: the runner shuffles the grid points with the study
  seed (a seeded random permutation, recorded in the ``hpdash.grid_order`` study attr) and
  runs the first ``n_trials`` of them, so each grid repeat evaluates a different random subset;
- a grid *smaller* than the budget runs every point once and stops early; its best-so-far
  curve then stays flat after its last trial (see ``hpdash.compare``).
``grid_note`` states which case applies, and the report shows it.

The experiment and its studies are recorded in the catalogue (``hpdash_experiments`` and
``hpdash_experiment_studies``), so the Compare page and the CLI find them by ID.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from hpdash import config, runner, space
from hpdash.errors import HpdashError, SpecError, StudyNotFoundError
from hpdash.spec import STRATEGIES, StudySpec, check_name, parse_spec
from hpdash.storage import open_storage
from hpdash.store import Catalogue

DEFAULT_STRATEGIES: tuple[str, ...] = ("grid", "random", "tpe", "gp")
DEFAULT_REPEATS = 3
MAX_REPEATS = 20


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
    items = [s.strip().lower() for s in value.split(",")] if isinstance(value, str) else [str(s).strip().lower() for s in value]
    items = [s for s in items if s]
    if not items:
        raise SpecError("Pick at least one strategy to compare.")
    unknown = [s for s in items if s not in STRATEGIES]
    if unknown:
        raise SpecError(f"Unknown strategy {unknown[0]!r}: choose from {', '.join(STRATEGIES)}.")
    if len(set(items)) != len(items):
        raise SpecError("A strategy is listed twice.")
    return items


def plan_experiment(spec: StudySpec, strategies: Sequence[str] | str | None = None,
                    repeats: int = DEFAULT_REPEATS) -> list[StudySpec]:
    """The study specs of an experiment: one per (strategy, seed), same budget and protocol.

    Raises ``SpecError`` for bad strategies, repeats or a budget that is not the same for all.
    """
    check_name(spec.name, "experiment ID")
    chosen = parse_strategies(strategies)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise SpecError(f"Repeats must be a whole number from 1 to {MAX_REPEATS}, got {repeats!r}.")
    if spec.n_trials is None and spec.timeout is None:
        raise SpecError("An experiment needs the same budget for every strategy: set 'n_trials' "
                        "(and/or 'timeout').")
    specs = []
    for strategy in chosen:
        for seed in range(spec.seed, spec.seed + repeats):
            specs.append(spec.replace(name=study_name(spec.name, strategy, seed),
                                      strategy=strategy, seed=seed))
    return specs


def grid_note(grid_order: dict[str, Any] | None, n_trials: int | None, seed: int | None = None) -> str:
    """Plain-English account of how a grid study was ordered and cut (from ``hpdash.grid_order``)."""
    if not grid_order:
        return ""
    size = int(grid_order.get("grid_size", 0))
    budget = int(grid_order.get("budget", size))
    seeded = f" (seed {seed})" if seed is not None else ""
    order = grid_order.get("order", "seeded random permutation")
    if grid_order.get("cut"):
        return (f"The grid has {size} points, more than the budget of {budget} trials: the points are "
                f"visited in a {order}{seeded} and the first {budget} are run, so this grid study "
                f"covers a random {budget}/{size} subset of the grid.")
    if n_trials is not None and size < n_trials:
        return (f"The grid has {size} points, fewer than the budget of {n_trials} trials: every point "
                f"is run once (in a {order}{seeded}) and the study stops after {size} trials; its "
                "best-so-far stays flat after that.")
    return f"The grid has {size} points, all run once, in a {order}{seeded}."


def experiment_exists(name: str, storage: str | None = None) -> bool:
    """Whether the catalogue has an experiment of that ID."""
    return any(row["name"] == name for row in Catalogue(config.catalogue_path(storage)).list_experiments())


def create_experiment(spec: StudySpec, strategies: Sequence[str] | str | None = None,
                      repeats: int = DEFAULT_REPEATS, storage: str | None = None) -> Experiment:
    """Create the S x R studies (with their budget slots) and record the experiment.

    Everything is checked before anything is created: the ID, every study name and the
    plan of the first study (dataset, model, space, metric). If creating a later study fails,
    the studies created so far are deleted again.
    """
    specs = plan_experiment(spec, strategies, repeats)
    if experiment_exists(spec.name, storage):
        raise SpecError(f"An experiment with ID {spec.name!r} already exists. Pick another name.")
    existing = set(optuna.get_all_study_names(storage=open_storage(storage, heartbeat=False)))
    clash = [s.name for s in specs if s.name in existing]
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
    Catalogue(config.catalogue_path(storage)).add_experiment(
        {"name": spec.name, "spec_json": json.dumps(spec.to_dict()), "strategies": json.dumps(chosen),
         "repeats": repeats},
        [{"experiment": spec.name, "study": r.study, "strategy": r.strategy, "seed": r.seed} for r in runs],
    )
    return load_experiment(spec.name, storage)


def list_experiments(storage: str | None = None) -> list[dict[str, Any]]:
    """Catalogue rows of every experiment, newest first (name, strategies, repeats, created_at)."""
    rows = Catalogue(config.catalogue_path(storage)).list_experiments()
    return [{**row, "strategies": json.loads(row["strategies"] or "[]")} for row in rows]


def load_experiment(name: str, storage: str | None = None) -> Experiment:
    """An experiment by ID, with its runs ordered by strategy (as chosen) then seed."""
    catalogue = Catalogue(config.catalogue_path(storage))
    rows = [r for r in catalogue.list_experiments() if r["name"] == name]
    if not rows:
        raise ExperimentNotFoundError(f"No experiment with ID {name!r} in {config.storage_url(storage)}.")
    row = rows[0]
    chosen = json.loads(row["strategies"] or "[]")
    order = {s: i for i, s in enumerate(chosen)}
    runs = [ExperimentRun(r["study"], r["strategy"], int(r["seed"])) for r in catalogue.experiment_studies(name)]
    runs.sort(key=lambda r: (order.get(r.strategy, len(order)), r.seed))
    return Experiment(name=name, spec=parse_spec(json.loads(row["spec_json"])), strategies=chosen,
                      repeats=int(row["repeats"]), runs=runs, created_at=row.get("created_at"))


def launch_experiment(name: str, storage: str | None = None, workers: int = 1) -> list[subprocess.Popen]:
    """Start ``workers`` detached worker processes for every study of the experiment at once.

    All studies start together, so they share the machine equally and their wall times stay
    comparable with each other (not with a study run alone). Returns at once.
    """
    experiment = load_experiment(name, storage)
    procs: list[subprocess.Popen] = []
    for run in experiment.runs:
        procs += runner.launch_workers(run.study, storage, workers)
    return procs


def run_experiment(name: str, storage: str | None = None, workers: int = 1,
                   parallel: int | None = None, poll: Callable[[], None] | None = None,
                   interval: float = 0.5) -> list[int]:
    """Run every study of the experiment to its end and wait (the CLI's headless mode).

    At most ``parallel`` studies run at the same time (default: the number of CPUs divided by
    ``workers``, at least 1); the studies are started interleaved across strategies (seed by
    seed), so every strategy meets the same machine load. Returns the worker exit codes.
    """
    experiment = load_experiment(name, storage)
    limit = parallel or max(1, (os.cpu_count() or 1) // max(1, workers))
    by_seed = sorted(experiment.runs, key=lambda r: (r.seed, experiment.strategies.index(r.strategy)
                                                      if r.strategy in experiment.strategies else 0))
    queue = list(by_seed)
    active: list[list[subprocess.Popen]] = []
    codes: list[int] = []
    while queue or active:
        still = []
        for group in active:
            if any(p.poll() is None for p in group):
                still.append(group)
            else:
                codes += [p.returncode for p in group]
        active = still
        while queue and len(active) < limit:
            active.append(runner.launch_workers(queue.pop(0).study, storage, workers))
        if poll:
            poll()
        if active:
            time.sleep(interval)
    if poll:
        poll()
    return codes


def stop_experiment(name: str, storage: str | None = None) -> None:
    """Ask every running study of the experiment to stop."""
    for run in load_experiment(name, storage).runs:
        try:
            runner.stop_study(run.study, storage)
        except StudyNotFoundError:
            pass


@dataclass
class LaunchedExperiment:
    """What ``compare_strategies`` returns to the New study page."""

    experiment: Experiment
    processes: list[subprocess.Popen]

    @property
    def name(self) -> str:
        return self.experiment.name


def compare_strategies(spec: StudySpec, strategies: Sequence[str] | str | None = DEFAULT_STRATEGIES,
                       repeats: int = DEFAULT_REPEATS, workers: int = 1,
                       storage: str | None = None) -> LaunchedExperiment:
    """"Compare strategies" on the New study page: create the S x R studies and start them.

    ``spec.name`` becomes the experiment ID, ``spec.strategy`` is ignored and ``spec.seed`` is
    the first seed. Workers run detached; open ``pages/compare.py?experiment=<ID>`` to watch.
    """
    experiment = create_experiment(spec, strategies, repeats, storage)
    return LaunchedExperiment(experiment, launch_experiment(experiment.name, storage, workers))


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


def experiment_budget(spec: StudySpec, strategies: Sequence[str] | str | None = None,
                      repeats: int = DEFAULT_REPEATS, per_trial_s: float | None = None,
                      parallel: int = 1, grid_size: int | None = None) -> ExperimentBudget:
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
    total = None if any(v is None for v in per.values()) else sum(per.values()) * repeats  # type: ignore[misc]
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
