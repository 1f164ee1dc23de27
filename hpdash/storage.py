"""Open Optuna's RDB storage the way hpdash needs it.

- SQLite: WAL journal (readers never block the writer) and a 60 s busy timeout, so several
  worker processes can share one file without "database is locked" failures; and
  ``synchronous=NORMAL``, so a commit does not wait for an fsync (see ``_tune_sqlite``).
- ``set_trial_user_attrs``: a finished trial's results in one transaction, not one per key.
- Heartbeats: a worker that dies mid-trial has its trial failed after the grace period and
  retried once by Optuna's ``RetryHeartbeatStaleTrialCallback``.
- The budget guard (``WorkerRDBStorage.budgeted``): see docs/ARCHITECTURE.md, "Budget and workers".
- A study is created with all its user attrs and budget slots in one transaction
  (``create_budgeted_study``): it exists complete or not at all.
- Conditional writes decide races between workers: finishing a trial only while it is not
  finished (a worker paused past the grace period cannot overwrite the trial another worker
  failed as stale; ``taken_over`` tells it so), and study states that never overwrite
  ``finished`` (``set_study_user_attr_unless``, ``claim_study_user_attr``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import optuna
import sqlalchemy
import sqlalchemy.dialects.sqlite
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, _heartbeat
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._rdb import storage as optuna_rdb_storage
from optuna.trial import FrozenTrial, TrialState

from hpdash import config
from hpdash.errors import StorageError

SQLITE_BUSY_TIMEOUT = 60  # seconds a writer waits for the lock
# The heartbeat settings are read in hpdash.config.
HEARTBEAT_INTERVAL = config.DEFAULT_HEARTBEAT_INTERVAL
GRACE_PERIOD = config.DEFAULT_GRACE_PERIOD
heartbeat_interval = config.heartbeat_interval
grace_period = config.grace_period


#: The Optuna RDB schema hpdash's SQL is written for (Optuna 4.x-5.0: ``version_info`` says 12,
#: ``alembic_version`` says v3.2.0.a); tests/test_results.py checks it against the installed Optuna.
OPTUNA_SCHEMA_VERSION = 12
OPTUNA_ALEMBIC_REVISION = "v3.2.0.a"


def schema_version(engine: sqlalchemy.engine.Engine) -> tuple[int | None, str | None]:
    """``(version_info.schema_version, alembic_version.version_num)`` of a storage."""
    with engine.connect() as conn:
        try:
            schema = conn.execute(sqlalchemy.text("SELECT schema_version FROM version_info")).scalar()
        except sqlalchemy.exc.DBAPIError:
            conn.rollback()
            schema = None
        revision = _alembic_revision(conn)
    return (None if schema is None else int(schema)), revision


@contextlib.contextmanager
def snapshot(engine: sqlalchemy.engine.Engine) -> Iterator[sqlalchemy.engine.Connection]:
    """A connection in one read transaction whose statements all see the same snapshot.

    Neither driver gives that by default: pysqlite begins a transaction only before a write,
    so each SELECT reads the latest commit, and PostgreSQL's READ COMMITTED takes a new
    snapshot per statement. A read of several tables while workers write (a trial's row,
    then its params) could otherwise see rows the first statement did not. ``BEGIN`` on
    SQLite (WAL: the snapshot starts at the first read and never blocks a writer) and
    ``REPEATABLE READ`` on PostgreSQL make the reads one snapshot.
    """
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield conn


def _alembic_revision(conn: sqlalchemy.engine.Connection) -> str | None:
    """The revision alembic stamped in ``alembic_version``, or None (no table, no row)."""
    try:
        return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
    except sqlalchemy.exc.DBAPIError:
        return None


class _StampedVersionManager(optuna_rdb_storage._VersionManager):
    """Optuna's version manager, minus the alembic import for a storage already stamped.

    ``RDBStorage.__init__`` always builds a ``_VersionManager``, whose ``_init_alembic`` asks
    alembic whether ``alembic_version`` holds a revision and stamps one if not; even with
    ``skip_compatibility_check`` that imports alembic, a noticeable part of a fresh process's
    start-up. One plain SELECT answers the same question; a storage without a revision still
    goes through Optuna's own code, which stamps it.
    """

    def _init_alembic(self) -> None:
        with self.engine.connect() as conn:
            stamped = _alembic_revision(conn)
        if stamped is None:
            super()._init_alembic()


# Optuna has no hook for its version manager: ``RDBStorage.__init__`` reads the module's
# ``_VersionManager`` name at call time, so WorkerRDBStorage swaps it in for the duration of
# its own ``__init__`` only, under this lock.
_VERSION_MANAGER_SWAP = threading.Lock()


class BudgetExhausted(Exception):
    """Raised inside ``Study.ask`` when no budget slot is left: the worker stops."""


class WorkerRDBStorage(RDBStorage):
    """An RDBStorage whose WAITING -> RUNNING claim is one atomic conditional UPDATE.

    Optuna pops a queued trial by reading its state and then writing RUNNING. The row lock it
    asks for (``SELECT ... FOR UPDATE``) does not exist on SQLite, so two worker processes can
    both read WAITING and both "win" the same trial (the later ``tell`` then fails with
    "Cannot tell a COMPLETE trial"). ``UPDATE ... WHERE state = 'WAITING'`` lets exactly one
    of them win on any database.

    The same holds for failing a stale trial: every live worker runs ``fail_stale_trials``, and
    without a conditional ``RUNNING -> FAIL`` two of them could both "fail" the dead worker's
    trial and both add a retry, running its params twice. ``WHERE state = 'RUNNING'`` makes
    exactly one of them the owner of the retry.
    """

    #: Set in workers of a study with a trial budget: the storage then never creates a trial
    #: from nothing. Optuna's ``Study.ask`` first pops a WAITING trial and only creates a new
    #: one when none is left; hpdash pre-creates the budget as WAITING slots, so "none left"
    #: means the budget is spent, and ``ask`` raises ``BudgetExhausted`` instead of
    #: overshooting. Trials created from a template (``enqueue_trial``, ``add_trial``,
    #: heartbeat retries) pass through unchanged. Optuna has no public hook for this:
    #: ``_CachedStorage`` calls the backend's ``_create_new_trial`` directly, so that is the
    #: method we guard (tested in tests/test_storage.py against the pinned Optuna version).
    budgeted: bool = False

    def __init__(self, url: str, *args: Any, **kwargs: Any) -> None:
        with _VERSION_MANAGER_SWAP:
            original = optuna_rdb_storage._VersionManager
            optuna_rdb_storage._VersionManager = _StampedVersionManager  # type: ignore[misc]  # swapping a class on purpose
            try:
                super().__init__(url, *args, **kwargs)
            finally:
                optuna_rdb_storage._VersionManager = original  # type: ignore[misc]  # Optuna's class put back

    @property
    def _core(self) -> bool:
        """Whether this database takes hpdash's SQL Core paths (``_CORE_DIALECTS``); any other
        takes Optuna's own methods."""
        return self.engine.name in _CORE_DIALECTS

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        if self.budgeted and template_trial is None:
            raise BudgetExhausted()
        return super()._create_new_trial(study_id, template_trial)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        changed = self._set_state(trial_id, state, values)
        if changed and state.is_finished():
            # Remembered so that ``taken_over`` can tell this process's own finished trials
            # from trials another process finished under it.
            self.__dict__.setdefault("_finished_here", set()).add(trial_id)
        return changed

    def _set_state(self, trial_id: int, state: TrialState, values: Any) -> bool:
        if values is None and state in (TrialState.RUNNING, TrialState.FAIL):
            with self.engine.begin() as conn:
                if _move_state(conn, trial_id, state):
                    return True
            # Not in the expected state any more: Optuna's own method returns False or raises
            # UpdateFinishedTrialError as it should.
        elif state.is_finished() and self._core:
            return self._finish(trial_id, state, values)
        return super().set_trial_state_values(trial_id, state, values)

    def _finish(self, trial_id: int, state: TrialState, values: Any) -> bool:
        """Optuna's ``set_trial_state_values`` to a finished state, in SQL Core: set the state
        and end time of a trial that is not finished yet, then upsert its values (one
        transaction, much cheaper than Optuna's ORM path). Equality with Optuna's is tested.

        The state change is one conditional UPDATE (``WHERE state IN (RUNNING, WAITING)``)
        that runs first: it takes the write lock (SQLite) or the row lock (PostgreSQL), so a
        trial another worker failed as stale in the meantime is refused here, never
        overwritten, on any database. (A read before the write would not do on SQLite, which
        runs that read outside the write transaction.)"""
        from optuna.storages._rdb import models as rdb

        sql = _statements(self.engine.name)
        try:
            with self.engine.begin() as conn:
                finished = conn.execute(
                    sql.finish,
                    {"finished_id": trial_id, "new_state": state, "now": datetime.now(UTC).replace(tzinfo=None)},
                )
                if finished.rowcount != 1:
                    # Missing (KeyError) or already finished (UpdateFinishedTrialError), as Optuna.
                    self._updatable(conn, sql.state_and_study, trial_id)
                    raise StorageError(f"Trial {trial_id} could not be finished; run the worker again.")
                if values is not None:
                    rows = []
                    for objective, value in enumerate(values):
                        stored, kind = rdb.TrialValueModel.value_to_stored_repr(value)
                        rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
                    conn.execute(sql.upsert_values, rows)
        except sqlalchemy.exc.IntegrityError:
            return False
        return True

    def taken_over(self, trial_id: int) -> bool:
        """Whether the trial is finished although this process never finished it: another
        worker failed it as stale (its heartbeat stopped, e.g. this process was paused past
        the grace period) and runs its retry. Whatever this process computed for it is dropped."""
        if trial_id in self.__dict__.get("_finished_here", ()):
            return False
        with self.engine.connect() as conn:
            row = conn.execute(_statements(self.engine.name).state_and_study, {"trial_id": trial_id}).first()
        return row is not None and TrialState(row.state).is_finished()

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's heartbeat write (once as a trial starts, then every few seconds) as one
        SQL Core upsert of the database's current time, as Optuna stores it."""
        if not self._core:
            return super().record_heartbeat(trial_id)
        with self.engine.begin() as conn:
            conn.execute(_statements(self.engine.name).beat, {"trial_id": trial_id})

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale-trial query (run before every trial), in SQL Core: the study's
        RUNNING trials whose heartbeat is older than the grace period, by the database's clock."""
        if not self._core:
            return super()._get_stale_trial_ids(study_id)
        assert self.heartbeat_interval is not None
        grace = timedelta(seconds=self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval)
        with self.engine.connect() as conn:
            now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
            rows = conn.execute(_statements(self.engine.name).running_beats, {"study_id": study_id}).all()
        assert now is not None  # SELECT now() returns one row
        now = now.replace(tzinfo=None)  # as Optuna does: PostgreSQL's now() is aware
        return [trial_id for trial_id, beat in rows if now - beat > grace]

    def _updatable(self, conn: sqlalchemy.engine.Connection, statement: Any, trial_id: int) -> Any:
        """The trial's ``(state, study_id)`` row read with ``statement`` (with or without a
        row lock); Optuna's errors for a missing trial (KeyError) or a finished one
        (UpdateFinishedTrialError)."""
        from optuna.storages._rdb import models as rdb

        row = conn.execute(statement, {"trial_id": trial_id}).first()
        if row is None:
            raise KeyError(rdb.NOT_FOUND_MSG)
        self.check_trial_is_updatable(trial_id, row.state)
        return row

    def _set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any, previous_distribution: Any
    ) -> None:
        """Optuna's write of one suggested param, in SQL Core (it runs for every param of every
        trial, and the ORM path costs several times as much): check the trial is running and the
        distribution matches the study's earlier ones for this name, then insert. Equality with
        Optuna's is tested."""
        if not self._core:
            return super()._set_trial_param(
                trial_id, param_name, param_value_internal, distribution, previous_distribution
            )
        sql = _statements(self.engine.name)
        with self.engine.begin() as conn:
            row = self._updatable(conn, sql.state_and_study, trial_id)
            if previous_distribution is None:
                earlier = conn.execute(
                    sql.earlier_distribution, {"study_id": row.study_id, "name": param_name}
                ).scalar()
                if earlier is not None:
                    previous_distribution = optuna.distributions.json_to_distribution(earlier)
            if previous_distribution is not None:
                optuna.distributions.check_distribution_compatibility(previous_distribution, distribution)
            conn.execute(
                sql.insert_param,
                {
                    "trial_id": trial_id,
                    "param_name": param_name,
                    "param_value": param_value_internal,
                    "distribution_json": optuna.distributions.distribution_to_json(distribution),
                },
            )

    def set_trial_user_attrs(
        self, trial_id: int, attrs: dict[str, Any], intermediate_values: dict[int, float] | None = None
    ) -> None:
        """Write several user attrs (and intermediate values) of a running trial in one
        transaction: a state check and two multi-row upserts, in SQL Core. Optuna's API
        commits each key on its own, an ORM round trip plus a commit each (bench/tuning.py
        measures the difference). MySQL and others take Optuna's per-row writer inside one
        ORM transaction."""
        from optuna.storages._rdb import models as rdb
        from optuna.storages._rdb.storage import _create_scoped_session

        values = sorted((intermediate_values or {}).items())
        if not self._core:
            with _create_scoped_session(self.scoped_session, True) as session:
                trial = rdb.TrialModel.find_or_raise_by_id(trial_id, session)
                # Optuna's ORM models declare plain Columns; on a loaded row this is the TrialState.
                self.check_trial_is_updatable(trial_id, cast(TrialState, trial.state))
                for step, value in values:
                    self._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
                for key, value in attrs.items():
                    self._set_trial_attr_without_commit(session, rdb.TrialUserAttributeModel, trial_id, key, value)
            return
        sql = _statements(self.engine.name)
        if not values and not attrs:
            with self.engine.connect() as conn:
                self._updatable(conn, sql.state_and_study, trial_id)
            return
        try:
            with self.engine.begin() as conn:
                # Written first, then the trial's state checked in the same transaction, which
                # the writes opened (on SQLite with the write lock): a trial another worker
                # failed as stale before this commit is refused, as Optuna refuses it, and the
                # writes are rolled back, never left on the failed trial.
                if values:
                    rows = []
                    for step, value in values:
                        stored, kind = rdb.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                        rows.append(
                            {
                                "trial_id": trial_id,
                                "step": step,
                                "intermediate_value": stored,
                                "intermediate_value_type": kind,
                            }
                        )
                    conn.execute(sql.upsert_steps, rows)
                if attrs:
                    conn.execute(sql.upsert_user_attrs, _attr_rows(trial_id, attrs))
                self._updatable(conn, sql.state_and_study, trial_id)
        except sqlalchemy.exc.IntegrityError:
            # A missing trial, where the database checks foreign keys (PostgreSQL): Optuna's
            # KeyError, from the same check.
            with self.engine.connect() as conn:
                self._updatable(conn, sql.state_and_study, trial_id)
            raise

    def add_waiting_trials(self, study_id: int, system_attrs: list[dict[str, Any]]) -> None:
        """Create WAITING trials (budget slots) with these system attrs, in one transaction.

        What ``study.add_trial(create_trial(state=WAITING, system_attrs=...))`` stores, for
        many trials at once: Optuna commits each slot separately, which makes creating a large
        budget slow; one transaction avoids that. Numbers follow on from the study's trials, as
        Optuna's do; the study row is locked as Optuna locks it to number a trial.
        """
        from optuna.storages._rdb import models as rdb
        from optuna.storages._rdb.storage import _create_scoped_session

        if not system_attrs:
            return
        with _create_scoped_session(self.scoped_session, True) as session:
            rdb.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            base = (
                session.query(sqlalchemy.func.count(rdb.TrialModel.trial_id))
                .filter(rdb.TrialModel.study_id == study_id)
                .scalar()
                or 0
            )
            _add_slots(session, study_id, base, system_attrs)

    def create_study_with_slots(
        self, study_name: str, direction: Any, user_attrs: dict[str, Any], slot_system_attrs: list[dict[str, Any]]
    ) -> int:
        """Create a study with its direction, all its user attrs and all its budget slots
        (WAITING trials with these system attrs, numbered from 0) in one transaction; return
        its id. A process killed part way leaves no study at all, never one without its budget.

        The rows are what ``RDBStorage.create_new_study``, ``set_study_user_attr`` for each
        attr and ``add_waiting_trials`` store with one commit each (tested equal on SQLite and
        PostgreSQL). An existing name raises ``optuna.exceptions.DuplicatedStudyError``, as
        ``create_new_study`` does.
        """
        from optuna.storages._rdb import models as rdb
        from optuna.storages._rdb.storage import _create_scoped_session
        from optuna.study import StudyDirection

        if not isinstance(direction, StudyDirection):
            direction = StudyDirection[str(direction).upper()]
        try:
            with _create_scoped_session(self.scoped_session) as session:
                study = rdb.StudyModel(
                    study_name=study_name, directions=[rdb.StudyDirectionModel(objective=0, direction=direction)]
                )
                session.add(study)
                session.flush()  # assigns the study id; an existing name fails here
                study_id = int(study.study_id)
                session.add_all(
                    [
                        rdb.StudyUserAttributeModel(study_id=study_id, key=key, value_json=json.dumps(value))
                        for key, value in user_attrs.items()
                    ]
                )
                _add_slots(session, study_id, 0, slot_system_attrs)
        except sqlalchemy.exc.IntegrityError:
            raise optuna.exceptions.DuplicatedStudyError(
                f"Another study with study_name={study_name!r} already exists. Pick another name."
            ) from None
        return study_id

    def set_study_user_attr_unless(
        self, study_id: int, key: str, value: Any, unless: tuple[Any, ...], extra: dict[str, Any] | None = None
    ) -> bool:
        """Set the study user attr ``key`` to ``value`` (and the ``extra`` attrs with it) in one
        transaction, unless its current value is one of ``unless``; True when written.

        The conditional UPDATE comes first, so the check and the writes are one atomic step
        (SQLite: under the write lock; PostgreSQL: under the row lock, re-checked after a
        concurrent change): e.g. a late worker's "failed" never lands on a study another worker
        just marked "finished"."""
        blocked = [json.dumps(v) for v in unless]
        update = sqlalchemy.text(
            "UPDATE study_user_attributes SET value_json = :new "
            "WHERE study_id = :s AND key = :k AND value_json NOT IN :blocked"
        ).bindparams(sqlalchemy.bindparam("blocked", expanding=True))
        with self.engine.begin() as conn:
            changed = conn.execute(
                update, {"new": json.dumps(value), "s": study_id, "k": key, "blocked": blocked}
            ).rowcount
            if not changed:
                current = conn.execute(
                    sqlalchemy.text("SELECT value_json FROM study_user_attributes WHERE study_id = :s AND key = :k"),
                    {"s": study_id, "k": key},
                ).first()
                if current is not None:
                    return False  # one of ``unless``
                _insert_study_user_attr(conn, study_id, key, value)
            for extra_key, extra_value in (extra or {}).items():
                done = conn.execute(
                    sqlalchemy.text(
                        "UPDATE study_user_attributes SET value_json = :new WHERE study_id = :s AND key = :k"
                    ),
                    {"new": json.dumps(extra_value), "s": study_id, "k": extra_key},
                ).rowcount
                if not done:
                    _insert_study_user_attr(conn, study_id, extra_key, extra_value)
        return True

    def claim_study_user_attr(self, study_id: int, key: str, value: Any) -> bool:
        """Set a study user attr to ``value`` unless it already has that value; True when this
        call changed it. One conditional UPDATE, so of several workers racing to make the
        same change (the last ones to finish a study), exactly one wins."""
        new = json.dumps(value)
        with self.engine.begin() as conn:
            changed = conn.execute(
                sqlalchemy.text(
                    "UPDATE study_user_attributes SET value_json = :new "
                    "WHERE study_id = :s AND key = :k AND value_json != :new"
                ),
                {"new": new, "s": study_id, "k": key},
            ).rowcount
            if changed:
                return True
            exists = conn.execute(
                sqlalchemy.text("SELECT 1 FROM study_user_attributes WHERE study_id = :s AND key = :k"),
                {"s": study_id, "k": key},
            ).first()
        if exists:
            return False
        self.set_study_user_attr(study_id, key, value)
        return True

    def claim_waiting_trial(self, study_id: int, user_attrs: dict[str, Any] | None = None) -> Any:
        """Claim the study's oldest WAITING trial for this worker and return it (a RUNNING
        ``FrozenTrial``); None when none is left.

        Two small statements per try: a conditional UPDATE decides races, and the loser tries
        the next slot. ``user_attrs`` (the worker's name) are written in the claim's own
        transaction: one commit less per trial than setting them afterwards.
        """
        while True:
            with self.engine.connect() as conn:
                trial_id = conn.execute(
                    sqlalchemy.text("SELECT min(trial_id) FROM trials WHERE study_id = :s AND state = 'WAITING'"),
                    {"s": study_id},
                ).scalar()
            if trial_id is None:
                return None
            if self._claim(int(trial_id), user_attrs or {}):
                self._just_claimed = self.read_trial(int(trial_id))
                return copy.copy(self._just_claimed)
            # Another worker took it (or it is no longer WAITING): try the next slot.

    def _claim(self, trial_id: int, user_attrs: dict[str, Any]) -> bool:
        """WAITING -> RUNNING for this worker, with ``user_attrs`` in the same transaction."""
        if user_attrs and not self._core:
            try:
                if not self.set_trial_state_values(trial_id, TrialState.RUNNING):
                    return False
            except optuna.exceptions.UpdateFinishedTrialError:
                return False
            for key, value in user_attrs.items():
                self.set_trial_user_attr(trial_id, key, value)
            return True
        with self.engine.begin() as conn:
            if not _move_state(conn, trial_id, TrialState.RUNNING):
                return False
            if user_attrs:
                conn.execute(_statements(self.engine.name).upsert_user_attrs, _attr_rows(trial_id, user_attrs))
        return True

    def get_trial(self, trial_id: int) -> Any:
        """Optuna's read of one trial (``read_trial``), except the first read of a trial this
        worker just claimed: Optuna reads it twice in a row (to cache it, then to start the
        trial), and nothing can change in between, so the second read is served from the first."""
        claimed = self.__dict__.pop("_just_claimed", None)
        if claimed is not None and claimed._trial_id == trial_id:
            return copy.deepcopy(claimed)
        return self.read_trial(trial_id)

    def read_trial(self, trial_id: int) -> FrozenTrial:
        """What Optuna's ``RDBStorage.get_trial`` returns, read with six SQL Core queries on
        one connection (one snapshot) instead of an ORM object and five lazy loads.

        A worker reads its running trial twice per trial (at the claim and at ``tell``), and
        the ORM path is several times slower than these queries (bench/tuning.py measures the
        storage cost). Same tables, same conversions: tests/test_storage.py checks it equals
        Optuna's read for every state, value type, distribution and attr kind, on SQLite and
        PostgreSQL.
        """
        from optuna.storages._rdb import models as rdb

        trials = self._read(_statements(self.engine.name).one_trial, {"trial_id": trial_id})
        if not trials:
            raise KeyError(rdb.NOT_FOUND_MSG)
        return trials[0]

    def read_trials(self, study_id: int, trial_ids: set[int], greater_than: int) -> list[FrozenTrial]:
        """What Optuna's ``RDBStorage._get_trials(study_id, None, trial_ids, greater_than)``
        returns (the trials in ``trial_ids`` or numbered above ``greater_than``, by id), with
        six SQL Core queries instead of the ORM (Optuna's cache runs this on every sampler
        read and every pruning check, so the ORM's cost per call adds up over a study)."""
        sql = _statements(self.engine.name)
        ids = sorted(i for i in trial_ids if i <= greater_than)
        if len(ids) > _MAX_IDS:  # far beyond a worker's usual few running trials
            return super()._get_trials(study_id, None, set(ids), greater_than)
        return self._read(
            sql.study_trials, {"study_id": study_id, "ids": ids, "gt": greater_than}, must_exist=sql.study_exists
        )

    def _read(self, queries: tuple[Any, ...], key: dict[str, Any], must_exist: Any = None) -> list[FrozenTrial]:
        """FrozenTrials from the six queries of ``_statements`` (trials, then their values,
        params, user attrs, system attrs and intermediate values, each row led by its trial
        id), run in one snapshot (``snapshot``), as Optuna's one session.
        ``must_exist``: a query that must return a row first (KeyError otherwise)."""
        from optuna.storages._rdb import models as rdb

        with snapshot(self.engine) as conn:
            if must_exist is not None and conn.execute(must_exist, key).first() is None:
                raise KeyError(rdb.NOT_FOUND_MSG)
            rows = [conn.execute(query, key).all() for query in queries]
        trial_rows, value_rows, param_rows, user_rows, system_rows, step_rows = rows
        by_trial: dict[int, dict[str, Any]] = {
            r.trial_id: {"values": {}, "params": {}, "dists": {}, "user": {}, "system": {}, "steps": {}}
            for r in trial_rows
        }
        for trial_id, objective, value, kind in value_rows:
            by_trial[trial_id]["values"][objective] = rdb.TrialValueModel.stored_repr_to_value(value, kind)
        dist_of: dict[str, Any] = {}  # one decode per distinct JSON
        for trial_id, name, value, text in param_rows:
            if text not in dist_of:
                dist_of[text] = optuna.distributions.json_to_distribution(text)
            dist = dist_of[text]
            by_trial[trial_id]["params"][name] = dist.to_external_repr(value)
            by_trial[trial_id]["dists"][name] = copy.copy(dist)  # Optuna's trials each have their own
        for part, attr_rows in (("user", user_rows), ("system", system_rows)):
            for trial_id, key_, text in attr_rows:
                by_trial[trial_id][part][key_] = json.loads(text)
        for trial_id, step, value, kind in step_rows:
            by_trial[trial_id]["steps"][step] = rdb.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                value, kind
            )
        out = []
        for r in trial_rows:
            got = by_trial[r.trial_id]
            values = [got["values"][k] for k in sorted(got["values"])] or None
            out.append(
                FrozenTrial(
                    number=r.number,
                    state=r.state,
                    value=None,
                    values=values,
                    datetime_start=_utc_to_local(r.datetime_start),
                    datetime_complete=_utc_to_local(r.datetime_complete),
                    params=got["params"],
                    distributions=got["dists"],
                    user_attrs=got["user"],
                    system_attrs=got["system"],
                    intermediate_values=got["steps"],
                    trial_id=r.trial_id,
                )
            )
        return out

    def _get_trials(
        self, study_id: int, states: Any, included_trial_ids: set[int], trial_id_greater_than: int
    ) -> list[Any]:
        """Optuna's trial read, without re-reading WAITING trials that are still WAITING.

        Optuna's cache re-reads every unfinished trial in full (params and four kinds of
        attrs) on each ``ask`` and each sampler read. hpdash keeps its budget as WAITING
        slots, so that would make every trial cost more the more budget is left. A WAITING
        trial does not change until a worker claims it, so after one cheap ``(trial_id, state)``
        query the ones still WAITING are served from memory.
        """
        if states is not None:
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        memo: dict[int, Any] = self.__dict__.setdefault("_waiting_memo", {})
        included = {i for i in included_trial_ids if i <= trial_id_greater_than}
        lowest = min(included, default=trial_id_greater_than + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text("SELECT trial_id, state FROM trials WHERE study_id = :s AND trial_id >= :low"),
                {"s": study_id, "low": lowest},
            ).all()
        wanted = [(i, str(state)) for i, state in rows if i in included or i > trial_id_greater_than]
        cached = {i: memo[i] for i, state in wanted if state.endswith("WAITING") and i in memo}
        top = max((i for i, _ in wanted), default=trial_id_greater_than)
        fetch = {i for i, _ in wanted if i not in cached}
        # "trial_id IN fetch OR trial_id > top": the ones to read, plus any trial created since.
        fresh = self.read_trials(study_id, fetch, top)
        for trial in fresh:
            if trial.state == TrialState.WAITING:
                memo[trial._trial_id] = trial
            else:
                memo.pop(trial._trial_id, None)
        return sorted([*cached.values(), *fresh], key=lambda t: t._trial_id)


