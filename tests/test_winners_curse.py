"""The winner's curse meter: out-of-fold predictions kept by real studies, replayed through the
study's scorer, and BBC-CV on them (hpdash.objective's prediction store, hpdash.winners_curse)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, get_scorer, roc_auc_score
from threadpoolctl import threadpool_limits

from hpdash import config, objective, report, runner, statistics, winners_curse
from hpdash.spec import parse_spec
from hpdash.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Logistic regression on breast cancer, scored with ROC AUC (its decision_function): a grid
#: whose lbfgs + l1 points FAIL and whose worst points the median pruner PRUNEs.
MAIN = {
    "name": "wc-main",
    "dataset": "sklearn:breast_cancer",
    "target": "target",
    "model": "logistic_regression",
    "strategy": "grid",
    "n_trials": None,
    "grid_points": 3,
    "metric": "roc_auc",
    "pruner": "median",
    "cv": {"folds": 4},
    "seed": 0,
    "space": {
        "solver": {"type": "categorical", "choices": ["lbfgs", "liblinear"]},
        "penalty": {"type": "categorical", "choices": ["l1", "l2"]},
        "C": {"type": "float", "low": 0.001, "high": 10.0, "log": True},
    },
}
SMALL = {
    "dataset": "sklearn:iris",
    "target": "target",
    "model": "decision_tree",
    "strategy": "random",
    "n_trials": 3,
    "cv": {"folds": 3},
    "seed": 0,
}


def _launch(raw: dict[str, Any]) -> optuna.Study:
    """Create the study and run it with one real worker process (as the dashboard does)."""
    spec = parse_spec(raw)
    runner.create_study(spec)
    codes = runner.wait_for(runner.launch_workers(spec.name, None, 1))
    assert codes == [0], "\n".join(p.read_text() for p in runner.workers_log_dir().glob(f"{spec.name}-*.log"))
    return runner.load_study(spec.name)


def _run_here(raw: dict[str, Any]) -> optuna.Study:
    """Create the study and run its worker in this process (runner.run_here)."""
    spec = parse_spec(raw)
    runner.create_study(spec)
    runner.run_here(spec.name)
    return runner.load_study(spec.name)


@pytest.fixture(scope="module")
def main_study(tmp_path_factory) -> tuple[optuna.Study, Path]:
    """The MAIN study, run once for the module in its own data directory."""
    data = tmp_path_factory.mktemp("wc") / "data"
    data.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPDASH_DATA_DIR", str(data))
        mp.delenv("HPDASH_STORAGE", raising=False)
        mp.delenv("HPDASH_MAX_OOF_ROWS", raising=False)
        study = _launch(MAIN)
        yield study, data


@pytest.fixture
def in_main(main_study, monkeypatch: pytest.MonkeyPatch) -> tuple[optuna.Study, Path]:
    study, data = main_study
    monkeypatch.setenv("HPDASH_DATA_DIR", str(data))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    return runner.load_study(study.study_name), data


def _artifact_file(data: Path, study: str, trial: optuna.trial.FrozenTrial) -> Path:
    (meta,) = objective.oof_artifacts(trial)
    return data / "artifacts" / study / meta.artifact_id


def _load(path: Path) -> dict[str, np.ndarray]:
    """The trial's .npz read with NumPy alone (no hpdash decoding)."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


