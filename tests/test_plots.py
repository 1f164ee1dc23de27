"""hpdash.plots: tidy data checked by value, figures checked by their traces."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from hpdash import compare, plots, results

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
    trial = create_trial(
        state=state, value=value, params=params, distributions={k: DISTS[k] for k in params}, user_attrs=attrs
    )
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
    rows = [
        ("random_forest", 4, None, 0.8),
        ("svc", None, 0.01, 0.6),
        ("random_forest", 16, None, 0.85),
        ("svc", None, 100.0, 0.9),
    ]
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

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
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


# The layout tests draw nothing: they place each axis title, tick label and range number where
# Plotly's parcoords puts it (axes evenly over the plot width; a title 28 px above its axis,
# starting there when turned by more than ~26.6 degrees, centred when flat; tick labels left of
# their axis; range numbers centred on it) and measure text as CHAR_EM em per character, then
# check that no two overlap and none leaves the figure. tests/e2e measures the same in Chromium.
CHAR_EM = 0.6
ASCENT, DESCENT = 0.95, 0.3  # of the font size, above and below the baseline


def _rect(anchor: tuple[float, float], width: float, size: float, degrees: float, align: str) -> np.ndarray:
    """Corners of a text box whose baseline starts (``start``) or is centred (``middle``) at
    ``anchor``, turned by ``degrees`` (SVG: negative turns upwards to the right)."""
    a = np.radians(degrees)
    along = np.array([np.cos(a), np.sin(a)])
    up = np.array([np.sin(a), -np.cos(a)])
    start = np.asarray(anchor) - (along * width / 2 if align == "middle" else 0)
    base = [start - up * DESCENT * size, start + along * width - up * DESCENT * size]
    return np.array(
        [base[0], base[1], base[1] + up * (ASCENT + DESCENT) * size, base[0] + up * (ASCENT + DESCENT) * size]
    )


def _overlap(p: np.ndarray, q: np.ndarray) -> bool:
    """Whether two convex polygons overlap (separating axis theorem)."""
    for poly in (p, q):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            normal = np.array([-edge[1], edge[0]])
            a, b = p @ normal, q @ normal
            if a.max() <= b.min() or b.max() <= a.min():
                return False
    return True


def parcoords_boxes(fig: go.Figure, width: float) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Every text of a parcoords figure drawn ``width`` px wide, as (text, corners) by kind."""
    (trace,) = fig.data
    m = fig.layout.margin
    top, plot_w = m.t, width - m.l - m.r
    plot_h = fig.layout.height - m.t - m.b
    dims = list(trace.dimensions)
    n = len(dims)
    xs = [m.l + (i * plot_w / (n - 1) if n > 1 else 0) for i in range(n)]
    angle = trace.labelangle or 0
    a = np.radians(angle)
    align = "start" if 2 * abs(np.sin(a)) > abs(np.cos(a)) else "middle"
    label, tick, rng = trace.labelfont.size, trace.tickfont.size, trace.rangefont.size
    out: dict[str, list[tuple[str, np.ndarray]]] = {"titles": [], "ticks": [], "ranges": []}
    for x, dim in zip(xs, dims):
        w = len(dim.label) * CHAR_EM * label
        out["titles"].append((dim.label, _rect((x, top - 28), w, label, angle, align)))
        if dim.ticktext is not None:
            lo, hi = dim.range if dim.range is not None else (min(dim.tickvals), max(dim.tickvals))
            for value, text in zip(dim.tickvals, dim.ticktext):
                y = top + plot_h * (1 - (value - lo) / (hi - lo)) if hi > lo else top + plot_h / 2
                w = len(text) * CHAR_EM * tick
                out["ticks"].append((text, _rect((x - 6 - w, y + 0.35 * tick), w, tick, 0, "start")))
        else:  # range numbers at both ends: "-0.00012" is as long as .3~g makes them
            for y in (top - 10, top + plot_h + 10 + rng):
                w = 8 * CHAR_EM * rng
                out["ranges"].append(("range", _rect((x, y), w, rng, 0, "middle")))
    return out


def ten_hyperparameter_frame() -> pd.DataFrame:
    """40 random trials over a random forest's 10 hyperparameters, names of every length."""

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("criterion", ["gini", "entropy", "log_loss"])
        depth = trial.suggest_int("max_depth", 2, 32)
        trial.suggest_float("max_features", 0.1, 1.0)
        trial.suggest_int("min_samples_leaf", 1, 50, log=True)
        trial.suggest_int("n_estimators", 10, 300, log=True)
        trial.suggest_int("min_samples_split", 2, 20)
        trial.suggest_categorical("bootstrap", [True, False])
        trial.suggest_int("max_leaf_nodes", 8, 256, log=True)
        trial.suggest_float("min_impurity_decrease", 0.0, 0.1)
        trial.suggest_float("ccp_alpha", 1e-6, 1e-1, log=True)
        return depth / 32

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=40)
    return results.trials_frame(study)


