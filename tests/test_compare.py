"""hpdash.compare: comparison statistics on hand-made experiment frames with known answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hpdash import compare


def run(
    strategy: str,
    seed: int,
    values: Sequence[float | None],
    elapsed: Sequence[float] | None = None,
    states: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of one study: trial k has value values[k] (None = FAIL), completes at elapsed[k]."""
    elapsed = elapsed if elapsed is not None else [float(k + 1) for k in range(len(values))]
    rows = []
    for k, v in enumerate(values):
        state = states[k] if states else ("FAIL" if v is None else "COMPLETE")
        rows.append(
            {
                "study": f"exp-{strategy}-s{seed}",
                "strategy": strategy,
                "seed": seed,
                "number": k,
                "state": state,
                "value": math.nan if v is None or state != "COMPLETE" else float(v),
                "elapsed_s": float(elapsed[k]),
                "params_x": float(k),
            }
        )
    return rows


def frame(*runs: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([r for rs in runs for r in rs])


# ------------------------------------------------------------------------------ curves
def test_best_so_far_by_trial_skips_failed_and_pruned() -> None:
    f = frame(run("tpe", 0, [None, 0.5, 0.4, 0.7, 0.6], states=["FAIL", "COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"]))
    c = compare.curves(f, "trial")
    assert c["trial"].tolist() == [1, 2, 3, 4, 5]
    assert c["best"].tolist()[1:] == [0.5, 0.5, 0.7, 0.7]
    assert math.isnan(c["best"].iloc[0])  # no COMPLETE trial yet


def test_best_so_far_minimize() -> None:
    c = compare.curves(frame(run("gp", 0, [3.0, 1.0, 2.0])), "trial", direction="minimize")
    assert c["best"].tolist() == [3.0, 1.0, 1.0]


def test_best_so_far_by_time_uses_completion_order() -> None:
    # trial 0 finishes last (parallel workers): by time the best goes 0.1, 0.5, 0.9
    c = compare.curves(frame(run("random", 0, [0.9, 0.1, 0.5], elapsed=[3.0, 1.0, 2.0])), "elapsed_s")
    assert c["elapsed_s"].tolist() == [1.0, 2.0, 3.0]
    assert c["best"].tolist() == [0.1, 0.5, 0.9]


def test_step_values_carry_forward_and_nan_before_start() -> None:
    out = compare.step_values(np.array([1.0, 3.0]), np.array([10.0, 20.0]), np.array([0.5, 1.0, 2.0, 3.0, 9.0]))
    assert math.isnan(out[0])
    assert out[1:].tolist() == [10.0, 10.0, 20.0, 20.0]


# ------------------------------------------------------------------------------ bands
def test_band_is_a_student_t_interval_of_the_mean() -> None:
    f = frame(run("tpe", 0, [1.0, 2.0, 3.0]), run("tpe", 1, [3.0, 3.0, 3.0]))
    b = compare.bands(compare.curves(f, "trial"), "trial")
    assert b["x"].tolist() == [1.0, 2.0, 3.0] and b["n"].tolist() == [2, 2, 2]
    first = b.iloc[0]  # values 1 and 3: mean 2, sd sqrt(2), half = t(.975, 1) * sd / sqrt(2)
    assert first["mean"] == 2.0 and first["std"] == pytest.approx(math.sqrt(2))
    assert first["hi"] - first["mean"] == pytest.approx(12.706204736, rel=1e-6)
    last = b.iloc[2]  # values 3 and 3: no spread, no width
    assert (last["mean"], last["lo"], last["hi"]) == (3.0, 3.0, 3.0)


def test_band_with_three_runs_matches_scipy() -> None:
    f = frame(run("random", 0, [1.0]), run("random", 1, [2.0]), run("random", 2, [3.0]))
    row = compare.bands(compare.curves(f, "trial"), "trial").iloc[0]
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # mean 2, sd 1
    assert row["mean"] == 2.0 and row["std"] == pytest.approx(1.0)
    assert (row["lo"], row["hi"]) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert half == pytest.approx(2.4841377, rel=1e-6)


def test_band_shorter_run_keeps_its_final_best_and_single_run_has_no_interval() -> None:
    f = frame(run("grid", 0, [5.0, 6.0]), run("grid", 1, [None, 2.0, 3.0, 4.0]))
    b = compare.bands(compare.curves(f, "trial"), "trial").set_index("x")
    assert b.loc[1.0, "n"] == 1 and math.isnan(b.loc[1.0, "lo"]) and b.loc[1.0, "mean"] == 5.0
    assert b.loc[4.0, "n"] == 2 and b.loc[4.0, "mean"] == 5.0  # (6 carried forward + 4) / 2


def test_band_on_time_grid() -> None:
    f = frame(run("tpe", 0, [1.0, 3.0], elapsed=[1.0, 4.0]), run("tpe", 1, [2.0, 2.0], elapsed=[2.0, 3.0]))
    b = compare.bands(compare.curves(f, "elapsed_s"), "elapsed_s", grid=[0.0, 1.5, 2.5, 5.0]).set_index("x")
    assert 0.0 not in b.index  # nobody had a result yet
    assert b.loc[1.5, "n"] == 1 and b.loc[1.5, "mean"] == 1.0
    assert b.loc[2.5, "mean"] == 1.5 and b.loc[5.0, "mean"] == 2.5
    default = compare.bands(compare.curves(f, "elapsed_s"), "elapsed_s")
    # 101 points over [0, 4] s, step 0.04: the 76 from 1.0 s (the first result) on have data
    assert default["x"].max() == 4.0 and default["x"].min() == pytest.approx(1.0) and len(default) == 76


# ------------------------------------------------------------------------------ target
@pytest.mark.parametrize(
    ("values", "direction", "expected"),
    [
        ([0.5, 0.8], "maximize", 0.792),  # 99% of a positive score
        ([-60.0, -50.0], "maximize", -50.5),  # neg_rmse: an RMSE within 1% of the best RMSE
        ([50.0, 60.0], "minimize", 50.5),
        ([-1.0, -2.0], "minimize", -1.98),
        ([0.0, -1.0], "maximize", 0.0),
    ],
)
def test_default_target_is_sign_safe(values: list[float], direction: str, expected: float) -> None:
    target = compare.default_target(frame(run("tpe", 0, values)), direction)
    assert target == pytest.approx(expected)
    best = max(values) if direction == "maximize" else min(values)
    assert (target <= best) if direction == "maximize" else (target >= best)  # the best run reaches it


def test_time_to_target_trials_seconds_and_never_reached() -> None:
    f = frame(
        run("tpe", 0, [0.1, None, 0.95, 0.99], elapsed=[1.0, 2.0, 3.5, 4.0]),  # reaches at trial 3, 3.5 s
        run("tpe", 1, [0.96, 0.2], elapsed=[0.5, 1.0]),  # trial 1
        run("random", 0, [0.1, 0.2, 0.3]),  # never
        run("random", 1, [0.2, 0.95], elapsed=[1.0, 7.0]),  # trial 2, 7 s
    )
    ttt = compare.time_to_target(f, 0.95).set_index("study")
    assert ttt.loc["exp-tpe-s0", ["trials", "seconds"]].tolist() == [3.0, 3.5]
    assert ttt.loc["exp-tpe-s1", ["trials", "seconds"]].tolist() == [1.0, 0.5]
    never = ttt.loc["exp-random-s0"]
    assert not never["reached"] and math.isnan(never["trials"]) and math.isnan(never["seconds"])
    summary = compare.time_to_target_summary(compare.time_to_target(f, 0.95)).set_index("strategy")
    assert summary.loc["tpe", ["runs", "reached", "share", "trials_mean", "seconds_mean"]].tolist() == [
        2,
        2,
        1.0,
        2.0,
        2.0,
    ]
    assert summary.loc["tpe", "trials_std"] == pytest.approx(math.sqrt(2))
    assert summary.loc["random", ["reached", "share", "trials_mean"]].tolist() == [1, 0.5, 2.0]
    assert math.isnan(summary.loc["random", "trials_std"])  # one reaching run has no spread


def test_time_to_target_ties_and_nobody_reaches() -> None:
    f = frame(run("gp", 0, [0.1, 0.9]), run("gp", 1, [0.2, 0.9]))
    s = compare.time_to_target_summary(compare.time_to_target(f, 0.9)).iloc[0]
    assert (s["trials_mean"], s["trials_std"]) == (2.0, 0.0)
    none = compare.time_to_target_summary(compare.time_to_target(f, 2.0)).iloc[0]
    assert none["reached"] == 0 and none["share"] == 0.0 and math.isnan(none["trials_mean"])


# ------------------------------------------------------------------------------ summary
def test_ranks_and_wins_with_ties() -> None:
    f = frame(
        run("grid", 0, [0.9]),
        run("random", 0, [0.9]),
        run("tpe", 0, [0.8]),
        run("grid", 1, [0.7]),
        run("random", 1, [0.8]),
        run("tpe", 1, [0.95]),
    )
    runs = compare.final_runs(f, holdout={"exp-tpe-s0": 0.5, "exp-tpe-s1": 0.7})
    ranked = compare.ranks(runs).set_index("study")
    assert ranked.loc[["exp-grid-s0", "exp-random-s0", "exp-tpe-s0"], "rank"].tolist() == [1.5, 1.5, 3.0]
    table = compare.summary_table(runs).set_index("strategy")
    assert table.loc["grid", "wins"] == 1 and table.loc["random", "wins"] == 1 and table.loc["tpe", "wins"] == 1
    assert table.loc["grid", "mean_rank"] == 2.25 and table.loc["random", "mean_rank"] == 1.75
    assert table.loc["tpe", "mean_rank"] == 2.0
    assert table.loc["tpe", "holdout_mean"] == pytest.approx(0.6) and table.loc["tpe", "holdout_n"] == 2
    assert math.isnan(table.loc["grid", "holdout_mean"])
    assert table.loc["random", "best_mean"] == pytest.approx(0.85)
    assert table.loc["random", "best_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert list(compare.summary_table(runs)["strategy"]) == ["random", "tpe", "grid"]  # by mean rank


# ------------------------------------------------------------------------------ tests and p-values
def test_mann_whitney_exact_p_values_and_ties() -> None:
    assert compare.mann_whitney([1, 2, 3, 4], [5, 6, 7, 8])[1] == pytest.approx(2 / 70)
    assert compare.mann_whitney([1, 2, 3], [4, 5, 6])[1] == pytest.approx(0.1)
    assert compare.mann_whitney([0.9, 0.9, 0.9], [0.9, 0.9, 0.9]) == (4.5, 1.0)
    assert compare.min_p_value(3, 3) == pytest.approx(0.1)
    assert compare.min_p_value(4, 4) == pytest.approx(2 / 70)
    assert compare.min_p_value(2, 2) == pytest.approx(1 / 3)
    assert compare.seeds_needed(0.05) == 4
    assert compare.seeds_needed(0.05 / 3) == 5


def test_holm_adjustment() -> None:
    assert compare.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert compare.holm([0.5]) == [0.5]
    assert compare.holm([0.6, 0.9]) == [1.0, 1.0]


def test_pairwise_on_best_and_censored_trials_to_target() -> None:
    runs_ = [run("tpe", s, [0.1] * (t - 1) + [1.0] + [0.1] * (9 - t)) for s, t in enumerate([2, 3, 4, 5])]
    runs_ += [run("random", s, [0.1] * 9) for s in range(4)]
    f = frame(*runs_)
    a = compare.analyse(f)
    pairs = a.pairs.set_index("metric")
    best, ttt = pairs.loc[compare.METRIC_BEST], pairs.loc[compare.METRIC_TTT]
    assert best["p"] == pytest.approx(2 / 70) and best["better"] == "tpe"
    # random never reaches: its runs count as 9 + 1 = 10 trials, worse than every tpe run
    assert ttt["p"] == pytest.approx(2 / 70) and ttt["better"] == "tpe"
    assert a.target == pytest.approx(0.99)


# ------------------------------------------------------------------------------ verdict
def test_verdict_states_a_supported_difference() -> None:
    runs_ = [run("tpe", s, [0.1] * (t - 1) + [1.0] + [0.1] * (9 - t)) for s, t in enumerate([2, 3, 4, 5])]
    runs_ += [run("random", s, [0.1] * 9) for s in range(4)]
    a = compare.analyse(frame(*runs_))
    text = a.verdict.text
    assert "TPE reached the target in 3.5 ± 1.3 trials, Random did not reach it in any of its 4 runs (p = 0.03)" in text
    assert "TPE found better final CV scores than Random" in text
    assert {(c.metric, c.better, c.worse) for c in a.verdict.claims} == {
        (compare.METRIC_TTT, "tpe", "random"),
        (compare.METRIC_BEST, "tpe", "random"),
    }
    assert "No significant difference" not in text


def test_verdict_with_three_seeds_never_claims_a_difference() -> None:
    # As separated as data can be, but 3 seeds cannot give p < 0.05 (smallest p is 0.1).
    runs_ = [run("tpe", s, [0.1, 1.0 + s / 100]) for s in range(3)] + [run("random", s, [0.1, 0.2]) for s in range(3)]
    a = compare.analyse(frame(*runs_))
    assert a.verdict.claims == []
    assert a.verdict.text.startswith("No significant difference with 3 seeds")
    assert "cannot go below p = 0.1" in a.verdict.text and "at least 4 seeds" in a.verdict.text
    assert "reached the target in" not in a.verdict.text and "better" not in a.verdict.text.split(".")[0]


def test_verdict_all_tied() -> None:
    runs_ = [run(s, k, [0.9]) for s in ("grid", "random", "tpe") for k in range(5)]
    a = compare.analyse(frame(*runs_))
    assert a.pairs["p"].tolist() == [1.0] * 6
    assert a.verdict.claims == [] and "No significant difference with 5 seeds" in a.verdict.text


def test_verdict_holm_can_withdraw_a_raw_difference() -> None:
    # 4 seeds, 3 strategies: raw p = 0.029 < 0.05, but Holm over 3 pairs makes it 0.086.
    runs_ = [run("tpe", s, [0.1, 1.0 + s]) for s in range(4)] + [run("random", s, [0.5 + s / 100]) for s in range(4)]
    runs_ += [run("grid", s, [0.9 + s / 100, 0.1]) for s in range(4)]
    a = compare.analyse(frame(*runs_))
    best = a.pairs.loc[a.pairs["metric"] == compare.METRIC_BEST].set_index(["a", "b"])
    assert best.loc[("tpe", "random"), "p"] == pytest.approx(2 / 70)
    assert best.loc[("tpe", "random"), "p_holm"] > 0.05
    assert not any(c.metric == compare.METRIC_BEST for c in a.verdict.claims)


@pytest.mark.parametrize("seed", range(25))
def test_verdict_never_claims_what_the_test_does_not_support(seed: int) -> None:
    rng = np.random.default_rng(seed)
    strategies = ["grid", "random", "tpe", "gp"][: int(rng.integers(2, 5))]
    n = int(rng.integers(2, 8))
    shift = {s: float(rng.normal(0, 0.3)) for s in strategies}
    runs_ = [
        run(s, k, list(rng.normal(shift[s], 0.2, size=int(rng.integers(3, 12))))) for s in strategies for k in range(n)
    ]
    a = compare.analyse(frame(*runs_))
    pairs = a.pairs.set_index(["metric", "a", "b"])
    for claim in a.verdict.claims:
        key = (
            (claim.metric, claim.better, claim.worse)
            if (claim.metric, claim.better, claim.worse) in pairs.index
            else (claim.metric, claim.worse, claim.better)
        )
        assert pairs.loc[key, "p_holm"] < compare.ALPHA and pairs.loc[key, "better"] == claim.better
        assert claim.p == pytest.approx(pairs.loc[key, "p_holm"])
    supported = int((a.pairs["p_holm"] < compare.ALPHA).sum())
    assert len(a.verdict.claims) == supported
    assert ("No significant difference" in a.verdict.text) == (supported == 0)


def test_verdict_needs_two_strategies() -> None:
    a = compare.analyse(frame(run("tpe", 0, [0.5]), run("tpe", 1, [0.6])))
    assert "at least two strategies" in a.verdict.text and a.verdict.claims == []


@pytest.mark.parametrize("seed", range(6))
def test_exact_mann_whitney_matches_scipy_permutation_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=int(rng.integers(2, 6))).astype(float)  # small integers: many ties
    b = rng.integers(0, 4, size=int(rng.integers(2, 6))).astype(float)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided", method=stats.PermutationMethod(n_resamples=20_000))
    assert compare.mann_whitney(a, b) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))


