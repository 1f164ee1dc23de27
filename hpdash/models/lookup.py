"""Families by key or task, their default and validated spaces, estimators built from params, and the code that builds them in the reproduce snippet."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from hpdash.errors import SpecError
from hpdash.models.family import DENSE_ONEHOT, ONEHOT, REGRESSION, SEEDED_PARAM, TASKS, ModelFamily
from hpdash.models.registry import _BY_CLASS, REGISTRY
from hpdash.space import SearchSpace, parse_space


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_task(task: str) -> str:
    """Return ``task`` when it is ``classification`` or ``regression``; else ``SpecError``."""
    if task not in TASKS:
        raise SpecError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    return task


def get_family(key: str) -> ModelFamily:
    """The family registered under ``key``; ``SpecError`` listing the valid keys otherwise."""
    try:
        return REGISTRY[key]
    except (KeyError, TypeError):
        hint = _did_you_mean(key, list(REGISTRY)) if isinstance(key, str) else ""
        raise SpecError(f"unknown model {key!r}{hint}; use one of: {', '.join(REGISTRY)}") from None


def models_for_task(task: str) -> list[str]:
    """Registry keys usable for ``task``, in registry order."""
    check_task(task)
    return [key for key, family in REGISTRY.items() if family.estimator(task) is not None]


def estimator_class(key: str, task: str) -> type:
    """The estimator class of ``key`` for ``task``; ``SpecError`` if the task cannot use it."""
    family = get_family(key)
    check_task(task)
    cls = family.estimator(task)
    if cls is None:
        only = " and ".join(family.tasks)
        raise SpecError(
            f"model {key!r} is for {only} only; it cannot be used for {task} "
            f"(models for {task}: {', '.join(models_for_task(task))})"
        )
    return cls


def default_space(key: str, task: str) -> SearchSpace:
    """The family's default search space for ``task``, labelled."""
    estimator_class(key, task)
    family = get_family(key)
    return parse_space(family.spaces.get(task, {}), labels=family.labels)


def parse_model_space(key: str, task: str, raw: Mapping[str, Any] | None) -> SearchSpace:
    """Parse a user's spec-form space for one model with the family's labels, and validate it.

    ``None`` means the default space.
    """
    if raw is None:
        return default_space(key, task)
    space = parse_space(raw, labels=get_family(key).labels)
    validate_space(key, task, space)
    return space


@cache
def estimator_params(cls: type) -> tuple[str, ...]:
    """The parameter names of an estimator class (from ``get_params()``), sorted."""
    return tuple(sorted(cls().get_params(deep=False)))


def _check_name(family: ModelFamily, cls: type, name: str) -> None:
    if name == SEEDED_PARAM:
        raise SpecError(
            f"hyperparameter {SEEDED_PARAM!r} of model {family.key!r} cannot be searched; it is set from the study seed"
        )
    if name in family.data_params:
        raise SpecError(
            f"hyperparameter {name!r} of model {family.key!r} cannot be searched; hpdash sets "
            "it from the column roles of the dataset"
        )
    valid = estimator_params(cls)
    if name in valid or name in family.converters:
        return
    options = [p for p in valid if p != SEEDED_PARAM]
    raise SpecError(
        f"model {family.key!r} ({cls.__name__}) has no hyperparameter {name!r}"
        f"{_did_you_mean(name, options)}; valid ones: {', '.join(options)}"
    )


def _sklearn_check(cls: type, fixed: Mapping[str, Any], name: str, value: Any) -> None:
    """Let scikit-learn's own parameter constraints judge one value, when it has them."""
    estimator = cls(**{**fixed, name: value})
    check = getattr(estimator, "_validate_params", None)
    if check is None:
        return
    try:
        check()
    except (ValueError, TypeError) as exc:
        raise SpecError(f"hyperparameter {name!r}: {value!r} is not accepted: {exc}") from None


