"""The minimum versions pyproject.toml allows, as pip constraints: `python tests/min_versions.py > constraints.txt`.

`make test-min` installs cptpub with these pins into .venv-min and runs a quick part of the suite, so a floor that
is older than an API cptpub uses fails there (e.g. matplotlib < 3.10 has no ``boxplot(orientation=...)``).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The runtime dependencies and the test extras."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def floors(pyproject: Path = PYPROJECT) -> dict[str, str | None]:
    """Package name -> its `>=` floor (None when a requirement has none)."""
    found: dict[str, str | None] = {}
    for requirement in requirements(pyproject):
        match = REQUIREMENT.match(requirement.split(";")[0])
        if not match:
            raise ValueError(f"cannot read requirement {requirement!r}")
        floor = re.search(r">=\s*([0-9][0-9A-Za-z.]*)", match[3])
        found[match[1].lower()] = floor[1] if floor else None
    return found


if __name__ == "__main__":
    missing = [name for name, floor in floors().items() if floor is None]
    if missing:
        sys.exit(f"no >= floor in pyproject.toml for: {', '.join(missing)}")
    print("\n".join(f"{name}=={floor}" for name, floor in floors().items()))
