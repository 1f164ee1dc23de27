"""Our storage opens in other Optuna tools, and the final model is offered safely (skops)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import joblib
import pytest
from optuna.trial import TrialState
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash import config, export_model, runner
from hpdash.errors import StorageError
from hpdash.spec import parse_spec

pytestmark = pytest.mark.slow


def _get(app, path: str) -> tuple[str, dict]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], json.loads(body)


def _run_study(name: str, storage: str | None, n_trials: int = 4):
    spec = parse_spec(
        {
            "name": name,
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "k_nearest_neighbors",
            "strategy": "random",
            "n_trials": n_trials,
            "cv": {"folds": 3},
        }
    )
    runner.create_study(spec, storage)
    assert runner.wait_for(runner.launch_workers(name, storage, 1)) == [0]
    return runner.load_study(name, storage)


def _dashboard_lists(storage_url: str, name: str, study) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    app = optuna_dashboard.wsgi(storage_url)
    status, listing = _get(app, "/api/studies")
    assert status.startswith("200"), status
    ours = [s for s in listing["study_summaries"] if s["study_name"] == name]
    assert len(ours) == 1
    status, detail = _get(app, f"/api/studies/{ours[0]['study_id']}")
    assert status.startswith("200"), status
    trials = detail["trials"]
    assert len(trials) == len(study.trials)
    ours_by_number = {t.number: t for t in study.trials}
    for t in trials:
        mine = ours_by_number[t["number"]]
        assert t["state"].upper() == mine.state.name
        if mine.state == TrialState.COMPLETE:
            assert t["values"][0] == pytest.approx(mine.value)
            assert {p["name"] for p in t["params"]} == set(mine.params)


def test_optuna_dashboard_reads_our_sqlite_storage(data_dir) -> None:
    study = _run_study("dash-sqlite", None)
    _dashboard_lists(config.storage_url(), "dash-sqlite", study)


def test_optuna_dashboard_reads_our_postgres_storage(data_dir, pg_url) -> None:
    study = _run_study("dash-pg", pg_url)
    _dashboard_lists(pg_url, "dash-pg", study)


def test_optuna_dashboard_serves_the_notes_hpdash_writes(data_dir) -> None:
    """The study note and a trial note written through hpdash's catalogue are the ones
    optuna-dashboard's own API serves for that study and that trial."""
    import optuna_dashboard

    from hpdash.store import Catalogue

    _run_study("dash-notes", None, n_trials=2)
    catalogue = Catalogue()
    catalogue.set_note("dash-notes", "## Study note\nfrom hpdash")
    catalogue.set_trial_note("dash-notes", 1, "trial 1, from hpdash")
    app = optuna_dashboard.wsgi(config.storage_url())
    _, listing = _get(app, "/api/studies")
    (study_id,) = [s["study_id"] for s in listing["study_summaries"] if s["study_name"] == "dash-notes"]
    _, detail = _get(app, f"/api/studies/{study_id}")
    assert detail["note"]["body"] == "## Study note\nfrom hpdash"
    assert {t["number"]: t["note"]["body"] for t in detail["trials"]} == {0: "", 1: "trial 1, from hpdash"}


def test_refit_model_downloads_as_skops_that_loads_without_pickle(data_dir) -> None:
    study = _run_study("skops", None)
    info = runner.refit_info(study)
    assert info and info["path"], info
    downloads = export_model.model_downloads("skops", info)
    assert [d["format"] for d in downloads] == ["skops", "joblib"]
    assert [d["ready"] for d in downloads] == [False, True]  # skops is made on first download
    assert "never runs code" in downloads[0]["note"] and "arbitrary code" in downloads[1]["note"]
    data = export_model.skops_bytes("skops")
    ready = export_model.model_downloads("skops", info)[0]
    assert ready["ready"] and ready["sha256"] == hashlib.sha256(data).hexdigest()
    model = export_model.load_skops(ready["path"])
    problem = runner.load_problem(runner.load_spec_of(study), None)
    assert model.score(problem.X_test, problem.y_test) == pytest.approx(info["holdout_score"])
    assert (model.predict(problem.X_test) == joblib.load(info["path"]).predict(problem.X_test)).all()
    # Refitting again drops the stale skops copy; deleting the study removes both files.
    runner.refit("skops")
    info = runner.refit_info(runner.load_study("skops"))
    assert not export_model.model_downloads("skops", info)[0]["ready"]
    export_model.ensure_skops("skops")
    runner.delete_study("skops")
    assert not Path(info["path"]).exists() and not Path(ready["path"]).exists()


def test_skops_copy_refuses_a_joblib_file_it_did_not_write(data_dir) -> None:
    """The joblib file is unpickled only when its SHA-256 is the one the refit recorded."""
    study = _run_study("swapped", None)
    info = runner.refit_info(study)
    joblib.dump({"not": "the refit model"}, info["path"])
    with pytest.raises(StorageError, match="SHA-256 differs"):
        export_model.ensure_skops("swapped")
    assert not export_model.model_files("swapped").skops.exists()


class Payload:
    """Stands for a type a crafted model file could smuggle in."""

    def __init__(self) -> None:
        self.command = "echo pwned"


def test_skops_refuses_untrusted_types(tmp_path) -> None:
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "crafted.skops"
    sio.dump(Pipeline([("f", FunctionTransformer()), ("p", Payload())]), path)
    untrusted = export_model.untrusted_types(path)
    assert untrusted == [f"{Payload.__module__}.Payload"], untrusted
    with pytest.raises(StorageError, match="Payload"):
        export_model.load_skops(path)
