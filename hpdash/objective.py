"""The evaluation protocol: holdout split, CV folds, preprocessing pipeline, one trial's score.

Everything here is plain scikit-learn, so any trial can be reproduced outside hpdash (see
``reproduce_snippet``). A grid study reproduces ``GridSearchCV(...).cv_results_`` exactly.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import optuna
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from hpdash import models, space
from hpdash.errors import SpecError
from hpdash.storage import set_trial_user_attrs

CLASSIFICATION_METRICS = (
    "accuracy", "balanced_accuracy", "f1", "f1_macro", "f1_weighted", "precision_macro",
    "recall_macro", "roc_auc", "roc_auc_ovr", "roc_auc_ovo", "neg_log_loss", "matthews_corrcoef",
)
REGRESSION_METRICS = (
    "r2", "neg_mean_squared_error", "neg_root_mean_squared_error", "neg_mean_absolute_error",
    "neg_median_absolute_error", "explained_variance", "neg_mean_absolute_percentage_error",
)


def metrics_for_task(task: str) -> tuple[str, ...]:
    """The scikit-learn scorer names hpdash offers for ``task`` (first one is the default)."""
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    available = set(get_scorer_names())
    return tuple(n for n in names if n in available)


BINARY_ONLY_METRICS = ("roc_auc", "f1")


def resolve_metric(metric: str, task: str, n_classes: int | None = None) -> str:
    """``auto`` -> accuracy / r2; otherwise check the scorer exists and fits the task.

    ``n_classes`` (classification) rejects two-class-only scorers on a multiclass target,
    where every trial would otherwise fail.
    """
    if metric == "auto":
        return "accuracy" if task == "classification" else "r2"
    if metric in BINARY_ONLY_METRICS and n_classes is not None and n_classes > 2:
        alternative = {"roc_auc": "roc_auc_ovr", "f1": "f1_macro"}[metric]
        raise SpecError(f"Metric {metric!r} works only for two classes, and this target has {n_classes}. Use {alternative!r} instead.")
    valid = metrics_for_task(task)
    if metric not in valid:
        other = "regression" if task == "classification" else "classification"
        if metric in metrics_for_task(other):
            raise SpecError(f"Metric {metric!r} is for {other}, but this is a {task} task. Use one of: {', '.join(valid)}.")
        raise SpecError(f"Unknown metric {metric!r}. For {task} use one of: {', '.join(valid)}.")
    return metric


def holdout_split(X: pd.DataFrame, y: pd.Series, task: str, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """``train_test_split`` as DESIGN.md states it (stratified for classification)."""
    stratify = y if task == "classification" else None
    try:
        return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise SpecError(f"Cannot split off a holdout of {test_size:.0%}: {exc}. Use a smaller test fraction or more rows.") from exc


def make_cv(task: str, folds: int, repeats: int, seed: int) -> Any:
    """The CV splitter: (Repeated)StratifiedKFold for classification, (Repeated)KFold otherwise."""
    if task == "classification":
        if repeats > 1:
            return RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if repeats > 1:
        return RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def make_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Median-impute + scale numeric columns; most-frequent-impute + one-hot categoricals."""
    numeric_steps = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical_steps = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ])
    return ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)],
        remainder="drop",
    )


def build_pipeline(estimator: BaseEstimator, numeric: list[str], categorical: list[str]) -> Pipeline:
    """Preprocessing fitted inside each fold, then the estimator: nothing leaks across folds."""
    return Pipeline([("preprocess", make_preprocessor(numeric, categorical)), ("model", estimator)])


@dataclass
class Problem:
    """One study's data, split and folds, computed once per worker."""

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

    @property
    def models(self) -> list[str]:
        return list(self.spaces)

    def pipeline(self, model_key: str, params: Mapping[str, Any]) -> Pipeline:
        estimator = models.make_estimator(model_key, self.task, params, seed=self.seed)
        return build_pipeline(estimator, self.numeric, self.categorical)


@dataclass
class CVResult:
    """Fold scores and timings of one hyperparameter configuration."""

    fold_scores: list[float]
    fit_times: list[float]
    score_times: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))


