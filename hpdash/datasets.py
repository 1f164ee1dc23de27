"""Read, validate, profile and store uploaded tables.

One direction only: bytes -> :func:`read_table` (format, encoding and delimiter sniffing, size
and shape limits) -> :func:`profile_table` (column roles with drop reasons, task inference,
target distribution) -> :func:`prepare` (``X``/``y`` ready for the preprocessing ``Pipeline``).
:func:`store_dataset` validates first and only then writes the bytes, content-addressed, to
``<data>/datasets/<sha256>.<csv|parquet>`` with a row in the catalogue. Workers find the bytes
again with :func:`load_dataset` and verify their hash.

Every rejection is a :class:`~hpdash.errors.DatasetError` whose message says what is wrong and
how to fix it. Parquet files with nested (list/struct/map) columns are rejected, not silently
flattened: the message names the columns.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from hpdash import config, vocabulary
from hpdash.errors import DatasetError, SpecError, StorageError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hpdash.store import Catalogue

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


# -- reading --------------------------------------------------------------------------------
def read_table(data: bytes, filename: str, max_bytes: int | None = None) -> pd.DataFrame:
    """Read CSV or Parquet ``data`` into a DataFrame, or raise :class:`DatasetError`.

    The format comes from the extension and the magic bytes (``PAR1``). CSV encoding is
    UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252/Latin-1; the delimiter is
    sniffed among ``,`` ``;`` tab and ``|``. ``max_bytes`` defaults to the upload limit.
    The row and cell limits (:func:`max_rows`, :func:`max_cells`) are checked before the table
    is built: for Parquet from the file's metadata, for CSV from a count of the line breaks in
    the bytes (an upper bound), and again exactly once the table is read.
    ``df.attrs["source"]`` records what was detected (format, encoding, delimiter).
    """
    return _read(data, filename, config.max_upload_bytes() if max_bytes is None else max_bytes)[0]


def _read(data: bytes, filename: str, max_bytes: int | None, *, limits: bool = True) -> tuple[pd.DataFrame, str]:
    """:func:`read_table` that also returns the format; ``max_bytes=None`` means no size limit,
    ``limits=False`` no row, cell or decoded-size limit (a stored dataset, checked when it was
    uploaded)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("read_table expects the file's bytes; use path.read_bytes()")
    data = bytes(data)
    display = _base_filename(filename)
    if max_bytes is not None and len(data) > max_bytes:
        raise DatasetError(
            f"{display} is {_human_bytes(len(data))}, over the upload limit of "
            f"{_human_bytes(max_bytes)}. Upload a smaller file (a sample of the rows, or "
            "Parquet, which is smaller) or raise HPDASH_MAX_UPLOAD_MB."
        )
    if not data:
        raise DatasetError(f"{display} is empty (0 bytes). Upload a file with a header row and data rows.")

    ext = PurePosixPath(display.lower()).suffix
    for magic, what, fix in _MAGIC:
        if data.startswith(magic):
            raise DatasetError(f"{display} looks like {what}, not a CSV or Parquet table; {fix}.")
    if ext in {".xlsx", ".xls", ".xlsm", ".ods"}:
        raise DatasetError(
            f"{display} is a spreadsheet ({ext}); hpdash reads CSV and Parquet. Export the sheet "
            "as CSV (UTF-8) or Parquet and upload that."
        )
    is_parquet = data[:4] == b"PAR1"
    if ext in PARQUET_EXTENSIONS and not is_parquet:
        hint = ""
        if b"\x00" not in data[:4096]:
            hint = " It looks like text: if it is a CSV file, rename it to .csv."
        raise DatasetError(
            f"{display} is not a valid Parquet file (it does not start with the PAR1 magic bytes).{hint}"
        )
    if not is_parquet and ext not in CSV_EXTENSIONS and ext != "":
        raise DatasetError(
            f"Unsupported file type {ext!r} ({display}). Upload a CSV (.csv, .tsv, .txt) or a Parquet (.parquet) file."
        )

    if is_parquet:
        df = _read_parquet(data, display, limits)
        fmt = "parquet"
    else:
        df = _read_csv(data, display, limits)
        fmt = "csv"
    _check_columns([str(c) for c in df.columns], display)
    _check_shape(df, display, limits)
    return df, fmt


def _decode(data: bytes, display: str) -> tuple[str, str]:
    """Decode CSV bytes; returns ``(text, encoding)``."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{display} starts with a UTF-16 byte-order mark but is not valid UTF-16 "
                f"({exc.reason} at byte {exc.start}). Re-save it as CSV (UTF-8)."
            ) from exc
    if b"\x00" in data:
        pos = data.index(b"\x00")
        raise DatasetError(
            f"{display} contains binary data (a NUL byte at byte {pos}), so it is not a text "
            "CSV. Upload a CSV saved as UTF-8 text, or a Parquet file (if it is UTF-16 text "
            "without a byte-order mark, re-save it as UTF-8)."
        )
    if data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "latin-1"
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n\f\v")
    if controls > max(8, len(sample) // 100):
        raise DatasetError(
            f"{display} contains binary data ({controls} control characters in its first "
            f"{len(sample)} characters), so it is not a text CSV. Upload a CSV saved as text "
            "or a Parquet file."
        )
    return text, encoding


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter (``,`` ``;`` tab ``|``) that splits the first lines most consistently."""
    sample = text[:65536]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    best, best_score = ",", (False, 0.0, 1)
    for delim in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delim, skipinitialspace=True) if r]
        except csv.Error:
            continue
        rows = rows[:200]
        if not rows:
            continue
        counts = pd.Series([len(r) for r in rows])
        mode = int(counts.mode().max())
        if mode <= 1:
            continue
        score = (len(rows[0]) == mode, float((counts == mode).mean()), mode)
        if score > best_score:
            best, best_score = delim, score
    return best


def _count_lines(data: bytes) -> int:
    """Lines in ``data``: line breaks (LF, CRLF or a lone CR) plus an unterminated last line.

    Counted on the raw bytes without decoding. It is an upper bound on the CSV rows (a quoted
    value may span lines, blank lines are skipped), cheap enough to run before parsing.
    """
    breaks = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return breaks + (0 if data.endswith((b"\n", b"\r")) else 1)


