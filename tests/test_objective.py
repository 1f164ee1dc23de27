"""The evaluation protocol, checked against plain scikit-learn."""

import json
import re
import warnings
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.sparse
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    get_scorer,
    log_loss,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, KFold, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.preprocessing import OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from hpdash import datasets, models, objective, runner, space, strategies
from hpdash.errors import SpecError
from hpdash.spec import parse_spec
from hpdash.storage import WorkerRDBStorage, open_storage

GRID_SPEC = {
    "name": "bc-tree-grid",
    "dataset": "sklearn:breast_cancer",
    "target": "target",
    "model": "decision_tree",
    "space": {
        "max_depth": {"type": "int", "low": 2, "high": 10},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    },
    "strategy": "grid",
    "grid_points": 3,
    "n_trials": None,
    "metric": "accuracy",
    "seed": 0,
}


@pytest.mark.slow
def test_grid_study_reproduces_gridsearchcv(data_dir) -> None:
    """Acceptance: a grid study equals GridSearchCV's mean_test_score within 1e-9."""
    spec = parse_spec(GRID_SPEC)
    study = runner.create_study(spec)
    runner.wait_for(runner.launch_workers(spec.name, None, workers=1))
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))

    problem = runner.load_problem(spec, None)
    grid = space.grid(problem.spaces["decision_tree"], spec.grid_points)
    assert len(trials) == np.prod([len(v) for v in grid.values()])
    pipe = objective.build_pipeline(DecisionTreeClassifier(random_state=0), problem.numeric, problem.categorical)
    search = GridSearchCV(
        pipe,
        {f"model__{k}": v for k, v in grid.items()},
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0),
        scoring="accuracy",
    )
    search.fit(problem.X_train, problem.y_train)
    expected = {
        tuple(sorted((k.removeprefix("model__"), v) for k, v in params.items())): score
        for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])
    }
    for trial in trials:
        key = tuple(sorted(trial.params.items()))
        assert abs(trial.value - expected[key]) < 1e-9
        assert len(trial.user_attrs["fold_scores"]) == 5
        assert trial.intermediate_values == dict(enumerate(trial.user_attrs["fold_scores"]))


def test_cv_splitters_follow_the_protocol() -> None:
    assert isinstance(objective.make_cv("classification", 5, 1, 0), StratifiedKFold)
    assert isinstance(objective.make_cv("regression", 4, 1, 0), KFold)
    assert isinstance(objective.make_cv("classification", 3, 2, 0), RepeatedStratifiedKFold)


def test_metrics_by_task() -> None:
    assert objective.resolve_metric("auto", "classification") == "accuracy"
    assert objective.resolve_metric("auto", "regression") == "r2"
    assert "f1_macro" in objective.metrics_for_task("classification")
    with pytest.raises(SpecError, match="is for regression"):
        objective.resolve_metric("r2", "classification")
    with pytest.raises(SpecError, match="Unknown metric 'speed'"):
        objective.resolve_metric("speed", "regression")
    assert objective.resolve_metric("roc_auc", "classification", n_classes=2) == "roc_auc"
    with pytest.raises(SpecError, match="only for two classes, and this target has 3. Use 'roc_auc_ovr'"):
        objective.resolve_metric("roc_auc", "classification", n_classes=3)


def test_preprocessing_fits_inside_each_fold() -> None:
    """Mixed numeric/categorical data with gaps goes through the pipeline."""
    frame = pd.DataFrame(
        {
            "num": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0],
            "cat": ["a", "b", None, "a", "b", "a", "c", "a"],
        }
    )
    pre = objective.make_preprocessor(["num"], ["cat"])
    out = pre.fit_transform(frame.iloc[:6])
    assert out.shape == (6, 1 + 2)  # "c" is unseen in the first 6 rows
    assert pre.transform(frame.iloc[6:]).shape == (2, 3)  # unknown category ignored


def test_cross_validate_reports_each_fold() -> None:
    spec = parse_spec({**GRID_SPEC, "strategy": "random", "n_trials": 2})
    problem = runner.load_problem(spec, None)
    seen: list[tuple[int, float]] = []
    result = objective.cross_validate_params(
        problem, "decision_tree", {"max_depth": 3}, lambda k, s: seen.append((k, s))
    )
    assert [k for k, _ in seen] == [0, 1, 2, 3, 4]
    assert result.mean == pytest.approx(np.mean([s for _, s in seen]))
    assert len(result.fit_times) == 5 and all(t > 0 for t in result.fit_times)


def test_reproduce_snippet_runs_and_matches(data_dir) -> None:
    spec = parse_spec({**GRID_SPEC, "strategy": "random", "n_trials": 2})
    problem = runner.load_problem(spec, None)
    params = {"max_depth": 4, "min_samples_leaf": 2, "criterion": "entropy"}
    code = objective.reproduce_snippet(spec.to_dict(), problem, "decision_tree", params)
    prepared = datasets.prepare(datasets.load_sample("breast_cancer"), "target")
    scope = {"X": prepared.X, "y": prepared.y}
    exec(compile(code.replace("print(scores.mean())", "result = scores.mean()"), "snippet", "exec"), scope)
    expected = objective.cross_validate_params(problem, "decision_tree", params).mean
    assert abs(scope["result"] - expected) < 1e-12


