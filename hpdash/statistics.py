"""Statistics for comparing tuning strategies, on NumPy and SciPy alone (no Optuna, pandas or Streamlit).

Expected best of random search and the normalised score (Bayesmark), the corrected resampled
t-test and tie set (Nadeau & Bengio 2003), exact paired tests, Friedman with the Nemenyi critical
difference (Demšar 2006), t-test power and planned repeats, BBC-CV (Tsamardinos et al. 2018),
intervals of a mean, and COCO's runtime-to-target ECDF. A result with several parts is a frozen
dataclass whose ``method`` names what was computed; ``direction`` is "maximize" or "minimize".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, overload

import numpy as np
import numpy.typing as npt
from scipy import special, stats

# fmt: off
__all__ = [
    "BBCResult", "CorrectedTTest", "FriedmanResult", "Interval", "PairedTestResult", "bbc_cv",
    "bootstrap_interval", "cd_groups", "clip_to_range", "corrected_resampled_t_test",
    "ecdf_of_runtime_to_target", "expected_best_curve", "expected_best_of_random", "friedman_nemenyi",
    "min_paired_p_value", "normalised_score", "paired_test", "power_of", "repeats_needed", "t_interval",
    "tie_set",
]
# fmt: on

FloatArray = npt.NDArray[np.float64]
Values = npt.ArrayLike  # floats: a sequence or an array
Scorer = Callable[[np.ndarray, np.ndarray], float]  # score(y_true, y_pred)
K = TypeVar("K", bound=Hashable)
ALTERNATIVES = ("two-sided", "greater", "less")
EXACT_WILCOXON_MAX_N = 20  # with ties or zeros: exact up to this many non-zero pairs, else normal approximation
WILCOXON_ARE = 3.0 / math.pi  # asymptotic relative efficiency of Wilcoxon (and Mann-Whitney) to t, normal data
_TAIL = 50.0  # ranks whose total probability of holding the best is below e^-50 are left out


def _sign(direction: str) -> float:
    """+1 when larger is better, -1 when smaller is better."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
    return 1.0 if direction == "maximize" else -1.0


def _finite(values: Values, name: str, ndim: int = 1) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be {ndim}-dimensional and finite (drop failed trials first)")
    return array


def _paired(a: Values, b: Values) -> FloatArray:
    x, y = _finite(a, "a"), _finite(b, "b")
    if x.size != y.size:
        raise ValueError(f"paired values need equal lengths, got {x.size} and {y.size}")
    return x - y


# ------------------------------------------------------------------ expected best of random search
def _worst_first(values: Values, direction: str) -> FloatArray:
    s = _sign(direction)
    v = _finite(values, "values")
    if v.size == 0:
        raise ValueError("values is empty")
    return np.sort(s * v) * s


def _expected_best_sorted(v: FloatArray, n: int, log_fact: FloatArray) -> float:
    """E[best of n] for v sorted worst first; log_fact[j] = log j!."""
    size = v.size
    # P(best rank < i) = C(i-1, n) / C(size, n) <= ((i-1)/size)^n, so the ranks below `start` hold
    # less than e^-50 of the probability; leaving them out makes the whole curve O(N log N).
    start = max(n, int(size * math.exp(-_TAIL / n)) + 1)
    i = np.arange(start, size + 1)
    log_c = log_fact[size] - log_fact[n] - log_fact[size - n]
    weights = np.exp(log_fact[i - 1] - log_fact[n - 1] - log_fact[i - n] - log_c)  # C(i-1, n-1) / C(size, n)
    return float(weights @ v[start - 1 :] / weights.sum())


def expected_best_of_random(values: Values, n: int, direction: str) -> float:
    """Expected best of ``n`` draws without replacement from the pooled random-search ``values``.

    With the N values sorted worst v_(1) to best v_(N), P(best of n = v_(i)) = C(i-1, n-1) / C(N, n):
    Bayesmark's L-estimator (``bayesmark.expected_max``; Turner et al. 2021, "Bayesian optimization
    is superior to random search for machine learning hyperparameter tuning"), the unbiased estimate
    of the expected best of n random-search trials if the pooled trials are i.i.d. draws of it. Ties
    need no care; values must be finite. Log-gamma weights keep it stable for N of 100,000 and more.
    """
    v = _worst_first(values, direction)
    if not 1 <= n <= v.size:
        raise ValueError(f"n must be between 1 and {v.size}, got {n}")
    return _expected_best_sorted(v, n, special.gammaln(np.arange(v.size + 1) + 1.0))


