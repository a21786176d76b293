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
    help="Fill the rates store: payers' in-network rate files (tic), CMS's fee schedule (pfs) and NCCI edits (ncci); "
    "list a table of contents (toc).",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")

_CODES_HELP = (
    "Codes to keep, comma-separated, e.g. 20702,45378 (tic default: every code; pfs: the codes with a record)."
)
_CODES_FILE_HELP = "Keep the codes listed in FILE (whitespace or commas; # comments)."


_OFFLINE_HELP = "Do not fetch remote provider-reference files: their rates are stored unresolved, with a warning."
_JOBS_HELP = "Parse N files at once on N processes (one writer appends each file in one transaction)."
_EXECUTOR_HELP = "Where to parse with -j: local (processes, default) or dask (dask.distributed)."
_SCHEDULER_HELP = "Address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --executor dask)."


@ingest_app.command("tic")
def tic(
    paths: list[str] = typer.Argument(
        ..., help="In-network files (.json or .json.gz), folders holding them, or http(s) URLs (streamed)."
    ),
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
    offline: bool = typer.Option(False, "--offline", help=_OFFLINE_HELP),
    replace: bool = typer.Option(False, "--replace", help="Reload files ingested before (their rows are replaced)."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help=_JOBS_HELP),
    executor: str = typer.Option(None, "--executor", help=_EXECUTOR_HELP),
    scheduler: str = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
) -> None:
    """Ingest Transparency in Coverage in-network rate files (local or http(s) URLs), keeping every billing code
    unless --codes / --codes-file restrict them.

    Each file is one transaction: a file that fails leaves the store as it was, and the others still load.
    URLs are streamed (never downloaded whole) and a dropped connection is resumed where it stopped; remote
    provider-reference files are fetched once each and cached under build/provider-refs/ (--offline: not fetched).
    Limits: nesting 64 levels, strings 16 MiB, numbers 100 characters (a file beyond them fails, naming the limit).
    """
    from cptpub.ingest.remote import is_url
    from cptpub.ingest.tic import forced_payer, tic_files

    project = Project.find()
    sources: list = []
    expanded = {p: tic_files([Path(p)]) for p in paths if not is_url(p)}
    for p in paths:
        sources += [p] if is_url(p) else expanded[p]
    if not sources:
        raise UsageError("no .json or .json.gz files in " + ", ".join(str(p) for p in paths))
    _ingest_sources(
        project,
        sources,
        codes=codes,
        codes_file=codes_file,
        payer=payer,
        provider_refs=provider_refs,
        offline=offline,
        replace=replace,
        jobs=jobs,
        executor=executor or ("dask" if scheduler else "local"),
        scheduler=scheduler,
        check_payer=forced_payer,
    )


def _ingest_sources(
    project: Project,
    sources: list,
    *,
    codes: str | None,
    codes_file: Path | None,
    payer: str | None,
    provider_refs: Path | None,
    offline: bool,
    replace: bool,
    jobs: int,
    executor: str,
    scheduler: str | None,
    check_payer,
) -> None:
    """Ingest in-network files (paths or URLs): one by one with a progress bar, or on -j workers / Dask."""
    from cptpub.ingest.common import unreadable
    from cptpub.ingest.parallel import EXECUTORS, ingest_files
    from cptpub.ingest.tic import ingest_tic_file
    from cptpub.records.load import load_payers
    from cptpub.store import RatesStore

    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r} for --executor: choose one of {', '.join(EXECUTORS)}")
    wanted = chosen_codes(codes, codes_file)
    catalogue = load_payers(project.payers_file)
    check_payer(catalogue, payer)  # an unknown --payer is a usage error before any file is read
    store = RatesStore(project.store_path)
    refs_cache = None if offline else project.store_path.parent / "provider-refs"
    failures: list = []

    def done(source, result, error) -> None:
        if error is not None:
            failures.append(source)
            err_console.print(f"[red]failed[/]     {escape(error)}", highlight=False, soft_wrap=True)
        else:
            _print_result(result, "rates")

    if jobs > 1 or executor != "local":
        ingest_files(
            store,
            sources,
            codes=wanted,
            catalogue=catalogue,
            payer_override=payer,
            provider_refs_dir=provider_refs,
            refs_cache=refs_cache,
            replace=replace,
            jobs=jobs,
            executor=executor,
            scheduler=scheduler,
            on_done=done,
        )
        _finish(len(sources), failures)
        return
    for source in sources:
        try:
            with _progress_bar(source) as progress:
                result = ingest_tic_file(
                    store,
                    source,
                    codes=wanted,
                    catalogue=catalogue,
                    payer_override=payer,
                    provider_refs_dir=provider_refs,
                    refs_cache=refs_cache,
                    replace=replace,
                    progress=progress,
                )
        except UsageError:
            raise
        except (CptpubError, OSError) as exc:  # a bad or unreadable file: report it, go on with the others
            error = unreadable(Path(source), exc) if isinstance(exc, OSError) else exc
            done(source, None, str(error))
            continue
        done(source, result, None)
    _finish(len(sources), failures)