@pytest.mark.parametrize(
    "pruner, live_seconds, live_reports",
    [
        ("none", 1e9, 0),  # fast trials, no pruner: every fold score is written with the results
        ("none", 0.0, 5),  # slow folds: each score is written as soon as it is known
        ("median", 1e9, 5),  # a pruner reads each fold's score at once
    ],
)
def test_fold_scores_reach_storage_live_only_when_needed(
    data_dir, tmp_path, monkeypatch, pruner, live_seconds, live_reports
) -> None:
    spec = parse_spec(
        {**GRID_SPEC, "name": f"live-{pruner}-{live_reports}", "strategy": "random", "n_trials": 1, "pruner": pruner}
    )
    problem = runner.load_problem(spec, None)
    monkeypatch.setattr(objective, "LIVE_REPORT_SECONDS", live_seconds)
    reports = []  # fold steps written before the trial's results (which come with attrs)
    real_write = WorkerRDBStorage.set_trial_user_attrs

    def spy(self, trial_id, attrs, intermediate_values=None):
        if not attrs:
            reports.extend(sorted(intermediate_values or {}))
        return real_write(self, trial_id, attrs, intermediate_values)

    monkeypatch.setattr(WorkerRDBStorage, "set_trial_user_attrs", spy)
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    study = optuna.create_study(direction="maximize", storage=storage, pruner=strategies.make_pruner(pruner, 5))
    study.optimize(objective.make_objective(problem), n_trials=1)
    (trial,) = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert reports == list(range(live_reports))
    assert trial.intermediate_values == dict(enumerate(trial.user_attrs["fold_scores"]))
    assert trial.value == pytest.approx(np.mean(trial.user_attrs["fold_scores"]))


# --------------------------------------------------------------------------------------------
# Every family: GridSearchCV's cv_results_ and the reproduce snippet, on generated tables
# --------------------------------------------------------------------------------------------
FAMILY_TASKS = [(key, task) for key, family in models.REGISTRY.items() for task in family.tasks]


def _small_table(kind: str, task: str) -> pd.DataFrame:
    """40 rows of numbers, or 60 rows mixing a number with two text columns with missing
    values (one of them with levels rare enough to be unseen by some folds)."""
    rng = np.random.default_rng(7)
    n = 40 if kind == "numeric" else 60
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x.round(4), columns=["a", "b", "c"])
    signal = x[:, 0] - x[:, 1]
    if kind == "categorical":
        frame = frame[["a"]]
        shade = rng.choice(np.array(["red", "green", "blue", "grey"], dtype=object), size=n)
        shop = np.array([f"shop{i % 9}" for i in rng.permutation(n)], dtype=object)
        shade[rng.random(n) < 0.1] = None
        shop[rng.random(n) < 0.1] = None
        frame = frame.assign(shade=shade, shop=shop)
        signal = x[:, 0] + (shade == "red") - (shop == "shop1")
    noisy = signal + rng.normal(scale=0.4, size=n)
    frame["y"] = (
        (noisy > np.median(noisy)).astype(int) if task == "classification" else (3000.0 + 400.0 * noisy).round(2)
    )
    return frame


def _plan(key: str, task: str, kind: str, **change) -> runner.Plan:
    spec = parse_spec(
        {
            "name": f"eq-{key.replace('_', '-')}",
            "dataset": f"{kind}.csv",
            "target": "y",
            "task": task,
            "model": key,
            "strategy": "grid",
            "n_trials": None,
            "cv": {"folds": 2},
            "seed": 0,
            **change,
        }
    )
    return runner.plan_study(spec, data=(_small_table(kind, task), None))


def _grid_of(key: str, task: str, plan: runner.Plan) -> tuple[dict[str, Any], str, list[Any]]:
    """The family's representative configuration, and two values of its first
    hyperparameter (its 2-point grid) to search over."""
    model_space = plan.spaces[key]
    base = objective.representative_params(model_space)
    name, hp = next(iter(model_space.items()))
    return base, name, space.grid_values(hp, 2)[:2]


#: k-NN's default n_neighbors reaches 50, more than these folds' rows; forests of 100 trees
#: cost seconds here and test nothing fewer trees do not
_FEW_TREES = {
    "space": {"n_estimators": {"type": "int", "low": 5, "high": 10}, "max_depth": {"type": "int", "low": 2, "high": 20}}
}
SMALL_SPACES = {
    "k_nearest_neighbors": {
        "space": {
            "n_neighbors": {"type": "int", "low": 1, "high": 10},
            "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
            "p": {"type": "categorical", "choices": [1, 2]},
        }
    },
    "random_forest": _FEW_TREES,
    "extra_trees": _FEW_TREES,
}


