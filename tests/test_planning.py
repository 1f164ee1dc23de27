"""hpdash.planning: the spread of past runs on the same problem, and the repeats it asks for."""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from hpdash import attrs as study_attrs
from hpdash import config, planning, statistics
from hpdash.spec import parse_spec
from hpdash.storage import open_storage
from hpdash.store import Catalogue

SHA = "c" * 64
OTHER_SHA = "d" * 64
BASE = {
    "dataset": SHA,
    "target": "target",
    "model": "k_nearest_neighbors",
    "task": "classification",
    "metric": "accuracy",
    "n_trials": 3,
    "cv": {"folds": 3, "repeats": 1},
    "test_size": 0.2,
    "seed": 0,
}


@functools.cache
def _storage_of(path: str) -> Any:
    return open_storage(None, heartbeat=False)


def _storage() -> Any:
    """One storage per data directory (each test has its own), so studies are made quickly."""
    return _storage_of(str(config.catalogue_path()))


def _study(
    name: str,
    strategy: str,
    seed: int,
    best: float,
    *,
    sha: str = SHA,
    metric: str = "accuracy",
    state: str = "finished",
    **spec: Any,
) -> str:
    """A real study in the data directory's SQLite storage as hpdash stores one: the spec and
    resolved attrs, its state, and two COMPLETE trials whose best is ``best``."""
    study = optuna.create_study(study_name=name, storage=_storage(), direction="maximize")
    full = {**BASE, "name": name, "dataset": sha, "metric": metric, "strategy": strategy, "seed": seed, **spec}
    for key, value in {
        study_attrs.SPEC: full,
        study_attrs.DATASET: sha,
        study_attrs.TASK: "classification",
        study_attrs.METRIC: metric,
        study_attrs.STATE: state,
    }.items():
        study.set_user_attr(key, value)
    for k, value in enumerate((best - 0.1, best)):
        study.add_trial(create_trial(value=value, params={"x": k / 10}, distributions={"x": FloatDistribution(0, 1)}))
    return name


def _experiment(
    name: str, bests: dict[str, Sequence[float]], *, state: dict[str, str] | None = None, **change: Any
) -> list[str]:
    """An experiment of the catalogue with a new split per repeat: strategy -> per-repeat bests
    (repeat r: seed = split seed = r). ``state``: study -> a state other than finished."""
    state = state or {}
    rows, names = [], []
    for strategy, values in bests.items():
        for seed, best in enumerate(values):
            study = f"{name}-{strategy}-s{seed}"
            _study(study, strategy, seed, best, state=state.get(study, "finished"), split_seed=seed, **change)
            rows.append({"experiment": name, "study": study, "strategy": strategy, "seed": seed})
            names.append(study)
    spec = {**BASE, "name": name, **{k: v for k, v in change.items() if k in BASE}}
    Catalogue(config.catalogue_path()).add_experiment(
        {"name": name, "spec_json": json.dumps(spec), "strategies": json.dumps(list(bests)), "repeats": 3}, rows
    )
    return names


def _spec(**change: Any):
    return parse_spec({**BASE, "name": "planned", **change})


def _best(name: str) -> float:
    return optuna.load_study(study_name=name, storage=_storage()).best_value


def _pooled_numpy(groups: Sequence[Sequence[float]]) -> float:
    """The pooled sd, computed independently: sum of (n - 1)·var(ddof=1) over sum of (n - 1)."""
    num = sum((len(g) - 1) * np.var(np.asarray(g), ddof=1) for g in groups)
    return float(np.sqrt(num / sum(len(g) - 1 for g in groups)))


A = {"random": [0.90, 0.93, 0.91], "tpe": [0.92, 0.96, 0.92]}
B = {"random": [0.88, 0.95, 0.90], "tpe": [0.91, 0.95, 0.94]}


