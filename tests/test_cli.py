"""The command line, run as a real subprocess (`python -m hpdash ...`)."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def hpdash(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPDASH_DATA_DIR": str(env_dir)}
    env.pop("HPDASH_STORAGE", None)
    return subprocess.run([sys.executable, "-m", "hpdash", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


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
    missing = hpdash("export", "--experiment", "nope", "--format", "html", "--out", str(tmp_path / "x.html"), env_dir=data)
    assert missing.returncode == 2 and "No experiment with ID 'nope'" in missing.stderr
    spec = tmp_path / "s.yaml"
    spec.write_text("name: e\ndataset: sklearn:iris\ntarget: target\nmodel: k_nearest_neighbors\nn_trials: 3\n")
    bad = hpdash("compare", str(spec), "--strategies", "grid,magic", env_dir=data)
    assert bad.returncode == 2 and "Unknown strategy 'magic'" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ caps / queue
def _spec_file(tmp_path: Path, name: str = "e", n_trials: int = 3) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\ndataset: sklearn:iris\ntarget: target\nmodel: k_nearest_neighbors\n"
                    f"n_trials: {n_trials}\ncv:\n  folds: 3\n")
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
