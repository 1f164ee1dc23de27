"""YAML text read without risk: PyYAML's safe loader behind bounds on size, nesting, aliases
and the size of the document once aliases are expanded, with only finite numbers.

Every YAML text hpdash reads (a spec file, a browser upload, a value typed in a form) goes
through :func:`load_yaml_text`; nothing is ever ``eval``-ed. ``hpdash.spec`` re-exports these
names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from hpdash.errors import SpecError

#: Bounds on YAML text read by :func:`load_yaml_text`. A spec is a page of settings and search
#: ranges: these are far above any real one and far below what would hurt the server.
MAX_YAML_CHARS = 1_000_000
MAX_YAML_DEPTH = 50
MAX_YAML_ALIASES = 50
MAX_YAML_NODES = 100_000

# The C parser where PyYAML was built with libyaml (much faster), else the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml_events(text: str) -> None:
    """Refuse YAML whose structure is too big, before any Python object is built from it.

    Walks the parser's event stream (no recursion, nothing constructed): the nesting depth of
    mappings and sequences, the number of aliases, and the number of nodes the document would
    have with every alias expanded (an anchored node's expanded size is known when it ends; an
    alias adds it again), so an alias bomb ("billion laughs") is refused after reading a few
    hundred bytes. An alias to a node that is still open (a document that contains itself) is
    refused too.
    """
    # one entry per open mapping/sequence: [expanded node count so far, its anchor]
    stack: list[list[Any]] = []
    sizes: dict[str, int] = {}
    open_anchors: set[str] = set()
    aliases = 0

    def finish(size: int, anchor: str | None) -> None:
        if anchor is not None:
            sizes[anchor] = size
            open_anchors.discard(anchor)
        if stack:
            stack[-1][0] += size
            if stack[-1][0] > MAX_YAML_NODES and aliases:
                raise SpecError(
                    f"The spec expands to more than {MAX_YAML_NODES:,} values once its aliases "
                    f"(*name) are replaced by what they refer to; the limit is "
                    f"{MAX_YAML_NODES:,}. Write the values out instead of repeating aliases."
                )
            if stack[-1][0] > MAX_YAML_NODES:
                raise SpecError(
                    f"The spec has more than {MAX_YAML_NODES:,} values; the limit is "
                    f"{MAX_YAML_NODES:,}. A spec lists settings and search ranges, not data: "
                    "shorten the long lists in it."
                )

    try:
        for event in yaml.parse(text, Loader=_SAFE_LOADER):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_YAML_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    raise SpecError(
                        f"The spec nests mappings and lists more than {MAX_YAML_DEPTH} levels "
                        f"deep (at line {line}); the limit is {MAX_YAML_DEPTH}. A spec needs "
                        "only a few levels: flatten the structure."
                    )
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                stack.append([1, event.anchor])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                size, anchor = stack.pop()
                finish(size, anchor)
            elif isinstance(event, yaml.ScalarEvent):
                finish(1, event.anchor)
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise SpecError(
                        f"The spec uses more than {MAX_YAML_ALIASES} aliases (*name); the limit "
                        f"is {MAX_YAML_ALIASES}. Write the values out instead of repeating "
                        "aliases."
                    )
                if event.anchor in open_anchors:
                    raise SpecError(
                        f"The spec's alias *{event.anchor} refers to a value that contains it "
                        "(a value cannot include itself). Remove that alias."
                    )
                # an undefined alias counts one node here; composing reports it below
                assert event.anchor is not None  # PyYAML names the anchor of every alias
                finish(sizes.get(event.anchor, 1), None)
    except yaml.YAMLError as exc:
        raise SpecError(f"The spec is not valid YAML: {exc}") from exc


def _check_finite(value: Any) -> None:
    """Refuse infinite and not-a-number floats anywhere in ``value`` (``.inf``, ``.nan``,
    ``1.0e+999``), naming where the first one is. Iterative: the structure is already bounded
    by :func:`_check_yaml_events` but deep input from elsewhere must not recurse."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            shown = {math.inf: ".inf", -math.inf: "-.inf"}.get(item, ".nan")
            at = f" at '{where}'" if where else ""
            raise SpecError(
                f"The spec has a number that is not finite{at}: {shown}. Numbers in a spec must "
                "be finite: give a number, or null where the field allows no value."
            )
        if isinstance(item, Mapping):
            for key, child in item.items():
                stack.append((child, f"{where}.{key}" if where else str(key)[:60]))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                stack.append((child, f"{where}[{index}]"))


#: The most characters a spec may hold once its YAML aliases are expanded
#: (every string, key and number counted where it appears). ``load_yaml_text`` bounds the
#: number of values an alias may repeat, not their length: 25 aliases of a list of 25 aliases
#: of one 900 kB string are 625 copies, over half a gigabyte once written out (the spec's
#: YAML, the form's tables), from a 0.9 MB upload. Without aliases a spec of at most
#: ``MAX_YAML_CHARS`` characters holds fewer than that.
MAX_EXPANDED_CHARS = MAX_YAML_CHARS


def check_expanded_size(value: Any, limit: int = MAX_EXPANDED_CHARS) -> Any:
    """``value`` (plain data from YAML: a spec, or the form's values) unchanged, or a
    ``SpecError`` when it holds more than ``limit`` characters with every shared value (a YAML
    alias) counted each time it appears. Iterative, and it stops as soon as the count is over
    the limit (each value counts at least one character), so it never walks more than
    ``limit`` values whatever the sharing."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                total += len(str(key)) + 1
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            total += 1
            stack.extend(item)
        else:
            total += max(1, len(item) if isinstance(item, str) else len(repr(item)))
        if total > limit:
            raise SpecError(
                f"the spec holds more than {limit:,} characters once its YAML aliases (*name) are "
                f"replaced by what they refer to; the limit is {limit:,}. Write each value out "
                "once instead of repeating aliases of long text."
            )
    return value


def load_yaml_text(text: str) -> Any:
    """Parse YAML ``text`` (a spec, or any YAML a user gave) into plain Python data, bounded.

    Refused with a :class:`SpecError` naming the limit: text over ``MAX_YAML_CHARS``
    characters (before parsing), nesting deeper than ``MAX_YAML_DEPTH``, more than
    ``MAX_YAML_ALIASES`` aliases, more than ``MAX_YAML_NODES`` values with aliases expanded,
    an alias inside the value it names, more than ``MAX_EXPANDED_CHARS`` characters with
    aliases expanded (``check_expanded_size``), invalid YAML or tags other than the safe
    loader's, and non-finite numbers (``.inf``, ``.nan``). Only PyYAML's safe loader builds objects.
    """
    if not isinstance(text, str):
        raise SpecError(f"A spec must be YAML text, got {type(text).__name__}.")
    if len(text) > MAX_YAML_CHARS:
        raise SpecError(
            f"The spec is {len(text):,} characters long; the limit is {MAX_YAML_CHARS:,} "
            "(about 1 MB). A spec lists settings and search ranges, not data: remove what was "
            "pasted into it."
        )
    _check_yaml_events(text)
    try:
        value = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - the safe loader
    except yaml.YAMLError as exc:
        raise SpecError(f"The spec is not valid YAML: {exc}") from exc
    except (ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits, 2021-13-45
        # Python's own advice after ';' (sys.set_int_max_str_digits) is not for spec authors
        reason = str(exc).split(";")[0].strip()
        raise SpecError(f"The spec has a value that cannot be read ({reason}). Fix or remove it.") from exc
    _check_finite(value)
    return check_expanded_size(value)
