"""Fault tolerance with real processes: SIGKILL mid-trial, stop mid-trial, disk full, read-only.

Heartbeats are shortened through the environment (HPDASH_HEARTBEAT_INTERVAL=1,
HPDASH_GRACE_PERIOD=3), which the worker processes inherit.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpdash import config, runner
from hpdash.spec import parse_spec

pytestmark = pytest.mark.slow

INTERVAL, GRACE = 1, 3


@pytest.fixture
def fast_heartbeats(monkeypatch):
    monkeypatch.setenv("HPDASH_HEARTBEAT_INTERVAL", str(INTERVAL))
    monkeypatch.setenv("HPDASH_GRACE_PERIOD", str(GRACE))


def _slow_spec(name: str, n_trials: int, workers: int = 1):
    """Trials of about a second each (a random forest on breast cancer), so a kill lands
    mid-trial, after a fold score is written live (folds of 0.25 s or more, objective.py)."""
    return parse_spec(
        {
            "name": name,
            "dataset": "sklearn:breast_cancer",
            "target": "target",
            "model": "random_forest",
            "strategy": "random",
            "n_trials": n_trials,
            "cv": {"folds": 3},
            "seed": 0,
            "workers": workers,
            "space": {
                "n_estimators": {"type": "int", "low": 180, "high": 220},
                "max_depth": {"type": "int", "low": 2, "high": 8},
            },
        }
    )


def _logs(name: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(runner.workers_log_dir().glob(f"{name}-*.log")))


def _wait(cond, timeout: float, what: str, interval: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _snapshot(study) -> dict[int, tuple]:
    return {
        t.number: (
            t.value,
            json.dumps(t.params, sort_keys=True),
            tuple(t.user_attrs["fold_scores"]),
            t.datetime_start,
            t.datetime_complete,
        )
        for t in study.get_trials(states=(TrialState.COMPLETE,))
    }


def _kill_mid_trial(study, proc, min_complete: int):
    """SIGKILL ``proc`` while it runs a trial after ``min_complete`` trials; return that trial."""

    def ready():
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        # a trial of *this* process (with two workers the other one may be mid-trial instead)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and t.intermediate_values
            and str(t.user_attrs.get("worker", "")).endswith(f":{proc.pid}")
        ]
        return done >= min_complete and running

    _wait(ready, 90, f"{min_complete} COMPLETE trials and one mid-trial (a fold reported)", 0.05)
    before = _snapshot(study)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.time()
    proc.wait(10)
    return before, killed_at


def _check_finished_budget(study, before: dict, n_trials: int, killed) -> None:
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials, [(t.number, t.state) for t in trials]
    # the killed trial is FAIL (stale heartbeat) and exactly one retry with its params completed
    assert study.get_trials(states=(TrialState.FAIL,)) and killed.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert len(trials) == n_trials + 1  # the budget plus the one failed attempt, nothing else
    # COMPLETE trials from before the kill are intact: same values, params, folds, times
    after = _snapshot(study)
    for number, record in before.items():
        assert after[number] == record, number
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert runner.study_status(study).state == "finished"
    assert runner.study_status(study).done == n_trials


def test_sigkill_mid_trial_then_resume_finishes_budget(data_dir, fast_heartbeats) -> None:
    spec = _slow_spec("killed", 8)
    runner.create_study(spec)
    (proc,) = runner.launch_workers(spec.name, None, 1)
    study = runner.load_study(spec.name)
    before, killed_at = _kill_mid_trial(study, proc, 2)
    (victim,) = study.get_trials(states=(TrialState.RUNNING,))
    # nobody is left: the UI shows "worker lost", and the trial stays RUNNING until a worker checks
    assert runner.study_status(study).state == "worker lost"

    procs = runner.resume_study(spec.name, workers=1)
    # the stale trial is failed once the grace period has passed (plus worker start-up)
    failed = _wait(
        lambda: study._storage.get_trial(victim._trial_id).state == TrialState.FAIL,
        GRACE + 30,
        "the killed trial to be failed by the heartbeat check",
    )
    assert failed
    # not failed before the grace period: the last beat came at most INTERVAL before the kill
    assert time.time() - killed_at >= GRACE - INTERVAL
    assert runner.wait_for(procs) == [0], _logs(spec.name)
    killed = study._storage.get_trial(victim._trial_id)
    _check_finished_budget(study, before, 8, killed)


def test_sigkill_one_of_two_workers_the_survivor_retries(data_dir, fast_heartbeats) -> None:
    """No resume: the surviving worker fails the stale trial within the grace period and reruns it."""
    spec = _slow_spec("survivor", 10, workers=2)
    runner.create_study(spec)
    procs = runner.launch_workers(spec.name, None, 2)
    study = runner.load_study(spec.name)
    before, killed_at = _kill_mid_trial(study, procs[0], 2)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert running  # at least the killed worker's trial

    # the survivor keeps going; the dead trial turns FAIL soon after the grace period
    def some_stale_failed():
        return [t for t in study.get_trials(states=(TrialState.FAIL,))]

    failed = _wait(some_stale_failed, GRACE + 15, "the dead worker's trial to be failed")
    assert time.time() - killed_at <= GRACE + 15
    assert runner.wait_for(procs[1:]) == [0], _logs(spec.name)
    (killed,) = failed
    _check_finished_budget(study, before, 10, study._storage.get_trial(killed._trial_id))


def _trial_record(trial) -> tuple:
    return (
        trial.number,
        trial.state,
        trial.values,
        json.dumps(trial.params, sort_keys=True),
        json.dumps(trial.user_attrs, sort_keys=True),
        json.dumps(trial.system_attrs, sort_keys=True),
        trial.intermediate_values,
        trial.datetime_start,
        trial.datetime_complete,
    )


def test_a_worker_paused_past_the_grace_period_never_flips_a_finished_study(data_dir, fast_heartbeats) -> None:
    """SIGSTOP one of two workers mid-trial; the other fails its trial as stale, runs the
    retry, finishes the budget and refits; then SIGCONT the paused one. It drops the trial
    that was taken over, writes nothing over anything, and ends: the study stays finished
    with exactly the budget COMPLETE, no error, one refit and every trial as it was."""
    spec = _slow_spec("late", 8, workers=2)
    runner.create_study(spec)
    paused, other = runner.launch_workers(spec.name, None, 2)
    study = runner.load_study(spec.name)

    def mid_trial():
        trials = study.get_trials(deepcopy=False)
        mine = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and t.intermediate_values
            and str(t.user_attrs.get("worker", "")).endswith(f":{paused.pid}")
        ]
        return sum(t.state == TrialState.COMPLETE for t in trials) >= 1 and mine

    _wait(mid_trial, 90, "a COMPLETE trial and the first worker mid-trial (a fold reported)", 0.05)
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        (victim,) = [
            t
            for t in study.get_trials(states=(TrialState.RUNNING,))
            if t.user_attrs.get("worker", "").endswith(f":{paused.pid}")
        ]
        assert other.wait(240) == 0, _logs(spec.name)  # the survivor retried it and finished
        finished = runner.load_study(spec.name)
        assert finished.user_attrs[runner.STATE_ATTR] == "finished", _logs(spec.name)
        refit = runner.refit_info(finished)
        assert refit is not None, finished.user_attrs.get(runner.REFIT_ATTR)
        model = config.models_dir() / "late.joblib"
        files_before = {
            p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in config.models_dir().iterdir()
        }
        before = [_trial_record(t) for t in finished.get_trials()]
        assert model.name in files_before and "late.joblib.sha256" in files_before
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert paused.wait(120) == 0, _logs(spec.name)

    study = runner.load_study(spec.name)
    attrs = study.user_attrs
    assert attrs[runner.STATE_ATTR] == "finished" and attrs.get(runner.ERROR_ATTR) is None, _logs(spec.name)
    assert runner.study_status(study).state == "finished" and runner.study_status(study).done == 8
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 8
    assert len(trials) == 9 and not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    taken = study._storage.get_trial(victim._trial_id)
    assert taken.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == victim.params
    # Nothing the late worker computed was written over anything, and no refit ran again.
    assert [_trial_record(t) for t in trials] == before
    assert runner.refit_info(study) == refit
    assert {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in config.models_dir().iterdir()
    } == files_before
    # The late worker said so, counted only the trials it finished, and ended cleanly.
    late = [w for w in runner.workers_of(study) if w["pid"] == paused.pid]
    assert len(late) == 1 and late[0]["status"] == "done" and late[0]["dropped"] == 1, late
    own = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs["worker"].endswith(f":{paused.pid}")]
    assert late[0]["trials"] == len(own)
    assert f"Trial {victim.number} was failed as stale by another worker" in _logs(spec.name)


def test_stop_mid_trial_ends_cleanly(data_dir) -> None:
    spec = _slow_spec("stop-mid", 20).replace(cv={"folds": 5})
    runner.create_study(spec)
    procs = runner.launch_workers(spec.name, None, 1)
    study = runner.load_study(spec.name)
    _wait(
        lambda: (
            any(t.state == TrialState.RUNNING and t.intermediate_values for t in study.get_trials(deepcopy=False))
            and sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) >= 1
        ),
        90,
        "a trial in the middle of its folds",
    )
    stopped_at = time.time()
    runner.stop_study(spec.name)
    assert runner.wait_for(procs) == [0], _logs(spec.name)
    assert time.time() - stopped_at < 20  # ends at a fold boundary, not after the whole budget
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    cut = [t for t in trials if t.state == TrialState.FAIL]
    assert len(cut) == 1 and cut[0].user_attrs["fail_reason"].startswith("stopped by the user")
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) + len(waiting) == 20  # the cut trial's slot was given back
    assert any(t.system_attrs.get("fixed_params") == cut[0].params for t in waiting)
    status = runner.study_status(study)
    assert status.state == "stopped" and status.running == 0 and status.workers_alive == 0


# -- disk full and read-only storage --------------------------------------------------------
def _db_fingerprint(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def _files_fingerprint(root: Path) -> dict[str, str]:
    """Hash of every file under ``root`` except SQLite's -wal/-shm side files (compared logically)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm")) and p.suffix != ".db"
    }


