"""Search-space schema, validation, grids, suggestions and the conditional naming."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpdash.errors import SpecError
from hpdash.space import (
    MODEL_PARAM,
    Hyperparameter,
    check_grid_size,
    decode_params,
    grid,
    grid_points,
    grid_size,
    grid_values,
    parse_space,
    space_to_dict,
    suggest,
    total_grid_size,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

RAW = {
    "n_estimators": {"type": "int", "low": 10, "high": 300, "log": True},
    "max_depth": {"type": "int", "low": 2, "high": 32},
    "learning_rate": {"type": "float", "low": 0.001, "high": 1.0, "log": True},
    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
}


def _one(entry: dict, name: str = "hp") -> Hyperparameter:
    return parse_space({name: entry})[name]


# --- parsing ---------------------------------------------------------------------------


def test_parse_space_normalises_types_and_keeps_order() -> None:
    space = parse_space(RAW)
    assert list(space) == list(RAW)
    n = space["n_estimators"]
    assert (n.type, n.low, n.high, n.log) == ("int", 10, 300, True)
    assert isinstance(n.low, int) and isinstance(n.high, int)
    lr = space["learning_rate"]
    assert isinstance(lr.low, float) and lr.low == 0.001
    assert space["max_depth"].log is False
    assert space["criterion"].choices == ("gini", "entropy")
    assert all(hp.label == "learning process" for hp in space.values())


def test_round_trip_through_spec_form() -> None:
    space = parse_space(RAW, labels={"max_depth": "model shape"})
    as_dict = space_to_dict(space)
    assert as_dict["max_depth"] == {
        "type": "int",
        "low": 2,
        "high": 32,
        "log": False,
        "label": "model shape",
    }
    assert as_dict["criterion"] == {
        "type": "categorical",
        "choices": ["gini", "entropy"],
        "label": "learning process",
    }
    assert parse_space(as_dict) == space


def test_labels_mapping_and_explicit_label() -> None:
    raw = {
        "max_depth": {"type": "int", "low": 2, "high": 8},
        "criterion": {"type": "categorical", "choices": ["gini"], "label": "model shape"},
    }
    space = parse_space(raw, labels={"max_depth": "model shape", "criterion": "learning process"})
    assert space["max_depth"].label == "model shape"
    assert space["criterion"].label == "model shape"  # the entry's own label wins
    with pytest.raises(SpecError, match=r"hyperparameter 'x': unknown label 'shape'"):
        parse_space({"x": {"type": "int", "low": 1, "high": 2, "label": "shape"}})


def test_lenient_but_safe_bounds() -> None:
    # YAML 1.1 reads 1e-3 as text; numeric text is parsed with float(), never eval.
    hp = _one({"type": "float", "low": "1e-3", "high": "1", "log": True})
    assert (hp.low, hp.high) == (0.001, 1.0)
    # integral floats (from JSON) are fine for an int range
    hp = _one({"type": "int", "low": 2.0, "high": 5.0})
    assert (hp.low, hp.high) == (2, 5) and isinstance(hp.low, int)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "float", "low": 1.0, "high": 1.0}, r"low \(1\.0\) must be less than high \(1\.0\)"),
        ({"type": "int", "low": 9, "high": 3}, r"low \(9\) must be less than high \(3\)"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, r"log-scaled range needs low > 0, but low is 0\.0"),
        ({"type": "int", "low": -2, "high": 4, "log": True}, r"log-scaled range needs low > 0, but low is -2"),
        ({"type": "categorical", "choices": []}, r"'choices' is empty"),
        ({"type": "double", "low": 0, "high": 1}, r"unknown type 'double'; use one of: float, int, categorical"),
        ({"low": 0, "high": 1}, r"missing 'type'"),
        ({"type": "float", "low": 0, "high": 1, "step": 0.1}, r"unknown key\(s\) 'step' for a float"),
        ({"type": "categorical", "choices": [1], "low": 0}, r"unknown key\(s\) 'low' for a categorical"),
        ({"type": "float", "high": 1}, r"a float range needs low"),
        ({"type": "int"}, r"an int range needs low and high"),
        ({"type": "float", "low": "abc", "high": 1}, r"'low' must be a finite number, not 'abc'"),
        ({"type": "float", "low": 0, "high": [1]}, r"'high' must be a finite number"),
        ({"type": "float", "low": 0, "high": "nan"}, r"'high' must be a finite number"),
        ({"type": "int", "low": True, "high": 3}, r"'low' must be a finite number, not True"),
        ({"type": "int", "low": 1, "high": 2.5}, r"whole-number bounds; 'high' is 2\.5"),
        ({"type": "categorical", "choices": ["a", "b", "a"]}, r"choice 'a' appears more than once"),
        ({"type": "categorical", "choices": [1, True]}, r"choice True appears more than once"),
        ({"type": "categorical", "choices": [[64, 32]]}, r"choice \[64, 32\] is not plain data"),
        ({"type": "categorical", "choices": [{"a": 1}]}, r"is not plain data"),
        ({"type": "categorical", "choices": [float("nan")]}, r"is not plain data"),
        ({"type": "categorical", "choices": "gini"}, r"'choices' must be a list"),
        (
            {"type": "categorical", "choices": ["a"], "log": True},
            r"'log' applies to float and int ranges, not to categorical",
        ),
        ({"type": "float", "low": 0, "high": 1, "log": "yes"}, r"'log' must be true or false"),
        ("float 0..1", r"expected a mapping"),
    ],
)
def test_parse_errors_name_the_hyperparameter(entry: object, message: str) -> None:
    with pytest.raises(SpecError, match=r"hyperparameter 'max_depth'") as info:
        parse_space({"max_depth": entry})
    assert info.match(message)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("max depth", r"must be a Python identifier"),
        ("rf__max_depth", r"cannot contain '__'"),
        ("", r"non-empty text"),
        ("class", r"must be a Python identifier"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_space({name: {"type": "int", "low": 1, "high": 2}})


def test_space_must_be_a_mapping() -> None:
    with pytest.raises(SpecError, match="the search space must be a mapping"):
        parse_space([{"type": "int"}])  # type: ignore[arg-type]


def test_constructor_validates_too() -> None:
    with pytest.raises(SpecError, match=r"hyperparameter 'C': low \(2\.0\) must be less than high"):
        Hyperparameter("C", "float", 2.0, 1.0)
    hp = Hyperparameter("k", "categorical", choices=["a", "b"])  # type: ignore[arg-type]
    assert hp.choices == ("a", "b")


def test_parsed_hyperparameters_pass_through() -> None:
    hp = Hyperparameter("C", "float", 0.1, 10.0, log=True)
    assert parse_space({"C": hp})["C"] is hp
    assert parse_space({"alpha": hp})["alpha"].name == "alpha"


def test_distribution() -> None:
    space = parse_space(RAW)
    assert space["n_estimators"].distribution() == IntDistribution(10, 300, log=True)
    assert space["learning_rate"].distribution() == FloatDistribution(0.001, 1.0, log=True)
    assert space["criterion"].distribution() == CategoricalDistribution(["gini", "entropy"])


# --- grids -----------------------------------------------------------------------------


def test_grid_values_float_linear_and_log() -> None:
    assert grid_values(_one({"type": "float", "low": 0, "high": 1}), 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    # float noise is tidied: 0.1 + 0.1 is shown as 0.2, not 0.20000000000000004
    assert grid_values(_one({"type": "float", "low": 0.1, "high": 0.3}), 3) == [0.1, 0.2, 0.3]
    values = grid_values(_one({"type": "float", "low": 1e-3, "high": 10, "log": True}), 5)
    assert values == pytest.approx([1e-3, 1e-2, 1e-1, 1.0, 10.0], rel=1e-12)
    assert values[0] == 1e-3 and values[-1] == 10.0  # endpoints exact
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert ratios == pytest.approx([10.0] * 4)  # geometric spacing


def test_grid_values_int_rounds_and_deduplicates() -> None:
    assert grid_values(_one({"type": "int", "low": 2, "high": 32}), 4) == [2, 12, 22, 32]
    # 1, 1.5, 2, 2.5, 3 -> rounded half up -> 1, 2, 2, 3, 3 -> de-duplicated
    assert grid_values(_one({"type": "int", "low": 1, "high": 3}), 5) == [1, 2, 3]
    # geometric: 1, 3.16, 10, 31.6, 100
    values = grid_values(_one({"type": "int", "low": 1, "high": 100, "log": True}), 5)
    assert values == [1, 3, 10, 32, 100]
    assert all(isinstance(v, int) for v in values)
    # more points than integers: every integer once
    assert grid_values(_one({"type": "int", "low": 1, "high": 4, "log": True}), 20) == [1, 2, 3, 4]


def test_grid_values_categorical_and_points_check() -> None:
    cat = _one({"type": "categorical", "choices": ["a", None, 3]})
    assert grid_values(cat, 1) == ["a", None, 3]  # points do not apply to choices
    rng = _one({"type": "float", "low": 0, "high": 1}, name="alpha")
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(SpecError, match=r"hyperparameter 'alpha': grid search needs at least 2 points"):
            grid_values(rng, bad)  # type: ignore[arg-type]


def test_grid_and_grid_size() -> None:
    space = parse_space(RAW)
    g = grid(space, 3)
    assert g == {
        "n_estimators": [10, 55, 300],
        "max_depth": [2, 17, 32],
        "learning_rate": pytest.approx([0.001, math.sqrt(0.001), 1.0]),
        "criterion": ["gini", "entropy"],
    }
    assert grid_size(space, 3) == 3 * 3 * 3 * 2
    small = parse_space(
        {"k": {"type": "int", "low": 1, "high": 3}, "w": {"type": "categorical", "choices": ["u", "d"]}}
    )
    assert grid_size(small, 10) == 3 * 2  # de-duplicated ints count once
    assert grid_size({}, 5) == 1


def test_check_grid_size_message(monkeypatch: pytest.MonkeyPatch) -> None:
    check_grid_size(10_000, limit=10_000)  # at the limit is fine
    with pytest.raises(SpecError) as info:
        check_grid_size(12_345, limit=10_000)
    assert str(info.value) == (
        "the grid has 12,345 points, more than the limit of 10,000; use fewer points per range or fewer hyperparameters"
    )
    monkeypatch.setenv("HPDASH_GRID_LIMIT", "100")
    check_grid_size(100)
    with pytest.raises(SpecError, match=r"the grid has 101 points, more than the limit of 100;"):
        check_grid_size(101)


# --- one model and algorithm selection -------------------------------------------------

RF = parse_space(
    {
        "max_depth": {"type": "int", "low": 2, "high": 8},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    }
)
KNN = parse_space(
    {
        "n_neighbors": {"type": "int", "low": 1, "high": 50, "log": True},
        "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
    }
)
LOGREG = parse_space({"C": {"type": "float", "low": 0.01, "high": 100, "log": True}})


def test_grid_points_one_model() -> None:
    points = grid_points({"random_forest": RF}, 3)
    assert points == [
        {"max_depth": 2, "criterion": "gini"},
        {"max_depth": 2, "criterion": "entropy"},
        {"max_depth": 5, "criterion": "gini"},
        {"max_depth": 5, "criterion": "entropy"},
        {"max_depth": 8, "criterion": "gini"},
        {"max_depth": 8, "criterion": "entropy"},
    ]


def test_grid_points_algorithm_selection() -> None:
    spaces = {"random_forest": RF, "k_nearest_neighbors": KNN, "logistic_regression": LOGREG}
    points = grid_points(spaces, 3)
    assert len(points) == total_grid_size(spaces, 3) == 6 + 6 + 3
    assert points == grid_points(spaces, 3)  # deterministic
    assert [p[MODEL_PARAM] for p in points] == ["random_forest"] * 6 + ["k_nearest_neighbors"] * 6 + [
        "logistic_regression"
    ] * 3
    assert points[0] == {"model": "random_forest", "random_forest__max_depth": 2, "random_forest__criterion": "gini"}
    assert points[6] == {
        "model": "k_nearest_neighbors",
        "k_nearest_neighbors__n_neighbors": 1,
        "k_nearest_neighbors__weights": "uniform",
    }
    assert points[-1] == {"model": "logistic_regression", "logistic_regression__C": 100.0}
    for point in points:  # each point holds only its own model's params
        model = point[MODEL_PARAM]
        assert all(k == MODEL_PARAM or k.startswith(model + "__") for k in point)


def test_grid_points_refuses_a_grid_over_the_limit() -> None:
    with pytest.raises(SpecError, match=r"the grid has 15 points, more than the limit of 10;"):
        grid_points({"random_forest": RF, "k_nearest_neighbors": KNN, "logistic_regression": LOGREG}, 3, limit=10)
    with pytest.raises(SpecError, match="choose at least one model"):
        grid_points({}, 3)


def _study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))


def test_suggest_one_model_uses_plain_names() -> None:
    study = _study()
    seen: list[tuple[str, dict]] = []

    def objective(trial: optuna.Trial) -> float:
        model, params = suggest(trial, {"random_forest": RF})
        seen.append((model, params))
        return float(params["max_depth"])

    study.optimize(objective, n_trials=15)
    for trial, (model, params) in zip(study.trials, seen):
        assert model == "random_forest"
        assert trial.params == params
        assert set(params) == {"max_depth", "criterion"}
        assert 2 <= params["max_depth"] <= 8 and isinstance(params["max_depth"], int)
        assert trial.distributions["max_depth"] == IntDistribution(2, 8)
        assert decode_params(trial.params, ["random_forest"]) == (model, params)


def test_suggest_algorithm_selection_is_conditional() -> None:
    spaces = {"random_forest": RF, "k_nearest_neighbors": KNN, "logistic_regression": LOGREG}
    study = _study(seed=1)
    seen: list[tuple[str, dict]] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(suggest(trial, spaces))
        return 0.0

    study.optimize(objective, n_trials=30)
    assert {model for model, _ in seen} == set(spaces)
    for trial, (model, params) in zip(study.trials, seen):
        assert trial.params[MODEL_PARAM] == model
        assert trial.distributions[MODEL_PARAM] == CategoricalDistribution(list(spaces))
        assert set(trial.params) == {MODEL_PARAM} | {f"{model}__{name}" for name in spaces[model]}
        assert set(params) == set(spaces[model])
        assert decode_params(trial.params, list(spaces)) == (model, params)


def test_enqueued_grid_points_come_back_exactly() -> None:
    """The runner enqueues grid points as trials; suggest() must reproduce each one."""
    spaces = {"random_forest": RF, "logistic_regression": LOGREG}
    points = grid_points(spaces, 3)
    study = _study()
    for point in points:
        study.enqueue_trial(point)
    study.optimize(lambda t: (suggest(t, spaces), 0.0)[1], n_trials=len(points))
    assert [t.params for t in study.trials] == points


def test_decode_params() -> None:
    models = ["random_forest", "k_nearest_neighbors"]
    params = {
        "model": "k_nearest_neighbors",
        "k_nearest_neighbors__n_neighbors": 7,
        "k_nearest_neighbors__weights": "distance",
    }
    assert decode_params(params, models) == ("k_nearest_neighbors", {"n_neighbors": 7, "weights": "distance"})
    assert decode_params({"C": 1.0}, ["logistic_regression"]) == ("logistic_regression", {"C": 1.0})
    with pytest.raises(SpecError, match="the trial has no 'model' parameter"):
        decode_params({"random_forest__max_depth": 3}, models)
    with pytest.raises(
        SpecError, match=r"the trial used model 'svm', which is not one of: random_forest, k_nearest_neighbors"
    ):
        decode_params({"model": "svm"}, models)


def test_suggest_needs_a_model() -> None:
    with pytest.raises(SpecError, match="choose at least one model"):
        suggest(_study().ask(), {})
