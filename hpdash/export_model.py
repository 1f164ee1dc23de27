"""The final model as a download: skops (safe to load) beside joblib.

Why two formats:

- ``joblib`` (pickle) is what scikit-learn documents and what most code loads, but **loading a
  pickle runs arbitrary code**: a model file from someone else can do anything your account
  can. Only load joblib files you made yourself.
- ``skops`` (``.skops``) stores the same fitted pipeline without pickle. ``skops.io.load``
  rebuilds only types you trust and refuses anything else, so a tampered file fails to load
  instead of running code. :func:`load_skops` trusts only scikit-learn, NumPy and SciPy
  types (everything an hpdash pipeline is built from) and names any other type it finds.

Where the files are: only the study's name decides (:func:`model_files`), never a value read
from the storage. ``<data>/models/<stem>.joblib`` is the refit model, ``<stem>.joblib.sha256``
beside it the SHA-256 the refit computed as it wrote the file (``sha256sum`` format), and
``<stem>.skops`` the safe copy. Anyone who can write to the study storage can rewrite the
``hpdash.refit`` record, so the record's ``path`` and ``sha256`` are only shown, never used to
open, delete or trust a file; the digest file lives in the data directory, which the storage
does not reach, and it alone authorises unpickling the joblib file.

The ``.skops`` file is made from the joblib file on first download (:func:`ensure_skops`):
importing ``skops.io`` is slow (it imports every scikit-learn estimator, and PyTorch's
array-API shim when PyTorch is installed), and paying that in every worker would delay the end
of every study (docs/PERFORMANCE.md, tuning overhead and "Numbers behind the code").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpdash import config
from hpdash.errors import SpecError, StorageError
from hpdash.spec import check_name

if TYPE_CHECKING:
    import optuna

try:  # POSIX; elsewhere model files are written without the lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")
FORMATS = {
    "skops": "Safe to load: skops rebuilds only trusted scikit-learn/NumPy types and never runs code from the file.",
    "joblib": "Pickle: loading it can run arbitrary code. Only load files you made or trust.",
}
#: Stems of names that are not file-safe: this prefix plus the SHA-256 of the name. No study
#: name passing ``check_name`` starts with "_", so such a stem never equals a plain name.
HASHED_STEM_PREFIX = "_sha256-"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]+")


def file_stem(name: str) -> str:
    """The file-name stem of a study's files: the name itself when it passes
    ``hpdash.spec.check_name`` (letters, digits, '.', '_', '-'; no path separators), else
    ``_sha256-<SHA-256 of the name>``, so no name can reach outside a folder or collide."""
    try:
        return check_name(name)
    except SpecError:
        digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()
        return f"{HASHED_STEM_PREFIX}{digest}"


@dataclass(frozen=True)
class ModelFiles:
    """A study's model files, all in ``config.models_dir()``, named from the study name only."""

    stem: str
    folder: Path
    joblib: Path  # the refit pipeline (pickle)
    skops: Path  # the safe copy, made on first download
    digest: Path  # SHA-256 of the joblib file, written by the refit (``sha256sum`` format)

    def owns(self, file_name: str) -> bool:
        """Whether a file name in the models folder is one of these files or a temporary file
        of them (``<file>.<pid>.tmp``, left by a process killed mid-write)."""
        names = {self.joblib.name, self.skops.name, self.digest.name}
        if file_name in names:
            return True
        if not file_name.endswith(".tmp"):
            return False
        base, _, pid = file_name[: -len(".tmp")].rpartition(".")
        return base in names and _DIGITS.fullmatch(pid) is not None


def model_files(name: str) -> ModelFiles:
    """Where the model files of study ``name`` are: ``<data>/models/<stem>.joblib``,
    ``<stem>.skops`` and ``<stem>.joblib.sha256`` (``file_stem``). Raises StorageError if a
    path would resolve outside the models folder."""
    folder = config.models_dir().resolve()
    stem = file_stem(name)
    files = ModelFiles(
        stem=stem,
        folder=folder,
        joblib=folder / f"{stem}.joblib",
        skops=folder / f"{stem}.skops",
        digest=folder / f"{stem}.joblib.sha256",
    )
    for path in (files.joblib, files.skops, files.digest):
        if path.parent.resolve() != folder or path.name in ("", ".", ".."):
            raise StorageError(
                f"The model file name {path.name!r} leaves {folder}; it was not used. "
                "Rename the study to letters, digits, '.', '_' and '-'."
            )
    return files


