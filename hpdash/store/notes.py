"""Notes kept in the study itself, through optuna-dashboard's public note API.

``optuna_dashboard.save_note`` / ``get_note`` store a note (Markdown) in the study's system
attrs, cut into chunks of about 2 kB beside a version number; a trial's note is stored the
same way under the trial's id. A note written here therefore shows in optuna-dashboard and
the reverse, it lives in the storage database every dashboard of a team reaches, and it goes
when the study is deleted.

Files made by earlier versions kept notes in a ``hpdash_notes`` table of the SQLite
catalogue; ``migrate_legacy_notes`` writes each of them once to its study.
"""

from __future__ import annotations

import fcntl
import functools
import importlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import optuna

from hpdash import storage as hpdash_storage
from hpdash.errors import HpdashError, StorageError, StudyNotFoundError
from hpdash.store import sqlite as catalogue_sqlite
from hpdash.store.tables import NOTES, now_iso

T = TypeVar("T")

#: What the migration records in ``hpdash_notes.migration`` for each note.
COPIED = "copied to the study's note"
ALREADY_THERE = "already in the study's note"
STUDY_GONE = "study no longer exists"

# One Optuna storage per URL (and SQLite file) per process: opening one costs an engine and
# a schema check, and a page opens its catalogue on every rerun.
_STORAGES: dict[tuple[str, int], optuna.storages.BaseStorage] = {}
_STORAGES_LOCK = threading.Lock()


def _sqlite_inode(url: str) -> int:
    """The inode of a SQLite storage's file (0 for other URLs or a missing file), so a file
    deleted and made again gets a fresh engine instead of one pooled on the old file."""
    if not url.startswith("sqlite:///"):
        return 0
    try:
        return Path(url[len("sqlite:///") :]).stat().st_ino
    except OSError:
        return 0


def note_storage(url: str) -> optuna.storages.BaseStorage:
    """The process's Optuna storage for notes at ``url``."""
    key = (url, _sqlite_inode(url))
    with _STORAGES_LOCK:
        found = _STORAGES.get(key)
        if found is None:
            found = _STORAGES[key] = hpdash_storage.open_storage(url, heartbeat=False)
        return found


def _load(store: optuna.storages.BaseStorage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=store, sampler=optuna.samplers.RandomSampler())
    except KeyError:
        return None


def _trial(store: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> optuna.Trial:
    """The trial ``number`` of ``study`` as the live-trial object the note API takes."""
    try:
        trial_id = store.get_trial_id_from_study_id_trial_number(hpdash_storage.study_id(study), number)
    except KeyError:
        raise StudyNotFoundError(
            f"Study {study.study_name!r} has no trial {number}. Pick a trial number from the study's trials table."
        ) from None
    return optuna.trial.Trial(study, trial_id)


def _sqlite_cause(exc: BaseException) -> sqlite3.Error | None:
    """The SQLite error behind an Optuna or SQLAlchemy error, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return seen
        orig = getattr(seen, "orig", None)
        if isinstance(orig, sqlite3.Error):
            return orig
        seen = seen.__cause__ or seen.__context__
    return None


def cause_text(exc: BaseException) -> str:
    """The first line of the root cause: Optuna's own message hides it behind a generic one."""
    root = _sqlite_cause(exc)
    if root is None:
        seen = exc
        while seen.__cause__ is not None:
            seen = seen.__cause__
        root_text = str(getattr(seen, "orig", None) or seen)
    else:
        root_text = str(root)
    lines = root_text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def lock_hint_for(exc: BaseException) -> str:
    """The catalogue's advice for a SQLite lock error behind ``exc`` ("" for other errors)."""
    cause = _sqlite_cause(exc)
    return catalogue_sqlite.lock_hint(cause) if cause is not None else ""


def retrying(action: Callable[[], T], fail: Callable[[BaseException], StorageError]) -> T:
    """``action()``, its SQLite lock errors retried as the catalogue's own are
    (``hpdash.store.sqlite.retry``); any other storage error becomes ``fail(exc)``."""

    def attempt() -> T:
        try:
            return action()
        except HpdashError:
            raise
        except Exception as exc:  # Optuna's, SQLAlchemy's and the drivers' errors have many types
            cause = _sqlite_cause(exc)
            if cause is not None and catalogue_sqlite.is_lock_error(cause):
                raise sqlite3.OperationalError(str(cause)) from exc
            raise fail(exc) from exc

    return catalogue_sqlite.retry(attempt, fail)


@functools.cache
def _note_api() -> ModuleType:
    """optuna-dashboard, imported on first use (it takes about 2 s) from a thread of its own.

    Importing it records the ImportError of its optional dependencies (Optuna's
    ``try_import``), whose traceback keeps every frame of the importing call stack alive for
    the life of the process, with their locals (an open catalogue and its SQLite connection,
    a page's variables). From its own thread that stack is only the thread's.
    """
    modules: list[ModuleType] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            modules.append(importlib.import_module("optuna_dashboard"))
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=load, name="hpdash-import-optuna-dashboard")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return modules[0]


def read_study_note(store: optuna.storages.BaseStorage, name: str) -> str | None:
    """The note of study ``name`` ("" when it has none), or None when there is no such study."""
    get_note = _note_api().get_note
    study = _load(store, name)
    return None if study is None else get_note(study)


