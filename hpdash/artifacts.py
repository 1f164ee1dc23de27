"""The team's artifact store: where datasets and final models live so that every dashboard and
worker of a team reaches them.

It is one of Optuna's own artifact stores (``optuna.artifacts``), chosen by
``HPDASH_ARTIFACT_STORE`` (``hpdash.config.artifact_store_url``):

- unset: a ``FileSystemArtifactStore`` in ``<data>/artifacts/_shared`` (one machine, or a
  folder the others mount);
- a folder (a path or a ``file://`` URL): a ``FileSystemArtifactStore`` there;
- ``s3://bucket[/prefix]``: a ``Boto3ArtifactStore`` on that bucket, the keys under the
  prefix, on ``HPDASH_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) for an S3-compatible server.
  boto3 is needed only for this one.

Files a study owns are uploaded with ``optuna.artifacts.upload_artifact`` (a random UUID id,
recorded in the study), so optuna-dashboard lists them with the study. A few small objects
have a fixed key instead (``put``/``get``), named by hpdash from a SHA-256 or a study name,
never from a value in the storage: they are what the download path trusts.

Anything read back by an id from the storage is checked against a SHA-256 before it is used
(``fetch_verified``): the storage is writable by anyone with its URL, the store only by the
team.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from hpdash import config
from hpdash.errors import StorageError


class ArtifactStore(Protocol):
    """What Optuna's artifact stores offer (its own protocol class is private)."""

    def open_reader(self, artifact_id: str) -> BinaryIO: ...

    def write(self, artifact_id: str, content_body: BinaryIO) -> None: ...

    def remove(self, artifact_id: str) -> None: ...


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules
_PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,200}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}")  # a fixed key hpdash names itself
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoreSetting:
    """Where the artifact store is: ``kind`` "files" (``location`` a folder) or "s3"
    (``location`` a bucket, keys under ``prefix``, on ``endpoint`` or Amazon S3)."""

    kind: str
    location: str
    prefix: str = ""
    endpoint: str | None = None

    def describe(self) -> str:
        """The store as people read it in messages."""
        if self.kind == "s3":
            where = f" on {self.endpoint}" if self.endpoint else ""
            return f"s3://{self.location}/{self.prefix}{where}"
        return f"the folder {self.location}"


def store_setting() -> StoreSetting:
    """The artifact store this process uses, read from the environment (``hpdash.config``).
    Raises StorageError naming the setting when it is not a folder or an ``s3://`` URL."""
    url = config.artifact_store_url()
    if not url:
        return StoreSetting("files", str(config.shared_artifacts_dir()))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if not _BUCKET.fullmatch(bucket) or not _PREFIX.fullmatch(prefix) or ".." in prefix.split("/"):
            raise StorageError(
                f"{config.ARTIFACT_STORE_ENV} is {url[:120]!r}, which is not s3://bucket or s3://bucket/prefix "
                "(a bucket of 3-63 lower-case letters, digits, '.' and '-'). Fix the URL, or unset it for the "
                "file-system store in the data directory."
            )
        return StoreSetting("s3", bucket, f"{prefix}/" if prefix else "", config.s3_endpoint_url())
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url:
        raise StorageError(
            f"{config.ARTIFACT_STORE_ENV} is {url[:120]!r}: hpdash stores artifacts in a folder (a path or a "
            "file:// URL) or in S3 (s3://bucket[/prefix]). Set one of those, or unset it for the data directory."
        )
    folder = Path(url).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"The artifact store folder {folder} ({config.ARTIFACT_STORE_ENV}) cannot be created: "
            f"{exc.strerror or exc}. Mount it, or point {config.ARTIFACT_STORE_ENV} at a writable folder."
        ) from exc
    return StoreSetting("files", str(folder))


