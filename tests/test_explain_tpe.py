"""hpdash.explain.tpe: TPE's split and densities, rebuilt by Optuna's rules and checked against
Optuna's own private objects (tests may import them; hpdash/ may not, see
tests/test_optuna_internals.py).

The reconstruction is written with scipy's ``log_ndtr``/``ndtr`` where Optuna has its own
``_truncnorm``/``_erf``: the two agree to about 1e-12 in log-density, so the comparisons below
assert 1e-9.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import sampler as optuna_tpe
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace
from optuna.trial import TrialState, create_trial
from scipy.special import logsumexp

from hpdash import attrs, strategies
from hpdash.explain import tpe as T
from hpdash.explain.tpe import TPEUnavailable

optuna.logging.set_verbosity(optuna.logging.WARNING)

TOL = 1e-9
SPACE = {
    "x": FloatDistribution(-2.0, 3.0),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "n": IntDistribution(1, 40),
    "m": IntDistribution(2, 512, log=True),
    "s": FloatDistribution(0.0, 1.0, step=0.1),
    "c": CategoricalDistribution(["a", "b", "c"]),
}


def _objective(trial: optuna.Trial) -> float:
    """Cheap, over every kind of hyperparameter; every 7th trial is pruned after one report."""
    p = {name: _suggest(trial, name, dist) for name, dist in SPACE.items()}
    value = (p["x"] - 0.3) ** 2 + (math.log10(p["lr"]) + 2) ** 2 / 10 + (p["n"] - 3) ** 2 / 200
    value += (math.log2(p["m"]) - 4) ** 2 / 30 + (p["s"] - 0.4) ** 2 + (p["c"] == "b") * 0.1
    if trial.number % 7 == 3:
        trial.report(value + 0.01 * trial.number, 0)
        raise optuna.TrialPruned()
    return value


def _suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)


@pytest.fixture(scope="module")
def tpe_study() -> optuna.Study:
    """hpdash's TPE (``strategies.make_sampler``) on the objective above, 60 trials."""
    study = optuna.create_study(sampler=strategies.make_sampler("tpe", 0, 5))
    study.set_user_attr(attrs.SAMPLER, {"strategy": "tpe", "sampler_seed": 0, "startup_trials": 5})
    study.optimize(_objective, n_trials=60)
    return study


