"""hpdash.experiments: S strategies x R seeds, same budget, recorded in the catalogue."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from experiment_data import N_TRIALS, NAME, REPEATS, STRATEGIES, shared_experiment
from optuna.trial import TrialState
from scipy import stats

from hpdash import config, experiments, runner
from hpdash.errors import SpecError
from hpdash.spec import parse_spec
from hpdash.store import Catalogue


def _spec(**change):
    base = {
        "name": "iris-exp",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "n_trials": 6,
        "cv": {"folds": 3},
        "seed": 7,
    }
    return parse_spec({**base, **change})


def test_plan_names_seeds_and_same_budget() -> None:
    specs = experiments.plan_experiment(_spec(), "grid, random,TPE", 3)
    assert [s.name for s in specs] == [
        f"iris-exp-{st}-s{seed}" for st in ("grid", "random", "tpe") for seed in (7, 8, 9)
    ]
    assert {s.n_trials for s in specs} == {6} and {s.cv["folds"] for s in specs} == {3}
    assert [s.strategy for s in specs[:4]] == ["grid", "grid", "grid", "random"]
    assert experiments.parse_strategies(None) == ["grid", "random", "tpe", "gp"]


@pytest.mark.parametrize(
    ("strategies", "repeats", "message"),
    [
        ("grid,magic", 2, "Unknown strategy 'magic'"),
        ("tpe,tpe", 2, "listed twice"),
        (" , ", 2, "at least one strategy"),
        ("tpe", 0, "Repeats must be"),
        ("tpe", 21, "Repeats must be"),
    ],
)
def test_plan_rejects(strategies: str, repeats: int, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        experiments.plan_experiment(_spec(), strategies, repeats)


def test_plan_needs_a_budget() -> None:
    with pytest.raises(SpecError, match="same budget"):
        experiments.plan_experiment(_spec(n_trials=None, strategy="grid"), "grid,random", 2)


def test_grid_notes() -> None:
    cut = experiments.grid_note(
        {"grid_size": 20, "budget": 10, "order": "seeded random permutation", "cut": True}, 10, 3
    )
    assert "20 points, more than the budget of 10" in cut and "seed 3" in cut and "10/20 subset" in cut
    small = experiments.grid_note(
        {"grid_size": 4, "budget": 4, "order": "seeded random permutation", "cut": False}, 10, 0
    )
    assert "fewer than the budget of 10" in small and "stops after 4 trials" in small
    assert "all run once" in experiments.grid_note({"grid_size": 10, "budget": 10, "cut": False}, 10)
    assert experiments.grid_note(None, 10) == ""


def test_budget_in_trials_and_wall_time() -> None:
    b = experiments.experiment_budget(
        _spec(n_trials=10), "grid,random,tpe", 3, per_trial_s=0.5, parallel=2, grid_size=4
    )
    assert b.per_study == {"grid": 4, "random": 10, "tpe": 10}
    assert b.studies == 9 and b.total_trials == (4 + 10 + 10) * 3
    assert b.total_s == pytest.approx(72 * 0.5 / 2)
    assert "9 studies" in b.describe() and "grid: 4 trials/study" in b.describe() and "18 s" in b.describe()


def test_create_records_studies_and_catalogue(data_dir) -> None:
    exp = experiments.create_experiment(_spec(n_trials=30), "grid,random", 2)
    assert exp.study_names == ["iris-exp-grid-s7", "iris-exp-grid-s8", "iris-exp-random-s7", "iris-exp-random-s8"]
    rows = Catalogue(config.catalogue_path()).experiment_studies("iris-exp")
    assert {(r["study"], r["strategy"], r["seed"]) for r in rows} == {
        ("iris-exp-grid-s7", "grid", 7),
        ("iris-exp-grid-s8", "grid", 8),
        ("iris-exp-random-s7", "random", 7),
        ("iris-exp-random-s8", "random", 8),
    }
    listed = experiments.list_experiments()
    assert (
        listed[0]["name"] == "iris-exp" and listed[0]["strategies"] == ["grid", "random"] and listed[0]["repeats"] == 2
    )
    grid = runner.load_study("iris-exp-grid-s8")
    order = grid.user_attrs[runner.GRID_ATTR]
    # k-NN's default grid (20 points) is smaller than the 30-trial budget: every point once
    assert order["grid_size"] == 20 and order["budget"] == 20 and not order["cut"]
    assert runner.load_spec_of(grid).seed == 8 and runner.load_spec_of(grid).strategy == "grid"
    assert runner.load_study("iris-exp-random-s7").user_attrs[runner.BUDGET_ATTR] == 30
    assert json.loads(Catalogue(config.catalogue_path()).list_experiments()[0]["spec_json"])["n_trials"] == 30


def test_create_refuses_a_used_id_or_study_name(data_dir) -> None:
    experiments.create_experiment(_spec(), "random", 1)
    with pytest.raises(SpecError, match="experiment with ID 'iris-exp' already exists"):
        experiments.create_experiment(_spec(), "tpe", 1)
    runner.create_study(_spec(name="other-tpe-s7", strategy="tpe"))
    with pytest.raises(SpecError, match="'other-tpe-s7' already exists"):
        experiments.create_experiment(_spec(name="other"), "random,tpe", 1)
    assert "other-random-s7" not in optuna.get_all_study_names(runner.open_storage(None, heartbeat=False))
    assert not experiments.experiment_exists("other")


@pytest.mark.slow
def test_compare_strategies_launches_workers(data_dir) -> None:
    """The New study page's helper: create and start; the workers finish the budget."""
    launched = experiments.compare_strategies(_spec(n_trials=3, name="launch"), ["random", "tpe"], repeats=1)
    # One process, the experiment's queue, which starts the studies' workers and waits for them.
    assert launched.name == "launch" and len(launched.processes) == 1
    assert runner.wait_for(launched.processes) == [0]
    for name in launched.experiment.study_names:
        study = runner.load_study(name)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
        assert runner.study_status(study).state == "finished"


