"""Studies run by real worker processes on a real SQLite file."""

import dataclasses
import hashlib
import textwrap
import time
from pathlib import Path
from typing import Any

import joblib
import optuna
import pytest
from optuna.trial import TrialState

from hpdash import config, results, runner, strategies
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


def test_refit_scores_the_holdout_with_the_studys_positive_class(data_dir) -> None:
    """f1 on yes/no labels needs the positive class: the refit scores the holdout with the
    study's own scorer (pos_label included), the same number scikit-learn gives."""
    from sklearn.metrics import f1_score

    from hpdash import datasets

    frame = datasets.load_sample("breast_cancer")
    frame["target"] = frame["target"].map({"malignant": "yes", "benign": "no"})
    stored = datasets.store_dataset(frame.to_csv(index=False).encode(), "yes-no.csv")
    spec = _spec(name="refit-f1", dataset=stored.sha256, metric="f1", pos_label="yes", n_trials=3)
    study = _run(spec)
    info = runner.refit_info(study)
    assert info is not None, study.user_attrs.get("hpdash.refit")
    model = joblib.load(info["path"])
    problem = runner.load_problem(spec, None)
    expected = f1_score(problem.y_test, model.predict(problem.X_test), pos_label="yes")
    assert info["holdout_score"] == pytest.approx(expected, abs=0)


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
    spec = _spec(
        name="stoppable",
        model="random_forest",
        n_trials=30,
        space={"n_estimators": {"type": "int", "low": 50, "high": 60}},
    )
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

    spec = _spec(
        name="status-partial",
        model="random_forest",
        n_trials=20,
        space={"n_estimators": {"type": "int", "low": 50, "high": 60}},
    )
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


# -- stored studies are data: nothing in them names a file to read or delete ---------------
def _iris_csv(path: Path) -> Path:
    from hpdash import datasets

    path.write_bytes(datasets.load_sample("iris").to_csv(index=False).encode())
    return path


def test_a_stored_spec_naming_a_path_is_refused(data_dir, tmp_path) -> None:
    """A study whose stored spec was rewritten to name a file path (a readable CSV outside the
    data directory) with no recorded SHA-256: load_problem, a real worker and the Study
    page's check all refuse it, say why and how to fix it, and nothing ran."""
    from hpdash import views
    from hpdash.errors import DatasetError

    decoy = _iris_csv(tmp_path / "secret.csv")
    runner.create_study(_spec(name="forged-data", n_trials=3))
    study = runner.load_study("forged-data")
    study.set_user_attr(runner.SPEC_ATTR, {**study.user_attrs[runner.SPEC_ATTR], "dataset": str(decoy)})
    study.set_user_attr(runner.DATASET_ATTR, None)
    spec = runner.load_spec_of(study)
    assert spec.dataset == str(decoy)
    with pytest.raises(DatasetError, match="file path") as refused:
        runner.load_problem(spec, study.user_attrs.get(runner.DATASET_ATTR))
    message = str(refused.value)
    assert "no recorded SHA-256" in message and "sklearn:NAME" in message and "create the study again" in message
    assert views.study_dataset_problem(study) == message
    # A recorded "SHA-256" that is a path is refused before any file is opened.
    with pytest.raises(DatasetError, match="not a SHA-256"):
        runner.load_problem(spec, str(decoy))
    with pytest.raises(DatasetError, match="not a SHA-256"):
        runner.load_problem(_spec(name="x"), "/etc/passwd")

    codes = runner.wait_for(runner.launch_workers("forged-data", None, 1))
    assert codes != [0]
    study = runner.load_study("forged-data")
    status = runner.study_status(study)
    assert status.state == "failed" and "file path" in (status.error or ""), status
    assert not study.get_trials(states=(TrialState.COMPLETE, TrialState.RUNNING))
    assert runner.refit_info(study) is None and not list(config.models_dir().iterdir())
    assert decoy.read_bytes() == _iris_csv(tmp_path / "again.csv").read_bytes()  # untouched
    # The legitimate ways still load: a sample, and a stored dataset by SHA-256.
    from hpdash import datasets

    stored = datasets.store_dataset(decoy.read_bytes(), "iris.csv")
    assert runner.load_problem(_spec(name="y", dataset=stored.sha256), None).X_train.shape[0] == 120
    assert runner.load_problem(_spec(name="y", dataset=str(decoy)), stored.sha256).X_train.shape[0] == 120


