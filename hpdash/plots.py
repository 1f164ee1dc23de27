"""Plotly figures for one study, built from the tidy frame of ``hpdash.results``.

Principle: compute tidy data first (``*_data`` functions, plain pandas, testable without a
browser), then draw it (``*_figure`` functions, which only map columns to traces).

Why not Optuna's ``optuna.visualization.plot_*`` for everything? They take a ``Study``, not a
frame, so they cannot draw an elapsed-time axis or a frame filtered in the UI, and:

- ``plot_parallel_coordinate`` draws one ``go.Scatter`` trace per trial (slow with hundreds of
  trials); ``go.Parcoords`` draws all trials in one trace.
- ``plot_timeline`` draws every WAITING trial as a bar, and hpdash keeps its unused budget as
  WAITING slots, so a fresh study would look like it had run all its trials.
- ``plot_optimization_history`` has no elapsed-time x axis.

Parameter importance has no such gap, so it is computed by ``optuna.importance`` itself.

Every figure function returns a figure (with an explanatory annotation) instead of raising
when there is nothing to draw: an empty frame, a single trial, or no COMPLETE trial.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.importance import (
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)
from optuna.trial import FrozenTrial, TrialState
from scipy.interpolate import griddata
from scipy.spatial import QhullError

from hpdash.results import (
    fold_scores_frame,
    param_column,
    param_columns,
    param_name,
    running_best,
)

NO_COMPLETED = "No completed trials yet"
MISSING_LABEL = "(none)"  # a conditional param the trial did not use, or a None choice
COLORSCALE = "Blues"  # dark = better in both directions (reversed when minimizing)

STATE_COLORS: dict[str, str] = {
    "COMPLETE": "#1f77b4",
    "PRUNED": "#ff7f0e",
    "FAIL": "#d62728",
    "RUNNING": "#2ca02c",
    "WAITING": "#7f7f7f",
}

#: Importance methods: key -> one-line plain-English explanation (for the UI).
IMPORTANCE_METHODS: dict[str, str] = {
    "ped_anova": (
        "PED-ANOVA: how differently a hyperparameter is spread in the best 10% of trials "
        "than in all trials; high means the good trials crowd into one part of its range."
    ),
    "fanova": (
        "fANOVA: fits a random forest that predicts the score from the hyperparameters and "
        "measures how much of the score's variation each one explains on its own "
        "(conditional hyperparameters are left out)."
    ),
}
IMPORTANCE_LABELS: dict[str, str] = {"ped_anova": "PED-ANOVA", "fanova": "fANOVA"}

X_TITLES: dict[str, str] = {"number": "Trial number", "elapsed_s": "Elapsed time (s)"}


# --------------------------------------------------------------------------- helpers


def message_figure(message: str, title: str | None = None) -> go.Figure:
    """An empty figure that shows ``message`` in its middle (hidden axes)."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        font={"size": 16},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    if title:
        fig.update_layout(title={"text": title})
    return fig


def complete_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE rows with a finite value, sorted by number."""
    if frame.empty or "state" not in frame.columns:
        return frame.iloc[0:0]
    mask = (frame["state"] == "COMPLETE") & np.isfinite(frame["value"].astype("float64"))
    return frame.loc[mask].sort_values("number")


def _is_categorical(series: pd.Series) -> bool:
    """Strings, booleans and mixed objects are categorical; numbers are not."""
    return pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series)


def _category_order(values: pd.Series) -> list[Any]:
    """Distinct non-null values, numbers first in numeric order, then others by text."""

    def key(v: Any) -> tuple[int, Any]:
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            return (0, float(v))
        return (1, str(v))

    return sorted(pd.unique(values.dropna()), key=key)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick positions on a log10 axis: whole decades inside [lo, hi] plus both ends."""
    ticks = [float(d) for d in range(math.ceil(lo), math.floor(hi) + 1)]
    span = hi - lo
    # Drop decades that would sit on top of an end tick, then add the ends.
    ticks = [t for t in ticks if abs(t - lo) > 0.05 * span and abs(t - hi) > 0.05 * span]
    return sorted({lo, hi, *ticks})


