"""hpdash.explain.surrogate: the Gaussian process at step k, on real GP studies.

Every fit is real (scikit-learn's GP, about 0.1 s each), so the studies are small and the ones
several tests read are made once per module. The acceptance test: for each trial hpdash's GP
chose, the view at that step predicts at the trial's params exactly what the sampler recorded
when it chose them, and its EI maximum is the trial's params.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpdash import attrs, strategies
from hpdash.explain import surrogate as S
from hpdash.explain.surrogate import SurrogateUnavailable
from hpdash.gp_sampler import GP_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRIALS = 10
STARTUP = 3


def _objective(trial: optuna.Trial) -> float:
    """A cheap analytic objective over a float, a log-scaled float, an int and a categorical."""
    x = trial.suggest_float("x", 0.0, 1.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    n = trial.suggest_int("n", 1, 8)
    c = trial.suggest_categorical("c", ["a", "b"])
    return (x - 0.3) ** 2 + (math.log10(lr) + 2) ** 2 / 10 + (n - 3) ** 2 / 20 + (c == "b") * 0.1


@pytest.fixture(scope="module")
def gp_study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """hpdash's GP (as ``hpdash.strategies`` builds it) on SQLite, recorded as a gp study."""
    url = f"sqlite:///{tmp_path_factory.mktemp('gp') / 'gp.db'}"
    study = optuna.create_study(storage=url, sampler=strategies.make_sampler("gp", 0, STARTUP))
    study.set_user_attr(attrs.SAMPLER, {"strategy": "gp", "sampler_seed": 0, "startup_trials": STARTUP})
    study.optimize(_objective, n_trials=N_TRIALS)
    return optuna.load_study(study_name=study.study_name, storage=url)  # read back from storage


def _row(frame, **values):
    mask = np.ones(len(frame), dtype=bool)
    for column, value in values.items():
        mask &= frame[column].to_numpy() == value
    assert mask.sum() == 1, (values, mask.sum())
    return frame[mask].iloc[0]


def test_each_gp_step_is_the_samplers_own_model(gp_study: optuna.Study) -> None:
    """Acceptance: at every GP-chosen trial k, the view's mean, std and EI at trial k's params
    (through ``predict``, ``slice_data`` and ``map_data``) are the ones the sampler recorded in
    the trial's ``hpdash_gp`` record, to 1e-9, and its EI maximum is trial k's params."""
    chosen = [t for t in gp_study.trials if GP_ATTR in t.system_attrs]
    assert [t.number for t in chosen] == list(range(STARTUP, N_TRIALS))
    for trial in chosen:
        record = trial.system_attrs[GP_ATTR]
        view = S.surrogate_at(gp_study, trial.number)
        assert view.own_model and view.label == S.OWN_LABEL and view.strategy == "gp"
        assert view.surrogate.next_params == trial.params
        assert view.trial_params == trial.params and view.trial_value == trial.value
        assert [o.number for o in view.observed] == list(range(trial.number)) == view.surrogate.fitted_on
        recorded = (record["mean"], record["std"], record["expected_improvement"])
        mean, std = view.surrogate.predict([trial.params])
        ei = view.surrogate.expected_improvement([trial.params])
        assert (mean[0], std[0], ei[0]) == pytest.approx(recorded, rel=1e-9, abs=1e-12)
        for param in S.slice_params(view):
            row = _row(S.slice_data(view, param, n=25, at=trial.params), x=trial.params[param])
            assert (row["mean"], row["std"], row["ei"]) == pytest.approx(recorded, rel=1e-9, abs=1e-12), param
        grid = S.map_data(view, "x", "lr", n=12, at=trial.params)
        row = _row(grid, x=trial.params["x"], y=trial.params["lr"])
        assert (row["mean"], row["std"], row["ei"]) == pytest.approx(recorded, rel=1e-9, abs=1e-12)


def test_steps_without_a_record_are_refits_and_labelled_so(gp_study: optuna.Study) -> None:
    """A start-up trial was drawn at random: its view is the GP on the trials before it,
    labelled as such; the step after the last trial is the model for the next trial."""
    for k in range(1, STARTUP):
        view = S.surrogate_at(gp_study, k)
        assert not view.own_model and view.label == S.STARTUP_LABEL
        assert view.surrogate.fitted_on == list(range(k))
    last = S.surrogate_at(gp_study, N_TRIALS)
    assert last.label == S.NEXT_LABEL and last.trial_params is None and last.trial_value is None
    assert last.surrogate.fitted_on == list(range(N_TRIALS))
    values = [t.value for t in gp_study.trials]
    assert last.incumbent.number == int(np.argmin(values)) and last.incumbent.value == min(values)


