"""Random search as the yardstick: its expected best at every budget, computed exactly from the
experiment's pooled random-search trials, and each strategy's normalised score (Bayesmark).

- **Pool.** Every finite COMPLETE value of the experiment's ``random`` studies, all seeds
  together: N draws of random search on this problem.
- **Expected best at budget n** (``statistics.expected_best_of_random``): the expected best of n
  draws without replacement from the pool, for n = 1..min(budget, N), where the budget is the
  longest run's finished trials (the x axis of the convergence figure). **At twice the budget**:
  the expected best of 2n draws, drawn at n while 2n <= N (Li et al., Hyperband: Bayesian methods
  often fail to beat random search run twice as long). The draws are COMPLETE trials; the
  convergence figure's axis counts finished trials (a pruned or failed trial uses budget too).
- **Normalised score** (``statistics.normalised_score``): per run,
  (best - optimum) / (E[best of n random] - optimum) with optimum the best value seen in the
  experiment (every strategy) and n the run's own finished trials; 0 = that best, 1 = random
  search's expected best at the run's budget, below 1 beats it. Per strategy: mean (± std) over
  its runs. A run longer than the pool (n > N) has no score.
- Not comparable studies (``differences``) get no baseline: their random trials do not draw from
  one problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpdash import comparison_plots, statistics
from hpdash.compare.curves import _strategy_order
from hpdash.compare.words import FINISHED

RANDOM = "random"
EXPECTED_BEST_METHOD = comparison_plots.EXPECTED_BEST_NAME
NORMALISED_METHOD = "normalised score (Bayesmark)"
NORMALISED_DEFINITION = (
    "Normalised score (Bayesmark): 0 = the best value seen in the experiment, 1 = random search's expected best "
    "at the run's budget (expected best of n random draws without replacement from the pooled random-search "
    "trials); below 1 beats random search, above 1 does worse. Mean ± std over the strategy's runs."
)
TWICE_LABEL = comparison_plots.TWICE_NAME
NO_RANDOM = "No random search in this experiment: no random-search baseline and no normalised score."
NO_RANDOM_TRIAL = "No completed random-search trial yet: no random-search baseline and no normalised score."

EXPECTED_COLUMNS = ["n", "expected_best", "twice", "pooled"]
RUN_COLUMNS = ["study", "strategy", "seed", "best", "budget", "random_expected", "normalised"]
SCORE_COLUMNS = ["strategy", "runs", "scored", "mean", "std", "budget_min", "budget_max"]
CURVE_COLUMNS = ["strategy", "n", "mean_best", "random_expected", "normalised"]


def baseline_label(pooled: int) -> str:
    """The legend of the expected-best line: "random search, expected best (pooled 30 trials)"."""
    return f"random search, expected best (pooled {pooled} trials)"


def random_pool(frame: pd.DataFrame) -> np.ndarray:
    """Every finite COMPLETE value of the frame's ``random`` studies, pooled (frame order)."""
    if frame.empty or "strategy" not in frame.columns:
        return np.zeros(0)
    rows = frame.loc[(frame["strategy"] == RANDOM) & (frame["state"] == "COMPLETE"), "value"]
    values = rows.to_numpy(dtype="float64")
    return values[np.isfinite(values)]


def longest_budget(frame: pd.DataFrame) -> int:
    """The most finished trials (COMPLETE, PRUNED, FAIL) of any run: the trial axis's end."""
    done = frame.loc[frame["state"].isin(FINISHED)] if not frame.empty else frame
    return int(done.groupby("study").size().max()) if not done.empty else 0


def _expected_bests(values: np.ndarray, m: int, direction: str) -> np.ndarray:
    """``expected_best_of_random`` for n = 1..m: the whole curve when m is a good part of the pool,
    else one call per n (each call sorts the pool; the whole curve costs O(N) per n)."""
    if m * 10 < values.size:
        return np.array([statistics.expected_best_of_random(values, n, direction) for n in range(1, m + 1)])
    return statistics.expected_best_curve(values, direction)[:m]


def _empty(columns: Sequence[str], reason: str | None = None) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    if reason:
        out.attrs["reason"] = reason
    return out


def expected_best_data(frame: pd.DataFrame, direction: str = "maximize", budget: int | None = None) -> pd.DataFrame:
    """Random search's expected best at every budget, from the pooled random-search trials.

    Columns: n (1..min(budget, N)), expected_best (``statistics.expected_best_of_random`` of the
    pool at n), twice (the same at 2n while 2n <= N, else NaN), pooled (N). ``budget`` defaults to
    ``longest_budget(frame)``. Empty, with ``attrs["reason"]``, without a random strategy
    (``NO_RANDOM``) or a completed random trial (``NO_RANDOM_TRIAL``).
    """
    if frame.empty or RANDOM not in set(frame["strategy"]):
        return _empty(EXPECTED_COLUMNS, NO_RANDOM)
    pool = random_pool(frame)
    if pool.size == 0:
        return _empty(EXPECTED_COLUMNS, NO_RANDOM_TRIAL)
    horizon = longest_budget(frame) if budget is None else int(budget)
    shown = max(1, min(horizon, pool.size))
    values = _expected_bests(pool, min(pool.size, 2 * shown), direction)
    n = np.arange(1, shown + 1)
    twice = np.full(shown, math.nan)
    fits = 2 * n <= pool.size
    twice[fits] = values[2 * n[fits] - 1]
    return pd.DataFrame(
        {"n": n.astype("int64"), "expected_best": values[:shown], "twice": twice, "pooled": int(pool.size)}
    )


def experiment_best(frame: pd.DataFrame, direction: str = "maximize") -> float:
    """The best finite COMPLETE value seen in the experiment (NaN without one)."""
    values = frame.loc[frame["state"] == "COMPLETE", "value"].to_numpy(dtype="float64") if not frame.empty else []
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(values.max() if direction == "maximize" else values.min())


