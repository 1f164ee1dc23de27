"""Studies run by real worker processes on a real SQLite file."""

import dataclasses
import hashlib
import time
from pathlib import Path

import joblib
import optuna
import pytest
from optuna.trial import TrialState

from hpdash import config, results, runner
from hpdash.errors import SpecError, StudyNotFoundError
from hpdash.spec import parse_spec

pytestmark = pytest.mark.slow


def _spec(**change):
    base = {
        "name": "iris-knn",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": "random",
        "n_trials": 10,
        "cv": {"folds": 3},
        "seed": 0,
    }
    return parse_spec({**base, **change})


def _run(spec, workers: int = 1) -> optuna.Study:
    runner.create_study(spec)
    codes = runner.wait_for(runner.launch_workers(spec.name, None, workers))
    assert codes == [0] * workers, _logs(spec.name)
    return runner.load_study(spec.name)


def _logs(name: str) -> str:
    return "\n".join(p.read_text() for p in runner.workers_log_dir().glob(f"{name}-*.log"))


def test_two_workers_share_one_sqlite_file(data_dir) -> None:
    """Acceptance: 2 workers, one SQLite file, a 40-trial random study: exactly 40 COMPLETE."""
    study = _run(_spec(name="two-workers", n_trials=40, workers=2), workers=2)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 40
    assert len(states) == 40
    logs = _logs("two-workers")
    assert "database is locked" not in logs
    # both processes did work
    workers = runner.workers_of(study)
    assert len(workers) == 2 and all(w["status"] == "done" for w in workers)
    # each trial records the process that ran it, and both processes ran trials
    assert {t.user_attrs["worker"] for t in study.get_trials()} == {f"{w['host']}:{w['pid']}" for w in workers}
    assert runner.study_status(study).state == "finished"


def test_invalid_combinations_fail_only_their_trials(data_dir) -> None:
    """Acceptance: penalty/solver pairs LogisticRegression rejects are FAIL with a reason."""
    spec = _spec(
        name="logreg-grid",
        dataset="sklearn:breast_cancer",
        model="logistic_regression",
        strategy="grid",
        n_trials=None,
        space={
            "solver": {"type": "categorical", "choices": ["lbfgs", "liblinear", "saga"]},
            "penalty": {"type": "categorical", "choices": ["l1", "l2"]},
            "C": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
        },
        grid_points=2,
    )
    study = _run(spec)
    trials = study.get_trials()
    assert len(trials) == 3 * 2 * 2
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert {(t.params["solver"], t.params["penalty"]) for t in failed} == {("lbfgs", "l1")}
    assert len(complete) == 10
    assert all("l1" in t.user_attrs["fail_reason"] or "lbfgs" in t.user_attrs["fail_reason"] for t in failed)


def test_study_is_self_describing_and_opens_with_plain_optuna(data_dir) -> None:
    spec = _spec(name="plain", n_trials=6)
    _run(spec)
    plain = optuna.load_study(study_name="plain", storage=config.storage_url())
    assert plain.user_attrs["hpdash.spec"] == spec.to_dict()
    complete = plain.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    for t in complete:
        scores = t.user_attrs["fold_scores"]
        assert len(scores) == 3 and t.value == pytest.approx(sum(scores) / 3)
        assert t.user_attrs["cv_std"] >= 0 and t.user_attrs["fit_time"] > 0


def test_refit_saves_model_and_scores_holdout(data_dir) -> None:
    study = _run(_spec(name="refit", n_trials=5))
    info = runner.refit_info(study)
    assert info is not None, study.user_attrs.get("hpdash.refit")
    path = Path(info["path"])
    assert path.parent == config.models_dir()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    assert 0.5 <= info["holdout_score"] <= 1.0
    model = joblib.load(path)
    problem = runner.load_problem(_spec(name="refit"), None)
    assert model.score(problem.X_test, problem.y_test) == pytest.approx(info["holdout_score"])


def test_algorithm_selection_conditional_space(data_dir) -> None:
    spec = _spec(name="algo", model=["k_nearest_neighbors", "decision_tree"], n_trials=12)
    study = _run(spec)
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        model = t.params["model"]
        assert all(k == "model" or k.startswith(model + "__") for k in t.params)


def test_gp_strategy_runs(data_dir) -> None:
    pytest.importorskip("torch")
    spec = _spec(name="gp", model="ridge", dataset="sklearn:diabetes", strategy="gp", n_trials=12, metric="r2")
    study = _run(spec)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 12