@pytest.mark.parametrize(("key", "task"), FAMILY_TASKS, ids=[f"{k}-{t}" for k, t in FAMILY_TASKS])
def test_every_family_reproduces_gridsearchcv_and_its_snippet(key, task) -> None:
    """Fold by fold, hpdash's scores equal GridSearchCV's ``split<k>_test_score`` (difference
    0.0) on a numeric and a categorical table, and the reproduce snippet, executed, gives the
    same fold scores. The estimators get the input they need: a dense one-hot where sparse
    input is refused, histogram gradient boosting's native categories, a standardised
    regression target for SVR, MLP, SGD and GP."""
    from threadpoolctl import threadpool_limits

    for kind in ("numeric", "categorical"):
        plan = _plan(key, task, kind, **SMALL_SPACES.get(key, {}))
        problem = plan.problem()
        base, name, values = _grid_of(key, task, plan)
        estimator = models.make_estimator(key, task, base, seed=0)
        pipe = objective.build_pipeline(estimator, problem.numeric, problem.categorical)
        prefix = objective.model_param_prefix(pipe)
        # GridSearchCV takes estimator values (a kernel object, a tuple of layer sizes)
        grid = {prefix + name: [models.make_estimator(key, task, {**base, name: v}).get_params()[name] for v in values]}
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search = GridSearchCV(
                pipe,
                grid,
                cv=objective.make_cv(task, 2, 1, 0),
                scoring=problem.scorer,
                refit=False,
                error_score="raise",
            )
            search.fit(problem.X_train, problem.y_train)
            ours = [objective.cross_validate_params(problem, key, {**base, name: v}).fold_scores for v in values]
        theirs = [[search.cv_results_[f"split{k}_test_score"][i] for k in range(2)] for i in range(len(values))]
        assert ours == theirs, (kind, ours, theirs)
        assert list(search.cv_results_["mean_test_score"]) == [np.mean(s) for s in ours]

        model_step = pipe.named_steps["model"]
        assert isinstance(model_step, TransformedTargetRegressor) == (
            task == "regression" and key in ("svm", "mlp", "sgd", "gaussian_process")
        )
        if kind != "categorical":
            continue
        encoder = pipe.named_steps["preprocess"].transformers[1][1]
        if key == "hist_gradient_boosting":
            assert isinstance(encoder, OrdinalEncoder)
            assert model_step.categorical_features == [1, 2]  # after the one numeric column
        else:
            onehot = encoder.named_steps["onehot"]
            dense = models.get_family(key).categorical_input == models.DENSE_ONEHOT
            assert onehot.sparse_output is not dense
        code = objective.reproduce_snippet(plan.spec.to_dict(), problem, key, {**base, name: values[0]})
        assert ("TransformedTargetRegressor(regressor=" in code) == isinstance(model_step, TransformedTargetRegressor)
        scope = {"X": plan.prepared.X, "y": plan.prepared.y}
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            exec(compile(code.replace("print(scores.mean())", "result = list(scores)"), "snippet", "exec"), scope)
        assert scope["result"] == ours[0], code


def test_sparse_input_reaches_only_the_estimators_that_take_it() -> None:
    """On a one-hot of many levels the ColumnTransformer returns a sparse matrix for
    ONEHOT families, never for DENSE_ONEHOT ones (their estimators refuse sparse input)."""
    frame = pd.DataFrame({"shop": [f"s{i % 30}" for i in range(60)], "a": np.arange(60.0)})
    for encoding, sparse in ((models.ONEHOT, True), (models.DENSE_ONEHOT, False)):
        out = objective.make_preprocessor(["a"], ["shop"], encoding).fit_transform(frame)
        assert scipy.sparse.issparse(out) is sparse
    native = objective.make_preprocessor(["a"], ["shop"], models.NATIVE).fit_transform(frame)
    assert native.shape == (60, 2) and set(native[:, 1]) == set(range(30))


def test_a_standardised_target_is_reproducible_and_on_the_target_scale() -> None:
    """SVR's target is standardised inside each fold (the scaler is fitted on the fold's
    training rows): two runs give identical scores, and predictions are on the raw scale."""
    plan = _plan("svm", "regression", "numeric")
    problem = plan.problem()
    params = objective.representative_params(plan.spaces["svm"])
    first = objective.cross_validate_params(problem, "svm", params).fold_scores
    assert objective.cross_validate_params(problem, "svm", params).fold_scores == first
    pipe = problem.pipeline("svm", params).fit(problem.X_train, problem.y_train)
    assert isinstance(pipe.named_steps["model"].transformer_, StandardScaler)
    assert abs(pipe.predict(problem.X_test).mean() - problem.y_train.mean()) < 3 * problem.y_train.std()


# --------------------------------------------------------------------------------------------
# Metric, model and target checked together before launch
# --------------------------------------------------------------------------------------------
def test_response_methods_are_scikit_learns() -> None:
    for name in objective.CLASSIFICATION_METRICS:
        method = get_scorer(name)._response_method
        expected = objective.RESPONSE_METHODS.get(name, ("predict",))
        assert (method if isinstance(method, tuple) else (method,)) == expected, name


YES_NO = pd.Series(["yes", "no", "no", "yes", "no", "no"] * 5)


@pytest.mark.parametrize(
    ("metric", "task", "y", "model_keys", "message"),
    [
        (
            "neg_log_loss",
            "classification",
            YES_NO,
            ["svm"],
            "Metric 'neg_log_loss' scores predicted probabilities (predict_proba), which model 'svm' (SVC) "
            "does not give. Pick a metric that scores predicted classes (accuracy, balanced_accuracy, f1, "
            "f1_macro, f1_weighted, precision_macro, recall_macro, matthews_corrcoef), or add probability: "
            "{type: categorical, choices: [true]} to svm's space",
        ),
        (
            "roc_auc_ovr",
            "classification",
            YES_NO,
            ["ridge"],
            "Metric 'roc_auc_ovr' scores predicted probabilities (predict_proba), which model 'ridge' "
            "(RidgeClassifier) does not give. Pick a metric that scores predicted classes",
        ),
        (
            "neg_log_loss",
            "classification",
            YES_NO,
            ["sgd"],
            "Metric 'neg_log_loss' scores predicted probabilities (predict_proba), which model 'sgd' "
            "(SGDClassifier) does not give with loss='hinge' (its search space offers it). Remove that "
            "choice from its space, or pick a metric that scores predicted classes",
        ),
        (
            "roc_auc",
            "classification",
            pd.Series([0, 1, 2] * 10),
            ["logistic_regression"],
            "Metric 'roc_auc' works only for two classes, and this target has 3. Use 'roc_auc_ovr' instead.",
        ),
        (
            "f1",
            "classification",
            pd.Series(["a", "b", "c"] * 10),
            ["logistic_regression"],
            "Metric 'f1' works only for two classes, and this target has 3. Use 'f1_macro' instead.",
        ),
        (
            "r2",
            "classification",
            YES_NO,
            ["logistic_regression"],
            "Metric 'r2' is for regression, but this is a classification task. Use one of: accuracy,",
        ),
        (
            "accuracy",
            "regression",
            pd.Series(np.arange(30.0)),
            ["ridge"],
            "Metric 'accuracy' is for classification, but this is a regression task. Use one of: r2,",
        ),
    ],
)
def test_wrong_metric_model_target_combinations_are_refused(metric, task, y, model_keys, message) -> None:
    with pytest.raises(SpecError) as refused:
        objective.check_metric(metric, task, y, model_keys)
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_decision_score_metric_takes_models_without_probabilities() -> None:
    """roc_auc scores decision_function when there are no probabilities: SVC, RidgeClassifier
    and a hinge SGD are fine for it; SGD's probabilistic losses alone are fine for log loss."""
    assert objective.check_metric("roc_auc", "classification", YES_NO, ["svm", "ridge", "sgd"]) == "roc_auc"
    probabilistic = {
        "sgd": space.parse_space({"loss": {"type": "categorical", "choices": ["log_loss", "modified_huber"]}})
    }
    assert objective.check_metric("neg_log_loss", "classification", YES_NO, probabilistic) == "neg_log_loss"
    with_probability = {"svm": space.parse_space({"probability": {"type": "categorical", "choices": [True]}})}
    assert objective.check_metric("neg_log_loss", "classification", YES_NO, with_probability) == "neg_log_loss"


