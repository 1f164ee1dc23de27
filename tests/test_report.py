"""hpdash.report: the trials CSV, including formula-injection neutralisation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpdash import report, results

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHOICES = ["gini", "=1+2", "+SUM(A1)", "-cmd", "@A1", "\tx", "\rx", "plain-dash", "ünïcode"]
DISTS = {
    "criterion": CategoricalDistribution(CHOICES),
    "alpha": FloatDistribution(-5.0, 10.0),
}
BASE = dt.datetime(2025, 1, 1, 12, 0, 0)


def build_study() -> optuna.Study:
    """A maximize study of negative scores (like neg_log_loss), one trial per choice, a FAIL."""
    study = optuna.create_study(direction="maximize")
    for i, choice in enumerate(CHOICES):
        value = -0.5 + i / 100
        trial = create_trial(
            value=value,
            params={"criterion": choice, "alpha": -1.5 + i},
            distributions=DISTS,
            user_attrs={"fold_scores": [value - 0.1, value + 0.1], "cv_std": 0.1},
        )
        trial.datetime_start = BASE + dt.timedelta(seconds=i)
        trial.datetime_complete = trial.datetime_start + dt.timedelta(seconds=1)
        study.add_trial(trial)
    failed = create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "=HYPERLINK(\"x\")"})
    failed.datetime_start = failed.datetime_complete = BASE
    study.add_trial(failed)
    study.enqueue_trial({})
    return study


@pytest.fixture(scope="module")
def csv_rows() -> list[dict[str, Any]]:
    data = report.trials_csv(results.trials_frame(build_study()))
    assert isinstance(data, bytes)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_rows_and_header(csv_rows: list[dict[str, Any]]) -> None:
    assert len(csv_rows) == len(CHOICES) + 1  # WAITING slot excluded
    assert list(csv_rows[0]) == results.BASE_COLUMNS + ["params_alpha", "params_criterion"]


def test_formula_cells_are_neutralised(csv_rows: list[dict[str, Any]]) -> None:
    got = [r["params_criterion"] for r in csv_rows[: len(CHOICES)]]
    assert got == ["gini", "'=1+2", "'+SUM(A1)", "'-cmd", "'@A1", "'\tx", "'\rx",
                   "plain-dash", "ünïcode"]
    assert csv_rows[-1]["fail_reason"] == "'=HYPERLINK(\"x\")"
    # Nothing in the file starts with a formula character any more, except numbers.
    for row in csv_rows:
        for column, cell in row.items():
            if cell and cell[0] in "=+-@\t\r":
                float(cell)  # raises if a text cell slipped through


def test_negative_numbers_stay_numbers(csv_rows: list[dict[str, Any]]) -> None:
    assert csv_rows[0]["value"] == "-0.5"
    assert csv_rows[0]["params_alpha"] == "-1.5"
    assert csv_rows[0]["best_so_far"] == "-0.5"
    back = pd.read_csv(io.BytesIO(report.trials_csv(results.trials_frame(build_study()))))
    assert pd.api.types.is_float_dtype(back["value"])
    assert back["value"].iloc[0] == -0.5


def test_fold_scores_are_json(csv_rows: list[dict[str, Any]]) -> None:
    assert json.loads(csv_rows[0]["fold_scores"]) == pytest.approx([-0.6, -0.4])
    assert csv_rows[-1]["fold_scores"] == ""  # the FAIL trial has none
    assert csv_rows[-1]["state"] == "FAIL" and csv_rows[-1]["value"] == ""


def test_input_frame_unchanged_and_empty_frame() -> None:
    frame = results.trials_frame(build_study())
    before = frame.copy()
    report.trials_csv(frame)
    pd.testing.assert_frame_equal(frame, before)
    empty = report.trials_csv(results.trials_frame(optuna.create_study()))
    assert empty.decode("utf-8") == ",".join(results.BASE_COLUMNS) + "\r\n"


def test_write_trials_csv(tmp_path: Path) -> None:
    study = build_study()
    path = report.write_trials_csv(study, tmp_path / "trials.csv")
    assert path.read_bytes() == report.trials_csv(results.trials_frame(study))
    assert "ünïcode" in path.read_text(encoding="utf-8")


def test_neutralise_cell() -> None:
    assert report.neutralise_cell("=x") == "'=x"
    assert report.neutralise_cell(-3.0) == -3.0
    assert report.neutralise_cell(None) is None
    assert report.neutralise_cell("a=b") == "a=b"