def _add_slots(session: Any, study_id: int, base: int, system_attrs: list[dict[str, Any]]) -> None:
    """Add WAITING trials numbered from ``base`` with these system attrs to an ORM session:
    the rows Optuna's ``add_trial(create_trial(state=WAITING, system_attrs=...))`` stores."""
    from optuna.storages._rdb import models as rdb

    trials = [
        rdb.TrialModel(
            study_id=study_id, number=base + i, state=TrialState.WAITING, datetime_start=None, datetime_complete=None
        )
        for i in range(len(system_attrs))
    ]
    session.add_all(trials)
    session.flush()  # assigns the trial ids
    session.add_all(
        [
            rdb.TrialSystemAttributeModel(trial_id=trial.trial_id, key=key, value_json=json.dumps(value))
            for trial, attrs in zip(trials, system_attrs)
            for key, value in attrs.items()
        ]
    )


def _insert_study_user_attr(conn: sqlalchemy.engine.Connection, study_id: int, key: str, value: Any) -> None:
    """One study user attr row, as Optuna's ``set_study_user_attr`` inserts it."""
    conn.execute(
        sqlalchemy.text("INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (:s, :k, :v)"),
        {"s": study_id, "k": key, "v": json.dumps(value)},
    )


def _utc_to_local(value: datetime | None) -> datetime | None:
    """Stored naive UTC to naive local time, as Optuna's ``TrialModel.datetime_start`` does."""
    return None if value is None else value.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def _move_state(conn: sqlalchemy.engine.Connection, trial_id: int, state: TrialState) -> bool:
    """WAITING -> RUNNING (with the start time) or RUNNING -> FAIL (with the end time), only
    from that state: one conditional UPDATE, so of racing workers exactly one succeeds."""
    before, column = ("WAITING", "datetime_start") if state == TrialState.RUNNING else ("RUNNING", "datetime_complete")
    return (
        conn.execute(
            sqlalchemy.text(
                # Literals, not parameters: PostgreSQL's state column is an enum type. Both come
                # from the fixed set above, never from input.
                f"UPDATE trials SET state = '{state.name}', {column} = :now "
                f"WHERE trial_id = :trial_id AND state = '{before}'"
            ),
            # Naive UTC: Optuna's TrialModel setter converts its datetime.now() to naive UTC
            # before storing; raw SQL bypasses that setter, so we convert here.
            {"now": datetime.now(UTC).replace(tzinfo=None), "trial_id": trial_id},
        ).rowcount
        == 1
    )


