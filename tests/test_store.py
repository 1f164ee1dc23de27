"""Tests for the content-addressed dataset store and its catalogue rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hpdash import config
from hpdash.datasets import (
    StoredDataset,
    delete_stored,
    find_stored,
    load_dataset,
    sha256_bytes,
    store_dataset,
)
from hpdash.errors import DatasetError, StorageError
from hpdash.store import Catalogue

CSV = b"x1,x2,species\n" + b"".join(
    f"{i * 0.37:.2f},{(i * 7) % 5},{'abc'[i % 3]}\n".encode() for i in range(30)
)


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the default upload and column limits."""
    monkeypatch.delenv("HPDASH_MAX_UPLOAD_MB", raising=False)
    monkeypatch.delenv("HPDASH_MAX_COLUMNS", raising=False)


def files(folder: Path) -> list[str]:
    """Names of every file in ``folder`` (including hidden temp files)."""
    return sorted(p.name for p in folder.iterdir())


def test_store_writes_by_hash_with_a_catalogue_row(data_dir: Path) -> None:
    """The file is <sha>.csv under <data>/datasets and the catalogue row describes it."""
    stored = store_dataset(CSV, "penguins.csv", target="species")
    sha = sha256_bytes(CSV)
    assert isinstance(stored, StoredDataset)
    assert stored.sha256 == sha and len(sha) == 64
    assert stored.path == data_dir / "datasets" / f"{sha}.csv"
    assert stored.path.read_bytes() == CSV
    assert (stored.name, stored.filename, stored.format) == ("penguins", "penguins.csv", "csv")
    assert (stored.size_bytes, stored.n_rows, stored.n_cols) == (len(CSV), 30, 3)
    assert files(data_dir / "datasets") == [f"{sha}.csv"]  # no temp file left behind
    row = Catalogue().get_dataset(sha)
    assert row is not None
    assert {k: row[k] for k in ("name", "filename", "format", "size_bytes", "n_rows", "n_cols")} == {
        "name": "penguins",
        "filename": "penguins.csv",
        "format": "csv",
        "size_bytes": len(CSV),
        "n_rows": 30,
        "n_cols": 3,
    }
    assert row["created_at"]
    assert find_stored(sha) == stored.path
    assert find_stored(sha.upper()) == stored.path


def test_same_bytes_twice_are_stored_once(data_dir: Path) -> None:
    """Content addressing: same bytes -> same sha, one file, one row (first name kept)."""
    first = store_dataset(CSV, "first.csv")
    second = store_dataset(CSV, "second-name.csv", target="species")
    assert first.sha256 == second.sha256
    assert second.path == first.path
    assert files(data_dir / "datasets") == [f"{first.sha256}.csv"]
    rows = Catalogue().list_datasets()
    assert len(rows) == 1 and rows[0]["name"] == "first"
    other = store_dataset(CSV + b"0.5,1,a\n", "first.csv")
    assert other.sha256 != first.sha256
    assert len(Catalogue().list_datasets()) == 2


def test_parquet_is_stored_as_parquet(data_dir: Path) -> None:
    """Parquet bytes keep their format, even under a misleading .csv name."""
    buf = io.BytesIO()
    pd.read_csv(io.BytesIO(CSV)).to_parquet(buf, index=False)
    data = buf.getvalue()
    stored = store_dataset(data, "table.csv", target="species")
    assert stored.format == "parquet"
    assert stored.path.name == f"{sha256_bytes(data)}.parquet"
    df, sha = load_dataset(stored.sha256)
    assert sha == stored.sha256 and df.shape == (30, 3)


@pytest.mark.parametrize(
    "filename",
    ["../../escape.csv", "/etc/escape.csv", "C:\\Users\\me\\escape.csv", "..\\..\\escape.csv"],
)
def test_filename_is_metadata_never_a_path(data_dir: Path, tmp_path: Path, filename: str) -> None:
    """Whatever the uploaded name, the file lands at <datasets>/<sha>.csv."""
    stored = store_dataset(CSV, filename)
    assert stored.path.parent == data_dir / "datasets"
    assert stored.filename == "escape.csv" and stored.name == "escape"
    assert not (tmp_path / "escape.csv").exists() and not (data_dir / "escape.csv").exists()
    assert files(data_dir / "datasets") == [f"{stored.sha256}.csv"]


def test_load_dataset_by_sha_path_and_sample(data_dir: Path, tmp_path: Path) -> None:
    """A sha, a path and sklearn:NAME all load; paths and shas return the bytes' hash."""
    stored = store_dataset(CSV, "d.csv")
    df, sha = load_dataset(stored.sha256, expected_sha256=stored.sha256)
    assert sha == stored.sha256 and list(df.columns) == ["x1", "x2", "species"]
    path = tmp_path / "plain.csv"
    path.write_bytes(CSV)
    df2, sha2 = load_dataset(str(path))
    assert sha2 == stored.sha256 and df2.equals(df)
    iris, none = load_dataset("sklearn:iris", expected_sha256="ignored")
    assert none is None and iris.shape == (150, 5)