def test_past_spread_pools_same_problem_experiments_and_ignores_others(data_dir) -> None:
    a = _experiment("a", A)
    b = _experiment("b", B)
    _experiment("other-data", A, sha=OTHER_SHA)
    _experiment("other-metric", A, metric="balanced_accuracy")
    _experiment("other-budget", A, n_trials=10)
    _experiment("other-folds", A, cv={"folds": 5, "repeats": 1})
    _experiment("still-running", A, state={"still-running-tpe-s2": "running"})
    spread = planning.past_spread(_spec())
    assert spread is not None
    assert spread.experiments == ("a", "b") and spread.outside == 0
    assert spread.source == "2 past experiments: a, b"
    assert set(spread.studies) == set(a + b) and spread.metric == "accuracy"
    # The sd, from the runs read back from the storage study by study, with NumPy.
    cells = [[_best(f"{exp}-{s}-s{seed}") for seed in range(3)] for exp in ("a", "b") for s in ("random", "tpe")]
    assert spread.sd == pytest.approx(_pooled_numpy(cells), rel=1e-12)
    assert spread.runs == 12 and spread.df == 8
    diffs = [[_best(f"{exp}-random-s{seed}") - _best(f"{exp}-tpe-s{seed}") for seed in range(3)] for exp in ("a", "b")]
    assert spread.paired_sd == pytest.approx(_pooled_numpy(diffs), rel=1e-12)
    assert spread.differences == 6 and spread.paired_df == 4


def test_one_experiment_gives_numpys_sd_and_the_plan_equals_repeats_needed(data_dir) -> None:
    names = _experiment("pilot", {"random": [0.900, 0.903, 0.901, 0.905], "tpe": [0.90, 0.90, 0.90, 0.90]})
    spread = planning.past_spread(_spec())
    assert spread is not None and spread.source == "1 past experiment: pilot"
    random = [_best(n) for n in names if "-random-" in n]
    assert spread.sd == pytest.approx(float(np.std(random, ddof=1) * math.sqrt(3 / 6)), rel=1e-12)
    # tpe's four runs are equal: its cell adds no squares but its 3 degrees of freedom
    pooled = _pooled_numpy([random, [_best(n) for n in names if "-tpe-" in n]])
    assert spread.sd == pytest.approx(pooled, rel=1e-12)
    plan = planning.plan_repeats(0.01, spread, repeats=5)
    assert plan.paired == statistics.repeats_needed(0.01, spread.paired_sd, 0.05, 0.8, paired=True)
    assert plan.unpaired == statistics.repeats_needed(0.01, spread.sd, 0.05, 0.8, paired=False)
    assert plan.paired is not None and plan.paired >= 6  # the exact signed-rank test's floor at 0.05
    text = plan.text("accuracy")
    assert text.startswith(
        f"To detect a difference of 0.01 in accuracy with 80% power at alpha 0.05 you need about {plan.paired} repeats "
        f"(paired, exact Wilcoxon; sd {spread.paired_sd:.2g} from 1 past experiment: pilot)."
    )
    assert "The form's 5 repeats give power 0%." in text  # 5 < 6: the exact test cannot reach 0.05
    unpaired = plan.text("accuracy", paired=False)
    assert f"(unpaired, exact Mann-Whitney; sd {spread.sd:.2g} from 1 past experiment: pilot)" in unpaired
    assert "3/π" in plan.method and "noncentral t" in plan.method


def test_power_at_the_forms_repeats_uses_the_rank_test_efficiency() -> None:
    spread = planning.Spread(0.01, 6, 4, 0.008, 3, 2, ("x",), 0, (), "accuracy")
    plan = planning.plan_repeats(0.01, spread, repeats=10)
    adjusted = 0.008 / math.sqrt(3 / math.pi)
    assert plan.power_paired == pytest.approx(statistics.power_of(10, 0.01, adjusted, 0.05, True))
    assert plan.power_unpaired == pytest.approx(
        statistics.power_of(10, 0.01, 0.01 / math.sqrt(3 / math.pi), 0.05, False)
    )
    assert planning.plan_repeats(0.01, spread, repeats=3).power_unpaired == 0.0  # 2/C(6,3) = 0.1 >= 0.05
    # needing N repeats gives at least the planned power at N
    assert planning.rank_test_power(plan.paired, 0.01, 0.008) >= 0.8
    with pytest.raises(ValueError, match="positive"):
        planning.plan_repeats(0, spread)