def write_study_note(store: optuna.storages.BaseStorage, name: str, body: str) -> None:
    """Save (or replace) the note of study ``name``; a missing study is a StudyNotFoundError."""
    save_note = _note_api().save_note
    study = _load(store, name)
    if study is None:
        raise StudyNotFoundError(f"No study named {name!r}, so its note cannot be saved. Check the study's name.")
    save_note(study, body)


def read_trial_note(store: optuna.storages.BaseStorage, name: str, number: int) -> str:
    """The note of trial ``number`` of study ``name`` ("" when it has none)."""
    get_note = _note_api().get_note
    study = _load(store, name)
    if study is None:
        raise StudyNotFoundError(f"No study named {name!r}. Check the study's name.")
    return get_note(_trial(store, study, number))


def write_trial_note(store: optuna.storages.BaseStorage, name: str, number: int, body: str) -> None:
    """Save (or replace) the note of trial ``number`` of study ``name``."""
    save_note = _note_api().save_note
    study = _load(store, name)
    if study is None:
        raise StudyNotFoundError(f"No study named {name!r}, so no trial note can be saved. Check the study's name.")
    save_note(_trial(store, study, number), body)


# ------------------------------------------------------------------------------ migration
def merged_note(current: str, legacy: str) -> str | None:
    """What the study's note becomes when the legacy note joins it, or None when nothing is
    to be written: the legacy note is empty or already part of the study's note (so running
    the migration twice writes once). A note already written in optuna-dashboard is kept,
    the legacy note after it."""
    if not legacy or legacy in current:
        return None
    if not current.strip():
        return legacy
    return f"{current}\n\n{legacy}"


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info([{NOTES}])")}


def _has_pending(conn: sqlite3.Connection) -> bool:
    """Whether the file has a legacy notes table with a note not migrated yet."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [NOTES]).fetchone():
        return False
    if "migrated_at" not in _columns(conn):
        return conn.execute(f"SELECT 1 FROM [{NOTES}] LIMIT 1").fetchone() is not None
    return conn.execute(f"SELECT 1 FROM [{NOTES}] WHERE migrated_at IS NULL LIMIT 1").fetchone() is not None


def pending_legacy_notes(legacy: Path) -> dict[str, str]:
    """The legacy notes of ``legacy`` not migrated yet, study -> text ({} when none)."""
    if not legacy.is_file():
        return {}
    conn = _connect(legacy)
    try:
        if not _has_pending(conn):
            return {}
        where = "WHERE migrated_at IS NULL" if "migrated_at" in _columns(conn) else ""
        return {study: text or "" for study, text in conn.execute(f"SELECT study, text FROM [{NOTES}] {where}")}
    finally:
        conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=catalogue_sqlite.BUSY_TIMEOUT_S, isolation_level=None)


@contextmanager
def _only_one_process(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the legacy file while its notes migrate: of processes
    starting at once, one migrates and the others then find nothing left. (SQLite's own
    locks are POSIX record locks, which ``flock`` does not touch; the lock goes with the
    process if it dies.)"""
    with open(path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate_legacy_notes(legacy: Path, storage_url: str) -> dict[str, str]:
    """Write every note of the legacy ``hpdash_notes`` table of ``legacy`` to its study
    through the note API, once: each row is then marked (``migrated_at``, and ``migration``:
    copied, already there, or the study no longer exists) and never read again. Rows stay in
    the file, so no note is lost, not even one whose study is gone. Returns study -> outcome
    for the notes this call handled."""

    def fail(exc: BaseException) -> StorageError:
        return StorageError(
            f"Could not move the notes of {legacy} into their studies in "
            f"{hpdash_storage.redact(storage_url)}: {cause_text(exc)}. They are kept in {legacy}; "
            "the move is tried again when the dashboard next starts."
        )

    if not legacy.is_file():
        return {}
    conn = _connect(legacy)
    try:
        if not catalogue_sqlite.retry(lambda: _has_pending(conn), fail):
            return {}
        with _only_one_process(legacy):
            catalogue_sqlite.retry(lambda: _add_migration_columns(conn), fail)
            rows = catalogue_sqlite.retry(
                lambda: conn.execute(f"SELECT study, text FROM [{NOTES}] WHERE migrated_at IS NULL").fetchall(), fail
            )
            store = retrying(lambda: note_storage(storage_url), fail)
            done: dict[str, str] = {}
            for study, text in rows:
                outcome = retrying(functools.partial(_migrate_one, store, study, text or ""), fail)
                catalogue_sqlite.retry(functools.partial(_mark, conn, study, outcome), fail)
                done[study] = outcome
            return done
    finally:
        conn.close()


def _add_migration_columns(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        present = _columns(conn)
        for column in ("migrated_at", "migration"):
            if column not in present:
                conn.execute(f"ALTER TABLE [{NOTES}] ADD COLUMN [{column}] TEXT")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _migrate_one(store: optuna.storages.BaseStorage, study_name: str, legacy: str) -> str:
    get_note, save_note = _note_api().get_note, _note_api().save_note
    study = _load(store, study_name)
    if study is None:
        return STUDY_GONE
    body = merged_note(get_note(study), legacy)
    if body is None:
        return ALREADY_THERE
    save_note(study, body)
    return COPIED


def _mark(conn: sqlite3.Connection, study: str, outcome: str) -> None:
    conn.execute(
        f"UPDATE [{NOTES}] SET migrated_at = ?, migration = ? WHERE study = ? AND migrated_at IS NULL",
        [now_iso(), outcome, study],
    )
