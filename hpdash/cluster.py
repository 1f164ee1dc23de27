"""Run a study's workers on a Dask cluster (``distributed``) instead of on this machine.

The scheduler is ``$HPDASH_DASK_SCHEDULER`` (``tcp://host:8786``). A launch submits one Dask
task per hpdash worker; each task starts the same command a local launch starts,
``python -m hpdash worker STUDY --storage URL --worker-index I`` (``runner.worker_command``),
as a child process of the Dask worker, and waits for it. A child process rather than
``runner.run_worker`` in the Dask worker's thread, because a worker process is built to own its
process: its SIGTERM handler (``runner.stop_study`` signals the pid in its record), its
trials' forkserver child for ``trial_timeout``, and its ``os._exit`` at the end would all act
on the Dask worker itself. A child that crashes or is killed ends only its task, which
returns the exit code; the Dask worker keeps serving.

Tasks are submitted with ``pure=False`` (two launches of one study are two runs, never one
cached result), ``retries=0`` (a worker that exits with an error, such as a missing dataset,
would fail the same way again; a worker whose machine is lost is replaced by hpdash's own
stale-trial retry and by Dask rescheduling the task of a lost Dask worker), and no Dask
resources: each task holds one thread of a Dask worker while its child runs, so a Dask worker
started with ``--nthreads N`` runs at most N hpdash workers. They are kept by
``fire_and_forget``: they run to the end even when the submitting client (a page of the
dashboard) goes away, as local workers outlive the page.

Each worker writes the Dask worker's name and address into its ``hpdash.worker.<host>.<pid>``
record (``config.dask_worker_record``), which ``cluster_workers`` reads for the Study page.
Stopping is ``runner.stop_study``: the stop flag every worker reads with its beat.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpdash import access, config
from hpdash.errors import ClusterError, SpecError

if TYPE_CHECKING:
    from distributed import Client, Future

    from hpdash.spec import StudySpec

# The task side of this module (``run_worker_task``, unpickled on every Dask worker) imports
# only the standard library and ``hpdash.config``: importing ``hpdash.runner`` (scikit-learn,
# Optuna, pandas) costs about 3 s and 230 MB, which a Dask worker would hold for nothing, since
# its child process does the work. The launching side imports ``runner`` and ``distributed``
# when it launches.

#: How long connecting to the scheduler may take before the launch is refused.
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerRun:
    """What one Dask task reports when its hpdash worker process has ended."""

    index: int
    dask_worker: str
    dask_address: str
    host: str
    pid: int
    exit_code: int
    log: str  # the worker's log file, on the Dask worker's machine


@dataclass
class ClusterLaunch:
    """The workers of one launch on a Dask cluster. They run whether or not anyone waits."""

    study: str
    scheduler: str
    client: Client
    futures: list[Future]

    def wait(self, timeout: float | None = None) -> list[WorkerRun]:
        """Wait until every worker has ended (``ClusterError`` after ``timeout`` seconds) and
        return their reports, in worker order."""
        deadline = None if timeout is None else time.monotonic() + timeout
        runs = []
        for future in self.futures:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                runs.append(future.result(timeout=left))
            except TimeoutError:
                running = sum(not f.done() for f in self.futures)
                raise ClusterError(
                    f"{running} of the {len(self.futures)} cluster workers of study {self.study!r} are still "
                    f"running after {timeout:g} s. They keep running: see the Study page, or stop the study."
                ) from None
            except Exception as exc:  # the task itself failed on its Dask worker (not the worker process)
                raise ClusterError(
                    f"A cluster task of study {self.study!r} failed on its Dask worker: {type(exc).__name__}: {exc}. "
                    "Check that hpdash and its requirements are installed where the Dask workers run."
                ) from exc
        return runs

    def close(self) -> None:
        """Close this launch's connection to the scheduler; the workers keep running."""
        self.client.close()


def scheduler_address(scheduler: str | None = None) -> str:
    """``scheduler``, else ``$HPDASH_DASK_SCHEDULER``; ``SpecError`` when neither is set."""
    address = scheduler or config.dask_scheduler()
    if address is None:
        raise SpecError(
            f"No Dask scheduler is configured: set {config.DASK_SCHEDULER_ENV} to its address, such as "
            "tcp://10.0.0.5:8786 (what `dask scheduler` prints), or run the study on this machine."
        )
    return address


def connect(scheduler: str | None = None) -> Client:
    """A client of the Dask scheduler (``scheduler_address``), or ``ClusterError`` when it
    does not answer within ``CONNECT_TIMEOUT_SECONDS``."""
    from distributed import Client

    address = scheduler_address(scheduler)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
    except OSError as exc:  # distributed's "Timed out trying to connect", refused, unknown host
        raise ClusterError(
            f"The Dask scheduler at {address} did not answer: {exc}. Start it (`dask scheduler`), check "
            f"{config.DASK_SCHEDULER_ENV} and that this machine reaches it, or run the study on this machine."
        ) from None


def scheduler_of(client: Client) -> str:
    """The address of the scheduler ``client`` is connected to."""
    return str(client.scheduler.address if client.scheduler is not None else client.scheduler_info()["address"])


