"""Tests for hpdash.datasets: reading, rejections, profiling, roles, task inference, samples."""

from __future__ import annotations

import bz2
import gzip
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpdash import config
from hpdash.datasets import (
    SAMPLES,
    DatasetProfile,
    PreparedData,
    infer_task,
    load_sample,
    prepare,
    profile_table,
    read_table,
    store_dataset,
)
from hpdash.errors import DatasetError, SpecError
from hpdash.store import Catalogue

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the default upload, column, row and cell limits."""
    monkeypatch.delenv("HPDASH_MAX_UPLOAD_MB", raising=False)
    monkeypatch.delenv("HPDASH_MAX_COLUMNS", raising=False)
    monkeypatch.delenv("HPDASH_MAX_ROWS", raising=False)
    monkeypatch.delenv("HPDASH_MAX_CELLS", raising=False)


# -- builders -------------------------------------------------------------------------------
def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """CSV text as bytes."""
    return text.encode(encoding)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """A DataFrame written as Parquet (pyarrow), in memory."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def table(n: int, target: Callable[[int], object], extra: str = "") -> str:
    """A CSV with ``n`` rows: numeric features x1, x2, a target column y, optional extra cells."""
    head = "x1,x2,y" + ("," + extra.split("=")[0] if extra else "")
    rows = [head]
    for i in range(n):
        cells = [f"{(i * 7) % 11}.5", f"{i % 3}", str(target(i))]
        if extra:
            cells.append(extra.split("=")[1])
        rows.append(",".join(cells))
    return "\n".join(rows) + "\n"


def zip_bytes() -> bytes:
    """A zip archive holding a CSV."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.csv", "a,b\n1,2\n3,4\n")
    return buf.getvalue()


def nested_parquet() -> bytes:
    """Parquet with a list column and a struct column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table(
        {
            "x": [1.0, 2.0, 3.0],
            "tags": [["a"], ["b", "c"], []],
            "meta": [{"k": 1}, {"k": 2}, {"k": 3}],
            "y": ["p", "q", "p"],
        }
    )
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def duplicate_parquet() -> bytes:
    """Parquet whose schema has the same field name twice (pyarrow allows it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def truncated_parquet() -> bytes:
    """A valid Parquet file cut in half: PAR1 at the start, no footer."""
    data = parquet_bytes(pd.DataFrame({"a": range(50), "b": [f"v{i}" for i in range(50)]}))
    return data[: len(data) // 2]


def wide_csv(n_cols: int) -> bytes:
    """A 3-row CSV with ``n_cols`` columns."""
    head = ",".join(f"c{i}" for i in range(n_cols))
    row = ",".join("1" for _ in range(n_cols))
    return f"{head}\n{row}\n{row}\n{row}\n".encode()


BALANCED = table(20, lambda i: "ab"[i % 2])

# (id, bytes, filename, target, env, expected substring of the message)
MALFORMED: list[tuple[str, bytes, str, str | None, dict[str, str], str]] = [
    ("empty", b"", "data.csv", None, {}, "is empty (0 bytes)"),
    ("whitespace_only", b"  \n\t \r\n   \n", "data.csv", None, {}, "contains only whitespace"),
    ("no_header", b"5.1,3.5,0\n4.9,3.0,1\n4.7,3.2,0\n", "data.csv", None, {}, "has no header row"),
    ("nul_bytes", b"a,b\n1,\x002\n3,4\n", "data.csv", None, {}, "binary data (a NUL byte at byte 6)"),
    ("control_chars", bytes(range(1, 32)) * 50, "data.csv", None, {}, "control characters"),
    (
        "gzip_renamed",
        gzip.compress(b"a,b\n1,2\n3,4\n"),
        "data.csv",
        None,
        {},
        "looks like a gzip archive, not a CSV or Parquet table; unpack it first",
    ),
    ("zip_renamed", zip_bytes(), "data.csv", None, {}, "looks like a zip archive"),
    ("bzip2_renamed", bz2.compress(b"a,b\n1,2\n3,4\n"), "data.csv", None, {}, "bzip2 archive"),
    ("old_excel", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "data.csv", None, {}, "old Excel (.xls)"),
    ("unsupported_ext", b"a,b\n1,2\n3,4\n", "data.json", None, {}, "Unsupported file type '.json'"),
    ("xlsx_ext", b"a,b\n1,2\n3,4\n", "book.xlsx", None, {}, "is a spreadsheet (.xlsx)"),
    ("parquet_ext_csv_content", b"a,b\n1,2\n3,4\n", "data.parquet", None, {}, "rename it to .csv"),
    ("broken_parquet", truncated_parquet(), "data.parquet", None, {}, "is not a readable Parquet file"),
    ("nested_parquet", nested_parquet(), "data.parquet", None, {}, "nested Parquet column(s)"),
    ("duplicate_parquet_columns", duplicate_parquet(), "data.parquet", None, {}, "duplicate column names: 'a'"),
    (
        "ragged_row",
        b"a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n",
        "data.csv",
        None,
        {},
        "line 3 has 4 fields but the header has 3",
    ),
    ("ragged_every_row", b"a,b\n1,2,3\n4,5,6\n", "data.csv", None, {}, "line 2 has 3 fields but the header has 2"),
    (
        "unclosed_quote",
        b'a,b,c\n1,2,3\n4,"oops,6\n7,8,9\n',
        "data.csv",
        None,
        {},
        "quoted value starting on line 3 is never closed",
    ),
    ("duplicate_columns", b"a,b,a\n1,2,3\n4,5,6\n", "data.csv", None, {}, "duplicate column names: 'a'"),
    ("duplicate_after_trim", b"a,b,a  \n1,2,3\n4,5,6\n", "data.csv", None, {}, "duplicate column names: 'a'"),
    # a blank first header over values that are not a row index (0..n-1, 1..n): still refused
    ("blank_column_name", b",a,b\n5,1,2\n7,3,4\n", "data.csv", None, {}, "column 1 of 3 has no name"),
    ("trailing_delimiter", b"a,b,\n1,2,\n3,4,\n", "data.csv", None, {}, "delimiter at the end of every line"),
    ("too_many_columns_default", wide_csv(2001), "wide.csv", None, {}, "has 2,001 columns; the limit is 2,000"),
    (
        "too_many_columns_env",
        b"a,b,c,d\n1,2,3,4\n5,6,7,8\n",
        "data.csv",
        None,
        {"HPDASH_MAX_COLUMNS": "3"},
        "has 4 columns; the limit is 3",
    ),
    (
        "too_many_columns_parquet",
        parquet_bytes(pd.DataFrame({c: [1, 2] for c in "abcd"})),
        "data.parquet",
        None,
        {"HPDASH_MAX_COLUMNS": "3"},
        "has 4 columns; the limit is 3",
    ),
    (
        "over_row_limit_csv",
        b"a,b\n1,2\n3,4\n5,6\n7,8\n",
        "data.csv",
        None,
        {"HPDASH_MAX_ROWS": "3"},
        "data.csv has up to 4 data rows (counted 5 lines, header included); the limit is 3 rows. "
        "Upload a sample of the rows, or raise HPDASH_MAX_ROWS.",
    ),
    (
        "over_row_limit_cr_only",
        b"a,b\r1,2\r3,4\r5,6\r7,8",
        "data.csv",
        None,
        {"HPDASH_MAX_ROWS": "3"},
        "has up to 4 data rows (counted 5 lines",
    ),
    (
        "over_cell_limit_csv",
        b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n",
        "data.csv",
        None,
        {"HPDASH_MAX_CELLS": "8"},
        "has up to 3 data rows (counted 4 lines, header included) x 3 "
        "columns = 9 cells; the limit is 8 cells. Upload a sample of the rows or fewer columns, or "
        "raise HPDASH_MAX_CELLS.",
    ),
    (
        "over_row_limit_parquet",
        parquet_bytes(pd.DataFrame({"a": range(5), "b": range(5)})),
        "data.parquet",
        None,
        {"HPDASH_MAX_ROWS": "4"},
        "data.parquet has 5 data rows; the limit is 4 rows. Upload a sample of the rows, or raise HPDASH_MAX_ROWS.",
    ),
    (
        "over_cell_limit_parquet",
        parquet_bytes(pd.DataFrame({"a": range(5), "b": range(5)})),
        "data.parquet",
        None,
        {"HPDASH_MAX_CELLS": "9"},
        "data.parquet has 5 rows x 2 columns = 10 cells; the limit is 9 cells.",
    ),
    (
        "bad_row_limit_variable",
        b"a,b\n1,2\n3,4\n",
        "data.csv",
        None,
        {"HPDASH_MAX_ROWS": "lots"},
        "HPDASH_MAX_ROWS must be a whole number, got 'lots'",
    ),
    ("header_only", b"a,b,c\n", "data.csv", None, {}, "has a header but no data rows"),
    ("one_row", b"a,b\n1,2\n", "data.csv", None, {}, "has only 1 data row"),
    ("single_column", b"a\n1\n2\n3\n", "data.csv", None, {}, "has only one column ('a')"),
    (
        "over_size_limit",
        b"a,b\n" + b"123456,654321\n" * 200,
        "big.csv",
        None,
        {"HPDASH_MAX_UPLOAD_MB": "0.001"},
        "is 2.7 KB, over the upload limit of 1.0 KB",
    ),
    (
        "target_not_found",
        BALANCED.encode(),
        "data.csv",
        "yy",
        {},
        "Target column 'yy' not found. Did you mean 'y'? Available columns: 'x1', 'x2', 'y'",
    ),
    (
        "target_all_missing",
        table(12, lambda i: "").encode(),
        "data.csv",
        "y",
        {},
        "Target column 'y' is missing on every row",
    ),
    (
        "target_inf",
        table(12, lambda i: "inf" if i == 3 else i * 1.5).encode(),
        "data.csv",
        "y",
        {},
        "contains 1 infinite value(s)",
    ),
    ("single_class", table(12, lambda i: "only").encode(), "data.csv", "y", {}, "has a single class ('only')"),
    (
        "rare_class",
        table(22, lambda i: "c" if i < 2 else "ab"[i % 2]).encode(),
        "data.csv",
        "y",
        {},
        "class 'c' (2 rows) has fewer rows than the 5 CV folds",
    ),
    (
        "too_few_rows_for_folds",
        table(6, lambda i: i * 1.37).encode(),
        "data.csv",
        "y",
        {},
        "too few for 5-fold cross-validation",
    ),
    (
        "no_usable_feature",
        ("id,const,y\n" + "".join(f"{i},same,{'ab'[i % 2]}\n" for i in range(1, 13))).encode(),
        "data.csv",
        "y",
        {},
        "No usable feature column left besides the target 'y'. Dropped: 'id' (ID-like",
    ),
]


def assert_nothing_written(data_dir: Path) -> None:
    """No dataset file (not even a temp file) and no catalogue row."""
    assert list(config.datasets_dir().iterdir()) == []
    assert Catalogue().list_datasets() == []


def test_at_least_22_malformed_tables() -> None:
    """The brief asks for at least 22 distinct malformed tables."""
    assert len({case[0] for case in MALFORMED}) == len(MALFORMED) >= 22


@pytest.mark.parametrize(
    ("data", "filename", "target", "env", "expected"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_table_is_rejected_and_nothing_stored(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: bytes,
    filename: str,
    target: str | None,
    env: dict[str, str],
    expected: str,
) -> None:
    """Each malformed table raises DatasetError naming the problem; nothing is written."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DatasetError, match=re.escape(expected)):
        store_dataset(data, filename, target=target)
    assert_nothing_written(data_dir)


