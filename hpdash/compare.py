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
  single run there is no interval (``lo``/``hi`` are NaN).
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
- **Summary.** Per strategy: mean ± std of each run's best CV score, mean holdout score of the
  refit final models, mean rank and wins. Ranks are taken within each seed (the seed is the
  block; 1 = best; tied runs share the average rank) and averaged; a win is a rank-1 finish in
  a seed, and tied-best runs each get the win.
- **Tests.** Pairwise two-sided Mann-Whitney U tests across seeds (``scipy.stats.mannwhitneyu``)
  on (1) each run's best CV score and (2) trials to target, where a run that never reached the
  target counts as worse than every run that did (its value is the longest run + 1). The
  p-value is exact (the full permutation distribution, ties included) whenever there are at
  most 20,000 arrangements (up to 8 vs 8 seeds), else the normal approximation. If all values
  of both groups are equal, p = 1. The p-values are Holm-adjusted within each of the
  two families of pairs. With n runs per strategy the smallest p Mann-Whitney can give is
  ``2 / C(2n, n)``: 0.10 for 3 seeds, 0.029 for 4, so 3 seeds can never show a difference at
  the 0.05 level; the verdict says so.
- **Verdict.** Only pairs with a Holm-adjusted p below ``alpha`` (0.05) are stated as a
  difference; otherwise the verdict says there is no significant difference with that many
  seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import optuna
import pandas as pd
from scipy import stats

from hpdash import attrs as study_attrs
from hpdash import experiments, results, runner, vocabulary
from hpdash.errors import SpecError
from hpdash.spec import StudySpec

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
DEFAULT_FRACTION = 0.99
ALPHA = 0.05
LEVEL = 0.95
TIME_POINTS = 101
EXACT_LIMIT = 20_000  # Mann-Whitney is exact (all permutations) up to this many arrangements
STRATEGY_LABELS: dict[str, str] = {key: s.name for key, s in vocabulary.STRATEGIES.items()}
METRIC_BEST = "best_cv"
METRIC_TTT = "trials_to_target"


label = vocabulary.strategy_name


def _reaches(values: pd.Series, target: float, direction: str) -> pd.Series:
    return values >= target if direction == "maximize" else values <= target


def _strategy_order(frame: pd.DataFrame) -> list[str]:
    return list(pd.unique(frame["strategy"])) if "strategy" in frame.columns else []


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


def bands(
    curve_frame: pd.DataFrame, x: str = "trial", level: float = LEVEL, grid: Sequence[float] | None = None
) -> pd.DataFrame:
    """Mean best-so-far and its ``level`` t-interval per strategy on a common x grid.

    Columns: strategy, x, n, mean, std, lo, hi. ``grid`` defaults to 1..max trial, or
    ``TIME_POINTS`` points from 0 to the longest elapsed time.
    """
    columns = ["strategy", "x", "n", "mean", "std", "lo", "hi"]
    data = curve_frame.dropna(subset=["best"])
    if data.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    if grid is not None:
        points = np.asarray(grid, dtype="float64")
    elif x == "trial":
        points = np.arange(1, int(curve_frame["trial"].max()) + 1, dtype="float64")
    else:
        points = np.linspace(0.0, float(data["elapsed_s"].max()), TIME_POINTS)
    rows = []
    for strategy in _strategy_order(data):
        runs = data.loc[data["strategy"] == strategy]
        matrix = []
        for _, run in runs.groupby("study", sort=False):
            run = run.sort_values([x], kind="stable")
            # Several rows at the same x (same completion second): the last one holds the best.
            run = run.groupby(x, sort=True)["best"].last()
            matrix.append(step_values(run.index.to_numpy(dtype="float64"), run.to_numpy(), points))
        stacked = np.vstack(matrix)
        for j, point in enumerate(points):
            mean, sd, lo, hi, n = t_interval(stacked[:, j], level)
            if n:
                rows.append(
                    {"strategy": strategy, "x": float(point), "n": n, "mean": mean, "std": sd, "lo": lo, "hi": hi}
                )
    return pd.DataFrame(rows, columns=columns)


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


def summary_table(runs: pd.DataFrame, direction: str = "maximize") -> pd.DataFrame:
    """Per strategy: runs, best_mean, best_std, holdout_mean, holdout_n, mean_rank, wins; best first."""
    ranked = ranks(runs, direction)
    rows = []
    for strategy in _strategy_order(ranked):
        g = ranked.loc[ranked["strategy"] == strategy]
        rows.append(
            {
                "strategy": strategy,
                "runs": len(g),
                "best_mean": g["best"].mean(),
                "best_std": g["best"].std(ddof=1) if g["best"].notna().sum() > 1 else math.nan,
                "holdout_mean": g["holdout"].mean(),
                "holdout_n": int(g["holdout"].notna().sum()),
                "mean_rank": g["rank"].mean(),
                "wins": int(g["win"].sum()),
            }
        )
    table = pd.DataFrame(
        rows, columns=["strategy", "runs", "best_mean", "best_std", "holdout_mean", "holdout_n", "mean_rank", "wins"]
    )
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


