"""Optuna storage: WAL, busy timeout and the budget guard."""

import sqlite3
import time
from datetime import datetime

import optuna
import pytest

from hpdash.storage import BudgetExhausted, open_storage, redact
from pg_helpers import pg_url  # noqa: F401  (fixture)


def test_sqlite_file_is_wal(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="a")
    with sqlite3.connect(tmp_path / "o.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_budget_guard_pops_slots_then_stops(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="b")
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING))
    guarded = optuna.load_study(study_name="b", storage=open_storage(url, budgeted=True, heartbeat=False))
    with pytest.raises(BudgetExhausted):
        guarded.optimize(lambda t: t.suggest_float("x", 0, 1))
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3


def test_unguarded_storage_creates_trials(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="c")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2


def test_redact_hides_password() -> None:
    assert redact("postgresql+psycopg://bob:s3cret@db:5432/x") == "postgresql+psycopg://bob:***@db:5432/x"
    assert redact("sqlite:///data/hpdash.db") == "sqlite:///data/hpdash.db"


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_claim_of_a_waiting_trial_is_atomic(tmp_path, monkeypatch, tz) -> None:
    """Two storages racing for one WAITING trial: exactly one claim succeeds.

    Run under several time zones: the start time must read back as local "now", as it does
    for trials Optuna starts itself.
    """
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    from hpdash.storage import WorkerRDBStorage

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="d")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING))
    trial_id = study.get_trials()[0]._trial_id
    a, b = WorkerRDBStorage(url), WorkerRDBStorage(url)
    running = optuna.trial.TrialState.RUNNING
    assert a.set_trial_state_values(trial_id, running) is True
    assert b.set_trial_state_values(trial_id, running) is False
    frozen = study.get_trials()[0]
    assert frozen.state == running and frozen.datetime_start is not None
    assert abs((frozen.datetime_start - datetime.now()).total_seconds()) < 60


@pytest.fixture(autouse=True)
def _restore_tz():
    yield
    time.tzset()


def test_sqlite_connections_commit_without_waiting_for_fsync(tmp_path) -> None:
    """synchronous=NORMAL (1) on every pooled connection, including the first ones."""
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.parametrize("hpdash_storage", [True, False])
def test_trial_user_attrs_written_together_read_back_through_optuna(tmp_path, hpdash_storage) -> None:
    """One transaction on hpdash's storage, one call per key elsewhere: same result."""
    from hpdash.storage import set_trial_user_attrs

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = open_storage(url, heartbeat=False) if hpdash_storage else optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="attrs")
    attrs = {"fold_scores": [0.5, 0.75], "cv_mean": 0.625, "note": "x"}

    def objective(trial: optuna.Trial) -> float:
        set_trial_user_attrs(trial, attrs, intermediate_values={0: 0.5, 1: 0.75})
        assert trial.user_attrs == attrs  # Optuna's in-trial copy stays in step
        return 0.625

    study.optimize(objective, n_trials=1)
    again = optuna.load_study(study_name="attrs", storage=url).trials[0]
    assert again.user_attrs == attrs
    assert again.intermediate_values == {0: 0.5, 1: 0.75}


def _frozen(trials: list) -> list[tuple]:
    return [(t._trial_id, t.number, t.state, t.params, t.user_attrs, t.system_attrs,
             t.intermediate_values, t.values) for t in trials]


def test_trial_reads_equal_optunas_while_slots_are_claimed_and_finished(tmp_path) -> None:
    """WorkerRDBStorage serves still-WAITING trials from memory: every read must equal
    Optuna's own read, with the same arguments, as slots are claimed, finished and added."""
    from hpdash.storage import WorkerRDBStorage

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="memo")
    for i in range(6):
        study.enqueue_trial({"x": float(i)})
    ours, plain = WorkerRDBStorage(url), optuna.storages.RDBStorage(url)
    sid = study._study_id

    def same(included: set[int], greater_than: int) -> None:
        assert _frozen(ours._get_trials(sid, None, included, greater_than)) == \
            _frozen(plain._get_trials(sid, None, included, greater_than))

    ids = [t._trial_id for t in study.get_trials()]
    same(set(), -1)
    same(set(ids), ids[1])
    first = ours.claim_waiting_trial(sid)._trial_id
    assert first == ids[0]
    same(set(ids), -1)
    ours.set_trial_param(first, "x", 0.0, optuna.distributions.FloatDistribution(0, 10))
    ours.set_trial_state_values(first, optuna.trial.TrialState.COMPLETE, [1.0])
    same(set(ids[1:]), ids[0])
    second = ours.claim_waiting_trial(sid)
    assert second._trial_id == ids[1] and second.state == optuna.trial.TrialState.RUNNING  # lowest first
    study.enqueue_trial({"x": 9.0})  # a new slot after the memo was filled
    same(set(ids[1:]), ids[0])
    same(set(ids[2:]), ids[1])


