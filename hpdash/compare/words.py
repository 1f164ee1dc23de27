"""The words of a comparison: its constants, the strategies' labels, and each metric's range."""

from __future__ import annotations

import math

import numpy as np

from hpdash import vocabulary

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


DEFAULT_FRACTION = 0.99


ALPHA = 0.05


LEVEL = 0.95


TIME_POINTS = 101


EXACT_LIMIT = 20_000  # Mann-Whitney is exact (all permutations) up to this many arrangements


STRATEGY_LABELS: dict[str, str] = {key: s.name for key, s in vocabulary.STRATEGIES.items()}


METRIC_BEST = "best_cv"


METRIC_TTT = "trials_to_target"


BOOTSTRAP_RESAMPLES = 2000


BAND_METHODS: dict[str, str] = {"t": "Student-t interval", "bootstrap": "bootstrap percentile interval"}


MANN_WHITNEY = "Mann-Whitney U"


WILCOXON = "Wilcoxon signed-rank"


#: The key of the experiment frame's ``attrs`` where ``_build`` puts a ``FrameDesign``, so that
#: ``analyse`` called on a comparison's frame alone (as the CLI does) knows the design.
FRAME_DESIGN = "comparison_design"


SPLIT_SAME = "same data split for every repeat"


SPLIT_NEW = "a new split per repeat"


SPLIT_UNKNOWN = "data split not recorded"


label = vocabulary.strategy_name


# ------------------------------------------------------------------------------ metric range
#: Scorers whose values lie in [0, 1] (scikit-learn's names; ``hpdash.objective`` lists which it
#: offers, not their ranges): exact names and prefixes (``f1_macro``, ``roc_auc_ovr``, ...).
UNIT_METRICS = ("accuracy", "balanced_accuracy", "average_precision", "top_k_accuracy")


UNIT_PREFIXES = ("f1", "precision", "recall", "roc_auc", "jaccard", "average_precision")


AT_MOST_ONE = ("r2", "explained_variance")


def metric_range(metric: str | None) -> tuple[float, float]:
    """The range a scorer's values can take: [0, 1] for accuracy, balanced accuracy, F1,
    precision, recall, ROC AUC, average precision and Jaccard (any averaging); [-1, 1] for
    the Matthews correlation; (-inf, 1] for R² and explained variance (and ``d2_*``); (-inf, 0]
    for every ``neg_*`` scorer (a negated error or loss); unbounded otherwise or unknown."""
    if not metric:
        return (-math.inf, math.inf)
    name = str(metric).lower()
    if name.startswith("neg_"):
        return (-math.inf, 0.0)
    if name in AT_MOST_ONE or name.startswith("d2_"):
        return (-math.inf, 1.0)
    if name == "matthews_corrcoef":
        return (-1.0, 1.0)
    if name in UNIT_METRICS or name.startswith(UNIT_PREFIXES):
        return (0.0, 1.0)
    return (-math.inf, math.inf)


def clip_to_range(values: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """``values`` clipped to ``value_range`` (NaN stays NaN)."""
    if value_range is None:
        return values
    return np.clip(values, value_range[0], value_range[1])