def validate_space(key: str, task: str, space: SearchSpace) -> None:
    """``SpecError`` unless every hyperparameter of ``space`` fits the estimator.

    Checks the name against ``get_params()`` (or a declared converter), runs converters over
    categorical choices (so a bad kernel name or layer string fails before the study runs),
    and checks choices and range bounds against scikit-learn's parameter constraints.
    """
    cls = estimator_class(key, task)
    family = get_family(key)
    fixed = family.fixed.get(task, {})
    for name, hp in space.items():
        _check_name(family, cls, name)
        converter = family.converters.get(name)
        if converter is not None and hp.type != "categorical":
            raise SpecError(f"hyperparameter {name!r} of model {key!r} must be categorical ({converter.description})")
        candidates = list(hp.choices or ()) if hp.type == "categorical" else [hp.low, hp.high]
        for value in candidates:
            if converter is not None:
                value = converter.convert(value)
            _sklearn_check(cls, fixed, name, value)


def _converted(family: ModelFamily, cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        _check_name(family, cls, name)
        converter = family.converters.get(name)
        out[name] = converter.convert(value) if converter is not None else value
    return out


def make_estimator(key: str, task: str, params: Mapping[str, Any], seed: int | None = None) -> BaseEstimator:
    """A new, unfitted estimator: fixed params, then converted hyperparameters, then the seed.

    ``random_state=seed`` is set when the estimator has it and ``seed`` is not None.
    """
    cls = estimator_class(key, task)
    family = get_family(key)
    kwargs: dict[str, Any] = dict(family.fixed.get(task, {}))
    kwargs.update(_converted(family, cls, params))
    if seed is not None and SEEDED_PARAM in estimator_params(cls):
        kwargs[SEEDED_PARAM] = int(seed)
    return cls(**kwargs)


def family_of(estimator: Any) -> tuple[ModelFamily, str] | None:
    """``(family, task)`` of a registry estimator (instance or class), or None for others."""
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return _BY_CLASS.get(cls)


def categorical_input(estimator: Any) -> str:
    """How categorical columns are encoded for ``estimator`` (``ONEHOT``, ``DENSE_ONEHOT`` or
    ``NATIVE``): the registry's choice, or for another estimator ``DENSE_ONEHOT`` when its
    scikit-learn tags say it takes no sparse input."""
    found = family_of(estimator)
    if found is not None:
        return found[0].categorical_input
    instance = estimator() if isinstance(estimator, type) else estimator
    tags = instance.__sklearn_tags__()
    return ONEHOT if tags.input_tags.sparse else DENSE_ONEHOT


def scales_target(estimator: Any) -> bool:
    """Whether a regression pipeline standardises the target for ``estimator``."""
    found = family_of(estimator)
    return found is not None and found[1] == REGRESSION and found[0].scale_target


def _public_module(cls: type) -> str:
    """``sklearn.ensemble._forest`` -> ``sklearn.ensemble`` (where the class is exported)."""
    parts: list[str] = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        parts.append(part)
    return ".".join(parts)


def literal(value: Any) -> str:
    """Python source for plain data; never anything that could run code."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise SpecError(f"cannot write {value!r} as Python source")


def estimator_code(
    key: str,
    task: str,
    params: Mapping[str, Any],
    seed: int | None,
    *,
    data_params: Mapping[str, Any] | None = None,
) -> tuple[list[str], str]:
    """Source that rebuilds ``make_estimator(key, task, params, seed)``.

    Returns ``(import lines, expression)``, e.g. ``(["from sklearn.ensemble import
    RandomForestClassifier"], "RandomForestClassifier(max_depth=7, n_estimators=120,
    random_state=0)")``. Keyword arguments are sorted by name and include the fixed params
    and ``data_params`` (what the pipeline sets from the data, such as histogram gradient
    boosting's ``categorical_features``).
    """
    cls = estimator_class(key, task)
    family = get_family(key)
    imports = [f"from {_public_module(cls)} import {cls.__name__}"]
    kwargs: dict[str, str] = {k: literal(v) for k, v in family.fixed.get(task, {}).items()}
    kwargs.update({k: literal(v) for k, v in (data_params or {}).items()})
    for name, value in params.items():
        _check_name(family, cls, name)
        converter = family.converters.get(name)
        if converter is None:
            kwargs[name] = literal(value)
        else:
            extra, source = converter.code(value)
            imports.extend(line for line in extra if line not in imports)
            kwargs[name] = source
    if seed is not None and SEEDED_PARAM in estimator_params(cls):
        kwargs[SEEDED_PARAM] = repr(int(seed))
    args = ", ".join(f"{name}={kwargs[name]}" for name in sorted(kwargs))
    return imports, f"{cls.__name__}({args})"
