"""The command line, run as a real subprocess (`python -m hpdash ...`)."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from hpdash.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]


def hpdash(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPDASH_DATA_DIR": str(env_dir)}
    env.pop("HPDASH_STORAGE", None)
    return subprocess.run(
        [sys.executable, "-m", "hpdash", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


@pytest.mark.slow
def test_run_example_then_inspect(tmp_path: Path) -> None:
    """Acceptance: `run` on a bundled dataset ends with COMPLETE trials that plain Optuna reads."""
    spec = yaml.safe_load((ROOT / "examples" / "iris-random-forest-tpe.yaml").read_text())
    spec["n_trials"] = 6
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    data = tmp_path / "data"
    run = hpdash("run", str(spec_path), env_dir=data)
    assert run.returncode == 0, run.stderr
    assert "best CV" in run.stdout and "holdout" in run.stdout

    study = optuna.load_study(study_name=spec["name"], storage=f"sqlite:///{data / 'hpdash.db'}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 6 and all(len(t.user_attrs["fold_scores"]) == 5 for t in complete)

    listed = hpdash("list", env_dir=data)
    assert spec["name"] in listed.stdout and "finished" in listed.stdout
    shown = hpdash("show", spec["name"], env_dir=data)
    assert shown.returncode == 0 and "fold scores" in shown.stdout
    out = tmp_path / "trials.csv"
    exported = hpdash("export", spec["name"], "--format", "csv", "--out", str(out), env_dir=data)
    assert exported.returncode == 0 and out.read_text().count("\n") >= 7
    refit = hpdash("refit", spec["name"], env_dir=data)
    assert refit.returncode == 0 and "holdout accuracy" in refit.stdout


def test_dataset_check_ok_and_rejected(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(40)))
    ok = hpdash("dataset", "check", str(good), "--target", "label", env_dir=tmp_path / "d")
    assert ok.returncode == 0, ok.stderr
    assert "classification" in ok.stdout

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    bad = hpdash("dataset", "check", str(empty), "--target", "label", env_dir=tmp_path / "d")
    assert bad.returncode == 2
    assert "empty" in bad.stderr.lower() and "Traceback" not in bad.stderr
    assert not (tmp_path / "d" / "datasets").exists() or not any((tmp_path / "d" / "datasets").iterdir())


def test_invalid_spec_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ndataset: sklearn:iris\ntarget: target\nmodel: random_forest\nstrategy: magic\n")
    result = hpdash("run", str(spec), env_dir=tmp_path / "d")
    assert result.returncode == 2
    assert "Unknown strategy 'magic'" in result.stderr and "Traceback" not in result.stderr


def test_unknown_study_exits_2(tmp_path: Path) -> None:
    result = hpdash("show", "nope", env_dir=tmp_path / "d")
    assert result.returncode == 2 and "No study named 'nope'" in result.stderr


# ------------------------------------------------------------------------------ compare / export
from experiment_data import NAME, REPEATS, STRATEGIES, shared_experiment  # noqa: E402


@pytest.mark.slow
def test_compare_runs_headless_and_prints_summary_and_verdict() -> None:
    """`python -m hpdash compare SPEC --strategies grid,random,tpe --repeats 2` (the shared run)."""
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    out = exp.stdout
    assert f"experiment: {NAME}" in out and "metric:     accuracy (maximize)" in out
    for label in ("Grid", "Random", "TPE"):
        assert label in out
    assert "best CV (mean ± std)" in out and "trials (mean ± std)" in out and "Holm" in out
    assert "verdict:    No significant difference with 2 seeds" in out
    assert "seeded random permutation" in out  # how the grid is ordered and cut
    assert f"{len(STRATEGIES) * REPEATS} studies" in exp.stderr


@pytest.mark.slow
def test_export_experiment_and_study(tmp_path: Path) -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    csv_out, html_out, study_html = tmp_path / "e.csv", tmp_path / "e.html", tmp_path / "s.html"
    done = hpdash("export", "--experiment", NAME, "--format", "csv", "--out", str(csv_out), env_dir=exp.data_dir)
    assert done.returncode == 0, done.stderr
    assert csv_out.read_text().splitlines()[0].startswith("study,strategy,seed,number,state,value")
    done = hpdash("export", "--experiment", NAME, "--format", "html", "--out", str(html_out), env_dir=exp.data_dir)
    assert done.returncode == 0, done.stderr
    assert "<h2>Verdict</h2>" in html_out.read_text(encoding="utf-8")
    done = hpdash("export", f"{NAME}-tpe-s1", "--format", "html", "--out", str(study_html), env_dir=exp.data_dir)
    assert done.returncode == 0, done.stderr
    assert f"<title>Study {NAME}-tpe-s1</title>" in study_html.read_text(encoding="utf-8")


def test_export_and_compare_user_errors(tmp_path: Path) -> None:
    data = tmp_path / "d"
    neither = hpdash("export", "--out", str(tmp_path / "x.csv"), env_dir=data)
    assert neither.returncode == 2 and "--experiment" in neither.stderr and "Traceback" not in neither.stderr
    missing = hpdash(
        "export", "--experiment", "nope", "--format", "html", "--out", str(tmp_path / "x.html"), env_dir=data
    )
    assert missing.returncode == 2 and "No experiment with ID 'nope'" in missing.stderr
    spec = tmp_path / "s.yaml"
    spec.write_text("name: e\ndataset: sklearn:iris\ntarget: target\nmodel: k_nearest_neighbors\nn_trials: 3\n")
    bad = hpdash("compare", str(spec), "--strategies", "grid,magic", env_dir=data)
    assert bad.returncode == 2 and "Unknown strategy 'magic'" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ caps / queue
def _spec_file(tmp_path: Path, name: str = "e", n_trials: int = 3) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\ndataset: sklearn:iris\ntarget: target\nmodel: k_nearest_neighbors\n"
        f"n_trials: {n_trials}\ncv:\n  folds: 3\n"
    )
    return spec


def test_compare_refuses_workers_or_parallel_over_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2 with the cap, what was asked and the fix; no study and no experiment created."""
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "2")
    data = tmp_path / "d"
    spec = _spec_file(tmp_path)
    many = hpdash("compare", str(spec), "--strategies", "random", "--repeats", "1", "--workers", "3", env_dir=data)
    assert many.returncode == 2 and "Traceback" not in many.stderr
    assert "3 worker processes per study is over this machine's limit of 2 (HPDASH_MAX_WORKERS" in many.stderr
    wide = hpdash("compare", str(spec), "--strategies", "random", "--repeats", "1", "--parallel", "3", env_dir=data)
    assert wide.returncode == 2 and "Use --parallel 2 or fewer" in wide.stderr
    listed = hpdash("list", env_dir=data)
    assert "No studies yet" in listed.stdout
    assert hpdash("export", "--experiment", "e", "--out", str(tmp_path / "x.csv"), env_dir=data).returncode == 2


