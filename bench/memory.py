"""Memory: RSS of a fresh process that imports what the Streamlit server imports and builds a
10,000-trial study page's data (frame, summary, figures as JSON, importance).

Run as ``python -m bench.memory SQLITE_URL``; prints ``peak_rss_bytes current_rss_bytes``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import Report, fmt_mb


def _status(field: str) -> int:
    """A /proc/self/status size in bytes: VmRSS (now) or VmHWM (peak of this program).

    Not ``getrusage().ru_maxrss``: Linux carries the forking parent's peak across exec, so a
    child of the (large) benchmark process would report the parent's peak.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main(url: str) -> None:
    import streamlit  # noqa: F401  (the server process has it loaded)

    from bench.reading import hpdash_page
    from hpdash import runtime

    runtime.freeze_startup_objects()  # as the server does once its imports are done
    runtime.pause_gc_during_bulk_reads()
    hpdash_page(url, "cold")
    hpdash_page(url, "cached")
    print(_status("VmHWM"), _status("VmRSS"))


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    from bench.studies import make_study

    path = workdir / "study10000.db"
    url = make_study(path, 10000) if not path.exists() else f"sqlite:///{path}"
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    peak, current = (int(x) for x in out.stdout.split()[-2:])
    report.add(
        "memory: process with a 10k-trial study page built",
        fmt_mb(peak) + " peak",
        fmt_mb(current) + " after",
        "-",
        "< 600 MB",
        peak < 600e6,
    )


if __name__ == "__main__":
    main(sys.argv[1])