def test_create_study_stores_a_path_dataset_and_workers_read_the_stored_copy(data_dir, tmp_path) -> None:
    """CLI specs name paths: create_study stores the file by its SHA-256, and the study then
    runs from the stored copy, also once the original path is gone."""
    source = _iris_csv(tmp_path / "flowers.csv")
    spec = _spec(name="from-path", dataset=str(source), n_trials=3)
    runner.create_study(spec)
    source.unlink()
    study = runner.load_study("from-path")
    sha = study.user_attrs[runner.DATASET_ATTR]
    assert sha and (config.datasets_dir() / f"{sha}.csv").is_file()
    assert runner.wait_for(runner.launch_workers("from-path", None, 1)) == [0], _logs("from-path")
    assert len(runner.load_study("from-path").get_trials(states=(TrialState.COMPLETE,))) == 3


def test_delete_study_deletes_only_what_the_study_owns(data_dir, tmp_path) -> None:
    """A refit record rewritten to name files outside the models folder: delete_study removes
    the study's own model files and worker logs, never the named files, nor another study's."""
    from hpdash import export_model

    _run(_spec(name="owner", n_trials=3))
    _run(_spec(name="owner-0", n_trials=3))  # its logs (owner-0-0.log) look like owner's
    study = runner.load_study("owner")
    decoys = [tmp_path / "secret.txt", data_dir / "hpdash.db", config.models_dir() / "owner-0.joblib"]
    decoys[0].write_text("do not delete")
    forged = {**runner.refit_info(study), "path": str(decoys[0])}
    study.set_user_attr(runner.REFIT_ATTR, forged)
    (config.models_dir() / "owner.joblib.4242.tmp").write_bytes(b"left by a killed refit")
    (config.models_dir() / "owner.joblib.x.tmp").write_bytes(b"not owner's: not <name>.<pid>.tmp")
    other_files = sorted(p.name for p in config.models_dir().iterdir() if p.name.startswith("owner-0"))
    assert other_files == ["owner-0.joblib", "owner-0.joblib.sha256"]
    logs = sorted(p.name for p in runner.workers_log_dir().iterdir())
    assert logs == ["owner-0-0.log", "owner-0.log"]
    runner.delete_study("owner")
    assert not runner.study_exists("owner") and runner.study_exists("owner-0")
    assert decoys[0].read_text() == "do not delete" and decoys[1].is_file() and decoys[2].is_file()
    assert sorted(p.name for p in config.models_dir().iterdir()) == [
        "owner-0.joblib",
        "owner-0.joblib.sha256",
        "owner.joblib.x.tmp",
    ]
    assert sorted(p.name for p in runner.workers_log_dir().iterdir()) == ["owner-0-0.log"]
    assert export_model.model_downloads("owner-0", runner.refit_info(runner.load_study("owner-0")))


# -- a study appears with its budget, or not at all ----------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import sys
    from hpdash import runner
    from hpdash.spec import parse_spec

    base = {"dataset": "sklearn:iris", "target": "target", "model": "k_nearest_neighbors",
            "strategy": "random", "n_trials": int(sys.argv[2]), "cv": {"folds": 3}, "seed": 0}
    print("ready", flush=True)
    for i in range(1000):
        print(f"start {i}", flush=True)
        runner.create_study(parse_spec({**base, "name": f"kill-{sys.argv[1]}-{i}"}))
        print(f"created {i}", flush=True)