TEN_LOGS = {"min_samples_leaf", "n_estimators", "max_leaf_nodes", "ccp_alpha"}


@pytest.mark.parametrize("width", [plots.PARCOORDS_WIDTH, 1300])
@pytest.mark.parametrize("metric", ["accuracy", "neg_mean_absolute_percentage_error"])
def test_parallel_coordinates_layout_has_no_overlapping_text(width: int, metric: str) -> None:
    fig = plots.parallel_coordinates_figure(ten_hyperparameter_frame(), "maximize", TEN_LOGS, metric)
    (trace,) = fig.data
    assert len(trace.dimensions) == 11  # 10 hyperparameters and the score
    boxes = parcoords_boxes(fig, width)
    titles = [box for _, box in boxes["titles"]]
    texts = [box for kind in boxes.values() for _, box in kind]
    # no two texts overlap (titles with titles, ticks and range numbers; ticks with ranges...)
    overlaps = [
        (a, b)
        for i, (_, a) in enumerate(t for k in boxes.values() for t in k)
        for j, (_, b) in enumerate(t for k in boxes.values() for t in k)
        if i < j and _overlap(a, b)
    ]
    assert not overlaps, len(overlaps)
    # everything is inside the figure: the first axis's ticks are not clipped at the left edge
    every = np.vstack(texts)
    assert every[:, 0].min() >= 0 and every[:, 0].max() <= width
    assert every[:, 1].min() >= 0 and every[:, 1].max() <= fig.layout.height
    # the titles sit between the figure's title (44 px) and the axes, and are full names
    title_points = np.vstack(titles)
    assert title_points[:, 1].min() >= 40 and title_points[:, 1].max() <= fig.layout.margin.t
    assert [d.label for d in trace.dimensions][-1] == metric
    assert "min_impurity_decrease" in [d.label for d in trace.dimensions]
    # and the axes get the height: at least 380 px for 10 axes
    assert fig.layout.height - fig.layout.margin.t - fig.layout.margin.b >= plots.PARCOORDS_AXIS_HEIGHT


def test_parallel_coordinates_layout_checker_sees_overlaps() -> None:
    """The geometry above finds what the old layout had: flat titles running into each other
    and a first axis whose ticks stick out of a small left margin."""
    fig = plots.parallel_coordinates_figure(ten_hyperparameter_frame(), "maximize", TEN_LOGS)
    fig.update_traces(labelangle=0)
    boxes = parcoords_boxes(fig, plots.PARCOORDS_WIDTH)
    titles = [box for _, box in boxes["titles"]]
    assert any(_overlap(a, b) for a, b in zip(titles, titles[1:]))
    fig = plots.parallel_coordinates_figure(ten_hyperparameter_frame(), "maximize", TEN_LOGS)
    fig.update_layout(margin={"l": 10})
    ticks = np.vstack([box for _, box in parcoords_boxes(fig, plots.PARCOORDS_WIDTH)["ticks"]])
    assert ticks[:, 0].min() < 0


def test_parallel_coordinates_few_short_titles_stay_flat() -> None:
    fig = plots.parallel_coordinates_figure(results.trials_frame(mixed_study()), "maximize")
    assert fig.data[0].labelangle == 0
    titles = [box for _, box in parcoords_boxes(fig, plots.PARCOORDS_MIN_WIDTH)["titles"]]
    assert not any(_overlap(a, b) for i, a in enumerate(titles) for b in titles[i + 1 :])
    assert np.vstack(titles)[:, 0].min() >= 0


def test_parallel_coordinates_long_titles_and_ticks_are_shortened() -> None:
    long_name = "a_hyperparameter_with_a_name_much_longer_than_forty_characters"
    long_choice = "a_choice_with_a_very_long_name_indeed"
    frame = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "state": "COMPLETE",
            "value": [0.1, 0.5, 0.9],
            f"params_{long_name}": [1.0, 2.0, 3.0],
            "params_kind": [long_choice, "b", "c"],
        }
    )
    fig = plots.parallel_coordinates_figure(frame)
    labels = [d.label for d in fig.data[0].dimensions]
    short = labels[0]
    assert len(short) == plots.MAX_AXIS_TITLE_CHARS and "…" in short
    assert fig.layout.meta["parcoords_titles"] == {short: long_name}
    ticks = list(fig.data[0].dimensions[1].ticktext)
    assert all(len(t) <= plots.MAX_TICK_CHARS for t in ticks) and ticks[0].startswith("a_choice")
    boxes = parcoords_boxes(fig, plots.PARCOORDS_WIDTH)
    every = np.vstack([box for kind in boxes.values() for _, box in kind])
    assert every[:, 0].min() >= 0 and every[:, 0].max() <= plots.PARCOORDS_WIDTH