def _valued(values: list[float], direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    dist = {"x": FloatDistribution(0, 1)}
    study.add_trials(
        [create_trial(value=v, params={"x": (i % 10) / 10}, distributions=dist) for i, v in enumerate(values)]
    )
    return study


def _good(split: T.Split) -> list[int]:
    return split.frame.loc[split.frame["group"] == "good", "number"].tolist()


def _optuna_split(study: Any, k: int) -> tuple[list[int], list[int]]:
    """Optuna's own split of the trials below k (``TPESampler._sample``'s call)."""
    before = [t for t in study.get_trials() if t.number < k]
    n = sum(t.state != TrialState.RUNNING for t in before)
    below, above = optuna_tpe._split_trials(study, before, optuna_tpe.default_gamma(n))
    return [t.number for t in below], [t.number for t in above]


def test_hpdash_tpe_runs_with_the_defaults_reconstructed() -> None:
    """The settings the reconstruction assumes are those of the sampler hpdash builds and of
    Optuna's defaults: gamma, weights, prior weight, magic clip, no endpoints, multivariate."""
    sampler = strategies.make_sampler("tpe", 0, 10)
    params = sampler._parzen_estimator_parameters
    assert params.prior_weight == T.PRIOR_WEIGHT and params.consider_magic_clip and not params.consider_endpoints
    assert params.weights is optuna_tpe.default_weights and sampler._gamma is None
    assert sampler._multivariate is True and sampler._group is True and sampler._constant_liar is True
    assert [T.default_gamma(n) for n in range(400)] == [optuna_tpe.default_gamma(n) for n in range(400)]
    for n in range(60):
        np.testing.assert_array_equal(T.default_weights(n), optuna_tpe.default_weights(n))


@pytest.mark.parametrize(("n", "n_below"), [(20, 2), (300, 25), (1, 1), (11, 2)])
def test_split_follows_the_gamma_rule(n: int, n_below: int) -> None:
    """Known values (a shuffled 0..n-1): exactly the gamma(n) lowest (minimise) or highest
    (maximise) are good: 2 of 20, 25 of 300."""
    values = list(np.random.default_rng(n).permutation(n).astype(float))
    for direction, best in (
        ("minimize", np.argsort(values)[:n_below]),
        ("maximize", np.argsort(values)[::-1][:n_below]),
    ):
        study = _valued(values, direction)
        split = T.tpe_split(study.get_trials(), n, direction)
        assert split.n == n and split.n_below == n_below and split.rule == T.GAMMA_RULE
        assert _good(split) == sorted(int(i) for i in best)
        assert split.threshold == (n_below - 1 if direction == "minimize" else n - n_below)
        assert (split.frame["group"] == "bad").sum() == n - n_below
        assert _good(split) == _optuna_split(study, n)[0]


def test_ties_are_broken_as_optuna_does() -> None:
    """Equal values: the lower trial numbers are good (Optuna's stable sort), both directions."""
    # n = 30 -> 3 good; the best values tie across the boundary in both directions
    values = [3.0, 1.0, 2.0, 1.0, 1.0, 5.0, 1.0, 0.5, 1.0, 9.0, 9.0, 9.0, 9.0] + [4.0] * 17
    for direction, expected in (("minimize", [1, 3, 7]), ("maximize", [9, 10, 11])):
        study = _valued(values, direction)
        split = T.tpe_split(study.get_trials(), 30, direction)
        assert _good(split) == expected == _optuna_split(study, 30)[0]


def test_pruned_and_running_trials_are_split_as_optuna_does() -> None:
    """Too few completed trials: the furthest pruned ones fill the good group; running trials
    are bad and not counted in n (the constant liar)."""
    study = optuna.create_study()
    dist = {"x": FloatDistribution(0, 1)}
    study.add_trial(create_trial(value=2.0, params={"x": 0.1}, distributions=dist))
    for i in range(19):
        steps = {s: 1.0 - 0.01 * i for s in range(i % 4 + 1)}
        study.add_trial(
            create_trial(state=TrialState.PRUNED, params={"x": i / 20}, distributions=dist, intermediate_values=steps)
        )
    running = study.ask()
    running.suggest_float("x", 0, 1)
    trials = study.get_trials()
    split = T.tpe_split(trials, 21, "minimize")
    assert split.n == 20 and split.n_below == 2
    good, bad = _optuna_split(study, 21)
    assert _good(split) == good and sorted(split.frame.loc[split.frame["group"] == "bad", "number"]) == bad
    assert 0 in good and trials[good[1]].state == TrialState.PRUNED and 20 in bad
    assert split.frame.set_index("number").loc[20, "state"] == "RUNNING"


def test_densities_match_optunas_parzen_estimator(tpe_study: optuna.Study) -> None:
    """For a float, a log float, an int, a log int, a stepped float and a categorical, at
    several steps (start-up, few and many trials, more than 25 bad ones): the split is Optuna's
    and l, g are Optuna's _ParzenEstimator on the same observations, to 1e-9 in log-density."""
    sampler = tpe_study.sampler
    trials = tpe_study.get_trials()
    assert any(t.state == TrialState.PRUNED for t in trials)
    worst = 0.0
    for k in (1, 5, 12, 30, 60):
        good, bad = _optuna_split(tpe_study, k)
        for param, dist in SPACE.items():
            d = T.densities(trials, k, param, "minimize", n=60)
            assert _good(d.split) == good
            assert list(d.good) == [trials[i].params[param] for i in good]
            assert list(d.bad) == [trials[i].params[param] for i in bad]
            at = {param: np.array([dist.to_internal_repr(v) for v in d.frame["x"]], dtype=float)}
            for numbers, mine in ((good, d.frame["log_l"]), (bad, d.frame["log_g"])):
                group = [trials[i] for i in numbers]
                observed = sampler._get_internal_repr(group, {param: dist}, tpe_study)
                theirs = _ParzenEstimator(observed, {param: dist}, sampler._parzen_estimator_parameters).log_pdf(at)
                worst = max(worst, float(np.max(np.abs(theirs - mine.to_numpy()))))
            np.testing.assert_allclose(d.frame["log_ratio"], d.frame["log_l"] - d.frame["log_g"])
    assert worst < TOL, worst


def test_log_pdf_matches_on_edge_cases() -> None:
    """No observation (the prior alone), one, two (the endpoint rule), many with duplicates (the
    ramped weights past 25), values at the bounds."""
    rng = np.random.default_rng(0)
    params = optuna_tpe.TPESampler()._parzen_estimator_parameters
    for dist in SPACE.values():
        grid = T.grid_values(dist, 50)
        for size in (0, 1, 2, 3, 40):
            sample = [grid[i] for i in rng.integers(len(grid), size=size)]
            if size == 40:
                sample[:5] = [grid[0]] * 3 + [grid[-1]] * 2
            mine = T.log_pdf(sample, dist, grid)
            observed = {"p": np.array([dist.to_internal_repr(v) for v in sample], dtype=float)}
            at = {"p": np.array([dist.to_internal_repr(v) for v in grid], dtype=float)}
            theirs = _ParzenEstimator(observed, {"p": dist}, params).log_pdf(at)
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=TOL, err_msg=f"{dist} {size}")


