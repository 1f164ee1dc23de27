"""The tie set of a study's configurations (hpdash/ties.py), against computations written out here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from scipy import stats
from sklearn.model_selection import StratifiedKFold, train_test_split

from hpdash import datasets, results, runner, ties
from hpdash.spec import parse_spec

FOLDS = 7
TEST_SIZE = 0.2
SEED = 3
MISSING_TARGETS = [0, 57, 101, 140]  # rows whose target is blanked in the stored CSV


def _iris_with_missing_targets() -> pd.DataFrame:
    frame = datasets.load_sample("iris").copy()
    frame["target"] = frame["target"].astype("object")
    frame.loc[MISSING_TARGETS, "target"] = None
    return frame


@pytest.fixture(scope="module")
def real_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished logistic-regression study (log loss, C on a log scale) on a stored iris CSV
    with 4 missing targets: 7-fold CV, 12 random trials, run in this process (``run_here``)."""
    path = tmp_path_factory.mktemp("ties") / "data"
    path.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPDASH_DATA_DIR", str(path))
        mp.delenv("HPDASH_STORAGE", raising=False)
        stored = datasets.store_dataset(_iris_with_missing_targets().to_csv(index=False).encode(), "flowers.csv")
        spec = parse_spec(
            {
                "name": "flowers-tree",
                "dataset": stored.sha256,
                "target": "target",
                "model": "logistic_regression",
                "metric": "neg_log_loss",  # continuous: trials rarely share their fold scores
                "strategy": "random",
                "n_trials": 12,
                "cv": {"folds": FOLDS},
                "test_size": TEST_SIZE,
                "seed": SEED,
                "space": {
                    "C": {"type": "float", "low": 0.001, "high": 100.0, "log": True},
                },
            }
        )
        plan = runner.plan_study(spec)
        runner.create_study(spec, plan=plan)
        assert runner.run_here(spec.name, problem=plan.problem()) == 12
    return path, spec.name


@pytest.fixture
def study(real_study, monkeypatch: pytest.MonkeyPatch) -> optuna.Study:
    path, name = real_study
    monkeypatch.setenv("HPDASH_DATA_DIR", str(path))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    return runner.load_study(name)


# ------------------------------------------------------------------ the statistics written out
def _p_lead(best: np.ndarray, other: np.ndarray, n_train: int, n_test: int, rope: float) -> float:
    """Nadeau & Bengio's corrected resampled t-test, one-sided: H0 "best - other <= rope"."""
    d = best - other
    k = len(d)
    mean = float(np.mean(d))
    if np.all(d == d[0]):  # no variance: the lead is certain
        return 0.0 if mean - rope > 0 else 1.0
    se = math.sqrt((1.0 / k + n_test / n_train) * float(np.var(d, ddof=1)))
    return float(stats.t.sf((mean - rope) / se, k - 1))


def _expected(
    scores: dict[int, list[float]], n_train: int, n_test: int, direction: str, rope: float, alpha: float
) -> dict[int, float]:
    """number -> p of "the best leads it by more than rope", for the tied trials (the best: NaN)."""
    s = 1.0 if direction == "maximize" else -1.0
    oriented = {n: s * np.array(v) for n, v in scores.items()}
    best = sorted(oriented, key=lambda n: (-float(np.mean(oriented[n])), n))[0]
    out = {best: math.nan}
    for n, v in oriented.items():
        if n != best:
            p = _p_lead(oriented[best], v, n_train, n_test, rope)
            if p >= alpha:
                out[n] = p
    return out


def _fold_scores(study: optuna.Study) -> dict[int, list[float]]:
    return {t.number: t.user_attrs["fold_scores"] for t in study.get_trials(states=(TrialState.COMPLETE,))}


