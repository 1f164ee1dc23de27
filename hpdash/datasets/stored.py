"""Content-addressed dataset files under the data directory, with a catalogue row each; found again by SHA-256 and verified."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pandas as pd

from hpdash import config
from hpdash.errors import DatasetError, StorageError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    import optuna

    from hpdash.store import Catalogue

from hpdash.datasets.prepare import check_learnable, prepare
from hpdash.datasets.reading import _read
from hpdash.datasets.records import _SHA_RE, SAMPLES, StoredDataset, _base_filename, sha256_bytes
from hpdash.datasets.samples import load_sample


# -- content-addressed store ----------------------------------------------------------------
def _is_sha(text: str) -> bool:
    return bool(_SHA_RE.match(text))


def find_stored(sha256: str) -> Path | None:
    """The stored file of a dataset (``<data>/datasets/<sha>.csv|parquet``), or None."""
    sha = str(sha256).strip().lower()
    if not _is_sha(sha):
        return None
    folder = config.datasets_dir()
    for fmt in ("csv", "parquet"):
        path = folder / f"{sha}.{fmt}"
        if path.is_file():
            return path
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def store_dataset(
    data: bytes,
    filename: str,
    target: str | None = None,
    catalogue: Catalogue | None = None,
    *,
    task: str = "auto",
    folds: int = 5,
    keep_columns: list[str] | None = None,
) -> StoredDataset:
    """Validate ``data`` and store it by SHA-256 with a catalogue row.

    Validation (:func:`read_table`, and :func:`prepare` with ``task``, ``folds`` and
    ``keep_columns`` when ``target`` is given) happens before anything is written, so a
    rejected upload leaves no file and no row. The same
    bytes stored twice give the same SHA, one file and one row (the first name is kept).
    ``filename`` is metadata only; the stored file is always named by its hash.
    """
    from hpdash import access

    access.require_writable("upload a dataset")
    if catalogue is None:
        from hpdash.store import Catalogue

        # A catalogue opened here is closed here: an unclosed SQLite connection lives until a
        # garbage collection, and keeps the storage's WAL from being checkpointed until then.
        with Catalogue() as own:
            return store_dataset(data, filename, target, own, task=task, folds=folds, keep_columns=keep_columns)
    data = bytes(data)
    df, fmt = _read(data, filename, config.max_upload_bytes())
    if target is not None:
        prepare(df, target, task=task, folds=folds, keep_columns=keep_columns)
    else:
        check_learnable(df, _base_filename(filename))
    sha = sha256_bytes(data)
    base = _base_filename(filename)
    name = PurePosixPath(base).stem or base
    path = config.datasets_dir() / f"{sha}.{fmt}"
    created = False
    if not (path.is_file() and sha256_bytes(path.read_bytes()) == sha):
        try:
            _write_atomic(path, data)
        except OSError as exc:
            raise StorageError(
                f"Could not save {base} in {path.parent}: {exc.strerror or exc}. The disk may be "
                "full or the data directory read-only; nothing was stored."
            ) from exc
        created = True
    record = {
        "sha256": sha,
        "name": name,
        "filename": base,
        "format": fmt,
        "size_bytes": len(data),
        "n_rows": int(df.shape[0]),
        "n_cols": int(df.shape[1]),
    }
    try:
        catalogue.add_dataset(record)
    except StorageError:
        if created:
            path.unlink(missing_ok=True)
        raise
    row = catalogue.get_dataset(sha) or record
    from hpdash import audit

    audit.record("upload dataset", detail=f"{base} ({sha[:12]})")
    return StoredDataset(
        sha256=sha,
        name=str(row.get("name", name)),
        filename=str(row.get("filename", base)),
        format=fmt,
        path=path,
        size_bytes=len(data),
        n_rows=int(df.shape[0]),
        n_cols=int(df.shape[1]),
    )


def delete_stored(sha256: str, catalogue: Catalogue | None = None) -> None:
    """Remove a stored dataset's file and catalogue row (the caller checks no study uses it)."""
    from hpdash import access

    access.require_writable("delete a dataset")
    sha = str(sha256).strip().lower()
    if not _is_sha(sha):
        raise DatasetError(f"{sha256!r} is not a dataset SHA-256 (64 hexadecimal characters).")
    folder = config.datasets_dir()
    for fmt in ("csv", "parquet"):
        path = folder / f"{sha}.{fmt}"
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # permissions, a read-only mount: say which file and why
            raise DatasetError(
                f"Cannot delete the stored dataset file {path}: {exc.strerror or exc}. "
                "Check that the data folder is writable, then try again; nothing was removed "
                "from the catalogue."
            ) from exc
    from hpdash.store import Catalogue

    if catalogue is not None:
        catalogue.delete_dataset(sha)
    else:
        with Catalogue() as own:
            own.delete_dataset(sha)
    from hpdash import audit

    audit.record("delete dataset", detail=sha[:12])


# -- in the team's artifact store (hpdash.artifacts) ---------------------------------------
def _index_key(sha256: str) -> str:
    """The fixed key under which the store keeps the record (artifact id, SHA-256, format) of
    a dataset's bytes, so the same bytes are uploaded once however many studies use them, and
    any dashboard finds them by their SHA-256."""
    return f"hpdash-dataset-{sha256}"


def _indexed_record(sha256: str) -> dict[str, Any] | None:
    """The store's record of the dataset with this SHA-256, or None when it has none."""
    from hpdash import artifacts

    raw = artifacts.get(_index_key(sha256))
    if raw is None:
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # not a record hpdash wrote: the bytes are uploaded again
    return record if isinstance(record, dict) else None


