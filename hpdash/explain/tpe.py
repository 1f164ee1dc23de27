"""Inside TPE at step k: the good/bad split at gamma, l(x), g(x) and their ratio.

Step ``k`` is the choice of trial number ``k`` from the trials numbered below k. hpdash runs
Optuna's ``TPESampler(seed, n_startup_trials, multivariate=True, group=True,
constant_liar=True)`` with every other setting at Optuna 5's default. The sampler keeps its
estimators to itself, and hpdash may not import Optuna's private modules outside
``hpdash.storage``, so this module rebuilds them from the trials with numpy and scipy, by
Optuna's rules (labelled ``RECONSTRUCTION_LABEL``):

1. Start-up: while fewer than ``n_startup_trials`` trials are finished (COMPLETE or PRUNED),
   trial k is drawn at random.
2. Split: of the n finished trials, ``n_below = gamma(n) = min(ceil(0.1 n), 25)`` are "good":
   the best COMPLETE ones by value (a stable sort: of equal values the lower trial number
   first), then, if fewer than n_below completed, the PRUNED ones that got furthest (the
   largest last step, then the best last intermediate value). The rest are "bad", and so are
   trials still RUNNING (the constant liar), which do not count in n.
3. Parzen estimators, l(x) on the good trials' values and g(x) on the bad ones'. A numeric
   hyperparameter (in log space when log-scaled; an int or stepped float over its range padded
   by half a step) gets one Gaussian per observation, truncated to the range, at its value;
   its width is the larger gap to its neighbours among the sorted observations and the range's
   ends, except that the lowest and highest observation take the gap to their inner neighbour
   (``consider_endpoints=False``), clipped to [range / min(100, n_obs + 2), range] (the magic
   clip); plus a prior Gaussian at the range's centre, as wide as the range. An int or stepped
   value's probability is its kernel's mass over [x - step/2, x + step/2]. A categorical gets
   per observation a kernel with weight 1 + 1/(n_obs + 1) on its choice and 1/(n_obs + 1) on
   every choice, normalised, and a uniform prior. Weights: 1 per observation (beyond 25
   observations the oldest are ramped down, Optuna's ``default_weights``) and 1 for the prior.
4. ``multivariate=True``: the kernels of a trial's hyperparameters multiply, with shared
   weights, so the marginal density of one hyperparameter is exactly the 1-D mixture above.
   ``group=True``: a hyperparameter's estimator uses only the trials that have it (under
   algorithm selection, the trials of its model). TPE draws 24 candidates from l and keeps
   the one where the joint l/g is largest.

Densities are Optuna's: per unit of log x for a log-scaled float, probabilities for ints,
stepped floats and categoricals. Trials numbered below k are taken in their final states: with
several workers a trial that finished after trial k was chosen counted as running then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots
from scipy.special import log_ndtr, logsumexp, ndtr

from hpdash import attrs as study_attrs
from hpdash.errors import HpdashError
from hpdash.explain.surrogate import grid_values, study_strategy
from hpdash.vocabulary import STRATEGIES, strategy_name

RECONSTRUCTION_LABEL = (
    "reconstruction of TPE's densities (Optuna's Parzen estimator rule), not the sampler's own objects"
)
GAMMA_RULE = "n_below = min(ceil(0.1 × n), 25) of the n finished trials (Optuna's default gamma)"
PRIOR_WEIGHT = 1.0  # Optuna 5's default prior_weight
GOOD_COLOR = STRATEGIES["tpe"].color
BAD_COLOR = "#9e9e9e"
TRIAL_COLOR = "#d62728"


class TPEUnavailable(HpdashError):
    """The study, or the step asked for, has no TPE state to show (the message says why)."""


def default_gamma(n: int) -> int:
    """Optuna's default gamma: how many of ``n`` finished trials are "good"."""
    return min(math.ceil(0.1 * n), 25)