def test_compare_refuses_an_experiment_over_the_study_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_STUDIES", "2")
    data = tmp_path / "d"
    done = hpdash("compare", str(_spec_file(tmp_path)), "--strategies", "random,tpe", "--repeats", "2", env_dir=data)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "4 studies, over the limit of 2 studies per experiment (HPDASH_MAX_EXPERIMENT_STUDIES)" in done.stderr
    assert "No studies yet" in hpdash("list", env_dir=data).stdout


def test_queue_of_an_unknown_experiment_exits_2(tmp_path: Path) -> None:
    done = hpdash("queue", "nope", env_dir=tmp_path / "d")
    assert done.returncode == 2 and "No experiment with ID 'nope'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_queue_runs_a_created_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hpdash queue ID` runs the studies of an experiment created earlier, records itself
    in the catalogue and ends when they are done."""
    from hpdash import experiments
    from hpdash.spec import load_spec

    data = tmp_path / "d"
    monkeypatch.setenv("HPDASH_DATA_DIR", str(data))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "1")
    experiments.create_experiment(load_spec(_spec_file(tmp_path, "q", 2)), "random", 2)
    done = hpdash("queue", "q", "--workers", "1", env_dir=data)
    assert done.returncode == 0, done.stderr
    assert "at most 1 studies at once" in done.stderr and "done: 2 worker(s) ended, 0 with an error" in done.stderr
    progress = experiments.experiment_progress("q")
    assert progress.finished == 2 and not progress.queue_alive
    assert progress.queue["ended"] and progress.queue["error"] is None and progress.queue["parallel"] == 1
    again = hpdash("queue", "q", env_dir=data)  # nothing left to start: ends at once
    assert again.returncode == 0 and "q-random-s0: not started, it is already finished" in again.stderr


# ------------------------------------------------------------------------------ run: one process, exit codes
def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HPDASH_DATA_DIR": str(data), **extra}
    env.pop("HPDASH_STORAGE", None)
    return env


def _write_spec(tmp_path: Path, **spec) -> Path:
    base = {
        "name": "cli",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": "random",
        "n_trials": 3,
        "cv": {"folds": 3},
    }
    path = tmp_path / f"{spec.get('name', 'cli')}.yaml"
    path.write_text(yaml.safe_dump({**base, **spec}))
    return path


def _study(data: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{data / 'hpdash.db'}")


@pytest.mark.slow
def test_run_with_one_worker_runs_the_trials_in_its_own_process(tmp_path: Path) -> None:
    """No second Python for one worker: every trial and the worker record are the `hpdash run`
    process's own; without a terminal the progress is plain lines and the summary follows."""
    data = tmp_path / "d"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpdash", "run", str(_write_spec(tmp_path, name="solo"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(data),
        cwd=ROOT,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "\r" not in err and "[##############################] 3/3 best" in err
    assert "state:      finished" in out and "holdout" in out
    study = _study(data, "solo")
    workers = [v for k, v in study.user_attrs.items() if k.startswith("hpdash.worker.")]
    assert [w["pid"] for w in workers] == [proc.pid] and workers[0]["status"] == "done"
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in study.get_trials()} == {str(proc.pid)}
    assert not (data / "workers").exists() or not list((data / "workers").iterdir())  # no worker log


