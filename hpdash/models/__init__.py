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
the "reproduce this trial" snippet."""

from hpdash.models.family import (
    CATEGORICAL_INPUTS,
    CLASSIFICATION,
    DENSE_ONEHOT,
    KERNEL_CONVERTER,
    KERNEL_NAMES,
    LAYERS_CONVERTER,
    LEARNING,
    MAX_LAYER_SIZE,
    MAX_LAYERS,
    NATIVE,
    ONEHOT,
    REGRESSION,
    SEEDED_PARAM,
    SHAPE,
    TASKS,
    Converter,
    Imports,
    ModelFamily,
    kernel_from_name,
    layers_from_text,
)
from hpdash.models.lookup import (
    categorical_input,
    check_task,
    default_space,
    estimator_class,
    estimator_code,
    estimator_params,
    family_of,
    get_family,
    literal,
    make_estimator,
    models_for_task,
    parse_model_space,
    scales_target,
    validate_space,
)
from hpdash.models.registry import REGISTRY

__all__ = [
    "CATEGORICAL_INPUTS",
    "CLASSIFICATION",
    "Converter",
    "DENSE_ONEHOT",
    "Imports",
    "KERNEL_CONVERTER",
    "KERNEL_NAMES",
    "LAYERS_CONVERTER",
    "LEARNING",
    "MAX_LAYERS",
    "MAX_LAYER_SIZE",
    "ModelFamily",
    "NATIVE",
    "ONEHOT",
    "REGISTRY",
    "REGRESSION",
    "SEEDED_PARAM",
    "SHAPE",
    "TASKS",
    "categorical_input",
    "check_task",
    "default_space",
    "estimator_class",
    "estimator_code",
    "estimator_params",
    "family_of",
    "get_family",
    "kernel_from_name",
    "layers_from_text",
    "literal",
    "make_estimator",
    "models_for_task",
    "parse_model_space",
    "scales_target",
    "validate_space",
]
