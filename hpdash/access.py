"""Team mode: a review-only dashboard and an optional password.

- ``HPDASH_READ_ONLY=1`` (also ``true``/``yes``/``on``) serves the *viewer* of README's
  "Teams" table: every write the dashboard can trigger, and every computation it would run on
  a viewer's request, raises :class:`~hpdash.errors.ReadOnlyError` through
  :func:`require_writable`. Writes: creating, launching, stopping, resuming and deleting
  studies, refitting, saving notes and experiments, uploading and deleting datasets, writing
  a model's ``.skops`` copy (a viewer's download is made in memory instead). Computations:
  loading a spec file into the form and the smoke fit behind the run-time estimate
  (``hpdash.ui.study_form.read_browser_spec``, ``hpdash.ui.common.runtime_estimate``), and the
  selection-bias estimate on request (``hpdash.winners_curse.on_request``). It is enforced
  in the library, so a disabled button is not the only guard, and the server refuses every
  upload (``hpdash/ui/server.py``).
  Worker processes (``hpdash worker``) are not the dashboard and are not affected: studies
  already running on a shared storage keep running while a read-only dashboard reviews them.
- ``HPDASH_PASSWORD`` (environment, or ``st.secrets["HPDASH_PASSWORD"]`` read by the UI) asks
  for a password; :func:`check_password` compares in constant time with ``hmac.compare_digest``.
  Wrong guesses are throttled per browser session and per client address
  (:class:`AttemptThrottle`), and the server only accepts uploads and serves media files to
  browsers whose session has signed in (:class:`SignIns`, checked by ``hpdash/ui/server.py``).

- Sign-in with OIDC (``st.login``, when ``[auth]`` is configured in Streamlit's secrets): every
  session has an :class:`Actor`, an editor or a viewer (:func:`role_for`: ``HPDASH_EDITORS``, or
  an editor role in the ID token's role claim). The UI installs :func:`set_actor_provider`, so
  :func:`read_only` and :func:`require_writable` answer for the session making the call, in the
  page and in the library alike: a viewer's call is refused wherever it comes from. Outside the
  web app (the command line, workers) the actor is the operating-system user.

This module never imports Streamlit: the UI reads its secrets and passes the value in.
"""

from __future__ import annotations

import getpass
import hmac
import logging
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hpdash import config
from hpdash.errors import AccessDeniedError, ReadOnlyError

READ_ONLY_ENV = config.READ_ONLY_ENV
PASSWORD_ENV = config.PASSWORD_ENV
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


_log = logging.getLogger(__name__)
Role = Literal["editor", "viewer"]


@dataclass(frozen=True)
class Actor:
    """Who is making a call: a name for the audit trail, a role, and how they were identified
    (``oidc``: signed in with an identity provider; ``password``: the team password; ``open``:
    a dashboard without sign-in; ``local``: the command line or a worker)."""

    name: str
    role: Role
    via: str

    @property
    def is_viewer(self) -> bool:
        return self.role == "viewer"


_actor_provider: dict[str, Callable[[], Actor | None]] = {}


def set_actor_provider(provider: Callable[[], Actor | None]) -> None:
    """Install the function that tells who the caller is (the UI's: the Streamlit session
    making the call; None when the call does not come from a session)."""
    _actor_provider["current"] = provider


def local_actor() -> Actor:
    """The caller outside the web app: the operating-system user on this host."""
    return Actor(f"{getpass.getuser()}@{socket.gethostname()}", "editor", "local")


def current_actor() -> Actor:
    """Who is making this call: the session's actor in the web app, else :func:`local_actor`."""
    provider = _actor_provider.get("current")
    actor = provider() if provider is not None else None
    return actor if actor is not None else local_actor()


def _setting_list(name: str) -> list[str]:
    return [item.strip().lower() for item in config.setting(name).split(",") if item.strip()]


