"""What a model family is: its record (classes, default space, input needs, converters) and the converters of values that are not plain numbers (kernels, layer sizes)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    Kernel,
    Matern,
    RationalQuadratic,
    WhiteKernel,
)

from hpdash import vocabulary
from hpdash.errors import SpecError
from hpdash.space import Label

CLASSIFICATION = vocabulary.CLASSIFICATION


REGRESSION = vocabulary.REGRESSION


TASKS: tuple[str, ...] = (CLASSIFICATION, REGRESSION)


SHAPE: Label = "model shape"


LEARNING: Label = "learning process"


#: Set from the study seed, never searched.
SEEDED_PARAM = "random_state"


Imports = tuple[str, ...]


#: How categorical columns reach the estimator (``ModelFamily.categorical_input``):
#: a one-hot that the ColumnTransformer may return sparse (most rows zero) ...
ONEHOT = "onehot"


#: ... a one-hot always returned dense, for estimators that reject sparse input outright
#: (their scikit-learn tags say so) or for some of their hyperparameter values (a
#: non-negative least squares fit, Ridge's svd/cholesky solvers, k-NN's Minkowski p) ...
DENSE_ONEHOT = "dense_onehot"


#: ... or ordinal codes that the estimator treats as categories itself (histogram gradient
#: boosting's ``categorical_features``), as scikit-learn recommends for it.
NATIVE = "native"


CATEGORICAL_INPUTS: tuple[str, ...] = (ONEHOT, DENSE_ONEHOT, NATIVE)


@dataclass(frozen=True)
class Converter:
    """Turns a plain spec value into the estimator's value, and into Python source.

    ``convert`` and ``code`` raise ``SpecError`` for a value they do not accept.
    """

    description: str
    convert: Callable[[Any], Any]
    code: Callable[[Any], tuple[Imports, str]]


@dataclass(frozen=True, eq=False)
class ModelFamily:
    """One tunable model: its estimators by task, default spaces, fixed params, converters.

    Families are singletons in ``REGISTRY``; they compare and hash by identity.
    """

    key: str
    label: str
    description: str
    classifier: type | None
    regressor: type | None
    #: task -> default search space in spec form (labels come from ``labels``)
    spaces: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    #: hyperparameter name -> label, for default spaces and for user spaces alike
    labels: Mapping[str, Label] = field(default_factory=dict)
    #: task -> parameters always passed to the estimator (a searched value overrides them)
    fixed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: hyperparameter name -> converter from plain value to estimator value
    converters: Mapping[str, Converter] = field(default_factory=dict)
    #: how categorical columns are encoded for this estimator (ONEHOT, DENSE_ONEHOT, NATIVE)
    categorical_input: str = ONEHOT
    #: regression: fit on a standardised target (``TransformedTargetRegressor`` with a
    #: ``StandardScaler``), for estimators whose loss or priors assume a target near unit scale
    scale_target: bool = False
    #: fit time grows roughly as rows ** fit_exponent (1: about linear; 2: kernel SVM; 3:
    #: Gaussian process), and predicting one row as training rows ** predict_exponent (k-NN,
    #: kernel methods compare with the training rows; trees and linear models do not)
    fit_exponent: float = 1.0
    predict_exponent: float = 0.0
    #: rows of the training part the pre-launch smoke fit uses at most (small for models
    #: whose cost explodes with rows: their time on more rows is extrapolated)
    smoke_rows: int = 1000
    #: (parameter, count): an ensemble whose members are fitted independently, so its fit and
    #: predict times grow linearly with their number: the smoke fit fits at most ``count``
    #: members and scales its times up (a forest's trees, not its rows, are its cost)
    smoke_members: tuple[str, int] | None = None
    #: estimator parameters that hpdash sets from the data, never searched
    data_params: tuple[str, ...] = ()
    #: hyperparameter -> what bounds it by the rows a CV fold trains on (checked before launch)
    row_bounded: Mapping[str, str] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this family supports, in ``TASKS`` order."""
        return tuple(t for t in TASKS if self.estimator(t) is not None)

    def estimator(self, task: str) -> type | None:
        """The estimator class for ``task``, or None when the family does not support it."""
        return self.classifier if task == CLASSIFICATION else self.regressor


