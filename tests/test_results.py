"""hpdash.results: the trials frame and the study summary, on real Optuna studies."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash import results
from hpdash.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "max_depth": IntDistribution(2, 32),
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "criterion": CategoricalDistribution(["gini", "entropy"]),
}
BASE = dt.datetime.now() - dt.timedelta(hours=1)

# (state, value, params) in trial-number order; trial i starts at BASE + 10 i s and takes 5 + i s.
TRIALS: list[tuple[TrialState, float | None, dict[str, Any]]] = [
    (TrialState.FAIL, None, {"max_depth": 3, "learning_rate": 0.5, "criterion": "gini"}),
    (TrialState.COMPLETE, 0.7, {"max_depth": 4, "learning_rate": 0.01, "criterion": "gini"}),
    (TrialState.PRUNED, None, {"max_depth": 8, "learning_rate": 0.001, "criterion": "entropy"}),
    (TrialState.COMPLETE, 0.8, {"max_depth": 16, "learning_rate": 0.1, "criterion": "entropy"}),
    (TrialState.COMPLETE, 0.6, {"max_depth": 2, "learning_rate": 0.0001, "criterion": "gini"}),
    (TrialState.COMPLETE, 0.9, {"max_depth": 32, "learning_rate": 1.0, "criterion": "entropy"}),
]


def add(
    study: optuna.Study,
    state: TrialState,
    value: float | None,
    params: dict[str, Any],
    dists: dict[str, Any],
    start: dt.datetime,
    seconds: float,
) -> None:
    """Add a finished trial with hpdash's user attrs and controlled datetimes."""
    attrs: dict[str, Any] = {}
    inter: dict[int, float] = {}
    if state == TrialState.COMPLETE:
        assert value is not None
        folds = [value - 0.02, value, value + 0.02]
        attrs = {
            "fold_scores": folds,
            "cv_mean": value,
            "cv_std": float(np.std(folds)),
            "fit_time": 0.5,
            "score_time": 0.1,
        }
        inter = dict(enumerate(folds))
    elif state == TrialState.PRUNED:
        attrs = {"pruned_at_fold": 1}
        inter = {0: 0.3, 1: 0.2}
    elif state == TrialState.FAIL:
        attrs = {"fail_reason": "ValueError: bad combination"}
    trial = create_trial(
        state=state,
        value=value,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs=attrs,
        intermediate_values=inter,
    )
    trial.datetime_start = start
    trial.datetime_complete = start + dt.timedelta(seconds=seconds)
    study.add_trial(trial)


def build_study(direction: str = "maximize", storage: str | None = None) -> optuna.Study:
    """TRIALS, then one RUNNING trial and two WAITING budget slots."""
    study = optuna.create_study(direction=direction, storage=storage)
    study.set_user_attr("hpdash.spec", {"name": "s", "metric": "accuracy", "n_trials": 9})
    for i, (state, value, params) in enumerate(TRIALS):
        add(study, state, value, params, DISTS, BASE + dt.timedelta(seconds=10 * i), 5 + i)
    study.ask({"max_depth": DISTS["max_depth"]})  # RUNNING, with one param so far
    study.enqueue_trial({"max_depth": 5})
    study.enqueue_trial({"max_depth": 6})
    return study


def nan_list(values: pd.Series) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 9) for v in values]


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    return build_study()