class _Axis:
    """One param encoded as numbers for plotting: values, range and tick labels.

    Categorical params become integer codes with their labels; log params become log10 with
    ticks labelled in the original units; missing values (conditional params) get their own
    position labelled ``MISSING_LABEL`` when ``keep_missing`` is set.
    """

    def __init__(self, series: pd.Series, log: bool, keep_missing: bool) -> None:
        self.categorical = _is_categorical(series)
        self.log = log and not self.categorical
        missing = series.isna().to_numpy()
        has_missing = keep_missing and bool(missing.any())
        self.tickvals: list[float] | None = None
        self.ticktext: list[str] | None = None
        if self.categorical:
            order = _category_order(series)
            offset = 1 if has_missing else 0
            codes = {v: i + offset for i, v in enumerate(order)}
            self.values = np.array(
                [np.nan if m else codes[v] for v, m in zip(series, missing)], dtype="float64"
            )
            if has_missing:
                self.values[missing] = 0.0
            self.tickvals = [float(i) for i in range(len(order) + offset)]
            self.ticktext = ([MISSING_LABEL] if has_missing else []) + [str(v) for v in order]
            self.range = (0.0, float(max(len(order) + offset - 1, 0)))
            return
        numbers = series.astype("float64").to_numpy()
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                numbers = np.where(numbers > 0, np.log10(numbers), np.nan)
        valid = numbers[~np.isnan(numbers)]
        lo, hi = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
        ticks = _log_ticks(lo, hi) if self.log else None
        if has_missing:
            # Like Optuna: a dedicated position just below the range for "not used".
            missing_at = lo - 0.1 * (hi - lo) if hi > lo else lo - 1.0
            numbers = np.where(np.isnan(numbers), missing_at, numbers)
            if ticks is None:
                ticks = [lo] if hi == lo else [float(t) for t in np.linspace(lo, hi, 5)]
            self.tickvals = [missing_at, *ticks]
            shown = [10**t if self.log else t for t in ticks]
            self.ticktext = [MISSING_LABEL, *(_fmt(t) for t in shown)]
            lo = missing_at
        elif ticks is not None:
            self.tickvals = ticks
            self.ticktext = [_fmt(10**t) for t in ticks]
        self.values = numbers
        self.range = (lo, hi)


def _axis_layout(axis: _Axis, title: str) -> dict[str, Any]:
    layout: dict[str, Any] = {"title": {"text": title}}
    if axis.tickvals is not None:
        layout.update(tickmode="array", tickvals=axis.tickvals, ticktext=axis.ticktext)
    return layout


def _value_title(metric: str | None) -> str:
    return metric or "Score"


# --------------------------------------------------------------------------- convergence


def convergence_data(
    frame: pd.DataFrame, x: str = "number", direction: str = "maximize"
) -> pd.DataFrame:
    """COMPLETE trials in the order of ``x`` with the running best value.

    Columns: number, elapsed_s, value, best_so_far. With ``x="elapsed_s"`` the running best
    is recomputed in completion order (parallel workers finish out of number order), so it
    needs ``direction``; with ``x="number"`` it equals the frame's ``best_so_far``.
    """
    if x not in X_TITLES:
        raise ValueError(f"x must be one of {sorted(X_TITLES)}, not {x!r}")
    done = complete_trials(frame)
    columns = ["number", "elapsed_s", "value", "best_so_far"]
    if done.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    data = done[["number", "elapsed_s", "value"]].dropna(subset=[x])
    data = data.sort_values([x, "number"], kind="stable").reset_index(drop=True)
    data["best_so_far"] = running_best(data["value"], direction)
    return data[columns]


