"""Inside the Gaussian process at step k: its mean, its uncertainty and its expected improvement.

Step ``k`` is the choice of trial number ``k``: the GP fitted on the completed trials numbered
below k, whose expected improvement (EI) is largest where it put trial k. (On the Study page's
slider, ``hpdash.explain.steps``, "after trial j" is followed by trial ``j + 1``: call
``surrogate_at(study, j + 1)``.)

Which GP is shown (``SurrogateView.label``):

- ``gp`` (hpdash's GP, ``hpdash.gp_sampler``): a trial the GP chose carries its fit record
  (``GP_ATTR``), and ``GPSampler.surrogate(study, up_to=k)`` rebuilds that very GP (same
  trials, same pending points, same seed), so the view is the sampler's own model: its
  prediction at trial k's params is the recorded one, and its ``next_params`` are trial k's.
  A start-up trial (drawn at random) has no record: the view is the GP fitted on the
  completed trials below k, the model the sampler would have used.
- ``gp_torch`` (Optuna's torch ``GPSampler``): its model is not stored, so the view refits the
  same kernel family (Matérn 5/2 with one length scale per dimension, fitted by marginal
  likelihood) with hpdash's GP on the completed trials below k, labelled ``REFIT_LABEL``.
  Optuna's priors on the kernel's parameters, its categorical encoding and its EI search are
  not reproduced, so the refit's maximum need not be where trial k went (both are marked).

Data first: ``surrogate_at`` (a frozen ``SurrogateView``), ``slice_data`` (one hyperparameter,
the others held at the best trial's values), ``map_data`` (two of them); then
``slice_figure`` and ``map_figure`` draw them. Under algorithm selection (a categorical
``model`` and ``<model>__<hp>`` names, ``hpdash.space``) a slice runs over one hyperparameter
of the best trial's model, with that model's other hyperparameters held at the best trial's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from hpdash import attrs as study_attrs
from hpdash import strategies
from hpdash.errors import HpdashError
from hpdash.gp_sampler import GP_ATTR, GPSampler, Surrogate
from hpdash.space import MODEL_PARAM
from hpdash.vocabulary import STRATEGIES, strategy_name

GP_STRATEGIES = ("gp", "gp_torch")
OWN_LABEL = "the sampler's own model: the Gaussian process that chose this trial, rebuilt from its record"
REFIT_LABEL = "refitted, may differ from the sampler's state"
STARTUP_LABEL = (
    "fitted on the completed trials before this one: the sampler drew this trial at random (start-up), "
    "so this is the model it would have used, not the one that chose it"
)
NEXT_LABEL = "fitted on every completed trial so far: the model the sampler would use for the next trial"
BAND = "uncertainty (±2 sd)"
OBSERVED_COLOR = "#111111"
CHOSEN_COLOR = "#d62728"


class SurrogateUnavailable(HpdashError):
    """The study, or the step asked for, has no Gaussian process to show (the message says why)."""


@dataclass(frozen=True)
class Observation:
    """A completed trial the GP learnt from: its number, params and objective value."""

    number: int
    params: Mapping[str, Any]
    value: float


@dataclass(frozen=True, eq=False)
class SurrogateView:
    """The GP at step ``k`` and what it was fitted on.

    ``own_model``: the sampler's own GP rebuilt from trial k's record (else a refit, see
    ``label``). ``observed``: the completed trials numbered below k. ``incumbent``: the best
    of them (the lowest number among equals), whose values the other hyperparameters of a slice
    hold. ``trial_params``/``trial_value``: trial k's params and value (None when trial k does
    not exist yet, or has no value). ``model``: the incumbent's model under algorithm selection.
    """

    surrogate: Surrogate
    k: int
    strategy: str
    own_model: bool
    label: str
    incumbent: Observation
    observed: tuple[Observation, ...]
    trial_params: Mapping[str, Any] | None
    trial_value: float | None
    model: str | None
    metric: str | None

    @property
    def direction(self) -> StudyDirection:
        return self.surrogate.direction

    @property
    def scope(self) -> str:
        """What a slice holds fixed, in a sentence."""
        if self.model is None:
            return f"other hyperparameters held at the best trial's values (trial {self.incumbent.number})"
        return (
            f"algorithm selection: hyperparameters of {self.model}, the best trial's model (trial "
            f"{self.incumbent.number}), the others held at that trial's values"
        )


def study_strategy(study: Any) -> str | None:
    """The study's strategy key: from its sampler record (``attrs.SAMPLER``), else its spec;
    else ``gp`` when a trial carries hpdash's GP record; None when nothing says."""
    user_attrs = getattr(study, "user_attrs", None) or {}
    record = user_attrs.get(study_attrs.SAMPLER)
    if isinstance(record, Mapping) and record.get("strategy"):
        return str(record["strategy"])
    strategy = study_attrs.spec_of(user_attrs).get("strategy")
    if strategy:
        return str(strategy)
    if any(GP_ATTR in t.system_attrs for t in study.get_trials(deepcopy=False)):
        return "gp"
    return None


