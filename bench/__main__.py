"""Run every benchmark and print one table: ``python -m bench`` / ``make bench``.

Options: ``--quick`` (fewer repeats, no 50k study, 30-trial pruning runs), ``--only NAME``
(reading, memory, tuning, pruning, cli, replay, storage_latency, advisor; repeatable), ``--markdown FILE`` (also write the table),
``--strict`` (exit 1 when a target is missed).
Studies are generated into a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from bench import advisor, cli_run, memory, pruning, reading, replay, storage_latency, tuning
from bench.common import Report, machine

SUITES = {
    "reading": reading,
    "memory": memory,
    "tuning": tuning,
    "pruning": pruning,
    "cli": cli_run,
    "replay": replay,
    "storage_latency": storage_latency,
    "advisor": advisor,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=list(SUITES))
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hpdash").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    report = Report()
    print(f"hpdash benchmarks on {machine()}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpdash-bench-") as tmp:
        for name in args.only or list(SUITES):
            print(f"\n[{name}]", flush=True)
            SUITES[name].run(report, Path(tmp), quick=args.quick)
    print(f"\nAll benchmarks took {time.perf_counter() - started:.0f} s.\n")
    table = report.table()
    print(table)
    for note in report.notes:
        print(f"- {note}")
    if args.markdown:
        args.markdown.write_text(table + "\n\n" + "\n".join(f"- {n}" for n in report.notes) + "\n")
    missed = [r.target for r in report.rows if r.holds is False]
    if missed:
        print(f"\n{len(missed)} target(s) missed: " + "; ".join(missed))
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