@pytest.mark.slow
def test_run_with_two_workers_starts_worker_processes(tmp_path: Path) -> None:
    data = tmp_path / "d"
    spec = _write_spec(tmp_path, name="duo", n_trials=4, workers=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpdash", "run", str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(data, HPDASH_MAX_WORKERS="2"),
        cwd=ROOT,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    study = _study(data, "duo")
    pids = {v["pid"] for k, v in study.user_attrs.items() if k.startswith("hpdash.worker.")}
    assert len(pids) == 2 and proc.pid not in pids
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4


FAILING_SPACE = {
    "solver": {"type": "categorical", "choices": ["lbfgs"]},
    "penalty": {"type": "categorical", "choices": ["l1"]},
    "C": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
}


def _no_study(data: Path, name: str) -> bool:
    db = data / "hpdash.db"
    return not db.exists() or name not in optuna.get_all_study_names(f"sqlite:///{db}")


def test_run_refuses_a_model_that_fails_its_smoke_fit_and_writes_nothing(tmp_path: Path) -> None:
    """A space every trial of which would fail (lbfgs cannot fit an l1 penalty) is refused by
    the pre-launch smoke fit: exit 2, a message naming the model, the error and the fix, and no
    study in the storage."""
    data = tmp_path / "d"
    spec = _write_spec(tmp_path, name="refused", model="logistic_regression", n_trials=12, space=FAILING_SPACE)
    run = hpdash("run", str(spec), env_dir=data)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert "Model 'logistic_regression' failed its trial fit before launch" in run.stderr
    assert "l1" in run.stderr and "Change its search space, pick another metric or remove the model." in run.stderr
    assert _no_study(data, "refused")


#: A random forest whose smoke fit (the first choice: 1 tree) takes milliseconds, while every
#: other choice (3,000+ trees) runs past a 0.5 s trial_timeout: the study passes the checks
#: before launch and every trial fails in the worker, killed at the limit.
TIMED_OUT_SPACE = {"n_estimators": {"type": "categorical", "choices": [1, *range(3000, 3200)]}}


@pytest.mark.slow
def test_run_exits_1_when_no_trial_completed_and_show_lists_the_reasons(tmp_path: Path) -> None:
    """Every trial fails in the worker: the study stops after the first 10 as `failed`, `run`
    exits 1 and says why, and `show` prints each failure reason with its count."""
    data = tmp_path / "d"
    spec = _write_spec(
        tmp_path, name="doomed", model="random_forest", n_trials=12, trial_timeout=0.5, space=TIMED_OUT_SPACE
    )
    run = hpdash("run", str(spec), env_dir=data)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "No trial completed: The first 10 trial(s) all failed, so the study was stopped." in run.stderr
    assert "state:      failed" in run.stdout and "0 complete, 0 pruned, 10 failed" in run.stdout
    assert "failures:   10 x Stopped at the trial time limit: this trial ran for 0.5 s" in run.stdout
    assert "best CV:    - (no trial completed)" in run.stdout
    study = _study(data, "doomed")
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.FAIL) == 10 and states.count(optuna.trial.TrialState.WAITING) == 2
    # The seeded sampler drew no 1-tree forest among them (the only choice that fits in time).
    assert all(t.params["n_estimators"] >= 3000 for t in study.get_trials() if t.params)
    shown = hpdash("show", "doomed", env_dir=data)
    assert shown.returncode == 0, shown.stderr
    assert "failures:   10 x Stopped at the trial time limit" in shown.stdout and "Raise trial_timeout" in shown.stdout
    assert "error:      The first 10 trial(s) all failed" in shown.stdout