def test_mann_whitney_single_runs() -> None:
    assert compare.mann_whitney([1.0], [2.0]) == (0.0, 1.0)  # one vs one can never differ
    assert compare.mann_whitney([1.0], [2.0, 3.0, 4.0])[1] == pytest.approx(0.5)  # 2 / C(4, 1)


# ------------------------------------------------------------------------------ real studies
import datetime as dt  # noqa: E402
import itertools  # noqa: E402
from pathlib import Path  # noqa: E402

import optuna  # noqa: E402
from optuna.distributions import FloatDistribution  # noqa: E402
from optuna.trial import create_trial  # noqa: E402

from hpdash import attrs as study_attrs  # noqa: E402
from hpdash import plots, runner  # noqa: E402
from hpdash.storage import open_storage  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
T0 = dt.datetime(2025, 1, 1, 12, 0, 0)
SHA_IRIS, SHA_WINE = "a" * 64, "b" * 64
_NUMBERS = itertools.count()
SPACE = {"k_nearest_neighbors": {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}}}


def make_study(
    storage: str,
    strategy: str,
    seed: int,
    values: Sequence[float],
    *,
    sha: str = SHA_IRIS,
    metric: str = "accuracy",
    name: str | None = None,
    holdout: float | None = None,
    **spec: Any,
) -> str:
    """A real Optuna study as hpdash stores one: the spec and resolved attrs, one COMPLETE trial
    per value (a second apart). ``spec`` overrides spec fields (``n_trials``, ``split_seed``, ...)."""
    name = name or f"{strategy}-s{seed}-{next(_NUMBERS)}"
    study = optuna.create_study(study_name=name, storage=open_storage(storage, heartbeat=False), direction="maximize")
    full = {
        "name": name,
        "dataset": sha,
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": strategy,
        "task": "classification",
        "space": None,
        "n_trials": len(values),
        "timeout": None,
        "cv": {"folds": 3, "repeats": 1},
        "metric": metric,
        "test_size": 0.2,
        "seed": seed,
        "pruner": "none",
        "workers": 1,
        **spec,
    }
    for key, value in {
        study_attrs.SPEC: full,
        study_attrs.DATASET: sha,
        study_attrs.TASK: "classification",
        study_attrs.METRIC: metric,
        study_attrs.SPACE: SPACE,
    }.items():
        study.set_user_attr(key, value)
    if holdout is not None:
        study.set_user_attr(study_attrs.REFIT, {"holdout_score": holdout})
    for k, value in enumerate(values):
        trial = create_trial(value=float(value), params={"x": k / 10}, distributions={"x": FloatDistribution(0, 1)})
        trial.datetime_start = T0 + dt.timedelta(seconds=k)
        trial.datetime_complete = trial.datetime_start + dt.timedelta(seconds=1)
        study.add_trial(trial)
    return name


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def _two_tables(storage: str) -> list[str]:
    """The issue's hand-picked set: TPE on one table, random search on another, 3 trials each.
    4 seeds per side: far enough apart that Mann-Whitney alone would say p = 0.03."""
    tpe = [make_study(storage, "tpe", s, [0.90, 0.95, 0.97 + s / 1000]) for s in range(4)]
    rnd = [make_study(storage, "random", s, [0.60, 0.70, 0.80 + s / 1000], sha=SHA_WINE) for s in range(4, 8)]
    return tpe + rnd