def selection_frame() -> pd.DataFrame:
    """Algorithm selection: random_forest (2 hyperparameters) and svc (2), 12 trials."""
    study = optuna.create_study(direction="maximize")
    rng = np.random.default_rng(3)
    dists = {
        "model": CategoricalDistribution(["random_forest", "svc"]),
        "random_forest__max_depth": IntDistribution(2, 32),
        "random_forest__max_features": FloatDistribution(0.1, 1.0),
        "svc__C": FloatDistribution(1e-3, 1e3, log=True),
        "svc__kernel": CategoricalDistribution(["rbf", "sigmoid"]),
    }
    for i in range(12):
        if i % 3 == 0:
            params = {
                "model": "svc",
                "svc__C": float(10 ** rng.uniform(-3, 3)),
                "svc__kernel": ["rbf", "sigmoid"][i % 2],
            }
            value = 0.6 + 0.01 * i
        else:
            params = {
                "model": "random_forest",
                "random_forest__max_depth": int(rng.integers(2, 33)),
                "random_forest__max_features": float(rng.uniform(0.1, 1.0)),
            }
            value = 0.7 + 0.01 * i
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE, value=value, params=params, distributions={k: dists[k] for k in params}
            )
        )
    return results.trials_frame(study)


def test_parallel_coordinates_of_one_model_has_no_none_positions() -> None:
    frame = selection_frame()
    assert plots.study_models(frame) == ["random_forest", "svc"]  # the best trial's first
    assert plots.study_models(frame, "minimize") == ["svc", "random_forest"]
    assert plots.study_models(results.trials_frame(mixed_study())) == []
    every = plots.parallel_coordinates_figure(frame, log_params={"svc__C"})
    labels = [d.label for d in every.data[0].dimensions]
    assert labels == [
        "model",
        "random_forest__max_depth",
        "random_forest__max_features",
        "svc__C (log)",
        "svc__kernel",
        "Score",
    ]  # model first, then each model's group
    rf = plots.parallel_coordinates_figure(frame, log_params={"svc__C"}, model="random_forest")
    dims = rf.data[0].dimensions
    assert [d.label for d in dims] == ["max_depth", "max_features", "Score"]
    assert all(len(d.values) == 8 for d in dims)  # the 8 random-forest trials, no other
    assert all(plots.MISSING_LABEL not in (d.ticktext or ()) for d in dims)
    assert "random_forest (8 trials)" in rf.layout.title.text
    svc = plots.parallel_coordinates_figure(frame, log_params={"svc__C"}, model="svc")
    assert [d.label for d in svc.data[0].dimensions] == ["C (log)", "kernel", "Score"]
    assert list(svc.data[0].dimensions[-1].values) == pytest.approx([0.6, 0.63, 0.66, 0.69])
    # a one-model study ignores the model argument
    single = plots.parallel_coordinates_figure(results.trials_frame(mixed_study()), model="svc")
    assert len(single.data[0].dimensions) == 4


def test_default_contour_params_pick_numeric_hyperparameters_of_one_model() -> None:
    frame = selection_frame()
    # no importance: the best trial's model (random forest), its two numeric hyperparameters
    assert plots.default_contour_params(frame) == ("random_forest__max_depth", "random_forest__max_features")
    # importance: svc's C is the most important, but svc has one numeric hyperparameter (its
    # kernel is a category), so the pair is random forest's two, the more important first
    importance = pd.DataFrame(
        {
            "param": ["svc__C", "model", "random_forest__max_features", "random_forest__max_depth"],
            "importance": [0.5, 0.3, 0.15, 0.05],
        }
    )
    assert plots.default_contour_params(frame, importance) == (
        "random_forest__max_features",
        "random_forest__max_depth",
    )
    mixed = results.trials_frame(mixed_study())
    assert plots.default_contour_params(mixed) == ("learning_rate", "max_depth")
    ranked = pd.DataFrame({"param": ["criterion", "max_depth", "learning_rate"], "importance": [0.6, 0.3, 0.1]})
    assert plots.default_contour_params(mixed, ranked) == ("max_depth", "learning_rate")
    one_numeric = mixed.drop(columns=["params_learning_rate"])
    assert plots.default_contour_params(one_numeric) == ("max_depth", "criterion")
    assert plots.default_contour_params(mixed[["number", "state", "value", "params_max_depth"]]) is None
    # a numeric choice of two values (k-NN's p) is nearly a category: ranges with more values first
    knn = pd.DataFrame(
        {
            "number": range(6),
            "state": "COMPLETE",
            "value": np.linspace(0, 1, 6),
            "params_p": [1, 2] * 3,
            "params_n_neighbors": [1, 3, 5, 8, 13, 21],
            "params_leaf_size": [10, 20, 30, 40, 50, 60],
        }
    )
    assert plots.default_contour_params(knn) == ("n_neighbors", "leaf_size")


