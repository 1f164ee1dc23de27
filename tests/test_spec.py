"""Spec parsing: every field checked, unknown keys rejected, YAML round trip."""

import pytest

from hpdash.errors import SpecError
from hpdash.spec import StudySpec, check_name, load_spec, parse_spec

BASE = {"name": "s1", "dataset": "sklearn:iris", "target": "target", "model": "random_forest"}


def test_defaults_fill_in() -> None:
    spec = parse_spec(BASE)
    assert spec.strategy == "tpe" and spec.n_trials == 50 and spec.folds == 5 and spec.repeats == 1
    assert spec.models == ["random_forest"]


def test_yaml_round_trip(tmp_path) -> None:
    spec = parse_spec({**BASE, "model": ["svm", "ridge"], "cv": {"folds": 3, "repeats": 2}})
    path = tmp_path / "s.yaml"
    path.write_text(spec.to_yaml())
    again = load_spec(path)
    assert again == spec and again.models == ["svm", "ridge"] and again.repeats == 2


def test_single_item_model_list_becomes_key() -> None:
    assert parse_spec({**BASE, "model": ["svm"]}).model == "svm"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "Unknown spec key(s): colour"),
        ({"strategy": "annealing"}, "Unknown strategy 'annealing'"),
        ({"pruner": "eager"}, "Unknown pruner"),
        ({"task": "clustering"}, "Unknown task"),
        ({"n_trials": 0}, "'n_trials' must be between 1"),
        ({"n_trials": -5}, "'n_trials' must be between 1"),
        ({"n_trials": "ten"}, "'n_trials' must be a whole number"),
        ({"n_trials": None, "timeout": None}, "Set a budget"),
        ({"timeout": -1}, "'timeout' must be a positive number"),
        ({"cv": {"folds": 1}}, "'folds' must be between 2"),
        ({"cv": {"folds": 5, "shuffle": True}}, "'cv' must look like"),
        ({"test_size": 1.5}, "'test_size' must be a fraction"),
        ({"grid_points": 1}, "'grid_points' must be between 2"),
        ({"workers": 0}, "'workers' must be between 1"),
        ({"model": []}, "needs 'model'"),
        ({"model": ["svm", "svm"]}, "same model twice"),
        ({"model": 3}, "'model' must be a registry key"),
        ({"name": "../etc/passwd"}, "Invalid study name"),
        ({"name": "<script>alert(1)</script>"}, "Invalid study name"),
        ({"name": "x" * 101}, "Invalid study name"),
        ({"space": ["max_depth"]}, "'space' must map"),
        ({"seed": True}, "'seed' must be a whole number"),
    ],
)
def test_invalid_specs_name_the_problem(change: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **change})
    assert message in str(err.value)


def test_missing_required_key() -> None:
    with pytest.raises(SpecError, match="needs 'target'"):
        parse_spec({k: v for k, v in BASE.items() if k != "target"})


def test_bad_yaml_and_non_mapping() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec("name: [unclosed\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec("- a\n- b\n")
    with pytest.raises(SpecError, match="not found"):
        load_spec("nope/missing.yaml")


def test_yaml_is_never_executed() -> None:
    with pytest.raises(SpecError):
        load_spec("name: !!python/object/apply:os.system ['echo hacked']\n")


def test_grid_without_n_trials_is_allowed() -> None:
    spec = parse_spec({**BASE, "strategy": "grid", "n_trials": None})
    assert spec.n_trials is None


def test_replace_revalidates() -> None:
    spec = parse_spec(BASE)
    assert spec.replace(workers=3).workers == 3
    with pytest.raises(SpecError):
        spec.replace(workers=-1)


def test_check_name_accepts_safe_names() -> None:
    assert check_name("penguins-rf_tpe.v2") == "penguins-rf_tpe.v2"
    assert isinstance(parse_spec(BASE), StudySpec)
