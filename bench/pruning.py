"""Pruning: a 60-trial TPE study of a slow-fitting model, with fold-level pruning
(median, Wilcoxon) against none, same seed, one worker each. Wall time from launch to exit.

hpdash's pruners (hpdash/strategies.py): MedianPruner(n_startup_trials=5, n_warmup_steps=1)
and WilcoxonPruner(p_threshold=0.1, n_startup_steps=2). With 5 folds the Wilcoxon test cannot
reach p < 0.1 before 4 paired fold scores (one-sided exact minimum p is 1/8 with 3, 1/16 with
4), so it can only skip the last fold: at most a 20% cut per pruned trial."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import optuna

from bench.common import Report, fmt_s

# Histogram gradient boosting (about 1 s per 5-fold trial here) with a learning rate range
# whose low end is hopeless (majority-class accuracy): the kind of region pruning is for.
SPEC = {"dataset": "sklearn:breast_cancer", "target": "target", "model": "hist_gradient_boosting",
        "strategy": "tpe", "n_trials": 60, "cv": {"folds": 5}, "seed": 0,
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
                  "max_iter": {"type": "int", "low": 30, "high": 150},
                  "max_depth": {"type": "int", "low": 2, "high": 8}}}


def _run(workdir: Path, pruner: str, n_trials: int) -> dict[str, Any]:
    from hpdash import runner
    from hpdash.spec import parse_spec

    name = f"prune-{pruner}"
    url = f"sqlite:///{workdir / (name + '.db')}"
    spec = parse_spec({**SPEC, "name": name, "pruner": pruner, "n_trials": n_trials})
    runner.create_study(spec, url)
    start = time.perf_counter()
    codes = runner.wait_for(runner.launch_workers(name, url, 1), interval=0.05)
    wall = time.perf_counter() - start
    assert codes == [0], f"worker failed: {codes}"
    study = runner.load_study(name, url)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {"wall": wall, "best": study.best_value,
            "pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states)}


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    os.environ["HPDASH_DATA_DIR"] = str(workdir / "data")
    n = 30 if quick else 60
    base = _run(workdir, "none", n)
    report.notes.append(f"pruning, no pruner: {n} trials in {base['wall']:.1f} s, best CV "
                        f"{base['best']:.4f}")
    for pruner in ("median", "wilcoxon"):
        r = _run(workdir, pruner, n)
        cut = 1 - r["wall"] / base["wall"]
        gap = (base["best"] - r["best"]) / abs(base["best"])
        report.add(f"pruning {pruner}, {n}-trial TPE ({r['pruned']} pruned)", fmt_s(r["wall"]),
                   f"{fmt_s(base['wall'])} no pruner", f"{cut:.0%} less time",
                   ">= 30% less", cut >= 0.30)
        report.add(f"pruning {pruner}: best CV {r['best']:.4f} vs {base['best']:.4f}",
                   f"{r['best']:.4f}", f"{base['best']:.4f}", f"{gap:+.2%} worse",
                   "<= 0.5% worse", gap <= 0.005)