def test_one_hyperparameter_is_the_marginal_of_multivariate_tpe() -> None:
    """Under multivariate TPE the kernels of a trial multiply with shared weights: summing the
    joint density over a categorical (or an int) gives exactly the 1-D mixture."""
    rng = np.random.default_rng(1)
    params = optuna_tpe.TPESampler()._parzen_estimator_parameters
    x, c, n = SPACE["x"], SPACE["c"], IntDistribution(1, 6)
    observed = {
        "x": rng.uniform(-2, 3, 30),
        "c": rng.integers(3, size=30).astype(float),
        "n": rng.integers(1, 7, 30).astype(float),
    }
    joint = _ParzenEstimator(observed, {"x": x, "c": c, "n": n}, params)
    xs = np.linspace(-2, 3, 41)
    cells = [(xv, cv, nv) for xv in xs for cv in range(3) for nv in range(1, 7)]
    log_joint = joint.log_pdf({k: np.array([cell[i] for cell in cells], dtype=float) for i, k in enumerate("xcn")})
    marginal = logsumexp(log_joint.reshape(len(xs), 18), axis=1)
    np.testing.assert_allclose(T.log_pdf(list(observed["x"]), x, list(xs)), marginal, atol=TOL)


def test_algorithm_selection_uses_each_models_trials() -> None:
    """group=True: a model's hyperparameter is estimated from the good/bad trials of that model
    only; checked against Optuna's joint estimator over the group Optuna decomposes, summed over
    the group's categorical."""

    def objective(trial: optuna.Trial) -> float:
        if trial.suggest_categorical("model", ["a", "b"]) == "a":
            u = trial.suggest_float("a__u", 0, 1)
            return (u - 0.2) ** 2 + (trial.suggest_categorical("a__k", ["p", "q"]) == "q") * 0.05
        return 0.1 + (trial.suggest_int("b__n", 1, 20) - 5) ** 2 / 100

    study = optuna.create_study(sampler=strategies.make_sampler("tpe", 1, 4))
    study.optimize(objective, n_trials=30)
    trials = study.get_trials()
    groups = _GroupDecomposedSearchSpace(True).calculate(study).search_spaces
    group = next(g for g in groups if "a__u" in g)
    assert set(group) == {"a__u", "a__k"}
    sampler = study.sampler
    d = T.densities(trials, 30, "a__u", "minimize", n=41)
    good, bad = _optuna_split(study, 30)
    assert len(d.good) + len(d.bad) == sum(t.params["model"] == "a" for t in trials) < 30
    for numbers, mine in ((good, d.frame["log_l"]), (bad, d.frame["log_g"])):
        observed = sampler._get_internal_repr([trials[i] for i in numbers], group, study)
        joint = _ParzenEstimator(observed, group, sampler._parzen_estimator_parameters)
        names = list(group)
        cells = [(u, k) for u in d.frame["x"] for k in range(2)]
        at = {name: np.array([cell[0] if name == "a__u" else cell[1] for cell in cells], dtype=float) for name in names}
        np.testing.assert_allclose(mine, logsumexp(joint.log_pdf(at).reshape(-1, 2), axis=1), atol=TOL)


