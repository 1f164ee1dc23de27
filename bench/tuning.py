"""Tuning overhead: an hpdash grid study on SQLite against GridSearchCV(n_jobs=1).

Same pipeline (hpdash's preprocessing + estimator), same CV folds, same grid, same metric;
GridSearchCV refits the best model (refit=True) as hpdash's worker does when the study ends.
hpdash's wall time runs from launching the workers to their exit (worker start-up, data
loading, every trial, the refit); creating the study is reported on its own.
Also: the storage overhead per trial for a trivial objective, to show where the time goes.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from bench.common import Report, fmt_s

SPACE = {"n_estimators": {"type": "int", "low": 20, "high": 50},
         "max_depth": {"type": "int", "low": 2, "high": 8}}
BASE_SPEC = {"dataset": "sklearn:breast_cancer", "target": "target", "model": "random_forest",
             "strategy": "grid", "grid_points": 6, "n_trials": None, "space": SPACE,
             "cv": {"folds": 5}, "seed": 0}


def _grid_search(spec_raw: dict[str, Any]) -> tuple[float, dict[tuple, float]]:
    from sklearn.model_selection import GridSearchCV

    from hpdash import models, runner
    from hpdash.spec import parse_spec

    spec = parse_spec({**spec_raw, "name": "gs"})
    problem = runner.load_problem(spec, None)
    plan = runner.plan_study(spec)
    points = plan.grid()
    candidates = [models.make_estimator("random_forest", problem.task, p, seed=spec.seed)
                  for p in points]
    search = GridSearchCV(problem.pipeline("random_forest", {}), {"model": candidates},
                          cv=problem.splits, scoring=problem.metric, n_jobs=1, refit=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(problem.X_train, problem.y_train)
    wall = time.perf_counter() - start
    scores = {tuple(sorted(p.items())): float(s)
              for p, s in zip(points, search.cv_results_["mean_test_score"])}
    return wall, scores


def _hpdash(spec_raw: dict[str, Any], workdir: Path, name: str, workers: int) -> dict[str, Any]:
    from hpdash import runner
    from hpdash.spec import parse_spec

    url = f"sqlite:///{workdir / (name + '.db')}"
    spec = parse_spec({**spec_raw, "name": name, "workers": workers})
    start = time.perf_counter()
    runner.create_study(spec, url)
    created = time.perf_counter() - start
    start = time.perf_counter()
    codes = runner.wait_for(runner.launch_workers(name, url, workers), interval=0.05)
    wall = time.perf_counter() - start
    assert codes == [0] * workers, f"workers failed: {codes}"
    ended = time.time()
    study = runner.load_study(name, url)
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    launched = ended - wall
    # Optuna hands back naive local datetimes.
    first = min(t.datetime_start for t in trials).timestamp() - launched
    tail = ended - max(t.datetime_complete for t in trials).timestamp()
    folds = spec.folds * spec.repeats
    compute = [folds * (t.user_attrs["fit_time"] + t.user_attrs["score_time"]) for t in trials]
    durations = [t.duration.total_seconds() for t in trials]
    scores = {tuple(sorted(t.params.items())): float(t.value) for t in trials}
    return {"wall": wall, "created": created, "startup": first, "tail": tail, "n": len(trials), "compute": sum(compute),
            "in_trial_overhead": statistics.median(d - c for d, c in zip(durations, compute)),
            "scores": scores}


def _trivial_overhead(workdir: Path, n: int = 60) -> dict[str, float]:
    """Seconds per trial of a trivial objective that stores what hpdash's objective stores
    (5 fold reports + 5 user attrs), on several storages."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for k in range(5):
            trial.report(x, k)
            trial.should_prune()
        for key in ("fold_scores", "cv_mean", "cv_std", "fit_time", "score_time"):
            trial.set_user_attr(key, x)
        return x

    def plain(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1)

    def one_attr(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for k in range(5):
            trial.report(x, k)
            trial.should_prune()
        trial.set_user_attr("cv", {"fold_scores": [x] * 5, "cv_mean": x, "cv_std": 0.0,
                                   "fit_time": x, "score_time": x})
        return x

    cases = {
        "in-memory, hpdash objective": (None, objective),
        "SQLite + heartbeat (hpdash workers), hpdash objective": ("hb", objective),
        "SQLite, no heartbeat, hpdash objective": ("nohb", objective),
        "SQLite, no heartbeat, bare objective": ("nohb", plain),
        "SQLite + heartbeat, user attrs in 1 write": ("hb", one_attr),
        "SQLite + heartbeat + synchronous=NORMAL, hpdash objective": ("hb-normal", objective),
    }
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for rep in range(3):  # interleaved repeats: a noisy machine hits every case alike
        for i, (label, (kind, func)) in enumerate(cases.items()):
            samples[label].append(_per_trial(workdir / f"trivial{rep}-{i}.db", kind, func, n))
    return {label: statistics.median(v) for label, v in samples.items()}


def _per_trial(path: Path, kind: str | None, func: Any, n: int) -> float:
    from hpdash.storage import open_storage

    storage: Any = None
    if kind is not None:
        storage = open_storage(f"sqlite:///{path}", heartbeat=kind.startswith("hb"))
        if kind == "hb-normal":  # what a storage.py change would do on every connection
            import sqlalchemy

            sqlalchemy.event.listen(storage.engine, "connect", lambda c, _: c.execute(
                "PRAGMA synchronous=NORMAL"))
            storage.engine.dispose()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(func, n_trials=5)  # warm-up
    start = time.perf_counter()
    study.optimize(func, n_trials=n)
    return (time.perf_counter() - start) / n


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    os.environ["HPDASH_DATA_DIR"] = str(workdir / "data")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    repeats = 1 if quick else 3
    gs_times, gs_scores = [], {}
    one, two = [], []
    for r in range(repeats):
        t, gs_scores = _grid_search(BASE_SPEC)
        gs_times.append(t)
        one.append(_hpdash(BASE_SPEC, workdir, f"grid1-{r}", 1))
        two.append(_hpdash(BASE_SPEC, workdir, f"grid2-{r}", 2))
    gs = statistics.median(gs_times)
    for label, runs, bound in (("1 worker", one, 1.10), ("2 workers", two, 0.65)):
        wall = statistics.median(x["wall"] for x in runs)
        same = all(np.isclose(x["scores"][k], gs_scores[k]) for x in runs for k in gs_scores)
        report.add(f"grid study {len(gs_scores)} pts, {label} (scores == GridSearchCV: {same})",
                   fmt_s(wall), f"{fmt_s(gs)} GridSearchCV(n_jobs=1)", f"{wall / gs:.2f}x",
                   f"<= {bound:.2f}x", wall / gs <= bound)
    run1 = one[len(one) // 2]
    per_trial = (statistics.median(x["wall"] for x in one) - run1["compute"]) / run1["n"]
    report.notes.append(
        f"1 worker: {run1['startup']:.1f} s from launch to the first trial (process start, "
        f"imports, study and data loading), {run1['tail']:.1f} s from the last trial to exit "
        "(settle state, refit and model export)")
    steady = statistics.median(x["wall"] - x["startup"] - x["tail"] for x in one)
    report.add("grid study, 1 worker, without start-up and tail", fmt_s(steady),
               f"{fmt_s(gs)} GridSearchCV(n_jobs=1)", f"{steady / gs:.2f}x", "informational",
               None)
    report.notes.append(
        f"1 worker: CV compute {run1['compute']:.2f} s of {run1['wall']:.2f} s wall; overhead "
        f"{per_trial * 1000:.0f} ms per trial all in (worker start-up, data loading, refit "
        f"included), of which {run1['in_trial_overhead'] * 1000:.1f} ms median inside a trial "
        f"(storage writes during the trial); creating the study took {run1['created']:.2f} s")
    for label, seconds in _trivial_overhead(workdir, 20 if quick else 60).items():
        report.add(f"storage overhead/trial: {label}", fmt_s(seconds), "-", "-", "informational", None)
