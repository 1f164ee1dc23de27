"""The final model as a download: skops (safe to load) beside joblib.

Why two formats:

- ``joblib`` (pickle) is what scikit-learn documents and what most code loads, but **loading a
  pickle runs arbitrary code**: a model file from someone else can do anything your account
  can. Only load joblib files you made yourself.
- ``skops`` (``.skops``) stores the same fitted pipeline without pickle. ``skops.io.load``
  rebuilds only types you trust and refuses anything else, so a tampered file fails to load
  instead of running code. :func:`load_skops` trusts only scikit-learn, NumPy and SciPy
  types (everything an hpdash pipeline is built from) and names any other type it finds.

``refit`` in :mod:`hpdash.runner` writes both files next to each other in ``<data>/models/``
and records their SHA-256 in the study's ``hpdash.refit`` attribute.
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
    """What the UI offers for download: one entry per format that exists on disk.

    Each entry: ``format``, ``path``, ``file_name``, ``sha256``, ``note`` (why it matters),
    skops first.
    """
    if not refit_info:
        return []
    out = []
    for fmt, key, sha_key in (("skops", "skops_path", "skops_sha256"), ("joblib", "path", "sha256")):
        value = refit_info.get(key)
        if value and Path(value).is_file():
            out.append({"format": fmt, "path": str(value), "file_name": Path(value).name,
                        "sha256": refit_info.get(sha_key), "note": FORMATS[fmt]})
    return out
