"""The audit trail: who launched, stopped, resumed, deleted, refitted, noted or uploaded what,
and when.

Every write the library makes on a user's behalf records one row here, after it succeeded,
with the caller from ``access.current_actor()`` (the signed-in user in the web app, the
operating-system user on the command line). The rows live in the storage database itself
(table ``hpdash_audit``, beside Optuna's tables), so every dashboard and command line of a
team sees the same trail, and deleting a study keeps the record that it was deleted. Viewers'
refused attempts are logged by ``hpdash.access``, not written: a viewer's clicks never make
the server write.

Optuna has no place for this (a study's system attrs vanish with the study), and the catalogue
is for the dashboard's own records; hence a small table of its own, written with SQLAlchemy
Core so that SQLite and PostgreSQL take the same statements.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from hpdash import access, config, storage

_log = logging.getLogger(__name__)
TABLE = "hpdash_audit"
#: The actions recorded, in the words the Study page shows.
ACTIONS = (
    "create study",
    "launch workers",
    "stop",
    "resume",
    "delete study",
    "refit",
    "write note",
    "upload dataset",
    "delete dataset",
    "launch experiment",
    "stop experiment",
)
#: Longest detail kept (a note's first words, a file name): the trail is not a copy of the data.
MAX_DETAIL = 200
COLUMNS = ("at", "actor", "role", "via", "action", "study", "detail")

_metadata = sa.MetaData()
_audit = sa.Table(
    TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("study", sa.String(512), nullable=True),
    sa.Column("detail", sa.String(MAX_DETAIL), nullable=True),
    sa.Index(f"ix_{TABLE}_study", "study"),
)
#: Engines kept open, by storage URL, most recent last. A dashboard uses one URL; a process
#: that visits many databases (a test run, a script) would otherwise keep every one's pooled
#: connections, and with them their file descriptors, for ever: the oldest is disposed.
MAX_ENGINES = 4
_engines: OrderedDict[str, sa.engine.Engine] = OrderedDict()
_made: set[str] = set()
_lock = threading.Lock()


def _engine(url: str | None, *, make_table: bool) -> sa.engine.Engine | None:
    """The storage database's engine; None when the table does not exist and ``make_table``
    is false (a reader never creates it: a viewer's visit must leave the database as it was)."""
    url = url or config.storage_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = storage.open_storage(url, heartbeat=False).engine
            _engines[url] = engine
            while len(_engines) > MAX_ENGINES:
                _, oldest = _engines.popitem(last=False)
                oldest.dispose()  # a connection still in use closes when it is returned
        _engines.move_to_end(url)
        if url not in _made:
            if make_table:
                _metadata.create_all(engine, checkfirst=True)
            elif not sa.inspect(engine).has_table(TABLE):
                return None
            _made.add(url)
        return engine


def record(action: str, *, study: str | None = None, detail: str | None = None, url: str | None = None) -> None:
    """Record that the current caller did ``action`` (one of ``ACTIONS``) on ``study``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    target = url or config.storage_url()
    if storage.is_proxy_url(target):
        # A worker given only a grpc:// proxy URL has no SQL to write with: its launches are
        # recorded by the dashboard or command line that made them, on the database itself.
        _log.warning("audit: %s of %s not recorded (no database behind %s)", action, study, storage.redact(target))
        return
    actor = access.current_actor()
    row = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": actor.name[:320],
        "role": actor.role,
        "via": actor.via,
        "action": action,
        "study": study,
        "detail": None if detail is None else str(detail)[:MAX_DETAIL],
    }
    engine = _engine(url, make_table=True)
    assert engine is not None
    with engine.begin() as conn:
        conn.execute(_audit.insert().values(**row))


def events(study: str | None = None, *, limit: int = 200, url: str | None = None) -> pd.DataFrame:
    """The trail, newest first: every row, or those of ``study``; at most ``limit`` rows."""
    query = sa.select(*(_audit.c[c] for c in COLUMNS)).order_by(_audit.c.id.desc()).limit(limit)
    if study is not None:
        query = query.where(_audit.c.study == study)
    engine = _engine(url, make_table=False)
    if engine is None:
        return pd.DataFrame(columns=list(COLUMNS))
    with engine.connect() as conn:
        rows: list[Any] = list(conn.execute(query))
    return pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS))