def pairwise_tests(runs: pd.DataFrame, ttt: pd.DataFrame | None = None, direction: str = "maximize") -> pd.DataFrame:
    """Mann-Whitney for every pair of strategies on best CV and on trials to target.

    Columns: metric, a, b, n_a, n_b, u, p, p_holm, better (the strategy the data favour, by U;
    None when U is exactly balanced), min_p (smallest p possible with these group sizes).
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
            xa = data.loc[data["strategy"] == a, column].dropna().to_numpy(dtype="float64")
            xb = data.loc[data["strategy"] == b, column].dropna().to_numpy(dtype="float64")
            u, p = mann_whitney(xa, xb)
            balanced = xa.size * xb.size / 2.0
            better = None
            if not math.isnan(u) and u != balanced:
                a_larger = u > balanced
                better = a if a_larger == higher_better else b
            family.append(
                {
                    "metric": metric,
                    "a": a,
                    "b": b,
                    "n_a": int(xa.size),
                    "n_b": int(xb.size),
                    "u": u,
                    "p": p,
                    "better": better,
                    "min_p": min_p_value(int(xa.size), int(xb.size)),
                }
            )
        for row, adj in zip(family, holm([r["p"] for r in family])):
            row["p_holm"] = adj
        rows += family
    return pd.DataFrame(rows, columns=["metric", "a", "b", "n_a", "n_b", "u", "p", "p_holm", "better", "min_p"])


# ------------------------------------------------------------------------------ verdict
@dataclass
class Claim:
    """One difference the verdict states, with the test that supports it."""

    metric: str
    better: str
    worse: str
    p: float  # Holm-adjusted


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


def verdict(
    runs: pd.DataFrame,
    pairs: pd.DataFrame,
    ttt_summary: pd.DataFrame | None = None,
    direction: str = "maximize",
    alpha: float = ALPHA,
    digits: int = 4,
) -> Verdict:
    """The verdict text: only differences whose Holm-adjusted p is below ``alpha`` are stated."""
    if runs.empty or runs["strategy"].nunique() < 2:
        return Verdict("Nothing to compare: an experiment needs at least two strategies.")
    claims: list[Claim] = []
    sentences: list[str] = []
    summary = summary_table(runs, direction).set_index("strategy")
    ttt_rows = ttt_summary.set_index("strategy") if ttt_summary is not None and not ttt_summary.empty else None
    significant = pairs.loc[pairs["p_holm"] < alpha].sort_values(["metric", "p_holm"], ascending=[False, True])
    for row in significant.itertuples(index=False):
        if row.better is None:
            continue
        worse = row.b if row.better == row.a else row.a
        if row.metric == METRIC_TTT and ttt_rows is not None:
            good, bad = ttt_rows.loc[row.better], ttt_rows.loc[worse]
            sentences.append(
                f"{label(row.better)} reached the target {_ttt_phrase(good.to_dict())}, "
                f"{label(worse)} {_ttt_phrase(bad.to_dict())} ({_p(row.p_holm)})."
            )
        elif row.metric == METRIC_BEST:
            good, bad = summary.loc[row.better], summary.loc[worse]
            sentences.append(
                f"{label(row.better)} found better final CV scores than {label(worse)}: "
                f"{_pm(good['best_mean'], good['best_std'], digits)} vs "
                f"{_pm(bad['best_mean'], bad['best_std'], digits)} ({_p(row.p_holm)})."
            )
        else:
            continue
        claims.append(Claim(row.metric, row.better, worse, float(row.p_holm)))
    n_pairs = int((pairs["metric"] == METRIC_BEST).sum())
    method = (
        f"Two-sided Mann-Whitney tests across seeds, Holm-adjusted over {n_pairs} pair"
        f"{'s' if n_pairs != 1 else ''} per measure; a difference is stated only when p < {alpha:g}."
    )
    if claims:
        return Verdict(" ".join(sentences) + " " + method, claims)
    smallest = float(pairs["p_holm"].min()) if not pairs.empty else 1.0
    text = f"No significant difference with {_seeds_phrase(runs)} (smallest adjusted {_p(smallest)})."
    floor = float(pairs["min_p"].min()) if not pairs.empty else 1.0
    if floor >= alpha / max(1, n_pairs):
        need = seeds_needed(alpha / max(1, n_pairs))
        text += (
            f" With this many seeds the test cannot go below p = {floor:.2g}; it needs at least "
            f"{need} seeds per strategy to show a difference at the {alpha:g} level."
        )
    return Verdict(text + " " + method, [])


def seeds_needed(alpha: float) -> int:
    """Smallest n (equal groups) for which an exact Mann-Whitney test can give p < alpha."""
    n = 1
    while min_p_value(n, n) >= alpha and n < 100:
        n += 1
    return n


# ------------------------------------------------------------------------------ loading
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

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.runs))


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


def _metric_of(study: optuna.Study) -> str | None:
    metric = study.user_attrs.get(study_attrs.METRIC)
    if metric:
        return str(metric)
    spec = study.user_attrs.get(runner.SPEC_ATTR) or {}
    return spec.get("metric") if isinstance(spec, dict) else None


def _build(
    title: str,
    runs: list[experiments.ExperimentRun],
    studies: dict[str, optuna.Study],
    spec: StudySpec | None,
    experiment: str | None = None,
) -> Comparison:
    directions = {results.study_summary(s)["direction"] for s in studies.values()}
    metrics = {_metric_of(s) for s in studies.values()}
    if len(directions) > 1:
        raise SpecError(
            "These studies do not share a direction (some maximize, some minimize), so their scores cannot be compared."
        )
    if len(metrics) > 1:
        shown = ", ".join(sorted(str(m) for m in metrics))
        raise SpecError(f"These studies use different metrics ({shown}), so their scores cannot be compared.")
    holdout: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for run in runs:
        study = studies[run.study]
        info = runner.refit_info(study)
        holdout[run.study] = float(info["holdout_score"]) if info else None
        grid = study.user_attrs.get(runner.GRID_ATTR)
        if grid:
            spec_of = study.user_attrs.get(runner.SPEC_ATTR) or {}
            notes[run.study] = experiments.grid_note(grid, spec_of.get("n_trials"), run.seed)
    frame = experiment_frame((studies[r.study], r.strategy, r.seed) for r in runs)
    return Comparison(
        title=title,
        frame=frame,
        runs=runs,
        direction=directions.pop() if directions else "maximize",
        metric=metrics.pop() if metrics else None,
        spec=spec,
        holdout=holdout,
        grid_notes=notes,
        studies=studies,
        experiment=experiment,
    )


def load_experiment_comparison(name: str, storage: str | None = None) -> Comparison:
    """The comparison of a recorded experiment (``StudyNotFoundError`` if it or a study is gone)."""
    exp = experiments.load_experiment(name, storage)
    studies = {r.study: runner.load_study(r.study, storage) for r in exp.runs}
    return _build(f"Experiment {name}", exp.runs, studies, exp.spec, experiment=name)


def load_studies_comparison(names: Sequence[str], storage: str | None = None) -> Comparison:
    """A comparison of hand-picked studies: strategy and seed come from each study's spec.

    Raises ``SpecError`` unless there are at least two studies with the same direction and metric.
    """
    if len(set(names)) < 2:
        raise SpecError("Pick at least two studies to compare.")
    studies = {n: runner.load_study(n, storage) for n in dict.fromkeys(names)}
    runs = []
    for n, study in studies.items():
        spec = study.user_attrs.get(runner.SPEC_ATTR) or {}
        runs.append(experiments.ExperimentRun(n, str(spec.get("strategy", "unknown")), int(spec.get("seed", 0))))
    return _build("Selected studies", runs, studies, None)


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


def analyse(
    frame: pd.DataFrame,
    holdout: Mapping[str, float | None] | None = None,
    direction: str = "maximize",
    target: float | None = None,
    fraction: float = DEFAULT_FRACTION,
    alpha: float = ALPHA,
    level: float = LEVEL,
) -> Analysis:
    """All statistics of an experiment frame. ``target`` overrides the default target."""
    ct, cs = curves(frame, "trial", direction), curves(frame, "elapsed_s", direction)
    goal = target if target is not None else default_target(frame, direction, fraction)
    ttt = time_to_target(frame, goal, direction)
    ttt_sum = time_to_target_summary(ttt)
    runs = final_runs(frame, holdout, direction)
    pairs = pairwise_tests(runs, ttt, direction)
    return Analysis(
        curves_trial=ct,
        curves_time=cs,
        bands_trial=bands(ct, "trial", level),
        bands_time=bands(cs, "elapsed_s", level),
        target=goal,
        fraction=None if target is not None else fraction,
        ttt=ttt,
        ttt_summary=ttt_sum,
        runs=runs,
        summary=summary_table(runs, direction),
        pairs=pairs,
        verdict=verdict(runs, pairs, ttt_sum, direction, alpha),
    )


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
    from hpdash import plots

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
    """The summary and time-to-target tables merged for people (text cells, one row per strategy)."""
    merged = summary.merge(ttt_summary.drop(columns=["runs"]), on="strategy", how="left")
    return pd.DataFrame(
        {
            "strategy": [label(s) for s in merged["strategy"]],
            "runs": merged["runs"],
            "best CV (mean ± std)": [_pm(m, s, digits) for m, s in zip(merged["best_mean"], merged["best_std"])],
            "holdout (mean)": ["-" if math.isnan(h) else f"{h:.{digits}f}" for h in merged["holdout_mean"]],
            "mean rank": merged["mean_rank"].round(2),
            "wins": merged["wins"],
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
    """The pairwise tests for people."""
    names = {METRIC_BEST: "best CV", METRIC_TTT: "trials to target"}
    return pd.DataFrame(
        {
            "measure": [names.get(m, m) for m in pairs["metric"]],
            "pair": [f"{label(a)} vs {label(b)}" for a, b in zip(pairs["a"], pairs["b"])],
            "favours": ["-" if b is None else label(b) for b in pairs["better"]],
            "p": pairs["p"].round(4),
            "p (Holm)": pairs["p_holm"].round(4),
            "smallest possible p": pairs["min_p"].round(4),
        }
    )
