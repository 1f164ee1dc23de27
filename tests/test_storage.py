"""Optuna storage: WAL, busy timeout and the budget guard."""

import sqlite3
import time
from datetime import datetime

import optuna
import pytest

from hpdash.storage import BudgetExhausted, open_storage, redact


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