@ingest_app.command("pfs")
def pfs(
    path: Path = typer.Argument(
        ..., help="A PPRRVU CSV (e.g. PPRRVU24_JAN.csv) or the RVU zip holding it.", exists=True, dir_okay=False
    ),
    codes: str = typer.Option(
        None, "--codes", help="Codes to keep, comma-separated (default: every code of the file, about 19,000 lines)."
    ),
    codes_file: Path = typer.Option(None, "--codes-file", help=_CODES_FILE_HELP, dir_okay=False),
    year: int = typer.Option(
        None, "--year", help="Fee schedule year (default: from the title line or the file name).", min=2000, max=2100
    ),
    replace: bool = typer.Option(False, "--replace", help="Reload a file ingested before."),
) -> None:
    """Ingest CMS's national physician fee schedule relative values (PPRRVU), their national amounts and payment-policy
    indicators. The CSV is streamed and refused past 64 MiB (CMS's is about 5 MB)."""
    from cptpub.ingest.pfs import ingest_pfs_file
    from cptpub.store import RatesStore

    project = Project.find()
    restrict = codes is not None or codes_file is not None
    result = ingest_pfs_file(
        RatesStore(project.store_path),
        path,
        codes=wanted_codes(project, codes, codes_file) if restrict else None,
        year=year,
        replace=replace,
    )
    _print_result(result, "lines")


@ingest_app.command("ncci")
def ncci(
    paths: list[Path] = typer.Argument(
        ...,
        help="CMS's NCCI files: the quarterly zip, or the .txt/.csv/.xlsx in it (practitioner PTP edits, MUEs, "
        "add-on code edits; the kind is read from the file's column header).",
        exists=True,
        dir_okay=False,
    ),
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="First day the edits apply, YYYY-MM-DD (default: from the file name, e.g. 2026Q2, 07-01-2024, v322r0).",
    ),
    replace: bool = typer.Option(False, "--replace", help="Reload files ingested before (their rows are replaced)."),
) -> None:
    """Ingest CMS's National Correct Coding Initiative edits: procedure-to-procedure pairs, medically unlikely edits
    (units per day) and add-on code edits (the primary codes of each add-on). Every row is kept.

    Each file is one transaction: a file that fails leaves the store as it was, and the others still load. A file or
    zip member over 512 MiB is refused."""
    import datetime as dt

    from cptpub.ingest.common import unreadable
    from cptpub.ingest.ncci import ingest_ncci_file
    from cptpub.store import RatesStore

    try:
        quarter = dt.date.fromisoformat(as_of) if as_of is not None else None
    except ValueError:
        raise UsageError(f"--as-of {as_of!r}: expected a date, YYYY-MM-DD") from None
    store = RatesStore(Project.find().store_path)
    failures: list[Path] = []
    for path in paths:
        try:
            result = ingest_ncci_file(store, path, as_of=quarter, replace=replace)
        except UsageError:
            raise
        except (CptpubError, OSError) as exc:
            failures.append(path)
            error = unreadable(path, exc) if isinstance(exc, OSError) else exc
            err_console.print(f"[red]failed[/]     {escape(str(error))}", highlight=False, soft_wrap=True)
            continue
        _print_result(result, f"{result.kind.removeprefix('ncci-').upper()} edits")
    _finish(len(paths), failures)