# ------------------------------------------------------------------ a real study
def test_fold_sizes_are_the_real_split_sizes(study) -> None:
    """Rows after preparation (missing targets dropped), minus the stratified holdout, cut by
    the shuffled StratifiedKFold of the study's split seed: n_test is the smallest test fold."""
    raw = _iris_with_missing_targets()
    kept = raw[raw["target"].notna()]
    X, y = kept.drop(columns="target"), kept["target"].astype(str)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=TEST_SIZE, random_state=SEED, stratify=y)
    tests = [len(test) for _, test in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(X_train, y_train)]
    assert len(y_train) == 116 and sorted(tests) == [16, 16, 16, 17, 17, 17, 17]  # 146 rows, 30 held out
    assert ties.fold_sizes(study) == (len(y_train) - min(tests), min(tests)) == (100, 16)
    # the same splits as the workers': every trial has FOLDS scores
    assert {len(v) for v in _fold_scores(study).values()} == {FOLDS}


@pytest.mark.parametrize(("rope", "alpha"), [(0.01, 0.05), (0.0, 0.05), (0.05, 0.2)])
def test_tie_set_of_a_real_study_equals_the_written_out_test(study, rope: float, alpha: float) -> None:
    n_train, n_test = ties.fold_sizes(study)
    frame = results.trials_frame(study)
    got = ties.study_ties(frame, n_train, n_test, "maximize", rope=rope, alpha=alpha, n_splits=FOLDS)
    scores = _fold_scores(study)
    expected = _expected(scores, n_train, n_test, "maximize", rope, alpha)
    assert got.unavailable is None and got.n_eligible == got.n_tested == len(scores) == 12 and got.n_skipped == 0
    assert [t.number for t in got.tied][0] == next(iter(expected))
    assert {t.number: t.p_value for t in got.tied} == pytest.approx(expected, nan_ok=True)
    # best first, then by CV mean; the mean is the trial's value
    means = [t.cv_mean for t in got.tied]
    assert means == sorted(means, reverse=True)
    values = dict(zip(frame["number"], frame["value"]))
    for t in got.tied:
        assert t.cv_mean == pytest.approx(values[t.number])
        assert t.difference == pytest.approx(t.cv_mean - got.tied[0].cv_mean)
    assert (
        f"rope {rope:g}" in got.method and "Nadeau & Bengio" in got.method and f"{FOLDS} shared CV splits" in got.method
    )


def test_the_real_study_has_trials_in_and_out_of_the_tie_set(study) -> None:
    """The study above is a real test of the rule: some trials are tied, some are not."""
    n_train, n_test = ties.fold_sizes(study)
    got = ties.study_ties(results.trials_frame(study), n_train, n_test, "maximize")
    assert 2 <= len(got.tied) < 12


def test_the_recommendation_is_the_cheapest_tied_trial(study) -> None:
    n_train, n_test = ties.fold_sizes(study)
    got = ties.study_ties(results.trials_frame(study), n_train, n_test, "maximize")
    fit = {t.number: t.user_attrs["fit_time"] for t in study.get_trials(states=(TrialState.COMPLETE,))}
    tied = [t.number for t in got.tied]
    cheapest = min(tied, key=lambda n: (fit[n], -got.tied[tied.index(n)].cv_mean, n))
    assert got.recommended is not None and got.recommended.number == cheapest
    assert got.recommended.fit_time == pytest.approx(fit[cheapest])
    assert got.reason == (
        f"cheapest to fit among the {len(tied)} configurations tied with the best "
        "(within rope=0.01, corrected resampled t-test, alpha=0.05)"
    )
    best = study.best_trial
    assert got.tied[0].number == best.number and got.tied[0].params == best.params

    table = ties.ties_table(got)
    assert list(table.columns) == ties.TABLE_COLUMNS
    assert table["trial"].tolist() == tied and table["recommended"].sum() == 1
    assert table.loc[table["recommended"], "trial"].item() == cheapest
    assert math.isnan(table["p-value"].iloc[0]) and (table["p-value"].iloc[1:] >= 0.05).all()
    shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(best.params.items()))
    assert table["params"].iloc[0] == shown == f"C={best.params['C']:.6g}"


