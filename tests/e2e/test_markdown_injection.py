"""User text never becomes Markdown: names, values, reasons, links and notes, in a real browser.

Every place the issue "Sign-in that cannot be raced" found an injection gets a payload that
points at a local canary server: a Markdown image (the browser would fetch it), a phishing
link, a GitHub autolink and a Streamlit colour directive. The test visits every page and
checks that the canary was never asked for anything and that no link to the payload's hosts
was rendered; a note keeps its own http(s) links but loses every other scheme and all images.
"""

from __future__ import annotations

import http.server
import re
import threading

import pytest
from browser_helpers import no_exception, start_server, wait_ready

pytestmark = pytest.mark.e2e

PHISH = "phish.example"


class _Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def canary():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _payload(canary: str, where: str) -> str:
    """A string that, rendered as Markdown, fetches ``canary/where.png`` and shows links."""
    return f"![{where}]({canary}/{where}.png) [click](https://{PHISH}/{where}) www.{PHISH} :red[{where}]"


@pytest.fixture(scope="module")
def injected_server(tmp_path_factory, canary):
    names = {}

    def setup() -> None:
        import optuna

        from hpdash import datasets, runner
        from hpdash.spec import parse_spec
        from hpdash.storage import open_storage
        from hpdash.store import Catalogue

        column, value, target = (_payload(canary, w) for w in ("column", "value", "target"))
        frame = datasets.load_sample("iris").rename(columns={"target": target})
        frame.insert(0, column, value)  # constant: dropped, its value quoted in the reason
        stored = datasets.store_dataset(frame.to_csv(index=False).encode(), f"{_payload(canary, 'file')}.csv")
        spec = parse_spec(
            {
                "name": "injected",
                "dataset": stored.sha256,
                "target": target,
                "model": "decision_tree",
                "strategy": "random",
                "n_trials": 4,
                "cv": {"folds": 3},
                "space": {
                    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
                    "max_depth": {"type": "int", "low": 1, "high": 5},
                },
            }
        )
        runner.create_study(spec)
        assert runner.wait_for(runner.launch_workers(spec.name, None, 1)) == [0]
        Catalogue().set_note(
            spec.name,
            (
                f"{_payload(canary, 'note')}\n\n[js](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=) "
                f"[vb](vbscript:msgbox) <img src={canary}/note-html.png> [ok](https://example.com/fine)"
            ),
        )
        # A study made by another Optuna tool: any name, and a failed trial with any reason.
        foreign = optuna.create_study(study_name=_payload(canary, "study"), storage=open_storage(heartbeat=False))
        trial = foreign.ask()
        trial.set_user_attr("fail_reason", _payload(canary, "reason"))
        foreign.tell(trial, state=optuna.trial.TrialState.FAIL)
        names["foreign"] = foreign.study_name

    server = start_server(tmp_path_factory, "e2e-injection", setup)
    yield server, names
    server.stop()


def _links(page, notes: bool = False) -> list[str]:
    """The hrefs of the page's links: outside the study note (``notes=False``), where no user
    text may become a link, or inside it (``notes=True``), where the note's own http(s) links
    are kept."""
    script = (
        "els => els.filter(e => !!e.closest('[data-testid=\"stHtml\"]') === %s).map(e => e.getAttribute('href') || '')"
    ) % ("true" if notes else "false")
    return page.eval_on_selector_all('[data-testid="stMain"] a, [data-testid="stSidebar"] a', script)


def _bad_links(hrefs: list[str], canary: str) -> list[str]:
    """Links that lead off the app to a payload host, or run a script (the app's own links,
    such as ``study?study=<the name, URL-encoded>``, are fine)."""
    from urllib.parse import urlparse

    canary_host = urlparse(canary).netloc
    bad = []
    for href in hrefs:
        where = urlparse(href.strip())
        if (
            where.scheme.lower() in ("javascript", "data", "vbscript")
            or PHISH in where.netloc
            or where.netloc == canary_host
            or href.startswith("www.")
        ):
            bad.append(href)
    return bad


def _visit(page, url: str, canary: str) -> None:
    page.goto(url)
    wait_ready(page)
    no_exception(page)
    page.wait_for_timeout(300)  # images load after render
    bad = _bad_links(_links(page), canary)
    assert not bad, f"{url}: links rendered from user text: {bad}"
    images = page.eval_on_selector_all("img", "els => els.map(e => e.src)")
    assert not [src for src in images if canary in src], f"{url}: images from user text: {images}"


def test_no_user_text_becomes_markdown_on_any_page(page, injected_server, canary) -> None:
    from urllib.parse import quote

    server, names = injected_server
    _Canary.hits.clear()
    url = server.url
    for path in (
        "",
        "datasets",
        "new_study",
        "studies",
        "compare",
        "study?study=injected",
        f"study?study={quote(names['foreign'])}",
        f"study?study={quote(_payload(canary, 'query'))}",
        f"compare?experiment={quote(_payload(canary, 'experiment'))}",
    ):
        _visit(page, f"{url}/{path}", canary)

    # The shown text keeps the payloads as text (so nothing was silently dropped).
    page.goto(f"{url}/study?study={quote(names['foreign'])}")
    wait_ready(page)
    # (markup.escape puts an invisible word joiner where an autolink would start)
    body = page.evaluate("document.body.textContent").replace("\u2060", "")
    assert f"{canary}/reason.png" in body and f"{canary}/study.png" in body

    # The note: its https link works, nothing else is a link or an image.
    page.goto(f"{url}/study?study=injected")
    wait_ready(page)
    page.locator('[data-testid="stHtml"] a[href="https://example.com/fine"]').wait_for()
    hrefs = _links(page, notes=True)
    assert "https://example.com/fine" in hrefs, hrefs
    assert all(re.match(r"(https?://|mailto:)", h) for h in hrefs), hrefs
    assert page.locator('[data-testid="stHtml"] img').count() == 0

    # The Datasets page with the payload dataset, every tab.
    page.goto(f"{url}/datasets")
    wait_ready(page)
    page.get_by_role("combobox", name="Dataset", exact=True).click()
    page.get_by_role("option").filter(has_text=":red[file]").first.click()
    wait_ready(page)
    for tab in ("Columns and roles", "Target distribution", "Preview"):
        page.locator('[role="tab"]').filter(has_text=tab).first.click()
        wait_ready(page)
        no_exception(page)
    assert not _bad_links(_links(page), canary)

    page.wait_for_timeout(500)
    assert _Canary.hits == [], f"the browser fetched payload URLs: {_Canary.hits}"
