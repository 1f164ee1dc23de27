"""Strategy and pruner construction; every strategy run past its start-up phase through the
runner; start-up phases, comparisons, sampler failures and worker seeds."""

import sys

import optuna
import pytest
from optuna.trial import TrialState

from hpdash import gp_sampler, runner, space, strategies
from hpdash.errors import SpecError
from hpdash.spec import parse_spec


@pytest.mark.parametrize(
    "name, cls",
    [
        ("grid", optuna.samplers.RandomSampler),
        ("random", optuna.samplers.RandomSampler),
        ("tpe", optuna.samplers.TPESampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("qmc", optuna.samplers.QMCSampler),
    ],
)
def test_samplers(name: str, cls: type) -> None:
    assert isinstance(strategies.make_sampler(name, seed=3), cls)


def test_seeded_samplers_repeat() -> None:
    def draws(seed: int) -> list[float]:
        study = optuna.create_study(sampler=strategies.make_sampler("random", seed))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
        return [t.params["x"] for t in study.trials]

    assert draws(7) == draws(7) and draws(7) != draws(8)


def test_gp_sampler_when_torch_is_installed() -> None:
    pytest.importorskip("torch")
    assert isinstance(strategies.make_sampler("gp_torch", seed=0), optuna.samplers.GPSampler)


def test_gp_without_torch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies, "torch_available", lambda: False)
    with pytest.raises(SpecError) as err:
        strategies.make_sampler("gp_torch", seed=0)
    assert "pip install -r requirements-gp.txt" in str(err.value)


def test_unknown_strategy() -> None:
    with pytest.raises(SpecError, match="Unknown strategy 'sa'"):
        strategies.check_strategy("sa")