def test_size_message_gives_both_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size limit is the explicit max_bytes when given, and both sizes are in the message."""
    with pytest.raises(DatasetError, match=r"is 20 bytes, over the upload limit of 10 bytes"):
        read_table(b"a,b\n1,2\n3,4\n5,6\n7,8\n", "x.csv", max_bytes=10)
    monkeypatch.setenv("HPDASH_MAX_UPLOAD_MB", "1")
    assert config.max_upload_bytes() == 1024 * 1024
    assert read_table(b"a,b\n1,2\n3,4\n", "x.csv").shape == (2, 2)


def test_regression_on_text_target_is_rejected() -> None:
    """Forcing regression on a non-numeric target says why and what to do."""
    df = pd.read_csv(io.StringIO(BALANCED))
    with pytest.raises(DatasetError, match="is not numeric .* Use task 'classification'"):
        prepare(df, "y", task="regression")


def test_invalid_task_and_folds_are_spec_errors() -> None:
    """An unknown task name or bad fold count is a SpecError, not a DatasetError."""
    df = pd.read_csv(io.StringIO(BALANCED))
    with pytest.raises(SpecError, match="Unknown task 'clasification'"):
        prepare(df, "y", task="clasification")
    with pytest.raises(SpecError, match="Unknown task"):
        profile_table(df, "y", task="multiclass")
    with pytest.raises(SpecError, match="CV folds must be an integer of at least 2"):
        prepare(df, "y", folds=1)


def test_continuous_target_forced_to_classification_gets_a_hint() -> None:
    """Many distinct numeric values as classes: the message suggests regression."""
    df = pd.DataFrame({"x": np.sin(np.arange(40.0)), "y": np.linspace(0, 1, 40)})
    with pytest.raises(DatasetError, match="use task 'regression'"):
        prepare(df, "y", task="classification")


def test_rare_class_respects_folds() -> None:
    """A class with 3 rows is fine for 3 folds and rejected for 4."""
    df = pd.DataFrame({"x": np.sin(np.arange(23.0)), "y": ["a"] * 10 + ["b"] * 10 + ["c"] * 3})
    assert prepare(df, "y", folds=3).task == "classification"
    with pytest.raises(DatasetError, match="fewer rows than the 4 CV folds"):
        prepare(df, "y", folds=4)


# -- reading: encodings, delimiters, formats ------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])
def test_encodings(encoding: str) -> None:
    """UTF-8, UTF-8 with BOM, Latin-1/Windows-1252 and UTF-16 (with BOM) all read é right."""
    text = "name,city,value\nbob,café,1\nana,Zürich,2\nzoé,Besançon,3\n"
    df = read_table(text.encode(encoding), "towns.csv")
    assert list(df.columns) == ["name", "city", "value"]  # no BOM left in the first name
    assert df["city"].tolist() == ["café", "Zürich", "Besançon"]
    assert df["name"].iloc[2] == "zoé"
    assert df["value"].tolist() == [1, 2, 3]


def test_latin1_is_detected_as_a_fallback() -> None:
    """Bytes that are not UTF-8 fall back to a single-byte encoding."""
    df = read_table("a;b\ncrème;1\nbrûlée;2\n".encode("latin-1"), "x.csv")
    assert df.attrs["source"]["encoding"] in {"cp1252", "latin-1"}
    assert df["a"].tolist() == ["crème", "brûlée"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters(delimiter: str) -> None:
    """Comma, semicolon, tab and pipe are sniffed; quoted values keep their delimiters."""
    rows = [["id", "label", "score"], ["1", "x", "0.5"], ["2", "y", "1.5"], ["3", "z", "2.5"]]
    text = "\n".join(delimiter.join(r) for r in rows) + "\n"
    df = read_table(text.encode(), "t.txt")
    assert df.attrs["source"]["delimiter"] == delimiter
    assert list(df.columns) == ["id", "label", "score"]
    assert df["score"].tolist() == [0.5, 1.5, 2.5]


def test_quoted_commas_and_spaces_after_delimiters() -> None:
    """Quoted delimiters stay in the value; spaces after delimiters are not part of names."""
    df = read_table(b'a, b, c\n"x, y", 1, 2\nz, 3, 4\n', "q.csv")
    assert list(df.columns) == ["a", "b", "c"]
    assert df["a"].tolist() == ["x, y", "z"]
    assert df["b"].tolist() == [1, 3]


def test_semicolon_csv_with_decimal_commas() -> None:
    """European CSVs (semicolon + decimal comma) give float columns."""
    df = read_table(b"weight;height;name\n1,5;170;a\n2,25;180;b\n3;175;c\n", "eu.csv")
    assert df["weight"].tolist() == [1.5, 2.25, 3.0]
    assert df["name"].tolist() == ["a", "b", "c"]


def test_file_without_extension_is_sniffed() -> None:
    """No extension: the content decides (CSV here)."""
    assert read_table(b"a,b\n1,2\n3,4\n", "export").shape == (2, 2)


def test_parquet_roundtrip() -> None:
    """Parquet keeps types; magic bytes win over a wrong .csv extension."""
    df = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "f": [0.5, np.nan, 2.5],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "d": pd.to_datetime(["2021-01-01", "2021-06-15", "2022-03-04"]),
            "k": pd.Categorical(["u", "v", "u"]),
        }
    )
    data = parquet_bytes(df)
    for name in ("t.parquet", "t.pq", "misnamed.csv"):
        back = read_table(data, name)
        assert back.attrs["source"]["format"] == "parquet"
        assert list(back.columns) == list(df.columns)
        assert back["n"].tolist() == [1, 2, 3]
        assert back["f"].isna().tolist() == [False, True, False]
        assert back["s"].iloc[0] == "a" and pd.isna(back["s"].iloc[1])
        assert back["b"].tolist() == [True, False, True]
        assert pd.api.types.is_datetime64_any_dtype(back["d"])
        assert back["d"].dt.year.tolist() == [2021, 2021, 2022]
        assert isinstance(back["k"].dtype, pd.CategoricalDtype)


def test_read_from_path_and_bundled_sample_csv() -> None:
    """read_table(path.read_bytes(), path.name) works on the bundled sample CSV."""
    path = REPO / "data" / "samples" / "iris.csv"
    df = read_table(path.read_bytes(), path.name)
    assert df.shape == (150, 5)
    prepared = prepare(df, "species")
    assert prepared.task == "classification"
    assert set(prepared.y) == {"setosa", "versicolor", "virginica"}


# -- task inference -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a", "c"], "classification"),
        ([True, False, True, True], "classification"),
        ([0, 1, 1, 0, None, 1], "classification"),
        ([0.0, 1.0, 2.0, 1.0, 0.0, 2.0], "classification"),
        (list(range(5)) * 20, "classification"),
        ([1.5, 2.25, 3.0, 4.75], "regression"),
        (list(range(100)), "regression"),
        (list(range(25)) * 4, "regression"),
        ([1, 2, 3, 4], "regression"),
    ],
)
def test_infer_task(values: list[object], expected: str) -> None:
    """Non-numeric/bool and few distinct integers are classes; the rest is regression."""
    assert infer_task(pd.Series(values, name="y")) == expected


def test_infer_task_needs_values() -> None:
    """An all-missing target cannot be inferred."""
    with pytest.raises(DatasetError, match="no values"):
        infer_task(pd.Series([None, None], name="y", dtype=float))


def test_task_override() -> None:
    """task= overrides inference in both directions."""
    df = pd.DataFrame({"x": np.sin(np.arange(60.0)), "y": [0, 1, 2] * 20})
    assert prepare(df, "y").task == "classification"
    reg = prepare(df, "y", task="regression")
    assert reg.task == "regression" and reg.y.dtype == np.float64
    assert reg.profile.target_distribution.columns.tolist() == ["bin_left", "bin_right", "count"]
    df2 = pd.DataFrame({"x": np.sin(np.arange(60.0)), "y": np.arange(60) % 4 + 0.0})
    assert infer_task(df2["y"]) == "classification"
    cls = prepare(df2, "y", task="classification")
    assert cls.task == "classification"
    assert cls.y.dtype == np.int64  # integer-valued floats become integer labels


# -- roles, drop reasons and preparation ----------------------------------------------------
def mixed_frame(n: int = 40) -> pd.DataFrame:
    """A table with one column of every role."""
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda"]
    return pd.DataFrame(
        {
            "row_number": np.arange(1, n + 1),
            "customer_id": rng.permutation(np.arange(10_000, 10_000 + 5 * n, 5)),
            "code": [f"K{i:04d}X" for i in range(n)],
            "constant": ["same"] * n,
            "empty": [np.nan] * n,
            "comment": [f"{words[i % 8]} {words[(i * 3) % 8]} was noted on visit number {i}" for i in range(n)],
            "signup": pd.date_range("2020-01-01", periods=n, freq="7D").strftime("%Y-%m-%d"),
            "seen_at": pd.date_range("2021-03-01 08:30", periods=n, freq="5h").strftime("%Y-%m-%dT%H:%M:%S"),
            "visit": pd.date_range("2022-01-10", periods=n, freq="D").strftime("%d/%m/%Y"),
            "stamp": pd.date_range("2019-05-01", periods=n, freq="D"),
            "color": [["red", "green", "blue"][i % 3] if i % 10 else None for i in range(n)],
            "flag": [bool(i % 2) for i in range(n)],
            "height": rng.normal(170, 10, n).round(1),
            "count": rng.integers(0, 5, n),
            "label": ["yes", "no"] * (n // 2),
        }
    )


def test_roles_and_drop_reasons() -> None:
    """Every column gets the right role, and dropped columns say why."""
    profile = profile_table(mixed_frame(), target="label")
    cols = {c.name: c for c in profile.columns}
    expected_roles = {
        "row_number": "dropped",
        "customer_id": "dropped",
        "code": "dropped",
        "constant": "dropped",
        "empty": "dropped",
        "comment": "dropped",
        "signup": "datetime",
        "seen_at": "datetime",
        "visit": "datetime",
        "stamp": "datetime",
        "color": "categorical",
        "flag": "categorical",
        "height": "numeric",
        "count": "numeric",
        "label": "target",
    }
    assert {name: c.role for name, c in cols.items()} == expected_roles
    reasons = {name: c.reason for name, c in cols.items() if c.role == "dropped"}
    assert reasons["row_number"].startswith("ID-like")
    assert reasons["customer_id"].startswith("ID-like")
    assert reasons["code"].startswith("ID-like")
    assert reasons["constant"].startswith("constant") and "'same'" in reasons["constant"]
    assert reasons["empty"] == "all missing"
    assert reasons["comment"].startswith("free text")
    assert all(c.reason is None for c in profile.columns if c.role != "dropped")
    assert cols["color"].missing_share == pytest.approx(0.1)
    assert cols["color"].n_unique == 3
    assert cols["empty"].missing_share == 1.0
    assert len(cols["height"].examples) == 3


def test_columns_frame() -> None:
    """columns_frame has one row per column with the documented fields."""
    profile = profile_table(mixed_frame(), target="label")
    frame = profile.columns_frame()
    assert frame.columns.tolist() == ["name", "dtype", "role", "reason", "missing_share", "n_unique", "examples"]
    assert len(frame) == profile.n_cols == 15
    assert frame.set_index("name").loc["constant", "examples"] == "same"


def test_prepare_expands_datetimes_and_drops_columns() -> None:
    """X holds only features; dates become year/month/day/dayofweek (+hour when present)."""
    df = mixed_frame()
    prepared = prepare(df, "label")
    assert isinstance(prepared, PreparedData)
    X = prepared.X
    for dropped in ("row_number", "customer_id", "code", "constant", "empty", "comment", "label"):
        assert dropped not in X.columns
    assert ["signup_year", "signup_month", "signup_day", "signup_dayofweek"] == [
        c for c in X.columns if c.startswith("signup_")
    ]
    assert "signup_hour" not in X.columns and "stamp_hour" not in X.columns
    assert "seen_at_hour" in X.columns
    assert X.loc[0, ["signup_year", "signup_month", "signup_day", "signup_dayofweek"]].tolist() == [
        2020,
        1,
        1,
        2,  # 2020-01-01 was a Wednesday
    ]
    assert X.loc[1, "seen_at_hour"] == 13  # 08:30 + 5 h
    assert X.loc[0, ["visit_year", "visit_month", "visit_day"]].tolist() == [2022, 1, 10]  # day first
    assert X.loc[0, "stamp_dayofweek"] == 2  # 2019-05-01
    assert prepared.categorical == ["color", "flag"]
    assert set(prepared.numeric) == set(X.columns) - {"color", "flag"}
    assert all(X[c].dtype == np.float64 for c in prepared.numeric)
    assert X["color"].dtype == object and X["color"].isna().sum() == 4
    assert X["flag"].tolist()[:2] == ["False", "True"]


def test_missing_target_rows_are_dropped_and_counted() -> None:
    """Rows without a target are dropped (not rejected) and counted in the profile."""
    df = pd.DataFrame({"x": np.sin(np.arange(30.0)), "y": [np.nan if i % 6 == 0 else "ab"[i % 2] for i in range(30)]})
    prepared = prepare(df, "y")
    assert prepared.profile.n_target_missing_dropped == 5
    assert prepared.profile.n_rows == 30
    assert len(prepared.X) == len(prepared.y) == 25
    assert prepared.y.notna().all()
    assert prepared.profile.target_distribution["count"].sum() == 25


def test_infinite_features_become_missing() -> None:
    """inf in a feature is treated as missing (imputed later), not as an error."""
    df = pd.DataFrame({"x": [1.0, np.inf, 3.0, -np.inf] * 5, "z": range(20), "y": [0, 1] * 10})
    X = prepare(df, "y").X
    assert X["x"].isna().sum() == 10 and np.isfinite(X["x"].dropna()).all()


def test_target_distribution_frames() -> None:
    """Classification: [class, count]; regression: a contiguous histogram."""
    cls = profile_table(pd.DataFrame({"x": range(9), "y": list("aabbbcccc"[::-1])}), "y")
    dist = cls.target_distribution
    assert dist.columns.tolist() == ["class", "count"]
    assert dist.to_dict("list") == {"class": ["c", "b", "a"], "count": [4, 3, 2]}

    rng = np.random.default_rng(1)
    values = rng.normal(size=500)
    reg = profile_table(pd.DataFrame({"x": range(500), "y": values}), "y")
    assert reg.task == "regression"
    hist = reg.target_distribution
    assert hist.columns.tolist() == ["bin_left", "bin_right", "count"]
    assert hist["count"].sum() == 500
    assert 2 <= len(hist) <= 30
    assert np.allclose(hist["bin_left"].to_numpy()[1:], hist["bin_right"].to_numpy()[:-1])
    assert hist["bin_left"].iloc[0] == pytest.approx(values.min())
    assert hist["bin_right"].iloc[-1] == pytest.approx(values.max())

    none = profile_table(pd.DataFrame({"x": range(3), "y": range(3)}))
    assert none.task is None and none.target is None and none.target_distribution.empty


def test_prepared_data_fits_the_protocol_pipeline() -> None:
    """numeric/categorical lists plug into the documented preprocessing Pipeline."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prepared = prepare(mixed_frame(60), "label")
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), prepared.numeric),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                prepared.categorical,
            ),
        ]
    )
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=500))])
    scores = cross_val_score(pipe, prepared.X, prepared.y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert len(scores) == 5 and np.isfinite(scores).all()


# -- samples --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_samples(key: str) -> None:
    """Every sample loads with a target column and prepares cleanly."""
    df = load_sample(key)
    assert "target" in df.columns and df.shape[1] >= 5
    assert SAMPLES[key]
    prepared = prepare(df, "target")
    expected_task = "regression" if key == "sklearn:diabetes" else "classification"
    assert prepared.task == expected_task
    assert isinstance(prepared.profile, DatasetProfile)
    if expected_task == "classification":
        assert all(isinstance(v, str) for v in df["target"])
        assert prepared.profile.target_distribution.columns.tolist() == ["class", "count"]
    else:
        assert df["target"].dtype == np.float64


def test_sample_names_and_class_labels() -> None:
    """Short and prefixed names both work; class names are the dataset's own."""
    iris = load_sample("iris")
    assert iris.equals(load_sample("sklearn:iris"))
    assert sorted(iris["target"].unique()) == ["setosa", "versicolor", "virginica"]
    assert sorted(load_sample("breast_cancer")["target"].unique()) == ["benign", "malignant"]
    assert sorted(load_sample("digits")["target"].unique()) == [str(d) for d in range(10)]
    iris["target"] = "changed"  # a copy: the cache is not touched
    assert load_sample("iris")["target"].iloc[0] == "setosa"
    with pytest.raises(DatasetError, match="Unknown sample dataset 'titanic'. Available: sklearn:iris"):
        load_sample("titanic")


def test_parquet_types_become_features() -> None:
    """Decimals are numbers, dates are dates, zoned timestamps keep their wall-clock hour."""
    import datetime as dtm
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 12
    t = pa.table(
        {
            "price": pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("2.25")] * 4, pa.decimal128(10, 2)),
            "day": pa.array([dtm.date(2020, 1, (i * 5) % 28 + 1) for i in range(n)], pa.date32()),
            "at": pa.array(
                [dtm.datetime(2020, 1, 1, (i * 5) % 24) for i in range(n)], pa.timestamp("us", tz="Europe/Paris")
            ),
            "kind": pa.array(["a", "b", "c"] * 4).dictionary_encode(),
            "y": pa.array(["p", "q"] * 6),
        }
    )
    buf = io.BytesIO()
    pq.write_table(t, buf)
    df = read_table(buf.getvalue(), "types.parquet")
    prepared = prepare(df, "y", folds=3)
    roles = {c.name: c.role for c in prepared.profile.columns}
    assert roles == {"price": "numeric", "day": "datetime", "at": "datetime", "kind": "categorical", "y": "target"}
    X = prepared.X
    assert X["price"].iloc[0] == 1.5 and np.isnan(X["price"].iloc[1]) and X["price"].iloc[2] == 2.25
    assert X.loc[2, ["day_year", "day_month", "day_day"]].tolist() == [2020, 1, 11]
    assert X.loc[1, "at_hour"] == 6  # stored as 05:00 UTC: 06:00 on the Paris wall clock
    assert prepared.categorical == ["kind"]


