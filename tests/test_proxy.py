"""hpdash behind Optuna's gRPC storage proxy (``hpdash proxy``), and the connection pools.

Real processes: ``python -m hpdash proxy`` in front of PostgreSQL (and SQLite), 8 worker
processes given its ``grpc://`` URL; the budget, the grid and the finished state must hold as
on a direct connection. Then 40 worker processes on PostgreSQL at once, whose connections
(counted in ``pg_stat_activity``) must stay within the pool bound of hpdash/storage.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash import runner, runtime, storage
from hpdash.errors import StorageError
from hpdash.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent
GRID_SPACE = {
    "n_neighbors": {"type": "categorical", "choices": list(range(1, 11))},
    "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
    "p": {"type": "categorical", "choices": [1, 2]},
}  # 10 * 2 * 2 = 40 grid points
PROXY_THREADS = 4


def _spec(**change: object):
    base = {
        "name": "proxied",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": "grid",
        "n_trials": None,
        "space": GRID_SPACE,
        "cv": {"folds": 2},
        "seed": 0,
    }
    return parse_spec({k: v for k, v in {**base, **change}.items() if v is not None or k == "n_trials"})


class Proxy:
    """A running ``python -m hpdash proxy`` subprocess and the URL it printed."""

    def __init__(self, database: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hpdash", "proxy", "--storage", database, "--port", "0"]
            + ["--threads", str(PROXY_THREADS)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._first_line(timeout=30)

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith("grpc://"):
            self.proc.kill()
            pytest.fail(f"hpdash proxy printed no grpc:// URL in {timeout} s: {self.proc.stderr.read()}")
        return line[0].strip()

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err


@pytest.fixture
def many_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "8")


def _pg_connections(pg: str, application: str) -> int:
    from pg_helpers import _connect

    database = pg.rsplit("/", 1)[1]
    with _connect(pg) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, application),
        ).fetchone()
    assert row is not None
    return int(row[0])


class PeakSampler:
    """The most connections ``application`` held on database ``pg``, sampled every 50 ms."""

    def __init__(self, pg: str, application: str) -> None:
        self.pg, self.application, self.peak, self.samples = pg, application, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _pg_connections(self.pg, self.application))
            self.samples += 1

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _check_grid_study(study: optuna.Study, spec) -> None:
    """Exactly the budget, COMPLETE, each grid point once, nothing left open, finished."""
    trials = study.get_trials()
    states = Counter(t.state for t in trials)
    budget = study.user_attrs["hpdash.budget"]
    assert budget == 40
    assert states == {TrialState.COMPLETE: budget}, states
    expected = {json.dumps(p, sort_keys=True) for p in runner.plan_study(spec).grid()}
    evaluated = Counter(json.dumps(t.params, sort_keys=True) for t in trials)
    assert set(evaluated) == expected and set(evaluated.values()) == {1}, evaluated
    assert runner.study_status(study).state == "finished"


def _start_workers(name: str, url: str, workers: int) -> list[subprocess.Popen]:
    """``hpdash worker NAME --storage grpc://...`` processes, logging where the runner's do.
    (``runner.launch_workers`` also writes the audit trail, which needs the database URL.)"""
    procs = []
    for index in range(workers):
        with open(runner.worker_log_path(name, index), "ab") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hpdash", "worker", name, "--storage", url, "--worker-index", str(index)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return procs


def _run_through_proxy(database: str, name: str, workers: int) -> tuple[optuna.Study, Proxy]:
    spec = _spec(name=name)
    runner.create_study(spec, database)
    proxy = Proxy(database)
    try:
        codes = runner.wait_for(_start_workers(name, proxy.url, workers))
        logs = "\n".join(p.read_text() for p in sorted(runner.workers_log_dir().glob(f"{name}-*.log")))
        assert codes == [0] * workers, logs[-3000:]
        assert "Traceback" not in logs, logs[-3000:]
        # The study reads the same through the proxy and on the database itself.
        through = runner.load_study(name, proxy.url)
        assert runner.study_status(through).state == "finished"
        assert len(through.get_trials(states=(TrialState.COMPLETE,))) == 40
    except BaseException:
        proxy.proc.kill()
        raise
    return runner.load_study(name, database), proxy


@pytest.mark.slow
def test_eight_workers_through_the_proxy_on_postgres(data_dir, pg_url, many_workers) -> None:
    spec = _spec(name="pg-proxied")
    sampler_proxy = PeakSampler(pg_url, "hpdash-proxy")
    sampler_workers = PeakSampler(pg_url, "hpdash-worker")
    study, proxy = _run_through_proxy(pg_url, spec.name, 8)
    proxy_peak, worker_peak = sampler_proxy.stop(), sampler_workers.stop()
    code, err = proxy.stop()
    assert code == 0 and "hpdash proxy: stopped" in err, err[-2000:]
    _check_grid_study(study, spec)
    workers = runner.workers_of(study)
    assert len(workers) == 8 and sum(w["trials"] for w in workers) == 40, workers
    assert all(t.user_attrs["worker"] for t in study.trials)  # written in the claim, server-side
    assert "holdout_score" in study.user_attrs["hpdash.refit"]  # one worker won the refit
    # The workers reached the database only through the proxy, whose pool is bounded.
    assert sampler_proxy.samples > 10
    assert worker_peak == 0
    assert 1 <= proxy_peak <= PROXY_THREADS + 2


@pytest.mark.slow
def test_workers_through_the_proxy_on_sqlite(data_dir, many_workers) -> None:
    database = f"sqlite:///{data_dir / 'proxied.db'}"
    spec = _spec(name="sqlite-proxied")
    study, proxy = _run_through_proxy(database, spec.name, 2)
    assert proxy.stop()[0] == 0
    _check_grid_study(study, spec)


def test_proxy_guards_the_budget_and_the_claims(data_dir) -> None:
    """One process, real proxy: ask past the budget is refused (client and server side), two
    clients never claim one slot, a proxy URL is refused where SQL is needed."""
    database = f"sqlite:///{data_dir / 'guard.db'}"
    spec = _spec(name="guarded", strategy="random", n_trials=3, space=None)
    runner.create_study(spec, database)
    proxy = Proxy(database)
    try:
        first, second = storage.open_study_storage(proxy.url), storage.open_study_storage(proxy.url)
        assert isinstance(first, storage.ProxyStorage) and first.get_heartbeat_interval() == 5
        study_id = first.get_study_id_from_name("guarded")
        claimed = [first.claim_waiting_trial(study_id, {"worker": "a"}), second.claim_waiting_trial(study_id)]
        claimed.append(first.claim_waiting_trial(study_id))
        assert len(set(claimed)) == 3 and None not in claimed
        assert first.claim_waiting_trial(study_id) is None
        # The proxy's own guard (the client's is off here): no trial from nothing.
        with pytest.raises(storage.BudgetExhausted):
            second.create_new_trial(study_id)
        first.budgeted = True
        with pytest.raises(storage.BudgetExhausted):
            first.create_new_trial(study_id)
        # Conditional writes and taken-over trials behave as on the database.
        assert first.claim_study_user_attr(study_id, "hpdash.state", "finished")
        assert not second.claim_study_user_attr(study_id, "hpdash.state", "finished")
        assert not first.set_study_user_attr_unless(study_id, "hpdash.state", "failed", ("finished",))
        assert first.set_trial_state_values(claimed[0], TrialState.FAIL)
        assert not first.taken_over(claimed[0]) and second.taken_over(claimed[0])
        with pytest.raises(StorageError, match="needs the study database itself"):
            storage.open_storage(proxy.url)
    finally:
        assert proxy.stop()[0] == 0
    with pytest.raises(StorageError, match="No hpdash proxy answers"):
        storage.open_proxy(proxy.url, timeout=0.5)  # stopped: nothing listens there any more


def test_proxy_url_is_checked() -> None:
    assert storage.proxy_address("grpc://10.0.0.5:13000") == ("10.0.0.5", 13000)
    for bad in ("grpc://host", "grpc://:13000", "grpc://host:99999", "postgresql://h/db"):
        with pytest.raises(StorageError, match="grpc://HOST:PORT"):
            storage.proxy_address(bad)


# -- connection pools --------------------------------------------------------------------------
WORKERS = 40
#: hpdash/storage.py's worker pool: one kept connection and one overflow (``_pool_kwargs``).
WORKER_CONNECTIONS_AT_MOST = 2 * WORKERS


def _forked_worker(name: str, database: str, index: int, data_dir: str) -> None:
    """A worker process from the forkserver (its imports already done): ``run_worker``. The
    forkserver may have started under another test's environment, hence the data dir."""
    os.environ["HPDASH_DATA_DIR"] = data_dir
    try:
        runner.run_worker(name, database, index)
    except BaseException:
        os._exit(1)
    storage.close_all()
    os._exit(0)