def expected_best_curve(values: Values, direction: str) -> FloatArray:
    """``expected_best_of_random(values, n, direction)`` for n = 1..N (element n-1)."""
    v = _worst_first(values, direction)
    log_fact = special.gammaln(np.arange(v.size + 1) + 1.0)
    return np.array([_expected_best_sorted(v, n, log_fact) for n in range(1, v.size + 1)])


@overload
def normalised_score(best: float, optimum: float, random_expected: float, direction: str) -> float: ...
@overload
def normalised_score(best: Values, optimum: Values, random_expected: Values, direction: str) -> FloatArray: ...
def normalised_score(best: Values, optimum: Values, random_expected: Values, direction: str) -> float | FloatArray:
    """Bayesmark's normalised score (Turner et al. 2021): 0 at ``optimum``, 1 at random search's expected best.

    (best - optimum) / (random_expected - optimum), as the ratio of the shortfalls s·(optimum - best)
    and s·(optimum - random_expected) with s = +1 maximizing, -1 minimizing (the same number either
    way). Below 0 when ``best`` beats ``optimum``, above 1 when worse than random search. When
    random_expected == optimum: 0.0 if best equals them too, else NaN. Broadcasts; scalars give a float.
    """
    s = _sign(direction)
    b, o, r = (np.asarray(x, dtype=np.float64) for x in (best, optimum, random_expected))
    shortfall, gap = s * (o - b), s * (o - r)
    with np.errstate(invalid="ignore"):
        out = np.where(gap == 0, np.where(shortfall == 0, 0.0, np.nan), shortfall / np.where(gap == 0, 1.0, gap))
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------------------ corrected resampled t-test
@dataclass(frozen=True)
class CorrectedTTest:
    mean_difference: float  # mean over splits of a - b
    statistic: float
    p_value: float
    df: int
    method: str


def corrected_resampled_t_test(
    scores_a: Values, scores_b: Values, n_train: int, n_test: int, rope: float = 0.0, alternative: str = "two-sided"
) -> CorrectedTTest:
    """Corrected resampled t-test (Nadeau & Bengio 2003, "Inference for the generalization error").

    Two configurations scored on the same k splits (every split of a possibly repeated CV), d = a - b.
    Overlapping training sets make s²/k too small; the test uses (1/k + n_test/n_train)·s² (ddof = 1)
    with k - 1 degrees of freedom, assuming roughly normal d. ``rope`` >= 0 moves the null: "greater"
    tests H0 mean(d) <= rope, "less" H0 mean(d) >= -rope, "two-sided" H0 |mean(d)| <= rope with t the
    excess of |mean| over rope, signed like the mean, and p = min(1, 2·P(T > |t|)). Zero variance (all
    d equal) is deterministic: t = ±inf with p = 0 when the excess lies in the alternative, else p = 1.
    """
    d = _paired(scores_a, scores_b)
    k = d.size
    if k < 2 or n_train <= 0 or n_test < 0 or rope < 0 or alternative not in ALTERNATIVES:
        raise ValueError(f"need k >= 2 splits, n_train > 0, n_test >= 0, rope >= 0, alternative in {ALTERNATIVES}")
    mean = float(d.mean())
    excess = {"greater": mean - rope, "less": mean + rope}.get(
        alternative, math.copysign(max(abs(mean) - rope, 0.0), mean)
    )
    constant = bool(np.all(d == d[0]))
    se = 0.0 if constant else math.sqrt((1.0 / k + n_test / n_train) * float(d.var(ddof=1)))
    t = excess / se if se > 0 else (math.copysign(math.inf, excess) if excess != 0 else 0.0)
    # stats.t.sf/cdf with df given, not a frozen stats.t(df): freezing one costs more than the test,
    # and a tie set makes one call per candidate configuration.
    if alternative == "greater":
        p = stats.t.sf(t, k - 1)
    elif alternative == "less":
        p = stats.t.cdf(t, k - 1)
    else:
        p = min(1.0, 2.0 * stats.t.sf(abs(t), k - 1))
    name = f"corrected resampled t-test (Nadeau & Bengio 2003), {alternative}, {k} splits"
    name += f", rope {rope:g}" if rope else ""
    return CorrectedTTest(mean, t, 1.0 if constant and t == 0 else float(p), k - 1, name)