def test_crlf_line_endings_and_non_string_column_names() -> None:
    """Windows line endings read cleanly; frames built in code may have integer column names."""
    df = read_table(b"a,b,y\r\n1,2.5,u\r\n3,4.5,v\r\n", "win.csv")
    assert list(df.columns) == ["a", "b", "y"] and df["y"].tolist() == ["u", "v"]
    frame = pd.DataFrame({0: np.sin(np.arange(20.0)), 1: ["u", "v"] * 10, "y": [0, 1] * 10})
    prepared = prepare(frame, "y")
    assert list(prepared.X.columns) == ["0", "1"] and prepared.categorical == ["1"]


def test_duplicate_names_in_a_frame_are_rejected() -> None:
    """A frame built in code with repeated names gets the same message as a file."""
    frame = pd.DataFrame([[1, 2, 3], [4, 5, 6]], columns=["a", "a", "y"])
    with pytest.raises(DatasetError, match="duplicate column names: 'a'"):
        profile_table(frame, "y")


def test_store_validates_with_the_given_folds(data_dir: Path) -> None:
    """store_dataset checks the target with the study's task and folds."""
    data = table(13, lambda i: "c" if i < 3 else "ab"[i % 2]).encode()
    with pytest.raises(DatasetError, match="fewer rows than the 5 CV folds"):
        store_dataset(data, "d.csv", target="y")
    assert_nothing_written(data_dir)
    assert store_dataset(data, "d.csv", target="y", folds=3).n_rows == 13


