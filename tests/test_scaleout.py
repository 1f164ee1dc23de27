"""Scale-out: 4 real worker processes on one study, on PostgreSQL and on SQLite.

Acceptance (issue 5): a 200-trial study ends with exactly 200 COMPLETE trials; a grid study
evaluates each grid point exactly once; SQLite workers never report "database is locked".
PostgreSQL tests use a throwaway database (tests/pg_helpers.py): they skip without a server,
and fail instead under CI.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash import runner
from hpdash.spec import parse_spec

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _four_workers_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four workers on any machine: more than a 2-core machine's default cap of one worker per
    CPU (HPDASH_MAX_WORKERS), on purpose, to race for slots."""
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "4")


N_TRIALS = 200
WORKERS = 4
GRID_SPACE = {
    "n_neighbors": {"type": "categorical", "choices": list(range(1, 21))},
    "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
    "p": {"type": "categorical", "choices": [1, 2]},
}  # 20 * 2 * 2 = 80 grid points


def _spec(**change):
    base = {
        "name": "scale",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": "random",
        "n_trials": N_TRIALS,
        "cv": {"folds": 2},
        "seed": 0,
        "workers": WORKERS,
    }
    return parse_spec({**base, **change})


def _logs(name: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(runner.workers_log_dir().glob(f"{name}-*.log")))


def _run(spec, storage: str | None) -> optuna.Study:
    runner.create_study(spec, storage)
    started = time.time()
    codes = runner.wait_for(runner.launch_workers(spec.name, storage, WORKERS))
    elapsed = time.time() - started
    assert codes == [0] * WORKERS, _logs(spec.name)
    study = runner.load_study(spec.name, storage)
    print(f"{spec.name}: {len(study.trials)} trials by {WORKERS} workers in {elapsed:.1f} s")
    return study


def _check_budget_study(study: optuna.Study, logs: str) -> None:
    trials = study.get_trials()
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == N_TRIALS, (states, logs[-3000:])
    assert len(trials) == N_TRIALS, states  # nothing created past the budget, nothing left over
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    workers = runner.workers_of(study)
    assert len(workers) == WORKERS and all(w["status"] == "done" for w in workers), workers
    # every worker took part (one process doing all 200 would also give 200 COMPLETE)
    per_worker = [w.get("trials", 0) for w in workers]
    assert sum(per_worker) == N_TRIALS and all(n > 0 for n in per_worker), per_worker
    assert runner.study_status(study).state == "finished"
    assert "Traceback" not in logs, logs[-3000:]


def _check_grid_study(study: optuna.Study, spec, logs: str) -> None:
    plan = runner.plan_study(spec)
    expected = [json.dumps(p, sort_keys=True) for p in plan.grid()]
    assert len(expected) == 80
    trials = study.get_trials()
    evaluated = Counter(json.dumps(t.params, sort_keys=True) for t in trials)
    assert all(t.state == TrialState.COMPLETE for t in trials), Counter(t.state for t in trials)
    duplicates = {k: v for k, v in evaluated.items() if v > 1}
    assert not duplicates, duplicates
    assert set(evaluated) == set(expected), set(expected) ^ set(evaluated)
    assert len(trials) == 80
    assert "Traceback" not in logs, logs[-3000:]


# -- SQLite ---------------------------------------------------------------------------------
def test_sqlite_four_workers_run_200_trials_without_lock_errors(data_dir) -> None:
    spec = _spec(name="sqlite-200")
    study = _run(spec, None)
    logs = _logs(spec.name)
    assert "database is locked" not in logs.lower()
    assert "OperationalError" not in logs
    _check_budget_study(study, logs)


def test_sqlite_grid_four_workers_each_point_once(data_dir) -> None:
    spec = _spec(name="sqlite-grid", strategy="grid", n_trials=None, space=GRID_SPACE)
    study = _run(spec, None)
    logs = _logs(spec.name)
    assert "database is locked" not in logs.lower()
    _check_grid_study(study, spec, logs)


# -- PostgreSQL -----------------------------------------------------------------------------
def test_postgres_four_workers_run_200_trials(data_dir, pg_url) -> None:
    spec = _spec(name="pg-200")
    study = _run(spec, pg_url)
    # the trials really are in PostgreSQL, and the catalogue stayed local to the dashboard
    assert optuna.get_all_study_names(pg_url) == ["pg-200"]
    from hpdash import config

    assert config.catalogue_path(pg_url) == data_dir / "hpdash.db"
    _check_budget_study(study, _logs(spec.name))


def test_postgres_grid_four_workers_each_point_once(data_dir, pg_url) -> None:
    spec = _spec(name="pg-grid", strategy="grid", n_trials=None, space=GRID_SPACE)
    study = _run(spec, pg_url)
    _check_grid_study(study, spec, _logs(spec.name))


def test_postgres_worker_with_changed_dataset_fails_clearly(data_dir, pg_url, tmp_path) -> None:
    """A worker verifies the dataset's SHA-256 before training: a changed file is a clear error."""
    from hpdash import datasets

    csv = datasets.load_sample("iris").to_csv(index=False).encode()
    stored = datasets.store_dataset(csv, "iris.csv")
    spec = _spec(name="pg-sha", dataset=stored.sha256, n_trials=4, workers=1)
    runner.create_study(spec, pg_url)
    stored.path.write_bytes(csv + b"\n")  # same table, different bytes
    procs = runner.launch_workers(spec.name, pg_url, 1)
    codes = runner.wait_for(procs)
    assert codes != [0]
    study = runner.load_study(spec.name, pg_url)
    status = runner.study_status(study)
    assert status.state == "failed"
    assert "dataset file changed since the study was created" in (status.error or "")
    assert not study.get_trials(states=(TrialState.COMPLETE,))
