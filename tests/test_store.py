"""Tests for the content-addressed dataset store and its catalogue rows."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
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

CSV = b"x1,x2,species\n" + b"".join(f"{i * 0.37:.2f},{(i * 7) % 5},{'abc'[i % 3]}\n".encode() for i in range(30))


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


def test_load_dataset_ignores_the_upload_limit(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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


# ------------------------------------------------------------------------------ concurrency
ROOT = Path(__file__).resolve().parents[1]

#: Writes Optuna trials to the shared SQLite file (the way workers do, through hpdash's
#: storage) until the stop file appears; prints how many it wrote.
OPTUNA_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import optuna
    from hpdash.storage import open_storage
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, tag, ready, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="writer-" + tag,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    ready.write_text("ready")
    n = 0
    while not stop.exists():
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
        study.set_user_attr("n", n)
        n += 5
    print(n)
""")

#: Opens the catalogue afresh for every note (as a page rerun does), writes it, reads it back
#: and lists the catalogue; prints "ok" or the error.
CATALOGUE_CLIENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hpdash.store import Catalogue
    path, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.01)
    for k in range(count):
        cat = Catalogue(path)
        text = f"note {tag}-{k} " * 20
        cat.set_note(f"{tag}-{k}", text)
        assert cat.get_note(f"{tag}-{k}") == text
        cat.list_experiments()
        cat.list_datasets()
    print("ok")
""")


def _client_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "HPDASH_DATA_DIR": str(data_dir)}
    env.pop("HPDASH_STORAGE", None)
    return env


def test_catalogue_under_concurrent_sessions_processes_and_optuna_writes(data_dir: Path, tmp_path: Path) -> None:
    """20 threads (browser sessions) and 3 processes open the catalogue and read and write
    notes at once, on a fresh file, while 2 processes write Optuna trials to the same SQLite
    file: no error anywhere, and every note written is there afterwards."""
    path = config.default_db_path()
    url = f"sqlite:///{path}"
    env = _client_env(data_dir)
    stop, go = tmp_path / "stop", tmp_path / "go"
    from hpdash.storage import open_storage

    open_storage(url, heartbeat=False)  # Optuna's tables, before two processes race to create them
    writers = []
    for tag in ("a", "b"):
        ready = tmp_path / f"ready-{tag}"
        writers.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", OPTUNA_WRITER, url, tag, str(ready), str(stop)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=ROOT,
                ),
            )
        )
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CATALOGUE_CLIENT, str(path), f"p{j}", "40", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for j in range(3)
    ]
    try:
        deadline = time.time() + 120
        while not all(ready.exists() for ready, _ in writers):
            assert all(p.poll() is None for _, p in writers), "an Optuna writer died at start"
            assert time.time() < deadline, "the Optuna writers did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # the writers are committing trials now
        errors: list[BaseException] = []
        barrier = threading.Barrier(20)
        per_thread = 15

        def session(i: int) -> None:
            try:
                barrier.wait()
                for k in range(per_thread):
                    cat = Catalogue(path)
                    text = f"session {i} note {k} " * 20
                    cat.set_note(f"t{i}-{k}", text)
                    assert cat.get_note(f"t{i}-{k}") == text
                    cat.list_experiments()
                    cat.get_dataset("0" * 64)
            except BaseException as exc:  # collected and re-raised by the test below
                errors.append(exc)

        threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
        go.write_text("go")
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert not any(t.is_alive() for t in threads), "a session thread hung"
        assert not errors, f"{len(errors)} session(s) failed, first: {errors[0]!r}"
        for p in clients:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0 and out.strip() == "ok", err[-3000:]
    finally:
        stop.write_text("stop")
        go.write_text("go")
        for _, p in writers:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        for p in clients:
            if p.poll() is None:
                p.kill()
    for _, p in writers:
        out, err = p.communicate()
        assert p.returncode == 0 and int(out.strip()) > 0, err[-3000:]
    cat = Catalogue(path)
    notes = {f"t{i}-{k}": f"session {i} note {k} " * 20 for i in range(20) for k in range(per_thread)}
    notes |= {f"p{j}-{k}": f"note p{j}-{k} " * 20 for j in range(3) for k in range(40)}
    missing = [study for study, text in notes.items() if cat.get_note(study) != text]
    assert not missing, f"{len(missing)} note write(s) did not land, e.g. {missing[:3]}"


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """A plain connection holding the file's write lock (as a worker mid-commit does)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO hpdash_notes (study, text) VALUES ('holder', 'x')")
    return conn