def _completed(trials: Sequence[FrozenTrial]) -> list[Observation]:
    """The completed trials with a finite value, in number order."""
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    return [Observation(t.number, dict(t.params), v) for t in done if (v := t.value) is not None and math.isfinite(v)]


def _refit_seed(study: Any, trials: Sequence[FrozenTrial], k: int) -> int:
    """The seed of the EI search of a refit: the latest GP record's before k (worker 0's GP),
    else worker 0's seed from the study's sampler record, else 0."""
    for t in sorted(trials, key=lambda t: -t.number):
        if t.number < k and isinstance(t.system_attrs.get(GP_ATTR), Mapping):
            return int(t.system_attrs[GP_ATTR]["seed"])
    record = (getattr(study, "user_attrs", None) or {}).get(study_attrs.SAMPLER)
    seed = record.get("sampler_seed") if isinstance(record, Mapping) else None
    return 0 if seed is None else strategies.worker_seed(int(seed), 0)


def surrogate_at(study: optuna.Study, k: int) -> SurrogateView:
    """The Gaussian process that chose trial ``k`` (``gp``), or a refit on the completed trials
    below k (``gp_torch``, and ``gp`` start-up trials). Raises ``SurrogateUnavailable`` for a
    study that is not a GP study, a step out of range, or one with no completed trial before it."""
    name = getattr(study, "study_name", "this study")
    strategy = study_strategy(study)
    if strategy not in GP_STRATEGIES:
        raise SurrogateUnavailable(
            f"Study {name!r} runs {strategy_name(strategy) if strategy else 'an unrecorded strategy'}, not a "
            "Gaussian process: the surrogate view needs a gp or gp_torch study. For a TPE study use "
            "TPE's view (hpdash.explain.tpe); other strategies have no model to show."
        )
    if len(study.directions) > 1:
        raise SurrogateUnavailable(f"Study {name!r} has several objectives: the GP view needs one.")
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    last = max((t.number for t in trials), default=-1) + 1
    if not 0 <= k <= last:
        raise SurrogateUnavailable(
            f"Step {k} is out of range: study {name!r} has trials 0 to {last - 1}; pick a step from 1 to "
            f"{last} ({last} is the next trial)."
        )
    completed = _completed(trials)
    observed = tuple(o for o in completed if o.number < k)
    if not observed:
        hint = (
            f"pick a step after trial {completed[0].number}, the first completed one"
            if completed
            else "run trials first"
        )
        raise SurrogateUnavailable(
            f"No trial before trial {k} of {name!r} completed: the Gaussian process needs at least one finished "
            f"trial to fit; {hint}."
        )
    target = next((t for t in trials if t.number == k), None)
    record = target.system_attrs.get(GP_ATTR) if target is not None and strategy == "gp" else None
    own = isinstance(record, Mapping)
    seed = int(record["seed"]) if isinstance(record, Mapping) else _refit_seed(study, trials, k)
    surrogate = GPSampler(seed=seed).surrogate(study, up_to=k)
    if surrogate is None:
        raise SurrogateUnavailable(
            f"Nothing to model before trial {k} of {name!r}: every hyperparameter of the completed trials has a "
            "single value. Widen the search space, or pick a later step."
        )
    label = REFIT_LABEL if strategy == "gp_torch" else OWN_LABEL if own else STARTUP_LABEL if target else NEXT_LABEL
    sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
    incumbent = max(observed, key=lambda o: (sign * o.value, -o.number))
    model = incumbent.params.get(MODEL_PARAM) if surrogate.encoder.model_choices is not None else None
    value = target.value if target is not None and target.state == TrialState.COMPLETE else None
    return SurrogateView(
        surrogate=surrogate,
        k=k,
        strategy=strategy,
        own_model=own,
        label=label,
        incumbent=incumbent,
        observed=observed,
        trial_params=dict(target.params) if target is not None else None,
        trial_value=None if value is None else float(value),
        model=None if model is None else str(model),
        metric=study_attrs.metric_of(getattr(study, "user_attrs", None) or {}),
    )