# --------------------------------------------------------------------------------------------
# What a real study stores
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_study_stores_one_artifact_per_complete_trial_and_none_for_pruned_or_failed(in_main) -> None:
    study, data = in_main
    trials = study.get_trials()
    by_state = {state: [t for t in trials if t.state == state] for state in TrialState}
    complete = by_state[TrialState.COMPLETE]
    assert complete and by_state[TrialState.PRUNED] and by_state[TrialState.FAIL]
    store = open_storage(config.storage_url(), heartbeat=False)
    for trial in trials:
        listed = optuna.artifacts.get_all_artifact_meta(trial, storage=store)  # what other Optuna tools list
        assert [m.artifact_id for m in objective.oof_artifacts(trial)] == [m.artifact_id for m in listed]
        if trial.state == TrialState.COMPLETE:
            assert [m.filename for m in listed] == [f"oof-trial-{trial.number}.npz"]
            assert set(trial.user_attrs) >= {"oof_time"} and "oof_error" not in trial.user_attrs
        else:
            assert listed == [] and not {"oof_time", "oof_error"} & set(trial.user_attrs)
    folder = data / "artifacts" / study.study_name
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        objective.oof_artifacts(t)[0].artifact_id for t in complete
    )
    # what the artifacts API downloads is the stored file
    trial = complete[0]
    target = data.parent / "download.npz"
    optuna.artifacts.download_artifact(
        artifact_store=objective.artifact_store(study.study_name),
        artifact_id=objective.oof_artifacts(trial)[0].artifact_id,
        file_path=str(target),
    )
    assert target.read_bytes() == _artifact_file(data, study.study_name, trial).read_bytes()


@pytest.mark.slow
def test_replayed_folds_equal_the_stored_fold_scores(in_main) -> None:
    """Each COMPLETE trial's stored predictions, read with np.load, replayed through the study's
    scorer on fold j's rows, give its stored fold_scores[j] (to 1e-12); the pooled replay is
    roc_auc_score of the pooled decision values."""
    study, data = in_main
    spec = runner.load_spec_of(study)
    problem = runner.load_problem(spec, None)
    y = problem.y_train.to_numpy()
    scorer = problem.scorer
    assert objective.fold_of_rows(problem).tolist() == [
        next(k for k, (_, test) in enumerate(problem.splits) if i in test) for i in range(len(y))
    ]
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        arrays = _load(_artifact_file(data, study.study_name, trial))
        assert set(arrays) == {"predict_codes", "classes", "predict_proba", "decision_function", "fold", "meta"}
        assert arrays["decision_function"].dtype == np.float64  # the scorer's method, as the model gave it
        assert arrays["predict_proba"].dtype == np.float32
        assert arrays["fold"].tolist() == objective.fold_of_rows(problem).tolist()
        classes = arrays["classes"].astype(object)
        outputs = {
            "predict": classes[arrays["predict_codes"]],
            "predict_proba": arrays["predict_proba"],
            "decision_function": arrays["decision_function"],
        }
        replay = objective.ReplayClassifier(outputs, classes)
        for j, stored in enumerate(trial.user_attrs["fold_scores"]):
            rows = np.flatnonzero(arrays["fold"] == j)
            assert abs(scorer(replay, objective.index_column(rows), y[rows]) - stored) <= 1e-12
        everything = objective.index_column(np.arange(len(y)))
        assert scorer(replay, everything, y) == roc_auc_score(y, arrays["decision_function"])
        assert get_scorer("accuracy")(replay, everything, y) == accuracy_score(y, outputs["predict"])


@pytest.mark.slow
def test_winners_curse_is_bbc_cv_on_the_stored_predictions(in_main) -> None:
    """``winners_curse`` equals ``statistics.bbc_cv`` run here on the OOF matrix loaded with
    np.load, with the study's metric (ROC AUC of the decision values)."""
    study, data = in_main
    problem = runner.load_problem(runner.load_spec_of(study), None)
    y = problem.y_train.to_numpy()
    complete = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    matrix = np.column_stack([_load(_artifact_file(data, study.study_name, t))["decision_function"] for t in complete])
    expected = statistics.bbc_cv(matrix, y, roc_auc_score, "maximize", n_bootstrap=60, seed=3)
    found = winners_curse.winners_curse(study, n_bootstrap=60, seed=3, max_configs=None)
    assert found is not None
    assert found.trials == tuple(t.number for t in complete)
    assert (found.raw_best, found.corrected, found.ci_low, found.ci_high, found.bias, found.n_bootstrap) == (
        expected.raw_best,
        expected.corrected,
        expected.ci_low,
        expected.ci_high,
        expected.bias,
        expected.n_bootstrap,
    )
    assert found.method == expected.method and "BBC-CV" in found.method and "60 bootstraps" in found.method
    assert found.bias == found.raw_best - found.corrected
    pooled = [roc_auc_score(y, matrix[:, j]) for j in range(len(complete))]
    assert found.raw_trial == complete[int(np.argmax(pooled))].number
    assert found.best_cv == study.best_value and found.best_trial == study.best_trial.number
    refit = runner.refit_info(study)
    assert refit is not None and found.holdout == refit["holdout_score"]
    assert found.n_configs == found.n_available == found.n_complete == len(complete)
    assert found.rows == len(y) and found.metric == "roc_auc" and found.direction == "maximize"

    # the best few by CV only, and said so
    best3 = winners_curse.winners_curse(study, n_bootstrap=20, seed=0, max_configs=3)
    assert best3 is not None
    top = sorted(complete, key=lambda t: -t.value)[:3]
    assert best3.trials == tuple(sorted(t.number for t in top))
    assert best3.note is not None and f"the 3 best of {len(complete)} configurations by CV score" in best3.note


