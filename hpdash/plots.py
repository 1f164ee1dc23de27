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

Large studies: parallel coordinates (above ``MAX_PARCOORDS_LINES``) and convergence markers
(above ``MAX_CONVERGENCE_MARKERS``) are downsampled by ``downsample_trials``, which keeps all
of the best trials plus a score-stratified sample; the figure says so in an annotation and in
``layout.meta["downsampling"]`` (``downsampling_note(fig)``). Importances are cached by the
study's completed-trial count; ``importance_data_async`` computes them off the caller's thread.
See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import contextlib
import html
import math
import queue
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Future
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
from optuna.trial import FrozenTrial
from scipy.interpolate import griddata
from scipy.spatial import QhullError

from hpdash import results as _results
from hpdash import runtime, storage, vocabulary
from hpdash.results import (
    PARAM_PREFIX,
    fold_scores_frame,
    param_column,
    param_columns,
    param_name,
    running_best,
)
from hpdash.space import MODEL_PARAM, SEPARATOR

NO_COMPLETED = "No completed trials yet"
MISSING_LABEL = "(none)"  # a conditional param the trial did not use, or a None choice
COLORSCALE = "Blues"  # dark = better in both directions (reversed when minimizing)

STATE_COLORS: dict[str, str] = {
    "COMPLETE": "#1f77b4",
    "PRUNED": "#ff7f0e",
    "FAIL": "#d62728",
    "STOPPED": "#b0b0b0",  # stopped by the user: a FAIL in Optuna, but nothing went wrong
    "RUNNING": "#2ca02c",
    "WAITING": "#7f7f7f",
}
#: The state shown for a FAIL trial that the user stopped (its params went back to the budget).
STOPPED_STATE = "STOPPED"


def display_states(frame: pd.DataFrame) -> pd.Series:
    """Each trial's state for people: ``STOPPED`` for a FAIL whose reason says the user stopped
    it (``results.STOPPED_REASON_PREFIX``), else Optuna's state."""
    states = frame["state"].astype(str)
    if "fail_reason" not in frame.columns:
        return states
    reasons = frame["fail_reason"].astype("string").fillna("")
    stopped = (states == "FAIL") & reasons.str.startswith(_results.STOPPED_REASON_PREFIX)
    return states.where(~stopped.to_numpy(dtype=bool), STOPPED_STATE)


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

#: Parallel coordinates draw at most this many lines; above it they are downsampled.
MAX_PARCOORDS_LINES = 2000
#: ... always keeping this share of the line budget for the best trials.
BEST_SHARE = 0.1
#: Convergence draws at most this many trial markers (the best-so-far line is always exact).
MAX_CONVERGENCE_MARKERS = 5000
MAX_CONTOUR_POINTS = 1000  # above this, interpolate from the best trial per grid cell
MAX_CONTOUR_MARKERS = 2000


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
            self.values = np.array([np.nan if m else codes[v] for v, m in zip(series, missing)], dtype="float64")
            if has_missing:
                self.values[missing] = 0.0
            self.tickvals = [float(i) for i in range(len(order) + offset)]
            self.ticktext = ([MISSING_LABEL] if has_missing else []) + [plain(v) for v in order]
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


def plain(value: Any) -> str:
    """User text (a categorical choice, a study name) as plain text in a Plotly label: Plotly
    renders a few HTML tags in labels, links among them, so ``<``, ``>`` and ``&`` are escaped."""
    return html.escape(str(value), quote=False)


def _axis_layout(axis: _Axis, title: str) -> dict[str, Any]:
    layout: dict[str, Any] = {"title": {"text": title}}
    if axis.tickvals is not None:
        layout.update(tickmode="array", tickvals=axis.tickvals, ticktext=axis.ticktext)
    return layout


def _value_title(metric: str | None) -> str:
    return metric or "Score"


# --------------------------------------------------------------------------- convergence


def convergence_data(frame: pd.DataFrame, x: str = "number", direction: str = "maximize") -> pd.DataFrame:
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
    max_markers: int | None = MAX_CONVERGENCE_MARKERS,
) -> go.Figure:
    """Every COMPLETE trial's value as a marker, plus the best-so-far step line.

    Above ``max_markers`` COMPLETE trials (None: never) the markers are downsampled by
    ``downsample_trials`` (every trial that improved the best so far is kept), and the step
    line keeps only its corners, which draws the same line; the figure says so.
    """
    data = convergence_data(frame, x=x, direction=direction)
    title = title or "Convergence"
    if data.empty:
        return message_figure(NO_COMPLETED, title)
    note = None
    line = data
    if max_markers is not None and len(data) > max_markers:
        improved = data["best_so_far"].ne(data["best_so_far"].shift())
        corners = improved | improved.shift(-1, fill_value=False)
        corners.iloc[-1] = True
        line = data.loc[corners]
        data, note = downsample_trials(data, max_markers, direction, must_keep=data.loc[improved, "number"].tolist())
        data = data.sort_values([x, "number"], kind="stable")
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
            x=line[x],
            y=line["best_so_far"],
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
    if note is not None:
        note = {**note, "text": note["text"] + " The best-so-far line is exact."}
        fig.add_annotation(
            text=note["text"],
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0,
            y=1.0,
            xanchor="left",
            yanchor="bottom",
            font={"size": 11, "color": "#555"},
        )
    fig.update_layout(meta={"downsampling": note or {"downsampled": False}})
    return fig


# --------------------------------------------------------------------------- downsampling


