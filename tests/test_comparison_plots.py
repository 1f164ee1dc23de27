"""hpdash.comparison_plots: the figures across repeats draw their tidy frames, and name their methods."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from hpdash import comparison_plots, plots


def _expected(pooled: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {"n": [1, 2, 3], "expected_best": [0.5, 0.6, 0.65], "twice": [0.6, 0.68, math.nan], "pooled": pooled}
    )


def test_random_baseline_lines_are_dashed_and_dotted_and_named() -> None:
    base = go.Figure(layout={"title": {"text": "t", "subtitle": {"text": "Band: x"}}})
    fig = comparison_plots.with_random_baseline(base, _expected(), "random search, expected best (pooled 5 trials)")
    expected, twice = fig.data
    assert expected.name == "random search, expected best (pooled 5 trials)" and expected.line.dash == "dash"
    assert list(expected.x) == [1, 2, 3] and list(expected.y) == [0.5, 0.6, 0.65]
    assert twice.name == "random search at twice the budget" and twice.line.dash == "dot"
    assert list(twice.x) == [1, 2] and list(twice.y) == [0.6, 0.68]  # only where 2n is in the pool
    subtitle = fig.layout.title.subtitle.text
    assert subtitle.startswith("Band: x; dashed: random search, expected best of n random draws without replacement")
    assert "(Bayesmark), pooled 5 trials" in subtitle


def test_random_baseline_leaves_a_figure_alone_without_a_pool() -> None:
    fig = go.Figure()
    empty = pd.DataFrame({c: [] for c in ("n", "expected_best", "twice", "pooled")})
    assert comparison_plots.with_random_baseline(fig, empty, "x") is fig and len(fig.data) == 0
    no_twice = _expected().assign(twice=math.nan)
    assert len(comparison_plots.with_random_baseline(go.Figure(), no_twice, "x").data) == 1


def test_average_rank_figure_one_line_per_strategy_best_at_the_top() -> None:
    data = pd.DataFrame(
        {
            "strategy": ["tpe", "tpe", "random", "random"],
            "trial": [1, 2, 1, 2],
            "average_rank": [1.5, 1.0, 1.5, 2.0],
            "blocks": 4,
        }
    )
    fig = comparison_plots.average_rank_figure(data)
    assert [t.name for t in fig.data] == ["TPE", "Random"]
    assert list(fig.data[0].y) == [1.5, 1.0] and fig.data[0].line.shape == "hv"
    assert fig.data[0].line.color == plots.strategy_color("tpe")
    low, high = fig.layout.yaxis.range
    assert low > high  # reversed: rank 1 at the top
    assert "4 seeds" in fig.layout.title.subtitle.text and fig.layout.title.text == "Average rank over budget"


def test_critical_difference_figure_draws_ranks_bars_and_the_cd() -> None:
    data = pd.DataFrame({"strategy": ["tpe", "gp", "random", "grid"], "average_rank": [1.2, 1.9, 3.1, 3.8]})
    fig = comparison_plots.critical_difference_figure(
        data, 1.66, [["tpe", "gp"], ["random", "grid"], ["grid"]], subtitle="Friedman p = 0.001"
    )
    assert fig.layout.title.text == "Critical-difference diagram (Friedman test, Nemenyi post-hoc (Demšar 2006))"
    assert fig.layout.title.subtitle.text == "Friedman p = 0.001"
    markers = [t for t in fig.data if t.mode == "lines+markers+text"]
    assert [t.x[0] for t in markers] == [1.2, 1.9, 3.1, 3.8]
    assert markers[0].text[1] == "TPE (1.20)"
    bars = [t for t in fig.data if t.name == "not significantly different"]
    assert len(bars) == 2  # a lone strategy gets no bar
    assert bars[0].x[0] == pytest.approx(1.2 - 0.03) and bars[0].x[1] == pytest.approx(1.9 + 0.03)
    cd = next(t for t in fig.data if str(t.name).startswith("CD ="))
    assert list(cd.x) == [1.0, pytest.approx(2.66)]
    assert any(a.text == "CD = 1.66" for a in fig.layout.annotations)


def test_critical_difference_figure_of_two_strategies_has_ranks_only() -> None:
    data = pd.DataFrame({"strategy": ["tpe", "random"], "average_rank": [1.0, 2.0]})
    fig = comparison_plots.critical_difference_figure(data, math.nan, [], subtitle="ranks only")
    assert all(not str(t.name).startswith("CD") for t in fig.data)
    assert not [t for t in fig.data if t.name == "not significantly different"]
    assert len(fig.data) == 2 and not fig.layout.annotations


def test_runtime_ecdf_figure_steps_per_strategy() -> None:
    data = pd.DataFrame(
        {
            "strategy": ["tpe"] * 3 + ["random"] * 3,
            "seconds": [0.0, 2.0, 7.0] * 2,
            "fraction": [0.0, 1.0, 1.0, 0.0, 0.0, 0.5],
            "runs": 2,
            "reached": [2, 2, 2, 1, 1, 1],
        }
    )
    fig = comparison_plots.runtime_ecdf_figure(data, "target 0.95")
    assert [t.name for t in fig.data] == ["TPE (2/2 reached)", "Random (1/2 reached)"]
    assert all(t.line.shape == "hv" for t in fig.data)
    assert fig.layout.title.text == "ECDF of runtime to target (COCO)"
    assert fig.layout.title.subtitle.text.endswith("; target 0.95")
    assert fig.layout.yaxis.range[0] < 0 < 1.0 <= fig.layout.yaxis.range[1]


@pytest.mark.parametrize(
    "draw",
    [
        lambda d: comparison_plots.average_rank_figure(d),
        lambda d: comparison_plots.critical_difference_figure(d, None, []),
        lambda d: comparison_plots.runtime_ecdf_figure(d),
    ],
)
def test_empty_data_gives_a_message_not_an_error(draw) -> None:
    fig = draw(pd.DataFrame({"strategy": []}))
    assert fig.layout.annotations[0].text == plots.NO_COMPLETED
