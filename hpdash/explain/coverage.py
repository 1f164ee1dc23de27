"""Grid and random search drawn honestly: the grid's order, and how evenly samples cover space.

Grid order. The runner shuffles a grid's points with the study's sampler seed
(``numpy.random.default_rng(sampler_seed).permutation``) and enqueues the first ``budget`` of
them as the study's slots, so a cut grid runs a seeded random subset in a random order, not a
march along the axes (``hpdash.experiments``, ``hpdash.runner._budget_slots``). The study's
``hpdash.grid_order`` attr records the size, the budget and that the order is that
permutation; ``grid_order_data`` rebuilds the grid from the stored search space and spec,
replays the permutation, and finds the trial that actually ran each point (by its params).

Coverage. ``coverage_data`` maps trials into the unit cube of the search space: a float range
``[low, high]`` to ``[0, 1]`` (log10 first when log-scaled), an int range as Optuna's samplers see
it, ``[low - 0.5, high + 0.5]`` (so each integer owns an equal cell), and a categorical's k choices
to the cell centres ``(i + 0.5) / k``. ``discrepancy`` measures how evenly points fill that cube
with the centred L2 discrepancy (``scipy.stats.qmc.discrepancy(method="CD")``, Hickernell 1998:
for every point x of the cube and every subset of the coordinates, the share of the samples in
the box between x and its nearest corner of the cube against that box's volume, averaged in
L2; lower is more even, and it does not change when the cube is reflected). ``draw_samples`` draws the points Optuna's
RandomSampler and QMCSampler (scrambled Sobol) would try for a space, on an in-memory study
with a constant objective: no model is fitted, and every figure of them says so.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import qmc

from hpdash import attrs as study_attrs
from hpdash import experiments, plots, results, vocabulary
from hpdash import space as hp_space
from hpdash.explain.steps import fixed_axis
from hpdash.results import PARAM_PREFIX, param_name
from hpdash.space import Hyperparameter, SearchSpace
from hpdash.status import load_spec_of
from hpdash.strategies import make_sampler, worker_seed

DISCREPANCY_METHOD = "CD"
DISCREPANCY_NAME = "centred L2 discrepancy (scipy.stats.qmc.discrepancy, method='CD')"
ILLUSTRATION = "drawn for illustration, no model fitted"
NOT_RUN = "not run"
#: The most points ``draw_samples`` draws (each is one ask/tell on an in-memory study).
MAX_ILLUSTRATION_POINTS = 4096
STRATEGY_LABELS = {"qmc": "QMC (scrambled Sobol)", "random": "Random"}


# --------------------------------------------------------------------------- grid order


@dataclass(frozen=True, eq=False)
class GridOrder:
    """A grid study's points and the order they ran in.

    ``points``: one row per grid point (``point``: its index in ``space.grid_points`` order;
    ``position``: its place in the seeded permutation; ``planned``: within the budget;
    ``number``: the trial that ran it, or NA; ``state``: that trial's state, or "not run";
    ``value``; then ``params_<name>``). ``note``: ``experiments.grid_note``.
    """

    points: pd.DataFrame
    grid_size: int
    budget: int
    cut: bool
    seed: int
    note: str

    @property
    def run_order(self) -> list[int]:
        """The grid point indices in the order their trials ran (by trial number)."""
        ran = self.points.dropna(subset=["number"]).sort_values("number")
        return [int(p) for p in ran["point"]]


def _key(values: Sequence[Any]) -> tuple[Any, ...]:
    """A hashable key of param values: numbers to 12 significant digits, missing to None."""
    out: list[Any] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
            out.append(float(f"{float(v):.12g}"))
        else:
            out.append(v)
    return tuple(out)


def grid_order_frame(points: Sequence[Mapping[str, Any]], seed: int, budget: int, frame: pd.DataFrame) -> pd.DataFrame:
    """``GridOrder.points`` for a grid (``space.grid_points``), the study's sampler seed, its
    budget and its ``trials_frame``. A point several trials ran (a stopped trial's point runs
    again) is credited to the lowest-numbered trial the user did not stop."""
    n = len(points)
    order = np.random.default_rng(seed).permutation(n)
    position = np.empty(n, dtype="int64")
    position[order] = np.arange(n)
    names = list(dict.fromkeys(name for p in points for name in p))
    columns = [PARAM_PREFIX + name for name in names]
    found: dict[tuple[Any, ...], tuple[int, str, float]] = {}
    if not frame.empty:
        states = plots.display_states(frame)
        ranked = frame.assign(_state=states, _stopped=states == plots.STOPPED_STATE)
        ranked = ranked.sort_values(["_stopped", "number"], kind="stable")
        rows = ranked.reindex(columns=columns)  # a param no trial used is all-missing
        for values, number, state, value in zip(
            rows.itertuples(index=False, name=None), ranked["number"], ranked["_state"], ranked["value"]
        ):
            found.setdefault(_key(values), (int(number), str(state), float(value)))
    matched = [found.get(_key([p.get(name) for name in names])) for p in points]
    data = pd.DataFrame(
        {
            "point": np.arange(n),
            "position": position,
            "planned": position < budget,
            "number": pd.array([m[0] if m else None for m in matched], dtype="Int64"),
            "state": [m[1] if m else NOT_RUN for m in matched],
            "value": [m[2] if m else math.nan for m in matched],
        }
    )
    for name, column in zip(names, columns):
        data[column] = [p.get(name) for p in points]
    return data


def study_spaces(study: optuna.Study) -> dict[str, SearchSpace]:
    """The study's resolved search space per model (its ``hpdash.space`` attr)."""
    raw = study.user_attrs.get(study_attrs.SPACE)
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"Study {study.study_name!r} has no stored search space (not made by hpdash?)")
    return {model: hp_space.parse_space(entry) for model, entry in raw.items()}


