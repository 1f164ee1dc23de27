"""The app's catalogue: datasets and experiments in ``hpdash_*`` tables, and study and trial
notes in the studies themselves.

Optuna owns the study and trial tables; this package owns only what Optuna has no place for.
Where the tables live follows the storage (``Catalogue``):

- the embedded SQLite storage: the same file as Optuna's tables (``hpdash.store.sqlite``,
  sqlite-utils), so every worker process writes to the file the catalogue reads;
- a PostgreSQL storage: the same database (``hpdash.store.server``, SQLAlchemy Core), so
  every dashboard of a team on that database sees the same experiments and datasets;
- any other storage: ``<data>/hpdash.db`` beside the dashboard.

Notes go through optuna-dashboard's note API into the study's system attrs
(``hpdash.store.notes``), so they show in optuna-dashboard too. Notes that files of earlier
versions kept in a ``hpdash_notes`` table are written to their studies once, when the
catalogue is first opened in a process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hpdash import access, audit, config
from hpdash import storage as hpdash_storage
from hpdash.errors import StorageError
from hpdash.store import notes
from hpdash.store.server import ServerTables, is_server_url
from hpdash.store.sqlite import SqliteTables, is_lock_error
from hpdash.store.tables import (
    DATASETS,
    EXPERIMENT_QUEUE,
    EXPERIMENT_STUDIES,
    EXPERIMENTS,
    NOTES,
    TABLES,
    now_iso,
)

__all__ = [
    "DATASETS",
    "EXPERIMENTS",
    "EXPERIMENT_QUEUE",
    "EXPERIMENT_STUDIES",
    "NOTES",
    "TABLES",
    "Catalogue",
    "is_lock_error",
    "now_iso",
]

T = TypeVar("T")

#: What a write refused in read-only mode says the user cannot do.
WRITE_ACTION = "change the catalogue (notes, datasets, experiments)"

# Legacy note files this process has migrated (or found nothing to migrate in), keyed by the
# file's path and inode and the storage URL the notes go to.
_MIGRATED: set[tuple[str, int, str]] = set()
_MIGRATE_LOCK = threading.Lock()


class Catalogue:
    """Typed access to the catalogue of one storage.

    ``Catalogue()`` and ``Catalogue(storage=URL)`` follow the storage URL (default
    ``config.storage_url()``); ``Catalogue(path)`` is the SQLite file ``path``, which is then
    also the Optuna storage its notes belong to. One instance may be shared by threads.
    """

    def __init__(self, path: str | Path | None = None, *, storage: str | None = None) -> None:
        self.storage_url = f"sqlite:///{Path(path)}" if path is not None else config.storage_url(storage)
        self.tables: SqliteTables | ServerTables
        if is_server_url(self.storage_url):
            self.path = config.catalogue_path(self.storage_url)  # where earlier versions kept it
            self.tables = ServerTables(self.storage_url, hpdash_storage.redact(self.storage_url))
        else:
            self.path = Path(path) if path is not None else config.catalogue_path(self.storage_url)
            self.tables = SqliteTables(self.path)
        self._legacy_notes = self._migrate_notes()

    @property
    def conn(self) -> Any:
        """The SQLite connection of an embedded catalogue (tests and tools inspect it)."""
        if not isinstance(self.tables, SqliteTables):
            raise AttributeError("a server catalogue has no single connection")
        return self.tables.conn

    def _migrate_notes(self) -> dict[str, str]:
        """Move the notes an earlier version kept in ``self.path`` into their studies, once
        per file per process. In read-only mode nothing is written: the legacy notes not
        moved yet are returned, and read from there until a writable start moves them."""
        try:
            key = (str(self.path.resolve()), self.path.stat().st_ino, self.storage_url)
        except OSError:
            return {}  # no legacy file (a server catalogue on a machine that never had one)
        if key in _MIGRATED:
            return {}
        if access.read_only():
            pending = notes.pending_legacy_notes(self.path)
            if not pending:
                _MIGRATED.add(key)
            return pending
        with _MIGRATE_LOCK:
            if key not in _MIGRATED:
                notes.migrate_legacy_notes(self.path, self.storage_url)
                _MIGRATED.add(key)
        return {}

    def close(self) -> None:
        """Close the connection (also done when the object is garbage-collected)."""
        self.tables.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, action: Callable[[Any], Any]) -> None:
        """Run ``action(writer)`` in one transaction, refused in read-only mode."""
        access.require_writable(WRITE_ACTION)
        self.tables.write(action)

    def _one(self, table: str, **equals: Any) -> dict[str, Any] | None:
        rows = self.tables.rows(table, equals)
        return rows[0] if rows else None

    # -- datasets -------------------------------------------------------------------------
    def add_dataset(self, record: dict[str, Any]) -> None:
        """Insert a dataset row; a row with the same SHA-256 is left as it is."""
        row = {"created_at": now_iso(), **record}
        self._write(lambda w: w.insert_ignore(DATASETS, row))

    def get_dataset(self, sha256: str) -> dict[str, Any] | None:
        """The dataset row for ``sha256``, or None."""
        return self._one(DATASETS, sha256=sha256)

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset row, newest first."""
        return self.tables.rows(DATASETS, order_by="created_at", descending=True)

    def delete_dataset(self, sha256: str) -> None:
        """Remove a dataset row (the caller checks that no study uses it)."""
        self._write(lambda w: w.delete(DATASETS, {"sha256": sha256}))

    # -- notes ----------------------------------------------------------------------------
    def _notes(self, action: Callable[[Any], T], verb: str, what: str) -> T:
        """``action(storage)`` on the Optuna storage the notes live in, its errors told as
        ``Could not <verb> the catalogue at ...``."""
        where = str(self.path) if isinstance(self.tables, SqliteTables) else hpdash_storage.redact(self.storage_url)

        def fail(exc: BaseException) -> StorageError:
            return StorageError(
                f"Could not {verb} the catalogue at {where} ({what}): {notes.cause_text(exc)}."
                f"{notes.lock_hint_for(exc)}"
            )

        return notes.retrying(lambda: action(notes.note_storage(self.storage_url)), fail)

    def get_note(self, study: str) -> str:
        """The Markdown note of a study ("" when there is none, or no such study)."""
        text = self._notes(lambda store: notes.read_study_note(store, study), "read", f"the note of {study!r}")
        if not text and study in self._legacy_notes:
            return self._legacy_notes[study]
        return text or ""

    def set_note(self, study: str, text: str) -> None:
        """Save (or replace) the note of a study; the study must exist."""
        access.require_writable(WRITE_ACTION)
        self._notes(lambda store: notes.write_study_note(store, study, text), "write to", f"the note of {study!r}")
        audit.record("write note", study=study, detail=text, url=self.storage_url)

    def delete_note(self, study: str) -> None:
        """Empty the note of a study (a deleted study's note goes with it)."""
        access.require_writable(WRITE_ACTION)

        def empty(store: Any) -> None:
            if notes.read_study_note(store, study):
                notes.write_study_note(store, study, "")

        self._notes(empty, "write to", f"the note of {study!r}")

    def get_trial_note(self, study: str, number: int) -> str:
        """The Markdown note of trial ``number`` of a study ("" when there is none)."""
        what = f"the note of trial {number} of {study!r}"
        return self._notes(lambda store: notes.read_trial_note(store, study, number), "read", what)

    def set_trial_note(self, study: str, number: int, text: str) -> None:
        """Save (or replace) the note of trial ``number`` of a study (shown by optuna-dashboard
        on that trial)."""
        access.require_writable(WRITE_ACTION)
        what = f"the note of trial {number} of {study!r}"
        self._notes(lambda store: notes.write_trial_note(store, study, number, text), "write to", what)
        audit.record("write note", study=study, detail=f"trial {number}: {text}", url=self.storage_url)

    # -- experiments ----------------------------------------------------------------------
    def add_experiment(self, row: dict[str, Any], studies: list[dict[str, Any]]) -> None:
        """Record an experiment and the studies it groups (one transaction)."""
        experiment = {"created_at": now_iso(), **row}

        def write(writer: Any) -> None:
            writer.upsert(EXPERIMENTS, experiment)
            for study in studies:
                writer.upsert(EXPERIMENT_STUDIES, study)

        self._write(write)

    def get_experiment(self, name: str) -> dict[str, Any] | None:
        """The experiment row of ID ``name``, or None."""
        return self._one(EXPERIMENTS, name=name)

    def list_experiments(self) -> list[dict[str, Any]]:
        """Every experiment row, newest first."""
        return self.tables.rows(EXPERIMENTS, order_by="created_at", descending=True)

    def experiment_studies(self, name: str) -> list[dict[str, Any]]:
        """The studies of one experiment with their strategy and seed."""
        return self.tables.rows(EXPERIMENT_STUDIES, {"experiment": name}, order_by="study")

    def experiment_queue(self, name: str) -> dict[str, Any] | None:
        """The queue record of an experiment (pid, host, started, last_seen, ended, workers,
        parallel, log, stop_requested, error), or None when none was started."""
        return self._one(EXPERIMENT_QUEUE, experiment=name)

    def set_experiment_queue(self, name: str, **fields: Any) -> None:
        """Create or update the queue record of an experiment; only ``fields`` change."""
        row = {"experiment": name, **fields}
        self._write(lambda w: w.upsert(EXPERIMENT_QUEUE, row))
