"""Generator for the upload corpus (tests/test_corpus.py).

Small hostile files are written by ``write_small`` once and kept in tests/corpus/uploads/ so
they can be opened by hand; big ones (10,000 columns, a huge cell, over the size limit, over
the row and cell limits, Parquet files that are tiny on disk but huge once decoded) are built
in memory by ``big_cases`` at test time, not committed. The builders below are also used by
tests/test_datasets.py to measure the memory a refusal takes.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent / "uploads"
GOOD = "a,b,label\n" + "".join(f"{i},{i % 7},{'yes' if i % 2 else 'no'}\n" for i in range(40))


def small_cases() -> dict[str, bytes]:
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("data.csv", GOOD)
    return {
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 8,
        "png_renamed.csv": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        "gzip_renamed.csv": gzip.compress(GOOD.encode()),
        "zip_renamed.csv": zbuf.getvalue(),
        "utf16_no_bom.csv": GOOD.encode("utf-16-le"),
        "mixed_encoding.csv": GOOD.encode() + "caf\u00e9,1,yes\n".encode("latin-1") + "na\u00efve,2,no\n".encode("utf-8"),
        "ragged_rows.csv": (GOOD + "1,2,yes,EXTRA,MORE\n").encode(),
        "duplicate_headers.csv": GOOD.replace("a,b,label", "a,a,label", 1).encode(),
        "blank_header.csv": GOOD.replace("a,b,label", "a,,label", 1).encode(),
        "header_only.csv": b"a,b,label\n",
        "one_row.csv": b"a,b,label\n1,2,yes\n",
        "nan_target.csv": ("a,b,label\n" + "".join(f"{i},{i},\n" for i in range(30))).encode(),
        "inf_target.csv": ("a,b,y\n" + "".join(f"{i},{i},{'inf' if i % 3 == 0 else i * 1.5}\n" for i in range(30))).encode(),
        "mixed_target.csv": ("a,b,y\n" + "".join(f"{i},{i},{i * 1.5 if i % 2 else 'abc' + str(i)}\n" for i in range(30))).encode(),
        "single_class.csv": ("a,b,label\n" + "".join(f"{i},{i % 3},yes\n" for i in range(30))).encode(),
        "emoji_rtl_columns.csv": ("\U0001F600 smile,\u05e9\u05dc\u05d5\u05dd,label\n"
                                  + "".join(f"{(i * 7) % 11 * 0.5},{i % 5},{'yes' if i % 2 else 'no'}\n" for i in range(40))).encode(),
        "formula_cells.csv": ("a,cmd,label\n" + "".join(
            f"{i},{['=1+1', '+SUM(A1)', '-2+3', '@cmd', 'ok'][i % 5]},{'yes' if i % 2 else 'no'}\n" for i in range(40))).encode(),
        "no_data_only_newlines.csv": b"\n\n\n\n",
        "whitespace_only.csv": b"   \n  \t \n",
        "html_as_csv.csv": b"<!DOCTYPE html><html><body><table><tr><td>1</td></tr></table></body></html>",
        "pdf_renamed.csv": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "xlsx_renamed.csv": b"PK\x03\x04" + b"\x00" * 26 + b"[Content_Types].xml",
        "parquet_truncated.parquet": b"PAR1" + b"\x00" * 20,
        "csv_named_parquet.parquet": GOOD.encode(),
        "unsupported_extension.xls": GOOD.encode(),
        # R's write.csv: quoted values, row names 1..n under an empty header (usable)
        "r_write_csv.csv": ('"","a","b","label"\n' + "".join(
            f'"{i + 1}",{i},{i % 7},"{"yes" if i % 2 else "no"}"\n' for i in range(40))).encode(),
        # pandas' to_csv with its index: 0..n-1 under an empty header (usable)
        "pandas_index.csv": ("," + GOOD.splitlines()[0] + "\n" + "".join(
            f"{i},{line}\n" for i, line in enumerate(GOOD.splitlines()[1:]))).encode(),
        # a finite regression target whose squares overflow (1e308)
        "huge_regression_target.csv": ("a,b,y\n" + "".join(
            f"{i},{i % 3},{1e308 if i % 4 == 0 else i * 1.5}\n" for i in range(40))).encode(),
    }


def parquet_index_clash() -> bytes:
    """A Parquet file written by pandas with its index, named like one of its columns."""
    import pandas as pd

    frame = pd.DataFrame({"a": range(20), "label": ["yes", "no"] * 10},
                         index=pd.Index([100 + 3 * i for i in range(20)], name="a"))
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def nested_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "a": list(range(20)),
        "tags": [[1, 2], [3]] * 10,
        "info": [{"x": 1, "y": "a"}] * 20,
        "label": ["yes", "no"] * 10,
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def rows_csv(n_rows: int, n_cols: int = 2) -> bytes:
    """A CSV of ``n_rows`` data rows: ``n_cols`` numeric columns and a yes/no ``label``."""
    header = ",".join(f"x{i}" for i in range(n_cols)) + ",label\n"
    cells = ",".join(f"{i}.5" for i in range(n_cols))
    yes, no = f"{cells},yes\n".encode(), f"{cells},no\n".encode()
    return header.encode() + (yes + no) * (n_rows // 2) + (yes if n_rows % 2 else b"")


def many_rows_parquet(n_rows: int, n_cols: int = 10, group_rows: int = 100_000) -> bytes:
    """A Parquet file whose footer declares ``n_rows`` rows of ``n_cols`` int64 zero columns.

    Written one row group at a time from one small table, so building it takes little memory;
    zeros compress to almost nothing, so the file is a few hundred KB while loading it takes
    ``n_rows * n_cols * 8`` bytes at least.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = pa.table({f"c{i}": pa.array(np.zeros(min(group_rows, n_rows), dtype="int64"))
                     for i in range(n_cols)})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, part.schema, compression="zstd") as writer:
        left = n_rows
        while left > 0:
            writer.write_table(part.slice(0, min(left, part.num_rows)))
            left -= min(left, part.num_rows)
    return buf.getvalue()