# -- row, cell and decoded-size limits ----------------------------------------------------------
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
from make_uploads import many_rows_parquet, repeated_text_parquet, rows_csv  # noqa: E402

from hpdash import datasets  # noqa: E402


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (datasets.max_rows(), datasets.max_cells()) == (1_000_000, 50_000_000)
    assert datasets.max_decoded_bytes() == datasets.BYTES_PER_CELL * 50_000_000
    monkeypatch.setenv("HPDASH_MAX_ROWS", "2500")
    monkeypatch.setenv("HPDASH_MAX_CELLS", " 7000 ")
    assert (datasets.max_rows(), datasets.max_cells()) == (2500, 7000)
    monkeypatch.setenv("HPDASH_MAX_CELLS", "0")
    with pytest.raises(DatasetError, match="HPDASH_MAX_CELLS must be at least 1, got 0"):
        datasets.max_cells()
    monkeypatch.setenv("HPDASH_MAX_COLUMNS", "2k")
    with pytest.raises(DatasetError, match="HPDASH_MAX_COLUMNS must be a whole number, got '2k'"):
        datasets.max_columns()


@pytest.mark.parametrize(
    "data, lines",
    [(b"a\nb\n", 2), (b"a\nb", 2), (b"a\r\nb\r\n", 2), (b"a\rb\r", 2), (b"a\r\n\rb", 3), (b"a", 1), (b"\n\n", 2)],
)
def test_line_count_is_taken_on_the_bytes(data: bytes, lines: int) -> None:
    assert datasets._count_lines(data) == lines