def test_pos_label_of_yes_no_labels_is_picked_shown_and_overridable() -> None:
    assert objective.resolve_pos_label("f1", YES_NO) == "yes"
    assert objective.metric_note("f1", YES_NO) == (
        "Metric 'f1' scores class 'yes' as the positive one (picked by hpdash from the labels "
        "'no', 'yes'; set pos_label in the spec to choose the other)."
    )
    assert objective.resolve_pos_label("f1", YES_NO, "no") == "no"
    assert objective.resolve_pos_label("f1", YES_NO, True) == "yes"  # unquoted yes in YAML
    assert objective.resolve_pos_label("f1", YES_NO, " YES ") == "yes"
    assert objective.metric_note("f1", YES_NO, "no") == (
        "Metric 'f1' scores class 'no' as the positive one (the spec's pos_label)."
    )
    assert objective.resolve_pos_label("accuracy", YES_NO, "no") is None
    assert "is not used" in objective.metric_note("accuracy", YES_NO, "no")
    assert objective.resolve_pos_label("f1", pd.Series([0, 1] * 5)) == 1
    assert objective.resolve_pos_label("f1", pd.Series([True, False] * 5)) is True
    # without a word for "positive", the rarer class
    assert objective.resolve_pos_label("f1", pd.Series(["cat"] * 7 + ["dog"] * 3)) == "dog"
    with pytest.raises(SpecError) as refused:
        objective.check_metric("f1", "classification", YES_NO, ["logistic_regression"], "maybe")
    assert str(refused.value) == (
        "pos_label 'maybe' is not a class of the target (classes: 'no', 'yes'). Set pos_label to "
        "one of them (in quotes for text, e.g. pos_label: 'yes': unquoted yes/no read as "
        "true/false), or leave it out to let hpdash pick."
    )


def test_the_positive_class_reaches_the_scorer_and_the_snippet() -> None:
    """f1 on yes/no labels scores 'yes' unless the spec says 'no'; the snippet uses the same
    scorer and reproduces the score."""
    frame = _small_table("numeric", "classification")
    frame["y"] = frame["y"].map({1: "yes", 0: "no"})
    scores = {}
    for label in (None, "no"):
        spec = parse_spec(
            {
                "name": "yes-no",
                "dataset": "t.csv",
                "target": "y",
                "model": "decision_tree",
                "strategy": "random",
                "n_trials": 1,
                "cv": {"folds": 2},
                "metric": "f1",
                "pos_label": label,
                "seed": 0,
            }
        )
        plan = runner.plan_study(spec, data=(frame, None))
        problem = objective.make_problem(plan.prepared, spec, plan.spaces, plan.metric)
        assert problem.pos_label == (label or "yes")
        assert plan.problem().pos_label == problem.pos_label  # what `hpdash run` and workers use
        params = {"max_depth": 2}
        scores[label] = objective.cross_validate_params(problem, "decision_tree", params).fold_scores
        code = objective.reproduce_snippet(spec.to_dict(), problem, "decision_tree", params)
        assert f"make_scorer(f1_score, pos_label={problem.pos_label!r})" in code
        scope = {"X": plan.prepared.X, "y": plan.prepared.y}
        exec(compile(code.replace("print(scores.mean())", "result = list(scores)"), "snippet", "exec"), scope)
        assert scope["result"] == scores[label]
    assert scores[None] != scores["no"]


def test_a_refused_metric_writes_nothing(data_dir) -> None:
    """Metric, model and target are checked by plan_study, before anything is written: a
    metric of the other task, a two-class metric on three classes, log loss from a model
    without probabilities, a positive class that is no label. create_study refuses them the
    same way and the storage holds no study afterwards."""
    iris = {
        "name": "refused-metric",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "svm",
        "strategy": "random",
        "n_trials": 2,
        "cv": {"folds": 2},
    }
    cases = [
        ({"metric": "r2"}, "Metric 'r2' is for regression"),
        ({"metric": "roc_auc"}, "Metric 'roc_auc' works only for two classes"),
        ({"metric": "neg_log_loss"}, "which model 'svm' (SVC) does not give"),
        (
            {"metric": "neg_log_loss", "model": "sgd"},
            "which model 'sgd' (SGDClassifier) does not give with loss='hinge'",
        ),
        (
            {"dataset": "sklearn:breast_cancer", "metric": "f1", "pos_label": "maybe"},
            "pos_label 'maybe' is not a class of the target (classes: 'benign', 'malignant')",
        ),
    ]
    for change, message in cases:
        spec = parse_spec({**iris, **change})
        with pytest.raises(SpecError) as refused:
            runner.plan_study(spec)
        assert message in str(refused.value)
        with pytest.raises(SpecError):
            runner.create_study(spec)
    assert optuna.get_all_study_names(open_storage(None, heartbeat=False)) == []