def flat_space(spaces: Mapping[str, SearchSpace]) -> dict[str, Hyperparameter]:
    """Optuna param name -> hyperparameter (``<model>__<name>`` under algorithm selection)."""
    several = len(spaces) > 1
    return {hp_space.param_name(m, name, several): hp for m, one in spaces.items() for name, hp in one.items()}


def grid_order_data(study: optuna.Study, frame: pd.DataFrame | None = None) -> GridOrder:
    """The grid of a grid study (``frame``: its ``trials_frame`` when already read) and the
    order it ran in. ValueError for a study without a ``hpdash.grid_order`` attr, or when the
    rebuilt grid does not have the recorded size."""
    record = study.user_attrs.get(study_attrs.GRID)
    if not record:
        raise ValueError(f"Study {study.study_name!r} is not a grid study (no {study_attrs.GRID} attr)")
    spec = load_spec_of(study)
    size, budget = int(record["grid_size"]), int(record.get("budget", record["grid_size"]))
    points = hp_space.grid_points(study_spaces(study), spec.grid_points, limit=size)
    if len(points) != size:
        raise ValueError(f"The stored space gives {len(points)} grid points, but the study recorded {size}")
    frame = results.trials_frame(study) if frame is None else frame
    data = grid_order_frame(points, spec.sampler_seed, budget, frame)
    note = experiments.grid_note(record, spec.n_trials, spec.sampler_seed)
    return GridOrder(data, size, budget, bool(record.get("cut", budget < size)), spec.sampler_seed, note)


def grid_cells(order: GridOrder, x_param: str, y_param: str) -> pd.DataFrame:
    """Grid points per (x, y) cell of two params (other params collapse onto a cell).

    Columns: x, y, points, run (how many of them ran), first (the lowest trial number that
    ran one; NA when none did).
    """
    xc, yc = results.param_column(order.points, x_param), results.param_column(order.points, y_param)
    data = order.points.dropna(subset=[xc, yc])
    cells = data.groupby([xc, yc], sort=False, dropna=True).agg(
        points=("point", "size"), run=("number", "count"), first=("number", "min")
    )
    return cells.reset_index().rename(columns={xc: "x", yc: "y"})


