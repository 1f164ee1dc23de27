"""The sample-placement figure animated over trials, one panel per strategy side by side.

Input: a comparison-style frame (``hpdash.compare``: the trials of several studies stacked,
with ``study``, ``strategy`` and ``seed`` columns). Each panel shows one run of a strategy
(one seed, by default the strategy's first in the frame), and animation frame t shows every
trial that run had finished within its first t trials (cumulative), so an audience sees random
search spread out, a cut grid visit its seeded random subset, and TPE or a GP concentrate.

``trial`` counts a run's trials in number order from 1 (the budget used, as on the Compare
page's trial axis); a trial whose params miss one of the two plotted (a conditional param)
still counts, but is not drawn. Axes and the colour scale are fixed over the whole animation
(every panel, every trial), so nothing jumps while it plays.

Size: a frame carries the cumulative points of every panel, so the figure grows with
frames x points. The trials are stepped in chunks (``step``) so that there are at most
``MAX_FRAMES`` frames, frame data hold only coordinates and colours (float32, which Plotly
stores as base64), and the hover texts live once in the traces: each frame's points are a
prefix, in trial order, of the trace's, so the trace's ``customdata`` lines up with them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpdash import plots, vocabulary
from hpdash.explain.steps import FixedAxis, fixed_axis
from hpdash.results import param_column, param_name

#: The most animation frames a figure gets (the trials are stepped in chunks to stay below).
MAX_FRAMES = 60
NEW_COLOR = "#d62728"


@dataclass(frozen=True, eq=False)
class PlacementAnimation:
    """The tidy data of the animation.

    ``points``: one row per drawn trial (strategy, seed, study, trial: its 1-based position
    in its run, number, x, y: the raw param values, value: the score when COMPLETE else NaN);
    ``ends``: the ``trial`` bound of each animation frame (frame i shows ``trial <= ends[i]``);
    ``step``: trials per frame; ``seeds``: the seed shown per strategy.
    """

    points: pd.DataFrame
    x_column: str
    y_column: str
    strategies: tuple[str, ...]
    seeds: dict[str, int]
    ends: tuple[int, ...]
    step: int

    def shown(self, strategy: str, end: int) -> pd.DataFrame:
        """The points of ``strategy``'s panel in the frame that ends at trial ``end``."""
        p = self.points
        return p.loc[(p["strategy"] == strategy) & (p["trial"] <= end)]


def _seed_of(rows: pd.DataFrame, strategy: str, seed: int | Mapping[str, int] | None) -> int:
    """The seed to show for ``strategy``: ``seed`` (one for all, or per strategy) if the frame
    has it, else the strategy's first seed in the frame."""
    wanted = seed.get(strategy) if isinstance(seed, Mapping) else seed
    seeds = list(pd.unique(rows["seed"]))
    if wanted is not None and wanted not in seeds:
        raise ValueError(f"{vocabulary.strategy_name(strategy)} has no run with seed {wanted} (it has {seeds})")
    return int(seeds[0] if wanted is None else wanted)