def cluster_threads(client: Client) -> int:
    """How many tasks the cluster runs at once: the threads of all its Dask workers."""
    return sum(int(n) for n in client.nthreads().values())


def check_cluster_workers(workers: int, client: Client) -> int:
    """``workers`` if the cluster can run that many hpdash workers at once, else an error
    naming what it has: ``ClusterError`` for a cluster with no Dask worker, ``SpecError`` for
    more workers than its threads (the extra ones would only wait for the others to end)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise SpecError(f"The number of workers must be a whole number of at least 1, got {workers!r}.")
    threads = cluster_threads(client)
    address = scheduler_of(client)
    if threads == 0:
        raise ClusterError(
            f"The Dask cluster at {address} has no worker. Start some on the machines that should run "
            f"trials: `dask worker {address} --nthreads 1` (one thread per hpdash worker)."
        )
    if workers > threads:
        raise SpecError(
            f"{workers} workers were asked for, but the Dask cluster at {address} runs {threads} task(s) at "
            f"once (the threads of its workers). Ask for {threads} or fewer, or start more Dask workers."
        )
    return workers


def launch_on_cluster(
    name: str,
    storage: str | None = None,
    workers: int = 1,
    *,
    scheduler: str | None = None,
    client: Client | None = None,
) -> ClusterLaunch:
    """Start ``workers`` hpdash workers of study ``name`` on the Dask cluster.

    Everything is checked before the launch is recorded on the study: writes allowed, the
    scheduler reachable (``ClusterError``), the cluster big enough, the study there. The
    storage URL must reach the database from the Dask workers' machines (a PostgreSQL server,
    or a SQLite file only when every Dask worker is on this machine). ``client``: a connection
    the caller opened (``start_on_cluster``); otherwise one is opened for this launch.
    """
    from distributed import fire_and_forget

    from hpdash import runner

    access.require_writable("launch workers")
    own_client = client is None
    client = client or connect(scheduler)
    try:
        check_cluster_workers(workers, client)
        runner.mark_launched(name, storage)  # StudyNotFoundError before anything is submitted
        url = config.storage_url(storage)
        data_dir = str(config.data_dir())
        launch = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                run_worker_task,
                index,
                runner.worker_command(name, url, index)[1:],  # the task puts its own Python first
                runner.worker_log_name(name, index),
                url,
                data_dir,
                key=f"hpdash-worker-{name}-{index}-{launch}",
                pure=False,
                retries=0,
            )
            for index in range(workers)
        ]
        fire_and_forget(futures)
    except BaseException:
        if own_client:
            client.close()
        raise
    return ClusterLaunch(name, scheduler_of(client), client, futures)


def start_on_cluster(spec: StudySpec, storage: str | None = None, *, scheduler: str | None = None) -> ClusterLaunch:
    """Create the study of ``spec`` and launch its ``spec.workers`` workers on the cluster,
    connecting first, so an unreachable scheduler creates no study. The New study page's
    "Run on: Dask cluster"; close the returned launch when its workers need no waiting for."""
    from hpdash import runner

    access.require_writable("create a study")
    client = connect(scheduler)
    try:
        check_cluster_workers(spec.workers, client)
        runner.create_study(spec, storage)
        return launch_on_cluster(spec.name, storage, spec.workers, client=client)
    except BaseException:
        client.close()
        raise


def run_worker_task(index: int, arguments: list[str], log_name: str, url: str, data_dir: str) -> WorkerRun:
    """The Dask task: run hpdash worker ``index`` (``arguments``: ``runner.worker_command``
    after its Python) as a child process of this Dask worker with the Dask worker's Python,
    wait for it and report how it ended.

    Its data directory is the Dask worker's own ``HPDASH_DATA_DIR`` when it has one, else
    ``data_dir``, the launching dashboard's (right on its machine, or on a mount shared at the
    same path). Its log is ``<data>/workers/<log_name>`` there, as for a local worker.
    """
    from distributed import get_worker

    dask = get_worker()
    folder = Path(config.setting("HPDASH_DATA_DIR") or data_dir).resolve()
    logs = folder / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / log_name
    env = {
        **os.environ,
        "HPDASH_DATA_DIR": str(folder),
        "HPDASH_STORAGE": url,
        config.DASK_WORKER_NAME_ENV: str(dask.name),
        config.DASK_WORKER_ADDRESS_ENV: str(dask.address),
    }
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        exit_code = process.wait()
    return WorkerRun(
        index=index,
        dask_worker=str(dask.name),
        dask_address=str(dask.address),
        host=socket.gethostname(),
        pid=process.pid,
        exit_code=exit_code,
        log=str(log_path),
    )


def cluster_workers(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The workers of a study (its user attrs) that ran on a Dask worker, as
    ``runner.workers_of`` gives them (with ``alive``), oldest first."""
    from hpdash import runner

    holder = _Attrs(attrs)
    found = [w for w in runner.workers_of(holder) if w.get("dask_worker") or w.get("dask_address")]
    return sorted(found, key=lambda w: float(w.get("started", 0)))


@dataclass(frozen=True)
class _Attrs:
    """User attrs already read, in the shape ``runner.workers_of`` takes."""

    user_attrs: Mapping[str, Any]