def role_for(email: str | None, claims: Mapping[str, Any]) -> Role:
    """The role of a user signed in with OIDC: an editor when their e-mail is in
    ``HPDASH_EDITORS`` (or its domain, as ``@example.com``), or when the ID token's role claim
    (``HPDASH_ROLE_CLAIM``, default ``roles``: a string or a list) holds the editor role
    (``HPDASH_EDITOR_ROLE``, default ``editor``); otherwise a viewer. An e-mail counts only
    when the provider says it is verified (``email_verified`` absent or true)."""
    address = (email or "").strip().lower()
    verified = claims.get("email_verified", True) in (True, "true", "True", 1)
    if address and verified:
        for entry in _setting_list(config.EDITORS_ENV):
            if address == entry or (entry.startswith("@") and address.endswith(entry)):
                return "editor"
    claim = claims.get(config.setting(config.ROLE_CLAIM_ENV).strip() or config.DEFAULT_ROLE_CLAIM)
    roles = [claim] if isinstance(claim, str) else list(claim) if isinstance(claim, (list, tuple)) else []
    wanted = config.setting(config.EDITOR_ROLE_ENV).strip() or config.DEFAULT_EDITOR_ROLE
    return "editor" if wanted in {str(r) for r in roles} else "viewer"


def dashboard_read_only() -> bool:
    """Whether the whole dashboard is review-only (``$HPDASH_READ_ONLY``), read at call time.

    An unrecognised value counts as read-only: a typo must not open a dashboard for writing.
    """
    raw = config.setting(READ_ONLY_ENV).strip().lower()
    if raw in _TRUE:
        return True
    return raw not in _FALSE


def read_only() -> bool:
    """Whether the caller may change nothing: a review-only dashboard, or a viewer."""
    return dashboard_read_only() or current_actor().is_viewer


def require_writable(action: str) -> None:
    """Raise :class:`ReadOnlyError` naming ``action`` when the dashboard is read-only or the
    caller is a viewer. A viewer's refusal is logged (who and what), not written anywhere:
    a viewer's clicks must not make the server write."""
    if dashboard_read_only():
        raise ReadOnlyError(
            f"This dashboard is read-only ({READ_ONLY_ENV} is set), so you cannot {action}. "
            "Ask whoever runs it for a dashboard without that setting."
        )
    actor = current_actor()
    if actor.is_viewer:
        _log.warning("refused to %s for %s (a viewer)", action, actor.name)
        raise ReadOnlyError(
            f"You are signed in as {actor.name}, a viewer, so you cannot {action}. Ask whoever "
            f"runs this dashboard to add you to {config.EDITORS_ENV} or to give you the editor role."
        )


def configured_password(secrets: Mapping[str, Any] | None = None) -> str | None:
    """The password to ask for: ``$HPDASH_PASSWORD``, else ``secrets["HPDASH_PASSWORD"]``.

    Returns None when no password is set (an empty value counts as not set). ``secrets`` is
    any mapping, e.g. ``st.secrets``; reading it must not fail when there is no secrets file,
    so a failing lookup counts as "not set".
    """
    value = config.setting(PASSWORD_ENV) or None
    if not value and secrets is not None:
        try:
            value = secrets.get(PASSWORD_ENV)
        except Exception:  # Streamlit raises when no secrets.toml exists
            value = None
    if value is None:
        return None
    value = str(value)
    return value or None


def oidc_configured(secrets: Mapping[str, Any] | None) -> bool:
    """Whether sign-in with an identity provider is configured: an ``[auth]`` table in
    Streamlit's secrets with the settings ``st.login`` needs (``redirect_uri``,
    ``cookie_secret``). A missing secrets file counts as not configured."""
    if secrets is None:
        return False
    try:
        auth = secrets.get("auth")
    except Exception:  # Streamlit raises when no secrets.toml exists
        return False
    return isinstance(auth, Mapping) and bool(auth.get("redirect_uri")) and bool(auth.get("cookie_secret"))


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


#: Longest password the sign-in form accepts (a longer one is refused without comparing).
MAX_PASSWORD_LENGTH = 256


