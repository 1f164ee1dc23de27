"""The final model as a download: skops (safe to load) beside joblib.

Why two formats:

- ``joblib`` (pickle) is what scikit-learn documents and what most code loads, but **loading a
  pickle runs arbitrary code**: a model file from someone else can do anything your account
  can. Only load joblib files you made yourself.
- ``skops`` (``.skops``) stores the same fitted pipeline without pickle. ``skops.io.load``
  rebuilds only types you trust and refuses anything else, so a tampered file fails to load
  instead of running code. :func:`load_skops` trusts only scikit-learn, NumPy and SciPy
  types (everything an hpdash pipeline is built from) and names any other type it finds.

``refit`` in :mod:`hpdash.runner` writes the joblib file to ``<data>/models/`` and records
its SHA-256 in the study's ``hpdash.refit`` attribute. The ``.skops`` file beside it is made
from that joblib file on first download (:func:`ensure_skops`): importing ``skops.io`` costs
3-4 s (it imports every scikit-learn estimator, and PyTorch's array-API shim when PyTorch is
installed), and paying that in every worker would delay the end of every study
(docs/PERFORMANCE.md, tuning overhead).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from hpdash.errors import StorageError

SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")
FORMATS = {
    "skops": "Safe to load: skops rebuilds only trusted scikit-learn/NumPy types and never runs code from the file.",
    "joblib": "Pickle: loading it can run arbitrary code. Only load files you made or trust.",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_skops(model: Any, path: str | Path) -> str:
    """Write ``model`` with skops to ``path`` atomically; return the file's SHA-256."""
    import skops.io as sio

    target = Path(path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # concurrent refits write apart
    try:
        sio.dump(model, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"Could not write the model file {target}: {exc.strerror or exc}") from exc
    return _sha256(target)


def skops_file_of(refit_info: dict[str, Any]) -> Path:
    """Where the skops copy of a refit model lives: beside its joblib file."""
    return Path(refit_info["path"]).with_suffix(".skops")


def ensure_skops(refit_info: dict[str, Any]) -> tuple[Path, str]:
    """The skops file of a refit model and its SHA-256, made from the joblib file if needed.

    The joblib file is loaded only when its SHA-256 equals the one the refit recorded in the
    study, i.e. it is the file hpdash wrote; anything else is refused, since loading a pickle
    runs code.
    """
    import joblib

    source = Path(refit_info["path"])
    target = skops_file_of(refit_info)
    if not source.is_file():
        raise StorageError(f"The model file {source} is missing. Refit to create it again.")
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target, _sha256(target)
    if _sha256(source) != refit_info.get("sha256"):
        raise StorageError(
            f"The model file {source.name} is not the one this study's refit wrote (its SHA-256 "
            "differs), so it was not loaded. Refit again to make a new one."
        )
    return target, save_skops(joblib.load(source), target)


def skops_bytes(refit_info: dict[str, Any]) -> bytes:
    """The skops file's bytes, making the file first when needed (for a download button)."""
    path, _ = ensure_skops(refit_info)
    return path.read_bytes()


def untrusted_types(path: str | Path) -> list[str]:
    """Types in a skops file that are outside scikit-learn, NumPy and SciPy."""
    import skops.io as sio

    return [t for t in sio.get_untrusted_types(file=Path(path)) if not t.startswith(SAFE_PREFIXES)]


def load_skops(path: str | Path) -> Any:
    """Load a skops model, trusting only scikit-learn, NumPy and SciPy types.

    Raises :class:`StorageError` naming the other types when the file holds any.
    """
    import skops.io as sio

    path = Path(path)
    others = untrusted_types(path)
    if others:
        raise StorageError(
            f"{path.name} contains types hpdash does not trust: {', '.join(sorted(others))}. "
            "It was not made by hpdash; it was not loaded."
        )
    trusted = sio.get_untrusted_types(file=path)
    return sio.load(path, trusted=trusted)


def model_downloads(refit_info: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What the UI offers for download, skops first, when the refit's joblib file exists.

    Each entry: ``format``, ``path``, ``file_name``, ``sha256`` (None while the skops file
    is not made yet), ``ready`` (the file exists) and ``note`` (why the format matters).
    """
    if not refit_info or not refit_info.get("path") or not Path(refit_info["path"]).is_file():
        return []
    source = Path(refit_info["path"])
    skops = skops_file_of(refit_info)
    skops_ready = skops.is_file() and skops.stat().st_mtime >= source.stat().st_mtime
    return [
        {"format": "skops", "path": str(skops), "file_name": skops.name, "ready": skops_ready,
         "sha256": _sha256(skops) if skops_ready else None, "note": FORMATS["skops"]},
        {"format": "joblib", "path": str(source), "file_name": source.name, "ready": True,
         "sha256": refit_info.get("sha256"), "note": FORMATS["joblib"]},
    ]
