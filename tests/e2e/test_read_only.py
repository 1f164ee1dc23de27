"""A viewer (``HPDASH_READ_ONLY=1``) in a real browser: no write or compute control is
enabled, the full tour (every page, tab and download) leaves the data directory and the
database byte for byte as they were, and a note's active-scheme links render inert. Plus a
YAML alias bomb uploaded through the New study page of an editor's dashboard: a clear
message, and the server's memory stays where it was.

The library side of the same refusals (``ReadOnlyError``) is tested in tests/test_access.py.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from pathlib import Path

import pytest
from browser_helpers import no_exception, start_server, wait_ready
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.e2e

STUDIES = ("ro-tour-a", "ro-tour-b")
CREATED = "ro-tour-created"  # created, never launched: Resume would be offered to an editor
DATASET_FILE = "flowers.csv"
#: Every classic active-scheme link form in one note, and one safe link that must stay.
NOTE = (
    "Reviewed. [js](javascript:alert(1)) [case](JaVaScRiPt:alert(1)) [tab](java\tscript:alert(1)) "
    "[entity](&#106;avascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) "
    "[vb](vbscript:msgbox(1)) [spaces](  javascript:alert(1)) <javascript:alert(2)> [ref][1] "
    '![img](javascript:alert(3)) <a href="javascript:alert(4)">html</a> [ok](https://example.com/fine)\n\n'
    "[1]: javascript:alert(5)\n"
)
#: Buttons (``st.button``) a viewer may still press: they change only what this browser shows
#: ("Build the HTML report" formats what the page already holds into an in-memory download;
#: "Sign out" ends an OIDC viewer's own session, tests/e2e/test_oidc_sign_in.py).
VIEWER_BUTTONS = (
    "Reset to defaults",
    "New study with this dataset →",
    "Refresh",
    "Build the HTML report",
    "Cancel",
    "Sign out",
)
SAFE_SCHEMES = ("http:", "https:", "mailto:")

#: Every control on the page: its kind, its text and whether it can be used.
_CONTROLS = """() => {
  const main = document.querySelector('[data-testid="stAppViewContainer"]') || document.body;
  const of = (sel, kind) => [...main.querySelectorAll(sel)].map(e => ({
    kind, label: (e.innerText || e.getAttribute('aria-label') || '').trim(),
    disabled: e.disabled || e.getAttribute('aria-disabled') === 'true'}));
  return [
    ...of('[data-testid="stButton"] button', 'button'),
    ...of('[data-testid="stFormSubmitButton"] button', 'submit'),
    ...of('[data-testid="stDownloadButton"] button', 'download'),
    ...of('[data-testid="stFileUploaderDropzone"]', 'upload'),
  ];
}"""
#: Every link target in the document, resolved the way the browser would follow it.
_LINK_TARGETS = """() => [...document.querySelectorAll('a, area, form, iframe, embed, object')].map(e => {
  const raw = e.getAttribute('href') ?? e.getAttribute('xlink:href') ?? e.getAttribute('action')
    ?? e.getAttribute('src') ?? e.getAttribute('data');
  if (raw === null) return null;
  let protocol;
  try { protocol = new URL(raw, document.baseURI).protocol; } catch (err) { protocol = 'unparsable:'; }
  return {tag: e.tagName.toLowerCase(), raw, protocol, inNote: !!e.closest('[data-testid="stHtml"]')};
}).filter(Boolean)"""


def _setup() -> None:
    """Two finished, refit studies (their .skops copies not made yet), one created and never
    launched, an uploaded dataset and a note full of active-scheme links, made before the
    viewer's server starts."""
    from hpdash import datasets, runner, storage
    from hpdash.spec import parse_spec
    from hpdash.store import Catalogue

    datasets.store_dataset(datasets.load_sample("iris").to_csv(index=False).encode(), DATASET_FILE)
    procs = []
    for name, strategy in zip(STUDIES, ("random", "tpe")):
        spec = parse_spec(
            {
                "name": name,
                "dataset": "sklearn:iris",
                "target": "target",
                "model": "k_nearest_neighbors",
                "strategy": strategy,
                "n_trials": 4,
                "cv": {"folds": 3},
                "seed": 0,
            }
        )
        runner.create_study(spec)
        procs += runner.launch_workers(name, None, 1)
    runner.create_study(
        parse_spec({"name": CREATED, "dataset": "sklearn:iris", "target": "target", "model": "k_nearest_neighbors"})
    )
    assert runner.wait_for(procs) == [0] * len(procs)
    for name in STUDIES:
        assert runner.refit_info(runner.load_study(name)), f"{name} was not refit"
    with Catalogue() as catalogue:
        catalogue.set_note(STUDIES[0], NOTE)
    # Close this process's connections: SQLite then checkpoints its WAL into the database file,
    # so what the viewer's server finds is the file the snapshot hashes.
    storage.close_all()