def test_two_datasets_make_no_claim_and_no_rank_and_say_what_differs(storage: str) -> None:
    c = compare.load_studies_comparison(_two_tables(storage), storage)
    assert not c.comparable
    assert c.differences == [f"dataset: SHA-256 {SHA_IRIS[:12]}… vs SHA-256 {SHA_WINE[:12]}…"]
    a = compare.analyse_comparison(c)
    text = a.verdict.text
    assert text.startswith(f"Not comparable: dataset: SHA-256 {SHA_IRIS[:12]}")
    assert a.verdict.claims == [] and "found better" not in text and "reached the target in" not in text
    assert "No test is run, no strategy is ranked" in text
    assert a.pairs.empty and compare.pairs_table(a.pairs)["test"].iloc[0].startswith("none (not comparable")
    assert a.summary["mean_rank"].isna().all() and a.summary["wins"].isna().all()
    assert set(compare.display_table(a.summary, a.ttt_summary)["mean rank"]) == {"-"}
    # What the CLI does (analyse on the frame alone) still knows: the frame carries it.
    cli = compare.analyse(c.frame, c.holdout, c.direction)
    assert cli.verdict.text == text and cli.pairs.empty
    # The same runs, were they comparable, would have been called different: the banner matters.
    forced = compare.analyse(c.frame, c.holdout, c.direction, differences=[])
    assert any(claim.metric == compare.METRIC_BEST for claim in forced.verdict.claims)
    assert "(p = 0.03) by exact Mann-Whitney U" in forced.verdict.text
    assert "holds only TPE" in forced.verdict.text  # and no ranks: each seed holds one strategy
    figures = compare.comparison_figures(c, a)
    for fig in figures.values():
        assert any(str(x.text).startswith("Not comparable: dataset") for x in fig.layout.annotations)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"metric": "balanced_accuracy"}, "metric: accuracy vs balanced_accuracy"),
        ({"n_trials": 10}, "budget: 3 trials vs 10 trials"),
    ],
)
def test_two_metrics_or_two_budgets_are_not_comparable(storage: str, change: dict[str, Any], expected: str) -> None:
    names = [make_study(storage, "tpe", s, [0.9, 0.95, 0.99 - s / 1000]) for s in range(5)]
    names += [
        make_study(storage, "random", s, [0.5, 0.6, 0.7 - s / 1000], **change)
        for s in range(5)  # same seeds: complete blocks, so only the difference stops the claims
    ]
    c = compare.load_studies_comparison(names, storage)
    assert c.differences == [expected]
    a = compare.analyse_comparison(c)
    assert a.verdict.text.startswith(f"Not comparable: {expected}.")
    assert a.verdict.claims == [] and a.pairs.empty and a.summary["mean_rank"].isna().all()