def default_weights(n: int) -> np.ndarray:
    """Optuna's default weights of ``n`` observations in trial order: 1 each, except that
    beyond 25 the oldest ``n - 25`` ramp up linearly from 1/n."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, num=n - 25), np.ones(25)])


@dataclass(frozen=True)
class TPEStudy:
    """What the reconstruction needs from a TPE study: its trials, direction and start-up."""

    trials: tuple[FrozenTrial, ...]
    direction: StudyDirection
    n_startup_trials: int | None


def tpe_study(study: Any) -> TPEStudy:
    """The trials, direction and start-up trials of a TPE study; ``TPEUnavailable`` otherwise."""
    name = getattr(study, "study_name", "this study")
    strategy = study_strategy(study)
    if strategy != "tpe":
        raise TPEUnavailable(
            f"Study {name!r} runs {strategy_name(strategy) if strategy else 'an unrecorded strategy'}, not TPE: the "
            "TPE view needs a tpe study "
            "(a Gaussian-process study has the surrogate view, hpdash.explain.surrogate)."
        )
    if len(study.directions) > 1:
        raise TPEUnavailable(f"Study {name!r} has several objectives: the TPE view needs one.")
    record = (getattr(study, "user_attrs", None) or {}).get(study_attrs.SAMPLER)
    startup = record.get("startup_trials") if isinstance(record, dict) else None
    trials = tuple(t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)
    return TPEStudy(trials, study.direction, None if startup is None else int(startup))


# ------------------------------------------------------------------------------ the split
@dataclass(frozen=True)
class Split:
    """TPE's split before trial ``k``.

    ``frame``: one row per trial numbered below k that TPE saw (COMPLETE, PRUNED, RUNNING), in
    number order: ``number``, ``state``, ``value`` (a pruned trial's last intermediate value)
    and ``group`` ("good" or "bad"). ``threshold``: the worst good COMPLETE value (None if no
    completed trial is good). ``random_startup``: trial k was drawn at random (None: start-up
    unknown). ``trial_value``: trial k's value, if it completed.
    """

    k: int
    direction: StudyDirection
    frame: pd.DataFrame
    n: int
    n_below: int
    rule: str
    threshold: float | None
    random_startup: bool | None
    trial_value: float | None


def _direction(direction: StudyDirection | str) -> StudyDirection:
    if isinstance(direction, StudyDirection):
        return direction
    return StudyDirection.MAXIMIZE if str(direction).lower() == "maximize" else StudyDirection.MINIMIZE


def _pruned_key(trial: FrozenTrial, direction: StudyDirection) -> tuple[float, float]:
    """Optuna's order of pruned trials: furthest step first, then best last value (NaN last)."""
    if not trial.intermediate_values:
        return 1.0, 0.0
    step, value = max(trial.intermediate_values.items())
    if math.isnan(value):
        return -step, math.inf
    return -step, value if direction == StudyDirection.MINIMIZE else -value


def _before(trials: Sequence[FrozenTrial], k: int) -> list[FrozenTrial]:
    last = max((t.number for t in trials if t.state != TrialState.WAITING), default=-1) + 1
    if not 0 <= k <= last:
        raise TPEUnavailable(
            f"Step {k} is out of range: the study has trials 0 to {last - 1}; pick one from 0 to {last}."
        )
    return sorted((t for t in trials if t.number < k), key=lambda t: t.number)


def tpe_split(
    trials: Sequence[FrozenTrial],
    k: int,
    direction: StudyDirection | str,
    gamma: Callable[[int], int] = default_gamma,
    n_startup_trials: int | None = None,
) -> Split:
    """The good/bad split TPE made before trial ``k`` (see the module docstring, step 2)."""
    direction = _direction(direction)
    before = _before(trials, k)
    complete = [t for t in before if t.state == TrialState.COMPLETE]
    pruned = [t for t in before if t.state == TrialState.PRUNED]
    running = [t for t in before if t.state == TrialState.RUNNING]
    n = len(complete) + len(pruned)
    n_below = gamma(n)
    ranked = sorted(complete, key=_value, reverse=direction == StudyDirection.MAXIMIZE)
    good = ranked[: min(n_below, len(ranked))]
    good += sorted(pruned, key=lambda t: _pruned_key(t, direction))[: max(0, n_below - len(good))]
    good_numbers = {t.number for t in good}
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": _value(t) if t.state == TrialState.COMPLETE else _last_value(t),
            "group": "good" if t.number in good_numbers else "bad",
        }
        for t in sorted([*complete, *pruned, *running], key=lambda t: t.number)
    ]
    good_values = [_value(t) for t in good if t.state == TrialState.COMPLETE]
    target = next((t for t in trials if t.number == k), None)
    return Split(
        k=k,
        direction=direction,
        frame=pd.DataFrame(rows, columns=["number", "state", "value", "group"]),
        n=n,
        n_below=n_below,
        rule=GAMMA_RULE if gamma is default_gamma else f"n_below = gamma(n) = {n_below} of the n = {n} finished trials",
        threshold=(max(good_values) if direction == StudyDirection.MINIMIZE else min(good_values))
        if good_values
        else None,
        random_startup=None if n_startup_trials is None else n < n_startup_trials,
        trial_value=_value(target) if target is not None and target.state == TrialState.COMPLETE else None,
    )


