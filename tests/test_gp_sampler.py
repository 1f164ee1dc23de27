"""hpdash.gp_sampler: the scikit-learn GP strategy (``gp``) on real Optuna studies.

Each proposal fits a real ``GaussianProcessRegressor`` (about 0.1-0.2 s here), so the
studies are small and the ones several tests read are made once per module.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpdash import gp_sampler
from hpdash.gp_sampler import GP_ATTR, GPSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEEDS = (0, 1, 2)
N_TRIALS = 12
STARTUP = 4


def _bowl(trial: optuna.Trial) -> float:
    """A smooth 2-D function to minimise: a tilted bowl, 0 at (0.3, 0.7)."""
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    return (x - 0.3) ** 2 + 2 * (y - 0.7) ** 2 + (x - 0.3) * (y - 0.7)


def _run(sampler: optuna.samplers.BaseSampler, objective, n_trials: int, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study


@cache
def _bowl_studies() -> dict[int, tuple[optuna.Study, GPSampler, optuna.Study]]:
    """Per seed: the GP study, its sampler, and random search with the same seed."""
    out = {}
    for seed in SEEDS:
        sampler = GPSampler(seed=seed, n_startup_trials=STARTUP)
        out[seed] = (
            _run(sampler, _bowl, N_TRIALS),
            sampler,
            _run(optuna.samplers.RandomSampler(seed=seed), _bowl, N_TRIALS),
        )
    return out


@pytest.mark.parametrize(("n", "dims"), [(1, 1), (7, 2), (60, 5)])
def test_the_kernel_fit_minimises_scikit_learns_own_likelihood(n: int, dims: int) -> None:
    """hpdash's likelihood is scikit-learn's ``log_marginal_likelihood`` for the same kernel,
    value and gradient, at hyperparameters across the whole of the kernel's bounds; and the
    fit it drives ends where scikit-learn's own optimiser does."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    rng = np.random.default_rng(n)
    X, y = rng.random((n, dims)), rng.normal(size=n)
    fitted = gp_sampler._fit_gp(X, y)
    reference = GaussianProcessRegressor(kernel=fitted.kernel, alpha=gp_sampler.GP_ALPHA, optimizer=None).fit(X, y)
    nll = gp_sampler._NegativeLogLikelihood(X, y)
    bounds = fitted.kernel_.bounds
    for theta in rng.uniform(bounds[:, 0], bounds[:, 1], size=(25, len(bounds))):
        value, gradient = reference.log_marginal_likelihood(theta, eval_gradient=True)
        mine, my_gradient = nll(theta)
        assert -mine == pytest.approx(value, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(-my_gradient, gradient, rtol=1e-8, atol=1e-8)
    own = GaussianProcessRegressor(
        kernel=fitted.kernel,
        alpha=gp_sampler.GP_ALPHA,
        n_restarts_optimizer=gp_sampler.FIT_RESTARTS,
        random_state=gp_sampler.FIT_RANDOM_STATE,
    ).fit(X, y)
    assert fitted.log_marginal_likelihood_value_ == pytest.approx(own.log_marginal_likelihood_value_, abs=1e-4)


def test_beats_random_search_on_a_smooth_function() -> None:
    """Same seeds, same 12 trials: the GP's best is far closer to the minimum (0) than random
    search's, on average over three seeds; its start-up trials are random search's own."""
    gp_best, random_best = [], []
    for gp, _, rnd in _bowl_studies().values():
        assert [t.params for t in gp.trials[:STARTUP]] == [t.params for t in rnd.trials[:STARTUP]]
        assert all(t.state == TrialState.COMPLETE for t in gp.trials)
        gp_best.append(gp.best_value)
        random_best.append(rnd.best_value)
    # measured: GP about 1e-5, random about 0.02 (margin: a factor of 10 and an absolute bound)
    assert np.mean(gp_best) < 0.1 * np.mean(random_best), (gp_best, random_best)
    assert np.mean(gp_best) < 2e-3, gp_best


def test_each_gp_trial_records_its_fit() -> None:
    """Trials after the start-up phase carry GP_ATTR: the trials fitted on (every completed
    trial before it), the seed, and the mean, std and EI at the proposal."""
    gp, sampler, _ = _bowl_studies()[0]
    for t in gp.trials:
        record = t.system_attrs.get(GP_ATTR)
        if t.number < STARTUP:
            assert record is None
            continue
        assert record["fitted_on"] == list(range(t.number)) and record["pending"] == []
        assert record["seed"] == 0 and record["space"] == ["x", "y"]
        assert record["std"] >= 0 and record["expected_improvement"] >= 0
        assert math.isfinite(record["mean"])
    assert sampler.last_surrogate is not None and sampler.last_surrogate.trial_number == N_TRIALS - 1


def test_surrogate_mean_and_std_at_any_point() -> None:
    """The surrogate is inspectable: at the trials it was fitted on its mean is the observed
    value and its std small; far from every trial its std is much larger."""
    gp, sampler, _ = _bowl_studies()[1]
    surrogate = sampler.surrogate(gp)
    assert surrogate is not None and surrogate.fitted_on == [t.number for t in gp.trials]
    values = np.array([t.value for t in gp.trials])
    mean, std = surrogate.predict([t.params for t in gp.trials])
    spread = values.max() - values.min()
    np.testing.assert_allclose(mean, values, atol=0.02 * spread)
    # the point of a 21 x 21 grid farthest from every trial
    grid = np.array([(x, y) for x in np.linspace(0, 1, 21) for y in np.linspace(0, 1, 21)])
    seen = np.array([(t.params["x"], t.params["y"]) for t in gp.trials])
    far = grid[np.argmax(np.min(np.linalg.norm(grid[:, None, :] - seen[None, :, :], axis=2), axis=1))]
    far_mean, far_std = surrogate.predict([{"x": far[0], "y": far[1]}])
    assert far_std[0] > 5 * std.max(), (far, far_std, std)
    assert np.isfinite(far_mean[0])
    ei = surrogate.expected_improvement([{"x": far[0], "y": far[1]}, gp.best_params])
    assert ei.shape == (2,) and (ei >= 0).all()


def test_surrogate_of_a_past_trial_is_the_gp_that_chose_it() -> None:
    """``surrogate(study, up_to=k)`` rebuilds the very GP that proposed trial k: its
    proposal is trial k's params and its prediction there is the recorded one."""
    gp, sampler, _ = _bowl_studies()[2]
    k = STARTUP + 3
    surrogate = sampler.surrogate(gp, up_to=k)
    assert surrogate.fitted_on == list(range(k))
    assert surrogate.next_params == pytest.approx(gp.trials[k].params, abs=1e-12)
    mean, std = surrogate.predict([gp.trials[k].params])
    record = gp.trials[k].system_attrs[GP_ATTR]
    assert mean[0] == pytest.approx(record["mean"], rel=1e-9) and std[0] == pytest.approx(record["std"], rel=1e-9)


def test_same_seed_repeats_and_direction_is_respected() -> None:
    """The same seed gives the same trials; minimising f and maximising -f are one search
    (the objective is turned into a maximisation inside); another seed starts elsewhere."""

    def negated(trial: optuna.Trial) -> float:
        return -_bowl(trial)

    first = _run(GPSampler(seed=5, n_startup_trials=3), _bowl, 7)
    again = _run(GPSampler(seed=5, n_startup_trials=3), _bowl, 7)
    flipped = _run(GPSampler(seed=5, n_startup_trials=3), negated, 7, direction="maximize")
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.params for t in first.trials] == [t.params for t in flipped.trials]
    assert all(GP_ATTR in t.system_attrs for t in first.trials[3:])
    other = _run(GPSampler(seed=6, n_startup_trials=3), _bowl, 1)
    assert other.trials[0].params != first.trials[0].params
    # predictions are in the objective's units and sign in both directions
    for study in (first, flipped):
        sampler = GPSampler(seed=5, n_startup_trials=3)
        mean, _ = sampler.surrogate(study).predict([t.params for t in study.trials])
        np.testing.assert_allclose(mean, [t.value for t in study.trials], atol=0.02)


