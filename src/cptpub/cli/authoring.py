"""Authoring commands: ``cptpub list``, ``cptpub validate`` and ``cptpub new``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from cptpub.cli import app, console, err_console
from cptpub.errors import CptpubError
from cptpub.project import Project, check_code


@app.command(name="list")
def list_codes(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per code) for scripts."),
) -> None:
    """List every code that can be published: each code with a record in data/codes/, and each CPT or HCPCS code
    with payers' rates in the rates store (built from its data when it has no record). Fee schedule and NCCI rows
    alone do not list a code. The title is the record's, else CMS's short descriptor."""
    import json

    from cptpub.publishable import cms_titles, publishable_codes
    from cptpub.records import load_record

    project = Project.find()
    entries = publishable_codes(project)
    cms = cms_titles(project.store_path, [e.code for e in entries])
    rows = []
    for entry in entries:
        row: dict[str, object] = {
            "code": entry.code,
            "title": None,
            "title_source": None,
            "record": "none",
            "demo": False,
            "payers": list(entry.payers),
        }
        if entry.has_record:
            try:
                record = load_record(project.codes_dir, entry.code)
                row.update(record="valid", demo=record.demo)
                if record.title:
                    row.update(title=record.title, title_source="record")
            except CptpubError:
                row["record"] = "invalid"
        if row["title"] is None and entry.code in cms:
            row.update(title=cms[entry.code], title_source="CMS")
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no codes yet: add a record with `cptpub new CODE`, or ingest rates with `cptpub ingest tic`")
        return
    table = Table("Code", "Title", "Payers with rates", "Record")
    for row in rows:
        note = {
            "valid": "demo" if row["demo"] else "yes",
            "invalid": "[red]invalid — run cptpub validate[/]",
            "none": "[dim]none: built from data[/]",
        }[str(row["record"])]
        title = escape(str(row["title"] or "")) + (" [dim](CMS)[/]" if row["title_source"] == "CMS" else "")
        table.add_row(row["code"], title, ", ".join(row["payers"]) or "none", note)  # type: ignore[arg-type]
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