def _dialect(engine_name: str) -> Any:
    """SQLAlchemy's SQLite or PostgreSQL dialect module (for INSERT ... ON CONFLICT)."""
    if engine_name == "sqlite":
        return sqlalchemy.dialects.sqlite
    import sqlalchemy.dialects.postgresql as postgresql  # here: SQLite workers never pay for its import

    return postgresql


#: Databases with INSERT ... ON CONFLICT on Optuna's unique constraints: hpdash's SQL Core
#: writes (``_statements``) run there; others take Optuna's ORM methods.
_CORE_DIALECTS = ("sqlite", "postgresql")

_MAX_IDS = 500  # trial ids per IN (...) list: far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True)
class _Statements:
    """The SQL Core statements of a worker's hot path, built once per dialect: SQLAlchemy
    compiles a statement built once a single time, one built per call every time (compiling a
    multi-row INSERT costs about as much as running it)."""

    one_trial: tuple[Any, ...]  # the six reads of ``_read``, for one trial (:trial_id)
    study_trials: tuple[Any, ...]  # the same for a study's trials in :ids or above :gt
    study_exists: Any
    state_and_study: Any
    earlier_distribution: Any
    insert_param: Any
    finish: Any
    upsert_values: Any
    upsert_user_attrs: Any
    upsert_steps: Any
    beat: Any
    running_beats: Any