def test_without_a_paired_group_the_differences_sd_is_root_two_times_the_sd(data_dir) -> None:
    """Studies outside every experiment count as one group; two runs of one strategy on one
    split are not a paired design."""
    for seed, best in enumerate((0.90, 0.94, 0.92)):
        _study(f"loose-random-{seed}", "random", 0, best)  # one split seed: not paired
    spread = planning.past_spread(_spec())
    assert spread is not None and spread.experiments == () and spread.outside == 3
    assert spread.source == "3 studies outside experiments"
    assert spread.paired_sd is None
    assert spread.sd == pytest.approx(float(np.std([0.90, 0.94, 0.92], ddof=1)), rel=1e-9)
    plan = planning.plan_repeats(0.01, spread, repeats=3)
    assert plan.paired_sd_assumed and plan.paired_sd == pytest.approx(math.sqrt(2) * spread.sd)
    assert plan.paired == statistics.repeats_needed(0.01, math.sqrt(2) * spread.sd, 0.05, 0.8, paired=True)
    assert "sd of the differences taken as √2 ×" in plan.text("accuracy")


def test_nothing_comparable_is_none_and_the_form_offers_a_pilot(data_dir) -> None:
    assert planning.past_spread(_spec()) is None
    _experiment("elsewhere", A, sha=OTHER_SHA)
    _study("lonely", "tpe", 0, 0.9)  # a single run: no spread
    assert planning.past_spread(_spec()) is None
    text = planning.form_text(None, 0.01, 3, "accuracy")
    assert text == "No finished experiment on this problem yet: run a small pilot (2-3 repeats), then plan from it."
    # ... and once the pilot has finished, it is a past experiment
    _experiment("pilot", A)
    spread = planning.past_spread(_spec())
    assert spread is not None and planning.form_text(spread, 0.01, 3, "accuracy").startswith("To detect")


def test_problem_of_an_auto_spec_matches_any_task_and_metric_until_resolved() -> None:
    spec = _spec(task="auto", metric="auto")
    problem = planning.problem_of(spec)
    assert problem.task is None and problem.metric is None and problem.dataset == SHA
    stored = planning.Problem(SHA, "target", "classification", "f1_macro", 3, 1, 0.2, 3, None)
    assert problem.matches(stored)
    assert not planning.problem_of(_spec()).matches(stored)  # accuracy vs f1_macro
    assert planning.problem_of(_spec(metric="auto")).metric == "accuracy"
    assert not problem.matches(planning.Problem(SHA, "target", None, None, 3, 1, 0.25, 3, None))


@pytest.mark.parametrize("n_pairs", [1, 3])
def test_pooled_differences_over_pairs_of_strategies(n_pairs: int) -> None:
    strategies = ["grid", "random", "tpe"][: 2 if n_pairs == 1 else 3]
    values = {"grid": [0.8, 0.85, 0.83, 0.9], "random": [0.82, 0.84, 0.86, 0.88], "tpe": [0.9, 0.91, 0.86, 0.95]}
    runs = [planning.Run(f"e-{s}-{seed}", "e", s, seed, values[s][seed]) for s in strategies for seed in range(4)]
    spread = planning.spread_of(runs)
    assert spread is not None
    diffs = [np.subtract(values[a], values[b]) for a, b in itertools.combinations(sorted(strategies), 2)]
    assert spread.paired_sd == pytest.approx(_pooled_numpy(diffs), rel=1e-12) and spread.differences == 4 * n_pairs