@pytest.fixture(scope="module")
def viewer_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-viewer", _setup, extra_env={"HPDASH_READ_ONLY": "1"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-bomb")
    yield server
    server.stop()


# ------------------------------------------------------------------------------ helpers
def _snapshot(data_dir: Path) -> dict[str, str]:
    """Every path under the data directory with the SHA-256 of its bytes (folders as such),
    and a dump of each SQLite database. SQLite's side files (-wal, -shm) change on a read and
    are left out: a write would show in the dump, and in the WAL's size (kept)."""
    seen: dict[str, str] = {}
    for path in sorted(data_dir.rglob("*")):
        rel = str(path.relative_to(data_dir))
        if path.is_dir():
            seen[rel] = "folder"
        elif path.name.endswith("-shm"):
            continue
        elif path.name.endswith("-wal"):
            seen[rel.removesuffix("-wal") + " (WAL size)"] = str(path.stat().st_size)
        else:
            seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    for db in sorted(data_dir.rglob("*.db")):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            dump = "\n".join(conn.iterdump())
        seen[f"{db.relative_to(data_dir)} (dump)"] = hashlib.sha256(dump.encode()).hexdigest()
    for key in [k for k in seen if k.endswith(" (WAL size)") and seen[k] == "0"]:
        del seen[key]  # an empty WAL is the same as none (a reader may create it)
    return seen


def _open(page, url: str) -> None:
    page.goto(url)
    wait_ready(page)
    no_exception(page)


def _tab(page, name: str):
    return page.locator('[role="tab"]:visible').filter(has_text=re.compile(f"^{name}$")).first


