"""The catalogue in a SQLite file (sqlite-utils): the embedded default, beside Optuna's tables.

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
  (``retry``) for up to ``RETRY_SECONDS`` before it becomes a ``StorageError``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from hpdash.errors import StorageError
from hpdash.store.tables import TABLES

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


def is_lock_error(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds a lock (worth retrying)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry(action: Callable[[], T], fail: Callable[[sqlite3.Error], StorageError], budget_s: float | None = None) -> T:
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


def lock_hint(exc: BaseException) -> str:
    """The fix to suggest after ``exc``: only lock errors get one (others say what they are)."""
    if not is_lock_error(exc):
        return ""
    return (
        f" It stayed locked for {RETRY_SECONDS:.0f} s while other processes (study workers) "
        "wrote to the same file. Try again in a moment; if it keeps happening, run fewer "
        "workers at once (HPDASH_MAX_WORKERS) or use a PostgreSQL storage (HPDASH_STORAGE)."
    )


def _where(equals: dict[str, Any] | None) -> tuple[str | None, list[Any]]:
    if not equals:
        return None, []
    return " AND ".join(f"[{column}] = ?" for column in equals), list(equals.values())


class SqliteTables:
    """The ``hpdash_*`` tables in one SQLite file (one connection).

    One instance may be shared by threads: its calls are serialised by a lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot open the catalogue at {self.path}: cannot create its folder "
                f"({exc.strerror or exc}). Check that the data directory is writable."
            ) from exc

        def fail_open(exc: sqlite3.Error) -> StorageError:
            return StorageError(f"Cannot open the catalogue at {self.path}: {exc}.{lock_hint(exc)}")

        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise fail_open(exc) from exc
        self.db = sqlite_utils.Database(self.conn)
        try:
            retry(self._prepare, fail_open)
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
        key = self.key = (str(self.path.resolve()), stat.st_dev, stat.st_ino)
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
        _PREPARED.discard(self.key)
        self._prepare()
        return action()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- reads and writes -----------------------------------------------------------------
    def rows(
        self, table: str, equals: dict[str, Any] | None = None, order_by: str | None = None, descending: bool = False
    ) -> list[dict[str, Any]]:
        """The rows of ``table`` whose columns equal ``equals`` (its own read transaction),
        retrying lock errors."""
        where, args = _where(equals)
        order = f"[{order_by}]{' desc' if descending else ''}" if order_by else None

        def read() -> list[dict[str, Any]]:
            with self._lock:
                return list(self.db.table(table).rows_where(where, args, order_by=order))

        return retry(
            lambda: self._healing(read),
            lambda exc: StorageError(f"Could not read the catalogue at {self.path}: {exc}.{lock_hint(exc)}"),
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

    def write(self, action: Callable[[SqliteTables], Any]) -> None:
        """Run ``action(self)`` (``insert_ignore``, ``upsert`` and ``delete`` calls) in one
        ``BEGIN IMMEDIATE`` transaction, retrying lock errors. The whole transaction is
        retried, so ``action`` must only write."""

        def attempt() -> None:
            with self._transaction_unretried():
                action(self)

        retry(
            lambda: self._healing(attempt),
            lambda exc: StorageError(f"Could not write to the catalogue at {self.path}: {exc}.{lock_hint(exc)}"),
        )

    def insert_ignore(self, table: str, row: dict[str, Any]) -> None:
        self.db.table(table).insert(row, pk=TABLES[table][1], ignore=True)

    def upsert(self, table: str, row: dict[str, Any]) -> None:
        self.db.table(table).upsert(row, pk=TABLES[table][1])

    def delete(self, table: str, equals: dict[str, Any]) -> None:
        where, args = _where(equals)
        self.db.table(table).delete_where(where, args)
