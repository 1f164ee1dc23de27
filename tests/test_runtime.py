"""The process-wide garbage-collector policy: pauses only where an entry point allows them,
nested across threads; the start-up freeze once per process."""

from __future__ import annotations

import gc

import pytest

from hpdash import runtime


@pytest.fixture
def pauses_allowed():
    """This process allows the pauses, as the server and the CLI do."""
    before = runtime.gc_pauses_allowed()
    runtime.pause_gc_during_bulk_reads()
    yield
    runtime.pause_gc_during_bulk_reads(before)


def test_freeze_startup_objects_freezes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    monkeypatch.setattr(runtime, "_frozen", False)
    gc.unfreeze()
    try:
        assert runtime.freeze_startup_objects() is True
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the imported modules' objects
        assert runtime.freeze_startup_objects() is False
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_gc_paused_nests_across_threads_and_restores(pauses_allowed) -> None:
    import gc
    import threading

    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with runtime.gc_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with runtime.gc_paused():
        assert not gc.isenabled()
        thread.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other thread's pause is still open
    release.set()
    thread.join(5)
    assert gc.isenabled()
    with pytest.raises(RuntimeError), runtime.gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()  # a caller that switched it off itself keeps it off
    try:
        with runtime.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_library_caller_keeps_its_collector() -> None:
    """Without an entry point's say-so (a notebook importing hpdash), no pause happens."""
    before = runtime.gc_pauses_allowed()
    runtime.pause_gc_during_bulk_reads(False)
    try:
        with runtime.gc_paused():
            assert gc.isenabled()
    finally:
        runtime.pause_gc_during_bulk_reads(before)


def test_entry_points_allow_the_pauses(tmp_path) -> None:
    """The server's start-up and the hpdash command allow them (each in a fresh process)."""
    import subprocess
    import sys

    server = (
        "import asyncio\n"
        "from hpdash import runtime\n"
        "from hpdash.ui import server\n"
        "async def main():\n"
        "    assert not runtime.gc_pauses_allowed()\n"
        "    async with server.lifespan(None):\n"
        "        print(runtime.gc_pauses_allowed())\n"
        "asyncio.run(main())\n"
    )
    cli = (
        "import sys\n"
        "from hpdash import cli, runtime\n"
        f"sys.argv = ['hpdash', 'list', '--storage', 'sqlite:///{tmp_path / 'list.db'}']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(runtime.gc_pauses_allowed())\n"
    )
    for code in (server, cli):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-1] == "True", out.stdout


def _child_says(conn) -> None:
    conn.send("ran")
    conn.close()


def _start_child(tmp_path, monkeypatch, *, guarded: bool) -> tuple[str | None, bool]:
    """A forkserver child started while ``__main__`` is a script that fails (as a Streamlit
    page is ``__main__`` while it runs): what it sent, and whether the script ran in it."""
    import multiprocessing
    import sys
    import types

    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'w').close()\nraise NameError('a page run outside Streamlit')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    fake_main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    ctx = multiprocessing.get_context("forkserver")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_says, args=(child,), daemon=True)
    if guarded:
        with runtime.children_import("hpdash.runtime"):
            proc.start()
    else:
        proc.start()
    child.close()
    try:
        said = parent.recv() if parent.poll(60) else None
    except EOFError:  # the child died before sending
        said = None
    proc.join(30)
    return said, marker.exists()


def test_children_import_a_library_module_not_the_page_being_run(tmp_path, monkeypatch) -> None:
    # Without it, multiprocessing runs the page again in the child, which dies on it.
    assert _start_child(tmp_path, monkeypatch, guarded=False) == (None, True)
    (tmp_path / "page-ran").unlink()
    assert _start_child(tmp_path, monkeypatch, guarded=True) == ("ran", False)
    import sys

    assert sys.modules["__main__"].__file__ == str(tmp_path / "page.py")  # put back afterwards
