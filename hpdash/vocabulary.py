"""The words hpdash uses everywhere, each defined once: strategies, pruners and tasks.

The spec validates against these keys, the form and the CLI list them, the comparison
names and colours them. How a strategy is built (its sampler) is in ``hpdash.strategies``,
keyed by the same names; ``tests/test_vocabulary.py`` checks that every key here has one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    """A search strategy: ``key`` in specs, ``name`` in figures and tables, ``description``
    in the form, ``color`` in every comparison figure, ``model_based`` when it fits a model
    of the scores after a random start-up phase."""

    key: str
    name: str
    description: str
    color: str
    model_based: bool = False


@dataclass(frozen=True)
class Pruner:
    """A pruner: ``key`` in specs, ``description`` in the form."""

    key: str
    description: str


STRATEGIES: dict[str, Strategy] = {
    s.key: s
    for s in (
        Strategy("grid", "Grid", "Grid search (exhaustive over discretised ranges)", "#7f7f7f"),
        Strategy("random", "Random", "Random search", "#ff7f0e"),
        Strategy("tpe", "TPE", "Bayesian: TPE (tree-structured Parzen estimator)", "#1f77b4", True),
        Strategy("gp", "GP", "Bayesian: Gaussian process (scikit-learn)", "#2ca02c", True),
        Strategy(
            "gp_torch",
            "GP (PyTorch)",
            "Bayesian: Gaussian process (Optuna's GPSampler, needs PyTorch)",
            "#17becf",
            True,
        ),
        Strategy("cmaes", "CMA-ES", "CMA-ES (evolution strategy)", "#9467bd", True),
        Strategy("qmc", "QMC", "Quasi-Monte Carlo (Sobol)", "#8c564b"),
    )
}

PRUNERS: dict[str, Pruner] = {
    p.key: p
    for p in (
        Pruner("none", "No pruning"),
        Pruner(
            "median",
            "Median: stop a trial whose mean score over the folds so far is below the median of "
            "finished trials on the same folds",
        ),
        Pruner("hyperband", "Hyperband: successive halving over folds"),
        Pruner("wilcoxon", "Wilcoxon: stop when a signed-rank test says the trial is worse than the best"),
    )
}

CLASSIFICATION = "classification"
REGRESSION = "regression"
#: The tasks a study can have.
TASKS = (CLASSIFICATION, REGRESSION)
#: What a spec's ``task`` may say: a task, or ``auto`` (inferred from the target column).
TASK_CHOICES = ("auto", *TASKS)


def strategy_name(key: str) -> str:
    """Display name of a strategy (``tpe`` -> ``TPE``); an unknown key is shown as it is."""
    strategy = STRATEGIES.get(key)
    return strategy.name if strategy else key
