"""``cptpub ingest``: fill the rates store from payers' in-network files and CMS's fee schedule file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from cptpub.cli import app, console, err_console
from cptpub.errors import CptpubError, UsageError
from cptpub.project import Project, check_code, read_codes_file

if TYPE_CHECKING:
    from cptpub.ingest.common import IngestResult

ingest_app = typer.Typer(
    help="Fill the rates store: payers' in-network rate files (tic), CMS's fee schedule (pfs); list a "
    "table of contents (toc).",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")

_CODES_HELP = "Codes to keep, comma-separated, e.g. 20702,45378 (default: the codes with a record in data/codes/)."
_CODES_FILE_HELP = "Keep the codes listed in FILE (whitespace or commas; # comments)."


@ingest_app.command("tic")
def tic(
    paths: list[Path] = typer.Argument(..., help="In-network files (.json or .json.gz) or folders holding them."),
    codes: str = typer.Option(None, "--codes", help=_CODES_HELP),
    codes_file: Path = typer.Option(None, "--codes-file", help=_CODES_FILE_HELP, dir_okay=False),
    payer: str = typer.Option(
        None, "--payer", help="Payer of data/payers.yaml to file the rates under (default: from reporting_entity_name)."
    ),
    provider_refs: Path = typer.Option(
        None,
        "--provider-refs",
        help="Folder of downloaded provider-reference files, named as their URL's last path segment.",
        file_okay=False,
        exists=True,
    ),
    replace: bool = typer.Option(False, "--replace", help="Reload files ingested before (their rows are replaced)."),
) -> None:
    """Ingest Transparency in Coverage in-network rate files, keeping only the wanted codes.

    Each file is one transaction: a file that fails leaves the store as it was, and the others still load."""
    from cptpub.ingest.common import unreadable
    from cptpub.ingest.tic import forced_payer, ingest_tic_file, tic_files
    from cptpub.records.load import load_payers
    from cptpub.store import RatesStore

    project = Project.find()
    wanted = wanted_codes(project, codes, codes_file)
    catalogue = load_payers(project.payers_file)
    forced_payer(catalogue, payer)  # an unknown --payer is a usage error before any file is read
    store = RatesStore(project.store_path)
    files = tic_files(paths)
    if not files:
        raise UsageError("no .json or .json.gz files in " + ", ".join(str(p) for p in paths))
    failures: list[Path] = []
    for path in files:
        try:
            with _progress_bar(path) as progress:
                result = ingest_tic_file(
                    store,
                    path,
                    codes=wanted,
                    catalogue=catalogue,
                    payer_override=payer,
                    provider_refs_dir=provider_refs,
                    replace=replace,
                    progress=progress,
                )
        except UsageError:
            raise
        except (CptpubError, OSError) as exc:  # a bad or unreadable file: report it, go on with the others
            failures.append(path)
            error = unreadable(path, exc) if isinstance(exc, OSError) else exc
            err_console.print(f"[red]failed[/]     {escape(str(error))}", highlight=False, soft_wrap=True)
            continue
        _print_result(result, "rates")
    _finish(len(files), failures)


@ingest_app.command("pfs")
def pfs(
    path: Path = typer.Argument(
        ..., help="A PPRRVU CSV (e.g. PPRRVU24_JAN.csv) or the RVU zip holding it.", exists=True, dir_okay=False
    ),
    codes: str = typer.Option(None, "--codes", help=_CODES_HELP),
    codes_file: Path = typer.Option(None, "--codes-file", help=_CODES_FILE_HELP, dir_okay=False),
    year: int = typer.Option(
        None, "--year", help="Fee schedule year (default: from the title line or the file name).", min=2000, max=2100
    ),
    replace: bool = typer.Option(False, "--replace", help="Reload a file ingested before."),
) -> None:
    """Ingest CMS's national physician fee schedule relative values (PPRRVU) and their national amounts."""
    from cptpub.ingest.pfs import ingest_pfs_file
    from cptpub.store import RatesStore

    project = Project.find()
    result = ingest_pfs_file(
        RatesStore(project.store_path),
        path,
        codes=wanted_codes(project, codes, codes_file),
        year=year,
        replace=replace,
    )
    _print_result(result, "lines")