def _random_at(expected: pd.DataFrame, n: int, pool: np.ndarray, direction: str) -> float:
    """E[best of n random draws]: from ``expected`` when it has n, else computed (NaN past the pool)."""
    if n < 1 or n > pool.size:
        return math.nan
    hit = expected.loc[expected["n"] == n, "expected_best"]
    return float(hit.iloc[0]) if not hit.empty else statistics.expected_best_of_random(pool, n, direction)


def normalised_runs(
    frame: pd.DataFrame, runs: pd.DataFrame, expected: pd.DataFrame, direction: str = "maximize"
) -> pd.DataFrame:
    """Each run's normalised score at its final budget (``RUN_COLUMNS``).

    ``runs``: ``final_runs`` (best = the run's best COMPLETE value). budget: the run's finished
    trials; random_expected: random search's expected best at that budget (NaN past the pool);
    normalised: ``statistics.normalised_score(best, experiment_best, random_expected)``.
    """
    if expected.empty or runs.empty:
        return _empty(RUN_COLUMNS).astype({"study": "object", "strategy": "object"})
    pool = random_pool(frame)
    optimum = experiment_best(frame, direction)
    done = frame.loc[frame["state"].isin(FINISHED)].groupby("study").size()
    rows = []
    for run in runs.itertuples(index=False):
        budget = int(done.get(run.study, 0))
        random_expected = _random_at(expected, budget, pool, direction)
        score = (
            statistics.normalised_score(float(run.best), optimum, random_expected, direction)
            if math.isfinite(random_expected) and math.isfinite(float(run.best))
            else math.nan
        )
        rows.append(
            {
                "study": run.study,
                "strategy": run.strategy,
                "seed": run.seed,
                "best": float(run.best),
                "budget": budget,
                "random_expected": random_expected,
                "normalised": float(score),
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def normalised_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per strategy (``SCORE_COLUMNS``): runs, scored (runs with a score), mean and std (ddof 1)
    of the normalised scores, the smallest and largest budget."""
    rows = []
    for strategy in _strategy_order(per_run):
        g = per_run.loc[per_run["strategy"] == strategy]
        scores = g["normalised"].dropna()
        rows.append(
            {
                "strategy": strategy,
                "runs": len(g),
                "scored": len(scores),
                "mean": float(scores.mean()) if len(scores) else math.nan,
                "std": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan,
                "budget_min": int(g["budget"].min()),
                "budget_max": int(g["budget"].max()),
            }
        )
    if not rows:
        return _empty(SCORE_COLUMNS).astype({"strategy": "object"})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def normalised_curve(
    bands_trial: pd.DataFrame, expected: pd.DataFrame, optimum: float, direction: str = "maximize"
) -> pd.DataFrame:
    """The normalised score over budget (``CURVE_COLUMNS``): per strategy and trial count n, the
    normalised score of the mean best-so-far over its runs (``bands``' mean; the score is affine
    in the best, so this is the mean of the runs' scores) against random search's expected best
    at n, for the n the expected-best curve covers."""
    if expected.empty or bands_trial.empty or not math.isfinite(optimum):
        return _empty(CURVE_COLUMNS).astype({"strategy": "object"})
    merged = bands_trial[["strategy", "x", "mean"]].merge(
        expected[["n", "expected_best"]], left_on="x", right_on="n", how="inner"
    )
    scores = statistics.normalised_score(
        merged["mean"].to_numpy(dtype="float64"), optimum, merged["expected_best"].to_numpy(dtype="float64"), direction
    )
    return pd.DataFrame(
        {
            "strategy": merged["strategy"],
            "n": merged["n"].astype("int64"),
            "mean_best": merged["mean"],
            "random_expected": merged["expected_best"],
            "normalised": np.asarray(scores, dtype="float64"),
        },
        columns=CURVE_COLUMNS,
    )


@dataclass(frozen=True)
class Baseline:
    """Random search's expected best (``expected``), the normalised scores per run (``runs``),
    per strategy (``scores``) and over budget (``curve``); ``reason`` says why they are empty."""

    expected: pd.DataFrame
    runs: pd.DataFrame
    scores: pd.DataFrame
    curve: pd.DataFrame
    optimum: float = math.nan
    pooled: int = 0
    reason: str | None = None
    method: str = EXPECTED_BEST_METHOD
    score_method: str = NORMALISED_METHOD
    definition: str = NORMALISED_DEFINITION

    @property
    def available(self) -> bool:
        return self.reason is None and not self.expected.empty

    @property
    def label(self) -> str:
        """The expected-best line's legend (empty without a pool)."""
        return baseline_label(self.pooled) if self.pooled else ""


def random_baseline(
    frame: pd.DataFrame,
    runs: pd.DataFrame,
    bands_trial: pd.DataFrame,
    direction: str = "maximize",
    differences: Sequence[str] = (),
) -> Baseline:
    """The random-search baseline and the normalised scores of an experiment (see the module
    docstring); empty, with the reason, when the studies are not comparable or there is no
    random search."""
    if differences:
        expected = _empty(EXPECTED_COLUMNS, "Not comparable: no random-search baseline and no normalised score.")
    else:
        expected = expected_best_data(frame, direction)
    optimum = experiment_best(frame, direction)
    per_run = normalised_runs(frame, runs, expected, direction)
    return Baseline(
        expected=expected,
        runs=per_run,
        scores=normalised_summary(per_run),
        curve=normalised_curve(bands_trial, expected, optimum, direction),
        optimum=optimum,
        pooled=int(expected["pooled"].iloc[0]) if not expected.empty else 0,
        reason=expected.attrs.get("reason"),
    )