def test_stopped_trials_are_not_failures_in_the_timeline() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.5, p(4, 0.01, "gini"), 0, 1)
    add(study, TrialState.FAIL, None, p(8, 0.1, "gini"), 1, 1)  # fail_reason "boom"
    trial = create_trial(
        state=TrialState.FAIL,
        value=None,
        params=p(2, 0.1, "gini"),
        distributions={k: DISTS[k] for k in p(2, 0.1, "gini")},
        user_attrs={"fail_reason": results.STOPPED_REASON_PREFIX + " before it finished"},
    )
    trial.datetime_start = BASE + dt.timedelta(seconds=2)
    trial.datetime_complete = BASE + dt.timedelta(seconds=3)
    study.add_trial(trial)
    frame = results.trials_frame(study)
    assert list(plots.display_states(frame)) == ["COMPLETE", "FAIL", plots.STOPPED_STATE]
    fig = plots.timeline_figure(frame)
    by_state = {t.name: t for t in fig.data}
    assert list(by_state["FAIL"].y) == [1] and list(by_state[plots.STOPPED_STATE].y) == [2]
    assert (
        by_state[plots.STOPPED_STATE].marker.color
        == plots.STATE_COLORS[plots.STOPPED_STATE]
        != plots.STATE_COLORS["FAIL"]
    )


# ----------------------------------------------------------------- importance


@pytest.mark.parametrize("method", ["ped_anova", "fanova"])
def test_importance_ranks_the_param_that_matters(importance_study: optuna.Study, method: str) -> None:
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


def test_importance_needs_only_one_param_that_varies() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.5, p(4, 0.01, "gini"))
    add(study, TrialState.COMPLETE, 0.7, p(4, 0.01, "gini"))
    add(study, TrialState.COMPLETE, 0.6, p(4, 0.01, "entropy"))  # criterion varies, last
    data = plots.importance_data(study)
    assert not data.empty and data["importance"].sum() == pytest.approx(1.0)


def test_importance_pauses_the_gc_for_ped_anova_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """PED-ANOVA runs with the cyclic GC paused; fANOVA (up to half a minute) does not, so a
    long computation never leaves the server without it."""
    import gc

    seen: dict[str, bool] = {}
    real = plots.get_param_importances

    def spy(study: Any, evaluator: Any) -> dict[str, float]:
        seen[type(evaluator).__name__] = gc.isenabled()
        return real(study, evaluator=evaluator)

    monkeypatch.setattr(plots, "get_param_importances", spy)
    monkeypatch.setattr(plots.runtime, "_pauses_allowed", True)  # as the server allows them
    study = conditional_study()
    assert not plots.importance_data(study, "ped_anova", use_cache=False).empty
    assert not plots.importance_data(study, "fanova", use_cache=False).empty
    assert seen == {"PedAnovaImportanceEvaluator": False, "FanovaImportanceEvaluator": True}
    assert gc.isenabled()


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
    fig = plots.contour_figure(grid_frame(), "max_depth", "criterion", "maximize", log_params={"max_depth"})
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
    fig = plots.contour_figure(results.trials_frame(study), "max_depth", "learning_rate", log_params={"learning_rate"})
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


