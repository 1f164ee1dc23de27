"""hpdash/ui/server.py: the HTTP guard in front of Streamlit and the server's start-up.

The guard is driven here as plain ASGI middleware around a stand-in app; the real server is
attacked in tests/e2e/test_sign_in.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from hpdash import access
from hpdash.ui import server


def _call(scope: dict, cookie: str | None = None) -> tuple[list[dict], list[str]]:
    """Run one request through SignInGuard around an app that answers 200 text/html; return
    the messages sent and the paths that reached the app."""
    reached: list[str] = []

    async def app(scope, receive, send):
        reached.append(scope["path"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html; charset=utf-8")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        raise AssertionError("the guard must not read a refused request's body")

    headers = list(scope.get("headers", []))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    call = server.SignInGuard(app)({"type": "http", "method": "GET", **scope, "headers": headers}, receive, send)
    # In a thread of its own: another test's event loop may still be running in this one.
    errors: list[BaseException] = []
    runner = threading.Thread(target=lambda: _run(call, errors))
    runner.start()
    runner.join(30)
    if errors:
        raise errors[0]
    return sent, reached


def _run(coroutine, errors: list[BaseException]) -> None:
    try:
        asyncio.run(coroutine)
    except BaseException as exc:  # handed back to the test thread, which raises it
        errors.append(exc)


@pytest.fixture
def signed_in(monkeypatch):
    """A password configured, one signed-in session ``s1`` with client token ``tok``."""
    monkeypatch.setenv("HPDASH_PASSWORD", "pw")
    monkeypatch.delenv("HPDASH_READ_ONLY", raising=False)
    monkeypatch.setattr(server, "_session_active", lambda sid: sid in {"s1", "s2"})
    monkeypatch.setattr(access, "SIGN_INS", access.SignIns())
    access.SIGN_INS.add("s1", "tok")


def test_page_load_sets_an_httponly_client_cookie_once(signed_in) -> None:
    sent, reached = _call({"path": "/"})
    cookies = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
    assert reached == ["/"] and len(cookies) == 1
    assert cookies[0].startswith(b"hpdash_client=") and b"HttpOnly" in cookies[0] and b"SameSite=Strict" in cookies[0]
    sent, _ = _call({"path": "/"}, cookie="hpdash_client=abc")
    assert not [v for k, v in sent[0]["headers"] if k == b"set-cookie"], "an existing cookie is kept"


def test_uploads_only_from_a_signed_in_session_with_its_browser_cookie(signed_in) -> None:
    put = {"path": "/_stcore/upload_file/s1/f1", "method": "PUT"}
    assert _call(put, cookie="hpdash_client=tok")[1] == ["/_stcore/upload_file/s1/f1"]
    for scope, cookie in [
        (put, None),
        (put, "hpdash_client=other"),
        ({**put, "path": "/_stcore/upload_file/s2/f1"}, "hpdash_client=tok"),
        ({**put, "path": "/_stcore/upload_file/"}, "hpdash_client=tok"),
    ]:
        sent, reached = _call(scope, cookie)
        assert reached == [] and sent[0]["status"] == 403, (scope, cookie)
        assert b"Sign in first" in sent[1]["body"]


def test_media_only_to_a_browser_with_a_live_signed_in_session(signed_in, monkeypatch) -> None:
    media = {"path": "/media/abc.bin"}
    assert _call(media, cookie="hpdash_client=tok")[1] == ["/media/abc.bin"]
    assert _call(media)[0][0]["status"] == 403
    assert _call(media, cookie="hpdash_client=nope")[0][0]["status"] == 403
    assert _call(media, cookie="malformed;;=\x7f")[0][0]["status"] == 403
    monkeypatch.setattr(server, "_session_active", lambda sid: False)  # the tab was closed
    assert _call(media, cookie="hpdash_client=tok")[0][0]["status"] == 403
    assert not access.SIGN_INS.session_signed_in("s1"), "a closed session is forgotten"


def test_without_a_password_the_guard_lets_everything_through(monkeypatch) -> None:
    monkeypatch.delenv("HPDASH_PASSWORD", raising=False)
    monkeypatch.delenv("HPDASH_READ_ONLY", raising=False)
    monkeypatch.setattr(server, "_auth_configured", lambda: False)
    assert _call({"path": "/media/x.bin"})[1] == ["/media/x.bin"]
    assert _call({"path": "/_stcore/upload_file/s9/f", "method": "PUT"})[1] == ["/_stcore/upload_file/s9/f"]


def test_read_only_refuses_every_upload(monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    monkeypatch.setattr(server, "_auth_configured", lambda: False)
    sent, reached = _call({"path": "/_stcore/upload_file/s1/f1", "method": "PUT"})
    assert reached == [] and sent[0]["status"] == 403 and b"read-only" in sent[1]["body"]


def test_the_script_lives_where_streamlit_sees_no_pages_folder() -> None:
    """Streamlit's legacy pages/ mode (which ran page files past the gate) starts only for a
    main script with a pages/ folder beside it."""
    from pathlib import Path

    script = Path(server.SCRIPT)
    assert script.is_file() and not (script.parent / "pages").exists()


def test_start_up_freezes_the_imported_objects() -> None:
    """The lifespan imports the app's modules and moves their objects out of the GC's reach
    (in a fresh process: freezing is for the life of the process)."""
    code = (
        "import asyncio, gc\n"
        "from hpdash.ui import server\n"
        "from hpdash import runtime\n"
        "async def main():\n"
        "    assert gc.get_freeze_count() == 0 and not runtime._frozen\n"
        "    async with server.lifespan(None):\n"
        "        import sys\n"
        "        assert 'hpdash.ui.common' in sys.modules and 'plotly.graph_objects' in sys.modules\n"
        "        print(gc.get_freeze_count(), runtime._frozen)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, frozen = out.stdout.split()
    assert int(count) > 50_000 and frozen == "True", out.stdout