def tie_set(
    fold_scores: Mapping[K, Values], n_train: int, n_test: int, direction: str, rope: float = 0.01, alpha: float = 0.05
) -> list[K]:
    """The configurations that cannot be told apart from the best, ordered by mean score, best first.

    The best has the best mean fold score (the first in mapping order among equals). Another c is tied
    with it unless the one-sided ``corrected_resampled_t_test`` on the splits, oriented so that positive
    means the best is better, rejects H0 "the best is better by at most ``rope``" at ``alpha`` (each
    comparison at ``alpha``, no multiplicity correction). Identical fold scores are tied; a constant
    lead larger than ``rope`` is not.
    """
    s = _sign(direction)
    arrays = {key: s * _finite(scores, f"fold scores of {key!r}") for key, scores in fold_scores.items()}
    order = sorted(arrays, key=lambda key: -float(arrays[key].mean()))

    def p_lead(key: K) -> float:  # p of "the best leads key by more than rope"
        return corrected_resampled_t_test(arrays[order[0]], arrays[key], n_train, n_test, rope, "greater").p_value

    return order[:1] + [key for key in order[1:] if p_lead(key) >= alpha]


# ------------------------------------------------------------------ paired tests
@dataclass(frozen=True)
class PairedTestResult:
    statistic: float
    p_value: float
    method: str
    n: int  # the non-zero differences the test used


def _signed_rank_exact(d: FloatArray) -> tuple[float, float]:
    """(min(W+, W-), two-sided p) under the exact null of the mid-ranks of |d| (no zero in d).

    Hand-written: scipy gets this null by enumerating the 2^n sign patterns (``PermutationMethod``,
    minutes at n = 20); here it is the convolution over the ranks of their two signs, on doubled
    mid-ranks, which are integers.
    """
    ranks2 = np.rint(2.0 * stats.rankdata(np.abs(d))).astype(np.int64)
    total = int(ranks2.sum())
    counts = np.zeros(total + 1)
    counts[0] = 1.0
    for r in ranks2:
        counts[r:] = counts[r:] + counts[: total + 1 - r]  # the right side is built before it is stored
    counts /= counts.sum()
    w2 = int(ranks2[d > 0].sum())
    return min(w2, total - w2) / 2.0, min(1.0, 2.0 * min(float(counts[: w2 + 1].sum()), float(counts[w2:].sum())))


def paired_test(a: Values, b: Values, method: str = "wilcoxon") -> PairedTestResult:
    """Two-sided paired test of a against b on per-repeat pairs, d = a - b; the result's ``method`` names the variant.

    "wilcoxon": Wilcoxon signed-rank test, statistic min(W+, W-), assuming d symmetric about its median.
    With no zero and no tied |d|, ``scipy.stats.wilcoxon(method="exact")``. Otherwise zero differences
    are dropped (Wilcoxon's "wilcox" zero method) and p is exact over the 2^n sign patterns of the
    mid-ranks when n <= 20 pairs remain, else scipy's normal approximation (tie-corrected variance, no
    continuity correction). "sign": exact sign test, ``scipy.stats.binomtest`` of the positive count
    among the non-zero differences at 1/2. With no non-zero difference p = 1.
    """
    d = _paired(a, b)
    nonzero = d[d != 0]
    n = int(nonzero.size)
    if method == "sign":
        positive = int(np.sum(nonzero > 0))
        p = float(stats.binomtest(positive, n).pvalue) if n else 1.0
        return PairedTestResult(float(positive), p, "exact sign test", n)
    if method != "wilcoxon":
        raise ValueError(f"method must be 'wilcoxon' or 'sign', not {method!r}")
    if n == 0:
        return PairedTestResult(0.0, 1.0, "Wilcoxon signed-rank test: every difference is zero", 0)
    if n == d.size and np.unique(np.abs(d)).size == n:
        res = stats.wilcoxon(d, method="exact")
        return PairedTestResult(float(res.statistic), float(res.pvalue), "exact Wilcoxon signed-rank test", n)
    if n <= EXACT_WILCOXON_MAX_N:
        statistic, p = _signed_rank_exact(nonzero)
        name = "exact Wilcoxon signed-rank test with mid-ranks, zero differences dropped"
        return PairedTestResult(statistic, p, name, n)
    res = stats.wilcoxon(nonzero, method="asymptotic", correction=False)
    name = "Wilcoxon signed-rank test, normal approximation (tie-corrected), zero differences dropped"
    return PairedTestResult(float(res.statistic), float(res.pvalue), name, n)


