"""``cptpub build``, ``cptpub list`` and ``cptpub validate``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from cptpub.cli import app, console, err_console
from cptpub.errors import CptpubError, UsageError
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


@app.command(name="list")
def list_codes() -> None:
    """List the codes that have a record, with their titles and the payers that have rates."""
    from cptpub.records import known_codes, load_record
    from cptpub.store import RatesStore

    project = Project.find()
    payers_by_code: dict[str, str] = {}
    store = RatesStore(project.store_path)
    if store.exists():
        con = store.connect(read_only=True)
        try:
            for code, payers in con.execute(
                "SELECT billing_code, string_agg(DISTINCT payer, ', ' ORDER BY payer) FROM negotiated_rates GROUP BY 1"
            ).fetchall():
                payers_by_code[code] = payers
        finally:
            con.close()
    table = Table("Code", "Title", "Payers with rates", "Record")
    for code in known_codes(project.codes_dir):
        try:
            record = load_record(project.codes_dir, code)
            title, note = record.title or "", "demo" if record.demo else ""
        except CptpubError:
            title, note = "", "[red]invalid — run cptpub validate[/]"
        table.add_row(code, escape(title), payers_by_code.get(code, "none"), note)
    console.print(table)


@app.command()
def validate(
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors."),
) -> None:
    """Check every record, the payer catalogue, the section notebooks and the template."""
    from cptpub.validate import check_project

    project = Project.find()
    problems = check_project(project)
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        err_console.print(f"[{style}]{p.severity}[/]: {escape(p.where)}: {escape(p.message)}", highlight=False)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    console.print(f"{errors} error(s), {warnings} warning(s)")
    if errors or (strict and warnings):
        raise typer.Exit(1)
