"""``cptpub sources`` (which ingested files are current, which superseded, and why) and ``cptpub changes`` (which
editions the next build would change materially)."""

from __future__ import annotations

import datetime as dt
import json

import typer
from rich.markup import escape
from rich.table import Table

from cptpub.cli import app, console
from cptpub.errors import UsageError
from cptpub.project import Project, check_code


@app.command()
def sources(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    current: str = typer.Option(
        None,
        "--current",
        metavar="FILE",
        help="Pin FILE as the current release of its series (the others become history).",
    ),
    release_of: tuple[str, str] | None = typer.Option(
        None,
        "--release-of",
        metavar="NEW OLD",
        help="Treat NEW as a release of OLD's series (e.g. after a plan was renamed); the newer date wins.",
    ),
    auto: str = typer.Option(None, "--auto", metavar="FILE", help="Remove FILE's overrides: the rule decides again."),
) -> None:
    """List the ingested files: which is the current release of its series, which is superseded, and why.

    A payer's newer file for the same reporting entity and plans replaces the older one in every figure; a newer
    CMS release of the same fee schedule year (RVU26B after RVU26A) or a newer quarter of other CMS files replaces
    the older. Superseded files stay in the store as history. FILE is a path as ingested, a file name or a source id."""
    from cptpub.store import RatesStore, releases

    project = Project.find()
    store = RatesStore(project.store_path)
    if not store.exists():
        store.connect(read_only=True)  # raises the "does not exist yet" error with its hint
    if current or auto or release_of:
        with store.transaction() as con:
            if current:
                releases.pin(con, releases.find_source(con, current))
            if release_of:
                new, old = (releases.find_source(con, ref) for ref in release_of)
                if new == old:
                    raise UsageError("--release-of NEW OLD: name two different files")
                releases.join_series(con, new, old)
            if auto:
                releases.clear_overrides(con, releases.find_source(con, auto))
    con = store.connect(read_only=True)
    try:
        rows = releases.listing(con)
    finally:
        con.close()
    if as_json:
        typer.echo(json.dumps({"sources": rows}, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} ingested file(s)", show_lines=True)
    for column in ("Status", "File", "Series", "As of", "Why"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = "[green]current[/]" if row["status"] == "current" else "[dim]superseded[/]"
        if row["pinned"]:
            status += " (pinned)"
        demo = " [yellow]\\[demo][/]" if row["is_demo"] else ""
        release = row["schema_version"] if row["kind"] != "tic-in-network" else None
        as_of = " ".join(str(v) for v in (row["last_updated_on"], release) if v)
        table.add_row(
            status,
            escape(row["file_name"]) + demo + f"\n[dim]{row['source_id'][:12]}[/]",
            escape(row["series_label"]),
            escape(as_of or "-"),
            escape(row["reason"]),
        )
    console.print(table)


@app.command()
def changes(
    codes: list[str] = typer.Argument(None, help="Codes to check (default: every code with a record)."),
    since: str = typer.Option(
        None, "--since", metavar="DATE", help="Compare with the editions published on or before DATE (YYYY-MM-DD)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the codes whose next build would change materially, before building: today's figures from the rates
    store and records, compared with the published editions' data (dist/data/cpt-CODE.json)."""
    from cptpub.analysis.changes import compare, load_thresholds, summary_lines
    from cptpub.analysis.snapshot import comparable, current_figures
    from cptpub.project import known_codes
    from cptpub.publish.edition_data import previous_snapshot, snapshot_as_of
    from cptpub.sections import load_context

    project = Project.find()
    day = None
    if since is not None:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise UsageError(f"--since {since!r}: give a date as YYYY-MM-DD") from None
    chosen = sorted({check_code(c) for c in codes}) if codes else known_codes(project.codes_dir)
    thresholds = load_thresholds(project.report_dir)
    changed, first, unchanged = [], [], []
    for code in chosen:
        baseline = snapshot_as_of(project.dist_dir, code, day) if day else previous_snapshot(project.dist_dir, code)
        current = current_figures(load_context(code, project.data_dir, project.store_path))
        if baseline is None:
            first.append(code)
            continue
        found = compare(baseline, current, thresholds) if comparable(baseline) != comparable(current) else None
        if found and found["material"]:
            changed.append({"code": code, "since": found["since"], "summary": summary_lines(found), "changes": found})
        else:
            unchanged.append(code)
    if as_json:
        document = {"since": since, "changed": changed, "first_editions": first, "unchanged": unchanged}
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    if changed:
        table = Table(title=f"{len(changed)} edition(s) would change materially", show_lines=True)
        table.add_column("Code")
        table.add_column("Since the edition of")
        table.add_column("Changes", overflow="fold")
        for item in changed:
            table.add_row(item["code"], escape(str(item["since"])), escape("\n".join(item["summary"])))
        console.print(table)
    else:
        console.print("No edition would change materially.")
    if first:
        console.print(f"No published edition yet{f' on or before {since}' if since else ''}: {', '.join(first)}")
