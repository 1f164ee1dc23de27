"""The catalogue in the storage's PostgreSQL database (SQLAlchemy Core).

With a server storage every dashboard and worker of a team reaches the same database, so the
catalogue's tables live there beside Optuna's: two dashboards on one database see each
other's experiments and datasets. The tables and columns are the SQLite ones
(``hpdash.store.tables``). One engine per database URL per process, with a small pool: the
catalogue's statements are short, and PostgreSQL's ``max_connections`` is shared with every
worker's storage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy
from sqlalchemy.dialects import postgresql

from hpdash.errors import StorageError
from hpdash.store.tables import TABLES, primary_key, unknown_columns

#: Connections one process keeps open for the catalogue (plus as many again at a peak).
POOL_SIZE = 2
#: The key of the PostgreSQL advisory lock held while the tables are created, so that
#: processes opening a new database at once do not race on ``CREATE TABLE``.
DDL_LOCK_KEY = 0x68706461736831  # "hpdash1"

_TYPES: dict[type, Any] = {str: sqlalchemy.Text, int: sqlalchemy.BigInteger, float: sqlalchemy.Double}

METADATA = sqlalchemy.MetaData()
SCHEMA: dict[str, sqlalchemy.Table] = {
    name: sqlalchemy.Table(
        name,
        METADATA,
        *(
            sqlalchemy.Column(column, _TYPES[kind], primary_key=column in primary_key(name))
            for column, kind in columns.items()
        ),
    )
    for name, (columns, _pk) in TABLES.items()
}

_ENGINES: dict[str, sqlalchemy.engine.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def is_server_url(url: str) -> bool:
    """Whether the catalogue for storage ``url`` lives in that database (PostgreSQL)."""
    return url.startswith(("postgresql://", "postgresql+"))


def _engine(url: str) -> sqlalchemy.engine.Engine:
    """The process's engine for ``url``, its tables created on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = sqlalchemy.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE, pool_pre_ping=True)
            try:
                with engine.begin() as conn:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
                    METADATA.create_all(conn, checkfirst=True)
            except BaseException:
                engine.dispose()
                raise
            _ENGINES[url] = engine
        return engine


def _unknown_column(table: str, row: dict[str, Any]) -> None:
    unknown = unknown_columns(table, row)
    if unknown:
        raise ValueError(f"table {table} has no column named {unknown[0]}")


class ServerTables:
    """The ``hpdash_*`` tables in a PostgreSQL database; safe to share between threads."""

    def __init__(self, url: str, location: str) -> None:
        self.location = location
        try:
            self.engine = _engine(url)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageError(
                f"Cannot open the catalogue in {location}: {_first_line(exc)}. Check that the "
                "database server is running and HPDASH_STORAGE names it."
            ) from exc

    def close(self) -> None:
        """Nothing to close: the engine's pool is shared by the process's catalogues."""

    def rows(
        self, table: str, equals: dict[str, Any] | None = None, order_by: str | None = None, descending: bool = False
    ) -> list[dict[str, Any]]:
        """The rows of ``table`` whose columns equal ``equals``."""
        schema = SCHEMA[table]
        query = sqlalchemy.select(schema).where(*(schema.c[k] == v for k, v in (equals or {}).items()))
        if order_by:
            column = schema.c[order_by]
            # Byte order for text, as SQLite sorts it (a locale's collation may skip punctuation).
            key: Any = column.collate("C") if isinstance(column.type, sqlalchemy.Text) else column
            query = query.order_by(key.desc() if descending else key)
        try:
            with self.engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(query)]
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageError(f"Could not read the catalogue in {self.location}: {_first_line(exc)}.") from exc

    def write(self, action: Callable[[ServerWriter], Any]) -> None:
        """Run ``action(writer)`` (``insert_ignore``, ``upsert`` and ``delete`` calls) in one
        transaction."""
        try:
            with self.engine.begin() as conn:
                action(ServerWriter(conn))
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
            raise StorageError(f"Could not write to the catalogue in {self.location}: {_first_line(exc)}.") from exc


class ServerWriter:
    """The writes of one ``ServerTables.write`` transaction."""

    def __init__(self, conn: sqlalchemy.engine.Connection) -> None:
        self.conn = conn

    def insert_ignore(self, table: str, row: dict[str, Any]) -> None:
        _unknown_column(table, row)
        self.conn.execute(postgresql.insert(SCHEMA[table]).values(row).on_conflict_do_nothing())

    def upsert(self, table: str, row: dict[str, Any]) -> None:
        """Insert ``row``, or update only its columns on the row with its primary key."""
        _unknown_column(table, row)
        keys = primary_key(table)
        insert = postgresql.insert(SCHEMA[table]).values(row)
        changed = {column: insert.excluded[column] for column in row if column not in keys}
        if changed:
            self.conn.execute(insert.on_conflict_do_update(index_elements=list(keys), set_=changed))
        else:
            self.conn.execute(insert.on_conflict_do_nothing())

    def delete(self, table: str, equals: dict[str, Any]) -> None:
        schema = SCHEMA[table]
        self.conn.execute(sqlalchemy.delete(schema).where(*(schema.c[k] == v for k, v in equals.items())))


def _first_line(exc: BaseException) -> str:
    """The error's first line (SQLAlchemy appends the statement and a link)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
