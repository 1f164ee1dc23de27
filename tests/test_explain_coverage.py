"""hpdash.explain.coverage: a real cut grid study's order, and QMC against random coverage."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy.stats import qmc

from hpdash import results, runner, space
from hpdash.compare.loading import experiment_frame
from hpdash.explain import coverage
from hpdash.spec import parse_spec

SPACES = {
    "m": space.parse_space(
        {
            "C": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
            "gamma": {"type": "float", "low": 0.0, "high": 1.0},
        }
    )
}


@pytest.fixture
def grid_study(data_dir) -> optuna.Study:
    """k-NN on iris, grid search over its default space (5 x 2 x 2 = 20 points) cut to 6
    trials, run by the runner in this process."""
    spec = parse_spec(
        {
            "name": "iris-knn-cut-grid",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "k_nearest_neighbors",
            "strategy": "grid",
            "n_trials": 6,
            "grid_points": 5,
            "cv": {"folds": 2},
            "seed": 3,
        }
    )
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    runner.run_here(spec.name, problem=plan.problem())
    return runner.load_study(spec.name)


def test_a_cut_grid_ran_the_recorded_seeded_permutation(grid_study) -> None:
    order = coverage.grid_order_data(grid_study)
    assert (order.grid_size, order.budget, order.cut, order.seed) == (20, 6, True, 3)
    assert "20 points, more than the budget of 6" in order.note
    points = space.grid_points(coverage.study_spaces(grid_study), 5)
    permutation = np.random.default_rng(3).permutation(20)
    # The study's own record of the order: each trial's enqueued params, in trial-number order.
    trials = sorted(grid_study.get_trials(), key=lambda t: t.number)
    recorded = [points.index(t.system_attrs["fixed_params"]) for t in trials]
    assert recorded == permutation[:6].tolist()
    assert order.run_order == recorded
    data = order.points.set_index("point")
    assert data["position"].tolist() == np.argsort(permutation).tolist()
    assert data.loc[recorded, "number"].tolist() == [t.number for t in trials]
    assert data.loc[recorded, "value"].tolist() == pytest.approx([t.value for t in trials])
    not_run = data.loc[~data.index.isin(recorded)]
    assert len(not_run) == 14 and set(not_run["state"]) == {coverage.NOT_RUN} and not_run["number"].isna().all()
    assert data["planned"].sum() == 6 and data.loc[recorded, "planned"].all()

    fig = coverage.grid_order_figure(order, "n_neighbors", "weights", log_params={"n_neighbors"})
    idle, ran = fig.data
    cells = coverage.grid_cells(order, "n_neighbors", "weights")
    assert len(cells) == 10 and cells["points"].tolist() == [2] * 10  # p in {1, 2} collapses onto a cell
    assert len(ran.x) + len(idle.x) == 10
    # one label per cell that ran: the first trial (lowest number) that ran a point in it
    first_in_cell: dict[tuple, int] = {}
    for t in trials:
        cell = (t.params["n_neighbors"], t.params["weights"])
        first_in_cell[cell] = min(first_in_cell.get(cell, t.number), t.number)
    assert sorted(int(t) for t in ran.text) == sorted(first_in_cell.values())
    assert [int(t) for t in ran.text] == sorted(int(t) for t in ran.text)  # the path runs in trial order
    assert {(int(x), y) for x, y in zip(ran.x, ran.y)} == set(first_in_cell)
    assert fig.layout.meta["grid_order"]["run"] == 6 and fig.layout.xaxis.type == "log"


def test_grid_order_refuses_a_study_that_is_not_a_grid() -> None:
    study = optuna.create_study()
    with pytest.raises(ValueError, match="not a grid study"):
        coverage.grid_order_data(study)


def test_unit_scaling_puts_each_kind_of_range_in_the_cube() -> None:
    log = space.Hyperparameter("C", "float", 1e-3, 1e3, log=True)
    assert coverage.to_unit(pd.Series([1e-3, 1.0, 1e3]), log).tolist() == pytest.approx([0, 0.5, 1])
    integer = space.Hyperparameter("depth", "int", 1, 4)  # Optuna's cells: [0.5, 4.5]
    assert coverage.to_unit(pd.Series([1, 4]), integer).tolist() == pytest.approx([0.125, 0.875])
    cat = space.Hyperparameter("kind", "categorical", choices=("a", "b", "c"))
    assert coverage.to_unit(pd.Series(["a", "b", "c"]), cat).tolist() == pytest.approx([1 / 6, 1 / 2, 5 / 6])
    with_none = space.Hyperparameter("kind", "categorical", choices=("a", None))  # None reads back as missing
    assert coverage.to_unit(pd.Series(["a", None, np.nan], dtype=object), with_none).tolist() == [0.25, 0.75, 0.75]
    vals, text = coverage.unit_ticks(log)
    assert text == ["0.001", "0.01", "0.1", "1", "10", "100", "1e+03"] and vals[0] == 0 and vals[-1] == 1
    with pytest.raises(ValueError, match="unit cube"):
        coverage.discrepancy(np.array([[0.2, 0.3], [1.5, 0.1]]))
    assert math.isnan(coverage.discrepancy(np.array([[0.2, 0.3]])))


def test_qmc_draws_are_optunas_scrambled_sobol_points() -> None:
    """After its first trial (random: Optuna learns the space from it), QMC's points are the
    scrambled Sobol sequence of its seed, mapped into the space (dimensions by param name)."""
    frame = coverage.draw_samples(SPACES, 16, "qmc", seed=5)
    unit = coverage.coverage_data(frame, ["C", "gamma"], coverage.flat_space(SPACES))
    sobol = qmc.Sobol(2, scramble=True, seed=5).random(16)[:15]
    np.testing.assert_allclose(unit[["C", "gamma"]].to_numpy()[1:], sobol, rtol=1e-9, atol=1e-9)
    assert set(frame["strategy"]) == {"qmc"} and len(frame) == 16 and (frame["state"] == "COMPLETE").all()


def test_qmc_covers_a_2d_space_more_evenly_than_random() -> None:
    ratios = []
    for seed in (0, 1, 2):
        sets = coverage.illustrative_sets(SPACES, 64, seed=seed)
        by = {s.strategy: s for s in sets}
        assert by["qmc"].n == by["random"].n == 64
        ratios.append(by["qmc"].discrepancy / by["random"].discrepancy)
        # the numbers are scipy's CD of the points the sets hold
        assert by["qmc"].discrepancy == pytest.approx(
            qmc.discrepancy(by["qmc"].points[["C", "gamma"]].to_numpy(), method="CD")
        )
    assert max(ratios) < 0.5, ratios  # each seed: QMC's discrepancy under half of random's
    assert float(np.mean(ratios)) < 0.25, ratios

    fig = coverage.coverage_figure(sets, "C", "gamma", coverage.flat_space(SPACES))
    titles = [a.text for a in fig.layout.annotations]
    assert any("QMC" in t and "CD discrepancy" in t and coverage.ILLUSTRATION in t for t in titles)
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 2  # the space's box per panel
    assert fig.layout.xaxis.range == (-0.04, 1.04) and fig.layout.meta["method"] == "CD"


def test_coverage_sets_of_a_comparison_compare_the_same_number_of_points() -> None:
    studies = []
    dists = {name: hp.distribution() for name, hp in SPACES["m"].items()}
    for strategy, n in (("qmc", 20), ("random", 12)):
        drawn = coverage.draw_samples(SPACES, n, strategy, seed=0)
        study = optuna.create_study(direction="maximize")
        params = drawn[["params_C", "params_gamma"]].rename(columns=results.param_name).to_dict("records")
        study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=0.0) for p in params])
        studies.append((study, strategy, 0))
    frame = experiment_frame(studies)
    sets = coverage.coverage_sets(frame, ["C", "gamma"], coverage.flat_space(SPACES))
    assert [(s.strategy, s.n) for s in sets] == [("qmc", 12), ("random", 12)]
    qmc_points = results.trials_frame(studies[0][0]).iloc[:12]
    np.testing.assert_allclose(
        sets[0].points["gamma"].to_numpy(), qmc_points["params_gamma"].to_numpy()
    )  # gamma's range is [0, 1]: unit = raw