# ------------------------------------------------------------------ built studies
def _built_study(tmp_path: Path, trials: list[dict], direction: str = "maximize") -> optuna.Study:
    """A real Optuna study in SQLite with the given trials (state, value, user attrs, param x)."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'built.db'}", direction=direction)
    for i, t in enumerate(trials):
        state = t.get("state", TrialState.COMPLETE)
        study.add_trial(
            create_trial(
                state=state,
                value=t.get("value") if state == TrialState.COMPLETE else None,
                params={"x": float(i)},
                distributions={"x": FloatDistribution(0.0, 1000.0)},
                user_attrs=t.get("attrs", {}),
            )
        )
    return study


def _trial(scores: list[float], fit: float | None = 1.0) -> dict:
    attrs: dict = {"fold_scores": scores}
    if fit is not None:
        attrs["fit_time"] = fit
    return {"value": float(np.mean(scores)), "attrs": attrs}


def _random_trials(n: int, k: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    level = rng.normal(0.8, 0.02, n)
    return [_trial(list(level[i] + rng.normal(0, 0.01, k)), fit=float(rng.uniform(0.1, 2.0))) for i in range(n)]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_direction_minimize_is_the_mirror_of_maximize(tmp_path, direction: str) -> None:
    """A loss study (smaller is better) against the written-out test on its own scores, and the
    same configurations as the maximized negated scores."""
    trials = _random_trials(25, 6, seed=4)
    if direction == "minimize":
        trials = [_trial([-s for s in t["attrs"]["fold_scores"]], t["attrs"]["fit_time"]) for t in trials]
    study = _built_study(tmp_path, trials, direction=direction)
    frame = results.trials_frame(study)
    got = ties.study_ties(frame, 400, 80, direction, rope=0.01)
    scores = {int(n): list(v) for n, v in zip(frame["number"], frame["fold_scores"])}
    expected = _expected(scores, 400, 80, direction, 0.01, 0.05)
    assert {t.number: t.p_value for t in got.tied} == pytest.approx(expected, nan_ok=True)
    assert got.tied[0].number == frame.loc[frame["is_best"], "number"].item()
    assert all((t.difference <= 0) if direction == "maximize" else (t.difference >= 0) for t in got.tied)
    assert 1 < len(got.tied) < 25
    mirrored = ties.study_ties(
        frame.assign(fold_scores=[[-s for s in v] for v in frame["fold_scores"]]), 400, 80, _other(direction)
    )
    assert [t.number for t in mirrored.tied] == [t.number for t in got.tied]
    assert mirrored.recommended is not None and got.recommended is not None
    assert mirrored.recommended.number == got.recommended.number


def _other(direction: str) -> str:
    return "minimize" if direction == "maximize" else "maximize"


def test_trials_without_full_fold_scores_are_skipped_and_counted(tmp_path) -> None:
    base = [0.80, 0.82, 0.79, 0.85, 0.81]
    trials = [
        _trial(base, fit=2.0),  # 0: the best
        _trial([s - 0.002 for s in base[::-1]], fit=0.5),  # 1: tied, cheaper
        _trial([s - 0.2 for s in base], fit=0.1),  # 2: far worse, cheapest
        {"value": 0.99, "attrs": {"fit_time": 0.01}},  # 3: no fold scores
        _trial([0.99, 0.99], fit=0.01),  # 4: too few (its mean would be the best)
        {"value": 0.9, "attrs": {"fold_scores": [0.9, float("nan"), 0.9, 0.9, 0.9], "fit_time": 0.01}},  # 5: NaN
        {"state": TrialState.FAIL, "attrs": {"fail_reason": "boom"}},  # 6: not COMPLETE: not counted
        {"state": TrialState.PRUNED, "attrs": {"fold_scores": [0.99]}},  # 7: not COMPLETE
    ]
    frame = results.trials_frame(_built_study(tmp_path, trials))
    got = ties.study_ties(frame, 80, 20, "maximize", n_splits=5)
    assert (got.n_eligible, got.n_skipped, got.n_tested) == (3, 3, 3)
    assert [t.number for t in got.tied] == [0, 1]
    assert got.recommended is not None and got.recommended.number == 1
    assert got.note == "3 completed trial(s) skipped: no finite fold score for each of the 5 splits."
    # without n_splits the best trial's length is the reference: the 2-fold trial 4 is the best
    # of all finite fold scores, alone with its length: no tie set, and the others are skipped
    alone = ties.study_ties(frame, 80, 20, "maximize")
    assert alone.unavailable is not None and alone.recommended is None and not alone.tied
    assert (alone.n_splits, alone.n_eligible, alone.n_skipped) == (2, 1, 5)
    assert "at least two completed trials" in alone.unavailable and "there is 1" in alone.unavailable


def test_a_single_fold_or_a_single_trial_gives_no_tie_set(tmp_path) -> None:
    single = results.trials_frame(_built_study(tmp_path, [_trial([0.8]), _trial([0.7])]))
    got = ties.study_ties(single, 80, 20, "maximize")
    assert got.unavailable is not None and "single CV split" in got.unavailable and got.n_splits == 1
    one = ties.study_ties(single.iloc[:0], 80, 20, "maximize")
    assert one.unavailable is not None and "there are 0" in one.unavailable


def test_missing_fit_times_are_recommended_last(tmp_path) -> None:
    base = [0.80, 0.82, 0.79, 0.85, 0.81]
    trials = [_trial(base, fit=None), _trial([s - 0.001 for s in base], fit=3.0), _trial(base, fit=None)]
    frame = results.trials_frame(_built_study(tmp_path, trials))
    got = ties.study_ties(frame, 80, 20, "maximize")
    assert [t.number for t in got.tied] == [0, 2, 1]  # equal means: lower number first
    assert got.recommended is not None and got.recommended.number == 1
    none = ties.study_ties(frame[frame["number"] != 1], 80, 20, "maximize")
    assert none.recommended is not None and none.recommended.number == 0 and "no fit time" in none.reason


def test_only_the_best_max_trials_are_tested_and_the_result_says_so(tmp_path) -> None:
    frame = results.trials_frame(_built_study(tmp_path, _random_trials(40, 5, seed=1)))
    full = ties.study_ties(frame, 400, 100, "maximize")
    cut = ties.study_ties(frame, 400, 100, "maximize", max_trials=10)
    top = frame.sort_values(["value", "number"], ascending=[False, True])["number"].head(10).tolist()
    assert (cut.n_eligible, cut.n_tested, full.n_tested) == (40, 10, 40)
    assert {t.number for t in cut.tied} == {t.number for t in full.tied} & set(top)
    assert cut.note is not None and "Only the 10 best of 40" in cut.note and full.note is None


def test_ten_thousand_trials_stay_fast() -> None:
    """A 10,000-trial frame: the 200 best are tested (about 400 corrected t-tests at most)."""
    import time

    rng = np.random.default_rng(0)
    n = 10_000
    level = rng.normal(0.9, 0.02, n)
    frame = pd.DataFrame(
        {
            "number": np.arange(n),
            "state": "COMPLETE",
            "value": level,
            "fit_time": rng.uniform(0.01, 1.0, n),
            "fold_scores": pd.Series([list(v + rng.normal(0, 0.01, 5)) for v in level], dtype="object"),
            "params_a": rng.uniform(size=n),
        }
    )
    start = time.perf_counter()
    got = ties.study_ties(frame, 800, 200, "maximize")
    assert time.perf_counter() - start < 3.0
    assert got.n_tested == ties.MAX_TRIALS and got.n_eligible == n and got.note is not None


def test_bad_arguments_are_refused() -> None:
    frame = pd.DataFrame({"number": [], "state": [], "fold_scores": [], "fit_time": []})
    for kwargs in ({"rope": -0.1}, {"alpha": 0.0}, {"max_trials": 1}):
        with pytest.raises(ValueError):
            ties.study_ties(frame, 80, 20, "maximize", **kwargs)
    with pytest.raises(ValueError, match="direction"):
        ties.study_ties(frame, 80, 20, "down")
