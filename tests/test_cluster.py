"""hpdash.cluster: a study's workers on a real Dask cluster (a `dask scheduler` and 2 `dask worker`
processes on 127.0.0.1), launched from the library and from the New study form.

Storage: PostgreSQL (a throwaway database per test, tests/pg_helpers.py), the storage a real
cluster uses, since Dask workers on other machines cannot share a SQLite file. Both Dask
workers run on this machine, so they share the test's data directory (the launching side's,
passed to each task) for the worker logs; the bundled iris sample needs no dataset file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState
from pg_helpers import pg_url  # noqa: F401  (fixture)
from streamlit.testing.v1 import AppTest

from hpdash import cluster, config, runner
from hpdash.errors import ClusterError, ReadOnlyError, SpecError
from hpdash.spec import parse_spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))
DASK_WORKERS = ("dask-a", "dask-b")
START_TIMEOUT = 60
UI_TRIALS = 40


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Dask scheduler on a free port of 127.0.0.1 with two one-thread Dask workers; its address."""
    folder = tmp_path_factory.mktemp("dask")
    address_file = folder / "scheduler.json"
    # The Dask workers inherit no data directory: each task uses the launching side's.
    env = {k: v for k, v in os.environ.items() if k not in ("HPDASH_DATA_DIR", "HPDASH_STORAGE")}
    started = []
    logs = []

    def start(args: list[str], name: str) -> None:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115  (closed at teardown)
        logs.append(log)
        started.append(subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder))

    try:
        start(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(address_file),
            ],
            "scheduler",
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        for name in DASK_WORKERS:
            start(["worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny", "--name", name], name)
        client = cluster.connect(address)
        try:
            client.wait_for_workers(len(DASK_WORKERS), timeout=START_TIMEOUT)
        finally:
            client.close()
        yield address
    finally:
        _stop(started[1:])  # the Dask workers, then their scheduler
        _stop(started[:1])
        for log in logs:
            log.close()


@pytest.fixture
def on_cluster(data_dir: Path, pg_url: str, scheduler: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test's storage (PostgreSQL) with the scheduler configured; returns the storage URL."""
    monkeypatch.setenv("HPDASH_STORAGE", pg_url)
    monkeypatch.setenv(config.DASK_SCHEDULER_ENV, scheduler)
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "2")
    return pg_url


GRID_SPACE = {
    "n_neighbors": {"type": "categorical", "choices": list(range(1, 51))},
    "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
    "p": {"type": "categorical", "choices": [1, 2]},
}  # 50 * 2 * 2 = 200 grid points


def _spec(**change):
    base = {
        "name": "cluster",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",  # about 3 times quicker a trial than logistic regression
        "strategy": "grid",
        "space": GRID_SPACE,
        "n_trials": None,
        "cv": {"folds": 2},
        "seed": 0,
        "workers": 2,
        "keep_predictions": False,  # no out-of-fold files: a third off each trial's time, not tested here
    }
    return parse_spec({**base, **change})


def _logs(name: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(runner.workers_log_dir().glob(f"{name}-*.log")))


def _wait_until_ended(name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = runner.study_status(runner.load_study(name)).state
        if state not in ("running", "created"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"study {name} still running after {timeout} s:\n{_logs(name)[-3000:]}")


# ------------------------------------------------------------------------------ from the library
def test_a_grid_study_runs_each_point_once_on_two_dask_workers(on_cluster: str) -> None:
    spec = _spec(name="cluster-grid")
    runner.create_study(spec)
    launch = cluster.launch_on_cluster(spec.name, workers=2)
    try:
        runs = launch.wait(timeout=120)
    finally:
        launch.close()
    logs = _logs(spec.name)
    assert [run.exit_code for run in runs] == [0, 0], logs[-3000:]
    assert {run.dask_worker for run in runs} == set(DASK_WORKERS)  # one task on each Dask worker
    study = runner.load_study(spec.name)
    trials = study.get_trials()
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 200}, logs[-3000:]
    expected = {json.dumps(p, sort_keys=True) for p in runner.plan_study(spec).grid()}
    evaluated = Counter(json.dumps(t.params, sort_keys=True) for t in trials)
    assert len(expected) == 200 and set(evaluated) == expected and set(evaluated.values()) == {1}
    # Each worker record names the Dask worker that ran it, and matches what its task reported.
    recorded = {(w["dask_worker"], w["dask_address"], w["pid"]) for w in cluster.cluster_workers(study.user_attrs)}
    assert recorded == {(run.dask_worker, run.dask_address, run.pid) for run in runs}
    workers = runner.workers_of(study)
    assert sorted(w["status"] for w in workers) == ["done", "done"]
    assert sum(w["trials"] for w in workers) == 200 and all(w["trials"] > 0 for w in workers)
    assert runner.study_status(study).state == "finished"
    assert runner.refit_info(study) is not None  # the worker that finished it refitted
    assert "Traceback" not in logs, logs[-3000:]


