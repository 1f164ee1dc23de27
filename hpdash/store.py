"""The app's catalogue: datasets, notes and experiments in ``hpdash_*`` tables (sqlite-utils).

Optuna owns the study and trial tables; this module owns only what Optuna has no place for.
The catalogue lives in the same SQLite file as Optuna's tables by default (see
``config.catalogue_path``), so every worker process writes to the file the catalogue reads.

Concurrency rules, which keep "database is locked" away from the pages:

- The switch to WAL and the ``CREATE TABLE`` statements run once per file per process
  (``_prepare``), and the DDL only when a table is missing: opening a catalogue is then a
  connect plus reads, which never wait for a writer in WAL mode.
- The connection is in autocommit mode; every write is one ``BEGIN IMMEDIATE`` transaction
  (``_transaction_unretried``), so it takes the write lock before it reads anything; the
  sqlite-utils calls inside it nest as savepoints (``Database.atomic``). A deferred
  transaction that has read and then writes must upgrade its lock, and SQLite answers
  SQLITE_BUSY at once, without waiting, when another connection committed in between.
- An ``sqlite3.OperationalError`` saying "locked" or "busy" is retried with a growing pause
  (``_retry``) for up to ``RETRY_SECONDS`` before it becomes a ``StorageError``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from hpdash import config
from hpdash.errors import StorageError

DATASETS = "hpdash_datasets"
NOTES = "hpdash_notes"
EXPERIMENTS = "hpdash_experiments"
EXPERIMENT_STUDIES = "hpdash_experiment_studies"
EXPERIMENT_QUEUE = "hpdash_experiment_queue"

#: The catalogue's tables: columns (sqlite-utils types) and primary key, as sqlite-utils has
#: always created them, so files made by earlier versions open unchanged.
TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    DATASETS: (
        {
            "sha256": str,
            "name": str,
            "filename": str,
            "format": str,
            "size_bytes": int,
            "n_rows": int,
            "n_cols": int,
            "created_at": str,
        },
        "sha256",
    ),
    NOTES: ({"study": str, "text": str, "updated_at": str}, "study"),
    EXPERIMENTS: ({"name": str, "spec_json": str, "strategies": str, "repeats": int, "created_at": str}, "name"),
    EXPERIMENT_STUDIES: ({"experiment": str, "study": str, "strategy": str, "seed": int}, ("experiment", "study")),
    # The process that runs an experiment's studies a few at a time (hpdash.experiments):
    # times are Unix seconds; stop_requested is set by stop_experiment.
    EXPERIMENT_QUEUE: (
        {
            "experiment": str,
            "pid": int,
            "host": str,
            "started": float,
            "last_seen": float,
            "ended": float,
            "workers": int,
            "parallel": int,
            "log": str,
            "stop_requested": float,
            "error": str,
        },
        "experiment",
    ),
}

#: How long one statement waits for a lock inside SQLite (its busy handler) before it fails.
BUSY_TIMEOUT_S = 5.0
#: How long a read or write keeps retrying "locked"/"busy" errors in all. With one last
#: attempt of up to BUSY_TIMEOUT_S, a call gives up after at most about 25 s.
RETRY_SECONDS = 20.0
FIRST_PAUSE_S = 0.02
MAX_PAUSE_S = 1.0

T = TypeVar("T")

# Files this process has prepared (WAL on, tables there), keyed by path, device and inode, so
# a file deleted and made again is prepared again.
_PREPARED: set[tuple[str, int, int]] = set()
_PREPARE_LOCK = threading.Lock()


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (what the catalogue stores)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_lock_error(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds a lock (worth retrying)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retry(action: Callable[[], T], fail: Callable[[sqlite3.Error], StorageError], budget_s: float | None = None) -> T:
    """Run ``action``; retry lock errors with a growing, jittered pause for ``budget_s``
    seconds in all (default ``RETRY_SECONDS``). Any other SQLite error, or a lock error once
    the time is spent, becomes ``fail(exc)``."""
    deadline = time.monotonic() + (RETRY_SECONDS if budget_s is None else budget_s)
    pause = FIRST_PAUSE_S
    while True:
        try:
            return action()
        except sqlite3.Error as exc:
            if not is_lock_error(exc) or time.monotonic() + pause > deadline:
                raise fail(exc) from exc
        # Jitter keeps processes that collided from retrying in step.
        time.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(2 * pause, MAX_PAUSE_S)


def _lock_hint(exc: sqlite3.Error) -> str:
    """The fix to suggest after ``exc``: only lock errors get one (others say what they are)."""
    if not is_lock_error(exc):
        return ""
    return (
        f" It stayed locked for {RETRY_SECONDS:.0f} s while other processes (study workers) "
        "wrote to the same file. Try again in a moment; if it keeps happening, run fewer "
        "workers at once (HPDASH_MAX_WORKERS) or use a PostgreSQL storage (HPDASH_STORAGE)."
    )


class Catalogue:
    """A thin, typed wrapper over the ``hpdash_*`` tables (one SQLite connection).

    One instance may be shared by threads: its calls are serialised by a lock.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else config.catalogue_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot open the catalogue at {self.path}: cannot create its folder "
                f"({exc.strerror or exc}). Check that the data directory is writable."
            ) from exc

        def fail_open(exc: sqlite3.Error) -> StorageError:
            return StorageError(f"Cannot open the catalogue at {self.path}: {exc}.{_lock_hint(exc)}")

        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise fail_open(exc) from exc
        self.db = sqlite_utils.Database(self.conn)
        try:
            _retry(self._prepare, fail_open)
        except StorageError:
            self.conn.close()
            raise

    # -- opening --------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Switch the file to WAL and create missing tables, once per file per process."""
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise sqlite3.OperationalError(f"unable to open database file ({exc.strerror or exc})") from exc
        key = self._key = (str(self.path.resolve()), stat.st_dev, stat.st_ino)
        if key in _PREPARED:
            return
        with _PREPARE_LOCK:  # the sessions of one server open their first catalogue together
            if key in _PREPARED:
                return
            if self.db.journal_mode != "wal":
                self.db.enable_wal()
            present = set(self.db.table_names())
            missing = [table for table in TABLES if table not in present]
            if missing:
                with self._transaction_unretried():
                    for table in missing:
                        columns, pk = TABLES[table]
                        self.db.table(table).create(columns, pk=pk, if_not_exists=True)
            _PREPARED.add(key)

    def _healing(self, action: Callable[[], T]) -> T:
        """``action()``; when a catalogue table is missing (the file was replaced since this
        process prepared it, perhaps at the same inode), prepare the file again and retry."""
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "no such table: hpdash_" not in str(exc):
                raise
        _PREPARED.discard(self._key)
        self._prepare()
        return action()

    def close(self) -> None:
        """Close the connection (also done when the object is garbage-collected)."""
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reads and writes -----------------------------------------------------------------
    def _rows(
        self, table: str, where: str | None = None, params: Iterable[Any] = (), order_by: str | None = None
    ) -> list[dict[str, Any]]:
        """The rows of ``table`` matching ``where`` (its own read transaction), retrying lock
        errors."""
        args = list(params)

        def read() -> list[dict[str, Any]]:
            with self._lock:
                return list(self.db.table(table).rows_where(where, args, order_by=order_by))

        return _retry(
            lambda: self._healing(read),
            lambda exc: StorageError(f"Could not read the catalogue at {self.path}: {exc}.{_lock_hint(exc)}"),
        )

    @contextmanager
    def _transaction_unretried(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the write lock from its first statement."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                # A failed statement or COMMIT (disk full, read-only file) leaves nothing behind.
                if self.conn.in_transaction:
                    self.conn.rollback()
                raise

    def _write(self, action: Callable[[], Any]) -> None:
        """Run ``action()`` (sqlite-utils writes on ``self.db``) in one ``BEGIN IMMEDIATE``
        transaction, retrying lock errors. The whole transaction is retried, so ``action``
        must only write."""
        from hpdash import access

        access.require_writable("change the catalogue (notes, datasets, experiments)")

        def attempt() -> None:
            with self._transaction_unretried():
                action()

        _retry(
            lambda: self._healing(attempt),
            lambda exc: StorageError(f"Could not write to the catalogue at {self.path}: {exc}.{_lock_hint(exc)}"),
        )

    def _upsert(self, table: str, row: dict[str, Any]) -> None:
        self.db.table(table).upsert(row, pk=TABLES[table][1])

    # -- datasets -------------------------------------------------------------------------
    def add_dataset(self, record: dict[str, Any]) -> None:
        """Insert a dataset row; a row with the same SHA-256 is left as it is."""
        row = {"created_at": now_iso(), **record}
        self._write(lambda: self.db.table(DATASETS).insert(row, pk="sha256", ignore=True))

    def get_dataset(self, sha256: str) -> dict[str, Any] | None:
        """The dataset row for ``sha256``, or None."""
        rows = self._rows(DATASETS, "sha256 = ?", [sha256])
        return rows[0] if rows else None

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset row, newest first."""
        return self._rows(DATASETS, order_by="created_at desc")

    def delete_dataset(self, sha256: str) -> None:
        """Remove a dataset row (the caller checks that no study uses it)."""
        self._write(lambda: self.db.table(DATASETS).delete_where("sha256 = ?", [sha256]))

    # -- notes ----------------------------------------------------------------------------
    def get_note(self, study: str) -> str:
        """The Markdown note of a study ("" when there is none)."""
        rows = self._rows(NOTES, "study = ?", [study])
        return rows[0]["text"] if rows else ""

    def set_note(self, study: str, text: str) -> None:
        """Save (or replace) the note of a study."""
        row = {"study": study, "text": text, "updated_at": now_iso()}
        self._write(lambda: self._upsert(NOTES, row))

    def delete_note(self, study: str) -> None:
        """Remove the note of a study (used when the study is deleted)."""
        self._write(lambda: self.db.table(NOTES).delete_where("study = ?", [study]))

    # -- experiments ----------------------------------------------------------------------
    def add_experiment(self, row: dict[str, Any], studies: list[dict[str, Any]]) -> None:
        """Record an experiment and the studies it groups (one transaction)."""
        experiment = {"created_at": now_iso(), **row}

        def write() -> None:
            self._upsert(EXPERIMENTS, experiment)
            for study in studies:
                self._upsert(EXPERIMENT_STUDIES, study)

        self._write(write)

    def get_experiment(self, name: str) -> dict[str, Any] | None:
        """The experiment row of ID ``name``, or None."""
        rows = self._rows(EXPERIMENTS, "name = ?", [name])
        return rows[0] if rows else None

    def list_experiments(self) -> list[dict[str, Any]]:
        """Every experiment row, newest first."""
        return self._rows(EXPERIMENTS, order_by="created_at desc")

    def experiment_studies(self, name: str) -> list[dict[str, Any]]:
        """The studies of one experiment with their strategy and seed."""
        return self._rows(EXPERIMENT_STUDIES, "experiment = ?", [name], order_by="study")

    def experiment_queue(self, name: str) -> dict[str, Any] | None:
        """The queue record of an experiment (pid, host, started, last_seen, ended, workers,
        parallel, log, stop_requested, error), or None when none was started."""
        rows = self._rows(EXPERIMENT_QUEUE, "experiment = ?", [name])
        return rows[0] if rows else None

    def set_experiment_queue(self, name: str, **fields: Any) -> None:
        """Create or update the queue record of an experiment; only ``fields`` change."""
        row = {"experiment": name, **fields}
        self._write(lambda: self._upsert(EXPERIMENT_QUEUE, row))
