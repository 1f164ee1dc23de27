"""The evaluation protocol: holdout split, CV folds, preprocessing pipeline, one trial's score.

Everything here is plain scikit-learn, so any trial can be reproduced outside hpdash (see
``reproduce_snippet``). A grid study reproduces ``GridSearchCV(...).cv_results_`` exactly.

Before launch, ``check_metric`` checks the metric against the task, the target and the models
(probabilities or decision scores, two-class metrics, the positive class), and ``smoke_check``
fits one fold of each model on a sample of the real training part, scores it with the real
scorer and extrapolates its cost to the study's folds. In a worker, a study with a
``trial_timeout`` runs each trial's CV in a child process that is killed at the limit
(``make_objective``).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import multiprocessing
import signal
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.artifacts import ArtifactMeta, FileSystemArtifactStore, upload_artifact
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import f1_score, get_scorer, get_scorer_names, make_scorer
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.metaestimators import available_if

from hpdash import config, models, runtime, space
from hpdash.errors import DatasetError, SpecError
from hpdash.spec import check_name
from hpdash.storage import set_trial_user_attrs

log = logging.getLogger("hpdash")

CLASSIFICATION = models.CLASSIFICATION
REGRESSION = models.REGRESSION

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "roc_auc",
    "roc_auc_ovr",
    "roc_auc_ovo",
    "neg_log_loss",
    "matthews_corrcoef",
)
REGRESSION_METRICS = (
    "r2",
    "neg_mean_squared_error",
    "neg_root_mean_squared_error",
    "neg_mean_absolute_error",
    "neg_median_absolute_error",
    "explained_variance",
    "neg_mean_absolute_percentage_error",
)


def metrics_for_task(task: str) -> tuple[str, ...]:
    """The scikit-learn scorer names hpdash offers for ``task`` (first one is the default)."""
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    available = set(get_scorer_names())
    return tuple(n for n in names if n in available)


BINARY_ONLY_METRICS = ("roc_auc", "f1")

#: What each offered classification scorer calls on the fitted model: the first method of
#: the tuple the model has (these are scikit-learn's own scorer definitions; the test suite
#: checks them against ``get_scorer(name)``). Metrics not listed score ``predict``.
RESPONSE_METHODS: dict[str, tuple[str, ...]] = {
    "roc_auc": ("decision_function", "predict_proba"),
    "roc_auc_ovr": ("predict_proba",),
    "roc_auc_ovo": ("predict_proba",),
    "neg_log_loss": ("predict_proba",),
}

#: Two-class metrics that score one class as "positive", with the scikit-learn function
#: behind the scorer: on labels other than 0/1 (``yes``/``no``) the scorer is
#: ``make_scorer(function, pos_label=...)``.
POS_LABEL_METRICS: dict[str, Callable[..., float]] = {"f1": f1_score}

#: Labels taken as the positive class of a two-class target when the spec names none.
POSITIVE_WORDS = ("yes", "y", "true", "t", "positive", "pos", "1")
_YAML_TRUE = ("true", "yes", "y", "on", "1")
_YAML_FALSE = ("false", "no", "n", "off", "0")


def resolve_metric(metric: str, task: str, n_classes: int | None = None) -> str:
    """``auto`` -> accuracy / r2; otherwise check the scorer exists and fits the task.

    ``n_classes`` (classification) rejects two-class-only scorers on a multiclass target,
    where every trial would otherwise fail.
    """
    if metric == "auto":
        return "accuracy" if task == "classification" else "r2"
    if metric in BINARY_ONLY_METRICS and n_classes is not None and n_classes > 2:
        alternative = {"roc_auc": "roc_auc_ovr", "f1": "f1_macro"}[metric]
        raise SpecError(
            f"Metric {metric!r} works only for two classes, and this target has {n_classes}. Use {alternative!r} instead."
        )
    valid = metrics_for_task(task)
    if metric not in valid:
        other = "regression" if task == "classification" else "classification"
        if metric in metrics_for_task(other):
            raise SpecError(
                f"Metric {metric!r} is for {other}, but this is a {task} task. Use one of: {', '.join(valid)}."
            )
        raise SpecError(f"Unknown metric {metric!r}. For {task} use one of: {', '.join(valid)}.")
    return metric


def check_metric(
    metric: str,
    task: str,
    y: pd.Series,
    models_or_spaces: Sequence[str] | Mapping[str, space.SearchSpace],
    pos_label: Any = None,
) -> str:
    """The resolved metric name, after checking it with the target and the models together.

    Refused with a ``SpecError`` that names the fix: a metric of the other task, a two-class
    metric on a multiclass target (``resolve_metric``), a ``pos_label`` that is not a class of
    the target, and a metric that needs predicted probabilities or decision scores from a
    model that does not give them (for every configuration, or for some categorical choices
    of its search space: pass the spaces, model key -> ``SearchSpace``, to check those; a
    list of keys checks the default spaces).
    """
    n_classes = int(pd.Series(y).nunique()) if task == CLASSIFICATION else None
    name = resolve_metric(metric, task, n_classes)
    if task != CLASSIFICATION:
        return name
    resolve_pos_label(name, y, pos_label)
    spaces = (
        dict(models_or_spaces)
        if isinstance(models_or_spaces, Mapping)
        else {key: models.default_space(key, task) for key in models_or_spaces}
    )
    needs = RESPONSE_METHODS.get(name)
    if needs:
        for key, model_space in spaces.items():
            _check_response(name, needs, key, task, model_space)
    return name


def _describe_needs(needs: tuple[str, ...]) -> str:
    if needs == ("predict_proba",):
        return "predicted probabilities (predict_proba)"
    return "decision scores or probabilities (decision_function or predict_proba)"


_RESPONSE_FIXES = {
    "svm": "or add probability: {type: categorical, choices: [true]} to svm's space (SVC then "
    "calibrates probabilities with an internal 5-fold CV: fits take about 5 times longer)",
    "sgd": "or keep only the losses that give probabilities (log_loss, modified_huber) in sgd's space",
}


#: Combinations of categorical choices ``_check_response`` builds at most (beyond it, the
#: first ones in order; a default space has at most 30).
MAX_RESPONSE_COMBINATIONS = 512


def _check_response(metric: str, needs: tuple[str, ...], key: str, task: str, model_space: space.SearchSpace) -> None:
    """``SpecError`` when model ``key`` lacks the method ``metric`` scores, for every
    configuration of its space or for some categorical choices of it.

    Every combination of the space's categorical choices is built (numeric hyperparameters
    at their low end). scikit-learn makes these methods exist only where they work
    (``available_if``: SVC's ``predict_proba`` needs ``probability=True``, SGD's needs a
    probabilistic loss), so ``hasattr`` on the unfitted estimator answers it. A choice is
    named when every combination with it lacks the method (SGD's ``loss='hinge'``, whatever
    the penalty); a combination is named when only choices together lack it.
    """
    fixed = {name: hp.low for name, hp in model_space.items() if hp.type != "categorical"}
    names = [name for name, hp in model_space.items() if hp.type == "categorical"]
    combos = list(
        itertools.islice(
            itertools.product(*(model_space[name].choices or () for name in names)), MAX_RESPONSE_COMBINATIONS
        )
    )
    missing = []
    for combo in combos:
        estimator = models.make_estimator(key, task, {**fixed, **dict(zip(names, combo))})
        if not any(hasattr(estimator, method) for method in needs):
            missing.append(combo)
    if not missing:
        return
    cls = models.estimator_class(key, task).__name__
    alternatives = ", ".join(m for m in CLASSIFICATION_METRICS if m not in RESPONSE_METHODS)
    fix = _RESPONSE_FIXES.get(
        key,
        "or use a model that gives probabilities (such as "
        "logistic_regression, random_forest or hist_gradient_boosting)",
    )
    if len(missing) == len(combos):
        raise SpecError(
            f"Metric {metric!r} scores {_describe_needs(needs)}, which model {key!r} ({cls}) "
            f"does not give. Pick a metric that scores predicted classes ({alternatives}), "
            f"{fix}."
        )
    lacking = set(missing)
    culprits = [
        f"{name}={value!r}"
        for i, name in enumerate(names)
        for value in model_space[name].choices or ()
        if all(combo in lacking for combo in combos if combo[i] == value)
    ]
    if not culprits:  # only some choices together lack it: name the first such combination
        culprits = [", ".join(f"{name}={value!r}" for name, value in zip(names, missing[0]))]
    raise SpecError(
        f"Metric {metric!r} scores {_describe_needs(needs)}, which model {key!r} ({cls}) does "
        f"not give with {'; '.join(culprits)} (its search space offers it). Remove that choice "
        f"from its space, or pick a metric that scores predicted classes ({alternatives})."
    )


def _shown_classes(classes: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in list(classes)[:limit])
    return shown + (f" and {len(classes) - limit} more" if len(classes) > limit else "")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def resolve_pos_label(metric: str, y: pd.Series, pos_label: Any = None) -> Any:
    """The positive class ``metric`` scores on target ``y``, or None for a metric without one.

    ``pos_label`` (the spec's) is matched to a class: exactly, then by its text ignoring case,
    then a YAML boolean (``yes`` unquoted reads as true) to a yes/no-like label. Without it,
    hpdash picks: 1 for 0/1 and -1/1 labels (scikit-learn's default), True for booleans, a
    label such as ``yes``/``true``/``positive``, else the rarer class (the later one in sorted
    order on a tie, scikit-learn's ``classes_[1]``). ``metric_note`` says which.
    """
    if metric not in POS_LABEL_METRICS:
        return None
    classes = sorted((_plain(c) for c in pd.unique(pd.Series(y).dropna())), key=str)
    if pos_label is not None:
        return _match_label(pos_label, classes)
    values = set(classes)
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes) and (
        values <= {0, 1} or values <= {-1, 1}
    ):
        return 1
    if all(isinstance(c, bool) for c in classes):
        return True
    named = [c for c in classes if str(c).strip().lower() in POSITIVE_WORDS]
    if len(named) == 1:
        return named[0]
    counts = pd.Series(y).value_counts()
    rarest = min(int(counts[c]) for c in classes)
    return [c for c in classes if int(counts[c]) == rarest][-1]


def _match_label(pos_label: Any, classes: list[Any]) -> Any:
    for c in classes:
        if c == pos_label and isinstance(c, bool) == isinstance(pos_label, bool):
            return c
    text = str(pos_label).strip().lower()
    same_text = [c for c in classes if str(c).strip().lower() == text]
    if len(same_text) == 1:
        return same_text[0]
    if isinstance(pos_label, bool):
        words = _YAML_TRUE if pos_label else _YAML_FALSE
        matches = [c for c in classes if str(c).strip().lower() in words]
        if len(matches) == 1:
            return matches[0]
    raise SpecError(
        f"pos_label {pos_label!r} is not a class of the target (classes: "
        f"{_shown_classes(classes)}). Set pos_label to one of them (in quotes for text, "
        "e.g. pos_label: 'yes': unquoted yes/no read as true/false), or leave it out to let "
        "hpdash pick."
    )


def metric_note(metric: str, y: pd.Series, pos_label: Any = None) -> str | None:
    """One sentence for the form and the CLI about the positive class the metric uses (or a
    ``pos_label`` it does not use), or None when there is nothing to say."""
    label = resolve_pos_label(metric, y, pos_label)
    if label is None:
        if pos_label is not None:
            return f"pos_label {pos_label!r} is not used: metric {metric!r} does not single out one class."
        return None
    classes = sorted((_plain(c) for c in pd.unique(pd.Series(y).dropna())), key=str)
    how = (
        "the spec's pos_label"
        if pos_label is not None
        else f"picked by hpdash from the labels {_shown_classes(classes)}; set pos_label in "
        "the spec to choose the other"
    )
    return f"Metric {metric!r} scores class {label!r} as the positive one ({how})."


def make_scorer_for(metric: str, pos_label: Any = None) -> Callable[..., float]:
    """The scorer of ``metric``: scikit-learn's, or ``make_scorer(f, pos_label=...)`` for a
    two-class metric whose positive class is not scikit-learn's default 1."""
    if metric in POS_LABEL_METRICS and not _default_pos_label(pos_label):
        return make_scorer(POS_LABEL_METRICS[metric], pos_label=pos_label)
    return get_scorer(metric)


def _default_pos_label(pos_label: Any) -> bool:
    return pos_label is None or (type(pos_label) is int and pos_label == 1)


# --------------------------------------------------------------------------------------------
# Splits and folds
# --------------------------------------------------------------------------------------------
def holdout_split(
    X: pd.DataFrame, y: pd.Series, task: str, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """``train_test_split`` as DESIGN.md states it (stratified for classification)."""
    stratify = y if task == "classification" else None
    try:
        return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise SpecError(
            f"Cannot split off a holdout of {test_size:.0%}: {exc}. Use a smaller test fraction or more rows."
        ) from exc


def make_cv(task: str, folds: int, repeats: int, seed: int) -> Any:
    """The CV splitter: (Repeated)StratifiedKFold for classification, (Repeated)KFold otherwise."""
    if task == "classification":
        if repeats > 1:
            return RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if repeats > 1:
        return RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------
#: Histogram gradient boosting allows at most ``max_bins`` (255 by default) categories per
#: feature; rarer categories beyond that are grouped into one (``OrdinalEncoder``'s
#: ``max_categories``).
DEFAULT_MAX_BINS = 255


def make_preprocessor(
    numeric: list[str], categorical: list[str], encoding: str = models.ONEHOT, max_categories: int = DEFAULT_MAX_BINS
) -> ColumnTransformer:
    """Median-impute + scale numeric columns; categoricals as ``encoding`` says.

    ``ONEHOT``: most-frequent imputation, then a one-hot that ignores unknown categories (the
    ColumnTransformer returns it sparse when most of it is zeros); ``DENSE_ONEHOT``: the same,
    always dense; ``NATIVE``: ordinal codes with missing and unknown categories as NaN (the
    model's native missing-value handling) and at most ``max_categories`` codes per column,
    for a model that treats them as categories (histogram gradient boosting).
    """
    numeric_steps = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    if encoding == models.NATIVE:
        categorical_steps: Any = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=max_categories,
        )
    elif encoding in (models.ONEHOT, models.DENSE_ONEHOT):
        onehot = (
            OneHotEncoder(handle_unknown="ignore")
            if encoding == models.ONEHOT
            else OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        )
        categorical_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", onehot),
            ]
        )
    else:
        raise SpecError(
            f"unknown categorical encoding {encoding!r}; use one of: {', '.join(models.CATEGORICAL_INPUTS)}"
        )
    return ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)],
        remainder="drop",
    )


