"""The structure the docs describe: no import cycle inside hpdash/, and no module past 500
lines unless docs/ARCHITECTURE.md says why. (The import layers themselves are checked by
lint-imports in `make lint`.)"""

import re
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def test_no_import_cycle_in_hpdash() -> None:
    graph = grimp.build_graph("hpdash")
    cycles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.chain_exists(importer=imported, imported=importer)
    )
    assert cycles == [], cycles


def test_long_modules_are_explained_in_the_architecture_doc() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = doc.split("## Modules over 500 lines", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(hpdash/[\w/]+\.py)` \|", section, flags=re.M))
    long = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "hpdash").rglob("*.py")
        if len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES
    }
    assert long - listed == set(), f"over {MAX_LINES} lines, not in docs/ARCHITECTURE.md: {sorted(long - listed)}"
    assert listed - long == set(), f"listed as long but not any more: {sorted(listed - long)}"