def test_waiting_excluded_and_sorted(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    assert len(study.get_trials(deepcopy=False)) == 9
    assert frame["number"].tolist() == list(range(7))
    assert "WAITING" not in set(frame["state"])
    assert frame["state"].tolist() == ["FAIL", "COMPLETE", "PRUNED", "COMPLETE", "COMPLETE", "COMPLETE", "RUNNING"]


def test_columns_and_params(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    params = ["params_criterion", "params_learning_rate", "params_max_depth"]
    assert list(frame.columns) == results.BASE_COLUMNS + params
    assert results.param_columns(frame) == params
    assert frame["params_criterion"].tolist()[:6] == [p["criterion"] for _, _, p in TRIALS]
    # Same naming as Optuna's own trials_dataframe.
    optuna_cols = {c for c in study.trials_dataframe().columns if c.startswith("params_")}
    assert optuna_cols == set(params)
    # The RUNNING trial has only suggested max_depth so far.
    running = frame.iloc[6]
    assert 2 <= running["params_max_depth"] <= 32
    assert pd.isna(running["params_criterion"])


def test_values_and_attrs(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    assert nan_list(frame["value"]) == [None, 0.7, None, 0.8, 0.6, 0.9, None]
    assert frame.loc[1, "fold_scores"] == pytest.approx([0.68, 0.7, 0.72])
    assert frame.loc[0, "fold_scores"] is None
    assert frame.loc[0, "fail_reason"] == "ValueError: bad combination"
    assert frame.loc[1, "fail_reason"] is None
    assert frame.loc[2, "pruned_at_fold"] == 1
    assert pd.isna(frame.loc[1, "pruned_at_fold"])
    assert frame.loc[3, "fit_time"] == 0.5
    assert frame.loc[3, "score_time"] == 0.1
    assert frame.loc[3, "cv_std"] == pytest.approx(np.std([0.78, 0.8, 0.82]))
    assert math.isnan(frame.loc[0, "cv_std"])


def test_times(study: optuna.Study) -> None:
    frame = results.trials_frame(study)
    assert pd.api.types.is_datetime64_any_dtype(frame["datetime_start"])
    assert pd.api.types.is_datetime64_any_dtype(frame["datetime_complete"])
    assert frame["duration_s"].tolist()[:6] == pytest.approx([5, 6, 7, 8, 9, 10])
    # elapsed = from trial 0's start to each completion: 10 i + 5 + i.
    assert frame["elapsed_s"].tolist()[:6] == pytest.approx([11 * i + 5 for i in range(6)])
    assert frame["elapsed_s"].iloc[:6].is_monotonic_increasing
    assert pd.isna(frame.loc[6, "datetime_complete"])
    assert math.isnan(frame.loc[6, "elapsed_s"]) and math.isnan(frame.loc[6, "duration_s"])


@pytest.mark.parametrize(
    ("direction", "expected_best", "best_number"),
    [
        ("maximize", [None, 0.7, 0.7, 0.8, 0.8, 0.9, 0.9], 5),
        ("minimize", [None, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6], 4),
    ],
)
def test_best_so_far_both_directions(direction: str, expected_best: list[float | None], best_number: int) -> None:
    study = build_study(direction)
    frame = results.trials_frame(study)
    assert nan_list(frame["best_so_far"]) == expected_best
    assert frame.loc[frame["is_best"], "number"].tolist() == [best_number]
    assert study.best_trial.number == best_number
    summary = results.study_summary(study)
    assert summary["direction"] == direction
    assert summary["best_trial_number"] == best_number
    assert summary["best_value"] == pytest.approx(expected_best[-1])
    assert summary["best_params"] == TRIALS[best_number][2]


def test_is_best_ties_take_lowest_number() -> None:
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate([0.5, 0.9, 0.9]):
        add(study, TrialState.COMPLETE, v, {"max_depth": i + 2}, DISTS, BASE, 1)
    frame = results.trials_frame(study)
    assert frame["is_best"].tolist() == [False, True, False]
    assert results.study_summary(study)["best_trial_number"] == 1


def test_summary_counts(study: optuna.Study) -> None:
    summary = results.study_summary(study)
    assert summary == {
        "n_trials": 7,
        "n_complete": 4,
        "n_pruned": 1,
        "n_fail": 1,
        "n_running": 1,
        "n_waiting": 2,
        "best_value": 0.9,
        "best_params": TRIALS[5][2],
        "best_trial_number": 5,
        "direction": "maximize",
        "metric": "accuracy",
    }


def test_empty_study() -> None:
    study = optuna.create_study()
    study.enqueue_trial({})  # a lone WAITING slot is still "no trials"
    frame = results.trials_frame(study)
    assert frame.empty
    assert list(frame.columns) == results.BASE_COLUMNS
    assert results.param_columns(frame) == []
    summary = results.study_summary(study)
    assert summary["n_trials"] == 0 and summary["n_waiting"] == 1
    assert summary["best_value"] is None and summary["best_params"] == {}
    assert summary["best_trial_number"] is None and summary["direction"] == "minimize"


def test_conditional_params_are_nan_where_unused() -> None:
    dists = {
        "model": CategoricalDistribution(["random_forest", "svc"]),
        "random_forest__max_depth": IntDistribution(2, 32),
        "svc__C": FloatDistribution(1e-3, 1e3, log=True),
    }
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.8, {"model": "random_forest", "random_forest__max_depth": 4}, dists, BASE, 1)
    add(study, TrialState.COMPLETE, 0.85, {"model": "svc", "svc__C": 10.0}, dists, BASE, 1)
    frame = results.trials_frame(study)
    assert results.param_columns(frame) == ["params_model", "params_random_forest__max_depth", "params_svc__C"]
    assert frame["params_model"].tolist() == ["random_forest", "svc"]
    assert frame.loc[0, "params_random_forest__max_depth"] == 4
    assert pd.isna(frame.loc[1, "params_random_forest__max_depth"])
    assert pd.isna(frame.loc[0, "params_svc__C"]) and frame.loc[1, "params_svc__C"] == 10.0
    assert results.log_params(study) == {"svc__C"}


def test_sqlite_storage_matches_in_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hp.db'}"
    on_disk = results.trials_frame(build_study("maximize", storage=url))
    in_memory = results.trials_frame(build_study("maximize"))
    columns = [c for c in on_disk.columns if c not in ("datetime_start", "datetime_complete")]
    # The RUNNING trial starts "now" in each study, so compare the finished ones.
    pd.testing.assert_frame_equal(on_disk.loc[:5, columns], in_memory.loc[:5, columns])
    assert results.study_summary(optuna.load_study(study_name=None, storage=url))["n_waiting"] == 2


def test_fold_scores_frame(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    folds = results.fold_scores_frame(trials[3])
    assert folds["fold"].tolist() == [0, 1, 2]
    assert folds["score"].tolist() == pytest.approx([0.78, 0.8, 0.82])
    # A pruned trial without the user attr falls back to its intermediate values.
    pruned = results.fold_scores_frame(trials[2])
    assert pruned["fold"].tolist() == [0, 1] and pruned["score"].tolist() == [0.3, 0.2]
    empty = results.fold_scores_frame(trials[0])
    assert empty.empty and list(empty.columns) == ["fold", "score"]


def test_param_column_helpers() -> None:
    frame = pd.DataFrame({"params_x": [1.0], "value": [0.0]})
    assert results.param_column(frame, "x") == "params_x"
    assert results.param_column(frame, "params_x") == "params_x"
    assert results.param_name("params_x") == "x"
    with pytest.raises(KeyError):
        results.param_column(frame, "value")


# ------------------------------------------------------------------ fast reader (issue 6)

ALL_ATTRS = (
    "number",
    "value",
    "datetime_start",
    "datetime_complete",
    "duration",
    "params",
    "user_attrs",
    "system_attrs",
    "intermediate_values",
    "state",
)

EVERY_DIST = {
    "f": FloatDistribution(-1.0, 1.0),
    "f_log": FloatDistribution(1e-5, 1.0, log=True),
    "f_step": FloatDistribution(0.0, 1.0, step=0.25),
    "i": IntDistribution(-3, 30),
    "i_log": IntDistribution(1, 1024, log=True),
    "i_step": IntDistribution(0, 100, step=10),
    "cat_str": CategoricalDistribution(["gini", "entropy"]),
    "cat_none": CategoricalDistribution([None, "balanced"]),
    "cat_bool": CategoricalDistribution([True, False]),
    "cat_num": CategoricalDistribution([1, 2.5, 10]),
}


def _every_kind_study(storage: str, direction: str = "maximize") -> optuna.Study:
    """Every trial state, every distribution type, odd user attrs and intermediate values."""
    study = optuna.create_study(direction=direction, storage=storage, study_name="every")
    study.set_user_attr("hpdash.spec", {"metric": "accuracy"})
    rng = np.random.default_rng(0)
    states = [TrialState.COMPLETE] * 6 + [TrialState.PRUNED, TrialState.FAIL]
    for i, state in enumerate(states):
        params = {
            "f": float(rng.uniform(-1, 1)),
            "f_log": float(10 ** rng.uniform(-5, 0)),
            "f_step": 0.25 * int(rng.integers(0, 5)),
            "i": int(rng.integers(-3, 31)),
            "i_log": int(2 ** rng.integers(0, 11)),
            "i_step": 10 * int(rng.integers(0, 11)),
            "cat_str": ["gini", "entropy"][i % 2],
            "cat_none": [None, "balanced"][i % 2],
            "cat_bool": [True, False][i % 2],
            "cat_num": [1, 2.5, 10][i % 3],
        }
        if i == 3:  # a conditional param the trial did not use
            del params["cat_none"], params["i"]
        value = None
        attrs: dict[str, Any] = {"note": f"t{i}", "nested": {"a": [1, 2]}}
        inter: dict[int, float] = {}
        if state == TrialState.COMPLETE:
            value = [0.5, 0.7, float("inf"), 0.2, 0.7, -0.1][i]
            folds = [0.1 * i, float("nan"), 0.3]
            attrs.update(fold_scores=folds, cv_std=0.01 * i, fit_time=0.5, score_time=0.1, cv_mean=value)
            inter = {0: 0.1 * i, 1: float("nan"), 2: float("inf")}
        elif state == TrialState.PRUNED:
            attrs.update(pruned_at_fold=1)
            inter = {0: 0.3, 1: -float("inf")}
        else:
            attrs.update(fail_reason="ValueError: bad combination")
        trial = create_trial(
            state=state,
            value=value,
            params=params,
            distributions={k: EVERY_DIST[k] for k in params},
            user_attrs=attrs,
            system_attrs={"hpdash_slot": True},
            intermediate_values=inter,
        )
        trial.datetime_start = BASE + dt.timedelta(seconds=10 * i)
        trial.datetime_complete = trial.datetime_start + dt.timedelta(seconds=3 + i)
        study.add_trial(trial)
    running = study.ask({"f": EVERY_DIST["f"], "cat_bool": EVERY_DIST["cat_bool"]})
    running.report(0.4, 0)
    running.set_user_attr("fold_scores", [0.4])
    study.enqueue_trial({"i": 5})  # WAITING
    return study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_fast_reader_equals_optuna_trials_dataframe(tmp_path: Path, direction: str) -> None:
    url = f"sqlite:///{tmp_path / 'every.db'}"
    _every_kind_study(url, direction)
    study = optuna.load_study(study_name="every", storage=url)
    assert results.rdb_storage(study) is not None
    fast = results.read_trials_dataframe(study)
    expected = study.trials_dataframe(attrs=ALL_ATTRS)
    assert set(expected["state"]) == {"COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"}
    assert {f"params_{k}" for k in EVERY_DIST} <= set(expected.columns)
    assert "intermediate_values_2" in expected.columns
    pd.testing.assert_frame_equal(fast, expected)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_fast_trials_frame_equals_api_trials_frame(tmp_path: Path, direction: str) -> None:
    url = f"sqlite:///{tmp_path / 'every.db'}"
    _every_kind_study(url, direction)
    study = optuna.load_study(study_name="every", storage=url)
    fast = results.trials_frame(study)
    slow = results.trials_frame(study, fast=False)
    pd.testing.assert_frame_equal(fast, slow)
    assert list(fast.columns[: len(results.BASE_COLUMNS)]) == results.BASE_COLUMNS
    assert results.study_summary(study) == _api_summary(study)
    assert results.log_params(study) == {"f_log", "i_log"}


def test_fast_reader_with_a_param_of_several_distributions(tmp_path: Path) -> None:
    """A param whose distribution changed between trials (a space edited on resume) takes the
    row-by-row path; the others the NumPy path. Both equal Optuna's frame."""
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    study = optuna.create_study(storage=url, study_name="mixed")
    spaces = [
        {"x": FloatDistribution(0, 1), "k": CategoricalDistribution(["a", "b", None]), "n": IntDistribution(1, 9)},
        {"x": FloatDistribution(0, 5), "k": CategoricalDistribution(["a", "b", None]), "n": IntDistribution(1, 20)},
    ]
    values = [{"x": 0.25, "k": "b", "n": 3}, {"x": 4.0, "k": None, "n": 17}, {"x": 0.5, "k": "a"}]
    for i, params in enumerate(values):
        dists = {name: spaces[i % 2][name] for name in params}
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(i), params=params, distributions=dists))
    pd.testing.assert_frame_equal(results.read_trials_dataframe(study), study.trials_dataframe(attrs=ALL_ATTRS))
    pd.testing.assert_frame_equal(results.trials_frame(study), results.trials_frame(study, fast=False))
    frame = results.trials_frame(study)
    assert frame["params_x"].tolist() == [0.25, 4.0, 0.5]
    assert frame["params_n"].tolist()[:2] == [3, 17] and pd.isna(frame["params_n"].iloc[2])


def test_param_columns_by_numpy_equal_row_by_row(tmp_path: Path) -> None:
    """The per-column NumPy path of the params columns gives the row path's values, dtypes
    and Python types, for every distribution type and a param some trials lack."""
    study = _every_kind_study(f"sqlite:///{tmp_path / 'every.db'}")
    engine, study_id = results._fast_source(study)
    raw = results.read_raw(engine, study_id, include_waiting=True)
    groups = results._param_groups(raw)
    assert groups is not None and {name for name, *_ in groups} == set(EVERY_DIST)
    n = len(raw.trials)
    pos = {r[0]: i for i, r in enumerate(raw.trials)}
    index = pd.RangeIndex(n)
    by_numpy: dict[str, set[type]] = {}
    by_row: dict[str, set[type]] = {}
    fast = results._param_series(raw, pos, n, index, by_numpy)
    slow = results._param_series_by_row(raw, pos, n, index, by_row)
    assert fast.keys() == slow.keys()
    for column in slow:
        pd.testing.assert_series_equal(fast[column], slow[column], check_names=False)
        assert [type(v) for v in fast[column]] == [type(v) for v in slow[column]], column
    assert by_numpy == by_row
    assert by_numpy["params_i"] == {int} and by_numpy["params_cat_num"] == {int, float}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_read_while_a_worker_writes_is_one_snapshot(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """A trial with a param of a new name, written by another process between the reads of
    ``read_raw`` (trials first, params later), shows in none of them: the read is one
    snapshot, so the params have a distribution for every name and only known trials."""
    url = f"sqlite:///{tmp_path / 'race.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="race")
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE, value=1.0, params={"a": 0.5}, distributions={"a": DISTS["learning_rate"]}
        )
    )
    writer = optuna.load_study(study_name="race", storage=optuna.storages.RDBStorage(url))
    engine, db_study_id = results._fast_source(study)
    real_select = results._select
    calls = []

    def select_then_write(*args: Any, **kwargs: Any) -> Any:
        rows = real_select(*args, **kwargs)
        if not calls:
            writer.add_trial(
                create_trial(
                    state=TrialState.COMPLETE, value=2.0, params={"b": 3}, distributions={"b": DISTS["max_depth"]}
                )
            )
        calls.append(rows)
        return rows

    monkeypatch.setattr(results, "_select", select_then_write)
    raw = results.read_raw(engine, db_study_id)
    monkeypatch.undo()
    assert len(calls) > 2 and len(raw.trials) == 1
    assert {row[1] for row in raw.params} == {"a"} and raw.param_dists is not None
    assert [name for name, *_ in results._param_groups(raw) or []] == ["a"]
    assert len(results.read_raw(engine, db_study_id).trials) == 2  # the next read sees it


