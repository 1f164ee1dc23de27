"""``python -m hpdash``: the command line (see hpdash.cli)."""

import sys

from hpdash.cli import main

sys.exit(main())