def _pick(page, label: str, option_text: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option").filter(has_text=option_text).first.click()
    wait_ready(page)


def _expand(page, label: str) -> None:
    page.locator('[data-testid="stExpander"] summary').filter(has_text=label).first.click()
    wait_ready(page)


def _download(page, label: str) -> bytes:
    """Click a download button and return the bytes the browser saved. A click that lands
    while the page is still rerunning can be dropped by the browser on a loaded machine: one
    more click after the page settles, never more."""
    for attempt in (1, 2):
        try:
            with page.expect_download(timeout=120_000) as info:
                # Streamlit keeps the buttons disabled while the previous download is made on
                # the server (the .skops copy, in memory): wait for it, up to two minutes.
                page.get_by_role("button", name=label).first.click(timeout=120_000)
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            wait_ready(page, timeout=60)
    data = Path(info.value.path()).read_bytes()
    wait_ready(page)
    no_exception(page)
    assert data, f"{label}: an empty download"
    return data


def assert_viewer_controls(page, where: str) -> list[dict]:
    """No control on the page can write or compute: every button but the viewer's own is
    disabled and every uploader is off. Returns the controls seen."""
    controls = page.evaluate(_CONTROLS)
    usable = [
        c
        for c in controls
        if not c["disabled"]
        and (c["kind"] in ("submit", "upload") or (c["kind"] == "button" and not c["label"].endswith(VIEWER_BUTTONS)))
    ]
    assert not usable, f"{where}: controls a viewer can use: {usable}"
    return controls


def assert_no_active_links(page, where: str) -> None:
    targets = page.evaluate(_LINK_TARGETS)
    active = [t for t in targets if t["protocol"] not in SAFE_SCHEMES]
    assert not active, f"{where}: links to an active scheme: {active}"


# ------------------------------------------------------------------------------ the tour
def test_a_viewers_full_tour_can_change_and_compute_nothing(page, viewer_server) -> None:
    url = viewer_server.url
    before = _snapshot(viewer_server.data_dir)
    assert any(k.startswith("models/") and k.endswith(".joblib") for k in before), before
    assert not any(k.endswith(".skops") for k in before), "no .skops copy before the tour"
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    downloads: dict[str, bytes] = {}

    # Home: the quick starts are off, the sidebar says what a viewer may do
    _open(page, f"{url}/")
    assert "Review-only dashboard" in page.locator('[data-testid="stSidebar"]').inner_text()
    home = assert_viewer_controls(page, "home")
    assert [c for c in home if c["kind"] == "button"], "the quick starts should be shown, disabled"

    # Datasets: upload off, delete off, every tab of the uploaded table
    _open(page, f"{url}/datasets")
    _pick(page, "Dataset", DATASET_FILE)
    for tab in ("Columns and roles", "Target distribution", "Preview"):
        _tab(page, tab).click()
        wait_ready(page)
        no_exception(page)
    controls = assert_viewer_controls(page, "datasets")
    assert [c for c in controls if c["kind"] == "upload"], "the dataset uploader should be shown, disabled"
    assert page.get_by_role("checkbox", name=re.compile("Yes, delete")).is_disabled()
    # forced past the disabled dropzone, a file goes nowhere (the server refuses the upload)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "forced.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n3,4\n"}]
    )
    wait_ready(page)
    no_exception(page)

    # New study: no spec upload, no smoke fit, no launch; the spec download is in memory
    _open(page, f"{url}/new_study")
    page.get_by_role("button", name="Launch study").wait_for()
    _expand(page, "Start from a spec file")
    _expand(page, "Compare strategies")
    page.get_by_text("No run-time estimate").first.wait_for()
    assert page.get_by_text("Estimated run time").count() == 0, "the smoke fit ran for a viewer"
    controls = assert_viewer_controls(page, "new study")
    assert {c["label"] for c in controls if c["kind"] == "button" and c["disabled"]} >= {
        "Launch study",
        "Launch comparison",
    }, controls
    assert len([c for c in controls if c["kind"] == "upload"]) == 1, controls
    downloads["spec"] = _download(page, "Download spec (YAML)")

    # Studies: stop, resume and delete are shown and off for each study, also for the one
    # Resume would start
    _open(page, f"{url}/studies")
    for name in (*STUDIES, CREATED):
        _pick(page, "Study", name)
        assert_viewer_controls(page, f"studies, {name}")
        for label in ("Delete…", "Stop", "Resume"):
            button = page.get_by_role("button", name=label, exact=True)
            assert button.count() == 1 and button.is_disabled(), f"{label} on {name}"

    # Each study: every tab, every download, the note; refit, BBC-CV and saving are off
    for name in STUDIES:
        _open(page, f"{url}/study?study={name}")
        page.get_by_role("button", name=re.compile(r"^Refit")).first.wait_for()
        for tab in ("Convergence", "Parallel coordinates", "Importance", "Slice", "Contour", "Timeline", "Trials"):
            _tab(page, tab).click()
            wait_ready(page)
            no_exception(page)
        downloads[f"{name} trials"] = _download(page, "Download trials (CSV)")
        downloads[f"{name} skops"] = _download(page, "Download the model (skops)")
        downloads[f"{name} joblib"] = _download(page, "Download the model (joblib)")
        page.get_by_text("Made in memory from the joblib file").first.wait_for()
        _expand(page, "Edit notes (Markdown)")
        # a forced click on the disabled Save notes changes nothing (the snapshot below)
        page.get_by_role("textbox", name="Notes").fill("overwritten by a viewer")
        page.get_by_role("button", name="Save notes").click(force=True)
        wait_ready(page)
        no_exception(page)
        _expand(page, "Reproduce the best trial")
        controls = assert_viewer_controls(page, f"study {name}")
        off = {c["label"] for c in controls if c["kind"] == "button" and c["disabled"]}
        assert {"Estimate the selection bias", "Save notes"} <= off and any(x.startswith("Refit") for x in off), off
        assert page.get_by_text("it runs no estimate on request").count() == 1
        assert_no_active_links(page, f"study {name}")

    # Compare the two studies; its downloads are made in memory
    _open(page, f"{url}/compare")
    for name in STUDIES:
        page.get_by_role("combobox", name="Studies", exact=True).click()
        page.get_by_role("option", name=name, exact=True).click()
        page.keyboard.press("Escape")
        wait_ready(page)
    page.get_by_text("Verdict").first.wait_for()
    assert_viewer_controls(page, "compare")
    downloads["compare trials"] = _download(page, "Download every trial (CSV)")
    page.get_by_role("button", name="Build the HTML report").click()
    wait_ready(page)
    downloads["compare report"] = _download(page, "Download the HTML report")

    # What came down is what a viewer should get ...
    from hpdash import datasets, export_model

    rows = datasets.load_sample("iris").drop(columns=["target"]).head(3)
    for name in STUDIES:
        saved = viewer_server.data_dir.parent / f"{name}.skops"  # outside the data directory
        saved.write_bytes(downloads[f"{name} skops"])
        assert export_model.load_skops(saved).predict(rows).shape == (3,)
        joblib_file = viewer_server.data_dir / "models" / f"{name}.joblib"
        assert downloads[f"{name} joblib"] == joblib_file.read_bytes()
        assert downloads[f"{name} trials"].startswith(b"number,state,value")
    assert b"name: " in downloads["spec"] and downloads["compare report"].startswith(b"<!DOCTYPE html>")
    assert dialogs == [], f"a payload ran: {dialogs}"

    # ... and the data directory and the database are byte for byte as they were
    assert _snapshot(viewer_server.data_dir) == before