def test_stop_through_the_flag_ends_the_cluster_workers(on_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard on another machine than the workers: no SIGTERM reaches them, only the
    stop flag, which each worker reads with its beat."""
    spec = _spec(name="cluster-stop", strategy="random", n_trials=2000, space=None, cv={"folds": 5})
    runner.create_study(spec)
    launch = cluster.launch_on_cluster(spec.name, workers=2)
    try:
        study = runner.load_study(spec.name)
        deadline = time.monotonic() + 60
        while not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            assert time.monotonic() < deadline, _logs(spec.name)[-3000:]
            time.sleep(0.2)
        with pytest.raises(ClusterError, match=r"2 of the 2 cluster workers .* still running after 0\.1 s"):
            launch.wait(timeout=0.1)
        monkeypatch.setattr(socket, "gethostname", lambda: "the-dashboard-machine")
        asked = time.time()
        runner.stop_study(spec.name)
        runs = launch.wait(timeout=60)
    finally:
        launch.close()
    assert [run.exit_code for run in runs] == [0, 0], _logs(spec.name)[-3000:]
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    # No trial starts after a worker has read the flag (within one beat of the stop).
    latest_start = max(t.datetime_start.timestamp() for t in trials if t.datetime_start is not None)
    assert latest_start < asked + runner.WORKER_BEAT_SECONDS + 2, (latest_start - asked, states)
    assert 0 < states[TrialState.COMPLETE] < 2000 and states[TrialState.WAITING] > 0, states
    assert states[TrialState.RUNNING] == 0, states
    # The exact budget still holds: finished trials plus the slots left (a stopped trial's
    # slot given back) make 2000.
    assert states[TrialState.COMPLETE] + states[TrialState.WAITING] == 2000, states
    assert runner.study_status(runner.load_study(spec.name)).state == "stopped"
    assert sorted(w["status"] for w in runner.workers_of(study)) == ["stopped", "stopped"]


def test_a_killed_worker_process_ends_its_task_not_its_dask_worker(on_cluster: str) -> None:
    spec = _spec(name="cluster-kill", strategy="random", n_trials=2000, space=None)
    runner.create_study(spec)
    launch = cluster.launch_on_cluster(spec.name, workers=1)
    try:
        study = runner.load_study(spec.name)
        deadline = time.monotonic() + 60
        while not runner.workers_of(study):  # killed once it has registered
            assert time.monotonic() < deadline, _logs(spec.name)[-3000:]
            time.sleep(0.2)
        (worker,) = runner.workers_of(study)
        os.kill(int(worker["pid"]), signal.SIGKILL)  # as the OOM killer would
        (run,) = launch.wait(timeout=30)
        assert run.exit_code == -signal.SIGKILL and run.pid == worker["pid"]
        # The Dask worker that ran it still serves: both are there, at the same addresses.
        assert {str(w["name"]) for w in launch.client.scheduler_info()["workers"].values()} == set(DASK_WORKERS)
        assert run.dask_address in launch.client.nthreads()
    finally:
        launch.close()
        runner.stop_study(spec.name)


def test_an_unreachable_scheduler_is_refused_before_the_launch(
    on_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_SECONDS", 0.5)
    spec = _spec(name="cluster-unreachable")
    runner.create_study(spec)
    with pytest.raises(ClusterError, match=f"tcp://127.0.0.1:{port} did not answer.*dask scheduler"):
        cluster.launch_on_cluster(spec.name, workers=2, scheduler=f"tcp://127.0.0.1:{port}")
    study = runner.load_study(spec.name)
    assert study.user_attrs[runner.STATE_ATTR] == "created"  # no launch recorded
    assert Counter(t.state for t in study.get_trials()) == {TrialState.WAITING: 200}  # no slot claimed
    # From the form's path no study is created at all.
    with pytest.raises(ClusterError):
        cluster.start_on_cluster(_spec(name="cluster-never"), scheduler=f"tcp://127.0.0.1:{port}")
    assert not runner.study_exists("cluster-never")


def test_launch_checks_the_cluster_size_and_read_only(on_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(name="cluster-checks")
    runner.create_study(spec)
    with pytest.raises(SpecError, match="3 workers were asked for.*runs 2 task"):
        cluster.launch_on_cluster(spec.name, workers=3)
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError):
        cluster.launch_on_cluster(spec.name, workers=1)
    with pytest.raises(ReadOnlyError):
        cluster.start_on_cluster(_spec(name="cluster-read-only"))
    monkeypatch.delenv("HPDASH_READ_ONLY")
    assert runner.load_study(spec.name).user_attrs[runner.STATE_ATTR] == "created"
    assert not runner.study_exists("cluster-read-only")


def test_no_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.DASK_SCHEDULER_ENV, raising=False)
    with pytest.raises(SpecError, match="No Dask scheduler is configured: set HPDASH_DASK_SCHEDULER"):
        cluster.scheduler_address()


# ------------------------------------------------------------------------------ from the UI
def test_the_new_study_form_launches_onto_the_cluster(on_cluster: str, scheduler: str) -> None:
    """The form's "Run on: Dask cluster": the study runs its exact budget there and the Study
    page lists the Dask workers. A budget of 40 (the 200-trial exactness is the grid test's):
    the test's time goes on the page, not on more trials of the same kind."""
    at = AppTest.from_file(str(ROOT / "hpdash" / "ui" / "main.py"), default_timeout=60).run()
    at.switch_page(str(ROOT / "pages" / "new_study.py")).run()
    run_on = at.radio(key="ns_run_on")
    assert run_on.options == ["this machine", f"Dask cluster ({scheduler})"]
    run_on.set_value("dask").run()
    at.multiselect(key="ns_models").set_value(["k_nearest_neighbors"]).run()
    at.selectbox(key="ns_strategy").set_value("random").run()
    at.number_input(key="ns_n_trials").set_value(UI_TRIALS)
    at.number_input(key="ns_folds").set_value(2)
    at.number_input(key="ns_workers").set_value(2)
    at.text_input(key="ns_name").input("cluster-form").run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="ns_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params.get("study") in ("cluster-form", ["cluster-form"])
    assert _wait_until_ended("cluster-form", 120) == "finished"
    study = runner.load_study("cluster-form")
    assert Counter(t.state for t in study.get_trials()) == {TrialState.COMPLETE: UI_TRIALS}, _logs("cluster-form")[
        -3000:
    ]
    assert {w["dask_worker"] for w in cluster.cluster_workers(study.user_attrs)} == set(DASK_WORKERS)
    # The Study page lists the cluster workers that ran it.
    at.switch_page(str(ROOT / "pages" / "study.py")).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = next(d.value for d in at.dataframe if "Dask worker" in d.value.columns)
    assert sorted(shown["Dask worker"]) == sorted(DASK_WORKERS)
    assert list(shown["status"]) == ["done", "done"] and shown["trials"].sum() == UI_TRIALS


def test_the_study_page_table_of_cluster_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running, lost and ended cluster workers, and a local worker left out."""
    from hpdash import status, views

    now = time.time()
    here = socket.gethostname()
    monkeypatch.setattr(status, "_pid_alive", lambda pid: pid == 11)  # which pids live on this machine
    dask = {"dask_worker": "dask-a", "dask_address": "tcp://10.0.0.7:40111"}
    attrs = {
        "hpdash.worker.far.12": {"pid": 12, "host": "far", "started": now - 9, "last_seen": now - 60, **dask},
        "hpdash.worker.here.11": {"pid": 11, "host": here, "started": now - 5, "last_seen": now, **dask},
        "hpdash.worker.far.13": {
            **{"pid": 13, "host": "far", "started": now - 20, "last_seen": now - 15, "ended": now - 15},
            **{"status": "done", "trials": 7, "dask_worker": "dask-b", "dask_address": "tcp://10.0.0.8:40222"},
        },
        "hpdash.worker.here.14": {"pid": 14, "host": here, "started": now, "last_seen": now},  # a local worker
        "hpdash.spec": {"name": "x"},
    }
    frame = views.cluster_workers_frame(attrs)
    assert list(frame.columns) == ["Dask worker", "address", "host", "pid", "status", "trials"]
    assert frame[["Dask worker", "pid", "status"]].values.tolist() == [
        ["dask-b", 13, "done"],
        ["dask-a", 12, "lost"],
        ["dask-a", 11, "running"],
    ]
    assert frame["trials"].tolist()[0] == 7
    assert views.cluster_workers_frame({}).empty