@pytest.fixture
def populated(data_dir):
    """A data dir with one stored dataset and one note, checkpointed."""
    from hpdash import datasets
    from hpdash.store import Catalogue

    iris = datasets.load_sample("iris").to_csv(index=False).encode()
    datasets.store_dataset(iris, "iris.csv")
    optuna.create_study(study_name="some-study", storage=config.storage_url())  # a note belongs to a study
    Catalogue().set_note("some-study", "original note")
    with sqlite3.connect(config.default_db_path()) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return data_dir


def _attempt(action: str, data_dir: Path, fsize_limit: int | None = None) -> dict:
    """Run ``action`` in a fresh process; return the error it raised (type and message)."""
    script = textwrap.dedent(f"""
        import json, resource, signal, sys
        from hpdash import datasets
        from hpdash.store import Catalogue
        wine = datasets.load_sample("wine").to_csv(index=False).encode()
        if {fsize_limit!r} is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize_limit!r}, resource.RLIM_INFINITY))
        try:
            {action}
            print(json.dumps({{"error": None}}))
        except Exception as exc:
            print(json.dumps({{"error": type(exc).__name__, "hpdash": type(exc).__module__.startswith("hpdash"),
                               "message": str(exc)}}))
    """)
    env = {**os.environ, "HPDASH_DATA_DIR": str(data_dir)}
    env.pop("HPDASH_STORAGE", None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr  # a clear error, never a crash
    return json.loads(out.stdout.strip().splitlines()[-1])


SAVE_DATASET = 'datasets.store_dataset(wine, "wine.csv")'
SAVE_NOTE = 'Catalogue().set_note("some-study", "new text " * 2000)'


@pytest.mark.parametrize("action", [SAVE_DATASET, SAVE_NOTE], ids=["dataset", "note"])
def test_disk_full_gives_clear_error_and_keeps_data(populated, action) -> None:
    """A file-size limit of 1 KiB makes every write past it fail with EFBIG, as a full disk would."""
    files, db = _files_fingerprint(populated), _db_fingerprint(config.default_db_path())
    result = _attempt(action, populated, fsize_limit=1024)
    print(result)
    assert result["error"] == "StorageError", result
    assert result["hpdash"]
    if action == SAVE_DATASET:
        assert "Could not save wine.csv" in result["message"] and "disk may be full" in result["message"]
    else:
        assert "Could not write to the catalogue" in result["message"], result
        assert "full" in result["message"] or "disk" in result["message"] or "I/O" in result["message"], result
    assert _files_fingerprint(populated) == files
    assert _db_fingerprint(config.default_db_path()) == db
    assert not list(populated.rglob("*.part")) and not list(populated.rglob("*.tmp"))
    from hpdash.store import Catalogue

    assert Catalogue().get_note("some-study") == "original note"
    assert len(Catalogue().list_datasets()) == 1


@contextmanager
def _read_only(paths: list[Path]):
    """Make ``paths`` read-only: chmod for a normal user, ``chattr +i`` for root (chmod binds
    nobody there). Skips when neither takes effect on this file system."""
    root = os.geteuid() == 0
    saved = {p: p.stat().st_mode for p in paths}
    try:
        for p in paths:
            if root:
                r = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
                if r.returncode != 0:
                    pytest.skip(f"cannot make {p} read-only as root here: {r.stderr.strip()}")
            else:
                p.chmod(0o555 if p.is_dir() else 0o444)
        probe = paths[0] / ".probe" if paths[0].is_dir() else None
        if probe is not None:
            try:
                probe.write_text("x")
            except OSError:
                pass
            else:
                probe.unlink()
                pytest.skip("this file system ignores read-only permissions")
        yield
    finally:
        for p in paths:
            if root:
                subprocess.run(["chattr", "-i", str(p)], capture_output=True)
            else:
                p.chmod(saved[p])


@pytest.mark.parametrize("action", [SAVE_DATASET, SAVE_NOTE], ids=["dataset", "note"])
def test_read_only_storage_gives_clear_error_and_keeps_data(populated, action) -> None:
    db = config.default_db_path()
    files, dump = _files_fingerprint(populated), _db_fingerprint(db)
    targets = [config.datasets_dir(), populated] + [p for p in populated.glob("hpdash.db*")]
    with _read_only(targets):
        result = _attempt(action, populated)
    print(result)
    assert result["error"] == "StorageError", result
    if action == SAVE_DATASET:
        assert "Could not save wine.csv" in result["message"] and "read-only" in result["message"], result
    else:
        assert "catalogue" in result["message"] and str(db) in result["message"], result
        assert (
            "readonly" in result["message"] or "read-only" in result["message"] or "unable to open" in result["message"]
        ), result
    assert _files_fingerprint(populated) == files
    assert _db_fingerprint(db) == dump
    from hpdash.store import Catalogue

    assert Catalogue().get_note("some-study") == "original note"