def _read_csv(data: bytes, display: str, limits: bool = True) -> pd.DataFrame:
    """Decode, sniff and parse a CSV file; every failure becomes a :class:`DatasetError`.

    With ``limits``, the row limit is checked on the line count before decoding and the cell
    limit on that count times the header's columns before parsing.
    """
    n_lines = _count_lines(data) if limits else 0
    if limits and n_lines - 1 > max_rows():
        raise DatasetError(
            f"{display} has up to {n_lines - 1:,} data rows (counted {n_lines:,} lines, header "
            f"included); the limit is {max_rows():,} rows. Upload a sample of the rows, or "
            "raise HPDASH_MAX_ROWS."
        )
    text, encoding = _decode(data, display)
    if not text or text.isspace():
        raise DatasetError(f"{display} contains only whitespace. Upload a file with a header row and data rows.")
    delim = _sniff_delimiter(text)
    header, header_line = _header(text, delim)
    # A blank first header is what R's write.csv and pandas' to_csv write for a row index:
    # allowed here, and checked on its values once the table is read (_drop_row_index).
    _check_columns(header, display, row_index=True)
    if len(header) > max_columns():
        raise _too_many_columns(len(header), display)
    if limits and (n_lines - 1) * len(header) > max_cells():
        raise DatasetError(
            f"{display} has up to {n_lines - 1:,} data rows (counted {n_lines:,} lines, header "
            f"included) x {len(header):,} columns = {(n_lines - 1) * len(header):,} cells; the "
            f"limit is {max_cells():,} cells. Upload a sample of the rows or fewer columns, or "
            "raise HPDASH_MAX_CELLS."
        )
    if all(_NUMBER_RE.match(h.strip()) for h in header):
        raise DatasetError(
            f"{display} has no header row: the first row ({', '.join(header[:5])}"
            f"{', …' if len(header) > 5 else ''}) looks like data, since every value is a "
            "number. Add a first row with column names and upload again."
        )
    if len(header) < 2:
        raise DatasetError(
            f"{display} has only one column ({header[0].strip()!r}). hpdash needs at least one "
            "feature column and a target column. If the file uses a delimiter other than comma, "
            "semicolon, tab or pipe, re-save it as a comma-separated CSV."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # The bytes with the detected encoding, not the decoded text: a StringIO of the
            # text would hold a second copy at four bytes per character.
            df = pd.read_csv(
                io.BytesIO(data),
                encoding=encoding,
                sep=delim,
                index_col=False,
                skipinitialspace=True,
                low_memory=False,
                header=0,
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning, csv.Error) as exc:
        raise _parse_error(exc, text, delim, len(header), header_line, display) from exc
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(f"{display} has no columns to read. Add a header row and data rows.") from exc
    row_index = None
    if len(header) > 1 and not header[0]:
        df, row_index = _drop_row_index(df, header, display)
    df.columns = [str(c).strip() for c in df.columns]
    if delim == ";":
        df = _decimal_commas(df)
    df.attrs["source"] = {"format": "csv", "encoding": encoding, "delimiter": delim}
    if row_index is not None:
        df.attrs["source"]["row_index"] = row_index
    return df


def _drop_row_index(df: pd.DataFrame, header: list[str], display: str) -> tuple[pd.DataFrame, dict]:
    """Drop a first column with a blank header that holds a row index, or refuse it.

    R's ``write.csv`` writes row names 1..n under an empty header, pandas' ``to_csv`` its
    index 0..n-1 the same way. Such a column numbers the rows and carries nothing to learn,
    so it is dropped, and what was dropped is returned for the profile to show. Any other
    blank-header column is refused as before: its values may be data, and only the user
    knows what it holds.
    """
    column = df.iloc[:, 0]
    n = len(df)
    first = _index_start(column, n)
    if first is None:
        raise _blank_header_error(
            [1],
            len(header),
            display,
            " Its values are not a row index (0..n-1 or 1..n, what R's write.csv and pandas' "
            "to_csv write under an empty header), so hpdash does not know what it holds: "
            "give it a name, or re-save the file without it (pandas: index=False; R: "
            "row.names = FALSE).",
        )
    info = {
        "column": 1,
        "dtype": str(column.dtype),
        "first": first,
        "last": first + n - 1,
        "reason": (
            f"row index (column 1 has no header and numbers the rows {first}…{first + n - 1}, "
            "as R's write.csv and pandas' to_csv write it)"
        ),
    }
    return df.iloc[:, 1:], info


def _index_start(column: pd.Series, n: int) -> int | None:
    """0 or 1 when ``column`` holds each of 0..n-1 or 1..n exactly once (in any order: a
    shuffled table keeps its index), else None."""
    if n == 0 or not _is_numeric(column) or bool(column.isna().any()):
        return None
    values = column.to_numpy(dtype=float)
    if not _integer_valued(values):
        return None
    ordered = np.sort(values)
    for start in (0, 1):
        if np.array_equal(ordered, np.arange(start, start + n, dtype=float)):
            return start
    return None


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` (split on ``\\n`` and keeping it, as ``io.StringIO`` reads them),
    one at a time, without copying the whole text."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def _header(text: str, delim: str) -> tuple[list[str], int]:
    """The first non-blank CSV row (the header) and its 1-based line number."""
    reader = csv.reader(_lines(text), delimiter=delim, skipinitialspace=True)
    try:
        for row in reader:
            if row and (len(row) > 1 or row[0].strip()):
                return [cell.strip() for cell in row], reader.line_num
    except csv.Error:
        return _raw_first_line(text)  # a malformed first row: its raw text as one name
    return _raw_first_line(text)


def _raw_first_line(text: str) -> tuple[list[str], int]:
    first = next((line for line in _lines(text) if line.strip()), text)
    return [first.strip().splitlines()[0].strip()], 1


def _parse_error(exc: Exception, text: str, delim: str, n_header: int, header_line: int, display: str) -> DatasetError:
    """Turn a pandas/csv parsing failure into a message that names the line."""
    msg = str(exc)
    eof = re.search(r"EOF inside string starting at row (\d+)", msg)
    if eof:
        line = int(eof.group(1)) + 1
        return DatasetError(
            f"{display}: a quoted value starting on line {line} is never closed (unbalanced "
            'double quote "). Close the quote or remove the stray quote character.'
        )
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        expected, line, saw = (int(g) for g in m.groups())
    else:
        line, saw, expected = _find_ragged(text, delim, n_header, header_line)
    name = DELIMITER_NAMES.get(delim, repr(delim))
    return DatasetError(
        f"{display}: line {line} has {saw} fields but the header has {expected} "
        f"(delimiter: {name}). Rows must have the same number of fields as the header: quote "
        "values that contain the delimiter, or remove the extra fields."
    )


def _find_ragged(text: str, delim: str, n_header: int, header_line: int) -> tuple[int, int, int]:
    """The first line with more fields than the header: ``(line, fields, header fields)``."""
    reader = csv.reader(_lines(text), delimiter=delim, skipinitialspace=True)
    try:
        for row in reader:
            if reader.line_num > header_line and len(row) > n_header:
                return reader.line_num, len(row), n_header
    except csv.Error:  # the reader cannot go on: blame the line after the header
        return header_line + 1, n_header + 1, n_header
    return header_line + 1, n_header + 1, n_header


def _decimal_commas(df: pd.DataFrame) -> pd.DataFrame:
    """Semicolon CSVs often use decimal commas: turn ``"1,5"`` columns into floats."""
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_numeric_dtype(s) or not (pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)):
            continue
        values = s.dropna().astype(str).str.strip()
        if values.empty or not values.str.contains(",", regex=False).any():
            continue
        if values.str.match(_DECIMAL_COMMA_RE).all():
            df[col] = pd.to_numeric(s.astype(str).str.strip().str.replace(",", ".", regex=False).where(s.notna()))
    return df


def _read_parquet(data: bytes, display: str, limits: bool = True) -> pd.DataFrame:
    """Read Parquet bytes; nested columns and duplicate names are rejected with a message.

    With ``limits``, the row, cell and decoded-size limits are checked from the footer and
    from the text columns read dictionary-encoded (:func:`_check_parquet_limits`) before the
    table is built.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        schema = parquet.schema_arrow
        metadata = parquet.metadata
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... on broken files
        raise DatasetError(
            f"{display} is not a readable Parquet file ({_short(exc)}). It may be truncated or "
            "corrupted: export it again, or upload the table as CSV."
        ) from exc
    _check_columns([f.name for f in schema], display)
    nested = [f"{f.name} ({f.type})" for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise DatasetError(
            f"{display} has nested Parquet column(s) that cannot be features: {_names(nested)}. "
            "hpdash needs flat columns (numbers, strings, booleans, dates): flatten or drop "
            "list/struct/map columns before uploading."
        )
    if len(schema) > max_columns():
        raise _too_many_columns(len(schema), display)
    if limits:
        _check_parquet_limits(data, schema, metadata, display)
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise DatasetError(
            f"{display} is not a readable Parquet file ({_short(exc)}). It may be truncated or "
            "corrupted: export it again, or upload the table as CSV."
        ) from exc
    for f in schema:  # decimals arrive as Python Decimal objects: make them numbers
        if pa.types.is_decimal(f.type) and f.name in df.columns:
            df[f.name] = df[f.name].astype("float64")
    if not isinstance(df.index, pd.RangeIndex):
        df = _index_to_columns(df, display)
    df.columns = [str(c).strip() for c in df.columns]
    df.attrs["source"] = {"format": "parquet", "encoding": None, "delimiter": None}
    return df


def _index_to_columns(df: pd.DataFrame, display: str) -> pd.DataFrame:
    """A Parquet file's stored pandas index as ordinary columns (it may hold data, such as a
    date), refused when an index level is named like a column: two columns of one name."""
    columns = {str(c).strip() for c in df.columns}
    clashes = [str(n) for n in df.index.names if n is not None and str(n).strip() in columns]
    if clashes:
        raise DatasetError(
            f"{display} stores a row index named {_names(clashes)} and also a column of that "
            "name, so the table would have two columns of one name. Re-save it without the "
            "index (pandas: df.to_parquet(path, index=False)) or rename the index or the column."
        )
    try:
        return df.reset_index()
    except ValueError as exc:  # an unnamed index whose default name ("index", "level_0") is taken
        raise DatasetError(
            f"{display} stores a row index that cannot become a column ({_short(exc)}). Re-save "
            "it without the index (pandas: df.to_parquet(path, index=False)), or give the index "
            "a name no column has."
        ) from exc


def _too_many_rows(n_rows: int, display: str) -> DatasetError:
    return DatasetError(
        f"{display} has {n_rows:,} data rows; the limit is {max_rows():,} rows. Upload a sample "
        "of the rows, or raise HPDASH_MAX_ROWS."
    )


def _too_many_cells(n_rows: int, n_cols: int, display: str) -> DatasetError:
    return DatasetError(
        f"{display} has {n_rows:,} rows x {n_cols:,} columns = {n_rows * n_cols:,} cells; the "
        f"limit is {max_cells():,} cells. Upload a sample of the rows or fewer columns, or raise "
        "HPDASH_MAX_CELLS."
    )


def _too_big_decoded(what: str, display: str) -> DatasetError:
    budget = max_decoded_bytes()
    return DatasetError(
        f"{display} {what}, more than the {_human_bytes(budget)} a table may take in memory "
        f"({BYTES_PER_CELL} bytes per cell of the {max_cells():,}-cell limit). Upload a sample "
        "of the rows or drop long text columns, or raise HPDASH_MAX_CELLS."
    )


def _check_parquet_limits(data: bytes, schema: pa.Schema, metadata: pq.FileMetaData, display: str) -> None:
    """Refuse a Parquet file too big to decode, before any of its data pages are read in full.

    From the footer: the declared rows against :func:`max_rows`, rows x columns against
    :func:`max_cells`, and the row groups' declared uncompressed size against
    :func:`max_decoded_bytes`. Then the exact decoded size: fixed-width columns take rows x
    width; text and binary columns are read one row group at a time *dictionary-encoded* (a
    value repeated on every row is held once) and their decoded length summed, so a column of
    one huge string repeated, which compresses to almost nothing, is refused without being
    expanded.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n_rows, n_cols = int(metadata.num_rows), len(schema)
    if n_rows > max_rows():
        raise _too_many_rows(n_rows, display)
    if n_rows * n_cols > max_cells():
        raise _too_many_cells(n_rows, n_cols, display)
    budget = max_decoded_bytes()
    declared = sum(int(metadata.row_group(i).total_byte_size) for i in range(metadata.num_row_groups))
    if declared > budget:
        raise _too_big_decoded(f"declares {_human_bytes(declared)} of uncompressed data", display)

    def is_text(t: pa.DataType) -> bool:
        if pa.types.is_dictionary(t):
            t = t.value_type
        return (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_string_view(t)
            or pa.types.is_binary_view(t)
        )

    def fixed_width(t: pa.DataType) -> int:
        try:
            return max(1, t.bit_width // 8)
        except ValueError:  # not a fixed-width type (null): count a pointer's worth
            return 8

    text_columns = [f.name for f in schema if is_text(f.type)]
    # Columns stored with an Arrow dictionary type (a pandas categorical) load as categories
    # plus codes; every other text column loads with each row's value written out.
    categorical = {f.name for f in schema if pa.types.is_dictionary(f.type)}
    decoded = sum(n_rows * fixed_width(f.type) for f in schema if f.name not in text_columns)
    if decoded > budget:
        raise _too_big_decoded(f"would take {_human_bytes(decoded)} decoded", display)
    if not text_columns:
        return
    try:
        parquet = pq.ParquetFile(io.BytesIO(data), read_dictionary=text_columns)
        for group in range(parquet.num_row_groups):
            part = parquet.read_row_group(group, columns=text_columns)
            for name, column in zip(part.column_names, part.columns):
                for chunk in column.chunks:
                    if not pa.types.is_dictionary(chunk.type):
                        decoded += int(pc.sum(pc.binary_length(chunk)).as_py() or 0)
                    elif name in categorical:
                        decoded += int(pc.sum(pc.binary_length(chunk.dictionary)).as_py() or 0)
                        decoded += len(chunk) * fixed_width(chunk.type.index_type)
                    else:
                        lengths = pc.take(pc.binary_length(chunk.dictionary), chunk.indices)
                        decoded += int(pc.sum(lengths).as_py() or 0)
                if decoded > budget:
                    raise _too_big_decoded(
                        f"would take more than {_human_bytes(decoded)} decoded (column "
                        f"{str(name)!r} holds long text or binary values)",
                        display,
                    )
            del part
    except DatasetError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... on broken pages
        raise DatasetError(
            f"{display} is not a readable Parquet file ({_short(exc)}). It may be truncated or "
            "corrupted: export it again, or upload the table as CSV."
        ) from exc


def _short(exc: Exception) -> str:
    """The first line of an exception message, shortened."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]


def _too_many_columns(n: int, display: str) -> DatasetError:
    return DatasetError(
        f"{display} has {n:,} columns; the limit is {max_columns():,}. Select the columns you "
        "need before uploading, or raise HPDASH_MAX_COLUMNS."
    )


def _blank_header_error(blank: list[int], n: int, display: str, hint: str = "") -> DatasetError:
    where = ", ".join(str(i) for i in blank[:5])
    return DatasetError(
        f"{display}: column {where} of {n} has no name (blank header). Give every column a "
        f"name in the header row.{hint}"
    )


def _check_columns(names: list[str], display: str, row_index: bool = False) -> None:
    """Reject blank and duplicate column names (after trimming spaces).

    ``row_index``: a blank first name alone is allowed (a CSV's row index, checked on its
    values by :func:`_drop_row_index`).
    """
    stripped = [str(n).strip() for n in names]
    blank = [i + 1 for i, n in enumerate(stripped) if not n]
    if row_index and blank == [1] and len(stripped) > 1:
        blank = []
        stripped = stripped[1:]
    if blank:
        hint = ""
        if blank == [len(stripped)]:
            hint = " A delimiter at the end of every line also creates an empty last column."
        elif blank == [1]:
            hint = " A saved pandas index looks like this: re-save with index=False."
        raise _blank_header_error(blank, len(stripped), display, hint)
    seen: dict[str, int] = {}
    dups: list[str] = []
    for n in stripped:
        seen[n] = seen.get(n, 0) + 1
        if seen[n] == 2:
            dups.append(n)
    if dups:
        raise DatasetError(
            f"{display} has duplicate column names: {_names(dups)}. Rename the columns so each name appears once."
        )


def _check_shape(df: pd.DataFrame, display: str, limits: bool = True) -> None:
    """Enforce the column limit, the minimum number of rows and (with ``limits``) the exact
    row and cell limits."""
    if df.shape[1] > max_columns():
        raise _too_many_columns(df.shape[1], display)
    if limits and df.shape[0] > max_rows():
        raise _too_many_rows(df.shape[0], display)
    if limits and df.shape[0] * df.shape[1] > max_cells():
        raise _too_many_cells(df.shape[0], df.shape[1], display)
    if df.shape[0] == 0:
        raise DatasetError(f"{display} has a header but no data rows. Upload a table with at least {MIN_ROWS} rows.")
    if df.shape[0] < MIN_ROWS:
        raise DatasetError(
            f"{display} has only {df.shape[0]} data row; hpdash needs at least {MIN_ROWS} (and "
            "enough for cross-validation). Upload more rows."
        )


# -- samples --------------------------------------------------------------------------------
def load_sample(name: str) -> pd.DataFrame:
    """A bundled scikit-learn dataset as features + a ``target`` column.

    ``name`` is ``"iris"`` or ``"sklearn:iris"``. Classification targets are class-name
    strings (``"setosa"``, ``"malignant"``, ``"0"``…``"9"``). Diabetes uses the raw
    (unscaled) features.
    """
    key = name if name.startswith("sklearn:") else f"sklearn:{name}"
    if key not in SAMPLES:
        raise DatasetError(f"Unknown sample dataset {name!r}. Available: {', '.join(SAMPLES)}.")
    return _load_sample_cached(key.split(":", 1)[1]).copy()


@cache
def _load_sample_cached(short: str) -> pd.DataFrame:
    from sklearn import datasets as skd

    if short == "diabetes":
        bunch = skd.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.frame.copy()
        frame["target"] = frame["target"].astype(float)
        return frame
    loader = {
        "iris": skd.load_iris,
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
        "digits": skd.load_digits,
    }[short]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    names = np.asarray([str(t) for t in bunch.target_names], dtype=object)
    frame["target"] = pd.Series(names[frame["target"].to_numpy()], index=frame.index, dtype="str")
    return frame


# -- task inference and roles ---------------------------------------------------------------
def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _integer_valued(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0))


def infer_task(y: pd.Series) -> TaskName:
    """Classification for non-numeric/bool targets and few distinct integers, else regression.

    A numeric target is a class label when its values are integers with at most 20 distinct
    values, and there are at most 2 of them or they cover at most half of the rows.
    """
    values = y.dropna()
    if values.empty:
        raise DatasetError(f"Target {y.name!r} has no values (every row is missing).")
    if not _is_numeric(values):
        return "classification"
    arr = values.to_numpy(dtype=float)
    n_unique = int(pd.unique(arr).size)
    if _integer_valued(arr) and n_unique <= MAX_CLASSES_FOR_INFERENCE and (n_unique <= 2 or n_unique <= 0.5 * arr.size):
        return "classification"
    return "regression"


def _examples(values: pd.Series, k: int = 3) -> list[str]:
    out: list[str] = []
    for v in values.dropna().unique()[:k]:
        text = str(v)
        out.append(text if len(text) <= 40 else text[:39] + "…")
    return out


def _nunique(s: pd.Series) -> int:
    try:
        return int(s.nunique(dropna=True))
    except TypeError:  # unhashable values
        return int(s.dropna().astype(str).nunique())


def _date_kind(values: pd.Series) -> dict[str, bool] | None:
    """If string ``values`` look like dates, the parsing options for them; else None."""
    sample = values.dropna().astype(str).str.strip()
    sample = sample[sample != ""]
    if sample.empty:
        return None
    sample = pd.Series(sample.unique()[:500])
    dayfirst = False
    matched = 0
    for text in sample:
        for i, pattern in enumerate(_DATE_RES):
            m = pattern.match(text)
            if m:
                matched += 1
                if i == 2 and int(m.group(1)) > 12:
                    dayfirst = True
                break
    if matched < 0.95 * len(sample):
        return None
    parsed = _parse_dates(sample, {"dayfirst": dayfirst})
    if parsed.notna().mean() < 0.95:
        return None
    return {"dayfirst": dayfirst}


def _parse_dates(s: pd.Series, kind: dict[str, bool]) -> pd.Series:
    """Parse date strings (unparseable -> NaT) to naive wall-clock times.

    A single UTC offset is kept as local wall-clock time; mixed offsets are converted to UTC.
    """
    text = s.astype(str).str.strip().where(s.notna())
    out: pd.Series | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=kind["dayfirst"])
        except (ValueError, TypeError):
            out = None
        if out is None or not pd.api.types.is_datetime64_any_dtype(out):
            out = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=kind["dayfirst"], utc=True)
    return _naive(out)


def _naive(dt: pd.Series) -> pd.Series:
    """Drop the time zone of a datetime series, keeping its wall-clock time."""
    if getattr(dt.dt, "tz", None) is not None:
        return dt.dt.tz_localize(None)
    return dt


def _classify(s: pd.Series, n_rows: int) -> tuple[str, str | None]:
    """The role of a feature column and, for dropped columns, the reason."""
    non_null = s.dropna()
    n_non_null = len(non_null)
    if n_non_null == 0:
        return "dropped", "all missing"
    n_unique = _nunique(s)
    if n_unique <= 1:
        return "dropped", f"constant (only value: {_examples(non_null, 1)[0]!r})"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime", None
    if pd.api.types.is_bool_dtype(s):
        return "categorical", None
    if pd.api.types.is_timedelta64_dtype(s):
        return "numeric", None
    if _is_numeric(s):
        arr = non_null.to_numpy(dtype=float)
        if n_unique == n_rows and n_non_null == n_rows and _integer_valued(arr):
            consecutive = float(arr.max() - arr.min()) == n_rows - 1
            if _ID_NAME_RE.search(str(s.name)) or (consecutive and n_rows >= MIN_ROWS_FOR_ID):
                return "dropped", (f"ID-like (a different integer on every row: {int(arr.min())}…{int(arr.max())})")
        return "numeric", None
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "categorical", None
    text = non_null.astype(str)
    if _date_kind(text) is not None:
        return "datetime", None
    if len(text) > 5000:  # length statistics from a sample are enough
        text = text.sample(5000, random_state=0)
    mean_len = float(text.str.len().mean())
    mean_words = float(text.str.split().str.len().mean())
    if n_unique > 10 and n_unique > 0.5 * n_non_null and (mean_len >= 30 or mean_words >= 4):
        return "dropped", (f"free text ({n_unique} distinct values, {mean_len:.0f} characters on average)")
    if n_unique == n_rows and n_rows >= MIN_ROWS_FOR_ID:
        return "dropped", "ID-like (a different value on every row)"
    if n_unique > HIGH_CARDINALITY_MIN and n_unique > 0.5 * n_non_null:
        return "dropped", (
            f"high-cardinality text ({n_unique} distinct values in {n_non_null} rows: one-hot "
            f"encoding would make {n_unique} columns, most of them for one or two rows)"
        )
    return "categorical", None


#: Drop reasons the user may overrule with ``keep_columns``: the column holds values a model
#: can use, hpdash only guesses they are not worth it. Constant and all-missing columns hold
#: nothing to learn, and a row index is gone once the table is read.
OVERRIDABLE_PREFIXES = ("ID-like", "free text", "high-cardinality text")


def _kept_role(s: pd.Series) -> str:
    """The role of a column kept by ``keep_columns``: numbers stay numbers (an ID-like integer
    column), everything else is a category (free text one-hot encoded, as the user asked)."""
    return "numeric" if _is_numeric(s) or pd.api.types.is_timedelta64_dtype(s) else "categorical"


def _check_keep(df: pd.DataFrame, target: str | None, keep: list[str] | None) -> set[str]:
    """The names in ``keep_columns`` that are columns of ``df``, or a SpecError naming each
    that is not (with the closest name) or is the target."""
    if not keep:
        return set()
    names = [str(c) for c in df.columns]
    unknown = [k for k in keep if k not in names]
    if unknown:
        hints = []
        for name in unknown[:5]:
            close = difflib.get_close_matches(name, names, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SpecError(
            f"'keep_columns' names {len(unknown)} column(s) the table does not have: "
            f"{', '.join(hints)}. Use column names from the table's header (available: "
            f"{_names(names)})."
        )
    if target is not None and str(target) in keep:
        raise SpecError(
            f"'keep_columns' names the target column {target!r}; the target is never a feature. "
            "Remove it from keep_columns."
        )
    return set(keep)


# -- profiling ------------------------------------------------------------------------------
def _clean_target(df: pd.DataFrame, target: str, task: str) -> tuple[pd.Series, TaskName, int]:
    """Validate the target; returns its non-missing values, the task and the missing count."""
    if target not in df.columns:
        available = [str(c) for c in df.columns]
        close = difflib.get_close_matches(str(target), available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"Target column {target!r} not found.{hint} Available columns: {_names(available)}.")
    raw = df[target]
    missing = int(raw.isna().sum())
    y = raw.dropna()
    if y.empty:
        raise DatasetError(
            f"Target column {target!r} is missing on every row, so there is nothing to learn. "
            "Pick another target column or fill in its values."
        )
    if _is_numeric(y):
        arr = y.to_numpy(dtype=float)
        n_inf = int(np.isinf(arr).sum())
        if n_inf:
            raise DatasetError(
                f"Target column {target!r} contains {n_inf} infinite value(s) (inf/-inf). Replace or remove those rows."
            )
    if task == "auto":
        task_name = infer_task(y)
    else:
        task_name = task  # type: ignore[assignment]
    if task_name == "regression":
        if not _is_numeric(y):
            raise DatasetError(
                f"Target column {target!r} is not numeric (examples: {', '.join(_examples(y))}), "
                "so it cannot be a regression target. Use task 'classification' or pick a "
                "numeric target."
            )
        y = y.astype(float)
        magnitude = float(np.abs(y.to_numpy()).max())
        if magnitude > MAX_TARGET_MAGNITUDE:
            n_big = int((np.abs(y.to_numpy()) > MAX_TARGET_MAGNITUDE).sum())
            raise DatasetError(
                f"Target column {target!r} has {n_big} value(s) larger in magnitude than "
                f"{MAX_TARGET_MAGNITUDE:.0e} (up to {magnitude:.3g}): their squared errors "
                "overflow 64-bit floats, so every regression score and fit would be inf or "
                "NaN. Rescale the target (for example, divide it by a power of ten or take "
                "its logarithm) or remove those rows."
            )
    elif _is_numeric(y) and _integer_valued(values := y.to_numpy(dtype=float)):
        # Whole-number class labels become integers, where int64 holds them exactly (2**53
        # is where floats stop holding every integer); 1e308 stays a float label.
        if float(np.abs(values).max()) < 2.0**53:
            y = y.astype("int64")
    return y, task_name, missing


def _distribution(y: pd.Series, task: TaskName) -> pd.DataFrame:
    """Tidy target distribution: class counts, or a histogram for regression."""
    if task == "classification":
        counts = y.astype(str).value_counts()
        frame = pd.DataFrame({"class": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
        return frame.sort_values(["count", "class"], ascending=[False, True]).reset_index(drop=True)
    values = y.to_numpy(dtype=float)
    edges = np.histogram_bin_edges(values, bins="auto")
    if len(edges) > 31:
        edges = np.histogram_bin_edges(values, bins=30)
    counts, edges = np.histogram(values, bins=edges)
    return pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], "count": counts.astype("int64")})


def profile_table(
    df: pd.DataFrame,
    target: str | None = None,
    task: str = "auto",
    keep_columns: list[str] | None = None,
) -> DatasetProfile:
    """Profile a table: column roles with drop reasons, and (with a target) task and distribution.

    ``keep_columns`` (the spec's field) keeps the named columns as features although hpdash
    would drop them as ID-like, free text or high-cardinality text (``ColumnInfo.kept``);
    every column that may be kept so has ``ColumnInfo.overridable`` set, kept or not. A row
    index dropped while reading a CSV is listed first, as a dropped column that is not in the
    frame (``in_frame`` False).

    Raises :class:`DatasetError` for an unusable target (not found, all missing, infinite or
    overflowing values, non-numeric for regression) and :class:`SpecError` for an unknown task
    name, or a ``keep_columns`` entry that is not a column, is the target, or names a column
    that cannot be kept (constant, all missing).
    """
    _check_task(task)
    _check_columns([str(c) for c in df.columns], "The table")
    keep = _check_keep(df, target, keep_columns)
    n_rows, n_cols = df.shape
    y: pd.Series | None = None
    task_name: TaskName | None = None
    missing = 0
    if target is not None:
        y, task_name, missing = _clean_target(df, target, task)
    columns: list[ColumnInfo] = []
    row_index = (df.attrs.get("source") or {}).get("row_index")
    if row_index:
        columns.append(
            ColumnInfo(
                name="(column 1, no header)",
                dtype=str(row_index["dtype"]),
                role="dropped",
                reason=row_index["reason"],
                missing_share=0.0,
                n_unique=n_rows,
                examples=[str(row_index["first"]), str(row_index["first"] + 1), "…"],
                default_reason=row_index["reason"],
                in_frame=False,
            )
        )
    not_keepable: list[str] = []
    for col in df.columns:
        s = df[col]
        kept = False
        default_reason = None
        if target is not None and col == target:
            role, reason = "target", None
        else:
            role, reason = _classify(s, n_rows)
            default_reason = reason
        overridable = role == "dropped" and str(reason).startswith(OVERRIDABLE_PREFIXES)
        if str(col) in keep and role == "dropped":
            if overridable:
                role, reason, kept = _kept_role(s), None, True
            else:
                not_keepable.append(f"{str(col)!r} ({reason})")
        columns.append(
            ColumnInfo(
                name=str(col),
                dtype=str(s.dtype),
                role=role,
                reason=reason,
                missing_share=float(s.isna().mean()) if n_rows else 0.0,
                n_unique=_nunique(s),
                examples=_examples(s),
                overridable=overridable,
                kept=kept,
                default_reason=default_reason,
            )
        )
    if not_keepable:
        raise SpecError(
            f"'keep_columns' names column(s) that hold nothing a model can learn from: "
            f"{'; '.join(not_keepable[:8])}. Only ID-like, free-text and high-cardinality "
            "columns can be kept: remove these from keep_columns."
        )
    distribution = _distribution(y, task_name) if y is not None and task_name else pd.DataFrame()
    return DatasetProfile(
        n_rows=n_rows,
        n_cols=n_cols + (1 if row_index else 0),
        target=target,
        task=task_name,
        columns=columns,
        target_distribution=distribution,
        n_target_missing_dropped=missing,
    )


# -- preparing X and y ----------------------------------------------------------------------
def _to_float(s: pd.Series) -> pd.Series:
    """A numeric feature as float64; infinities become missing (and are imputed)."""
    if pd.api.types.is_timedelta64_dtype(s):
        out = s.dt.total_seconds()
    else:
        out = pd.to_numeric(s, errors="coerce").astype("float64")
    return out.replace([np.inf, -np.inf], np.nan)


def _to_category(s: pd.Series) -> pd.Series:
    """A categorical feature as object dtype holding strings, missing as ``np.nan``."""
    out = s.astype(object).map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
    return out.where(s.notna(), np.nan).astype(object)


def _datetime_parts(s: pd.Series, name: str) -> pd.DataFrame:
    """Numeric parts of a datetime column: year, month, day, day of week, and hour if present."""
    if pd.api.types.is_datetime64_any_dtype(s):
        dt = _naive(s)
    else:
        kind = _date_kind(s) or {"dayfirst": False}
        dt = _parse_dates(s, kind)
    parts = {
        f"{name}_year": dt.dt.year,
        f"{name}_month": dt.dt.month,
        f"{name}_day": dt.dt.day,
        f"{name}_dayofweek": dt.dt.day_of_week,
    }
    hours = dt.dt.hour
    if bool(((hours.fillna(0) != 0) | (dt.dt.minute.fillna(0) != 0)).any()):
        parts[f"{name}_hour"] = hours
    return pd.DataFrame({k: v.astype("float64") for k, v in parts.items()}, index=s.index)


def prepare(
    df: pd.DataFrame,
    target: str,
    task: str = "auto",
    folds: int = 5,
    keep_columns: list[str] | None = None,
) -> PreparedData:
    """Features and target for the evaluation protocol, or a :class:`DatasetError`.

    Rows with a missing target are dropped and counted in
    ``profile.n_target_missing_dropped``. Classification needs at least two classes and at
    least ``folds`` rows per class; every task needs at least ``2 * folds`` rows. Infinite
    feature values are treated as missing. ``keep_columns`` keeps columns hpdash would drop
    (see :func:`profile_table`).
    """
    _check_task(task)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise SpecError(f"CV folds must be an integer of at least 2, not {folds!r}.")
    folds = int(folds)
    profile = profile_table(df, target, task, keep_columns=keep_columns)
    y, task_name, missing = _clean_target(df, target, task)
    keep = df[target].notna()
    dropped_note = f" after dropping {missing} row(s) with a missing target" if missing else ""
    n = len(y)
    if task_name == "classification":
        counts = y.astype(str).value_counts()
        if len(counts) < 2:
            raise DatasetError(
                f"Target column {target!r} has a single class ({counts.index[0]!r}){dropped_note}; "
                "classification needs at least two classes. Pick another target."
            )
        rare = counts[counts < folds]
        if len(rare):
            listed = ", ".join(f"{c!r} ({k} row{'s' if k != 1 else ''})" for c, k in rare.head(5).items())
            more = f" and {len(rare) - 5} more" if len(rare) > 5 else ""
            hint = ""
            if _is_numeric(y) and len(counts) > MAX_CLASSES_FOR_INFERENCE:
                hint = " If the target is a continuous quantity, use task 'regression'."
            raise DatasetError(
                f"Target column {target!r}: class {listed}{more} has fewer rows than the {folds} "
                f"CV folds{dropped_note}. Every class needs at least {folds} rows: add rows, "
                f"merge or remove rare classes, or use fewer folds.{hint}"
            )
    if n < 2 * folds:
        raise DatasetError(
            f"Only {n} row(s) with a target{dropped_note}, too few for {folds}-fold "
            f"cross-validation plus a holdout: hpdash needs at least {2 * folds} rows "
            f"(twice the number of folds). Add rows or use fewer folds."
        )
    in_frame = [info for info in profile.columns if info.in_frame]
    features = [
        (key, info) for key, info in zip(df.columns, in_frame) if info.role in ("numeric", "categorical", "datetime")
    ]
    if not features:
        dropped = [f"{c.name!r} ({c.reason})" for c in profile.dropped()]
        why = f" Dropped: {'; '.join(dropped[:8])}." if dropped else ""
        keepable = [c.name for c in profile.overridable()]
        fix = f", or keep one of {_names(keepable)} with the spec's keep_columns" if keepable else ""
        raise DatasetError(
            f"No usable feature column left besides the target {target!r}.{why} Add feature "
            f"columns (numbers, categories or dates) to the table{fix}."
        )
    rows = df.loc[keep]
    parts: list[pd.DataFrame | pd.Series] = []
    numeric: list[str] = []
    categorical: list[str] = []
    for key, info in features:
        s = rows[key]
        if info.role == "numeric":
            parts.append(_to_float(s).rename(info.name))
            numeric.append(info.name)
        elif info.role == "categorical":
            parts.append(_to_category(s).rename(info.name))
            categorical.append(info.name)
        else:
            expanded = _datetime_parts(s, info.name)
            parts.append(expanded)
            numeric.extend(expanded.columns)
    # One consolidated block per dtype (copy): taking a fold's rows from the concatenated
    # frame of a wide table is far slower.
    X = pd.concat(parts, axis=1).reset_index(drop=True).copy()
    X.attrs = {}
    y_out = y.reset_index(drop=True).rename(target)
    if len(set(X.columns)) != X.shape[1]:
        dup = X.columns[X.columns.duplicated()].tolist()
        raise DatasetError(
            f"Expanding date columns created names that already exist: {_names(dup)}. Rename those columns."
        )
    return PreparedData(X=X, y=y_out, task=task_name, numeric=numeric, categorical=categorical, profile=profile)


# -- content-addressed store ----------------------------------------------------------------
def _is_sha(text: str) -> bool:
    return bool(_SHA_RE.match(text))


def find_stored(sha256: str) -> Path | None:
    """The stored file of a dataset (``<data>/datasets/<sha>.csv|parquet``), or None."""
    sha = str(sha256).strip().lower()
    if not _is_sha(sha):
        return None
    folder = config.datasets_dir()
    for fmt in ("csv", "parquet"):
        path = folder / f"{sha}.{fmt}"
        if path.is_file():
            return path
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check_learnable(df: pd.DataFrame, display: str) -> None:
    """``DatasetError`` for a table that can give no study: fewer than two columns that vary
    (a target and one feature). Constant and all-missing columns hold nothing to learn; a
    column dropped only by a guess (ID-like, free text) still counts, as ``keep_columns`` can
    keep it. Checked on upload, before the target is known."""
    useful, empty = [], []
    for name in df.columns:
        role, reason = _classify(df[name], len(df))
        if role == "dropped" and not str(reason).startswith(OVERRIDABLE_PREFIXES):
            empty.append(f"{name!r} ({reason})")
        else:
            useful.append(str(name))
    if len(useful) >= 2:
        return
    have = f"only {_names(useful)} varies" if useful else "no column varies"
    raise DatasetError(
        f"{display} cannot be used for a study: {have}, and a study needs a target and at least "
        f"one feature column that vary."
        + (f" Dropped: {'; '.join(empty[:8])}{' and more' if len(empty) > 8 else ''}." if empty else "")
        + " Add the feature columns to the file, or fill in the missing values."
    )


def store_dataset(
    data: bytes,
    filename: str,
    target: str | None = None,
    catalogue: Catalogue | None = None,
    *,
    task: str = "auto",
    folds: int = 5,
    keep_columns: list[str] | None = None,
) -> StoredDataset:
    """Validate ``data`` and store it by SHA-256 with a catalogue row.

    Validation (:func:`read_table`, and :func:`prepare` with ``task``, ``folds`` and
    ``keep_columns`` when ``target`` is given) happens before anything is written, so a
    rejected upload leaves no file and no row. The same
    bytes stored twice give the same SHA, one file and one row (the first name is kept).
    ``filename`` is metadata only; the stored file is always named by its hash.
    """
    from hpdash import access

    access.require_writable("upload a dataset")
    data = bytes(data)
    df, fmt = _read(data, filename, config.max_upload_bytes())
    if target is not None:
        prepare(df, target, task=task, folds=folds, keep_columns=keep_columns)
    else:
        check_learnable(df, _base_filename(filename))
    sha = sha256_bytes(data)
    base = _base_filename(filename)
    name = PurePosixPath(base).stem or base
    from hpdash.store import Catalogue

    catalogue = catalogue or Catalogue()
    path = config.datasets_dir() / f"{sha}.{fmt}"
    created = False
    if not (path.is_file() and sha256_bytes(path.read_bytes()) == sha):
        try:
            _write_atomic(path, data)
        except OSError as exc:
            raise StorageError(
                f"Could not save {base} in {path.parent}: {exc.strerror or exc}. The disk may be "
                "full or the data directory read-only; nothing was stored."
            ) from exc
        created = True
    record = {
        "sha256": sha,
        "name": name,
        "filename": base,
        "format": fmt,
        "size_bytes": len(data),
        "n_rows": int(df.shape[0]),
        "n_cols": int(df.shape[1]),
    }
    try:
        catalogue.add_dataset(record)
    except StorageError:
        if created:
            path.unlink(missing_ok=True)
        raise
    row = catalogue.get_dataset(sha) or record
    return StoredDataset(
        sha256=sha,
        name=str(row.get("name", name)),
        filename=str(row.get("filename", base)),
        format=fmt,
        path=path,
        size_bytes=len(data),
        n_rows=int(df.shape[0]),
        n_cols=int(df.shape[1]),
    )


def delete_stored(sha256: str, catalogue: Catalogue | None = None) -> None:
    """Remove a stored dataset's file and catalogue row (the caller checks no study uses it)."""
    from hpdash import access

    access.require_writable("delete a dataset")
    sha = str(sha256).strip().lower()
    if not _is_sha(sha):
        raise DatasetError(f"{sha256!r} is not a dataset SHA-256 (64 hexadecimal characters).")
    folder = config.datasets_dir()
    for fmt in ("csv", "parquet"):
        path = folder / f"{sha}.{fmt}"
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # permissions, a read-only mount: say which file and why
            raise DatasetError(
                f"Cannot delete the stored dataset file {path}: {exc.strerror or exc}. "
                "Check that the data folder is writable, then try again; nothing was removed "
                "from the catalogue."
            ) from exc
    from hpdash.store import Catalogue

    (catalogue or Catalogue()).delete_dataset(sha)


def load_dataset(ref: str, expected_sha256: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """Load a dataset by reference; returns ``(frame, sha256)``.

    ``ref`` is ``sklearn:NAME`` (sha is None and ``expected_sha256`` is ignored), the 64-hex
    SHA-256 of a stored dataset, or a path to a CSV/Parquet file. The bytes are hashed; with
    ``expected_sha256`` a mismatch raises :class:`DatasetError`. The upload size limit does not
    apply here, nor do the row and cell limits (a stored dataset passed them when it was
    uploaded).
    """
    ref = str(ref).strip()
    if ref.startswith("sklearn:"):
        return load_sample(ref), None
    if _is_sha(ref.lower()):
        sha = ref.lower()
        path = find_stored(sha)
        if path is None:
            from hpdash.store import Catalogue

            row = Catalogue().get_dataset(sha)
            if row is not None:
                raise DatasetError(
                    f"Dataset {row.get('name')!r} ({sha[:12]}…) is in the catalogue but its file "
                    f"is missing from {config.datasets_dir()}. Upload the file again."
                )
            raise DatasetError(
                f"No stored dataset with SHA-256 {sha[:12]}… in {config.datasets_dir()}. Upload "
                "it first, or check HPDASH_DATA_DIR."
            )
        expected_sha256 = expected_sha256 or sha
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise DatasetError(
                f"Dataset file not found: {ref}. Give a CSV/Parquet path, a stored dataset's "
                f"SHA-256, or one of {', '.join(SAMPLES)}."
            )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read the dataset file {path}: {exc.strerror}.") from exc
    found = sha256_bytes(data)
    if expected_sha256 is not None and found != expected_sha256.strip().lower():
        raise DatasetError(
            f"The dataset file changed since the study was created: expected SHA-256 "
            f"{expected_sha256.strip().lower()}, found {found} ({path}). Restore the original "
            "file or create a new study."
        )
    df, _ = _read(data, path.name, None, limits=False)
    return df, found


# -- target guess ---------------------------------------------------------------------------
#: Names that say "this is what to predict" in any table, in order of precedence.
GENERIC_TARGET_NAMES = ("target", "label", "labels", "class", "outcome", "response", "y")
#: Targets of conventional public tables that are not their table's last column, under their
#: domain's name: the column a tutorial on that table predicts (diamonds: price; auto-mpg:
#: mpg, first; the Vega cars table: Miles_per_Gallon, second; Titanic: Survived, second;
#: Palmer penguins: species, first; house prices: SalePrice; California housing:
#: median_house_value; Boston: medv; wine quality: quality; Wisconsin breast cancer:
#: diagnosis, second; churn tables: churn). Names that are as often a feature elsewhere
#: (income, salary, age) are left out: the last-column rule finds them where they are targets.
DOMAIN_TARGET_NAMES = (
    "species",
    "price",
    "sale_price",
    "saleprice",
    "mpg",
    "miles_per_gallon",
    "survived",
    "median_house_value",
    "medhouseval",
    "medv",
    "quality",
    "diagnosis",
    "churn",
)
#: Coordinate names: ``y`` beside ``x`` (or ``z``) is a coordinate or a width, not a target
#: (the diamonds table has x, y and z, the sizes of the stone).
_COORDINATES = {"x", "z"}


def _normal_name(name: str) -> str:
    """A column name compared loosely: lower case, runs of anything but letters and digits as
    one underscore (``Miles_per_Gallon``, ``miles per gallon`` and ``MILES-PER-GALLON`` meet)."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def guess_target(columns: list[str]) -> str | None:
    """The column a user most likely wants to predict, from the column names alone.

    The rule, first match wins:

    1. a generic target name (:data:`GENERIC_TARGET_NAMES`: ``target``, ``label``, ``class``,
       ``outcome``, ``response``, then ``y``), compared case- and punctuation-insensitively;
       ``y`` counts only when the table has no ``x`` or ``z`` column, where it is a coordinate;
    2. the target name of a conventional public table (:data:`DOMAIN_TARGET_NAMES`, in that
       order: ``species``, ``price``, ``mpg`` ... ``survived`` ...);
    3. the last column, where most exported tables put the outcome.

    None for no columns. The guess is only a default: the Datasets and New study pages show
    it and let the user pick another.
    """
    names = [str(c) for c in columns]
    if not names:
        return None
    normal: dict[str, str] = {}
    for name in names:
        normal.setdefault(_normal_name(name), name)
    coordinates = bool(_COORDINATES & set(normal))
    for guess in GENERIC_TARGET_NAMES:
        if guess == "y" and coordinates:
            continue
        if guess in normal:
            return normal[guess]
    for guess in DOMAIN_TARGET_NAMES:
        if guess in normal:
            return normal[guess]
    return names[-1]