@functools.cache
def _statements(dialect_name: str) -> _Statements:
    from optuna.storages._rdb import models as rdb

    trials, values = rdb.TrialModel.__table__, rdb.TrialValueModel.__table__
    params, steps = rdb.TrialParamModel.__table__, rdb.TrialIntermediateValueModel.__table__
    user, system = rdb.TrialUserAttributeModel.__table__, rdb.TrialSystemAttributeModel.__table__
    beats = rdb.TrialHeartbeatModel.__table__
    select, bind = sqlalchemy.select, sqlalchemy.bindparam
    trial_id: sqlalchemy.BindParameter[Any] = bind("trial_id")

    def reads(where: Any) -> tuple[Any, ...]:
        """The trials matching ``where`` (on the trials table), then their child rows."""

        def children(table: Any, order: Any, *columns: Any) -> Any:
            return (
                select(table.c.trial_id, *columns)
                .join(trials, trials.c.trial_id == table.c.trial_id)
                .where(where)
                .order_by(order)
            )

        return (
            select(
                trials.c.trial_id, trials.c.number, trials.c.state, trials.c.datetime_start, trials.c.datetime_complete
            )
            .where(where)
            .order_by(trials.c.trial_id),
            children(values, values.c.trial_value_id, values.c.objective, values.c.value, values.c.value_type),
            children(params, params.c.param_id, params.c.param_name, params.c.param_value, params.c.distribution_json),
            children(user, user.c.trial_user_attribute_id, user.c.key, user.c.value_json),
            children(system, system.c.trial_system_attribute_id, system.c.key, system.c.value_json),
            children(
                steps,
                steps.c.trial_intermediate_value_id,
                steps.c.step,
                steps.c.intermediate_value,
                steps.c.intermediate_value_type,
            ),
        )

    def upsert(table: Any, keys: tuple[str, ...], **values: Any) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE of the other inserted columns, where
        Optuna's tables have their unique (trial_id, objective / key / step) constraints; run
        with a list of rows (``values``: columns set by SQL instead)."""
        insert = _dialect(dialect_name).insert(table)
        if values:
            insert = insert.values(**values)
        return insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={c.name: insert.excluded[c.name] for c in table.c if c.name not in keys and not c.primary_key},
        )

    upsert_values = upsert_user_attrs = upsert_steps = beat = None
    if dialect_name in _CORE_DIALECTS:
        upsert_values = upsert(values, ("trial_id", "objective"))
        upsert_user_attrs = upsert(user, ("trial_id", "key"))
        upsert_steps = upsert(steps, ("trial_id", "step"))
        beat = upsert(beats, ("trial_id",), trial_id=trial_id, heartbeat=sqlalchemy.func.current_timestamp())
    return _Statements(
        one_trial=reads(trials.c.trial_id == trial_id),
        study_trials=reads(
            sqlalchemy.and_(
                trials.c.study_id == bind("study_id"),
                sqlalchemy.or_(trials.c.trial_id.in_(bind("ids", expanding=True)), trials.c.trial_id > bind("gt")),
            )
        ),
        study_exists=select(rdb.StudyModel.__table__.c.study_id).where(
            rdb.StudyModel.__table__.c.study_id == bind("study_id")
        ),
        state_and_study=select(trials.c.state, trials.c.study_id).where(trials.c.trial_id == trial_id),
        earlier_distribution=select(params.c.distribution_json)
        .join(trials, trials.c.trial_id == params.c.trial_id)
        .where(trials.c.study_id == bind("study_id"), params.c.param_name == bind("name"))
        .limit(1),
        insert_param=sqlalchemy.insert(params),
        # Only a trial that is not finished yet (Optuna's check_trial_is_updatable), decided by
        # the UPDATE itself.
        finish=sqlalchemy.update(trials)
        .where(trials.c.trial_id == bind("finished_id"), trials.c.state.in_([TrialState.RUNNING, TrialState.WAITING]))
        .values(state=bind("new_state"), datetime_complete=bind("now")),
        upsert_values=upsert_values,
        upsert_user_attrs=upsert_user_attrs,
        upsert_steps=upsert_steps,
        beat=beat,
        running_beats=select(trials.c.trial_id, beats.c.heartbeat)
        .join(beats, beats.c.trial_id == trials.c.trial_id)
        .where(trials.c.study_id == bind("study_id"), trials.c.state == TrialState.RUNNING),
    )


def _attr_rows(trial_id: int, attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]


def _worker_backend(storage: Any) -> WorkerRDBStorage | ProxyStorage | None:
    """hpdash's worker storage behind ``storage`` (Optuna's cache unwrapped), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, WorkerRDBStorage | ProxyStorage) else None