def _data_params(estimator: BaseEstimator, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """Estimator params the pipeline sets from the column roles: under ``NATIVE`` encoding the
    positions of the categorical columns in the ColumnTransformer's output (numeric first)."""
    if models.categorical_input(estimator) != models.NATIVE or not categorical:
        return {}
    return {"categorical_features": list(range(len(numeric), len(numeric) + len(categorical)))}


def build_pipeline(estimator: BaseEstimator, numeric: list[str], categorical: list[str]) -> Pipeline:
    """Preprocessing fitted inside each fold, then the estimator: nothing leaks across folds.

    The preprocessing follows the estimator's needs (``models.categorical_input``), histogram
    gradient boosting gets ``categorical_features`` (on a copy: ``estimator`` is not
    changed), and a regression estimator that needs it is fitted on a standardised target
    (``TransformedTargetRegressor``; predictions come back on the target's own scale).
    """
    encoding = models.categorical_input(estimator)
    data_params = _data_params(estimator, numeric, categorical)
    if data_params:
        estimator = clone(estimator).set_params(**data_params)
    max_categories = int(getattr(estimator, "max_bins", DEFAULT_MAX_BINS))
    model: BaseEstimator = estimator
    if models.scales_target(estimator):
        model = TransformedTargetRegressor(regressor=estimator, transformer=StandardScaler())
    return Pipeline(
        [
            ("preprocess", make_preprocessor(numeric, categorical, encoding, max_categories)),
            ("model", model),
        ]
    )


def model_param_prefix(pipeline: Pipeline) -> str:
    """``model__`` (or ``model__regressor__`` when the target is standardised): the prefix of
    the estimator's params in the pipeline, as ``GridSearchCV``'s param grid needs them."""
    return "model__regressor__" if isinstance(pipeline.named_steps["model"], TransformedTargetRegressor) else "model__"


# --------------------------------------------------------------------------------------------
# One study's data
# --------------------------------------------------------------------------------------------
@dataclass
class Problem:
    """One study's data, split and folds, computed once per worker.

    ``seed`` is the spec's ``split_seed`` (``StudySpec.split_seed``: ``seed`` unless given):
    the holdout split, the CV folds and the estimator's ``random_state`` all follow it; the
    sampler's seed (``sampler_seed``) is not the problem's.

    ``pos_label`` is the spec's (None: hpdash picks, see ``resolve_pos_label``); it holds the
    resolved positive class after construction (None for metrics without one).
    """

    task: str
    metric: str
    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series
    numeric: list[str]
    categorical: list[str]
    splits: list[tuple[np.ndarray, np.ndarray]]
    seed: int
    spaces: dict[str, space.SearchSpace] = field(default_factory=dict)
    pos_label: Any = None

    def __post_init__(self) -> None:
        # A frame assembled column by column holds one pandas block per column; selecting a
        # fold's rows from it is then far slower on a wide table than once its columns share
        # one block per dtype (what a copy makes). Every fold of every trial selects rows, so
        # the copy is made once here.
        self.X_train = self.X_train.copy()
        self.X_test = self.X_test.copy()
        if self.task == CLASSIFICATION:
            self.pos_label = resolve_pos_label(self.metric, self.y_train, self.pos_label)
        else:
            self.pos_label = None

    @property
    def models(self) -> list[str]:
        return list(self.spaces)

    @property
    def scorer(self) -> Callable[..., float]:
        """The study's scorer (with its positive class when the metric has one)."""
        return make_scorer_for(self.metric, self.pos_label)

    def pipeline(self, model_key: str, params: Mapping[str, Any]) -> Pipeline:
        estimator = models.make_estimator(model_key, self.task, params, seed=self.seed)
        return build_pipeline(estimator, self.numeric, self.categorical)


def make_problem(prepared: Any, spec: Any, spaces: Mapping[str, space.SearchSpace], metric: str) -> Problem:
    """A ``Problem`` from prepared data (``datasets.PreparedData``) and a ``StudySpec``: the
    holdout split, then the CV folds of the training part, as a worker computes them."""
    X_train, X_test, y_train, y_test = holdout_split(
        prepared.X, prepared.y, prepared.task, spec.test_size, spec.split_seed
    )
    cv = make_cv(prepared.task, spec.folds, spec.repeats, spec.split_seed)
    try:
        splits = list(cv.split(X_train, y_train))
    except ValueError as exc:
        raise DatasetError(f"Cannot make {spec.folds} CV folds from the training part: {exc}") from exc
    return Problem(
        task=prepared.task,
        metric=metric,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        numeric=list(prepared.numeric),
        categorical=list(prepared.categorical),
        splits=splits,
        seed=spec.split_seed,
        spaces=dict(spaces),
        pos_label=spec.pos_label,
    )


@dataclass
class CVResult:
    """Fold scores and timings of one hyperparameter configuration; with ``keep`` folds asked
    (``cross_validate_params``), the response outputs of those folds (``FoldOutputs``) and the
    seconds the outputs the scorer did not need took (``keep_time``)."""

    fold_scores: list[float]
    fit_times: list[float]
    score_times: list[float]
    outputs: list[FoldOutputs] = field(default_factory=list)
    keep_time: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))


