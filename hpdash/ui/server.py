"""The web server around the Streamlit script: what app.py hands to ``st.App``.

``streamlit run app.py`` finds the ``st.App`` in app.py and serves it with uvicorn. This module
gives that app two things the Streamlit script alone cannot have:

- **The script lives in ``hpdash/ui/``** (``SCRIPT``), a folder without a ``pages/``
  subfolder. Streamlit runs an app whose main script has a ``pages/`` folder beside it in its
  legacy multipage mode until ``st.navigation`` is first called, and that mode runs page files
  directly, past the sign-in gate, for sessions opened in the first moments of a fresh server.
  With the script here, that mode never starts: every run goes through ``SCRIPT``'s
  ``st.navigation`` and gate. The page files stay in the top-level ``pages/`` folder.
- **An HTTP guard** (:class:`SignInGuard`, ASGI middleware): when a password or OIDC sign-in
  is configured, Streamlit's upload endpoint accepts files only for a session that has signed
  in (with OIDC, an editor's), and its
  media endpoint (downloads such as the refit model) serves only a browser with a live
  signed-in session, recognised by a random HttpOnly cookie set on the first page load. In
  read-only mode no upload is accepted at all. Refused requests are answered before their
  body is read, so they cost the server no memory.

The lifespan imports the app's modules once at start-up and then moves their objects out of
the garbage collector's reach (``runtime.freeze_startup_objects``): a full collection would
otherwise walk every object of pandas, plotly and Optuna each time it runs. It also lets the
library pause the collector while it bulk-reads a study (``runtime.pause_gc_during_bulk_reads``):
that policy is the server's to choose, not a library function's.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from hpdash import access

#: The Streamlit script app.py serves.
SCRIPT = str(Path(__file__).with_name("main.py"))
CLIENT_COOKIE = access.CLIENT_COOKIE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

guarded = access.guarded


def _auth_configured() -> bool:
    import streamlit as st

    return access.configured_password(st.secrets) is not None or access.oidc_configured(st.secrets)


def _session_active(session_id: str) -> bool:
    from streamlit import runtime

    return runtime.exists() and runtime.get_instance().is_active_session(session_id)


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed Cookie header counts as no cookie
                return {}
    return {key: morsel.value for key, morsel in jar.items()}


class SignInGuard:
    """ASGI middleware: the client cookie, and uploads and media only after sign-in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        access.mark_guarded()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _strip_base(scope.get("path", ""))
        cookies = _cookies(scope)
        refusal = self._refusal(path, scope.get("method", "GET"), cookies.get(CLIENT_COOKIE))
        if refusal is not None:
            await _respond(send, 403, refusal)
            return
        if CLIENT_COOKIE in cookies:
            await self.app(scope, receive, send)
            return
        token = secrets.token_urlsafe(32)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_html(message):
                cookie = f"{CLIENT_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))],
                }
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _refusal(self, path: str, method: str, client_token: str | None) -> str | None:
        """Why this request is refused before it reaches Streamlit (None: let it through)."""
        if path.startswith("/_stcore/upload_file/") and method in ("PUT", "POST"):
            if access.read_only():
                return "This dashboard is read-only: uploads are switched off."
            if not _auth_configured():
                return None
            parts = path.split("/")
            session_id = parts[3] if len(parts) > 3 else ""
            if not (
                access.SIGN_INS.session_signed_in(session_id)
                and access.SIGN_INS.client_allowed(client_token, _session_active)
            ):
                return "Sign in first: uploads are accepted only from a signed-in session."
            if not access.SIGN_INS.session_may_write(session_id):
                return "You are signed in as a viewer: uploads are for editors."
        elif path.startswith("/media/") and _auth_configured():
            if not access.SIGN_INS.client_allowed(client_token, _session_active):
                return "Sign in first: downloads are served only to a signed-in session."
        return None


def _strip_base(path: str) -> str:
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    if base and path.startswith(f"/{base}/"):
        return path[len(base) + 1 :]
    return path


def _is_html(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return value.startswith(b"text/html")
    return False


async def _respond(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def middleware() -> list[Any]:
    """The middleware app.py passes to ``st.App``."""
    from starlette.middleware import Middleware

    return [Middleware(SignInGuard)]


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """Server start-up: import the app's modules, freeze their objects for the GC, and let the
    library pause the GC while it reads a large study (``hpdash.runtime``)."""
    from hpdash import runtime
    from hpdash.ui import common  # noqa: F401 - imported for its side effect: the app's modules

    runtime.freeze_startup_objects()
    runtime.pause_gc_during_bulk_reads()
    yield
