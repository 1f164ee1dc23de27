"""hpdash.plots: tidy data checked by value, figures checked by their traces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpdash import plots, results

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "max_depth": IntDistribution(2, 32),
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "criterion": CategoricalDistribution(["gini", "entropy"]),
    "model": CategoricalDistribution(["random_forest", "svc"]),
    "random_forest__max_depth": IntDistribution(2, 32),
    "svc__C": FloatDistribution(1e-3, 1e3, log=True),
}
BASE = dt.datetime(2025, 1, 1, 12, 0, 0)


def add(
    study: optuna.Study,
    state: TrialState,
    value: float | None,
    params: dict[str, Any],
    start_s: float = 0.0,
    seconds: float = 1.0,
) -> None:
    """Add a finished trial starting ``start_s`` after BASE and lasting ``seconds``."""
    attrs: dict[str, Any] = {}
    if state == TrialState.COMPLETE:
        assert value is not None
        attrs = {"fold_scores": [value - 0.01, value, value + 0.01], "cv_std": 0.01}
    elif state == TrialState.FAIL:
        attrs = {"fail_reason": "boom"}
    trial = create_trial(state=state, value=value, params=params,
                         distributions={k: DISTS[k] for k in params}, user_attrs=attrs)
    trial.datetime_start = BASE + dt.timedelta(seconds=start_s)
    trial.datetime_complete = trial.datetime_start + dt.timedelta(seconds=seconds)
    study.add_trial(trial)


def p(depth: int, lr: float, crit: str) -> dict[str, Any]:
    return {"max_depth": depth, "learning_rate": lr, "criterion": crit}


def mixed_study(direction: str = "maximize") -> optuna.Study:
    """FAIL, 4 COMPLETE (one finishing out of number order), PRUNED, RUNNING, WAITING."""
    study = optuna.create_study(direction=direction)
    add(study, TrialState.FAIL, None, p(3, 0.5, "gini"), 0, 1)
    add(study, TrialState.COMPLETE, 0.7, p(4, 0.01, "gini"), 0, 50)  # completes at 50 s
    add(study, TrialState.COMPLETE, 0.8, p(16, 0.1, "entropy"), 5, 10)  # completes at 15 s
    add(study, TrialState.PRUNED, None, p(8, 0.001, "entropy"), 20, 2)
    add(study, TrialState.COMPLETE, 0.6, p(2, 0.0001, "gini"), 60, 5)  # 65 s
    add(study, TrialState.COMPLETE, 0.9, p(32, 1.0, "entropy"), 70, 5)  # 75 s
    study.ask()
    study.enqueue_trial({})
    return study


def conditional_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    rows = [("random_forest", 4, None, 0.8), ("svc", None, 0.01, 0.6),
            ("random_forest", 16, None, 0.85), ("svc", None, 100.0, 0.9)]
    for i, (model, depth, c, value) in enumerate(rows):
        params: dict[str, Any] = {"model": model}
        if depth is not None:
            params["random_forest__max_depth"] = depth
        if c is not None:
            params["svc__C"] = c
        add(study, TrialState.COMPLETE, value, params, 10 * i)
    return study


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return results.trials_frame(mixed_study())


@pytest.fixture(scope="module")
def importance_study() -> optuna.Study:
    """x decides the score; y barely matters; c not at all."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        y = trial.suggest_float("y", 0, 1)
        trial.suggest_categorical("c", ["a", "b"])
        return 10 * x + 0.01 * y

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    return study


def annotations(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


# ----------------------------------------------------------------- degenerate inputs


def one_complete_frame() -> pd.DataFrame:
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.5, p(4, 0.01, "gini"))
    return results.trials_frame(study)


def all_fail_frame() -> pd.DataFrame:
    study = optuna.create_study(direction="maximize")
    for i in range(3):
        add(study, TrialState.FAIL, None, p(4, 0.01, "gini"), i)
    return results.trials_frame(study)