# Without a pruner, fold scores are written live at most this often (one SQL Core upsert
# each time); fast trials write them with their results.
LIVE_REPORT_SECONDS = 0.25


class StopRequested(Exception):
    """The user asked the study to stop while this trial was running."""


class TrialError(Exception):
    """A trial failed for a reason already written for the user (``reason``), such as an
    estimator error raised in the trial's child process."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrialTimeout(TrialError):
    """The trial ran past the spec's ``trial_timeout`` and its process was killed."""


@dataclass
class FoldOutputs:
    """What one fold's fitted pipeline answered on its test rows, for every response method a
    trial keeps (``response_methods``), with the pipeline's ``classes_`` (classification)."""

    k: int
    outputs: dict[str, np.ndarray]
    classes: np.ndarray | None
    scored_with: str
    #: kept methods that raised (method -> the error): left out of the trial's file
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fold:
    k: int
    score: float
    fit_time: float
    score_time: float
    kept: FoldOutputs | None = None
    keep_time: float = 0.0


def _iter_folds(problem: Problem, model_key: str, params: Mapping[str, Any], keep: int = 0) -> Iterator[_Fold]:
    """Fit and score one configuration fold by fold.

    The first ``keep`` folds also keep their response outputs (``_Fold.kept``): the test rows
    go through the fitted preprocessing once, the method the scorer calls is called on the
    model with them (as ``Pipeline.predict*`` do), and the scorer is called on a
    ``ReplayClassifier`` / ``ReplayRegressor`` answering with that output: the score the
    scorer gives on the pipeline itself (the same call on the same array). The other kept
    methods are called after it (``keep_time``). The other folds are scored on the pipeline
    as they always were.
    """
    scorer = problem.scorer
    for k, (train_idx, test_idx) in enumerate(problem.splits):
        pipe = problem.pipeline(model_key, params)
        start = time.perf_counter()
        pipe.fit(problem.X_train.iloc[train_idx], problem.y_train.iloc[train_idx])
        fitted = time.perf_counter()
        X_test, y_test = problem.X_train.iloc[test_idx], problem.y_train.iloc[test_idx]
        kept, keep_time = None, 0.0
        scored_with, methods = response_methods(pipe, problem.task, problem.metric) if k < keep else ("", ())
        if methods and hasattr(pipe, scored_with):
            # What Pipeline.predict* do: the preprocessing's transform, then the model's
            # method; here the test rows are transformed once for every kept method.
            model = pipe[-1]
            Xt = pipe[:-1].transform(X_test)
            classes = np.asarray(pipe.classes_) if problem.task == CLASSIFICATION else None
            outputs = first_outputs(model, Xt, scored_with, methods)
            replay = replay_estimator(outputs, classes)
            score = float(scorer(replay, index_column(np.arange(len(test_idx))), y_test))
            scored = time.perf_counter()
            failed = {}
            for method in methods:
                if method not in outputs:
                    try:
                        outputs[method] = np.asarray(getattr(model, method)(Xt))
                    except Exception as exc:  # kept in the file's meta; the trial goes on
                        failed[method] = f"{type(exc).__name__}: {exc}"[:500]
            kept = FoldOutputs(k, outputs, classes, scored_with, failed)
            keep_time = time.perf_counter() - scored
        else:
            score = float(scorer(pipe, X_test, y_test))
            scored = time.perf_counter()
        if not math.isfinite(score):
            raise ValueError(f"the {problem.metric} score on fold {k} is {score}; the metric may not suit this data")
        yield _Fold(k, score, fitted - start, scored - fitted, kept, keep_time)


#: Classifiers whose ``predict`` is, in scikit-learn's own code, ``classes_.take(argmax(
#: predict_proba(X)))`` for one output (``ForestClassifier.predict``, which random forests and
#: extra trees inherit). For them a kept ``predict`` is taken from ``predict_proba`` instead of a
#: second pass over every tree: the same array, and a kept trial costs no more than a plain one.
PREDICT_IS_ARGMAX_OF_PROBA = (RandomForestClassifier.predict,)


def predicts_by_argmax(model: Any) -> bool:
    """Whether ``model.predict`` is exactly the argmax of its ``predict_proba`` (see
    ``PREDICT_IS_ARGMAX_OF_PROBA``)."""
    return getattr(type(model), "predict", None) in PREDICT_IS_ARGMAX_OF_PROBA and getattr(model, "n_outputs_", 1) == 1


def first_outputs(model: Any, Xt: Any, scored_with: str, methods: Sequence[str]) -> dict[str, np.ndarray]:
    """The output the scorer needs (``scored_with``) of a fitted ``model`` on the transformed
    test rows ``Xt``; with it ``predict_proba`` when ``predict`` is taken from it
    (``predicts_by_argmax``) and the trial keeps both."""
    if scored_with == "predict" and "predict_proba" in methods and predicts_by_argmax(model):
        proba = np.asarray(model.predict_proba(Xt))
        return {"predict": np.asarray(model.classes_).take(np.argmax(proba, axis=1), axis=0), "predict_proba": proba}
    return {scored_with: np.asarray(getattr(model, scored_with)(Xt))}


