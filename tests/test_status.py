"""A study's status without the fitting code: the batch read of every study equals the study
by study one, and the commands that only read studies never import scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import optuna
from optuna.trial import TrialState, create_trial

from hpdash import runner, status


def test_every_study_at_once_equals_study_by_study(data_dir) -> None:
    url = runner.open_storage(None, heartbeat=False)
    for name, values in (("b-done", [0.5, 0.7]), ("a-empty", []), ("c-failed", [None])):
        study = optuna.create_study(study_name=name, storage=url, direction="maximize")
        for value in values:
            if value is None:
                study.add_trial(create_trial(state=TrialState.FAIL))
            else:
                study.add_trial(create_trial(state=TrialState.COMPLETE, value=value))
    rows = status.statuses()
    assert [name for name, _, _ in rows] == ["a-empty", "b-done", "c-failed"]
    for name, spec, batch in rows:
        alone = status.study_status(status.load_study(name))
        assert spec == {}
        assert (batch.state, batch.done, batch.complete, batch.best_value) == (
            alone.state,
            alone.done,
            alone.complete,
            alone.best_value,
        ), name
    assert rows[1][2].best_value == 0.7 and rows[1][2].done == 2


def test_runner_reads_status_through_the_same_functions() -> None:
    assert runner.study_status is status.study_status and runner.load_study is status.load_study


def test_list_and_show_never_import_scikit_learn(data_dir, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'light.db'}"
    optuna.create_study(study_name="light", storage=url).add_trial(create_trial(state=TrialState.COMPLETE, value=1.0))
    code = (
        "import sys\n"
        "from hpdash import cli\n"
        f"assert cli.main(['list', '--storage', {url!r}]) == 0\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "light" in out.stdout and out.stdout.split()[-1] == "False", out.stdout
