"""The evaluation protocol, checked against plain scikit-learn."""

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, KFold, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from hpdash import datasets, objective, runner, space, strategies
from hpdash.errors import SpecError
from hpdash.spec import parse_spec
from hpdash.storage import WorkerRDBStorage, open_storage

GRID_SPEC = {
    "name": "bc-tree-grid",
    "dataset": "sklearn:breast_cancer",
    "target": "target",
    "model": "decision_tree",
    "space": {
        "max_depth": {"type": "int", "low": 2, "high": 10},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    },
    "strategy": "grid",
    "grid_points": 3,
    "n_trials": None,
    "metric": "accuracy",
    "seed": 0,
}


@pytest.mark.slow
def test_grid_study_reproduces_gridsearchcv(data_dir) -> None:
    """Acceptance: a grid study equals GridSearchCV's mean_test_score within 1e-9."""
    spec = parse_spec(GRID_SPEC)
    study = runner.create_study(spec)
    runner.wait_for(runner.launch_workers(spec.name, None, workers=1))
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))

    problem = runner.load_problem(spec, None)
    grid = space.grid(problem.spaces["decision_tree"], spec.grid_points)
    assert len(trials) == np.prod([len(v) for v in grid.values()])
    pipe = objective.build_pipeline(DecisionTreeClassifier(random_state=0), problem.numeric, problem.categorical)
    search = GridSearchCV(
        pipe,
        {f"model__{k}": v for k, v in grid.items()},
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0),
        scoring="accuracy",
    )
    search.fit(problem.X_train, problem.y_train)
    expected = {
        tuple(sorted((k.removeprefix("model__"), v) for k, v in params.items())): score
        for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])
    }
    for trial in trials:
        key = tuple(sorted(trial.params.items()))
        assert abs(trial.value - expected[key]) < 1e-9
        assert len(trial.user_attrs["fold_scores"]) == 5
        assert trial.intermediate_values == dict(enumerate(trial.user_attrs["fold_scores"]))


def test_cv_splitters_follow_the_protocol() -> None:
    assert isinstance(objective.make_cv("classification", 5, 1, 0), StratifiedKFold)
    assert isinstance(objective.make_cv("regression", 4, 1, 0), KFold)
    assert isinstance(objective.make_cv("classification", 3, 2, 0), RepeatedStratifiedKFold)


def test_metrics_by_task() -> None:
    assert objective.resolve_metric("auto", "classification") == "accuracy"
    assert objective.resolve_metric("auto", "regression") == "r2"
    assert "f1_macro" in objective.metrics_for_task("classification")
    with pytest.raises(SpecError, match="is for regression"):
        objective.resolve_metric("r2", "classification")
    with pytest.raises(SpecError, match="Unknown metric 'speed'"):
        objective.resolve_metric("speed", "regression")
    assert objective.resolve_metric("roc_auc", "classification", n_classes=2) == "roc_auc"
    with pytest.raises(SpecError, match="only for two classes, and this target has 3. Use 'roc_auc_ovr'"):
        objective.resolve_metric("roc_auc", "classification", n_classes=3)


def test_preprocessing_fits_inside_each_fold() -> None:
    """Mixed numeric/categorical data with gaps goes through the pipeline."""
    frame = pd.DataFrame({
        "num": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0],
        "cat": ["a", "b", None, "a", "b", "a", "c", "a"],
    })
    pre = objective.make_preprocessor(["num"], ["cat"])
    out = pre.fit_transform(frame.iloc[:6])
    assert out.shape == (6, 1 + 2)  # "c" is unseen in the first 6 rows
    assert pre.transform(frame.iloc[6:]).shape == (2, 3)  # unknown category ignored


def test_cross_validate_reports_each_fold() -> None:
    spec = parse_spec({**GRID_SPEC, "strategy": "random", "n_trials": 2})
    problem = runner.load_problem(spec, None)
    seen: list[tuple[int, float]] = []
    result = objective.cross_validate_params(problem, "decision_tree", {"max_depth": 3}, lambda k, s: seen.append((k, s)))
    assert [k for k, _ in seen] == [0, 1, 2, 3, 4]
    assert result.mean == pytest.approx(np.mean([s for _, s in seen]))
    assert len(result.fit_times) == 5 and all(t > 0 for t in result.fit_times)


def test_reproduce_snippet_runs_and_matches(data_dir) -> None:
    spec = parse_spec({**GRID_SPEC, "strategy": "random", "n_trials": 2})
    problem = runner.load_problem(spec, None)
    params = {"max_depth": 4, "min_samples_leaf": 2, "criterion": "entropy"}
    code = objective.reproduce_snippet(spec.to_dict(), problem, "decision_tree", params)
    prepared = datasets.prepare(datasets.load_sample("breast_cancer"), "target")
    scope = {"X": prepared.X, "y": prepared.y}
    exec(compile(code.replace("print(scores.mean())", "result = scores.mean()"), "snippet", "exec"), scope)
    expected = objective.cross_validate_params(problem, "decision_tree", params).mean
    assert abs(scope["result"] - expected) < 1e-12


@pytest.mark.parametrize("pruner, live_seconds, live_reports", [
    ("none", 1e9, 0),     # fast trials, no pruner: every fold score is written with the results
    ("none", 0.0, 5),     # slow folds: each score is written as soon as it is known
    ("median", 1e9, 5),   # a pruner reads each fold's score at once
])
def test_fold_scores_reach_storage_live_only_when_needed(data_dir, tmp_path, monkeypatch, pruner, live_seconds, live_reports) -> None:
    spec = parse_spec({**GRID_SPEC, "name": f"live-{pruner}-{live_reports}", "strategy": "random",
                       "n_trials": 1, "pruner": pruner})
    problem = runner.load_problem(spec, None)
    monkeypatch.setattr(objective, "LIVE_REPORT_SECONDS", live_seconds)
    reports = []  # fold steps written before the trial's results (which come with attrs)
    real_write = WorkerRDBStorage.set_trial_user_attrs

    def spy(self, trial_id, attrs, intermediate_values=None):
        if not attrs:
            reports.extend(sorted(intermediate_values or {}))
        return real_write(self, trial_id, attrs, intermediate_values)

    monkeypatch.setattr(WorkerRDBStorage, "set_trial_user_attrs", spy)
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    study = optuna.create_study(direction="maximize", storage=storage, pruner=strategies.make_pruner(pruner, 5))
    study.optimize(objective.make_objective(problem), n_trials=1)
    (trial,) = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert reports == list(range(live_reports))
    assert trial.intermediate_values == dict(enumerate(trial.user_attrs["fold_scores"]))
    assert trial.value == pytest.approx(np.mean(trial.user_attrs["fold_scores"]))
