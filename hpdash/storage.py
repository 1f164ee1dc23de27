"""Open Optuna's RDB storage the way hpdash needs it.

- SQLite: WAL journal (readers never block the writer) and a 60 s busy timeout, so several
  worker processes can share one file without "database is locked" failures.
- Heartbeats: a worker that dies mid-trial has its trial failed after the grace period and
  retried once by Optuna's ``RetryHeartbeatStaleTrialCallback``.
- The budget guard (``BudgetedRDBStorage``): see docs/ARCHITECTURE.md, "Budget and workers".
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from datetime import datetime, timezone
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from hpdash import config
from hpdash.errors import StorageError

HEARTBEAT_INTERVAL = 5  # seconds between a running trial's heartbeats
GRACE_PERIOD = 20  # a trial with no heartbeat for this long is stale
SQLITE_BUSY_TIMEOUT = 60  # seconds a writer waits for the lock


def _positive_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StorageError(f"{name} must be a whole number of seconds, got {raw!r}.") from None
    if value < 1:
        raise StorageError(f"{name} must be at least 1 second, got {value}.")
    return value


def heartbeat_interval() -> int:
    """Seconds between heartbeats of a running trial (``$HPDASH_HEARTBEAT_INTERVAL``, default 5)."""
    return _positive_int_env("HPDASH_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)


def grace_period() -> int:
    """Seconds without a heartbeat after which a RUNNING trial is failed and retried
    (``$HPDASH_GRACE_PERIOD``, default 20; always more than the heartbeat interval)."""
    value = _positive_int_env("HPDASH_GRACE_PERIOD", GRACE_PERIOD)
    interval = heartbeat_interval()
    if value <= interval:
        raise StorageError(
            f"HPDASH_GRACE_PERIOD ({value} s) must be longer than the heartbeat interval "
            f"({interval} s), or live trials would be failed as stale."
        )
    return value


class BudgetExhausted(Exception):
    """Raised inside ``Study.ask`` when no budget slot is left: the worker stops."""


class WorkerRDBStorage(RDBStorage):
    """An RDBStorage whose WAITING -> RUNNING claim is one atomic conditional UPDATE.

    Optuna pops a queued trial by reading its state and then writing RUNNING. The row lock it
    asks for (``SELECT ... FOR UPDATE``) does not exist on SQLite, so two worker processes can
    both read WAITING and both "win" the same trial (seen here: "Cannot tell a COMPLETE
    trial"). ``UPDATE ... WHERE state = 'WAITING'`` lets exactly one of them win on any database.

    The same holds for failing a stale trial: every live worker runs ``fail_stale_trials``, and
    without a conditional ``RUNNING -> FAIL`` two of them could both "fail" the dead worker's
    trial and both add a retry, running its params twice. ``WHERE state = 'RUNNING'`` makes
    exactly one of them the owner of the retry.
    """

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if values is None and state in (TrialState.RUNNING, TrialState.FAIL):
            before, column = ("WAITING", "datetime_start") if state == TrialState.RUNNING else ("RUNNING", "datetime_complete")
            with self.engine.begin() as conn:
                changed = conn.execute(
                    sqlalchemy.text(
                        # Literals, not parameters: PostgreSQL's state column is an enum type.
                        # Both come from the fixed set above, never from input.
                        f"UPDATE trials SET state = '{state.name}', {column} = :now "
                        f"WHERE trial_id = :trial_id AND state = '{before}'"
                    ),
                    # Naive UTC: Optuna's TrialModel setter converts its datetime.now() to
                    # naive UTC before storing; raw SQL bypasses that setter, so we convert here.
                    {"now": datetime.now(timezone.utc).replace(tzinfo=None), "trial_id": trial_id},
                ).rowcount
            if changed == 1:
                return True
            # Not in the expected state any more: Optuna's own method returns False or raises
            # UpdateFinishedTrialError as it should.
        return super().set_trial_state_values(trial_id, state, values)


class BudgetedRDBStorage(WorkerRDBStorage):
    """A worker storage that never creates a trial from nothing.

    Optuna's ``Study.ask`` first pops a WAITING trial and only creates a new one when none is
    left. hpdash pre-creates the budget as WAITING slots, so "none left" means the budget is
    spent: we raise instead of overshooting. Trials created from a template (``enqueue_trial``,
    ``add_trial``, heartbeat retries) pass through unchanged.

    Optuna has no public hook for this: ``_CachedStorage`` calls the backend's
    ``_create_new_trial`` directly, so that is the method we guard (tested in
    tests/test_storage.py against the pinned Optuna version).
    """

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        if template_trial is None:
            raise BudgetExhausted()
        return super()._create_new_trial(study_id, template_trial)


def _prepare_sqlite(url: str) -> dict[str, Any]:
    """Create the SQLite file in WAL mode and return engine kwargs with a busy timeout."""
    path = Path(url[len("sqlite:///"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(f"Cannot open the SQLite storage at {path}: {exc}") from exc
    return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}


def open_storage(url: str | None = None, *, budgeted: bool = False, heartbeat: bool = True) -> RDBStorage:
    """Open the Optuna storage at ``url`` (default: ``config.storage_url()``).

    ``budgeted`` is for workers: ``Study.ask`` then raises ``BudgetExhausted`` instead of
    creating a trial past the budget.
    """
    url = config.storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        engine_kwargs = _prepare_sqlite(url)
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    cls = BudgetedRDBStorage if budgeted else WorkerRDBStorage
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": heartbeat_interval(),
            "grace_period": grace_period(),
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=1),
        }
    try:
        return cls(url, engine_kwargs=engine_kwargs, **kwargs)
    except (optuna.exceptions.StorageInternalError, ValueError, ImportError) as exc:
        raise StorageError(f"Cannot open the study storage {redact(url)}: {exc}") from exc
    except Exception as exc:  # SQLAlchemy connection errors have many types
        raise StorageError(f"Cannot open the study storage {redact(url)}: {exc}") from exc


def redact(url: str) -> str:
    """The storage URL with any password hidden, for messages and the UI."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
