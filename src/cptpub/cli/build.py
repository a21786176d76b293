"""``cptpub build``."""

from __future__ import annotations

import typer

from cptpub.cli import app, console
from cptpub.errors import UsageError
from cptpub.project import Project, check_code


def parse_formats(value: str) -> tuple[str, ...]:
    from cptpub.edition import FORMATS

    formats = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"--to {value!r}: choose one or more of {', '.join(FORMATS)} (comma-separated)")
    return formats


@app.command()
def build(
    codes: list[str] = typer.Argument(None, help="Codes to build, e.g. 20702 20704."),
    to: str = typer.Option("html,pdf", "--to", help="Output formats, comma-separated: html, pdf."),
    engine: str = typer.Option("auto", "--engine", help="Assembly engine: auto (quarto if found), quarto, builtin."),
) -> None:
    """Build publications into dist/: cpt-CODE.html and cpt-CODE.pdf."""
    from cptpub.assemble import get_engine
    from cptpub.edition import build_edition

    if not codes:
        raise UsageError("name at least one code, e.g. `cptpub build 20702`")
    codes = [check_code(c) for c in codes]  # every code checked before any file is touched
    formats = parse_formats(to)
    project = Project.find()
    assembler = get_engine(engine)
    console.print(f"engine: {assembler.name} ({assembler.version()})" + (" — chosen by --engine auto" if engine == "auto" else ""))
    for code in codes:
        with console.status(f"building CPT {code}"):
            result = build_edition(project, code, assembler, formats=formats)
        for fmt, path in result.outputs.items():
            console.print(f"CPT {code} {fmt}: {path}")