def claim_study_user_attr(study: optuna.Study, key: str, value: Any) -> bool:
    """``study.set_user_attr(key, value)`` unless it already has that value; True when this
    call changed it. Atomic on an hpdash storage (``WorkerRDBStorage.claim_study_user_attr``,
    directly or through the proxy); on any other storage a read and a write, for single-process use."""
    backend = _worker_backend(study._storage)
    if backend is not None:
        return backend.claim_study_user_attr(study._study_id, key, value)
    if study.user_attrs.get(key, object()) == value:
        return False
    study.set_user_attr(key, value)
    return True


def set_study_user_attr_unless(
    study: optuna.Study, key: str, value: Any, unless: tuple[Any, ...], extra: dict[str, Any] | None = None
) -> bool:
    """``study.set_user_attr(key, value)`` (and each of ``extra``) unless the attr's current
    value is one of ``unless``; True when written. Atomic on an hpdash storage
    (``WorkerRDBStorage.set_study_user_attr_unless``, directly or through the proxy); on any
    other storage a read and writes, for single-process use."""
    backend = _worker_backend(study._storage)
    if backend is not None:
        return backend.set_study_user_attr_unless(study._study_id, key, value, unless, extra)
    if key in study.user_attrs and study.user_attrs[key] in unless:
        return False
    study.set_user_attr(key, value)
    for extra_key, extra_value in (extra or {}).items():
        study.set_user_attr(extra_key, extra_value)
    return True


def create_budgeted_study(
    storage: Any,
    study_name: str,
    direction: Literal["minimize", "maximize"],
    user_attrs: dict[str, Any],
    slot_system_attrs: list[dict[str, Any]],
    *,
    sampler: Any = None,
    pruner: Any = None,
) -> optuna.Study:
    """Create a study with its user attrs and its budget slots (WAITING trials with these
    system attrs) and return it with ``sampler`` and ``pruner``.

    On an hpdash storage all of it is one transaction (``WorkerRDBStorage.create_study_with_slots``):
    the study appears complete or not at all. Any other storage takes Optuna's own calls, one
    commit each (``create_study``, ``set_user_attr`` per attr, ``add_trial`` per slot), so a
    crash part way can leave a study without its budget there. An existing name raises
    ``optuna.exceptions.DuplicatedStudyError`` either way.
    """
    backend = _worker_backend(storage)
    if backend is not None:
        backend.create_study_with_slots(study_name, direction, user_attrs, slot_system_attrs)
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, sampler=sampler, pruner=pruner
    )
    for key, value in user_attrs.items():
        study.set_user_attr(key, value)
    for attrs in slot_system_attrs:
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs=attrs))
    return study


def taken_over(trial: optuna.Trial) -> bool:
    """Whether this worker's trial was finished by another process while this one ran it
    (failed as stale: its heartbeat stopped, e.g. the process was paused past the grace
    period); see ``WorkerRDBStorage.taken_over``. False on a storage that is not hpdash's."""
    backend = _worker_backend(trial.storage)
    if backend is not None:
        return backend.taken_over(trial._trial_id)
    return False