def test_completed_trials_equal_optuna_by_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COMPLETE trials for importance: the same params, distributions and values as Optuna's
    own, whether built per column or (a param with two distributions) row by row."""
    study = _every_kind_study(f"sqlite:///{tmp_path / 'every.db'}")

    def key(trials: list) -> list:
        return [(t.number, t._trial_id, t.value, t.params, t.distributions) for t in trials]

    expected = key(sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number))
    grouped = results.completed_trials(study)
    assert key(grouped) == expected
    assert len({id(t.distributions) for t in grouped}) == 2  # shared per set of param names
    monkeypatch.setattr(results, "_param_groups", lambda raw: None)
    assert key(results.completed_trials(study)) == expected


def _api_summary(study: optuna.Study) -> dict[str, Any]:
    """study_summary through Optuna's API (the fast path switched off)."""
    original = results._fast_source
    try:
        results._fast_source = lambda s: None  # type: ignore[assignment]
        return results.study_summary(study)
    finally:
        results._fast_source = original  # type: ignore[assignment]


def test_fast_reader_converts_utc_to_local_time_like_optuna(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as _time

    monkeypatch.setenv("TZ", "America/New_York")
    _time.tzset()
    try:
        url = f"sqlite:///{tmp_path / 'tz.db'}"
        _every_kind_study(url)
        study = optuna.load_study(study_name="every", storage=url)
        pd.testing.assert_frame_equal(results.read_trials_dataframe(study), study.trials_dataframe(attrs=ALL_ATTRS))
        pd.testing.assert_frame_equal(results.trials_frame(study), results.trials_frame(study, fast=False))
    finally:
        monkeypatch.undo()
        _time.tzset()


def test_unknown_schema_version_falls_back_with_a_warning(tmp_path: Path) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'old.db'}"
    build_study("maximize", storage=url)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE version_info SET schema_version = 999"))
    engine.dispose()
    study = optuna.load_study(study_name=None, storage=url)
    with pytest.warns(results.UnknownSchemaWarning, match="999"):
        frame = results.trials_frame(study)
    pd.testing.assert_frame_equal(frame, results.trials_frame(study, fast=False))
    assert results.schema_version(results.rdb_storage(study).engine) == (999, "v3.2.0.a")