def _temp(path: Path) -> Path:
    """A temporary file beside ``path`` for this process (concurrent writers write apart)."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _regular(path: Path, folder: Path) -> bool:
    """Whether ``path`` is a regular file inside ``folder`` (not a link out of it)."""
    return path.is_file() and not path.is_symlink() and path.resolve().parent == folder


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise writers of model files: the joblib file and its digest file change together,
    and a skops copy is made from one consistent pair (an exclusive lock on the folder)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file, synced, then ``os.replace``."""
    tmp = _temp(target)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(
            f"Could not write the model file {target}: {exc.strerror or exc}. "
            "Check that the disk has space and the data directory is writable."
        ) from exc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded_digest(files: ModelFiles) -> str | None:
    """The SHA-256 in the study's digest file, or None when it is missing or not a digest."""
    if not _regular(files.digest, files.folder):
        return None
    try:
        first = files.digest.read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return None
    return first[0] if first and _HEX64.fullmatch(first[0]) else None


def save_joblib(name: str, model: Any) -> tuple[Path, str]:
    """Write the refit ``model`` of study ``name`` as its joblib file with the digest file
    beside it, each atomically; drop a skops copy of an older model. Returns the joblib path
    and its SHA-256."""
    import joblib

    files = model_files(name)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    with _locked(files.folder):
        _write_atomic(files.joblib, data)
        _write_atomic(files.digest, f"{sha}  {files.joblib.name}\n".encode("ascii"))
        files.skops.unlink(missing_ok=True)  # made again from the new joblib file on download
    return files.joblib, sha


def store_digest_key(name: str) -> str:
    """The key of study ``name``'s model digest in the team's artifact store
    (``hpdash.artifacts``), made from the study's name only (``file_stem``)."""
    return f"hpdash-model-{file_stem(name)}.joblib.sha256"


def upload_model(study: optuna.Study, name: str) -> str:
    """Upload study ``name``'s refit model to the team's artifact store: the joblib file as an
    artifact of ``study`` (optuna-dashboard lists it), then its digest file under
    ``store_digest_key(name)``, the copy a dashboard on another machine trusts
    (``fetch_model``). Returns the joblib file's artifact id. The file is uploaded only when
    it matches its own digest file, all under the models folder's lock."""
    from hpdash import artifacts

    files = _joblib_file(name)
    with _locked(files.folder):
        sha = recorded_digest(files)
        if sha is None or _sha256(files.joblib) != sha:
            raise StorageError(
                f"The model file {files.joblib.name} does not match its digest file {files.digest.name}, so it "
                "was not uploaded to the artifact store. Refit the study to write both again."
            )
        artifact_id = artifacts.upload(study, files.joblib)
        artifacts.put(store_digest_key(name), files.digest.read_bytes())
    return artifact_id


def fetch_model(name: str, refit_info: dict[str, Any] | None) -> bool:
    """Make study ``name``'s model files in this data directory current with the team's
    artifact store, for a model refit on another machine; True when the joblib file is here.

    Nothing is fetched while the local digest file equals the refit record's ``sha256`` (the
    record only says whether to look: it is storage data). Otherwise the digest is read from
    the store by ``store_digest_key(name)`` (the study's name, never a value from the
    storage), and the artifact the record names is fetched only if its bytes have that
    SHA-256 (``artifacts.fetch_verified``, which refuses anything else); the bytes and the
    digest are then written here as the refit writes them."""
    from hpdash import artifacts

    files = model_files(name)
    here = _regular(files.joblib, files.folder)
    local = recorded_digest(files) if here else None
    record = refit_info or {}
    if (here and local == record.get("sha256")) or record.get("artifact_id") is None:
        return here
    stored = artifacts.get(store_digest_key(name))
    words = stored.decode("ascii", errors="replace").split() if stored is not None else []
    if not words or not _HEX64.fullmatch(words[0]):
        return here  # the store vouches for no model of this name (deleted, or never uploaded)
    expected = words[0]
    if expected == local:
        return True
    data = artifacts.fetch_verified(str(record["artifact_id"]), expected, f"the model of study {name!r}")
    with _locked(files.folder):
        _write_atomic(files.joblib, data)
        _write_atomic(files.digest, f"{expected}  {files.joblib.name}\n".encode("ascii"))
        files.skops.unlink(missing_ok=True)  # made again from the fetched joblib file on download
    return True


def save_skops(model: Any, path: str | Path) -> str:
    """Write ``model`` with skops to ``path`` atomically; return the file's SHA-256."""
    import skops.io as sio

    target = Path(path)
    tmp = _temp(target)
    try:
        sio.dump(model, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"Could not write the model file {target}: {exc.strerror or exc}") from exc
    return _sha256(target)


def _skops_current(files: ModelFiles) -> bool:
    """Whether the skops copy exists and is not older than the joblib file it was made from."""
    return (
        _regular(files.skops, files.folder)
        and _regular(files.joblib, files.folder)
        and files.skops.stat().st_mtime >= files.joblib.stat().st_mtime
    )