class AttemptThrottle:
    """Wrong-password attempts counted per key (a browser session, a client address), each
    kind with its own limit: at most ``limit`` failures within ``window`` seconds. Once a key
    reaches its limit, :meth:`wait` says how long until its oldest failure leaves the window.

    Thread-safe: one instance serves every session of the server process.
    """

    def __init__(self, limits: Mapping[str, tuple[int, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, kind: str, key: str, now: float) -> deque[float]:
        window = self._limits[kind][1]
        times = self._failures.setdefault((kind, key), deque())
        while times and now - times[0] >= window:
            times.popleft()
        return times

    def wait(self, keys: Mapping[str, str]) -> float:
        """Seconds until another attempt is allowed for every one of ``keys`` (0: now)."""
        now = self._clock()
        longest = 0.0
        with self._lock:
            for kind, key in keys.items():
                limit, window = self._limits[kind]
                times = self._recent(kind, key, now)
                if len(times) >= limit:
                    longest = max(longest, window - (now - times[0]))
        return longest

    def failed(self, keys: Mapping[str, str]) -> None:
        """Record one wrong attempt for each of ``keys``."""
        now = self._clock()
        with self._lock:
            for kind, key in keys.items():
                self._recent(kind, key, now).append(now)
            if len(self._failures) > 10_000:  # forget keys whose failures all left the window
                for item in [k for k, v in self._failures.items() if not self._recent(*k, now)]:
                    del self._failures[item]

    def succeeded(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget the failures of these ``(kind, key)`` pairs (e.g. the session that signed in)."""
        with self._lock:
            for item in keys:
                self._failures.pop(item, None)


#: Per browser session: 5 wrong passwords a minute. Per client address (every session
#: from one machine or network together): 20 in 5 minutes.
PASSWORD_THROTTLE = AttemptThrottle({"session": (5, 60.0), "address": (20, 300.0)})


def wait_text(seconds: float) -> str:
    """``"42 s"`` / ``"3 min"``: how long until the next attempt, for a message."""
    seconds = math.ceil(seconds)
    return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"


class SignIns:
    """Which browser sessions of this server have signed in, and with which client cookie.

    The sign-in gate records a session when its password was right; the server's HTTP layer
    asks :meth:`client_allowed` before it accepts an upload or serves a media file (a model
    download), so neither works for a browser that has not signed in, nor after its session
    closed. Sessions are identified by Streamlit's session id; browsers by the random,
    HttpOnly client cookie the server sets on the first page load.
    """

    def __init__(self) -> None:
        self._by_session: dict[str, str] = {}
        self._viewers: set[str] = set()
        self._lock = threading.Lock()

    def add(self, session_id: str, client_token: str | None, *, viewer: bool = False) -> None:
        """Record a signed-in session; a ``viewer`` session may download but not upload."""
        with self._lock:
            self._by_session[session_id] = client_token or ""
            if viewer:
                self._viewers.add(session_id)
            else:
                self._viewers.discard(session_id)

    def remove(self, session_id: str) -> None:
        with self._lock:
            self._by_session.pop(session_id, None)
            self._viewers.discard(session_id)

    def session_signed_in(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._by_session

    def session_may_write(self, session_id: str) -> bool:
        """Whether a signed-in session is an editor's (uploads are writes)."""
        with self._lock:
            return session_id in self._by_session and session_id not in self._viewers

    def client_allowed(
        self, client_token: str | None, session_active: Callable[[str], bool], session_id: str | None = None
    ) -> bool:
        """Whether a request carrying ``client_token`` comes from a browser with a live,
        signed-in session (that session, when ``session_id`` is given). Sessions that are no
        longer active are forgotten on the way."""
        if not client_token:
            return False
        with self._lock:
            items = list(self._by_session.items())
        allowed = False
        for sid, token in items:
            if not session_active(sid):
                self.remove(sid)
                continue
            if hmac.compare_digest(token.encode(), client_token.encode()) and session_id in (None, sid):
                allowed = True
        return allowed


#: The sign-ins of this server process.
SIGN_INS = SignIns()


#: The cookie that tells browsers apart (random, HttpOnly, never shown to page scripts); set
#: by the web server's guard (``hpdash.ui.server.SignInGuard``), read by the sign-in gate.
CLIENT_COOKIE = "hpdash_client"
_guard = {"installed": False}


def mark_guarded() -> None:
    """Record that this process serves the app through ``hpdash.ui.server.SignInGuard``."""
    _guard["installed"] = True


def guarded() -> bool:
    """Whether this process serves the script through the sign-in guard (app.py), rather than
    through a bare ``streamlit run hpdash/ui/main.py``."""
    return _guard["installed"]
