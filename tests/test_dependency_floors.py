"""pyproject.toml's floors: every requirement has one (so `make test-min` can pin it), and the floors stay above the
versions that introduced APIs cptpub uses (each found by `make test-min` failing below it)."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO
from .min_versions import floors

# (what the source does, package, the first version that has it)
API_FLOORS = [
    (r"\.boxplot\((?s:.)*?orientation=", "matplotlib", (3, 10)),
    (r"\.appender\(", "duckdb", (2, 0)),
    (r"typer\.TyperException", "typer", (0, 28)),
    (r"typst\.Fonts\(", "typst", (0, 13, 7)),
    (r"order=\"sorted\"", "msgspec", (0, 18, 6)),
]


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def test_every_requirement_has_a_floor():
    assert [name for name, floor in floors().items() if floor is None] == []


@pytest.mark.parametrize(("pattern", "package", "first"), API_FLOORS)
def test_floors_cover_the_apis_used(pattern: str, package: str, first: tuple[int, ...]):
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "src" / "cptpub").rglob("*.py"))
    assert re.search(pattern, source), f"cptpub no longer uses {pattern!r}: drop this row"
    floor = floors()[package]
    assert floor and version(floor) >= first, f"{package}>={floor} allows versions without {pattern!r}"