def cross_validate_params(
    problem: Problem,
    model_key: str,
    params: Mapping[str, Any],
    on_fold: Callable[[int, float], None] | None = None,
    keep: int = 0,
) -> CVResult:
    """Fit and score one configuration on every fold, calling ``on_fold(k, score)`` after each;
    the first ``keep`` folds keep their response outputs (``CVResult.outputs``; see
    ``_iter_folds``; ``first_repeat(problem)`` is the first CV repeat).

    Written by hand instead of ``cross_validate`` so fold k can be reported to a pruner before
    fold k+1 is fitted.
    """
    result = CVResult([], [], [])
    for fold in _iter_folds(problem, model_key, params, keep):
        result.fit_times.append(fold.fit_time)
        result.score_times.append(fold.score_time)
        result.fold_scores.append(fold.score)
        if fold.kept is not None:
            result.outputs.append(fold.kept)
            result.keep_time += fold.keep_time
        if on_fold is not None:
            on_fold(fold.k, fold.score)
    return result


# --------------------------------------------------------------------------------------------
# Out-of-fold predictions: kept per trial as an Optuna artifact, replayed through the scorer
# --------------------------------------------------------------------------------------------
#: The response methods scikit-learn's scorers call on a model.
RESPONSE_NAMES = ("predict", "predict_proba", "decision_function")
#: The file name of a trial's out-of-fold predictions (its Optuna artifact): ``oof-trial-<n>.npz``.
OOF_PREFIX = "oof-trial-"
OOF_FORMAT = "hpdash-oof/1"
#: What Optuna's artifacts API writes in a trial's system attrs: ``artifacts:<id>`` -> its meta
#: as JSON (``optuna.artifacts.upload_artifact``; ``get_all_artifact_meta`` reads the same).
ARTIFACT_ATTR_PREFIX = "artifacts:"


def response_methods(pipe: Any, task: str, metric: str) -> tuple[str, tuple[str, ...]]:
    """The response method the study's scorer calls on the fitted ``pipe`` (the first of
    ``RESPONSE_METHODS[metric]`` it has, else ``predict``), and the methods whose outputs a trial
    keeps: ``predict``; for a classifier also ``predict_proba`` when it has one, and
    ``decision_function`` when it has no ``predict_proba`` or when the scorer calls it. So the
    study's own scorer, and any predict- or probability-based scorer later, can be applied to
    the kept outputs (``ReplayClassifier``)."""
    if task != CLASSIFICATION:
        return "predict", ("predict",)
    scored_with = next((m for m in RESPONSE_METHODS.get(metric, ("predict",)) if hasattr(pipe, m)), "predict")
    methods = ["predict"]
    if hasattr(pipe, "predict_proba"):
        methods.append("predict_proba")
    if hasattr(pipe, "decision_function") and ("predict_proba" not in methods or scored_with == "decision_function"):
        methods.append("decision_function")
    return scored_with, tuple(methods)


def index_column(rows: Any) -> np.ndarray:
    """The ``X`` a replay estimator takes: row numbers (into its stored arrays) as one integer column."""
    return np.asarray(rows, dtype=np.intp).reshape(-1, 1)


def _stored(method: str) -> Callable[[Any], bool]:
    return lambda self: method in self.outputs


class ReplayClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier's stored outputs, answered for row numbers.

    ``outputs`` maps response methods (``predict``, ``predict_proba``, ``decision_function``) to
    arrays with one row per stored row; ``X`` is ``index_column(rows)``. It has exactly the
    methods it was given (``available_if``) and the model's ``classes_``, so a scikit-learn
    scorer called on it (``scorer(replay, index_column(rows), y[rows])``, its own public call)
    picks the method it would pick on the model and scores the stored rows as it would score
    the model's outputs, positive class included.
    """

    def __init__(self, outputs: Mapping[str, np.ndarray], classes: Any) -> None:
        self.outputs = outputs
        self.classes = classes
        self.classes_ = np.asarray(classes)

    @available_if(_stored("predict"))
    def predict(self, X: Any) -> np.ndarray:
        return self.outputs["predict"][np.asarray(X)[:, 0]]

    @available_if(_stored("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        return self.outputs["predict_proba"][np.asarray(X)[:, 0]]

    @available_if(_stored("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        return self.outputs["decision_function"][np.asarray(X)[:, 0]]


class ReplayRegressor(RegressorMixin, BaseEstimator):
    """A fitted regressor's stored predictions, answered for row numbers (see ``ReplayClassifier``)."""

    def __init__(self, outputs: Mapping[str, np.ndarray]) -> None:
        self.outputs = outputs

    def predict(self, X: Any) -> np.ndarray:
        return self.outputs["predict"][np.asarray(X)[:, 0]]


def replay_estimator(outputs: Mapping[str, np.ndarray], classes: Any = None) -> BaseEstimator:
    """``ReplayClassifier(outputs, classes)``, or ``ReplayRegressor(outputs)`` without classes."""
    return ReplayRegressor(outputs) if classes is None else ReplayClassifier(outputs, classes)


def first_repeat(problem: Problem) -> int:
    """How many of ``problem.splits`` make the first CV repeat: the leading folds whose test
    rows cover the training part once (all of them when repeats is 1)."""
    n, covered = len(problem.y_train), 0
    for k, (_, test_idx) in enumerate(problem.splits):
        covered += len(test_idx)
        if covered >= n:
            return k + 1
    return len(problem.splits)


def fold_of_rows(problem: Problem) -> np.ndarray:
    """The fold of the first CV repeat that tests each row of the training part (in its order)."""
    folds = first_repeat(problem)
    fold = np.full(len(problem.y_train), -1, dtype=np.int16)
    for k, (_, test_idx) in enumerate(problem.splits[:folds]):
        fold[test_idx] = k
    return fold


