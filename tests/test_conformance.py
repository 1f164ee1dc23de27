"""The conformance matrix: every registry family x every task it supports x table shapes.

Each case goes through hpdash's real pre-launch path (``runner.plan_study``,
``objective.check_metric``, ``objective.smoke_check``) on a small generated table, then runs
real trials through the study's objective on a real SQLite Optuna study, in this process. A
case conforms when its trials are all COMPLETE, or when it was refused before launch with a
``SpecError`` that names the model and the reason (the expected refusals and their messages
are listed in ``REFUSALS``). The result table is recorded in docs/CONFORMANCE.md, which
``test_docs_record_the_matrix`` keeps equal to what the matrix does; the matrix size and its
result are printed at the end of the test run (``tests/conftest.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from hpdash import models, objective, runner
from hpdash.errors import SpecError
from hpdash.space import space_to_dict
from hpdash.spec import parse_spec
from hpdash.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONFORMANCE.md"
#: The key under which the matrix result reaches the terminal summary (tests/conftest.py).
SUMMARY_KEY = "hpdash_conformance"

CLASSIFICATION, REGRESSION = models.CLASSIFICATION, models.REGRESSION
FOLDS = 2
TRIALS = 1
SEED = 0


# --------------------------------------------------------------------------------------------
# Table shapes: small generated tables, each built from one seed
# --------------------------------------------------------------------------------------------
def _rng(shape: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, shape)))


def _target(task: str, signal: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """A learnable target from ``signal``: two integer classes (0/1), or a regression target
    far from unit scale (thousands), as real targets often are."""
    noisy = signal + rng.normal(scale=0.5, size=len(signal))
    if task == CLASSIFICATION:
        return pd.Series((noisy > np.median(noisy)).astype(int))
    return pd.Series(5000.0 + 800.0 * noisy).round(2)


def numeric(task: str) -> pd.DataFrame:
    rng = _rng("numeric")
    X = rng.normal(size=(80, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).round(4)
    frame["target"] = _target(task, X[:, 0] - X[:, 1], rng)
    return frame


#: More than 100 levels that survive hpdash's high-cardinality rule (a text column is dropped
#: when its distinct values are over half its rows), with missing values.
LEVELS = 105


def categorical(task: str) -> pd.DataFrame:
    rng = _rng("categorical")
    n = 260
    codes = rng.permutation(np.arange(n) % LEVELS)
    city = np.array([f"city_{c:03d}" for c in codes], dtype=object)
    colour = rng.choice(np.array(["red", "green", "blue"], dtype=object), size=n)
    x = rng.normal(size=n)
    signal = x + (codes % 3 == 0) + (colour == "red")
    city[rng.random(n) < 0.08] = None
    colour[rng.random(n) < 0.1] = None
    frame = pd.DataFrame({"city": city, "colour": colour, "x": x.round(4)})
    frame["target"] = _target(task, signal.astype(float), rng)
    return frame


def datetime(task: str) -> pd.DataFrame:
    rng = _rng("datetime")
    n = 80
    days = rng.integers(0, 3 * 365, size=n)
    when = pd.Timestamp("2021-01-01") + pd.to_timedelta(days, unit="D")
    x = rng.normal(size=n)
    frame = pd.DataFrame({"when": when.strftime("%Y-%m-%d"), "x": x.round(4)})
    frame["target"] = _target(task, x + (when.month.to_numpy() > 6), rng)
    return frame


def boolean(task: str) -> pd.DataFrame:
    rng = _rng("boolean")
    n = 80
    flags = rng.random((n, 3)) < 0.5
    frame = pd.DataFrame(flags, columns=["member", "online", "repeat"])
    signal = flags[:, 0] * 1.0 + flags[:, 1] - flags[:, 2] + rng.normal(scale=0.3, size=n)
    target = _target(task, signal, rng)
    frame["target"] = target.astype(bool) if task == CLASSIFICATION else target
    return frame


def yes_no(task: str) -> pd.DataFrame:
    frame = numeric(task)
    frame["target"] = frame["target"].map({1: "yes", 0: "no"})
    return frame


def near_fold_limit(task: str) -> pd.DataFrame:
    """8 rows: with a quarter held out and 2 folds, each class has 3 training rows and each
    fold trains on 3 rows; 4 rows per class is the least the protocol takes here."""
    rng = _rng("near_fold_limit")
    x = rng.normal(size=(8, 2))
    frame = pd.DataFrame(x, columns=["a", "b"]).round(4)
    if task == CLASSIFICATION:
        frame["target"] = [0, 1] * 4
    else:
        frame["target"] = _target(task, x[:, 0], rng)
    return frame


def wide(task: str) -> pd.DataFrame:
    rng = _rng("wide")
    X = rng.normal(size=(60, 500))
    frame = pd.DataFrame(X.round(3), columns=[f"f{i:03d}" for i in range(500)])
    frame["target"] = _target(task, X[:, :5].sum(axis=1), rng)
    return frame


def multiclass_rare(task: str) -> pd.DataFrame:
    """90 rows, 3 classes: 45, 40 and a rare one of 5 rows (4 in the training part)."""
    rng = _rng("multiclass_rare")
    y = np.array(["common"] * 45 + ["usual"] * 40 + ["rare"] * 5, dtype=object)
    X = rng.normal(size=(90, 3)) + np.where(y == "rare", 2.0, 0.0)[:, None]
    X[y == "usual", 1] -= 1.5
    frame = pd.DataFrame(X.round(4), columns=["a", "b", "c"])
    frame["target"] = y
    return frame


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[[str], pd.DataFrame]
    tasks: tuple[str, ...]
    #: spec fields of this shape's studies (besides the name, model, folds, trials)
    spec: dict[str, Any]


SHAPES: tuple[Shape, ...] = (
    Shape("numeric", numeric, (CLASSIFICATION, REGRESSION), {}),
    Shape("categorical_100_levels_missing", categorical, (CLASSIFICATION, REGRESSION), {}),
    Shape("datetime", datetime, (CLASSIFICATION, REGRESSION), {}),
    Shape("boolean", boolean, (CLASSIFICATION, REGRESSION), {}),
    Shape("yes_no_labels", yes_no, (CLASSIFICATION,), {"metric": "f1"}),
    Shape("near_fold_limit", near_fold_limit, (CLASSIFICATION, REGRESSION), {"test_size": 0.25}),
    Shape("wide_500_columns", wide, (CLASSIFICATION, REGRESSION), {}),
    Shape("multiclass_rare_class", multiclass_rare, (CLASSIFICATION,), {"metric": "f1_macro"}),
)
SHAPE_BY_NAME = {shape.name: shape for shape in SHAPES}

CASES: list[tuple[str, str, str]] = [
    (key, task, shape.name)
    for key, family in models.REGISTRY.items()
    for task in family.tasks
    for shape in SHAPES
    if task in shape.tasks
]


def case_id(case: tuple[str, str, str]) -> str:
    return "-".join(case)


# --------------------------------------------------------------------------------------------
# Expected refusals: (model, task, shape) -> what the SpecError says
# --------------------------------------------------------------------------------------------
REFUSALS: dict[tuple[str, str, str], str] = {
    # MLP's early stopping holds out 10% of a fold's 3 training rows: nothing to hold out.
    (
        "mlp",
        CLASSIFICATION,
        "near_fold_limit",
    ): r"^Model 'mlp' failed its trial fit before launch \(MLPClassifier with .* on 3 rows of the "
    r"training part, scored with accuracy\): ValueError: The least populated classes in y have "
    r"only 1 member, which is too few\..*Change its search space, pick another metric or "
    r"remove the model\.$",
    (
        "mlp",
        REGRESSION,
        "near_fold_limit",
    ): r"^Model 'mlp' failed its trial fit before launch \(MLPRegressor with .* on 3 rows of the "
    r"training part, scored with r2\): ValueError: The validation set is too small\..*Change "
    r"its search space, pick another metric or remove the model\.$",
}


# --------------------------------------------------------------------------------------------
# Running the matrix
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: tuple[str, str, str]
    states: list[str]  # the trials' states, when the case launched
    refused: str | None  # the SpecError's message, when it was refused before launch
    seconds: float

    @property
    def result(self) -> str:
        if self.refused is not None:
            return "refused"
        return "complete" if self.states == ["COMPLETE"] * TRIALS else "failed"


#: The default spaces, with the size of the ensembles capped so that the whole matrix runs in
#: well under a minute (a forest of 100 trees costs ten small fits); every other range is the
#: family's default.
CAPS: dict[str, dict[str, dict[str, Any]]] = {
    "random_forest": {"n_estimators": {"type": "int", "low": 10, "high": 25, "log": True}},
    "extra_trees": {"n_estimators": {"type": "int", "low": 10, "high": 25, "log": True}},
    "hist_gradient_boosting": {"max_iter": {"type": "int", "low": 10, "high": 30, "log": True}},
}


def _space(key: str, task: str) -> dict[str, Any] | None:
    if key not in CAPS:
        return None
    return {**space_to_dict(models.default_space(key, task)), **CAPS[key]}


def _spec(models_: str | list[str], task: str, shape: str) -> Any:
    name = "c-" + "-".join([task, shape] + ([models_] if isinstance(models_, str) else []))
    if isinstance(models_, str):
        capped = _space(models_, task)
    else:
        capped = {key: _space(key, task) for key in models_ if key in CAPS} or None
    return parse_spec(
        {
            "space": capped,
            "name": name.replace("_", "-"),
            "dataset": f"{shape}.csv",
            "target": "target",
            "task": task,
            "model": models_,
            "strategy": "random",
            "n_trials": TRIALS,
            "cv": {"folds": FOLDS},
            "seed": SEED,
            **SHAPE_BY_NAME[shape].spec,
        }
    )


@functools.cache
def shape_plan(task: str, shape: str) -> runner.Plan:
    """``runner.plan_study`` of one table with every family of the task (algorithm
    selection): the table is prepared and its protocol checked once, not once per family
    (preparing the 500-column table takes longer than any of its fits). Cached: callers
    copy what they change (``family_plan``)."""
    return runner.plan_study(
        _spec(list(models.models_for_task(task)), task, shape), data=(SHAPE_BY_NAME[shape].build(task), None)
    )


def family_plan(plan: runner.Plan, key: str) -> runner.Plan:
    """The plan of the single-family study of ``key`` on ``plan``'s table: what
    ``runner.plan_study`` returns for it (``test_a_family_plan_is_what_plan_study_makes``)."""
    spec = _spec(key, plan.task, plan.spec.dataset.removesuffix(".csv"))
    return dataclasses.replace(plan, spec=spec, spaces={key: plan.spaces[key]})


def run_case(plan: runner.Plan, storage: Any) -> Outcome:
    """The pre-launch checks of a one-family ``plan``, then its trials on ``storage``."""
    (key,) = plan.spaces
    case = (key, plan.task, plan.spec.dataset.removesuffix(".csv"))
    start = time.perf_counter()
    try:
        objective.check_metric(plan.metric, plan.task, plan.prepared.y, plan.spaces, plan.spec.pos_label)
        objective.smoke_check(plan)
    except SpecError as exc:
        return Outcome(case, [], str(exc), time.perf_counter() - start)
    study = optuna.create_study(
        study_name=plan.spec.name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=SEED),
    )
    # A failing trial is recorded as FAIL (and fails the case), not raised.
    study.optimize(objective.make_objective(plan.problem()), n_trials=TRIALS, catch=(Exception,))
    states = [trial.state.name for trial in study.get_trials()]
    return Outcome(case, states, None, time.perf_counter() - start)


def run_matrix(storage: Any) -> dict[tuple[str, str, str], Outcome]:
    outcomes: dict[tuple[str, str, str], Outcome] = {}
    for shape in SHAPES:
        for task in shape.tasks:
            plan = shape_plan(task, shape.name)
            for key in plan.spaces:
                outcome = run_case(family_plan(plan, key), storage)
                outcomes[outcome.case] = outcome
    return {case: outcomes[case] for case in CASES}


@dataclass
class Matrix:
    outcomes: dict[tuple[str, str, str], Outcome]
    seconds: float
    storage: Any


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> Matrix:
    """Every case, run once for the module on one SQLite file, one thread per fit (the test
    runner's processes already use the machine's cores)."""
    path = tmp_path_factory.mktemp("conformance") / "conformance.db"
    storage = open_storage(f"sqlite:///{path}", heartbeat=False)
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        outcomes = run_matrix(storage)
    return Matrix(outcomes, time.perf_counter() - start, storage)


# --------------------------------------------------------------------------------------------
# The result: a table, a summary line, and docs/CONFORMANCE.md
# --------------------------------------------------------------------------------------------
def size_line() -> str:
    """``families x tasks x shapes = N cases``, per task (a family runs the tasks it
    supports, a task takes the shapes that make sense for it)."""
    parts = []
    for task in (CLASSIFICATION, REGRESSION):
        families = len(models.models_for_task(task))
        shapes = sum(task in shape.tasks for shape in SHAPES)
        parts.append(f"{families} {task} families x {shapes} shapes")
    return f"{' + '.join(parts)} = {len(CASES)} cases"


def result_line(outcomes: dict[tuple[str, str, str], Outcome]) -> str:
    results = [outcome.result for outcome in outcomes.values()]
    return (
        f"{results.count('complete')} complete, {results.count('refused')} refused before "
        f"launch with a reason, {results.count('failed')} failed"
    )


def render_table(outcomes: dict[tuple[str, str, str], Outcome]) -> str:
    """The Markdown table docs/CONFORMANCE.md records: one row per family and task, one
    column per shape; ``complete``, ``refused (N)`` with N the reason's number in
    ``render_reasons``, or ``-`` where the task does not take the shape."""
    reasons = _reason_numbers()
    header = ["model", "task", *(shape.name for shape in SHAPES)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, family in models.REGISTRY.items():
        for task in family.tasks:
            cells = [key, task]
            for shape in SHAPES:
                outcome = outcomes.get((key, task, shape.name))
                if outcome is None:
                    cells.append("-")
                elif outcome.result == "refused":
                    cells.append(f"refused ({reasons[REFUSALS[outcome.case]]})")
                else:
                    cells.append(outcome.result)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reason_examples(outcomes: dict[tuple[str, str, str], Outcome]) -> dict[int, str]:
    """Reason number -> the message of its first refused case, as docs/CONFORMANCE.md quotes it."""
    numbers = _reason_numbers()
    examples: dict[int, str] = {}
    for outcome in outcomes.values():
        if outcome.refused is not None:
            examples.setdefault(numbers[REFUSALS[outcome.case]], outcome.refused)
    return dict(sorted(examples.items()))


def _reason_numbers() -> dict[str, int]:
    numbers: dict[str, int] = {}
    for pattern in REFUSALS.values():
        numbers.setdefault(pattern, len(numbers) + 1)
    return numbers


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_case_conforms(matrix, case) -> None:
    """COMPLETE trials, or refused before launch with the expected SpecError."""
    outcome = matrix.outcomes[case]
    if case in REFUSALS:
        assert outcome.refused is not None, f"{case} was expected to be refused: {outcome}"
        assert re.search(REFUSALS[case], outcome.refused, re.DOTALL), outcome.refused
        assert f"'{case[0]}'" in outcome.refused  # the message names the model
    else:
        assert outcome.refused is None, outcome.refused
        assert outcome.states == ["COMPLETE"] * TRIALS, outcome


def test_the_shapes_are_what_they_say() -> None:
    """The tables hold what their names promise once hpdash has prepared them."""
    for task in (CLASSIFICATION, REGRESSION):
        cat = shape_plan(task, "categorical_100_levels_missing").prepared
        assert cat.categorical == ["city", "colour"] and cat.numeric == ["x"]
        assert cat.X["city"].nunique() > 100 and cat.X["city"].isna().any() and cat.X["colour"].isna().any()
        dated = shape_plan(task, "datetime").prepared
        assert dated.numeric == ["when_year", "when_month", "when_day", "when_dayofweek", "x"]
        flags = shape_plan(task, "boolean").prepared
        assert flags.categorical == ["member", "online", "repeat"]
        assert shape_plan(task, "wide_500_columns").prepared.X.shape[1] == 500
    labels = shape_plan(CLASSIFICATION, "yes_no_labels")
    assert sorted(labels.prepared.y.unique()) == ["no", "yes"]
    assert labels.problem().pos_label == "yes"  # f1's positive class, picked by hpdash
    rare = shape_plan(CLASSIFICATION, "multiclass_rare_class")
    assert rare.prepared.y.value_counts().to_dict() == {"common": 45, "usual": 40, "rare": 5}
    assert rare.split[2].value_counts()["rare"] == 4
    small = shape_plan(CLASSIFICATION, "near_fold_limit").problem()
    assert [len(train) for train, _ in small.splits] == [3, 3]


def test_a_family_plan_is_what_plan_study_makes() -> None:
    """The matrix plans each table once for all families; a family's plan cut from it equals
    ``runner.plan_study`` of that family's own spec."""
    for key, task, shape in [
        ("hist_gradient_boosting", CLASSIFICATION, "categorical_100_levels_missing"),
        ("svm", REGRESSION, "numeric"),
    ]:
        cut = family_plan(shape_plan(task, shape), key)
        own = runner.plan_study(cut.spec, data=(SHAPE_BY_NAME[shape].build(task), None))
        assert (cut.spec, cut.spaces, cut.metric, cut.task) == (own.spec, own.spaces, own.metric, own.task)
        for mine, theirs in zip(cut.split, own.split):
            pd.testing.assert_index_equal(mine.index, theirs.index)
        pd.testing.assert_frame_equal(cut.prepared.X, own.prepared.X)


def test_matrix_result_is_printed_and_recorded(matrix, record_property) -> None:
    """Every case conforms, the summary reaches the terminal (tests/conftest.py prints it,
    also under pytest-xdist), and docs/CONFORMANCE.md records this very result."""
    summary = f"Conformance matrix: {size_line()}: {result_line(matrix.outcomes)} ({matrix.seconds:.0f} s)"
    record_property(SUMMARY_KEY, summary)
    assert result_line(matrix.outcomes).endswith(" 0 failed"), summary
    # every case's study holds its trials in the real SQLite file
    names = {s.study_name for s in optuna.get_all_study_summaries(matrix.storage)}
    launched = [o for o in matrix.outcomes.values() if o.refused is None]
    assert len(names) == len(launched)
    doc = DOC.read_text(encoding="utf-8")
    assert size_line() in doc and result_line(matrix.outcomes) in doc
    assert render_table(matrix.outcomes) in doc, "docs/CONFORMANCE.md is out of date:\n" + render_table(matrix.outcomes)
    for example in reason_examples(matrix.outcomes).values():
        assert example in doc, "docs/CONFORMANCE.md does not quote this refusal:\n" + example