def test_differences_of_plain_specs() -> None:
    base = {"dataset": "sklearn:iris", "target": "y", "model": "svm", "cv": {"folds": 5, "repeats": 1}, "seed": 0}
    assert compare.differences([base, {**base, "seed": 3, "strategy": "grid", "split_seed": 9}]) == []
    found = compare.differences(
        [
            base,
            {**base, "cv": {"folds": 3, "repeats": 2}, "test_size": 0.3, "model": "random_forest"},
            {**base, "dataset": "sklearn:wine", "direction": "minimize"},
        ]
    )
    assert found == [
        "dataset: sklearn:iris vs sklearn:wine",
        "metric direction: none vs minimize",
        "search space: svm vs random_forest",
        "CV folds: 5 vs 3",
        "CV repeats: 1 vs 2",
        "test size: none vs 0.3",
    ]
    ranges = compare.differences([{**base, "space": {"C": [1, 2]}}, {**base, "space": {"C": [1, 3]}}])
    assert ranges == ["search space: different ranges of svm"]


def _tpe_vs_random(storage: str, tpe: Sequence[float], rnd: Sequence[float], **spec: Any) -> list[str]:
    names = [make_study(storage, "tpe", s, [0.5, v]) for s, v in enumerate(tpe)]
    return names + [make_study(storage, "random", s, [0.4, v], **spec) for s, v in enumerate(rnd)]