def _joblib_file(name: str) -> ModelFiles:
    files = model_files(name)
    if not _regular(files.joblib, files.folder):
        raise StorageError(
            f"The model file {files.joblib.name} of study {name!r} is missing from "
            f"{files.folder}. Refit to create it again."
        )
    return files


def _verified_model(files: ModelFiles) -> Any:
    """The refit pipeline, unpickled from the joblib file only when its SHA-256 equals the one
    in the digest file the refit wrote beside it (the ``sha256`` in the study's refit record is
    not consulted: anyone with the storage URL can change it). The bytes checked are the bytes
    loaded."""
    import joblib

    data = files.joblib.read_bytes()
    expected = recorded_digest(files)
    if expected is None:
        raise StorageError(
            f"The model file {files.joblib.name} has no digest file ({files.digest.name}) from "
            "its refit, so it was not loaded. Refit the study to write both again."
        )
    if hashlib.sha256(data).hexdigest() != expected:
        raise StorageError(
            f"The model file {files.joblib.name} is not the one this study's refit wrote (its "
            f"SHA-256 differs from {files.digest.name}), so it was not loaded. Refit again to "
            "make a new one."
        )
    return joblib.load(io.BytesIO(data))


def ensure_skops(name: str) -> tuple[Path, str]:
    """The skops file of study ``name``'s refit model and its SHA-256, made from the joblib
    file if needed (after :func:`_verified_model`'s digest check; anything else is refused,
    since loading a pickle runs code). Refused on a read-only dashboard, which writes nothing:
    :func:`skops_bytes` makes the copy in memory there."""
    from hpdash import access

    files = _joblib_file(name)
    if _skops_current(files):
        return files.skops, _sha256(files.skops)
    access.require_writable("write the model's skops copy")
    import skops.io  # noqa: F401  (slow: imported before the lock, so refits do not wait for it)

    with _locked(files.folder):
        if _skops_current(files):  # another download made it meanwhile
            return files.skops, _sha256(files.skops)
        return files.skops, save_skops(_verified_model(files), files.skops)


def skops_bytes(name: str) -> bytes:
    """The skops bytes of study ``name``'s model, for a download button: the skops file (made
    first when needed), or on a read-only dashboard, a copy made in memory."""
    from hpdash import access

    files = _joblib_file(name)
    if _skops_current(files):
        return files.skops.read_bytes()
    if access.read_only():
        import skops.io as sio

        return sio.dumps(_verified_model(files))
    path, _ = ensure_skops(name)
    return path.read_bytes()


def joblib_bytes(name: str) -> bytes:
    """The joblib file's bytes of study ``name`` (for a download button)."""
    return _joblib_file(name).joblib.read_bytes()


def delete_model_files(name: str) -> list[Path]:
    """Delete study ``name``'s model files (joblib, skops, digest and their leftover
    temporary files) from the models folder, and its digest from the team's artifact store;
    return the local files deleted. Links are removed, not followed."""
    from hpdash import artifacts

    files = model_files(name)
    removed = []
    # Without its digest in the team's store, no dashboard fetches the model again.
    artifacts.remove(store_digest_key(name))
    with _locked(files.folder):
        for entry in os.scandir(files.folder):
            if files.owns(entry.name) and not entry.is_dir(follow_symlinks=False):
                path = files.folder / entry.name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


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


def model_downloads(name: str, refit_info: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What the UI offers for download for study ``name``, skops first, when the study has a
    refit record and its own joblib file exists (``model_files``: the record's ``path`` is not
    used).

    Each entry: ``format``, ``path``, ``file_name``, ``sha256`` (of the file: the skops file
    hashed, the joblib file's from its digest file; None while the skops file is not made yet
    or the digest file is missing), ``recorded_sha256`` (the refit record's value, for display
    only), ``ready`` (the file exists) and ``note`` (why the format matters).
    """
    if not refit_info:
        return []
    files = model_files(name)
    if not fetch_model(name, refit_info) or not _regular(files.joblib, files.folder):
        return []
    skops_ready = _skops_current(files)
    return [
        {
            "format": "skops",
            "path": str(files.skops),
            "file_name": files.skops.name,
            "ready": skops_ready,
            "sha256": _sha256(files.skops) if skops_ready else None,
            "recorded_sha256": None,
            "note": FORMATS["skops"],
        },
        {
            "format": "joblib",
            "path": str(files.joblib),
            "file_name": files.joblib.name,
            "ready": True,
            "sha256": recorded_digest(files),
            "recorded_sha256": refit_info.get("sha256"),
            "note": FORMATS["joblib"],
        },
    ]
