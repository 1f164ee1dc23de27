"""Tests for the content-addressed dataset store and its catalogue rows."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pandas as pd
import pytest
import sqlite_utils
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash import config
from hpdash.datasets import (
    StoredDataset,
    delete_stored,
    find_stored,
    load_dataset,
    sha256_bytes,
    store_dataset,
)
from hpdash.errors import DatasetError, StorageError, StudyNotFoundError
from hpdash.storage import trial_id as storage_trial_id
from hpdash.store import EXPERIMENT_QUEUE, EXPERIMENTS, NOTES, TABLES, Catalogue, notes

CSV = b"x1,x2,species\n" + b"".join(f"{i * 0.37:.2f},{(i * 7) % 5},{'abc'[i % 3]}\n".encode() for i in range(30))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The storage URL ``Catalogue()`` follows: the embedded SQLite file, or a fresh
    PostgreSQL database (``HPDASH_STORAGE``), where the catalogue's tables live beside Optuna's."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("HPDASH_STORAGE", url)
        return url
    return config.storage_url()


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the default upload and column limits."""
    monkeypatch.delenv("HPDASH_MAX_UPLOAD_MB", raising=False)
    monkeypatch.delenv("HPDASH_MAX_COLUMNS", raising=False)


def files(folder: Path) -> list[str]:
    """Names of every file in ``folder`` (including hidden temp files)."""
    return sorted(p.name for p in folder.iterdir())


def test_store_writes_by_hash_with_a_catalogue_row(data_dir: Path, backend: str) -> None:
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


def test_same_bytes_twice_are_stored_once(data_dir: Path, backend: str) -> None:
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


def test_delete_stored(data_dir: Path, backend: str) -> None:
    """delete_stored removes the file and the row; deleting twice is harmless."""
    stored = store_dataset(CSV, "d.csv")
    delete_stored(stored.sha256)
    assert find_stored(stored.sha256) is None
    assert Catalogue().list_datasets() == []
    delete_stored(stored.sha256)
    with pytest.raises(DatasetError, match="is not a dataset SHA-256"):
        delete_stored("../../etc/passwd")


def test_delete_stored_that_cannot_remove_the_file_says_so(data_dir: Path, backend: str) -> None:
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


#: Opens the catalogue afresh for every write (as a page rerun does): writes a queue record
#: and reads it back, then its study's note, and lists the catalogue; prints "ok" or the error.
CATALOGUE_CLIENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hpdash.store import Catalogue
    path, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.01)
    for k in range(count):
        cat = Catalogue(path)
        text = f"record {tag}-{k} " * 20
        cat.set_experiment_queue(f"{tag}-{k}", log=text, pid=k)
        assert cat.experiment_queue(f"{tag}-{k}")["log"] == text
        if k % 4 == 0:
            cat.set_note(tag, f"note {tag}-{k}")
            assert cat.get_note(tag) == f"note {tag}-{k}"
        cat.list_experiments()
        cat.list_datasets()
    print("ok")