# --------------------------------------------------------------------------------------------
# The pre-launch smoke fit
# --------------------------------------------------------------------------------------------
def test_smoke_check_measures_each_model_for_real() -> None:
    plan = _plan("decision_tree", "classification", "categorical", strategy="random", n_trials=3)
    report = objective.smoke_check(plan)
    fit = report.fits["decision_tree"]
    assert fit.fit_s > 0 and fit.score_s > 0 and fit.trial_s > 0
    assert fit.rows == fit.fold_rows == 24 and fit.test_rows == fit.fold_test_rows == 24
    assert fit.trial_s == pytest.approx(2 * (fit.fit_s + fit.score_s))  # 2 folds, nothing extrapolated
    assert report.warnings == [] and report.notes == []


def test_a_model_that_fails_its_smoke_fit_is_refused_with_its_error() -> None:
    """lbfgs cannot fit an l1 penalty (l1_ratio 1): the smoke fit's ValueError is the
    refusal's cause and its text is in the message, with the model, the configuration and
    the fix."""
    space_ = {
        "solver": {"type": "categorical", "choices": ["lbfgs"]},
        "l1_ratio": {"type": "categorical", "choices": [1.0]},
    }
    plan = _plan("logistic_regression", "classification", "numeric", strategy="random", n_trials=2, space=space_)
    with pytest.raises(SpecError) as refused:
        objective.smoke_check(plan)
    message = str(refused.value)
    assert message.startswith(
        "Model 'logistic_regression' failed its trial fit before launch "
        "(LogisticRegression with {'solver': 'lbfgs', 'l1_ratio': 1.0}, on 16 rows "
        "of the training part, scored with accuracy): ValueError: "
    ), message
    assert "Solver lbfgs supports only 'l2' or None penalties, got l1 penalty." in message
    assert message.endswith("Change its search space, pick another metric or remove the model.")
    assert isinstance(refused.value.__cause__, ValueError)


def _many_rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": (x[:, 0] > 0).astype(int)})


def test_a_gaussian_process_on_too_many_rows_is_refused_or_warned_with_its_measured_time(monkeypatch) -> None:
    """The GP classifier is fitted on 100 rows of the 800 a fold trains on, and its cost
    extrapolated as rows³ (512 times): above the trial_timeout it is refused, above the
    warning threshold it is warned about, each time with the measured fit."""
    base = {
        "name": "gp-big",
        "dataset": "t.csv",
        "target": "y",
        "model": "gaussian_process",
        "strategy": "random",
        "n_trials": 2,
        "cv": {"folds": 2},
        "space": {"kernel": {"type": "categorical", "choices": ["rbf"]}},
    }
    frame = _many_rows(2000)
    plan = runner.plan_study(parse_spec({**base, "trial_timeout": 1.0}), data=(frame, None))
    with pytest.raises(SpecError) as refused:
        objective.smoke_check(plan)
    message = str(refused.value)
    measured = re.search(
        r"one fold's fit took ([0-9.]+) m?s on 100 rows of the 800 a CV fold trains on "
        r"\(its fit time grows with rows³\)",
        message,
    )
    assert measured and float(measured.group(1)) > 0, message
    assert message.startswith("Model 'gaussian_process': one trial (2 folds) would take about "), message
    assert "That is above the spec's trial_timeout of 1.0 s, so every trial would be stopped." in message
    assert message.endswith("or raise trial_timeout above the estimate.")

    monkeypatch.setattr(objective, "WARN_TRIAL_SECONDS", 0.5)
    report = objective.smoke_check(runner.plan_study(parse_spec(base), data=(frame, None)))
    fit = report.fits["gaussian_process"]
    assert (fit.rows, fit.fold_rows) == (100, 800)
    assert fit.trial_s >= 2 * fit.fit_s * 8**3 > 0.5
    (warning,) = report.warnings
    assert warning.startswith("Model 'gaussian_process': one trial (2 folds) will take about ")
    assert "on 100 rows of the 800 a CV fold trains on (its fit time grows with rows³)" in warning


# --------------------------------------------------------------------------------------------
# Bounded trials
# --------------------------------------------------------------------------------------------
def test_a_trial_past_its_time_limit_is_killed_and_the_study_goes_on(tmp_path) -> None:
    """A 20,000-tree forest in a study with trial_timeout 1 s: its process is killed at the
    limit, the trial FAILs saying so, and the next trial completes in a new process. (A
    first small trial starts the trial process, whose imports are not part of a trial's
    time.)"""
    frame = _many_rows(400)
    spec = parse_spec(
        {
            "name": "bounded",
            "dataset": "t.csv",
            "target": "y",
            "model": "random_forest",
            "strategy": "random",
            "n_trials": 3,
            "cv": {"folds": 2},
            "trial_timeout": 1.0,
            "space": {"n_estimators": {"type": "int", "low": 5, "high": 20_000}},
        }
    )
    plan = runner.plan_study(spec, data=(frame, None))
    storage = open_storage(f"sqlite:///{tmp_path / 'bounded.db'}", heartbeat=False)
    study = optuna.create_study(storage=storage, direction="maximize")
    for trees in (5, 20_000, 6):
        study.enqueue_trial({"n_estimators": trees})
    run = objective.make_objective(plan.problem(), trial_timeout=spec.trial_timeout)
    try:
        study.optimize(run, n_trials=3, catch=(objective.TrialError,))
    finally:
        run.close()
    first, slow, after = study.get_trials()
    assert slow.state == optuna.trial.TrialState.FAIL
    assert slow.user_attrs["fail_reason"] == (
        "Stopped at the trial time limit: this trial ran for 1 s (the spec's trial_timeout) and "
        "finished 0 of 2 folds. Raise trial_timeout, or narrow this model's search space (such as "
        "a smaller C, fewer trees or smaller layers) so that one trial fits in it."
    )
    assert 1.0 <= (slow.datetime_complete - slow.datetime_start).total_seconds() < 3.0
    for done in (first, after):
        assert done.state == optuna.trial.TrialState.COMPLETE
        assert len(done.user_attrs["fold_scores"]) == 2