@pytest.mark.parametrize(
    "name, cls",
    [
        ("none", optuna.pruners.NopPruner),
        ("median", strategies.FoldMedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("wilcoxon", optuna.pruners.WilcoxonPruner),
    ],
)
def test_pruners(name: str, cls: type) -> None:
    assert isinstance(strategies.make_pruner(name, n_folds=5), cls)


def test_unknown_pruner() -> None:
    with pytest.raises(SpecError, match="Unknown pruner"):
        strategies.make_pruner("eager", 5)


def _fold_study(completed: list[list[float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for folds in completed:
        study.add_trial(
            optuna.trial.create_trial(value=sum(folds) / len(folds), intermediate_values=dict(enumerate(folds)))
        )
    return study


def _running(values: list[float]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, intermediate_values=dict(enumerate(values)))


def test_fold_median_pruner_compares_means_over_the_same_folds() -> None:
    """Fold 0 is easy for everyone, fold 1 hard. A trial at [0.95, 0.60] has mean 0.775,
    below the finished trials' median 0.80 over folds 0-1: stop it. Optuna's MedianPruner
    keeps it, because its best step value (0.95, the easy fold) beats the median at step 1."""
    study = _fold_study([[0.90, 0.70, 0.8], [0.92, 0.68, 0.8], [0.95, 0.65, 0.8], [0.88, 0.72, 0.8], [0.91, 0.69, 0.8]])
    poor = _running([0.95, 0.60])
    assert strategies.FoldMedianPruner(n_startup_trials=5).prune(study, poor) is True
    assert not optuna.pruners.MedianPruner(n_startup_trials=5).prune(study, poor)
    good = _running([0.95, 0.70])  # mean 0.825 > 0.80
    assert strategies.FoldMedianPruner(n_startup_trials=5).prune(study, good) is False
    assert strategies.FoldMedianPruner(n_startup_trials=5).prune(study, _running([0.85])) is True  # 0.85 < median 0.91


def test_fold_median_pruner_counts_ties_half() -> None:
    """Accuracy on a small fold takes few values, so trials tie at the median. Mid-ranks: a
    trial tied with the median block is below the middle when more of that block lies above
    it than it beats below; one tied with the best, or with everyone, runs on."""
    study = _fold_study([[0.989]] * 3 + [[0.978]] * 4 + [[0.945]] * 2)  # median 0.978
    pruner = strategies.FoldMedianPruner(n_startup_trials=5)
    assert pruner.prune(study, _running([0.978])) is True  # beats 2, ties 4: (2 + 2) / 9 < 0.5
    assert pruner.prune(study, _running([0.989])) is False  # beats 6, ties 3: 7.5 / 9
    assert not optuna.pruners.MedianPruner(n_startup_trials=5).prune(study, _running([0.978]))
    same = _fold_study([[0.9]] * 6)
    assert pruner.prune(same, _running([0.9])) is False  # tied with all: exactly the middle
    # Sums that are equal in exact arithmetic but not in floating point still tie.
    near = _fold_study([[0.1, 0.2]] * 3 + [[0.3, 0.0]] * 3)
    assert pruner.prune(near, _running([0.15, 0.15])) is False


def test_fold_median_pruner_waits_for_enough_finished_trials() -> None:
    study = _fold_study([[0.9, 0.9]] * 4)
    assert strategies.FoldMedianPruner(n_startup_trials=5).prune(study, _running([0.1])) is False
    assert strategies.FoldMedianPruner(n_startup_trials=4).prune(study, _running([0.1])) is True
    assert strategies.FoldMedianPruner(n_startup_trials=4, n_warmup_steps=1).prune(study, _running([0.1])) is False
    minimize = optuna.create_study(direction="minimize")
    for _ in range(5):
        minimize.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={0: 1.0}))
    assert strategies.FoldMedianPruner().prune(minimize, _running([2.0])) is True
    assert strategies.FoldMedianPruner().prune(minimize, _running([0.5])) is False


def test_wilcoxon_stops_a_trial_worse_than_the_best_on_its_first_three_folds() -> None:
    """With 5 folds, p < 0.1 is out of reach before fold 4; hpdash's threshold lets three
    consistently worse folds stop a trial, and a mixed record does not."""
    study = _fold_study([[0.90, 0.80, 0.85, 0.88, 0.86]])
    pruner = strategies.make_pruner("wilcoxon", 5)
    assert pruner.prune(study, _running([0.85, 0.75, 0.80])) is True
    assert pruner.prune(study, _running([0.95, 0.75, 0.80])) is False
    assert pruner.prune(study, _running([0.85, 0.75])) is False  # n_startup_steps: too early to tell


# ------------------------------------------------------------------------------ every strategy, 15 trials
#: The library class each strategy runs, as recorded in the study's ``hpdash.sampler``.
SAMPLER_CLASSES = {
    "grid": "optuna.samplers.RandomSampler",  # grid points are budget slots; the sampler is never asked
    "random": "optuna.samplers.RandomSampler",
    "tpe": "optuna.samplers.TPESampler",
    "gp": "hpdash.gp_sampler.GPSampler",
    "gp_torch": "optuna.samplers.GPSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "qmc": "optuna.samplers.QMCSampler",
}


def _tree_spec(strategy: str, **change):
    """A decision tree on iris (its default space: an int, a log-scaled int and a categorical),
    2 folds: a trial costs milliseconds. Grid: 3 points per range, 3 x 3 x 2 = 18 points."""
    base = {
        "name": f"tree-{strategy}",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "decision_tree",
        "strategy": strategy,
        "n_trials": None if strategy == "grid" else 15,
        "grid_points": 3,
        "cv": {"folds": 2},
        "seed": 0,
    }
    return parse_spec({**base, **change})


def _random_draws(spec, spaces, n: int) -> list[dict]:
    """The configurations random search with worker 0's seed draws for these spaces."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=strategies.worker_seed(spec.seed, 0)))
    for _ in range(n):
        trial = study.ask()
        space.suggest(trial, spaces)
        study.tell(trial, 0.0)
    return [t.params for t in study.trials]


def _run_here(spec) -> tuple[optuna.Study, list[optuna.trial.FrozenTrial], runner.Plan]:
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    runner.run_here(spec.name, problem=plan.problem())
    study = runner.load_study(spec.name)
    return study, sorted(study.get_trials(), key=lambda t: t.number), plan


@pytest.mark.parametrize("strategy", list(SAMPLER_CLASSES))
def test_every_strategy_runs_15_trials_past_its_start_up_phase(data_dir, strategy: str) -> None:
    """Through the real path (plan, create on SQLite, one worker in this process): at least
    15 trials, all COMPLETE; the study records the sampler class that ran; a model-based
    strategy's start-up trials are random search's own, and the trials after them are not."""
    if strategy == "gp_torch":
        pytest.importorskip("torch")  # CI installs it (requirements-gp.txt); gp needs no torch
    spec = _tree_spec(strategy)
    study, trials, plan = _run_here(spec)
    assert len(trials) >= 15
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials), [
        t.user_attrs.get("fail_reason") for t in trials
    ]
    assert runner.study_status(study).state == "finished"
    record = study.user_attrs[strategies.SAMPLER_ATTR]
    assert record["strategy"] == strategy and record["class"] == SAMPLER_CLASSES[strategy]
    assert record["startup_trials"] == strategies.startup_trials_of(spec)
    params = [t.params for t in trials]
    random_params = _random_draws(spec, plan.spaces, len(trials))
    if strategy == "grid":
        grid = space.grid_points(plan.spaces, spec.grid_points)
        assert len(grid) == 18 and sorted(map(str, params)) == sorted(map(str, grid))
    elif strategy == "random":
        assert params == random_params
    elif strategy == "qmc":
        # the first trial is drawn before the space is known; the rest follow the Sobol sequence
        assert sum(a != b for a, b in zip(params[1:], random_params[1:])) >= 12
    else:
        startup = strategies.startup_trials_of(spec)
        assert startup == 3  # min(10, 15 // 4): not 10 of 15
        assert params[:startup] == random_params[:startup]
        after = list(zip(params[startup:], random_params[startup:]))
        assert sum(a != b for a, b in after) >= len(after) - 2, "the model never took over from random search"
    if strategy == "gp":
        assert all((gp_sampler.GP_ATTR in t.system_attrs) == (t.number >= 3) for t in trials)


# ------------------------------------------------------------------------------ packages
def test_a_missing_cmaes_package_is_refused_at_validation_with_the_install_command(
    data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a machine without `cmaes`: `import cmaes` fails. The spec is refused when it is
    planned, with the command that installs it, and no study is created."""
    monkeypatch.setitem(sys.modules, "cmaes", None)
    with pytest.raises(ImportError):
        import cmaes  # noqa: F401
    assert not strategies.cmaes_available() and "cmaes" not in strategies.available_strategies()
    with pytest.raises(SpecError) as err:
        strategies.check_strategy("cmaes")
    assert "`cmaes` package" in str(err.value) and "pip install -r requirements.txt" in str(err.value)
    spec = _tree_spec("cmaes")
    with pytest.raises(SpecError, match="pip install -r requirements.txt"):
        runner.plan_study(spec)
    with pytest.raises(SpecError, match="pip install -r requirements.txt"):
        runner.create_study(spec)
    assert not runner.study_exists(spec.name)
    with pytest.raises(SpecError, match="pip install -r requirements.txt"):
        strategies.check_comparison(spec, ["random", "cmaes"])


def test_cmaes_is_installed_here() -> None:
    """requirements.txt pins cmaes, so `make run` installs what the strategy needs."""
    assert strategies.cmaes_available() and "cmaes" in strategies.available_strategies()
    assert strategies.missing_dependency("cmaes") is None


# ------------------------------------------------------------------------------ sampler failures
def _raise_import_error(self, study, trial, search_space):
    raise ModuleNotFoundError("No module named 'cmaes'")


def _raise_runtime_error(*args, **kwargs):
    raise RuntimeError("the kernel matrix is not positive definite")


def test_a_sampler_that_cannot_import_fails_every_trial_with_the_reason(data_dir, monkeypatch) -> None:
    """CMA-ES whose package import fails inside the sampler (what the issue saw from trial
    11 on): every trial is FAIL with a reason naming the strategy and the fix, never "no reason
    recorded", and the study stops as failed with that reason."""
    monkeypatch.setattr(optuna.samplers.CmaEsSampler, "sample_relative", _raise_import_error)
    study, trials, _ = _run_here(_tree_spec("cmaes", name="broken-cmaes", n_trials=3))
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    for t in trials:
        reason = t.user_attrs["fail_reason"]
        assert reason.startswith("The cmaes strategy's sampler failed while choosing this trial's hyperparameters")
        assert "No module named 'cmaes'" in reason and "pip install -r requirements.txt" in reason
    assert runner.study_status(study).state == "failed"
    reasons = runner.failure_reasons(study)
    assert reasons[0][1] == 3 and "cmaes strategy's sampler failed" in reasons[0][0]
    assert all("no reason recorded" not in r for r, _ in reasons)


@pytest.mark.parametrize(
    ("strategy", "target", "method"),
    [
        ("gp", gp_sampler, "_build"),  # the GP fit, after its start-up trial
        ("random", optuna.samplers.RandomSampler, "sample_independent"),
    ],
)
def test_any_sampler_exception_becomes_the_fail_reason(data_dir, monkeypatch, strategy, target, method) -> None:
    """A sampler raising in sample_relative (the GP fit) or sample_independent (every
    suggestion) fails the trial with a reason that names the strategy, the error and what
    to do; the trials the sampler did not touch still complete."""
    monkeypatch.setattr(target, method, _raise_runtime_error)
    spec = _tree_spec(strategy, name=f"broken-{strategy}", n_trials=3, startup_trials=1)
    study, trials, _ = _run_here(spec)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == (2 if strategy == "gp" else 3)
    for t in failed:
        reason = t.user_attrs["fail_reason"]
        assert f"The {strategy} strategy's sampler failed" in reason
        assert "RuntimeError: the kernel matrix is not positive definite" in reason
        assert "pick another strategy" in reason
    assert all("no reason recorded" not in r for r, _ in runner.failure_reasons(study))


# ------------------------------------------------------------------------------ start-up phase
def _spec(**change):
    base = {
        "name": "iris-tpe",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": "tpe",
        "n_trials": 10,
        "cv": {"folds": 3},
        "seed": 0,
    }
    return parse_spec({**base, **change})


def test_default_start_up_trials_leave_small_budgets_to_the_model() -> None:
    """Not 10 of 10: a quarter of the budget, at least 1 (the model needs one finished
    trial), at most Optuna's 10; 10 with a time budget only."""
    rule = strategies.default_startup_trials
    assert [rule(n) for n in (1, 2, 4, 8, 10, 15, 20, 40, 41, 1000)] == [1, 1, 1, 2, 2, 3, 5, 10, 10, 10]
    assert all(rule(n) < n for n in range(2, 500)) and rule(None) == 10
    assert strategies.startup_trials_of(_spec()) == 2
    assert strategies.startup_trials_of(_spec(startup_trials=7)) == 7
    for strategy in ("tpe", "gp", "cmaes"):
        assert strategies.startup_trials_of(_spec(strategy=strategy)) == 2
    for strategy in ("grid", "random", "qmc"):
        assert strategies.startup_trials_of(_spec(strategy=strategy)) is None
    # what the worker's sampler is built with
    assert strategies.sampler_for(_spec(strategy="gp")).n_startup_trials == 2
    assert strategies.sampler_for(_spec(startup_trials=4))._n_startup_trials == 4


def test_a_start_up_phase_that_covers_the_budget_is_warned_about_with_the_fix() -> None:
    warning = strategies.startup_warning(_spec(startup_trials=10))
    assert warning.startswith(
        "TPE would run 10 trial(s) at random: startup_trials (10 random trials) covers "
        "the whole budget of 10, so its model never chooses a trial and the study is "
        "random search."
    )
    assert warning.endswith(
        "Set startup_trials below 10 (or leave it unset: the default start-up phase for "
        "10 trials is 2), or raise n_trials above 10."
    )
    gp = strategies.startup_warning(_spec(strategy="gp", n_trials=5, startup_trials=8))
    assert gp.startswith("GP would run 5 trial(s) at random") and "raise n_trials above 8" in gp
    for startup in (None, 0):  # one trial: no model can choose it
        one = strategies.startup_warning(_spec(n_trials=1, startup_trials=startup))
        assert "a model needs at least one finished trial" in one and "Raise n_trials above 1" in one
    assert strategies.startup_warning(_spec()) is None  # the default: 2 of 10
    assert strategies.startup_warning(_spec(startup_trials=9)) is None
    assert strategies.startup_warning(_spec(strategy="random", startup_trials=10)) is None
    assert strategies.startup_warning(_spec(n_trials=None, timeout=60, startup_trials=50)) is None


def test_cmaes_under_algorithm_selection_is_warned_about() -> None:
    both = ["k_nearest_neighbors", "decision_tree"]
    warning = strategies.conditional_warning(_spec(strategy="cmaes", model=both))
    assert warning.startswith("CMA-ES would be random search here")
    assert "k_nearest_neighbors, decision_tree" in warning and "Pick TPE or GP" in warning
    assert strategies.conditional_warning(_spec(strategy="cmaes")) is None
    assert strategies.conditional_warning(_spec(strategy="tpe", model=both)) is None


def test_a_comparison_against_random_search_in_disguise_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        strategies.check_comparison(_spec(startup_trials=10), ["tpe", "random"])
    message = str(err.value)
    assert message.startswith(
        "This comparison would pit TPE and random against each other, but they "
        "would run exactly the same random trials with the same seeds"
    )
    assert message.endswith(
        "Set startup_trials below 10 (or leave it unset: the default start-up phase for "
        "10 trials is 2), or raise n_trials above 10."
    )
    with pytest.raises(SpecError, match="pit TPE and GP against each other"):
        strategies.check_comparison(_spec(startup_trials=10), ["tpe", "gp"])
    both = ["k_nearest_neighbors", "decision_tree"]
    with pytest.raises(SpecError, match="pit CMA-ES and random .* CMA-ES would be random search here"):
        strategies.check_comparison(_spec(model=both), ["cmaes", "random"])
    # the default start-up phase, grid, QMC and a single model-based strategy are fine
    strategies.check_comparison(_spec(), ["grid", "random", "tpe", "gp", "cmaes", "qmc"])
    strategies.check_comparison(_spec(startup_trials=10), ["grid", "random", "qmc"])
    strategies.check_comparison(_spec(startup_trials=10), ["grid", "tpe"])
    strategies.check_comparison(_spec(model=both), ["tpe", "gp", "random"])


# ------------------------------------------------------------------------------ worker seeds
def test_worker_seeds_are_independent_across_repeats_and_workers() -> None:
    """5 repeats (consecutive study seeds, as an experiment's) x 4 workers: 20 distinct seeds.
    ``seed + worker_index`` gave 8 distinct values for the same 20 pairs, so worker 1 of
    repeat 0 replayed worker 0 of repeat 1; their draws now share nothing."""
    pairs = [(seed, worker) for seed in range(5) for worker in range(4)]
    seeds = {pair: strategies.worker_seed(*pair) for pair in pairs}
    assert len(set(seeds.values())) == 20 and len({s + w for s, w in pairs}) == 8
    assert all(0 <= s < 2**32 for s in seeds.values())
    assert strategies.worker_seed(3, 2) == seeds[(3, 2)]  # a pure function: resumes repeat

    def draws(seed: int, worker: int) -> list[tuple[float, float]]:
        study = optuna.create_study(sampler=strategies.sampler_for(_spec(strategy="random", seed=seed), worker))
        out = []
        for _ in range(4):
            trial = study.ask()
            out.append((trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)))
            study.tell(trial, 0.0)
        return out

    drawn = {pair: draws(*pair) for pair in pairs}
    assert not set(drawn[(0, 1)]) & set(drawn[(1, 0)])
    every = [point for points in drawn.values() for point in points]
    assert len(set(every)) == len(every) == 80


# ------------------------------------------------------------------------------ sampler seed
def _sampler_draws(spec, n: int = 6) -> list[dict]:
    """The first ``n`` configurations worker 0's sampler chooses on a small mixed space."""
    study = optuna.create_study(sampler=strategies.sampler_for(spec, 0), direction="maximize")
    for _ in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        k = trial.suggest_int("k", 1, 9)
        study.tell(trial, x + k / 10)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("strategy", [s for s in SAMPLER_CLASSES if s != "gp_torch"])
def test_the_sampler_follows_sampler_seed_and_never_split_seed(strategy: str) -> None:
    """Every strategy's sampler (start-up phase and model alike) is seeded by
    ``sampler_seed`` only: another split seed (or another ``seed`` once ``sampler_seed`` is
    given) chooses the same trials; another sampler seed does not."""

    def spec(**seeds):
        return _spec(strategy=strategy, n_trials=8, **seeds)

    base = _sampler_draws(spec(seed=0, split_seed=1, sampler_seed=4))
    assert _sampler_draws(spec(seed=9, split_seed=2, sampler_seed=4)) == base
    assert _sampler_draws(spec(seed=4)) == base  # both following seed 4: the old behaviour
    assert _sampler_draws(spec(seed=0, split_seed=1, sampler_seed=5)) != base
    record = strategies.sampler_record(spec(seed=0, split_seed=1, sampler_seed=4))
    assert record["sampler_seed"] == 4 and record["worker_seeds"] == "numpy.random.SeedSequence([4, worker_index])"


def test_same_sampler_seed_other_split_seed_runs_the_same_random_search(data_dir) -> None:
    """Through the real path (plan, create, one worker here): random search with one sampler
    seed draws the same configurations whatever the split seed."""
    first = _tree_spec("random", name="split-a", n_trials=5, seed=0, split_seed=1, sampler_seed=4)
    second = _tree_spec("random", name="split-b", n_trials=5, seed=0, split_seed=2, sampler_seed=4)
    params = []
    for spec in (first, second):
        _, trials, plan = _run_here(spec)
        params.append([t.params for t in trials])
    assert params[0] == params[1] == _random_draws(_tree_spec("random", seed=4), plan.spaces, 5)
