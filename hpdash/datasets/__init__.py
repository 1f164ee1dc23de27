"""Read, validate, profile and store uploaded tables.

One direction only: bytes -> :func:`read_table` (format, encoding and delimiter sniffing, size
and shape limits) -> :func:`profile_table` (column roles with drop reasons, task inference,
target distribution) -> :func:`prepare` (``X``/``y`` ready for the preprocessing ``Pipeline``).
:func:`store_dataset` validates first and only then writes the bytes, content-addressed, to
``<data>/datasets/<sha256>.<csv|parquet>`` with a row in the catalogue. Workers find the bytes
again with :func:`load_dataset` and verify their hash.

Every rejection is a :class:`~hpdash.errors.DatasetError` whose message says what is wrong and
how to fix it. Parquet files with nested (list/struct/map) columns are rejected, not silently
flattened: the message names the columns."""

from hpdash.datasets.prepare import check_learnable, prepare
from hpdash.datasets.profile import OVERRIDABLE_PREFIXES, infer_task, profile_table
from hpdash.datasets.reading import (
    _count_lines,  # noqa: F401 - tests count lines through it
    read_table,
)
from hpdash.datasets.records import (
    BYTES_PER_CELL,
    CSV_EXTENSIONS,
    DEFAULT_MAX_CELLS,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_ROWS,
    DELIMITER_NAMES,
    DELIMITERS,
    HIGH_CARDINALITY_MIN,
    MAX_CLASSES_FOR_INFERENCE,
    MAX_TARGET_MAGNITUDE,
    MIN_ROWS,
    MIN_ROWS_FOR_ID,
    PARQUET_EXTENSIONS,
    SAMPLES,
    TASKS,
    ColumnInfo,
    DatasetProfile,
    PreparedData,
    StoredDataset,
    TaskName,
    max_cells,
    max_columns,
    max_decoded_bytes,
    max_rows,
    sha256_bytes,
)
from hpdash.datasets.samples import DOMAIN_TARGET_NAMES, GENERIC_TARGET_NAMES, guess_target, load_sample
from hpdash.datasets.stored import delete_stored, find_stored, load_dataset, store_dataset

__all__ = [
    "BYTES_PER_CELL",
    "CSV_EXTENSIONS",
    "ColumnInfo",
    "DEFAULT_MAX_CELLS",
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "DELIMITERS",
    "DELIMITER_NAMES",
    "DOMAIN_TARGET_NAMES",
    "DatasetProfile",
    "GENERIC_TARGET_NAMES",
    "HIGH_CARDINALITY_MIN",
    "MAX_CLASSES_FOR_INFERENCE",
    "MAX_TARGET_MAGNITUDE",
    "MIN_ROWS",
    "MIN_ROWS_FOR_ID",
    "OVERRIDABLE_PREFIXES",
    "PARQUET_EXTENSIONS",
    "PreparedData",
    "SAMPLES",
    "StoredDataset",
    "TASKS",
    "TaskName",
    "check_learnable",
    "delete_stored",
    "find_stored",
    "guess_target",
    "infer_task",
    "load_dataset",
    "load_sample",
    "max_cells",
    "max_columns",
    "max_decoded_bytes",
    "max_rows",
    "prepare",
    "profile_table",
    "read_table",
    "sha256_bytes",
    "store_dataset",
]
