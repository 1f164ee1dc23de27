"""``hpdash proxy``: Optuna's gRPC storage proxy in front of the study database.

Many workers on one PostgreSQL database each hold connections; behind the proxy they hold
none: they talk gRPC to it (``grpc://host:port`` as their storage URL), and the proxy serves
them all with a fixed pool of database connections (one per server thread). The budget guard,
the slot claims and the heartbeats hold behind it as on a direct connection: the proxy runs
hpdash's worker storage (``hpdash.storage.make_proxy_server``, ``ProxyStorage`` on the worker).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from hpdash.storage import DEFAULT_PROXY_THREADS, make_proxy_server, proxy_url, redact, require_database

#: Seconds the proxy lets requests in flight finish once asked to stop.
STOP_GRACE_SECONDS = 5.0


def serve(
    url: str | None,
    host: str,
    port: int,
    *,
    threads: int = DEFAULT_PROXY_THREADS,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve the study database at ``url`` (default ``HPDASH_STORAGE``) on ``host:port`` until
    ``stop`` is set, or, in the main thread, SIGTERM or SIGINT arrives. ``ready`` gets the
    ``grpc://`` URL workers use once the proxy answers (``port`` 0: a free port, in the URL)."""
    database = require_database(url, "the proxy")
    stop = stop or threading.Event()
    server, storage, bound = make_proxy_server(database, host, port, threads)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    server.start()
    try:
        if ready is not None:
            ready(proxy_url(host, bound))
        stop.wait()
    finally:
        server.stop(STOP_GRACE_SECONDS).wait()
        storage.engine.dispose()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def describe(url: str | None, workers_url: str) -> str:
    """The line ``hpdash proxy`` prints for people once it serves."""
    return f"hpdash proxy: serving {redact(require_database(url, 'the proxy'))}; workers use --storage {workers_url}"
