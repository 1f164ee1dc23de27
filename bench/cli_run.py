"""Whole-process ``hpdash run`` against a plain ``GridSearchCV`` script (issue 13).

Both sides run as fresh processes with no terminal (output to a pipe), on the same generated
700-row table (12 numeric columns, one 4-level categorical, a yes/no label), the same 6-point
random-forest grid (``n_estimators`` 60 or 120 x ``max_depth`` 4, 8 or unlimited), the same
holdout (20%, stratified, seed 0) and the same 5 stratified folds, and both refit the best
point on the training part, score the holdout once and save the model:

- A: ``python -m hpdash run SPEC`` with one worker: start-up and imports, reading and checking
  the table, creating the study in the SQLite storage, the 6 trials, the refit, the summary;
- B: ``python bench/gridsearch_script.py DATA OUT``: start-up and imports, reading the table,
  ``GridSearchCV(n_jobs=1, refit=True)``, the holdout score, saving the model.

They alternate in one run (B A B A ... B), so a drift in the machine's speed hits both, and
each A is divided by the mean of the B just before and just after it; the target is on the
median of those ratios (<= 1.10). Both sides' CV scores and holdout scores are compared: the
ratio means something only when they did the same work.

The storage is created once beforehand (``hpdash init``, as ``make run`` does); each run adds
a study to it, as a user's runs do.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.common import Report, completed_value, fmt_s

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.10
N_ROWS = 700
#: The hpdash side of the comparison; the grid is ``bench/gridsearch_script.py::GRID``.
SPEC = {
    "target": "label",
    "task": "classification",
    "model": "random_forest",
    "strategy": "grid",
    "grid_points": 2,
    "n_trials": None,
    "space": {
        "n_estimators": {"type": "int", "low": 60, "high": 120},
        "max_depth": {"type": "categorical", "choices": [4, 8, None]},
    },
    "cv": {"folds": 5, "repeats": 1},
    "metric": "accuracy",
    "test_size": 0.2,
    "seed": 0,
    "workers": 1,
}


def make_table(path: Path, n_rows: int = N_ROWS) -> Path:
    """A reproducible classification table: 12 numeric features (6 informative), a 4-level
    categorical that carries some signal, a yes/no label; a few missing values."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows, n_features=12, n_informative=6, n_redundant=2, flip_y=0.05, random_state=0
    )
    frame = pd.DataFrame(X.round(4), columns=[f"x{i}" for i in range(12)])
    rng = np.random.default_rng(0)
    levels = np.array(["north", "south", "east", "west"])
    frame["region"] = np.where(
        rng.random(n_rows) < 0.7, levels[y * 2 + (X[:, 0] > 0)], levels[rng.integers(0, 4, n_rows)]
    )
    frame.loc[rng.random(n_rows) < 0.02, "x3"] = np.nan
    frame["label"] = np.where(y == 1, "yes", "no")
    frame.to_csv(path, index=False)
    return path


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPDASH_")}
    return {**env, "HPDASH_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, done


def _hpdash_scores(url: str, name: str) -> tuple[dict[tuple, float], float]:
    import optuna

    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    scores = {(t.params["n_estimators"], t.params["max_depth"]): completed_value(t) for t in trials}
    return scores, float(study.user_attrs["hpdash.refit"]["holdout_score"])


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    pairs = 2 if quick else 6
    root = workdir / "cli-run"
    root.mkdir(parents=True, exist_ok=True)
    data = make_table(root / "table.csv")
    data_dir = root / "data"
    env = _env(data_dir)
    subprocess.run([sys.executable, "-m", "hpdash", "init"], check=True, env=env, cwd=REPO, capture_output=True)
    url = f"sqlite:///{data_dir / 'hpdash.db'}"

    def baseline(i: int) -> dict[str, Any]:
        out = root / f"gs-{i}.json"
        wall, _ = _timed([sys.executable, str(REPO / "bench" / "gridsearch_script.py"), str(data), str(out)], env)
        result = json.loads(out.read_text())
        scores = {(p["n_estimators"], p["max_depth"]): s for p, s in zip(result["points"], result["scores"])}
        return {"wall": wall, "scores": scores, "holdout": result["holdout"]}

    def hpdash(i: int) -> dict[str, Any]:
        name = f"bench-run-{i}"
        spec_path = root / f"{name}.yaml"
        spec_path.write_text(yaml.safe_dump({**SPEC, "name": name, "dataset": str(data)}, sort_keys=False))
        wall, _ = _timed([sys.executable, "-m", "hpdash", "run", str(spec_path)], env)
        scores, holdout = _hpdash_scores(url, name)
        return {"wall": wall, "scores": scores, "holdout": holdout}

    gs = [baseline(0)]
    runs = []
    for i in range(pairs):
        runs.append(hpdash(i))
        gs.append(baseline(i + 1))
        runs[-1]["baseline"] = (gs[-2]["wall"] + gs[-1]["wall"]) / 2
    reference = gs[0]
    same = all(
        set(r["scores"]) == set(reference["scores"])
        and all(np.isclose(r["scores"][k], reference["scores"][k]) for k in reference["scores"])
        and np.isclose(r["holdout"], reference["holdout"])
        for r in runs
    )
    wall = statistics.median(r["wall"] for r in runs)
    gs_wall = statistics.median(g["wall"] for g in gs)
    ratio = statistics.median(r["wall"] / r["baseline"] for r in runs)
    report.add(
        f"hpdash run, 6-point RF grid, {N_ROWS} rows, 1 worker, no terminal (scores == GridSearchCV: {same})",
        fmt_s(wall),
        f"{fmt_s(gs_wall)} GridSearchCV(n_jobs=1, refit=True) script",
        f"{ratio:.2f}x",
        f"<= {TARGET_RATIO:.2f}x",
        ratio <= TARGET_RATIO and same,
    )
    report.notes.append(
        "hpdash run against the mean of the GridSearchCV script runs just before and after it: "
        + ", ".join(f"{r['wall']:.2f}/{r['baseline']:.2f} s" for r in runs)
        + f"; ratio of the medians {wall / gs_wall:.2f}x."
    )


if __name__ == "__main__":  # python -m bench.cli_run [--quick]: this benchmark alone
    import tempfile

    from bench.common import machine

    print(f"hpdash run vs GridSearchCV on {machine()}", flush=True)
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="hpdash-bench-") as tmp:
        run(rep, Path(tmp), quick="--quick" in sys.argv)
    print(rep.table())
    for note in rep.notes:
        print(f"- {note}")