def test_tables_at_the_limits_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_ROWS", "4")
    assert read_table(b"a,b\n1,2\n3,4\n5,6\n7,8\n", "x.csv").shape == (4, 2)
    four = parquet_bytes(pd.DataFrame({"a": range(4), "b": range(4)}))
    assert read_table(four, "x.parquet").shape == (4, 2)
    monkeypatch.setenv("HPDASH_MAX_CELLS", "8")
    assert read_table(b"a,b\r\n1,2\r\n3,4\r\n5,6\r\n7,8\r\n", "x.csv").shape == (4, 2)


def test_quoted_line_breaks_count_against_the_line_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The count before parsing is of lines (an upper bound): the message says so."""
    data = b'a,b\n1,"two\nlines"\n3,4\n'
    assert read_table(data, "q.csv").shape == (2, 2)
    monkeypatch.setenv("HPDASH_MAX_ROWS", "2")
    with pytest.raises(DatasetError, match=r"has up to 3 data rows \(counted 4 lines, header included\)"):
        read_table(data, "q.csv")


def test_parquet_text_is_counted_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeated long string costs its length on every row, unless the column is stored as a
    categorical (Arrow dictionary type), which loads as categories plus codes."""
    monkeypatch.setenv("HPDASH_MAX_CELLS", "100000")  # a 1.6 MB decoded budget
    with pytest.raises(DatasetError) as err:
        read_table(repeated_text_parquet(200, 20_000), "bomb.parquet")
    assert "bomb.parquet would take more than 3.8 MB decoded (column 'text' holds long text" in str(err.value)
    assert "more than the 1.5 MB a table may take" in str(err.value) and "HPDASH_MAX_CELLS" in str(err.value)
    label = "x" * 20_000
    categorical = pd.DataFrame({"text": pd.Categorical([label] * 200), "label": ["yes", "no"] * 100})
    back = read_table(parquet_bytes(categorical), "categories.parquet")
    assert back.shape == (200, 2) and back["text"].iloc[0] == label
    plain = parquet_bytes(categorical.astype({"text": str}))
    with pytest.raises(DatasetError, match="would take more than 3.8 MB decoded"):
        read_table(plain, "plain.parquet")


