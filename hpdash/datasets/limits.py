"""Parquet reading within the limits (read from the footer before any row is decoded) and the shape checks every table passes."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pandas as pd

from hpdash.errors import DatasetError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    import pyarrow as pa
    import pyarrow.parquet as pq


from hpdash.datasets.records import (
    BYTES_PER_CELL,
    MIN_ROWS,
    _human_bytes,
    _names,
    _short,
    max_cells,
    max_columns,
    max_decoded_bytes,
    max_rows,
)


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