def test_paired_design_uses_the_exact_wilcoxon_test_and_names_it(storage: str) -> None:
    tpe = [0.91, 0.93, 0.95, 0.92, 0.97, 0.99]
    rnd = [0.90, 0.90, 0.91, 0.86, 0.95, 0.92]
    c = compare.load_studies_comparison(_tpe_vs_random(storage, tpe, rnd), storage)
    assert c.comparable and c.split == compare.SPLIT_NEW
    a = compare.analyse_comparison(c)
    assert a.design is not None and a.design.paired and a.design.ranked
    best = a.pairs.loc[a.pairs["metric"] == compare.METRIC_BEST].iloc[0]
    diffs = np.array(tpe) - np.array(rnd)  # per seed (= per split): same holdout, same folds
    assert best["test"] == "exact Wilcoxon signed-rank" and best["n_pairs"] == 6
    assert best["p"] == pytest.approx(stats.wilcoxon(diffs, method="exact").pvalue) == pytest.approx(2 / 64)
    assert best["better"] == "tpe"
    assert "exact Wilcoxon signed-rank" in set(compare.pairs_table(a.pairs)["test"])
    text = a.verdict.text
    assert "TPE found better final CV scores than Random" in text and "(p = 0.03) by exact Wilcoxon signed-rank" in text
    assert "per-seed differences (paired" in text
    assert [claim.test for claim in a.verdict.claims if claim.metric == compare.METRIC_BEST] == [
        "exact Wilcoxon signed-rank"
    ]
    # The unpaired analysis of the same runs is still there (the old function, a bare frame).
    unpaired = compare.pairwise_tests(a.runs, a.ttt)
    assert unpaired.iloc[0]["test"] == "exact Mann-Whitney U"
    assert unpaired.iloc[0]["p"] == pytest.approx(compare.mann_whitney(tpe, rnd)[1])


def test_paired_test_drops_zero_differences_and_says_so(storage: str) -> None:
    tpe = [0.91, 0.93, 0.95, 0.92, 0.97]
    rnd = [0.90, 0.93, 0.91, 0.86, 0.95]  # seed 1 ties
    a = compare.analyse_comparison(compare.load_studies_comparison(_tpe_vs_random(storage, tpe, rnd), storage))
    best = a.pairs.loc[a.pairs["metric"] == compare.METRIC_BEST].iloc[0]
    diffs = np.array(tpe) - np.array(rnd)
    diffs[1] = 0.0
    assert best["test"] == "exact Wilcoxon signed-rank, 1 zero difference dropped"
    assert best["p"] == pytest.approx(stats.wilcoxon(diffs, method="exact").pvalue)
    assert best["min_p"] == pytest.approx(2 / 2**4)


def test_wilcoxon_signed_rank_matches_scipy_on_random_differences() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 9))
        a, b = rng.integers(0, 5, size=n).astype(float), rng.integers(0, 5, size=n).astype(float)
        stat, p, name, balance = compare.wilcoxon_signed_rank(a, b)
        d = a - b
        if (d == 0).all():
            assert p == 1.0 and "dropped" in name
            continue
        assert p == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
        assert ("dropped" in name) == bool((d == 0).any())
        nonzero = d[d != 0]
        r = stats.rankdata(np.abs(nonzero))
        assert balance == pytest.approx(r[nonzero > 0].sum() - r[nonzero < 0].sum())
        assert ("tied differences" in name) == (np.unique(np.abs(nonzero)).size < nonzero.size)


def test_incomplete_blocks_are_unpaired_mann_whitney_without_ranks(storage: str) -> None:
    names = [make_study(storage, "tpe", s, [0.5, 0.9 + s / 100]) for s in range(4)]
    names += [make_study(storage, "random", s, [0.5, 0.6 + s / 100]) for s in range(2, 6)]
    a = compare.analyse_comparison(compare.load_studies_comparison(names, storage))
    assert a.design is not None and not a.design.paired and not a.design.ranked
    assert set(a.pairs["test"]) == {"exact Mann-Whitney U"}
    assert "split seed 0 holds only TPE" in a.design.reason
    assert "No ranks" in a.verdict.text and a.summary["mean_rank"].isna().all()
    assert "Mann-Whitney U tests across seeds (not paired" in a.verdict.text


def test_same_split_for_every_repeat_is_not_paired(storage: str) -> None:
    c = compare.load_studies_comparison(
        _tpe_vs_random(storage, [0.91, 0.93, 0.95, 0.92], [0.90, 0.90, 0.91, 0.86], split_seed=7), storage
    )
    assert c.split == compare.SPLIT_NEW  # the TPE studies have no split_seed: their seed is their split
    c = compare.load_studies_comparison(
        [make_study(storage, s, k, [0.5, 0.9 - k / 100], split_seed=7) for s in ("grid", "tpe") for k in range(4)],
        storage,
    )
    assert c.split == compare.SPLIT_SAME and set(c.split_seeds.values()) == {7}
    a = compare.analyse_comparison(c)
    assert a.design is not None and not a.design.paired and a.design.ranked  # ranks within the repeat seed
    assert "same data split" in a.design.reason and set(a.pairs["test"]) == {"exact Mann-Whitney U"}


def test_study_states_is_one_batch(storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c = compare.load_studies_comparison(_tpe_vs_random(storage, [0.9, 0.8], [0.7, 0.6]), storage)

    def one_by_one(*_: Any, **__: Any) -> None:
        raise AssertionError("study_status called study by study")

    monkeypatch.setattr(runner, "study_status", one_by_one)
    assert compare.study_states(c) == {r.study: "created" for r in c.runs}


# ------------------------------------------------------------------------------ ranges and bands
@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("accuracy", (0.0, 1.0)),
        ("balanced_accuracy", (0.0, 1.0)),
        ("f1_macro", (0.0, 1.0)),
        ("precision_macro", (0.0, 1.0)),
        ("recall_weighted", (0.0, 1.0)),
        ("roc_auc_ovr", (0.0, 1.0)),
        ("average_precision", (0.0, 1.0)),
        ("jaccard", (0.0, 1.0)),
        ("r2", (-math.inf, 1.0)),
        ("explained_variance", (-math.inf, 1.0)),
        ("neg_root_mean_squared_error", (-math.inf, 0.0)),
        ("neg_log_loss", (-math.inf, 0.0)),
        ("max_error", (-math.inf, math.inf)),
        (None, (-math.inf, math.inf)),
    ],
)
def test_metric_range(metric: str | None, expected: tuple[float, float]) -> None:
    assert compare.metric_range(metric) == expected


