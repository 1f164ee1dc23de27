"""One source for each word: every strategy, pruner and task in hpdash.vocabulary is known to
the spec, built by hpdash.strategies, named and coloured in the comparison."""

import optuna
import pytest

from hpdash import compare, datasets, models, plots, spec, strategies, vocabulary


@pytest.mark.parametrize("key", list(vocabulary.STRATEGIES))
def test_every_strategy_is_accepted_built_named_and_coloured(key: str) -> None:
    parsed = spec.parse_spec(
        {"name": "v", "dataset": "sklearn:iris", "target": "target", "model": "random_forest", "strategy": key}
    )
    assert parsed.strategy == key
    if strategies.missing_dependency(key) is None:
        sampler = strategies.make_sampler(key, seed=0)
        assert isinstance(sampler, optuna.samplers.BaseSampler)
    entry = vocabulary.STRATEGIES[key]
    assert compare.label(key) == entry.name and strategies.STRATEGY_LABELS[key] == entry.description
    assert plots.strategy_color(key) == entry.color
    assert (key in strategies.MODEL_BASED) == entry.model_based


def test_strategy_names_and_colours_are_distinct() -> None:
    entries = list(vocabulary.STRATEGIES.values())
    assert len({s.name for s in entries}) == len(entries)
    assert len({s.color for s in entries}) == len(entries)
    assert vocabulary.strategy_name("unknown") == "unknown"


@pytest.mark.parametrize("key", list(vocabulary.PRUNERS))
def test_every_pruner_is_accepted_and_built(key: str) -> None:
    parsed = spec.parse_spec(
        {"name": "v", "dataset": "sklearn:iris", "target": "target", "model": "random_forest", "pruner": key}
    )
    assert parsed.pruner == key
    assert isinstance(strategies.make_pruner(key, n_folds=5), optuna.pruners.BasePruner)
    assert strategies.PRUNER_LABELS[key] == vocabulary.PRUNERS[key].description


def test_tasks_have_one_source() -> None:
    assert datasets.TASKS == vocabulary.TASKS == (models.CLASSIFICATION, models.REGRESSION)
    assert spec.TASKS == ("auto", *vocabulary.TASKS)
    for task in vocabulary.TASKS:
        assert models.models_for_task(task), task
