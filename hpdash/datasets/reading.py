"""Bytes to a table: format, encoding and delimiter sniffing, CSV parsing with its row limit checked before loading, and the errors that say what is wrong and how to fix it."""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpdash import config
from hpdash.errors import DatasetError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    pass

from hpdash.datasets.limits import _blank_header_error, _check_columns, _check_shape, _read_parquet, _too_many_columns
from hpdash.datasets.profile import _integer_valued, _is_numeric
from hpdash.datasets.records import (
    _DECIMAL_COMMA_RE,
    _MAGIC,
    _NUMBER_RE,
    CSV_EXTENSIONS,
    DELIMITER_NAMES,
    DELIMITERS,
    PARQUET_EXTENSIONS,
    _base_filename,
    _human_bytes,
    max_cells,
    max_columns,
    max_rows,
)


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