FIGURES: dict[str, Callable[[pd.DataFrame], go.Figure]] = {
    "convergence": lambda f: plots.convergence_figure(f),
    "convergence_elapsed": lambda f: plots.convergence_figure(f, x="elapsed_s"),
    "parallel": lambda f: plots.parallel_coordinates_figure(f, "maximize", {"learning_rate"}),
    "slice": lambda f: plots.slice_figure(f, "max_depth"),
    "contour": lambda f: plots.contour_figure(f, "max_depth", "criterion"),
    "timeline": lambda f: plots.timeline_figure(f),
    "fold_scores": lambda f: plots.fold_scores_figure(f.iloc[:1]),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_empty_frame_gives_message(name: str) -> None:
    empty = results.trials_frame(optuna.create_study())
    fig = FIGURES[name](empty)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0 and len(annotations(fig)) == 1


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_all_fail_gives_message_or_fail_bars(name: str) -> None:
    fig = FIGURES[name](all_fail_frame())
    if name == "timeline":  # failures are exactly what a timeline should show
        assert [t.name for t in fig.data] == ["FAIL"] and len(fig.data[0].y) == 3
    else:
        assert len(fig.data) == 0 and len(annotations(fig)) == 1


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_one_trial_draws_without_error(name: str) -> None:
    fig = FIGURES[name](one_complete_frame())
    assert isinstance(fig, go.Figure) and len(fig.data) >= 1


# ----------------------------------------------------------------- convergence


def test_convergence_data_by_number(frame: pd.DataFrame) -> None:
    data = plots.convergence_data(frame, x="number")
    assert data["number"].tolist() == [1, 2, 4, 5]
    assert data["value"].tolist() == [0.7, 0.8, 0.6, 0.9]
    assert data["best_so_far"].tolist() == [0.7, 0.8, 0.8, 0.9]
    assert data["best_so_far"].tolist() == frame.loc[data["number"], "best_so_far"].tolist()


def test_convergence_data_by_elapsed_uses_completion_order(frame: pd.DataFrame) -> None:
    data = plots.convergence_data(frame, x="elapsed_s", direction="maximize")
    # Trial 2 finished (15 s) before trial 1 (50 s), so it comes first.
    assert data["number"].tolist() == [2, 1, 4, 5]
    assert data["elapsed_s"].tolist() == [15, 50, 65, 75]
    assert data["elapsed_s"].is_monotonic_increasing
    assert data["best_so_far"].tolist() == [0.8, 0.8, 0.8, 0.9]
    mini = plots.convergence_data(frame, x="elapsed_s", direction="minimize")
    assert mini["best_so_far"].tolist() == [0.8, 0.7, 0.6, 0.6]
    with pytest.raises(ValueError):
        plots.convergence_data(frame, x="datetime")


def test_convergence_figure(frame: pd.DataFrame) -> None:
    fig = plots.convergence_figure(frame, metric="accuracy")
    markers, line = fig.data
    assert markers.mode == "markers" and list(markers.y) == [0.7, 0.8, 0.6, 0.9]
    assert list(line.y) == [0.7, 0.8, 0.8, 0.9] and line.line.shape == "hv"
    assert fig.layout.xaxis.title.text == "Trial number"
    assert fig.layout.yaxis.title.text == "accuracy"
    fig = plots.convergence_figure(frame, x="elapsed_s", direction="minimize", title="T")
    assert fig.layout.xaxis.title.text == "Elapsed time (s)"
    assert fig.layout.title.text == "T"
    assert list(fig.data[1].y) == [0.8, 0.7, 0.6, 0.6]


# ----------------------------------------------------------------- parallel coordinates


def test_parallel_coordinates_dimensions(frame: pd.DataFrame) -> None:
    fig = plots.parallel_coordinates_figure(frame, "maximize", {"learning_rate"}, "accuracy")
    (trace,) = fig.data
    assert isinstance(trace, go.Parcoords)
    dims = {d.label: d for d in trace.dimensions}
    assert list(dims) == ["criterion", "learning_rate (log)", "max_depth", "accuracy"]
    # COMPLETE trials only: 1, 2, 4, 5.
    assert all(len(d.values) == 4 for d in trace.dimensions)
    crit = dims["criterion"]
    assert list(crit.ticktext) == ["entropy", "gini"] and list(crit.tickvals) == [0, 1]
    assert list(crit.values) == [1, 0, 1, 0]
    lr = dims["learning_rate (log)"]
    assert list(lr.values) == pytest.approx([-2, -1, -4, 0])
    assert list(lr.tickvals) == pytest.approx([-4, -3, -2, -1, 0])
    assert list(lr.ticktext) == ["0.0001", "0.001", "0.01", "0.1", "1"]
    assert list(dims["max_depth"].values) == [4, 16, 2, 32]
    assert list(dims["accuracy"].values) == [0.7, 0.8, 0.6, 0.9]
    assert list(trace.line.color) == [0.7, 0.8, 0.6, 0.9]
    assert trace.line.reversescale is False
    mini = plots.parallel_coordinates_figure(frame, "minimize")
    assert mini.data[0].line.reversescale is True


def test_parallel_coordinates_conditional_params() -> None:
    frame = results.trials_frame(conditional_study())
    fig = plots.parallel_coordinates_figure(frame, "maximize", {"svc__C"})
    dims = {d.label: d for d in fig.data[0].dimensions}
    assert list(dims) == ["model", "random_forest__max_depth", "svc__C (log)", "Score"]
    assert all(len(d.values) == 4 for d in dims.values())  # no trial dropped
    depth = dims["random_forest__max_depth"]
    assert depth.ticktext[0] == plots.MISSING_LABEL
    missing_at = depth.tickvals[0]
    assert depth.values[1] == missing_at == depth.values[3] < min(depth.values[0], 4)
    c = dims["svc__C (log)"]
    assert c.ticktext[0] == plots.MISSING_LABEL
    assert c.values[1] == pytest.approx(-2) and c.values[3] == pytest.approx(2)
    assert c.values[0] == c.tickvals[0] < -2
    assert list(c.ticktext[1:]) == ["0.01", "0.1", "1", "10", "100"]


# ----------------------------------------------------------------- importance


@pytest.mark.parametrize("method", ["ped_anova", "fanova"])
def test_importance_ranks_the_param_that_matters(
    importance_study: optuna.Study, method: str
) -> None:
    data = plots.importance_data(importance_study, method)
    assert list(data.columns) == ["param", "importance"]
    assert set(data["param"]) == {"x", "y", "c"}
    assert data["param"].iloc[0] == "x"
    assert data["importance"].sum() == pytest.approx(1.0)
    assert data["importance"].is_monotonic_decreasing
    assert data["importance"].iloc[0] > 0.5
    fig = plots.importance_figure(data, method)
    (bars,) = fig.data
    assert bars.orientation == "h" and len(bars.x) == 3
    assert list(bars.y) == data["param"].tolist()[::-1]  # most important drawn on top
    assert list(bars.x) == data["importance"].tolist()[::-1]
    assert plots.IMPORTANCE_LABELS[method] in fig.layout.title.text


def test_importance_empty_cases() -> None:
    study = optuna.create_study(direction="maximize")
    assert plots.importance_data(study).empty
    add(study, TrialState.COMPLETE, 0.5, p(4, 0.01, "gini"))
    assert plots.importance_data(study).empty  # one COMPLETE trial
    add(study, TrialState.COMPLETE, 0.7, p(4, 0.01, "gini"))
    add(study, TrialState.FAIL, None, p(8, 0.1, "entropy"))
    assert plots.importance_data(study).empty  # one distinct value of every param
    assert plots.importance_data(study, "fanova").empty
    fig = plots.importance_figure(plots.importance_data(study), "ped_anova")
    assert len(fig.data) == 0 and annotations(fig)
    with pytest.raises(ValueError):
        plots.importance_data(study, "shap")
    assert set(plots.IMPORTANCE_METHODS) == {"ped_anova", "fanova"}


def test_importance_with_conditional_params() -> None:
    study = conditional_study()
    ped = plots.importance_data(study, "ped_anova")
    assert {"model", "random_forest__max_depth", "svc__C"} <= set(ped["param"])
    assert ped["importance"].sum() == pytest.approx(1.0)
    # fANOVA only sees params every COMPLETE trial has.
    assert plots.importance_data(study, "fanova")["param"].tolist() == ["model"]


# ----------------------------------------------------------------- slice


def test_slice_figure(frame: pd.DataFrame) -> None:
    fig = plots.slice_figure(frame, "max_depth", metric="accuracy")
    (points,) = fig.data
    assert list(points.x) == [4, 16, 2, 32] and list(points.y) == [0.7, 0.8, 0.6, 0.9]
    assert list(points.customdata) == [1, 2, 4, 5]
    assert fig.layout.yaxis.title.text == "accuracy"
    crit = plots.slice_figure(frame, "params_criterion")
    assert crit.layout.xaxis.type == "category"
    assert list(crit.layout.xaxis.categoryarray) == ["entropy", "gini"]
    lr = plots.slice_figure(frame, "learning_rate", log_params={"learning_rate"})
    assert lr.layout.xaxis.type == "log"
    missing = plots.slice_figure(frame, "nope")
    assert len(missing.data) == 0 and "nope" in annotations(missing)[0]


def test_slice_conditional_param_keeps_only_users() -> None:
    frame = results.trials_frame(conditional_study())
    fig = plots.slice_figure(frame, "svc__C", log_params={"svc__C"})
    assert list(fig.data[0].x) == [0.01, 100.0]


# ----------------------------------------------------------------- contour


def grid_frame(direction: str = "maximize") -> pd.DataFrame:
    """A 3 x 2 grid over (max_depth, criterion), each point twice with different lr."""
    study = optuna.create_study(direction=direction)
    for depth in (2, 8, 32):
        for crit in ("gini", "entropy"):
            for lr in (0.01, 0.1):
                value = depth / 32 + (0.1 if crit == "gini" else 0.0) + lr
                add(study, TrialState.COMPLETE, value, p(depth, lr, crit))
    return results.trials_frame(study)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_contour_data_keeps_best_per_pair(direction: str) -> None:
    data = plots.contour_data(grid_frame(direction), "max_depth", "criterion", direction)
    assert len(data) == 6
    row = data[(data["x"] == 8) & (data["y"] == "gini")].iloc[0]
    lr = 0.1 if direction == "maximize" else 0.01
    assert row["value"] == pytest.approx(8 / 32 + 0.1 + lr)


def test_contour_figure_on_grid() -> None:
    fig = plots.contour_figure(grid_frame(), "max_depth", "criterion", "maximize",
                               log_params={"max_depth"})
    contour, points = fig.data
    assert isinstance(contour, go.Contour)
    assert len(points.x) == 6
    assert np.asarray(contour.z).shape == (2, 3)  # 2 categories x 3 depths
    assert not np.isnan(np.asarray(contour.z, dtype=float)).any()
    # On grid points the interpolation is exact: gini (code 1), depth 32 (log10 = 1.505).
    z = np.asarray(contour.z, dtype=float)
    assert z[1, 2] == pytest.approx(1 + 0.1 + 0.1)
    assert list(fig.layout.yaxis.ticktext) == ["entropy", "gini"]
    assert list(fig.layout.xaxis.ticktext) == ["2", "10", "32"]
    assert fig.layout.xaxis.title.text == "max_depth (log)"


def test_contour_random_points_and_degenerate_cases(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="maximize")
    for _ in range(40):
        depth, lr = int(rng.integers(2, 33)), float(10 ** rng.uniform(-4, 0))
        add(study, TrialState.COMPLETE, depth / 32 - lr, p(depth, lr, "gini"))
    fig = plots.contour_figure(results.trials_frame(study), "max_depth", "learning_rate",
                               log_params={"learning_rate"})
    assert isinstance(fig.data[0], go.Contour) and len(fig.data[1].x) == 40
    # Points all on one line (one lr per depth): falls back to nearest, does not raise.
    line = optuna.create_study()
    for d in (2, 4, 8, 16, 20, 24, 28, 32, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 17, 18):
        add(line, TrialState.COMPLETE, d, p(d, d / 100, "gini"))
    fig = plots.contour_figure(results.trials_frame(line), "max_depth", "learning_rate")
    assert isinstance(fig.data[0], go.Contour)
    # Same criterion everywhere: only the points, with a note.
    fig = plots.contour_figure(frame.assign(params_criterion="gini"), "max_depth", "criterion")
    assert [type(t) for t in fig.data] == [go.Scatter] and annotations(fig)
    same = plots.contour_figure(frame, "max_depth", "params_max_depth")
    assert len(same.data) == 0 and "different" in annotations(same)[0]
    assert plots.contour_data(frame, "max_depth", "max_depth").empty


# ----------------------------------------------------------------- timeline


def test_timeline(frame: pd.DataFrame) -> None:
    now = pd.Timestamp(BASE) + pd.Timedelta(seconds=100)
    data = plots.timeline_data(frame, now=now)
    assert len(data) == 7  # no WAITING slot
    assert data.loc[data["number"] == 1, ["start_s", "end_s"]].values.tolist() == [[0, 50]]
    fig = plots.timeline_figure(frame, now=now)
    by_state = {t.name: t for t in fig.data}
    assert set(by_state) == {"COMPLETE", "FAIL", "PRUNED", "RUNNING"}
    assert list(by_state["COMPLETE"].y) == [1, 2, 4, 5]
    assert list(by_state["COMPLETE"].base) == [0, 5, 60, 70]
    assert list(by_state["COMPLETE"].x) == [50, 10, 5, 5]
    assert all(o == "h" for o in (t.orientation for t in fig.data))
    # A RUNNING trial's bar ends at `now`.
    running = frame.copy()
    running.loc[running["state"] == "RUNNING", "datetime_start"] = BASE + dt.timedelta(seconds=90)
    fig = plots.timeline_figure(running, now=now)
    bar = next(t for t in fig.data if t.name == "RUNNING")
    assert list(bar.base) == [90] and list(bar.x) == [10]


# ----------------------------------------------------------------- fold scores


def test_fold_scores_figure_inputs() -> None:
    study = mixed_study()
    trial = study.get_trials(deepcopy=False)[2]
    fig = plots.fold_scores_figure(trial, metric="accuracy")
    assert list(fig.data[0].y) == pytest.approx([0.79, 0.8, 0.81])
    assert list(fig.data[0].x) == [0, 1, 2]
    assert "Trial 2" in fig.layout.title.text
    assert fig.layout.shapes[0].y0 == pytest.approx(0.8)  # the mean line
    same = plots.fold_scores_figure(results.fold_scores_frame(trial))
    assert list(same.data[0].y) == list(fig.data[0].y)
    row = results.trials_frame(study).iloc[[2]]
    assert list(plots.fold_scores_figure(row).data[0].y) == list(fig.data[0].y)
    failed = plots.fold_scores_figure(study.get_trials(deepcopy=False)[0])
    assert len(failed.data) == 0 and annotations(failed)


def test_figures_serialise(frame: pd.DataFrame) -> None:
    """What Streamlit does with a figure: it must turn into JSON (NaN, numpy arrays, ...)."""
    for make in FIGURES.values():
        assert make(frame).to_json()
    assert plots.contour_figure(grid_frame(), "max_depth", "learning_rate").to_json()


def test_no_streamlit_import() -> None:
    for module in (plots, results):
        source = Path(str(module.__file__)).read_text(encoding="utf-8")
        assert "streamlit" not in source
