"""What a person reads in an AppTest element: its Markdown source with hpdash's escaping of
user text (``hpdash.markup.escape``) undone, so tests can look for names and messages."""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown: str) -> str:
    return _ESCAPED.sub(r"\1", str(markdown)).replace("\u2060", "").replace("&#32;", " ")