def _float(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def _int(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def _cat(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


def _both(value: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {CLASSIFICATION: value, REGRESSION: value}


_KERNEL_IMPORT = "from sklearn.gaussian_process.kernels import "


#: kernel name -> (names to import, source, factory); source and factory build the same kernel.
_KERNELS: dict[str, tuple[tuple[str, ...], str, Callable[[], Kernel]]] = {
    "rbf": (
        ("ConstantKernel", "RBF"),
        "ConstantKernel(1.0) * RBF(length_scale=1.0)",
        lambda: ConstantKernel(1.0) * RBF(length_scale=1.0),
    ),
    "matern": (
        ("ConstantKernel", "Matern"),
        "ConstantKernel(1.0) * Matern(length_scale=1.0, nu=1.5)",
        lambda: ConstantKernel(1.0) * Matern(length_scale=1.0, nu=1.5),
    ),
    "rational_quadratic": (
        ("ConstantKernel", "RationalQuadratic"),
        "ConstantKernel(1.0) * RationalQuadratic(length_scale=1.0, alpha=1.0)",
        lambda: ConstantKernel(1.0) * RationalQuadratic(length_scale=1.0, alpha=1.0),
    ),
    "dot_product_white": (
        ("DotProduct", "WhiteKernel"),
        "DotProduct(sigma_0=1.0) + WhiteKernel(noise_level=1.0)",
        lambda: DotProduct(sigma_0=1.0) + WhiteKernel(noise_level=1.0),
    ),
}


KERNEL_NAMES: tuple[str, ...] = tuple(_KERNELS)


def _kernel_entry(value: Any) -> tuple[tuple[str, ...], str, Callable[[], Kernel]]:
    if not isinstance(value, str) or value not in _KERNELS:
        raise SpecError(f"hyperparameter 'kernel': unknown kernel {value!r}; use one of: {', '.join(KERNEL_NAMES)}")
    return _KERNELS[value]


def kernel_from_name(value: Any) -> Kernel:
    """A fresh Gaussian-process kernel from its name, e.g. ``"matern"``."""
    return _kernel_entry(value)[2]()


def _kernel_code(value: Any) -> tuple[Imports, str]:
    names, source, _ = _kernel_entry(value)
    return (_KERNEL_IMPORT + ", ".join(names),), source


MAX_LAYERS = 10


MAX_LAYER_SIZE = 4096


_LAYERS_RE = re.compile(r"[0-9]+(?:-[0-9]+)*", re.ASCII)


def layers_from_text(value: Any) -> tuple[int, ...]:
    """MLP hidden layer sizes from ``"64-32"`` (or ``64``, or ``(64, 32)``) -> ``(64, 32)``.

    Only ASCII digits separated by ``-`` are accepted; at most 10 layers of 1 to 4096 units.
    """
    where = "hyperparameter 'hidden_layer_sizes'"
    if isinstance(value, str):
        text = value.strip()
        if not _LAYERS_RE.fullmatch(text):
            raise SpecError(
                f"{where}: {value!r} is not a list of layer sizes; "
                "write whole numbers separated by '-', such as '64' or '128-64'"
            )
        sizes = tuple(int(part) for part in text.split("-"))
    elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        sizes = (int(value),)
    elif isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        sizes = tuple(int(v) for v in value)
    else:
        raise SpecError(
            f"{where}: {value!r} is not a list of layer sizes; "
            "write whole numbers separated by '-', such as '64' or '128-64'"
        )
    if not 1 <= len(sizes) <= MAX_LAYERS:
        raise SpecError(f"{where}: {value!r} has {len(sizes)} layers; use 1 to {MAX_LAYERS}")
    if any(not 1 <= size <= MAX_LAYER_SIZE for size in sizes):
        raise SpecError(f"{where}: {value!r} has a layer size outside 1..{MAX_LAYER_SIZE}")
    return sizes


KERNEL_CONVERTER = Converter(
    description="kernel name: " + ", ".join(KERNEL_NAMES),
    convert=kernel_from_name,
    code=_kernel_code,
)


LAYERS_CONVERTER = Converter(
    description="layer sizes such as '64' or '128-64'",
    convert=layers_from_text,
    code=lambda value: ((), repr(layers_from_text(value))),
)