def test_schema_pin_matches_installed_optuna() -> None:
    """When Optuna's schema moves, this fails first: re-check the fast reader, then re-pin."""
    from optuna.storages._rdb import models

    assert models.SCHEMA_VERSION == results.OPTUNA_SCHEMA_VERSION


# ------------------------------------------------------------------ incremental reading


def test_trials_cache_reads_only_changes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    study = optuna.create_study(storage=url, direction="maximize", study_name="live")
    for _ in range(3):
        study.enqueue_trial({})  # budget slots, like hpdash's
    cache = results.TrialsCache(study)
    assert cache.incremental

    def check() -> pd.DataFrame:
        frame = cache.refresh()
        pd.testing.assert_frame_equal(frame, results.trials_frame(study))
        _assert_same_completed(cache, study)
        return frame

    assert check().empty
    for i in range(4):
        add(
            study,
            TrialState.COMPLETE,
            0.5 + 0.1 * i,
            {"max_depth": 3 + i, "criterion": "gini"},
            DISTS,
            BASE + dt.timedelta(seconds=i),
            1,
        )
    check()
    assert cache.last_changed == 4
    check()
    assert cache.last_changed == 0  # nothing new: nothing re-read
    # A slot is claimed and runs: only the int param so far (the column turns float with NaN).
    running = study.ask()
    running.suggest_int("max_depth", 2, 32)
    frame = check()
    row = frame.loc[frame["number"] == running.number].iloc[0]
    assert row["state"] == "RUNNING" and pd.isna(row["params_criterion"])
    running.suggest_categorical("criterion", ["gini", "entropy"])
    running.suggest_categorical("bootstrap", [True, False])
    running.report(0.3, 0)
    check()
    assert cache.last_changed == 1  # the running trial only
    study.tell(running, 0.95)
    frame = check()
    assert cache.last_changed == 1
    assert frame["params_max_depth"].dtype == "int64"  # back to int once every trial has it
    assert frame.loc[frame["is_best"], "number"].tolist() == [running.number]
    # A pruned and a failed trial after it, plus one new slot that stays WAITING.
    pruned = study.ask()
    pruned.suggest_int("max_depth", 2, 32)
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    study.enqueue_trial({})
    frame = check()
    states = dict(zip(frame["number"], frame["state"]))
    assert states[pruned.number] == "PRUNED" and states[failed.number] == "FAIL"
    assert cache.last_changed <= 3