def test_stored_datasets_are_loaded_without_the_upload_limits(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = store_dataset(BALANCED.encode(), "balanced.csv", target="y")
    monkeypatch.setenv("HPDASH_MAX_ROWS", "5")
    frame, sha = datasets.load_dataset(stored.sha256)
    assert frame.shape == (20, 3) and sha == stored.sha256
    with pytest.raises(DatasetError, match="the limit is 5 rows"):
        store_dataset(BALANCED.encode(), "balanced.csv", target="y")


#: Peak-memory helpers for a child process (Linux /proc; tests that use them skip elsewhere).
PEAK_HELPERS = '''
def peak_mb():
    """Peak resident memory of this process in MB: VmHWM, which a write of "5" to
    /proc/self/clear_refs resets (getrusage's ru_maxrss also counts the parent's memory)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
'''

_MEASURE = (
    PEAK_HELPERS
    + """
import json, sys
from pathlib import Path
import pyarrow.compute, pyarrow.parquet  # imported before the baseline: not part of the read
from hpdash import datasets
from hpdash.errors import DatasetError
path = Path(sys.argv[1])
data = path.read_bytes()
before = reset_peak()
try:
    frame = datasets.read_table(data, path.name)
    message, shape = None, list(frame.shape)
except DatasetError as exc:
    message, shape = str(exc), None
print(json.dumps({"message": message, "shape": shape, "mb": peak_mb() - before}))
"""
)


def _measure(path: Path, **env: str) -> dict:
    """read_table on ``path`` in a fresh process: the message (or shape) and the growth of the
    peak resident memory during the call, in MB."""
    import os

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak memory is read from Linux's /proc/self/status")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("HPDASH_MAX_")}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**run_env, **env},
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_csv_over_the_row_limit_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """200,001 rows x 21 columns (18 MB) against HPDASH_MAX_ROWS=200000: refused from the line
    count with next to no memory, where reading it (limit raised) takes over 50 MB."""
    path = tmp_path / "rows.csv"
    path.write_bytes(rows_csv(200_001, 20))
    refused = _measure(path, HPDASH_MAX_ROWS="200000")
    assert refused["message"] and "counted 200,002 lines" in refused["message"], refused
    loaded = _measure(path, HPDASH_MAX_ROWS="300000")
    assert loaded["shape"] == [200_001, 21], loaded
    assert refused["mb"] < 10 and loaded["mb"] > 5 * max(refused["mb"], 10), (refused, loaded)


def test_parquet_declaring_many_rows_is_refused_from_its_footer(tmp_path: Path) -> None:
    """5,000,000 rows x 10 int64 columns in a few hundred KB: loading needs at least 381 MB;
    the refusal, from the footer, takes a small fraction of that."""
    path = tmp_path / "rows.parquet"
    path.write_bytes(many_rows_parquet(5_000_000, 10))
    assert path.stat().st_size < 1024 * 1024
    refused = _measure(path)
    assert refused["message"] and "has 5,000,000 data rows; the limit is 1,000,000" in refused["message"]
    would_load = 5_000_000 * 10 * 8 / 2**20
    assert refused["mb"] < 20 and refused["mb"] * 10 < would_load, refused


def test_parquet_text_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    """One 1 MB string on 1,000 rows, dictionary-encoded: a 50 KB file that reads back as
    1,000 MB of text. Refused from the dictionary (held once) with little memory."""
    path = tmp_path / "bomb.parquet"
    path.write_bytes(repeated_text_parquet(1000, 1 << 20))
    assert path.stat().st_size < 1024 * 1024
    refused = _measure(path)
    assert refused["message"] and "would take more than 1000.0 MB decoded" in refused["message"], refused
    assert refused["mb"] < 30, refused


# -- column roles on real-world shapes: row index, high-cardinality text, keep_columns --------
def r_write_csv(frame: pd.DataFrame) -> bytes:
    """``frame`` as R's ``write.csv`` writes it: every value quoted, a first column of row
    names 1..n under an empty header ("")."""
    lines = ['"",' + ",".join(f'"{c}"' for c in frame.columns)]
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        lines.append(
            f'"{i}",' + ",".join("NA" if pd.isna(v) else f'"{v}"' if isinstance(v, str) else str(v) for v in row)
        )
    return ("\n".join(lines) + "\n").encode()


def car_table(n: int = 406) -> pd.DataFrame:
    """A car-efficiency table shaped like the public one: a name that is nearly unique (311
    distinct in 406 rows), missing horsepower, a model-year date, the origin, mpg second."""
    rng = np.random.default_rng(1)
    makes = ["chevrolet", "ford", "plymouth", "amc", "dodge", "toyota", "datsun", "buick", "honda", "vw"]
    names = [f"{makes[i % 311 % 10]} m{i % 311} {['deluxe', 'custom', 'sw', 'gl'][i % 311 % 4]}" for i in range(n)]
    weight = rng.normal(3000, 800, n).round()
    return pd.DataFrame(
        {
            "Name": names,
            "Miles_per_Gallon": (60 - weight / 100 + rng.normal(0, 3, n)).round(1),
            "Cylinders": rng.choice([4, 6, 8], n),
            "Horsepower": np.where(rng.random(n) < 0.02, np.nan, rng.normal(100, 30, n).round()),
            "Weight_in_lbs": weight,
            "Year": [f"19{70 + i % 13}-01-01" for i in range(n)],
            "Origin": rng.choice(["USA", "Europe", "Japan"], n),
        }
    )


def test_r_and_pandas_row_index_columns_are_dropped_with_their_reason(data_dir: Path) -> None:
    """A first column with a blank header holding 1..n (R's write.csv) or 0..n-1 (pandas'
    to_csv with its index, also shuffled) is read, dropped as a row index, and shown as such."""
    cars = car_table()
    for data, first in (
        (r_write_csv(cars), 1),
        (cars.to_csv().encode(), 0),
        (cars.sample(frac=1.0, random_state=0).to_csv().encode(), 0),
    ):
        frame = read_table(data, "cars.csv")
        assert list(frame.columns) == list(cars.columns) and len(frame) == len(cars)
        assert frame.attrs["source"]["row_index"]["first"] == first
        prepared = prepare(frame, "Miles_per_Gallon")
        index = prepared.profile.columns[0]
        assert (index.role, index.in_frame, index.overridable) == ("dropped", False, False)
        assert index.reason.startswith("row index") and f"{first}…{first + len(cars) - 1}" in index.reason
        assert prepared.profile.n_cols == len(cars.columns) + 1 == len(prepared.profile.columns_frame())
        assert set(prepared.X.columns) >= {"Cylinders", "Horsepower", "Weight_in_lbs", "Origin", "Year_year"}
        assert prepared.task == "regression" and len(prepared.X) == len(cars)
    stored = store_dataset(r_write_csv(cars), "cars.csv", target="Miles_per_Gallon")
    assert stored.n_cols == len(cars.columns)
    again, _ = datasets.load_dataset(stored.sha256)
    assert profile_table(again, "Miles_per_Gallon").columns[0].reason.startswith("row index")


def test_other_blank_headers_stay_errors() -> None:
    """Only a blank *first* header over a row index is read; a blank header elsewhere, or a
    blank first header over other values, is refused with the fix."""
    with pytest.raises(DatasetError, match="column 1, 3 of 4 has no name"):
        read_table(b",a,,b\n1,2,3,4\n2,5,6,7\n", "x.csv")
    with pytest.raises(DatasetError, match="column 2 of 3 has no name"):
        read_table(b"a,,b\n1,2,3\n2,5,6\n", "x.csv")
    with pytest.raises(DatasetError) as refused:
        read_table(b",a,b\n3,1,2\n1,3,4\n2,5,6\n9,7,8\n", "x.csv")  # not 1..n: a gap
    assert "column 1 of 3 has no name" in str(refused.value)
    assert "not a row index (0..n-1 or 1..n" in str(refused.value) and "index=False" in str(refused.value)
    with pytest.raises(DatasetError, match="not a row index"):
        read_table(b",a,b\nx,1,2\ny,3,4\n", "x.csv")  # R row names that are text
    with pytest.raises(DatasetError, match="not a row index"):
        read_table(b",a,b\n0,1,2\n,3,4\n2,5,6\n", "x.csv")  # a missing value


def test_parquet_index_named_like_a_column_is_refused_with_a_message() -> None:
    """pandas stores a named index in Parquet; one named like a column is refused (the table
    would have two columns of one name), any other becomes a column."""
    clash = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}, index=pd.Index([7, 8, 9], name="a"))
    buf = io.BytesIO()
    clash.to_parquet(buf)
    with pytest.raises(DatasetError) as refused:
        read_table(buf.getvalue(), "clash.parquet")
    message = str(refused.value)
    assert "stores a row index named 'a' and also a column of that name" in message
    assert "index=False" in message
    named = clash.rename_axis("day")
    buf = io.BytesIO()
    named.to_parquet(buf)
    assert list(read_table(buf.getvalue(), "named.parquet").columns) == ["day", "a", "b"]
    unnamed = pd.DataFrame({"index": [1, 2], "level_0": [3, 4]}, index=pd.Index([5, 6]))
    buf = io.BytesIO()
    unnamed.to_parquet(buf)
    with pytest.raises(DatasetError, match="stores a row index that cannot become a column"):
        read_table(buf.getvalue(), "unnamed.parquet")


