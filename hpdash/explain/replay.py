"""Strategies replayed on a dense study's recorded results: many seeds, no model fitted.

``replay`` runs every strategy with every seed as the runner would, and answers each suggestion
from a dense study's record (``hpdash.explain.record``: ``recorded_results``, ``Oracle``)
instead of fitting a model, so R repeats of S strategies cost no fit:

- the real sampler of the run's spec (``strategies.sampler_for``: TPE, hpdash's GP, QMC,
  random, CMA-ES; each simulated worker its own, seeded as a live worker's) on an in-memory
  study, through ``study.ask()``, ``space.suggest`` (what the live objective calls, so the
  sampler sees the same calls) and ``study.tell()``. Grid is the runner's: the points of the
  spec's grid in its seeded permutation (``default_rng(sampler_seed)``), cut to the budget and
  enqueued as its budget slots are;
- with the nearest oracle (the default) the trial's params are set to the recorded
  configuration that answers it before it is told or another worker asks, so the sampler
  learns from the points of the record and a replayed trial is a recorded trial, with its
  recorded value and fold details. As only recorded configurations can be answered, hpdash's
  GP maximises its expected improvement over them (``GPSampler.set_candidates``: the exact
  argmax over what can be answered); its GP fit is its own, unchanged;
- time: a trial takes the recorded duration of the configuration that answered it. With
  ``workers=k`` simulated workers each asks as soon as its previous trial is done in simulated
  time, so k trials are RUNNING at once (TPE's constant liar and the GP's pending points act
  as with real workers), and trials are told in order of simulated completion.

The result is an ordinary ``hpdash.compare.Comparison`` (curves, bands, time to target, tests,
verdict: ``compare.analyse_comparison``) titled "... replayed on recorded results of <source>
..." with the oracle named. Its studies, ``<source>-replay-<strategy>-s<seed>``, carry the user
attrs a stored study of that run would (spec, sampler, metric, space, grid order) and
``REPLAY_ATTR``. Nothing is written to any storage: a replay is computed, not stored, and its
studies live in ``InMemoryStorage``.

Speed: the runs are spread over a process pool (``processes``; a forkserver that imports this
module once), each process building the oracle once; the dearest strategies start first. What
is left is the samplers' own work, which a replay keeps: on 2 cores, 30 seeds x (grid, random,
TPE, GP, QMC) x 100 trials take about 21 s (``bench/replay.py``), 81% of it hpdash's GP
fitting a Gaussian process for each trial (about 1.1 s a run); without the GP about 5 s.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.context import BaseContext
from typing import Any

import numpy as np
import optuna
import pandas as pd

from hpdash import attrs as study_attrs
from hpdash import config, experiments, gp_sampler, results, runtime, space, vocabulary
from hpdash import strategies as sampling
from hpdash.compare import FRAME_DESIGN, Comparison, FrameDesign, design_record, differences, experiment_frame
from hpdash.compare import split_seed_of as compared_split_seed
from hpdash.explain.record import (
    MIN_DENSE_TRIALS,
    NEAREST,
    ORACLES,
    SURROGATE,
    Oracle,
    Recorded,
    ReplayError,
    load_recorded,
    recorded_results,
    replay_problem,
)
from hpdash.spec import StudySpec
from hpdash.storage import trial_id

__all__ = [
    "DEFAULT_STRATEGIES",
    "MIN_DENSE_TRIALS",
    "NEAREST",
    "ORACLES",
    "REPLAYED",
    "REPLAY_ATTR",
    "SURROGATE",
    "Oracle",
    "Recorded",
    "ReplayError",
    "load_recorded",
    "recorded_results",
    "replay",
    "replay_info",
    "replay_problem",
    "run_name",
]

REPLAYED = "replayed on recorded results"
DEFAULT_STRATEGIES = ("grid", "random", "tpe", "gp", "qmc")
MAX_TRIALS, MAX_SEEDS, MAX_WORKERS = 1000, 100, 32
#: Seconds one replayed trial costs, by strategy (measured here at 100 trials on 2 cores: the
#: GP fits a Gaussian process per trial, TPE its Parzen estimators, the rest next to nothing).
ASK_SECONDS = {"gp": 0.012, "gp_torch": 0.05, "cmaes": 0.005, "tpe": 0.0025, "qmc": 0.001, "random": 0.0005}
#: Below this much estimated computation the runs go in this process: starting a pool (its
#: forkserver imports hpdash, about 3 s the first time) would cost more than it saves.
POOL_MIN_SECONDS = 3.0
#: Study user attr of a replayed study (never stored): source, record, oracle, simulated workers.
REPLAY_ATTR = study_attrs.REPLAY


# ------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class _Task:
    strategy: str
    seed: int
    n_trials: int
    workers: int


@dataclass
class _Run:
    """One replayed run, as a pool process hands it back: its study's storage and frame."""

    name: str
    strategy: str
    seed: int
    spec: StudySpec
    storage: optuna.storages.InMemoryStorage
    frame: pd.DataFrame
    attrs: dict[str, Any]


