"""Figures of a strategy comparison across repeats, drawn from the tidy frames of ``hpdash.compare``.

A layer above ``hpdash.plots`` (it imports ``plots`` for colours, labels and the empty-figure
message) and below ``hpdash.compare``, which calls it: random search's expected best on the
convergence figure, the average rank over budget, the critical-difference diagram and the ECDF of
runtime to target. Each draw function only maps the columns of its ``*_data`` frame (documented in
``hpdash.compare.baseline`` and ``hpdash.compare.repeats``) to traces, and names its method in
its title or subtitle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hpdash import plots, vocabulary

BASELINE_COLOR = "#444444"
EXPECTED_BEST_NAME = "expected best of n random draws without replacement (Bayesmark)"
TWICE_NAME = "random search at twice the budget"
FRIEDMAN_NAME = "Friedman test, Nemenyi post-hoc (Demšar 2006)"
ECDF_NAME = "ECDF of runtime to target (COCO)"

_label = vocabulary.strategy_name


def _strategies(frame: pd.DataFrame) -> list[str]:
    return list(pd.unique(frame["strategy"])) if "strategy" in frame.columns and not frame.empty else []


def with_random_baseline(
    fig: go.Figure, expected: pd.DataFrame, label: str, twice_label: str = TWICE_NAME
) -> go.Figure:
    """``fig`` (the best-so-far vs trials figure) with random search's expected best at every
    budget as a dashed line named ``label``, and at twice the budget (the ``twice`` column, where
    it is defined) as a dotted line named ``twice_label``; ``expected``: ``expected_best_data``
    (n, expected_best, twice, pooled). Unchanged when ``expected`` is empty."""
    if expected.empty:
        return fig
    fig.add_trace(
        go.Scatter(
            x=expected["n"],
            y=expected["expected_best"],
            mode="lines",
            name=label,
            line={"color": BASELINE_COLOR, "dash": "dash", "width": 2},
            hovertemplate=f"{plots.plain(label)}<br>n = %{{x}}: %{{y:.4g}}<extra></extra>",
        )
    )
    twice = expected.dropna(subset=["twice"])
    if not twice.empty:
        fig.add_trace(
            go.Scatter(
                x=twice["n"],
                y=twice["twice"],
                mode="lines",
                name=twice_label,
                line={"color": BASELINE_COLOR, "dash": "dot", "width": 2},
                hovertemplate=f"{plots.plain(twice_label)}<br>n = %{{x}} (2n drawn): %{{y:.4g}}<extra></extra>",
            )
        )
    subtitle = fig.layout.title.subtitle.text or ""
    note = f"dashed: random search, {EXPECTED_BEST_NAME}, pooled {int(expected['pooled'].iloc[0])} trials"
    fig.update_layout(title={"subtitle": {"text": f"{subtitle}; {note}" if subtitle else note}})
    return fig


def average_rank_figure(data: pd.DataFrame, title: str = "Average rank over budget") -> go.Figure:
    """One line per strategy: its rank within each seed (1 = best) averaged over the seeds, at
    every trial count; ``data``: ``average_rank_data`` (strategy, trial, average_rank, blocks)."""
    if data.empty:
        return plots.message_figure(plots.NO_COMPLETED, title)
    fig = go.Figure()
    strategies = _strategies(data)
    for i, strategy in enumerate(strategies):
        d = data.loc[data["strategy"] == strategy]
        fig.add_trace(
            go.Scatter(
                x=d["trial"],
                y=d["average_rank"],
                mode="lines",
                name=_label(strategy),
                line={"shape": "hv", "color": plots.strategy_color(strategy, i), "width": 2},
                hovertemplate=f"{_label(strategy)}: average rank %{{y:.2f}} at %{{x}} trials<extra></extra>",
            )
        )
    blocks = int(data["blocks"].iloc[0])
    fig.update_layout(
        title={
            "text": title,
            "subtitle": {
                "text": f"Rank within each of {blocks} seed{'s' if blocks != 1 else ''} (1 = best, ties share), "
                "averaged; a run with no completed trial yet ranks last"
            },
        },
        xaxis={"title": {"text": plots.COMPARE_X_TITLES["trial"]}},
        yaxis={"title": {"text": "Average rank (1 = best)"}, "range": [len(strategies) + 0.2, 0.8], "dtick": 1},
        legend=plots.LEGEND_BELOW,
    )
    return fig


def critical_difference_figure(
    data: pd.DataFrame,
    cd: float | None,
    bars: Sequence[Sequence[str]],
    subtitle: str = "",
    title: str = f"Critical-difference diagram ({FRIEDMAN_NAME})",
) -> go.Figure:
    """Demšar's critical-difference diagram: each strategy at its average rank on an axis from 1
    (best, left) to k, a thick bar under every group of strategies not significantly different
    (``bars``, from ``statistics.cd_groups``), and a segment as long as the critical difference
    ``cd`` above the axis (none when ``cd`` is None or NaN: ranks only). ``data``: strategy,
    average_rank (``CriticalDifference.frame``)."""
    if data.empty:
        return plots.message_figure(plots.NO_COMPLETED, title)
    k = len(data)
    ranks = dict(zip(data["strategy"], data["average_rank"].astype("float64")))
    fig = go.Figure()
    for i, (strategy, rank) in enumerate(ranks.items()):
        height = 0.35 + 0.22 * (i % 3)  # staggered labels: close ranks do not overlap
        color = plots.strategy_color(strategy, i)
        fig.add_trace(
            go.Scatter(
                x=[rank, rank],
                y=[0.0, height],
                mode="lines+markers+text",
                text=["", f"{_label(strategy)} ({rank:.2f})"],
                textposition="top center",
                marker={"color": color, "size": [10, 0]},
                line={"color": color, "width": 1},
                name=_label(strategy),
                showlegend=False,
                hovertemplate=f"{_label(strategy)}: average rank {rank:.3f}<extra></extra>",
            )
        )
    for j, group in enumerate(bars):
        xs = [ranks[s] for s in group if s in ranks]
        if len(xs) < 2:
            continue
        y = -0.18 * (j + 1)
        fig.add_trace(
            go.Scatter(
                x=[min(xs) - 0.03, max(xs) + 0.03],
                y=[y, y],
                mode="lines",
                line={"color": "#222222", "width": 6},
                name="not significantly different",
                showlegend=False,
                hovertemplate=f"not significantly different: {', '.join(_label(s) for s in group)}<extra></extra>",
            )
        )
    if cd is not None and math.isfinite(cd):
        fig.add_trace(
            go.Scatter(
                x=[1.0, 1.0 + cd],
                y=[1.2, 1.2],
                mode="lines+markers",
                marker={"symbol": "line-ns-open", "size": 12, "color": "#b00020"},
                line={"color": "#b00020", "width": 3},
                name=f"CD = {cd:.3g}",
                showlegend=False,
                hovertemplate=f"critical difference {cd:.3g}<extra></extra>",
            )
        )
        fig.add_annotation(x=1.0 + cd / 2, y=1.2, text=f"CD = {cd:.3g}", showarrow=False, yshift=14)
    low = -0.18 * (len(bars) + 1)
    fig.update_layout(
        title={"text": title, "subtitle": {"text": subtitle}},
        xaxis={
            "title": {"text": "Average rank (1 = best)"},
            "range": [0.7, max(k, max(ranks.values()) + 0.3, 1.0 + (cd or 0) + 0.3) + 0.3],
            "dtick": 1,
            "zeroline": False,
            "showline": True,
            "linecolor": "#222222",
            "ticks": "outside",
            "showgrid": False,
        },
        yaxis={"visible": False, "range": [low - 0.1, 1.5]},
        plot_bgcolor="white",
        height=340 + 20 * len(bars),
    )
    return fig


def runtime_ecdf_figure(data: pd.DataFrame, target_text: str = "", title: str = ECDF_NAME) -> go.Figure:
    """One step line per strategy: the share of its runs that had reached the target by each
    wall-clock time (``runtime_ecdf_data``: strategy, seconds, fraction, runs, reached)."""
    if data.empty:
        return plots.message_figure(plots.NO_COMPLETED, title)
    fig = go.Figure()
    for i, strategy in enumerate(_strategies(data)):
        d = data.loc[data["strategy"] == strategy]
        runs, reached = int(d["runs"].iloc[0]), int(d["reached"].iloc[0])
        fig.add_trace(
            go.Scatter(
                x=d["seconds"],
                y=d["fraction"],
                mode="lines",
                name=f"{_label(strategy)} ({reached}/{runs} reached)",
                line={"shape": "hv", "color": plots.strategy_color(strategy, i), "width": 2},
                hovertemplate=f"{_label(strategy)}: %{{y:.0%}} of {runs} runs by %{{x:.1f}} s<extra></extra>",
            )
        )
    share = np.asarray(data["fraction"], dtype="float64")
    fig.update_layout(
        title={
            "text": title,
            "subtitle": {
                "text": "Share of runs that reached the target by each time"
                + (f"; {target_text}" if target_text else "")
            },
        },
        xaxis={"title": {"text": plots.COMPARE_X_TITLES["elapsed_s"]}},
        yaxis={
            "title": {"text": "Share of runs at the target"},
            "range": [-0.02, max(1.02, float(share.max()) + 0.02)],
        },
        legend=plots.LEGEND_BELOW,
    )
    return fig
