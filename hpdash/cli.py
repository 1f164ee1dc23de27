"""Command line: ``python -m hpdash ...`` or ``hpdash ...``.

Every user error (bad spec, bad table, unknown study) exits 2 with the message on stderr and
no traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hpdash import attrs as study_attrs
from hpdash import config, runtime
from hpdash.errors import DatasetError, HpdashError

EXIT_USER_ERROR = 2


def _fmt(value: Any, digits: int = 4) -> str:
    """A value for a person: ``-`` for no value (None, NaN), floats rounded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _bar(done: int, total: int | None, width: int = 30) -> str:
    if not total:
        return f"[{'?' * width}] {done}"
    filled = int(width * min(done, total) / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


class _Progress:
    """The progress line of ``hpdash run``: redrawn in place at most every 0.5 s on a
    terminal, a new line at most every 5 s otherwise (a log file or CI output)."""

    def __init__(self, study: Any, tty: bool) -> None:
        self.study, self.tty = study, tty
        self.interval = 0.5 if tty else 5.0
        self.last = time.monotonic()

    def __call__(self, force: bool = False) -> None:
        from hpdash import runner

        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        status = runner.study_status(self.study)
        line = f"{_bar(status.done, status.budget)} best {_fmt(status.best_value)}"
        print(("\r" if self.tty else "") + line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def end(self) -> None:
        self(force=True)
        if self.tty:
            print(file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Create a study from a spec, run it, print a summary.

    One worker runs in this process (``runner.run_here``): no second Python to start.
    Several run as worker processes. Exit codes: 0 when trials completed, 1 when a worker
    failed or no trial completed (the reasons are printed), 130 after Ctrl-C (the running
    trials stop at their next fold and are given back; ``hpdash resume`` finishes the budget).
    """
    from hpdash import runner
    from hpdash.spec import load_spec

    spec = load_spec(args.spec)
    if args.workers:
        spec = spec.replace(workers=args.workers)
    if args.name:
        spec = spec.replace(name=args.name)
    runner.check_worker_count(spec.workers)
    plan = runner.plan_study(spec)  # everything checked on the real data before anything is written
    # The pre-launch smoke fit: one fold of each model on a sample of the training part.
    # A model that fails it (or would run past the time limits) is a SpecError: exit 2.
    from hpdash import objective

    for message in objective.smoke_check(plan).messages():
        print(message, file=sys.stderr)
    from hpdash import strategies

    for warning in (strategies.startup_warning(spec), strategies.conditional_warning(spec)):
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    study = runner.create_study(spec, args.storage, plan=plan)
    print(
        f"Study {spec.name!r}: {spec.strategy} search over {', '.join(spec.models)}, "
        f"storage {config.storage_url(args.storage)}",
        file=sys.stderr,
    )
    progress = _Progress(study, sys.stderr.isatty())
    if spec.workers == 1:
        # The plan's data are the stored study's when its recorded SHA-256 is the plan's.
        same_data = study.user_attrs.get(runner.DATASET_ATTR) == plan.dataset_sha256
        code = _run_here(spec.name, args.storage, progress, plan.problem() if same_data else None)
    else:
        code = _run_workers(spec.name, args.storage, spec.workers, progress)
    if code:
        return code
    _print_summary(spec.name, args.storage)
    status = runner.study_status(study)
    if status.complete == 0:
        print(
            f"No trial completed{': ' + status.error if status.error else ''}. "
            "See the failure reasons above (`hpdash show STUDY` lists them all).",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_here(name: str, storage: str | None, progress: _Progress, problem: Any) -> int:
    """Run the study's one worker in this process. The first Ctrl-C asks it to stop at the
    next fold boundary (the trial is given back, as ``hpdash stop`` does); a second one
    stops at once."""
    from hpdash import runner

    stop = threading.Event()

    def on_interrupt(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        # os.write, not print: a signal handler may run in the middle of a print
        os.write(2, b"\nStopping: the running trial ends at its next fold (Ctrl-C again stops at once).\n")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    _freeze_startup_objects()
    try:
        runner.run_here(name, storage, stop_event=stop, progress=progress, problem=problem)
    except KeyboardInterrupt:
        print("Stopped at once: the trial that was running failed and is not given back.", file=sys.stderr)
        return 130
    except HpdashError as exc:
        print(f"A worker failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, not a user error: the traceback is for a bug report
        traceback.print_exc()
        print(f"A worker failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    progress.end()
    return 130 if stop.is_set() else 0


def _freeze_startup_objects() -> None:
    """End the start-up of a process that ends with this command (``run``, ``worker``).

    ``main`` turned the cyclic garbage collector off for the start-up: the imports of
    scikit-learn, pandas, Optuna and SQLAlchemy create a great many objects that all live
    until the process ends, and the collections they trigger only walk them. Here those
    objects (and the study's data) move out of the collector's generations (``gc.freeze``),
    so the collections that the fits trigger do not walk them again and again, and the
    collector is turned back on. No ``gc.collect`` first: it costs as much as it saves, and
    the little cyclic garbage left by the imports is only kept until the process exits.
    Nothing is done when ``main`` was called with an ``argv`` (from another program, which
    keeps running). The measurements are in docs/PERFORMANCE.md ("Whole-process `hpdash run`")."""
    if _PROCESS_ENTRY:
        gc.freeze()
        gc.enable()


def _run_workers(name: str, storage: str | None, workers: int, progress: _Progress) -> int:
    """Run the study in ``workers`` worker processes and wait for them (waking when they
    exit, not on a timer). Ctrl-C asks them to stop at their next fold."""
    from hpdash import runner

    _freeze_startup_objects()  # this process only waits from here on
    procs = runner.launch_workers(name, storage, workers)
    try:
        codes = runner.wait_for(procs, progress, interval=progress.interval)
    except KeyboardInterrupt:
        print("\nStopping: the running trials end at their next fold.", file=sys.stderr)
        runner.stop_study(name, storage)
        runner.wait_for(procs)
        return 130
    progress.end()
    if any(codes):
        status = runner.study_status(runner.load_study(name, storage))
        print(f"A worker failed: {status.error or 'see ' + str(runner.workers_log_dir())}", file=sys.stderr)
        return 1
    return 0


def _print_summary(name: str, storage: str | None, reasons: int | None = 5) -> None:
    """State, trial counts, failure reasons (the ``reasons`` commonest, None: all), best
    trial and refit of a study."""
    from hpdash import export_model, results, status

    study = status.load_study(name, storage)
    state = status.study_status(study)
    summary = results.study_summary(study)
    print(f"study:      {name}")
    print(f"state:      {state.state}")
    if state.error:
        print(f"error:      {state.error}")
    print(f"trials:     {summary.n_complete} complete, {summary.n_pruned} pruned, {summary.n_fail} failed")
    failures = status.failure_reasons(study) if summary.n_fail else []
    for i, (reason, count) in enumerate(failures if reasons is None else failures[:reasons]):
        print(f"{'failures:' if i == 0 else '':11} {count} x {reason}")
    if reasons is not None and len(failures) > reasons:
        print(f"{'':11} ... and {len(failures) - reasons} other reason(s): `hpdash show {name}` lists them all")
    if summary.best_trial_number is None:
        print("best CV:    - (no trial completed)")
        return
    print(
        f"best CV:    {_fmt(summary.best_value)} (trial {summary.best_trial_number}, {study.user_attrs.get(study_attrs.METRIC)})"
    )
    print(f"best params: {json.dumps(summary.best_params, default=str)}")
    refit = status.refit_info(study)
    if refit:
        model = export_model.model_files(study.study_name).joblib  # never the record's path
        print(f"holdout:    {_fmt(refit['holdout_score'])}  model: {model} (sha256 {refit['sha256'][:12]})")


def cmd_worker(args: argparse.Namespace) -> int:
    from hpdash import runner

    _freeze_startup_objects()
    n = runner.run_worker(args.study, args.storage, worker_index=args.worker_index)
    print(f"worker finished {n} trial(s) of {args.study}", file=sys.stderr)
    return 0


def exit_now(code: int) -> NoReturn:
    """End a worker process at once, skipping Python's interpreter teardown.

    A worker has imported the modules of scikit-learn, SciPy, pandas, Optuna and SQLAlchemy,
    and tearing so many modules down takes longer than a plain scikit-learn script's teardown
    while doing nothing the worker needs (docs/PERFORMANCE.md, "Numbers behind the code").
    Everything a worker writes is committed by then, so this only closes the storage
    connections and flushes the output first.
    """
    from hpdash import storage

    storage.close_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_list(args: argparse.Namespace) -> int:
    from hpdash import status

    rows = status.statuses(args.storage)
    if not rows:
        print("No studies yet. Run one with: python -m hpdash run examples/iris-random-forest-tpe.yaml")
        return 0
    print(f"{'name':32} {'strategy':8} {'state':12} {'done':>9} {'best':>8}")
    for name, spec, st in rows:
        done = f"{st.done}/{st.budget if st.budget is not None else '?'}"
        print(f"{name:32} {spec.get('strategy', '-'):8} {st.state:12} {done:>9} {_fmt(st.best_value):>8}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from hpdash import status

    study = status.load_study(args.study, args.storage)
    print(status.load_spec_of(study).to_yaml())
    _print_summary(args.study, args.storage, reasons=None)
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        print(f"fold scores: {[round(s, 4) for s in best.user_attrs.get('fold_scores', [])]}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a study (positional name), an experiment (``--experiment ID``) or hand-picked
    studies (``--studies A B ...``) as CSV or HTML, or a comparison as JSON (its results document,
    ``report.experiment_json``; to stdout without ``--out``)."""
    from hpdash import compare, report, runner
    from hpdash.errors import SpecError

    if sum(map(bool, (args.study, args.experiment, args.studies))) != 1:
        raise SpecError("Give one of: a study name, --experiment ID or --studies A B ... (only one).")
    if args.out is None and args.format != "json":
        raise SpecError(f"Give the file to write the {args.format.upper()} to: --out FILE.")
    if args.study:
        if args.format == "json":
            raise SpecError("JSON export is for a comparison: use --experiment ID or --studies A B ...")
        study = runner.load_study(args.study, args.storage)
        if args.format == "html":
            report.write_study_html(study, args.out)
        else:
            report.write_trials_csv(study, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    if args.experiment:
        comparison = compare.load_experiment_comparison(args.experiment, args.storage)
    else:
        comparison = compare.load_studies_comparison(args.studies, args.storage)
    if args.format == "json":
        if not args.no_extras:
            print(
                f"Tie sets and bias-corrected (BBC-CV) scores of {len(comparison.runs)} studies: this reloads each "
                "study's data and may take a while (--no-extras leaves them out).",
                file=sys.stderr,
            )
        text = report.experiment_json(comparison, extras=not args.no_extras)
        if args.out is None:
            print(text)
            return 0
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    elif args.format == "html":
        Path(args.out).write_text(report.experiment_html(comparison), encoding="utf-8")
    else:
        Path(args.out).write_bytes(report.experiment_csv(comparison.frame))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Run an experiment headless: S strategies x R seeds, then print the summary and verdict."""
    from hpdash import compare, experiments
    from hpdash.spec import load_spec

    spec = load_spec(args.spec)
    if args.name:
        spec = spec.replace(name=args.name)
    workers = experiments.check_workers(args.workers or 1)
    experiments.parallel_limit(workers, args.parallel)  # refuse a bad --parallel before creating anything
    exp = experiments.create_experiment(
        spec.replace(workers=workers), args.strategies, args.repeats, args.storage, split=args.split
    )
    print(
        f"Experiment {exp.name!r}: {', '.join(exp.strategies)} x {exp.repeats} seed(s) "
        f"({len(exp.runs)} studies, {spec.n_trials if spec.n_trials is not None else 'time-budget'} trials each; "
        f"data split: {experiments.SPLITS[args.split]}), "
        f"storage {config.storage_url(args.storage)}",
        file=sys.stderr,
    )
    started = time.time()
    last = [0.0]

    def poll() -> None:
        if time.time() - last[0] < 5:
            return
        last[0] = time.time()
        try:  # one batched read of every study's state, not one study_status per study
            now = experiments.experiment_progress(exp.name, args.storage)
        except HpdashError:
            return  # a busy storage: the next poll tries again
        states = " · ".join(f"{now.count(s)} {s}" for s in experiments.PROGRESS_STATES if now.count(s))
        print(
            f"{_bar(now.finished, now.total or None)} studies finished ({states}) {time.time() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    try:
        codes = experiments.run_experiment(exp.name, args.storage, workers, args.parallel, poll)
    except KeyboardInterrupt:
        print("\nStopping the experiment's studies.", file=sys.stderr)
        experiments.stop_experiment(exp.name, args.storage)
        return 130
    comparison = compare.load_experiment_comparison(exp.name, args.storage)
    analysis = compare.analyse_comparison(comparison)
    _print_comparison(comparison, analysis)
    if args.report:
        from hpdash import report

        Path(args.report).write_text(report.experiment_html(comparison, analysis), encoding="utf-8")
        print(f"wrote {args.report}", file=sys.stderr)
    if any(codes):
        print(
            f"{sum(1 for c in codes if c)} worker(s) failed: see {experiments.runner.workers_log_dir()}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    """Run an experiment's studies a few at a time (the detached process the New study page
    starts; see ``experiments.run_queue``). SIGTERM ends it at the next round: studies already
    running keep going, queued ones stay queued."""
    from hpdash import experiments

    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())

    def say(text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} queue {args.experiment}: {text}", file=sys.stderr, flush=True)

    say(
        f"pid {os.getpid()}, {args.workers} worker(s) per study, at most "
        f"{experiments.parallel_limit(experiments.check_workers(args.workers))} studies at once"
    )
    try:
        codes = experiments.run_queue(args.experiment, args.storage, args.workers, halt=halt, say=say)
    except KeyboardInterrupt:
        say(
            "interrupted: no further study starts; the running ones go on (stop them with "
            "`python -m hpdash stop STUDY`, or the Compare page)"
        )
        return 130
    failed = sum(1 for c in codes if c)
    say(f"done: {len(codes)} worker(s) ended, {failed} with an error")
    return 1 if failed else 0


def _print_comparison(comparison: Any, analysis: Any) -> None:
    from hpdash import compare

    print(f"experiment: {comparison.experiment or comparison.title}")
    print(f"metric:     {comparison.metric} ({comparison.direction})")
    if analysis.banner:
        print(analysis.banner)
    print(f"design:     {compare.design_text(comparison, analysis)}")
    for study, note in comparison.grid_notes.items():
        print(f"grid:       {study}: {note}")
    # A missing value (a NaN in a frame) prints as "-", as the report shows it; a pair no
    # test separates favours no strategy (None, which a frame column may hold as NaN).
    pairs = analysis.pairs.copy()
    if "better" in pairs:
        pairs["better"] = [None if _missing(b) else b for b in pairs["better"]]
    print()
    baseline = analysis.baseline
    scores = baseline.scores if baseline is not None and baseline.available else None
    table = compare.display_table(analysis.summary, analysis.ttt_summary, normalised=scores)
    print(table.to_string(index=False, na_rep="-"))
    if baseline is not None:
        print(baseline.definition if baseline.available else baseline.reason)
    if analysis.repeats is not None:
        friedman = analysis.repeats.friedman
        print(f"ranks:      {friedman.text if friedman is not None else analysis.repeats.reason}")
    print()
    print(compare.target_text(analysis, comparison.metric))
    print(compare.ttt_table(analysis.ttt_summary).to_string(index=False, na_rep="-"))
    print()
    print(compare.pairs_table(pairs).to_string(index=False, na_rep="-"))
    print()
    print(f"verdict:    {analysis.verdict.text}")


def _missing(value: Any) -> bool:
    """None or a float NaN (what pandas puts in a column for a missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def cmd_refit(args: argparse.Namespace) -> int:
    from hpdash import runner

    result = runner.refit(args.study, args.storage)
    print(
        f"holdout {result.metric}: {result.holdout_score:.4f}  (CV {result.cv_score:.4f}, trial {result.trial_number})"
    )
    print(f"model: {result.path}  sha256 {result.sha256}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from hpdash import runner

    runner.stop_study(args.study, args.storage)
    print(f"stop requested for {args.study}", file=sys.stderr)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from hpdash import runner

    procs = runner.resume_study(args.study, args.storage, args.workers)
    if args.detach:
        print(f"resumed {args.study} with {len(procs)} worker(s)", file=sys.stderr)
        return 0
    codes = runner.wait_for(procs)
    _print_summary(args.study, args.storage)
    return 1 if any(codes) or runner.study_status(runner.load_study(args.study, args.storage)).complete == 0 else 0


def cmd_dataset_check(args: argparse.Namespace) -> int:
    from hpdash import datasets

    path = Path(args.file)
    if not path.is_file():
        raise DatasetError(f"File not found: {path}")
    frame = datasets.read_table(path.read_bytes(), path.name)
    prepared = datasets.prepare(frame, args.target, task=args.task, folds=args.folds)
    profile = prepared.profile
    print(f"{path.name}: {profile.n_rows} rows, {profile.n_cols} columns; task: {profile.task}")
    if profile.n_target_missing_dropped:
        print(f"dropped {profile.n_target_missing_dropped} row(s) whose target is missing")
    print(profile.columns_frame().to_string(index=False))
    print("\ntarget distribution:")
    print(profile.target_distribution.to_string(index=False))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Create the data directory, the storage and the catalogue (used by `make run`)."""
    import optuna

    from hpdash.storage import open_storage
    from hpdash.store import Catalogue

    optuna.get_all_study_names(storage=open_storage(args.storage, heartbeat=False))
    Catalogue(storage=args.storage)
    print(f"hpdash storage ready: {config.storage_url(args.storage)}", file=sys.stderr)
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    """Serve the study database to workers through Optuna's gRPC storage proxy until SIGTERM
    or Ctrl-C; prints the ``grpc://`` URL workers use (alone on stdout, for scripts)."""
    from hpdash import proxy

    def ready(url: str) -> None:
        print(url, flush=True)
        print(proxy.describe(args.storage, url), file=sys.stderr, flush=True)

    proxy.serve(args.storage, args.host, args.port, threads=args.threads, ready=ready)
    print("hpdash proxy: stopped", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpdash", description="Hyperparameter tuning with Optuna, stored in SQLite.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--storage", help="Optuna storage URL (default: $HPDASH_STORAGE or sqlite:///data/hpdash.db)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", parents=[common], help="create and run a study from a spec file")
    p.add_argument(
        "spec",
        help="spec file (YAML/JSON); its optional split_seed (holdout, CV folds, model seeds) and "
        "sampler_seed (the search) default to its seed",
    )
    p.add_argument("--workers", type=int)
    p.add_argument("--name", help="override the spec's study name")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", parents=[common], help="run trials of an existing study (one process)")
    p.add_argument("study")
    p.add_argument("--worker-index", type=int, default=0)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("list", parents=[common], help="list studies")
    p.set_defaults(func=cmd_list)
    for name, func, text in (
        ("show", cmd_show, "show a study's spec and result"),
        ("refit", cmd_refit, "refit the best trial on the training part"),
        ("stop", cmd_stop, "ask a running study to stop"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("study")
        p.set_defaults(func=func)

    p = sub.add_parser("resume", parents=[common], help="start workers again on a study")
    p.add_argument("study")
    p.add_argument("--workers", type=int)
    p.add_argument("--detach", action="store_true", help="return at once; workers keep running")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "export",
        parents=[common],
        help="export a study or a comparison (CSV or HTML; a comparison's results also as JSON)",
    )
    p.add_argument("study", nargs="?", help="study name (or use --experiment or --studies)")
    p.add_argument("--experiment", help="experiment ID")
    p.add_argument("--studies", nargs="+", metavar="STUDY", help="hand-picked studies to compare (two or more)")
    p.add_argument(
        "--format",
        choices=["csv", "html", "json"],
        default="csv",
        help="csv: the trials; html: the report; json (a comparison only): every number the report shows "
        "(design, per-run results, tests, random-search baseline, normalised scores, ranks, Friedman/Nemenyi, "
        "runtime ECDF, tie sets, bias-corrected scores), NaN as null",
    )
    p.add_argument("--out", "--output", dest="out", help="the file to write (JSON: default stdout)")
    p.add_argument(
        "--no-extras",
        action="store_true",
        help="JSON: leave out the per-study tie sets and the bias-corrected (BBC-CV) scores, which reload "
        "each study's data (null in the document)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "compare", parents=[common], help="run an experiment: several strategies x several seeds, same budget"
    )
    p.add_argument(
        "spec",
        help="spec file; its name is the experiment ID, its seed (or sampler_seed) the first repeat's seed",
    )
    p.add_argument("--strategies", default="grid,random,tpe,gp", help="comma-separated (default: grid,random,tpe,gp)")
    p.add_argument("--repeats", type=int, default=3, help="seeds per strategy (default 3)")
    p.add_argument(
        "--split",
        choices=["per_repeat", "shared"],
        default="per_repeat",
        help="the data split across repeats: per_repeat (default) draws a new holdout, new CV folds and "
        "new model seeds for every repeat, so repeats differ in split luck and sampler luck; shared "
        "keeps the spec's split_seed for every repeat, so only the sampler's seed varies",
    )
    p.add_argument("--workers", type=int, help="worker processes per study (default 1)")
    p.add_argument(
        "--parallel", type=int, help="studies running at once (default: HPDASH_MAX_WORKERS, i.e. the CPUs, / workers)"
    )
    p.add_argument("--name", help="override the spec's name (the experiment ID)")
    p.add_argument("--report", help="also write the HTML report to this file")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "queue",
        parents=[common],
        help="run a created experiment's studies a few at a time (what the New study page starts)",
    )
    p.add_argument("experiment", help="experiment ID")
    p.add_argument("--workers", type=int, default=1, help="worker processes per study (default 1)")
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("dataset", help="dataset tools")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    c = dsub.add_parser("check", help="check that a CSV/Parquet file is usable and print its profile")
    c.add_argument("file")
    c.add_argument("--target", required=True)
    c.add_argument("--task", default="auto", choices=["auto", "classification", "regression"])
    c.add_argument("--folds", type=int, default=5)
    c.set_defaults(func=cmd_dataset_check)

    p = sub.add_parser("init", parents=[common], help="create the storage and catalogue")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "proxy", parents=[common], help="serve the study database to many workers (Optuna's gRPC storage proxy)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--port", type=int, default=13000, help="port to listen on (default 13000; 0: a free port)")
    p.add_argument(
        "--threads", type=int, default=8, help="requests served at once, one database connection each (default 8)"
    )
    p.set_defaults(func=cmd_proxy)
    return parser


#: Whether ``main`` is the process's entry point (called without ``argv``).
_PROCESS_ENTRY = False
#: What a shell reports for a process ended by SIGPIPE (128 + 13), as `yes | head` ends.
EXIT_BROKEN_PIPE = 141
#: Commands whose process ends once the command returns: nothing left to tear down, so they
#: end through ``exit_now`` when ``main`` is the process's entry point.
PROCESS_COMMANDS = ("run", "worker")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    With ``argv`` None, ``main`` is the process's entry point (``python -m hpdash``, the
    ``hpdash`` script): ``run`` and ``worker`` then end the process through ``exit_now``.
    Output to a closed pipe (``hpdash list | head``) ends the command quietly with
    ``EXIT_BROKEN_PIPE``, as other command-line tools end.
    """
    global _PROCESS_ENTRY
    args = build_parser().parse_args(argv)
    _PROCESS_ENTRY = argv is None
    if _PROCESS_ENTRY:
        # This process is a command, not a program that imports hpdash: the library may pause
        # the collector while it bulk-reads a study (hpdash.runtime).
        runtime.pause_gc_during_bulk_reads()
    if _PROCESS_ENTRY and args.command in PROCESS_COMMANDS:
        gc.disable()  # for the start-up only: see _freeze_startup_objects, which turns it on
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except HpdashError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except BrokenPipeError:
        # Whatever is still buffered goes nowhere: point stdout at /dev/null, so the
        # interpreter's own flush at exit does not fail on the closed pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        code = EXIT_BROKEN_PIPE
    if argv is None and args.command in PROCESS_COMMANDS:
        exit_now(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
