"""``python -m hpdash``: the command line (see hpdash.cli)."""

import sys

from hpdash.cli import exit_now, main

code = main()
if sys.argv[1:2] == ["worker"]:
    exit_now(code)  # a worker process: nothing left to tear down (see exit_now)
sys.exit(code)