@pytest.mark.slow
def test_ctrl_c_stops_the_run_at_a_fold_and_resume_finishes_it(tmp_path: Path) -> None:
    """SIGINT to `hpdash run` (one worker, in its own process): the running trial stops at its
    next fold and is given back, the exit code is 130, the study is `stopped`, and `resume`
    finishes the exact budget."""
    import signal
    import time

    data = tmp_path / "d"
    spec = _write_spec(
        tmp_path,
        name="interrupted",
        model="random_forest",
        n_trials=12,
        space={"n_estimators": {"type": "int", "low": 50, "high": 60}},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpdash", "run", str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(data),
        cwd=ROOT,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        db = data / "hpdash.db"
        # hpdash's open_storage, not Optuna's: it may be creating the tables of this new file
        if db.exists() and "interrupted" in optuna.get_all_study_names(
            open_storage(f"sqlite:///{db}", heartbeat=False)
        ):
            if _study(data, "interrupted").get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Stopping: the running trial ends at its next fold" in err and "Traceback" not in err
    assert "failed with" not in err  # a stop is no failure: Optuna's warning for it is dropped
    study = _study(data, "interrupted")
    assert study.user_attrs["hpdash.state"] == "stopped" and study.user_attrs["hpdash.stop"] is True
    states = [t.state for t in study.get_trials()]
    complete = states.count(optuna.trial.TrialState.COMPLETE)
    assert 1 <= complete < 12 and complete + states.count(optuna.trial.TrialState.WAITING) == 12
    # the cut trial is failed with the stop as its reason, and its slot given back
    assert all(
        t.user_attrs.get("fail_reason", "").startswith("stopped by the user")
        for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    )
    resumed = hpdash("resume", "interrupted", env_dir=data)
    assert resumed.returncode == 0, resumed.stderr
    assert len(_study(data, "interrupted").get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 12


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`hpdash list | head` where head has gone: no BrokenPipeError traceback, the exit code a
    shell gives a command ended by SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hpdash", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path / "d"),
            cwd=ROOT,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr and done.stderr == ""


def test_progress_without_a_terminal_prints_a_line_at_most_every_5_s(data_dir, capsys, monkeypatch) -> None:
    """`hpdash run` into a log file: plain lines (no carriage return), none more often than
    every 5 s however often a trial ends, and always a last one."""
    from hpdash import cli, runner
    from hpdash.spec import parse_spec

    study = runner.create_study(
        parse_spec(
            {
                "name": "p",
                "dataset": "sklearn:iris",
                "target": "target",
                "model": "k_nearest_neighbors",
                "n_trials": 3,
                "cv": {"folds": 3},
            }
        )
    )
    clock = [1000.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    progress = cli._Progress(study, tty=False)
    for step in (1.0, 2.0, 2.5, 1.0):  # trials ending after 1, 3, 5.5 and 6.5 s
        clock[0] += step
        progress()
    progress.end()
    lines = capsys.readouterr().err.split("\n")
    assert lines == ["[..............................] 0/3 best -"] * 2 + [""], lines


def test_values_print_as_dash_never_nan() -> None:
    import pandas as pd

    from hpdash import cli

    assert [cli._fmt(v) for v in (None, float("nan"), 0.5, 3)] == ["-", "-", "0.5000", "3"]
    assert cli._missing(float("nan")) and cli._missing(None) and not cli._missing("tpe")
    assert "NaN" not in pd.DataFrame({"p": [float("nan"), 0.5]}).to_string(index=False, na_rep="-")


@pytest.mark.slow
def test_compare_prints_no_nan() -> None:
    """Where the HTML report shows "-" (no test, no winner), the terminal does too."""
    import re

    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    assert not re.search(r"\bnan\b", exp.stdout, re.IGNORECASE), exp.stdout
    assert "favours" in exp.stdout


@pytest.mark.slow
def test_run_warns_when_the_start_up_phase_covers_the_budget(tmp_path: Path) -> None:
    """TPE with 3 trials and 3 start-up trials is random search: `hpdash run` says so, with
    the fix, before the trials (and still runs them)."""
    data = tmp_path / "d"
    spec = _write_spec(tmp_path, name="tpe-random", strategy="tpe", startup_trials=3)
    run = hpdash("run", str(spec), env_dir=data)
    assert run.returncode == 0, run.stderr
    assert (
        "warning: TPE would run 3 trial(s) at random: startup_trials (3 random trials) covers the whole budget of 3"
    ) in run.stderr
    assert run.stderr.index("warning: TPE") < run.stderr.index("Study 'tpe-random'")


# ------------------------------------------------------------------------------ compare --split
def test_compare_split_flag_is_passed_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`--split shared|per_repeat` (default per_repeat) reaches ``create_experiment``; any other
    value is refused by the parser with the choices; the help says what each one means."""
    from hpdash import cli, experiments
    from hpdash.errors import SpecError

    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    seen: list[str] = []

    def fake_create(spec, strategies, repeats, storage, split="per_repeat"):
        seen.append(split)
        raise SpecError("stop here")

    monkeypatch.setattr(experiments, "create_experiment", fake_create)
    spec = str(_spec_file(tmp_path))
    assert cli.main(["compare", spec, "--strategies", "random", "--split", "shared"]) == 2
    assert cli.main(["compare", spec, "--strategies", "random"]) == 2
    assert cli.main(["compare", spec, "--strategies", "random", "--split", "per_repeat"]) == 2
    assert seen == ["shared", "per_repeat", "per_repeat"]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", spec, "--split", "same"])
    assert exit_.value.code == 2
    assert "invalid choice: 'same' (choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--split {per_repeat,shared}" in text
    assert "per_repeat (default) draws a new holdout, new CV folds and new model seeds for every repeat" in text
    assert "shared keeps the spec's split_seed for every repeat, so only the sampler's seed varies" in text


@pytest.mark.slow
def test_compare_with_a_shared_split_runs_every_repeat_on_one_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpdash import experiments

    data = tmp_path / "d"
    done = hpdash(
        "compare", str(_spec_file(tmp_path, "sh", 2)), "--strategies", "random", "--repeats", "2",
        "--split", "shared", env_dir=data,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "data split: the same split for every repeat (only sampler luck varies)" in done.stderr
    monkeypatch.setenv("HPDASH_DATA_DIR", str(data))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    specs = experiments.study_specs(["sh-random-s0", "sh-random-s1"])
    assert [(specs[n]["split_seed"], specs[n]["sampler_seed"]) for n in ("sh-random-s0", "sh-random-s1")] == [
        (0, 0),
        (0, 1),
    ]
    assert experiments.experiment_split("sh") == "shared"


# ------------------------------------------------------------------------------ export --format json, compare's output
def _json_of(text: str) -> dict:
    import json

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_export_experiment_json_holds_the_library_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hpdash export --experiment NAME --format json --output FILE`: one document that `json.loads`
    reads (no NaN token), whose every number is the library's computation on the same studies."""
    import numpy as np
    from experiment_data import N_TRIALS

    from hpdash import compare, statistics

    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    out = tmp_path / "e.json"
    done = hpdash(
        "export", "--experiment", NAME, "--format", "json", "--output", str(out), "--no-extras", env_dir=exp.data_dir
    )
    assert done.returncode == 0, done.stderr
    doc = _json_of(out.read_text(encoding="utf-8"))
    comparison = compare.load_experiment_comparison(NAME, exp.storage)
    a = compare.analyse_comparison(comparison)
    assert doc["experiment"] == NAME and doc["design"]["strategies"] == list(STRATEGIES)
    assert doc["design"]["seeds"] == {s: list(range(REPEATS)) for s in STRATEGIES} and doc["design"]["comparable"]
    runs = a.runs.set_index("study")
    for r in doc["runs"]:
        assert r["best"] == pytest.approx(runs.loc[r["study"], "best"])
        assert r["holdout"] == pytest.approx(runs.loc[r["study"], "holdout"])
    pairs = a.pairs.set_index(["metric", "a", "b"])
    for t in doc["pairwise_tests"]["tests"]:
        row = pairs.loc[(t["metric"], t["a"], t["b"])]
        assert (t["test"], t["p"], t["p_holm"]) == (row["test"], pytest.approx(row["p"]), pytest.approx(row["p_holm"]))
    frame = comparison.frame
    pool = frame.loc[(frame["strategy"] == "random") & (frame["state"] == "COMPLETE"), "value"].to_numpy(float)
    curve = statistics.expected_best_curve(pool, "maximize")
    got = [p["expected_best"] for p in doc["random_search_expected_best"]["curve"]]
    assert got == pytest.approx(curve[: len(got)].tolist()) and len(got) == N_TRIALS
    optimum = float(frame.loc[frame["state"] == "COMPLETE", "value"].max())
    for row in doc["normalised_scores"]["strategies"]:
        bests = runs.loc[runs["strategy"] == row["strategy"], "best"].to_numpy()
        scores = statistics.normalised_score(bests, optimum, curve[N_TRIALS - 1], "maximize")
        assert row["mean"] == pytest.approx(float(np.mean(scores)))
    matrix = runs.reset_index().pivot(index="seed", columns="strategy", values="best")[list(STRATEGIES)].to_numpy()
    res = statistics.friedman_nemenyi(matrix, "maximize")
    friedman = doc["friedman_nemenyi"]
    assert [friedman["average_ranks"][s] for s in STRATEGIES] == pytest.approx(list(res.average_ranks))
    assert friedman["p_value"] == pytest.approx(res.p_value) and friedman["critical_difference"] == pytest.approx(
        res.critical_difference
    )
    assert doc["runtime_to_target_ecdf"]["target"] == pytest.approx(a.target)
    assert doc["ties"] is None and doc["winners_curse"] is None  # --no-extras
    # the same document on stdout, and a hand-picked set with --studies
    stdout = hpdash("export", "--experiment", NAME, "--format", "json", "--no-extras", env_dir=exp.data_dir)
    assert stdout.returncode == 0 and _json_of(stdout.stdout)["runs"] == doc["runs"]
    picked = [f"{NAME}-grid-s0", f"{NAME}-random-s0", f"{NAME}-tpe-s0"]
    chosen = hpdash("export", "--studies", *picked, "--format", "json", "--no-extras", env_dir=exp.data_dir)
    assert chosen.returncode == 0, chosen.stderr
    hand = _json_of(chosen.stdout)
    assert hand["title"] == "Selected studies" and [r["study"] for r in hand["runs"]] == picked


@pytest.mark.slow
def test_export_json_fills_the_tie_sets_and_bias_corrected_scores() -> None:
    """With the extras (``hpdash.ties``, ``hpdash.winners_curse``): each study's tie set and its
    BBC-CV estimate, as those modules compute them (fewer bootstraps here, for time)."""
    from hpdash import compare, report, ties, winners_curse

    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    comparison = compare.load_experiment_comparison(NAME, exp.storage)
    doc = _json_of(report.experiment_json(comparison, n_bootstrap=30))
    study = f"{NAME}-tpe-s0"
    n_train, n_test = ties.fold_sizes(comparison.studies[study])
    mine = ties.study_ties(
        comparison.frame.loc[comparison.frame["study"] == study], n_train, n_test, comparison.direction
    )
    assert [t["number"] for t in doc["ties"][study]["tied"]] == [t.number for t in mine.tied]
    table = winners_curse.winners_curse_by_strategy(
        [comparison.studies[r.study] for r in comparison.runs], n_bootstrap=30
    )
    by_study = {r["study"]: r for r in doc["winners_curse"]["studies"]}
    for row in table.to_dict(orient="records"):
        if row["reason"] is None:
            assert by_study[row["study"]]["corrected"] == pytest.approx(row["corrected"])


def test_export_json_user_errors(tmp_path: Path) -> None:
    data = tmp_path / "d"
    study = hpdash("export", "some-study", "--format", "json", env_dir=data)
    assert study.returncode == 2 and "JSON export is for a comparison" in study.stderr
    both = hpdash("export", "--experiment", "e", "--studies", "a", "b", "--format", "json", env_dir=data)
    assert both.returncode == 2 and "only one" in both.stderr
    html = hpdash("export", "--experiment", "e", "--format", "html", env_dir=data)
    assert html.returncode == 2 and "--out FILE" in html.stderr and "Traceback" not in html.stderr
    one = hpdash("export", "--studies", "a", "--format", "json", env_dir=data)
    assert one.returncode == 2 and "Traceback" not in one.stderr


def test_compare_prints_the_banner_after_the_metric_line_then_the_design(tmp_path: Path, capsys) -> None:
    from test_compare import _two_tables

    from hpdash import cli, compare

    storage = f"sqlite:///{tmp_path / 's.db'}"
    comparison = compare.load_studies_comparison(_two_tables(storage), storage)
    cli._print_comparison(comparison, compare.analyse_comparison(comparison))
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("metric:     accuracy (maximize)")
    assert lines[2] == comparison.banner and lines[2].startswith("Not comparable: dataset: SHA-256")
    assert lines[3] == f"design:     {compare.design_text(comparison, compare.analyse_comparison(comparison))}"
    assert any(line.startswith("ranks:      Not comparable") for line in lines)


def test_compare_polls_every_study_in_one_batched_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """While the experiment runs, `hpdash compare` reads the studies' states with one
    ``experiment_progress`` call per poll, never ``runner.study_status`` study by study."""
    from hpdash import cli, experiments, runner

    monkeypatch.setenv("HPDASH_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    runs = [experiments.ExperimentRun(f"e-random-s{k}", "random", k) for k in range(3)]
    fake = type("Exp", (), {"name": "e", "strategies": ["random"], "repeats": 3, "runs": runs})()
    monkeypatch.setattr(experiments, "create_experiment", lambda *a, **k: fake)
    reads: list[str] = []

    def progress(name: str, storage: str | None = None, **_: object) -> experiments.ExperimentProgress:
        reads.append(name)
        states = {"e-random-s0": "finished", "e-random-s1": "running", "e-random-s2": "queued"}
        return experiments.ExperimentProgress(name, states, {}, None, True)

    def one_by_one(*_: object, **__: object) -> None:
        raise AssertionError("study_status called study by study")

    def run_experiment(name, storage, workers, parallel, poll):
        poll()
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "experiment_progress", progress)
    monkeypatch.setattr(runner, "study_status", one_by_one)
    monkeypatch.setattr(experiments, "run_experiment", run_experiment)
    monkeypatch.setattr(experiments, "stop_experiment", lambda *a, **k: None)
    assert cli.main(["compare", str(_spec_file(tmp_path)), "--strategies", "random", "--repeats", "3"]) == 130
    assert reads == ["e"]
    assert "1/3 studies finished (1 queued · 1 running · 1 finished)" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_prints_the_design_and_the_new_statistics() -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    lines = exp.stdout.splitlines()
    assert lines[1].startswith("metric:") and lines[2].startswith("design:     strategies: Grid, Random, TPE")
    assert "normalised score (Bayesmark)" in exp.stdout and "Normalised score (Bayesmark): 0 = " in exp.stdout
    assert "ranks:      Average ranks over 2 seeds" in exp.stdout and "Friedman test, Nemenyi post-hoc" in exp.stdout


def test_a_spec_that_expands_past_the_bound_is_refused_before_any_study(tmp_path: Path) -> None:
    """0.9 MB of YAML whose aliases share one long string 625 times: `hpdash run` names the
    bound and the fix, exits non-zero and creates nothing."""
    text = "name: bomb\ndataset: sklearn:iris\ntarget: target\nmodel: decision_tree\nspace:\n"
    text += "  criterion:\n    type: categorical\n    choices: &L [&s " + "x" * 900_000 + ", "
    text += ", ".join(["*s"] * 24) + "]\n"
    text += "".join(f"  h{i}:\n    type: categorical\n    choices: *L\n" for i in range(24))
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    result = hpdash("run", str(path), env_dir=tmp_path / "data")
    assert result.returncode != 0
    assert "once its YAML aliases" in result.stderr and "Write each value out once" in result.stderr
    assert not (tmp_path / "data" / "hpdash.db").exists() or not optuna.get_all_study_names(
        f"sqlite:///{tmp_path / 'data' / 'hpdash.db'}"
    )
