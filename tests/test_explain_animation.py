"""hpdash.explain.animation on a real comparison frame: 5 strategies x 200 trials, in memory.

The studies are real Optuna studies with hpdash's samplers (``strategies.make_sampler``) on a
cheap analytic objective; the grid study enqueues its grid in the runner's seeded order. GP is
left out: 200 trials of it take tens of seconds, and the figure does not depend on the sampler.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest

from hpdash import space, strategies
from hpdash.compare.loading import experiment_frame
from hpdash.explain import animation

N_TRIALS = 200
STRATEGIES = ("grid", "random", "qmc", "tpe", "cmaes")
SPACES = {
    "svm": space.parse_space(
        {
            "C": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
            "gamma": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        }
    )
}


def _objective(trial: optuna.Trial) -> float:
    _, p = space.suggest(trial, SPACES)
    return -((math.log10(p["C"]) - 1) ** 2) - (math.log10(p["gamma"]) + 2) ** 2


def _study(strategy: str, seed: int) -> optuna.Study:
    sampler = strategies.make_sampler(strategy, strategies.worker_seed(seed, 0), study_seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=f"demo-{strategy}-s{seed}")
    if strategy == "grid":  # as the runner does: a seeded permutation of the grid, cut to the budget
        points = space.grid_points(SPACES, 15)  # 225 points > 200 trials
        for i in np.random.default_rng(seed).permutation(len(points))[:N_TRIALS]:
            study.enqueue_trial(points[int(i)])
    study.optimize(_objective, n_trials=N_TRIALS)
    return study


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = [(_study(s, 0), s, 0) for s in STRATEGIES] + [(_study("random", 1), "random", 1)]
    return experiment_frame(runs)


def _panel_counts(fig, panels: int) -> list[list[int]]:
    """Points drawn per panel (COMPLETE + other traces) in each animation frame."""
    return [[len(f.data[3 * p].x) + len(f.data[3 * p + 1].x) for p in range(panels)] for f in fig.frames]


def test_animation_has_bounded_cumulative_frames_fixed_axes_and_small_json(frame) -> None:
    fig = animation.placement_animation_figure(frame, "C", "gamma", log_params={"C", "gamma"}, metric="score")
    step = math.ceil(N_TRIALS / animation.MAX_FRAMES)  # 4 trials per step
    ends = list(range(step, N_TRIALS + 1, step))
    assert len(fig.frames) == len(ends) == 50 <= animation.MAX_FRAMES
    assert [f.name for f in fig.frames] == [str(e) for e in ends]
    assert [s.label for s in fig.layout.sliders[0].steps] == [str(e) for e in ends]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["Play", "Pause"]
    # cumulative: frame t shows each run's first t trials, and rings the ones it added
    assert _panel_counts(fig, 5) == [[e] * 5 for e in ends]
    for i, f in enumerate(fig.frames):
        assert [len(f.data[3 * p + 2].x) for p in range(5)] == [step] * 5, i
    # the panels are the strategies in frame order, each its first seed
    assert [a.text for a in fig.layout.annotations][:5] == [
        "Grid (seed 0)",
        "Random (seed 0)",
        "QMC (seed 0)",
        "TPE (seed 0)",
        "CMA-ES (seed 0)",
    ]
    # one fixed range on every panel, spanning every trial of the runs shown
    shown = frame.loc[frame["seed"] == 0]
    xr = {fig.layout[f"xaxis{'' if i == 1 else i}"].range for i in range(1, 6)}
    assert len(xr) == 1 and fig.layout.xaxis.type == "log" and fig.layout.xaxis.autorange is False
    lo, hi = xr.pop()
    # every panel's y axis has the scale too (a shared axis shares only its range)
    ys = {
        (fig.layout[f"yaxis{'' if i == 1 else i}"].type, fig.layout[f"yaxis{'' if i == 1 else i}"].range)
        for i in range(1, 6)
    }
    assert len(ys) == 1 and ys.pop()[0] == "log"
    assert lo < math.log10(shown["params_C"].min()) and hi > math.log10(shown["params_C"].max())
    assert all(f.layout.to_plotly_json() == {} for f in fig.frames)  # frames never touch the axes
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (shown["value"].min(), shown["value"].max())
    size = len(fig.to_json())
    assert size < 1_500_000, f"{size:,} bytes"


def test_the_last_frame_holds_each_run_and_hover_lines_up(frame) -> None:
    fig = animation.placement_animation_figure(frame, "C", "gamma", strategies=["tpe", "grid"], step=25)
    assert len(fig.frames) == 8 and fig.layout.meta["animation"]["step"] == 25
    last = fig.frames[-1]
    for p, strategy in enumerate(["tpe", "grid"]):
        run = frame.loc[(frame["strategy"] == strategy) & (frame["seed"] == 0)].sort_values("number")
        np.testing.assert_allclose(last.data[3 * p].x, run["params_C"].to_numpy(), rtol=1e-6)
        # the trace's customdata (trial numbers) lines up with every frame's points (a prefix)
        numbers = fig.data[3 * p].customdata[:, 0].astype(int)
        first = fig.frames[0].data[3 * p]
        expected = run.set_index("number").loc[numbers[: len(first.x)], "params_gamma"].to_numpy()
        np.testing.assert_allclose(first.y, expected, rtol=1e-6)
    # the grid's points are its enqueued, seeded permutation of the 15 x 15 grid
    grid_values = set(space.grid_values(SPACES["svm"]["C"], 15))
    assert {float(v) for v in frame.loc[frame["strategy"] == "grid", "params_C"]} <= grid_values


def test_seed_and_step_choices(frame) -> None:
    data = animation.animation_data(frame, "C", "gamma", strategies=["random"], seed={"random": 1}, step=1)
    assert data.seeds == {"random": 1} and data.step == math.ceil(N_TRIALS / animation.MAX_FRAMES)
    seed1 = frame.loc[(frame["strategy"] == "random") & (frame["seed"] == 1)].sort_values("number")
    assert data.points["x"].tolist() == seed1["params_C"].tolist()
    assert data.shown("random", 10)["number"].tolist() == seed1["number"].iloc[:10].tolist()
    small = animation.animation_data(frame, "C", "gamma", step=30)
    assert small.ends == (30, 60, 90, 120, 150, 180, 200)  # the last frame always shows every trial
    with pytest.raises(ValueError, match="no run with seed 7"):
        animation.animation_data(frame, "C", "gamma", seed=7)
    assert "no hyperparameter" in animation.placement_animation_figure(frame, "C", "nope").layout.annotations[0].text
