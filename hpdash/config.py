"""Where hpdash keeps its files and which storage it uses.

Everything is read from the environment at call time, so tests can point a process at a
temporary directory with ``HPDASH_DATA_DIR`` and ``HPDASH_STORAGE``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hpdash.errors import DatasetError, HpdashError, SpecError, StorageError

DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_GRID_LIMIT = 10_000
DEFAULT_MAX_EXPERIMENT_STUDIES = 60
DEFAULT_MAX_EXPERIMENT_TRIALS = 100_000
DEFAULT_MAX_COLUMNS = 2_000
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_CELLS = 50_000_000
DEFAULT_HEARTBEAT_INTERVAL = 5  # seconds between a running trial's heartbeats
DEFAULT_GRACE_PERIOD = 20  # a trial with no heartbeat for this long is stale
DEFAULT_MAX_OOF_ROWS = 50_000  # most training-part rows whose out-of-fold predictions a trial keeps
READ_ONLY_ENV = "HPDASH_READ_ONLY"
PASSWORD_ENV = "HPDASH_PASSWORD"
#: Sign-in with OIDC (``st.login``): who may write. Comma-separated e-mail addresses, an entry
#: starting with "@" naming a whole domain; everyone else signed in is a viewer.
EDITORS_ENV = "HPDASH_EDITORS"
#: The ID-token claim that may carry roles (a string or a list), and the role that makes an
#: editor in it.
ROLE_CLAIM_ENV = "HPDASH_ROLE_CLAIM"
EDITOR_ROLE_ENV = "HPDASH_EDITOR_ROLE"
DEFAULT_ROLE_CLAIM = "roles"
DEFAULT_EDITOR_ROLE = "editor"


def setting(name: str) -> str:
    """The raw text of the ``HPDASH_*`` variable ``name`` ("" when unset), read at call time."""
    return os.environ.get(name, "")


def data_dir() -> Path:
    """The data directory: ``$HPDASH_DATA_DIR`` or ``./data``; created on first use."""
    path = Path(os.environ.get("HPDASH_DATA_DIR") or "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir() -> Path:
    """Content-addressed dataset files: ``<data>/datasets/<sha256>.<ext>``."""
    path = data_dir() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Refit final models: ``<data>/models/``."""
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir(create: bool = True) -> Path:
    """Optuna artifacts (``optuna.artifacts.FileSystemArtifactStore``), one folder per study:
    ``<data>/artifacts/<study>/``, which holds each trial's out-of-fold predictions. Created
    on first use unless ``create`` is false (a reader)."""
    path = data_dir() / "artifacts"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


ARTIFACT_STORE_ENV = "HPDASH_ARTIFACT_STORE"
S3_ENDPOINT_ENV = "HPDASH_S3_ENDPOINT_URL"


def artifact_store_url() -> str:
    """The team's artifact store for datasets and final models (``hpdash.artifacts``):
    ``$HPDASH_ARTIFACT_STORE``, either ``s3://bucket[/prefix]`` or a folder (a path or a
    ``file://`` URL) that every machine of the team mounts; "" means the file-system store
    under this machine's data directory (``shared_artifacts_dir``)."""
    return setting(ARTIFACT_STORE_ENV).strip()


