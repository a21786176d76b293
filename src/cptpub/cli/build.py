"""``cptpub build``: one code, a list, or the whole catalogue, in parallel and incrementally."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import typer

from cptpub.cli import CELL_TIMEOUT_OPTION, app, console
from cptpub.errors import CptpubError, UsageError, cell_label
from cptpub.project import Project, read_codes_file


class Interrupted(CptpubError):
    """A signal stopped the batch: exit status 128 + its number (130 for Ctrl-C), like any program it stops."""

    def __init__(self, message: str, *, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def parse_formats(value: str) -> tuple[str, ...]:
    from cptpub.assemble.base import check_formats

    return check_formats(value.split(","), given_as=f"--to {value!r}")


@app.command()
def build(
    codes: list[str] = typer.Argument(None, help="Codes to build, e.g. 20702 20704."),
    all_codes: bool = typer.Option(
        False,
        "--all",
        help="Build every code that has a record in data/codes/ or payers' rates in the store (see cptpub list).",
    ),
    codes_file: Path = typer.Option(
        None,
        "--codes-file",
        help="Also build the codes listed in FILE (whitespace or commas; # comments).",
        dir_okay=False,
    ),
    jobs: int = typer.Option(None, "-j", "--jobs", help="Worker processes (default: the number of CPUs).", min=1),
    to: str = typer.Option("html,pdf", "--to", help="Output formats, comma-separated: html, pdf."),
    engine: str = typer.Option("auto", "--engine", help="Assembly engine: auto (quarto if found), quarto, builtin."),
    fresh_kernels: bool = typer.Option(
        False,
        "--fresh-kernels",
        help="A new Jupyter kernel per notebook (slow; default: notebooks run in the worker processes).",
    ),
    warm_kernels: bool = typer.Option(
        False,
        "--warm-kernels",
        help="One warm Jupyter kernel per worker runs its notebooks (the dask executor's default; default here: "
        "notebooks run in the worker processes).",
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even editions that are up to date."),
    executor: str = typer.Option(
        None, "--executor", help="Where to run: local (worker processes, default) or dask (dask.distributed)."
    ),
    scheduler: str = typer.Option(
        None, "--scheduler", help="Address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 (implies dask)."
    ),
    timeout: float = CELL_TIMEOUT_OPTION,
) -> None:
    """Build publications into dist/ (cpt-CODE.html, cpt-CODE.pdf, manifest.json); skip what is up to date."""
    from cptpub.batch.progress import print_summary, reporter_for
    from cptpub.batch.runner import BatchOptions, run_batch

    requested = list(codes or [])
    if codes_file is not None:
        requested += read_codes_file(codes_file)
    if codes_file is not None and not requested and not all_codes:
        raise UsageError("the codes file lists no codes", where=codes_file)
    options = BatchOptions(
        codes=tuple(requested),
        all_codes=all_codes,
        formats=parse_formats(to),
        engine=engine,
        jobs=jobs or os.cpu_count() or 1,
        fresh_kernels=fresh_kernels,
        warm_kernels=warm_kernels,
        force=force,
        executor=executor or ("dask" if scheduler else "local"),
        scheduler=scheduler,
        cell_timeout=timeout,
    )
    project = Project.find()
    result = run_batch(project, options, reporter_for(console))
    if result.built or result.failed or result.interrupted:
        print_summary(console, result)
    if result.catalogue:
        console.print(f"catalogue: {result.catalogue}", highlight=False, soft_wrap=True)
    if result.interrupted:
        name = signal.Signals(result.stop_signal or signal.SIGINT).name
        raise Interrupted(
            f"interrupted ({name}): {len(result.built)} built and published, {len(result.not_built)} not built; "
            "run the same command again to resume",
            signum=result.stop_signal or signal.SIGINT,
        )
    if result.failed:
        lines = []
        for outcome in sorted(result.failed, key=lambda o: o.code):
            f = outcome.failure
            if f is None:
                continue
            if f.notebook and f.executed_path:
                lines.append(
                    f"  {outcome.code}: {f.notebook}, {cell_label(f.cell)}, executed notebook {f.executed_path}: "
                    f"{f.message}"
                )
            elif f.notebook:  # the process running it died with the cell: no executed notebook
                lines.append(f"  {outcome.code}: {f.notebook}, {cell_label(f.cell)}: {f.message}")
            else:
                lines.append(f"  {outcome.code}: {f.message}")
        n = len(result.failed)
        raise CptpubError(f"{n} edition{'s' if n != 1 else ''} failed:\n" + "\n".join(lines))