def test_a_regression_target_too_large_to_square_is_refused(data_dir: Path) -> None:
    """1e308 is finite, but its square is not: refused before anything runs, with the fix."""
    rows = "".join(f"{i},{i % 3},{1e308 if i % 2 else (i + 1) * 1.5}\n" for i in range(40))
    data = ("a,b,y\n" + rows).encode()
    with pytest.raises(DatasetError) as refused:
        store_dataset(data, "huge.csv", target="y")
    message = str(refused.value)
    assert "Target column 'y' has 20 value(s) larger in magnitude than 1e+150 (up to 1e+308)" in message
    assert "Rescale the target" in message
    with pytest.raises(DatasetError, match=r"has 40 value\(s\) larger in magnitude than 1e\+150"):
        rows = "".join(f"{i},{i % 3},{1e308 if i % 2 else -(i + 1) * 1e306}\n" for i in range(40))
        prepare(read_table(("a,b,y\n" + rows).encode(), "huge.csv"), "y", task="regression")
    assert_nothing_written(data_dir)
    fine = ("a,b,y\n" + "".join(f"{i},{i % 3},{i * 1e140}\n" for i in range(40))).encode()
    assert prepare(read_table(fine, "fine.csv"), "y").task == "regression"
    # a class label is no magnitude: 1e308 as one of two classes is fine
    labels = ("a,b,y\n" + "".join(f"{i},{i % 3},{1e308 if i % 2 else -1e308}\n" for i in range(40))).encode()
    two = prepare(read_table(labels, "labels.csv"), "y")
    assert two.task == "classification" and sorted(two.y.unique()) == [-1e308, 1e308]