def target_digest(y: pd.Series) -> str:
    """SHA-256 of the training part's target in its row order (values and dtype, not the index):
    stored with each trial's predictions, so a replay on other rows is refused."""
    hashed = pd.util.hash_pandas_object(pd.Series(y).reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(str(pd.Series(y).dtype).encode() + hashed.tobytes()).hexdigest()


def _label_array(classes: np.ndarray) -> np.ndarray:
    """The class labels as an array ``numpy.save`` writes without pickle: text as unicode."""
    if classes.dtype != object:
        return classes
    if all(isinstance(c, str) for c in classes):
        return np.asarray(classes.tolist(), dtype=str)
    raise ValueError(
        f"the class labels ({', '.join(sorted({type(c).__name__ for c in classes}))}) cannot be stored without pickle"
    )


def oof_arrays(
    problem: Problem, result: CVResult, trial_number: int, target_sha256: str | None = None
) -> dict[str, np.ndarray]:
    """A trial's out-of-fold predictions of the first CV repeat, in the training part's row
    order, as the arrays of its ``.npz`` file.

    ``predict``: the predictions (regression, float64), or ``predict_codes`` (int) into
    ``classes`` (classification); ``predict_proba`` and ``decision_function`` as float32,
    except the scorer's own method, kept as the model gave it (float64) so the study's
    metric replays exactly; ``fold``: the fold that tested each row; ``meta``: JSON (format,
    trial, metric, the scorer's method, rows, the target's digest: ``target_digest``, computed
    here unless given; ``left_out``: kept methods that raised, with their error). When the
    folds' models do not share one set of classes (a class missing from a fold's training
    rows), only ``predict`` is kept."""
    n = len(problem.y_train)
    folds = first_repeat(problem)
    kept = sorted(result.outputs, key=lambda f: f.k)
    if [f.k for f in kept] != list(range(folds)):
        raise ValueError(
            f"the outputs of folds {[f.k for f in kept]} were kept, not of the {folds} folds of one repeat"
        )
    rows = [problem.splits[f.k][1] for f in kept]
    order = np.concatenate(rows)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError("the first CV repeat does not test every row of the training part once")
    classes = kept[0].classes
    same_classes = classes is None or all(f.classes is not None and np.array_equal(f.classes, classes) for f in kept)
    if not same_classes:
        classes = np.unique(np.concatenate([np.asarray(f.classes) for f in kept]))
    methods = [m for m in RESPONSE_NAMES if all(m in f.outputs for f in kept)]
    if not same_classes:
        methods = [m for m in methods if m == "predict"]
    left_out = {m: reason for f in kept for m, reason in f.failed.items()}
    if left_out:
        log.warning("Trial %d keeps its out-of-fold predictions without %s", trial_number, left_out)
    scored_with = kept[0].scored_with
    arrays: dict[str, np.ndarray] = {}
    for method in methods:
        values = np.concatenate([np.asarray(f.outputs[method]) for f in kept])
        stacked = np.empty_like(values)
        stacked[order] = values
        if method == "predict" and classes is not None:
            codes = pd.Index(classes).get_indexer(stacked)
            if (codes < 0).any():
                raise ValueError("a prediction is not one of the model's classes")
            arrays["predict_codes"] = codes.astype(np.int16 if len(classes) < 2**15 else np.int32)
            arrays["classes"] = _label_array(np.asarray(classes))
        elif method == "predict":
            arrays["predict"] = stacked
        else:
            arrays[method] = stacked if method == scored_with else stacked.astype(np.float32)
    fold = np.empty(n, dtype=np.int16)
    for f, test_idx in zip(kept, rows):
        fold[test_idx] = f.k
    arrays["fold"] = fold
    meta = {
        "format": OOF_FORMAT,
        "trial": trial_number,
        "metric": problem.metric,
        "scored_with": scored_with,
        "rows": n,
        "target_sha256": target_sha256 or target_digest(problem.y_train),
        "left_out": left_out,
    }
    arrays["meta"] = np.asarray(json.dumps(meta))
    return arrays


@dataclass(frozen=True)
class OOFPredictions:
    """One trial's stored out-of-fold predictions (first CV repeat), decoded: ``outputs`` per
    response method (``predict`` as class labels), ``classes`` (None for regression), ``fold``
    (the fold that tested each row) and ``meta`` (see ``oof_arrays``)."""

    trial: int
    outputs: dict[str, np.ndarray]
    classes: np.ndarray | None
    fold: np.ndarray
    meta: dict[str, Any]
    codes: np.ndarray | None = None  # the predicted classes as positions in ``classes``

    @property
    def rows(self) -> int:
        return len(self.fold)

    def replay(self, as_codes: bool = False) -> BaseEstimator:
        """The replay estimator of these predictions (``X`` = ``index_column(rows)``). With
        ``as_codes`` a classifier answers with class positions (``codes``) and has
        ``classes_ = 0..k-1`` (``label_codes`` gives the target the same way)."""
        if as_codes and self.classes is not None and self.codes is not None:
            return ReplayClassifier({**self.outputs, "predict": self.codes}, np.arange(len(self.classes)))
        return replay_estimator(self.outputs, self.classes)


def codes_score_as_labels(metric: str) -> bool:
    """Whether ``metric`` scores class positions in the sorted classes exactly as it scores the
    labels: every offered classification metric but those with a positive class, whose
    ``pos_label`` names a label (``tests/test_winners_curse.py`` checks each)."""
    return metric in CLASSIFICATION_METRICS and metric not in POS_LABEL_METRICS


def label_codes(y: Any, classes: np.ndarray) -> np.ndarray | None:
    """Each label of ``y`` as its position in ``classes`` (sorted, as a model's ``classes_``),
    or None when a label is not one of them."""
    codes = pd.Index(classes).get_indexer(np.asarray(y))
    return None if (codes < 0).any() else codes


def read_oof(source: Any) -> OOFPredictions:
    """Decode a trial's ``.npz`` (a path or a binary file), read without pickle."""
    with np.load(source, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    meta = json.loads(str(data.pop("meta")))
    if meta.get("format") != OOF_FORMAT:
        raise ValueError(f"not an hpdash out-of-fold file (format {meta.get('format')!r})")
    fold = data.pop("fold")
    classes = data.pop("classes", None)
    if classes is not None and classes.dtype.kind == "U":
        classes = classes.astype(object)  # text labels as the model gives them (Python str)
    outputs = {key: value for key, value in data.items() if key in RESPONSE_NAMES}
    codes = data.get("predict_codes")
    if codes is not None:
        assert classes is not None  # written together (oof_arrays)
        outputs["predict"] = classes[codes]
    return OOFPredictions(int(meta["trial"]), outputs, classes, fold, meta, codes)


def artifacts_folder(study_name: str) -> Path:
    """``<data>/artifacts/<stem>``: the folder of one study's artifacts, named from the study's
    name only (the name when it passes ``spec.check_name``, else ``_sha256-<its SHA-256>``, as
    the model files are), never from a value in the storage."""
    try:
        stem = check_name(study_name)
    except SpecError:
        stem = "_sha256-" + hashlib.sha256(str(study_name).encode("utf-8", "surrogatepass")).hexdigest()
    base = config.artifacts_dir(create=False).resolve()
    folder = base / stem
    if folder.parent != base or stem in (".", ".."):
        raise SpecError(f"The artifacts folder of study {study_name!r} would leave {base}; it was not used.")
    return folder


def artifact_store(study_name: str, create: bool = True) -> FileSystemArtifactStore:
    """The Optuna artifact store of one study (``artifacts_folder``), its folder created unless
    ``create`` is false (a reader). Other Optuna tools open it the same way:
    ``FileSystemArtifactStore("<data>/artifacts/<study>")``."""
    folder = artifacts_folder(study_name)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(folder)


def delete_artifacts(study_name: str) -> bool:
    """Delete one study's artifacts folder (found by the study's name only); True when there was
    one. Links are removed, not followed."""
    import shutil

    folder = artifacts_folder(study_name)
    if folder.is_symlink():
        folder.unlink()
        return True
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


def oof_artifacts(trial: optuna.trial.FrozenTrial) -> list[ArtifactMeta]:
    """The trial's out-of-fold artifacts (``oof-trial-<n>.npz``) from its system attrs, as
    ``optuna.artifacts.get_all_artifact_meta`` lists them, without a storage query; only
    those whose id is a UUID (what ``upload_artifact`` makes), so no id names another file."""
    metas = []
    for key, value in trial.system_attrs.items():
        if not key.startswith(ARTIFACT_ATTR_PREFIX):
            continue
        try:
            meta = ArtifactMeta(**json.loads(value))
            valid = str(uuid.UUID(meta.artifact_id)) == meta.artifact_id
        except (TypeError, ValueError):
            continue
        if valid and meta.filename.startswith(OOF_PREFIX) and meta.filename.endswith(".npz"):
            metas.append(meta)
    return metas


def load_oof(study_name: str, trial: optuna.trial.FrozenTrial) -> OOFPredictions | None:
    """The trial's stored out-of-fold predictions, or None when it has none. Raises
    ``optuna.artifacts.exceptions.ArtifactNotFound`` when its file is gone, ``ValueError``
    when the file is not one hpdash wrote."""
    metas = oof_artifacts(trial)
    if not metas:
        return None
    with artifact_store(study_name, create=False).open_reader(metas[-1].artifact_id) as handle:
        return read_oof(io.BytesIO(handle.read()))


@dataclass(frozen=True)
class PredictionStore:
    """How a study's trials keep their out-of-fold predictions: one ``.npz`` per COMPLETE
    trial, uploaded with ``optuna.artifacts.upload_artifact`` to the artifact store of the
    trial's study (``artifact_store``), when the training part has at most ``max_rows`` rows."""

    max_rows: int

    def skip_reason(self, problem: Problem) -> str | None:
        rows = len(problem.y_train)
        if rows > self.max_rows:
            return (
                f"The training part has {rows:,} rows, more than the {self.max_rows:,} whose "
                "out-of-fold predictions a trial keeps (HPDASH_MAX_OOF_ROWS)."
            )
        return None

    def upload(self, trial: optuna.Trial, arrays: Mapping[str, np.ndarray]) -> str:
        """Write the arrays as ``oof-trial-<n>.npz`` and upload it; the artifact's id."""
        store = artifact_store(trial.study.study_name)
        with tempfile.TemporaryDirectory(prefix="hpdash-oof-") as tmp:
            path = Path(tmp) / f"{OOF_PREFIX}{trial.number}.npz"
            write_npz(path, arrays)
            return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``numpy.savez_compressed`` at zlib level 1: the same ``.npz`` (``numpy.load`` reads
    it), in a quarter of the time of its default level, a few percent larger."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def prediction_store(spec: Any) -> PredictionStore | None:
    """The ``PredictionStore`` of a study's spec, or None when it keeps no predictions
    (``keep_predictions: false``)."""
    if not getattr(spec, "keep_predictions", True):
        return None
    return PredictionStore(config.max_oof_rows())


# --------------------------------------------------------------------------------------------
# Bounded trials: the CV of a trial in a child process that can be killed
# --------------------------------------------------------------------------------------------
class _Aborted(Exception):
    """The parent stopped this trial after a fold (pruned, or a stop asked)."""


def _trial_process_main(conn: Any, problem: Problem) -> None:
    """The child's loop: receive ``(model key, params, folds to keep)``, send each fold's result and wait
    for the parent's go-ahead (so pruning and stops act between folds, as in one process),
    then ``("done",)``, or ``("error", reason)``. Ends when the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a trial stops
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UserWarning)
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        model_key, params, keep = message
        try:
            for fold in _iter_folds(problem, model_key, params, keep):
                conn.send(("fold", fold))
                if conn.recv() != "next":
                    raise _Aborted()
            conn.send(("done",))
        except _Aborted:
            continue
        except EOFError:
            return
        except Exception as exc:  # reported to the parent, which fails the trial with it
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:2000]))


def _format_seconds(seconds: float) -> str:
    if seconds < 0.1:
        # A short measured fit keeps two significant digits: "0.0 s" beside an estimate of
        # a minute would read as if nothing had been measured.
        return f"{seconds * 1000:.2g} ms" if seconds < 0.001 else f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


class _TrialProcess:
    """One child process per worker that runs trials' CV, so a trial past ``trial_timeout``
    can be killed (a thread cannot be: scikit-learn's compiled fits never return to Python).

    The child comes from multiprocessing's ``forkserver``: a fresh process that imported
    hpdash.objective once, forked for each child. A plain ``fork`` of the worker would copy
    its storage and heartbeat threads' locks, and GNU OpenMP (histogram gradient boosting)
    hangs in a child forked after the parent used it. The study's data is sent once per
    child; a new child starts after a kill or a crash.
    """

    def __init__(self, problem: Problem) -> None:
        # the child never needs the holdout part
        self._problem = replace(problem, X_test=problem.X_test.iloc[:0], y_test=problem.y_test.iloc[:0])
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["hpdash.objective"])
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_trial_process_main, args=(child, self._problem), name="hpdash-trial", daemon=True)
        with runtime.children_import(__name__):
            proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        # The first child waits for the fork server's imports: not part of any trial's time.
        try:
            ready = parent.recv()
        except EOFError:
            code = self._reap()
            raise TrialError(f"The process that runs this study's trials did not start (exit code {code}).") from None
        if ready != ("ready",):
            self.kill()
            raise TrialError(f"The process that runs this study's trials sent {ready!r} instead of starting.")

    def _reap(self) -> int | None:
        proc, self._proc = self._proc, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if proc is None:
            return None
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        return proc.exitcode

    def kill(self) -> None:
        """End the child now (a trial past its time limit); the next trial starts a new one."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        self._reap()

    def close(self) -> None:
        """Ask the child to end (it also ends by itself when this process ends)."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass  # the child is already gone; _reap collects its exit code
        self._reap()

    def run(
        self,
        model_key: str,
        params: Mapping[str, Any],
        timeout: float,
        on_fold: Callable[[int, float], None] | None = None,
        keep: int = 0,
    ) -> CVResult:
        """The trial's CV in the child, within ``timeout`` seconds; ``TrialTimeout`` past it,
        ``TrialError`` with the estimator's error or when the child dies. ``keep``: as in
        ``cross_validate_params`` (the kept outputs come back with each fold)."""
        if self._proc is None or not self._proc.is_alive():
            self._reap()
            self._start()
        conn = self._conn
        deadline = time.monotonic() + timeout
        conn.send((model_key, dict(params), keep))
        result = CVResult([], [], [])
        folds = len(self._problem.splits)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not conn.poll(remaining):
                self.kill()
                raise TrialTimeout(
                    f"Stopped at the trial time limit: this trial ran for {timeout:g} s (the "
                    f"spec's trial_timeout) and finished {len(result.fold_scores)} of {folds} "
                    "folds. Raise trial_timeout, or narrow this model's search space (such as a "
                    "smaller C, fewer trees or smaller layers) so that one trial fits in it."
                )
            try:
                message = conn.recv()
            except EOFError:
                code = self._reap()
                raise TrialError(
                    f"The process fitting this trial ended unexpectedly (exit code {code}; -9 "
                    "is a kill, often for running out of memory) after "
                    f"{len(result.fold_scores)} of {folds} folds."
                ) from None
            if message[0] == "fold":
                fold: _Fold = message[1]
                result.fold_scores.append(fold.score)
                result.fit_times.append(fold.fit_time)
                result.score_times.append(fold.score_time)
                if fold.kept is not None:
                    result.outputs.append(fold.kept)
                    result.keep_time += fold.keep_time
                try:
                    if on_fold is not None:
                        on_fold(fold.k, fold.score)
                except BaseException:
                    conn.send("abort")
                    raise
                conn.send("next")
            elif message[0] == "done":
                return result
            else:
                raise TrialError(str(message[1]))


class Objective:
    """The Optuna objective: suggest from the space, cross-validate, store fold details.

    With ``trial_timeout`` (seconds) each trial's CV runs in a child process that is killed
    at the limit, and the trial fails with a reason naming the limit; call ``close`` when
    done with it (the child also ends with this process).

    With ``predictions`` (a ``PredictionStore``), each COMPLETE trial keeps the out-of-fold
    predictions of the first CV repeat (``oof_arrays``) as an Optuna artifact, and records the
    seconds that took in its ``oof_time`` user attr. A store that fails does not fail the
    trial: the error is logged and recorded in ``oof_error``. A training part over the
    store's ``max_rows`` keeps nothing and says why in ``oof_skipped``. Pruned and failed
    trials keep nothing.
    """

    def __init__(
        self,
        problem: Problem,
        stop_event: threading.Event | None = None,
        trial_timeout: float | None = None,
        predictions: PredictionStore | None = None,
    ) -> None:
        self.problem = problem
        self.stop_event = stop_event
        self.trial_timeout = trial_timeout
        self.predictions = predictions
        self._process = _TrialProcess(problem) if trial_timeout is not None else None
        self._skip_reason = predictions.skip_reason(problem) if predictions is not None else None
        self._keep = first_repeat(problem) if predictions is not None and self._skip_reason is None else 0
        self._target_sha256 = target_digest(problem.y_train) if self._keep else None

    def _store_predictions(self, trial: optuna.Trial, result: CVResult) -> dict[str, Any]:
        """Upload the trial's out-of-fold predictions; the user attrs that say how it went."""
        if self._skip_reason is not None:
            return {"oof_skipped": self._skip_reason}
        assert self.predictions is not None  # kept only with a store
        start = time.perf_counter()
        try:
            arrays = oof_arrays(self.problem, result, trial.number, self._target_sha256)
            self.predictions.upload(trial, arrays)
        except Exception as exc:  # recorded on the trial and logged; the trial still completes
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning(
                "Trial %d of study %s completes without its out-of-fold predictions: %s",
                trial.number,
                trial.study.study_name,
                reason,
            )
            return {"oof_error": reason}
        return {"oof_time": result.keep_time + time.perf_counter() - start}

    def close(self) -> None:
        if self._process is not None:
            self._process.close()

    def __call__(self, trial: optuna.Trial) -> float:
        problem, stop_event = self.problem, self.stop_event
        model_key, params = space.suggest(trial, problem.spaces)
        # A pruner reads each fold's score as soon as it is known. Without one, a fold score is
        # written live only when the last write is LIVE_REPORT_SECONDS old (progress of slow
        # trials shows in other Optuna tools); fast trials write all of theirs with the
        # results in one transaction (bench/tuning.py: storage cost per trial).
        prunes = not isinstance(trial.study.pruner, optuna.pruners.NopPruner)
        pending: dict[int, float] = {}
        last_write = time.monotonic()

        def on_fold(k: int, score: float) -> None:
            nonlocal last_write
            pending[k] = score
            if prunes or time.monotonic() - last_write >= LIVE_REPORT_SECONDS:
                # trial.report, one transaction for all pending folds (one per fold on a
                # storage that is not hpdash's)
                set_trial_user_attrs(trial, {}, intermediate_values=pending)
                pending.clear()
                last_write = time.monotonic()
            if k + 1 < len(problem.splits):
                if stop_event is not None and stop_event.is_set():
                    raise StopRequested()
                if prunes and trial.should_prune():
                    set_trial_user_attrs(trial, {"pruned_at_fold": k})
                    raise optuna.TrialPruned(f"pruned after fold {k}")

        try:
            if self._process is not None:
                assert self.trial_timeout is not None  # the process is made only with a trial_timeout
                result = self._process.run(model_key, params, float(self.trial_timeout), on_fold, self._keep)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    warnings.simplefilter("ignore", UserWarning)
                    result = cross_validate_params(problem, model_key, params, on_fold, self._keep)
        except (optuna.TrialPruned, StopRequested):
            raise
        except TrialError as exc:
            trial.set_user_attr("fail_reason", exc.reason[:2000])
            raise
        except Exception as exc:  # the estimator rejected these params: fail this trial only
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        attrs: dict[str, Any] = {
            "fold_scores": result.fold_scores,
            "cv_mean": result.mean,
            "cv_std": result.std,
            "fit_time": float(np.mean(result.fit_times)),
            "score_time": float(np.mean(result.score_times)),
        }
        if self.predictions is not None:
            attrs.update(self._store_predictions(trial, result))
        set_trial_user_attrs(trial, attrs, intermediate_values=pending)
        return result.mean


def make_objective(
    problem: Problem,
    stop_event: threading.Event | None = None,
    trial_timeout: float | None = None,
    predictions: PredictionStore | None = None,
) -> Objective:
    """The Optuna objective of ``problem`` (see ``Objective``); ``trial_timeout`` in seconds
    bounds each trial (``spec.trial_timeout``); ``predictions`` keeps each COMPLETE trial's
    out-of-fold predictions (``prediction_store(spec)``)."""
    return Objective(problem, stop_event, trial_timeout, predictions)


# --------------------------------------------------------------------------------------------
# The pre-launch smoke fit
# --------------------------------------------------------------------------------------------
#: Without a trial_timeout, a model whose trial is estimated above this is refused.
MAX_TRIAL_SECONDS = 3600.0
#: A model whose trial is estimated above this is warned about.
WARN_TRIAL_SECONDS = 60.0
#: Rows of the fold's test part the smoke fit scores at most.
SMOKE_TEST_ROWS = 1000

_GROWTH = {1.0: "about linearly", 2.0: "with rows²", 3.0: "with rows³"}


@dataclass
class SmokeFit:
    """One model's smoke fit: measured on a sample, extrapolated to one fold of the study."""

    model: str
    params: dict[str, Any]
    rows: int  # training rows of the sample
    fold_rows: int  # training rows of one CV fold of the study
    test_rows: int
    fold_test_rows: int
    fit_s: float
    score_s: float
    fold_s: float  # one full fold, extrapolated: fit + score
    trial_s: float  # every fold of one trial

    @property
    def extrapolated(self) -> bool:
        return self.rows < self.fold_rows or self.test_rows < self.fold_test_rows

    def describe(self) -> str:
        measured = f"one fold's fit took {_format_seconds(self.fit_s)} on {self.rows:,} rows"
        if self.rows < self.fold_rows:
            family = models.get_family(self.model)
            growth = _GROWTH.get(family.fit_exponent, f"as rows^{family.fit_exponent:g}")
            measured += f" of the {self.fold_rows:,} a CV fold trains on (its fit time grows {growth})"
        return measured


@dataclass
class SmokeReport:
    """Per-model smoke fits, with warnings (slow models) and notes (the metric's positive
    class) to show before launch."""

    fits: dict[str, SmokeFit]
    folds_per_trial: int
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def trial_s(self) -> float:
        """Expected seconds of one trial: the mean over the models (algorithm selection
        spreads its trials over them)."""
        return float(np.mean([fit.trial_s for fit in self.fits.values()]))

    @property
    def fit_s(self) -> float:
        """Mean measured fit + score time of the smoke fits."""
        return float(np.mean([fit.fit_s + fit.score_s for fit in self.fits.values()]))

    def messages(self) -> list[str]:
        return [*self.notes, *self.warnings]


def _smoke_members(family: models.ModelFamily, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The parameters the smoke fit fits, and the factor its times are scaled by: an
    ensemble of independent members (``family.smoke_members``) is fitted with at most that
    many, the rest of the configuration unchanged, and its times multiplied by the ratio."""
    if family.smoke_members is None:
        return params, 1.0
    name, count = family.smoke_members
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= count:
        return params, 1.0
    return {**params, name: count}, value / count


def representative_params(model_space: space.SearchSpace) -> dict[str, Any]:
    """The configuration the smoke fit times: each range at the middle of its 3-point grid
    (the geometric middle when log-scaled), each categorical at its first choice."""
    params: dict[str, Any] = {}
    for name, hp in model_space.items():
        if hp.type == "categorical":
            assert hp.choices  # a categorical has at least one choice (checked on construction)
            params[name] = hp.choices[0]
        else:
            values = space.grid_values(hp, 3)
            params[name] = values[len(values) // 2]
    return params


def _sample_rows(idx: np.ndarray, y: pd.Series | None, n: int, seed: int) -> np.ndarray:
    """``n`` of ``idx`` at random, keeping every class of ``y`` (classification) in it.

    Written by hand because ``train_test_split(stratify=...)`` refuses classes with a single
    row, which a small fold of a rare class has."""
    if n >= len(idx):
        return idx
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(idx)[:n]
    if y is not None:
        labels = y.iloc[idx].to_numpy()
        have = set(y.iloc[chosen].tolist())
        extra = [idx[np.flatnonzero(labels == c)[0]] for c in pd.unique(labels) if c not in have]
        chosen = np.concatenate([chosen[: max(0, n - len(extra))], np.asarray(extra, dtype=idx.dtype)])
    return np.sort(chosen)


def _check_row_bounds(spaces: Mapping[str, space.SearchSpace], task: str, fold_rows: int) -> None:
    """``SpecError`` when a hyperparameter bounded by the rows (k-NN's ``n_neighbors``) can
    exceed the rows the smallest CV fold trains on: every trial drawing it would fail."""
    for key, model_space in spaces.items():
        family = models.get_family(key)
        for name, why in family.row_bounded.items():
            hp = model_space.get(name)
            if hp is None:
                continue
            values = (
                [v for v in (hp.choices or ()) if isinstance(v, (int, float))]
                if hp.type == "categorical"
                else [hp.bounds()[1]]
            )
            if values and max(values) > fold_rows:
                raise SpecError(
                    f"Model {key!r}: {name} goes up to {max(values):g}, but a CV fold trains on "
                    f"only {fold_rows} rows ({why}). Lower its upper end to at most {fold_rows}, "
                    "use fewer CV folds, or add rows."
                )


def smoke_check(plan: Any, *, max_rows: int | None = None) -> SmokeReport:
    """Fit one fold of each chosen model before launch: the refusal a study would otherwise
    discover in every trial.

    ``plan`` is a ``runner.Plan`` (spec, prepared data, spaces, metric). The metric is checked
    with the models and the target (``check_metric``) and row-bounded hyperparameters with the
    fold size; then each model's representative configuration (``representative_params``)
    is fitted on a sample of the first CV fold's training rows (at most the family's
    ``smoke_rows``, or ``max_rows``) and scored on that fold's test rows with the study's
    scorer. Its time is extrapolated to the full fold with the family's complexity
    (``fit_exponent``, ``predict_exponent``) and to a trial (folds x repeats).

    Raises ``SpecError`` naming the model, the error and the fix when a fit or its score
    fails, or when one trial would take longer than the spec's ``trial_timeout``, its
    ``timeout``, or (with neither) ``MAX_TRIAL_SECONDS``. Slow models are in ``warnings``.
    Nothing is written.
    """
    spec, prepared = plan.spec, plan.prepared
    task = prepared.task
    metric = check_metric(plan.metric, task, prepared.y, plan.spaces, spec.pos_label)
    split = getattr(plan, "split", None)  # the plan's holdout split, when it made one
    X_train, _, y_train, _ = (
        split if split is not None else holdout_split(prepared.X, prepared.y, task, spec.test_size, spec.split_seed)
    )
    X_train = X_train.copy()  # one block per dtype: fast row selection (see Problem)
    cv = make_cv(task, spec.folds, spec.repeats, spec.split_seed)
    try:
        splits = list(cv.split(X_train, y_train))
    except ValueError as exc:
        raise DatasetError(f"Cannot make {spec.folds} CV folds from the training part: {exc}") from exc
    _check_row_bounds(plan.spaces, task, min(len(train) for train, _ in splits))
    pos_label = resolve_pos_label(metric, y_train, spec.pos_label) if task == CLASSIFICATION else None
    scorer = make_scorer_for(metric, pos_label)
    train_idx, test_idx = splits[0]
    labels = y_train if task == CLASSIFICATION else None
    folds = spec.folds * spec.repeats
    report = SmokeReport({}, folds)
    note = metric_note(metric, y_train, spec.pos_label) if task == CLASSIFICATION else None
    if note:
        report.notes.append(note)
    limit, limit_name, limit_fix = _trial_limit(spec)
    for key, model_space in plan.spaces.items():
        family = models.get_family(key)
        rows = min(len(train_idx), max_rows or family.smoke_rows)
        fit_idx = _sample_rows(train_idx, labels, rows, spec.split_seed)
        score_idx = _sample_rows(test_idx, labels, SMOKE_TEST_ROWS, spec.split_seed)
        params = representative_params(model_space)
        fitted_params, members = _smoke_members(family, params)
        estimator = models.make_estimator(key, task, fitted_params, seed=spec.split_seed)
        pipe = build_pipeline(estimator, prepared.numeric, prepared.categorical)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)
                start = time.perf_counter()
                pipe.fit(X_train.iloc[fit_idx], y_train.iloc[fit_idx])
                fitted = time.perf_counter()
                score = float(scorer(pipe, X_train.iloc[score_idx], y_train.iloc[score_idx]))
                scored = time.perf_counter()
        except Exception as exc:  # turned into the refusal, with the model and the fix
            raise SpecError(
                f"Model {key!r} failed its trial fit before launch ({type(estimator).__name__} "
                f"with {params}, on {len(fit_idx):,} rows of the training part, scored with "
                f"{metric}): {type(exc).__name__}: {str(exc)[:500]}. Change its search space, "
                "pick another metric or remove the model."
            ) from exc
        if not math.isfinite(score):
            raise SpecError(
                f"Model {key!r} scored {score} with {metric} in its trial fit before launch "
                f"({type(estimator).__name__} with {params}): every trial would fail. Pick "
                "another metric or remove the model."
            )
        # an ensemble fitted with fewer members: its times scale with their number
        fit_s, score_s = (fitted - start) * members, (scored - fitted) * members
        growth = len(train_idx) / len(fit_idx)
        fold_s = (
            fit_s * growth**family.fit_exponent
            + score_s * (len(test_idx) / len(score_idx)) * growth**family.predict_exponent
        )
        fit = SmokeFit(
            key,
            params,
            len(fit_idx),
            len(train_idx),
            len(score_idx),
            len(test_idx),
            fit_s,
            score_s,
            fold_s,
            fold_s * folds,
        )
        report.fits[key] = fit
        estimate = (
            f"Model {key!r}: one trial ({folds} fold{'s' if folds != 1 else ''}) "
            f"{'would take' if fit.trial_s > limit else 'will take'} about "
            f"{_format_seconds(fit.trial_s)}: {fit.describe()}"
        )
        if fit.trial_s > limit:
            raise SpecError(f"{estimate}. That is above {limit_name}. {limit_fix}")
        if fit.trial_s > WARN_TRIAL_SECONDS:
            report.warnings.append(f"{estimate}.")
    return report


def _trial_limit(spec: Any) -> tuple[float, str, str]:
    """The longest a trial may be estimated to take before launch, how to name it, and how
    to lift it."""
    fix_model = "Remove the model, narrow its search space, or use fewer rows or folds"
    limits = [
        (
            MAX_TRIAL_SECONDS,
            f"the {_format_seconds(MAX_TRIAL_SECONDS)} hpdash allows a trial when the spec sets no trial_timeout",
            f"{fix_model}; or set trial_timeout (seconds) above the estimate to run it anyway.",
        )
    ]
    if spec.trial_timeout is not None:
        limits = [
            (
                float(spec.trial_timeout),
                f"the spec's trial_timeout of {_format_seconds(float(spec.trial_timeout))}, "
                "so every trial would be stopped",
                f"{fix_model}; or raise trial_timeout above the estimate.",
            )
        ]
    if spec.timeout is not None and float(spec.timeout) < limits[0][0]:
        limits = [
            (
                float(spec.timeout),
                f"the study's whole time budget (timeout: {_format_seconds(float(spec.timeout))})",
                f"{fix_model}; or raise timeout.",
            )
        ]
    return limits[0]


# --------------------------------------------------------------------------------------------
# The reproduce snippet
# --------------------------------------------------------------------------------------------
_NUMERIC_SOURCE = 'Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])'


def _categorical_source(encoding: str, max_categories: int) -> str:
    """Source of ``make_preprocessor``'s categorical step for ``encoding`` (the test suite
    checks that it builds the same objects)."""
    if encoding == models.NATIVE:
        return (
            'OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, '
            f"encoded_missing_value=np.nan, max_categories={max_categories})"
        )
    dense = ", sparse_output=False" if encoding == models.DENSE_ONEHOT else ""
    return (
        'Pipeline([("impute", SimpleImputer(strategy="most_frequent")), '
        f'("onehot", OneHotEncoder(handle_unknown="ignore"{dense}))])'
    )


def reproduce_snippet(spec: Mapping[str, Any], problem: Problem, model_key: str, params: Mapping[str, Any]) -> str:
    """A plain scikit-learn script that recomputes one trial's CV score.

    It builds the same pipeline as ``Problem.pipeline`` (the preprocessing the model needs,
    histogram gradient boosting's categorical columns, a standardised regression target) and
    the same scorer (with the positive class of a two-class metric). Every ``random_state`` in
    it is ``problem.seed``, the study's split seed (``StudySpec.split_seed``): the sampler's
    seed only chose the hyperparameters, so it does not appear.
    """
    pipe = problem.pipeline(model_key, params)
    estimator = pipe.named_steps["model"]
    scaled = isinstance(estimator, TransformedTargetRegressor)
    if scaled:
        estimator = estimator.regressor
    encoding = models.categorical_input(estimator)
    data_params = _data_params(estimator, problem.numeric, problem.categorical)
    max_categories = int(getattr(estimator, "max_bins", DEFAULT_MAX_BINS))
    imports, expr = models.estimator_code(model_key, problem.task, params, problem.seed, data_params=data_params)
    folds, repeats = int(spec["cv"]["folds"]), int(spec["cv"].get("repeats", 1))
    cv_name = type(make_cv(problem.task, folds, repeats, problem.seed)).__name__
    cv_args = (
        f"n_splits={folds}, n_repeats={repeats}, random_state={problem.seed}"
        if repeats > 1
        else f"n_splits={folds}, shuffle=True, random_state={problem.seed}"
    )
    stratify = "y" if problem.task == "classification" else "None"
    compose = "ColumnTransformer, TransformedTargetRegressor" if scaled else "ColumnTransformer"
    encoders = "OrdinalEncoder, StandardScaler" if encoding == models.NATIVE else "OneHotEncoder, StandardScaler"
    custom_scorer = problem.metric in POS_LABEL_METRICS and not _default_pos_label(problem.pos_label)
    lines = [
        *(["import numpy as np"] if encoding == models.NATIVE else []),
        "import pandas as pd",
        f"from sklearn.compose import {compose}",
        "from sklearn.impute import SimpleImputer",
        *(
            [f"from sklearn.metrics import {POS_LABEL_METRICS[problem.metric].__name__}, make_scorer"]
            if custom_scorer
            else []
        ),
        f"from sklearn.model_selection import {cv_name}, cross_val_score, train_test_split",
        "from sklearn.pipeline import Pipeline",
        f"from sklearn.preprocessing import {encoders}",
        *imports,
        "",
        "# X, y: the prepared table (hpdash drops ID-like/constant/free-text columns and",
        "# expands datetimes first; see the dataset profile).",
        f"# random_state={problem.seed}: the study's split seed (holdout, CV folds and the model's own randomness).",
        f"numeric = {problem.numeric!r}",
        f"categorical = {problem.categorical!r}",
        f"X_train, X_test, y_train, y_test = train_test_split(X, y, test_size={spec['test_size']}, random_state={problem.seed}, stratify={stratify})",
        "preprocess = ColumnTransformer([",
        f'    ("numeric", {_NUMERIC_SOURCE}, numeric),',
        f'    ("categorical", {_categorical_source(encoding, max_categories)}, categorical),',
        "])",
    ]
    if scaled:
        lines.append(f"model = TransformedTargetRegressor(regressor={expr}, transformer=StandardScaler())")
    else:
        lines.append(f"model = {expr}")
    lines.append('pipeline = Pipeline([("preprocess", preprocess), ("model", model)])')
    lines.append(f"cv = {cv_name}({cv_args})")
    if custom_scorer:
        function = POS_LABEL_METRICS[problem.metric].__name__
        lines.append(f"scoring = make_scorer({function}, pos_label={models.literal(problem.pos_label)})")
    else:
        lines.append(f'scoring = "{problem.metric}"')
    lines += [
        "scores = cross_val_score(pipeline, X_train, y_train, cv=cv, scoring=scoring)",
        "print(scores.mean())",
    ]
    return "\n".join(lines)
