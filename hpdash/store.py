"""The app's catalogue: datasets, notes and experiments in ``hpdash_*`` tables (sqlite-utils).

Optuna owns the study and trial tables; this module owns only what Optuna has no place for.
The catalogue lives in the same SQLite file as Optuna's tables by default (see
``config.catalogue_path``).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from hpdash import config
from hpdash.errors import StorageError

DATASETS = "hpdash_datasets"
NOTES = "hpdash_notes"
EXPERIMENTS = "hpdash_experiments"
EXPERIMENT_STUDIES = "hpdash_experiment_studies"


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (what the catalogue stores)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Catalogue:
    """A thin, typed wrapper over the ``hpdash_*`` tables."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else config.catalogue_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            self.db = sqlite_utils.Database(conn)
            if self.db.journal_mode != "wal":
                self.db.enable_wal()
            self._ensure_tables()
        except sqlite3.Error as exc:
            raise StorageError(f"Cannot open the catalogue at {self.path}: {exc}") from exc

    def _ensure_tables(self) -> None:
        self.db[DATASETS].create(
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
            pk="sha256",
            if_not_exists=True,
        )
        self.db[NOTES].create(
            {"study": str, "text": str, "updated_at": str}, pk="study", if_not_exists=True
        )
        self.db[EXPERIMENTS].create(
            {"name": str, "spec_json": str, "strategies": str, "repeats": int, "created_at": str},
            pk="name",
            if_not_exists=True,
        )
        self.db[EXPERIMENT_STUDIES].create(
            {"experiment": str, "study": str, "strategy": str, "seed": int},
            pk=("experiment", "study"),
            if_not_exists=True,
        )

    # -- datasets -------------------------------------------------------------------------
    def add_dataset(self, record: dict[str, Any]) -> None:
        """Insert a dataset row; a row with the same SHA-256 is left as it is."""
        row = {"created_at": now_iso(), **record}
        self._write(lambda: self.db[DATASETS].insert(row, ignore=True))

    def get_dataset(self, sha256: str) -> dict[str, Any] | None:
        """The dataset row for ``sha256``, or None."""
        rows = list(self.db[DATASETS].rows_where("sha256 = ?", [sha256]))
        return rows[0] if rows else None

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset row, newest first."""
        return list(self.db[DATASETS].rows_where(order_by="created_at desc"))

    def delete_dataset(self, sha256: str) -> None:
        """Remove a dataset row (the caller checks that no study uses it)."""
        self._write(lambda: self.db[DATASETS].delete_where("sha256 = ?", [sha256]))

    # -- notes ----------------------------------------------------------------------------
    def get_note(self, study: str) -> str:
        """The Markdown note of a study ("" when there is none)."""
        rows = list(self.db[NOTES].rows_where("study = ?", [study]))
        return rows[0]["text"] if rows else ""

    def set_note(self, study: str, text: str) -> None:
        """Save (or replace) the note of a study."""
        row = {"study": study, "text": text, "updated_at": now_iso()}
        self._write(lambda: self.db[NOTES].upsert(row, pk="study"))

    def delete_note(self, study: str) -> None:
        """Remove the note of a study (used when the study is deleted)."""
        self._write(lambda: self.db[NOTES].delete_where("study = ?", [study]))

    # -- experiments ----------------------------------------------------------------------
    def add_experiment(self, row: dict[str, Any], studies: list[dict[str, Any]]) -> None:
        """Record an experiment and the studies it groups."""

        def write() -> None:
            with self.db.conn:
                self.db[EXPERIMENTS].upsert({"created_at": now_iso(), **row}, pk="name")
                self.db[EXPERIMENT_STUDIES].upsert_all(studies, pk=("experiment", "study"))

        self._write(write)

    def list_experiments(self) -> list[dict[str, Any]]:
        """Every experiment row, newest first."""
        return list(self.db[EXPERIMENTS].rows_where(order_by="created_at desc"))

    def experiment_studies(self, name: str) -> list[dict[str, Any]]:
        """The studies of one experiment with their strategy and seed."""
        return list(
            self.db[EXPERIMENT_STUDIES].rows_where("experiment = ?", [name], order_by="study")
        )

    def _write(self, action: Any) -> None:
        from hpdash import access

        access.require_writable("change the catalogue (notes, datasets, experiments)")
        try:
            action()
        except sqlite3.Error as exc:
            raise StorageError(f"Could not write to the catalogue at {self.path}: {exc}") from exc
