"""Team mode: a review-only dashboard and an optional password.

- ``HPDASH_READ_ONLY=1`` (also ``true``/``yes``/``on``) makes every write the dashboard can
  trigger raise :class:`~hpdash.errors.ReadOnlyError`: creating, launching, stopping, resuming
  and deleting studies, refitting, saving notes and experiments, uploading and deleting
  datasets. It is enforced here, in the library, so a hidden button is not the only guard.
  Worker processes (``hpdash worker``) are not the dashboard and are not affected: studies
  already running on a shared storage keep running while a read-only dashboard reviews them.
- ``HPDASH_PASSWORD`` (environment, or ``st.secrets["HPDASH_PASSWORD"]`` read by the UI) asks
  for a password; :func:`check_password` compares in constant time with ``hmac.compare_digest``.

This module never imports Streamlit: the UI reads its secrets and passes the value in.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Mapping

from hpdash.errors import AccessDeniedError, ReadOnlyError

READ_ONLY_ENV = "HPDASH_READ_ONLY"
PASSWORD_ENV = "HPDASH_PASSWORD"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def read_only() -> bool:
    """Whether the dashboard is review-only (``$HPDASH_READ_ONLY``), read at call time.

    An unrecognised value counts as read-only: a typo must not open a dashboard for writing.
    """
    raw = os.environ.get(READ_ONLY_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    return raw not in _FALSE


def require_writable(action: str) -> None:
    """Raise :class:`ReadOnlyError` naming ``action`` when the dashboard is read-only."""
    if read_only():
        raise ReadOnlyError(
            f"This dashboard is read-only ({READ_ONLY_ENV} is set), so you cannot {action}. "
            "Ask whoever runs it for a dashboard without that setting."
        )


def configured_password(secrets: Mapping[str, Any] | None = None) -> str | None:
    """The password to ask for: ``$HPDASH_PASSWORD``, else ``secrets["HPDASH_PASSWORD"]``.

    Returns None when no password is set (an empty value counts as not set). ``secrets`` is
    any mapping, e.g. ``st.secrets``; reading it must not fail when there is no secrets file,
    so a failing lookup counts as "not set".
    """
    value = os.environ.get(PASSWORD_ENV)
    if not value and secrets is not None:
        try:
            value = secrets.get(PASSWORD_ENV)  # type: ignore[union-attr]
        except Exception:  # Streamlit raises when no secrets.toml exists
            value = None
    if value is None:
        return None
    value = str(value)
    return value or None


def password_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a typed password with the configured one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_password(given: str | None, expected: str | None) -> None:
    """Raise :class:`AccessDeniedError` unless ``given`` matches ``expected``.

    ``expected`` None (no password configured) lets everyone in.
    """
    if expected is None:
        return
    if not password_matches(given, expected):
        raise AccessDeniedError("Wrong password. Ask whoever runs this dashboard for the team password.")
