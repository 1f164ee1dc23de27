"""hpdash.views: the tidy helpers behind the pages (no Streamlit)."""

import math

import pandas as pd
import pytest

from hpdash import models, runner, views
from hpdash.errors import SpecError
from hpdash.spec import parse_spec


def test_format_helpers() -> None:
    assert views.format_duration(None) == "–"
    assert views.format_duration(3.21) == "3.2 s"
    assert views.format_duration(75) == "1 min 15 s"
    assert views.format_duration(7260) == "2 h 1 min"
    assert views.format_score(None) == "–"
    assert views.format_score(math.nan) == "–"
    assert views.format_score(0.912345) == "0.9123"


def test_choices_round_trip_without_eval() -> None:
    assert views.parse_choices("gini, entropy") == ["gini", "entropy"]
    assert views.parse_choices("1, 2.5, true, null") == [1, 2.5, True, None]
    assert views.parse_choices("") == []
    values = ["1", 1, None, "64-32", "balanced"]
    assert views.parse_choices(views.format_choices(values)) == values
    assert views.parse_choices("__import__('os').system('x')") == ["__import__('os').system('x')"]


def test_space_editor_round_trip() -> None:
    space = models.default_space("random_forest", "classification")
    frame = views.space_editor_frame(space)
    assert list(frame.columns) == views.EDITOR_COLUMNS
    back = views.space_from_editor(frame)
    assert back == {name: hp.to_dict() for name, hp in space.items()}


def test_space_editor_errors_name_the_row() -> None:
    frame = pd.DataFrame([{"hyperparameter": "k", "type": "int", "low": 1.5, "high": 5.0,
                           "log": False, "choices": "", "label": "model shape"}])
    with pytest.raises(SpecError, match="'k'"):
        views.space_from_editor(frame)
    frame = pd.DataFrame([{"hyperparameter": "c", "type": "categorical", "low": None,
                           "high": None, "log": False, "choices": "", "label": None}])
    with pytest.raises(SpecError, match="choices"):
        views.space_from_editor(frame)
    dup = pd.DataFrame([{"hyperparameter": "a", "type": "float", "low": 0.1, "high": 1.0,
                         "log": False, "choices": "", "label": None}] * 2)
    with pytest.raises(SpecError, match="twice"):
        views.space_from_editor(dup)


def test_grid_preview_and_runtime_estimate(data_dir) -> None:
    spec = parse_spec({"name": "g", "dataset": "sklearn:iris", "target": "target",
                       "model": "k_nearest_neighbors", "strategy": "grid", "n_trials": None,
                       "grid_points": 3, "cv": {"folds": 3}})
    plan = runner.plan_study(spec)
    preview = views.grid_preview_frame(plan.spaces, 3)
    assert set(preview.columns) == {"model", "hyperparameter", "n_values", "values"}
    total = 1
    for n in preview["n_values"]:
        total *= n
    estimate = views.estimate_runtime(plan)
    assert estimate.n_trials == total
    assert estimate.total_s and estimate.total_s > 0
    assert "trial" in estimate.describe()


def test_studies_frame_empty_and_names(data_dir) -> None:
    frame = views.studies_frame()
    assert frame.empty and list(frame.columns) == views.STUDY_COLUMNS
    runner.create_study(parse_spec({"name": "iris-a", "dataset": "sklearn:iris", "target": "target",
                                    "model": "decision_tree", "n_trials": 3, "cv": {"folds": 3}}))
    frame = views.studies_frame()
    assert frame.loc[0, "name"] == "iris-a" and frame.loc[0, "state"] == "created"
    assert frame.loc[0, "progress"] == "0/3" and frame.loc[0, "link"] == "/study?study=iris-a"
    assert views.unique_study_name("iris-a") == "iris-a-2"
    assert views.unique_study_name("bad name!") == "bad-name"
    assert len(views.filter_studies(frame, "IRIS")) == 1
    assert views.filter_studies(frame, "nope").empty


def test_trial_reasons() -> None:
    assert views.trial_reason({"state": "FAIL", "fail_reason": "ValueError: x"}) == "ValueError: x"
    assert "fold 1" in views.trial_reason({"state": "PRUNED", "pruned_at_fold": 1})
    assert views.trial_reason({"state": "COMPLETE"}) == ""


def test_default_target() -> None:
    assert views.default_target(["a", "Species", "b"]) == "Species"
    assert views.default_target(["a", "b"]) == "b"
