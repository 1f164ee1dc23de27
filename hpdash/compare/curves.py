"""Best-so-far curves of the runs, the bands over seeds (t or bootstrap, clipped to the metric's range), and time to target."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hpdash import results
from hpdash.compare.words import (
    BAND_METHODS,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_FRACTION,
    FINISHED,
    LEVEL,
    TIME_POINTS,
    clip_to_range,
)


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