def grid_order_figure(
    order: GridOrder, x_param: str, y_param: str, log_params: Collection[str] = frozenset()
) -> go.Figure:
    """The grid in two params: points not run as grey rings, run ones filled and labelled with
    the trial that ran them (colour: how early), joined in run order by a dotted path, so a cut
    grid shows its seeded random jumps rather than a march along the axes."""
    xn, yn = param_name(x_param), param_name(y_param)
    ran = int(order.points["number"].notna().sum())
    title = f"Grid order: {ran} of {order.grid_size} points run (seeded random permutation, seed {order.seed})"
    try:
        cells = grid_cells(order, x_param, y_param)
    except KeyError:
        return plots.message_figure(f"The grid has no hyperparameter {xn} or {yn}", title)
    logs = set(log_params)
    xc, yc = results.param_column(order.points, x_param), results.param_column(order.points, y_param)
    ax, ay = fixed_axis(order.points[xc], xn in logs), fixed_axis(order.points[yc], yn in logs)
    idle, done = cells.loc[cells["run"] == 0], cells.loc[cells["run"] > 0].sort_values("first")
    where = f"{xn}=%{{x}}<br>{yn}=%{{y}}<br>"
    ring = {"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": "#9e9e9e", "width": 1.5}}
    fig = go.Figure(go.Scatter(x=ax.values(idle["x"]), y=ay.values(idle["y"]), mode="markers", name="Not run"))
    fig.update_traces(
        marker=ring, customdata=idle["points"], hovertemplate=where + "%{customdata} point(s), not run<extra></extra>"
    )
    first = done["first"].to_numpy(dtype="float64")
    marker = {"size": 14, "color": first, "colorscale": "Viridis", "line": {"color": "#333", "width": 0.5}}
    marker["colorbar"] = {"title": {"text": "Trial number"}}
    path = go.Scatter(x=ax.values(done["x"]), y=ay.values(done["y"]), mode="lines+markers+text", marker=marker)
    fig.add_trace(
        path.update(
            name="Run (label: trial number)",
            text=[str(int(f)) for f in first],
            textposition="top center",
            line={"color": "rgba(90,90,90,0.45)", "dash": "dot", "width": 1},
            customdata=np.column_stack([first, done["run"], done["points"]]),
            hovertemplate=where
            + "first run: trial %{customdata[0]}<br>%{customdata[1]} of %{customdata[2]} run<extra></extra>",
        )
    )
    subtitle = "a seeded random subset of the grid" if order.cut else "every grid point, in a seeded random order"
    fig.update_layout(
        title={"text": title, "subtitle": {"text": subtitle}},
        xaxis=ax.layout(xn),
        yaxis=ay.layout(yn),
        legend=plots.LEGEND_BELOW,
        meta={"grid_order": {"run": ran, "grid_size": order.grid_size, "cut": order.cut, "note": order.note}},
    )
    return fig


# --------------------------------------------------------------------------- coverage


def to_unit(values: pd.Series, hp: Hyperparameter) -> np.ndarray:
    """``values`` of ``hp`` in ``[0, 1]`` (see the module docstring); NaN where missing."""
    if hp.type == "categorical":
        choices = list(hp.choices or ())
        codes = values.map({c: i for i, c in enumerate(choices)}).to_numpy(dtype="float64")
        if None in choices:  # the frame holds a None choice as missing
            codes[values.isna().to_numpy()] = choices.index(None)
        return (codes + 0.5) / len(choices)
    low, high = (float(b) for b in hp.bounds())
    if hp.type == "int":  # Optuna's cells: each integer owns [i - 0.5, i + 0.5]
        low, high = low - 0.5, high + 0.5
    numbers = values.to_numpy(dtype="float64")
    if hp.log:
        with np.errstate(divide="ignore", invalid="ignore"):
            numbers, low, high = np.log10(numbers), math.log10(low), math.log10(high)
    return (numbers - low) / (high - low)


def unit_ticks(hp: Hyperparameter) -> tuple[list[float], list[str]]:
    """Tick positions on ``hp``'s unit axis, labelled in its own units."""
    if hp.type == "categorical":
        choices = list(hp.choices or ())
        return [(i + 0.5) / len(choices) for i in range(len(choices))], [plots.plain(c) for c in choices]
    low, high = (float(b) for b in hp.bounds())
    if hp.log:
        decades = range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)
        raw = sorted({low, high, *(10.0**d for d in decades)})
    else:
        raw = list(np.linspace(low, high, 5))
    if hp.type == "int":
        raw = sorted({float(round(v)) for v in raw})
    ticks = to_unit(pd.Series(raw, dtype="float64"), hp)
    return [float(t) for t in ticks], [f"{v:.3g}" for v in raw]


