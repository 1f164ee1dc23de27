"""hpdash.explain.steps on real Optuna studies: a study as it was after trial k."""

from __future__ import annotations

import math
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hpdash import results
from hpdash.explain import steps

N_TRIALS = 30


def _objective(trial: optuna.Trial) -> float:
    """A cheap score with some pruned and failed trials, so states vary."""
    x = trial.suggest_float("x", 0.0, 1.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    if x > 0.85:
        raise optuna.TrialPruned()
    if x < 0.08:
        raise ValueError("a failing region")
    return -((x - 0.4) ** 2) - (math.log10(lr) + 2) ** 2 / 10 + (0.05 if kind == "b" else 0.0)


def _study(direction: str, seed: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(_objective, n_trials=N_TRIALS, catch=(ValueError,))
    return study


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    s = _study("maximize")
    states = {t.state for t in s.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states  # the fixture's point
    return s


def _expected_best(trials: list[optuna.trial.FrozenTrial], k: int, direction: str) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial numbered <= k, the lowest number on ties, by a plain loop."""
    best = None
    for t in trials:
        if t.number > k or t.state != TrialState.COMPLETE:
            continue
        better = best is None or (t.value > best.value if direction == "maximize" else t.value < best.value)
        if better:
            best = t
    return best


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_step_k_holds_trials_0_to_k_with_the_running_best_and_the_next_trial(direction: str) -> None:
    study = _study(direction, seed=1)
    frame = results.trials_frame(study)
    trials = sorted(study.trials, key=lambda t: t.number)
    for k in range(N_TRIALS):
        view = steps.step_view(frame, k, direction)
        assert view.frame["number"].tolist() == list(range(k + 1))
        assert view.frame["state"].tolist() == [t.state.name for t in trials[: k + 1]]  # states as they ended
        assert view.frame["role"].tolist() == ["earlier"] * k + ["latest"]
        if k + 1 < N_TRIALS:
            assert view.next_trial is not None and int(view.next_trial["number"]) == k + 1
            assert view.next_trial["role"] == "next"
            assert view.next_trial["params_x"] == trials[k + 1].params["x"]
        else:
            assert view.next_trial is None
        # best_so_far row by row equals the running best of a plain loop
        running = []
        for j in range(k + 1):
            b = _expected_best(trials, j, direction)
            running.append(math.nan if b is None else b.value)
        np.testing.assert_allclose(view.frame["best_so_far"].to_numpy(dtype=float), running, equal_nan=True)
        expected = _expected_best(trials, k, direction)
        if expected is None:
            assert view.best is None and not view.frame["is_best"].any()
        else:
            assert view.best is not None
            assert (view.best.number, view.best.value, view.best.params) == (
                expected.number,
                expected.value,
                expected.params,
            )
            assert view.frame.loc[view.frame["is_best"], "number"].tolist() == [expected.number]


def test_frame_at_is_one_tidy_frame_with_the_next_row(study) -> None:
    frame = results.trials_frame(study)
    out = steps.frame_at(frame, 4)
    assert out["number"].tolist() == [0, 1, 2, 3, 4, 5]
    assert out["role"].tolist() == ["earlier"] * 4 + ["latest", "next"]
    assert out["best_so_far"].iloc[-1] == out["best_so_far"].iloc[-2]  # the next one has not run yet
    assert not out["is_best"].iloc[-1]
    assert out["number"].dtype == frame["number"].dtype and out["params_x"].dtype == frame["params_x"].dtype
    last = steps.frame_at(frame, N_TRIALS - 1)
    assert last["role"].tolist()[-1] == "latest" and len(last) == N_TRIALS


def test_steps_refuse_what_they_cannot_show(study) -> None:
    frame = results.trials_frame(study)
    with pytest.raises(ValueError, match="No trial is numbered -1"):
        steps.step_view(frame, -1)
    stacked = pd.concat([frame.assign(study="a"), frame.assign(study="b")], ignore_index=True)
    with pytest.raises(ValueError, match="one study at a time"):
        steps.step_view(stacked, 3)
    with pytest.raises(ValueError, match="direction"):
        steps.step_view(frame, 3, "up")


def _trace(fig, prefix: str):
    found = [t for t in fig.data if (t.name or "").startswith(prefix)]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_convergence_at_step_marks_best_latest_and_next_on_fixed_axes(study) -> None:
    frame = results.trials_frame(study)
    complete = frame.loc[frame["state"] == "COMPLETE"]
    figs = {}
    for k in (int(complete["number"].iloc[1]), N_TRIALS - 2):
        view = steps.step_view(frame, k)
        fig = steps.convergence_at_figure(view, metric="score")
        figs[k] = fig
        values = _trace(fig, "Trial value")
        assert sorted(values.customdata.tolist()) == complete.loc[complete["number"] <= k, "number"].tolist()
        star = _trace(fig, "Best so far: trial")
        assert (star.x[0], star.y[0]) == (view.best.number, view.best.value)
        assert fig.layout.meta["step"] == {"k": k, "trials": k + 1, "next": k + 1, "best": view.best.number}
        assert [s.x0 for s in fig.layout.shapes] == [k + 1]  # the next trial's line
        assert not [t for t in fig.data if (t.name or "").startswith("Next:")]  # its score stays hidden
    early, late = figs.values()
    assert early.layout.xaxis.range == late.layout.xaxis.range
    assert early.layout.yaxis.range == late.layout.yaxis.range
    lo, hi = late.layout.yaxis.range
    assert lo <= complete["value"].min() and hi >= complete["value"].max()  # the whole study's scores fit
    revealed = steps.convergence_at_figure(steps.step_view(frame, N_TRIALS - 2), reveal_next=True)
    nxt = frame.iloc[N_TRIALS - 1]
    if nxt["state"] == "COMPLETE":
        assert _trace(revealed, "Next: trial").y[0] == nxt["value"]


def test_placement_at_step_draws_the_trials_so_far_and_the_next_one(study) -> None:
    frame = results.trials_frame(study)
    k = 5
    view = steps.step_view(frame, k)
    fig = steps.placement_at_figure(view, "x", "lr", log_params={"lr"})
    so_far = frame.loc[frame["number"] <= k]
    done = so_far.loc[so_far["state"] == "COMPLETE"]
    points = _trace(fig, "Trials so far")
    assert sorted(points.customdata[:, 0].astype(int).tolist()) == done["number"].tolist()
    other = fig.data[1]
    assert len(other.x) == len(so_far) - len(done)
    nxt = _trace(fig, f"Next: trial {k + 1}")
    assert (nxt.x[0], nxt.y[0]) == (frame.loc[k + 1, "params_x"], frame.loc[k + 1, "params_lr"])
    best = _trace(fig, "Best so far")
    assert best.x[0] == frame.loc[frame["number"] == view.best.number, "params_x"].item()
    # fixed axes and colour scale: the same at the last step, and spanning every trial
    last = steps.placement_at_figure(steps.step_view(frame, N_TRIALS - 1), "x", "lr", log_params={"lr"})
    assert fig.layout.xaxis.range == last.layout.xaxis.range and fig.layout.yaxis.range == last.layout.yaxis.range
    assert fig.layout.yaxis.type == "log"
    lo, hi = fig.layout.yaxis.range
    assert lo < math.log10(frame["params_lr"].min()) and hi > math.log10(frame["params_lr"].max())
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (
        frame["value"].min(),
        frame["value"].max(),
    )
    # a categorical axis lists every choice from the first step on
    cat = steps.placement_at_figure(steps.step_view(frame, 0), "kind", "x")
    assert list(cat.layout.xaxis.categoryarray) == sorted(frame["params_kind"].unique())
    assert "two different" in steps.placement_at_figure(view, "x", "x").layout.annotations[0].text


def test_a_step_of_a_10k_trial_study_takes_milliseconds() -> None:
    rng = np.random.default_rng(0)
    dists = {"x": FloatDistribution(0, 1), "kind": CategoricalDistribution(["a", "b"])}
    trials = []
    for _ in range(10_000):
        params = {"x": float(rng.random()), "kind": str(rng.choice(["a", "b"]))}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=-((params["x"] - 0.3) ** 2)))
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    frame = results.trials_frame(study)
    ks = list(range(0, 10_000, 250))
    start = time.perf_counter()
    views = [steps.step_view(frame, k) for k in ks]
    per_step = (time.perf_counter() - start) / len(ks)
    assert per_step < 0.05, f"{per_step * 1000:.1f} ms per step"
    assert [len(v.frame) for v in views] == [k + 1 for k in ks]
    best = views[-1]
    expected = frame.loc[frame["number"] <= ks[-1], "value"].idxmax()
    assert best.best is not None and best.best.number == int(frame.loc[expected, "number"])
