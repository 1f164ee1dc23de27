"""Comparison statistics for an experiment (or a hand-picked set of comparable studies).

Everything is computed from one tidy **experiment frame**: the ``hpdash.results.trials_frame``
of every study stacked, with three more columns ``study``, ``strategy`` and ``seed``. The
functions below are plain pandas/scipy on that frame, so they are tested with hand-made frames
whose right answers are known (tests/test_compare.py).

Definitions (what the page, the CLI and the report show):

- **Trial axis.** ``trial`` is the 1-based position of a finished trial (COMPLETE, PRUNED or
  FAIL) in trial-number order: the part of the budget spent so far. ``best`` is the running
  best over COMPLETE values; it is NaN until the first COMPLETE trial.
- **Time axis.** ``elapsed_s`` is seconds from the study's first trial start to this trial's
  completion (``trials_frame``). On the time axis the running best is taken in completion
  order, because parallel workers finish out of number order.
- **Bands.** Curves are put on a common x grid (every trial count 1..max; for time 101 evenly
  spaced points from 0 to the longest run) as step functions: at x a run's value is its best
  at the last point <= x, and a run that ended stays at its final best (a grid smaller than
  the budget, or a shorter run, keeps its best). A run with no COMPLETE trial yet at x is left
  out at x, so ``n`` can be smaller than the number of runs early on. The band is a
  two-sided Student-t confidence interval of the mean across runs:
  ``mean ± t(1 - (1 - level) / 2, n - 1) · sd / √n`` with the sample sd (ddof = 1); with a
  single run there is no interval (``lo``/``hi`` are NaN). Or (``method="bootstrap"``) the
  percentile bootstrap interval of the mean (``BOOTSTRAP_RESAMPLES`` resamples of the runs,
  seeded). Either band is clipped to the metric's range (``metric_range``: accuracy, F1,
  ROC AUC ... in [0, 1], R² at most 1, ``neg_*`` at most 0), and every figure and table that
  shows one names it: "95% t-interval of the mean over 5 seeds" (``plots.band_name``).
- **Target.** Default: "within 1% of the best score seen in the experiment":
  ``best - 0.01·|best|`` when maximizing (``best + 0.01·|best|`` when minimizing). For a
  positive score such as accuracy 0.97 that is 99% of it (0.9603); for a negative score such
  as ``neg_root_mean_squared_error`` = -50 it is -50.5, i.e. an RMSE within 1% of the best
  RMSE (plain 99% of -50 would be -49.5, *better* than the best, so nobody would reach it).
  With a best of exactly 0 the target is 0.
- **Time to target.** Per run: the trials (``trial`` as above) and seconds (``elapsed_s``)
  until the first COMPLETE value at or beyond the target. A run that never gets there is
  "not reached" (NaN trials and seconds). The per-strategy mean and std are over the runs
  that reached it, shown with the share that did.
- **Comparable.** Studies are compared only when they differ in nothing but strategy and seed
  (``differences``: dataset SHA-256, target, task, metric and its direction, search space,
  CV folds and repeats, test size, budget, pruner, positive class, kept columns, trial time
  limit). Otherwise the figures still draw, under a "Not comparable: ..." banner, and there is
  no test, no rank and no "X found better": the verdict says what differs.
- **Design.** Each run's split seed (``split_seed``, else ``seed``, of its spec) fixes its
  holdout and CV folds, so runs with the same split seed form a block. The design is
  **paired** when every strategy has exactly one run per split seed and all strategies have
  the same split seeds (complete blocks); an experiment with a new split per repeat is. Runs
  are **ranked** within a seed only when every seed holds one run of every strategy.
- **Summary.** Per strategy: mean ± std of each run's best CV score, mean holdout score of the
  refit final models, mean rank and wins. Ranks are taken within each seed (the seed is the
  block; 1 = best; tied runs share the average rank) and averaged; a win is a rank-1 finish in
  a seed, and tied-best runs each get the win. Without complete blocks there are no ranks.
- **Tests.** Pairwise two-sided tests on (1) each run's best CV score and (2) trials to
  target, where a run that never reached the target counts as worse than every run that did
  (its value is the longest run + 1). Paired design: the exact Wilcoxon signed-rank test on
  the per-block differences (``scipy.stats.wilcoxon(method="exact")``; zero differences are
  dropped, and said so in the test's name; with tied differences scipy's exact p is
  conservative). Otherwise (and for a bare frame, which does not say which runs share a
  split): Mann-Whitney U across seeds, exact (the full permutation distribution, ties
  included) whenever there are at most 20,000 arrangements (up to 8 vs 8 seeds), else the
  normal approximation; if all values of both groups are equal, p = 1. The p-values are
  Holm-adjusted within each of the two families of pairs, and the test's name is printed
  beside every p. The smallest p possible is ``2 / C(2n, n)`` for Mann-Whitney (0.10 for 3
  seeds, 0.029 for 4) and ``2 / 2^n`` for Wilcoxon with n non-zero differences (0.25 for 3,
  0.0625 for 5, 0.031 for 6), so a few seeds can never show a difference; the verdict says so.
- **Verdict.** Only pairs with a Holm-adjusted p below ``alpha`` (0.05) are stated as a
  difference; otherwise the verdict says there is no significant difference with that many
  seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import optuna
import pandas as pd
from scipy import stats

from hpdash import attrs as study_attrs
from hpdash import experiments, plots, results, runner, vocabulary
from hpdash.errors import SpecError
from hpdash.spec import StudySpec
from hpdash.storage import open_storage

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
DEFAULT_FRACTION = 0.99
ALPHA = 0.05
LEVEL = 0.95
TIME_POINTS = 101
EXACT_LIMIT = 20_000  # Mann-Whitney is exact (all permutations) up to this many arrangements
STRATEGY_LABELS: dict[str, str] = {key: s.name for key, s in vocabulary.STRATEGIES.items()}
METRIC_BEST = "best_cv"
METRIC_TTT = "trials_to_target"
BOOTSTRAP_RESAMPLES = 2000
BAND_METHODS: dict[str, str] = {"t": "Student-t interval", "bootstrap": "bootstrap percentile interval"}
MANN_WHITNEY = "Mann-Whitney U"
WILCOXON = "Wilcoxon signed-rank"
#: The key of the experiment frame's ``attrs`` where ``_build`` puts a ``FrameDesign``, so that
#: ``analyse`` called on a comparison's frame alone (as the CLI does) knows the design.
FRAME_DESIGN = "comparison_design"
SPLIT_SAME = "same data split for every repeat"
SPLIT_NEW = "a new split per repeat"
SPLIT_UNKNOWN = "data split not recorded"


label = vocabulary.strategy_name


def _reaches(values: pd.Series, target: float, direction: str) -> pd.Series:
    return values >= target if direction == "maximize" else values <= target


def _strategy_order(frame: pd.DataFrame) -> list[str]:
    return list(pd.unique(frame["strategy"])) if "strategy" in frame.columns else []


# ------------------------------------------------------------------------------ metric range
#: Scorers whose values lie in [0, 1] (scikit-learn's names; ``hpdash.objective`` lists which it
#: offers, not their ranges): exact names and prefixes (``f1_macro``, ``roc_auc_ovr``, ...).
UNIT_METRICS = ("accuracy", "balanced_accuracy", "average_precision", "top_k_accuracy")
UNIT_PREFIXES = ("f1", "precision", "recall", "roc_auc", "jaccard", "average_precision")
AT_MOST_ONE = ("r2", "explained_variance")


def metric_range(metric: str | None) -> tuple[float, float]:
    """The range a scorer's values can take: [0, 1] for accuracy, balanced accuracy, F1,
    precision, recall, ROC AUC, average precision and Jaccard (any averaging); [-1, 1] for
    the Matthews correlation; (-inf, 1] for R² and explained variance (and ``d2_*``); (-inf, 0]
    for every ``neg_*`` scorer (a negated error or loss); unbounded otherwise or unknown."""
    if not metric:
        return (-math.inf, math.inf)
    name = str(metric).lower()
    if name.startswith("neg_"):
        return (-math.inf, 0.0)
    if name in AT_MOST_ONE or name.startswith("d2_"):
        return (-math.inf, 1.0)
    if name == "matthews_corrcoef":
        return (-1.0, 1.0)
    if name in UNIT_METRICS or name.startswith(UNIT_PREFIXES):
        return (0.0, 1.0)
    return (-math.inf, math.inf)


def clip_to_range(values: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """``values`` clipped to ``value_range`` (NaN stays NaN)."""
    if value_range is None:
        return values
    return np.clip(values, value_range[0], value_range[1])


# ------------------------------------------------------------------------------ curves
def curves(frame: pd.DataFrame, x: str = "trial", direction: str = "maximize") -> pd.DataFrame:
    """Best-so-far curve of every run: columns study, strategy, seed, trial, elapsed_s, value, best.

    ``x="trial"``: finished trials in number order; ``x="elapsed_s"``: in completion order
    (rows without a completion time are dropped). See the module docstring.
    """
    if x not in ("trial", "elapsed_s"):
        raise ValueError(f"x must be 'trial' or 'elapsed_s', not {x!r}")
    columns = ["study", "strategy", "seed", "trial", "elapsed_s", "value", "best"]
    parts = []
    for _study, rows in frame.groupby("study", sort=False):
        done = rows.loc[rows["state"].isin(FINISHED)].sort_values("number", kind="stable").copy()
        done["trial"] = np.arange(1, len(done) + 1, dtype="int64")
        value = done["value"].astype("float64").where(done["state"] == "COMPLETE")
        done["value"] = value
        if x == "elapsed_s":
            done = done.dropna(subset=["elapsed_s"]).sort_values(["elapsed_s", "number"], kind="stable")
        done["best"] = results.running_best(done["value"], direction)
        parts.append(done[columns])
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    return pd.concat(parts, ignore_index=True)


def step_values(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A step function through (xs, ys) (xs sorted) read at ``grid``: the last y at x <= g.

    NaN before the first x; the last y is carried past the end.
    """
    idx = np.searchsorted(xs, grid, side="right") - 1
    out = np.full(len(grid), np.nan)
    ok = idx >= 0
    out[ok] = ys[idx[ok]]
    return out


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float, float, int]:
    """(mean, sd, lo, hi, n) of the finite values: a Student-t interval of the mean.

    sd uses ddof = 1; with n = 1 the sd, lo and hi are NaN; with n = 0 everything is NaN.
    """
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return (math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1:
        return (mean, math.nan, math.nan, math.nan, 1)
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(1 - (1 - level) / 2, n - 1)) * sd / math.sqrt(n)
    return (mean, sd, mean - half, mean + half, n)


