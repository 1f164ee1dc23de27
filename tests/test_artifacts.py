"""The team's artifact store (hpdash/artifacts.py): datasets and final models shared between
machines, on the file system and on an S3-compatible server (moto's, on 127.0.0.1).

A "remote" worker here is a real ``python -m hpdash worker`` process given only the storage
URL and the artifact store, with an empty data directory of its own; the dashboard's process
then downloads the model that worker refit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash import artifacts, config, datasets, export_model, runner
from hpdash import attrs as study_attrs
from hpdash.errors import StorageError
from hpdash.spec import parse_spec

BUCKET = "hpdash-team"


def _spec(name: str, dataset: str):
    return parse_spec(
        {
            "name": name,
            "dataset": dataset,
            "target": "target",
            "model": "k_nearest_neighbors",
            "strategy": "random",
            "n_trials": 4,
            "cv": {"folds": 2},
            "seed": 0,
        }
    )


def _iris_csv() -> bytes:
    return datasets.load_sample("iris").to_csv(index=False).encode()


def _create(name: str, storage: str | None) -> tuple[optuna.Study, str]:
    """A study on an uploaded table (not a bundled sample), created by "the dashboard"."""
    stored = datasets.store_dataset(_iris_csv(), "flowers.csv")
    runner.create_study(_spec(name, stored.sha256), storage)
    return runner.load_study(name, storage), stored.sha256


def _remote_worker(name: str, storage: str, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """What a worker on another machine runs: only the storage URL and the artifact store."""
    data.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "hpdash", "worker", name, "--storage", storage],
        env={**os.environ, **env, "HPDASH_DATA_DIR": str(data), "HPDASH_STORAGE": storage},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _check_finished_and_download(name: str, storage: str, worker_data: Path, sha: str, tmp_path: Path) -> None:
    """The remote worker fetched the dataset and refit; the dashboard downloads that model."""
    study = runner.load_study(name, storage)
    assert runner.study_status(study).state == "finished"
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
    assert hashlib.sha256((worker_data / "datasets" / f"{sha}.csv").read_bytes()).hexdigest() == sha
    refit = runner.refit_info(study)
    assert refit is not None and artifacts.is_artifact_id(refit["artifact_id"])
    assert not export_model.model_files(name).joblib.exists()  # refit on the worker's machine only

    downloads = {item["format"]: item for item in export_model.model_downloads(name, refit)}
    assert downloads["joblib"]["sha256"] == refit["sha256"]
    joblib_data = export_model.joblib_bytes(name)
    assert joblib_data == (worker_data / "models" / f"{name}.joblib").read_bytes()
    skops_file = tmp_path / "downloaded.skops"
    skops_file.write_bytes(export_model.skops_bytes(name))  # made from the verified joblib file
    model = export_model.load_skops(skops_file)
    problem = runner.load_problem(runner.load_spec_of(study), sha)
    assert len(model.predict(problem.X_test)) == len(problem.y_test)


# -- file-system store ----------------------------------------------------------------------
@pytest.mark.slow
def test_worker_with_an_empty_data_dir_fetches_the_dataset_and_the_model_downloads(
    data_dir, pg_url, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, sha = _create("fs-remote", pg_url)  # the dashboard's default store: <data>/artifacts/_shared
    store = config.shared_artifacts_dir()
    record = study.user_attrs[study_attrs.DATASET_ARTIFACT]
    assert record == {"artifact_id": record["artifact_id"], "sha256": sha, "format": "csv"}
    listed = optuna.artifacts.get_all_artifact_meta(study)  # what optuna-dashboard lists
    assert [m.artifact_id for m in listed] == [record["artifact_id"]]

    worker_data = tmp_path / "worker-data"
    done = _remote_worker("fs-remote", pg_url, worker_data, {config.ARTIFACT_STORE_ENV: str(store)})
    assert done.returncode == 0, done.stderr[-3000:]
    _check_finished_and_download("fs-remote", pg_url, worker_data, sha, tmp_path)

    # A third machine whose store copy of the model was changed refuses it, and writes nothing.
    refit = runner.refit_info(runner.load_study("fs-remote", pg_url))
    (store / refit["artifact_id"]).write_bytes(b"not the model")
    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "third"))
    monkeypatch.setenv(config.ARTIFACT_STORE_ENV, str(store))
    with pytest.raises(StorageError, match="SHA-256 mismatch: the model of study 'fs-remote'"):
        export_model.model_downloads("fs-remote", refit)
    assert not export_model.model_files("fs-remote").joblib.exists()


@pytest.mark.slow
def test_a_tampered_dataset_artifact_is_refused(data_dir, pg_url, tmp_path) -> None:
    study, sha = _create("fs-tampered", pg_url)
    store = config.shared_artifacts_dir()
    artifact = store / study.user_attrs[study_attrs.DATASET_ARTIFACT]["artifact_id"]
    artifact.write_bytes(artifact.read_bytes().replace(b"5.1", b"9.9", 1))

    worker_data = tmp_path / "worker-data"
    done = _remote_worker("fs-tampered", pg_url, worker_data, {config.ARTIFACT_STORE_ENV: f"file://{store}"})
    assert done.returncode != 0
    status = runner.study_status(runner.load_study("fs-tampered", pg_url))
    assert status.state == "failed"
    assert "SHA-256 mismatch" in (status.error or "") and f"not the recorded {sha}" in (status.error or "")
    assert not list((worker_data / "datasets").iterdir())  # unverified bytes are never kept
    assert not runner.load_study("fs-tampered", pg_url).get_trials(states=(optuna.trial.TrialState.COMPLETE,))


# -- S3-compatible store (moto's server) --------------------------------------------------------
@pytest.fixture
def s3_store(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A local S3 server with the team's bucket; the variables point this process at it."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        config.ARTIFACT_STORE_ENV: f"s3://{BUCKET}/team-a",
        config.S3_ENDPOINT_ENV: f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=env[config.S3_ENDPOINT_ENV]).create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


@pytest.mark.slow
def test_s3_store_worker_with_an_empty_data_dir_and_the_model_downloads(data_dir, pg_url, tmp_path, s3_store) -> None:
    import boto3

    study, sha = _create("s3-remote", pg_url)
    record = study.user_attrs[study_attrs.DATASET_ARTIFACT]
    client = boto3.client("s3", endpoint_url=s3_store[config.S3_ENDPOINT_ENV])
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"team-a/{record['artifact_id']}", f"team-a/hpdash-dataset-{sha}"}
    assert not (data_dir / "artifacts" / "_shared").exists()

    worker_data = tmp_path / "worker-data"
    done = _remote_worker("s3-remote", pg_url, worker_data, s3_store)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_finished_and_download("s3-remote", pg_url, worker_data, sha, tmp_path)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"team-a/{export_model.store_digest_key('s3-remote')}" in keys

    runner.delete_study("s3-remote", pg_url)  # its model can no longer be fetched from the store
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"team-a/{export_model.store_digest_key('s3-remote')}" not in keys


# -- the store itself (no worker) ---------------------------------------------------------------
def test_the_same_bytes_are_uploaded_once_and_found_by_their_sha256(
    data_dir, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, sha = _create("reuse-1", None)
    second, _ = _create("reuse-2", None)
    one = first.user_attrs[study_attrs.DATASET_ARTIFACT]
    assert second.user_attrs[study_attrs.DATASET_ARTIFACT] == one
    stored = sorted(p.name for p in config.shared_artifacts_dir().iterdir())
    assert stored == sorted([one["artifact_id"], f"hpdash-dataset-{sha}"])
    # A dashboard with its own data directory creates a study on that stored dataset by its
    # SHA-256: the bytes come from the team's store, verified.
    store = config.shared_artifacts_dir()
    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "other-dashboard"))
    monkeypatch.setenv(config.ARTIFACT_STORE_ENV, str(store))
    third = runner.create_study(_spec("reuse-3", sha), f"sqlite:///{data_dir / 'hpdash.db'}")
    assert datasets.find_stored(sha) == tmp_path / "other-dashboard" / "datasets" / f"{sha}.csv"
    assert third.user_attrs[study_attrs.DATASET_ARTIFACT] == one


def test_store_settings_are_checked_with_the_fix(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ARTIFACT_STORE_ENV, "s3://Bad_Bucket")
    with pytest.raises(StorageError, match="not s3://bucket or s3://bucket/prefix"):
        artifacts.store_setting()
    monkeypatch.setenv(config.ARTIFACT_STORE_ENV, "gs://bucket")
    with pytest.raises(StorageError, match=r"a folder \(a path or a file:// URL\) or in S3"):
        artifacts.store_setting()
    monkeypatch.setenv(config.ARTIFACT_STORE_ENV, "s3://bucket/a/b/")
    monkeypatch.setenv(config.S3_ENDPOINT_ENV, "http://127.0.0.1:9")
    assert artifacts.store_setting() == artifacts.StoreSetting("s3", "bucket", "a/b/", "http://127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    with pytest.raises(StorageError, match="needs boto3: pip install boto3"):
        artifacts.artifact_store()
    with pytest.raises(StorageError, match="not an artifact id"):
        artifacts.fetch_verified("../hpdash.db", "0" * 64, "a dataset")
