"""Browser: a 3-strategy x 3-repeat experiment launched from the New study page fills in the
Compare page by itself, and its queue never runs more studies at once than the machine allows.

The server runs with ``HPDASH_MAX_WORKERS=2`` and every study has 1 worker, so the queue may
run at most 2 studies at a time. While the experiment runs, a thread in the test reads the
storage every 0.3 s (``experiments.experiment_progress``, read-only) and also counts the live
``python -m hpdash worker`` processes of this server's data directory, and keeps the largest
number of studies seen running at once. The page is never clicked after the launch: its
progress line and then its verdict must appear by themselves.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from browser_helpers import SCREENSHOTS, no_exception, screenshot, start_server, wait_ready

from hpdash import experiments, runner
from hpdash.errors import HpdashError
from hpdash.storage import open_storage
from hpdash.strategies import STRATEGY_LABELS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "form-exp"
STRATEGIES = ("grid", "random", "tpe")
LABELS = {"grid": "Grid", "random": "Random", "tpe": "TPE"}
REPEATS = 3
N_TRIALS = 4
MAX_AT_ONCE = 2  # HPDASH_MAX_WORKERS=2, 1 worker per study
#: The whole test, from the server's start to the last assertion (a 2-core machine under load).
BUDGET_S = 240.0
EXPANDER = "Compare strategies: the same problem and budget, several strategies and seeds"


def _worker_studies(data_dir: Path) -> set[str]:
    """The studies that have a live (not zombie) ``python -m hpdash worker NAME`` process on
    this server's storage, read from /proc: an account independent of the database."""
    studies = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not any(str(data_dir) in a for a in args):
            continue
        for i in range(len(args) - 2):
            if args[i] == "hpdash" and args[i + 1] == "worker":
                studies.add(args[i + 2])
    return studies