""")


def _client_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "HPDASH_DATA_DIR": str(data_dir)}
    env.pop("HPDASH_STORAGE", None)
    return env


def _create_studies(url: str, names: list[str]) -> None:
    import optuna

    from hpdash.storage import open_storage

    store = open_storage(url, heartbeat=False)
    for name in names:
        optuna.create_study(storage=store, study_name=name)


def test_catalogue_under_concurrent_sessions_processes_and_optuna_writes(data_dir: Path, tmp_path: Path) -> None:
    """20 threads (browser sessions) and 3 processes open the catalogue and read and write
    records and notes at once while 2 processes write Optuna trials to the same SQLite file:
    no error anywhere, and every write is there afterwards."""
    path = config.default_db_path()
    url = f"sqlite:///{path}"
    env = _client_env(data_dir)
    stop, go = tmp_path / "stop", tmp_path / "go"
    # Optuna's tables, before two processes race to create them, and one study per client
    # for its notes.
    _create_studies(url, [f"t{i}" for i in range(20)] + [f"p{j}" for j in range(3)])
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
    per_thread = 15
    try:
        deadline = time.time() + 120
        while not all(ready.exists() for ready, _ in writers):
            assert all(p.poll() is None for _, p in writers), "an Optuna writer died at start"
            assert time.time() < deadline, "the Optuna writers did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # the writers are committing trials now
        errors: list[BaseException] = []
        barrier = threading.Barrier(20)

        def session(i: int) -> None:
            try:
                barrier.wait()
                for k in range(per_thread):
                    cat = Catalogue(path)
                    text = f"session {i} record {k} " * 20
                    cat.set_experiment_queue(f"t{i}-{k}", log=text, pid=k)
                    assert cat.experiment_queue(f"t{i}-{k}")["log"] == text
                    if k % 4 == 0:
                        cat.set_note(f"t{i}", f"note t{i}-{k}")
                        assert cat.get_note(f"t{i}") == f"note t{i}-{k}"
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
    records = {f"t{i}-{k}": f"session {i} record {k} " * 20 for i in range(20) for k in range(per_thread)}
    records |= {f"p{j}-{k}": f"record p{j}-{k} " * 20 for j in range(3) for k in range(40)}
    missing = [name for name, text in records.items() if (cat.experiment_queue(name) or {}).get("log") != text]
    assert not missing, f"{len(missing)} write(s) did not land, e.g. {missing[:3]}"
    notes = {f"t{i}": f"note t{i}-12" for i in range(20)} | {f"p{j}": f"note p{j}-36" for j in range(3)}
    assert {study: cat.get_note(study) for study in notes} == notes


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """A plain connection holding the file's write lock (as a worker mid-commit does)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO hpdash_experiment_queue (experiment, log) VALUES ('holder', 'x')")
    return conn


def _log(cat: Catalogue, name: str) -> str | None:
    record = cat.experiment_queue(name)
    return None if record is None else record["log"]


