"""Model files are found by the study's name only; the refit record in the storage is shown,
never trusted: not for the download, not for deleting, not for unpickling."""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib
import pytest

from hpdash import config, export_model, runner
from hpdash.errors import SpecError, StorageError
from hpdash.spec import check_name, parse_spec


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files_under(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 (SQLite's side files left out)."""
    return {
        str(p.relative_to(root)): _sha(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm", ".db"))
    }


class Payload:
    """A pickle that writes a marker file when it is unpickled: stands for code a crafted
    model file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


@pytest.fixture
def victim(data_dir):
    """A finished, refit study ``victim`` (real worker process)."""
    spec = parse_spec(
        {
            "name": "victim",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "k_nearest_neighbors",
            "strategy": "random",
            "n_trials": 3,
            "cv": {"folds": 3},
            "seed": 0,
        }
    )
    runner.create_study(spec)
    assert runner.wait_for(runner.launch_workers("victim", None, 1)) == [0]
    study = runner.load_study("victim")
    assert runner.refit_info(study), study.user_attrs.get(runner.REFIT_ATTR)
    return study


def test_model_files_are_named_from_the_study_name_inside_the_models_folder(data_dir) -> None:
    folder = config.models_dir().resolve()
    files = export_model.model_files("iris-knn.v2_x")
    assert (files.joblib, files.skops, files.digest) == (
        folder / "iris-knn.v2_x.joblib",
        folder / "iris-knn.v2_x.skops",
        folder / "iris-knn.v2_x.joblib.sha256",
    )
    unsafe = [
        "../../etc/passwd",
        "a/b",
        "/abs/olute",
        "..",
        "",
        "-starts-with-dash",
        "x" * 101,
        "tab\there",
        "nul\x00byte",
        "ünï",
    ]
    stems = set()
    for name in unsafe:
        files = export_model.model_files(name)
        assert files.stem == "_sha256-" + hashlib.sha256(name.encode()).hexdigest()
        for path in (files.joblib, files.skops, files.digest):
            assert path.parent == folder and path.resolve().parent == folder
        stems.add(files.stem)
    assert len(stems) == len(unsafe)  # no two names share files
    # No name hpdash accepts looks like a hashed stem (those start with "_").
    with pytest.raises(SpecError, match="Invalid study name"):
        check_name(export_model.file_stem("a/b"))


@pytest.mark.slow
def test_a_forged_refit_record_cannot_choose_the_download_or_the_deleted_files(victim, data_dir, tmp_path) -> None:
    """The record's path rewritten to a secret file outside the data directory, with that
    file's real SHA-256: the downloads are still the study's own files, and deleting the
    study leaves the secret file alone."""
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    own = export_model.model_files("victim")
    forged = {**runner.refit_info(victim), "path": str(secret), "sha256": _sha(secret)}
    victim.set_user_attr(runner.REFIT_ATTR, forged)
    record = runner.refit_info(runner.load_study("victim"))
    assert record["path"] == str(secret)

    downloads = export_model.model_downloads("victim", record)
    assert [d["format"] for d in downloads] == ["skops", "joblib"]
    assert [Path(d["path"]) for d in downloads] == [own.skops, own.joblib]
    assert [d["file_name"] for d in downloads] == ["victim.skops", "victim.joblib"]
    joblib_entry = downloads[1]
    assert joblib_entry["sha256"] == _sha(own.joblib) != forged["sha256"]  # from the digest file
    assert joblib_entry["recorded_sha256"] == forged["sha256"]  # shown as the record has it
    data = export_model.joblib_bytes("victim")
    assert data == own.joblib.read_bytes() and b"hunter2" not in data
    skops = export_model.skops_bytes("victim")
    assert b"hunter2" not in skops
    problem = runner.load_problem(runner.load_spec_of(victim), None)
    model = export_model.load_skops(own.skops)
    assert (model.predict(problem.X_test) == joblib.load(own.joblib).predict(problem.X_test)).all()

    runner.delete_study("victim")
    assert secret.read_text() == "password=hunter2\n"
    assert not own.joblib.exists() and not own.skops.exists() and not own.digest.exists()
    assert not list(config.models_dir().iterdir())
    # Once deleted, the record left behind finds nothing: nothing is offered or read.
    assert export_model.model_downloads("victim", record) == []
    with pytest.raises(StorageError, match="missing"):
        export_model.joblib_bytes("victim")


@pytest.mark.slow
def test_skops_conversion_unpickles_only_what_the_digest_file_vouches_for(victim, data_dir, tmp_path) -> None:
    """The joblib file replaced by a crafted pickle and the record's sha256 forged to match it:
    the conversion refuses it (the digest file the refit wrote disagrees) and never unpickles
    it; a record pointing at a crafted pickle elsewhere is not even read; a missing digest
    file refuses too. The data directory is unchanged afterwards."""
    own = export_model.model_files("victim")
    marker = tmp_path / "pwned"

    # The payload is live: unpickling it writes its marker (here a different one).
    probe = tmp_path / "probe.joblib"
    joblib.dump(Payload(tmp_path / "probe-ran"), probe)
    joblib.load(probe)
    assert (tmp_path / "probe-ran").read_text() == "unpickled"

    # 1. The record names a crafted pickle outside the models folder, with its real SHA-256.
    crafted = tmp_path / "crafted.joblib"
    joblib.dump(Payload(marker), crafted)
    victim.set_user_attr(
        runner.REFIT_ATTR, {**runner.refit_info(victim), "path": str(crafted), "sha256": _sha(crafted)}
    )
    path, digest = export_model.ensure_skops("victim")  # made from the study's own file
    assert path == own.skops and digest == _sha(own.skops) and not marker.exists()
    own.skops.unlink()

    # 2. The study's own joblib file swapped for the crafted pickle, the record forged to match.
    own.joblib.write_bytes(crafted.read_bytes())
    victim.set_user_attr(runner.REFIT_ATTR, {**runner.refit_info(victim), "sha256": _sha(own.joblib)})
    before = _files_under(data_dir)
    with pytest.raises(StorageError, match="SHA-256 differs") as refused:
        export_model.ensure_skops("victim")
    assert "was not loaded" in str(refused.value) and "Refit again" in str(refused.value)
    with pytest.raises(StorageError, match="SHA-256 differs"):
        export_model.skops_bytes("victim")
    assert not marker.exists() and not own.skops.exists()
    assert _files_under(data_dir) == before

    # 3. No digest file: refused as well.
    own.digest.unlink()
    with pytest.raises(StorageError, match="no digest file"):
        export_model.ensure_skops("victim")
    assert not marker.exists() and not own.skops.exists()

    # A new refit writes a model and its digest file again, and converts.
    runner.refit("victim")
    assert own.joblib.read_bytes() != crafted.read_bytes()
    assert (
        export_model.recorded_digest(own)
        == _sha(own.joblib)
        == runner.refit_info(runner.load_study("victim"))["sha256"]
    )
    assert own.digest.read_text() == f"{_sha(own.joblib)}  victim.joblib\n"
    export_model.ensure_skops("victim")
    assert not marker.exists()
    assert not [p for p in config.models_dir().iterdir() if p.name.endswith(".tmp")]


def test_files_of_a_name_that_is_not_file_safe_stay_in_the_models_folder(data_dir) -> None:
    """A study created straight in the storage under a path-like name: its model files get a
    hashed stem inside the models folder, and deleting it deletes those only."""
    import optuna
    from sklearn.dummy import DummyClassifier

    name = "../../escape"
    optuna.create_study(storage=config.storage_url(), study_name=name)
    outside = config.models_dir() / f"{name}.joblib"  # where a name-as-path would have landed
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.resolve().write_bytes(b"not the study's")
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    path, sha = export_model.save_joblib(name, model)
    files = export_model.model_files(name)
    assert path == files.joblib and path.parent == config.models_dir().resolve()
    assert export_model.recorded_digest(files) == sha == _sha(path)
    runner.delete_study(name)
    assert not files.joblib.exists() and not files.digest.exists()
    assert outside.resolve().read_bytes() == b"not the study's"


def test_read_only_skops_download_is_made_in_memory(data_dir, monkeypatch) -> None:
    """A viewer's first .skops download writes nothing: the copy is made in memory."""
    import hashlib

    from sklearn.linear_model import LogisticRegression

    from hpdash import export_model

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    export_model.save_joblib("ro-model", model)
    files = export_model.model_files("ro-model")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.folder.iterdir()}
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    data = export_model.skops_bytes("ro-model")
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.folder.iterdir()}
    assert after == before and not files.skops.exists()
    import skops.io as sio

    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert loaded.predict([[0.0], [3.0]]).tolist() == [0, 1]
    from hpdash.errors import ReadOnlyError

    with pytest.raises(ReadOnlyError):
        export_model.ensure_skops("ro-model")


def test_a_viewers_in_memory_skops_copy_unpickles_only_a_vouched_file(data_dir, tmp_path, monkeypatch) -> None:
    """Read-only, the .skops download is made in memory, but from the joblib file only when its
    digest file vouches for it: a swapped joblib file is refused, its code never runs, and
    nothing in the models folder changes."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    _, _ = export_model.save_joblib("ro-swapped", model)
    files = export_model.model_files("ro-swapped")
    marker = tmp_path / "ran"
    joblib.dump(Payload(marker), files.joblib)  # replaced behind the refit's back
    before = _files_under(files.folder)
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    with pytest.raises(StorageError, match="is not the one this study's refit wrote"):
        export_model.skops_bytes("ro-swapped")
    assert not marker.exists(), "the swapped pickle ran"
    assert _files_under(files.folder) == before and not files.skops.exists()