""")
KILL_BUDGET = 5000
#: Every user attr a created (never launched) random-search study has: the spec and what was
#: resolved from it, the sampler that will run, its state and its budget.
STUDY_ATTRS = {
    runner.SPEC_ATTR,
    runner.DATASET_ATTR,
    "hpdash.task",
    "hpdash.metric",
    "hpdash.space",
    "hpdash.created_at",
    runner.STATE_ATTR,
    strategies.SAMPLER_ATTR,
    runner.BUDGET_ATTR,
}


def _slot_rows(conn: Any, name: str) -> tuple[list[int], list[str], list[list[tuple[str, Any]]]]:
    """The trials of study ``name`` in number order: their numbers, states and system attrs."""
    import json

    rows = conn.execute(
        "SELECT t.trial_id, t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name = ? ORDER BY t.number",
        (name,),
    ).fetchall()
    attrs: dict[int, list[tuple[str, Any]]] = {trial_id: [] for trial_id, _, _ in rows}
    for trial_id, key, value in conn.execute(
        "SELECT a.trial_id, a.key, a.value_json FROM trial_system_attributes a JOIN trials t "
        "ON t.trial_id = a.trial_id JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = ? "
        "ORDER BY a.trial_id, a.key",
        (name,),
    ):
        attrs[trial_id].append((key, json.loads(value)))
    return [n for _, n, _ in rows], [state for _, _, state in rows], [attrs[trial_id] for trial_id, _, _ in rows]


def test_a_killed_creation_leaves_no_half_created_study(data_dir) -> None:
    """SIGKILL a process creating 5,000-slot studies at random moments, several times: every
    study left is complete (all attrs, the full budget of WAITING slots numbered from 0), a
    study whose creation was cut does not exist (or was complete already), and no row of a
    cut creation is left in the database."""
    import os
    import random
    import select
    import signal
    import sqlite3
    import subprocess
    import sys

    rng = random.Random(7)
    cut = []
    env = {**os.environ, "HPDASH_DATA_DIR": str(data_dir)}
    env.pop("HPDASH_STORAGE", None)
    for run in range(4):  # each child pays 2-3 s of imports, then about 2 s a study of 5,000 slots
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, str(run), str(KILL_BUDGET)], stdout=subprocess.PIPE, text=True, env=env
        )
        lines = []
        try:
            assert proc.stdout.readline().strip() == "ready"
            while "created 0" not in lines:  # one whole study first (the first pays the warm-up)
                line = proc.stdout.readline().strip()
                assert line, "the child ended before creating a study"
                lines.append(line)
            deadline = time.time() + rng.uniform(0.0, 3.0)
            # poll, not select: select refuses a descriptor numbered 1024 or more, which a
            # long-lived test process can hand out
            poller = select.poll()
            poller.register(proc.stdout, select.POLLIN)
            while time.time() < deadline:  # keep reading, so the pipe never blocks the child
                if poller.poll(max(0.0, deadline - time.time()) * 1000):
                    lines.append(proc.stdout.readline().strip())
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        lines += [line.strip() for line in proc.stdout.read().splitlines()]
        started = [line for line in lines if line.startswith("start")]
        if started and started[-1].replace("start", "created") not in lines:
            cut.append(f"kill-{run}-{started[-1].split()[1]}")
    assert len(cut) >= 2, cut  # most kills landed inside a creation
    names = [n for n in optuna.get_all_study_names(storage=config.storage_url()) if n.startswith("kill-")]
    assert len(names) >= 4
    with sqlite3.connect(config.default_db_path()) as conn:
        for name in names:
            study = runner.load_study(name)
            assert set(study.user_attrs) == STUDY_ATTRS, (name, sorted(study.user_attrs))
            assert study.user_attrs[runner.BUDGET_ATTR] == KILL_BUDGET
            assert study.user_attrs[runner.STATE_ATTR] == "created"
            # The slots straight from Optuna's tables (Optuna's get_trials takes seconds for
            # 5,000 trials): numbers, states and each trial's system attrs.
            numbers, states, attrs = _slot_rows(conn, name)
            assert numbers == list(range(KILL_BUDGET)), name
            assert set(states) == {"WAITING"} and attrs == [[("hpdash_slot", True)]] * KILL_BUDGET, name
        for name in cut:  # either absent or complete (a kill after the commit, before "created")
            assert name not in names or len(_slot_rows(conn, name)[0]) == KILL_BUDGET
        (n_trials,) = conn.execute("SELECT count(*) FROM trials").fetchone()
        (n_attrs,) = conn.execute("SELECT count(*) FROM study_user_attributes").fetchone()
    assert n_trials == KILL_BUDGET * len(names) and n_attrs == len(STUDY_ATTRS) * len(names)


def test_resume_refuses_a_study_without_its_state_or_budget(data_dir) -> None:
    """A study left half-created by an older version (spec, no hpdash.state/hpdash.budget):
    resume says what is wrong and how to fix it, and starts nothing."""
    spec = _spec(name="half", n_trials=4)
    half = optuna.create_study(storage=config.storage_url(), study_name="half", direction="maximize")
    half.set_user_attr(runner.SPEC_ATTR, spec.to_dict())
    with pytest.raises(SpecError, match="no hpdash.state and no hpdash.budget record") as refused:
        runner.resume_study("half")
    assert "Delete it and create it again" in str(refused.value)
    half.set_user_attr(runner.STATE_ATTR, "running")
    with pytest.raises(SpecError, match="no hpdash.budget record"):
        runner.resume_study("half")
    assert "hpdash.started_at" not in runner.load_study("half").user_attrs
    assert not list(runner.workers_log_dir().iterdir())


# -- launch bound ---------------------------------------------------------------------------
def test_launch_refuses_more_workers_than_the_cap(data_dir, monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "2")
    runner.create_study(_spec(name="capped", n_trials=3, workers=3))
    for launch in (
        lambda: runner.launch_workers("capped", None, 3),
        lambda: runner.resume_study("capped"),
        lambda: runner.resume_study("capped", workers=5),
    ):
        with pytest.raises(SpecError) as refused:
            launch()
        message = str(refused.value)
        assert "at most 2" in message and "HPDASH_MAX_WORKERS" in message and "or fewer" in message, message
    with pytest.raises(SpecError, match="5 workers were asked for"):
        runner.launch_workers("capped", None, 5)
    with pytest.raises(SpecError, match="at least 1"):
        runner.launch_workers("capped", None, 0)
    study = runner.load_study("capped")
    assert study.user_attrs[runner.STATE_ATTR] == "created" and runner.STARTED_ATTR not in study.user_attrs
    assert not list(runner.workers_log_dir().iterdir())  # no process was started
    monkeypatch.delenv("HPDASH_MAX_WORKERS")
    assert config.max_workers() == config.usable_cpus()
    assert runner.wait_for(runner.resume_study("capped", workers=1)) == [0]


# -- fail fast and say why ------------------------------------------------------------------
#: Every trial fails: lbfgs cannot fit an l1 penalty.
ALWAYS_FAILS = {
    "model": "logistic_regression",
    "space": {
        "solver": {"type": "categorical", "choices": ["lbfgs"]},
        "penalty": {"type": "categorical", "choices": ["l1"]},
        "C": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
    },
}


def test_a_study_whose_first_ten_trials_all_fail_stops_as_failed(data_dir) -> None:
    """15 trials asked, each failing: the worker stops after the first 10, the study is
    `failed` with the commonest reason and its count, and the other 5 slots are left."""
    study = _run(_spec(name="doomed", n_trials=15, **ALWAYS_FAILS))
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.FAIL) == 10 and states.count(TrialState.WAITING) == 5, states
    status = runner.study_status(study)
    assert status.state == "failed", status
    assert status.error.startswith(
        "The first 10 trial(s) all failed, so the study was stopped. Commonest reason (10 of 10): ValueError: "
    ), status.error
    assert "l1" in status.error and "lbfgs" in status.error
    reasons = runner.failure_reasons(study)
    assert len(reasons) == 1 and reasons[0][1] == 10 and reasons[0][0] in status.error
    assert runner.refit_info(study) is None
    assert [w["status"] for w in runner.workers_of(study)] == ["failed"]


def test_fail_fast_counts_a_small_budget_whole_and_spares_a_study_that_works(data_dir) -> None:
    """min(10, budget): 3 failing trials of 3 fail the study; a grid where half the points
    work runs to the end and finishes, its failures listed with their counts."""
    small = _run(_spec(name="doomed-small", n_trials=3, **ALWAYS_FAILS))
    assert runner.study_status(small).state == "failed"
    assert "The first 3 trial(s) all failed" in runner.study_status(small).error
    space = {**ALWAYS_FAILS["space"], "solver": {"type": "categorical", "choices": ["lbfgs", "saga"]}}
    mixed = _run(
        _spec(
            name="half-works", model="logistic_regression", strategy="grid", n_trials=None, grid_points=3, space=space
        )
    )
    status = runner.study_status(mixed)
    assert status.state == "finished" and status.error is None and status.complete == 3
    assert [count for _, count in runner.failure_reasons(mixed)] == [3]


def _frozen(number: int, state: TrialState, reason: str | None = None, retries: int | None = None):
    trial = optuna.trial.create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        user_attrs={"fail_reason": reason} if reason else {},
        system_attrs={"failed_trial": retries} if retries is not None else {},
    )
    trial.number = number
    return trial


def test_fail_fast_verdict_skips_stopped_and_retried_trials() -> None:
    FAIL, COMPLETE, RUNNING = TrialState.FAIL, TrialState.COMPLETE, TrialState.RUNNING
    three_failed = [_frozen(i, FAIL, "ValueError: a" if i else "ValueError: b") for i in range(3)]
    assert runner.fail_fast_verdict(three_failed, 3) == (True, [("ValueError: a", 2), ("ValueError: b", 1)])
    assert runner.fail_fast_verdict(three_failed, 4) == (None, [])  # not enough trials yet
    # the trial failing now, not written FAIL yet, counts with its reason
    now = three_failed[:2] + [_frozen(2, RUNNING)]
    assert runner.fail_fast_verdict(now, 3) == (None, [])
    assert runner.fail_fast_verdict(now, 3, current=(2, "ValueError: a"))[0] is True
    # one success among the first n: never a failed study
    assert runner.fail_fast_verdict([_frozen(0, COMPLETE)] + three_failed[1:], 3) == (False, [])
    # a trial stopped by the user, or failed as stale and retried, is no verdict on the setup
    stopped = [_frozen(0, FAIL, runner.STOPPED_REASON)] + [_frozen(i, FAIL, "ValueError: a") for i in (1, 2)]
    assert runner.fail_fast_verdict(stopped, 3) == (None, [])
    stale = [
        _frozen(0, FAIL),
        _frozen(1, FAIL, "ValueError: a"),
        _frozen(2, FAIL, "ValueError: a", retries=0),
        _frozen(3, FAIL, "ValueError: a"),
    ]
    assert runner.fail_fast_verdict(stale, 3) == (True, [("ValueError: a", 3)])
    assert runner.fail_fast_verdict([_frozen(0, FAIL)], 1) == (True, [("failed (no reason recorded)", 1)])
    assert [runner.fail_fast_trials(b) for b in (None, 1, 3, 10, 500)] == [10, 1, 3, 10, 10]


# -- one worker in the caller's process -----------------------------------------------------
def test_run_here_runs_the_study_in_this_process(data_dir) -> None:
    """No second process: the trials are this process's, no worker log is written, progress
    is called after each trial, and the study finishes with its refit."""
    import os

    spec = _spec(name="here", n_trials=3)
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    calls = []
    assert runner.run_here("here", progress=lambda: calls.append(1), problem=plan.problem()) == 3
    study = runner.load_study("here")
    assert runner.study_status(study).state == "finished" and runner.refit_info(study) is not None
    assert {t.user_attrs["worker"].split(":")[1] for t in study.get_trials()} == {str(os.getpid())}
    assert [w["pid"] for w in runner.workers_of(study)] == [os.getpid()]
    assert len(calls) == 3 and not list(runner.workers_log_dir().iterdir())


def test_a_stop_asked_in_this_process_is_recorded_and_resumable(data_dir) -> None:
    """The caller's stop (what Ctrl-C sets in `hpdash run`) before a trial is claimed: no trial
    runs, the stop flag is written as `hpdash stop` writes it, the study is `stopped`, and a
    resume finishes the budget."""
    import threading

    runner.create_study(_spec(name="interrupted", n_trials=3))
    stop = threading.Event()
    stop.set()
    assert runner.run_here("interrupted", stop_event=stop) == 0
    study = runner.load_study("interrupted")
    assert study.user_attrs[runner.STOP_ATTR] is True and runner.study_status(study).state == "stopped"
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING] * 3
    assert runner.wait_for(runner.resume_study("interrupted")) == [0]
    status = runner.study_status(runner.load_study("interrupted"))
    assert status.state == "finished" and status.complete == 3


def test_wait_for_returns_when_the_processes_exit_not_after_the_interval() -> None:
    """With an hour's interval, a process that ends at once is waited for, not slept after:
    ``poll`` runs only its final time (a fixed sleep would have polled before sleeping)."""
    import subprocess
    import sys

    calls = []
    procs = [
        subprocess.Popen([sys.executable, "-c", "pass"]),
        subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
    ]
    assert runner.wait_for(procs, lambda: calls.append(1), interval=3600) == [0, 3]
    assert calls == [1]


# -- the protocol checked on the real data, and keep_columns --------------------------------
def test_the_protocol_is_checked_on_the_training_part_before_anything_is_created(data_dir) -> None:
    """Folds that a class of the training part cannot fill, a holdout smaller than the
    classes, a training part smaller than the folds, a budget over the limit: SpecErrors with
    the sizes and the fix from plan_study, and create_study writes nothing."""
    cases = [
        (
            dict(cv={"folds": 45}),
            "classes 'setosa' (40 rows), 'versicolor' (40 rows), 'virginica' (40 rows) of the "
            "target 'target' have fewer rows in the training part than the 45 CV folds",
        ),
        (dict(test_size=0.01), "The holdout of test_size 0.01 is 2 row(s) of 150, fewer than the 3 classes"),
        (
            dict(dataset="sklearn:diabetes", model="ridge", metric="r2", test_size=0.89, cv={"folds": 50}),
            "The training part left by test_size 0.89 is 48 row(s) of 442, too few for 50 CV folds",
        ),
        (dict(n_trials=10_001), "The budget is 10,001 trials, more than the limit of 10,000 trials per study"),
    ]
    for change, message in cases:
        with pytest.raises(SpecError) as refused:
            runner.plan_study(_spec(name="refused", **change))
        assert message in str(refused.value), str(refused.value)
        with pytest.raises(SpecError):
            runner.create_study(_spec(name="refused", **change))
        assert not runner.study_exists("refused")
    # the limit is a setting; at the limit is fine
    assert runner.plan_study(_spec(name="ok", n_trials=10_000)).spec.n_trials == 10_000


def test_keep_columns_reaches_the_workers(data_dir, tmp_path) -> None:
    """A free-text column is dropped by default, and kept (one-hot encoded) by every part of
    a study when the spec names it: the plan, the stored copy's workers, the refit."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    words = ["quick", "slow", "red", "blue", "noted", "checked"]
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=60).round(3),
            "comment": [f"{words[i % 6]} {words[(i * 5) % 6]} visit {i} was fine" for i in range(60)],
            "label": ["yes", "no"] * 30,
        }
    )
    path = tmp_path / "visits.csv"
    frame.to_csv(path, index=False)
    spec = _spec(name="kept", dataset=str(path), target="label", n_trials=2)
    assert "comment" not in runner.plan_study(spec).prepared.X.columns
    kept = spec.replace(keep_columns=["comment"])
    assert "comment" in runner.plan_study(kept).prepared.categorical
    study = _run(kept)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    problem = runner.load_problem(runner.load_spec_of(study), study.user_attrs[runner.DATASET_ATTR])
    assert "comment" in problem.categorical


