"""One real experiment, run once per test process by the real CLI and shared read-only.

``python -m hpdash compare`` runs 3 strategies x 2 seeds (k-NN on iris, 3-fold CV, 10 trials)
in real worker processes. Test modules that need an experiment (CLI, report, plots, Compare
page) call ``shared_experiment()``; the first call runs it (about a minute), later calls reuse it.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NAME = "iris-cmp"
STRATEGIES = ("grid", "random", "tpe")
REPEATS = 2
N_TRIALS = 10
SPEC = {
    "name": NAME,
    "dataset": "sklearn:iris",
    "target": "target",
    "model": "k_nearest_neighbors",
    "n_trials": N_TRIALS,
    "cv": {"folds": 3},
    "seed": 0,
    "metric": "accuracy",
}


@dataclass(frozen=True)
class SharedExperiment:
    name: str
    data_dir: Path
    storage: str
    report: Path
    returncode: int
    stdout: str
    stderr: str

    def env(self) -> dict[str, str]:
        env = {**os.environ, "HPDASH_DATA_DIR": str(self.data_dir)}
        env.pop("HPDASH_STORAGE", None)
        return env


@functools.lru_cache(maxsize=1)
def shared_experiment() -> SharedExperiment:
    """Run the experiment with the CLI (once per process) and return where it lives."""
    root = Path(tempfile.mkdtemp(prefix="hpdash-experiment-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = root / "data"
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    report = root / "report.html"
    env = {**os.environ, "HPDASH_DATA_DIR": str(data)}
    env.pop("HPDASH_STORAGE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpdash",
            "compare",
            str(spec),
            "--strategies",
            ",".join(STRATEGIES),
            "--repeats",
            str(REPEATS),
            "--workers",
            "1",
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    return SharedExperiment(
        NAME, data, f"sqlite:///{data / 'hpdash.db'}", report, done.returncode, done.stdout, done.stderr
    )
