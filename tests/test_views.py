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
    frame = pd.DataFrame(
        [
            {
                "hyperparameter": "k",
                "type": "int",
                "low": 1.5,
                "high": 5.0,
                "log": False,
                "choices": "",
                "label": "model shape",
            }
        ]
    )
    with pytest.raises(SpecError, match="'k'"):
        views.space_from_editor(frame)
    frame = pd.DataFrame(
        [
            {
                "hyperparameter": "c",
                "type": "categorical",
                "low": None,
                "high": None,
                "log": False,
                "choices": "",
                "label": None,
            }
        ]
    )
    with pytest.raises(SpecError, match="choices"):
        views.space_from_editor(frame)
    dup = pd.DataFrame(
        [{"hyperparameter": "a", "type": "float", "low": 0.1, "high": 1.0, "log": False, "choices": "", "label": None}]
        * 2
    )
    with pytest.raises(SpecError, match="twice"):
        views.space_from_editor(dup)


def test_grid_preview_and_runtime_estimate(data_dir) -> None:
    spec = parse_spec(
        {
            "name": "g",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "k_nearest_neighbors",
            "strategy": "grid",
            "n_trials": None,
            "grid_points": 3,
            "cv": {"folds": 3},
        }
    )
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
    runner.create_study(
        parse_spec(
            {
                "name": "iris-a",
                "dataset": "sklearn:iris",
                "target": "target",
                "model": "decision_tree",
                "n_trials": 3,
                "cv": {"folds": 3},
            }
        )
    )
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


