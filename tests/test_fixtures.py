"""The suite runs from a clone with nothing beside it: every fixture lives in tests/fixtures/."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import FIXTURES, REPO

# The shared folder beside the repository, spelled as a path ("../" + it, it + "/fixtures") or with pathlib
# (`... / it / "fixtures"`, `parent / it`).
OUTSIDE_FIXTURES = re.compile(
    r"""\.\.[/\\]shared|shared[/\\]fixtures|["']shared["']\s*/\s*["']fixtures["']|parent\s*/\s*["']shared["']"""
)
SCANNED = ("src", "tests", "bench")


def test_no_file_reads_fixtures_from_beside_the_repository():
    offenders = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*")):
            if not path.is_file() or path == Path(__file__) or path.is_relative_to(FIXTURES):
                continue
            if path.suffix not in {".py", ".j2", ".sql", ".lua", ".yaml", ".yml", ".toml", ".cfg", ".md", ".txt"}:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if OUTSIDE_FIXTURES.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    for name in ("Makefile", "pyproject.toml"):
        for number, line in enumerate((REPO / name).read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE_FIXTURES.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "read fixtures from tests/fixtures/ instead:\n" + "\n".join(offenders)


def test_the_pattern_catches_each_way_of_spelling_the_shared_folder():
    shared = "sha" + "red"  # spelled in two parts so this test's own source names no such path
    for spelling in (
        f'REPO.parent / "{shared}" / "fixtures" / "tic"',
        f"Path('../{shared}/fixtures/tic')",
        f'open("/work/{shared}/fixtures/cms/x.csv")',
        f"ROOT.parent / '{shared}'",
    ):
        assert OUTSIDE_FIXTURES.search(spelling), spelling
    assert not OUTSIDE_FIXTURES.search('FIXTURES / "tic" / "v1"')


def test_every_file_the_fixture_readme_lists_is_in_the_repository():
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    for path in sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md"):
        folder = path.relative_to(FIXTURES).parts[0]
        assert any(f"{folder}/" in heading.split(" — ")[0] for heading in headings), (
            f"{path.relative_to(REPO)} has no source section in tests/fixtures/README.md"
        )