@ingest_app.command("toc")
def toc(
    path: Path = typer.Argument(..., help="A table-of-contents file (.json or .json.gz).", exists=True, dir_okay=False),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the in-network files a payer's table-of-contents file names, with their plans."""
    from cptpub.ingest.toc import read_toc

    contents = read_toc(path)
    if as_json:
        typer.echo(json.dumps(contents.as_json(), indent=2))
        return
    table = Table(title=escape(_toc_title(contents.header, len(contents.files))), show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("Plans")
    table.add_column("Description")
    table.add_column("In-network file", overflow="fold")
    for number, ref in enumerate(contents.files, start=1):
        plans = "\n".join(plan.label() for plan in ref.plans) or "-"
        description = "-" if ref.description in (None, "") else str(ref.description)  # the file's value: any type
        table.add_row(str(number), escape(plans), escape(description), escape(ref.location))
    console.print(table)


def wanted_codes(project: Project, codes: str | None, codes_file: Path | None) -> frozenset[str]:
    """The codes to keep: --codes and --codes-file together, else every code with a record in data/codes/."""
    from cptpub.records.load import known_codes

    chosen: list[str] = []
    if codes is not None:
        chosen += [c for c in codes.replace(",", " ").split()]
    if codes_file is not None:
        chosen += read_codes_file(codes_file)
    if codes is None and codes_file is None:
        chosen = known_codes(project.codes_dir)
        if not chosen:
            raise UsageError(
                f"no codes to keep: {project.codes_dir} has no records", hint="pass --codes or --codes-file"
            )
    if not chosen:
        raise UsageError("no codes to keep: --codes / --codes-file list none")
    return frozenset(check_code(code) for code in chosen)


@contextmanager
def _progress_bar(path: Path) -> Iterator:
    """A progress callback drawing a bar of bytes read and rates kept, when stdout is a terminal."""
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[rates]:,} rates kept"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(path.name), total=path.stat().st_size, rates=0)
        yield lambda done, rates: bar.update(task, completed=done, rates=rates)


def _print_result(result: IngestResult, unit: str) -> None:
    name = escape(result.path.name)
    if result.status == "unchanged":
        console.print(
            f"[dim]unchanged[/]  {name}: already ingested (source {result.source_id[:12]}); --replace reloads it",
            highlight=False,
            soft_wrap=True,
        )
        return
    demo = " [yellow]\\[demo data][/]" if result.is_demo else ""
    speed = f", {result.bytes_parsed / result.seconds / 1e6:,.0f} MB/s" if result.seconds >= 1 else ""
    console.print(
        f"[green]{result.status:<10}[/] {name}: {escape(result.payer)}{demo}, {result.rows_kept:,} {unit} kept, "
        f"{result.items_skipped:,} skipped (version {escape(str(result.schema_version))}; "
        f"{result.seconds:.1f} s{speed})",
        highlight=False,
        soft_wrap=True,
    )
    for warning in result.warnings:
        console.print(f"  [yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def _finish(total: int, failures: list[Path]) -> None:
    """Exit status 1 when a file failed, naming them all (each failure was printed in full as it happened)."""
    if failures:
        listing = "\n".join(f"  {path}" for path in failures)
        raise CptpubError(f"{len(failures)} of {total} file(s) failed, each leaving the store as it was:\n{listing}")


def _toc_title(header: dict[str, str], count: int) -> str:
    entity = header.get("reporting_entity_name", "?")
    updated = header.get("last_updated_on")
    return f"{entity}: {count} in-network file(s)" + (f", updated {updated}" if updated else "")