# ------------------------------------------------------------------------------ tables for people
def _trials(study_rows) -> pd.DataFrame:
    """A trials frame from (state, value, params, attrs) rows of a real Optuna study."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from hpdash import results

    dists = {
        "model": CategoricalDistribution(["k_nearest_neighbors", "random_forest"]),
        "random_forest__max_depth": IntDistribution(2, 32),
        "random_forest__max_features": FloatDistribution(0.1, 1.0),
        "k_nearest_neighbors__n_neighbors": IntDistribution(1, 50),
    }
    study = optuna.create_study(direction="maximize")
    for state, value, params, attrs in study_rows:
        study.add_trial(
            create_trial(
                state=getattr(TrialState, state),
                value=value,
                params=params,
                distributions={k: dists[k] for k in params},
                user_attrs=attrs,
            )
        )
    return results.trials_frame(study)


def test_trials_table_puts_what_matters_first() -> None:
    from hpdash import results

    frame = _trials(
        [
            (
                "COMPLETE",
                0.9,
                {
                    "model": "random_forest",
                    "random_forest__max_depth": 7,
                    "random_forest__max_features": 0.31622776601683794,
                },
                {"cv_std": 0.01},
            ),
            ("COMPLETE", 0.8, {"model": "k_nearest_neighbors", "k_nearest_neighbors__n_neighbors": 5}, {}),
            (
                "FAIL",
                None,
                {"model": "random_forest", "random_forest__max_depth": 3, "random_forest__max_features": 0.5},
                {"fail_reason": results.STOPPED_REASON_PREFIX + " before it finished; resume runs it again"},
            ),
            (
                "FAIL",
                None,
                {"model": "k_nearest_neighbors", "k_nearest_neighbors__n_neighbors": 9},
                {"fail_reason": "ValueError: boom"},
            ),
        ]
    )
    table = views.trials_table(frame, ["k_nearest_neighbors", "random_forest"])
    assert list(table.columns) == [
        "trial",
        "state",
        "value",
        "model",
        "k_nearest_neighbors__n_neighbors",
        "random_forest__max_depth",
        "random_forest__max_features",
        "cv_std",
        "duration_s",
        "reason",
    ]
    assert list(table["model"]) == ["random_forest", "k_nearest_neighbors", "random_forest", "k_nearest_neighbors"]
    assert table.loc[0, "random_forest__max_features"] == 0.3162  # rounded, still a number
    # a trial the user stopped is "STOPPED" with its reason, a real failure stays FAIL
    assert list(table["state"]) == ["COMPLETE", "COMPLETE", "STOPPED", "FAIL"]
    assert table.loc[2, "reason"].startswith("stopped by the user")
    assert table.loc[3, "reason"] == "ValueError: boom"
    # every trial complete: no reason column at all; one model: its key in the model column
    done = frame[frame["state"] == "COMPLETE"].drop(columns=["params_model"])
    single = views.trials_table(done, "random_forest")
    assert "reason" not in single.columns and list(single.columns[:4]) == ["trial", "state", "value", "model"]
    assert set(single["model"]) == {"random_forest"}


def test_best_params_and_grid_preview_are_rounded() -> None:
    params = {
        "model": "hist_gradient_boosting",
        "hist_gradient_boosting__learning_rate": 0.0316227766017,
        "hist_gradient_boosting__max_iter": 150,
    }
    table = views.best_params_frame(params, ["hist_gradient_boosting", "ridge"])
    assert views.best_model(params, ["hist_gradient_boosting", "ridge"]) == "hist_gradient_boosting"
    assert table.to_dict("list") == {"hyperparameter": ["learning_rate", "max_iter"], "value": ["0.03162", "150"]}
    plain = views.best_params_frame({"C": 1234.56789, "kernel": "rbf", "class_weight": None})
    assert list(plain["value"]) == ["1235", "rbf", "null"]
    spaces = {
        "svm": models.parse_model_space(
            "svm",
            "classification",
            {
                "C": {"type": "float", "low": 0.001, "high": 1.0, "log": True},
                "kernel": {"type": "categorical", "choices": ["rbf", "sigmoid"]},
            },
        )
    }
    preview = views.grid_preview_frame(spaces, 5)
    assert preview.loc[0, "values"] == "0.001, 0.005623, 0.03162, 0.1778, 1"
    assert preview.loc[1, "values"] == "rbf, sigmoid"


def test_columns_table_and_missing_target_note() -> None:
    from hpdash import datasets

    frame = datasets.load_sample("iris")
    frame["target"] = frame["target"].astype("object")
    frame.loc[[0, 50, 100], "target"] = None
    profile = datasets.profile_table(frame, "target")
    table = views.columns_table(profile)
    # nothing dropped: no all-empty "why dropped" column pushing role and examples off screen
    assert list(table.columns) == ["name", "role", "examples", "missing_share", "n_unique", "dtype"]
    note = views.target_missing_note(profile)
    assert note.startswith("3 of 150 rows have no value in the target 'target'") and "147 rows" in note
    frame.insert(0, "sample_id", range(len(frame)))
    dropped = views.columns_table(datasets.profile_table(frame, "target"))
    assert list(dropped.columns)[-1] == "reason"
    assert dropped.loc[0, "reason"].startswith("ID-like") and dropped.loc[1, "reason"] == ""
    assert views.target_missing_note(datasets.profile_table(datasets.load_sample("iris"), "target")) is None


def test_positive_class_is_asked_for_text_labels_only() -> None:
    frame = pd.DataFrame(
        {
            "x": range(12),
            "subscribed": ["no"] * 8 + ["yes"] * 4,
            "flag": [True, False] * 6,
            "digit": [0, 1] * 6,
            "kind": ["a", "b", "c"] * 4,
            "outcome": ["cat"] * 5 + ["dog"] * 7,
        }
    )
    classes = views.target_classes(frame, "subscribed")
    assert classes == ["no", "yes"]
    assert views.needs_pos_label("f1", classes)
    assert not views.needs_pos_label("accuracy", classes)
    assert views.needs_pos_label("f1", views.target_classes(frame, "flag"))
    assert not views.needs_pos_label("f1", views.target_classes(frame, "digit"))  # 1 is a label
    assert not views.needs_pos_label("f1", views.target_classes(frame, "kind"))  # not binary
    assert views.default_pos_label(frame, "subscribed") == "yes"  # the conventional name
    assert views.default_pos_label(frame, "flag") is True
    assert views.default_pos_label(frame, "outcome") == "cat"  # no such name: the rarer class


def test_grid_trials_follow_the_strategy() -> None:
    default = views.spec_form_defaults()["n_trials"]
    assert views.form_trials_after_strategy_change("tpe", "grid", default) == views.GRID_WHOLE
    assert views.form_trials_after_strategy_change("grid", "random", 0) == default
    assert views.form_trials_after_strategy_change("grid", "random", 12) == 12
    assert views.form_trials_after_strategy_change("tpe", "random", 7) == 7
    assert views.grid_budget_text(70, None, 95.0) == (
        "Grid search runs the whole grid: all 70 combinations once, about 1 min 35 s."
    )
    assert "20 of the 70" in views.grid_budget_text(70, 20) and "Trials to 0" in views.grid_budget_text(70, 20)


def test_studies_frame_from_grouped_queries_equals_study_by_study(data_dir, monkeypatch) -> None:
    """The studies table reads every study's progress in a few grouped queries; the table is
    the one the study-by-study path builds (states, progress, best, duration)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from hpdash import results

    base = {"dataset": "sklearn:iris", "target": "target", "model": "decision_tree", "cv": {"folds": 3}}
    for name, n_trials in (("t-a", 3), ("t-b", 5), ("t-c", 2)):
        runner.create_study(parse_spec({**base, "name": name, "n_trials": n_trials}))
    study = runner.load_study("t-b")
    for value in (0.5, 0.8, 0.7):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value))
    study.add_trial(create_trial(state=TrialState.FAIL))
    optuna.create_study(study_name="plain-optuna", storage=runner.config.storage_url())
    batched = views.studies_frame()
    monkeypatch.setattr(results, "progress_of_studies", lambda storage: None)
    one_by_one = views.studies_frame()
    pd.testing.assert_frame_equal(batched, one_by_one)
    assert batched.set_index("name").loc["t-b", "best"] == 0.8 and len(batched) == 4
