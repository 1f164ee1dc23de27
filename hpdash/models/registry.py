"""The estimator registry: one ModelFamily entry per scikit-learn family hpdash offers."""

from __future__ import annotations

from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
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

from hpdash.models.family import (
    CLASSIFICATION,
    DENSE_ONEHOT,
    KERNEL_CONVERTER,
    KERNEL_NAMES,
    LAYERS_CONVERTER,
    LEARNING,
    NATIVE,
    REGRESSION,
    SHAPE,
    ModelFamily,
    _both,
    _cat,
    _float,
    _int,
)
from hpdash.space import Label

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