@pytest.mark.slow
def test_forty_workers_stay_within_the_connection_bound(data_dir, pg_url) -> None:
    """40 worker processes on one PostgreSQL database at once (Optuna #1347: SQLAlchemy's
    default pool lets each keep 5 connections and open 15, past ``max_connections`` = 100 for
    7 workers) hold at most 2 each, and about one each as they run."""
    spec = _spec(name="pg-pools", strategy="random", n_trials=WORKERS, space=None)
    runner.create_study(spec, pg_url)
    storage.close_all()  # no pooled connection of this process is inherited by the children
    sampler = PeakSampler(pg_url, "hpdash-worker")
    # Not fork: the test process has threads (pytest-xdist's, a browser driver's) whose locks
    # a forked child would inherit held, and pipes it would keep open.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hpdash.runner"])
    procs = [context.Process(target=_forked_worker, args=(spec.name, pg_url, i, str(data_dir))) for i in range(WORKERS)]
    try:
        with runtime.children_import("hpdash.runner"):
            for proc in procs:
                proc.start()
        started = time.monotonic()
        for proc in procs:
            proc.join(timeout=max(1.0, 120 - (time.monotonic() - started)))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    peak = sampler.stop()
    assert [proc.exitcode for proc in procs] == [0] * WORKERS
    study = runner.load_study(spec.name, pg_url)
    assert Counter(t.state for t in study.trials) == {TrialState.COMPLETE: WORKERS}
    print(f"{WORKERS} workers: at most {peak} connections at once (bound {WORKER_CONNECTIONS_AT_MOST})")
    assert WORKERS // 4 <= peak <= WORKER_CONNECTIONS_AT_MOST