def run_name(source: str, strategy: str, seed: int) -> str:
    """``<source>-replay-<strategy>-s<seed>``, the source cut to keep within a study name."""
    suffix = f"-replay-{strategy}-s{seed}"
    return source[: 100 - len(suffix)] + suffix


def _run_spec(recorded: Recorded, task: _Task) -> StudySpec:
    """The spec a live study of this run would have: the source's, with the run's strategy,
    sampler seed and budget, on the source's data split (the record is of that split)."""
    return recorded.spec.replace(
        name=run_name(recorded.source, task.strategy, task.seed),
        strategy=task.strategy,
        sampler_seed=task.seed,
        split_seed=recorded.spec.split_seed,
        n_trials=task.n_trials,
        timeout=None,
    )


def _sampler(spec: StudySpec, worker: int, oracle: Oracle) -> optuna.samplers.BaseSampler:
    sampler = sampling.sampler_for(spec, worker)
    if isinstance(sampler, gp_sampler.GPSampler):
        sampler.set_candidates(oracle.candidates)
    return sampler


def _grid(recorded: Recorded, spec: StudySpec) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The grid points a live grid study of ``spec`` runs, in the runner's seeded order and
    cut to its budget, with the ``hpdash.grid_order`` record the runner writes for them."""
    points = space.grid_points(recorded.spaces, spec.grid_points)
    order = np.random.default_rng(spec.sampler_seed).permutation(len(points))
    budget = min(spec.n_trials or len(points), len(points))
    record = {"grid_size": len(points), "budget": budget, "order": "seeded random permutation"}
    return [points[int(i)] for i in order[:budget]], {**record, "cut": budget < len(points)}


def _simulate(recorded: Recorded, oracle: Oracle, task: _Task) -> _Run:
    """Run one strategy with one seed against the record with ``task.workers`` simulated
    workers (see the module docstring); its study, with simulated times, and its frame."""
    began = time.perf_counter()
    spec = _run_spec(recorded, task)
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(
        storage=storage, study_name=spec.name, direction=recorded.direction, sampler=_sampler(spec, 0, oracle)
    )
    studies = [first] + [
        optuna.load_study(study_name=spec.name, storage=storage, sampler=_sampler(spec, w, oracle))
        for w in range(1, task.workers)
    ]
    budget, grid = spec.n_trials or 0, None
    if task.strategy == "grid":
        points, grid = _grid(recorded, spec)
        budget = len(points)
        for point in points:  # the runner's budget slots: each point once, in its order
            first.enqueue_trial(point)
    running: list[tuple[float, int, int, optuna.Trial, float]] = []
    times: dict[int, tuple[float, float]] = {}

    def ask(worker: int, now: float) -> None:
        trial = studies[worker].ask()
        space.suggest(trial, recorded.spaces)  # what the live objective asks the sampler
        suggested = trial.params
        answer = oracle.answer(suggested)
        for name, value in answer.params.items():
            if suggested[name] != value:  # told as the recorded configuration
                dist = trial.distributions[name]
                storage.set_trial_param(trial_id(trial), name, dist.to_internal_repr(value), dist)
        for key, value in answer.attrs.items():
            trial.set_user_attr(key, value)
        if answer.record is not None:
            trial.set_user_attr("replayed_from", recorded.numbers[answer.record])
        heapq.heappush(running, (now + answer.duration, trial.number, worker, trial, answer.value))
        times[trial.number] = (now, now + answer.duration)

    for worker in range(min(task.workers, budget)):
        ask(worker, 0.0)
    asked = len(running)
    while running:
        done, _, worker, trial, value = heapq.heappop(running)
        studies[worker].tell(trial, value)
        if asked < budget:
            ask(worker, done)
            asked += 1
    # The simulated times, written on the finished trials of this private storage in place
    # (no sampler reads it any more): Optuna stamps the wall clock and offers no setter, and a
    # copy through ``add_trials`` deep-copies every trial (half the cost of a random run).
    t0 = recorded.started
    for t in first.get_trials(deepcopy=False):
        start, done = times[t.number]
        t.datetime_start, t.datetime_complete = t0 + timedelta(seconds=start), t0 + timedelta(seconds=done)
    attrs: dict[str, Any] = {
        **recorded.attrs,
        study_attrs.SPEC: spec.to_dict(),
        study_attrs.SAMPLER: sampling.sampler_record(spec),
        study_attrs.STATE: "finished",
        study_attrs.BUDGET: budget,
        REPLAY_ATTR: {
            "source": recorded.source,
            "record": recorded.kind,
            "oracle": oracle.name,
            "workers": task.workers,
            "stored": False,
            "seconds": time.perf_counter() - began,  # this run's computation, in its process
        },
    }
    if grid is not None:
        attrs[study_attrs.GRID] = grid
    for key, value in attrs.items():
        first.set_user_attr(key, value)
    frame = experiment_frame([(first, task.strategy, task.seed)])
    return _Run(spec.name, task.strategy, task.seed, spec, storage, frame, attrs)


# ------------------------------------------------------------------------------ many runs
_PROCESS: dict[str, Any] = {}  # a pool process's record and oracle, set once by ``_start``


def _start(recorded: Recorded, oracle: str | Oracle) -> None:
    """A pool process's start: quiet Optuna, the record and its oracle, and an exit as soon
    as the process that started the pool is gone (killed mid-replay, it cannot read the runs,
    and a process blocked sending one back would otherwise wait for ever)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _PROCESS["recorded"] = recorded
    _PROCESS["oracle"] = oracle if isinstance(oracle, Oracle) else Oracle(recorded, oracle)


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(1)