def test_a_neighbour_range_past_the_fold_size_is_cut_by_default_and_refused_when_given() -> None:
    """k-NN's default n_neighbors (up to 50) is cut to the rows a fold trains on; a range the
    user gives is refused before launch, naming the largest it may be."""
    frame = _small_table("numeric", "classification")
    base = {
        "name": "knn",
        "dataset": "t.csv",
        "target": "y",
        "model": "k_nearest_neighbors",
        "strategy": "random",
        "n_trials": 2,
        "cv": {"folds": 2},
        "seed": 0,
    }
    plan = runner.plan_study(parse_spec(base), data=(frame, None))
    fold_rows = min(len(train) for train, _ in plan.problem().splits)
    assert plan.spaces["k_nearest_neighbors"]["n_neighbors"].high == fold_rows < 50
    objective.smoke_check(plan)  # the cut default runs
    given = parse_spec({**base, "space": {"n_neighbors": {"type": "int", "low": 1, "high": 50}}})
    plan = runner.plan_study(given, data=(frame, None))
    assert plan.spaces["k_nearest_neighbors"]["n_neighbors"].high == 50  # the user's range stays
    with pytest.raises(
        SpecError,
        match=rf"^Model 'k_nearest_neighbors': n_neighbors goes up to 50, but "
        rf"a CV fold trains on only {fold_rows} rows .*Lower its upper end to at most {fold_rows}",
    ):
        objective.smoke_check(plan)


# --------------------------------------------------------------------------------------------
# split_seed: the problem (holdout, folds, model seed); sampler_seed does not reach it
# --------------------------------------------------------------------------------------------
def _seeded_problem(**seeds: int) -> tuple[Any, objective.Problem]:
    spec = parse_spec({**GRID_SPEC, "dataset": "sklearn:iris", "cv": {"folds": 3}, **seeds})
    plan = runner.plan_study(spec)
    return plan, objective.make_problem(plan.prepared, spec, plan.spaces, plan.metric)


def _folds_of(problem: objective.Problem) -> list[list[Any]]:
    """Each CV fold's test rows by their index in the table: the fold assignment."""
    return [sorted(problem.X_train.index[test]) for _, test in problem.splits]


def test_split_seed_fixes_the_holdout_the_folds_and_the_model_and_the_sampler_seed_does_not() -> None:
    plan, one = _seeded_problem(seed=0, split_seed=5, sampler_seed=1)
    _, other = _seeded_problem(seed=8, split_seed=5, sampler_seed=2)
    _, plain = _seeded_problem(seed=5)  # split_seed not given: the old protocol of seed 5
    _, moved = _seeded_problem(seed=0, split_seed=6, sampler_seed=1)
    for same in (other, plain):
        assert list(same.X_train.index) == list(one.X_train.index)
        assert list(same.X_test.index) == list(one.X_test.index)
        assert _folds_of(same) == _folds_of(one)
        assert same.seed == one.seed == 5
    assert one.pipeline("decision_tree", {"max_depth": 3}).named_steps["model"].random_state == 5
    # grid is deterministic: the same split seed scores every grid point the same, fold by fold
    points = space.grid_points(plan.spaces, 3)
    assert len(points) == 18
    for point in points:
        params = {k: v for k, v in point.items() if k != "model"}
        assert (
            objective.cross_validate_params(one, "decision_tree", params).fold_scores
            == objective.cross_validate_params(other, "decision_tree", params).fold_scores
        )
    # another split seed: another holdout and other folds
    assert list(moved.X_test.index) != list(one.X_test.index)
    assert _folds_of(moved) != _folds_of(one)


def test_the_reproduce_snippet_uses_the_split_seed(data_dir) -> None:
    plan, problem = _seeded_problem(seed=0, split_seed=5, sampler_seed=3)
    params = {"max_depth": 3, "min_samples_leaf": 2, "criterion": "gini"}
    code = objective.reproduce_snippet(plan.spec.to_dict(), problem, "decision_tree", params)
    assert set(re.findall(r"random_state=(\d+)", code)) == {"5"}
    scope = {"X": plan.prepared.X, "y": plan.prepared.y}
    exec(compile(code.replace("print(scores.mean())", "result = list(scores)"), "snippet", "exec"), scope)
    assert scope["result"] == objective.cross_validate_params(problem, "decision_tree", params).fold_scores