def test_contour_of_many_trials_interpolates_per_cell_and_samples_markers() -> None:
    """3,000 trials over a categorical x a float: the map comes from the best trial per grid
    cell (Delaunay on thousands of near-collinear points took seconds), the markers are a
    sample that keeps every best trial, and the figure says so."""
    rng = np.random.default_rng(1)
    n = 3000
    lr = 10 ** rng.uniform(-4, 0, n)
    gini = rng.integers(0, 2, n)
    value = -np.abs(np.log10(lr) + 2) + 0.5 * gini + rng.normal(0, 0.05, n)
    frame = pd.DataFrame(
        {
            "number": np.arange(n),
            "value": value,
            "state": "COMPLETE",
            "params_learning_rate": lr,
            "params_criterion": np.where(gini == 1, "gini", "entropy"),
        }
    )
    fig = plots.contour_figure(frame, "learning_rate", "criterion", log_params={"learning_rate"})
    contour, points = fig.data
    z = np.asarray(contour.z, dtype=float)
    assert z.shape == (2, 50)
    # every grid node holds the best value of its cell, so the map's top is the best trial's value
    assert np.nanmax(z) == pytest.approx(value.max())
    assert len(points.x) == plots.MAX_CONTOUR_MARKERS
    assert int(np.argmax(value)) in set(np.asarray(points.customdata)[:, 0].astype(int))
    note = plots.downsampling_note(fig)
    assert note["shown"] == plots.MAX_CONTOUR_MARKERS and note["total"] == n


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


# ------------------------------------------------------------------ large studies (issue 6)


def _big_frame(n: int, direction: str = "maximize") -> pd.DataFrame:
    """A trials frame of ``n`` COMPLETE trials with a float, a log int and a categorical."""
    rng = np.random.default_rng(1)
    value = rng.uniform(0, 1, n)
    return pd.DataFrame(
        {
            "number": np.arange(n),
            "state": "COMPLETE",
            "value": value,
            "elapsed_s": np.arange(n, dtype=float),
            "best_so_far": results.running_best(pd.Series(value), direction),
            "params_x": rng.uniform(0, 1, n),
            "params_n": rng.integers(1, 500, n),
            "params_kind": rng.choice(["a", "b", "c"], n),
        }
    )


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_parallel_coordinates_downsampling_keeps_the_best_and_says_so(direction: str) -> None:
    frame = _big_frame(3000, direction)
    fig = plots.parallel_coordinates_figure(frame, direction=direction, log_params={"n"}, max_lines=500)
    note = plots.downsampling_note(fig)
    assert note is not None and note["shown"] == 500 and note["total"] == 3000
    assert note["kept_best"] == 50
    score = fig.data[0].dimensions[-1]
    shown = np.asarray(score["values"])
    assert len(shown) == 500
    ranked = np.sort(frame["value"].to_numpy())
    best = ranked[-50:] if direction == "maximize" else ranked[:50]
    assert set(best) <= set(shown)
    # The rest is a sample across the whole score range, not just the top.
    assert shown.min() < np.quantile(ranked, 0.1) and shown.max() > np.quantile(ranked, 0.9)
    assert any("Showing 500 of 3,000" in a.text and "50 best" in a.text for a in fig.layout.annotations)
    # Axes keep the range and the categories of every trial.
    kind = next(d for d in fig.data[0].dimensions if d["label"] == "kind")
    assert list(kind["ticktext"]) == ["a", "b", "c"]
    assert list(score["range"]) == [ranked[0], ranked[-1]]


def test_no_downsampling_below_the_limit() -> None:
    frame = _big_frame(300)
    fig = plots.parallel_coordinates_figure(frame, max_lines=500)
    assert plots.downsampling_note(fig) is None
    assert len(fig.data[0].dimensions[-1]["values"]) == 300
    assert not fig.layout.annotations
    full = plots.parallel_coordinates_figure(_big_frame(3000), max_lines=None)
    assert len(full.data[0].dimensions[-1]["values"]) == 3000


def test_convergence_downsampling_keeps_improvements_and_exact_best_line() -> None:
    frame = _big_frame(4000)
    fig = plots.convergence_figure(frame, max_markers=600)
    note = plots.downsampling_note(fig)
    assert note is not None and note["total"] == 4000 and note["shown"] <= 600 + 20
    markers, line = fig.data
    improved = frame.loc[frame["best_so_far"].ne(frame["best_so_far"].shift()), "number"]
    assert set(improved) <= set(markers.customdata)
    # The step line keeps its corners: same best value at every improvement and at the end.
    assert line.y[-1] == frame["value"].max()
    assert set(improved) <= set(line.x)
    assert plots.downsampling_note(plots.convergence_figure(_big_frame(100))) is None


def test_downsample_trials_is_deterministic() -> None:
    data = _big_frame(1000)[["number", "value"]]
    a, _ = plots.downsample_trials(data, 100)
    b, _ = plots.downsample_trials(data, 100)
    assert a["number"].tolist() == b["number"].tolist() and len(a) == 100