def _pooled(task: _Task) -> _Run:
    return _simulate(_PROCESS["recorded"], _PROCESS["oracle"], task)


def _cost(task: _Task) -> float:
    """The estimated seconds of one run (``ASK_SECONDS``; grid and unknown: the cheapest)."""
    return task.n_trials * ASK_SECONDS.get(task.strategy, ASK_SECONDS["random"])


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    chosen = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not chosen or len(chosen) > MAX_SEEDS or len(set(chosen)) < len(chosen) or min(chosen) < 0:
        raise ReplayError(f"Give 1 to {MAX_SEEDS} different seeds, none negative (got {seeds!r}).")
    return chosen


def replay(
    recorded: Recorded,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int | Sequence[int] = 30,
    n_trials: int = 100,
    *,
    workers: int = 1,
    oracle: str | Oracle = NEAREST,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Comparison:
    """Replay each strategy with each seed (an int R: seeds 0..R-1) for ``n_trials`` trials
    against ``recorded``, answered by ``oracle`` (a key of ``ORACLES``, or an ``Oracle``) with
    ``workers`` simulated parallel workers; an ordinary comparison labelled ``REPLAYED`` (see
    the module docstring).

    ``processes``: pool processes (None: ``config.max_workers()``, or this process alone when
    the runs are estimated (``ASK_SECONDS``) to take less than ``POOL_MIN_SECONDS``; 1: this
    process). The runs are deterministic, so the count
    changes the time only. ``progress(done, total)`` is called here as each run ends.
    Nothing is stored."""
    chosen = _seeds(seeds)
    names = list(dict.fromkeys(strategies))
    if not 1 <= int(n_trials) <= MAX_TRIALS or not 1 <= int(workers) <= MAX_WORKERS:
        raise ReplayError(f"A replay runs 1 to {MAX_TRIALS} trials with 1 to {MAX_WORKERS} simulated workers.")
    # An unknown oracle is refused before anything runs.
    answers = oracle if isinstance(oracle, Oracle) else Oracle(recorded, oracle)
    sampling.check_comparison(recorded.spec.replace(n_trials=int(n_trials), timeout=None), names)
    tasks = [_Task(s, seed, int(n_trials), int(workers)) for s in names for seed in chosen]
    if processes is None:
        estimate = sum(_cost(t) for t in tasks)
        processes = 1 if estimate < POOL_MIN_SECONDS else min(config.max_workers(), len(tasks))
    done: dict[_Task, _Run] = {}
    if processes <= 1:
        for task in tasks:
            done[task] = _simulate(recorded, answers, task)
            if progress is not None:
                progress(len(done), len(tasks))
    else:
        dearest = sorted(tasks, key=_cost, reverse=True)  # started first, so the processes end together
        # A forkserver, not fork: the caller may be a threaded server (Streamlit), and a fork
        # copies whatever locks its other threads hold. It imports this module once.
        context: BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
        else:  # Windows
            context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            processes, mp_context=context, initializer=_start, initargs=(recorded, answers)
        ) as pool:
            # The pool's processes start with the first submissions.
            with runtime.children_import(__name__):
                futures = {pool.submit(_pooled, task): task for task in dearest}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if progress is not None:
                    progress(len(done), len(tasks))
    return _comparison(recorded, [done[t] for t in tasks], answers, int(workers), chosen, int(n_trials))