def min_paired_p_value(n: int) -> float:
    """Smallest two-sided p an exact Wilcoxon signed-rank (or sign) test can give with n pairs: 2/2^n."""
    return min(1.0, 2.0 ** (1 - n))


# ------------------------------------------------------------------ Friedman and Nemenyi
@dataclass(frozen=True)
class FriedmanResult:
    average_ranks: tuple[float, ...]  # per strategy (column), 1 = best
    statistic: float
    p_value: float
    critical_difference: float
    method: str


def friedman_nemenyi(matrix: Values, direction: str, alpha: float = 0.05) -> FriedmanResult:
    """Friedman test and Nemenyi critical difference for k strategies (columns) over N blocks (rows).

    Demšar 2006, "Statistical comparisons of classifiers over multiple data sets". Strategies are ranked
    within each block (1 = best, ties averaged; blocks assumed independent). The statistic is
    ``scipy.stats.friedmanchisquare`` (tie-corrected, chi² with k - 1 df, approximate for few blocks);
    it needs k >= 3, so with k = 2 statistic and p are NaN (use ``paired_test``); when every block ties
    every strategy they are 0 and 1. CD = q_alpha·sqrt(k(k+1)/(6N)) with q_alpha the studentized range
    quantile (1 - alpha, k, inf) / √2: average ranks at least CD apart differ at ``alpha``.
    """
    s = _sign(direction)
    m = _finite(matrix, "matrix", ndim=2)
    blocks, k = m.shape
    if blocks < 1 or k < 2:
        raise ValueError(f"need at least 1 block and 2 strategies, got shape {m.shape}")
    ranks = stats.rankdata(-s * m, axis=1)
    statistic, p = (math.nan, math.nan) if k < 3 else (0.0, 1.0)
    if k >= 3 and not np.all(ranks == (k + 1) / 2.0):
        res = stats.friedmanchisquare(*m.T)
        statistic, p = float(res.statistic), float(res.pvalue)
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2.0)
    cd = q * math.sqrt(k * (k + 1) / (6.0 * blocks))
    name = f"Friedman test with Nemenyi critical difference at {alpha:g} (Demšar 2006), {blocks} blocks"
    return FriedmanResult(tuple(float(r) for r in ranks.mean(axis=0)), statistic, p, cd, name)


def cd_groups(average_ranks: Values, cd: float) -> list[list[int]]:
    """Maximal groups of strategies (column indices) whose average ranks all differ by less than ``cd``.

    The bars of a critical-difference diagram (Demšar 2006): runs of neighbours on the rank line,
    listed from the best-ranked, each in rank order. A strategy apart from all others is a group of
    its own (no bar is drawn for it).
    """
    r = np.asarray(average_ranks, dtype=np.float64)
    order = [int(i) for i in np.argsort(r, kind="stable")]
    groups: list[list[int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and r[order[end + 1]] - r[order[start]] < cd:
            end += 1
        if not groups or order[end] != groups[-1][-1]:  # a run ending where the previous one did lies inside it
            groups.append(order[start : end + 1])
    return groups


# ------------------------------------------------------------------ power and planned repeats
def power_of(n: int, difference: float, sd: float, alpha: float = 0.05, paired: bool = True) -> float:
    """Power of the two-sided t-test at ``alpha`` for a true mean difference (noncentral t, ``scipy.stats.nct``).

    Paired: one-sample t-test of n per-repeat differences of standard deviation ``sd``, df = n - 1,
    noncentrality (difference/sd)·√n. Unpaired: two-sample t-test, n per group, common ``sd``,
    df = 2n - 2, noncentrality (difference/sd)·√(n/2). Both tails count. Assumes normal data.
    """
    if n < 2 or sd <= 0:
        raise ValueError("power needs n >= 2 and sd > 0")
    df = n - 1 if paired else 2 * n - 2
    ncp = abs(difference) / sd * math.sqrt(n if paired else n / 2.0)
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp))


