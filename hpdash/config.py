"""Where hpdash keeps its files and which storage it uses.

Everything is read from the environment at call time, so tests can point a process at a
temporary directory with ``HPDASH_DATA_DIR`` and ``HPDASH_STORAGE``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_GRID_LIMIT = 10_000


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
        return Path(url[len("sqlite:///"):])
    return default_db_path()


def max_upload_bytes() -> int:
    """Upload size limit in bytes (``$HPDASH_MAX_UPLOAD_MB``, default 200 MB)."""
    return int(float(os.environ.get("HPDASH_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)) * 1024 * 1024)


def grid_limit() -> int:
    """Largest grid hpdash will run (``$HPDASH_GRID_LIMIT``, default 10,000 points)."""
    return int(os.environ.get("HPDASH_GRID_LIMIT", DEFAULT_GRID_LIMIT))
