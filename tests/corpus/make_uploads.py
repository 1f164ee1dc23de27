"""Generator for the upload corpus (tests/test_corpus.py).

Small hostile files are written by ``write_small`` once and kept in tests/corpus/uploads/ so
they can be opened by hand; big ones (10,000 columns, a huge cell, over the size limit) are
built in memory by ``big_cases`` at test time, not committed.
"""

from __future__ import annotations

import gzip
import io
import zipfile
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
    }


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


def big_cases(max_bytes: int) -> dict[str, bytes]:
    wide_header = ",".join(f"c{i}" for i in range(10_000)) + ",label\n"
    wide_rows = "".join(",".join("1" for _ in range(10_000)) + f",{'yes' if r % 2 else 'no'}\n" for r in range(3))
    huge_cell = "a,b,label\n" + "1," + "x" * (5 * 1024 * 1024) + ",yes\n" + "".join(f"{i},{i},no\n" for i in range(20))
    over = ("a,b,label\n" + "1,2,yes\n" * (max_bytes // 8 + 10)).encode()
    return {
        "ten_thousand_columns.csv": (wide_header + wide_rows).encode(),
        "huge_cell.csv": huge_cell.encode(),
        "over_size_limit.csv": over,
    }


def write_small() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, data in small_cases().items():
        (HERE / name).write_bytes(data)
    (HERE / "nested_types.parquet").write_bytes(nested_parquet())


if __name__ == "__main__":
    write_small()