def test_open_and_read_do_not_wait_for_a_writer(data_dir: Path) -> None:
    """Opening the catalogue of a prepared file (WAL, tables there) runs no DDL and takes no
    lock: it and every read go through while another connection holds the write lock, in
    this process and in a fresh one."""
    path = config.default_db_path()
    Catalogue(path).set_note("s", "hello")
    holder = _hold_write_lock(path)
    try:
        started = time.monotonic()
        cat = Catalogue(path)
        assert cat.get_note("s") == "hello" and cat.list_experiments() == []
        assert time.monotonic() - started < 1.0
        script = (
            "import sys, time; from hpdash.store import Catalogue; t = time.monotonic(); "
            "c = Catalogue(sys.argv[1]); assert c.get_note('s') == 'hello'; "
            "print(time.monotonic() - t)"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            env=_client_env(data_dir),
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert float(done.stdout.strip()) < 1.0
    finally:
        holder.rollback()
        holder.close()


def test_a_write_waits_out_a_short_lock(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock held longer than one busy timeout but shorter than the retry budget: the write
    is retried and lands."""
    from hpdash import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.05)
    path = config.default_db_path()
    cat = Catalogue(path)
    holder = _hold_write_lock(path)
    release = threading.Timer(0.6, holder.rollback)
    release.start()
    try:
        cat.set_note("s", "after the lock")
    finally:
        release.join()
        holder.close()
    assert Catalogue(path).get_note("s") == "after the lock"


def test_a_lock_that_outlasts_the_retries_is_a_clear_storage_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retries are bounded: past RETRY_SECONDS the write fails with a StorageError that
    names the file, the cause and the fix, and writes nothing."""
    from hpdash import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(store, "RETRY_SECONDS", 0.5)
    path = config.default_db_path()
    cat = Catalogue(path)
    holder = _hold_write_lock(path)
    started = time.monotonic()
    try:
        with pytest.raises(StorageError) as err:
            cat.set_note("s", "never")
    finally:
        holder.rollback()
        holder.close()
    assert time.monotonic() - started < 2.0
    message = str(err.value)
    assert "Could not write to the catalogue at" in message and str(path) in message
    assert "database is locked" in message and "Try again" in message and "HPDASH_MAX_WORKERS" in message
    assert cat.get_note("s") == "" and not cat.conn.in_transaction


def test_a_failed_write_is_rolled_back_whole(data_dir: Path) -> None:
    """add_experiment is one transaction: a failing study row leaves no experiment row."""
    cat = Catalogue()
    with pytest.raises(StorageError, match="no column named bogus"):
        cat.add_experiment(
            {"name": "e", "spec_json": "{}", "strategies": "[]", "repeats": 1},
            [
                {"experiment": "e", "study": "e-a", "strategy": "a", "seed": 0},
                {"experiment": "e", "study": "e-b", "strategy": "b", "seed": 0, "bogus": 1},
            ],
        )
    assert cat.get_experiment("e") is None and cat.experiment_studies("e") == []
    assert not cat.conn.in_transaction
    cat.add_experiment(
        {"name": "e", "spec_json": "{}", "strategies": "[]", "repeats": 1},
        [{"experiment": "e", "study": "e-a", "strategy": "a", "seed": 0}],
    )
    assert cat.get_experiment("e")["repeats"] == 1 and len(cat.experiment_studies("e")) == 1


def test_a_replaced_file_is_prepared_again(data_dir: Path) -> None:
    """A catalogue file deleted and made again in the same process (maybe at the same inode)
    gets its tables back on the next read or write."""
    path = config.default_db_path()
    Catalogue(path).set_note("s", "old")
    for leftover in path.parent.glob("hpdash.db*"):
        leftover.unlink()
    sqlite3.connect(path).close()
    cat = Catalogue(path)
    assert cat.get_note("s") == ""
    cat.set_note("s", "new")
    assert Catalogue(path).get_note("s") == "new"


def test_files_made_by_sqlite_utils_open_unchanged(tmp_path: Path) -> None:
    """A catalogue created by the earlier sqlite-utils code keeps its rows, and gains the
    experiment queue table."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE "hpdash_notes" ("study" TEXT PRIMARY KEY, "text" TEXT, "updated_at" TEXT)')
    conn.execute("INSERT INTO hpdash_notes VALUES ('s', 'kept', '2024-01-01T00:00:00+00:00')")
    conn.commit()
    conn.close()
    cat = Catalogue(path)
    assert cat.get_note("s") == "kept"
    assert cat.experiment_queue("e") is None and cat.list_datasets() == []
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