@ingest_app.command("toc")
def toc(
    path: str = typer.Argument(..., help="A table-of-contents file (.json or .json.gz) or its http(s) URL."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ingest: bool = typer.Option(False, "--ingest", help="Ingest the in-network files it names (after the filters)."),
    plan: str = typer.Option(None, "--plan", help="Only files of a plan whose name contains TEXT (any case)."),
    plan_id: str = typer.Option(None, "--plan-id", help="Only files of the plan with this id (EIN or HIOS id)."),
    description: str = typer.Option(None, "--description", help="Only files whose description contains TEXT."),
    codes: str = typer.Option(None, "--codes", help=_CODES_HELP),
    codes_file: Path = typer.Option(None, "--codes-file", help=_CODES_FILE_HELP, dir_okay=False),
    payer: str = typer.Option(None, "--payer", help="Payer of data/payers.yaml to file the rates under."),
    offline: bool = typer.Option(False, "--offline", help=_OFFLINE_HELP),
    replace: bool = typer.Option(False, "--replace", help="Reload files ingested before."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help=_JOBS_HELP),
    executor: str = typer.Option(None, "--executor", help=_EXECUTOR_HELP),
    scheduler: str = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
) -> None:
    """List the in-network files a payer's table-of-contents file names, with their plans; with --ingest, ingest
    them (every billing code unless --codes / --codes-file restrict them)."""
    from cptpub.ingest.remote import is_url
    from cptpub.ingest.tic import forced_payer
    from cptpub.ingest.toc import read_toc

    if not is_url(path) and Path(path).is_dir():
        raise UsageError(f"{path} is a folder: pass a table-of-contents file")
    if not is_url(path) and not Path(path).exists():
        raise UsageError(f"no such file: {path}")
    contents = read_toc(path if is_url(path) else Path(path)).filtered(
        plan=plan, plan_id=plan_id, description=description
    )
    if ingest:
        locations = contents.locations()
        if not locations:
            raise CptpubError("no in-network file of the table of contents matches the filters", where=path)
        _ingest_sources(
            Project.find(),
            locations,
            codes=codes,
            codes_file=codes_file,
            payer=payer,
            provider_refs=None,
            offline=offline,
            replace=replace,
            jobs=jobs,
            executor=executor or ("dask" if scheduler else "local"),
            scheduler=scheduler,
            check_payer=forced_payer,
        )
        return
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
        text = "-" if ref.description in (None, "") else str(ref.description)  # the file's value: any type
        table.add_row(str(number), escape(plans), escape(text), escape(ref.location))
    console.print(table)


def chosen_codes(codes: str | None, codes_file: Path | None) -> frozenset[str] | None:
    """The codes --codes and --codes-file name together; None (every code) when neither is given."""
    if codes is None and codes_file is None:
        return None
    chosen: list[str] = []
    if codes is not None:
        chosen += [c for c in codes.replace(",", " ").split()]
    if codes_file is not None:
        chosen += read_codes_file(codes_file)
    if not chosen:
        raise UsageError("no codes to keep: --codes / --codes-file list none")
    return frozenset(check_code(code) for code in chosen)


def wanted_codes(project: Project, codes: str | None, codes_file: Path | None) -> frozenset[str]:
    """The codes to keep: --codes and --codes-file together, else every code with a record in data/codes/."""
    from cptpub.project import known_codes

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
def _progress_bar(source) -> Iterator:
    """A progress callback drawing a bar of bytes read (rate, time left) and rates kept, when stdout is a
    terminal. The total of a URL is its Content-Length, once the server has sent it."""
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
    name = source.name if isinstance(source, Path) else str(source).rsplit("/", 1)[-1]
    total = source.stat().st_size if isinstance(source, Path) else None
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(name), total=total, rates=0)
        yield lambda done, rates, size=None: bar.update(task, completed=done, rates=rates, total=size or total)


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