def s3_endpoint_url() -> str | None:
    """The endpoint of an S3-compatible server (MinIO, Ceph, moto...):
    ``$HPDASH_S3_ENDPOINT_URL``, else ``$AWS_ENDPOINT_URL``; None for Amazon S3 itself."""
    return (setting(S3_ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL", "")).strip() or None


def shared_artifacts_dir() -> Path:
    """The default team artifact store: ``<data>/artifacts/_shared``. The leading "_" keeps it
    apart from the per-study folders beside it (no study name starts with "_")."""
    path = artifacts_dir() / "_shared"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db_path() -> Path:
    """The embedded SQLite file that holds Optuna's tables and the catalogue by default."""
    return data_dir() / "hpdash.db"


def storage_url(override: str | None = None) -> str:
    """The Optuna storage URL: ``override``, ``$HPDASH_STORAGE`` or the embedded SQLite file."""
    url = override or os.environ.get("HPDASH_STORAGE")
    return url or f"sqlite:///{default_db_path()}"


def catalogue_path(storage: str | None = None) -> Path:
    """The SQLite file for the app's ``hpdash_*`` tables.

    It shares the Optuna file when the storage is SQLite, and stays local to the dashboard
    (``<data>/hpdash.db``) when the storage is a server database.
    """
    url = storage_url(storage)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    return default_db_path()


def max_upload_bytes() -> int:
    """Upload size limit in bytes (``$HPDASH_MAX_UPLOAD_MB``, default 200 MB)."""
    return int(float(os.environ.get("HPDASH_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)) * 1024 * 1024)


def grid_limit() -> int:
    """Largest grid hpdash will run (``$HPDASH_GRID_LIMIT``, default 10,000 points)."""
    return int(os.environ.get("HPDASH_GRID_LIMIT", DEFAULT_GRID_LIMIT))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """Most worker processes one launch may start on this machine (``$HPDASH_MAX_WORKERS``,
    default: the usable CPUs). Worker processes are CPU-bound fits, so more of them than cores
    only makes every trial slower; the cap also bounds what one click can ask for."""
    return _positive_int_env("HPDASH_MAX_WORKERS", usable_cpus())


def _whole_number_env(
    name: str, default: int, *, error: type[HpdashError] = SpecError, unit: str = "", clamp: bool = False
) -> int:
    """``$name`` as a whole number of at least 1 (of ``unit``s, for the messages); ``default``
    when unset or blank. Anything else raises ``error`` (the kind of the setting: a spec
    limit, a table limit, a storage setting) naming the variable and the fix. With ``clamp``,
    a number below 1 counts as 1 (a cap on what one launch may start) instead of an error."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    of_unit = f" of {unit}s" if unit else ""
    try:
        value = int(raw.strip())
    except ValueError:
        raise error(
            f"{name} must be a whole number{of_unit}, got {raw!r}. Set it to a number such as "
            f"{default}, or unset it for the default ({default:,})."
        ) from None
    if value < 1:
        if clamp:
            return 1
        raise error(
            f"{name} must be at least 1{' ' + unit if unit else ''}, got {value}: raise it, or unset it for "
            f"the default ({default:,})."
        )
    return value


def _positive_int_env(name: str, default: int) -> int:
    """A cap from ``$name``: a whole number, below 1 counted as 1 (``_whole_number_env``)."""
    return _whole_number_env(name, default, clamp=True)


def max_experiment_studies() -> int:
    """Most studies one experiment may have, strategies x repeats
    (``$HPDASH_MAX_EXPERIMENT_STUDIES``, default 60). Every study is an Optuna study with its
    budget slots written up front, so this bounds what one "Compare strategies" click creates."""
    return _positive_int_env("HPDASH_MAX_EXPERIMENT_STUDIES", DEFAULT_MAX_EXPERIMENT_STUDIES)


def max_experiment_trials() -> int:
    """Most trials one experiment may ask for, summed over its studies' trial budgets
    (``$HPDASH_MAX_EXPERIMENT_TRIALS``, default 100,000). The budget slots of every study are
    created with the experiment, and each trial is a cross-validated fit."""
    return _positive_int_env("HPDASH_MAX_EXPERIMENT_TRIALS", DEFAULT_MAX_EXPERIMENT_TRIALS)


DEFAULT_MAX_CHOICES = 1_000
DEFAULT_MAX_TRIALS = 10_000


def max_choices() -> int:
    """Most choices one categorical hyperparameter may list (``$HPDASH_MAX_CHOICES``, default
    1,000). A search tries a handful of a hyperparameter's values, never thousands; a far longer
    list is pasted data, and checking it, drawing the grid or the form for it is very slow."""
    return _positive_int_env("HPDASH_MAX_CHOICES", DEFAULT_MAX_CHOICES)


def max_trials() -> int:
    """Most trials one study may budget (``$HPDASH_MAX_TRIALS``, default 10,000, the default
    grid limit). The budget is written up front as one slot row per trial, and every trial is
    a cross-validated fit: a much larger budget takes a lot of memory before the first fit,
    and far longer to run than a study should."""
    return _positive_int_env("HPDASH_MAX_TRIALS", DEFAULT_MAX_TRIALS)


def max_oof_rows() -> int:
    """Most rows a study's training part may have for its trials to keep their out-of-fold
    predictions (``$HPDASH_MAX_OOF_ROWS``, default 50,000): each COMPLETE trial stores one
    compressed file of a few bytes per row and class, for the selection-bias estimate."""
    return _positive_int_env("HPDASH_MAX_OOF_ROWS", DEFAULT_MAX_OOF_ROWS)


# -- table limits (checked on every upload, raise DatasetError) --------------------------
def _env_limit(name: str, default: int) -> int:
    """A table limit from ``$name`` (``_whole_number_env``, raising ``DatasetError``)."""
    return _whole_number_env(name, default, error=DatasetError)


def max_columns() -> int:
    """Most columns a table may have (``$HPDASH_MAX_COLUMNS``, default 2,000)."""
    return _env_limit("HPDASH_MAX_COLUMNS", DEFAULT_MAX_COLUMNS)


def max_rows() -> int:
    """Most data rows an uploaded table may have (``$HPDASH_MAX_ROWS``, default 1,000,000)."""
    return _env_limit("HPDASH_MAX_ROWS", DEFAULT_MAX_ROWS)


def max_cells() -> int:
    """Most cells (rows x columns) an uploaded table may have (``$HPDASH_MAX_CELLS``, default
    50,000,000)."""
    return _env_limit("HPDASH_MAX_CELLS", DEFAULT_MAX_CELLS)


# -- heartbeats (raise StorageError) --------------------------------------------------------
def _seconds_env(name: str, default: int) -> int:
    """A heartbeat setting in seconds from ``$name`` (``_whole_number_env``, raising
    ``StorageError``)."""
    return _whole_number_env(name, default, error=StorageError, unit="second")


def heartbeat_interval() -> int:
    """Seconds between heartbeats of a running trial (``$HPDASH_HEARTBEAT_INTERVAL``, default 5)."""
    return _seconds_env("HPDASH_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL)


def grace_period() -> int:
    """Seconds without a heartbeat after which a RUNNING trial is failed and retried
    (``$HPDASH_GRACE_PERIOD``, default 20; always more than the heartbeat interval)."""
    value = _seconds_env("HPDASH_GRACE_PERIOD", DEFAULT_GRACE_PERIOD)
    interval = heartbeat_interval()
    if value <= interval:
        raise StorageError(
            f"HPDASH_GRACE_PERIOD ({value} s) must be longer than the heartbeat interval "
            f"({interval} s), or live trials would be failed as stale."
        )
    return value


# -- the Dask cluster (raise SpecError) ------------------------------------------------------
DASK_SCHEDULER_ENV = "HPDASH_DASK_SCHEDULER"
#: Set by ``hpdash.cluster`` in the environment of a worker it starts on a Dask worker: that
#: Dask worker's name and address, which the worker writes into its ``hpdash.worker.*`` record.
DASK_WORKER_NAME_ENV = "HPDASH_DASK_WORKER_NAME"
DASK_WORKER_ADDRESS_ENV = "HPDASH_DASK_WORKER_ADDRESS"
_DASK_PROTOCOLS = ("tcp://", "tls://", "ws://", "wss://")


def dask_scheduler() -> str | None:
    """The Dask scheduler that studies may be sent to (``$HPDASH_DASK_SCHEDULER``, such as
    ``tcp://10.0.0.5:8786``), or None when unset. A value that is not a scheduler address
    (a protocol, a host and a port) raises ``SpecError`` naming the variable and the fix."""
    raw = setting(DASK_SCHEDULER_ENV).strip()
    if not raw:
        return None
    protocol = next((p for p in _DASK_PROTOCOLS if raw.startswith(p)), None)
    host, _, port = raw[len(protocol or "") :].rpartition(":")
    if protocol is None or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(
            f"{DASK_SCHEDULER_ENV} must be a Dask scheduler address such as tcp://10.0.0.5:8786 "
            f"(protocol, host and port, as `dask scheduler` prints it), got {raw[:200]!r}. "
            "Fix it, or unset it to run workers on this machine only."
        )
    return raw


def dask_worker_record() -> dict[str, str]:
    """The Dask worker this process runs on, for its worker record (``dask_worker``,
    ``dask_address``), when ``hpdash.cluster`` started it there; empty otherwise."""
    name = setting(DASK_WORKER_NAME_ENV)
    address = setting(DASK_WORKER_ADDRESS_ENV)
    return {"dask_worker": name, "dask_address": address} if name or address else {}
