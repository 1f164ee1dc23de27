"""Replaying strategies on recorded results (issue "Demo mode": "30 seeds in seconds").

The source is a real full grid study made here with hpdash's runner (not timed): a decision
tree on breast cancer, ``max_depth`` x ``min_samples_leaf`` (log) x ``criterion`` (``GRID_POINTS``
values per range), 5-fold CV. On its record:

- A, the replay: ``hpdash.explain.replay.replay`` of grid, random, TPE, GP and QMC, 30 seeds
  each, 100 trials, the nearest recorded configuration, a pool of one process per usable CPU;
  wall time from the call to the ``Comparison``. The first call in this process also starts
  the pool's forkserver (which imports hpdash once); it is timed and shown on its own row, and
  the target row takes the median of the calls after it (in ``quick`` mode, the first call).
- B, the same trials live: the same samplers with the same seeds, each suggestion snapped to
  the same grid point, but its score from a real cross-validated fit of that point
  (``objective.cross_validate_params``, what the runner's objective calls) instead of the
  record. Measured in this process on ``LIVE_SEEDS`` seeds of each strategy, and scaled to 30
  seeds on the pool's processes as if they divided it perfectly (the live side's best case).
  Its trials are checked to be the replay's: the same configurations with the same scores.

The target: the replay in at most 10 s. Also informational: the replay without the GP, and
each strategy's share of the computation (the GP fits a Gaussian process per trial).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import optuna

from bench.common import Report, fmt_s, median_time

TARGET_SECONDS = 10.0
SEEDS, TRIALS = 30, 100
STRATEGIES = ("grid", "random", "tpe", "gp", "qmc")
GRID_POINTS = 10
SPEC = {
    "name": "bench-replay-grid",
    "dataset": "sklearn:breast_cancer",
    "target": "target",
    "model": "decision_tree",
    "strategy": "grid",
    "grid_points": GRID_POINTS,
    "n_trials": None,
    "space": {
        "max_depth": {"type": "int", "low": 1, "high": 20},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 50, "log": True},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    },
    "cv": {"folds": 5},
    "seed": 0,
}


def _source(workdir: Path) -> tuple[Any, Any]:
    """The full grid study (made once, with its fits) and the problem its trials were fit on."""
    from hpdash import runner
    from hpdash.spec import parse_spec

    os.environ["HPDASH_DATA_DIR"] = str(workdir / "replay-data")
    spec = parse_spec(SPEC)
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    problem = plan.problem()
    runner.run_here(spec.name, problem=problem)
    return runner.load_study(spec.name), problem


def _live_oracle(recorded: Any, problem: Any) -> Any:
    """The live side's answers: the grid point the replay would answer with, fitted for real."""
    from hpdash import objective, space
    from hpdash.explain.record import Answer, Oracle

    class LiveOracle(Oracle):
        def __init__(self) -> None:
            super().__init__(recorded)
            self.name = "live fit of the nearest grid point"

        def answer(self, params: dict[str, Any]) -> Answer:
            point = super().answer(params)
            model, plain = space.decode_params(point.params, list(problem.spaces))
            start = time.perf_counter()
            result = objective.cross_validate_params(problem, model, plain)
            return Answer(point.params, result.mean, time.perf_counter() - start, point.record, point.attrs)

    return LiveOracle()


def _trials(comparison: Any) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
    """(strategy, seed) -> each trial's (params..., value), in trial order."""
    params = [c for c in comparison.frame.columns if str(c).startswith("params_")]
    out: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for (strategy, seed), rows in comparison.frame.groupby(["strategy", "seed"], sort=False):
        out[(str(strategy), int(seed))] = [tuple(r) for r in rows[[*params, "value"]].itertuples(index=False)]
    return out


def _shares(comparison: Any) -> dict[str, float]:
    """Seconds each strategy's runs took in their processes, summed over its seeds."""
    shares: dict[str, float] = {}
    for run in comparison.runs:
        seconds = comparison.studies[run.study].user_attrs["hpdash.replay"]["seconds"]
        shares[run.strategy] = shares.get(run.strategy, 0.0) + float(seconds)
    return shares


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    from hpdash import config
    from hpdash.explain import replay

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    live_seeds = 1 if quick else 3
    source, problem = _source(workdir)
    recorded = replay.recorded_results(source)
    processes = min(config.max_workers(), len(STRATEGIES) * SEEDS)

    def replay_all(strategies: tuple[str, ...] = STRATEGIES) -> Any:
        return replay.replay(recorded, strategies, SEEDS, TRIALS, processes=processes)

    start = time.perf_counter()
    replayed = replay_all()
    cold = time.perf_counter() - start
    warm = cold
    if not quick:
        warm, replayed = median_time(replay_all, repeats=2)
    without_gp, _ = median_time(lambda: replay_all(tuple(s for s in STRATEGIES if s != "gp")), repeats=1)

    start = time.perf_counter()
    live = replay.replay(
        recorded, STRATEGIES, list(range(live_seeds)), TRIALS, oracle=_live_oracle(recorded, problem), processes=1
    )
    live_measured = time.perf_counter() - start
    live_estimate = live_measured * SEEDS / live_seeds / processes
    replayed_trials, live_trials = _trials(replayed), _trials(live)
    same = all(replayed_trials[key] == trials for key, trials in live_trials.items())

    report.add(
        f"replay {SEEDS} seeds x {len(STRATEGIES)} strategies ({', '.join(STRATEGIES)}) x {TRIALS} trials on a "
        f"{len(recorded)}-point grid's records, {processes} processes (same trials as live: {same})",
        fmt_s(warm),
        f"{fmt_s(live_estimate)} the same trials live (est.)",
        f"{live_estimate / warm:.0f}x faster",
        f"<= {TARGET_SECONDS:g} s",
        warm <= TARGET_SECONDS and same,
    )
    report.add(
        "replay, first call in a fresh process (starts the pool's forkserver)",
        fmt_s(cold),
        "-",
        "-",
        "informational",
        None,
    )
    report.add(
        f"replay without gp ({SEEDS} x {len(STRATEGIES) - 1} strategies x {TRIALS} trials)",
        fmt_s(without_gp),
        "-",
        "-",
        "informational",
        None,
    )
    shares = _shares(replayed)
    total = sum(shares.values())
    report.notes.append(
        f"replay: computation per strategy over {SEEDS} seeds, summed over the processes: "
        + ", ".join(f"{s} {fmt_s(v)} ({v / total:.0%})" for s, v in shares.items())
        + f"; {fmt_s(total)} in all on {processes} processes."
    )
    fits = statistics.median(float(d) for d in recorded.durations)
    report.notes.append(
        f"live: {live_seeds} seed(s) of each strategy took {fmt_s(live_measured)} in one process (a fit of the "
        f"grid's median point takes {fmt_s(fits)}); scaled to {SEEDS} seeds on {processes} processes as if "
        "they divided it perfectly."
    )


if __name__ == "__main__":  # python -m bench.replay [--quick]: this benchmark alone
    import sys
    import tempfile

    from bench.common import machine

    print(f"replay on recorded results, on {machine()}", flush=True)
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="hpdash-bench-") as tmp:
        run(rep, Path(tmp), quick="--quick" in sys.argv)
    print(rep.table())
    for note in rep.notes:
        print(f"- {note}")