def test_accuracy_bands_stay_within_zero_and_one() -> None:
    # 3 seeds of accuracy near 1: the t-interval alone reaches above 1 (and far below the data)
    f = frame(run("tpe", 0, [0.80, 0.99]), run("tpe", 1, [0.90, 1.0]), run("tpe", 2, [0.97, 0.98]))
    raw = compare.bands(compare.curves(f, "trial"), "trial")
    assert raw["hi"].max() > 1.0
    a = compare.analyse(f, metric="accuracy")
    for b in (a.bands_trial, a.bands_time):
        assert b["hi"].max() <= 1.0 and b["lo"].min() >= 0.0
    assert a.band_text == "95% t-interval of the mean over 3 seeds"
    boot = compare.analyse(f, metric="accuracy", band="bootstrap")
    assert boot.band_text == "95% bootstrap percentile interval of the mean over 3 seeds"
    last = boot.bands_trial.iloc[-1]  # bests 0.99, 1.0, 0.98: resampled means stay among them
    assert 0.98 <= last["lo"] <= last["mean"] <= last["hi"] <= 1.0
    assert set(boot.bands_trial["method"]) == {"bootstrap"}
    mean, _sd, lo, hi, n = compare.bootstrap_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (mean, n) == (2.5, 4) and 1.0 <= lo < 2.5 < hi <= 4.0
    with pytest.raises(ValueError):
        compare.bands(compare.curves(f, "trial"), method="normal")


def test_band_figures_name_the_band_and_clip_it() -> None:
    f = frame(run("tpe", 0, [0.80, 0.99]), run("tpe", 1, [0.90, 1.0]), run("tpe", 2, [0.97, 0.98]))
    curves = compare.curves(f, "trial")
    fig = plots.band_figure(compare.bands(curves), curves, value_range=compare.metric_range("accuracy"))
    assert fig.layout.title.text == "Best so far vs trials (95% band)"
    assert "95% t-interval of the mean over 3 seeds" in fig.layout.title.subtitle.text
    fill = next(t for t in fig.data if t.fill == "toself")
    assert max(fill.y) <= 1.0 and "95% t-interval of the mean over 3 seeds" in fill.name


# ------------------------------------------------------------------------------ random search as the yardstick
from hpdash import comparison_plots, statistics  # noqa: E402
from hpdash.compare.repeats import NEEDS_THREE  # noqa: E402


def _rtg(k: int = 3) -> pd.DataFrame:
    """random, tpe and grid over k seeds, 4 trials each; random's seed 0 has a failed trial."""
    values = {
        "random": [[None, 0.60, 0.62, 0.70], [0.55, 0.65, 0.61, 0.66], [0.58, 0.59, 0.71, 0.64]],
        "tpe": [[0.60, 0.75, 0.80, 0.79], [0.62, 0.70, 0.83, 0.85], [0.61, 0.64, 0.69, 0.90]],
        "grid": [[0.50, 0.52, 0.68, 0.68], [0.66, 0.67, 0.60, 0.66], [0.40, 0.70, 0.72, 0.50]],
    }
    return frame(*[run(s, seed, values[s][seed]) for seed in range(k) for s in ("random", "tpe", "grid")])


def _pool(f: pd.DataFrame) -> np.ndarray:
    done = f.loc[(f["strategy"] == "random") & (f["state"] == "COMPLETE"), "value"]
    return done.to_numpy(dtype="float64")


def test_expected_best_of_random_is_the_exact_pooled_curve() -> None:
    f = _rtg()
    pool = _pool(f)
    assert pool.size == 11  # 12 random trials, one failed
    exp = compare.expected_best_data(f)
    curve = statistics.expected_best_curve(pool, "maximize")
    assert exp["n"].tolist() == [1, 2, 3, 4]  # up to the longest run's budget
    assert exp["expected_best"].tolist() == pytest.approx(curve[:4].tolist())
    assert exp["twice"].tolist() == pytest.approx([curve[1], curve[3], curve[5], curve[7]])
    assert set(exp["pooled"]) == {11}
    for n in (1, 4):  # and the single-n function agrees
        assert exp.loc[exp["n"] == n, "expected_best"].item() == pytest.approx(
            statistics.expected_best_of_random(pool, n, "maximize")
        )
    # twice the budget only while 2n <= N: a budget of 8 on 11 pooled draws stops at n = 5
    long = compare.expected_best_data(f, budget=8)
    assert long["n"].tolist() == list(range(1, 9))
    assert long["twice"].notna().tolist() == [True] * 5 + [False] * 3
    assert compare.baseline_label(11) == "random search, expected best (pooled 11 trials)"


def test_expected_best_minimizing_and_a_large_pool_agree_with_the_curve() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(40, 10))
    f = frame(*[run("random", s, list(values[s])) for s in range(40)], run("tpe", 0, [0.0] * 3))
    exp = compare.expected_best_data(f, "minimize")  # 10 of 400 draws: one call per n
    curve = statistics.expected_best_curve(values.ravel(), "minimize")
    assert exp["expected_best"].tolist() == pytest.approx(curve[:10].tolist())
    assert exp["twice"].tolist() == pytest.approx(curve[1:20:2].tolist())
    assert (np.diff(exp["expected_best"]) <= 0).all()  # the expected minimum only falls


def test_no_random_strategy_says_so_and_draws_no_baseline() -> None:
    f = frame(run("tpe", 0, [0.5, 0.6]), run("grid", 0, [0.4, 0.7]))
    a = compare.analyse(f)
    assert a.baseline is not None and not a.baseline.available
    assert a.baseline.reason == compare.expected_best_data(f).attrs["reason"]
    assert a.baseline.reason.startswith("No random search in this experiment")
    assert a.baseline.expected.empty and a.baseline.scores.empty
    c = frame(run("random", 0, [None, None]), run("tpe", 0, [0.5, 0.6]))
    assert compare.expected_best_data(c).attrs["reason"].startswith("No completed random-search trial")
    fig = plots.band_figure(a.bands_trial, a.curves_trial)
    before = len(fig.data)
    assert len(comparison_plots.with_random_baseline(fig, a.baseline.expected, "x").data) == before