@pytest.mark.slow
def test_the_study_report_shows_the_selection_bias(in_main, monkeypatch) -> None:
    study, _ = in_main
    monkeypatch.setattr(winners_curse, "DEFAULT_N_BOOTSTRAP", 100)  # what the report asks for
    html = report.study_html(study)
    found = winners_curse.winners_curse(study, n_bootstrap=100)  # the report's, from the cache
    assert found is not None
    section = html[html.index("<h2>Selection bias (BBC-CV)</h2>") : html.index("<h2>Figures</h2>")]
    for text in (
        f"{found.raw_best:.4f} (trial {found.raw_trial})",
        f"{found.corrected:.4f}",
        f"[{found.ci_low:.4f}, {found.ci_high:.4f}]",
        f"{found.holdout:.4f}",
        f"{found.bias:+.4f}",
        "BBC-CV (Tsamardinos et al. 2018), 100 bootstraps, 95% percentile interval",
    ):
        assert text in section, text


@pytest.mark.slow
def test_by_strategy_gives_one_row_per_study(in_main) -> None:
    study, _ = in_main
    plain = optuna.create_study(direction="maximize")  # not an hpdash study
    frame = winners_curse.winners_curse_by_strategy([study, plain], n_bootstrap=20)
    assert list(frame["study"]) == ["wc-main", plain.study_name]
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["strategy"] == "grid" and first["split_seed"] == 0 and pd.isna(first["reason"])
    expected = winners_curse.winners_curse(study, n_bootstrap=20)
    assert expected is not None and first["corrected"] == expected.corrected and first["bias"] == expected.bias
    assert "not created by hpdash" in second["reason"] and pd.isna(second["corrected"])


# --------------------------------------------------------------------------------------------
# Nothing stored, and why
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_keep_predictions_false_stores_nothing(data_dir) -> None:
    study = _run_here({**SMALL, "name": "wc-off", "keep_predictions": False})
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert all(not any(key.startswith("artifacts:") for key in t.system_attrs) for t in complete)
    assert all(not {"oof_time", "oof_error", "oof_skipped"} & set(t.user_attrs) for t in complete)
    assert not (data_dir / "artifacts" / "wc-off").exists()
    assert winners_curse.winners_curse(study) is None
    assert "keep_predictions: false" in str(winners_curse.winners_curse_or_reason(study))
    assert "Selection bias (BBC-CV): not available. The study keeps no out-of-fold predictions" in (
        report.study_html(study)
    )


