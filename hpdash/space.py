"""Search spaces: the schema of one hyperparameter, validation, grids and Optuna suggestions.

A search space is plain data. In a spec file it looks like::

    n_estimators: {type: int, low: 10, high: 300, log: true}
    criterion: {type: categorical, choices: [gini, entropy]}

``parse_space`` turns that into ``Hyperparameter`` objects (or raises ``SpecError`` with a
message that names the hyperparameter), ``space_to_dict`` turns it back.

Grid search needs discrete candidate values, so a float or int range is discretised into
``points`` values (``grid_values``); the app shows those values to the user.

Algorithm selection: ``spaces`` maps each model key to its search space. With one model the
Optuna parameter names are the plain hyperparameter names. With several models there is one
categorical Optuna parameter ``"model"`` (``MODEL_PARAM``) and each model's hyperparameters are
named ``f"{model}__{name}"``; they are suggested only when that model is chosen, which makes
the space conditional.
"""

from __future__ import annotations

import dataclasses
import itertools
import keyword
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpdash import config
from hpdash.errors import SpecError

Label = Literal["model shape", "learning process"]
HpType = Literal["float", "int", "categorical"]

LABELS: tuple[str, ...] = get_args(Label)
TYPES: tuple[str, ...] = get_args(HpType)
DEFAULT_LABEL: Label = "learning process"

#: The Optuna parameter that picks the model under algorithm selection.
MODEL_PARAM = "model"
#: Separates the model key from the hyperparameter name under algorithm selection.
SEPARATOR = "__"

_RANGE_KEYS = frozenset({"type", "low", "high", "log", "label"})
_CATEGORICAL_KEYS = frozenset({"type", "choices", "label"})
_SIGNIFICANT_DIGITS = 12


