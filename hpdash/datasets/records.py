"""The words of a table: the records a read, a profile and a stored dataset give, the limits and the patterns the readers share."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Literal

import pandas as pd

from hpdash import config, vocabulary
from hpdash.errors import SpecError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    pass


TaskName = Literal["classification", "regression"]


TASKS: tuple[str, ...] = vocabulary.TASKS


#: Bundled scikit-learn toy datasets (no download needed): ``sklearn:NAME`` -> description.
SAMPLES: dict[str, str] = {
    "sklearn:iris": "Iris flowers: 150 rows, 4 numeric features, 3 species (classification)",
    "sklearn:wine": "Wine cultivars: 178 rows, 13 numeric features, 3 classes (classification)",
    "sklearn:breast_cancer": (
        "Breast cancer (Wisconsin): 569 rows, 30 numeric features, malignant/benign (classification)"
    ),
    "sklearn:digits": "Handwritten digits: 1,797 rows, 64 pixel features, 10 classes (classification)",
    "sklearn:diabetes": (
        "Diabetes progression: 442 rows, 10 numeric features, disease progression after one year (regression)"
    ),
}


DEFAULT_MAX_COLUMNS = config.DEFAULT_MAX_COLUMNS


DEFAULT_MAX_ROWS = config.DEFAULT_MAX_ROWS


DEFAULT_MAX_CELLS = config.DEFAULT_MAX_CELLS


#: A Parquet file may decode to at most this many bytes per allowed cell
#: (``HPDASH_MAX_CELLS``): eight for a number, the rest for short strings. Long strings are
#: fine in a smaller table; the budget is for the whole table.
BYTES_PER_CELL = 16


MIN_ROWS = 2


#: Uniqueness alone says little on a tiny table; below this many rows it never makes a column
#: ID-like (a column *named* like an ID still does).
MIN_ROWS_FOR_ID = 10


#: A numeric target with at most this many distinct integer values is a class label.
MAX_CLASSES_FOR_INFERENCE = 20


#: A text column with more distinct values than this, and more than half as many as it has
#: values, is a name or free text rather than a category: one-hot encoding it makes a column
#: per value, most of them set on one or two rows (a 311-name column in 406 rows became 311
#: columns). Fewer distinct values than this are cheap to encode whatever the table's size.
HIGH_CARDINALITY_MIN = 20


#: Largest magnitude a regression target may have: squared errors (MSE, R², every
#: least-squares fit) of values beyond about 1.3e154 overflow 64-bit floats (max 1.8e308) to
#: inf, and sums of them over many rows sooner. 1e150 leaves room for ten million rows.
MAX_TARGET_MAGNITUDE = 1e150


CSV_EXTENSIONS = {".csv", ".tsv", ".txt", ".tab"}


PARQUET_EXTENSIONS = {".parquet", ".pq", ".parq"}


DELIMITERS = (",", ";", "\t", "|")


DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


_DECIMAL_COMMA_RE = re.compile(r"^[+-]?\d+(,\d+)?$")


_ID_NAME_RE = re.compile(r"(?i)^(id|index|idx|uuid|guid|key|row|rownum|row_id)$|[_ -]id$|^id[_ -]")


_TIME_PART = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?)?(?:\s?(?:Z|UTC|[+-]\d{2}:?\d{2}))?"


_DATE_RES = (
    re.compile(r"^\d{4}-\d{1,2}-\d{1,2}" + _TIME_PART + "$"),
    re.compile(r"^\d{4}/\d{1,2}/\d{1,2}" + _TIME_PART + "$"),
    re.compile(r"^(\d{1,2})[/.-]\d{1,2}[/.-]\d{2,4}" + _TIME_PART + "$"),
)


_MAGIC = (
    (b"\x1f\x8b", "a gzip archive", "unpack it first and upload the CSV or Parquet file inside"),
    (b"PK\x03\x04", "a zip archive (or an Excel .xlsx workbook)", "unpack it first, or export the sheet as CSV"),
    (b"BZh", "a bzip2 archive", "unpack it first and upload the file inside"),
    (b"\xfd7zXZ\x00", "an xz archive", "unpack it first and upload the file inside"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "unpack it first and upload the file inside"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or other Office file", "export the sheet as CSV"),
    (b"%PDF", "a PDF document", "export the table as CSV"),
)


# -- data classes ---------------------------------------------------------------------------
@dataclass
class ColumnInfo:
    """One column of a profiled table and the role it will play."""

    name: str
    dtype: str
    role: str  # "numeric" | "categorical" | "datetime" | "dropped" | "target"
    #: For dropped columns: starts with ID-like/constant/free text/high-cardinality text/all
    #: missing/row index. None for every other role (a kept column included).
    reason: str | None
    missing_share: float
    n_unique: int
    examples: list[str] = field(default_factory=list)
    #: Dropped by default for a reason the user may overrule (ID-like, free text,
    #: high-cardinality text) by naming the column in the spec's ``keep_columns``.
    overridable: bool = False
    #: Kept as a feature because ``keep_columns`` names it, although hpdash would drop it for
    #: ``default_reason``.
    kept: bool = False
    #: Why hpdash drops this column by default (the ``reason`` of a dropped column, and what
    #: a kept column was kept despite); None for a column used by default.
    default_reason: str | None = None
    #: False for a column that is not in the frame at all: a row index dropped while reading.
    in_frame: bool = True


@dataclass
class DatasetProfile:
    """What hpdash learned about a table: shape, roles, task and target distribution.

    ``n_rows`` counts every row of the table, including rows whose target is missing
    (``n_target_missing_dropped`` of them; :func:`prepare` drops those).
    """

    n_rows: int
    n_cols: int
    target: str | None
    task: TaskName | None
    columns: list[ColumnInfo]
    target_distribution: pd.DataFrame
    n_target_missing_dropped: int

    def columns_frame(self, flags: bool = False) -> pd.DataFrame:
        """One row per column: name, dtype, role, reason, missing_share, n_unique, examples.

        ``examples`` is a single display string (values joined with ``", "``). With ``flags``,
        also ``overridable`` (``keep_columns`` may keep it), ``kept`` (kept by
        ``keep_columns``) and ``default_reason`` (why hpdash drops it by default).
        """
        frame = pd.DataFrame(
            {
                "name": [c.name for c in self.columns],
                "dtype": [c.dtype for c in self.columns],
                "role": [c.role for c in self.columns],
                "reason": [c.reason for c in self.columns],
                "missing_share": [c.missing_share for c in self.columns],
                "n_unique": [c.n_unique for c in self.columns],
                "examples": [", ".join(c.examples) for c in self.columns],
            }
        )
        if flags:
            frame["overridable"] = [c.overridable for c in self.columns]
            frame["kept"] = [c.kept for c in self.columns]
            frame["default_reason"] = [c.default_reason for c in self.columns]
        return frame

    def dropped(self) -> list[ColumnInfo]:
        """The columns that will not be features, with their reasons."""
        return [c for c in self.columns if c.role == "dropped"]

    def overridable(self) -> list[ColumnInfo]:
        """The columns ``keep_columns`` may keep: dropped by default for a reason the user may
        overrule (ID-like, free text, high-cardinality text), whether kept now or not."""
        return [c for c in self.columns if c.overridable]

    def kept(self) -> list[ColumnInfo]:
        """The columns kept as features because ``keep_columns`` names them."""
        return [c for c in self.columns if c.kept]


@dataclass
class PreparedData:
    """Features and target ready for the preprocessing pipeline of the evaluation protocol."""

    X: pd.DataFrame
    y: pd.Series
    task: TaskName
    numeric: list[str]
    categorical: list[str]
    profile: DatasetProfile


@dataclass
class StoredDataset:
    """A dataset in the content-addressed store (and its catalogue row)."""

    sha256: str
    name: str
    filename: str
    format: str  # "csv" | "parquet"
    path: Path
    size_bytes: int
    n_rows: int
    n_cols: int


# -- small helpers --------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data`` (the dataset's identity)."""
    return hashlib.sha256(data).hexdigest()


# The table limits are read in hpdash.config.
max_columns = config.max_columns


max_rows = config.max_rows


max_cells = config.max_cells


def max_decoded_bytes() -> int:
    """Most bytes an uploaded Parquet file may decode to: ``BYTES_PER_CELL`` per allowed cell."""
    return BYTES_PER_CELL * max_cells()


def _human_bytes(n: int | float) -> str:
    """``1536`` -> ``'1.5 KB'``."""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def _names(names: list[str], limit: int = 8) -> str:
    """A short, quoted list of names for a message."""
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f" … ({len(names)} in total)" if len(names) > limit else "")


def _base_filename(filename: str) -> str:
    """The last component of a (POSIX or Windows) file name: metadata only, never a path."""
    name = PureWindowsPath(PurePosixPath(str(filename)).name).name
    return name.strip() or "dataset"


def _check_task(task: str) -> str:
    """Validate a task name: ``auto``, ``classification`` or ``regression``."""
    if task not in ("auto", *TASKS):
        raise SpecError(f"Unknown task {task!r}: use 'classification', 'regression' or 'auto'.")
    return task


def _short(exc: Exception) -> str:
    """The first line of an exception message, shortened."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]