def animation_data(
    frame: pd.DataFrame,
    x_param: str,
    y_param: str,
    strategies: Sequence[str] | None = None,
    seed: int | Mapping[str, int] | None = None,
    step: int | None = None,
    max_frames: int = MAX_FRAMES,
) -> PlacementAnimation:
    """The points and frame ends of ``placement_animation_figure``.

    ``strategies``: which panels, in order (default: every strategy of the frame, in frame
    order). ``step``: trials per animation frame (default, and at least: the longest run's
    trials / ``max_frames``, rounded up). KeyError when the frame lacks either param.
    """
    xc, yc = param_column(frame, x_param), param_column(frame, y_param)
    chosen = list(pd.unique(frame["strategy"])) if strategies is None else list(strategies)
    parts, seeds = [], {}
    for strategy in chosen:
        rows = frame.loc[frame["strategy"] == strategy]
        if rows.empty:
            raise ValueError(f"The frame has no {vocabulary.strategy_name(strategy)} run")
        seeds[strategy] = _seed_of(rows, strategy, seed)
        run = rows.loc[rows["seed"] == seeds[strategy]]
        run = run.loc[run["study"] == run["study"].iloc[0]] if "study" in run.columns else run
        run = run.sort_values("number", kind="stable")
        complete = (run["state"].astype(str) == "COMPLETE").to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "seed": seeds[strategy],
                    "study": run["study"].to_numpy() if "study" in run.columns else None,
                    "trial": np.arange(1, len(run) + 1),
                    "number": run["number"].to_numpy(),
                    "x": run[xc].to_numpy(),
                    "y": run[yc].to_numpy(),
                    "value": np.where(complete, run["value"].to_numpy(dtype="float64"), np.nan),
                }
            )
        )
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["strategy", "trial", "x", "y"])
    total = int(points["trial"].max()) if len(points) else 0
    step = max(int(step or 1), math.ceil(total / max_frames), 1)
    ends = list(range(step, total + 1, step))
    if total and (not ends or ends[-1] != total):
        ends.append(total)
    drawn = points.loc[points["x"].notna() & points["y"].notna()].reset_index(drop=True)
    return PlacementAnimation(drawn, xc, yc, tuple(chosen), seeds, tuple(ends), step)


def _coords(axis: FixedAxis, values: pd.Series) -> Any:
    """Plotly coordinates, numbers as float32 (half the JSON of float64, base64 either way)."""
    out = axis.values(values)
    return out if axis.categorical else out.astype("float32")


def _panel_traces(
    data: PlacementAnimation, strategy: str, end: int, previous: int, ax: FixedAxis, ay: FixedAxis
) -> list[dict[str, Any]]:
    """The three traces of one panel in the frame ending at ``end``: COMPLETE trials (colour:
    score), the others (grey crosses), and those new since ``previous`` (red rings)."""
    shown = data.shown(strategy, end)
    complete = shown["value"].notna().to_numpy()
    new = shown.loc[shown["trial"] > previous]
    done, other = shown.loc[complete], shown.loc[~complete]
    return [
        {
            "x": _coords(ax, done["x"]),
            "y": _coords(ay, done["y"]),
            "marker": {"color": done["value"].to_numpy(dtype="float32")},
        },
        {"x": _coords(ax, other["x"]), "y": _coords(ay, other["y"])},
        {"x": _coords(ax, new["x"]), "y": _coords(ay, new["y"])},
    ]