def test_the_smoke_fit_samples_and_seeds_with_the_split_seed(monkeypatch) -> None:
    import dataclasses

    plan, _ = _seeded_problem(seed=0, split_seed=5, sampler_seed=3)
    seen: dict[str, list[Any]] = {"holdout": [], "rows": [], "model": []}
    holdout, sample, make = objective.holdout_split, objective._sample_rows, models.make_estimator

    def spy_holdout(X, y, task, test_size, seed):
        seen["holdout"].append(seed)
        return holdout(X, y, task, test_size, seed)

    def spy_rows(idx, y, n, seed):
        seen["rows"].append(seed)
        return sample(idx, y, n, seed)

    def spy_model(key, task, params, seed=None):
        seen["model"].append(seed)
        return make(key, task, params, seed=seed)

    monkeypatch.setattr(objective, "holdout_split", spy_holdout)
    monkeypatch.setattr(objective, "_sample_rows", spy_rows)
    monkeypatch.setattr(objective.models, "make_estimator", spy_model)
    objective.smoke_check(dataclasses.replace(plan, split=None))  # the check makes its own split
    assert seen["holdout"] == [5] and set(seen["rows"]) == {5} and set(seen["model"]) == {5}


# --------------------------------------------------------------------------------------------
# Out-of-fold predictions: kept, stored and replayed through the study's scorer
# --------------------------------------------------------------------------------------------
def _oof_problem(model: str, metric: str, **change) -> tuple[objective.Problem, dict[str, Any]]:
    """A problem of the small generated tables (yes/no labels for f1), with a configuration."""
    task = "regression" if metric == "r2" else "classification"
    frame = _small_table("categorical", task)
    if metric == "f1":
        frame["y"] = frame["y"].map({1: "yes", 0: "no"})
    spec = parse_spec(
        {
            "name": "oof",
            "dataset": "t.csv",
            "target": "y",
            "task": task,
            "model": model,
            "strategy": "random",
            "n_trials": 1,
            "cv": {"folds": 3},
            "metric": metric,
            "seed": 0,
            **change,
        }
    )
    plan = runner.plan_study(spec, data=(frame, None))
    return plan.problem(), objective.representative_params(plan.spaces[model])


OOF_CASES = [
    # model, metric, the response method the scorer calls, the score of pooled predictions
    ("decision_tree", "accuracy", "predict", lambda y, p: accuracy_score(y, p)),
    # predict taken from predict_proba (objective.PREDICT_IS_ARGMAX_OF_PROBA)
    ("random_forest", "accuracy", "predict", lambda y, p: accuracy_score(y, p)),
    ("extra_trees", "balanced_accuracy", "predict", lambda y, p: balanced_accuracy_score(y, p)),
    ("logistic_regression", "neg_log_loss", "predict_proba", lambda y, p: -log_loss(y, p)),
    ("logistic_regression", "roc_auc", "decision_function", lambda y, p: roc_auc_score(y, p)),
    ("svm", "balanced_accuracy", "predict", lambda y, p: balanced_accuracy_score(y, p)),
    ("decision_tree", "f1", "predict", lambda y, p: f1_score(y, p, pos_label="yes")),
    ("ridge", "r2", "predict", lambda y, p: r2_score(y, p)),
]


@pytest.mark.parametrize(("model", "metric", "method", "pooled"), OOF_CASES, ids=[f"{c[0]}-{c[1]}" for c in OOF_CASES])
def test_stored_oof_predictions_replay_to_the_scores_of_the_same_predictions(
    tmp_path, model, metric, method, pooled
) -> None:
    """A trial's kept outputs, written as its .npz and read back: replayed with the study's scorer
    on fold j's rows they give the fold's score, on every row the score of the
    ``cross_val_predict`` predictions of the same folds (exactly); the fold scores are those of
    the trial without keeping anything (0.0 difference)."""
    from sklearn.model_selection import cross_val_predict

    problem, params = _oof_problem(model, metric)
    folds = objective.first_repeat(problem)
    kept = objective.cross_validate_params(problem, model, params, keep=folds)
    assert kept.fold_scores == objective.cross_validate_params(problem, model, params).fold_scores
    path = tmp_path / "oof-trial-0.npz"
    objective.write_npz(path, objective.oof_arrays(problem, kept, 0))
    oof = objective.read_oof(path)
    assert oof.meta["scored_with"] == method and oof.meta["metric"] == metric and oof.rows == len(problem.y_train)
    y = problem.y_train
    for j, score in enumerate(kept.fold_scores):
        rows = np.flatnonzero(oof.fold == j)
        assert abs(problem.scorer(oof.replay(), objective.index_column(rows), y.iloc[rows]) - score) <= 1e-12
    pipe = problem.pipeline(model, params)
    expected = cross_val_predict(pipe, problem.X_train, y, cv=problem.splits[:folds], method=method)
    everything = objective.index_column(np.arange(len(y)))
    assert np.array_equal(oof.outputs[method], expected)
    assert problem.scorer(oof.replay(), everything, y) == pooled(y, expected)
    if problem.task == "classification":
        assert get_scorer("accuracy")(oof.replay(), everything, y) == accuracy_score(y, oof.outputs["predict"])


def test_only_forests_take_predict_from_their_probabilities() -> None:
    """The forests' predict is the argmax of their probabilities (so a kept trial calls the trees
    once); every other classifier's predict is its own call."""
    for model, expected in [
        ("random_forest", True),
        ("extra_trees", True),
        ("decision_tree", False),
        ("hist_gradient_boosting", False),
        ("k_nearest_neighbors", False),
        ("logistic_regression", False),
    ]:
        problem, params = _oof_problem(model, "accuracy")
        pipe = problem.pipeline(model, params).fit(problem.X_train, problem.y_train)
        assert objective.predicts_by_argmax(pipe[-1]) is expected, model
        outputs = objective.first_outputs(
            pipe[-1], pipe[:-1].transform(problem.X_train), "predict", ("predict", "predict_proba")
        )
        assert np.array_equal(outputs["predict"], pipe.predict(problem.X_train)), model
        assert ("predict_proba" in outputs) is expected, model