@pytest.mark.slow
def test_a_study_over_the_row_bound_stores_nothing_and_says_why(data_dir, monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_OOF_ROWS", "100")  # iris's training part has 120 rows
    study = _launch({**SMALL, "name": "wc-big"})
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3 and all(not objective.oof_artifacts(t) for t in complete)
    why = "The training part has 120 rows, more than the 100 whose out-of-fold predictions a trial keeps (HPDASH_MAX_OOF_ROWS)."
    assert all(t.user_attrs["oof_skipped"] == why for t in complete)
    assert not any((data_dir / "artifacts").glob("wc-big/*"))
    assert winners_curse.winners_curse(study) is None
    assert winners_curse.winners_curse_or_reason(study) == why


@pytest.mark.slow
def test_an_older_study_without_predictions_says_so(data_dir, monkeypatch) -> None:
    study = _run_here({**SMALL, "name": "wc-old"})
    for path in (data_dir / "artifacts" / "wc-old").iterdir():
        path.unlink()
    reason = winners_curse.winners_curse_or_reason(study)
    folder = data_dir.resolve() / "artifacts" / "wc-old"
    assert reason == (
        f"Left out trial(s) 0, 1, 2: its predictions file is not in {folder} (deleted, or the workers' data "
        "directory is another one: set HPDASH_DATA_DIR to it)."
    )
    # a reader whose data directory is another one creates nothing there
    elsewhere = data_dir.parent / "elsewhere"
    monkeypatch.setenv("HPDASH_DATA_DIR", str(elsewhere))
    assert "its predictions file is not in" in str(winners_curse.winners_curse_or_reason(study))
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    monkeypatch.setenv("HPDASH_DATA_DIR", str(data_dir))
    # a study whose trials never stored any (made before hpdash kept them)
    bare = optuna.create_study(storage=config.storage_url(), direction="maximize", study_name="wc-older")
    bare.set_user_attr("hpdash.spec", runner.load_spec_of(study).replace(name="wc-older").to_dict())
    bare.add_trial(optuna.trial.create_trial(value=0.9, user_attrs={"fold_scores": [0.9, 0.9, 0.9]}))
    assert "the study ran before hpdash kept them" in str(winners_curse.winners_curse_or_reason(bare))


# --------------------------------------------------------------------------------------------
# Deleting a study
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_deleting_a_study_removes_its_artifacts_and_nothing_else(data_dir) -> None:
    """delete_study removes the study's artifacts folder (and, as before, its model files and
    logs), never another study's files, even one whose name starts like it."""
    import re

    _run_here({**SMALL, "name": "wc-gone"})
    _run_here({**SMALL, "name": "wc-gone-0"})
    artifacts = data_dir / "artifacts"
    assert len(list((artifacts / "wc-gone").iterdir())) == 3
    (artifacts / "not-a-study.txt").write_text("keep me")

    def files() -> set[str]:
        return {
            p.relative_to(data_dir).as_posix()
            for p in data_dir.rglob("*")
            if p.is_file() and not p.name.startswith("hpdash.db")  # the database changes anyway
        }

    before = files()
    runner.delete_study("wc-gone")
    removed = before - files()
    assert {p for p in before if p.startswith("artifacts/wc-gone/")} <= removed
    owned = re.compile(
        r"artifacts/wc-gone/[^/]+|models/wc-gone\.joblib(\.sha256)?|logs/wc-gone(-\d+)?\.log"
        r"|artifacts/_shared/hpdash-model-wc-gone\.joblib\.sha256"  # its digest in the team's store
    )
    assert all(owned.fullmatch(p) for p in removed), sorted(removed)
    assert not (artifacts / "wc-gone").exists() and (artifacts / "not-a-study.txt").read_text() == "keep me"
    assert len(list((artifacts / "wc-gone-0").iterdir())) == 3
    assert winners_curse.winners_curse(runner.load_study("wc-gone-0"), n_bootstrap=10) is not None


def test_the_artifacts_folder_is_named_from_the_study_name_only(data_dir) -> None:
    base = (data_dir / "artifacts").resolve()
    assert objective.artifacts_folder("iris-tpe") == base / "iris-tpe"
    for name in ("../../etc", "a/b", "..", "/abs"):
        folder = objective.artifacts_folder(name)
        assert folder.parent == base and folder.name.startswith("_sha256-")
    assert not base.exists()  # naming a folder creates nothing
    base.mkdir()
    outside = data_dir.parent / "outside"
    outside.mkdir()
    (outside / "x").write_text("x")
    (base / "linked").symlink_to(outside, target_is_directory=True)
    assert objective.delete_artifacts("linked") and (outside / "x").read_text() == "x"
    assert not objective.delete_artifacts("never-ran")


# --------------------------------------------------------------------------------------------
# Class positions score as labels
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", [m for m in objective.CLASSIFICATION_METRICS if objective.codes_score_as_labels(m)])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_class_positions_score_exactly_as_labels(metric: str, n_classes: int) -> None:
    """``winners_curse`` scores label-only metrics on class positions (sorting text labels is
    most of a scorer call): each gives exactly the score of the labels."""
    if metric in objective.BINARY_ONLY_METRICS and n_classes > 2:
        pytest.skip("a two-class metric")
    rng = np.random.default_rng(n_classes)
    classes = np.array(["ant", "bee", "cat"][:n_classes], dtype=object)
    n = 200
    y = classes[rng.integers(0, n_classes, n)]
    proba = rng.dirichlet(np.ones(n_classes), size=n)
    codes = proba.argmax(axis=1)
    decision = proba[:, 1] - proba[:, 0] if n_classes == 2 else proba - 0.5
    oof = objective.OOFPredictions(
        0,
        {"predict": classes[codes], "predict_proba": proba, "decision_function": decision},
        classes,
        np.zeros(n, dtype=np.int16),
        {},
        codes,
    )
    y_codes = objective.label_codes(y, classes)
    assert y_codes is not None
    scorer = get_scorer(metric)
    for rows in (np.arange(n), rng.integers(0, n, n)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            as_labels = scorer(oof.replay(), objective.index_column(rows), y[rows])
            as_codes = scorer(oof.replay(as_codes=True), objective.index_column(rows), y_codes[rows])
        assert as_codes == as_labels


# --------------------------------------------------------------------------------------------
# Every conformance table shape keeps its predictions
# --------------------------------------------------------------------------------------------
#: One family per kind of response: probabilities (tree), decision scores only (SVC), a
#: linear model with both (classification) or a standardised target (SVR); the ensembles'
#: native categories (histogram gradient boosting).
SHAPE_FAMILIES = ("decision_tree", "svm", "hist_gradient_boosting", "logistic_regression", "ridge")


def test_every_conformance_shape_keeps_replayable_predictions(tmp_path, monkeypatch) -> None:
    """On every table shape of the conformance matrix, a real trial of each family above keeps
    its out-of-fold predictions, and the replay of each fold gives its stored score."""
    from test_conformance import SHAPES, family_plan, shape_plan

    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "data"))
    storage = open_storage(f"sqlite:///{tmp_path / 'shapes.db'}", heartbeat=False)
    checked = 0
    with threadpool_limits(limits=1):
        for shape in SHAPES:
            for task in shape.tasks:
                plan = shape_plan(task, shape.name)
                for key in SHAPE_FAMILIES:
                    if key not in plan.spaces:
                        continue
                    one = family_plan(plan, key)
                    problem = one.problem()
                    study = optuna.create_study(
                        study_name=f"{one.spec.name}-{checked}",
                        storage=storage,
                        direction="maximize",
                        sampler=optuna.samplers.RandomSampler(seed=0),
                    )
                    run = objective.make_objective(problem, predictions=objective.PredictionStore(10_000))
                    study.optimize(run, n_trials=1)
                    (trial,) = study.get_trials()
                    case = (key, task, shape.name)
                    assert trial.state == TrialState.COMPLETE, (case, trial.user_attrs.get("fail_reason"))
                    assert "oof_error" not in trial.user_attrs, (case, trial.user_attrs["oof_error"])
                    oof = objective.load_oof(study.study_name, trial)
                    assert oof is not None and oof.rows == len(problem.y_train), case
                    y = problem.y_train.to_numpy()
                    for j, stored in enumerate(trial.user_attrs["fold_scores"]):
                        rows = np.flatnonzero(oof.fold == j)
                        replayed = problem.scorer(oof.replay(), objective.index_column(rows), y[rows])
                        assert abs(replayed - stored) <= 1e-12, case
                    checked += 1
    assert checked >= 30