# ------------------------------------------------------------------------------ tidy data
def slice_params(view: SurrogateView) -> list[str]:
    """The hyperparameters a slice can run over: those of the best trial's configuration the GP
    models (``model`` first under algorithm selection)."""
    names = [n for n in sorted(view.surrogate.search_space) if n in view.incumbent.params]
    return sorted(names, key=lambda n: n != MODEL_PARAM)


def _check(view: SurrogateView, param: str, at: Mapping[str, Any]) -> BaseDistribution:
    space = view.surrogate.search_space
    if param not in space or param not in at:
        allowed = ", ".join(n for n in sorted(space) if n in at) or "none"
        where = f" of {at.get(MODEL_PARAM)}" if view.model is not None else ""
        raise SurrogateUnavailable(
            f"The GP at trial {view.k} does not model {param!r} for this configuration{where}: pick one of {allowed}."
        )
    return space[param]


def grid_values(dist: BaseDistribution, n: int, extra: Sequence[Any] = ()) -> list[Any]:
    """Values of one hyperparameter to evaluate: ``n`` points over its range (on a log grid
    when log-scaled), its integers or steps (all of them if there are at most ``n``), or its
    choices; plus the ``extra`` values within range (trial k's, the held one), sorted."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    assert isinstance(dist, (FloatDistribution, IntDistribution)), dist
    low, high = float(dist.low), float(dist.high)
    spaced = np.geomspace(low, high, n) if dist.log else np.linspace(low, high, n)
    step = getattr(dist, "step", None)
    if step is not None:
        count = int(round((high - low) / step)) + 1
        spaced = low + step * (np.arange(count) if count <= n else np.round((spaced - low) / step))
    extras = [float(e) for e in extra if isinstance(e, (int, float)) and not isinstance(e, bool) and low <= e <= high]
    values = np.unique(np.clip(np.concatenate([spaced, extras]), low, high))
    if isinstance(dist, IntDistribution):
        return sorted({int(round(v)) for v in values})
    return [float(v) for v in values]


def _configuration(view: SurrogateView, at: Mapping[str, Any], param: str, value: Any) -> dict[str, Any]:
    """``at`` with ``param`` set to ``value``. Under algorithm selection a ``model`` choice other
    than ``at``'s takes that model's best trial's hyperparameters (none if it has no trial)."""
    if param == MODEL_PARAM and view.model is not None and value != at.get(MODEL_PARAM):
        sign = 1.0 if view.direction == StudyDirection.MAXIMIZE else -1.0
        same = [o for o in view.observed if o.params.get(MODEL_PARAM) == value]
        best = max(same, key=lambda o: (sign * o.value, -o.number), default=None)
        return dict(best.params) if best is not None else {MODEL_PARAM: value}
    return {**at, param: value}


def _extras(view: SurrogateView, param: str, at: Mapping[str, Any]) -> list[Any]:
    sources = (at, view.trial_params or {}, view.surrogate.next_params)
    return [p[param] for p in sources if param in p]


