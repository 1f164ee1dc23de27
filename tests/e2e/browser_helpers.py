"""Browser suite helpers: a real `streamlit run app.py` server, waits, screenshots.

Never runs `playwright install`: the browser is /usr/bin/chromium (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
# Screenshots are taken on every run (a page that cannot render fails the test), but they
# replace the README's pictures in docs/screenshots only when asked, so that `make test`
# leaves the working tree clean: HPDASH_UPDATE_SCREENSHOTS=1 make test PYTEST_ARGS=tests/e2e
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("HPDASH_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "hpdash-screenshots"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A Streamlit server on a free loopback port with its own HPDASH_DATA_DIR."""

    def __init__(
        self,
        data_dir: Path,
        extra_env: dict[str, str] | None = None,
        *,
        port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HPDASH_DATA_DIR": str(data_dir)}
        env.pop("HPDASH_STORAGE", None)
        env.update(extra_env or {})
        self.log = open(data_dir.parent / "streamlit.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "app.py"),
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                *(extra_args or []),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {(data_dir.parent / 'streamlit.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("streamlit did not become healthy within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def start_server(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    setup=None,
    extra_env: dict[str, str] | None = None,
    **server_options,
) -> Server:
    """A server over a fresh data dir, after ``setup()`` ran with that dir (and no extra env).

    ``extra_env`` is added to the server's environment only, e.g. ``HPDASH_READ_ONLY``;
    ``server_options`` go to :class:`Server` (``port``, ``extra_args``).
    """
    data = tmp_path_factory.mktemp(name) / "data"
    data.mkdir()
    if setup is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HPDASH_DATA_DIR", str(data))
            mp.delenv("HPDASH_STORAGE", raising=False)
            setup()
    return Server(data, extra_env, **server_options)


def wait_ready(page, timeout: float = 30.0) -> None:
    """Wait until the page has rendered and Streamlit's script run is over."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout * 1000)
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 0.6:
            return
        time.sleep(0.1)


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def element_screenshot(locator, name: str) -> None:
    """A picture of one element (scrolled into view): Streamlit scrolls inside its main block,
    so a full-page picture holds only the first screen of a long page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


#: The corners, in page pixels, of every text of the visible parcoords figure, by kind: axis
#: titles, tick labels, range numbers. Each text's own box (getBBox) is mapped through its
#: transform (getScreenCTM), so a turned title gives its turned corners, not an upright box.
PARCOORDS_TEXT_JS = """(root) => {
  const corners = (t) => {
    const b = t.getBBox(), m = t.getScreenCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
  };
  const texts = (sel) => [...root.querySelectorAll(sel)]
    .filter(t => t.textContent.trim() && t.getBBox().width > 0)
    .map(t => ({text: t.textContent, corners: corners(t)}));
  const svg = root.querySelector('.main-svg').getBoundingClientRect();
  return {titles: texts('.axis-title'), ticks: texts('.y-axis .tick text'),
          ranges: texts('.axis-extent-text'),
          figure: [svg.left, svg.top, svg.right, svg.bottom]};
}"""


def convex_overlap(p, q) -> bool:
    """Whether two convex polygons (lists of [x, y]) overlap (separating axis theorem); a
    shared edge or a gap of less than half a pixel counts as touching, not overlapping."""
    for poly in (p, q):
        for i in range(len(poly)):
            (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
            nx, ny = y1 - y2, x2 - x1
            norm = (nx * nx + ny * ny) ** 0.5 or 1.0
            a = [(x * nx + y * ny) / norm for x, y in p]
            b = [(x * nx + y * ny) / norm for x, y in q]
            if max(a) <= min(b) + 0.5 or max(b) <= min(a) + 0.5:
                return False
    return True


def table_headers(table) -> list[str]:
    """The column headers a dataframe draws, once they are there (its grid is a canvas; the
    accessible table beside it holds the columns in view)."""
    table.locator('[role="columnheader"]').first.wait_for(state="attached")
    return [h.strip() for h in table.locator('[role="columnheader"]').all_text_contents()]