def _unit_axis(hp: Hyperparameter, name: str) -> dict[str, Any]:
    """A unit axis with a little margin, ticked in ``hp``'s own units."""
    vals, text = unit_ticks(hp)
    title = f"{name} (log)" if hp.log else name
    ticks = {"tickmode": "array", "tickvals": vals, "ticktext": text}
    return {"range": [-0.04, 1.04], "autorange": False, "title": {"text": title}, **ticks}


def coverage_data(frame: pd.DataFrame, params: Sequence[str], space: Mapping[str, Hyperparameter]) -> pd.DataFrame:
    """The trials of ``frame`` that used every param in ``params``, in the unit cube.

    ``space``: param name -> hyperparameter (``flat_space``). Columns: the frame's study,
    strategy and seed columns when present, number, state, value, then one column per param
    (named by the param) in ``[0, 1]``; rows in trial-number order.
    """
    names = [param_name(p) for p in params]
    missing = [n for n in names if n not in space]
    if missing:
        raise KeyError(f"Not in the search space: {', '.join(missing)}")
    keep = [c for c in ("study", "strategy", "seed", "number", "state", "value") if c in frame.columns]
    columns = [results.param_column(frame, n) for n in names]
    # A trial that did not use a param (a conditional one) is left out; a None choice is kept.
    required = [c for n, c in zip(names, columns) if None not in (space[n].choices or ())]
    data = frame.dropna(subset=required).sort_values("number", kind="stable")
    out = data[keep].reset_index(drop=True)
    for name, column in zip(names, columns):
        out[name] = to_unit(data[column], space[name])
    return out


def discrepancy(points: np.ndarray | pd.DataFrame, method: str = DISCREPANCY_METHOD) -> float:
    """``scipy.stats.qmc.discrepancy`` of points in the unit cube (rows: points); NaN for
    fewer than two. Default: the centred L2 discrepancy ("CD"); lower is more even."""
    sample = np.asarray(points, dtype="float64")
    if sample.ndim != 2 or len(sample) < 2:
        return math.nan
    if not np.isfinite(sample).all() or sample.min() < -1e-9 or sample.max() > 1 + 1e-9:
        raise ValueError("discrepancy needs finite points in the unit cube [0, 1]^d")
    return float(qmc.discrepancy(np.clip(sample, 0.0, 1.0), method=method))


@dataclass(frozen=True, eq=False)
class CoverageSet:
    """One strategy's samples in the unit cube with their discrepancy over ``params``."""

    label: str
    strategy: str
    seed: int | None
    params: tuple[str, ...]
    points: pd.DataFrame  # coverage_data
    discrepancy: float
    illustrative: bool = False

    @property
    def n(self) -> int:
        return len(self.points)


def _label(strategy: str) -> str:
    return STRATEGY_LABELS.get(strategy, vocabulary.strategy_name(strategy))


def coverage_sets(
    frame: pd.DataFrame,
    params: Sequence[str],
    space: Mapping[str, Hyperparameter],
    strategies: Sequence[str] = ("qmc", "random"),
    seeds: Mapping[str, int] | None = None,
    same_n: bool = True,
) -> list[CoverageSet]:
    """One ``CoverageSet`` per strategy of a comparison frame that has one (its seed from
    ``seeds``, else its first in the frame); with ``same_n`` each keeps only its first n
    trials, n the smallest count, so the discrepancies compare like with like."""
    picked: list[tuple[str, int, pd.DataFrame]] = []
    for strategy in strategies:
        rows = frame.loc[frame["strategy"] == strategy]
        if rows.empty:
            continue
        seed = int((seeds or {}).get(strategy, rows["seed"].iloc[0]))
        picked.append((strategy, seed, coverage_data(rows.loc[rows["seed"] == seed], params, space)))
    n = min((len(p) for _, _, p in picked), default=0)
    names = tuple(param_name(p) for p in params)
    out = []
    for strategy, seed, points in picked:
        points = points.iloc[:n] if same_n else points
        d = discrepancy(points[list(names)])
        out.append(CoverageSet(_label(strategy), strategy, seed, names, points, d))
    return out