def bootstrap_interval(
    values: np.ndarray, level: float = LEVEL, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float, float, float, int]:
    """(mean, sd, lo, hi, n) of the finite values: the percentile bootstrap interval of the
    mean (``resamples`` resamples with replacement, seeded). NaN interval with fewer than two
    values, as ``t_interval``."""
    v = np.asarray(values, dtype="float64")
    mean, sd, _lo, _hi, n = t_interval(v, level)
    if n < 2:
        return (mean, sd, math.nan, math.nan, n)
    lo, hi = _bootstrap_columns(v[np.isfinite(v)].reshape(-1, 1), level, resamples, np.random.default_rng(seed))
    return (mean, sd, float(lo[0]), float(hi[0]), n)


def _bootstrap_columns(
    values: np.ndarray, level: float, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column of ``values`` (n runs x C
    points, all finite), the same resamples of the runs for every column. A resample is a
    multinomial count per run, so the means are one matrix product (no n x C copy per
    resample); columns go in chunks to bound memory."""
    n = values.shape[0]
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) / n  # resamples x n
    lows, highs = [], []
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    for start in range(0, values.shape[1], 500):
        means = weights @ values[:, start : start + 500]
        lo, hi = np.quantile(means, q, axis=0)
        lows.append(lo)
        highs.append(hi)
    return np.concatenate(lows), np.concatenate(highs)


def bands(
    curve_frame: pd.DataFrame,
    x: str = "trial",
    level: float = LEVEL,
    grid: Sequence[float] | None = None,
    *,
    method: str = "t",
    value_range: tuple[float, float] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean best-so-far and its ``level`` interval of the mean per strategy on a common x grid.

    Columns: strategy, x, n, mean, std, lo, hi, method, level. ``method``: ``"t"`` (Student-t
    interval, ``t_interval``) or ``"bootstrap"`` (percentile bootstrap, ``resamples``
    resamples seeded with ``seed``). ``lo``/``hi`` are clipped to ``value_range`` (the
    metric's range, ``metric_range``) when given. ``grid`` defaults to 1..max trial, or
    ``TIME_POINTS`` points from 0 to the longest elapsed time.
    """
    if method not in BAND_METHODS:
        raise ValueError(f"method must be one of {', '.join(BAND_METHODS)}, not {method!r}")
    columns = ["strategy", "x", "n", "mean", "std", "lo", "hi", "method", "level"]
    data = curve_frame.dropna(subset=["best"])
    if data.empty:
        empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
        return empty.astype({"strategy": "object", "method": "object"})
    if grid is not None:
        points = np.asarray(grid, dtype="float64")
    elif x == "trial":
        points = np.arange(1, int(curve_frame["trial"].max()) + 1, dtype="float64")
    else:
        points = np.linspace(0.0, float(data["elapsed_s"].max()), TIME_POINTS)
    parts = []
    for strategy in _strategy_order(data):
        runs = data.loc[data["strategy"] == strategy]
        matrix = []
        for _, run in runs.groupby("study", sort=False):
            run = run.sort_values([x], kind="stable")
            # Several rows at the same x (same completion second): the last one holds the best.
            run = run.groupby(x, sort=True)["best"].last()
            matrix.append(step_values(run.index.to_numpy(dtype="float64"), run.to_numpy(), points))
        stacked = np.vstack(matrix)
        stats_ = [t_interval(stacked[:, j], level) for j in range(points.size)]
        part = pd.DataFrame(stats_, columns=["mean", "std", "lo", "hi", "n"])
        if method == "bootstrap":
            part[["lo", "hi"]] = _bootstrap_part(stacked, level, resamples, seed)
        part.insert(0, "x", points)
        part.insert(0, "strategy", strategy)
        parts.append(part.loc[part["n"] > 0])
    out = pd.concat(parts, ignore_index=True)
    out["lo"] = clip_to_range(out["lo"].to_numpy(dtype="float64"), value_range)
    out["hi"] = clip_to_range(out["hi"].to_numpy(dtype="float64"), value_range)
    out["n"] = out["n"].astype("int64")
    out["method"] = method
    out["level"] = float(level)
    return out[columns]


def _bootstrap_part(stacked: np.ndarray, level: float, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap (lo, hi) per grid point of one strategy's runs x points matrix: points with
    the same runs present share their resamples; fewer than two runs give NaN."""
    out = np.full((stacked.shape[1], 2), np.nan)
    finite = np.isfinite(stacked)
    rng = np.random.default_rng(seed)
    groups: dict[bytes, list[int]] = {}
    for j in range(stacked.shape[1]):
        groups.setdefault(finite[:, j].tobytes(), []).append(j)
    for cols in groups.values():
        rows = np.flatnonzero(finite[:, cols[0]])
        if rows.size < 2:
            continue
        lo, hi = _bootstrap_columns(stacked[np.ix_(rows, np.asarray(cols, dtype="int64"))], level, resamples, rng)
        out[cols, 0], out[cols, 1] = lo, hi
    return out


# ------------------------------------------------------------------------------ target
def default_target(frame: pd.DataFrame, direction: str = "maximize", fraction: float = DEFAULT_FRACTION) -> float:
    """ "Within (1 - fraction) of the best score seen", sign-safe (see the module docstring)."""
    values = frame.loc[frame["state"] == "COMPLETE", "value"].astype("float64")
    values = values[np.isfinite(values)]
    if values.empty:
        return math.nan
    best = float(values.max() if direction == "maximize" else values.min())
    slack = (1.0 - fraction) * abs(best)
    return best - slack if direction == "maximize" else best + slack


def time_to_target(frame: pd.DataFrame, target: float, direction: str = "maximize") -> pd.DataFrame:
    """Per run: study, strategy, seed, reached, trials, seconds, n_trials (finished trials)."""
    out = []
    for study, run in curves(frame, "trial", direction).groupby("study", sort=False):
        hit = run.loc[_reaches(run["value"], target, direction)] if math.isfinite(target) else run.iloc[0:0]
        reached = not hit.empty
        out.append(
            {
                "study": study,
                "strategy": run["strategy"].iloc[0],
                "seed": run["seed"].iloc[0],
                "reached": reached,
                "trials": float(hit["trial"].min()) if reached else math.nan,
                "seconds": float(hit["elapsed_s"].min()) if reached else math.nan,
                "n_trials": int(run["trial"].max()),
            }
        )
    return pd.DataFrame(out, columns=["study", "strategy", "seed", "reached", "trials", "seconds", "n_trials"])


def time_to_target_summary(ttt: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: runs, reached, share, trials_mean/std, seconds_mean/std (reaching runs)."""
    rows = []
    for strategy in _strategy_order(ttt):
        g = ttt.loc[ttt["strategy"] == strategy]
        hit = g.loc[g["reached"].astype(bool)]
        rows.append(
            {
                "strategy": strategy,
                "runs": len(g),
                "reached": len(hit),
                "share": len(hit) / len(g) if len(g) else math.nan,
                "trials_mean": hit["trials"].mean() if len(hit) else math.nan,
                "trials_std": hit["trials"].std(ddof=1) if len(hit) > 1 else math.nan,
                "seconds_mean": hit["seconds"].mean() if len(hit) else math.nan,
                "seconds_std": hit["seconds"].std(ddof=1) if len(hit) > 1 else math.nan,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["strategy", "runs", "reached", "share", "trials_mean", "trials_std", "seconds_mean", "seconds_std"],
    )


# ------------------------------------------------------------------------------ runs, ranks, summary
def final_runs(
    frame: pd.DataFrame, holdout: Mapping[str, float | None] | None = None, direction: str = "maximize"
) -> pd.DataFrame:
    """Per run: study, strategy, seed, best (best COMPLETE value), holdout, n_complete."""
    rows = []
    holdout = holdout or {}
    for study, run in frame.groupby("study", sort=False):
        values = run.loc[run["state"] == "COMPLETE", "value"].astype("float64")
        values = values[np.isfinite(values)]
        best = (values.max() if direction == "maximize" else values.min()) if len(values) else math.nan
        h = holdout.get(str(study))
        rows.append(
            {
                "study": study,
                "strategy": run["strategy"].iloc[0],
                "seed": run["seed"].iloc[0],
                "best": float(best),
                "holdout": math.nan if h is None else float(h),
                "n_complete": len(values),
            }
        )
    return pd.DataFrame(rows, columns=["study", "strategy", "seed", "best", "holdout", "n_complete"])


def ranks(runs: pd.DataFrame, direction: str = "maximize") -> pd.DataFrame:
    """``runs`` with a ``rank`` column: rank of ``best`` within its seed (1 = best, ties averaged)."""
    out = runs.copy()
    key = -out["best"] if direction == "maximize" else out["best"]
    out["rank"] = key.groupby(out["seed"]).rank(method="average", na_option="bottom")
    best_in_seed = key.groupby(out["seed"]).transform("min")
    out["win"] = (key == best_in_seed) & out["best"].notna()
    return out


def complete_blocks(runs: pd.DataFrame, key: str | pd.Series = "seed") -> bool:
    """Whether every block (``runs[key]``, or a Series aligned with ``runs``) holds exactly one
    run of every strategy: what ranks within a block and a paired test need."""
    if runs.empty:
        return False
    blocks = runs[key] if isinstance(key, str) else key
    if blocks.isna().any():
        return False
    strategies = sorted(map(str, pd.unique(runs["strategy"])))
    per_block = runs["strategy"].astype(str).groupby(blocks.to_numpy(), sort=False)
    return all(sorted(g.tolist()) == strategies for _, g in per_block)


def incomplete_block(runs: pd.DataFrame, key: str | pd.Series = "seed") -> str:
    """A block that is not complete, for a reason given to people: "seed 3 holds only TPE"."""
    blocks = runs[key] if isinstance(key, str) else key
    strategies = list(pd.unique(runs["strategy"]))
    for block, g in runs["strategy"].groupby(blocks.to_numpy(), sort=False):
        held = g.tolist()
        if sorted(map(str, held)) != sorted(map(str, strategies)):
            twice = sorted({s for s in held if held.count(s) > 1})
            if twice:
                return f"seed {block} holds {len(g)} runs, several of {', '.join(label(s) for s in twice)}"
            return f"seed {block} holds only {', '.join(label(s) for s in dict.fromkeys(held))}"
    return "a seed has no run"


def summary_table(runs: pd.DataFrame, direction: str = "maximize", ranked: bool | None = None) -> pd.DataFrame:
    """Per strategy: runs, best_mean, best_std, holdout_mean, holdout_n, mean_rank, wins; best first.

    ``ranked``: rank within seeds (None: only when every seed holds one run of every strategy,
    ``complete_blocks``). Unranked, ``mean_rank`` and ``wins`` are NaN and strategies keep their
    order.
    """
    if ranked is None:
        ranked = complete_blocks(runs)
    table_of = ranks(runs, direction) if ranked else runs.assign(rank=math.nan, win=False)
    rows = []
    for strategy in _strategy_order(table_of):
        g = table_of.loc[table_of["strategy"] == strategy]
        rows.append(
            {
                "strategy": strategy,
                "runs": len(g),
                "best_mean": g["best"].mean(),
                "best_std": g["best"].std(ddof=1) if g["best"].notna().sum() > 1 else math.nan,
                "holdout_mean": g["holdout"].mean(),
                "holdout_n": int(g["holdout"].notna().sum()),
                "mean_rank": g["rank"].mean() if ranked else math.nan,
                "wins": int(g["win"].sum()) if ranked else math.nan,
            }
        )
    table = pd.DataFrame(
        rows, columns=["strategy", "runs", "best_mean", "best_std", "holdout_mean", "holdout_n", "mean_rank", "wins"]
    )
    if not ranked:
        return table
    return table.sort_values(["mean_rank", "strategy"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------ tests
def min_p_value(n_a: int, n_b: int) -> float:
    """Smallest two-sided p an exact Mann-Whitney test can give for groups of n_a and n_b."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(U of a, two-sided p). p = 1 when every value of both groups is equal."""
    x, y = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if x.size == 0 or y.size == 0:
        return (math.nan, 1.0)
    if np.unique(np.concatenate([x, y])).size == 1:
        return (x.size * y.size / 2.0, 1.0)
    if math.comb(x.size + y.size, x.size) <= EXACT_LIMIT:
        # Exact permutation distribution, ties included. scipy's default switches to the normal
        # approximation as soon as there is a tie, and with a few seeds that gives p-values
        # below what any arrangement of the data can produce (0.013 for 4 vs 4, where the
        # exact minimum is 0.029).
        return _exact_mann_whitney(x, y)
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    p = float(res.pvalue)
    return (float(res.statistic), 1.0 if math.isnan(p) else p)


def _exact_mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """U of x and the two-sided p over every split of the pooled (mid-)ranks: 2·min(P(U ≤ u),
    P(U ≥ u)), capped at 1 (what ``scipy.stats.permutation_test`` computes)."""
    ranks = stats.rankdata(np.concatenate([x, y]))
    n_a = x.size
    offset = n_a * (n_a + 1) / 2.0
    u_obs = float(ranks[:n_a].sum() - offset)
    us = np.array([ranks[list(idx)].sum() - offset for idx in combinations(range(ranks.size), n_a)])
    eps = 1e-9 * max(1.0, abs(u_obs))
    lower = float(np.mean(us <= u_obs + eps))
    upper = float(np.mean(us >= u_obs - eps))
    return (u_obs, min(1.0, 2.0 * min(lower, upper)))


def mann_whitney_name(n_a: int, n_b: int) -> str:
    """The name of the Mann-Whitney test ``mann_whitney`` runs for groups of n_a and n_b."""
    if n_a and n_b and math.comb(n_a + n_b, n_a) > EXACT_LIMIT:
        return f"{MANN_WHITNEY}, normal approximation"
    return f"exact {MANN_WHITNEY}"


def min_p_value_paired(n: int) -> float:
    """Smallest two-sided p an exact Wilcoxon signed-rank test can give with n non-zero
    differences: 2 / 2^n (every difference on one side)."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0**n)


def seeds_needed_paired(alpha: float) -> int:
    """Smallest number of complete blocks (seeds) for which an exact Wilcoxon signed-rank test
    can give p < alpha."""
    n = 1
    while min_p_value_paired(n) >= alpha and n < 100:
        n += 1
    return n


def _zero_noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b, with differences that are only floating-point noise (|d| <= 1e-12 of the values:
    two means of the same fold scores summed in another order) made exactly 0."""
    d = a - b
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    return np.where(np.abs(d) <= 1e-12 * scale, 0.0, d)


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, str, float]:
    """The two-sided exact Wilcoxon signed-rank test of the paired differences a - b.

    Returns (statistic, p, test name, signed-rank balance). The statistic and p are
    ``scipy.stats.wilcoxon(a - b, method="exact")`` (zero differences dropped, Wilcoxon's
    rule); p = 1 when every difference is 0. The name says what was done: "exact Wilcoxon
    signed-rank", plus "k zero differences dropped" and, when non-zero differences tie,
    "tied differences (conservative p)" (scipy's exact distribution assumes no ties and rounds
    the statistic the safe way). The balance is R+ - R- (sum of the ranks of the positive
    differences minus the negative ones): > 0 when a tends to be larger.
    """
    x, y = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if x.shape != y.shape:
        raise ValueError("A paired test needs two samples of the same length.")
    d = _zero_noise(x, y)
    nonzero = d[d != 0]
    notes = []
    zeros = int(d.size - nonzero.size)
    if zeros:
        notes.append(f"{zeros} zero difference{'s' if zeros != 1 else ''} dropped")
    ranks_ = stats.rankdata(np.abs(nonzero))
    if np.unique(np.abs(nonzero)).size < nonzero.size:
        notes.append("tied differences (conservative p)")
    name = ", ".join([f"exact {WILCOXON}", *notes])
    if nonzero.size == 0:
        return (0.0, 1.0, name, 0.0)
    balance = float(ranks_[nonzero > 0].sum() - ranks_[nonzero < 0].sum())
    res = stats.wilcoxon(d, method="exact")
    p = float(res.pvalue)
    return (float(res.statistic), 1.0 if math.isnan(p) else min(1.0, p), name, balance)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


PAIR_COLUMNS = ["metric", "a", "b", "n_a", "n_b", "u", "p", "p_holm", "better", "min_p", "test", "statistic", "n_pairs"]


def no_tests(reason: str) -> pd.DataFrame:
    """An empty pairs frame (``pairwise_tests``'s columns) whose ``attrs["reason"]`` says why no
    test was run; ``pairs_table`` shows the reason."""
    out = pd.DataFrame({c: pd.Series([], dtype="object") for c in PAIR_COLUMNS})
    out.attrs["reason"] = reason
    return out


def pairwise_tests(
    runs: pd.DataFrame,
    ttt: pd.DataFrame | None = None,
    direction: str = "maximize",
    blocks: Mapping[str, Hashable] | None = None,
) -> pd.DataFrame:
    """A test for every pair of strategies on best CV and on trials to target.

    Without ``blocks``: Mann-Whitney across seeds (``mann_whitney``). With ``blocks`` (study ->
    its block, the split seed; the caller has checked that the design is paired,
    ``design_of``): the exact Wilcoxon signed-rank test of the per-block differences
    (``wilcoxon_signed_rank``); a block where either run has no value is left out of that pair.

    Columns: metric, a, b, n_a, n_b (runs with a value), u (Mann-Whitney's U of a; NaN for a
    paired test), p, p_holm, better (the strategy the data favour, by U or by the signed
    ranks; None when exactly balanced), min_p (smallest p possible with these sizes), test
    (the test's name, printed beside every p), statistic (U, or Wilcoxon's min(R+, R-)),
    n_pairs (blocks used by a paired test; NaN otherwise).
    """
    rows: list[dict[str, Any]] = []
    order = _strategy_order(runs)
    families: list[tuple[str, pd.DataFrame, str, bool]] = [(METRIC_BEST, runs, "best", direction == "maximize")]
    if ttt is not None and not ttt.empty:
        censored = ttt.copy()
        worst = float(censored["n_trials"].max()) + 1.0
        censored["score"] = censored["trials"].where(censored["reached"].astype(bool), worst)
        families.append((METRIC_TTT, censored, "score", False))
    for metric, data, column, higher_better in families:
        family: list[dict[str, Any]] = []
        for a, b in combinations(order, 2):
            row = _paired_row(data, column, a, b, blocks) if blocks is not None else _unpaired_row(data, column, a, b)
            balance = row.pop("balance")
            row["better"] = (
                None if balance == 0 or math.isnan(balance) else (a if (balance > 0) == higher_better else b)
            )
            family.append({"metric": metric, "a": a, "b": b, **row})
        for entry, adj in zip(family, holm([r["p"] for r in family])):
            entry["p_holm"] = adj
        rows += family
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _unpaired_row(data: pd.DataFrame, column: str, a: str, b: str) -> dict[str, Any]:
    xa = data.loc[data["strategy"] == a, column].dropna().to_numpy(dtype="float64")
    xb = data.loc[data["strategy"] == b, column].dropna().to_numpy(dtype="float64")
    u, p = mann_whitney(xa, xb)
    return {
        "n_a": int(xa.size),
        "n_b": int(xb.size),
        "u": u,
        "p": p,
        "min_p": min_p_value(int(xa.size), int(xb.size)),
        "test": mann_whitney_name(int(xa.size), int(xb.size)),
        "statistic": u,
        "n_pairs": math.nan,
        "balance": math.nan if math.isnan(u) else u - xa.size * xb.size / 2.0,
    }


def _paired_row(data: pd.DataFrame, column: str, a: str, b: str, blocks: Mapping[str, Hashable]) -> dict[str, Any]:
    def side(strategy: str) -> pd.Series:
        rows = data.loc[data["strategy"] == strategy]
        return pd.Series(rows[column].to_numpy(dtype="float64"), index=[blocks.get(str(s)) for s in rows["study"]])

    sa, sb = side(a), side(b)
    both = pd.concat([sa.rename("a"), sb.rename("b")], axis=1, join="inner").dropna()
    stat, p, name, balance = wilcoxon_signed_rank(both["a"].to_numpy(), both["b"].to_numpy())
    nonzero = int((_zero_noise(both["a"].to_numpy(), both["b"].to_numpy()) != 0).sum())
    return {
        "n_a": int(sa.notna().sum()),
        "n_b": int(sb.notna().sum()),
        "u": math.nan,
        "p": p,
        "min_p": min_p_value_paired(nonzero),
        "test": name,
        "statistic": stat,
        "n_pairs": len(both),
        "balance": balance,
    }


# ------------------------------------------------------------------------------ design
@dataclass(frozen=True)
class Design:
    """How the runs may be compared (see "Design" in the module docstring)."""

    paired: bool  # one run per strategy per split seed, the same split seeds for all
    ranked: bool  # every seed holds one run of every strategy: ranks within seeds
    split: str  # SPLIT_SAME, SPLIT_NEW or SPLIT_UNKNOWN
    reason: str  # why the tests are paired or not, for people
    rank_reason: str  # why there are no ranks ("" when ranked)
    blocks: dict[str, Hashable] = field(default_factory=dict)  # study -> split seed (when paired)

    @property
    def test(self) -> str:
        return WILCOXON if self.paired else MANN_WHITNEY


def split_seed_of(spec: Mapping[str, Any]) -> int | None:
    """The seed of a study's holdout split and CV folds: ``split_seed``, else ``seed``."""
    value = spec.get("split_seed", spec.get("seed"))
    return None if value is None or isinstance(value, bool) else int(value)


def split_design(split_seeds: Iterable[int | None]) -> str:
    """``SPLIT_SAME`` when every run has the same split seed, ``SPLIT_NEW`` when they differ,
    ``SPLIT_UNKNOWN`` when one is not recorded."""
    seeds = list(split_seeds)
    if not seeds or any(s is None for s in seeds):
        return SPLIT_UNKNOWN
    return SPLIT_SAME if len(set(seeds)) == 1 else SPLIT_NEW


def design_of(
    runs: pd.DataFrame, split_seeds: Mapping[str, int | None] | None = None, comparable: bool = True
) -> Design:
    """The design of the runs (``final_runs``): paired on the split seeds (study -> split seed;
    None: not known, as for a bare frame) and ranked within the ``seed`` column when their
    blocks are complete, neither when the studies are not ``comparable``."""
    studies = [str(s) for s in runs["study"]] if not runs.empty else []
    known = split_seeds is not None and all(split_seeds.get(s) is not None for s in studies)
    split = split_design(split_seeds.get(s) for s in studies) if split_seeds is not None else SPLIT_UNKNOWN
    if not comparable:
        why = "the studies differ in more than strategy and seed"
        return Design(False, False, split, f"no test: {why}", f"No ranks: {why}.")
    if runs.empty or runs["strategy"].nunique() < 2:
        return Design(False, False, split, "one strategy: nothing to test", "No ranks: one strategy.")
    ranked = complete_blocks(runs, "seed")
    rank_reason = (
        ""
        if ranked
        else f"No ranks: ranks within a seed need every seed to hold one run of each strategy, and "
        f"{incomplete_block(runs, 'seed')}."
    )
    if not known:
        return Design(
            False,
            ranked,
            split,
            "the runs do not record their data split, so they are taken as independent",
            rank_reason,
        )
    assert split_seeds is not None
    block_of = pd.Series([split_seeds[s] for s in studies], index=runs.index)
    if complete_blocks(runs, block_of):
        blocks: dict[str, Hashable] = {s: split_seeds[s] for s in studies}
        return Design(
            True,
            ranked,
            split,
            "paired: within a seed every strategy shares the holdout and the CV folds",
            rank_reason,
            blocks,
        )
    if split == SPLIT_SAME:
        reason = "every run uses the same data split, so no runs pair up: they are taken as independent"
    else:
        reason = (
            "not paired: a paired test needs one run of each strategy per split seed, and "
            f"{incomplete_block(runs, block_of).replace('seed', 'split seed', 1)}"
        )
    return Design(False, ranked, split, reason, rank_reason)


# ------------------------------------------------------------------------------ verdict
@dataclass
class Claim:
    """One difference the verdict states, with the test that supports it."""

    metric: str
    better: str
    worse: str
    p: float  # Holm-adjusted
    test: str = ""  # the test's name


@dataclass
class Verdict:
    text: str
    claims: list[Claim] = field(default_factory=list)


def _pm(mean: float, sd: float, digits: int, unit: str = "") -> str:
    if math.isnan(mean):
        return "-"
    fmt = f"{{:.{digits}f}}"
    text = fmt.format(mean)
    if not math.isnan(sd):
        text += " ± " + fmt.format(sd)
    return text + unit


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


def _ttt_phrase(row: Mapping[str, Any]) -> str:
    runs, reached = int(row["runs"]), int(row["reached"])
    if not reached:
        return f"did not reach it in any of its {runs} runs"
    text = f"in {_pm(row['trials_mean'], row['trials_std'], 1)} trials"
    if reached < runs:
        text += f" ({reached} of {runs} runs reached it)"
    return text


def _seeds_phrase(runs: pd.DataFrame) -> str:
    counts = runs.groupby("strategy").size()
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}-{hi} seeds per strategy"


def not_comparable_text(differences: Sequence[str]) -> str:
    """The banner: "Not comparable: <what differs>"."""
    return "Not comparable: " + "; ".join(differences) + "."


def _test_name(test: Any) -> str:
    """A pairs row's test name (an old pairs frame without one ran Mann-Whitney)."""
    return test if isinstance(test, str) and test else f"exact {MANN_WHITNEY}"


def verdict(
    runs: pd.DataFrame,
    pairs: pd.DataFrame,
    ttt_summary: pd.DataFrame | None = None,
    direction: str = "maximize",
    alpha: float = ALPHA,
    digits: int = 4,
    *,
    differences: Sequence[str] | None = None,
    design: Design | None = None,
) -> Verdict:
    """The verdict text: only differences whose Holm-adjusted p is below ``alpha`` are stated,
    each with the test that supports it. With ``differences`` (the studies are not comparable)
    nothing is claimed and the text says what differs; ``design`` adds why the tests are (not)
    paired and why there are no ranks."""
    if runs.empty or runs["strategy"].nunique() < 2:
        return Verdict("Nothing to compare: an experiment needs at least two strategies.")
    if differences:
        return Verdict(
            not_comparable_text(differences) + " No test is run, no strategy is ranked and none is called "
            "better: these studies differ in more than strategy and seed, so a difference in their scores "
            "could come from what differs rather than from the strategies."
        )
    claims: list[Claim] = []
    sentences: list[str] = []
    ranked = design.ranked if design is not None else None
    summary = summary_table(runs, direction, ranked).set_index("strategy")
    ttt_rows = ttt_summary.set_index("strategy") if ttt_summary is not None and not ttt_summary.empty else None
    significant = pairs.loc[pairs["p_holm"] < alpha].sort_values(["metric", "p_holm"], ascending=[False, True])
    for row in significant.itertuples(index=False):
        if row.better is None or (isinstance(row.better, float) and math.isnan(row.better)):
            continue
        worse = row.b if row.better == row.a else row.a
        test = _test_name(getattr(row, "test", None))
        if row.metric == METRIC_TTT and ttt_rows is not None:
            good, bad = ttt_rows.loc[row.better], ttt_rows.loc[worse]
            sentences.append(
                f"{label(row.better)} reached the target {_ttt_phrase(good.to_dict())}, "
                f"{label(worse)} {_ttt_phrase(bad.to_dict())} ({_p(row.p_holm)}) by {test}."
            )
        elif row.metric == METRIC_BEST:
            good, bad = summary.loc[row.better], summary.loc[worse]
            sentences.append(
                f"{label(row.better)} found better final CV scores than {label(worse)}: "
                f"{_pm(good['best_mean'], good['best_std'], digits)} vs "
                f"{_pm(bad['best_mean'], bad['best_std'], digits)} ({_p(row.p_holm)}) by {test}."
            )
        else:
            continue
        claims.append(Claim(row.metric, row.better, worse, float(row.p_holm), test))
    n_pairs = int((pairs["metric"] == METRIC_BEST).sum())
    tests = [str(t) for t in pairs["test"]] if "test" in pairs.columns else []
    paired = design.paired if design is not None else any(t.startswith(f"exact {WILCOXON}") for t in tests)
    per = f"Holm-adjusted over {n_pairs} pair{'s' if n_pairs != 1 else ''} per measure"
    if paired:
        method = (
            f"Two-sided exact {WILCOXON} tests on the per-seed differences (paired: within a seed every "
            f"strategy shares the holdout and the CV folds), {per}; a difference is stated only when p < {alpha:g}."
        )
    else:
        why = f" ({design.reason})" if design is not None else ""
        method = (
            f"Two-sided {MANN_WHITNEY} tests across seeds{why}, {per}; a difference is stated only when p < {alpha:g}."
        )
    ranks_note = f" {design.rank_reason}" if design is not None and design.rank_reason else ""
    if claims:
        return Verdict(" ".join(sentences) + " " + method + ranks_note, claims)
    smallest = pairs.loc[pairs["p_holm"] == pairs["p_holm"].min()].iloc[0] if not pairs.empty else None
    if smallest is None:
        text = f"No significant difference with {_seeds_phrase(runs)}."
    else:
        text = (
            f"No significant difference with {_seeds_phrase(runs)} "
            f"(smallest adjusted {_p(float(smallest['p_holm']))}, by {_test_name(smallest.get('test'))})."
        )
    floor = float(pairs["min_p"].min()) if not pairs.empty else 1.0
    if floor >= alpha / max(1, n_pairs):
        need = (seeds_needed_paired if paired else seeds_needed)(alpha / max(1, n_pairs))
        text += (
            f" With this many seeds the test cannot go below p = {floor:.2g}; it needs at least "
            f"{need} seeds per strategy to show a difference at the {alpha:g} level."
        )
    return Verdict(text + " " + method + ranks_note, [])


def seeds_needed(alpha: float) -> int:
    """Smallest n (equal groups) for which an exact Mann-Whitney test can give p < alpha."""
    n = 1
    while min_p_value(n, n) >= alpha and n < 100:
        n += 1
    return n


# ------------------------------------------------------------------------------ comparability
#: What compared studies must share: (what people read, the key of a ``design_record``).
#: Strategy, seed, split and sampler seeds are what an experiment varies; the grid points and
#: start-up trials belong to a strategy; name and workers do not change what is measured.
COMPARED_FIELDS: tuple[tuple[str, str], ...] = (
    ("dataset", "dataset"),
    ("target", "target"),
    ("task", "task"),
    ("metric", "metric"),
    ("metric direction", "direction"),
    ("search space", "space"),
    ("CV folds", "folds"),
    ("CV repeats", "cv_repeats"),
    ("test size", "test_size"),
    ("budget", "budget"),
    ("pruner", "pruner"),
    ("positive class", "pos_label"),
    ("kept columns", "keep_columns"),
    ("trial time limit", "trial_timeout"),
)


def design_record(attrs: Mapping[str, Any], direction: str | None = None) -> dict[str, Any]:
    """A study's stored spec (``hpdash.attrs.spec_of``) with what was resolved when it was
    created: the dataset's SHA-256, the task, the metric and the search space (``hpdash.*``
    user attrs), and the study's ``direction``. What ``differences`` compares."""
    spec = dict(study_attrs.spec_of(attrs))
    record: dict[str, Any] = {**spec, "direction": direction}
    if attrs.get(study_attrs.DATASET):
        record["dataset_sha256"] = str(attrs[study_attrs.DATASET])
    if attrs.get(study_attrs.TASK):
        record["task"] = str(attrs[study_attrs.TASK])
    metric = study_attrs.metric_of(attrs)
    if metric:
        record["metric"] = metric
    if attrs.get(study_attrs.SPACE):
        record["resolved_space"] = attrs[study_attrs.SPACE]
    return record


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, limit: int = 40) -> str:
    text = "none" if value is None else value if isinstance(value, str) else _canonical(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _facts(spec: Mapping[str, Any], resolved_spaces: bool) -> dict[str, tuple[Any, str]]:
    """Each compared field of one spec: (value to compare, how to show it)."""
    raw_cv = spec.get("cv")
    cv: Mapping[str, Any] = raw_cv if isinstance(raw_cv, Mapping) else {}
    sha = spec.get("dataset_sha256")
    dataset = (sha, f"SHA-256 {str(sha)[:12]}…") if sha else (spec.get("dataset"), _short(spec.get("dataset")))
    model = spec.get("model")
    models = [model] if isinstance(model, str) else list(model or [])
    space = spec.get("resolved_space") if resolved_spaces else spec.get("space")
    n_trials, timeout = spec.get("n_trials"), spec.get("timeout")
    budget = " or ".join(
        part
        for part in (f"{n_trials} trials" if n_trials is not None else "", f"{timeout:g} s" if timeout else "")
        if part
    )
    keep = spec.get("keep_columns")
    facts: dict[str, tuple[Any, str]] = {
        "dataset": dataset,
        "space": ((sorted(models), space), ", ".join(models) or "none"),
        "folds": (cv.get("folds"), _short(cv.get("folds"))),
        "cv_repeats": (cv.get("repeats", 1 if cv else None), _short(cv.get("repeats", 1 if cv else None))),
        "budget": ((n_trials, timeout), budget or "none"),
        "keep_columns": (sorted(keep) if keep else None, f"{len(keep)} columns" if keep else "none"),
    }
    for key in ("target", "task", "metric", "direction", "test_size", "pruner", "pos_label", "trial_timeout"):
        facts[key] = (spec.get(key), _short(spec.get(key)))
    return facts


def differences(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What differs between the compared studies in anything but strategy and seed.

    ``specs``: each study's stored spec as plain data, best a ``design_record`` (which adds the
    dataset's SHA-256, the resolved task, metric and search space, and the direction). One entry
    per field that differs, in ``COMPARED_FIELDS`` order: "dataset: SHA-256 1a2b… vs SHA-256
    9f8e…", "budget: 3 trials vs 10 trials", "search space: different ranges of k_nearest_neighbors".
    Empty when the studies are comparable.
    """
    if len(specs) < 2:
        return []
    resolved = all(s.get("resolved_space") for s in specs)
    facts = [_facts(s, resolved) for s in specs]
    out = []
    for label_, key in COMPARED_FIELDS:
        seen: dict[str, str] = {}
        for f in facts:
            value, shown = f[key]
            seen.setdefault(_canonical(value), shown)
        if len(seen) < 2:
            continue
        shown_values = list(dict.fromkeys(seen.values()))
        if key == "space" and len(shown_values) == 1:
            text = f"different ranges of {shown_values[0]}"
        elif key == "keep_columns" and len(shown_values) == 1:
            text = "different columns kept"
        else:
            text = " vs ".join(shown_values[:3]) + (
                f" (and {len(shown_values) - 3} more)" if len(shown_values) > 3 else ""
            )
        out.append(f"{label_}: {text}")
    return out


# ------------------------------------------------------------------------------ loading
@dataclass(frozen=True)
class FrameDesign:
    """What an experiment frame cannot hold in its columns: each study's split seed, what
    differs between the studies, and the metric. Kept in ``frame.attrs[FRAME_DESIGN]``; pandas
    deep-copies ``attrs`` on every operation, so this copies as itself (it is never changed)."""

    split_seeds: Mapping[str, int | None]
    differences: tuple[str, ...] = ()
    metric: str | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> FrameDesign:
        return self


@dataclass
class Comparison:
    """The studies being compared, stacked in one experiment frame."""

    title: str
    frame: pd.DataFrame  # trials_frame of every study + study, strategy, seed
    runs: list[experiments.ExperimentRun]
    direction: str
    metric: str | None
    spec: StudySpec | None
    holdout: dict[str, float | None]
    grid_notes: dict[str, str]
    studies: dict[str, optuna.Study]
    experiment: str | None = None
    #: What differs between the studies in anything but strategy and seed (``differences``).
    differences: list[str] = field(default_factory=list)
    #: Each study's split seed (``split_seed_of`` its spec; None when not recorded).
    split_seeds: dict[str, int | None] = field(default_factory=dict)
    #: Each study's ``design_record`` (its spec and what was resolved at creation).
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    storage: str | None = None

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.runs))

    @property
    def comparable(self) -> bool:
        """True when the studies differ only in strategy and seed."""
        return not self.differences

    @property
    def banner(self) -> str | None:
        """The banner "Not comparable: <what differs>." or None."""
        return not_comparable_text(self.differences) if self.differences else None

    @property
    def split(self) -> str:
        """The split design: ``SPLIT_SAME``, ``SPLIT_NEW`` or ``SPLIT_UNKNOWN``."""
        return split_design(self.split_seeds.get(r.study) for r in self.runs)


def experiment_frame(entries: Iterable[tuple[optuna.Study, str, int]]) -> pd.DataFrame:
    """Stack ``trials_frame`` of each (study, strategy, seed) with those three columns first."""
    parts = []
    for study, strategy, seed in entries:
        f = results.trials_frame(study)
        f.insert(0, "seed", pd.Series([int(seed)] * len(f), dtype="int64"))
        f.insert(0, "strategy", pd.Series([strategy] * len(f), dtype="object"))
        f.insert(0, "study", pd.Series([study.study_name] * len(f), dtype="object"))
        parts.append(f)
    if not parts:
        return pd.DataFrame(columns=["study", "strategy", "seed", *results.BASE_COLUMNS])
    frame = pd.concat(parts, ignore_index=True)
    params = sorted(c for c in frame.columns if str(c).startswith(results.PARAM_PREFIX))
    return frame[["study", "strategy", "seed", *results.BASE_COLUMNS, *params]]


def _direction_of(study: optuna.Study) -> str:
    return "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"


def _build(
    title: str,
    runs: list[experiments.ExperimentRun],
    studies: dict[str, optuna.Study],
    spec: StudySpec | None,
    experiment: str | None = None,
    storage: str | None = None,
) -> Comparison:
    attrs = {name: study.user_attrs for name, study in studies.items()}  # one read per study
    directions = {name: _direction_of(study) for name, study in studies.items()}
    records = {r.study: design_record(attrs[r.study], directions[r.study]) for r in runs}
    found = differences([records[r.study] for r in runs])
    metrics = {study_attrs.metric_of(a) for a in attrs.values()}
    holdout: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for run in runs:
        info = attrs[run.study].get(runner.REFIT_ATTR)
        holdout[run.study] = float(info["holdout_score"]) if info and "holdout_score" in info else None
        grid = attrs[run.study].get(runner.GRID_ATTR)
        if grid:
            notes[run.study] = experiments.grid_note(grid, records[run.study].get("n_trials"), run.seed)
    split_seeds = {r.study: split_seed_of(records[r.study]) for r in runs}
    frame = experiment_frame((studies[r.study], r.strategy, r.seed) for r in runs)
    metric = metrics.pop() if len(metrics) == 1 else None
    # ``analyse(comparison.frame, ...)`` alone (the CLI's call) still knows the design.
    frame.attrs[FRAME_DESIGN] = FrameDesign(dict(split_seeds), tuple(found), metric)
    return Comparison(
        title=title,
        frame=frame,
        runs=runs,
        direction=directions[runs[0].study] if runs else "maximize",
        metric=metric,
        spec=spec,
        holdout=holdout,
        grid_notes=notes,
        studies=studies,
        experiment=experiment,
        differences=found,
        split_seeds=split_seeds,
        records=records,
        storage=storage,
    )


def load_experiment_comparison(name: str, storage: str | None = None) -> Comparison:
    """The comparison of a recorded experiment (``StudyNotFoundError`` if it or a study is gone)."""
    exp = experiments.load_experiment(name, storage)
    studies = {r.study: runner.load_study(r.study, storage) for r in exp.runs}
    return _build(f"Experiment {name}", exp.runs, studies, exp.spec, experiment=name, storage=storage)


def load_studies_comparison(names: Sequence[str], storage: str | None = None) -> Comparison:
    """A comparison of hand-picked studies: strategy and seed come from each study's spec.

    Raises ``SpecError`` with fewer than two studies. Studies that differ in more than strategy
    and seed (``differences``) still load: the comparison is then not ``comparable``, and
    ``analyse`` makes no claim and no rank.
    """
    if len(set(names)) < 2:
        raise SpecError("Pick at least two studies to compare.")
    studies = {n: runner.load_study(n, storage) for n in dict.fromkeys(names)}
    runs = []
    for n, study in studies.items():
        spec = study_attrs.spec_of(study.user_attrs)
        runs.append(experiments.ExperimentRun(n, str(spec.get("strategy", "unknown")), int(spec.get("seed", 0))))
    return _build("Selected studies", runs, studies, None, storage=storage)


def study_states(comparison: Comparison) -> dict[str, str]:
    """Each compared study's state (``runner.StudyStatus.state``), read in one batch: every
    study's progress in a fixed number of grouped queries (``results.progress_of_studies``) and
    every study's attrs in one listing, not one ``study_status`` per study. On a storage the fast
    reader cannot read, study by study. A study that is gone is "missing"."""
    names = [r.study for r in comparison.runs]
    store = open_storage(comparison.storage, heartbeat=False)
    try:
        progress = results.progress_of_studies(store)
        wanted = set(names)
        attrs = {s.study_name: s.user_attrs for s in store.get_all_studies() if s.study_name in wanted}
        states = {}
        for name in names:
            if name not in attrs:
                states[name] = "missing"
            elif progress is not None and name in progress:
                states[name] = runner.status_from(name, attrs[name], progress[name]).state
            else:
                states[name] = runner.study_status(runner.load_study(name, store=store)).state
        return states
    finally:
        store.engine.dispose()


@dataclass
class Analysis:
    """Everything the Compare page, the CLI and the report show."""

    curves_trial: pd.DataFrame
    curves_time: pd.DataFrame
    bands_trial: pd.DataFrame
    bands_time: pd.DataFrame
    target: float
    fraction: float | None
    ttt: pd.DataFrame
    ttt_summary: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    pairs: pd.DataFrame
    verdict: Verdict
    design: Design | None = None
    differences: list[str] = field(default_factory=list)
    band: str = "t"
    level: float = LEVEL
    metric: str | None = None
    value_range: tuple[float, float] = (-math.inf, math.inf)

    @property
    def comparable(self) -> bool:
        return not self.differences

    @property
    def banner(self) -> str | None:
        """The banner "Not comparable: <what differs>." or None."""
        return not_comparable_text(self.differences) if self.differences else None

    @property
    def band_text(self) -> str:
        """What the bands are: "95% t-interval of the mean over 5 seeds"."""
        return plots.band_description(self.bands_trial, self.band, self.level)


def analyse(
    frame: pd.DataFrame,
    holdout: Mapping[str, float | None] | None = None,
    direction: str = "maximize",
    target: float | None = None,
    fraction: float = DEFAULT_FRACTION,
    alpha: float = ALPHA,
    level: float = LEVEL,
    *,
    split_seeds: Mapping[str, int | None] | None = None,
    differences: Sequence[str] | None = None,
    metric: str | None = None,
    band: str = "t",
) -> Analysis:
    """All statistics of an experiment frame. ``target`` overrides the default target.

    ``split_seeds`` (study -> split seed), ``differences`` (what differs between the studies,
    ``differences``) and ``metric`` (for the range the bands are clipped to, ``metric_range``)
    default to what ``load_*_comparison`` put in ``frame.attrs`` (a ``FrameDesign``); a bare frame has none,
    so its runs are taken as independent (Mann-Whitney) and comparable. With differences, no
    test is run and nothing is ranked. ``band``: ``"t"`` or ``"bootstrap"`` (see ``bands``).
    """
    stored = frame.attrs.get(FRAME_DESIGN)
    if isinstance(stored, FrameDesign):
        split_seeds = stored.split_seeds if split_seeds is None else split_seeds
        differences = stored.differences if differences is None else differences
        metric = stored.metric if metric is None else metric
    found = list(differences or [])
    value_range = metric_range(metric)
    ct, cs = curves(frame, "trial", direction), curves(frame, "elapsed_s", direction)
    goal = target if target is not None else default_target(frame, direction, fraction)
    ttt = time_to_target(frame, goal, direction)
    ttt_sum = time_to_target_summary(ttt)
    runs = final_runs(frame, holdout, direction)
    design = design_of(runs, split_seeds, comparable=not found)
    if found:
        pairs = no_tests("not comparable: " + "; ".join(found))
    elif runs.empty or runs["strategy"].nunique() < 2:
        pairs = no_tests("one strategy: nothing to test")
    else:
        pairs = pairwise_tests(runs, ttt, direction, design.blocks if design.paired else None)
    return Analysis(
        curves_trial=ct,
        curves_time=cs,
        bands_trial=bands(ct, "trial", level, method=band, value_range=value_range),
        bands_time=bands(cs, "elapsed_s", level, method=band, value_range=value_range),
        target=goal,
        fraction=None if target is not None else fraction,
        ttt=ttt,
        ttt_summary=ttt_sum,
        runs=runs,
        summary=summary_table(runs, direction, design.ranked),
        pairs=pairs,
        verdict=verdict(runs, pairs, ttt_sum, direction, alpha, differences=found, design=design),
        design=design,
        differences=found,
        band=band,
        level=level,
        metric=metric,
        value_range=value_range,
    )


def analyse_comparison(
    comparison: Comparison,
    target: float | None = None,
    fraction: float = DEFAULT_FRACTION,
    alpha: float = ALPHA,
    level: float = LEVEL,
    band: str = "t",
) -> Analysis:
    """``analyse`` of a comparison, with its holdout scores, direction, split seeds, differences
    and metric passed explicitly."""
    return analyse(
        comparison.frame,
        comparison.holdout,
        comparison.direction,
        target=target,
        fraction=fraction,
        alpha=alpha,
        level=level,
        split_seeds=comparison.split_seeds,
        differences=comparison.differences,
        metric=comparison.metric,
        band=band,
    )


def seeds_text(comparison: Comparison) -> str:
    """The seeds (repeats) of the comparison: "0, 1 (2 repeats)", or per strategy when they
    are not the same for every strategy."""
    per: dict[str, list[int]] = {}
    for r in comparison.runs:
        per.setdefault(r.strategy, []).append(int(r.seed))
    sets = {tuple(sorted(v)) for v in per.values()}
    if len(sets) == 1:
        seeds = sorted(next(iter(sets)))
        return f"{', '.join(map(str, seeds))} ({len(seeds)} repeat{'s' if len(seeds) != 1 else ''})"
    return "; ".join(f"{label(k)}: {', '.join(map(str, sorted(v)))}" for k, v in per.items())


def design_rows(comparison: Comparison, analysis: Analysis) -> list[tuple[str, str]]:
    """The design for people, as (what, value) rows: strategies, seeds/repeats, data split,
    comparability, test, ranks, band."""
    design = analysis.design or design_of(analysis.runs, comparison.split_seeds, comparison.comparable)
    if not analysis.comparable:
        test = "none: " + (analysis.banner or "not comparable")
    elif analysis.pairs.empty:
        test = "none: " + str(analysis.pairs.attrs.get("reason", "nothing to test"))
    else:
        tests = [str(t) for t in analysis.pairs["test"]]
        notes = " (zero differences dropped where two runs tied)" if any("dropped" in t for t in tests) else ""
        base = f"exact {WILCOXON}" if design.paired else ", ".join(dict.fromkeys(tests))
        test = f"{base}{notes}, two-sided, Holm-adjusted; {design.reason}"
    return [
        ("strategies", ", ".join(label(s) for s in comparison.strategies)),
        ("seeds/repeats", seeds_text(comparison)),
        ("data split", comparison.split),
        ("comparable", "yes: the studies differ only in strategy and seed" if comparison.comparable else "no"),
        ("test", test),
        ("ranks", "within each seed" if design.ranked else design.rank_reason.removeprefix("No ranks: ")),
        ("band", analysis.band_text),
    ]


def design_text(comparison: Comparison, analysis: Analysis) -> str:
    """``design_rows`` as one line: strategies: ... · seeds/repeats: ... · ..."""
    return " · ".join(f"{k}: {v}" for k, v in design_rows(comparison, analysis))


#: Spec keys an experiment varies (or that name one study): not shown as the shared spec.
PER_RUN_KEYS = ("strategy", "seed", "sampler_seed", "split_seed")


def shown_spec(comparison: Comparison) -> dict[str, Any]:
    """The spec the compared studies share, for the report: the experiment's spec (else the
    first study's) without what varies per run (strategy, seeds; the study name of a hand-picked
    set), with ``strategies`` and ``seeds/repeats`` first and "(differs: ...)" for a value that is
    not the same in every study."""
    if comparison.spec is not None:
        base = comparison.spec.to_dict()
    else:
        first = comparison.records.get(comparison.runs[0].study, {}) if comparison.runs else {}
        base = {k: v for k, v in first.items() if k not in ("name", "direction", "dataset_sha256", "resolved_space")}
    specs = [study_attrs.spec_of({study_attrs.SPEC: comparison.records.get(r.study, {})}) for r in comparison.runs]
    out: dict[str, Any] = {
        "strategies": ", ".join(comparison.strategies),
        "seeds/repeats": seeds_text(comparison),
        "data split": comparison.split,
    }
    for key, value in base.items():
        if key in PER_RUN_KEYS:
            continue
        values = {_canonical(s.get(key)) for s in specs if key in s}
        out[key] = value if len(values) <= 1 or key == "name" else "(differs between the studies)"
    return out


def comparison_figures(comparison: Comparison, analysis: Analysis) -> dict[str, Any]:
    """The comparison figures (Plotly), by key: band_trial, band_time, edf, box_best,
    box_holdout. Bands and score axes keep within the metric's range; when the studies are not
    comparable every figure carries the "Not comparable: ..." banner."""
    c, a = comparison, analysis
    figures = {
        "band_trial": plots.band_figure(a.bands_trial, a.curves_trial, "trial", c.metric, value_range=a.value_range),
        "band_time": plots.band_figure(a.bands_time, a.curves_time, "elapsed_s", c.metric, value_range=a.value_range),
        "edf": plots.edf_figure(c.frame, c.metric, c.direction),
        "box_best": plots.runs_box_figure(a.runs, "best", c.metric, value_range=a.value_range),
        "box_holdout": plots.runs_box_figure(a.runs, "holdout", c.metric, value_range=a.value_range),
    }
    return {k: plots.with_banner(f, a.banner) for k, f in figures.items()}


def target_text(analysis: Analysis, metric: str | None = None) -> str:
    """How the target was chosen, for the page and the report."""
    if analysis.fraction is None:
        return f"Target {metric or 'score'} {analysis.target:.4g} (set by hand)."
    pct = (1 - analysis.fraction) * 100
    return (
        f"Target {metric or 'score'} {analysis.target:.4g}: within {pct:g}% of the best score seen in the "
        f"experiment (best − {1 - analysis.fraction:.2g}·|best| when maximizing, so it also works for "
        "negative scores such as neg_rmse)."
    )


def log_params_of(comparison: Comparison) -> set[str]:
    """Hyperparameters sampled on a log scale in any of the compared studies (for plot axes)."""
    names: set[str] = set()
    for study in comparison.studies.values():
        names |= results.log_params(study)
    return names


def importance_by_strategy(comparison: Comparison, method: str = "ped_anova") -> pd.DataFrame:
    """Importance per strategy: each study's ``plots.importance_data`` averaged over its seeds.

    Columns: strategy, param, importance (renormalised to sum to 1 per strategy), studies
    (how many of the strategy's studies had enough trials to estimate it).
    """
    rows = []
    for strategy in comparison.strategies:
        parts = []
        for run in comparison.runs:
            if run.strategy == strategy:
                data = plots.importance_data(comparison.studies[run.study], method)
                if not data.empty:
                    parts.append(data)
        if not parts:
            continue
        stacked = pd.concat(parts).groupby("param")["importance"].sum() / len(parts)
        total = stacked.sum()
        for param, value in stacked.sort_values(ascending=False).items():
            rows.append(
                {
                    "strategy": strategy,
                    "param": param,
                    "importance": float(value / total) if total else 0.0,
                    "studies": len(parts),
                }
            )
    return pd.DataFrame(rows, columns=["strategy", "param", "importance", "studies"])


def display_table(summary: pd.DataFrame, ttt_summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The summary and time-to-target tables merged for people (text cells, one row per strategy).

    Without ranks (``summary_table`` unranked) the mean rank and wins show "-"."""
    merged = summary.merge(ttt_summary.drop(columns=["runs"]), on="strategy", how="left")
    ranked = bool(merged["mean_rank"].notna().any())
    return pd.DataFrame(
        {
            "strategy": [label(s) for s in merged["strategy"]],
            "runs": merged["runs"],
            "best CV (mean ± std)": [_pm(m, s, digits) for m, s in zip(merged["best_mean"], merged["best_std"])],
            "holdout (mean)": ["-" if math.isnan(h) else f"{h:.{digits}f}" for h in merged["holdout_mean"]],
            "mean rank": merged["mean_rank"].round(2) if ranked else ["-"] * len(merged),
            "wins": merged["wins"] if ranked else ["-"] * len(merged),
        }
    )


def ttt_table(ttt_summary: pd.DataFrame) -> pd.DataFrame:
    """The time-to-target table for people."""
    return pd.DataFrame(
        {
            "strategy": [label(s) for s in ttt_summary["strategy"]],
            "reached": [
                f"{r}/{n} ({r / n:.0%})" if n else "-" for r, n in zip(ttt_summary["reached"], ttt_summary["runs"])
            ],
            "trials (mean ± std)": [
                _pm(m, s, 1) for m, s in zip(ttt_summary["trials_mean"], ttt_summary["trials_std"])
            ],
            "seconds (mean ± std)": [
                _pm(m, s, 1, " s") for m, s in zip(ttt_summary["seconds_mean"], ttt_summary["seconds_std"])
            ],
        }
    )


def pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairwise tests for people, the test's name beside its p-values. No tests (``no_tests``):
    one row that says why."""
    names = {METRIC_BEST: "best CV", METRIC_TTT: "trials to target"}
    if pairs.empty:
        reason = str(pairs.attrs.get("reason", "nothing to test"))
        return pd.DataFrame({"measure": ["-"], "pair": ["-"], "test": [f"none ({reason})"]})
    tests = pairs["test"] if "test" in pairs.columns else pd.Series([f"exact {MANN_WHITNEY}"] * len(pairs))
    return pd.DataFrame(
        {
            "measure": [names.get(m, m) for m in pairs["metric"]],
            "pair": [f"{label(a)} vs {label(b)}" for a, b in zip(pairs["a"], pairs["b"])],
            "favours": ["-" if not isinstance(b, str) else label(b) for b in pairs["better"]],
            "test": list(tests),
            "p": pairs["p"].astype("float64").round(4),
            "p (Holm)": pairs["p_holm"].astype("float64").round(4),
            "smallest possible p": pairs["min_p"].astype("float64").round(4),
        }
    )