def downsample_trials(
    data: pd.DataFrame,
    max_rows: int,
    direction: str = "maximize",
    best_share: float = BEST_SHARE,
    seed: int = 0,
    must_keep: Collection[int] = (),
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """At most ``max_rows`` rows of ``data`` (COMPLETE trials: number, value, ...).

    Keeps every one of the best ``ceil(best_share * max_rows)`` trials (by value, ties by
    number), every trial numbered in ``must_keep``, and fills the rest with a random sample
    of the others stratified by score decile, so the spread of good and bad trials is kept.
    Deterministic for a given ``seed``. Returns ``(rows in number order, note)``; ``note`` is
    None when nothing was dropped, else a dict: shown, total, kept_best, best_cutoff, text.
    """
    total = len(data)
    if total <= max_rows:
        return data, None
    ascending = direction == "minimize"
    ranked = data.sort_values(["value", "number"], ascending=[ascending, True], kind="stable")
    n_best = min(max_rows, max(1, math.ceil(best_share * max_rows)))
    best = ranked.iloc[:n_best]
    keep = set(best.index) | set(data.index[data["number"].isin(list(must_keep))])
    rest = ranked.iloc[n_best:]
    rest = rest.loc[~rest.index.isin(keep)]
    budget = max(0, max_rows - len(keep))
    if budget and len(rest):
        strata = pd.qcut(rest["value"].rank(method="first"), q=min(10, len(rest)), labels=False)
        rng = np.random.default_rng(seed)
        fraction = budget / len(rest)
        picked: list[Any] = []
        for _, group in rest.groupby(strata, sort=True):
            k = round(fraction * len(group))
            if k:
                picked.extend(rng.choice(group.index.to_numpy(), size=min(k, len(group)), replace=False))
        keep.update(picked[:budget])
    kept = data.loc[data.index.isin(keep)].sort_values("number", kind="stable")
    cutoff = float(best["value"].iloc[-1])
    word = "lowest" if ascending else "highest"
    text = (
        f"Showing {len(kept):,} of {total:,} completed trials: all {n_best:,} best ({word} "
        f"scores, {'≤' if ascending else '≥'} {cutoff:.4g}) plus a random sample of the rest, "
        "stratified by score."
    )
    note = {
        "downsampled": True,
        "shown": len(kept),
        "total": total,
        "kept_best": n_best,
        "best_cutoff": cutoff,
        "text": text,
    }
    return kept, note


def _add_note(fig: go.Figure, note: dict[str, Any] | None, below_px: float | None = None) -> go.Figure:
    """Say on the figure (and in ``layout.meta``) that it was downsampled and what it kept.

    The note goes below the plot: 12% of the plot height down (below a cartesian x axis title),
    or ``below_px`` px down when given (the caller's bottom margin has room for it).
    """
    meta = dict(fig.layout.meta or {}) if isinstance(fig.layout.meta, dict) else {}
    meta["downsampling"] = note or {"downsampled": False}
    fig.update_layout(meta=meta)
    if note:
        fig.add_annotation(
            text=note["text"],
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0,
            y=-0.12 if below_px is None else 0,
            yshift=0 if below_px is None else -below_px,
            xanchor="left",
            yanchor="top",
            font={"size": 11, "color": "#555"},
        )
        if below_px is None:
            fig.update_layout(margin={"b": 60})
    return fig


def downsampling_note(fig: go.Figure) -> dict[str, Any] | None:
    """The downsampling note of a figure made here (None when it shows every trial)."""
    meta = fig.layout.meta
    note = meta.get("downsampling") if isinstance(meta, dict) else None
    return note if note and note.get("downsampled") else None


# --------------------------------------------------------------------------- parallel coordinates


def is_algorithm_selection(frame: pd.DataFrame) -> bool:
    """Whether the trials choose the model too (a ``model`` param beside ``<model>__<name>``
    params, the naming of ``hpdash.space`` under algorithm selection)."""
    return PARAM_PREFIX + MODEL_PARAM in frame.columns


def _model_of(column: str, models: Collection[str]) -> str | None:
    """The model whose hyperparameter the column ``params_<model>__<name>`` is, if any."""
    name = param_name(column)
    head, sep, _ = name.partition(SEPARATOR)
    return head if sep and head in models else None


def study_models(frame: pd.DataFrame, direction: str = "maximize") -> list[str]:
    """Under algorithm selection, the models COMPLETE trials used, the best trial's first (then
    by their best score); an empty list for a one-model study."""
    if not is_algorithm_selection(frame):
        return []
    done = complete_trials(frame)
    column = PARAM_PREFIX + MODEL_PARAM
    if done.empty:
        return []
    best = done.groupby(column)["value"].agg("min" if direction == "minimize" else "max")
    ranked = best.sort_values(ascending=direction == "minimize", kind="stable")
    return [str(m) for m in ranked.index]


def parallel_coordinates_data(frame: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """COMPLETE trials with the params that at least one of them used (the drawn rows).

    ``model`` (algorithm selection only): just the trials of that model and its own params.
    Params are ordered ``model`` first, then each model's hyperparameters as a group (models in
    the order of the ``model`` axis), then any others.
    """
    done = complete_trials(frame)
    used = [c for c in param_columns(done) if done[c].notna().any()]
    if is_algorithm_selection(done):
        model_column = PARAM_PREFIX + MODEL_PARAM
        models = [str(m) for m in _category_order(done[model_column])]
        if model is not None:
            done = done.loc[done[model_column].astype(str) == model]
            used = [c for c in used if _model_of(c, [model]) == model and done[c].notna().any()]
        else:
            rank = {m: i for i, m in enumerate(models)}

            def key(c: str) -> tuple[int, int]:
                if c == model_column:
                    return (0, 0)
                owner = _model_of(c, models)
                return (1, rank[owner]) if owner is not None else (2, 0)

            used = sorted(used, key=key)  # stable: each group keeps its frame order
    return done[["number", "value", *used]].reset_index(drop=True)


#: The parallel-coordinates layout is computed for the chart's width on the Study page in the
#: wide layout of a 1400-px window with the sidebar open (Streamlit stretches the chart to it),
#: and checked at ``PARCOORDS_MIN_WIDTH`` (a narrower window) for the choice of flat titles.
PARCOORDS_WIDTH = 940
PARCOORDS_MIN_WIDTH = 640
#: Height of the axes themselves, whatever the number of axes.
PARCOORDS_AXIS_HEIGHT = 380
#: Font sizes (px) of the axis titles, the tick labels and the range numbers at each axis end.
PARCOORDS_FONTS = {"label": 12, "tick": 11, "range": 10}
#: Width of one character as a share of the font size: a generous average for the sans-serif
#: fonts Plotly and Streamlit use (wider than they render in Chromium), so estimated extents are
#: upper bounds. Plotly cannot measure text before it draws, so margins are set from this.
CHAR_EM = 0.6
#: Plotly's parcoords puts an axis title this many px above the axis top (its
#: ``axisTitleOffset``), with the text starting there (``text-anchor: start``) once the title is
#: turned by more than atan(1/2), about 26.6 degrees; flat titles are centred on the axis.
PARCOORDS_TITLE_OFFSET = 28
#: Titles longer than this are shortened in the middle (the full names are in the figure's
#: ``layout.meta["parcoords_titles"]``; the page lists them): parcoords titles have no hover.
MAX_AXIS_TITLE_CHARS = 40
#: Tick labels of a categorical axis longer than this are shortened (they sit left of their
#: axis, in the space between it and the previous one).
MAX_TICK_CHARS = 24
#: The downsampling note sits this many px below the axes (under the range numbers).
PARCOORDS_NOTE_BELOW = 30
_FIGURE_TITLE_ROOM = 44  # px above the axis titles for the figure's own title
_COLORBAR_ROOM = 96  # px right of the last axis: the colour bar, its ticks and its side title


def text_width(text: str, size: float) -> float:
    """Estimated width in px of ``text`` at font ``size`` (an upper bound, see ``CHAR_EM``)."""
    return len(text) * CHAR_EM * size


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters in the middle (``"neg_mean_abs…age_error"``)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2 + (limit - 1) % 2
    tail = limit - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def _rotated_extent(width: float, height: float, degrees: float) -> tuple[float, float]:
    """(horizontal, vertical) extent of a ``width`` x ``height`` text box turned by ``degrees``."""
    a = math.radians(abs(degrees))
    return width * math.cos(a) + height * math.sin(a), width * math.sin(a) + height * math.cos(a)


def _parcoords_layout(titles: list[str], first_ticks: list[str], first_range_text: float, note: bool) -> dict[str, Any]:
    """Margins, height and title angle so that no axis title, tick label or range number runs
    into another or out of the figure at ``PARCOORDS_WIDTH``.

    Flat titles when each fits between its neighbours even at ``PARCOORDS_MIN_WIDTH``; otherwise
    the titles are turned (upwards to the right, each starting at its axis) by the smallest
    angle, in 5-degree steps from 30, that keeps parallel neighbours a line height apart
    (their distance is the axis spacing times the sine of the angle). The top margin then holds
    the tallest turned title and the right margin the last one's reach past its axis.
    """
    label, tick = PARCOORDS_FONTS["label"], PARCOORDS_FONTS["tick"]
    line = 1.3 * label
    widths = [text_width(t, label) for t in titles]
    n = len(titles)
    left = max(24.0, max((text_width(t, tick) for t in first_ticks), default=0.0) + 14, first_range_text / 2 + 4)

    def spacing(width: float, right: float) -> float:
        return (width - left - right) / max(n - 1, 1)

    flat_right = max(_COLORBAR_ROOM, widths[-1] / 2 + 8)
    d_min = spacing(PARCOORDS_MIN_WIDTH, flat_right)
    flat = n == 1 or all((a + b) / 2 + 10 <= d_min for a, b in zip(widths, widths[1:]))
    if flat:
        angle = 0.0
        left = max(left, widths[0] / 2 + 4)
        right = flat_right
        title_height = line
    else:
        right = float(_COLORBAR_ROOM)
        angle = 30.0
        for _ in range(20):  # a few rounds: the spacing depends on the right margin and back
            d = spacing(PARCOORDS_WIDTH, right)
            while angle < 90 and d * math.sin(math.radians(angle)) < line + 2:
                angle += 5
            reach = [_rotated_extent(w, line, angle)[0] for w in widths]
            # Every title must end inside the figure: i spacings right of the first axis.
            overflow = max(left + i * d + r for i, r in enumerate(reach)) - (PARCOORDS_WIDTH - 4)
            if overflow <= 0.5:
                break
            right += overflow
        title_height = max(_rotated_extent(w, line, angle)[1] for w in widths)
    top = _FIGURE_TITLE_ROOM + PARCOORDS_TITLE_OFFSET + title_height
    bottom = 30 + (40 if note else 0)
    return {
        "angle": -angle,
        "margin": {"l": math.ceil(left), "r": math.ceil(right), "t": math.ceil(top), "b": bottom, "pad": 0},
        "height": math.ceil(top) + PARCOORDS_AXIS_HEIGHT + bottom,
    }


def parallel_coordinates_figure(
    frame: pd.DataFrame,
    direction: str = "maximize",
    log_params: Collection[str] = frozenset(),
    metric: str | None = None,
    max_lines: int | None = MAX_PARCOORDS_LINES,
    model: str | None = None,
) -> go.Figure:
    """One line per COMPLETE trial across one axis per param, then the score; coloured by score.

    Above ``max_lines`` COMPLETE trials (None: never) the lines are downsampled by
    ``downsample_trials``: all the best trials plus a score-stratified sample. The figure then
    says so in an annotation and in ``layout.meta["downsampling"]`` (see ``downsampling_note``).
    Axis ranges still come from every trial.

    Categorical params sit on integer positions labelled with their choices; log params are
    drawn as log10 with ticks in the original units. Conditional params (NaN where a trial did
    not use them) keep every trial: the missing ones sit on an extra position labelled
    "(none)" below the axis, as Optuna does. Params no COMPLETE trial used are left out.

    Algorithm selection: the ``model`` axis comes first and each model's hyperparameters follow
    as a group. A parcoords line cannot skip an axis (Plotly sends a NaN off the bottom of the
    plot), so every line of another model has to sit on "(none)" there; ``model`` set to one
    model key draws only its trials on only its hyperparameters (titled without the
    ``<model>__`` prefix), which is the view the Study page opens with (``study_models``).

    Layout (``_parcoords_layout``): margins and height leave room for the titles, turned when
    they would run into each other, and for the first axis's tick labels. The full title of any
    shortened one is in ``layout.meta["parcoords_titles"]``.
    """
    selection = is_algorithm_selection(frame)
    if not selection:
        model = None
    data = parallel_coordinates_data(frame, model)
    title = "Parallel coordinates" if model is None else f"Parallel coordinates: {plain(model)}"
    if data.empty:
        return message_figure(NO_COMPLETED, title)
    if model is not None:
        title += f" ({len(data)} trial{'s' if len(data) != 1 else ''})"
    note = None
    if max_lines is not None:
        shown, note = downsample_trials(data, max_lines, direction)
    else:
        shown = data
    rows = data.index.get_indexer(shown.index)
    logs = set(log_params)
    dimensions: list[dict[str, Any]] = []
    full_titles: list[str] = []
    prefix = f"{model}{SEPARATOR}" if model is not None else ""
    for column in param_columns(data):
        name = param_name(column)
        axis = _Axis(data[column], log=name in logs or column in logs, keep_missing=True)
        if note is not None:  # encoded with every trial's categories and range, then subset
            axis.values = axis.values[rows]
        shown_name = name.removeprefix(prefix)
        label = f"{shown_name} (log)" if axis.log else shown_name
        full_titles.append(f"{name} (log)" if axis.log else name)
        dim: dict[str, Any] = {"label": label, "values": axis.values, "range": list(axis.range)}
        if axis.range[0] == axis.range[1]:
            dim["range"] = [axis.range[0] - 0.5, axis.range[1] + 0.5]
        if axis.tickvals is not None:
            ticktext = axis.ticktext
            if axis.categorical:
                assert ticktext is not None  # _Axis sets ticktext with tickvals
                ticktext = [_shorten(t, MAX_TICK_CHARS) for t in ticktext]
            dim.update(tickvals=axis.tickvals, ticktext=ticktext)
        else:
            dim["tickformat"] = ".3~g"  # also the range numbers: 0.934, not 0.93404
        dimensions.append(dim)
    values = shown["value"].to_numpy(dtype="float64")
    all_values = data["value"].to_numpy(dtype="float64")
    score_dim: dict[str, Any] = {"label": _value_title(metric), "values": values, "tickformat": ".4~g"}
    full_titles.append(_value_title(metric))
    # The score axis and the colours span every trial's score (also when downsampled); one
    # score alone gets a small range around it, not Plotly's default of +-50%.
    lo, hi = float(all_values.min()), float(all_values.max())
    if hi <= lo:
        pad = 0.05 * abs(lo) or 0.5
        lo, hi = lo - pad, hi + pad
    score_dim["range"] = [lo, hi]
    line_range = {"cmin": lo, "cmax": hi}
    dimensions.append(score_dim)
    shortened = {}
    for dim, full in zip(dimensions, full_titles):
        short = _shorten(dim["label"], MAX_AXIS_TITLE_CHARS)
        if short != dim["label"]:
            shortened[short] = full
            dim["label"] = short
    first = dimensions[0]
    first_ticks = list(first.get("ticktext") or [])
    # The range numbers of a numeric first axis are centred on it: at most ~8 characters.
    first_range = 0.0 if first.get("tickvals") is not None else text_width("-0.00012", PARCOORDS_FONTS["range"])
    layout = _parcoords_layout([d["label"] for d in dimensions], first_ticks, first_range, note is not None)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            labelangle=layout["angle"],
            labelside="top",
            labelfont={"size": PARCOORDS_FONTS["label"]},
            tickfont={"size": PARCOORDS_FONTS["tick"]},
            rangefont={"size": PARCOORDS_FONTS["range"]},
            line={
                "color": values,
                "colorscale": COLORSCALE,
                "reversescale": direction == "minimize",
                "showscale": True,
                # The title runs along the bar: a metric name is too long to sit above it.
                "colorbar": {
                    "title": {"text": _value_title(metric), "side": "right"},
                    "thickness": 14,
                    "x": 1.0,
                    "xpad": 16,
                    "len": 1.0,
                },
                **line_range,
            },
        )
    )
    fig.update_layout(
        title={
            "text": title,
            "x": 0,
            "xanchor": "left",
            "xref": "paper",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 12},
        },
        margin=layout["margin"],
        height=layout["height"],
        meta={"parcoords_titles": shortened},
    )
    return _add_note(fig, note, below_px=PARCOORDS_NOTE_BELOW)


