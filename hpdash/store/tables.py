"""The catalogue's tables, as plain data both backends build from."""

from __future__ import annotations

from datetime import UTC, datetime

DATASETS = "hpdash_datasets"
NOTES = "hpdash_notes"
EXPERIMENTS = "hpdash_experiments"
EXPERIMENT_STUDIES = "hpdash_experiment_studies"
EXPERIMENT_QUEUE = "hpdash_experiment_queue"

#: The catalogue's tables: columns (sqlite-utils types) and primary key, as sqlite-utils has
#: always created them, so files made by earlier versions open unchanged. Notes are not here:
#: they live in the study itself (``hpdash.store.notes``); ``NOTES`` is only read to migrate
#: the notes of files made by earlier versions.
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


def primary_key(table: str) -> tuple[str, ...]:
    """The primary key columns of a catalogue table."""
    pk = TABLES[table][1]
    return (pk,) if isinstance(pk, str) else pk


def unknown_columns(table: str, row: dict[str, object]) -> list[str]:
    """The keys of ``row`` that are not columns of ``table``."""
    return [name for name in row if name not in TABLES[table][0]]


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (what the catalogue stores)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