def draw_samples(spaces: Mapping[str, SearchSpace], n: int, strategy: str, seed: int = 0) -> pd.DataFrame:
    """The first ``n`` trials a one-worker study of ``strategy`` with sampler seed ``seed``
    would try in ``spaces`` (``strategies.make_sampler`` with worker 0's seed, as the runner
    seeds it), drawn on an in-memory study whose objective is 0: no model is fitted. QMC's
    first trial comes from its independent RandomSampler (Optuna learns the space from it),
    as in a real study. Returns a comparison-style frame (study, strategy, seed, trials)."""
    if not 1 <= n <= MAX_ILLUSTRATION_POINTS:
        raise ValueError(f"n must be between 1 and {MAX_ILLUSTRATION_POINTS}, not {n}")
    sampler = make_sampler(strategy, worker_seed(seed, 0), study_seed=seed)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "Trial i finished" line per point
    try:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for _ in range(n):
            trial = study.ask()
            hp_space.suggest(trial, spaces)
            study.tell(trial, 0.0)
    finally:
        optuna.logging.set_verbosity(verbosity)
    frame = results.trials_frame(study)
    frame.insert(0, "seed", seed)
    frame.insert(0, "strategy", strategy)
    frame.insert(0, "study", f"illustration-{strategy}-s{seed}")
    return frame


def illustrative_sets(
    spaces: Mapping[str, SearchSpace], n: int, params: Sequence[str] | None = None, seed: int = 0
) -> list[CoverageSet]:
    """QMC and random search's first ``n`` points in ``spaces`` (``draw_samples``), labelled
    ILLUSTRATION. ``params``: the coverage's params (default: every param of the space)."""
    flat = flat_space(spaces)
    chosen = list(params) if params is not None else list(flat)
    frame = pd.concat([draw_samples(spaces, n, s, seed) for s in ("qmc", "random")], ignore_index=True)
    return [
        CoverageSet(f"{c.label} ({ILLUSTRATION})", c.strategy, c.seed, c.params, c.points, c.discrepancy, True)
        for c in coverage_sets(frame, chosen, flat, same_n=False)
    ]


def coverage_figure(
    sets: Sequence[CoverageSet], x_param: str, y_param: str, space: Mapping[str, Hyperparameter]
) -> go.Figure:
    """The samples of each set in the unit square of two params, side by side, the space's
    volume drawn as a box; each panel's title gives n and its discrepancy (lower: more even)."""
    xn, yn = param_name(x_param), param_name(y_param)
    title = f"Coverage of the space: {xn} × {yn}"
    sets = [s for s in sets if xn in s.points.columns and yn in s.points.columns]
    if not sets:
        return plots.message_figure(f"No samples used both {xn} and {yn}", title)
    dims = {len(s.params) for s in sets}
    over = f"over {dims.pop()} hyperparameters" if len(dims) == 1 else "over each set's hyperparameters"
    titles = [f"{plots.plain(s.label)}<br>n = {s.n}, CD discrepancy {s.discrepancy:.4f}" for s in sets]
    fig = make_subplots(rows=1, cols=len(sets), subplot_titles=titles, horizontal_spacing=0.06)
    xaxis, yaxis = (_unit_axis(space[name], name) for name in (xn, yn))
    box = {"line": {"color": "#555", "width": 1}, "fillcolor": "rgba(200,200,200,0.15)", "layer": "below"}
    for i, s in enumerate(sets, start=1):
        fig.add_shape(type="rect", x0=0, y0=0, x1=1, y1=1, row=1, col=i, **box)
        marker = {"size": 7, "color": plots.strategy_color(s.strategy, i), "line": {"color": "#333", "width": 0.5}}
        hover = "Trial %{customdata}<extra></extra>"
        points = go.Scatter(x=s.points[xn], y=s.points[yn], mode="markers", name=s.label, marker=marker)
        fig.add_trace(points.update(showlegend=False, customdata=s.points["number"], hovertemplate=hover), row=1, col=i)
        fig.update_xaxes(xaxis, row=1, col=i)
        fig.update_yaxes(yaxis if i == 1 else {**yaxis, "title": None}, row=1, col=i)
        fig.update_yaxes(scaleanchor=f"x{'' if i == 1 else i}", scaleratio=1, row=1, col=i)
    fig.update_layout(
        title={
            "text": title,
            "subtitle": {"text": f"The box is the search space; discrepancy: {DISCREPANCY_NAME}, {over}"},
        },
        meta={"discrepancy": {s.label: s.discrepancy for s in sets}, "method": DISCREPANCY_METHOD},
        margin={"t": 140},  # the title and subtitle above the panels' two-line titles
    )
    return fig