def test_a_notes_active_scheme_links_render_inert(page, viewer_server) -> None:
    """The note shows the payloads as text; the only link left in it is its https one, and no
    element anywhere on the page links to javascript:, data: or vbscript:."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _open(page, f"{viewer_server.url}/study?study={STUDIES[0]}")
    note = page.locator('[data-testid="stHtml"]').filter(has_text="Reviewed.")
    note.first.wait_for()
    note.locator('a[href="https://example.com/fine"]').wait_for()
    assert_no_active_links(page, "study page with the note")
    in_note = [t for t in page.evaluate(_LINK_TARGETS) if t["inNote"]]
    assert [t["raw"] for t in in_note] == ["https://example.com/fine"], in_note
    text = note.first.inner_text()
    # an unsafe link keeps its text, an autolink its address, raw HTML is shown as written
    for shown in ("js case", "entity data vb spaces", "javascript:alert(2)", '<a href="javascript:alert(4)">html</a>'):
        assert shown in text, f"{shown!r} should be shown as text: {text!r}"
    assert note.locator("img").count() == 0
    note.first.click()  # clicking the note's text runs nothing and leads nowhere
    page.wait_for_timeout(300)
    assert dialogs == [] and page.evaluate("location.href").startswith(viewer_server.url)


# ------------------------------------------------------------------------------ the alias bomb
def _bomb() -> bytes:
    """A 0.9 MB spec with 49 aliases: a list of 25 aliases of a 900 kB string, shared by 25
    hyperparameters, is 625 copies (over half a gigabyte) once written out."""
    text = "name: bomb\ndataset: sklearn:iris\ntarget: target\nmodel: decision_tree\nspace:\n"
    text += "  criterion:\n    type: categorical\n    choices: &L [&s " + "x" * 900_000 + ", "
    text += ", ".join(["*s"] * 24) + "]\n"
    text += "".join(f"  h{i}:\n    type: categorical\n    choices: *L\n" for i in range(24))
    return text.encode()


def _billion_laughs() -> bytes:
    lines = ['name: &a0 "lol"']
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return ("\n".join(lines) + "\n").encode()


def _memory(pid: int) -> dict[str, int]:
    """The process's resident and peak resident memory in bytes (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024 for key in ("VmRSS", "VmHWM")}


def _reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False where refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_a_yaml_alias_bomb_upload_gets_a_message_and_no_memory(page, editor_server) -> None:
    pid = editor_server.proc.pid
    _open(page, f"{editor_server.url}/new_study")
    page.get_by_text("Estimated run time").first.wait_for(timeout=60_000)
    _expand(page, "Start from a spec file")
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    for name, data, reason in (
        ("bomb.yaml", _bomb(), "once its YAML aliases"),
        ("laughs.yaml", _billion_laughs(), "more than 100,000 values once its aliases"),
    ):
        time.sleep(0.5)
        peak_reset = _reset_peak(pid)
        before = _memory(pid)
        started = time.monotonic()
        uploader.set_input_files(files=[{"name": name, "mimeType": "application/x-yaml", "buffer": data}])
        # (a second file replaces the first: its own message replaces the first's)
        message = (
            page.locator('[data-testid="stAlert"]').filter(has_text="Cannot use this spec").filter(has_text=reason)
        )
        message.first.wait_for(timeout=30_000)
        wait_ready(page)
        no_exception(page)
        after = _memory(pid)
        text = message.first.inner_text()
        assert "Write" in text, text  # the problem, and the fix
        assert "message size limit" not in page.evaluate("document.body.textContent")
        assert time.monotonic() - started < 30
        growth = after["VmRSS"] - before["VmRSS"]
        assert growth < 100 * 2**20, f"{name}: the server grew by {growth / 2**20:.0f} MB"
        if peak_reset:
            peak = after["VmHWM"] - before["VmRSS"]
            assert peak < 100 * 2**20, f"{name}: the server's peak grew by {peak / 2**20:.0f} MB"
