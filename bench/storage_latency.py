"""The storage round trip of a trial against the number of worker processes (issue 17).

For each storage (the embedded SQLite file, PostgreSQL directly, and PostgreSQL through
``hpdash proxy``, Optuna's gRPC storage proxy) and each number of worker processes (1, 4, 16,
32, 64; ``quick``: 1, 4, 16), that many processes are forked at once, each opens its own
storage as a worker does (``storage.open_study_storage``: hpdash's pools, without heartbeats)
and runs Optuna's own ``ask`` + ``suggest_float`` + ``tell`` with a trivial objective for
``CELL_SECONDS``. Each round trip is timed in its process; the table gives the p50 and p95 over
all of them, the ratio of the p95 to the same storage's one-worker p95 measured in the same run
(the baseline), and, per storage, the largest worker count whose p95 stays under 100 ms.

PostgreSQL comes from ``$HPDASH_TEST_POSTGRES`` (default: the test server of ``.ci/run``); a
throwaway database is created and dropped. Without a server its rows are left out, with a note.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from bench.common import Report

COUNTS = (1, 4, 16, 32, 64)
QUICK_COUNTS = (1, 4, 16)
CELL_SECONDS = 3.0
QUICK_CELL_SECONDS = 1.5
P95_BOUND_MS = 100.0
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent


def _round_trips(url: str, study_name: str, start: Any, seconds: float, out: Any) -> None:
    """One forked worker: ask + suggest + tell until ``seconds`` after the common start."""
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from hpdash import storage

    try:
        store = storage.open_study_storage(url, heartbeat=False)
        study = optuna.load_study(study_name=study_name, storage=store, sampler=optuna.samplers.RandomSampler())
        start.wait()
        deadline = time.perf_counter() + seconds
        times = []
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
            times.append(time.perf_counter() - began)
        out.put(times)
    except BaseException as exc:  # reported by the parent, which waits for every child
        import traceback

        out.put(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        storage.close_all()
        out.close()
        out.join_thread()  # the queue's feeder thread sends the times before the process ends
        os._exit(0)


def _cell(url: str, study_url: str, workers: int, seconds: float) -> list[float]:
    """All round-trip times of ``workers`` processes on a fresh study at ``url``."""
    from hpdash import storage

    name = f"latency-{workers}-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage.open_storage(study_url, heartbeat=False))
    storage.close_all()  # nothing pooled is inherited by the children
    context = multiprocessing.get_context("fork")
    start, out = context.Event(), context.Queue()
    procs = [context.Process(target=_round_trips, args=(url, name, start, seconds, out)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(0.5 + 0.02 * workers)  # let every child open its storage before the clock starts
    start.set()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise RuntimeError(f"{len(errors)} of {workers} workers failed: {errors[0]}")
    return [t for times in results for t in times]


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@contextmanager
def _postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL database's URL, dropped afterwards; None without a server."""
    try:
        import psycopg
    except ImportError:
        yield None
        return
    base = os.environ.get("HPDASH_TEST_POSTGRES") or DEFAULT_POSTGRES
    plain = base.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"hpdash_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(plain, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield None
        return
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def _proxy(database: str) -> Iterator[str]:
    """``python -m hpdash proxy`` in front of ``database``; yields the grpc:// URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpdash", "proxy", "--storage", database, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(60)
    try:
        if not line or not line[0].startswith("grpc://"):
            raise RuntimeError("hpdash proxy did not start")
        yield line[0].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _measure(report: Report, label: str, url: str, study_url: str, counts: tuple[int, ...], seconds: float) -> None:
    baseline_p95: float | None = None
    largest_ok = 0
    for workers in counts:
        times_ms = [t * 1000 for t in _cell(url, study_url, workers, seconds)]
        p50, p95 = _percentile(times_ms, 50), _percentile(times_ms, 95)
        baseline_p95 = p95 if baseline_p95 is None else baseline_p95
        if p95 < P95_BOUND_MS:
            largest_ok = workers
        report.add(
            f"storage round trip (ask + tell), {label}, {workers} worker process(es), {len(times_ms)} trials",
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
            f"1 worker: p95 {baseline_p95:.1f} ms",
            f"p95 {p95 / baseline_p95:.1f}x",
            "informational",
            None,
        )
    report.add(
        f"storage round trip, {label}: largest worker count with p95 < {P95_BOUND_MS:g} ms",
        f"{largest_ok} of {', '.join(map(str, counts))}" if largest_ok else f"none of {', '.join(map(str, counts))}",
        "-",
        "-",
        "informational",
        None,
    )


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    counts = QUICK_COUNTS if quick else COUNTS
    seconds = QUICK_CELL_SECONDS if quick else CELL_SECONDS
    sqlite = f"sqlite:///{workdir / 'latency.db'}"
    _measure(report, "SQLite", sqlite, sqlite, counts, seconds)
    with _postgres() as postgres:
        if postgres is None:
            report.notes.append("storage latency: no PostgreSQL server answered, so its rows are left out.")
            return
        _measure(report, "PostgreSQL", postgres, postgres, counts, seconds)
        with _proxy(postgres) as proxied:
            _measure(report, "gRPC proxy -> PostgreSQL", proxied, postgres, counts, seconds)
    report.notes.append(
        f"storage latency: each cell forks that many processes at once, each timing Optuna's ask + "
        f"suggest_float + tell for {seconds:g} s on hpdash's worker storage (no heartbeats); the proxy "
        "runs its default 8 threads, so 8 database connections serve every worker."
    )
