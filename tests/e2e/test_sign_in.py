"""Sign-in that cannot be raced, throttled guesses, and uploads and downloads only after sign-in.

Each check starts a real `streamlit run app.py` with HPDASH_PASSWORD and attacks it without a
browser (raw websocket sessions, plain HTTP), the way the issue "Sign-in that cannot be raced"
found the holes; the browser is used only where a real download is needed.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import ROOT, Server, start_server, wait_ready
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from raw_session import RawSession, Widget, sign_in, text_of, widget_ids

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
STUDY = "secret-budget-forecast"
NOTE = "TOP-SECRET-NOTE-b41c: the budget is 3.2M"
TARGET = "classified_label_7f3a"
ROUNDS = 10
SESSIONS = 12


def _setup() -> None:
    """A finished study on a table whose target name is secret, with a secret note."""
    from hpdash import datasets, runner
    from hpdash.spec import parse_spec
    from hpdash.store import Catalogue

    frame = datasets.load_sample("iris").rename(columns={"target": TARGET})
    stored = datasets.store_dataset(frame.to_csv(index=False).encode(), "secret.csv")
    spec = parse_spec(
        {
            "name": STUDY,
            "dataset": stored.sha256,
            "target": TARGET,
            "model": "k_nearest_neighbors",
            "strategy": "random",
            "n_trials": 3,
            "cv": {"folds": 3},
            "seed": 0,
        }
    )
    runner.create_study(spec)
    assert runner.wait_for(runner.launch_workers(spec.name, None, 1)) == [0]
    Catalogue().set_note(STUDY, NOTE)


def _fingerprint(data_dir: Path) -> tuple[str, dict[str, str]]:
    """Every row of the database, and every file of the data directory (but the database's
    own files), as hashes."""
    with sqlite3.connect(f"file:{data_dir / 'hpdash.db'}?mode=ro", uri=True) as conn:
        dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    files = {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.startswith("hpdash.db")
    }
    return dump, files


def _secrets(data_dir: Path) -> list[str]:
    """What must never reach a session that has not signed in."""
    return [NOTE, TARGET, str(data_dir), "Storage in use", "Trials done", "Best trial"]


@pytest.fixture(scope="module")
def secret_data(tmp_path_factory):
    """The data directory (filled once), and the widget ids of the Study page's note editor,
    read from a signed-in session (ids are the same on every server of this code)."""
    server = start_server(tmp_path_factory, "e2e-sign-in", _setup, extra_env={"HPDASH_PASSWORD": PASSWORD})
    try:
        insider = RawSession(server.url)
        got = sign_in(insider, PASSWORD, "study", f"study={STUDY}")
        assert NOTE in text_of(got), "a signed-in session sees the note"
        ids = widget_ids(got)
        note_widgets = [
            Widget(ids["Notes"], "string_value", "PWNED by a session that never signed in"),
            Widget(ids["Save notes"], "trigger_value", True),
        ]
        # The attack is real: the same widget values from a signed-in session do write the note.
        insider.run(
            "study",
            f"study={STUDY}",
            [
                Widget(ids["Notes"], "string_value", NOTE + " (checked)"),
                Widget(ids["Save notes"], "trigger_value", True),
            ],
        )
        insider.run(
            "study",
            f"study={STUDY}",
            [Widget(ids["Notes"], "string_value", NOTE), Widget(ids["Save notes"], "trigger_value", True)],
        )
        insider.close()
    finally:
        server.stop()
    from hpdash.store import Catalogue

    assert Catalogue(server.data_dir / "hpdash.db").get_note(STUDY) == NOTE
    return server.data_dir, note_widgets


def _start_raw_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, object]:
    """``streamlit run app.py`` on a free port; returns as soon as the port accepts a TCP
    connection (before the health check would pass), to attack the first moments."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HPDASH_DATA_DIR": str(data_dir), "HPDASH_PASSWORD": PASSWORD, **(extra_env or {})}
    env.pop("HPDASH_STORAGE", None)
    log = open(data_dir.parent / "raw-server.log", "ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((data_dir.parent / "raw-server.log").read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}", log
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("the server did not open its port within 60 s")


def _stop(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# ------------------------------------------------------------------------------ the race
def _attack(url: str, index: int, note_widgets: list[Widget], out: list) -> None:
    """One session that never signs in: read a page (a third of them with the note-saving
    widget values an insider would send)."""
    pages = [
        ("study", f"study={STUDY}"),
        ("studies", ""),
        ("", ""),
        ("compare", ""),
        ("datasets", ""),
        ("new_study", ""),
    ]
    page, query = pages[index % len(pages)]
    widgets = note_widgets if index % 3 == 0 else []
    session = None
    for _ in range(100):  # the websocket route may not answer in the very first moments
        try:
            session = RawSession(url)
            break
        except OSError:
            time.sleep(0.05)
    assert session is not None, "could not open a websocket session"
    try:
        out.append(session.run(page, query, widgets, timeout=30))
        if index % 3 == 0:  # and once more on the study page, with the note-saving values
            out.append(session.run("study", f"study={STUDY}", note_widgets, timeout=30))
    finally:
        session.close()


#: Fresh servers attacked at the same time (each on its own port, each a whole round).
SERVERS_AT_ONCE = 2


def _attack_fresh_server(data_dir: Path, note_widgets: Any) -> list[list[dict]]:
    """One round: a fresh server, SESSIONS raw sessions opened together the moment its port
    accepts connections; what each session received."""
    proc, url, log = _start_raw_server(data_dir)
    results: list[list[list[dict]]] = [[] for _ in range(SESSIONS)]
    try:
        threads = [threading.Thread(target=_attack, args=(url, i, note_widgets, results[i])) for i in range(SESSIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        _stop(proc, log)
    return results


def test_fresh_server_gives_nothing_to_concurrent_sessions_before_sign_in(secret_data) -> None:
    """ROUNDS fresh servers (SERVERS_AT_ONCE at a time), SESSIONS raw sessions on each before
    anyone signs in: none gets a study name, a note or a trial, and nothing is written."""
    from concurrent.futures import ThreadPoolExecutor

    data_dir, note_widgets = secret_data
    before = _fingerprint(data_dir)
    secrets = _secrets(data_dir)
    for first in range(0, ROUNDS, SERVERS_AT_ONCE):
        rounds = range(first, min(ROUNDS, first + SERVERS_AT_ONCE))
        with ThreadPoolExecutor(len(rounds)) as pool:
            outcomes = list(pool.map(lambda _: _attack_fresh_server(data_dir, note_widgets), rounds))
        for round_, results in zip(rounds, outcomes):
            for i, runs in enumerate(results):
                assert runs, f"round {round_}, session {i}: no script run answered"
                sent = text_of(runs)
                assert "password-protected" in sent, f"round {round_}, session {i}: no sign-in form"
                for secret in secrets:
                    assert secret not in sent, f"round {round_}, session {i} received {secret!r}"
        assert _fingerprint(data_dir) == before, f"rounds {list(rounds)}: something was written"


# ------------------------------------------------------------------------------ uploads and media
def _page_cookies(url: str) -> dict[str, str]:
    """The cookies a browser gets: hpdash's client cookie with the page, Streamlit's XSRF
    cookie with the health check the page makes first."""
    pairs = []
    for path in ("/", "/_stcore/health"):
        with urllib.request.urlopen(f"{url}{path}", timeout=30) as resp:
            pairs += [h.split(";")[0].split("=", 1) for h in resp.headers.get_all("Set-Cookie") or []]
    return dict(pairs)


def _put(url: str, session_id: str, body: bytes, cookies: dict[str, str] | None = None) -> tuple[int, str]:
    """An upload the way the browser sends it (multipart, XSRF header); (status, body). The
    body is sent in chunks: a server that refuses early answers before it has all of it."""
    import http.client
    from urllib.parse import urlparse

    boundary = "hpdashboundary"
    data = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            f"Content-Type: text/csv\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    where = urlparse(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    conn.putrequest("PUT", f"/_stcore/upload_file/{session_id}/file-1")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(data)))
    if cookies:
        conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
        if "_streamlit_xsrf" in cookies:
            conn.putheader("X-Xsrftoken", cookies["_streamlit_xsrf"])
    conn.endheaders()
    try:
        for i in range(0, len(data), 65536):
            conn.send(data[i : i + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the whole body was sent: the answer is already there
    try:
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _session_id(session: RawSession) -> str:
    for message in session.messages:
        if "new_session" in message:
            return message["new_session"]["initialize"]["session_id"]
    raise AssertionError("no new_session message")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_uploads_need_a_signed_in_session(secret_data) -> None:
    data_dir, _ = secret_data
    before = _fingerprint(data_dir)
    proc, url, log = _start_raw_server(data_dir)
    try:
        cookies = _page_cookies(url)
        assert "hpdash_client" in cookies, cookies
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        stranger = RawSession(url, cookie=header)
        stranger.run()
        sid = _session_id(stranger)
        rss = _rss_mb(proc.pid)
        payload = b"a,b\n" + b"1,2\n" * (12 * 1024 * 1024 // 4)  # 12 MB
        answers = [_put(url, sid, payload, cookies) for _ in range(6)]
        assert all(code == 403 and "Sign in first" in body for code, body in answers), answers
        assert _rss_mb(proc.pid) - rss < 40, "refused uploads must not be kept in memory"

        insider = RawSession(url, cookie=header)
        sign_in(insider, PASSWORD)
        answer = _put(url, _session_id(insider), b"a,b\n1,2\n", cookies)
        assert answer[0] == 204, answer
        no_cookie = {k: v for k, v in cookies.items() if k != "hpdash_client"}
        assert _put(url, _session_id(insider), b"a,b\n1,2\n", no_cookie)[0] == 403, "no client cookie"
        assert _put(url, sid, b"a,b\n1,2\n", cookies)[0] == 403, "the stranger's session is still not signed in"
        stranger.close()
        insider.close()
    finally:
        _stop(proc, log)
    assert _fingerprint(data_dir) == before, "an upload alone stores nothing"


def test_model_download_is_served_only_to_a_live_signed_in_session(secret_data, browser) -> None:
    data_dir, _ = secret_data
    server = Server(data_dir, {"HPDASH_PASSWORD": PASSWORD})
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.url}/study?study={STUDY}")
        # The form's first script run on a fresh server must be over before typing, or the
        # click can land on a form that the run is still replacing.
        page.get_by_label("Password", exact=True).wait_for()
        wait_ready(page)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        wait_ready(page, timeout=60)
        page.get_by_role("button", name="Download the model (joblib)").wait_for(timeout=60_000)
        wait_ready(page)
        # The model is made on click (callable data: a rerun, then the download). On a loaded
        # machine a click can land while the page is rerunning and be dropped; a user clicks
        # again, and so does this test, once. What it checks is who the file is served to.
        download = None
        for _attempt in range(2):
            try:
                with page.expect_download(timeout=45_000) as info:
                    page.get_by_role("button", name="Download the model (joblib)").click()
                download = info.value
                break
            except PlaywrightTimeoutError:
                wait_ready(page, timeout=60)
        assert download is not None, "no download after two clicks"
        media_url = download.url
        assert "/media/" in media_url, media_url
        assert Path(download.path()).read_bytes()[:2] in (b"\x80\x04", b"\x80\x05"), "a pickle"
        cookie = next(c for c in context.cookies() if c["name"] == "hpdash_client")
        assert cookie["httpOnly"], "the client cookie is HttpOnly"

        def status(with_cookie: bool) -> int:
            request = urllib.request.Request(media_url)
            if with_cookie:
                request.add_header("Cookie", f"hpdash_client={cookie['value']}")
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert status(with_cookie=False) == 403, "no cookie: the model is not served"
        assert status(with_cookie=True) == 200, "the signed-in browser may fetch it again"
        page.close()  # the session ends with its tab
        deadline = time.monotonic() + 20
        while status(with_cookie=True) != 403 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status(with_cookie=True) == 403, "after the session closed, the model is not served"
    finally:
        context.close()
        server.stop()


# ------------------------------------------------------------------------------ guessing
def test_password_guesses_are_throttled_per_session_and_per_address(secret_data) -> None:
    data_dir, _ = secret_data
    before = _fingerprint(data_dir)
    proc, url, log = _start_raw_server(data_dir)
    try:
        session = RawSession(url)
        ids = widget_ids(session.run())

        def guess(s: RawSession, password: str) -> str:
            return text_of(
                s.run(
                    "",
                    "",
                    [Widget(ids["Password"], "string_value", password), Widget(ids["Sign in"], "trigger_value", True)],
                )
            )

        started = time.monotonic()
        answers = [guess(session, f"guess-{i}") for i in range(8)]
        assert all("Wrong password" in a for a in answers[:5]), answers[:5]
        assert all("Too many wrong passwords" in a for a in answers[5:]), answers[5:]
        assert time.monotonic() - started >= 2.0, "each wrong password costs time"
        # Throttled: even the right password is not tried now.
        assert "Too many wrong passwords" in guess(session, PASSWORD)
        assert "Quick start" not in text_of(session.run())
        session.close()

        # New sessions from the same address: 20 wrong guesses in all, then refused.
        for _ in range(3):
            fresh = RawSession(url)
            fresh.run()
            for i in range(5):
                guess(fresh, f"more-{i}")
            fresh.close()
        last = RawSession(url)
        last.run()
        assert "Too many wrong passwords" in guess(last, PASSWORD)
        last.close()
    finally:
        _stop(proc, log)
    assert _fingerprint(data_dir) == before
