"""Strategy and pruner construction."""

import optuna
import pytest

from hpdash import strategies
from hpdash.errors import SpecError


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
    assert isinstance(strategies.make_sampler("gp", seed=0), optuna.samplers.GPSampler)


def test_gp_without_torch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies, "torch_available", lambda: False)
    with pytest.raises(SpecError) as err:
        strategies.make_sampler("gp", seed=0)
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
        study.add_trial(optuna.trial.create_trial(
            value=sum(folds) / len(folds), intermediate_values=dict(enumerate(folds))))
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