def _comparison(
    recorded: Recorded, runs: list[_Run], oracle: Oracle, workers: int, seeds: list[int], n_trials: int
) -> Comparison:
    """The runs as the Compare page's ``Comparison`` (what ``compare.loading`` builds from stored
    studies, here from the runs' in-memory studies, each with the sampler of its worker 0, so
    ``GPSampler.surrogate`` rebuilds the GP a replayed trial was chosen by)."""
    studies = {
        r.name: optuna.load_study(study_name=r.name, storage=r.storage, sampler=_sampler(r.spec, 0, oracle))
        for r in runs
    }
    records = {r.name: design_record(r.attrs, recorded.direction) for r in runs}
    found = differences(list(records.values()))
    split_seeds = {name: compared_split_seed(record) for name, record in records.items()}
    frame = pd.concat([r.frame for r in runs], ignore_index=True)
    params = sorted(c for c in frame.columns if str(c).startswith(results.PARAM_PREFIX))
    frame = frame[["study", "strategy", "seed", *results.BASE_COLUMNS, *params]]
    frame.attrs[FRAME_DESIGN] = FrameDesign(dict(split_seeds), tuple(found), recorded.metric)
    notes = {
        r.name: experiments.grid_note(r.attrs[study_attrs.GRID], n_trials, r.seed)
        for r in runs
        if study_attrs.GRID in r.attrs
    }
    labels = ", ".join(vocabulary.strategy_name(s) for s in dict.fromkeys(r.strategy for r in runs))
    title = (
        f"{labels} {REPLAYED} of {recorded.source} ({recorded.kind}): {len(seeds)} seed{'s' if len(seeds) != 1 else ''} x "
        f"{n_trials} trials, each answered by the {oracle.name}, {workers} simulated worker{'s' if workers != 1 else ''}; computed, not stored"
    )
    base = recorded.spec.replace(name=recorded.source[:93] + "-replay", n_trials=n_trials, timeout=None)
    return Comparison(
        title=title,
        frame=frame,
        runs=[experiments.ExperimentRun(r.name, r.strategy, r.seed) for r in runs],
        direction=recorded.direction,
        metric=recorded.metric,
        spec=base,
        holdout={r.name: None for r in runs},
        grid_notes=notes,
        studies=studies,
        differences=found,
        split_seeds=split_seeds,
        records=records,
    )


def replay_info(comparison: Comparison) -> dict[str, Any] | None:
    """What a replayed comparison was replayed on (``REPLAY_ATTR``: source, record, oracle,
    simulated workers), None for a comparison of stored studies."""
    for study in comparison.studies.values():
        info = study.user_attrs.get(REPLAY_ATTR)
        return dict(info) if isinstance(info, dict) else None
    return None
