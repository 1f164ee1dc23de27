"""Open Optuna's RDB storage the way hpdash needs it.

- SQLite: WAL journal (readers never block the writer) and a 60 s busy timeout, so several
  worker processes can share one file without "database is locked" failures.
- Heartbeats: a worker that dies mid-trial has its trial failed after the grace period and
  retried once by Optuna's ``RetryHeartbeatStaleTrialCallback``.
- The budget guard (``BudgetedRDBStorage``): see docs/ARCHITECTURE.md, "Budget and workers".
"""

from __future__ import annotations

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


class BudgetExhausted(Exception):
    """Raised inside ``Study.ask`` when no budget slot is left: the worker stops."""


class WorkerRDBStorage(RDBStorage):
    """An RDBStorage whose WAITING -> RUNNING claim is one atomic conditional UPDATE.

    Optuna pops a queued trial by reading its state and then writing RUNNING. The row lock it
    asks for (``SELECT ... FOR UPDATE``) does not exist on SQLite, so two worker processes can
    both read WAITING and both "win" the same trial (seen here: "Cannot tell a COMPLETE
    trial"). ``UPDATE ... WHERE state = 'WAITING'`` lets exactly one of them win on any database.
    """

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state == TrialState.RUNNING and values is None:
            with self.engine.begin() as conn:
                claimed = conn.execute(
                    sqlalchemy.text(
                        "UPDATE trials SET state = 'RUNNING', datetime_start = :now "  # naive UTC, as Optuna stores it
                        "WHERE trial_id = :trial_id AND state = 'WAITING'"
                    ),
                    {"now": datetime.now(timezone.utc).replace(tzinfo=None), "trial_id": trial_id},
                ).rowcount
            if claimed == 1:
                return True
            # Not WAITING any more: Optuna's own method returns False or raises as it should.
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
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "grace_period": GRACE_PERIOD,
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
