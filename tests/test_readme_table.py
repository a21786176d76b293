"""Every test the README's "What happens when ..." table names exists and is collected by pytest."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import REPO


def named_tests() -> list[str]:
    """The table's test column as `file.py::name` (or `file.py` alone); `::name` continues the previous file."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What happens when", 1)[1]
    rows = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("| ")][2:]  # no header
    named: list[str] = []
    for row in rows:
        file = None
        for span in re.findall(r"`([^`]+)`", row.rstrip(" |").rsplit(" | ", 1)[-1]):
            if span.startswith("::"):
                assert file, f"{span} follows no file in: {row}"
                span = file + span
            file = span.split("::")[0]
            named.append(span)
    return named


def collected(files: set[str]) -> set[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *(f"tests/{f}" for f in sorted(files)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {re.sub(r"\[.*\]$", "", line.removeprefix("tests/")) for line in result.stdout.splitlines() if "::" in line}


def test_every_test_the_readme_table_names_exists():
    named = named_tests()
    assert len(named) >= 20, named  # the table was found and read
    files = {name.split("::")[0] for name in named}
    missing_files = sorted(f for f in files if not (REPO / "tests" / f).is_file())
    assert not missing_files, f"README names test files that do not exist: {missing_files}"
    ids = collected(files)
    missing = [
        n for n in named if ("::" in n and n not in ids) or ("::" not in n and not any(i.startswith(n) for i in ids))
    ]
    assert not missing, f"README names tests pytest does not collect: {missing}"


def test_the_parser_reads_continuations_and_file_only_cells(monkeypatch, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## What happens when ...\n\n| input | what | test |\n| --- | --- | --- |\n"
        "| a | b | `test_a.py::test_one`, `::test_two` |\n| c | d | `test_b.py` (one test each) |\n\n## Next\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert named_tests() == ["test_a.py::test_one", "test_a.py::test_two", "test_b.py"]