# --------------------------------------------------------------------------- importance


_IMPORTANCE_CACHE: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_IMPORTANCE_CACHE_SIZE = 64
_IMPORTANCE_LOCK = threading.Lock()
_IMPORTANCE_PENDING: dict[tuple[Any, ...], Future] = {}


class _DaemonWorker:
    """One background thread that runs submitted calls in order (like a one-worker
    ``ThreadPoolExecutor``), as a daemon: the executor's threads are joined at interpreter
    exit, so stopping the server waited for a running fANOVA (minutes on a large study)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return future

    def _run(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller through the future
                future.set_exception(exc)


_IMPORTANCE_POOL = _DaemonWorker("hpdash-importance")


def importance_cache_key(
    study: optuna.Study, method: str, seed: int = 0, source: _results.TrialsCache | None = None
) -> tuple[Any, ...] | None:
    """(storage URL, study id, method, seed, completed-trial count): COMPLETE trials never
    change and are never removed, so the count identifies the set of trials importance is
    computed on. The count is ``source``'s (its last refresh) when given, else one COUNT
    query. None (no caching) for storages that are not RDB storages, whose identity does not
    outlive the process object."""
    rdb = _results.rdb_storage(study)
    if rdb is None:
        return None
    count = source.n_complete if source is not None else _results.completed_count(study)
    return (str(rdb.engine.url), storage.study_id(study), method, seed, count)


def clear_importance_cache() -> None:
    with _IMPORTANCE_LOCK:
        _IMPORTANCE_CACHE.clear()


def importance_data(
    study: optuna.Study,
    method: str = "ped_anova",
    seed: int = 0,
    *,
    use_cache: bool = True,
    source: _results.TrialsCache | None = None,
) -> pd.DataFrame:
    """Param importances of ``study`` by ``optuna.importance``: columns param, importance.

    Sorted by importance, largest first, normalised to sum to 1. Empty when it cannot be
    estimated: fewer than 2 COMPLETE trials, no param that took 2 distinct values, or all
    scores equal. ``seed`` fixes fANOVA's random forest.

    Cached by ``importance_cache_key`` (the completed-trial count), so a page rerun or a poll
    with no new COMPLETE trial costs one COUNT query. ``source``, the page's
    ``results.TrialsCache`` of ``study``, supplies the trials (as of its last refresh) so they
    are not read again. See ``importance_data_async`` for the page's critical path.
    """
    _check_method(method)
    key = importance_cache_key(study, method, seed, source) if use_cache else None
    if key is None:
        return _compute_importance(study, method, seed, _trials_of(source))
    with _IMPORTANCE_LOCK:
        hit = _cache_hit(key)
    if hit is not None:
        return hit
    data = _compute_importance(study, method, seed, _trials_of(source))
    _remember(key, data)
    return data.copy()


def _check_method(method: str) -> None:
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"method must be one of {sorted(IMPORTANCE_METHODS)}, not {method!r}")


def _cache_hit(key: tuple[Any, ...]) -> pd.DataFrame | None:
    """A copy of the cached importances for ``key``, or None (the caller holds the lock)."""
    if key not in _IMPORTANCE_CACHE:
        return None
    _IMPORTANCE_CACHE.move_to_end(key)
    return _IMPORTANCE_CACHE[key].copy()


def _remember(key: tuple[Any, ...], data: pd.DataFrame) -> None:
    with _IMPORTANCE_LOCK:
        _IMPORTANCE_CACHE[key] = data
        _IMPORTANCE_CACHE.move_to_end(key)
        while len(_IMPORTANCE_CACHE) > _IMPORTANCE_CACHE_SIZE:
            _IMPORTANCE_CACHE.popitem(last=False)


def importance_data_async(
    study: optuna.Study,
    method: str = "ped_anova",
    seed: int = 0,
    source: _results.TrialsCache | None = None,
) -> pd.DataFrame | None:
    """The cached importances, or None while they are computed in a background thread.

    For the page's critical path: the first call for a new completed-trial count starts the
    computation and returns None at once (show "computing…" and poll again); later calls
    return the result. A failed computation raises its exception on the next call. ``source``
    as for ``importance_data``.
    """
    _check_method(method)
    key = importance_cache_key(study, method, seed, source)
    if key is None:
        return _compute_importance(study, method, seed, _trials_of(source))
    with _IMPORTANCE_LOCK:
        hit = _cache_hit(key)
        if hit is not None:
            return hit
        future = _IMPORTANCE_PENDING.get(key)
        if future is None:
            # The trials are taken now, in the caller's thread, so they match the key's count.
            future = _IMPORTANCE_POOL.submit(_compute_importance, study, method, seed, _trials_of(source))
            _IMPORTANCE_PENDING[key] = future
    if not future.done():
        return None
    with _IMPORTANCE_LOCK:
        _IMPORTANCE_PENDING.pop(key, None)
    data = future.result()  # re-raises a failure
    _remember(key, data)
    return data.copy()


def _trials_of(source: _results.TrialsCache | None) -> list[FrozenTrial] | None:
    return None if source is None else source.completed_trials()


def _compute_importance(
    study: optuna.Study, method: str, seed: int, completed: list[FrozenTrial] | None = None
) -> pd.DataFrame:
    """Importances over ``completed`` (the COMPLETE trials; read from the study when None)."""
    empty = pd.DataFrame({"param": pd.Series([], dtype="str"), "importance": pd.Series([], dtype="float64")})
    if completed is None:
        completed = _results.completed_trials(study)
    trials = [t for t in completed if t.value is not None and math.isfinite(t.value)]
    if len(trials) < 2 or len({t.value for t in trials}) < 2:
        return empty
    if not _some_param_varies(trials):
        return empty
    evaluator: optuna.importance.BaseImportanceEvaluator = (
        PedAnovaImportanceEvaluator() if method == "ped_anova" else FanovaImportanceEvaluator(seed=seed)
    )
    view = _results.TrialsView(trials, study.direction)
    # PED-ANOVA takes a fraction of a second: the GC is paused for it (see runtime.gc_paused). Not for
    # fANOVA, which can take half a minute, during which the whole server would go without.
    paused = runtime.gc_paused() if method == "ped_anova" else contextlib.nullcontext()
    with paused, warnings.catch_warnings():
        # Optuna warns about small samples; the UI explains that itself.
        warnings.simplefilter("ignore")
        importances = get_param_importances(view, evaluator=evaluator)  # type: ignore[arg-type]
    if not importances:
        return empty
    data = pd.DataFrame({"param": list(importances), "importance": [float(v) for v in importances.values()]})
    data = data.sort_values(["importance", "param"], ascending=[False, True], kind="stable")
    return data.reset_index(drop=True)


def _some_param_varies(trials: list[FrozenTrial]) -> bool:
    """Whether some param took two distinct values over ``trials`` (stops at the first one)."""
    first: dict[str, str] = {}
    for trial in trials:
        for name, value in trial.params.items():
            seen = first.setdefault(name, repr(value))
            if seen != repr(value):
                return True
    return False


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
    fig.update_layout(title={"text": title}, xaxis=xaxis, yaxis={"title": {"text": _value_title(metric)}})
    return fig


# --------------------------------------------------------------------------- contour


def default_contour_params(
    frame: pd.DataFrame,
    importance: pd.DataFrame | None = None,
    direction: str = "maximize",
) -> tuple[str, str] | None:
    """The pair of hyperparameters the contour opens on (names without ``params_``).

    Two numeric hyperparameters of one model: a contour over ``model`` and a hyperparameter
    only one model has, or over two categories, draws little. A hyperparameter counts as
    numeric when its values are numbers, better with at least three distinct ones in COMPLETE
    trials (a choice of 1 or 2 is nearly a category). The model: with ``importance``
    (``importance_data``) the one holding the most important such hyperparameter, and its two
    most important ones; without it the best trial's model and its first two. Then weaker
    pairs (two values, one numeric and one categorical), then the first two params; None with
    fewer than two params.
    """
    done = complete_trials(frame)
    source = done if not done.empty else frame
    columns = [c for c in param_columns(source) if source[c].notna().any()]
    selection = is_algorithm_selection(source)
    model_column = PARAM_PREFIX + MODEL_PARAM
    candidates = [c for c in columns if c != model_column] if selection else columns
    if len(candidates) < 2:
        return (param_name(columns[0]), param_name(columns[1])) if len(columns) >= 2 else None
    models = [str(m) for m in _category_order(source[model_column])] if selection else [""]

    def owner(column: str) -> str:
        return (_model_of(column, models) or "") if selection else ""

    def quality(column: str) -> int:
        """2: numbers with 3+ distinct values; 1: numbers with 2; 0: a category."""
        values = source[column].dropna()
        if _is_categorical(values):
            return 0
        return 2 if values.nunique() >= 3 else 1 if values.nunique() == 2 else 0

    rank: dict[str, float] = {}
    if importance is not None and not importance.empty:
        rank = {str(p): float(v) for p, v in zip(importance["param"], importance["importance"])}
    q = {c: quality(c) for c in candidates}
    # Best first: quality, then importance (when known); ties keep the frame's order.
    ordered = sorted(candidates, key=lambda c: (-q[c], -rank.get(param_name(c), 0.0)))
    order = list(models)
    if rank:
        top = owner(ordered[0])
        order = [top, *[m for m in models if m != top]]
    elif selection and not done.empty:
        best = done.sort_values(["value", "number"], ascending=[direction == "minimize", True]).iloc[0]
        top = str(best[model_column])
        order = [top, *[m for m in models if m != top]]
    for need in ((2, 2), (1, 1), (1, 0)):  # the qualities a pair needs, best pairs first
        for m in order:
            picked = [c for c in ordered if owner(c) == m][:2]
            if len(picked) == 2 and q[picked[0]] >= need[0] and q[picked[1]] >= need[1]:
                return param_name(picked[0]), param_name(picked[1])
    return param_name(candidates[0]), param_name(candidates[1])


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


def _best_per_cell(
    points: np.ndarray, values: np.ndarray, gx: np.ndarray, gy: np.ndarray, direction: str
) -> tuple[np.ndarray, np.ndarray]:
    """The best value in each cell of the contour grid, placed at the cell's grid node.

    The interpolation input for many trials: Delaunay triangulation of thousands of points,
    many of them on a few lines (a categorical axis), is slow; one point per grid cell
    draws the same map, since the contour is only evaluated on that grid.
    """

    def nearest(v: np.ndarray, grid: np.ndarray) -> np.ndarray:
        mids = (grid[1:] + grid[:-1]) / 2
        return np.searchsorted(mids, v)

    cells = pd.DataFrame({"ix": nearest(points[:, 0], gx), "iy": nearest(points[:, 1], gy), "value": values})
    best = cells.groupby(["ix", "iy"])["value"].agg("min" if direction == "minimize" else "max").reset_index()
    return (
        np.column_stack([gx[best["ix"].to_numpy()], gy[best["iy"].to_numpy()]]),
        best["value"].to_numpy(dtype="float64"),
    )


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
        interp_values = values
        if len(values) > MAX_CONTOUR_POINTS:
            points, interp_values = _best_per_cell(points, values, gx, gy, direction)
        mesh = tuple(np.meshgrid(gx, gy))
        try:
            z = griddata(points, interp_values, mesh, method="linear", rescale=True)
        except (QhullError, ValueError):
            z = griddata(points, interp_values, mesh, method="nearest", rescale=True)
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
    shown, note = downsample_trials(data, MAX_CONTOUR_MARKERS, direction)
    keep = data.index.isin(shown.index)
    fig.add_trace(
        go.Scatter(
            x=ax.values[keep],
            y=ay.values[keep],
            mode="markers",
            customdata=np.column_stack([data["number"].to_numpy()[keep], values[keep]]),
            hovertemplate="Trial %{customdata[0]}<br>%{customdata[1]:.4g}<extra></extra>",
            marker={
                "color": values[keep],
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
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=1.05,
        )
    return _add_note(fig, note)


# --------------------------------------------------------------------------- timeline


def timeline_data(frame: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """One bar per started trial: number, state, start_s, end_s (seconds from the first start).

    ``state`` is the state for people (``display_states``: ``STOPPED`` for a trial the user
    stopped). A RUNNING trial ends at ``now`` (default: the current local time, as Optuna stores naive
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
            "state": display_states(rows).to_numpy(),
            "start_s": (start - t0).dt.total_seconds().to_numpy(),
            "end_s": (end - t0).dt.total_seconds().to_numpy(),
        }
    )