@pytest.mark.slow
def test_shared_experiment_ran_every_study_with_the_same_budget() -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    recorded = experiments.load_experiment(NAME, exp.storage)
    assert recorded.strategies == list(STRATEGIES) and recorded.repeats == REPEATS
    assert len(recorded.runs) == len(STRATEGIES) * REPEATS
    for run in recorded.runs:
        study = runner.load_study(run.study, exp.storage)
        assert run.study == f"{NAME}-{run.strategy}-s{run.seed}"
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == N_TRIALS
        assert runner.refit_info(study) is not None  # the runner refit the final model
    grid = runner.load_study(f"{NAME}-grid-s1", exp.storage).user_attrs[runner.GRID_ATTR]
    assert grid["cut"] and grid["budget"] == N_TRIALS and grid["grid_size"] == 20
    # two grid seeds visit different subsets of the grid
    params = [
        {json.dumps(t.params, sort_keys=True) for t in runner.load_study(f"{NAME}-grid-s{s}", exp.storage).get_trials()}
        for s in (0, 1)
    ]
    assert params[0] != params[1]


# ------------------------------------------------------------------------------ caps
def _nothing_created(name: str = "iris-exp") -> None:
    assert not experiments.experiment_exists(name)
    assert optuna.get_all_study_names(runner.open_storage(None, heartbeat=False)) == []


def test_a_comparison_of_tpe_that_would_be_random_search_is_refused(data_dir) -> None:
    """TPE whose start-up phase covers the whole budget draws the same trials as random
    search with the same seeds: the comparison is refused with why and the fix, and neither
    the experiment nor any study is written."""
    spec = _spec(startup_trials=6)  # n_trials 6: every TPE trial would be a random start-up trial
    with pytest.raises(SpecError) as err:
        experiments.create_experiment(spec, "tpe,random", 2)
    message = str(err.value)
    assert "pit TPE and random against each other" in message
    assert "exactly the same random trials with the same seeds" in message
    assert "Set startup_trials below 6 (or leave it unset: the default start-up phase for 6 trials is 1)" in message
    _nothing_created()
    with pytest.raises(SpecError, match="pit random and TPE against each other"):
        experiments.compare_strategies(spec, "random,tpe", 1)
    _nothing_created()
    with pytest.raises(SpecError, match="pit TPE and random"):
        experiments.plan_experiment(spec, "grid,tpe,random", 1)
    # a budget of one trial is random search whatever the start-up phase: no default to offer
    with pytest.raises(SpecError, match="pit TPE and random") as one:
        experiments.plan_experiment(_spec(n_trials=1), "tpe,random", 1)
    assert "a model needs at least one finished trial" in str(one.value) and "Raise n_trials above 1" in str(one.value)
    # with the default start-up phase (1 of 6) TPE's model chooses 5 trials: allowed
    assert [s.strategy for s in experiments.plan_experiment(_spec(), "tpe,random", 1)] == ["tpe", "random"]


def test_a_comparison_with_a_missing_package_is_refused(data_dir, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)  # `import cmaes` fails, as without the package
    with pytest.raises(
        SpecError,
        match=r"`cmaes` package, which is not installed. Install it with "
        r"`pip install -r requirements.txt`",
    ):
        experiments.create_experiment(_spec(), "random,cmaes", 1)
    _nothing_created()


def test_workers_over_the_cap_are_refused_before_anything_is_created(data_dir, monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "2")
    with pytest.raises(
        SpecError,
        match=r"3 worker processes per study is over this machine's limit of 2 "
        r"\(HPDASH_MAX_WORKERS.*Use at most 2 workers per study",
    ):
        experiments.compare_strategies(_spec(), "random,tpe", 1, workers=3)
    _nothing_created()
    with pytest.raises(SpecError, match="3 worker processes per study .* limit of 2"):
        experiments.create_experiment(_spec(workers=3), "random", 1)
    _nothing_created()
    with pytest.raises(SpecError, match="at least 1"):
        experiments.compare_strategies(_spec(), "random", 1, workers=0)
    _nothing_created()


