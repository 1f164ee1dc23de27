"""hpdash.experiments: S strategies x R seeds, same budget, recorded in the catalogue."""

from __future__ import annotations

import json

import optuna
import pytest
from experiment_data import N_TRIALS, NAME, REPEATS, STRATEGIES, shared_experiment
from optuna.trial import TrialState

from hpdash import config, experiments, runner
from hpdash.errors import SpecError
from hpdash.spec import parse_spec
from hpdash.store import Catalogue


def _spec(**change):
    base = {"name": "iris-exp", "dataset": "sklearn:iris", "target": "target", "model": "k_nearest_neighbors",
            "n_trials": 6, "cv": {"folds": 3}, "seed": 7}
    return parse_spec({**base, **change})


def test_plan_names_seeds_and_same_budget() -> None:
    specs = experiments.plan_experiment(_spec(), "grid, random,TPE", 3)
    assert [s.name for s in specs] == [f"iris-exp-{st}-s{seed}" for st in ("grid", "random", "tpe") for seed in (7, 8, 9)]
    assert {s.n_trials for s in specs} == {6} and {s.cv["folds"] for s in specs} == {3}
    assert [s.strategy for s in specs[:4]] == ["grid", "grid", "grid", "random"]
    assert experiments.parse_strategies(None) == ["grid", "random", "tpe", "gp"]


@pytest.mark.parametrize(("strategies", "repeats", "message"), [
    ("grid,magic", 2, "Unknown strategy 'magic'"),
    ("tpe,tpe", 2, "listed twice"),
    (" , ", 2, "at least one strategy"),
    ("tpe", 0, "Repeats must be"),
    ("tpe", 21, "Repeats must be"),
])
def test_plan_rejects(strategies: str, repeats: int, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        experiments.plan_experiment(_spec(), strategies, repeats)


def test_plan_needs_a_budget() -> None:
    with pytest.raises(SpecError, match="same budget"):
        experiments.plan_experiment(_spec(n_trials=None, strategy="grid"), "grid,random", 2)


def test_grid_notes() -> None:
    cut = experiments.grid_note({"grid_size": 20, "budget": 10, "order": "seeded random permutation", "cut": True}, 10, 3)
    assert "20 points, more than the budget of 10" in cut and "seed 3" in cut and "10/20 subset" in cut
    small = experiments.grid_note({"grid_size": 4, "budget": 4, "order": "seeded random permutation", "cut": False}, 10, 0)
    assert "fewer than the budget of 10" in small and "stops after 4 trials" in small
    assert "all run once" in experiments.grid_note({"grid_size": 10, "budget": 10, "cut": False}, 10)
    assert experiments.grid_note(None, 10) == ""


def test_budget_in_trials_and_wall_time() -> None:
    b = experiments.experiment_budget(_spec(n_trials=10), "grid,random,tpe", 3, per_trial_s=0.5, parallel=2, grid_size=4)
    assert b.per_study == {"grid": 4, "random": 10, "tpe": 10}
    assert b.studies == 9 and b.total_trials == (4 + 10 + 10) * 3
    assert b.total_s == pytest.approx(72 * 0.5 / 2)
    assert "9 studies" in b.describe() and "grid: 4 trials/study" in b.describe() and "18 s" in b.describe()


def test_create_records_studies_and_catalogue(data_dir) -> None:
    exp = experiments.create_experiment(_spec(n_trials=30), "grid,random", 2)
    assert exp.study_names == ["iris-exp-grid-s7", "iris-exp-grid-s8", "iris-exp-random-s7", "iris-exp-random-s8"]
    rows = Catalogue(config.catalogue_path()).experiment_studies("iris-exp")
    assert {(r["study"], r["strategy"], r["seed"]) for r in rows} == {
        ("iris-exp-grid-s7", "grid", 7), ("iris-exp-grid-s8", "grid", 8),
        ("iris-exp-random-s7", "random", 7), ("iris-exp-random-s8", "random", 8)}
    listed = experiments.list_experiments()
    assert listed[0]["name"] == "iris-exp" and listed[0]["strategies"] == ["grid", "random"] and listed[0]["repeats"] == 2
    grid = runner.load_study("iris-exp-grid-s8")
    order = grid.user_attrs[runner.GRID_ATTR]
    # k-NN's default grid (20 points) is smaller than the 30-trial budget: every point once
    assert order["grid_size"] == 20 and order["budget"] == 20 and not order["cut"]
    assert runner.load_spec_of(grid).seed == 8 and runner.load_spec_of(grid).strategy == "grid"
    assert runner.load_study("iris-exp-random-s7").user_attrs[runner.BUDGET_ATTR] == 30
    assert json.loads(Catalogue(config.catalogue_path()).list_experiments()[0]["spec_json"])["n_trials"] == 30


def test_create_refuses_a_used_id_or_study_name(data_dir) -> None:
    experiments.create_experiment(_spec(), "random", 1)
    with pytest.raises(SpecError, match="experiment with ID 'iris-exp' already exists"):
        experiments.create_experiment(_spec(), "tpe", 1)
    runner.create_study(_spec(name="other-tpe-s7", strategy="tpe"))
    with pytest.raises(SpecError, match="'other-tpe-s7' already exists"):
        experiments.create_experiment(_spec(name="other"), "random,tpe", 1)
    assert "other-random-s7" not in optuna.get_all_study_names(runner.open_storage(None, heartbeat=False))
    assert not experiments.experiment_exists("other")


@pytest.mark.slow
def test_compare_strategies_launches_workers(data_dir) -> None:
    """The New study page's helper: create and start; the workers finish the budget."""
    launched = experiments.compare_strategies(_spec(n_trials=3, name="launch"), ["random", "tpe"], repeats=1)
    assert launched.name == "launch" and len(launched.processes) == 2
    assert runner.wait_for(launched.processes) == [0, 0]
    for name in launched.experiment.study_names:
        study = runner.load_study(name)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
        assert runner.study_status(study).state == "finished"


@pytest.mark.slow
def test_shared_experiment_ran_every_study_with_the_same_budget() -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    recorded = experiments.load_experiment(NAME, exp.storage)
    assert recorded.strategies == list(STRATEGIES) and recorded.repeats == REPEATS
    assert len(recorded.runs) == len(STRATEGIES) * REPEATS
    for run in recorded.runs:
        study = runner.load_study(run.study, exp.storage)
        assert run.study == f"{NAME}-{run.strategy}-s{run.seed}"
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == N_TRIALS
        assert runner.refit_info(study) is not None  # the runner refit the final model
    grid = runner.load_study(f"{NAME}-grid-s1", exp.storage).user_attrs[runner.GRID_ATTR]
    assert grid["cut"] and grid["budget"] == N_TRIALS and grid["grid_size"] == 20
    # two grid seeds visit different subsets of the grid
    params = [{json.dumps(t.params, sort_keys=True) for t in runner.load_study(f"{NAME}-grid-s{s}", exp.storage).get_trials()}
              for s in (0, 1)]
    assert params[0] != params[1]