def _mixed(trial: optuna.Trial) -> float:
    """Best at C = 10 (log scale), n = 8 (log int), depth = 6 (int), kind = good."""
    c = trial.suggest_float("C", 1e-3, 1e3, log=True)
    n = trial.suggest_int("n", 1, 64, log=True)
    depth = trial.suggest_int("depth", 2, 10)
    kind = trial.suggest_categorical("kind", ["bad", "good", "worse"])
    penalty = {"bad": 2.0, "good": 0.0, "worse": 4.0}[kind]
    return -((math.log10(c) - 1) ** 2) - 0.5 * (math.log2(n) - 3) ** 2 - 0.1 * (depth - 6) ** 2 - penalty


def test_int_log_and_categorical_hyperparameters() -> None:
    """Every GP proposal is a valid value of its distribution (ints are ints, in range;
    choices are choices), and the GP settles on the good category and improves on its
    random start-up near the log-scale optimum of C."""
    study = _run(GPSampler(seed=0, n_startup_trials=4), _mixed, 14, direction="maximize")
    chosen = [t for t in study.trials if GP_ATTR in t.system_attrs]
    assert len(chosen) == 10
    for t in chosen:
        assert 1e-3 <= t.params["C"] <= 1e3 and isinstance(t.params["C"], float)
        assert 1 <= t.params["n"] <= 64 and isinstance(t.params["n"], int)
        assert 2 <= t.params["depth"] <= 10 and isinstance(t.params["depth"], int)
        assert t.params["kind"] in ("bad", "good", "worse")
    assert sum(t.params["kind"] == "good" for t in chosen[-5:]) >= 4
    startup_best = max(t.value for t in study.trials[:4])
    assert study.best_value > startup_best + 1.0, (startup_best, study.best_params)
    assert study.best_params["kind"] == "good" and 1.0 <= study.best_params["C"] <= 100.0, study.best_params