def test_run_experiment_refuses_workers_or_parallel_over_the_cap(data_dir, monkeypatch) -> None:
    """Refused before any worker starts: the study stays as created."""
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "2")
    exp = experiments.create_experiment(_spec(), "random", 1)
    with pytest.raises(SpecError, match="3 worker processes per study .* limit of 2"):
        experiments.run_experiment(exp.name, workers=3)
    with pytest.raises(
        SpecError,
        match=r"3 studies at once x 1 worker\(s\) each = 3 worker processes, over "
        r"this machine's limit of 2 \(HPDASH_MAX_WORKERS\). Use --parallel 2",
    ):
        experiments.run_experiment(exp.name, workers=1, parallel=3)
    with pytest.raises(SpecError, match="3 worker processes per study"):
        experiments.launch_experiment(exp.name, workers=3)
    study = runner.load_study(exp.study_names[0])
    assert study.user_attrs[runner.STATE_ATTR] == "created" and not runner.workers_of(study)
    assert Catalogue(config.catalogue_path()).experiment_queue(exp.name) is None
    assert experiments.parallel_limit(1) == 2 and experiments.parallel_limit(2) == 1
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "1")
    assert experiments.parallel_limit(1) == 1 and experiments.parallel_limit(1, 1) == 1


def test_too_many_studies_are_refused(data_dir, monkeypatch) -> None:
    """5 strategies x 20 repeats (the 6,400-process click) is over the default of 60 studies."""
    with pytest.raises(
        SpecError,
        match=r"5 strategies x 20 repeats = 100 studies, over the limit of 60 "
        r"studies per experiment \(HPDASH_MAX_EXPERIMENT_STUDIES\)",
    ):
        experiments.compare_strategies(_spec(), "grid,random,tpe,cmaes,qmc", 20)
    _nothing_created()
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_STUDIES", "3")
    with pytest.raises(
        SpecError, match="2 strategies x 2 repeats = 4 studies, over the limit of 3 .*fewer strategies or repeats"
    ):
        experiments.create_experiment(_spec(), "random,tpe", 2)
    _nothing_created()
    assert len(experiments.plan_experiment(_spec(), "random,tpe,grid", 1)) == 3


def test_too_many_trials_are_refused(data_dir, monkeypatch) -> None:
    """The sum of every study's trial budget; a grid counts its own size when smaller."""
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_TRIALS", "20")
    with pytest.raises(
        SpecError,
        match=r"would run 24 trials in all \(4 studies; trials per study random: 6, "
        r"tpe: 6; x 2 repeats\), over the limit of 20 trials per experiment "
        r"\(HPDASH_MAX_EXPERIMENT_TRIALS\). Lower n_trials",
    ):
        experiments.create_experiment(_spec(), "random,tpe", 2)
    _nothing_created()
    # k-NN's default grid has 20 points: grid 20 + random 30 = 50 trials, not 60.
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_TRIALS", "55")
    assert len(experiments.plan_experiment(_spec(n_trials=30), "grid,random", 1)) == 2
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_TRIALS", "45")
    with pytest.raises(SpecError, match="would run 50 trials in all .*grid: 20, random: 30"):
        experiments.plan_experiment(_spec(n_trials=30), "grid,random", 1)
    # the default (100,000) lets the largest allowed grid budget through
    monkeypatch.delenv("HPDASH_MAX_EXPERIMENT_TRIALS")
    assert len(experiments.plan_experiment(_spec(n_trials=1000), "random,tpe", 20)) == 40


# ------------------------------------------------------------------------------ progress and queue
def test_progress_of_a_created_experiment_in_one_storage_open(data_dir, monkeypatch) -> None:
    """Every study queued, no queue yet; a stopped and a deleted study are counted as such.
    The states are read with one storage open, whatever the number of studies."""
    exp = experiments.create_experiment(_spec(n_trials=2), "random,tpe,qmc", 2)
    runner.stop_study(exp.study_names[0])
    optuna.delete_study(study_name=exp.study_names[1], storage=runner.open_storage(None, heartbeat=False))
    opened = []
    real = experiments.open_storage

    def counting(*args, **kwargs):
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(experiments, "open_storage", counting)
    monkeypatch.setattr(runner, "open_storage", counting)
    progress = experiments.experiment_progress(exp.name)
    assert len(opened) == 1
    assert progress.total == 6 and (progress.queued, progress.stopped, progress.missing) == (4, 1, 1)
    assert progress.counts == {
        "queued": 4,
        "running": 0,
        "finished": 0,
        "stopped": 1,
        "failed": 0,
        "lost": 0,
        "missing": 1,
    }
    assert progress.states[exp.study_names[0]] == "stopped"
    assert progress.queue is None and not progress.queue_alive
    assert progress.stalled and not progress.active
    with pytest.raises(experiments.ExperimentNotFoundError, match="No experiment with ID 'nope'"):
        experiments.experiment_progress("nope")


