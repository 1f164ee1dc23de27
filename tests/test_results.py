"""hpdash.results: the trials frame and the study summary, on real Optuna studies."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpdash import results

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "max_depth": IntDistribution(2, 32),
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "criterion": CategoricalDistribution(["gini", "entropy"]),
}
BASE = dt.datetime.now() - dt.timedelta(hours=1)

# (state, value, params) in trial-number order; trial i starts at BASE + 10 i s and takes 5 + i s.
TRIALS: list[tuple[TrialState, float | None, dict[str, Any]]] = [
    (TrialState.FAIL, None, {"max_depth": 3, "learning_rate": 0.5, "criterion": "gini"}),
    (TrialState.COMPLETE, 0.7, {"max_depth": 4, "learning_rate": 0.01, "criterion": "gini"}),
    (TrialState.PRUNED, None, {"max_depth": 8, "learning_rate": 0.001, "criterion": "entropy"}),
    (TrialState.COMPLETE, 0.8, {"max_depth": 16, "learning_rate": 0.1, "criterion": "entropy"}),
    (TrialState.COMPLETE, 0.6, {"max_depth": 2, "learning_rate": 0.0001, "criterion": "gini"}),
    (TrialState.COMPLETE, 0.9, {"max_depth": 32, "learning_rate": 1.0, "criterion": "entropy"}),
]


def add(
    study: optuna.Study,
    state: TrialState,
    value: float | None,
    params: dict[str, Any],
    dists: dict[str, Any],
    start: dt.datetime,
    seconds: float,
) -> None:
    """Add a finished trial with hpdash's user attrs and controlled datetimes."""
    attrs: dict[str, Any] = {}
    inter: dict[int, float] = {}
    if state == TrialState.COMPLETE:
        assert value is not None
        folds = [value - 0.02, value, value + 0.02]
        attrs = {"fold_scores": folds, "cv_mean": value, "cv_std": float(np.std(folds)),
                 "fit_time": 0.5, "score_time": 0.1}
        inter = dict(enumerate(folds))
    elif state == TrialState.PRUNED:
        attrs = {"pruned_at_fold": 1}
        inter = {0: 0.3, 1: 0.2}
    elif state == TrialState.FAIL:
        attrs = {"fail_reason": "ValueError: bad combination"}
    trial = create_trial(state=state, value=value, params=params,
                         distributions={k: dists[k] for k in params},
                         user_attrs=attrs, intermediate_values=inter)
    trial.datetime_start = start
    trial.datetime_complete = start + dt.timedelta(seconds=seconds)
    study.add_trial(trial)


def build_study(direction: str = "maximize", storage: str | None = None) -> optuna.Study:
    """TRIALS, then one RUNNING trial and two WAITING budget slots."""
    study = optuna.create_study(direction=direction, storage=storage)
    study.set_user_attr("hpdash.spec", {"name": "s", "metric": "accuracy", "n_trials": 9})
    for i, (state, value, params) in enumerate(TRIALS):
        add(study, state, value, params, DISTS, BASE + dt.timedelta(seconds=10 * i), 5 + i)
    study.ask({"max_depth": DISTS["max_depth"]})  # RUNNING, with one param so far
    study.enqueue_trial({"max_depth": 5})
    study.enqueue_trial({"max_depth": 6})
    return study


def nan_list(values: pd.Series) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 9) for v in values]


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    return build_study()