def test_normalised_score_per_run_and_per_strategy_match_bayesmark() -> None:
    f = _rtg()
    a = compare.analyse(f)
    b = a.baseline
    assert b is not None and b.available and b.pooled == 11
    pool, optimum = _pool(f), 0.90  # the best value seen anywhere
    assert b.optimum == optimum
    per_run = b.runs.set_index("study")
    for study, row in per_run.iterrows():
        best = f.loc[f["study"] == study, "value"].max()
        expected = statistics.expected_best_of_random(pool, 4, "maximize")
        assert row["budget"] == 4 and row["random_expected"] == pytest.approx(expected)
        assert row["normalised"] == pytest.approx(statistics.normalised_score(best, optimum, expected, "maximize"))
    scores = b.scores.set_index("strategy")
    for strategy in ("random", "tpe", "grid"):
        mine = per_run.loc[per_run["strategy"] == strategy, "normalised"]
        assert scores.loc[strategy, "mean"] == pytest.approx(mine.mean())
        assert scores.loc[strategy, "std"] == pytest.approx(mine.std(ddof=1))
        assert scores.loc[strategy, ["runs", "scored", "budget_min", "budget_max"]].tolist() == [3, 3, 4, 4]
    assert scores.loc["tpe", "mean"] < scores.loc["grid", "mean"]  # tpe is nearer the best
    table = compare.display_table(a.summary, a.ttt_summary, normalised=b.scores).set_index("strategy")
    assert (
        table.loc["TPE", compare.NORMALISED_METHOD]
        == f"{scores.loc['tpe', 'mean']:.3f} ± {scores.loc['tpe', 'std']:.3f}"
    )
    assert compare.NORMALISED_METHOD == "normalised score (Bayesmark)"
    assert b.definition.startswith("Normalised score (Bayesmark): 0 = the best value seen in the experiment, 1 = ")
    # over budget: the score of the mean best-so-far against random's expected best at n
    curve = b.curve.loc[b.curve["strategy"] == "tpe"].set_index("n")
    means = a.bands_trial.loc[a.bands_trial["strategy"] == "tpe"].set_index("x")["mean"]
    for n in (1, 2, 3, 4):
        e = statistics.expected_best_of_random(pool, n, "maximize")
        assert curve.loc[n, "normalised"] == pytest.approx(
            statistics.normalised_score(means[n], optimum, e, "maximize")
        )
    assert curve.loc[4, "normalised"] == pytest.approx(scores.loc["tpe", "mean"])  # affine: same at the end


def test_a_run_longer_than_the_pool_has_no_normalised_score() -> None:
    f = frame(run("random", 0, [0.5, 0.6]), run("tpe", 0, [0.5, 0.6, 0.7, 0.8]))
    b = compare.analyse(f).baseline
    assert b is not None and b.expected["n"].tolist() == [1, 2]  # the pool has 2 draws
    per_run = b.runs.set_index("strategy")
    assert math.isnan(per_run.loc["tpe", "normalised"]) and per_run.loc["random", "normalised"] == pytest.approx(
        statistics.normalised_score(0.6, 0.8, statistics.expected_best_of_random([0.5, 0.6], 2, "maximize"), "maximize")
    )
    assert b.scores.set_index("strategy").loc["tpe", "scored"] == 0
    a = compare.analyse(f)
    table = compare.display_table(a.summary, a.ttt_summary, normalised=b.scores).set_index("strategy")
    assert table.loc["TPE", compare.NORMALISED_METHOD] == "-"


def test_not_comparable_studies_get_no_baseline() -> None:
    a = compare.analyse(_rtg(), differences=["metric: accuracy vs f1"])
    assert a.baseline is not None and not a.baseline.available and a.baseline.reason.startswith("Not comparable")
    assert a.repeats is not None and not a.repeats.available and a.repeats.friedman is None
    assert a.repeats.reason.startswith("Not comparable: metric: accuracy vs f1.")
    assert compare.repeats_figures(a) == {}


# ------------------------------------------------------------------------------ across repeats
def _best_at(f: pd.DataFrame, n: int) -> pd.DataFrame:
    """seeds x strategies: each run's best COMPLETE value among its first n trials (NaN: none)."""
    head = f.sort_values("number").groupby("study").head(n)
    done = head.loc[head["state"] == "COMPLETE"]
    best = done.groupby(["seed", "strategy"])["value"].max().unstack()
    return best.reindex(index=sorted(f["seed"].unique()), columns=list(pd.unique(f["strategy"])))


def test_average_rank_over_budget_is_friedman_nemenyi_average_ranks() -> None:
    f = _rtg()
    a = compare.analyse(f)
    assert a.repeats is not None and a.repeats.available
    ranks = a.repeats.average_ranks
    assert list(ranks.columns) == ["strategy", "trial", "average_rank", "blocks"] and set(ranks["blocks"]) == {3}
    for n in (2, 3, 4):
        matrix = _best_at(f, n)
        expected = statistics.friedman_nemenyi(matrix.to_numpy(), "maximize").average_ranks
        got = ranks.loc[ranks["trial"] == n].set_index("strategy").reindex(matrix.columns)["average_rank"]
        assert got.tolist() == pytest.approx(list(expected))
    # trial 1: random's seed 0 has no completed trial yet and ranks last in its seed
    first = ranks.loc[ranks["trial"] == 1].set_index("strategy")["average_rank"]
    m = _best_at(f, 1)
    seed0 = stats.rankdata([-m.loc[0, "tpe"], -m.loc[0, "grid"]])  # tpe 0.60 vs grid 0.50
    rest = statistics.friedman_nemenyi(m.loc[[1, 2]].to_numpy(), "maximize").average_ranks
    assert first["random"] == pytest.approx((3 + rest[0] * 2) / 3)
    assert first["tpe"] == pytest.approx((seed0[0] + rest[1] * 2) / 3)
    assert ranks.groupby("trial")["average_rank"].sum().tolist() == pytest.approx([6.0] * 4)  # 1 + 2 + 3


def test_average_rank_minimizing_and_duplicates_refused() -> None:
    f = frame(run("tpe", 0, [3.0, 1.0]), run("gp", 0, [2.0, 2.0]), run("tpe", 1, [1.0]), run("gp", 1, [0.5]))
    ranks = compare.average_rank_data(compare.curves(f, "trial", "minimize"), "minimize").set_index(
        ["trial", "strategy"]
    )
    assert ranks.loc[(1, "gp"), "average_rank"] == 1.0 and ranks.loc[(1, "tpe"), "average_rank"] == 2.0
    # trial 2: seed 0 has tpe 1 < gp 2, seed 1 keeps gp 0.5 < tpe 1 (a finished run keeps its best)
    assert ranks.loc[(2, "gp"), "average_rank"] == 1.5 and ranks.loc[(2, "tpe"), "average_rank"] == 1.5
    twice = frame(run("tpe", 0, [1.0]), [dict(r, study="other") for r in run("tpe", 0, [2.0])], run("gp", 0, [1.0]))
    with pytest.raises(ValueError):
        compare.average_rank_data(compare.curves(twice, "trial"))


