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
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("wilcoxon", optuna.pruners.WilcoxonPruner),
    ],
)
def test_pruners(name: str, cls: type) -> None:
    assert isinstance(strategies.make_pruner(name, n_folds=5), cls)


def test_unknown_pruner() -> None:
    with pytest.raises(SpecError, match="Unknown pruner"):
        strategies.make_pruner("eager", 5)