def _is_number(value: Any) -> bool:
    """True for real numbers (int, float, numpy numbers), False for bool and everything else."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_plain_choice(value: Any) -> bool:
    """A categorical choice must be plain data: str, int, float (finite), bool or None."""
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters for a message (a choice may be huge text)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _a(kind: str) -> str:
    """``"an int"``, ``"a float"``: the type with its article."""
    return f"an {kind}" if kind == "int" else f"a {kind}"


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise SpecError(f"hyperparameter names must be non-empty text, not {name!r}")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(
            f"hyperparameter {name!r}: a name must be a Python identifier "
            "(letters, digits and underscores, not starting with a digit)"
        )
    if SEPARATOR in name:
        raise SpecError(
            f"hyperparameter {name!r}: a name cannot contain '{SEPARATOR}' "
            "(it separates the model from the hyperparameter under algorithm selection)"
        )
    return name


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of a search space: its type, range or choices, scale and label.

    Construction validates and normalises (int bounds become ``int``, float bounds ``float``,
    choices a tuple); an invalid one raises ``SpecError`` naming the hyperparameter.
    """

    name: str
    type: HpType
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    label: Label = DEFAULT_LABEL

    def __post_init__(self) -> None:
        name = _check_name(self.name)
        where = f"hyperparameter {name!r}"
        if self.type not in TYPES:
            raise SpecError(f"{where}: unknown type {self.type!r}; use one of: {', '.join(TYPES)}")
        if self.label not in LABELS:
            raise SpecError(f"{where}: unknown label {self.label!r}; use one of: {', '.join(LABELS)}")
        if not isinstance(self.log, (bool, np.bool_)):
            raise SpecError(f"{where}: 'log' must be true or false, not {self.log!r}")
        object.__setattr__(self, "log", bool(self.log))
        if self.type == "categorical":
            self._check_categorical(where)
        else:
            self._check_range(where)

    def _check_categorical(self, where: str) -> None:
        if self.log:
            raise SpecError(f"{where}: 'log' applies to float and int ranges, not to categorical")
        if self.low is not None or self.high is not None:
            raise SpecError(f"{where}: a categorical hyperparameter takes 'choices', not low/high")
        choices = self.choices
        if choices is None or isinstance(choices, (str, bytes, Mapping)) or not isinstance(choices, Sequence):
            raise SpecError(f"{where}: 'choices' must be a list of values")
        if len(choices) == 0:
            raise SpecError(f"{where}: 'choices' is empty; give at least one value")
        limit = config.max_choices()
        if len(choices) > limit:  # before any per-choice work: the list may be huge
            raise SpecError(
                f"{where}: {len(choices):,} choices, more than the limit of {limit:,} per "
                "hyperparameter (HPDASH_MAX_CHOICES). List only the values worth trying, or "
                "use an int or float range for a numeric hyperparameter."
            )
        for choice in choices:
            if not _is_plain_choice(choice):
                raise SpecError(
                    f"{where}: choice {_short_repr(choice)} is not plain data; "
                    "use text, a finite number, true/false or null"
                )
        # Optuna finds a choice by equality, so 1, 1.0 and True collide. For plain data, a
        # set finds exactly the ``==`` duplicates (equal values hash alike) in linear time.
        seen: set[Any] = set()
        for choice in choices:
            if choice in seen:
                raise SpecError(f"{where}: choice {_short_repr(choice)} appears more than once")
            seen.add(choice)
        object.__setattr__(self, "choices", tuple(choices))

    def _check_range(self, where: str) -> None:
        if self.choices is not None:
            raise SpecError(f"{where}: {_a(self.type)} hyperparameter takes low/high, not 'choices'")
        if self.low is None or self.high is None:
            missing = " and ".join(k for k in ("low", "high") if getattr(self, k) is None)
            raise SpecError(f"{where}: {_a(self.type)} range needs {missing}")
        for key in ("low", "high"):
            value = getattr(self, key)
            if not _is_number(value) or not math.isfinite(float(value)):
                raise SpecError(f"{where}: '{key}' must be a finite number, not {value!r}")
        low, high = self.low, self.high
        if self.type == "int":
            for key, value in (("low", low), ("high", high)):
                if not float(value).is_integer():
                    raise SpecError(f"{where}: an int range needs whole-number bounds; '{key}' is {value!r}")
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        if low >= high:
            raise SpecError(f"{where}: low ({low}) must be less than high ({high})")
        if self.log and low <= 0:
            raise SpecError(f"{where}: a log-scaled range needs low > 0, but low is {low}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def to_dict(self) -> dict[str, Any]:
        """The spec form: ``{type, low, high, log, label}`` or ``{type, choices, label}``."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices or ()), "label": self.label}
        return {
            "type": self.type,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "label": self.label,
        }

    def bounds(self) -> tuple[float | int, float | int]:
        """``(low, high)`` of a float or int range (construction checks that both are set)."""
        assert self.low is not None and self.high is not None, f"{self.type} {self.name!r} has no range"
        return self.low, self.high

    def distribution(self) -> BaseDistribution:
        """The matching Optuna distribution."""
        if self.type == "float":
            low, high = self.bounds()
            return FloatDistribution(float(low), float(high), log=self.log)
        if self.type == "int":
            low, high = self.bounds()
            return IntDistribution(int(low), int(high), log=self.log)
        return CategoricalDistribution(list(self.choices or ()))

    def describe(self) -> str:
        """A one-line human description, e.g. ``int 10..300 (log)`` or ``one of gini, entropy``."""
        if self.type == "categorical":
            return "one of " + ", ".join(str(c) for c in self.choices or ())
        return f"{self.type} {self.low}..{self.high}" + (" (log)" if self.log else "")


SearchSpace = dict[str, Hyperparameter]


def _coerce_bound(value: Any) -> Any:
    """Accept numeric text such as ``"1e-3"`` (YAML 1.1 reads that as a string); never eval."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def _parse_entry(name: str, entry: Any, default_label: str) -> Hyperparameter:
    if isinstance(entry, Hyperparameter):
        return entry if entry.name == name else dataclasses.replace(entry, name=name)
    _check_name(name)
    where = f"hyperparameter {name!r}"
    if not isinstance(entry, Mapping):
        raise SpecError(f"{where}: expected a mapping such as {{type: float, low: 0.001, high: 1, log: true}}")
    if "type" not in entry:
        raise SpecError(f"{where}: missing 'type' (one of: {', '.join(TYPES)})")
    kind = entry["type"]
    if kind not in TYPES:
        raise SpecError(f"{where}: unknown type {kind!r}; use one of: {', '.join(TYPES)}")
    allowed = _CATEGORICAL_KEYS if kind == "categorical" else _RANGE_KEYS
    unknown = [str(k) for k in entry if k not in allowed]
    if kind == "categorical" and "log" in entry:
        raise SpecError(f"{where}: 'log' applies to float and int ranges, not to categorical")
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)} for {_a(kind)} "
            f"hyperparameter; allowed: {', '.join(sorted(allowed))}"
        )
    label = entry.get("label", default_label)
    if kind == "categorical":
        return Hyperparameter(name=name, type="categorical", choices=entry.get("choices"), label=label)
    return Hyperparameter(
        name=name,
        type=kind,
        low=_coerce_bound(entry.get("low")),
        high=_coerce_bound(entry.get("high")),
        log=entry.get("log", False),
        label=label,
    )