def test_slice_data_grids_and_held_values(gp_study: optuna.Study) -> None:
    """A slice holds the other hyperparameters at the best trial's values: a log grid for a
    log-scaled float (plus the held and trial-k values), every integer of an int, the choices of
    a categorical; lower/upper are mean -/+ 2 std; each row is the GP's prediction there."""
    view = S.surrogate_at(gp_study, 7)
    best = view.incumbent.params
    lr = S.slice_data(view, "lr", n=30)
    assert list(lr.columns) == ["x", "mean", "std", "lower", "upper", "ei"]
    extras = {best["lr"], gp_study.trials[7].params["lr"]}
    assert set(np.geomspace(1e-4, 1.0, 30)) | extras >= set(lr["x"]) >= set(np.geomspace(1e-4, 1.0, 30))
    np.testing.assert_allclose(lr["lower"], lr["mean"] - 2 * lr["std"])
    np.testing.assert_allclose(lr["upper"], lr["mean"] + 2 * lr["std"])
    assert S.slice_data(view, "n")["x"].tolist() == list(range(1, 9))
    assert S.slice_data(view, "c")["x"].tolist() == ["a", "b"]
    configs = [{**best, "lr": x} for x in lr["x"]]
    mean, std = view.surrogate.predict(configs)
    np.testing.assert_allclose(lr["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(lr["ei"], view.surrogate.expected_improvement(configs), rtol=1e-12)
    at_best = _row(lr, x=best["lr"])
    assert at_best["mean"] == pytest.approx(view.surrogate.predict([best])[0][0], rel=1e-12)
    grid = S.map_data(view, "x", "n", n=10)
    assert len(grid) == len(set(grid["x"])) * 8 and set(grid["y"]) == set(range(1, 9))
    assert set(S.map_data(view, "x", "n", n=4)["y"]) <= set(range(1, 9))  # fewer points: integers still
    assert (grid["std"] >= 0).all() and (grid["ei"] >= 0).all()


def test_figures_mark_the_ei_maximum_and_trial_k(gp_study: optuna.Study) -> None:
    """The slice draws the mean, its band, the observed trials, EI with its largest value on
    the slice, and a line where trial k went; the map draws mean and EI heatmaps with trial k."""
    view = S.surrogate_at(gp_study, 6)
    fig = S.slice_figure(view, "lr", n=40)
    traces = {t.name: t for t in fig.data}
    assert {"posterior mean", "uncertainty (±2 sd)", "expected improvement"} <= set(traces)
    data = S.slice_data(view, "lr", n=40)
    top = traces["largest expected improvement on this slice"]
    assert top.x[0] == data["x"][data["ei"].idxmax()] and top.y[0] == data["ei"].max()
    chosen = traces["trial 6 (chosen by this GP)"]
    assert set(chosen.x) == {gp_study.trials[6].params["lr"]}
    assert traces["trial 6's score"].y == (gp_study.trials[6].value,)
    observed = traces["observed trials (other hyperparameters vary)"]
    assert list(observed.y) == [t.value for t in gp_study.trials[:6]]
    assert fig.layout.xaxis.type == "log" and S.OWN_LABEL in fig.layout.title.text
    assert "posterior mean" in S.slice_figure(view, "c").data[0].name
    heat = S.map_figure(view, "x", "lr", n=10)
    maps = [t for t in heat.data if t.type == "heatmap"]
    assert len(maps) == 2 and np.asarray(maps[0].z).shape == (len(maps[0].y), len(maps[0].x))
    star = next(t for t in heat.data if t.name == "trial 6 (chosen by this GP)")
    assert (star.x[0], star.y[0]) == (gp_study.trials[6].params["x"], gp_study.trials[6].params["lr"])


def test_gp_torch_is_refitted_and_labelled_so() -> None:
    """Optuna's torch GPSampler keeps no model: the view refits hpdash's GP on the completed
    trials below k and says so, in exactly those words."""
    study = optuna.create_study(sampler=strategies.make_sampler("gp_torch", 0, 3))
    study.set_user_attr(attrs.SAMPLER, {"strategy": "gp_torch", "sampler_seed": 0, "startup_trials": 3})
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + t.suggest_float("y", 0, 1), n_trials=5)
    view = S.surrogate_at(study, 4)
    assert view.label == "refitted, may differ from the sampler's state" == S.REFIT_LABEL
    assert not view.own_model and view.strategy == "gp_torch"
    assert view.surrogate.fitted_on == [0, 1, 2, 3]
    mean, _ = view.surrogate.predict([t.params for t in study.trials[:4]])
    values = np.array([t.value for t in study.trials[:4]])
    np.testing.assert_allclose(mean, values, atol=0.1 * (values.max() - values.min()))
    assert S.REFIT_LABEL in S.slice_figure(view, "x", n=20).layout.title.text


def test_algorithm_selection_slices_the_best_models_hyperparameters(data_dir: Path) -> None:
    """A real hpdash study over two models (runner.run_here): slices run over the best trial's
    model; another model's hyperparameter is refused; a slice over ``model`` puts each model at
    its own best trial; the recorded fits still match where the GP chose a trial."""
    from hpdash import runner
    from hpdash.spec import parse_spec

    spec = parse_spec(
        {
            "name": "explain-selection",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": ["k_nearest_neighbors", "decision_tree"],
            "strategy": "gp",
            "n_trials": 8,
            "startup_trials": 3,
            "cv": {"folds": 3},
            "seed": 3,
        }
    )
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    started = time.monotonic()
    runner.run_here(spec.name, problem=plan.problem())
    assert time.monotonic() - started < 30
    study = runner.load_study(spec.name)
    trials = study.get_trials()
    assert {t.params["model"] for t in trials} == {"k_nearest_neighbors", "decision_tree"}
    k = next(t.number for t in trials if GP_ATTR in t.system_attrs and t.params["model"] == "decision_tree")
    view = S.surrogate_at(study, k)
    assert view.own_model and view.model == view.incumbent.params["model"]
    record = trials[k].system_attrs[GP_ATTR]
    mean, std = view.surrogate.predict([trials[k].params])
    assert (mean[0], std[0]) == pytest.approx((record["mean"], record["std"]), rel=1e-9)
    assert view.surrogate.next_params == trials[k].params
    params = S.slice_params(view)
    assert params[0] == "model" and all(p.startswith(f"{view.model}__") for p in params[1:]) and len(params) > 1
    assert "algorithm selection" in view.scope and view.model in view.scope
    other = next(p for p in view.surrogate.search_space if "__" in p and not p.startswith(f"{view.model}__"))
    with pytest.raises(SurrogateUnavailable, match="does not model"):
        S.slice_data(view, other)
    by_model = S.slice_data(view, "model")
    assert by_model["x"].tolist() == list(view.surrogate.search_space["model"].choices)
    for model, mean_here in zip(by_model["x"], by_model["mean"]):
        same = [o for o in view.observed if o.params["model"] == model]
        best = max(same, key=lambda o: (o.value, -o.number)).params  # scores: greater is better
        assert mean_here == pytest.approx(view.surrogate.predict([best])[0][0], rel=1e-12)
    with pytest.raises(SurrogateUnavailable, match="holds the model fixed"):
        S.map_data(view, "model", params[1])
    assert len(S.slice_figure(view, params[1], n=20).data) > 4


def test_refusals_name_the_problem_and_the_fix(gp_study: optuna.Study) -> None:
    """Not a GP study, a step out of range, no completed trial before k: each refused with a
    message that says what to do."""
    tpe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    tpe.set_user_attr(attrs.SAMPLER, {"strategy": "tpe"})
    tpe.optimize(_objective, n_trials=2)
    with pytest.raises(SurrogateUnavailable, match="not a Gaussian process.*TPE's view"):
        S.surrogate_at(tpe, 1)
    with pytest.raises(SurrogateUnavailable, match="unrecorded strategy"):
        S.surrogate_at(optuna.create_study(), 0)
    for k in (-1, N_TRIALS + 1):
        with pytest.raises(SurrogateUnavailable, match=f"Step {k} is out of range.*pick a step from 1 to {N_TRIALS}"):
            S.surrogate_at(gp_study, k)
    with pytest.raises(SurrogateUnavailable, match="needs at least one finished trial"):
        S.surrogate_at(gp_study, 0)
    with pytest.raises(SurrogateUnavailable, match="does not model 'nope'.*pick one of"):
        S.slice_data(S.surrogate_at(gp_study, 4), "nope")
    failed_first = optuna.create_study()
    failed_first.set_user_attr(attrs.SAMPLER, {"strategy": "gp"})
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    failed_first.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={"x": 0.2}, distributions=dist))
    failed_first.add_trial(optuna.trial.create_trial(value=1.0, params={"x": 0.7}, distributions=dist))
    with pytest.raises(SurrogateUnavailable, match="No trial before trial 1.*after trial 1"):
        S.surrogate_at(failed_first, 1)
    assert S.surrogate_at(failed_first, 2).label == S.NEXT_LABEL


def test_strategy_is_read_from_the_study() -> None:
    """The sampler record first, then the spec; a study with GP records and no attrs is gp."""
    study = optuna.create_study()
    assert S.study_strategy(study) is None
    study.set_user_attr(attrs.SPEC, {"strategy": "gp_torch"})
    assert S.study_strategy(study) == "gp_torch"
    study.set_user_attr(attrs.SAMPLER, {"strategy": "gp"})
    assert S.study_strategy(study) == "gp"
    plain = optuna.create_study(sampler=strategies.make_sampler("gp", 0, 1))
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert S.study_strategy(plain) == "gp"