def test_progress_running_failed_and_lost(data_dir) -> None:
    """A study marked running counts as running while a worker beats (or within the start-up
    grace), as failed with its message, and as lost once its workers are gone with trials left."""
    exp = experiments.create_experiment(_spec(n_trials=2), "random", 3)
    now = time.time()
    alive, failed, lost = (runner.load_study(n) for n in exp.study_names)
    alive.set_user_attr(runner.STATE_ATTR, "running")
    alive.set_user_attr(runner.STARTED_ATTR, now - 100)
    alive.set_user_attr(
        f"{runner.WORKER_PREFIX}{socket.gethostname()}.{os.getpid()}",
        {"pid": os.getpid(), "host": socket.gethostname(), "started": now - 99, "last_seen": now, "status": "running"},
    )
    failed.set_user_attr(runner.STATE_ATTR, "failed")
    failed.set_user_attr(runner.ERROR_ATTR, "dataset missing")
    lost.set_user_attr(runner.STATE_ATTR, "running")
    lost.set_user_attr(runner.STARTED_ATTR, now - 100)
    progress = experiments.experiment_progress(exp.name)
    assert progress.states == {alive.study_name: "running", failed.study_name: "failed", lost.study_name: "lost"}
    assert progress.errors == {failed.study_name: "dataset missing"}
    lost.set_user_attr(runner.STARTED_ATTR, time.time())  # just launched: its workers are starting
    assert experiments.experiment_progress(exp.name).states[lost.study_name] == "running"


def test_queue_alive_from_its_record() -> None:
    host, now = socket.gethostname(), time.time()
    assert not experiments.queue_alive(None)
    assert experiments.queue_alive({"pid": os.getpid(), "host": host, "started": now, "last_seen": now, "ended": None})
    assert not experiments.queue_alive(
        {"pid": os.getpid(), "host": host, "started": now, "last_seen": now, "ended": now}
    )
    assert not experiments.queue_alive(
        {"pid": os.getpid(), "host": host, "started": now - 100, "last_seen": now - 60, "ended": None}
    )
    dead = _pid_that_exited()
    assert not experiments.queue_alive({"pid": dead, "host": host, "started": now, "last_seen": now, "ended": None})
    # before its first beat the start counts; another host is judged by its beats alone
    assert experiments.queue_alive({"pid": None, "host": host, "started": now, "last_seen": None, "ended": None})
    assert experiments.queue_alive({"pid": dead, "host": "elsewhere", "started": now, "last_seen": now, "ended": None})


def _pid_that_exited() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_queue_is_refused_while_one_runs(data_dir) -> None:
    exp = experiments.create_experiment(_spec(n_trials=2), "random", 1)
    catalogue = Catalogue(config.catalogue_path())
    catalogue.set_experiment_queue(
        exp.name, pid=os.getppid(), host=socket.gethostname(), started=time.time(), last_seen=time.time(), ended=None
    )
    with pytest.raises(SpecError, match=f"'{exp.name}' is already being run by queue process {os.getppid()}"):
        experiments.launch_experiment(exp.name)
    with pytest.raises(SpecError, match="already being run by queue process .*stop the experiment first"):
        experiments.run_queue(exp.name)
    assert runner.load_study(exp.study_names[0]).user_attrs[runner.STATE_ATTR] == "created"