def test_each_kind_of_model_keeps_predict_and_its_scores() -> None:
    """predict always; probabilities when the classifier has them, else decision scores; the
    decision scores too when the scorer reads them; float32 except the scorer's own method."""
    cases = [
        ("decision_tree", "accuracy", {"predict", "predict_proba"}),
        ("logistic_regression", "accuracy", {"predict", "predict_proba"}),
        ("logistic_regression", "roc_auc", {"predict", "predict_proba", "decision_function"}),
        ("svm", "accuracy", {"predict", "decision_function"}),
        ("ridge", "r2", {"predict"}),
    ]
    for model, metric, methods in cases:
        problem, params = _oof_problem(model, metric)
        result = objective.cross_validate_params(problem, model, params, keep=objective.first_repeat(problem))
        arrays = objective.oof_arrays(problem, result, 3)
        stored = {("predict" if k == "predict_codes" else k) for k in arrays} - {"classes", "fold", "meta"}
        assert stored == methods, (model, metric)
        scored_with = json.loads(str(arrays["meta"]))["scored_with"]
        for key in ("predict_proba", "decision_function"):
            if key in arrays:
                assert arrays[key].dtype == (np.float64 if key == scored_with else np.float32)
        if problem.task == "classification":
            assert arrays["predict_codes"].dtype == np.int16 and arrays["classes"].dtype.kind == "i"
        else:
            assert arrays["predict"].dtype == np.float64


def test_a_trial_whose_store_fails_completes_and_says_why(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "data"))
    problem, params = _oof_problem("decision_tree", "accuracy")

    def broken(self, trial, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(objective.PredictionStore, "upload", broken)
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.enqueue_trial(params)
    with caplog.at_level("WARNING", logger="hpdash"):
        study.optimize(objective.make_objective(problem, predictions=objective.PredictionStore(1000)), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and len(trial.user_attrs["fold_scores"]) == 3
    assert trial.user_attrs["oof_error"] == "OSError: [Errno 28] No space left on device"
    assert "oof_time" not in trial.user_attrs
    assert "Trial 0 of study" in caplog.text and "without its out-of-fold predictions" in caplog.text


def test_a_bounded_trial_keeps_the_same_predictions_as_one_in_process(tmp_path, monkeypatch) -> None:
    """With a trial_timeout the folds run in a child process: the kept outputs come back with
    them and the stored file equals the one of the same trial run in this process."""
    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "data"))
    problem, params = _oof_problem("logistic_regression", "neg_log_loss")
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    found = {}
    for timeout in (None, 60.0):
        study = optuna.create_study(storage=storage, direction="maximize", study_name=f"bounded-{timeout}")
        study.enqueue_trial(params)
        run = objective.make_objective(problem, trial_timeout=timeout, predictions=objective.PredictionStore(1000))
        try:
            study.optimize(run, n_trials=1)
        finally:
            run.close()
        (trial,) = study.get_trials()
        assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
        found[timeout] = (trial.user_attrs["fold_scores"], objective.load_oof(study.study_name, trial))
    (scores, oof), (bounded_scores, bounded) = found[None], found[60.0]
    assert scores == bounded_scores and oof is not None and bounded is not None
    assert oof.outputs.keys() == bounded.outputs.keys()
    assert all(np.array_equal(oof.outputs[k], bounded.outputs[k]) for k in oof.outputs)


def test_pruned_trials_keep_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "data"))
    problem, params = _oof_problem("decision_tree", "accuracy")

    class PruneAll(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            return True

    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=PruneAll(), study_name="pruned")
    study.enqueue_trial(params)
    study.optimize(objective.make_objective(problem, predictions=objective.PredictionStore(1000)), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert not objective.oof_artifacts(trial) and not {"oof_time", "oof_error"} & set(trial.user_attrs)
    assert not any((tmp_path / "data" / "artifacts").glob("pruned/*"))


def test_the_first_cv_repeat_is_what_is_kept() -> None:
    problem, params = _oof_problem("decision_tree", "accuracy", cv={"folds": 3, "repeats": 2})
    assert len(problem.splits) == 6 and objective.first_repeat(problem) == 3
    result = objective.cross_validate_params(problem, "decision_tree", params, keep=3)
    assert [f.k for f in result.outputs] == [0, 1, 2] and len(result.fold_scores) == 6
    arrays = objective.oof_arrays(problem, result, 0)
    assert sorted(set(arrays["fold"].tolist())) == [0, 1, 2] and len(arrays["fold"]) == len(problem.y_train)


def test_a_kept_method_that_raises_is_left_out_and_the_trial_completes(tmp_path, monkeypatch) -> None:
    """Only the scorer's method decides the trial: another kept method that raises is left out
    of the file (its error in the meta), and the trial completes with its predictions."""
    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "data"))
    problem, params = _oof_problem("decision_tree", "accuracy")

    def broken(self, X):
        raise RuntimeError("no probabilities today")

    monkeypatch.setattr(DecisionTreeClassifier, "predict_proba", broken)
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    study = optuna.create_study(storage=storage, direction="maximize", study_name="half")
    study.enqueue_trial(params)
    study.optimize(objective.make_objective(problem, predictions=objective.PredictionStore(1000)), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and "oof_time" in trial.user_attrs
    oof = objective.load_oof("half", trial)
    assert oof is not None and set(oof.outputs) == {"predict"}
    assert oof.meta["left_out"] == {"predict_proba": "RuntimeError: no probabilities today"}
    y = problem.y_train.to_numpy()
    for j, stored in enumerate(trial.user_attrs["fold_scores"]):
        rows = np.flatnonzero(oof.fold == j)
        assert problem.scorer(oof.replay(), objective.index_column(rows), y[rows]) == stored