def upload_dataset(study: optuna.Study, sha256: str) -> dict[str, str]:
    """Put stored dataset ``sha256`` in the team's artifact store for ``study`` and return the
    record to keep in its user attrs (``attrs.DATASET_ARTIFACT``): ``artifact_id``, ``sha256``,
    ``format``. Bytes already in the store (found by their SHA-256, and checked) are reused,
    not uploaded again; otherwise they are uploaded as an artifact of ``study``, which
    optuna-dashboard then lists. Bytes changed in the store after their upload are refused by
    the workers that fetch them ("SHA-256 mismatch"); delete the store's
    ``hpdash-dataset-<sha>`` record to upload them again."""
    from hpdash import artifacts  # imports Optuna: only where a study is created

    sha = str(sha256).strip().lower()
    path = find_stored(sha)
    if path is None:
        raise DatasetError(f"No stored dataset has SHA-256 {sha}. Upload it again.")
    data = path.read_bytes()
    if sha256_bytes(data) != sha:
        raise DatasetError(
            f"The stored dataset file {path} no longer has SHA-256 {sha}, so it was not uploaded. Upload the "
            "original file again."
        )
    known = _indexed_record(sha)
    fmt = path.suffix.lstrip(".")
    # The store's record is written after its upload completed, so the artifact it names holds
    # these bytes; workers verify them anyway (``fetch_dataset``). Reading them back here would
    # download the whole table again for every study of an experiment.
    if (
        known is not None
        and known.get("sha256") == sha
        and known.get("format") == fmt
        and artifacts.is_artifact_id(known.get("artifact_id"))
        and artifacts.exists(str(known["artifact_id"]))
    ):
        return {"artifact_id": str(known["artifact_id"]), "sha256": sha, "format": fmt}
    record = {"artifact_id": artifacts.upload(study, path), "sha256": sha, "format": fmt}
    artifacts.put(_index_key(sha), json.dumps(record).encode("utf-8"))
    return record


def fetch_dataset(sha256: str, record: Any = None) -> Path | None:
    """The stored file of dataset ``sha256`` in this data directory. When it is missing, the
    bytes are fetched from the team's artifact store by ``record`` (a study's
    ``attrs.DATASET_ARTIFACT``), else by the store's own record of that SHA-256, verified
    against ``sha256`` (a mismatch is refused and nothing is written) and kept in
    ``<data>/datasets/`` for the next run. None when neither has it."""
    sha = str(sha256).strip().lower()
    path = find_stored(sha)
    if path is not None or not _is_sha(sha):
        return path
    record = record if record is not None else _indexed_record(sha)
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("sha256") != sha or record.get("format") not in ("csv", "parquet"):
        raise DatasetError(
            f"The study's artifact record of its dataset ({str(record)[:200]}) does not describe the dataset "
            f"with SHA-256 {sha}, so nothing was fetched. Create the study again from its spec."
        )
    from hpdash import artifacts

    data = artifacts.fetch_verified(str(record.get("artifact_id")), sha, f"dataset {sha[:12]}…")
    path = config.datasets_dir() / f"{sha}.{record['format']}"
    try:
        _write_atomic(path, data)
    except OSError as exc:
        raise StorageError(
            f"Could not keep the fetched dataset in {path.parent}: {exc.strerror or exc}. The disk may be "
            "full or the data directory read-only."
        ) from exc
    return path


def load_dataset(ref: str, expected_sha256: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """Load a dataset by reference; returns ``(frame, sha256)``.

    ``ref`` is ``sklearn:NAME`` (sha is None and ``expected_sha256`` is ignored), the 64-hex
    SHA-256 of a stored dataset, or a path to a CSV/Parquet file. The bytes are hashed; with
    ``expected_sha256`` a mismatch raises :class:`DatasetError`. The upload size limit does not
    apply here, nor do the row and cell limits (a stored dataset passed them when it was
    uploaded).
    """
    ref = str(ref).strip()
    if ref.startswith("sklearn:"):
        return load_sample(ref), None
    if _is_sha(ref.lower()):
        sha = ref.lower()
        path = find_stored(sha)
        if path is None:
            from hpdash.store import Catalogue

            row = Catalogue().get_dataset(sha)
            if row is not None:
                raise DatasetError(
                    f"Dataset {row.get('name')!r} ({sha[:12]}…) is in the catalogue but its file "
                    f"is missing from {config.datasets_dir()}. Upload the file again."
                )
            raise DatasetError(
                f"No stored dataset with SHA-256 {sha[:12]}… in {config.datasets_dir()}. Upload "
                "it first, or check HPDASH_DATA_DIR."
            )
        expected_sha256 = expected_sha256 or sha
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise DatasetError(
                f"Dataset file not found: {ref}. Give a CSV/Parquet path, a stored dataset's "
                f"SHA-256, or one of {', '.join(SAMPLES)}."
            )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read the dataset file {path}: {exc.strerror}.") from exc
    found = sha256_bytes(data)
    if expected_sha256 is not None and found != expected_sha256.strip().lower():
        raise DatasetError(
            f"The dataset file changed since the study was created: expected SHA-256 "
            f"{expected_sha256.strip().lower()}, found {found} ({path}). Restore the original "
            "file or create a new study."
        )
    df, _ = _read(data, path.name, None, limits=False)
    return df, found