def _worker_processes(prefix: str) -> int:
    """Live `python -m hpdash worker <prefix>...` processes on this machine (from /proc)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z" and b"worker" in args and any(a.startswith(prefix.encode()) for a in args):
            count += 1
    return count


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


@pytest.mark.slow
def test_compare_strategies_queues_studies_within_the_worker_cap(data_dir, monkeypatch) -> None:
    """3 strategies x 2 repeats, 1 worker each, HPDASH_MAX_WORKERS=2: one click starts one
    queue process, at most 2 studies ever run at once, and all 6 finish."""
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "2")
    launched = experiments.compare_strategies(_spec(n_trials=3, name="capped"), "random,tpe,grid", 2, workers=1)
    assert len(launched.processes) == 1
    record = Catalogue(config.catalogue_path()).experiment_queue("capped")
    assert record["pid"] == launched.queue.pid and record["workers"] == 1 and record["parallel"] == 2
    most_running = most_processes = 0
    seen_running = False
    deadline = time.time() + 400
    while launched.queue.poll() is None:
        assert time.time() < deadline, "the experiment did not finish"
        progress = experiments.experiment_progress("capped")
        assert progress.queue_alive or progress.queue["ended"] is not None  # alive until it records its end
        most_running = max(most_running, progress.running)
        most_processes = max(most_processes, _worker_processes("capped-"))
        seen_running |= progress.running > 0
        time.sleep(0.2)
    assert launched.queue.returncode == 0, experiments.queue_log_path("capped").read_text()
    assert seen_running and 1 <= most_running <= 2 and most_processes <= 2
    progress = experiments.experiment_progress("capped")
    assert progress.finished == 6 and progress.counts["finished"] == progress.total == 6
    assert not progress.queue_alive and not progress.active
    record = progress.queue
    assert record["ended"] >= record["started"] and record["error"] is None and record["host"]
    # The workers' own records agree: never more than 2 ran at the same moment.
    intervals = []
    for name in launched.experiment.study_names:
        study = runner.load_study(name)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
        intervals += [(w["started"], w["ended"]) for w in runner.workers_of(study)]
    assert len(intervals) == 6 and _max_overlap(intervals) <= 2


@pytest.mark.slow
def test_a_queued_study_stopped_before_its_turn_is_never_started(data_dir, monkeypatch) -> None:
    """One study at a time (HPDASH_MAX_WORKERS=1): the third study, stopped while the first
    runs, is skipped; the queue still runs the second and ends."""
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "1")
    launched = experiments.compare_strategies(_spec(n_trials=3, name="skip"), "random", 3)
    first, second, third = launched.experiment.study_names
    runner.stop_study(third)
    assert launched.queue.wait(timeout=300) == 0, experiments.queue_log_path("skip").read_text()
    skipped = runner.load_study(third)
    assert not runner.workers_of(skipped)
    assert {t.state for t in skipped.get_trials()} == {TrialState.WAITING} and len(skipped.get_trials()) == 3
    assert runner.study_status(skipped).state == "stopped"
    for name in (first, second):
        assert runner.study_status(runner.load_study(name)).state == "finished"
    progress = experiments.experiment_progress("skip")
    assert (progress.finished, progress.stopped, progress.queued) == (2, 1, 0)
    assert f"{third}: not started, it was stopped" in experiments.queue_log_path("skip").read_text()


@pytest.mark.slow
def test_stop_experiment_ends_the_queue_and_starts_nothing_more(data_dir, monkeypatch) -> None:
    """A stop while the first study runs: it stops, the queued ones never start, the queue ends."""
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "1")
    launched = experiments.compare_strategies(_spec(n_trials=40, name="halt"), "random", 3)
    deadline = time.time() + 120
    while experiments.experiment_progress("halt").running == 0:
        assert launched.queue.poll() is None and time.time() < deadline, "the first study did not start"
        time.sleep(0.2)
    experiments.stop_experiment("halt")
    assert launched.queue.wait(timeout=120) == 0
    first, *rest = launched.experiment.study_names
    for name in rest:
        study = runner.load_study(name)
        assert not runner.workers_of(study) and runner.study_status(study).state == "stopped"
    progress = experiments.experiment_progress("halt")
    assert progress.queued == 0 and progress.running == 0 and not progress.queue_alive
    assert progress.queue["stop_requested"] and progress.queue["ended"]


# ------------------------------------------------------------------------------ data split across repeats
def test_per_repeat_split_gives_each_repeat_its_own_split_and_sampler_seed() -> None:
    """The default: repeat r uses seed + r for both, exactly as before the two seeds existed."""
    specs = experiments.plan_experiment(_spec(), "random,tpe", 3)
    assert specs == experiments.plan_experiment(_spec(), "random,tpe", 3, split="per_repeat")
    assert [(s.seed, s.split_seed, s.sampler_seed) for s in specs] == [(7, 7, 7), (8, 8, 8), (9, 9, 9)] * 2
    assert [s.name for s in specs[:3]] == ["iris-exp-random-s7", "iris-exp-random-s8", "iris-exp-random-s9"]
    # the stored spec writes both seeds out, so a reader sees the design
    assert all(s.to_dict()["split_seed"] == s.to_dict()["sampler_seed"] == s.seed for s in specs)
    assert experiments.split_design([s.to_dict() for s in specs]) == "per_repeat"


def test_shared_split_keeps_the_split_seed_and_moves_the_sampler_seed() -> None:
    specs = experiments.plan_experiment(_spec(), "grid,random", 3, split="shared")
    assert {s.split_seed for s in specs} == {7}
    assert [s.sampler_seed for s in specs] == [7, 8, 9, 7, 8, 9]
    # names (and the catalogue's seed) are the repeat's sampler seed, as before
    assert [s.name for s in specs] == [f"iris-exp-{st}-s{seed}" for st in ("grid", "random") for seed in (7, 8, 9)]
    assert [s.seed for s in specs] == [7, 8, 9, 7, 8, 9]
    assert all(s.to_dict()["split_seed"] == 7 for s in specs)
    assert experiments.split_design([s.to_dict() for s in specs]) == "shared"


def test_split_seeds_start_from_the_base_specs_own() -> None:
    base = _spec(split_seed=100, sampler_seed=3)
    per = experiments.plan_experiment(base, "random", 2)
    assert [(s.split_seed, s.sampler_seed, s.name) for s in per] == [
        (100, 3, "iris-exp-random-s3"),
        (101, 4, "iris-exp-random-s4"),
    ]
    shared = experiments.plan_experiment(base, "random", 2, split="shared")
    assert [(s.split_seed, s.sampler_seed) for s in shared] == [(100, 3), (100, 4)]
    assert experiments.repeat_seeds(base, 2, "shared") == [(100, 3), (100, 4)]


@pytest.mark.parametrize("split", ["same", "", None, 1, "Shared"])
def test_an_unknown_split_is_refused_with_the_choices(data_dir, split) -> None:
    with pytest.raises(SpecError) as err:
        experiments.plan_experiment(_spec(), "random", 2, split=split)
    message = str(err.value)
    assert message.startswith(f"Unknown data split across repeats {split!r}")
    assert "'per_repeat': a new split per repeat (split and sampler luck)" in message
    assert "'shared': the same split for every repeat (only sampler luck varies)" in message
    with pytest.raises(SpecError, match="Unknown data split"):
        experiments.create_experiment(_spec(), "random", 2, split=split)
    with pytest.raises(SpecError, match="Unknown data split"):
        experiments.compare_strategies(_spec(), "random", 2, split=split)
    _nothing_created()


def test_create_shared_records_each_studys_split_and_sampler_seed(data_dir) -> None:
    exp = experiments.create_experiment(_spec(), "random,tpe", 2, split="shared")
    assert exp.study_names == ["iris-exp-random-s7", "iris-exp-random-s8", "iris-exp-tpe-s7", "iris-exp-tpe-s8"]
    assert [r.seed for r in exp.runs] == [7, 8, 7, 8]
    stored = experiments.study_specs(exp.study_names)
    assert {stored[n]["split_seed"] for n in exp.study_names} == {7}
    assert [stored[n]["sampler_seed"] for n in exp.study_names] == [7, 8, 7, 8]
    for name in exp.study_names:
        spec = runner.load_spec_of(runner.load_study(name))
        assert spec.split_seed == 7 and spec.sampler_seed == stored[name]["sampler_seed"]
        record = runner.load_study(name).user_attrs["hpdash.sampler"]
        assert record["sampler_seed"] == spec.sampler_seed
    assert experiments.experiment_split("iris-exp") == "shared"
    experiments.create_experiment(_spec(name="iris-per"), "random", 2)
    assert experiments.experiment_split("iris-per") == "per_repeat"


def test_split_design_on_hand_made_specs() -> None:
    def spec(strategy: str, seed: int, split_seed: int | None = None) -> dict:
        out = {"strategy": strategy, "seed": seed}
        return out if split_seed is None else {**out, "split_seed": split_seed}

    # specs stored before split_seed existed: seed is the split seed
    assert experiments.split_design([spec("grid", 0), spec("grid", 1), spec("tpe", 0), spec("tpe", 1)]) == "per_repeat"
    assert experiments.split_design([spec("grid", 0, 5), spec("grid", 1, 5), spec("tpe", 0, 5)]) == "shared"
    assert experiments.split_design([spec("grid", 5), spec("tpe", 1, 5)]) == "shared"  # one split for both
    assert experiments.split_design([spec("grid", 0, 5), spec("grid", 1, 5), spec("grid", 2, 6)]) == "mixed"
    assert experiments.split_design([spec("grid", 0, 5), spec("grid", 1, 5), spec("tpe", 0), spec("tpe", 1)]) == "mixed"
    assert experiments.split_design([{"split_seed": None, "seed": 3}, {"seed": 3}]) == "shared"
    assert experiments.split_design([spec("grid", 0)]) == "per_repeat"  # one study: nothing is shared
    assert experiments.split_design([]) == "per_repeat"


# ------------------------------------------------------------------------------ repeats until settled
def test_settle_verdict_on_hand_made_bests_matches_scipys_exact_tests() -> None:
    """Different, equivalent or open, by the exact signed-rank test and its TOST, with Holm."""
    rng = np.random.default_rng(4)
    base = 0.9 + 0.01 * rng.standard_normal(12)
    tpe = {s: float(base[s] + 0.05 + 0.001 * rng.standard_normal()) for s in range(12)}  # clearly better
    rnd = {s: float(base[s] + 0.002 * rng.standard_normal()) for s in range(12)}
    grid = {s: float(rnd[s] + 0.001 * rng.standard_normal()) for s in range(12)}  # within ±0.01 of random
    verdict = experiments.settle_verdict({"tpe": tpe, "random": rnd, "grid": grid}, margin=0.01, alpha=0.05 / 4)
    assert verdict.settled and verdict.text.startswith("settled:")
    outcomes = {(p.a, p.b): p.outcome for p in verdict.pairs}
    assert outcomes == {("tpe", "random"): "different", ("tpe", "grid"): "different", ("random", "grid"): "equivalent"}
    # one pair (no Holm step): the p-values are scipy's exact Wilcoxon, two-sided and one-sided
    two = experiments.settle_verdict({"random": rnd, "grid": grid}, margin=0.01, alpha=0.05)
    d = np.array([rnd[s] - grid[s] for s in range(12)])
    (pair,) = two.pairs
    assert pair.n == 12
    assert pair.p_difference == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
    lower = stats.wilcoxon(d - 0.01, alternative="less", method="exact").pvalue
    upper = stats.wilcoxon(d + 0.01, alternative="greater", method="exact").pvalue
    assert pair.p_equivalence == pytest.approx(max(lower, upper))
    # three repeats can settle nothing: the exact test's smallest p is 2/2^3 = 0.25
    few = experiments.settle_verdict({"tpe": dict(list(tpe.items())[:3]), "random": rnd}, 0.01, 0.05)
    assert not few.settled and few.pairs[0].n == 3 and few.pairs[0].p_difference == pytest.approx(0.25)
    assert "tpe vs random open (p = 0.25 for a difference" in few.text and "3 repeats" in few.text
    # Holm over the pairs: the smallest p is multiplied by the number of pairs
    ps = [0.01, 0.04, 0.03]
    assert experiments._holm(ps) == pytest.approx([0.03, 0.06, 0.06])


def test_until_settled_is_refused_before_anything_is_created(data_dir, monkeypatch) -> None:
    """The cap is checked against every limit for all the repeats it may add."""
    spec = _spec(n_trials=2)
    cases = [
        ({"max_repeats": 2}, "cap on repeats must be a whole number above the 2 planned repeat"),
        ({"max_repeats": 21}, "at most 20, got 21"),
        ({"max_repeats": None}, "got None"),
        ({"max_repeats": 4, "margin": 0}, "margin must be a positive number"),
        ({"max_repeats": 4, "split": "shared"}, "needs a new split per repeat"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SpecError, match=message):
            experiments.create_experiment(spec, "random,grid", 2, until_settled=True, **kwargs)
        _nothing_created()
    with pytest.raises(SpecError, match="at least two strategies"):
        experiments.create_experiment(spec, "random", 2, until_settled=True, max_repeats=4)
    with pytest.raises(SpecError, match="applies only when repeats are added until settled"):
        experiments.create_experiment(spec, "random,grid", 2, max_repeats=4)
    _nothing_created()
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_STUDIES", "5")
    with pytest.raises(
        SpecError,
        match=r"Adding repeats up to 3 would make 2 strategies x 3 repeats = 6 studies, over the limit of 5 "
        r"studies per experiment \(HPDASH_MAX_EXPERIMENT_STUDIES\)",
    ):
        experiments.compare_strategies(spec, "random,grid", 2, until_settled=True, max_repeats=3)
    _nothing_created()
    monkeypatch.delenv("HPDASH_MAX_EXPERIMENT_STUDIES")
    monkeypatch.setenv("HPDASH_MAX_EXPERIMENT_TRIALS", "10")  # 2 x 2 x 2 = 8 trials planned, 12 at the cap
    with pytest.raises(SpecError, match=r"With repeats added up to the cap of 3: This experiment would run 12 trials"):
        experiments.create_experiment(spec, "random,grid", 2, until_settled=True, max_repeats=3)
    _nothing_created()
    monkeypatch.delenv("HPDASH_MAX_EXPERIMENT_TRIALS")
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "1")
    with pytest.raises(SpecError, match="2 worker processes per study is over this machine's limit of 1"):
        experiments.compare_strategies(spec, "random,grid", 2, workers=2, until_settled=True, max_repeats=3)
    _nothing_created()
    # a study of a repeat the cap may add already exists: refused now, not half way
    runner.create_study(_spec(name="iris-exp-grid-s9", strategy="grid", n_trials=2))
    with pytest.raises(SpecError, match="'iris-exp-grid-s9' already exists"):
        experiments.create_experiment(spec, "random,grid", 2, until_settled=True, max_repeats=3)
    assert not experiments.experiment_exists("iris-exp")


def test_the_plan_and_its_rule_are_in_the_experiment_record(data_dir) -> None:
    exp = experiments.create_experiment(_spec(n_trials=2), "random,grid", 2, until_settled=True, max_repeats=5)
    plan = exp.settle
    assert plan is not None and (plan.planned, plan.cap, plan.margin, plan.looks_planned) == (2, 5, 0.01, 4)
    assert plan.look_alpha == pytest.approx(0.0125) and exp.repeats == 2 and len(exp.runs) == 4
    row = json.loads(Catalogue(config.catalogue_path()).get_experiment("iris-exp")["spec_json"])
    rule = row[experiments.SETTLE_RECORD]["rule"]
    assert "alpha 0.05/4 = 0.0125 (Bonferroni over the looks" in rule and "after 2..5 repeats" in rule
    assert "With a cap of 5 repeats the verdict can never settle" in rule  # 2/2^5 = 0.0625 > 0.0125
    assert exp.spec == _spec(n_trials=2)  # the spec reads back without the plan
    assert experiments.create_experiment(_spec(name="fixed", n_trials=2), "random", 1).settle is None


class _Ended:
    """What the queue sees of workers that already ran (in this process, see ``_in_process``)."""

    returncode = 0

    def poll(self) -> int:
        return 0


def _in_process(monkeypatch) -> list[str]:
    """Make the queue run each study's worker in this process (``runner.run_here``)."""
    launched: list[str] = []

    def launch(name: str, storage: str | None = None, workers: int = 1) -> list[_Ended]:
        launched.append(name)
        runner.run_here(name, storage)
        return [_Ended()]

    monkeypatch.setattr(runner, "launch_workers", launch)
    return launched