def test_waiting_excluded_and_sorted(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    assert len(study.get_trials(deepcopy=False)) == 9
    assert frame["number"].tolist() == list(range(7))
    assert "WAITING" not in set(frame["state"])
    assert frame["state"].tolist() == [
        "FAIL", "COMPLETE", "PRUNED", "COMPLETE", "COMPLETE", "COMPLETE", "RUNNING"]


def test_columns_and_params(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    params = ["params_criterion", "params_learning_rate", "params_max_depth"]
    assert list(frame.columns) == results.BASE_COLUMNS + params
    assert results.param_columns(frame) == params
    assert frame["params_criterion"].tolist()[:6] == [p["criterion"] for _, _, p in TRIALS]
    # Same naming as Optuna's own trials_dataframe.
    optuna_cols = {c for c in study.trials_dataframe().columns if c.startswith("params_")}
    assert optuna_cols == set(params)
    # The RUNNING trial has only suggested max_depth so far.
    running = frame.iloc[6]
    assert 2 <= running["params_max_depth"] <= 32
    assert pd.isna(running["params_criterion"])


def test_values_and_attrs(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    assert nan_list(frame["value"]) == [None, 0.7, None, 0.8, 0.6, 0.9, None]
    assert frame.loc[1, "fold_scores"] == pytest.approx([0.68, 0.7, 0.72])
    assert frame.loc[0, "fold_scores"] is None
    assert frame.loc[0, "fail_reason"] == "ValueError: bad combination"
    assert frame.loc[1, "fail_reason"] is None
    assert frame.loc[2, "pruned_at_fold"] == 1
    assert pd.isna(frame.loc[1, "pruned_at_fold"])
    assert frame.loc[3, "fit_time"] == 0.5
    assert frame.loc[3, "score_time"] == 0.1
    assert frame.loc[3, "cv_std"] == pytest.approx(np.std([0.78, 0.8, 0.82]))
    assert math.isnan(frame.loc[0, "cv_std"])


def test_times(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    assert pd.api.types.is_datetime64_any_dtype(frame["datetime_start"])
    assert pd.api.types.is_datetime64_any_dtype(frame["datetime_complete"])
    assert frame["duration_s"].tolist()[:6] == pytest.approx([5, 6, 7, 8, 9, 10])
    # elapsed = from trial 0's start to each completion: 10 i + 5 + i.
    assert frame["elapsed_s"].tolist()[:6] == pytest.approx([11 * i + 5 for i in range(6)])
    assert frame["elapsed_s"].iloc[:6].is_monotonic_increasing
    assert pd.isna(frame.loc[6, "datetime_complete"])
    assert math.isnan(frame.loc[6, "elapsed_s"]) and math.isnan(frame.loc[6, "duration_s"])


@pytest.mark.parametrize(
    ("direction", "expected_best", "best_number"),
    [
        ("maximize", [None, 0.7, 0.7, 0.8, 0.8, 0.9, 0.9], 5),
        ("minimize", [None, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6], 4),
    ],
)
def test_best_so_far_both_directions(
    direction: str, expected_best: list[float | None], best_number: int
) -> None:
    study = build_study(direction)
    frame = results.trials_frame(study)
    assert nan_list(frame["best_so_far"]) == expected_best
    assert frame.loc[frame["is_best"], "number"].tolist() == [best_number]
    assert study.best_trial.number == best_number
    summary = results.study_summary(study)
    assert summary["direction"] == direction
    assert summary["best_trial_number"] == best_number
    assert summary["best_value"] == pytest.approx(expected_best[-1])
    assert summary["best_params"] == TRIALS[best_number][2]


def test_is_best_ties_take_lowest_number() -> None:
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate([0.5, 0.9, 0.9]):
        add(study, TrialState.COMPLETE, v, {"max_depth": i + 2}, DISTS, BASE, 1)
    frame = results.trials_frame(study)
    assert frame["is_best"].tolist() == [False, True, False]
    assert results.study_summary(study)["best_trial_number"] == 1


def test_summary_counts(study: optuna.Study) -> None:
    summary = results.study_summary(study)
    assert summary == {
        "n_trials": 7, "n_complete": 4, "n_pruned": 1, "n_fail": 1, "n_running": 1,
        "n_waiting": 2, "best_value": 0.9, "best_params": TRIALS[5][2],
        "best_trial_number": 5, "direction": "maximize", "metric": "accuracy",
    }


def test_empty_study() -> None:
    study = optuna.create_study()
    study.enqueue_trial({})  # a lone WAITING slot is still "no trials"
    frame = results.trials_frame(study)
    assert frame.empty
    assert list(frame.columns) == results.BASE_COLUMNS
    assert results.param_columns(frame) == []
    summary = results.study_summary(study)
    assert summary["n_trials"] == 0 and summary["n_waiting"] == 1
    assert summary["best_value"] is None and summary["best_params"] == {}
    assert summary["best_trial_number"] is None and summary["direction"] == "minimize"


def test_conditional_params_are_nan_where_unused() -> None:
    dists = {
        "model": CategoricalDistribution(["random_forest", "svc"]),
        "random_forest__max_depth": IntDistribution(2, 32),
        "svc__C": FloatDistribution(1e-3, 1e3, log=True),
    }
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.8,
        {"model": "random_forest", "random_forest__max_depth": 4}, dists, BASE, 1)
    add(study, TrialState.COMPLETE, 0.85, {"model": "svc", "svc__C": 10.0}, dists, BASE, 1)
    frame = results.trials_frame(study)
    assert results.param_columns(frame) == [
        "params_model", "params_random_forest__max_depth", "params_svc__C"]
    assert frame["params_model"].tolist() == ["random_forest", "svc"]
    assert frame.loc[0, "params_random_forest__max_depth"] == 4
    assert pd.isna(frame.loc[1, "params_random_forest__max_depth"])
    assert pd.isna(frame.loc[0, "params_svc__C"]) and frame.loc[1, "params_svc__C"] == 10.0
    assert results.log_params(study) == {"svc__C"}


def test_sqlite_storage_matches_in_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hp.db'}"
    on_disk = results.trials_frame(build_study("maximize", storage=url))
    in_memory = results.trials_frame(build_study("maximize"))
    columns = [c for c in on_disk.columns if c not in ("datetime_start", "datetime_complete")]
    # The RUNNING trial starts "now" in each study, so compare the finished ones.
    pd.testing.assert_frame_equal(on_disk.loc[:5, columns], in_memory.loc[:5, columns])
    assert results.study_summary(optuna.load_study(study_name=None, storage=url))[
        "n_waiting"] == 2


def test_fold_scores_frame(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    folds = results.fold_scores_frame(trials[3])
    assert folds["fold"].tolist() == [0, 1, 2]
    assert folds["score"].tolist() == pytest.approx([0.78, 0.8, 0.82])
    # A pruned trial without the user attr falls back to its intermediate values.
    pruned = results.fold_scores_frame(trials[2])
    assert pruned["fold"].tolist() == [0, 1] and pruned["score"].tolist() == [0.3, 0.2]
    empty = results.fold_scores_frame(trials[0])
    assert empty.empty and list(empty.columns) == ["fold", "score"]


def test_param_column_helpers() -> None:
    frame = pd.DataFrame({"params_x": [1.0], "value": [0.0]})
    assert results.param_column(frame, "x") == "params_x"
    assert results.param_column(frame, "params_x") == "params_x"
    assert results.param_name("params_x") == "x"
    with pytest.raises(KeyError):
        results.param_column(frame, "value")