def test_load_dataset_ignores_the_upload_limit(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload limit guards uploads, not files a worker or the CLI reads."""
    path = tmp_path / "big.csv"
    path.write_bytes(CSV)
    monkeypatch.setenv("HPDASH_MAX_UPLOAD_MB", "0.0001")
    with pytest.raises(DatasetError, match="over the upload limit"):
        store_dataset(CSV, "big.csv")
    df, _ = load_dataset(str(path))
    assert len(df) == 30


def test_sha_mismatch_on_a_path(data_dir: Path, tmp_path: Path) -> None:
    """A path whose bytes changed since the study was created is refused."""
    path = tmp_path / "d.csv"
    path.write_bytes(CSV)
    expected = sha256_bytes(CSV)
    assert load_dataset(str(path), expected_sha256=expected)[1] == expected
    path.write_bytes(CSV.replace(b"0.37", b"9.99"))
    with pytest.raises(DatasetError, match="changed since the study was created: expected") as err:
        load_dataset(str(path), expected_sha256=expected)
    assert expected in str(err.value) and sha256_bytes(path.read_bytes()) in str(err.value)


def test_sha_mismatch_on_a_stored_file(data_dir: Path) -> None:
    """A stored file edited in place no longer matches its own name."""
    stored = store_dataset(CSV, "d.csv")
    stored.path.write_bytes(CSV + b"1,1,a\n")
    with pytest.raises(DatasetError, match="changed since the study was created"):
        load_dataset(stored.sha256)
    # Storing the original bytes again repairs the file.
    store_dataset(CSV, "d.csv")
    assert load_dataset(stored.sha256)[1] == stored.sha256


def test_missing_stored_file(data_dir: Path) -> None:
    """A catalogue row without its file, and an unknown sha, both explain themselves."""
    stored = store_dataset(CSV, "gone.csv")
    stored.path.unlink()
    with pytest.raises(DatasetError, match="'gone' .* is in the catalogue but its file is missing"):
        load_dataset(stored.sha256)
    with pytest.raises(DatasetError, match="No stored dataset with SHA-256 0000000000"):
        load_dataset("0" * 64)
    with pytest.raises(DatasetError, match="Dataset file not found: nowhere.csv"):
        load_dataset("nowhere.csv")


def test_find_stored_rejects_non_hashes(data_dir: Path) -> None:
    """find_stored never turns arbitrary text into a path."""
    assert find_stored("../hpdash") is None
    assert find_stored("abc") is None
    assert find_stored("f" * 64) is None


def test_delete_stored(data_dir: Path) -> None:
    """delete_stored removes the file and the row; deleting twice is harmless."""
    stored = store_dataset(CSV, "d.csv")
    delete_stored(stored.sha256)
    assert find_stored(stored.sha256) is None
    assert Catalogue().list_datasets() == []
    delete_stored(stored.sha256)
    with pytest.raises(DatasetError, match="is not a dataset SHA-256"):
        delete_stored("../../etc/passwd")


def test_delete_stored_that_cannot_remove_the_file_says_so(data_dir: Path) -> None:
    """An OSError (here: a folder where the file should be, which even root cannot unlink)
    becomes a DatasetError naming the file, and the catalogue row stays."""
    from hpdash import config

    stored = store_dataset(CSV, "d.csv")
    blocker = config.datasets_dir() / f"{stored.sha256}.csv"
    blocker.unlink()
    blocker.mkdir()
    with pytest.raises(DatasetError, match=r"Cannot delete the stored dataset file .*csv.*writable"):
        delete_stored(stored.sha256)
    assert Catalogue().get_dataset(stored.sha256) is not None
    blocker.rmdir()
    delete_stored(stored.sha256)
    assert Catalogue().list_datasets() == []


def test_explicit_catalogue(data_dir: Path, tmp_path: Path) -> None:
    """A catalogue passed in is the one written to."""
    other = Catalogue(tmp_path / "elsewhere.db")
    stored = store_dataset(CSV, "d.csv", catalogue=other)
    assert other.get_dataset(stored.sha256) is not None
    assert Catalogue().list_datasets() == []
    delete_stored(stored.sha256, catalogue=other)
    assert other.list_datasets() == []


class FailingCatalogue(Catalogue):
    """A real catalogue whose dataset insert fails, like a locked database would."""

    def add_dataset(self, record: dict[str, Any]) -> None:
        raise StorageError("Could not write to the catalogue: database is locked")


def test_failed_catalogue_write_leaves_no_file(data_dir: Path) -> None:
    """If the row cannot be written, the freshly written file is removed again."""
    with pytest.raises(StorageError, match="database is locked"):
        store_dataset(CSV, "d.csv", catalogue=FailingCatalogue())
    assert files(config.datasets_dir()) == []