def _predict(view: SurrogateView, configs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    mean, std = view.surrogate.predict(configs)
    return {
        "mean": mean,
        "std": std,
        "lower": mean - 2 * std,
        "upper": mean + 2 * std,
        "ei": view.surrogate.expected_improvement(configs),
    }


def slice_data(view: SurrogateView, param: str, n: int = 200, at: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The GP along one hyperparameter, the others held at ``at`` (default: the best trial's).

    Columns: ``x`` (the hyperparameter's value), ``mean`` and ``std`` (posterior mean and
    standard deviation of the objective itself, the fitted noise excluded, in objective units),
    ``lower``/``upper`` (mean - 2 std, mean + 2 std) and ``ei`` (expected improvement over the
    best posterior mean at the fitted trials). The grid holds ``at``'s and trial k's values."""
    at = dict(view.incumbent.params if at is None else at)
    xs = grid_values(_check(view, param, at), n, _extras(view, param, at))
    return pd.DataFrame({"x": xs, **_predict(view, [_configuration(view, at, param, x) for x in xs])})


def map_data(
    view: SurrogateView, x_param: str, y_param: str, n: int = 40, at: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """The GP over two hyperparameters of one configuration (the others held at ``at``, default
    the best trial's): columns ``x``, ``y`` and those of ``slice_data``, ``y`` varying slowest."""
    at = dict(view.incumbent.params if at is None else at)
    if MODEL_PARAM in (x_param, y_param) and view.model is not None:
        raise SurrogateUnavailable(
            f"A map holds the model fixed: pick two hyperparameters of {at.get(MODEL_PARAM)} (slice over {MODEL_PARAM!r})."
        )
    if x_param == y_param:
        raise SurrogateUnavailable(f"A map needs two different hyperparameters, not {x_param!r} twice.")
    xs = grid_values(_check(view, x_param, at), n, _extras(view, x_param, at))
    ys = grid_values(_check(view, y_param, at), n, _extras(view, y_param, at))
    configs = [{**at, x_param: x, y_param: y} for y in ys for x in xs]
    return pd.DataFrame({"x": [x for _ in ys for x in xs], "y": [y for y in ys for _ in xs], **_predict(view, configs)})


def observations_frame(view: SurrogateView, *params: str) -> pd.DataFrame:
    """The observed trials that used every one of ``params``: ``number``, ``value`` and one
    column per param (all observed trials for none)."""
    rows = [
        {"number": o.number, "value": o.value, **{p: o.params[p] for p in params}}
        for o in view.observed
        if all(p in o.params for p in params)
    ]
    return pd.DataFrame(rows, columns=["number", "value", *params])


# ------------------------------------------------------------------------------ figures
def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _shown(dist: BaseDistribution, values: Sequence[Any]) -> list[Any]:
    """Values as plotted: a categorical's choices as text (a categorical axis)."""
    return [str(v) for v in values] if isinstance(dist, CategoricalDistribution) else list(values)


def _axis_type(dist: BaseDistribution) -> str | None:
    return "log" if isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log else None


def _title(view: SurrogateView, what: str) -> str:
    return (
        f"Inside the Gaussian process ({strategy_name(view.strategy)}) choosing trial {view.k}: {what}"
        f"<br><sup>{view.label}; {view.scope}</sup>"
    )


def _add(fig: go.Figure, cell: tuple[int, int], x: Any, y: Any, name: str, style: dict[str, Any]) -> None:
    fig.add_trace(go.Scatter(x=list(x), y=list(y), name=name, **style), row=cell[0], col=cell[1])


def _marks(view: SurrogateView, *params: str) -> list[tuple[list[Any], str, bool]]:
    """``(values of params, name, is trial k)``: where trial k went, and this GP's own choice
    where it differs (a refit's EI maximum need not be where the sampler put trial k)."""
    marks: list[tuple[list[Any], str, bool]] = []
    trial, own = view.trial_params or {}, view.surrogate.next_params
    if all(p in trial for p in params):
        name = f"trial {view.k} (chosen by this GP)" if view.own_model else f"trial {view.k} (where it went)"
        marks.append(([trial[p] for p in params], name, True))
    if all(p in own for p in params) and (not marks or [own[p] for p in params] != marks[0][0]):
        marks.append(([own[p] for p in params], "this GP's choice (largest EI over the whole space)", False))
    return marks


def slice_figure(view: SurrogateView, param: str, n: int = 200, at: Mapping[str, Any] | None = None) -> go.Figure:
    """Posterior mean with its ±2 sd band and the observed trials (top), expected improvement
    (bottom), along ``param`` with the others held at ``at`` (default: the best trial's); the
    largest EI on the slice and where trial k went are marked."""
    data = slice_data(view, param, n, at)  # refuses a hyperparameter the GP does not model
    dist = view.surrogate.search_space[param]
    color = STRATEGIES[view.strategy].color
    categorical = isinstance(dist, CategoricalDistribution)
    xs = _shown(dist, data["x"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    if categorical:
        error = {"type": "data", "array": 2 * data["std"], "color": _rgba(color, 0.5)}
        _add(
            fig,
            (1, 1),
            xs,
            data["mean"],
            f"posterior mean, {BAND}",
            {"mode": "markers", "error_y": error, "marker": {"color": color, "size": 10}},
        )
    else:
        edge = {"mode": "lines", "line": {"width": 0}}
        _add(fig, (1, 1), xs, data["upper"], BAND, {**edge, "showlegend": False, "hoverinfo": "skip"})
        _add(fig, (1, 1), xs, data["lower"], BAND, {**edge, "fill": "tonexty", "fillcolor": _rgba(color, 0.2)})
        _add(fig, (1, 1), xs, data["mean"], "posterior mean", {"mode": "lines", "line": {"color": color}})
    seen = observations_frame(view, param)
    dots = {"mode": "markers", "marker": {"color": OBSERVED_COLOR, "size": 7}, "text": seen["number"]}
    _add(fig, (1, 1), _shown(dist, seen[param]), seen["value"], "observed trials (other hyperparameters vary)", dots)
    ei_style = {"mode": "lines+markers" if categorical else "lines", "line": {"color": color}}
    _add(fig, (2, 1), xs, data["ei"], "expected improvement", ei_style)
    top = int(np.argmax(data["ei"].to_numpy()))
    diamond = {"symbol": "diamond", "size": 11, "color": color, "line": {"color": "white", "width": 1}}
    largest = "largest expected improvement on this slice"
    _add(
        fig, (2, 1), xs[top : top + 1], data["ei"].iloc[top : top + 1], largest, {"mode": "markers", "marker": diamond}
    )
    for (value,), name, is_trial in _marks(view, param):
        x = _shown(dist, [value]) * 2
        line = {"color": CHOSEN_COLOR, "dash": "solid" if is_trial else "dot"}
        _add(fig, (2, 1), x, [0, float(data["ei"].max())], name, {"mode": "lines", "line": line})
        if is_trial and view.trial_value is not None:
            star = {"mode": "markers", "marker": {"symbol": "star", "size": 14, "color": CHOSEN_COLOR}}
            _add(fig, (1, 1), x[:1], [view.trial_value], f"trial {view.k}'s score", star)
    fig.update_xaxes(type=_axis_type(dist))
    fig.update_xaxes(title_text=param, row=2, col=1)
    fig.update_yaxes(title_text=f"objective ({view.metric})" if view.metric else "objective value", row=1, col=1)
    fig.update_yaxes(title_text="expected improvement", row=2, col=1)
    fig.update_layout(title=_title(view, param), legend={"orientation": "h", "y": -0.2})
    return fig


def map_figure(
    view: SurrogateView, x_param: str, y_param: str, n: int = 40, at: Mapping[str, Any] | None = None
) -> go.Figure:
    """Posterior mean (left) and expected improvement (right) over two hyperparameters (the
    others held at ``at``, default the best trial's), with the observed trials as points, the
    largest EI on the map and trial k (and this GP's choice, if elsewhere) marked."""
    data = map_data(view, x_param, y_param, n, at)
    xd, yd = view.surrogate.search_space[x_param], view.surrogate.search_space[y_param]
    xs, ys = _shown(xd, list(dict.fromkeys(data["x"]))), _shown(yd, list(dict.fromkeys(data["y"])))
    titles = ("posterior mean", "expected improvement")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.14)
    for col, column, scale, bar_x in ((1, "mean", "Viridis", 0.43), (2, "ei", "Magma", 1.0)):
        z = data[column].to_numpy().reshape(len(ys), len(xs))
        bar = {"x": bar_x, "len": 0.9}
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, colorscale=scale, colorbar=bar, name=titles[col - 1]), row=1, col=col)
    seen = observations_frame(view, x_param, y_param)
    outline = {"color": OBSERVED_COLOR, "width": 1}
    top = int(np.argmax(data["ei"].to_numpy()))
    points: list[tuple[Any, Any, str, dict[str, Any]]] = [
        (seen[x_param], seen[y_param], "observed trials", {"color": "white", "size": 7, "line": outline}),
        (
            data["x"].iloc[top : top + 1],
            data["y"].iloc[top : top + 1],
            "largest expected improvement on this map",
            {"symbol": "diamond", "size": 11, "color": "white", "line": outline},
        ),
    ]
    for (x, y), name, is_trial in _marks(view, x_param, y_param):
        star = {"symbol": "star" if is_trial else "star-open", "size": 15, "color": CHOSEN_COLOR}
        points.append(([x], [y], name, star))
    for col in (1, 2):
        for x, y, name, marker in points:
            style = {"mode": "markers", "marker": marker, "showlegend": col == 1}
            _add(fig, (1, col), _shown(xd, list(x)), _shown(yd, list(y)), name, style)
        fig.update_xaxes(title_text=x_param, type=_axis_type(xd), row=1, col=col)
        fig.update_yaxes(title_text=y_param, type=_axis_type(yd), row=1, col=col)
    fig.update_layout(title=_title(view, f"{x_param} and {y_param}"), legend={"orientation": "h", "y": -0.2})
    return fig