def convergence_figure(
    frame: pd.DataFrame,
    x: str = "number",
    direction: str = "maximize",
    title: str | None = None,
    metric: str | None = None,
) -> go.Figure:
    """Every COMPLETE trial's value as a marker, plus the best-so-far step line."""
    data = convergence_data(frame, x=x, direction=direction)
    title = title or "Convergence"
    if data.empty:
        return message_figure(NO_COMPLETED, title)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=data[x],
            y=data["value"],
            mode="markers",
            name="Trial value",
            customdata=data["number"],
            hovertemplate="Trial %{customdata}<br>%{y:.4g}<extra></extra>",
            marker={"color": "#9ecae1", "line": {"color": "#3182bd", "width": 1}},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=data[x],
            y=data["best_so_far"],
            mode="lines",
            name="Best so far",
            line={"shape": "hv", "color": "#08519c", "width": 2},
            hovertemplate="Best so far %{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": X_TITLES[x]}},
        yaxis={"title": {"text": _value_title(metric)}},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


# --------------------------------------------------------------------------- parallel coordinates


def parallel_coordinates_data(frame: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE trials with the params that at least one of them used (the drawn rows)."""
    done = complete_trials(frame)
    used = [c for c in param_columns(done) if done[c].notna().any()]
    return done[["number", "value", *used]].reset_index(drop=True)


def parallel_coordinates_figure(
    frame: pd.DataFrame,
    direction: str = "maximize",
    log_params: Collection[str] = frozenset(),
    metric: str | None = None,
) -> go.Figure:
    """One line per COMPLETE trial across one axis per param, then the score; coloured by score.

    Categorical params sit on integer positions labelled with their choices; log params are
    drawn as log10 with ticks in the original units. Conditional params (NaN where a trial did
    not use them) keep every trial: the missing ones sit on an extra position labelled
    "(none)" below the axis, as Optuna does. Params no COMPLETE trial used are left out.
    """
    data = parallel_coordinates_data(frame)
    title = "Parallel coordinates"
    if data.empty:
        return message_figure(NO_COMPLETED, title)
    logs = set(log_params)
    dimensions: list[dict[str, Any]] = []
    for column in param_columns(data):
        name = param_name(column)
        axis = _Axis(data[column], log=name in logs or column in logs, keep_missing=True)
        label = f"{name} (log)" if axis.log else name
        dim: dict[str, Any] = {"label": label, "values": axis.values, "range": list(axis.range)}
        if axis.range[0] == axis.range[1]:
            dim["range"] = [axis.range[0] - 0.5, axis.range[1] + 0.5]
        if axis.tickvals is not None:
            dim.update(tickvals=axis.tickvals, ticktext=axis.ticktext)
        dimensions.append(dim)
    values = data["value"].to_numpy(dtype="float64")
    dimensions.append({"label": _value_title(metric), "values": values})
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={
                "color": values,
                "colorscale": COLORSCALE,
                "reversescale": direction == "minimize",
                "showscale": True,
                "colorbar": {"title": {"text": _value_title(metric)}},
            },
        )
    )
    fig.update_layout(title={"text": title})
    return fig


# --------------------------------------------------------------------------- importance


def importance_data(
    study: optuna.Study, method: str = "ped_anova", seed: int = 0
) -> pd.DataFrame:
    """Param importances of ``study`` by ``optuna.importance``: columns param, importance.

    Sorted by importance, largest first, normalised to sum to 1. Empty when it cannot be
    estimated: fewer than 2 COMPLETE trials, no param that took 2 distinct values, or all
    scores equal. ``seed`` fixes fANOVA's random forest.
    """
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"method must be one of {sorted(IMPORTANCE_METHODS)}, not {method!r}")
    empty = pd.DataFrame(
        {"param": pd.Series([], dtype="str"), "importance": pd.Series([], dtype="float64")}
    )
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if len(trials) < 2 or len({t.value for t in trials}) < 2:
        return empty
    distinct: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            distinct.setdefault(name, set()).add(repr(value))
    if not any(len(v) >= 2 for v in distinct.values()):
        return empty
    evaluator: optuna.importance.BaseImportanceEvaluator = (
        PedAnovaImportanceEvaluator() if method == "ped_anova"
        else FanovaImportanceEvaluator(seed=seed)
    )
    with warnings.catch_warnings():
        # Optuna warns about small samples; the UI explains that itself.
        warnings.simplefilter("ignore")
        importances = get_param_importances(study, evaluator=evaluator)
    if not importances:
        return empty
    data = pd.DataFrame(
        {"param": list(importances), "importance": [float(v) for v in importances.values()]}
    )
    data = data.sort_values(["importance", "param"], ascending=[False, True], kind="stable")
    return data.reset_index(drop=True)


def importance_figure(data: pd.DataFrame, method: str = "ped_anova") -> go.Figure:
    """Horizontal bars of ``importance_data``, most important on top."""
    title = f"Hyperparameter importance ({IMPORTANCE_LABELS.get(method, method)})"
    if data.empty:
        return message_figure("Not enough completed trials to estimate importance", title)
    ordered = data.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=ordered["importance"],
            y=ordered["param"],
            orientation="h",
            marker={"color": "#3182bd"},
            text=[f"{v:.2f}" for v in ordered["importance"]],
            textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "Importance (sums to 1)"}},
        yaxis={"title": {"text": "Hyperparameter"}},
    )
    return fig


# --------------------------------------------------------------------------- slice


def slice_figure(
    frame: pd.DataFrame,
    param: str,
    log_params: Collection[str] = frozenset(),
    metric: str | None = None,
) -> go.Figure:
    """Score against one param for the COMPLETE trials that used it, coloured by trial number.

    ``param`` is the name with or without the ``params_`` prefix.
    """
    name = param_name(param)
    title = f"Score by {name}"
    done = complete_trials(frame)
    if done.empty:
        return message_figure(NO_COMPLETED, title)
    try:
        column = param_column(done, param)
    except KeyError:
        return message_figure(f"No completed trial used {name}", title)
    data = done[["number", "value", column]].dropna(subset=[column])
    if data.empty:
        return message_figure(f"No completed trial used {name}", title)
    categorical = _is_categorical(data[column])
    x = data[column].astype(str) if categorical else data[column]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=data["value"],
            mode="markers",
            customdata=data["number"],
            hovertemplate="Trial %{customdata}<br>" + name + "=%{x}<br>%{y:.4g}<extra></extra>",
            marker={
                "color": data["number"],
                "colorscale": "Greys",
                "showscale": True,
                "colorbar": {"title": {"text": "Trial"}},
                "line": {"color": "#333", "width": 0.5},
            },
        )
    )
    xaxis: dict[str, Any] = {"title": {"text": name}}
    if categorical:
        xaxis.update(
            type="category",
            categoryorder="array",
            categoryarray=[str(v) for v in _category_order(data[column])],
        )
    elif name in log_params or column in log_params:
        xaxis["type"] = "log"
    fig.update_layout(
        title={"text": title}, xaxis=xaxis, yaxis={"title": {"text": _value_title(metric)}}
    )
    return fig


# --------------------------------------------------------------------------- contour


def contour_data(
    frame: pd.DataFrame,
    x_param: str,
    y_param: str,
    direction: str = "maximize",
) -> pd.DataFrame:
    """The best value at each distinct (x, y) pair over COMPLETE trials that used both params.

    Columns: x, y (raw param values), value, number (the trial holding that best value).
    Empty when either param is missing or both name the same param.
    Several trials share a pair when other params vary; the best one is kept, which is what a
    reader of "where are the good regions" wants.
    """
    columns = ["x", "y", "value", "number"]
    done = complete_trials(frame)
    try:
        xc, yc = param_column(done, x_param), param_column(done, y_param)
        if xc == yc:
            raise KeyError(xc)
    except KeyError:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})
    data = done[["number", "value", xc, yc]].dropna(subset=[xc, yc])
    data = data.rename(columns={xc: "x", yc: "y"})
    ascending = direction == "minimize"
    data = data.sort_values(["value", "number"], ascending=[ascending, True], kind="stable")
    data = data.drop_duplicates(subset=["x", "y"], keep="first")
    return data[columns].sort_values("number").reset_index(drop=True)


def _grid(axis: _Axis, n: int = 50) -> np.ndarray:
    """Grid coordinates: each category / distinct value when few, else ``n`` even steps."""
    distinct = np.unique(axis.values)
    if axis.categorical or distinct.size <= 20:
        return distinct
    return np.linspace(axis.range[0], axis.range[1], n)


def contour_figure(
    frame: pd.DataFrame,
    x_param: str,
    y_param: str,
    direction: str = "maximize",
    log_params: Collection[str] = frozenset(),
    metric: str | None = None,
) -> go.Figure:
    """Score over two params: a contour interpolated from the trials, with the trials on top.

    Categorical params use their integer codes as coordinates (ticks show the choices) and log
    params use log10. Interpolation is linear between trials (scipy ``griddata``) and left
    blank outside them; when the points are all on one line it falls back to nearest-trial.
    With fewer than two distinct values on either axis only the points are drawn. Optuna's
    ``plot_contour`` would do similar work but only from a ``Study``, not a frame.
    """
    xn, yn = param_name(x_param), param_name(y_param)
    title = f"Score over {xn} and {yn}"
    if complete_trials(frame).empty:
        return message_figure(NO_COMPLETED, title)
    if xn == yn:
        return message_figure("Pick two different hyperparameters", title)
    data = contour_data(frame, x_param, y_param, direction)
    if data.empty:
        return message_figure(f"No completed trial used both {xn} and {yn}", title)
    logs = set(log_params)
    ax = _Axis(data["x"], log=xn in logs, keep_missing=False)
    ay = _Axis(data["y"], log=yn in logs, keep_missing=False)
    values = data["value"].to_numpy(dtype="float64")
    colorbar = {"title": {"text": _value_title(metric)}}
    fig = go.Figure()
    gx, gy = _grid(ax), _grid(ay)
    enough = gx.size >= 2 and gy.size >= 2
    if enough:
        points = np.column_stack([ax.values, ay.values])
        mesh = tuple(np.meshgrid(gx, gy))
        try:
            z = griddata(points, values, mesh, method="linear", rescale=True)
        except (QhullError, ValueError):
            z = griddata(points, values, mesh, method="nearest", rescale=True)
        fig.add_trace(
            go.Contour(
                x=gx,
                y=gy,
                z=z,
                colorscale=COLORSCALE,
                reversescale=direction == "minimize",
                connectgaps=False,
                colorbar=colorbar,
                hoverinfo="skip",
                contours={"coloring": "heatmap"},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=ax.values,
            y=ay.values,
            mode="markers",
            customdata=np.column_stack([data["number"], values]),
            hovertemplate="Trial %{customdata[0]}<br>%{customdata[1]:.4g}<extra></extra>",
            marker={
                "color": values,
                "colorscale": COLORSCALE,
                "reversescale": direction == "minimize",
                "showscale": not enough,
                "colorbar": colorbar,
                "line": {"color": "black", "width": 1},
            },
            showlegend=False,
        )
    )
    fig.update_layout(
        title={"text": title},
        xaxis=_axis_layout(ax, f"{xn} (log)" if ax.log else xn),
        yaxis=_axis_layout(ay, f"{yn} (log)" if ay.log else yn),
    )
    if not enough:
        fig.add_annotation(
            text="A contour needs at least two distinct values of each hyperparameter",
            showarrow=False, xref="paper", yref="paper", x=0.5, y=1.05,
        )
    return fig


# --------------------------------------------------------------------------- timeline


def timeline_data(frame: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """One bar per started trial: number, state, start_s, end_s (seconds from the first start).

    A RUNNING trial ends at ``now`` (default: the current local time, as Optuna stores naive
    local datetimes); a finished trial without a completion time ends where it started.
    """
    columns = ["number", "state", "start_s", "end_s"]
    if frame.empty or "datetime_start" not in frame.columns:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    rows = frame.loc[frame["datetime_start"].notna()]
    if rows.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    now = now if now is not None else pd.Timestamp.now()
    start = rows["datetime_start"]
    running = rows["state"] == "RUNNING"
    end = rows["datetime_complete"].where(~running, start.clip(lower=now))
    end = end.fillna(start)
    t0 = start.min()
    return pd.DataFrame(
        {
            "number": rows["number"].to_numpy(),
            "state": rows["state"].to_numpy(),
            "start_s": (start - t0).dt.total_seconds().to_numpy(),
            "end_s": (end - t0).dt.total_seconds().to_numpy(),
        }
    )


def timeline_figure(frame: pd.DataFrame, now: pd.Timestamp | None = None) -> go.Figure:
    """A horizontal bar per trial from its start to its completion, coloured by state.

    Drawn from the frame rather than by Optuna's ``plot_timeline``, which also draws the
    WAITING budget slots. FAIL and PRUNED trials are drawn too: that is what a timeline is for.
    """
    data = timeline_data(frame, now)
    title = "Timeline"
    if data.empty:
        return message_figure("No trials have started yet", title)
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        part = data[data["state"] == state]
        if part.empty:
            continue
        fig.add_trace(
            go.Bar(
                name=state,
                orientation="h",
                y=part["number"],
                base=part["start_s"],
                x=part["end_s"] - part["start_s"],
                marker={"color": color},
                customdata=np.column_stack([part["start_s"], part["end_s"]]),
                hovertemplate=(
                    "Trial %{y}<br>%{customdata[0]:.1f}s to %{customdata[1]:.1f}s"
                    "<extra>" + state + "</extra>"
                ),
            )
        )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "Elapsed time (s)"}},
        yaxis={"title": {"text": "Trial"}, "autorange": "reversed"},
        barmode="overlay",
        showlegend=True,
    )
    return fig


# --------------------------------------------------------------------------- fold scores


def _fold_data(trial_or_frame: FrozenTrial | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(trial_or_frame, FrozenTrial):
        return fold_scores_frame(trial_or_frame), f"Trial {trial_or_frame.number}: score per fold"
    frame = trial_or_frame
    if {"fold", "score"} <= set(frame.columns):
        return frame[["fold", "score"]], "Score per fold"
    if "fold_scores" in frame.columns and len(frame) == 1:  # one row of a trials frame
        scores = frame["fold_scores"].iloc[0] or []
        data = pd.DataFrame({"fold": range(len(scores)), "score": scores})
        return data, f"Trial {frame['number'].iloc[0]}: score per fold"
    return pd.DataFrame({"fold": [], "score": []}), "Score per fold"


def fold_scores_figure(
    trial_or_frame: FrozenTrial | pd.DataFrame, metric: str | None = None
) -> go.Figure:
    """Each CV fold's score as a point, with a dashed line at their mean.

    Takes a trial, a ``fold_scores_frame`` (fold, score) or a one-row trials frame.
    Points rather than bars: fold scores usually differ by a few hundredths, which bars
    starting at zero would hide.
    """
    data, title = _fold_data(trial_or_frame)
    data = data.dropna()
    if data.empty:
        return message_figure("No fold scores for this trial", title)
    fig = go.Figure(
        go.Scatter(
            x=data["fold"],
            y=data["score"],
            mode="markers",
            marker={"size": 10, "color": "#3182bd"},
            name="Fold score",
            hovertemplate="Fold %{x}<br>%{y:.4g}<extra></extra>",
        )
    )
    mean = float(data["score"].mean())
    fig.add_hline(
        y=mean, line_dash="dash", line_color="#08519c",
        annotation_text=f"mean {mean:.4g}", annotation_position="top left",
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "Fold"}, "tickmode": "array", "tickvals": list(data["fold"])},
        yaxis={"title": {"text": _value_title(metric)}},
    )
    return fig
