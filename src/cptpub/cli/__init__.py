"""The ``cptpub`` command: a thin layer over the library. Each sub-command module only parses arguments,
calls library functions and prints; errors become one clear message and an exit status
(2 for usage errors, 1 for failed work), with a traceback only under ``--debug``."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from cptpub import __version__
from cptpub.cell_timeout import DEFAULT_CELL_TIMEOUT
from cptpub.errors import CptpubError

app = typer.Typer(
    name="cptpub",
    help="Build per-code healthcare billing publications (HTML and PDF) from records, rates and notebooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The per-cell time limit, the same option for every command that runs notebooks (build, preview).
CELL_TIMEOUT_OPTION = typer.Option(
    None,
    "--timeout",
    help="Seconds a notebook cell may run before it fails (0: no limit). Default: cptpub.cell-timeout in "
    f"report/_quarto.yml, else {DEFAULT_CELL_TIMEOUT:g}.",
    min=0,
)
console = Console(soft_wrap=True)  # lines that name paths stay whole (copy, grep)
err_console = Console(stderr=True, soft_wrap=True)  # messages name paths: never wrap them
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        console.print(f"cptpub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    _state["debug"] = debug


def _register() -> None:
    # Sub-command modules attach themselves to ``app``; imported here so ``cptpub --help`` lists them all.
    from cptpub.cli import authoring, build, demo, ingest, preview, refresh  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        # Outside standalone mode click returns (not raises) the status of ``typer.Exit(code)``.
        status = app(args=argv, standalone_mode=False)
    except CptpubError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        return 130
    except typer.TyperException as exc:  # argument parsing: unknown command or option, missing argument
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]internal error:[/] {escape(repr(exc))}\n  run again with --debug for the traceback",
            highlight=False,
        )
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