def test_trial_log_filter_drops_user_stops_and_keeps_real_failures() -> None:
    """Optuna's "Trial N failed" warnings in a worker: none for a trial the user stopped, the
    line without a traceback for a trial error hpdash worded (a time limit), the line with its
    traceback for an estimator's error."""
    import logging

    from hpdash import objective

    runner._install_trial_log_filter()
    runner._install_trial_log_filter()  # once per process, however many workers run in it
    optimize_logger = logging.getLogger("optuna.study._optimize")
    assert sum(isinstance(f, runner._TrialLogFilter) for f in optimize_logger.filters) == 1
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("optuna").addHandler(handler)
    errors = [objective.StopRequested(), objective.TrialTimeout("Stopped at the trial time limit"), ValueError("bad C")]

    def fail(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        raise errors[trial.number]

    try:
        optuna.create_study().optimize(fail, n_trials=3, catch=(Exception,))
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    records = [r for r in records if r.name == "optuna.study._optimize"]
    messages = [(r.getMessage().split(" because")[0].split(" with")[0], r.exc_info is not None) for r in records]
    assert messages == [
        ("Trial 1 failed", False),
        ("Trial 1 failed", False),
        ("Trial 2 failed", True),
        ("Trial 2 failed", False),
    ], messages
    assert "Stopped at the trial time limit" in records[0].getMessage() and "bad C" in records[2].getMessage()


def test_readers_of_a_studys_records(data_dir) -> None:
    """What the Study page reads of a study, through the library: its dataset, metric and why
    its refit failed."""
    from hpdash import datasets

    stored = datasets.store_dataset(datasets.load_sample("iris").to_csv(index=False).encode(), "iris.csv")
    study = runner.create_study(_spec(name="readers", n_trials=2, dataset=stored.sha256))
    assert runner.dataset_of(study) == stored.sha256
    assert runner.dataset_of(runner.create_study(_spec(name="sample", n_trials=2))) is None  # sklearn:iris
    assert runner.metric_of(study) == study.user_attrs["hpdash.metric"] == "accuracy"
    assert runner.refit_error(study) is None and runner.refit_info(study) is None
    study.set_user_attr(runner.REFIT_ATTR, {"error": "ValueError: bad"})
    assert runner.refit_error(study) == "ValueError: bad" and runner.refit_info(study) is None
    plain = optuna.create_study(study_name="plain", storage=config.storage_url())
    assert runner.dataset_of(plain) is None and runner.metric_of(plain) is None and runner.refit_error(plain) is None


# ------------------------------------------------------------------------------ split and sampler seeds
def _folds(problem: Any) -> list[list[Any]]:
    """Each CV fold's test rows by their index in the table: the fold assignment."""
    return [sorted(problem.X_train.index[test]) for _, test in problem.splits]


def test_the_workers_problem_follows_split_seed_and_not_sampler_seed(data_dir) -> None:
    """What `hpdash run` and every worker evaluate on (``Plan.problem``): the holdout, the
    folds and the model seed follow ``split_seed``; ``sampler_seed`` and ``seed`` do not
    reach them once ``split_seed`` is given."""
    one = runner.plan_study(_spec(seed=0, split_seed=5, sampler_seed=1)).problem()
    other = runner.plan_study(_spec(seed=8, split_seed=5, sampler_seed=2)).problem()
    plain = runner.plan_study(_spec(seed=5)).problem()  # no split_seed: seed 5's protocol, as before
    moved = runner.plan_study(_spec(seed=0, split_seed=6, sampler_seed=1)).problem()
    for same in (other, plain):
        assert list(same.X_test.index) == list(one.X_test.index) and _folds(same) == _folds(one)
        assert same.seed == 5
    assert list(moved.X_test.index) != list(one.X_test.index) and _folds(moved) != _folds(one)


def test_a_grid_with_one_split_seed_scores_the_same_whatever_the_sampler_seed(data_dir) -> None:
    """Two grid studies, one split seed, two sampler seeds: every grid point gets the same
    fold scores; the sampler seed only changes the grid's order. Another split seed scores
    them differently."""
    base = {"strategy": "grid", "n_trials": None, "grid_points": 3, "seed": 0}
    scores, orders = [], []
    for name, sampler_seed, split_seed in (("grid-a", 1, 5), ("grid-b", 2, 5), ("grid-c", 1, 6)):
        spec = _spec(name=name, split_seed=split_seed, sampler_seed=sampler_seed, **base)
        runner.create_study(spec)
        runner.run_here(name)
        trials = sorted(runner.load_study(name).get_trials(), key=lambda t: t.number)
        assert trials and all(t.state == TrialState.COMPLETE for t in trials)
        orders.append([tuple(sorted(t.params.items())) for t in trials])
        scores.append({tuple(sorted(t.params.items())): t.user_attrs["fold_scores"] for t in trials})
    assert scores[0] == scores[1] and orders[0] != orders[1]
    assert scores[2] != scores[0]


def test_a_warm_start_runs_the_past_best_trials_first_within_its_budget(data_dir) -> None:
    """``warm_start``: the new study's first trials are the past study's best ones, best first,
    skipping those outside the new space (recorded with the reason); they count in the budget."""
    past = _spec(name="warm-past", n_trials=8)
    runner.create_study(past)
    runner.run_here(past.name)
    best = sorted(
        runner.load_study(past.name).get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number)
    )
    kept_p = best[0].params["p"]
    inside = [t for t in best if t.params["p"] == kept_p][:3]
    outside = [t for t in best[: best.index(inside[-1])] if t.params["p"] != kept_p]
    assert len(inside) == 3 and outside, "this seed's trials should make the new space skip one"
    space = {
        "n_neighbors": {"type": "int", "low": 1, "high": 50, "log": True},
        "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
        "p": {"type": "categorical", "choices": [kept_p]},
    }
    spec = _spec(name="warm-new", n_trials=5, strategy="tpe", space=space, warm_start={"study": past.name, "trials": 3})
    runner.create_study(spec)
    runner.run_here(spec.name)
    study = runner.load_study(spec.name)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert [t.params for t in trials[:3]] == [t.params for t in inside]
    record = study.user_attrs["hpdash.warm_start"]
    assert record["study"] == past.name and record["trials"] == [t.number for t in inside]
    assert [s["number"] for s in record["skipped"]] == [t.number for t in outside]
    assert all("not among the choices" in s["reason"] for s in record["skipped"])
    from hpdash import views

    note = views.warm_start_note(study.user_attrs)
    assert note is not None and f"of study '{past.name}'" in note and f"{len(outside)} skipped" in note


def test_a_warm_start_from_another_model_or_a_missing_study_is_refused(data_dir) -> None:
    past = _spec(name="warm-knn", n_trials=2)
    runner.create_study(past)
    runner.run_here(past.name)
    with pytest.raises(SpecError, match="same model and target"):
        runner.create_study(
            _spec(name="warm-tree", model="decision_tree", warm_start={"study": past.name, "trials": 1})
        )
    with pytest.raises(SpecError, match="no study named 'nowhere'"):
        runner.create_study(_spec(name="warm-none", warm_start={"study": "nowhere", "trials": 1}))
    with pytest.raises(SpecError, match="does not apply to grid search"):
        _spec(name="warm-grid", strategy="grid", warm_start={"study": past.name, "trials": 1})
    from hpdash import views

    assert set(views.list_study_names()) == {past.name}  # nothing created by a refused spec
