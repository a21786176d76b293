"""Authoring commands: ``cptpub list``, ``cptpub validate`` and ``cptpub new``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from cptpub.cli import app, console, err_console
from cptpub.errors import CptpubError
from cptpub.project import Project, check_code


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


@app.command()
def new(code: str = typer.Argument(..., help="The code to add, e.g. 20706.")) -> None:
    """Write data/codes/CODE.yaml with every field present and commented, ready to fill."""
    from cptpub.records.scaffold import create_record

    project = Project.find()
    path = create_record(project.codes_dir, code)
    console.print(f"wrote {path}: fill it in, then `cptpub validate` and `cptpub preview {check_code(code)}`")