class Watcher(threading.Thread):
    """Polls the experiment every ``interval`` seconds; keeps the most studies running at once
    by the storage (``progress.running``) and by the worker processes, and the counts seen."""

    def __init__(self, data_dir: Path, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.data_dir = data_dir
        self.interval = interval
        self.halt = threading.Event()
        self.max_running = 0
        self.max_processes = 0
        self.polls = 0
        self.errors: list[str] = []
        self.counts: list[tuple[float, dict[str, int]]] = []
        self.last: experiments.ExperimentProgress | None = None

    def run(self) -> None:
        store = open_storage(None, heartbeat=False)
        try:
            while not self.halt.is_set():
                self.max_processes = max(self.max_processes, len(_worker_studies(self.data_dir)))
                try:
                    progress = experiments.experiment_progress(NAME, store=store)
                except experiments.ExperimentNotFoundError:
                    pass  # not launched yet
                except HpdashError as exc:  # a busy SQLite file: the next poll reads again
                    self.errors.append(str(exc))
                else:
                    self.polls += 1
                    self.last = progress
                    self.max_running = max(self.max_running, progress.running)
                    counts = {k: v for k, v in progress.counts.items() if v}
                    if not self.counts or self.counts[-1][1] != counts:
                        self.counts.append((time.monotonic(), counts))
                self.halt.wait(self.interval)
        finally:
            store.engine.dispose()


def _main_text(page) -> str:
    try:
        return page.locator('[data-testid="stMain"]').inner_text(timeout=5_000)
    except Exception:  # the element is being redrawn by a rerun
        return ""


def _progress_text(page) -> str | None:
    try:
        bar = page.locator('[data-testid="stProgress"]')
        return bar.first.inner_text(timeout=2_000) if bar.count() else None
    except Exception:
        return None


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_ready(page, timeout=60)


def test_experiment_from_the_form_fills_the_compare_page(browser, tmp_path_factory) -> None:
    t0 = time.monotonic()
    server = start_server(tmp_path_factory, "form-experiment", extra_env={"HPDASH_MAX_WORKERS": str(MAX_AT_ONCE)})
    watcher = Watcher(server.data_dir)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPDASH_DATA_DIR", str(server.data_dir))
        mp.delenv("HPDASH_STORAGE", raising=False)
        try:
            # 1. the form: iris (the first sample), logistic regression (the default model),
            # 4 trials, 3 folds, a known name
            page.goto(f"{server.url}/new_study")
            wait_ready(page, timeout=60)
            page.get_by_text("1 · Data").wait_for()
            no_exception(page)
            assert page.get_by_role("combobox", name="Dataset").input_value().startswith("iris (sample)")
            assert page.get_by_role("button", name="Remove Logistic regression", exact=True).count() == 1
            _set_number(page, "Trials (0 = no trial limit)", N_TRIALS)
            _set_number(page, "CV folds", 3)
            name_box = page.get_by_role("textbox", name="Study name")
            name_box.fill(NAME)
            name_box.press("Enter")
            wait_ready(page, timeout=60)
            page.get_by_text("Estimated run time").first.wait_for(timeout=60_000)
            no_exception(page)

            # 2. the comparison: grid, random and TPE (the defaults without GP), 3 repeats
            page.get_by_text(EXPANDER).click()
            page.get_by_text("Repeats (seeds per strategy)").wait_for()
            remove = page.get_by_role("button", name="Remove Bayesian: Gaussian process (scikit-learn)", exact=True)
            if remove.count():
                remove.click()
                wait_ready(page, timeout=60)
            _set_number(page, "Repeats (seeds per strategy)", REPEATS)
            chosen = [
                key
                for key, label in STRATEGY_LABELS.items()
                if page.get_by_role("button", name=f"Remove {label}", exact=True).count()
            ]
            assert sorted(chosen) == sorted(STRATEGIES), chosen
            text = _main_text(page)
            assert f"{len(STRATEGIES) * REPEATS} studies" in text, text[-3000:]
            assert f"{MAX_AT_ONCE} at a time with 1 worker(s) each" in text, text[-3000:]
            no_exception(page)
            screenshot(page, "experiment-form")
            launch = page.get_by_role("button", name="Launch comparison")
            assert launch.is_enabled()

            # 3. launch and land on the Compare page; from here on, nothing is clicked
            watcher.start()
            launch.click()
            page.wait_for_url(re.compile(rf".*/compare\?experiment={NAME}$"), timeout=90_000)
            launched = time.monotonic()
            page.evaluate("window.__clicks = 0; document.addEventListener('click', () => window.__clicks++, true)")
            page.locator('[data-testid="stProgress"]').first.wait_for(timeout=60_000)
            first = None
            while first is None and time.monotonic() - launched < 30:
                first = _progress_text(page)
            screenshot(page, "experiment-compare-start")

            seen: list[str] = [first or ""]
            final_text = ""
            deadline = t0 + BUDGET_S - 20
            while time.monotonic() < deadline:
                shown = _progress_text(page)
                if shown and shown != seen[-1]:
                    seen.append(shown)
                text = _main_text(page)
                done = f"{len(STRATEGIES) * REPEATS} finished" in (shown or "")
                if done and "Verdict" in text and "Summary" in text:
                    final_text = text
                    break
                time.sleep(0.5)
            finished_at = time.monotonic()
            # The rerun the last count change set off shows every run: the summary and verdict
            # then rest on every strategy's three seeds (a page caught mid-rerun may still show
            # the runs it had before the last study's first trial).
            caught_up = time.monotonic() + 60
            while time.monotonic() < caught_up:
                wait_ready(page, timeout=30)
                text = _main_text(page)
                if f"with {REPEATS} seeds" in text and f"{REPEATS - 1}-{REPEATS} seeds" not in text:
                    final_text = text
                    break
                time.sleep(1)
            screenshot(page, "experiment-compare-end")
            clicks = page.evaluate("window.__clicks")
            no_exception(page)
            watcher.halt.set()
            watcher.join(10)

            # 4. the page filled in by itself: queued/running first, then finished and a verdict
            report = (
                f"progress lines seen: {seen}; storage counts: {[c for _, c in watcher.counts]}; "
                f"screenshots: {SCREENSHOTS}/experiment-compare-start.png and -end.png"
            )
            assert clicks == 0, report  # None if the page had been reloaded: it was not either
            assert re.search(r"\d+ (queued|running)", seen[0]), report
            assert final_text, f"the Compare page did not show 9 finished and a verdict by itself; {report}"
            assert seen[-1].startswith(f"{len(STRATEGIES) * REPEATS} finished"), report
            assert len(seen) >= 3, report  # it moved through intermediate states, not just start -> end
            assert "queued" not in seen[-1] and "running" not in seen[-1], report
            assert f"with {REPEATS} seeds" in final_text, f"the page never showed every run: {final_text[-2000:]}"
            # the whole page after the end, read again (the verdict's box holds text)
            final_text = _main_text(page) or final_text
            # below the verdict (the caption above it names the strategies from the start):
            # the verdict's own text, then the design line with the three strategies and seeds
            after = final_text.split("Verdict", 1)[1].strip()
            assert after and not after.startswith("Summary"), report
            design = after.split("Summary", 1)[0]
            for key in STRATEGIES:
                assert LABELS[key] in design, (key, design)
            assert f"({REPEATS} repeats)" in design, design

            # 5. every study finished with its full budget; never more than 2 running at once
            experiment = experiments.load_experiment(NAME)
            assert sorted(experiment.strategies) == sorted(STRATEGIES)
            assert len(experiment.runs) == len(STRATEGIES) * REPEATS
            for run in experiment.runs:
                status = runner.study_status(runner.load_study(run.study))
                assert status.state == "finished", (run.study, status)
                assert status.done == status.budget == N_TRIALS, (run.study, status)
            assert watcher.polls > 10, (watcher.polls, watcher.errors)
            assert 1 <= watcher.max_running <= MAX_AT_ONCE, report
            assert 1 <= watcher.max_processes <= MAX_AT_ONCE, (watcher.max_processes, report)
            assert time.monotonic() - t0 < BUDGET_S
            print(
                f"\nlaunch -> page finished: {finished_at - launched:.1f} s; whole test "
                f"{time.monotonic() - t0:.1f} s; max running (storage) {watcher.max_running}, "
                f"(worker processes) {watcher.max_processes}; {watcher.polls} polls, "
                f"{len(watcher.errors)} busy reads; {report}"
            )
        finally:
            watcher.halt.set()
            if watcher.is_alive():
                watcher.join(10)
            context.close()
            try:  # a failed test: its queue and workers must not outlive it
                if experiments.experiment_progress(NAME).active:
                    experiments.stop_experiment(NAME)
            except HpdashError:
                pass
            server.stop()