def timeline_figure(frame: pd.DataFrame, now: pd.Timestamp | None = None) -> go.Figure:
    """A horizontal bar per trial from its start to its completion, coloured by state.

    Drawn from the frame rather than by Optuna's ``plot_timeline``, which also draws the
    WAITING budget slots. FAIL and PRUNED trials are drawn too: that is what a timeline is for;
    a trial the user stopped is grey, not red (``display_states``).
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
                    "Trial %{y}<br>%{customdata[0]:.1f}s to %{customdata[1]:.1f}s<extra>" + state + "</extra>"
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


def fold_scores_figure(trial_or_frame: FrozenTrial | pd.DataFrame, metric: str | None = None) -> go.Figure:
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
        y=mean,
        line_dash="dash",
        line_color="#08519c",
        annotation_text=f"mean {mean:.4g}",
        annotation_position="top left",
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "Fold"}, "tickmode": "array", "tickvals": list(data["fold"])},
        yaxis={"title": {"text": _value_title(metric)}},
    )
    return fig


# --------------------------------------------------------------------------- strategy comparison
# Figures for an experiment: several strategies, several seeds each. They draw the tidy frames
# of ``hpdash.compare`` (curves, bands, runs, importance by strategy) and the stacked experiment
# frame (trials of every study with ``study``, ``strategy`` and ``seed`` columns).

STRATEGY_COLORS: dict[str, str] = {key: s.color for key, s in vocabulary.STRATEGIES.items()}
_EXTRA_COLORS = ["#e377c2", "#17becf", "#bcbd22", "#d62728"]
COMPARE_X_TITLES: dict[str, str] = {"trial": "Trials used", "elapsed_s": "Wall-clock time (s)"}
LEGEND_BELOW: dict[str, Any] = {"orientation": "h", "y": -0.2}
#: What a band is, by ``hpdash.compare.bands`` method: both are intervals of the mean over runs.
BAND_KINDS: dict[str, str] = {"t": "t-interval", "bootstrap": "bootstrap percentile interval"}
BANNER_COLOR = "#b00020"


def band_name(method: str = "t", level: float = 0.95, n_min: int | None = None, n_max: int | None = None) -> str:
    """What a band is, for titles, legends and tables: "95% t-interval of the mean over 5 seeds".

    ``n_min``/``n_max``: the most runs (seeds) any strategy has, lowest and highest over the
    strategies (one number when equal; left out when unknown).
    """
    text = f"{level:.0%} {BAND_KINDS.get(method, method)} of the mean"
    if n_max:
        seeds = f"{n_max}" if not n_min or n_min == n_max else f"{n_min}-{n_max}"
        text += f" over {seeds} seed{'s' if n_max != 1 else ''}"
    return text


def band_description(bands: pd.DataFrame, method: str | None = None, level: float | None = None) -> str:
    """``band_name`` of a ``hpdash.compare.bands`` frame: its method and level columns (when
    present, else ``method``/``level``, default t and 95%) and its runs per strategy."""
    if method is None:
        method = str(bands["method"].iloc[0]) if "method" in bands.columns and not bands.empty else "t"
    if level is None:
        level = float(bands["level"].iloc[0]) if "level" in bands.columns and not bands.empty else 0.95
    if bands.empty:
        return band_name(method, level)
    most = bands.groupby("strategy", sort=False)["n"].max()
    return band_name(method, level, int(most.min()), int(most.max()))


def with_banner(fig: go.Figure, text: str | None, limit: int = 110) -> go.Figure:
    """``fig`` with ``text`` (a "Not comparable: ..." warning) boxed at the top left of its plot
    area, cut to ``limit`` characters; unchanged when ``text`` is empty."""
    if not text:
        return fig
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    fig.add_annotation(
        text=html.escape(shown),
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0,
        y=1,
        xanchor="left",
        yanchor="top",
        align="left",
        font={"color": BANNER_COLOR, "size": 13},
        bgcolor="rgba(255,235,238,0.92)",
        bordercolor=BANNER_COLOR,
        borderwidth=1,
        name="banner",
    )
    return fig


def score_axis_range(
    values: pd.Series | np.ndarray, value_range: tuple[float, float] | None = None
) -> list[float] | None:
    """A y-axis range around ``values`` with a small margin, kept within ``value_range`` (the
    metric's range, ``hpdash.compare.metric_range``) plus a sliver, so a column of equal
    accuracies does not get Plotly's ±0.5 autorange (an axis from 0.47 to 1.47). None without
    finite values."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo
    pad = 0.08 * span if span > 0 else max(0.02 * abs(hi), 0.01)
    axis = [lo - pad, hi + pad]
    if value_range is not None:
        low, high = value_range
        edge = 0.02 * (high - low) if math.isfinite(low) and math.isfinite(high) else pad / 4
        if math.isfinite(low):
            axis[0] = max(axis[0], low - edge)
        if math.isfinite(high):
            axis[1] = min(axis[1], high + edge)
    return axis


def strategy_color(strategy: str, index: int = 0) -> str:
    """A fixed colour per strategy (the same in every comparison figure)."""
    return STRATEGY_COLORS.get(strategy, _EXTRA_COLORS[index % len(_EXTRA_COLORS)])


_label = vocabulary.strategy_name


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _strategies(frame: pd.DataFrame) -> list[str]:
    return list(pd.unique(frame["strategy"])) if "strategy" in frame.columns and not frame.empty else []


def band_figure(
    bands: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    x: str = "trial",
    metric: str | None = None,
    level: float | None = None,
    title: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Mean best-so-far per strategy with its band, over the runs' own curves.

    ``bands`` and ``curves`` come from ``hpdash.compare.bands``/``curves`` with the same ``x``
    (``"trial"`` or ``"elapsed_s"``). Each run is a thin step line; the band is drawn where at
    least two runs have a value, clipped to ``value_range`` (the metric's range) when given.
    The subtitle says what the band is ("95% t-interval of the mean over 5 seeds", from the
    frame's ``method`` and ``level`` columns; ``level`` overrides).
    """
    if level is None:
        level = float(bands["level"].iloc[0]) if "level" in bands.columns and not bands.empty else 0.95
    title = title or f"Best so far vs {'trials' if x == 'trial' else 'wall-clock time'} ({level:.0%} band)"
    if bands.empty:
        return message_figure(NO_COMPLETED, title)
    described = band_description(bands, level=level)
    fig = go.Figure()
    low, high = value_range if value_range is not None else (-math.inf, math.inf)
    for i, strategy in enumerate(_strategies(bands)):
        color = strategy_color(strategy, i)
        name = _label(strategy)
        if curves is not None and not curves.empty:
            for study, run in (
                curves.loc[curves["strategy"] == strategy].dropna(subset=["best"]).groupby("study", sort=False)
            ):
                fig.add_trace(
                    go.Scatter(
                        x=run[x],
                        y=run["best"],
                        mode="lines",
                        legendgroup=strategy,
                        showlegend=False,
                        line={"shape": "hv", "color": _rgba(color, 0.35), "width": 1},
                        name=plain(study),
                        hovertemplate=f"{plain(study)}<br>%{{y:.4g}}<extra></extra>",
                    )
                )
        b = bands.loc[bands["strategy"] == strategy]
        ci = b.dropna(subset=["lo", "hi"])
        lo, hi = ci["lo"].clip(lower=low, upper=high), ci["hi"].clip(lower=low, upper=high)
        if not ci.empty:
            fig.add_trace(
                go.Scatter(
                    x=list(ci["x"]) + list(ci["x"][::-1]),
                    y=list(hi) + list(lo[::-1]),
                    fill="toself",
                    fillcolor=_rgba(color, 0.18),
                    line={"width": 0, "shape": "hv"},
                    legendgroup=strategy,
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"{name}: {described}",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=b["x"],
                y=b["mean"],
                mode="lines",
                name=name,
                legendgroup=strategy,
                line={"shape": "hv", "color": color, "width": 2.5},
                customdata=np.stack(
                    [b["n"], b["lo"].clip(lower=low, upper=high), b["hi"].clip(lower=low, upper=high)], axis=-1
                ),
                hovertemplate=(
                    f"{name}: mean %{{y:.4g}}<br>{html.escape(described.split(' over ')[0])} "
                    "[%{customdata[1]:.4g}, %{customdata[2]:.4g}]<br>runs %{customdata[0]}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        title={"text": title, "subtitle": {"text": f"Band: {described}; thin lines: each run"}},
        xaxis={"title": {"text": COMPARE_X_TITLES.get(x, x)}},
        yaxis={"title": {"text": f"Best {_value_title(metric)} so far"}},
        legend=LEGEND_BELOW,
    )
    return fig


def edf_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Empirical distribution of COMPLETE trial values per strategy (all its seeds pooled).

    Columns: strategy, value, fraction (share of the strategy's trials with a value <= value).
    """
    rows = []
    done = complete_trials(frame) if not frame.empty else frame
    for strategy in _strategies(done):
        values = np.sort(done.loc[done["strategy"] == strategy, "value"].to_numpy(dtype="float64"))
        n = values.size
        rows.append(pd.DataFrame({"strategy": strategy, "value": values, "fraction": np.arange(1, n + 1) / n}))
    if not rows:
        return pd.DataFrame(
            {
                "strategy": pd.Series([], dtype="object"),
                "value": pd.Series([], dtype="float64"),
                "fraction": pd.Series([], dtype="float64"),
            }
        )
    return pd.concat(rows, ignore_index=True)


def edf_figure(frame: pd.DataFrame, metric: str | None = None, direction: str = "maximize") -> go.Figure:
    """EDF of trial values per strategy: a curve further right (maximize) means better trials.

    Drawn from the frame like Optuna's ``plot_edf``, but pooled per strategy instead of per study.
    """
    title = "Distribution of trial values (EDF)"
    data = edf_data(frame)
    if data.empty:
        return message_figure(NO_COMPLETED, title)
    fig = go.Figure()
    for i, strategy in enumerate(_strategies(data)):
        d = data.loc[data["strategy"] == strategy]
        fig.add_trace(
            go.Scatter(
                x=d["value"],
                y=d["fraction"],
                mode="lines",
                name=_label(strategy),
                line={"shape": "hv", "color": strategy_color(strategy, i), "width": 2},
                hovertemplate="%{x:.4g}: %{y:.0%} of trials at or below<extra></extra>",
            )
        )
    better = "right" if direction == "maximize" else "left"
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": f"{_value_title(metric)} (better to the {better})"}},
        yaxis={"title": {"text": "Share of trials ≤ value"}, "range": [0, 1.02]},
        legend=LEGEND_BELOW,
    )
    return fig


def runs_box_figure(
    runs: pd.DataFrame,
    column: str = "best",
    metric: str | None = None,
    title: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Box plus every run as a point, per strategy, of ``runs[column]`` (``best`` or ``holdout``).

    The y axis spans the values with a small margin, kept within ``value_range`` (the metric's
    range; ``score_axis_range``)."""
    what = "final best CV score" if column == "best" else "holdout score of the final model"
    title = title or f"{what[0].upper()}{what[1:]} per strategy"
    data = runs.dropna(subset=[column]) if not runs.empty else runs
    if data.empty:
        message = NO_COMPLETED if column == "best" else "No refit final model yet"
        return message_figure(message, title)
    fig = go.Figure()
    for i, strategy in enumerate(_strategies(data)):
        d = data.loc[data["strategy"] == strategy]
        fig.add_trace(
            go.Box(
                y=d[column],
                name=_label(strategy),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": strategy_color(strategy, i), "size": 9},
                line={"color": strategy_color(strategy, i)},
                customdata=np.stack([d["seed"].astype(str), d["study"].astype(str)], axis=-1),
                hovertemplate="%{customdata[1]} (seed %{customdata[0]})<br>%{y:.4g}<extra></extra>",
            )
        )
    yaxis: dict[str, Any] = {"title": {"text": _value_title(metric)}}
    axis = score_axis_range(data[column], value_range)
    if axis is not None:
        yaxis["range"] = axis
    fig.update_layout(
        title={"text": title},
        showlegend=False,
        yaxis=yaxis,
        xaxis={"title": {"text": "Strategy"}},
    )
    return fig


def default_placement_params(frame: pd.DataFrame) -> list[str]:
    """Up to two hyperparameter names to plot sample placement for: numeric ones first,
    then those with the most distinct values."""
    columns = [c for c in param_columns(frame) if frame[c].notna().any()]

    def key(c: str) -> tuple[int, int]:
        return (1 if _is_categorical(frame[c].dropna()) else 0, -int(frame[c].nunique()))

    return [param_name(c) for c in sorted(columns, key=key)[:2]]


def placement_figure(
    frame: pd.DataFrame,
    x_param: str,
    y_param: str,
    log_params: Collection[str] = frozenset(),
    metric: str | None = None,
    direction: str = "maximize",
) -> go.Figure:
    """Where each strategy put its trials in two hyperparameters, one panel per strategy,
    coloured by score on one shared scale (all seeds of a strategy together).

    Shows the grid lattice, the random scatter and where Bayesian search concentrates.
    """
    from plotly.subplots import make_subplots

    title = f"Sample placement: {param_name(x_param)} × {param_name(y_param)}"
    done = complete_trials(frame) if not frame.empty else frame
    try:
        xc, yc = param_column(done, x_param), param_column(done, y_param)
    except KeyError:
        return message_figure(f"No completed trial used both {param_name(x_param)} and {param_name(y_param)}", title)
    data = done.dropna(subset=[xc, yc])
    if data.empty:
        return message_figure(NO_COMPLETED, title)
    strategies = _strategies(data)
    fig = make_subplots(
        rows=1,
        cols=len(strategies),
        shared_yaxes=True,
        subplot_titles=[_label(s) for s in strategies],
        horizontal_spacing=0.03,
    )
    lo, hi = float(data["value"].min()), float(data["value"].max())
    x_cat, y_cat = _is_categorical(data[xc]), _is_categorical(data[yc])
    for i, strategy in enumerate(strategies, start=1):
        d = data.loc[data["strategy"] == strategy]
        fig.add_trace(
            go.Scatter(
                x=d[xc].astype(str) if x_cat else d[xc],
                y=d[yc].astype(str) if y_cat else d[yc],
                mode="markers",
                name=_label(strategy),
                showlegend=False,
                customdata=np.stack([d["seed"].astype(str), d["number"].astype(str)], axis=-1),
                hovertemplate=(
                    f"seed %{{customdata[0]}}, trial %{{customdata[1]}}<br>{param_name(xc)}=%{{x}}<br>"
                    f"{param_name(yc)}=%{{y}}<br>score %{{marker.color:.4g}}<extra></extra>"
                ),
                marker={
                    "color": d["value"],
                    "coloraxis": "coloraxis",
                    "size": 8,
                    "opacity": 0.85,
                    "line": {"color": "#333", "width": 0.5},
                },
            ),
            row=1,
            col=i,
        )
        xaxis: dict[str, Any] = {"title": {"text": param_name(xc)}}
        if x_cat:
            xaxis.update(
                type="category", categoryorder="array", categoryarray=[str(v) for v in _category_order(data[xc])]
            )
        elif param_name(xc) in log_params:
            xaxis["type"] = "log"
        fig.update_xaxes(row=1, col=i, **xaxis)
    yaxis: dict[str, Any] = {"title": {"text": param_name(yc)}}
    if y_cat:
        yaxis.update(type="category", categoryorder="array", categoryarray=[str(v) for v in _category_order(data[yc])])
    elif param_name(yc) in log_params:
        yaxis["type"] = "log"
    # Every panel gets the y axis's type: a shared axis shares its range, not its type, so a
    # log axis on the first panel alone would draw the others on a linear axis.
    for i in range(1, len(strategies) + 1):
        fig.update_yaxes(row=1, col=i, **(yaxis if i == 1 else {k: v for k, v in yaxis.items() if k != "title"}))
    fig.update_layout(
        title={"text": title},
        coloraxis={
            "colorscale": COLORSCALE,
            "reversescale": direction == "minimize",
            "cmin": lo,
            "cmax": hi,
            "colorbar": {"title": {"text": _value_title(metric)}},
        },
    )
    return fig


def importance_comparison_figure(data: pd.DataFrame, method: str = "ped_anova") -> go.Figure:
    """Importance per strategy side by side (``hpdash.compare.importance_by_strategy``), method named."""
    title = f"Hyperparameter importance per strategy ({IMPORTANCE_LABELS.get(method, method)})"
    if data.empty:
        return message_figure("Not enough completed trials to estimate importance", title)
    order = data.groupby("param")["importance"].mean().sort_values().index.tolist()
    fig = go.Figure()
    for i, strategy in enumerate(_strategies(data)):
        d = data.loc[data["strategy"] == strategy].set_index("param").reindex(order)
        fig.add_trace(
            go.Bar(
                x=d["importance"],
                y=order,
                orientation="h",
                name=_label(strategy),
                marker={"color": strategy_color(strategy, i)},
                hovertemplate=f"{_label(strategy)}: %{{y}} %{{x:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title},
        barmode="group",
        xaxis={"title": {"text": "Importance (sums to 1 per strategy; mean over its seeds)"}},
        yaxis={"title": {"text": "Hyperparameter"}},
        legend=LEGEND_BELOW,
    )
    return fig
