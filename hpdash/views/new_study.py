"""The New study form's data: the search-space editor's rows, the grid preview, the run-time estimate from the smoke fit, and the form's defaults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hpdash import access, objective, runner, space
from hpdash.errors import SpecError
from hpdash.spec import load_yaml_text
from hpdash.views.formatting import EDITOR_COLUMNS, _choice_text, format_duration, format_value


def format_choices(choices: Any) -> str:
    """Choices as comma-separated YAML scalars (``gini, entropy``; ``'1'`` stays text)."""
    return ", ".join(_choice_text(c) for c in (choices or ()))


def parse_choices(text: Any) -> list[Any]:
    """``"gini, entropy"`` -> ``["gini", "entropy"]``; numbers, true/false, null are typed.

    Read with the bounded YAML loader (``spec.load_yaml_text``) as a flow list: nothing is evaluated.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    raw = str(text).strip()
    if not raw:
        return []
    if not raw.startswith("["):
        raw = f"[{raw}]"
    try:
        values = load_yaml_text(raw)  # bounded: size, depth, aliases, finite numbers
    except SpecError as exc:
        raise SpecError(f"cannot read the choices {text!r}: separate them with commas ({exc})") from exc
    if not isinstance(values, list):
        raise SpecError(f"cannot read the choices {text!r}: separate them with commas")
    return values


def space_editor_frame(search_space: space.SearchSpace | Mapping[str, Any]) -> pd.DataFrame:
    """A search space as the rows of the editable table (one row per hyperparameter)."""
    parsed = (
        search_space
        if all(isinstance(v, space.Hyperparameter) for v in search_space.values())
        else space.parse_space(search_space)
    )
    rows = []
    for name, hp in parsed.items():
        rows.append(
            {
                "hyperparameter": name,
                "type": hp.type,
                "low": None if hp.low is None else float(hp.low),
                "high": None if hp.high is None else float(hp.high),
                "log": bool(hp.log),
                "choices": format_choices(hp.choices) if hp.type == "categorical" else "",
                "label": hp.label,
            }
        )
    frame = pd.DataFrame(rows, columns=EDITOR_COLUMNS)
    frame["low"] = frame["low"].astype("float64")
    frame["high"] = frame["high"].astype("float64")
    frame["log"] = frame["log"].astype("bool")
    return frame


def _blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _bound(value: Any, kind: str, name: str, which: str) -> Any:
    if _blank(value):
        raise SpecError(f"hyperparameter {name!r}: '{which}' is empty; a {kind} range needs low and high")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"hyperparameter {name!r}: '{which}' must be a number, not {value!r}") from None
    if kind == "int":
        if not number.is_integer():
            raise SpecError(f"hyperparameter {name!r}: an int range needs whole numbers, '{which}' is {value!r}")
        return int(number)
    return number