def test_critical_difference_is_friedman_nemenyi_with_named_groups() -> None:
    rng = np.random.default_rng(4)
    shift = {"tpe": 0.3, "gp": 0.25, "random": 0.0, "grid": -0.3}
    f = frame(*[run(s, k, list(rng.normal(shift[s], 0.05, size=3))) for k in range(8) for s in shift])
    a = compare.analyse(f)
    assert a.repeats is not None and a.repeats.friedman is not None
    cd = a.repeats.friedman
    matrix = compare.final_runs(f).pivot(index="seed", columns="strategy", values="best")[list(shift)].to_numpy()
    res = statistics.friedman_nemenyi(matrix, "maximize", compare.ALPHA)
    assert cd.strategies == tuple(shift) and cd.average_ranks == pytest.approx(res.average_ranks)
    assert (cd.statistic, cd.p_value, cd.critical_difference) == pytest.approx(
        (res.statistic, res.p_value, res.critical_difference)
    )
    groups = statistics.cd_groups(res.average_ranks, res.critical_difference)
    assert [list(g) for g in cd.groups] == [[list(shift)[i] for i in g] for g in groups]
    assert cd.method == res.method and cd.name == "Friedman test, Nemenyi post-hoc (Demšar 2006)"
    assert cd.blocks == 8 and cd.note is None and cd.p_value < 0.05
    assert cd.bars == [list(g) for g in cd.groups if len(g) > 1]
    assert "Friedman test, Nemenyi post-hoc (Demšar 2006): χ² = " in cd.text and "critical difference" in cd.text
    assert cd.frame["strategy"].tolist()[0] == "tpe"  # best average rank first


def test_critical_difference_of_two_strategies_gives_ranks_only() -> None:
    f = frame(*[run(s, k, [0.5 + (0.1 if s == "tpe" else 0.0) + k / 100]) for k in range(4) for s in ("tpe", "random")])
    cd = compare.critical_difference(compare.final_runs(f))
    assert cd.average_ranks == (1.0, 2.0) and cd.groups == () and cd.bars == []
    assert math.isnan(cd.statistic) and math.isnan(cd.p_value) and math.isnan(cd.critical_difference)
    assert cd.note == NEEDS_THREE
    assert "needs at least three strategies" in cd.text and "χ²" not in cd.text


def test_a_run_without_a_completed_trial_ranks_last_in_the_critical_difference() -> None:
    f = frame(*[run(s, k, [0.5 + k / 10 + (0.2 if s == "gp" else 0)]) for k in range(3) for s in ("tpe", "gp", "grid")])
    f.loc[(f["study"] == "exp-gp-s0"), ["state", "value"]] = ["FAIL", math.nan]
    strategies, matrix = compare.final_matrix(compare.final_runs(f))
    assert strategies == ["tpe", "gp", "grid"]
    assert matrix[0, 1] < matrix[0, [0, 2]].min() and np.isfinite(matrix).all()
    cd = compare.critical_difference(compare.final_runs(f))
    assert cd.average_ranks == pytest.approx(statistics.friedman_nemenyi(matrix, "maximize").average_ranks)


def test_runtime_ecdf_matches_coco_ecdf() -> None:
    f = frame(
        run("tpe", 0, [0.1, 0.95], elapsed=[1.0, 2.0]),
        run("tpe", 1, [0.96], elapsed=[0.5]),
        run("random", 0, [0.1, 0.2, 0.3], elapsed=[1.0, 2.0, 9.0]),
        run("random", 1, [0.2, 0.95], elapsed=[1.0, 7.0]),
    )
    a = compare.analyse(f, target=0.95)
    assert a.repeats is not None and a.repeats.available and a.repeats.target == 0.95
    ecdf = a.repeats.ecdf
    grid = [0.0, 0.5, 2.0, 7.0, 9.0]  # 0, every time a run reached it, the longest run
    for strategy, seconds in (("tpe", [2.0, 0.5]), ("random", [None, 7.0])):
        got = ecdf.loc[ecdf["strategy"] == strategy]
        assert got["seconds"].tolist() == grid
        assert got["fraction"].tolist() == pytest.approx(statistics.ecdf_of_runtime_to_target(seconds, grid).tolist())
    assert ecdf.loc[ecdf["strategy"] == "random", ["runs", "reached"]].drop_duplicates().values.tolist() == [[2, 1]]
    assert ecdf.loc[ecdf["strategy"] == "random", "fraction"].iloc[-1] == 0.5  # one run never got there


def test_repeats_need_complete_blocks() -> None:
    f = frame(run("tpe", 0, [0.5]), run("random", 0, [0.4]), run("tpe", 1, [0.6]))
    a = compare.analyse(f)
    assert a.repeats is not None and not a.repeats.available
    assert a.repeats.reason == (
        "No average rank over budget, critical-difference diagram or runtime-to-target ECDF: "
        "ranks within a seed need every seed to hold one run of each strategy, and seed 1 holds only TPE."
    )
    assert a.repeats.average_ranks.empty and a.repeats.ecdf.empty and compare.repeats_figures(a) == {}
    one = compare.analyse(frame(run("tpe", 0, [0.5]), run("tpe", 1, [0.6])))
    assert one.repeats is not None and "one strategy" in str(one.repeats.reason)


def test_repeats_figures_name_their_methods() -> None:
    a = compare.analyse(_rtg())
    figures = compare.repeats_figures(a)
    assert list(figures) == ["average_rank", "critical_difference", "runtime_ecdf"]
    assert figures["critical_difference"].layout.title.text.endswith("(Friedman test, Nemenyi post-hoc (Demšar 2006))")
    assert "Friedman p = " in figures["critical_difference"].layout.title.subtitle.text
    assert figures["runtime_ecdf"].layout.title.text == "ECDF of runtime to target (COCO)"
    assert comparison_plots.EXPECTED_BEST_NAME == compare.EXPECTED_BEST_METHOD