def parse_space(raw: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> SearchSpace:
    """Validate a spec-form search space and return it as ``Hyperparameter`` objects.

    ``labels`` gives the label of hyperparameters whose entry has no ``label`` key (a model
    family's labels); anything else is labelled "learning process". Order is kept.
    """
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"the search space must be a mapping from hyperparameter name to its entry, not {type(raw).__name__}"
        )
    labels = labels or {}
    return {name: _parse_entry(name, entry, labels.get(name, DEFAULT_LABEL)) for name, entry in raw.items()}


def space_to_dict(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """The spec form of a search space (inverse of ``parse_space``)."""
    return {name: hp.to_dict() for name, hp in space.items()}


def _tidy(value: float) -> float:
    """Round away float noise such as 0.30000000000000004 (12 significant digits)."""
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")


def grid_values(hp: Hyperparameter, points: int) -> list[Any]:
    """The candidate values grid search tries for one hyperparameter.

    float: ``points`` values from low to high inclusive, evenly spaced (geometrically when
    log-scaled); int: the same, rounded half up and de-duplicated (sorted); categorical: the
    choices (``points`` is ignored).
    """
    if hp.type == "categorical":
        return list(hp.choices or ())
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise SpecError(f"hyperparameter {hp.name!r}: grid search needs at least 2 points per range, not {points!r}")
    points = int(points)
    lo, hi = hp.bounds()
    low, high = float(lo), float(hi)
    raw = np.geomspace(low, high, points) if hp.log else np.linspace(low, high, points)
    if hp.type == "float":
        values = [_tidy(v) for v in raw]
        values[0], values[-1] = low, high
        return values
    rounded = {min(max(math.floor(v + 0.5), int(lo)), int(hi)) for v in raw}
    return sorted(int(v) for v in rounded)


def grid(space: SearchSpace, points: int) -> dict[str, list[Any]]:
    """Candidate values per hyperparameter (the grid shown to the user)."""
    return {name: grid_values(hp, points) for name, hp in space.items()}


def grid_size(space: SearchSpace, points: int) -> int:
    """Number of grid points of one model's space (1 for an empty space)."""
    return math.prod(len(values) for values in grid(space, points).values())


def total_grid_size(spaces: Mapping[str, SearchSpace], points: int) -> int:
    """Number of grid points over all models (the sum of each model's grid size)."""
    return sum(grid_size(space, points) for space in spaces.values())


def check_grid_size(size: int, limit: int | None = None, detail: str = "") -> None:
    """``SpecError`` when a grid has more than ``limit`` points (``config.grid_limit()``).

    ``detail`` (e.g. from :func:`grid_size_detail`) is put after the size in the message."""
    limit = config.grid_limit() if limit is None else limit
    if size > limit:
        shown = f" ({detail})" if detail else ""
        raise SpecError(
            f"the grid has {size:,} points{shown}, more than the limit of {limit:,}; "
            "use fewer points per range or fewer hyperparameters"
        )


def grid_size_detail(spaces: Mapping[str, SearchSpace], points: int) -> str:
    """How a grid's size comes about, for a message: ``"random_forest: n_estimators 5 x
    max_depth 5 = 25"`` per model (values per hyperparameter), ``"; "`` between models."""
    parts = []
    for model, one in spaces.items():
        counts = [f"{name} {len(values):,}" for name, values in grid(one, points).items()]
        parts.append(f"{model}: {' x '.join(counts) or 'no hyperparameter'} = {grid_size(one, points):,}")
    return "; ".join(parts)


def _check_spaces(spaces: Mapping[str, SearchSpace]) -> list[str]:
    models = list(spaces)
    if not models:
        raise SpecError("choose at least one model")
    for model in models:
        if not isinstance(model, str) or not model:
            raise SpecError(f"model keys must be non-empty text, not {model!r}")
    return models


def param_name(model: str, name: str, several: bool) -> str:
    """The Optuna parameter name of hyperparameter ``name`` of ``model``."""
    return f"{model}{SEPARATOR}{name}" if several else name


def suggest(trial: optuna.Trial, spaces: Mapping[str, SearchSpace]) -> tuple[str, dict[str, Any]]:
    """Suggest one configuration on ``trial``: ``(model key, {plain name: value})``."""
    models = _check_spaces(spaces)
    several = len(models) > 1
    model = trial.suggest_categorical(MODEL_PARAM, models) if several else models[0]
    params: dict[str, Any] = {}
    for name, hp in spaces[model].items():
        key = param_name(model, name, several)
        if hp.type == "float":
            low, high = hp.bounds()
            params[name] = trial.suggest_float(key, float(low), float(high), log=hp.log)
        elif hp.type == "int":
            low, high = hp.bounds()
            params[name] = trial.suggest_int(key, int(low), int(high), log=hp.log)
        else:
            params[name] = trial.suggest_categorical(key, list(hp.choices or ()))
    return model, params


def grid_points(spaces: Mapping[str, SearchSpace], points: int, limit: int | None = None) -> list[dict[str, Any]]:
    """Every grid combination as an Optuna param dict, in a deterministic order.

    Models in the given order, then the cartesian product of each model's grid (hyperparameters
    in space order, values in grid order). Under algorithm selection each dict holds
    ``"model"`` and only that model's ``f"{model}__{name}"`` params. The size is checked with
    ``check_grid_size(..., limit)`` before anything is built.
    """
    models = _check_spaces(spaces)
    several = len(models) > 1
    check_grid_size(total_grid_size(spaces, points), limit)
    result: list[dict[str, Any]] = []
    for model in models:
        values = grid(spaces[model], points)
        names = [param_name(model, name, several) for name in values]
        for combo in itertools.product(*values.values()):
            point: dict[str, Any] = {MODEL_PARAM: model} if several else {}
            point.update(zip(names, combo))
            result.append(point)
    return result


def decode_params(params: Mapping[str, Any], models: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Optuna trial params -> ``(model key, {plain name: value})``; inverse of the naming."""
    models = list(models)
    if not models:
        raise SpecError("choose at least one model")
    if len(models) == 1:
        return models[0], dict(params)
    if MODEL_PARAM not in params:
        raise SpecError(f"the trial has no '{MODEL_PARAM}' parameter to say which model it used")
    model = params[MODEL_PARAM]
    if model not in models:
        raise SpecError(f"the trial used model {model!r}, which is not one of: {', '.join(models)}")
    prefix = f"{model}{SEPARATOR}"
    return model, {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