def _assert_same_completed(cache: results.TrialsCache, study: optuna.Study) -> None:
    """The cache's COMPLETE trials (for importance) equal a fresh read's, and so does the count."""

    def key(trials: list) -> list:
        return [(t.number, t._trial_id, t.value, t.params, t.distributions) for t in trials]

    assert key(cache.completed_trials()) == key(results.completed_trials(study))
    assert cache.n_complete == results.completed_count(study)
    assert cache.log_params() == results.log_params(study)


def test_trials_cache_in_memory_rereads_everything() -> None:
    study = build_study()
    cache = results.TrialsCache(study)
    assert not cache.incremental
    pd.testing.assert_frame_equal(cache.refresh(), results.trials_frame(study))
    _assert_same_completed(cache, study)


def test_fast_reader_on_postgresql(pg_url: str) -> None:  # noqa: F811
    """Same SQL on PostgreSQL: native datetimes and enum types instead of SQLite's text."""
    _every_kind_study(pg_url)
    study = optuna.load_study(study_name="every", storage=pg_url)
    assert results.rdb_storage(study) is not None
    pd.testing.assert_frame_equal(results.read_trials_dataframe(study), study.trials_dataframe(attrs=ALL_ATTRS))
    pd.testing.assert_frame_equal(results.trials_frame(study), results.trials_frame(study, fast=False))
    assert results.study_summary(study) == _api_summary(study)
    cache = results.TrialsCache(study)
    pd.testing.assert_frame_equal(cache.refresh(), results.trials_frame(study))
    study.tell(study.ask({"f": EVERY_DIST["f"]}), 0.99)
    pd.testing.assert_frame_equal(cache.refresh(), results.trials_frame(study))
    _assert_same_completed(cache, study)
    results.rdb_storage(study).engine.dispose()