def test_open_and_read_do_not_wait_for_a_writer(data_dir: Path) -> None:
    """Opening the catalogue of a prepared file (WAL, tables there) runs no DDL and takes no
    lock: it and every read go through while another connection holds the write lock, in
    this process and in a fresh one."""
    path = config.default_db_path()
    Catalogue(path).set_experiment_queue("s", log="hello")
    holder = _hold_write_lock(path)
    try:
        started = time.monotonic()
        cat = Catalogue(path)
        assert _log(cat, "s") == "hello" and cat.list_experiments() == []
        assert time.monotonic() - started < 1.0
        script = (
            "import sys, time; from hpdash.store import Catalogue; t = time.monotonic(); "
            "c = Catalogue(sys.argv[1]); assert c.experiment_queue('s')['log'] == 'hello'; "
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
    from hpdash.store import sqlite

    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_S", 0.05)
    path = config.default_db_path()
    cat = Catalogue(path)
    holder = _hold_write_lock(path)
    release = threading.Timer(0.6, holder.rollback)
    release.start()
    try:
        cat.set_experiment_queue("s", log="after the lock")
    finally:
        release.join()
        holder.close()
    assert _log(Catalogue(path), "s") == "after the lock"


def test_a_lock_that_outlasts_the_retries_is_a_clear_storage_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retries are bounded: past RETRY_SECONDS the write fails with a StorageError that
    names the file, the cause and the fix, and writes nothing."""
    from hpdash.store import sqlite

    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(sqlite, "RETRY_SECONDS", 0.5)
    path = config.default_db_path()
    cat = Catalogue(path)
    holder = _hold_write_lock(path)
    started = time.monotonic()
    try:
        with pytest.raises(StorageError) as err:
            cat.set_experiment_queue("s", log="never")
    finally:
        holder.rollback()
        holder.close()
    assert time.monotonic() - started < 2.0
    message = str(err.value)
    assert "Could not write to the catalogue at" in message and str(path) in message
    assert "database is locked" in message and "Try again" in message and "HPDASH_MAX_WORKERS" in message
    assert cat.experiment_queue("s") is None and not cat.conn.in_transaction


def test_a_failed_write_is_rolled_back_whole(backend: str) -> None:
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
    if backend.startswith("sqlite"):
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
    Catalogue(path).set_experiment_queue("s", log="old")
    for leftover in path.parent.glob("hpdash.db*"):
        leftover.unlink()
    sqlite3.connect(path).close()
    cat = Catalogue(path)
    assert cat.experiment_queue("s") is None
    cat.set_experiment_queue("s", log="new")
    assert _log(Catalogue(path), "s") == "new"


# ------------------------------------------------------------------------------ both backends
def test_experiments_and_queue_keep_their_contract(backend: str) -> None:
    """Experiments newest first with their studies; a queue record changes only the fields
    given; the rows read back with every column."""
    cat = Catalogue()
    assert cat.list_experiments() == [] and cat.experiment_queue("e1") is None
    cat.add_experiment({"name": "e1", "spec_json": "{}", "strategies": "a,b", "repeats": 2}, [])
    time.sleep(1.1)  # created_at has whole seconds
    studies = [{"experiment": "e2", "study": f"e2-{s}", "strategy": s, "seed": 0} for s in ("b", "a")]
    cat.add_experiment({"name": "e2", "spec_json": '{"x": 1}', "strategies": "a,b", "repeats": 1}, studies)
    assert [row["name"] for row in cat.list_experiments()] == ["e2", "e1"]
    assert [row["study"] for row in cat.experiment_studies("e2")] == ["e2-a", "e2-b"]
    assert cat.get_experiment("e2")["spec_json"] == '{"x": 1}' and cat.get_experiment("none") is None
    cat.set_experiment_queue("e2", pid=12, host="h", started=1.5, workers=2)
    cat.set_experiment_queue("e2", last_seen=2.5)
    record = cat.experiment_queue("e2")
    assert record is not None and set(record) == set(TABLES[EXPERIMENT_QUEUE][0])
    assert (record["pid"], record["host"], record["started"], record["last_seen"], record["ended"]) == (
        12,
        "h",
        1.5,
        2.5,
        None,
    )


def test_notes_are_the_studys_optuna_dashboard_notes(backend: str) -> None:
    """A note written here reads back with optuna_dashboard.get_note, one written with
    optuna_dashboard.save_note reads here; long notes (several of its chunks) and per-trial
    notes too; a deleted study's note goes with it."""
    study = optuna.create_study(study_name="noted", storage=backend)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    cat = Catalogue()
    assert cat.get_note("noted") == "" and cat.get_note("no-such-study") == ""
    long_note = "# Findings\n" + "wide C is better. " * 300
    cat.set_note("noted", long_note)
    assert optuna_dashboard.get_note(optuna.load_study(study_name="noted", storage=backend)) == long_note
    optuna_dashboard.save_note(optuna.load_study(study_name="noted", storage=backend), "short **now**")
    assert Catalogue().get_note("noted") == "short **now**"
    cat.set_trial_note("noted", 1, "trial one: *odd*")
    trial = optuna.load_study(study_name="noted", storage=backend).trials[1]
    assert optuna_dashboard.get_note(optuna.trial.Trial(study, storage_trial_id(trial))) == "trial one: *odd*"
    assert cat.get_trial_note("noted", 1) == "trial one: *odd*" and cat.get_trial_note("noted", 0) == ""
    assert cat.get_note("noted") == "short **now**"  # the trial's note is its own
    with pytest.raises(StudyNotFoundError, match="no trial 7"):
        cat.set_trial_note("noted", 7, "x")
    with pytest.raises(StudyNotFoundError, match="No study named 'ghost'"):
        cat.set_note("ghost", "x")
    cat.delete_note("noted")
    assert cat.get_note("noted") == ""
    cat.set_note("noted", "again")
    optuna.delete_study(study_name="noted", storage=backend)
    optuna.create_study(study_name="noted", storage=backend)
    assert cat.get_note("noted") == ""


# ------------------------------------------------------------------------------ migration
OLD_NOTES = {
    "kept": "kept note",
    "long": "x" * 5000 + " end",
    "both": "hpdash note",
    "gone": "a note whose study was deleted",
}


def _old_layout_file(path: Path, url: str | None) -> None:
    """A data file as hpdash wrote it before notes moved into the studies: Optuna's tables
    with the studies (when ``url`` is given), and the sqlite-utils catalogue tables, WAL on,
    with notes in ``hpdash_notes`` (the calls the earlier ``Catalogue`` made)."""
    if url is not None:
        _create_studies(url, ["kept", "long", "both"])
        optuna_dashboard.save_note(optuna.load_study(study_name="both", storage=url), "from the dashboard")
    db = sqlite_utils.Database(path)
    db.enable_wal()
    old_tables = {**TABLES, NOTES: ({"study": str, "text": str, "updated_at": str}, "study")}
    for table, (columns, pk) in old_tables.items():
        db.table(table).create(columns, pk=pk, if_not_exists=True)
    for study, text in OLD_NOTES.items():
        db.table(NOTES).upsert({"study": study, "text": text, "updated_at": "2025-01-01T00:00:00+00:00"}, pk="study")
    db.table(EXPERIMENTS).upsert(
        {"name": "old-exp", "spec_json": "{}", "strategies": "a", "repeats": 1, "created_at": "2025-01-01"}, pk="name"
    )
    db.close()


#: Opens the catalogue when told to (the moment a dashboard starts) and prints every note.
STARTER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from hpdash.store import Catalogue
    go, names = Path(sys.argv[1]), sys.argv[2].split(",")
    while not go.exists():
        time.sleep(0.005)
    cat = Catalogue()
    print(json.dumps({name: cat.get_note(name) for name in names}))
""")


def _note_version(url: str, study: str) -> int:
    from hpdash.storage import open_storage, study_id

    store = open_storage(url, heartbeat=False)
    attrs = store.get_study_system_attrs(study_id(optuna.load_study(study_name=study, storage=store)))
    return attrs.get("dashboard:note_ver", 0)


@pytest.mark.slow
def test_old_notes_move_into_their_studies_once(data_dir: Path, tmp_path: Path) -> None:
    """Two processes start at once on a file made by the earlier layout: the notes are
    written once to their studies (an optuna-dashboard note already there is kept), the one
    of a deleted study is recorded as such, every row stays in the file, marked, and a later
    start writes nothing again."""
    path = config.default_db_path()
    url = config.storage_url()
    _old_layout_file(path, url)
    go = tmp_path / "go"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(go), ",".join(OLD_NOTES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_client_env(data_dir),
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    time.sleep(2.0)  # both have imported hpdash and wait
    go.write_text("go")
    expected = {**OLD_NOTES, "both": "from the dashboard\n\nhpdash note", "gone": ""}
    for p in starters:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == expected
    assert (_note_version(url, "kept"), _note_version(url, "long"), _note_version(url, "both")) == (1, 1, 2)
    rows = {row["study"]: row for row in sqlite_utils.Database(path).table(NOTES).rows}
    assert {study: row["text"] for study, row in rows.items()} == OLD_NOTES
    assert {study: row["migration"] for study, row in rows.items()} == {
        "kept": notes.COPIED,
        "long": notes.COPIED,
        "both": notes.COPIED,
        "gone": notes.STUDY_GONE,
    }
    assert all(row["migrated_at"] for row in rows.values())
    cat = Catalogue()
    cat.set_note("kept", "edited after the move")
    again = subprocess.run(
        [sys.executable, "-c", STARTER, str(go), "kept"],
        capture_output=True,
        text=True,
        env=_client_env(data_dir),
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"kept": "edited after the move"}
    assert [row["name"] for row in cat.list_experiments()] == ["old-exp"]


def test_a_read_only_start_reads_old_notes_without_moving_them(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only mode writes nothing, so the old notes stay where they are and are read from
    there; the next writable start moves them."""
    path = config.default_db_path()
    _old_layout_file(path, config.storage_url())
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    assert Catalogue().get_note("kept") == "kept note"
    assert _note_version(config.storage_url(), "kept") == 0
    monkeypatch.delenv("HPDASH_READ_ONLY")
    assert Catalogue().get_note("kept") == "kept note"
    assert _note_version(config.storage_url(), "kept") == 1


def test_old_local_notes_move_into_a_postgresql_storage(data_dir: Path, pg_url: str, monkeypatch) -> None:
    """With a PostgreSQL storage the earlier layout kept notes in <data>/hpdash.db beside the
    dashboard: they move into the studies in PostgreSQL."""
    _create_studies(pg_url, ["kept", "long", "both"])
    _old_layout_file(config.default_db_path(), None)
    monkeypatch.setenv("HPDASH_STORAGE", pg_url)
    cat = Catalogue()
    assert optuna_dashboard.get_note(optuna.load_study(study_name="kept", storage=pg_url)) == "kept note"
    assert cat.get_note("long") == OLD_NOTES["long"] and cat.get_note("gone") == ""


# ------------------------------------------------------------------------------ two dashboards
#: One dashboard's process on the shared PostgreSQL database, with its own empty data dir:
#: writes its study, note, experiment and dataset row, then prints what it sees of the other's.
DASHBOARD = textwrap.dedent("""
    import json, sys
    import optuna, optuna_dashboard
    from hpdash.storage import open_storage
    from hpdash.store import Catalogue
    url, me, other = sys.argv[1], sys.argv[2], sys.argv[3]
    store = open_storage(url, heartbeat=False)  # retries the race of two processes creating Optuna's tables
    optuna.create_study(study_name=me, storage=store)
    cat = Catalogue()
    if me == "first":
        cat.set_note(me, "written by hpdash in " + me)
    else:
        optuna_dashboard.save_note(optuna.load_study(study_name=me, storage=store), "written by optuna-dashboard")
    cat.add_experiment({"name": "exp-" + me, "spec_json": "{}", "strategies": "random", "repeats": 1},
                       [{"experiment": "exp-" + me, "study": me, "strategy": "random", "seed": 0}])
    cat.add_dataset({"sha256": me * 4, "name": me, "filename": me + ".csv", "format": "csv",
                     "size_bytes": 1, "n_rows": 1, "n_cols": 1})
    print("written", flush=True)
    sys.stdin.readline()  # the other dashboard has written too
    other_study = optuna.load_study(study_name=other, storage=store)
    print(json.dumps({"note": cat.get_note(other), "dashboard_note": optuna_dashboard.get_note(other_study),
                      "experiments": sorted(r["name"] for r in cat.list_experiments()),
                      "studies": [r["study"] for r in cat.experiment_studies("exp-" + other)],
                      "datasets": sorted(r["name"] for r in cat.list_datasets())}))
""")


@pytest.mark.slow
def test_two_dashboards_on_one_postgresql_database_share_the_catalogue(tmp_path: Path, pg_url: str) -> None:
    """Two processes with separate data dirs on one PostgreSQL database see each other's
    notes (written with hpdash in one, optuna-dashboard in the other), experiments and datasets."""
    procs = {}
    for me, other in (("first", "second"), ("second", "first")):
        folder = tmp_path / me
        folder.mkdir()
        env = {**os.environ, "HPDASH_DATA_DIR": str(folder), "HPDASH_STORAGE": pg_url}
        procs[me] = subprocess.Popen(
            [sys.executable, "-c", DASHBOARD, pg_url, me, other],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
    try:
        for p in procs.values():
            assert p.stdout is not None and p.stdout.readline().strip() == "written", p.stderr and p.stderr.read()
        seen = {}
        for me, p in procs.items():
            out, err = p.communicate("go\n", timeout=120)
            assert p.returncode == 0, err[-3000:]
            seen[me] = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    both = {"experiments": ["exp-first", "exp-second"], "datasets": ["first", "second"]}
    assert seen["second"] == {
        "note": "written by hpdash in first",
        "dashboard_note": "written by hpdash in first",
        "studies": ["first"],
        **both,
    }
    assert seen["first"] == {
        "note": "written by optuna-dashboard",
        "dashboard_note": "written by optuna-dashboard",
        "studies": ["second"],
        **both,
    }
    assert not any((tmp_path / me / "hpdash.db").exists() for me in procs)  # nothing stayed local