def test_stop_then_resume_finishes_the_budget(data_dir) -> None:
    spec = _spec(name="stoppable", model="random_forest", n_trials=30,
                 space={"n_estimators": {"type": "int", "low": 50, "high": 60}})
    runner.create_study(spec)
    procs = runner.launch_workers("stoppable", None, 1)
    study = runner.load_study("stoppable")
    deadline = time.time() + 60
    while runner.study_status(study).done < 2 and time.time() < deadline:
        time.sleep(0.2)
    runner.stop_study("stoppable")
    assert runner.wait_for(procs) == [0]
    status = runner.study_status(study)
    assert status.state == "stopped"
    assert 2 <= status.done < 30
    assert not study.get_trials(states=(TrialState.RUNNING,))
    runner.wait_for(runner.resume_study("stoppable"))
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 30
    assert runner.study_status(study).state == "finished"


def test_duplicate_name_and_missing_study(data_dir) -> None:
    runner.create_study(_spec(name="dup"))
    with pytest.raises(SpecError, match="already exists"):
        runner.create_study(_spec(name="dup"))
    with pytest.raises(StudyNotFoundError, match="No study named 'ghost'"):
        runner.load_study("ghost")


def test_invalid_specs_are_rejected_before_anything_is_created(data_dir) -> None:
    with pytest.raises(SpecError):
        runner.create_study(_spec(name="bad-model", model="linear_regression"))
    with pytest.raises(SpecError, match="low"):
        runner.create_study(_spec(name="bad-space", space={"n_neighbors": {"type": "int", "low": 9, "high": 3}}))
    assert not runner.study_exists("bad-model") and not runner.study_exists("bad-space")


def test_delete_study_removes_model_and_note(data_dir) -> None:
    from hpdash.store import Catalogue

    _run(_spec(name="gone", n_trials=3))
    Catalogue().set_note("gone", "hello")
    path = Path(runner.refit_info(runner.load_study("gone"))["path"])
    runner.delete_study("gone")
    assert not runner.study_exists("gone") and not path.exists()
    assert Catalogue().get_note("gone") == ""


def test_fresh_launch_is_running_not_worker_lost(data_dir) -> None:
    """Between launch and the first worker beat the study is "running", not "worker lost"."""
    runner.create_study(_spec(name="fresh", n_trials=3))
    study = runner.load_study("fresh")
    study.set_user_attr(runner.STATE_ATTR, "running")
    study.set_user_attr(runner.STARTED_ATTR, time.time())
    assert runner.study_status(study).state == "running"
    study.set_user_attr(runner.STARTED_ATTR, time.time() - runner.WORKER_LOST_SECONDS - 1)
    assert runner.study_status(study).state == "worker lost"


def _same_status(study: optuna.Study, cache: results.TrialsCache) -> runner.StudyStatus:
    """The status from the TrialsCache equals the one from aggregate queries, field by field
    (elapsed only once the study is not running: it runs to "now" while it does; ETA likewise)."""
    cache.refresh()
    from_cache = dataclasses.asdict(runner.study_status(study, cache=cache))
    status = runner.study_status(study)
    from_sql = dataclasses.asdict(status)
    eta_cache, eta_sql = from_cache.pop("eta_s"), from_sql.pop("eta_s")
    elapsed_cache, elapsed_sql = from_cache.pop("elapsed_s"), from_sql.pop("elapsed_s")
    if status.state != "running":
        assert eta_cache is None and eta_sql is None
        assert (elapsed_cache is None) == (elapsed_sql is None)
        if elapsed_sql is not None:
            assert elapsed_cache == pytest.approx(elapsed_sql, abs=1e-3)
    assert from_cache == from_sql
    return status


def test_status_from_the_trials_cache_equals_aggregate_status(data_dir) -> None:
    """The study page's live header (TrialsCache) and runner.study_status agree: a finished
    study, and a study stopped part way, read incrementally from creation to the stop."""
    study = _run(_spec(name="status-finished", n_trials=6))
    status = _same_status(study, results.TrialsCache(study))
    assert status.state == "finished" and status.done == 6 and status.best_value is not None

    spec = _spec(name="status-partial", model="random_forest", n_trials=20,
                 space={"n_estimators": {"type": "int", "low": 50, "high": 60}})
    runner.create_study(spec)
    study = runner.load_study(spec.name)
    cache = results.TrialsCache(study)
    assert _same_status(study, cache).state == "created"
    procs = runner.launch_workers(spec.name, None, 1)
    deadline = time.time() + 60
    while time.time() < deadline:
        cache.refresh()
        if runner.study_status(study, cache=cache).done >= 2:
            break
        time.sleep(0.2)
    runner.stop_study(spec.name)
    assert runner.wait_for(procs) == [0]
    status = _same_status(study, cache)
    assert status.state == "stopped" and 2 <= status.done < 20
    assert _same_status(study, results.TrialsCache(study)) == status
    # Marked running with no worker and slots left: "worker lost" both ways.
    study.set_user_attr(runner.STATE_ATTR, "running")
    study.set_user_attr(runner.STARTED_ATTR, time.time() - runner.WORKER_LOST_SECONDS - 1)
    assert _same_status(study, cache).state == "worker lost"
