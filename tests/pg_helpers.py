"""PostgreSQL for the scale-out tests: one throwaway database per test, dropped afterwards.

The server comes from ``$HPDASH_TEST_POSTGRES`` (a SQLAlchemy URL to an existing database,
default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); ``.ci/run`` starts it. Without
a server the tests using :func:`pg_url` skip with the reason, except under CI (``CI`` set to a
true value), where a missing server is a failure: CI must run them for real.
"""

from __future__ import annotations

import os
import uuid

import pytest

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get("HPDASH_TEST_POSTGRES") or DEFAULT_URL


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _connect(url: str):
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(plain, autocommit=True, connect_timeout=3)


def server_problem() -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        return f"psycopg is not installed ({exc}); pip install -r requirements.txt"
    try:
        with _connect(admin_url()) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL server answers at {admin_url()}: {str(exc).strip().splitlines()[0]}"
    return None


def require_server() -> None:
    problem = server_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI is set, so the PostgreSQL tests must run, but {problem}. .ci/run starts the server.")
    pytest.skip(f"PostgreSQL scale-out test skipped: {problem}. Start one (see .ci/run) to run it.")


@pytest.fixture
def pg_url():
    """A SQLAlchemy URL to a fresh database ``hpdash_test_<random>``, dropped afterwards."""
    require_server()
    base = admin_url()
    name = f"hpdash_test_{uuid.uuid4().hex[:12]}"
    with _connect(base) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    prefix = base.rsplit("/", 1)[0]
    try:
        yield f"{prefix}/{name}"
    finally:
        with _connect(base) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