def test_tpe_study_and_refusals(tpe_study: optuna.Study) -> None:
    """A TPE study gives its trials and start-up; another strategy, a step out of range, a
    hyperparameter no trial used and a single-valued one are refused with what to do."""
    inputs = T.tpe_study(tpe_study)
    assert inputs.n_startup_trials == 5 and len(inputs.trials) == 60
    early = T.tpe_split(inputs.trials, 3, inputs.direction, n_startup_trials=inputs.n_startup_trials)
    late = T.tpe_split(inputs.trials, 40, inputs.direction, n_startup_trials=inputs.n_startup_trials)
    assert early.random_startup is True and late.random_startup is False
    gp = optuna.create_study()
    gp.set_user_attr(attrs.SAMPLER, {"strategy": "gp"})
    with pytest.raises(TPEUnavailable, match="not TPE.*surrogate view"):
        T.tpe_study(gp)
    for k in (-1, 62):
        with pytest.raises(TPEUnavailable, match=f"Step {k} is out of range"):
            T.tpe_split(inputs.trials, k, "minimize")
    with pytest.raises(TPEUnavailable, match="No trial before trial 10 used 'nope'"):
        T.densities(inputs.trials, 10, "nope", "minimize")
    one = optuna.create_study()
    one.add_trial(create_trial(value=1.0, params={"x": 1.0}, distributions={"x": FloatDistribution(1.0, 1.0)}))
    with pytest.raises(TPEUnavailable, match="single value"):
        T.densities(one.get_trials(), 1, "x", "minimize")


def test_figures_show_the_split_and_the_densities(tpe_study: optuna.Study) -> None:
    """The split figure colours good/bad and draws the threshold; the density figure draws l, g,
    the rugs, the ratio and trial k at its own ratio."""
    trials = tpe_study.get_trials()
    split = T.tpe_split(trials, 40, "minimize", n_startup_trials=5)
    fig = T.split_figure(split)
    traces = {t.name: t for t in fig.data}
    assert set(traces["good"].x) <= set(_good(split)) and "bad" in traces
    threshold = traces[f"gamma threshold: the {split.n_below} best of {split.n}"]
    assert set(threshold.y) == {split.threshold} and traces["trial 40"].y == (trials[40].value,)
    assert T.GAMMA_RULE in fig.layout.title.text and "l/g is largest" in fig.layout.title.text
    d = T.densities(trials, 40, "lr", "minimize", n=50)
    fig = T.density_figure(d)
    traces = {t.name: t for t in fig.data}
    star = traces["trial 40"]
    assert star.x == (trials[40].params["lr"],) and star.y[0] == pytest.approx(math.exp(d.trial_log_ratio))
    assert list(traces["good values"].x) == list(d.good) and fig.layout.xaxis.type == "log"
    assert d.unit == "density per unit of log x" and T.RECONSTRUCTION_LABEL in fig.layout.title.text
    bars = T.density_figure(T.densities(trials, 40, "c", "minimize"))
    assert [t.type for t in bars.data[:2]] == ["bar", "bar"]
    assert T.densities(trials, 40, "n", "minimize").unit == "probability"