def _progress_study(storage) -> optuna.Study:
    """COMPLETE x2, a user-stopped FAIL, a heartbeat-retried FAIL (+ its retry), a plain FAIL."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(storage=storage, direction="maximize")
    dist = {"x": FloatDistribution(0, 1)}
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 0.1}, distributions=dist))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.7, params={"x": 0.2}, distributions=dist))
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"x": 0.3},
            distributions=dist,
            user_attrs={"fail_reason": "stopped by the user before it finished"},
        )
    )
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.4}, distributions=dist))
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs={"failed_trial": 3, "retry_history": [3]}))
    study.add_trial(
        create_trial(
            state=TrialState.FAIL, params={"x": 0.5}, distributions=dist, user_attrs={"fail_reason": "ValueError: bad"}
        )
    )
    return study


def test_study_progress_counts_replaced_failures(tmp_path) -> None:
    fast = results.study_progress(_progress_study(f"sqlite:///{tmp_path / 'p.db'}"))
    slow = results.study_progress(_progress_study(None))
    for progress in (fast, slow):
        assert progress["n_replaced"] == 2
        assert progress["n_fail"] == 3 and progress["n_complete"] == 2 and progress["n_waiting"] == 1
        assert progress["best_value"] == 0.7
        assert progress["first_start"].tzinfo is not None
        assert progress["last_complete"] >= progress["first_start"]
    assert abs((fast["first_start"] - slow["first_start"]).total_seconds()) < 60


def test_trials_cache_progress_equals_study_progress(tmp_path) -> None:
    """The live header's counts from the cached frame: the same dict as the aggregate queries,
    also after incremental refreshes (a heartbeat retry slot, then a new best trial)."""
    from optuna.distributions import FloatDistribution

    study = _progress_study(f"sqlite:///{tmp_path / 'p.db'}")
    cache = results.TrialsCache(study)
    progress = cache.progress()  # refreshes first
    assert progress == results.study_progress(study)
    assert progress["n_replaced"] == 2 and progress["n_waiting"] == 1
    # The plain FAIL (trial 5) goes stale and is retried: one more replaced failure, one more slot.
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs={"failed_trial": 5, "retry_history": [5]}))
    cache.refresh()
    progress = cache.progress()
    assert progress == results.study_progress(study)
    assert progress["n_replaced"] == 3 and progress["n_waiting"] == 2
    # A slot runs (RUNNING, then the new best), and a second poll with nothing new.
    trial = study.ask({"x": FloatDistribution(0, 1)})
    cache.refresh()
    assert cache.progress() == results.study_progress(study)
    study.tell(trial, 0.9)
    cache.refresh()
    progress = cache.progress()
    assert progress == results.study_progress(study)
    assert progress["best_value"] == 0.9 and progress["best_params"] == {"x": trial.params["x"]}
    cache.refresh()
    assert cache.last_changed == 0 and cache.progress() == progress


def test_trials_cache_progress_running_study_and_in_memory(tmp_path) -> None:
    """A RUNNING trial and WAITING slots on SQLite; Optuna's API path on an in-memory study."""
    for storage in (f"sqlite:///{tmp_path / 'b.db'}", None):
        study = build_study("minimize", storage)
        cache = results.TrialsCache(study)
        progress = cache.progress()
        assert progress == results.study_progress(study)
        assert progress["n_running"] == 1 and progress["n_waiting"] == 2
        assert progress["best_trial_number"] == 4  # the lowest score: minimize


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_trials_cache_progress_every_kind_of_trial(tmp_path: Path, direction: str) -> None:
    url = f"sqlite:///{tmp_path / 'every.db'}"
    _every_kind_study(url, direction)
    study = optuna.load_study(study_name="every", storage=url)
    assert results.TrialsCache(study).progress() == results.study_progress(study)


