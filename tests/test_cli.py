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