def repeats_needed(
    difference: float, sd: float, alpha: float = 0.05, power: float = 0.8, paired: bool = True, max_repeats: int = 200
) -> int | None:
    """Repeats per strategy a planned comparison needs to detect ``difference`` with ``power``.

    The smallest n whose two-sided t-test reaches ``power`` (``power_of``), divided by 3/π and rounded
    up: hpdash tests with rank tests (exact Wilcoxon signed-rank paired, exact Mann-Whitney unpaired),
    whose asymptotic relative efficiency to the t-test is 3/π ≈ 0.955 for normal data (Hodges &
    Lehmann 1956; never below 0.864, above 1 for heavy tails). Then raised to the smallest n at which
    the exact rank test can give p < alpha at all: 2/2^n paired (n >= 6 at 0.05), 2/C(2n, n) unpaired
    (n >= 4 at 0.05). None when more than ``max_repeats`` would be needed.
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must be between 0 and 1")
    n_t = next((n for n in range(2, max_repeats + 1) if power_of(n, difference, sd, alpha, paired) >= power), None)
    if n_t is None:
        return None
    smallest = 1
    while (min_paired_p_value(smallest) if paired else 2.0 / math.comb(2 * smallest, smallest)) >= alpha:
        smallest += 1
    n = max(math.ceil(n_t / WILCOXON_ARE), smallest)
    return n if n <= max_repeats else None


# ------------------------------------------------------------------ BBC-CV
@dataclass(frozen=True)
class BBCResult:
    corrected: float  # mean out-of-bag score of the in-bag winner
    raw_best: float  # the best configuration's score on all rows
    ci_low: float
    ci_high: float
    bias: float  # > 0: raw_best is optimistic
    n_bootstrap: int  # bootstraps used
    method: str


def bbc_cv(
    oof: np.ndarray,
    y: np.ndarray,
    score: Scorer,
    direction: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BBCResult:
    """BBC-CV (Tsamardinos, Greasidou & Borboudakis 2018, "Bootstrapping the out-of-sample predictions
    for efficient and accurate cross-validation"): the winner's CV score without its selection bias.

    ``oof[:, j]`` are configuration j's out-of-fold predictions of ``y`` (more axes allowed, e.g.
    class probabilities). With ``rng = numpy.random.default_rng(seed)`` each bootstrap draws
    ``rng.integers(0, n_samples, size=n_samples)`` (the in-bag rows, repeats kept), picks the
    configuration with the best ``score(y[in_bag], oof[in_bag, j])`` (first on ties, NaN worst) and
    scores it on the out-of-bag rows (ascending). A bootstrap without out-of-bag rows, or whose
    ``score`` raises ValueError (one class only, say), is skipped after its draw. ``corrected`` is the
    mean out-of-bag score, the interval their ``level`` percentiles (``numpy.quantile``, linear).
    ``bias`` = raw_best - corrected (negated when minimizing): positive means the raw best is
    optimistic. Calls ``score`` about n_bootstrap·(n_configs + 1) times.
    """
    s = _sign(direction)
    preds, truth = np.asarray(oof), np.asarray(y)
    if preds.ndim < 2 or preds.shape[1] == 0 or preds.shape[0] != truth.shape[0] or truth.shape[0] == 0:
        raise ValueError(f"oof must be n_samples x n_configs matching y, got {preds.shape} and {truth.shape}")
    n, k = preds.shape[:2]

    def winner(rows: np.ndarray) -> int:
        signed = np.array([s * score(truth[rows], preds[rows, j]) for j in range(k)], dtype=np.float64)
        return int(np.argmax(np.where(np.isnan(signed), -np.inf, signed)))

    every = np.arange(n)
    raw_best = float(score(truth, preds[:, winner(every)]))
    rng = np.random.default_rng(seed)
    outs: list[float] = []
    for _ in range(n_bootstrap):
        in_bag: np.ndarray = np.asarray(rng.integers(0, n, size=n))
        out_of_bag: np.ndarray = np.setdiff1d(every, in_bag)
        try:
            if out_of_bag.size:
                outs.append(float(score(truth[out_of_bag], preds[out_of_bag, winner(in_bag)])))
        except ValueError:
            continue
    if not outs:
        raise ValueError(f"BBC-CV: none of the {n_bootstrap} bootstraps could be scored")
    corrected = float(np.mean(outs))
    low, high = np.quantile(outs, [(1 - level) / 2, (1 + level) / 2])
    name = f"BBC-CV (Tsamardinos et al. 2018), {len(outs)} bootstraps, {100 * level:g}% percentile interval"
    return BBCResult(corrected, raw_best, float(low), float(high), s * (raw_best - corrected), len(outs), name)


# ------------------------------------------------------------------ intervals
@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    method: str


def _finite_part(values: Values, what: str, unit: str) -> tuple[FloatArray, str]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return v, f"{what} of the mean over {v.size} {unit}" + ("" if v.size == 1 else "s")


def t_interval(values: Values, level: float = 0.95, unit: str = "seed") -> Interval:
    """Student-t interval of the mean of the finite ``values``: mean ± t(1 - (1-level)/2, n-1)·sd/√n.

    sd with ddof = 1; assumes roughly normal values. Non-finite values are left out. One value gives
    low = high = mean (no interval; ``method`` says so), none gives NaN.
    """
    v, name = _finite_part(values, f"{100 * level:g}% t-interval", unit)
    if v.size < 2:
        mean = float(v[0]) if v.size else math.nan
        return Interval(mean, mean, mean, v.size, name + (": a single value gives no interval" if v.size else ""))
    half = float(stats.t.ppf(1 - (1 - level) / 2, v.size - 1)) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return Interval(float(v.mean()), float(v.mean()) - half, float(v.mean()) + half, v.size, name)


def bootstrap_interval(
    values: Values, level: float = 0.95, n_bootstrap: int = 2000, seed: int = 0, unit: str = "seed"
) -> Interval:
    """Percentile bootstrap interval of the mean of the finite ``values`` (Efron & Tibshirani 1993).

    The resamples are the rows of ``numpy.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))``;
    low and high are the (1-level)/2 and (1+level)/2 quantiles (``numpy.quantile``, linear) of their
    means. Too narrow for a handful of values. Non-finite values are left out; none gives NaN.
    """
    v, name = _finite_part(values, f"{100 * level:g}% bootstrap percentile interval", unit)
    if v.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0, name)
    means = v[np.random.default_rng(seed).integers(0, v.size, size=(n_bootstrap, v.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(v.mean()), float(low), float(high), v.size, name)


@overload
def clip_to_range(low: float, high: float, metric_range: tuple[float, float]) -> tuple[float, float]: ...
@overload
def clip_to_range(low: Values, high: Values, metric_range: tuple[float, float]) -> tuple[FloatArray, FloatArray]: ...
def clip_to_range(
    low: Values, high: Values, metric_range: tuple[float, float]
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Interval bounds clipped to the metric's possible values ``metric_range = (lowest, highest)``.

    The caller knows the range: (0, 1) for accuracy, (-inf, 1) for r2, (-inf, 0) for scikit-learn's
    neg_* losses. NaN stays NaN. Scalars give floats, arrays arrays.
    """
    lowest, highest = metric_range
    if not lowest <= highest:
        raise ValueError(f"metric_range must be (lowest, highest), got {metric_range}")
    lo = np.clip(np.asarray(low, dtype=np.float64), lowest, highest)
    hi = np.clip(np.asarray(high, dtype=np.float64), lowest, highest)
    return (float(lo), float(hi)) if lo.ndim == 0 and hi.ndim == 0 else (lo, hi)


# ------------------------------------------------------------------ runtime to target
def ecdf_of_runtime_to_target(seconds: Sequence[float | None], grid: Values) -> FloatArray:
    """Fraction of runs that reached the target by each time g in ``grid``: #{runs with t <= g} / #runs.

    ``seconds[r]`` is when run r first reached the target; None, NaN or inf means never (the run still
    counts in the denominator). COCO's runtime ECDF for one target (Hansen et al. 2021, "COCO: a
    platform for comparing continuous optimizers in a black-box setting").
    """
    times = np.array([math.nan if t is None else float(t) for t in seconds], dtype=np.float64)
    if times.size == 0:
        raise ValueError("no runs")
    reached = np.sort(times[np.isfinite(times)])
    return np.searchsorted(reached, np.asarray(grid, dtype=np.float64), side="right") / times.size