def placement_animation_figure(
    frame: pd.DataFrame,
    x_param: str,
    y_param: str,
    log_params: Collection[str] = frozenset(),
    strategies: Sequence[str] | None = None,
    seed: int | Mapping[str, int] | None = None,
    step: int | None = None,
    metric: str | None = None,
    direction: str = "maximize",
    max_frames: int = MAX_FRAMES,
    frame_ms: int = 400,
) -> go.Figure:
    """Sample placement over trials, one panel per strategy (``animation_data``), with play
    and pause buttons and a slider over "trials used"; each frame rings the trials it added."""
    xn, yn = param_name(x_param), param_name(y_param)
    title = f"Sample placement over trials: {xn} × {yn}"
    try:
        data = animation_data(frame, x_param, y_param, strategies, seed, step, max_frames)
    except KeyError:
        return plots.message_figure(f"The studies have no hyperparameter {xn} or {yn}", title)
    if data.points.empty:
        return plots.message_figure(f"No trial used both {xn} and {yn}", title)
    logs = set(log_params)
    ax = fixed_axis(data.points["x"].rename(data.x_column), xn in logs)
    ay = fixed_axis(data.points["y"].rename(data.y_column), yn in logs)
    values = data.points["value"].dropna()
    names = [f"{vocabulary.strategy_name(s)} (seed {data.seeds[s]})" for s in data.strategies]
    fig = make_subplots(
        rows=1, cols=len(data.strategies), shared_yaxes=True, subplot_titles=names, horizontal_spacing=0.03
    )
    # The figure opens on the last frame (every trial), so it reads as a still; Play runs the
    # frames from the first.
    last = data.ends[-1]
    for col, strategy in enumerate(data.strategies, start=1):
        mine = data.points.loc[data.points["strategy"] == strategy]
        done, other = mine.loc[mine["value"].notna()], mine.loc[mine["value"].isna()]
        done_hover = np.column_stack([done["number"].to_numpy(), done["value"].to_numpy()])
        start = _panel_traces(data, strategy, last, last, ax, ay)
        traces = [
            go.Scatter(
                **start[0],
                mode="markers",
                name="COMPLETE (colour: score)",
                customdata=done_hover,
                hovertemplate="Trial %{customdata[0]}<br>score %{customdata[1]:.4g}<extra></extra>",
            ),
            go.Scatter(
                **start[1],
                mode="markers",
                name="Pruned or failed",
                customdata=other["number"].to_numpy(),
                hovertemplate="Trial %{customdata} (no score)<extra></extra>",
                marker={"symbol": "x", "size": 7, "color": "#9e9e9e"},
            ),
            go.Scatter(
                **start[2],
                mode="markers",
                name="New in this step",
                hoverinfo="skip",
                marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"color": NEW_COLOR, "width": 2}},
            ),
        ]
        traces[0].marker.update(coloraxis="coloraxis", size=8, line={"color": "#333", "width": 0.5})
        for trace in traces:
            trace.update(legendgroup=trace.name, showlegend=col == 1)
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(row=1, col=col, **ax.layout(xn))
        # every panel's y axis gets the scale: a shared axis shares its range, not its type (log)
        fig.update_yaxes(row=1, col=col, **{**ay.layout(yn), **({} if col == 1 else {"title": None})})
    frames = []
    for i, end in enumerate(data.ends):
        previous = data.ends[i - 1] if i else 0
        frame_data = [t for s in data.strategies for t in _panel_traces(data, s, end, previous, ax, ay)]
        frames.append(go.Frame(name=str(end), data=frame_data, traces=list(range(len(frame_data)))))
    fig.frames = frames
    still = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    play = {"frame": {"duration": frame_ms, "redraw": False}, "fromcurrent": False, "transition": {"duration": 0}}
    fig.update_layout(
        title={"text": title, "subtitle": {"text": f"{data.step} trial(s) per step; red rings: added in this step"}},
        coloraxis={
            "colorscale": plots.COLORSCALE,
            "reversescale": direction == "minimize",
            "cmin": float(values.min()) if len(values) else None,
            "cmax": float(values.max()) if len(values) else None,
            "colorbar": {"title": {"text": metric or "Score"}},
        },
        # Below the panels, from top to bottom: the x titles, the legend, the slider, the buttons.
        height=600,
        legend={"orientation": "h", "y": -0.24, "yanchor": "top"},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0,
                "y": -0.62,
                "yanchor": "top",
                "xanchor": "left",
                "buttons": [
                    {"label": "Play", "method": "animate", "args": [[str(end) for end in data.ends], play]},
                    {"label": "Pause", "method": "animate", "args": [[None], still]},
                ],
            }
        ],
        sliders=[
            {
                "active": len(data.ends) - 1,
                "x": 0.14,
                "y": -0.38,
                "yanchor": "top",
                "len": 0.88,
                "currentvalue": {"prefix": "Trials used: "},
                "steps": [{"label": str(end), "method": "animate", "args": [[str(end)], still]} for end in data.ends],
            }
        ],
        margin={"b": 250},
        meta={"animation": {"frames": len(data.ends), "step": data.step, "ends": list(data.ends), "seeds": data.seeds}},
    )
    return fig