def _sqlite_study(tmp_path: Path, n: int) -> optuna.Study:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'imp.db'}", direction="maximize", study_name="imp")
    rng = np.random.default_rng(0)
    dists = {"x": FloatDistribution(0, 1), "k": CategoricalDistribution(["a", "b"])}
    study.add_trials(
        [
            create_trial(
                state=TrialState.COMPLETE,
                value=float(x + 0.01 * rng.normal()),
                params={"x": float(x), "k": str(rng.choice(["a", "b"]))},
                distributions=dists,
            )
            for x in rng.uniform(0, 1, n)
        ]
    )
    return study


def test_importance_cache_is_keyed_by_completed_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plots.clear_importance_cache()
    study = _sqlite_study(tmp_path, 30)
    calls: list[int] = []
    compute = plots._compute_importance

    def counting(*args: Any) -> pd.DataFrame:
        calls.append(1)
        return compute(*args)

    monkeypatch.setattr(plots, "_compute_importance", counting)
    first = plots.importance_data(study)
    again = plots.importance_data(study)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, again)
    assert first["param"].iloc[0] == "x"
    # Same numbers as Optuna on the study itself.
    expected = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    assert dict(zip(first["param"], first["importance"])) == pytest.approx(expected)
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            params={"x": 0.5, "k": "a"},
            distributions={"x": FloatDistribution(0, 1), "k": CategoricalDistribution(["a", "b"])},
        )
    )
    plots.importance_data(study)
    assert len(calls) == 2


def test_importance_from_the_page_trials_cache(tmp_path: Path) -> None:
    """With the page's TrialsCache as source: the same importances, keyed by the cache's count
    (its snapshot), and trials that completed after its refresh are not used until the next."""
    plots.clear_importance_cache()
    study = _sqlite_study(tmp_path, 30)
    cache = results.TrialsCache(study)
    cache.refresh()
    from_cache = plots.importance_data(study, use_cache=False, source=cache)
    pd.testing.assert_frame_equal(from_cache, plots.importance_data(study, use_cache=False))
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            params={"x": 0.5, "k": "a"},
            distributions={"x": FloatDistribution(0, 1), "k": CategoricalDistribution(["a", "b"])},
        )
    )
    assert plots.importance_cache_key(study, "ped_anova", 0, cache)[-1] == 30
    assert plots.importance_cache_key(study, "ped_anova", 0)[-1] == 31
    cache.refresh()
    assert plots.importance_cache_key(study, "ped_anova", 0, cache)[-1] == 31
    pd.testing.assert_frame_equal(
        plots.importance_data(study, source=cache), plots.importance_data(study, use_cache=False)
    )


def test_importance_async_computes_off_the_caller(tmp_path: Path) -> None:
    import time as _time

    plots.clear_importance_cache()
    study = _sqlite_study(tmp_path, 30)
    result = plots.importance_data_async(study)
    deadline = _time.monotonic() + 20
    while result is None and _time.monotonic() < deadline:
        _time.sleep(0.02)
        result = plots.importance_data_async(study)
    assert result is not None and set(result["param"]) == {"x", "k"}
    pd.testing.assert_frame_equal(result, plots.importance_data(study))