def test_until_settled_adds_repeats_while_open_and_stops_at_the_cap(data_dir, monkeypatch) -> None:
    """Two nearly equal strategies, 2 trials each, 1 planned repeat, a cap of 3: no look can
    settle (three repeats give p >= 0.25), so the queue adds repeats up to the cap."""
    launched = _in_process(monkeypatch)
    lines: list[str] = []
    exp = experiments.create_experiment(_spec(n_trials=2), "random,grid", 1, until_settled=True, max_repeats=3)
    experiments.run_queue(exp.name, say=lines.append)
    done = experiments.load_experiment(exp.name)
    assert done.repeats == 3 and done.study_names == [
        f"iris-exp-{s}-s{seed}" for s in ("random", "grid") for seed in (7, 8, 9)
    ]
    assert launched == [f"iris-exp-{s}-s{seed}" for seed in (7, 8, 9) for s in ("random", "grid")]
    progress = experiments.experiment_progress(exp.name)
    assert progress.finished == progress.total == 6
    plan = done.settle
    assert plan is not None and [look["repeats"] for look in plan.looks] == [1, 2, 3]
    assert all(look["alpha"] == pytest.approx(0.05 / 3) and not look["settled"] for look in plan.looks)
    assert plan.looks[-1]["pairs"][0]["n"] == 3
    assert plan.outcome == "the cap of 3 repeats was reached with the verdict not settled"
    # the added studies were made like the first ones: the next seeds, a new split each
    added = runner.load_spec_of(runner.load_study("iris-exp-grid-s9"))
    assert (added.strategy, added.seed, added.split_seed, added.sampler_seed, added.n_trials) == ("grid", 9, 9, 9, 2)
    assert any("until settled: added repeat 2 of at most 3 (seed 8)" in line for line in lines)
    assert any(line.startswith("look 3 of 3 after 3 repeats: not settled") for line in lines)
    # a queue run again later adds nothing more
    experiments.run_queue(exp.name)
    assert experiments.load_experiment(exp.name).repeats == 3


