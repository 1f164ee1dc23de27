"""The estimator registry: which scikit-learn models hpdash can tune, and how.

Each ``ModelFamily`` has a snake_case key (``random_forest``) that resolves to a classifier or a
regressor by task, a fast default search space per task whose hyperparameters are labelled
"model shape" or "learning process", fixed parameters (``max_iter`` caps and the like), and
converters for hyperparameters whose estimator value is not plain data: a Gaussian-process
kernel is chosen by name (``"matern"``) and an MLP's layer sizes are written ``"64-32"``.
Converters parse; nothing is ever ``eval``ed.

Each family also says what input its estimator needs (``categorical_input``: a one-hot that
may be sparse, a dense one-hot, or histogram gradient boosting's native categorical support),
whether a regression target is standardised for it (``scale_target``), and how its fit time
grows with rows (``fit_exponent``, ``predict_exponent``: used to extrapolate the pre-launch
smoke fit). ``hpdash.objective`` builds the pipeline from these.

``estimator_code`` writes the scikit-learn expression that rebuilds a trial's estimator, for
the "reproduce this trial" snippet.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    Kernel,
    Matern,
    RationalQuadratic,
    WhiteKernel,
)
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from hpdash import vocabulary
from hpdash.errors import SpecError
from hpdash.space import Label, SearchSpace, parse_space

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


# --- spec-form helpers -------------------------------------------------------------------


def _float(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def _int(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def _cat(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


def _both(value: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {CLASSIFICATION: value, REGRESSION: value}


# --- converters --------------------------------------------------------------------------

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


# --- the registry ------------------------------------------------------------------------

_TREE_LABELS: dict[str, Label] = {
    "max_depth": SHAPE,
    "min_samples_leaf": SHAPE,
    "min_samples_split": SHAPE,
    "max_leaf_nodes": SHAPE,
    "criterion": LEARNING,
    "splitter": LEARNING,
    "max_features": LEARNING,
    "min_impurity_decrease": LEARNING,
    "ccp_alpha": LEARNING,
    "class_weight": LEARNING,
}
_FOREST_LABELS: dict[str, Label] = {
    **_TREE_LABELS,
    "n_estimators": SHAPE,
    "bootstrap": LEARNING,
    "max_samples": LEARNING,
}
_FOREST_SPACE = {
    "n_estimators": _int(10, 100, log=True),
    "max_depth": _int(2, 20),
    "min_samples_leaf": _int(1, 20, log=True),
    "max_features": _float(0.1, 1.0),
}
_SGD_COMMON = {"penalty": _cat("l2", "l1", "elasticnet"), "alpha": _float(1e-6, 1e-1, log=True)}

_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        key="logistic_regression",
        label="Logistic regression",
        description="Linear classifier with L2 regularisation; C is the inverse strength.",
        classifier=LogisticRegression,
        regressor=None,
        spaces={
            CLASSIFICATION: {
                "C": _float(1e-3, 1e3, log=True),
                "class_weight": _cat(None, "balanced"),
            }
        },
        labels={
            "C": LEARNING,
            "l1_ratio": LEARNING,
            "solver": LEARNING,
            "class_weight": LEARNING,
            "tol": LEARNING,
            "max_iter": LEARNING,
            "fit_intercept": SHAPE,
        },
        fixed={CLASSIFICATION: {"max_iter": 1000}},
    ),
    ModelFamily(
        key="linear_regression",
        label="Linear regression",
        description="Ordinary least squares; no regularisation, so few hyperparameters.",
        classifier=None,
        regressor=LinearRegression,
        spaces={REGRESSION: {"fit_intercept": _cat(True, False), "positive": _cat(False, True)}},
        labels={"fit_intercept": SHAPE, "positive": SHAPE},
        # positive=True (non-negative least squares) rejects sparse input
        categorical_input=DENSE_ONEHOT,
    ),
    ModelFamily(
        key="ridge",
        label="Ridge",
        description="Least squares with L2 regularisation (a classifier on ±1 targets too).",
        classifier=RidgeClassifier,
        regressor=Ridge,
        spaces=_both({"alpha": _float(1e-3, 1e3, log=True)}),
        labels={
            "alpha": LEARNING,
            "solver": LEARNING,
            "class_weight": LEARNING,
            "fit_intercept": SHAPE,
        },
        # the svd, cholesky and saga solvers cannot fit an intercept on sparse input
        categorical_input=DENSE_ONEHOT,
    ),
    ModelFamily(
        key="lasso",
        label="Lasso",
        description="Least squares with L1 regularisation; sets some coefficients to zero.",
        classifier=None,
        regressor=Lasso,
        spaces={REGRESSION: {"alpha": _float(1e-4, 10.0, log=True)}},
        labels={"alpha": LEARNING, "selection": LEARNING, "fit_intercept": SHAPE},
        fixed={REGRESSION: {"max_iter": 10_000}},
    ),
    ModelFamily(
        key="elastic_net",
        label="Elastic net",
        description="Least squares with a mix of L1 and L2 regularisation (regression only).",
        classifier=None,
        regressor=ElasticNet,
        spaces={
            REGRESSION: {
                "alpha": _float(1e-4, 10.0, log=True),
                "l1_ratio": _float(0.1, 1.0),
            }
        },
        labels={
            "alpha": LEARNING,
            "l1_ratio": LEARNING,
            "selection": LEARNING,
            "fit_intercept": SHAPE,
        },
        fixed={REGRESSION: {"max_iter": 10_000}},
    ),
    ModelFamily(
        key="svm",
        label="Support vector machine",
        description="Kernel SVM (SVC / SVR). Fit time grows quickly with rows and with C.",
        classifier=SVC,
        regressor=SVR,
        spaces={
            CLASSIFICATION: {
                "C": _float(1e-2, 1e3, log=True),
                "gamma": _float(1e-4, 1.0, log=True),
                "kernel": _cat("rbf", "sigmoid"),
            },
            REGRESSION: {
                "C": _float(1e-2, 1e3, log=True),
                "gamma": _float(1e-4, 1.0, log=True),
                "epsilon": _float(1e-3, 1.0, log=True),
                "kernel": _cat("rbf", "sigmoid"),
            },
        },
        labels={
            "kernel": SHAPE,
            "gamma": SHAPE,
            "degree": SHAPE,
            "coef0": SHAPE,
            "C": LEARNING,
            "epsilon": LEARNING,
            "class_weight": LEARNING,
            "tol": LEARNING,
            "shrinking": LEARNING,
            "max_iter": LEARNING,
        },
        # libsvm's default (-1) has no limit: a linear kernel with a large C can iterate for a
        # very long time on rows where an RBF kernel converges quickly.
        fixed=_both({"max_iter": 100_000}),
        scale_target=True,  # epsilon and C are on the target's scale
        fit_exponent=2.0,
        predict_exponent=1.0,
        smoke_rows=500,
    ),
    ModelFamily(
        key="k_nearest_neighbors",
        label="k nearest neighbours",
        description="Predicts from the k closest training rows; nothing is learned up front.",
        classifier=KNeighborsClassifier,
        regressor=KNeighborsRegressor,
        spaces=_both(
            {
                "n_neighbors": _int(1, 50, log=True),
                "weights": _cat("uniform", "distance"),
                "p": _cat(1, 2),
            }
        ),
        labels={
            "n_neighbors": SHAPE,
            "weights": SHAPE,
            "p": SHAPE,
            "metric": SHAPE,
            "algorithm": LEARNING,
            "leaf_size": LEARNING,
        },
        # Minkowski distances with p other than 1 or 2 reject sparse input
        categorical_input=DENSE_ONEHOT,
        predict_exponent=1.0,
        row_bounded={"n_neighbors": "k-NN cannot use more neighbours than the rows it trains on"},
    ),
    ModelFamily(
        key="decision_tree",
        label="Decision tree",
        description="One tree of if/else splits; depth and leaf size control its size.",
        classifier=DecisionTreeClassifier,
        regressor=DecisionTreeRegressor,
        spaces={
            CLASSIFICATION: {
                "max_depth": _int(1, 20),
                "min_samples_leaf": _int(1, 50, log=True),
                "criterion": _cat("gini", "entropy"),
            },
            REGRESSION: {
                "max_depth": _int(1, 20),
                "min_samples_leaf": _int(1, 50, log=True),
                "criterion": _cat("squared_error", "absolute_error"),
            },
        },
        labels=_TREE_LABELS,
    ),
    ModelFamily(
        key="random_forest",
        label="Random forest",
        description="Many deep trees on bootstrap samples, averaged.",
        classifier=RandomForestClassifier,
        regressor=RandomForestRegressor,
        spaces=_both(_FOREST_SPACE),
        labels=_FOREST_LABELS,
        smoke_members=("n_estimators", 10),
    ),
    ModelFamily(
        key="extra_trees",
        label="Extra trees",
        description="Like a random forest, with random split thresholds; usually faster.",
        classifier=ExtraTreesClassifier,
        regressor=ExtraTreesRegressor,
        spaces=_both(_FOREST_SPACE),
        labels=_FOREST_LABELS,
        smoke_members=("n_estimators", 10),
    ),
    ModelFamily(
        key="hist_gradient_boosting",
        label="Histogram gradient boosting",
        description="Boosted trees on binned features, each tree correcting the previous ones.",
        classifier=HistGradientBoostingClassifier,
        regressor=HistGradientBoostingRegressor,
        spaces=_both(
            {
                "learning_rate": _float(0.01, 0.5, log=True),
                "max_iter": _int(20, 150, log=True),
                "max_leaf_nodes": _int(8, 64, log=True),
                "min_samples_leaf": _int(5, 50, log=True),
                "l2_regularization": _float(1e-6, 10.0, log=True),
            }
        ),
        labels={
            "max_iter": SHAPE,
            "max_leaf_nodes": SHAPE,
            "max_depth": SHAPE,
            "min_samples_leaf": SHAPE,
            "learning_rate": LEARNING,
            "l2_regularization": LEARNING,
            "max_features": LEARNING,
            "max_bins": LEARNING,
            "loss": LEARNING,
            "early_stopping": LEARNING,
            "class_weight": LEARNING,
        },
        categorical_input=NATIVE,
        data_params=("categorical_features",),
    ),
    ModelFamily(
        key="mlp",
        label="Neural network (MLP)",
        description="A multi-layer perceptron; layer sizes are written like '64-32'.",
        classifier=MLPClassifier,
        regressor=MLPRegressor,
        spaces=_both(
            {
                "hidden_layer_sizes": _cat("32", "64", "128", "32-16", "64-32"),
                "activation": _cat("relu", "tanh"),
                "alpha": _float(1e-6, 1e-1, log=True),
                "learning_rate_init": _float(1e-3, 1e-1, log=True),
            }
        ),
        labels={
            "hidden_layer_sizes": SHAPE,
            "activation": SHAPE,
            "alpha": LEARNING,
            "learning_rate_init": LEARNING,
            "learning_rate": LEARNING,
            "solver": LEARNING,
            "batch_size": LEARNING,
            "momentum": LEARNING,
            "max_iter": LEARNING,
            "early_stopping": LEARNING,
        },
        fixed=_both({"max_iter": 200, "early_stopping": True}),
        converters={"hidden_layer_sizes": LAYERS_CONVERTER},
        scale_target=True,  # a squared loss on a raw target of thousands diverges or stalls
    ),
    ModelFamily(
        key="sgd",
        label="Stochastic gradient descent",
        description="A linear model fitted by SGD; the loss picks the model (SVM, logistic...).",
        classifier=SGDClassifier,
        regressor=SGDRegressor,
        spaces={
            CLASSIFICATION: {
                "loss": _cat("hinge", "log_loss", "modified_huber"),
                **_SGD_COMMON,
            },
            REGRESSION: {
                "loss": _cat("squared_error", "huber", "epsilon_insensitive"),
                **_SGD_COMMON,
            },
        },
        labels={
            "loss": LEARNING,
            "penalty": LEARNING,
            "alpha": LEARNING,
            "l1_ratio": LEARNING,
            "learning_rate": LEARNING,
            "eta0": LEARNING,
            "epsilon": LEARNING,
            "max_iter": LEARNING,
            "average": LEARNING,
            "class_weight": LEARNING,
            "fit_intercept": SHAPE,
        },
        fixed=_both({"max_iter": 2000}),
        scale_target=True,  # the step size and alpha assume a target near unit scale
    ),
    ModelFamily(
        key="gaussian_process",
        label="Gaussian process",
        description="A kernel model with uncertainty; the kernel is chosen by name. Slow above a few thousand rows.",
        classifier=GaussianProcessClassifier,
        regressor=GaussianProcessRegressor,
        spaces={
            CLASSIFICATION: {"kernel": _cat(*KERNEL_NAMES)},
            REGRESSION: {"kernel": _cat(*KERNEL_NAMES), "alpha": _float(1e-8, 1.0, log=True)},
        },
        labels={
            "kernel": SHAPE,
            "alpha": LEARNING,
            "n_restarts_optimizer": LEARNING,
            "normalize_y": LEARNING,
            "max_iter_predict": LEARNING,
        },
        fixed={REGRESSION: {"normalize_y": True}},
        converters={"kernel": KERNEL_CONVERTER},
        categorical_input=DENSE_ONEHOT,  # scikit-learn's tags: no sparse input
        scale_target=True,
        # a Cholesky factorisation of the rows x rows kernel matrix (the classifier: one per
        # class, at every step of the kernel optimiser)
        fit_exponent=3.0,
        predict_exponent=1.0,
        smoke_rows=100,
    ),
)

REGISTRY: dict[str, ModelFamily] = {family.key: family for family in _FAMILIES}
#: estimator class -> (family, task): how a pipeline finds the family of an estimator it gets
_BY_CLASS: dict[type, tuple[ModelFamily, str]] = {
    cls: (family, task)
    for family in _FAMILIES
    for task, cls in ((CLASSIFICATION, family.classifier), (REGRESSION, family.regressor))
    if cls is not None
}


# --- lookups -----------------------------------------------------------------------------


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
