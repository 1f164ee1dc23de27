"""The bundled sample tables, and the guess of a table's target column."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpdash.errors import DatasetError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    pass

from hpdash.datasets.records import SAMPLES


# -- samples --------------------------------------------------------------------------------
def load_sample(name: str) -> pd.DataFrame:
    """A bundled scikit-learn dataset as features + a ``target`` column.

    ``name`` is ``"iris"`` or ``"sklearn:iris"``. Classification targets are class-name
    strings (``"setosa"``, ``"malignant"``, ``"0"``…``"9"``). Diabetes uses the raw
    (unscaled) features.
    """
    key = name if name.startswith("sklearn:") else f"sklearn:{name}"
    if key not in SAMPLES:
        raise DatasetError(f"Unknown sample dataset {name!r}. Available: {', '.join(SAMPLES)}.")
    return _load_sample_cached(key.split(":", 1)[1]).copy()


@cache
def _load_sample_cached(short: str) -> pd.DataFrame:
    from sklearn import datasets as skd

    if short == "diabetes":
        bunch = skd.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.frame.copy()
        frame["target"] = frame["target"].astype(float)
        return frame
    loader = {
        "iris": skd.load_iris,
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
        "digits": skd.load_digits,
    }[short]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    names = np.asarray([str(t) for t in bunch.target_names], dtype=object)
    frame["target"] = pd.Series(names[frame["target"].to_numpy()], index=frame.index, dtype="str")
    return frame


# -- target guess ---------------------------------------------------------------------------
#: Names that say "this is what to predict" in any table, in order of precedence.
GENERIC_TARGET_NAMES = ("target", "label", "labels", "class", "outcome", "response", "y")


#: Targets of conventional public tables that are not their table's last column, under their
#: domain's name: the column a tutorial on that table predicts (diamonds: price; auto-mpg:
#: mpg, first; the Vega cars table: Miles_per_Gallon, second; Titanic: Survived, second;
#: Palmer penguins: species, first; house prices: SalePrice; California housing:
#: median_house_value; Boston: medv; wine quality: quality; Wisconsin breast cancer:
#: diagnosis, second; churn tables: churn). Names that are as often a feature elsewhere
#: (income, salary, age) are left out: the last-column rule finds them where they are targets.
DOMAIN_TARGET_NAMES = (
    "species",
    "price",
    "sale_price",
    "saleprice",
    "mpg",
    "miles_per_gallon",
    "survived",
    "median_house_value",
    "medhouseval",
    "medv",
    "quality",
    "diagnosis",
    "churn",
)


#: Coordinate names: ``y`` beside ``x`` (or ``z``) is a coordinate or a width, not a target
#: (the diamonds table has x, y and z, the sizes of the stone).
_COORDINATES = {"x", "z"}


def _normal_name(name: str) -> str:
    """A column name compared loosely: lower case, runs of anything but letters and digits as
    one underscore (``Miles_per_Gallon``, ``miles per gallon`` and ``MILES-PER-GALLON`` meet)."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def guess_target(columns: list[str]) -> str | None:
    """The column a user most likely wants to predict, from the column names alone.

    The rule, first match wins:

    1. a generic target name (:data:`GENERIC_TARGET_NAMES`: ``target``, ``label``, ``class``,
       ``outcome``, ``response``, then ``y``), compared case- and punctuation-insensitively;
       ``y`` counts only when the table has no ``x`` or ``z`` column, where it is a coordinate;
    2. the target name of a conventional public table (:data:`DOMAIN_TARGET_NAMES`, in that
       order: ``species``, ``price``, ``mpg`` ... ``survived`` ...);
    3. the last column, where most exported tables put the outcome.

    None for no columns. The guess is only a default: the Datasets and New study pages show
    it and let the user pick another.
    """
    names = [str(c) for c in columns]
    if not names:
        return None
    normal: dict[str, str] = {}
    for name in names:
        normal.setdefault(_normal_name(name), name)
    coordinates = bool(_COORDINATES & set(normal))
    for guess in GENERIC_TARGET_NAMES:
        if guess == "y" and coordinates:
            continue
        if guess in normal:
            return normal[guess]
    for guess in DOMAIN_TARGET_NAMES:
        if guess in normal:
            return normal[guess]
    return names[-1]