def test_encoding_of_int_log_step_and_categorical() -> None:
    """Each allowed value of an int has the same width of [0, 1]; log scales fit in log
    space; a stepped float snaps to its steps; a categorical is one-hot; decode inverts encode."""
    space = {
        "n": IntDistribution(1, 4),
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "f": FloatDistribution(0.0, 1.0, step=0.25),
        "k": CategoricalDistribution(["a", "b", "c"]),
        "m": IntDistribution(1, 100, log=True),
    }
    enc = gp_sampler._Encoder(space)
    assert enc.dims == 1 + 1 + 1 + 3 + 1
    ints = gp_sampler._to_unit(space["n"], np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(ints, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(gp_sampler._to_unit(space["lr"], np.array([1e-4, 10**-2.5, 1e-1])), [0, 0.5, 1])
    np.testing.assert_array_equal(gp_sampler._to_value(space["n"], np.array([0.0, 0.26, 0.5, 1.0])), [1, 2, 3, 4])
    np.testing.assert_allclose(gp_sampler._to_value(space["f"], np.array([0.0, 0.3, 0.55, 1.0])), [0, 0.25, 0.5, 1.0])
    params = {"n": 3, "lr": 3e-3, "f": 0.75, "k": "b", "m": 17}
    x = enc.encode([params])[0]
    assert x.min() >= 0 and x.max() <= 1
    decoded = enc.decode(x)
    assert decoded == pytest.approx(params) and isinstance(decoded["n"], int) and isinstance(decoded["m"], int)
    np.testing.assert_array_equal(enc.snap(x[None, :])[0], x)
    rng = np.random.default_rng(0)
    for row in enc.random(50, rng):
        one = enc.decode(row)
        assert all(space[name]._contains(space[name].to_internal_repr(value)) for name, value in one.items())


def _selection(trial: optuna.Trial) -> float:
    """Algorithm selection: model b (0.5 at b__y = 1, b__k = u; at least -0.2) beats model a
    (at most 0, at a__x = 0.5)."""
    model = trial.suggest_categorical("model", ["a", "b"])
    if model == "a":
        x = trial.suggest_float("a__x", 0.0, 1.0)
        return -((x - 0.5) ** 2)
    y = trial.suggest_float("b__y", 1e-2, 1e2, log=True)
    k = trial.suggest_categorical("b__k", ["u", "v"])
    return 0.5 - 0.1 * math.log10(y) ** 2 - (0.0 if k == "u" else 0.3)


def test_conditional_space_of_algorithm_selection() -> None:
    """One GP over both models: each proposal holds ``model`` and only that model's
    hyperparameters, the GP's space has every model's, and it settles on the better model
    near its optimum."""
    study = optuna.create_study(direction="maximize", sampler=GPSampler(seed=0, n_startup_trials=2))
    study.enqueue_trial({"model": "a", "a__x": 0.1})
    study.enqueue_trial({"model": "b", "b__y": 50.0, "b__k": "v"})
    study.optimize(_selection, n_trials=14)
    chosen = [t for t in study.trials if GP_ATTR in t.system_attrs]
    assert len(chosen) == 12
    for t in chosen:
        own = {"a": {"model", "a__x"}, "b": {"model", "b__y", "b__k"}}[t.params["model"]]
        assert set(t.params) == own
        assert t.system_attrs[GP_ATTR]["space"] == ["a__x", "b__k", "b__y", "model"]
    assert sum(t.params["model"] == "b" for t in chosen[-6:]) >= 4
    assert study.best_params["model"] == "b" and study.best_params["b__k"] == "u", study.best_params
    assert study.best_value > 0.45, study.best_params
    # inactive dimensions: model a's trials leave b's hyperparameters at the fixed inactive value
    enc = gp_sampler._Encoder(study.trials[-1].distributions | study.trials[0].distributions)
    row = enc.encode([{"model": "a", "a__x": 0.2}])[0]
    b_y = next(c for c in enc.columns if c.name == "b__y")
    b_k = next(c for c in enc.columns if c.name == "b__k")
    assert row[b_y.start] == gp_sampler.INACTIVE and row[b_k.start : b_k.start + b_k.width].sum() == 0


def test_a_model_no_trial_has_used_is_proposed_with_random_hyperparameters() -> None:
    """Only model a has completed trials: when the GP picks b, b's hyperparameters (not yet
    in its space) are drawn by the random sampler, and the trial still completes."""
    study = optuna.create_study(direction="maximize", sampler=GPSampler(seed=3, n_startup_trials=1))
    for x in (0.1, 0.9):
        study.enqueue_trial({"model": "a", "a__x": x})
    study.optimize(_selection, n_trials=2)
    surrogate = gp_sampler._build(
        {"model": CategoricalDistribution(["a", "b"]), "a__x": FloatDistribution(0.0, 1.0)},
        study.trials,
        [],
        study.direction,
        seed=3,
        trial_number=2,
    )
    assert set(surrogate.next_params) in ({"model", "a__x"}, {"model"})
    study.optimize(_selection, n_trials=6)
    b_trials = [t for t in study.trials if t.params["model"] == "b"]
    assert b_trials, [t.params for t in study.trials]
    assert all({"b__y", "b__k"} <= set(t.params) and t.state == TrialState.COMPLETE for t in b_trials)


def test_a_running_trial_counts_as_pending_and_pushes_the_next_proposal_away() -> None:
    """A trial another worker is running (params chosen, no value yet) enters the fit at the
    worst observed value: it is recorded as pending, and the next proposal moves away from it
    instead of landing on the same point."""
    study = _run(GPSampler(seed=0, n_startup_trials=4), _bowl, 6)
    running = study.ask()
    _bowl(running)  # its params are chosen; no value is told
    frozen = study.trials[running.number]
    assert frozen.state == TrialState.RUNNING and frozen.system_attrs[GP_ATTR]["pending"] == []
    nxt = study.ask()
    _bowl(nxt)
    assert study.trials[nxt.number].system_attrs[GP_ATTR]["pending"] == [running.number]
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    space = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}

    def gap(params: dict) -> float:
        return math.dist((params["x"], params["y"]), (frozen.params["x"], frozen.params["y"]))

    alone = gp_sampler._build(space, completed, [], study.direction, seed=0, trial_number=nxt.number)
    liar = gp_sampler._build(space, completed, [frozen], study.direction, seed=0, trial_number=nxt.number)
    assert liar.next_params == pytest.approx(study.trials[nxt.number].params)
    assert gap(alone.next_params) < 0.05 < gap(liar.next_params), (alone.next_params, liar.next_params, frozen.params)