def set_trial_user_attrs(
    trial: optuna.Trial, attrs: dict[str, Any], intermediate_values: dict[int, float] | None = None
) -> None:
    """``trial.set_user_attr`` (and ``trial.report``) for many keys: one transaction on an
    hpdash storage, one call per key on any other."""
    backend = _worker_backend(trial.storage)
    cached = trial._cached_frozen_trial  # Optuna's Trial keeps its own copy; keep it in step
    if backend is not None:
        backend.set_trial_user_attrs(trial._trial_id, attrs, intermediate_values)
        cached.intermediate_values.update(intermediate_values or {})
        cached.user_attrs.update(attrs)
        return
    for step, value in sorted((intermediate_values or {}).items()):
        trial.report(value, step)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings.

    ``synchronous=NORMAL`` in WAL mode: a commit does not wait for an fsync of the WAL, which
    is otherwise a large part of a trial's storage cost (bench/tuning.py). SQLite documents
    this as safe against corruption in WAL mode; a crash of the process loses nothing, and
    only a power cut can roll back the last few commits, which a worker re-runs on resume.
    """
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _prepare_sqlite(url: str) -> dict[str, Any]:
    """Create the SQLite file in WAL mode and return engine kwargs with a busy timeout."""
    path = Path(url[len("sqlite:///") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    # Changing the journal mode needs the file to itself, and SQLite answers "database is
    # locked" at once (no busy wait) while another process changes it or creates a table in
    # a new file: try again for a while. The mode is stored in the file, so a file already
    # in WAL mode is only read.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT) as conn:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise StorageError(f"Cannot open the SQLite storage at {path}: {exc}") from exc
            time.sleep(0.05)
        except sqlite3.Error as exc:
            raise StorageError(f"Cannot open the SQLite storage at {path}: {exc}") from exc
    return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}


#: Who holds a storage, which sizes its PostgreSQL connection pool (``_pool_kwargs``) and
#: names its connections in ``pg_stat_activity`` (``application_name``).
Pool = Literal["worker", "dashboard", "proxy"]
#: Threads of a proxy server: each runs one request at a time, with one pooled connection.
DEFAULT_PROXY_THREADS = 8


def _pool_kwargs(pool: Pool, proxy_threads: int) -> dict[str, Any]:
    """SQLAlchemy pool settings for a PostgreSQL storage held by ``pool``.

    PostgreSQL refuses connections past ``max_connections`` (100 by default, 3 of them kept
    for superusers), and SQLAlchemy's default pool lets one engine keep 5 idle connections and
    open 10 more (Optuna issue #1347: many workers exhaust the server). What each holder needs:

    - a worker process uses its storage from three threads (the trial, Optuna's heartbeat,
      hpdash's worker record), one short statement at a time: one kept connection, and one
      more for the moment two of them meet, closed as soon as it is returned. W workers hold
      W connections while they run, 2 W at the very most; past ~40 workers on one database,
      put ``hpdash proxy`` in front of it and give workers its ``grpc://`` URL.
    - a dashboard opens a storage per page action and uses it from one script thread: one kept
      connection, overflow for the odd parallel read (fragments), closed when returned.
    - the proxy serves every worker with a fixed thread pool, one request per thread, so its
      pool is one connection per thread (and two spare): the database sees a bounded number of
      connections however many workers there are.

    ``pool_timeout``: a thread waits that long for a connection rather than opening more.
    """
    size, overflow = {"worker": (1, 1), "dashboard": (1, 4), "proxy": (proxy_threads, 2)}[pool]
    return {
        "pool_pre_ping": True,
        "pool_size": size,
        "max_overflow": overflow,
        "pool_timeout": 60,
        "connect_args": {"application_name": f"hpdash-{pool}"},
    }


def open_storage(
    url: str | None = None,
    *,
    budgeted: bool = False,
    heartbeat: bool = True,
    pool: Pool | None = None,
    proxy_threads: int = DEFAULT_PROXY_THREADS,
) -> WorkerRDBStorage:
    """Open the Optuna storage at ``url`` (default: ``config.storage_url()``).

    ``budgeted`` is for workers: ``Study.ask`` then raises ``BudgetExhausted`` instead of
    creating a trial past the budget. ``pool``: who holds it (``_pool_kwargs``); by default a
    worker when it beats (``heartbeat``), a dashboard when not. ``pool="proxy"`` opens the
    proxy's ``ProxyServerStorage`` with ``proxy_threads`` connections. A ``grpc://`` proxy URL
    is refused with a message: this storage runs SQL on the database (``open_study_storage``
    opens either).
    """
    url = require_database(url, "this action")
    pool = pool or ("worker" if heartbeat else "dashboard")
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        engine_kwargs = _prepare_sqlite(url)
    elif url.startswith("postgresql"):
        engine_kwargs = _pool_kwargs(pool, proxy_threads)
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": heartbeat_interval(),
            "grace_period": grace_period(),
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=1),
        }
    try:
        storage = _open_rdb(url, engine_kwargs, kwargs, ProxyServerStorage if pool == "proxy" else WorkerRDBStorage)
    except (optuna.exceptions.StorageInternalError, ValueError, ImportError) as exc:
        raise StorageError(f"Cannot open the study storage {redact(url)}: {exc}") from exc
    except Exception as exc:  # SQLAlchemy connection errors have many types
        raise StorageError(f"Cannot open the study storage {redact(url)}: {exc}") from exc
    if url.startswith("sqlite:///"):
        # Optuna builds the engine itself; connections made before the listener are dropped.
        sqlalchemy.event.listen(storage.engine, "connect", _tune_sqlite)
        storage.engine.dispose()
    storage.budgeted = budgeted
    _ENGINES.add(storage.engine)
    return storage


def _open_rdb(
    url: str, engine_kwargs: dict[str, Any], kwargs: dict[str, Any], cls: type[WorkerRDBStorage] = WorkerRDBStorage
) -> WorkerRDBStorage:
    """The storage at ``url``, its tables created if need be.

    Optuna's schema check reads alembic's migration scripts, which is slow in a fresh process;
    two SELECTs of the pinned schema answer it for a storage hpdash knows, and any other
    storage is opened again with Optuna's own check (and its message).

    Optuna creates missing tables one ``CREATE TABLE`` at a time, so two processes opening a
    new database at once (a ``hpdash run`` and a dashboard, two workers) can both try to
    create a table; the loser gets "already exists". The tables are then there, so opening
    again succeeds.
    """
    for attempt in range(_CREATION_ATTEMPTS):
        try:
            storage = cls(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True, **kwargs)
            break
        except sqlalchemy.exc.DBAPIError as exc:
            if attempt == _CREATION_ATTEMPTS - 1 or not _lost_creation_race(exc):
                raise
            time.sleep(0.02 * (attempt + 1))
    if not _schema_is_pinned(storage.engine):
        storage.engine.dispose()
        storage = cls(url, engine_kwargs=engine_kwargs, **kwargs)
    return storage


#: Each attempt creates the tables still missing, so a process loses at most one race per
#: table (Optuna has 12); in practice two or three attempts are enough.
_CREATION_ATTEMPTS = 13


def _lost_creation_race(exc: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether ``exc`` says another process created the same table or type first."""
    text = str(exc.orig).lower()
    return "already exists" in text or "duplicate key" in text or "unique constraint failed" in text


_ENGINES: weakref.WeakSet[sqlalchemy.engine.Engine] = weakref.WeakSet()


def is_pinned_schema(version: tuple[int | None, str | None]) -> bool:
    """Whether a ``schema_version`` is exactly the Optuna schema hpdash is pinned to (and that
    ``tests/test_results.py`` checks against the installed Optuna)."""
    return version == (OPTUNA_SCHEMA_VERSION, OPTUNA_ALEMBIC_REVISION)


def _schema_is_pinned(engine: sqlalchemy.engine.Engine) -> bool:
    return is_pinned_schema(schema_version(engine))


def close_all() -> None:
    """Close the pooled connections of every storage this process opened (for SQLite, the
    last close checkpoints the WAL into the database file)."""
    for engine in list(_ENGINES):
        engine.dispose()


def redact(url: str) -> str:
    """The storage URL with any password hidden, for messages and the UI."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


# --------------------------------------------------------------------------------------------
# Optuna's private names that other modules need, behind one function each
# --------------------------------------------------------------------------------------------
class WorkerStudy(optuna.Study):
    """The study as a worker holds it: ``ask`` claims the next WAITING slot directly.

    Optuna's ``Study._pop_waiting_trial_id`` first re-reads every WAITING trial in full (all
    of the budget left) to pick the lowest; hpdash's storage picks it with one ``min()`` and
    claims it with one conditional UPDATE (``WorkerRDBStorage.claim_waiting_trial``). Same
    order (lowest trial first), same race handling; a private method, so
    tests/test_optuna_internals.py checks it against the installed Optuna.
    """

    #: User attrs written in the claim's own transaction (``run_worker`` sets the worker's name).
    claim_attrs: dict[str, Any] = {}

    def _pop_waiting_trial_id(self) -> int | None:
        cache = self._storage
        if isinstance(cache, ProxyStorage):  # the proxy claims it in the database, as below
            return cache.claim_waiting_trial(self._study_id, self.claim_attrs)
        if not (isinstance(cache, _CachedStorage) and isinstance(cache._backend, WorkerRDBStorage)):
            return super()._pop_waiting_trial_id()
        return _claim_into_cache(cache, self._study_id, self.claim_attrs)


def _claim_into_cache(cache: _CachedStorage, study_id: int, user_attrs: dict[str, Any]) -> int | None:
    """Claim the study's next WAITING slot in the cache's ``WorkerRDBStorage`` and return its
    id (None: none left), with the trial added to the cache as Optuna's
    ``_CachedStorage.create_new_trial`` adds a trial it creates: the cache must know the trial
    before params are set on it."""
    backend = cache._backend
    assert isinstance(backend, WorkerRDBStorage)
    claimed = backend.claim_waiting_trial(study_id, user_attrs)
    if claimed is None:
        return None
    with cache._lock:
        cache._studies.setdefault(study_id, _StudyInfo())
        cache._add_trials_to_cache(study_id, [claimed])
    return claimed._trial_id


def rdb_backend(study: optuna.Study) -> RDBStorage | None:
    """The ``RDBStorage`` behind ``study`` (unwrapping Optuna's cache), or None."""
    return unwrap_rdb(study._storage)


def unwrap_rdb(storage: Any) -> RDBStorage | None:
    """The ``RDBStorage`` a storage object is or wraps (Optuna's cache), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def study_id(study: optuna.Study) -> int:
    """The study's row id in its storage (Optuna keeps it private)."""
    return study._study_id


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """The trial's row id in its storage (Optuna keeps it private)."""
    return trial._trial_id


def write_sampler_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any, *, system: bool) -> None:
    """Write an attr on the trial a sampler is choosing params for. Optuna has no public call
    for a sampler to write on the trial it samples; its own samplers (CmaEsSampler,
    QMCSampler) use the storage this way."""
    if system:
        study._storage.set_trial_system_attr(trial._trial_id, key, value)
    else:
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


# --------------------------------------------------------------------------------------------
# Optuna's gRPC storage proxy: the server (``hpdash proxy``) and the worker's client
# --------------------------------------------------------------------------------------------
#: The scheme of a storage URL that names an ``hpdash proxy`` rather than a database.
PROXY_SCHEME = "grpc://"
DEFAULT_PROXY_HOST = "127.0.0.1"
DEFAULT_PROXY_PORT = 13000
#: hpdash's own gRPC service beside Optuna's ``StorageService`` on the same port: the worker
#: storage's atomic calls (claims, conditional study attrs, batched trial attrs, a study with
#: its slots), which Optuna's API has no message for, and the heartbeat calls, which Optuna's
#: proxy does not carry (its client is no ``BaseHeartbeat``). Requests and replies are JSON.
PROXY_SERVICE = "hpdash.WorkerStorage"


def is_proxy_url(url: str | None) -> bool:
    """Whether ``url`` (default: ``config.storage_url()``) names an ``hpdash proxy``."""
    return config.storage_url(url).startswith(PROXY_SCHEME)


def proxy_url(host: str, port: int) -> str:
    """The storage URL workers use to reach a proxy on ``host:port``."""
    return f"{PROXY_SCHEME}{host}:{port}"


def proxy_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of a ``grpc://host:port`` URL; StorageError for anything else."""
    rest = url[len(PROXY_SCHEME) :] if url.startswith(PROXY_SCHEME) else ""
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StorageError(
            f"{url!r} is not a proxy URL: write it as grpc://HOST:PORT, as `hpdash proxy` prints it "
            f"(default {proxy_url(DEFAULT_PROXY_HOST, DEFAULT_PROXY_PORT)})."
        )
    return host.strip("[]"), int(port)


def require_database(url: str | None, what: str) -> str:
    """``url`` (resolved) when it names a database; StorageError when it names a proxy, for
    ``what`` needs SQL on the database itself, which only reaches workers through the proxy."""
    resolved = config.storage_url(url)
    if resolved.startswith(PROXY_SCHEME):
        raise StorageError(
            f"{what.capitalize()} needs the study database itself, and {resolved} is an `hpdash proxy`, "
            "which serves workers only. Point HPDASH_STORAGE (or --storage) here at the database URL "
            "the proxy was started with (`hpdash proxy --storage URL`); keep the grpc:// URL for workers."
        )
    return resolved


def _budget_of_study(conn: sqlalchemy.engine.Connection, study_id: int) -> Any:
    from hpdash.attrs import BUDGET

    text = conn.execute(
        sqlalchemy.text("SELECT value_json FROM study_user_attributes WHERE study_id = :s AND key = :k"),
        {"s": study_id, "k": BUDGET},
    ).scalar()
    return None if text is None else json.loads(text)


class ProxyServerStorage(WorkerRDBStorage):
    """The worker storage behind ``hpdash proxy``: one storage for every study and worker.

    Its budget guard is decided per study, from the study's own ``hpdash.budget`` record (a
    study with a trial budget never gets a trial from nothing; a time-budget study does), so
    that it holds for every client of the proxy, hpdash's workers or plain Optuna ones.
    """

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        if template_trial is None:
            with self.engine.connect() as conn:
                if _budget_of_study(conn, study_id) is not None:
                    raise BudgetExhausted()
        return super()._create_new_trial(study_id, template_trial)

    def heartbeat_settings(self) -> dict[str, Any]:
        return {"interval": self.heartbeat_interval, "grace": self.grace_period}


def _proxy_calls(cache: _CachedStorage, backend: ProxyServerStorage) -> dict[str, Any]:
    """hpdash's proxy methods over ``backend`` (and ``cache``, Optuna's cache over it, which
    serves Optuna's own calls): name -> function of the decoded request, returning the reply."""

    def claim(r: dict[str, Any]) -> dict[str, Any]:
        return {"trial_id": _claim_into_cache(cache, r["study_id"], r["user_attrs"])}

    def beat(r: dict[str, Any]) -> dict[str, Any]:
        backend.record_heartbeat(r["trial_id"])
        return {}

    def trial_attrs(r: dict[str, Any]) -> dict[str, Any]:
        steps = {int(step): value for step, value in r["intermediate_values"].items()}
        backend.set_trial_user_attrs(r["trial_id"], r["attrs"], steps)
        return {}

    def create(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "study_id": backend.create_study_with_slots(
                r["study_name"], r["direction"], r["user_attrs"], r["slot_system_attrs"]
            )
        }

    return {
        "ClaimWaitingTrial": claim,
        "RecordHeartbeat": beat,
        "StaleTrialIds": lambda r: {"trial_ids": backend._get_stale_trial_ids(r["study_id"])},
        "HeartbeatSettings": lambda r: backend.heartbeat_settings(),
        "ClaimStudyUserAttr": lambda r: {"changed": backend.claim_study_user_attr(r["study_id"], r["key"], r["value"])},
        "SetStudyUserAttrUnless": lambda r: {
            "written": backend.set_study_user_attr_unless(
                r["study_id"], r["key"], r["value"], tuple(r["unless"]), r["extra"]
            )
        },
        "SetTrialUserAttrs": trial_attrs,
        "CreateStudyWithSlots": create,
    }


def _grpc_code(exc: Exception) -> Any:
    """The gRPC status an error of the worker storage travels as (Optuna's servicer's mapping,
    plus the spent budget); None for an unexpected error (sent as UNKNOWN)."""
    import grpc

    if isinstance(exc, BudgetExhausted):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, KeyError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, optuna.exceptions.DuplicatedStudyError):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(exc, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return None


def _raise_local(exc: Any) -> None:
    """Raise the worker storage's own error for a gRPC error the proxy sent (the reverse of
    ``_grpc_code``); any other error is left to propagate as it is."""
    import grpc

    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        raise BudgetExhausted() from exc
    if code == grpc.StatusCode.NOT_FOUND:
        raise KeyError(details) from exc
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        raise optuna.exceptions.UpdateFinishedTrialError(details) from exc
    if code == grpc.StatusCode.ALREADY_EXISTS:
        raise optuna.exceptions.DuplicatedStudyError(details) from exc
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        raise ValueError(details) from exc
    if code == grpc.StatusCode.UNAVAILABLE:
        raise StorageError(
            f"The hpdash proxy does not answer ({details}). Check that `hpdash proxy` runs and that "
            "this machine reaches its host and port."
        ) from exc


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def _from_json_bytes(data: bytes) -> Any:
    return json.loads(data)


def _proxy_handler(cache: _CachedStorage, backend: ProxyServerStorage) -> Any:
    """hpdash's gRPC service (``PROXY_SERVICE``) over ``backend``, as a generic handler."""
    import grpc

    def method(call: Any) -> Any:
        def run(request: dict[str, Any], context: Any) -> dict[str, Any]:
            try:
                return call(request)
            except Exception as exc:
                code = _grpc_code(exc)
                if code is None:
                    raise  # gRPC logs it and answers UNKNOWN with its text
                context.abort(code, str(exc))
                raise  # not reached: abort raises

        return grpc.unary_unary_rpc_method_handler(
            run, request_deserializer=_from_json_bytes, response_serializer=_json_bytes
        )

    return grpc.method_handlers_generic_handler(
        PROXY_SERVICE, {name: method(call) for name, call in _proxy_calls(cache, backend).items()}
    )


def make_proxy_server(
    url: str, host: str, port: int, threads: int = DEFAULT_PROXY_THREADS
) -> tuple[Any, ProxyServerStorage, int]:
    """``(grpc server, storage, port)``: Optuna's gRPC storage proxy over hpdash's worker
    storage at the database ``url``, with hpdash's service beside it, bound to ``host:port``
    (port 0: a free port, returned), not started.

    This is what ``optuna.storages.run_grpc_proxy_server`` builds (Optuna's servicer over a
    cached storage, a thread pool, an insecure port), built here so that the caller holds the
    server (to stop it on a signal, which ``run_grpc_proxy_server`` cannot) and so that hpdash's
    service is on the same port. The storage is Optuna's cache over ``ProxyServerStorage``, as
    Optuna's documentation asks: its trial reads send only what changed.
    """
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    require_database(url, "the proxy")

    class Servicer(OptunaStorageProxyService):
        """Optuna's servicer, with a spent budget answered as RESOURCE_EXHAUSTED and a message
        instead of an unknown error (defined here: gRPC is imported only by the proxy)."""

        def CreateNewTrial(self, request: Any, context: Any) -> Any:
            try:
                return super().CreateNewTrial(request, context)
            except BudgetExhausted:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "The study's trial budget is spent: every budget slot is taken, and hpdash creates no trial past it.",
                )
                raise  # not reached: abort raises

    server_storage = open_storage(url, pool="proxy", proxy_threads=threads)
    assert isinstance(server_storage, ProxyServerStorage)
    cached = _CachedStorage(server_storage)  # what optuna.storages.get_storage wraps it in
    server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hpdash-proxy"))
    api_pb2_grpc.add_StorageServiceServicer_to_server(Servicer(cached), server)
    server.add_generic_rpc_handlers((_proxy_handler(cached, server_storage),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # gRPC's "Failed to bind"
        server_storage.engine.dispose()
        raise StorageError(
            f"The proxy cannot listen on {host}:{port} ({exc}): the port is taken or the host is not "
            "this machine's. Pick another with --port or --host."
        ) from exc
    return server, server_storage, bound


class ProxyStorage(optuna.storages.GrpcStorageProxy, _heartbeat.BaseHeartbeat):
    """A worker's storage behind an ``hpdash proxy``: Optuna's gRPC client plus the calls of
    hpdash's worker storage, each one round trip that the proxy runs atomically in the database
    (``WorkerRDBStorage``): the slot claim, the conditional study attrs, a trial's results in
    one transaction, a study with its slots. Heartbeats travel too, so a dead worker's trial
    goes stale and is retried as on a direct connection (Optuna's own client has none). The
    heartbeat interval and grace period are the proxy's (``HPDASH_HEARTBEAT_INTERVAL``,
    ``HPDASH_GRACE_PERIOD`` where it runs)."""

    #: As ``WorkerRDBStorage.budgeted``; the proxy also refuses on its side, per study.
    budgeted: bool = False

    def __init__(self, host: str, port: int) -> None:
        self.address = f"{host}:{port}"
        super().__init__(host=host, port=port)
        self._open_hpdash_channel()

    def _open_hpdash_channel(self) -> None:
        import grpc

        self._hpdash_channel = grpc.insecure_channel(self.address)
        self._finished_here: set[int] = set()
        self._beat_settings: dict[str, Any] | None = None

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        for key in ("_hpdash_channel", "_finished_here", "_beat_settings"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._open_hpdash_channel()

    def close(self) -> None:
        self._hpdash_channel.close()
        super().close()

    def call(self, method: str, **request: Any) -> Any:
        """One call of hpdash's proxy service, with its errors raised as the worker storage's."""
        import grpc

        stub = self._hpdash_channel.unary_unary(
            f"/{PROXY_SERVICE}/{method}", request_serializer=_json_bytes, response_deserializer=_from_json_bytes
        )
        try:
            return stub(request)
        except grpc.RpcError as exc:
            _raise_local(exc)
            raise

    # -- Optuna's calls, with the errors and records of the worker storage ----------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if self.budgeted and template_trial is None:
            raise BudgetExhausted()
        import grpc

        try:
            return super().create_new_trial(study_id, template_trial)
        except grpc.RpcError as exc:
            _raise_local(exc)
            raise

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state.is_finished():
            self._finished_here.add(trial_id)
        return changed

    # -- heartbeats (Optuna's BaseHeartbeat), through hpdash's service ---------------------------
    def _heartbeat_settings(self) -> dict[str, Any]:
        if self._beat_settings is None:
            self._beat_settings = self.call("HeartbeatSettings")
        return self._beat_settings

    def record_heartbeat(self, trial_id: int) -> None:
        self.call("RecordHeartbeat", trial_id=trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return list(self.call("StaleTrialIds", study_id=study_id)["trial_ids"])

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_settings()["interval"]

    def get_heartbeat_stale_trial_callback(self) -> Any:
        if self.get_heartbeat_interval() is None:
            return None
        return RetryHeartbeatStaleTrialCallback(max_retry=1)

    # -- the worker storage's own calls ----------------------------------------------------------
    def claim_waiting_trial(self, study_id: int, user_attrs: dict[str, Any] | None = None) -> int | None:
        """The id of the study's oldest WAITING trial, claimed (RUNNING) for this worker, or None."""
        return self.call("ClaimWaitingTrial", study_id=study_id, user_attrs=user_attrs or {})["trial_id"]

    def claim_study_user_attr(self, study_id: int, key: str, value: Any) -> bool:
        return bool(self.call("ClaimStudyUserAttr", study_id=study_id, key=key, value=value)["changed"])

    def set_study_user_attr_unless(
        self, study_id: int, key: str, value: Any, unless: tuple[Any, ...], extra: dict[str, Any] | None = None
    ) -> bool:
        reply = self.call(
            "SetStudyUserAttrUnless", study_id=study_id, key=key, value=value, unless=list(unless), extra=extra or {}
        )
        return bool(reply["written"])

    def set_trial_user_attrs(
        self, trial_id: int, attrs: dict[str, Any], intermediate_values: dict[int, float] | None = None
    ) -> None:
        self.call("SetTrialUserAttrs", trial_id=trial_id, attrs=attrs, intermediate_values=intermediate_values or {})

    def create_study_with_slots(
        self, study_name: str, direction: Any, user_attrs: dict[str, Any], slot_system_attrs: list[dict[str, Any]]
    ) -> int:
        name = direction.name if isinstance(direction, optuna.study.StudyDirection) else str(direction)
        reply = self.call(
            "CreateStudyWithSlots",
            study_name=study_name,
            direction=name,
            user_attrs=user_attrs,
            slot_system_attrs=slot_system_attrs,
        )
        return int(reply["study_id"])

    def taken_over(self, trial_id: int) -> bool:
        """As ``WorkerRDBStorage.taken_over``: finished, but not by this process."""
        if trial_id in self._finished_here:
            return False
        return self.get_trial(trial_id).state.is_finished()


def open_proxy(url: str, timeout: float | None = None) -> ProxyStorage:
    """The worker storage behind the proxy at ``grpc://host:port``, once the proxy answers
    (StorageError after ``timeout`` seconds, default ``PROXY_CONNECT_TIMEOUT``)."""
    timeout = PROXY_CONNECT_TIMEOUT if timeout is None else timeout
    host, port = proxy_address(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna's proxy is "experimental"
        store = ProxyStorage(host, port)
    try:
        store.wait_server_ready(timeout=timeout)
    except ConnectionError as exc:
        store.close()
        raise StorageError(
            f"No hpdash proxy answers at {url} within {timeout:g} s. Start it there with "
            f"`hpdash proxy --host {host} --port {port} --storage DATABASE_URL`, or fix the URL."
        ) from exc
    return store


PROXY_CONNECT_TIMEOUT = 10  # seconds a worker waits for the proxy to answer


def open_study_storage(
    url: str | None = None, *, budgeted: bool = False, heartbeat: bool = True
) -> WorkerRDBStorage | ProxyStorage:
    """The storage of studies at ``url``: ``open_storage`` for a database, ``open_proxy`` for
    a ``grpc://`` proxy. For what goes through Optuna's API and hpdash's worker calls only
    (loading a study, a worker's whole run); what needs SQL takes ``open_storage``, which
    refuses a proxy URL with a message."""
    resolved = config.storage_url(url)
    if not resolved.startswith(PROXY_SCHEME):
        return open_storage(resolved, budgeted=budgeted, heartbeat=heartbeat)
    store = open_proxy(resolved)
    store.budgeted = budgeted
    return store