def space_from_editor(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The spec-form space from the edited table; ``SpecError`` naming the bad row.

    Empty rows (no name) are ignored; a duplicate name is an error.
    """
    out: dict[str, dict[str, Any]] = {}
    for record in frame.to_dict("records"):
        name = record.get("hyperparameter")
        if _blank(name):
            if all(_blank(record.get(c)) or c in ("log", "type", "label") for c in EDITOR_COLUMNS):
                continue
            raise SpecError("a row of the search space has no hyperparameter name")
        name = str(name).strip()
        if name in out:
            raise SpecError(f"hyperparameter {name!r} appears twice in the search space")
        kind = record.get("type")
        if _blank(kind):
            raise SpecError(f"hyperparameter {name!r}: pick a type (float, int or categorical)")
        label = record.get("label")
        entry: dict[str, Any] = {"type": kind}
        if kind == "categorical":
            choices = parse_choices(record.get("choices"))
            if not choices:
                raise SpecError(f"hyperparameter {name!r}: list the choices, separated by commas")
            entry["choices"] = choices
        else:
            entry["low"] = _bound(record.get("low"), kind, name, "low")
            entry["high"] = _bound(record.get("high"), kind, name, "high")
            entry["log"] = bool(record.get("log")) if not _blank(record.get("log")) else False
        if not _blank(label):
            entry["label"] = label
        out[name] = entry
    space.parse_space(out)  # validate: raises SpecError naming the hyperparameter
    return out


def grid_preview_frame(spaces: Mapping[str, space.SearchSpace], points: int) -> pd.DataFrame:
    """The grid values per hyperparameter: model, hyperparameter, n_values, values.

    Floats are shown with ``SIGNIFICANT_DIGITS`` significant digits (``0.03162``, not
    ``0.0316227766017``); the grid itself keeps the exact values.
    """
    rows = []
    for model_key, sp in spaces.items():
        for name, values in space.grid(sp, points).items():
            rows.append(
                {
                    "model": model_key,
                    "hyperparameter": name,
                    "n_values": len(values),
                    "values": ", ".join(format_value(v) for v in values),
                }
            )
    return pd.DataFrame(rows, columns=["model", "hyperparameter", "n_values", "values"])


# -------------------------------------------------------------------------------- run time
@dataclass
class RuntimeEstimate:
    """The pre-launch smoke fit (``objective.smoke_check``), scaled to the study's budget."""

    fit_s: float  # one fit + score on one fold of the sample, measured (mean over the models)
    per_trial_s: float  # all folds of one trial, extrapolated to the study's rows
    n_trials: int | None
    total_s: float | None  # the whole budget over the workers
    #: what the smoke fit found worth saying: the metric's positive class, slow models
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    smoke: objective.SmokeReport | None = None

    def describe(self) -> str:
        fits = list(self.smoke.fits.values()) if self.smoke is not None else []
        if len(fits) == 1:
            measured = fits[0].describe()
        else:
            measured = f"one fit took {format_duration(self.fit_s)}"
        if self.total_s is None:
            text = (
                f"One trial takes about {format_duration(self.per_trial_s)} "
                f"(the time budget decides how many run): {measured}."
            )
        else:
            text = (
                f"About {format_duration(self.total_s)} for {self.n_trials} trial(s): "
                f"{measured}, one trial about {format_duration(self.per_trial_s)}."
            )
        return " ".join([text, *self.notes, *self.warnings])


def estimate_runtime(plan: runner.Plan) -> RuntimeEstimate:
    """The smoke fit of every chosen model (``objective.smoke_check``), scaled to the budget.

    A rough guide: hyperparameters change fit times (more trees, more neighbours). A model
    that fails its smoke fit raises the ``SpecError`` that says why (it cannot launch).
    """
    access.require_writable("run the smoke fit (the run-time estimate fits the models on this server)")
    spec = plan.spec
    report = objective.smoke_check(plan)
    per_trial = report.trial_s + 0.05  # + storage round trips
    n_trials: int | None
    if spec.strategy == "grid":
        total_points = space.total_grid_size(plan.spaces, spec.grid_points)
        n_trials = total_points if spec.n_trials is None else min(spec.n_trials, total_points)
    else:
        n_trials = spec.n_trials
    total = None
    if n_trials is not None:
        total = per_trial * n_trials / max(1, spec.workers) + 2.0  # + worker start-up
        if spec.timeout is not None:
            total = min(total, float(spec.timeout))
    return RuntimeEstimate(
        report.fit_s, per_trial, n_trials, total, tuple(report.notes), tuple(report.warnings), report
    )


def spec_form_defaults() -> dict[str, Any]:
    """Default values of the New study form (the spec defaults with a small budget).

    ``n_trials`` is for sampling strategies; picking grid search sets the form's trials to 0,
    the whole grid (``GRID_WHOLE``). ``startup_trials`` None is hpdash's small-budget rule.
    """
    return {
        "strategy": "tpe",
        "n_trials": 20,
        "timeout": None,
        "folds": 5,
        "repeats": 1,
        "test_size": 0.2,
        "seed": 0,
        "pruner": "none",
        "workers": 1,
        "grid_points": 5,
        "metric": "auto",
        "task": "auto",
        "startup_trials": None,
        "trial_timeout": None,
        "pos_label": None,
        "keep_columns": None,
    }


#: The form's trials under grid search: 0 runs every grid point once.
GRID_WHOLE = 0


def form_trials_after_strategy_change(old: str | None, new: str, n_trials: int) -> int:
    """The form's trials when the strategy changes from ``old`` to ``new``: the whole grid
    (0) on switching to grid search, so "exhaustive" means every point; back to the form's
    default on leaving it with 0 (which means "no trial limit" elsewhere, not "the grid");
    unchanged otherwise."""
    if new == "grid" and old != "grid":
        return GRID_WHOLE
    if old == "grid" and new != "grid" and n_trials == GRID_WHOLE:
        return int(spec_form_defaults()["n_trials"])
    return n_trials


def grid_budget_text(total: int, n_trials: int | None, estimate_s: float | None = None) -> str:
    """What a grid study will run: every point, or a seeded random subset, with the time."""
    time_part = f", about {format_duration(estimate_s)}" if estimate_s is not None else ""
    if n_trials is None or n_trials >= total:
        return f"Grid search runs the whole grid: all {total:,} combinations once{time_part}."
    return (
        f"Grid search runs {n_trials:,} of the {total:,} combinations (a seeded random "
        f"subset){time_part}. Set Trials to 0 to run the whole grid."
    )