class PrefixedStore:
    """An artifact store whose keys all sit under ``prefix`` in ``inner`` (``s3://bucket/prefix``;
    Optuna's ``Boto3ArtifactStore`` writes at the bucket's root). Pass it to optuna-dashboard's
    ``run_server(..., artifact_store=...)`` to list the same artifacts."""

    def __init__(self, inner: ArtifactStore, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.inner.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.inner.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(self.prefix + artifact_id)


@functools.lru_cache(maxsize=8)
def _open_store(setting: StoreSetting) -> ArtifactStore:
    """One store object per setting and process (a boto3 client costs about 0.1 s to make)."""
    if setting.kind == "files":
        return FileSystemArtifactStore(setting.location)
    try:
        import boto3
    except ImportError:
        raise StorageError(
            f"{config.ARTIFACT_STORE_ENV} is an S3 store ({setting.describe()}), which needs boto3: "
            "pip install boto3. Or unset it to keep artifacts in a folder."
        ) from None
    from optuna.artifacts import Boto3ArtifactStore

    client = boto3.client("s3", endpoint_url=setting.endpoint)
    store: ArtifactStore = Boto3ArtifactStore(setting.location, client=client)
    return PrefixedStore(store, setting.prefix) if setting.prefix else store


def artifact_store() -> ArtifactStore:
    """The team's artifact store (``store_setting``), as an ``optuna.artifacts`` store."""
    return _open_store(store_setting())


@contextlib.contextmanager
def _store_errors(action: str, setting: StoreSetting) -> Any:
    """Turn the store's own errors (file system, S3 client) into a StorageError naming the
    store, what was being done and what to check. A missing artifact passes through."""
    try:
        yield
    except (ArtifactNotFound, StorageError):
        raise
    except OSError as exc:
        raise StorageError(
            f"Could not {action} in the artifact store ({setting.describe()}): {exc.strerror or exc}. "
            f"Check that the folder is mounted and writable, or set {config.ARTIFACT_STORE_ENV}."
        ) from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("botocore", "boto3", "s3transfer"):
            raise
        raise StorageError(
            f"Could not {action} in the artifact store ({setting.describe()}): {exc}. Check the bucket, the "
            f"credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and {config.S3_ENDPOINT_ENV}."
        ) from exc


def upload(study: optuna.Study, path: Path) -> str:
    """Upload the file ``path`` as an artifact of ``study`` (listed by optuna-dashboard with the
    study); returns its artifact id."""
    setting = store_setting()
    with _store_errors(f"upload {path.name}", setting):
        return upload_artifact(artifact_store=_open_store(setting), file_path=str(path), study_or_trial=study)


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise StorageError(f"{key[:80]!r} is not an artifact key hpdash writes; nothing was read or written.")
    return key


def put(key: str, data: bytes) -> None:
    """Write ``data`` under the fixed key ``key`` (a name hpdash made: letters, digits, '.', '_', '-')."""
    setting = store_setting()
    with _store_errors(f"write {key}", setting):
        _open_store(setting).write(_check_key(key), io.BytesIO(data))


def _read(store: ArtifactStore, artifact_id: str) -> bytes:
    with contextlib.closing(store.open_reader(artifact_id)) as reader:
        return reader.read()


def get(key: str) -> bytes | None:
    """The bytes under the fixed key ``key``, or None when the store has no such object."""
    setting = store_setting()
    with _store_errors(f"read {key}", setting):
        try:
            return _read(_open_store(setting), _check_key(key))
        except ArtifactNotFound:
            return None


def remove(key: str) -> None:
    """Delete the object under the fixed key ``key``; a key the store does not have is already gone."""
    setting = store_setting()
    with _store_errors(f"delete {key}", setting), contextlib.suppress(ArtifactNotFound):
        _open_store(setting).remove(_check_key(key))


def is_artifact_id(value: Any) -> bool:
    """Whether ``value`` is an id ``upload_artifact`` makes (a UUID in its canonical form)."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def exists(artifact_id: str) -> bool:
    """Whether the store has the artifact ``artifact_id`` (opened, not read)."""
    setting = store_setting()
    with _store_errors(f"look for artifact {artifact_id}", setting):
        try:
            _open_store(setting).open_reader(artifact_id).close()
        except ArtifactNotFound:
            return False
    return True


def fetch_verified(artifact_id: str, sha256: str, what: str) -> bytes:
    """The bytes of artifact ``artifact_id`` (an id recorded in the storage) if their SHA-256 is
    ``sha256``; ``what`` names them in messages. Refused with a StorageError when the id is not
    one ``upload_artifact`` makes, the artifact is missing, or the bytes differ: unverified
    bytes are never returned."""
    setting = store_setting()
    if not is_artifact_id(artifact_id) or not _SHA256.fullmatch(str(sha256)):
        raise StorageError(
            f"The storage's record of {what} (artifact {str(artifact_id)[:80]!r}, SHA-256 {str(sha256)[:80]!r}) "
            "is not an artifact id and a SHA-256 hpdash writes, so nothing was fetched. Create it again."
        )
    with _store_errors(f"read {what}", setting):
        try:
            data = _read(_open_store(setting), artifact_id)
        except ArtifactNotFound:
            raise StorageError(
                f"{what} (artifact {artifact_id}) is not in the artifact store ({setting.describe()}). "
                f"Check that every machine sets the same {config.ARTIFACT_STORE_ENV}, or create it again."
            ) from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise StorageError(
            f"SHA-256 mismatch: {what} (artifact {artifact_id} in {setting.describe()}) has SHA-256 {found}, "
            f"not the recorded {sha256}, so its bytes were not used. The artifact was changed after it was "
            "uploaded: upload it again (create the study again, or refit)."
        )
    return data
