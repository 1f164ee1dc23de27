"""Process-wide policies: the garbage collector's, chosen by the entry points, and the main
module that new child processes see (``children_import``).

The library marks the places where it builds many objects that hold no reference cycles
(``gc_paused``: reading a large study, PED-ANOVA); whether the cyclic collector is actually
paused there is a choice for the process, not for a library function, since Python's switch
is process-wide and stops the collector for every thread. The entry points choose:

- the web server's start-up (``hpdash.ui.server.lifespan``) freezes its start-up objects and
  turns the pauses on: a collection set off by a burst of allocation walks every object alive
  in the server, a sizeable share of a large study page's time (docs/PERFORMANCE.md,
  "Numbers behind the code"), and finds nothing;
- ``hpdash`` commands (``hpdash.cli.main``) turn them on for the commands that read studies;
- code that imports hpdash as a library (a notebook, a test) keeps its collector as it is,
  unless it calls ``pause_gc_during_bulk_reads`` itself.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_pauses_allowed = False  # set by an entry point (``pause_gc_during_bulk_reads``)
_open_pauses = 0  # open gc_paused() blocks that paused, in any thread
_was_enabled = False
_frozen = False  # freeze_startup_objects() has run in this process


def pause_gc_during_bulk_reads(allowed: bool = True) -> None:
    """Let ``gc_paused`` blocks pause the cyclic collector in this process (or stop letting
    them: blocks already open keep their pause until they end)."""
    global _pauses_allowed
    with _LOCK:
        _pauses_allowed = allowed


def gc_pauses_allowed() -> bool:
    return _pauses_allowed


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a block bulk-builds objects without
    cycles (rows, lists, dicts, FrozenTrials), if this process allows it
    (``pause_gc_during_bulk_reads``); otherwise do nothing.

    Python has no per-thread switch, so nested and concurrent pauses share one count, and
    the collector runs again when the last one ends. A collector that was off before the first
    pause stays off. Usable as a decorator.
    """
    global _open_pauses, _was_enabled
    with _LOCK:
        pausing = _pauses_allowed
        if pausing:
            if _open_pauses == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _open_pauses += 1
    if not pausing:
        yield
        return
    try:
        yield
    finally:
        with _LOCK:
            _open_pauses -= 1
            if _open_pauses == 0 and _was_enabled:
                gc.enable()


def freeze_startup_objects() -> bool:
    """Move every object alive now out of the cyclic garbage collector's reach, once per
    process. The web server's start-up calls it (``hpdash.ui.server.lifespan``), once the
    app's modules are imported.

    By then the process holds a great many objects from its imports (modules, classes,
    functions of Streamlit, plotly, pandas, Optuna) that live as long as the process, and every
    full collection would walk them all: on a large study those collections make the study
    page's slowest opens (docs/PERFORMANCE.md, "Numbers behind the code"). Objects freed by
    reference counting are still freed; only cyclic garbage that exists at this moment would
    be kept, so it is collected first.
    Returns whether this call froze them (False when it was done before).
    """
    global _frozen
    with _LOCK:
        if _frozen:
            return False
        gc.collect()
        gc.freeze()
        _frozen = True
        return True


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def children_import(module: str) -> Iterator[None]:
    """Start ``forkserver`` or ``spawn`` children inside this block: they import ``module`` as
    their main module instead of re-running this process's main script.

    multiprocessing prepares each such child by running the parent's ``__main__`` again, by
    name or, when it has none, from its file. Inside a Streamlit server ``__main__`` is the page
    being run (Streamlit executes each page as ``__main__``), and in a test process it can be
    the last script an ``AppTest`` ran: the child would run a page, outside Streamlit, before
    doing its work (or die on it). ``module`` is a library module, imported as is.
    """
    with _MAIN_LOCK:
        previous = sys.modules.get("__main__")
        sys.modules["__main__"] = importlib.import_module(module)
        try:
            yield
        finally:
            if previous is not None:
                sys.modules["__main__"] = previous
