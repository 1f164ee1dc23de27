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