def test_worker_studies_claim_each_slot_once(tmp_path) -> None:
    """Two worker studies on one file share out the queue: every slot runs once, in order."""
    from hpdash.runner import WorkerStudy

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="pop")
    for i in range(6):
        study.enqueue_trial({"x": float(i)})
    a, b = (WorkerStudy(study_name="pop", storage=open_storage(url, budgeted=True, heartbeat=False)) for _ in range(2))
    seen = []
    for worker in (a, b, a, a, b, b):
        trial = worker.ask()
        seen.append(trial.suggest_float("x", 0, 10))
        worker.tell(trial, seen[-1])
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(BudgetExhausted):
        a.ask()
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 6


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claim.db'}"
    return request.getfixturevalue("pg_url")


def test_claim_study_user_attr_has_one_winner(any_url: str) -> None:
    """Workers finishing a study together: exactly one marks it finished (and refits), on
    SQLite and PostgreSQL alike, through separate storages as separate processes have."""
    import threading

    from hpdash.storage import claim_study_user_attr

    url = any_url
    name = f"claim-{time.time_ns()}"
    optuna.create_study(storage=open_storage(url, heartbeat=False), study_name=name)
    studies = [optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False)) for _ in range(4)]
    # No such attr yet: the first claim creates it.
    assert claim_study_user_attr(studies[0], "state", "running") is True
    assert claim_study_user_attr(studies[1], "state", "running") is False  # already so
    won: list[bool] = []
    barrier = threading.Barrier(len(studies))

    def finish(study: optuna.Study) -> None:
        barrier.wait()
        won.append(claim_study_user_attr(study, "state", "finished"))

    threads = [threading.Thread(target=finish, args=(s,)) for s in studies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, False, False, True]
    assert studies[2].user_attrs["state"] == "finished"
    # Other storages: a read and a write.
    memory = optuna.create_study()
    assert claim_study_user_attr(memory, "state", "finished") is True
    assert claim_study_user_attr(memory, "state", "finished") is False


def test_add_waiting_trials_stores_what_add_trial_stores(any_url: str) -> None:
    """Budget slots in one transaction: the same rows as Optuna's add_trial/enqueue_trial
    (numbers following on from existing trials, state, no start time, system attrs), and
    workers claim them in order."""
    from hpdash.runner import WorkerStudy

    attrs = [{"hpdash_slot": True}, {"fixed_params": {"x": 0.5, "k": "a"}}, {"fixed_params": {"x": 1.5}}]
    studies = {}
    for how in ("optuna", "bulk"):
        name = f"slots-{how}-{time.time_ns()}"
        study = optuna.create_study(storage=open_storage(any_url, heartbeat=False), study_name=name)
        study.add_trial(optuna.trial.create_trial(value=1.0, params={"x": 0.1},
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 2)}))
        if how == "optuna":
            for a in attrs:
                study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, system_attrs=a))
        else:
            study._storage._backend.add_waiting_trials(study._study_id, attrs)
        studies[how] = optuna.load_study(study_name=name, storage=open_storage(any_url, heartbeat=False))

    def rows(study: optuna.Study) -> list:
        return [(t.number, t.state, t.datetime_start, t.datetime_complete, t.system_attrs, t.params)
                for t in study.get_trials()]

    # The first trial (COMPLETE, made by create_trial) differs only by when it was made.
    assert rows(studies["bulk"])[1:] == rows(studies["optuna"])[1:]
    assert [t.number for t in studies["bulk"].get_trials()] == [0, 1, 2, 3]
    worker = WorkerStudy(study_name=studies["bulk"].study_name,
                         storage=open_storage(any_url, budgeted=True, heartbeat=False))
    first = worker.ask()
    assert first.number == 1 and worker._storage.get_trial(first._trial_id).system_attrs == {"hpdash_slot": True}
    second = worker.ask()
    assert second.suggest_float("x", 0, 2) == 0.5  # the fixed params of an enqueued slot


def test_claim_writes_the_workers_attrs_with_it(any_url: str) -> None:
    """The worker's name goes in with the claim (one transaction), visible to other readers
    while the trial runs; a slot another worker took is skipped."""
    name = f"claim-attrs-{time.time_ns()}"
    study = optuna.create_study(storage=open_storage(any_url, heartbeat=False), study_name=name)
    study._storage._backend.add_waiting_trials(study._study_id, [{"hpdash_slot": True}] * 2)
    a, b = (open_storage(any_url, budgeted=True, heartbeat=False) for _ in range(2))
    first = a.claim_waiting_trial(study._study_id, {"worker": "host:1"})
    second = b.claim_waiting_trial(study._study_id, {"worker": "host:2"})
    assert first.user_attrs == {"worker": "host:1"} and second.user_attrs == {"worker": "host:2"}
    assert first.number == 0 and second.number == 1
    seen = {t.number: (t.state, t.user_attrs) for t in optuna.load_study(
        study_name=name, storage=open_storage(any_url, heartbeat=False)).get_trials()}
    assert seen == {0: (optuna.trial.TrialState.RUNNING, {"worker": "host:1"}),
                    1: (optuna.trial.TrialState.RUNNING, {"worker": "host:2"})}
    assert a.claim_waiting_trial(study._study_id, {"worker": "host:1"}) is None