def test_high_cardinality_text_is_dropped_and_can_be_kept() -> None:
    """A name with 311 distinct values in 406 rows is dropped with the reason (not 311 one-hot
    columns); keep_columns keeps it as a categorical feature; the flags say which columns may
    be kept and which were."""
    cars = car_table()
    profile = profile_table(cars, "Miles_per_Gallon")
    name = next(c for c in profile.columns if c.name == "Name")
    assert name.role == "dropped" and name.overridable and not name.kept
    assert name.reason == (
        "high-cardinality text (311 distinct values in 406 rows: one-hot encoding would "
        "make 311 columns, most of them for one or two rows)"
    )
    assert [c.name for c in profile.overridable()] == ["Name"] and profile.kept() == []
    origin = next(c for c in profile.columns if c.name == "Origin")
    assert origin.role == "categorical" and not origin.overridable
    assert "Name" not in prepare(cars, "Miles_per_Gallon").X.columns

    kept = prepare(cars, "Miles_per_Gallon", keep_columns=["Name"])
    name = next(c for c in kept.profile.columns if c.name == "Name")
    assert (name.role, name.reason, name.kept, name.overridable) == ("categorical", None, True, True)
    assert name.default_reason.startswith("high-cardinality text")
    assert "Name" in kept.categorical and kept.X["Name"].nunique() == 311
    flags = kept.profile.columns_frame(flags=True).set_index("name")
    assert flags.loc["Name", "kept"] and flags.loc["Name", "overridable"] and not flags.loc["Origin", "kept"]

    # an ID-like integer column kept stays a number; a kept column that is a feature anyway: no-op
    ids = cars.assign(car_id=np.arange(1000, 1000 + len(cars)))
    both = prepare(ids, "Miles_per_Gallon", keep_columns=["car_id", "Origin"])
    assert "car_id" in both.numeric and "Origin" in both.categorical
    # a category with many rows per value is no name: kept by default
    regions = cars.assign(Dealer=[f"dealer {i % 150}" for i in range(len(cars))])
    assert (
        next(c for c in profile_table(regions, "Miles_per_Gallon").columns if c.name == "Dealer").role == "categorical"
    )


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (["Nmae"], "'keep_columns' names 1 column(s) the table does not have: 'Nmae' (did you mean 'Name'?)"),
        (["Miles_per_Gallon"], "'keep_columns' names the target column 'Miles_per_Gallon'"),
        (["same"], "'keep_columns' names column(s) that hold nothing a model can learn from: 'same' (constant"),
    ],
)
def test_keep_columns_that_cannot_be_kept_are_spec_errors(keep: list[str], message: str) -> None:
    cars = car_table().assign(same="x")
    with pytest.raises(SpecError) as refused:
        prepare(cars, "Miles_per_Gallon", keep_columns=keep)
    assert message in str(refused.value)


def test_no_usable_feature_suggests_keep_columns() -> None:
    frame = pd.DataFrame({"comment": [f"note {i} about the visit" for i in range(40)], "y": ["a", "b"] * 20})
    with pytest.raises(DatasetError, match="or keep one of 'comment' with the spec's keep_columns"):
        prepare(frame, "y")
    assert prepare(frame, "y", keep_columns=["comment"]).categorical == ["comment"]


# -- the target guess -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # the bundled samples: their target is called target
        (list(load_sample("iris").columns), "target"),
        (list(load_sample("diabetes").columns), "target"),
        (list(load_sample("breast_cancer").columns), "target"),
        # conventional public tables
        (
            [
                "Name",
                "Miles_per_Gallon",
                "Cylinders",
                "Displacement",
                "Horsepower",
                "Weight_in_lbs",
                "Acceleration",
                "Year",
                "Origin",
            ],
            "Miles_per_Gallon",
        ),
        (
            [
                "mpg",
                "cylinders",
                "displacement",
                "horsepower",
                "weight",
                "acceleration",
                "model year",
                "origin",
                "car name",
            ],
            "mpg",
        ),
        (["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"], "price"),
        (
            [
                "PassengerId",
                "Survived",
                "Pclass",
                "Name",
                "Sex",
                "Age",
                "SibSp",
                "Parch",
                "Ticket",
                "Fare",
                "Cabin",
                "Embarked",
            ],
            "Survived",
        ),
        (
            ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"],
            "species",
        ),
        (
            [
                "longitude",
                "latitude",
                "housing_median_age",
                "total_rooms",
                "population",
                "median_income",
                "median_house_value",
                "ocean_proximity",
            ],
            "median_house_value",
        ),
        (["id", "diagnosis", "radius_mean", "texture_mean"], "diagnosis"),
        (["age", "job", "marital", "education", "balance", "y"], "y"),  # bank marketing: y, no x
        (["Date", "Location", "MinTemp", "MaxTemp", "Rainfall", "RainToday", "RainTomorrow"], "RainTomorrow"),
        (["date", "precipitation", "temp_max", "temp_min", "wind", "weather"], "weather"),
        (["Pregnancies", "Glucose", "BMI", "Age", "Outcome"], "Outcome"),
        (["fixed acidity", "volatile acidity", "alcohol", "quality", "colour"], "quality"),
        (["a", "Species", "b"], "Species"),
        (["a", "b"], "b"),
        (["x", "y"], "y"),  # a coordinate pair: y only as the last column
        ([], None),
    ],
)
def test_target_guess_on_realistic_column_lists(columns: list[str], expected: str | None) -> None:
    from hpdash import views

    assert datasets.guess_target(columns) == expected
    assert views.default_target(columns) == expected


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"x": [1.0, 2.0, 3.0, 4.0], "same": ["k"] * 4, "blank": [None] * 4},
            "only 'x' varies, and a study needs a target and at least one feature column that vary. "
            "Dropped: 'same' (constant (only value: 'k')); 'blank' (all missing).",
        ),
        ({"same": [7] * 4, "blank": [None] * 4}, "no column varies"),
    ],
)
def test_an_upload_without_a_feature_is_rejected_and_stores_nothing(data_dir, columns, message) -> None:
    from hpdash import datasets as ds
    from hpdash.store import Catalogue

    data = pd.DataFrame(columns).to_csv(index=False).encode()
    with pytest.raises(DatasetError) as refused:
        ds.store_dataset(data, "thin.csv")
    assert "thin.csv cannot be used for a study: " + message in str(refused.value)
    assert sorted(p.name for p in data_dir.rglob("*") if p.is_file() and "datasets" in p.parts) == []
    assert Catalogue().list_datasets() == []


def test_an_upload_whose_only_feature_is_a_guess_is_kept(data_dir) -> None:
    """A free-text column may still be kept (keep_columns), so the table is stored."""
    from hpdash import datasets as ds

    frame = pd.DataFrame({"comment": [f"note {i} about the visit" for i in range(40)], "y": ["a", "b"] * 20})
    stored = ds.store_dataset(frame.to_csv(index=False).encode(), "notes.csv")
    assert stored.n_cols == 2 and stored.path.is_file()