def test_a_stop_of_the_experiment_adds_no_repeat(data_dir, monkeypatch) -> None:
    launched = _in_process(monkeypatch)
    exp = experiments.create_experiment(_spec(n_trials=2), "random,grid", 1, until_settled=True, max_repeats=3)
    experiments.stop_experiment(exp.name)
    experiments.run_queue(exp.name)
    done = experiments.load_experiment(exp.name)
    assert launched == [] and done.repeats == 1 and len(done.runs) == 2
    assert done.settle is not None and done.settle.outcome == "the experiment was stopped: no repeat added"


def test_an_experiment_settled_at_the_first_look_adds_no_repeat(data_dir) -> None:
    """Seven finished repeats where TPE beats random every time: 2/2^7 = 0.016 is below alpha
    0.05/2 at the first of two looks, so the queue adds nothing."""
    spec = _spec(name="settled", n_trials=2)
    storage = runner.open_storage(None, heartbeat=False)
    rows = []
    for strategy, level in (("random", 0.80), ("tpe", 0.90)):
        for r in range(7):
            seed = spec.seed + r
            name = experiments.study_name("settled", strategy, seed)
            study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
            study.set_user_attr(runner.STATE_ATTR, "finished")
            study.add_trial(
                optuna.trial.create_trial(
                    value=level + r / 1000,
                    params={"x": 0.5},
                    distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
                )
            )
            rows.append({"experiment": "settled", "study": name, "strategy": strategy, "seed": seed})
    Catalogue(config.catalogue_path()).add_experiment(
        {
            "name": "settled",
            "spec_json": experiments._spec_json(spec, experiments.SettlePlan(planned=7, cap=8)),
            "strategies": json.dumps(["random", "tpe"]),
            "repeats": 7,
        },
        rows,
    )
    experiments.run_queue("settled")
    done = experiments.load_experiment("settled")
    assert done.repeats == 7 and len(done.runs) == 14
    assert done.settle is not None and done.settle.outcome == "settled after 7 repeats"
    (look,) = done.settle.looks
    assert look["settled"] and look["pairs"][0]["outcome"] == "different"
    assert look["pairs"][0]["p_difference"] == pytest.approx(2 / 2**7)


@pytest.mark.slow
def test_compare_strategies_until_settled_runs_the_added_repeats_in_its_queue(data_dir) -> None:
    """The detached queue (``python -m hpdash queue``) reads the plan from the catalogue."""
    launched = experiments.compare_strategies(
        _spec(n_trials=2, name="settle-q"), "random,grid", 1, until_settled=True, max_repeats=2
    )
    assert launched.queue.wait(timeout=400) == 0, experiments.queue_log_path("settle-q").read_text()
    done = experiments.load_experiment("settle-q")
    assert done.repeats == 2 and len(done.runs) == 4
    assert experiments.experiment_progress("settle-q").finished == 4
    assert (
        done.settle is not None
        and done.settle.outcome == "the cap of 2 repeats was reached with the verdict not settled"
    )
    assert "until settled: added repeat 2 of at most 2" in experiments.queue_log_path("settle-q").read_text()