def test_importance_async_from_the_page_trials_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's path: keyed by the TrialsCache snapshot and computed on its trials (the
    study is not read again in the background thread)."""
    import time as _time

    plots.clear_importance_cache()
    study = _sqlite_study(tmp_path, 30)
    cache = results.TrialsCache(study)
    cache.refresh()
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            params={"x": 0.5, "k": "a"},
            distributions={"x": FloatDistribution(0, 1), "k": CategoricalDistribution(["a", "b"])},
        )
    )

    def no_reads(study: optuna.Study) -> list:
        raise AssertionError("read the study again")

    monkeypatch.setattr(results, "completed_trials", no_reads)
    result = plots.importance_data_async(study, source=cache)
    deadline = _time.monotonic() + 20
    while result is None and _time.monotonic() < deadline:
        _time.sleep(0.02)
        result = plots.importance_data_async(study, source=cache)
    assert result is not None
    key = plots.importance_cache_key(study, "ped_anova", 0, cache)
    assert key[-1] == 30  # the snapshot's count, not the study's 31
    pd.testing.assert_frame_equal(result, plots.importance_data(study, source=cache))
    monkeypatch.undo()
    on_30 = optuna.importance.get_param_importances(
        results.TrialsView(results.completed_trials(study)[:30], study.direction),
        evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
    )
    assert dict(zip(result["param"], result["importance"])) == pytest.approx(on_30)


# ------------------------------------------------------------------------------ strategy comparison


def experiment_rows() -> pd.DataFrame:
    """Two strategies x two seeds; tpe samples (depth, criterion), grid too."""
    rows = []
    for strategy, seeds in (("grid", (0, 1)), ("tpe", (0, 1))):
        for seed in seeds:
            for k, value in enumerate([0.5 + seed / 10, 0.7, 0.62 if strategy == "tpe" else 0.55]):
                rows.append(
                    {
                        "study": f"e-{strategy}-s{seed}",
                        "strategy": strategy,
                        "seed": seed,
                        "number": k,
                        "state": "COMPLETE",
                        "value": value,
                        "elapsed_s": 1.0 + k,
                        "params_max_depth": 2 + k,
                        "params_criterion": ["gini", "entropy"][k % 2],
                    }
                )
    return pd.DataFrame(rows)


def test_band_figure_draws_runs_band_and_mean() -> None:
    f = experiment_rows()
    curves = compare.curves(f, "trial")
    fig = plots.band_figure(compare.bands(curves, "trial"), curves, "trial", metric="accuracy")
    means = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in means] == ["Grid", "TPE"]
    assert list(means[0].y) == [0.55, 0.7, 0.7]  # mean of (0.5, 0.6), then 0.7
    fills = [t for t in fig.data if t.fill == "toself"]
    assert len(fills) == 2 and len(fills[0].x) == 6  # band: 3 points out and back
    assert sum(1 for t in fig.data if t.showlegend is False and t.fill != "toself") == 4  # one line per run
    assert fig.layout.xaxis.title.text == "Trials used" and "accuracy" in fig.layout.yaxis.title.text
    timed = plots.band_figure(compare.bands(compare.curves(f, "elapsed_s"), "elapsed_s"), x="elapsed_s")
    assert timed.layout.xaxis.title.text == "Wall-clock time (s)"
    assert annotations(plots.band_figure(compare.bands(compare.curves(f.iloc[0:0], "trial"), "trial"))) == [
        plots.NO_COMPLETED
    ]


def test_edf_per_strategy() -> None:
    data = plots.edf_data(experiment_rows())
    tpe = data.loc[data["strategy"] == "tpe"]
    assert tpe["fraction"].tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert tpe["value"].is_monotonic_increasing
    fig = plots.edf_figure(experiment_rows(), metric="accuracy")
    assert [t.name for t in fig.data] == ["Grid", "TPE"] and "better to the right" in fig.layout.xaxis.title.text


def test_runs_box_best_and_holdout() -> None:
    runs = compare.final_runs(experiment_rows(), holdout={"e-tpe-s0": 0.8})
    fig = plots.runs_box_figure(runs, "best")
    assert [t.name for t in fig.data] == ["Grid", "TPE"] and list(fig.data[0].y) == [0.7, 0.7]
    assert fig.data[0].boxpoints == "all"
    hold = plots.runs_box_figure(runs, "holdout")
    assert [t.name for t in hold.data] == ["TPE"] and list(hold.data[0].y) == [0.8]
    assert annotations(plots.runs_box_figure(runs.assign(holdout=np.nan), "holdout")) == ["No refit final model yet"]


def test_placement_figure_one_panel_per_strategy() -> None:
    f = experiment_rows()
    assert plots.default_placement_params(f) == ["max_depth", "criterion"]
    fig = plots.placement_figure(f, "max_depth", "criterion", metric="accuracy")
    assert len(fig.data) == 2 and [a.text for a in fig.layout.annotations] == ["Grid", "TPE"]
    assert len(fig.data[1].x) == 6 and sorted(set(fig.data[1].y)) == ["entropy", "gini"]
    assert fig.layout.yaxis.type == "category" and fig.layout.yaxis2.type == "category"  # every panel's
    assert fig.data[0].marker.coloraxis == "coloraxis" and fig.layout.coloraxis.cmax == pytest.approx(0.7)
    swapped = plots.placement_figure(f, "criterion", "max_depth", log_params={"max_depth"})
    assert swapped.layout.yaxis.type == swapped.layout.yaxis2.type == "log"  # a shared axis shares no type
    assert annotations(plots.placement_figure(f, "max_depth", "nope"))[0].startswith("No completed trial used")


def test_importance_comparison_names_the_method() -> None:
    data = pd.DataFrame(
        {
            "strategy": ["grid", "grid", "tpe", "tpe"],
            "param": ["a", "b", "a", "b"],
            "importance": [0.9, 0.1, 0.4, 0.6],
            "studies": [2, 2, 2, 2],
        }
    )
    fig = plots.importance_comparison_figure(data, "fanova")
    assert "fANOVA" in fig.layout.title.text and [t.name for t in fig.data] == ["Grid", "TPE"]
    assert list(fig.data[1].y) == ["b", "a"] and list(fig.data[1].x) == [0.6, 0.4]  # by mean importance
    empty = plots.importance_comparison_figure(data.iloc[0:0], "ped_anova")
    assert "PED-ANOVA" in empty.layout.title.text


def test_band_figure_subtitle_names_the_band() -> None:
    f = experiment_rows()
    curves = compare.curves(f, "trial")
    t = plots.band_figure(compare.bands(curves, "trial"), curves, "trial", metric="accuracy")
    assert t.layout.title.text == "Best so far vs trials (95% band)"
    assert t.layout.title.subtitle.text.startswith("Band: 95% t-interval of the mean over 2 seeds")
    boot = plots.band_figure(compare.bands(curves, "trial", 0.9, method="bootstrap"), curves)
    assert boot.layout.title.text == "Best so far vs trials (90% band)"
    assert "90% bootstrap percentile interval of the mean over 2 seeds" in boot.layout.title.subtitle.text
    assert all("bootstrap percentile interval" in tr.name for tr in boot.data if tr.fill == "toself")
    assert plots.band_name("t", 0.95, 3, 5) == "95% t-interval of the mean over 3-5 seeds"
    assert plots.band_name("t", 0.95, 1, 1) == "95% t-interval of the mean over 1 seed"


def test_band_figure_clips_the_band_to_the_metric_range() -> None:
    bands = pd.DataFrame(
        {"strategy": ["tpe"] * 2, "x": [1.0, 2.0], "n": [3, 3], "mean": [0.95, 0.97], "std": [0.1, 0.1]}
    ).assign(lo=[0.7, 0.8], hi=[1.2, 1.1])
    fig = plots.band_figure(bands, value_range=(0.0, 1.0))
    fill = next(t for t in fig.data if t.fill == "toself")
    assert max(fill.y) == 1.0 and min(fill.y) == 0.7
    assert max(plots.band_figure(bands).data[0].y) == 1.2  # no range given: drawn as computed


def test_final_score_axis_stays_within_the_metric_range() -> None:
    runs = compare.final_runs(
        experiment_rows(), holdout={f"e-{s}-s{k}": 0.9667 for s in ("grid", "tpe") for k in (0, 1)}
    )
    hold = plots.runs_box_figure(runs, "holdout", "accuracy", value_range=(0.0, 1.0))
    low, high = hold.layout.yaxis.range
    assert 0.9 < low < 0.9667 < high < 1.0  # equal scores: a narrow axis, not Plotly's 0.47-1.47
    near_one = runs.assign(best=[0.98, 1.0, 0.99, 1.0])
    low, high = plots.runs_box_figure(near_one, "best", value_range=(0.0, 1.0)).layout.yaxis.range
    assert 0.96 < low < 0.98 and 1.0 < high <= 1.02
    neg = runs.assign(best=[-0.02, -0.01, -0.03, 0.0])
    assert plots.runs_box_figure(neg, "best", value_range=(-math.inf, 0.0)).layout.yaxis.range[1] <= 0.0 + 0.001


def test_banner_on_a_figure() -> None:
    fig = plots.with_banner(plots.edf_figure(experiment_rows()), "Not comparable: dataset: a vs b.")
    assert "Not comparable: dataset: a vs b." in annotations(fig)
    assert annotations(plots.with_banner(plots.edf_figure(experiment_rows()), None)) == []


def test_importance_thread_does_not_hold_up_exit() -> None:
    """A computation still running when the server stops does not keep the process alive
    (a one-worker ThreadPoolExecutor would be joined at exit: minutes for a large fANOVA)."""
    import subprocess
    import sys

    code = (
        "import time; from hpdash import plots; "
        "f = plots._IMPORTANCE_POOL.submit(time.sleep, 600); time.sleep(0.2); "
        "print(f.running())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # it was running, and the process still ended


def test_importance_worker_runs_calls_in_order_and_hands_back_errors() -> None:
    worker = plots._DaemonWorker("test-worker")
    order: list[int] = []
    first = worker.submit(order.append, 1)
    failing = worker.submit(lambda: 1 / 0)
    last = worker.submit(order.append, 2)
    assert last.result(timeout=30) is None and first.result(timeout=30) is None
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=30)
    assert order == [1, 2]
