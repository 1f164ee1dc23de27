"""The study summary record: fields from counts, derived counts, and its mapping view."""

from __future__ import annotations

import datetime
import json

import pytest

from hpdash.progress import StudyProgress, StudySummary

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _summary(**counts: int) -> StudySummary:
    return StudySummary.from_counts(
        counts,
        best_value=0.9,
        best_params={"max_depth": 3},
        best_trial_number=4,
        direction="maximize",
        metric="accuracy",
    )


def test_counts_by_state_name_and_missing_states_are_zero() -> None:
    summary = _summary(COMPLETE=4, PRUNED=1, FAIL=2, RUNNING=1, WAITING=5)
    assert (summary.n_complete, summary.n_pruned, summary.n_fail, summary.n_running, summary.n_waiting) == (
        4,
        1,
        2,
        1,
        5,
    )
    assert summary.n_trials == 8  # WAITING slots are unused budget, not trials
    assert summary.n_finished == 7
    empty = _summary()
    assert empty.n_trials == 0 and empty.n_waiting == 0 and empty.n_finished == 0


def test_progress_keeps_the_summary_and_counts_done_without_replaced_failures() -> None:
    summary = _summary(COMPLETE=3, FAIL=2, WAITING=1)
    progress = StudyProgress.from_summary(summary, n_replaced=1, first_start=T0, last_complete=T0)
    assert {k: progress[k] for k in summary} == dict(summary)
    assert progress.n_done == 4
    assert progress.first_start == T0 and progress.n_replaced == 1


def test_the_record_reads_and_compares_like_the_dict_of_its_fields() -> None:
    summary = _summary(COMPLETE=1)
    as_dict = dict(summary)
    assert list(as_dict) == [
        "n_trials",
        "n_complete",
        "n_pruned",
        "n_fail",
        "n_running",
        "n_waiting",
        "best_value",
        "best_params",
        "best_trial_number",
        "direction",
        "metric",
    ]
    assert summary == as_dict and as_dict == summary
    assert summary["best_value"] == 0.9 and len(summary) == 11
    assert summary != {**as_dict, "n_complete": 2}
    assert summary != {**as_dict, "extra": 1}
    with pytest.raises(KeyError):
        summary["n_replaced"]  # a summary is not a progress record
    assert json.loads(json.dumps(dict(summary)))["best_params"] == {"max_depth": 3}


def test_records_are_frozen() -> None:
    summary = _summary(COMPLETE=1)
    with pytest.raises(AttributeError):
        summary.n_complete = 2  # type: ignore[misc]
