"""The estimator registry: tasks, default spaces, validation, converters, code snippets."""

from __future__ import annotations

import ast
import builtins
from typing import Any

import numpy as np
import optuna
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    Matern,
    RationalQuadratic,
    WhiteKernel,
)
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier, SGDClassifier, SGDRegressor
from sklearn.svm import SVC, SVR

from hpdash import models
from hpdash.errors import SpecError
from hpdash.space import LABELS, grid_size, parse_space, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread per fit: on a machine whose cores the test runner's processes share,
    OpenMP's threads (histogram gradient boosting) wait on each other (12 s instead of 0.1 s
    for one fit)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


KEYS = [
    "logistic_regression",
    "linear_regression",
    "ridge",
    "lasso",
    "elastic_net",
    "svm",
    "k_nearest_neighbors",
    "decision_tree",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "mlp",
    "sgd",
    "gaussian_process",
]
PAIRS = [(key, task) for key in KEYS for task in models.REGISTRY[key].tasks]


def _data(task: str, key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Small real tables: iris (every 2nd row: 75 rows, 3 classes), 200 rows of diabetes.

    Gaussian processes are cubic in rows, so they get every 3rd iris row and 100 diabetes rows.
    """
    small = key == "gaussian_process"
    if task == "classification":
        X, y = load_iris(return_X_y=True)
        step = 3 if small else 2
        return X[::step], y[::step]
    X, y = load_diabetes(return_X_y=True)
    rows = 100 if small else 200
    return X[:rows], y[:rows]


def _sample(key: str, task: str, seed: int = 0) -> dict[str, Any]:
    """One configuration drawn from the default space through a real Optuna trial."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    model, params = suggest(study.ask(), {key: models.default_space(key, task)})
    assert model == key
    return params


# --- registry and tasks ----------------------------------------------------------------


def test_registry_keys() -> None:
    assert list(models.REGISTRY) == KEYS
    for key, family in models.REGISTRY.items():
        assert family.key == key and family.label and family.description
        assert family is models.get_family(key)


def test_models_for_task() -> None:
    clf = models.models_for_task("classification")
    reg = models.models_for_task("regression")
    assert "logistic_regression" in clf and "logistic_regression" not in reg
    assert {"linear_regression", "lasso", "elastic_net"} <= set(reg)
    assert not {"linear_regression", "lasso", "elastic_net"} & set(clf)
    assert set(clf) | set(reg) == set(KEYS)
    with pytest.raises(SpecError, match=r"unknown task 'auto'; use one of: classification, regression"):
        models.models_for_task("auto")


def test_estimator_class_by_task() -> None:
    assert models.estimator_class("ridge", "classification") is RidgeClassifier
    assert models.estimator_class("ridge", "regression") is Ridge
    assert models.estimator_class("svm", "classification") is SVC
    assert models.estimator_class("svm", "regression") is SVR
    assert models.estimator_class("sgd", "regression") is SGDRegressor
    assert models.estimator_class("random_forest", "classification") is RandomForestClassifier
    assert models.estimator_class("random_forest", "regression") is RandomForestRegressor
    assert models.estimator_class("logistic_regression", "classification") is LogisticRegression


@pytest.mark.parametrize(
    ("key", "task", "message"),
    [
        (
            "linear_regression",
            "classification",
            r"model 'linear_regression' is for regression only; it cannot be used for classification",
        ),
        (
            "logistic_regression",
            "regression",
            r"model 'logistic_regression' is for classification only; it cannot be used for regression",
        ),
        ("lasso", "classification", r"is for regression only"),
        ("elastic_net", "classification", r"is for regression only"),
    ],
)
def test_unsupported_task(key: str, task: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        models.estimator_class(key, task)
    with pytest.raises(SpecError, match=message):
        models.make_estimator(key, task, {})
    with pytest.raises(SpecError, match=message):
        models.default_space(key, task)


def test_unknown_model_lists_valid_keys() -> None:
    with pytest.raises(SpecError) as info:
        models.get_family("random_forrest")
    message = str(info.value)
    assert message.startswith("unknown model 'random_forrest' (did you mean 'random_forest'?)")
    assert "use one of: " + ", ".join(KEYS) in message


# --- every default space fits ----------------------------------------------------------


# Convergence warnings are expected on tiny tables with unscaled targets; deprecations are not.
@pytest.mark.filterwarnings(
    "error::FutureWarning", "error::DeprecationWarning", "ignore::sklearn.exceptions.ConvergenceWarning"
)
@pytest.mark.parametrize(("key", "task"), PAIRS)
def test_default_space_validates_and_fits(key: str, task: str) -> None:
    space = models.default_space(key, task)
    assert space, "every family has something to search"
    assert all(hp.label in LABELS for hp in space.values())
    models.validate_space(key, task, space)
    assert grid_size(space, 5) <= 10_000  # grid search works out of the box
    params = _sample(key, task)
    estimator = models.make_estimator(key, task, params, seed=0)
    assert type(estimator) is models.estimator_class(key, task)
    if "random_state" in estimator.get_params():
        assert estimator.get_params()["random_state"] == 0
    X, y = _data(task, key)
    estimator.fit(X, y)
    assert estimator.predict(X).shape == y.shape


# Convergence warnings are expected on tiny tables with unscaled targets; deprecations are not.
@pytest.mark.filterwarnings(
    "error::FutureWarning", "error::DeprecationWarning", "ignore::sklearn.exceptions.ConvergenceWarning"
)
@pytest.mark.parametrize(("key", "task"), PAIRS)
def test_every_default_choice_fits(key: str, task: str) -> None:
    """Each categorical choice of a default space (kernels, losses, layers...) fits."""
    space = models.default_space(key, task)
    base = _sample(key, task, seed=2)
    X, y = _data(task, key)
    for name, hp in space.items():
        for choice in hp.choices or ():
            estimator = models.make_estimator(key, task, {**base, name: choice}, seed=0)
            estimator.fit(X, y)


def test_labels_of_well_known_hyperparameters() -> None:
    def label(key: str, name: str, task: str = "classification") -> str:
        return models.default_space(key, task)[name].label

    assert label("random_forest", "n_estimators") == "model shape"
    assert label("random_forest", "max_depth") == "model shape"
    assert label("k_nearest_neighbors", "n_neighbors") == "model shape"
    assert label("mlp", "hidden_layer_sizes") == "model shape"
    assert label("gaussian_process", "kernel") == "model shape"
    assert label("hist_gradient_boosting", "learning_rate") == "learning process"
    assert label("logistic_regression", "C") == "learning process"
    assert label("sgd", "loss", "regression") == "learning process"
    assert models.default_space("sgd", "classification")["loss"].choices == ("hinge", "log_loss", "modified_huber")
    assert models.default_space("sgd", "regression")["loss"].choices == (
        "squared_error",
        "huber",
        "epsilon_insensitive",
    )


def test_parse_model_space_uses_family_labels() -> None:
    raw = {
        "n_estimators": {"type": "int", "low": 10, "high": 50},
        "max_features": {"type": "float", "low": 0.2, "high": 1.0},
    }
    space = models.parse_model_space("random_forest", "regression", raw)
    assert space["n_estimators"].label == "model shape"
    assert space["max_features"].label == "learning process"
    assert models.parse_model_space("ridge", "regression", None) == models.default_space("ridge", "regression")


# --- validation ------------------------------------------------------------------------


def test_unknown_hyperparameter_is_named_with_valid_ones() -> None:
    space = parse_space({"max_dept": {"type": "int", "low": 2, "high": 8}})
    with pytest.raises(SpecError) as info:
        models.validate_space("random_forest", "classification", space)
    message = str(info.value)
    assert message.startswith(
        "model 'random_forest' (RandomForestClassifier) has no hyperparameter 'max_dept' "
        "(did you mean 'max_depth'?); valid ones: "
    )
    assert "n_estimators" in message and "min_samples_leaf" in message
    assert "random_state" not in message


def test_random_state_cannot_be_searched() -> None:
    space = parse_space({"random_state": {"type": "int", "low": 0, "high": 9}})
    with pytest.raises(
        SpecError, match=r"'random_state' of model 'decision_tree' cannot be searched; it is set from the study seed"
    ):
        models.validate_space("decision_tree", "regression", space)


def test_values_scikit_learn_rejects() -> None:
    bad_choice = parse_space({"criterion": {"type": "categorical", "choices": ["gini", "ginny"]}})
    with pytest.raises(
        SpecError, match=r"hyperparameter 'criterion': 'ginny' is not accepted: The 'criterion' parameter"
    ):
        models.validate_space("decision_tree", "classification", bad_choice)
    bad_bound = parse_space({"max_features": {"type": "float", "low": 0.5, "high": 1.5}})
    with pytest.raises(SpecError, match=r"hyperparameter 'max_features': 1\.5 is not accepted"):
        models.validate_space("random_forest", "classification", bad_bound)
    float_for_int = parse_space({"n_neighbors": {"type": "float", "low": 1, "high": 5}})
    with pytest.raises(SpecError, match=r"hyperparameter 'n_neighbors': 1\.0 is not accepted"):
        models.validate_space("k_nearest_neighbors", "classification", float_for_int)


def test_validate_space_runs_converters_over_choices() -> None:
    bad_kernel = parse_space({"kernel": {"type": "categorical", "choices": ["rbf", "__import__('os')"]}})
    with pytest.raises(
        SpecError,
        match=r"hyperparameter 'kernel': unknown kernel \"__import__\('os'\)\"; use one of: rbf, matern, rational_quadratic, dot_product_white",
    ):
        models.validate_space("gaussian_process", "regression", bad_kernel)
    bad_layers = parse_space({"hidden_layer_sizes": {"type": "categorical", "choices": ["64", "64;32"]}})
    with pytest.raises(SpecError, match=r"hyperparameter 'hidden_layer_sizes': '64;32' is not a list of layer sizes"):
        models.validate_space("mlp", "classification", bad_layers)
    as_range = parse_space({"hidden_layer_sizes": {"type": "int", "low": 8, "high": 64}})
    with pytest.raises(SpecError, match=r"hyperparameter 'hidden_layer_sizes' of model 'mlp' must be categorical"):
        models.validate_space("mlp", "regression", as_range)


# --- converters ------------------------------------------------------------------------


def test_kernel_names() -> None:
    expected = {
        "rbf": ConstantKernel(1.0) * RBF(1.0),
        "matern": ConstantKernel(1.0) * Matern(1.0, nu=1.5),
        "rational_quadratic": ConstantKernel(1.0) * RationalQuadratic(1.0, alpha=1.0),
        "dot_product_white": DotProduct(1.0) + WhiteKernel(1.0),
    }
    assert models.KERNEL_NAMES == tuple(expected)
    for name, kernel in expected.items():
        assert models.kernel_from_name(name) == kernel
        estimator = models.make_estimator("gaussian_process", "classification", {"kernel": name})
        assert estimator.kernel == kernel
    first, second = models.kernel_from_name("rbf"), models.kernel_from_name("rbf")
    assert first is not second  # a fresh kernel each time: fitted state is never shared


@pytest.mark.parametrize(
    ("text", "sizes"),
    [("64", (64,)), ("128-64", (128, 64)), (" 32-16-8 ", (32, 16, 8)), (64, (64,)), ((64, 32), (64, 32))],
)
def test_layer_strings(text: Any, sizes: tuple[int, ...]) -> None:
    assert models.layers_from_text(text) == sizes


MALICIOUS = [
    "__import__('os')",
    "__import__('os').system('touch /tmp/hpdash-pwned')",
    "eval('1+1')",
    "64; import os",
    "(64, 32)",
    "64.0",
    "1e3",
    "-64",
    "64--32",
    "64-",
    "",
    "６４",  # full-width digits: int() would accept them, the parser does not
    "0",
    "64-99999",
    "-".join(["8"] * 11),
    True,
    None,
    2.5,
]


@pytest.mark.parametrize("value", MALICIOUS)
def test_bad_layer_values_are_rejected(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("eval/exec must never be called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    with pytest.raises(SpecError, match=r"hyperparameter 'hidden_layer_sizes'"):
        models.make_estimator("mlp", "classification", {"hidden_layer_sizes": value})


@pytest.mark.parametrize("value", ["__import__('os')", "RBF()", "RBF", "linear", " rbf", "", None, 1])
def test_bad_kernel_values_are_rejected(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval called"))
    with pytest.raises(SpecError, match=r"hyperparameter 'kernel': unknown kernel"):
        models.make_estimator("gaussian_process", "regression", {"kernel": value})
    with pytest.raises(SpecError, match=r"unknown kernel"):
        models.estimator_code("gaussian_process", "regression", {"kernel": value}, 0)


# --- make_estimator --------------------------------------------------------------------


def test_make_estimator_fixed_params_seed_and_overrides() -> None:
    mlp = models.make_estimator("mlp", "regression", {"hidden_layer_sizes": "64-32", "alpha": 0.01}, seed=3)
    params = mlp.get_params()
    assert params["hidden_layer_sizes"] == (64, 32)
    assert params["alpha"] == 0.01 and params["random_state"] == 3
    assert params["max_iter"] == 200 and params["early_stopping"] is True
    assert models.make_estimator("mlp", "regression", {"max_iter": 50}).get_params()["max_iter"] == 50
    logreg = models.make_estimator("logistic_regression", "classification", {"C": 2.0}, seed=None)
    assert logreg.get_params()["random_state"] is None and logreg.get_params()["max_iter"] == 1000
    # estimators without random_state simply do not get one
    assert "random_state" not in models.make_estimator("k_nearest_neighbors", "regression", {}, seed=0).get_params()


def test_make_estimator_rejects_unknown_params() -> None:
    with pytest.raises(SpecError, match=r"model 'svm' \(SVR\) has no hyperparameter 'n_estimators'"):
        models.make_estimator("svm", "regression", {"n_estimators": 10})


# --- estimator_code --------------------------------------------------------------------


def test_estimator_code_example() -> None:
    imports, expr = models.estimator_code(
        "random_forest", "classification", {"n_estimators": 120, "max_depth": 7}, seed=0
    )
    assert imports == ["from sklearn.ensemble import RandomForestClassifier"]
    assert expr == "RandomForestClassifier(max_depth=7, n_estimators=120, random_state=0)"


def test_estimator_code_with_converters() -> None:
    imports, expr = models.estimator_code(
        "gaussian_process", "regression", {"kernel": "matern", "alpha": 1e-05}, seed=None
    )
    assert imports == [
        "from sklearn.gaussian_process import GaussianProcessRegressor",
        "from sklearn.gaussian_process.kernels import ConstantKernel, Matern",
    ]
    assert expr == (
        "GaussianProcessRegressor(alpha=1e-05, "
        "kernel=ConstantKernel(1.0) * Matern(length_scale=1.0, nu=1.5), normalize_y=True)"
    )
    _, expr = models.estimator_code("mlp", "classification", {"hidden_layer_sizes": "64"}, seed=1)
    assert "hidden_layer_sizes=(64,)" in expr


def test_estimator_code_quotes_text_as_a_literal() -> None:
    text = "gini'); __import__('os').system('x'); ('"
    _, expr = models.estimator_code("decision_tree", "classification", {"criterion": text}, seed=0)
    call = ast.parse(expr, mode="eval").body
    assert isinstance(call, ast.Call) and call.func.id == "DecisionTreeClassifier"  # type: ignore[attr-defined]
    values = {kw.arg: kw.value for kw in call.keywords}
    assert isinstance(values["criterion"], ast.Constant) and values["criterion"].value == text


@pytest.mark.parametrize(("key", "task"), PAIRS)
def test_estimator_code_rebuilds_the_same_estimator(key: str, task: str) -> None:
    params = _sample(key, task, seed=5)
    imports, expr = models.estimator_code(key, task, params, seed=11)
    namespace: dict[str, Any] = {}
    exec("\n".join(imports), namespace)  # our own generated imports, in a test
    rebuilt = eval(expr, namespace)  # our own generated expression, in a test
    assert rebuilt.get_params() == models.make_estimator(key, task, params, seed=11).get_params()


def test_sgd_loss_is_a_hyperparameter() -> None:
    clf = models.make_estimator("sgd", "classification", {"loss": "modified_huber"}, seed=0)
    assert isinstance(clf, SGDClassifier) and clf.loss == "modified_huber"
    X, y = _data("classification")
    assert clf.fit(X, y).predict_proba(X).shape == (len(y), 3)


# --- input, target and iteration limits ----------------------------------------------------


def test_every_iterative_estimator_has_a_finite_iteration_cap() -> None:
    """An estimator with ``max_iter`` gets a finite cap, fixed or searched: libsvm's default
    (-1) has none. Ridge's None means its direct solvers (cholesky, svd) or each iterative
    solver's own limit."""
    for key, task in PAIRS:
        cls = models.estimator_class(key, task)
        if "max_iter" not in models.estimator_params(cls) or cls in (Ridge, RidgeClassifier):
            continue
        family = models.get_family(key)
        fixed = family.fixed.get(task, {}).get("max_iter")
        searched = models.default_space(key, task).get("max_iter")
        assert fixed is not None or searched is not None, (key, task)
        cap = fixed if fixed is not None else searched.high
        assert 0 < cap <= 100_000, (key, task, cap)
        if fixed is not None:
            assert models.make_estimator(key, task, _sample(key, task)).max_iter == cap


def test_input_each_estimator_needs() -> None:
    """Dense input where scikit-learn's tags or some hyperparameter values refuse sparse
    input, native categories for histogram gradient boosting, a one-hot otherwise; the
    answer for an estimator outside the registry comes from its tags."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.naive_bayes import GaussianNB

    assert models.categorical_input(HistGradientBoostingRegressor()) == models.NATIVE
    assert models.categorical_input(GaussianProcessRegressor) == models.DENSE_ONEHOT
    assert models.categorical_input(SVR()) == models.ONEHOT
    assert models.categorical_input(GaussianNB()) == models.DENSE_ONEHOT  # not in the registry: its tags
    for key, task in PAIRS:
        cls = models.estimator_class(key, task)
        if not cls().__sklearn_tags__().input_tags.sparse:
            assert models.get_family(key).categorical_input != models.ONEHOT, key
    assert models.family_of(SVR) == (models.REGISTRY["svm"], "regression")
    assert models.family_of(GaussianNB()) is None


def test_targets_standardised_for_the_models_that_need_it() -> None:
    scaled = {
        key for key, task in PAIRS if task == "regression" and models.scales_target(models.estimator_class(key, task))
    }
    assert scaled == {"svm", "mlp", "sgd", "gaussian_process"}
    assert not models.scales_target(SVC())  # classification targets are labels


def test_categorical_features_is_set_from_the_data_not_searched() -> None:
    space = parse_space({"categorical_features": {"type": "categorical", "choices": ["from_dtype"]}})
    with pytest.raises(
        SpecError,
        match=r"hyperparameter 'categorical_features' of model "
        r"'hist_gradient_boosting' cannot be searched; hpdash sets it from the "
        r"column roles of the dataset",
    ):
        models.validate_space("hist_gradient_boosting", "classification", space)
    imports, code = models.estimator_code(
        "hist_gradient_boosting", "regression", {"max_iter": 20}, 0, data_params={"categorical_features": [2, 3]}
    )
    assert code == "HistGradientBoostingRegressor(categorical_features=[2, 3], max_iter=20, random_state=0)"