def _value(trial: FrozenTrial) -> float:
    """A COMPLETE trial's value."""
    return float(cast(float, trial.value))


def _last_value(trial: FrozenTrial) -> float:
    return float(trial.intermediate_values[max(trial.intermediate_values)]) if trial.intermediate_values else math.nan


# ------------------------------------------------------------------------------ Parzen estimators
def _log_gauss_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)), computed in the tail where it is accurate (as Optuna and scipy do)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.empty(a.shape)
    left, right = b <= 0, a > 0
    central = ~(left | right)

    def diff(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return p + np.log1p(-np.exp(q - p))

    with np.errstate(divide="ignore"):
        out[left] = diff(log_ndtr(b[left]), log_ndtr(a[left]))
        out[right] = diff(log_ndtr(-a[right]), log_ndtr(-b[right]))
        out[central] = np.log1p(-ndtr(a[central]) - ndtr(-b[central]))
    return out


def _weights(n_obs: int) -> np.ndarray:
    w = np.append(default_weights(n_obs), PRIOR_WEIGHT) if n_obs else np.array([1.0])
    return w / w.sum()


def _numeric_log_pdf(observed: np.ndarray, dist: FloatDistribution | IntDistribution, x: np.ndarray) -> np.ndarray:
    """Log density (log probability for an int or stepped float) of the Parzen mixture of
    ``observed`` at ``x``, Optuna's rule (module docstring, step 3)."""
    step = dist.step
    low, high = float(dist.low), float(dist.high)
    if step is not None:
        low, high = low - step / 2, high + step / 2
    transform: Callable[[Any], Any] = np.log if dist.log else np.asarray
    low, high = float(transform(low)), float(transform(high))
    mus = np.asarray(transform(observed), dtype=float)
    ends = np.concatenate([[low], np.sort(mus), [high]])
    sigmas = np.maximum(ends[1:-1] - ends[:-2], ends[2:] - ends[1:-1])
    if len(mus) >= 2:  # consider_endpoints=False
        sigmas[0], sigmas[-1] = ends[2] - ends[1], ends[-2] - ends[-3]
    sigmas = np.clip(sigmas[np.argsort(np.argsort(mus))], (high - low) / min(100.0, len(mus) + 2), high - low)
    mus, sigmas = np.append(mus, 0.5 * (low + high)), np.append(sigmas, high - low)
    norm = _log_gauss_mass((low - mus) / sigmas, (high - mus) / sigmas)
    x = np.asarray(x, dtype=float)[:, None]
    if step is None:
        z = (transform(x) - mus) / sigmas
        kernel = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - np.log(sigmas) - norm
        kernel = np.where((transform(x) < low) | (transform(x) > high), -np.inf, kernel)
    else:
        left, right = transform(x - step / 2), transform(x + step / 2)
        kernel = _log_gauss_mass((left - mus) / sigmas, (right - mus) / sigmas) - norm
    return np.asarray(logsumexp(kernel + np.log(_weights(len(observed))), axis=1))


def _categorical_log_pdf(observed: np.ndarray, n_choices: int, x: np.ndarray) -> np.ndarray:
    """Log probability of choice indices ``x`` under the categorical Parzen mixture."""
    n_kernels = len(observed) + 1
    kernels = np.full((n_kernels, n_choices), PRIOR_WEIGHT / n_kernels)
    kernels[np.arange(len(observed)), observed.astype(int)] += 1.0
    kernels /= kernels.sum(axis=1, keepdims=True)
    if not len(observed):
        kernels = np.full((1, n_choices), 1.0 / n_choices)
    log_k = np.log(kernels[:, np.asarray(x, dtype=int)]).T
    return np.asarray(logsumexp(log_k + np.log(_weights(len(observed))), axis=1))


def log_pdf(observed: Sequence[Any], dist: BaseDistribution, values: Sequence[Any]) -> np.ndarray:
    """The log density of TPE's 1-D Parzen estimator on the ``observed`` values of one
    hyperparameter (in trial order), at ``values`` (both external values, as in trial params)."""
    obs = np.array([dist.to_internal_repr(v) for v in observed], dtype=float)
    at = np.array([dist.to_internal_repr(v) for v in values], dtype=float)
    if isinstance(dist, CategoricalDistribution):
        return _categorical_log_pdf(obs, len(dist.choices), at)
    assert isinstance(dist, (FloatDistribution, IntDistribution)), dist
    return _numeric_log_pdf(obs, dist, at)


@dataclass(frozen=True)
class Densities:
    """l(x), g(x) and l/g of one hyperparameter before trial ``k``.

    ``frame``: ``x``, ``l``, ``g``, ``ratio`` (l/g) and their logs ``log_l``, ``log_g``,
    ``log_ratio`` (TPE maximises the joint log ratio). ``good``/``bad``: the values the
    estimators were built on. ``trial_x``: where trial k put this hyperparameter (None if it
    does not exist or did not use it), with ``trial_log_ratio`` there. ``unit``: what l and g
    measure."""

    param: str
    distribution: BaseDistribution
    split: Split
    frame: pd.DataFrame
    good: tuple[Any, ...]
    bad: tuple[Any, ...]
    trial_x: Any
    trial_log_ratio: float | None
    unit: str
    label: str = RECONSTRUCTION_LABEL


def densities(
    trials: Sequence[FrozenTrial],
    k: int,
    param: str,
    direction: StudyDirection | str,
    n: int = 200,
    gamma: Callable[[int], int] = default_gamma,
    n_startup_trials: int | None = None,
) -> Densities:
    """TPE's l(x) (good trials) and g(x) (bad trials) for ``param`` before trial ``k``, on a grid
    of ``n`` values (its integers, steps or choices when fewer), with trial k's value."""
    split = tpe_split(trials, k, direction, gamma, n_startup_trials)
    by_number = {t.number: t for t in trials}
    target = by_number.get(k)
    users = [by_number[int(m)] for m in split.frame["number"] if param in by_number[int(m)].params]
    chooser = target if target is not None and param in target.distributions else (users[-1] if users else None)
    if chooser is None:
        raise TPEUnavailable(f"No trial before trial {k} used {param!r}, and trial {k} did not: nothing to show.")
    dist = chooser.distributions[param]
    if dist.single():
        raise TPEUnavailable(f"{param!r} has a single value: TPE does not model it; pick another hyperparameter.")
    groups = dict(zip(split.frame["number"], split.frame["group"]))
    same = [t for t in users if t.distributions[param] == dist]
    good = tuple(t.params[param] for t in same if groups[t.number] == "good")
    bad = tuple(t.params[param] for t in same if groups[t.number] == "bad")
    trial_x = target.params.get(param) if target is not None else None
    xs = grid_values(dist, n, [] if trial_x is None else [trial_x])
    log_l, log_g = log_pdf(good, dist, xs), log_pdf(bad, dist, xs)
    frame = pd.DataFrame(
        {
            "x": xs,
            "l": np.exp(log_l),
            "g": np.exp(log_g),
            "ratio": np.exp(log_l - log_g),
            "log_l": log_l,
            "log_g": log_g,
            "log_ratio": log_l - log_g,
        }
    )
    trial_ratio = None
    if trial_x is not None:
        trial_ratio = float(log_pdf(good, dist, [trial_x])[0] - log_pdf(bad, dist, [trial_x])[0])
    numeric = _numeric(dist)
    if numeric is None or numeric.step is not None:
        unit = "probability"
    else:
        unit = "density per unit of log x" if numeric.log else "density per unit of x"
    return Densities(param, dist, split, frame, good, bad, trial_x, trial_ratio, unit)


# ------------------------------------------------------------------------------ figures
def split_figure(split: Split) -> go.Figure:
    """The trials before k by number and value, coloured good/bad, with the gamma threshold
    (pruned trials at their last intermediate value, open; trial k's score as a star)."""
    fig = go.Figure()
    for group, color in (("good", GOOD_COLOR), ("bad", BAD_COLOR)):
        for state, symbol in (("COMPLETE", "circle"), ("PRUNED", "circle-open"), ("RUNNING", "x-thin-open")):
            rows = split.frame[(split.frame["group"] == group) & (split.frame["state"] == state)]
            if rows.empty:
                continue
            name = group if state == "COMPLETE" else f"{group} ({state.lower()})"
            marker = {"color": color, "size": 8, "symbol": symbol}
            fig.add_trace(go.Scatter(x=rows["number"], y=rows["value"], mode="markers", marker=marker, name=name))
    if split.threshold is not None:
        line = {"color": GOOD_COLOR, "dash": "dash"}
        ends = [-0.5, split.k - 0.5]
        name = f"gamma threshold: the {split.n_below} best of {split.n}"
        fig.add_trace(go.Scatter(x=ends, y=[split.threshold] * 2, mode="lines", line=line, name=name))
    if split.trial_value is not None:
        star = {"symbol": "star", "size": 14, "color": TRIAL_COLOR}
        fig.add_trace(
            go.Scatter(x=[split.k], y=[split.trial_value], mode="markers", marker=star, name=f"trial {split.k}")
        )
    how = {True: " (trial drawn at random: start-up)", False: " (trial chosen where l/g is largest)", None: ""}
    title = f"TPE's split before trial {split.k}{how[split.random_startup]}<br><sup>{split.rule}</sup>"
    fig.update_layout(title=title, xaxis_title="trial number", yaxis_title="objective value")
    return fig


def _numeric(dist: BaseDistribution) -> FloatDistribution | IntDistribution | None:
    return dist if isinstance(dist, (FloatDistribution, IntDistribution)) else None


def _shown(dist: BaseDistribution, values: Sequence[Any]) -> list[Any]:
    return [str(v) for v in values] if isinstance(dist, CategoricalDistribution) else list(values)


def density_figure(d: Densities) -> go.Figure:
    """l(x) and g(x) with the good and bad values as rugs (counts on the bars of a categorical)
    (top), l(x)/g(x) on a log axis (bottom), trial k marked."""
    numeric = _numeric(d.distribution)
    xs = _shown(d.distribution, d.frame["x"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.07)
    for column, values, color, name in (("l", d.good, GOOD_COLOR, "good"), ("g", d.bad, BAD_COLOR, "bad")):
        label = f"{column}(x): {len(values)} {name} trials"
        if numeric is None:
            counts = [f"{sum(v == x for v in values)} {name}" for x in d.frame["x"]]
            fig.add_trace(go.Bar(x=xs, y=d.frame[column], marker_color=color, name=label, text=counts), row=1, col=1)
            continue
        line = {"color": color, "shape": "linear" if numeric.step is None else "hvh"}
        fig.add_trace(go.Scatter(x=xs, y=d.frame[column], mode="lines", line=line, name=label), row=1, col=1)
        rug = {"symbol": "line-ns-open", "size": 14, "color": color}
        rug_trace = go.Scatter(x=list(values), y=[0] * len(values), mode="markers", marker=rug, name=f"{name} values")
        fig.add_trace(rug_trace, row=1, col=1)
    shape = "linear" if numeric is None or numeric.step is None else "hvh"
    ratio = {"mode": "lines" if numeric is not None else "markers", "line": {"color": GOOD_COLOR, "shape": shape}}
    fig.add_trace(go.Scatter(x=xs, y=d.frame["ratio"], name="l(x) / g(x)", **ratio), row=2, col=1)
    if d.trial_x is not None and d.trial_log_ratio is not None:
        star = {"symbol": "star", "size": 14, "color": TRIAL_COLOR}
        x, y = _shown(d.distribution, [d.trial_x]), [math.exp(d.trial_log_ratio)]
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", marker=star, name=f"trial {d.split.k}"), row=2, col=1)
    if numeric is not None and numeric.log:
        fig.update_xaxes(type="log")
    fig.update_xaxes(title_text=d.param, row=2, col=1)
    fig.update_yaxes(title_text=d.unit, row=1, col=1)
    fig.update_yaxes(title_text="l(x) / g(x)", type="log", row=2, col=1)
    title = f"Inside TPE before trial {d.split.k}: {d.param}<br><sup>{d.label}</sup>"
    fig.update_layout(title=title, barmode="group", legend={"orientation": "h", "y": -0.2})
    return fig