def test_trials_cache_progress_on_postgresql(pg_url: str) -> None:  # noqa: F811
    """Native timestamps and enums on PostgreSQL: the same dict as the aggregate queries."""
    _every_kind_study(pg_url)
    for study in (optuna.load_study(study_name="every", storage=pg_url), _progress_study(pg_url)):
        cache = results.TrialsCache(study)
        assert cache.progress() == results.study_progress(study)
        results.rdb_storage(study).engine.dispose()


def test_alembic_pin_is_what_optuna_stamps_a_new_storage(tmp_path: Path) -> None:
    """A storage Optuna creates itself carries exactly the pinned schema and revision, so
    `storage.open_storage` may skip Optuna's script-reading check for it."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = optuna.storages.RDBStorage(url).engine
    assert results.schema_version(engine) == (results.OPTUNA_SCHEMA_VERSION, results.OPTUNA_ALEMBIC_REVISION)


_BATCH_KEYS = ("n_trials", "n_complete", "n_pruned", "n_fail", "n_running", "n_waiting", "best_value", "n_replaced")


def _infinite_study(storage: str, direction: str, values: list[float]) -> None:
    study = optuna.create_study(direction=direction, storage=storage, study_name=f"inf-{direction}-{len(values)}")
    for value in values:
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_progress_of_every_study_at_once_equals_study_by_study(tmp_path: Path, request, backend: str) -> None:
    """The studies table's grouped queries give every study what ``study_progress`` gives it
    alone: counts by state, replaced failures, best value (both directions, infinite values),
    time span; and an empty study."""
    url = f"sqlite:///{tmp_path / 'many.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    _progress_study(url)
    for direction in ("maximize", "minimize"):
        build_study(direction, url)
        _infinite_study(url, direction, [1.0, math.inf, -math.inf])
        _infinite_study(url, direction, [-math.inf, 2.0])
        _infinite_study(url, direction, [math.inf])
    optuna.create_study(storage=url, study_name="empty")
    storage = optuna.storages.RDBStorage(url)
    batch = results.progress_of_studies(storage)
    assert batch is not None and set(batch) == set(optuna.get_all_study_names(storage))
    assert len(batch) == 10
    for name, progress in batch.items():
        alone = results.study_progress(optuna.load_study(study_name=name, storage=storage))
        assert {k: progress[k] for k in _BATCH_KEYS} == {k: alone[k] for k in _BATCH_KEYS}, name
        assert progress["first_start"] == alone["first_start"] and progress["last_complete"] == alone["last_complete"]
    assert batch["empty"]["n_trials"] == 0 and batch["empty"]["best_value"] is None
    storage.engine.dispose()


def test_progress_of_every_study_needs_an_rdb_storage() -> None:
    optuna.create_study(study_name="memory")
    assert results.progress_of_studies(optuna.storages.InMemoryStorage()) is None