def repeated_text_parquet(n_rows: int, value_bytes: int) -> bytes:
    """One string of ``value_bytes`` on each of ``n_rows`` rows, dictionary-encoded: the file
    holds the string once (tens of KB) but reads back as ``n_rows * value_bytes`` bytes.

    Built from a dictionary array (the string exists once in memory too) and written without
    the Arrow schema, so a reader decodes the column to plain strings, not to a categorical.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n_rows, dtype="int32")),
                                          pa.array(["x" * value_bytes]))
    table = pa.table({"text": text, "label": pa.array(["yes", "no"] * (n_rows // 2) + ["yes"] * (n_rows % 2))})
    buf = io.BytesIO()
    pq.write_table(table, buf, store_schema=False)
    return buf.getvalue()


def compressed_text_parquet(n_groups: int, rows_per_group: int = 10, value_bytes: int = 1 << 20) -> bytes:
    """Huge strings, plain-encoded (no dictionary) and zstd-compressed, one row group at a
    time: the footer declares ``n_groups * rows_per_group * value_bytes`` uncompressed bytes
    for a file of a few KB per row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = pa.table({"text": ["x" * value_bytes] * rows_per_group,
                     "label": ["yes", "no"] * (rows_per_group // 2) + ["yes"] * (rows_per_group % 2)})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, part.schema, compression="zstd", use_dictionary=False) as writer:
        for _ in range(n_groups):
            writer.write_table(part)
    return buf.getvalue()


#: Environment for the big cases that need a lowered limit to stay small (tests/test_corpus.py
#: sets these for the case only).
BIG_CASE_ENV: dict[str, dict[str, str]] = {
    "over_row_limit.csv": {"HPDASH_MAX_ROWS": "1000"},
    "over_cell_limit.csv": {"HPDASH_MAX_CELLS": "3000"},
    "over_cell_limit.parquet": {"HPDASH_MAX_CELLS": "1000"},
    "compressed_text_bomb.parquet": {"HPDASH_MAX_CELLS": "1000000"},
}


@lru_cache(maxsize=2)
def big_cases(max_bytes: int) -> dict[str, bytes]:
    """The big hostile uploads, built once per ``max_bytes`` (the callers only read them)."""
    wide_header = ",".join(f"c{i}" for i in range(10_000)) + ",label\n"
    wide_rows = "".join(",".join("1" for _ in range(10_000)) + f",{'yes' if r % 2 else 'no'}\n" for r in range(3))
    huge_cell = "a,b,label\n" + "1," + "x" * (5 * 1024 * 1024) + ",yes\n" + "".join(f"{i},{i},no\n" for i in range(20))
    over = ("a,b,label\n" + "1,2,yes\n" * (max_bytes // 8 + 10)).encode()
    return {
        "ten_thousand_columns.csv": (wide_header + wide_rows).encode(),
        "huge_cell.csv": huge_cell.encode(),
        "over_size_limit.csv": over,
        # 1,001 rows against HPDASH_MAX_ROWS=1000: refused from the line count
        "over_row_limit.csv": rows_csv(1001),
        # 600 rows x 6 columns = 3,600 cells against HPDASH_MAX_CELLS=3000
        "over_cell_limit.csv": rows_csv(600, 5),
        # 200 rows x 10 columns = 2,000 cells against HPDASH_MAX_CELLS=1000, from the footer
        "over_cell_limit.parquet": many_rows_parquet(200, 10),
        # 5 million rows declared (default limit 1,000,000) in a file of a few hundred KB
        "five_million_rows.parquet": many_rows_parquet(5_000_000, 10),
        # 1,000 rows of one 1 MB string: 1 GB decoded (default budget 800 MB) from ~50 KB
        "repeated_text_bomb.parquet": repeated_text_parquet(1000, 1 << 20),
        # 20 MB of plain zstd text declared against the 16 MB budget of 1,000,000 cells
        "compressed_text_bomb.parquet": compressed_text_parquet(2),
    }


def write_small() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, data in small_cases().items():
        (HERE / name).write_bytes(data)
    (HERE / "nested_types.parquet").write_bytes(nested_parquet())
    (HERE / "parquet_index_clash.parquet").write_bytes(parquet_index_clash())


if __name__ == "__main__":
    write_small()