# Without a pruner, fold scores are written live at most this often (one SQL Core upsert,
# about 0.3 ms); fast trials write them with their results.
LIVE_REPORT_SECONDS = 0.25


class StopRequested(Exception):
    """The user asked the study to stop while this trial was running."""


def cross_validate_params(
    problem: Problem,
    model_key: str,
    params: Mapping[str, Any],
    on_fold: Callable[[int, float], None] | None = None,
) -> CVResult:
    """Fit and score one configuration on every fold, calling ``on_fold(k, score)`` after each.

    Written by hand instead of ``cross_validate`` so fold k can be reported to a pruner before
    fold k+1 is fitted.
    """
    scorer = get_scorer(problem.metric)
    result = CVResult([], [], [])
    for k, (train_idx, test_idx) in enumerate(problem.splits):
        pipe = problem.pipeline(model_key, params)
        start = time.perf_counter()
        pipe.fit(problem.X_train.iloc[train_idx], problem.y_train.iloc[train_idx])
        fitted = time.perf_counter()
        score = float(scorer(pipe, problem.X_train.iloc[test_idx], problem.y_train.iloc[test_idx]))
        result.fit_times.append(fitted - start)
        result.score_times.append(time.perf_counter() - fitted)
        if not math.isfinite(score):
            raise ValueError(f"the {problem.metric} score on fold {k} is {score}; the metric may not suit this data")
        result.fold_scores.append(score)
        if on_fold is not None:
            on_fold(k, score)
    return result


def make_objective(problem: Problem, stop_event: threading.Event | None = None) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: suggest from the space, cross-validate, store fold details."""

    def objective(trial: optuna.Trial) -> float:
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)
                result = cross_validate_params(problem, model_key, params, on_fold)
        except (optuna.TrialPruned, StopRequested):
            raise
        except Exception as exc:  # the estimator rejected these params: fail this trial only
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        set_trial_user_attrs(
            trial,
            {
                "fold_scores": result.fold_scores,
                "cv_mean": result.mean,
                "cv_std": result.std,
                "fit_time": float(np.mean(result.fit_times)),
                "score_time": float(np.mean(result.score_times)),
            },
            intermediate_values=pending,
        )
        return result.mean

    return objective


def reproduce_snippet(spec: Mapping[str, Any], problem: Problem, model_key: str, params: Mapping[str, Any]) -> str:
    """A plain scikit-learn script that recomputes one trial's CV score."""
    imports, expr = models.estimator_code(model_key, problem.task, params, problem.seed)
    folds, repeats = int(spec["cv"]["folds"]), int(spec["cv"].get("repeats", 1))
    cv_name = type(make_cv(problem.task, folds, repeats, problem.seed)).__name__
    cv_args = (
        f"n_splits={folds}, n_repeats={repeats}, random_state={problem.seed}"
        if repeats > 1 else f"n_splits={folds}, shuffle=True, random_state={problem.seed}"
    )
    stratify = "y" if problem.task == "classification" else "None"
    lines = [
        "import pandas as pd",
        "from sklearn.compose import ColumnTransformer",
        "from sklearn.impute import SimpleImputer",
        f"from sklearn.model_selection import {cv_name}, cross_val_score, train_test_split",
        "from sklearn.pipeline import Pipeline",
        "from sklearn.preprocessing import OneHotEncoder, StandardScaler",
        *imports,
        "",
        "# X, y: the prepared table (hpdash drops ID-like/constant/free-text columns and",
        "# expands datetimes first; see the dataset profile).",
        f"numeric = {problem.numeric!r}",
        f"categorical = {problem.categorical!r}",
        f"X_train, X_test, y_train, y_test = train_test_split(X, y, test_size={spec['test_size']}, random_state={problem.seed}, stratify={stratify})",
        "preprocess = ColumnTransformer([",
        '    ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),',
        '    ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder(handle_unknown="ignore"))]), categorical),',
        "])",
        f'pipeline = Pipeline([("preprocess", preprocess), ("model", {expr})])',
        f"cv = {cv_name}({cv_args})",
        f'scores = cross_val_score(pipeline, X_train, y_train, cv=cv, scoring="{problem.metric}")',
        "print(scores.mean())",
    ]
    return "\n".join(lines)
