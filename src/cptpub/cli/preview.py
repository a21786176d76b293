"""``cptpub preview CODE``: build one code, serve dist/ on 127.0.0.1 and rebuild whenever its inputs change."""

from __future__ import annotations

import signal
import sys
import webbrowser

import typer
from rich.markup import escape

from cptpub.cell_timeout import cell_timeout
from cptpub.cli import CELL_TIMEOUT_OPTION, app, console, err_console
from cptpub.project import Project, check_code


def _print(event) -> None:  # a cptpub.publish.preview.PreviewEvent
    styles = {"failed": "bold red", "built": "green", "serving": "bold", "changed": "cyan"}
    style = styles.get(event.kind)
    text = escape(event.message)
    line = f"[{style}]{text}[/]" if style else text
    target = err_console if event.kind == "failed" else console
    target.print(line, highlight=False, soft_wrap=True)
    if event.detail:
        target.print(escape(event.detail), highlight=False, soft_wrap=True)
    sys.stdout.flush()
    sys.stderr.flush()


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed) stop the preview cleanly, even when started where
    SIGINT is ignored (e.g. as a background job of a script)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


@app.command()
def preview(
    code: str = typer.Argument(..., help="The code to preview, e.g. 20702."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (default: a free one)."),
    engine: str = typer.Option("auto", "--engine", help="Assembly engine: auto (quarto if found), quarto, builtin."),
    fresh_kernels: bool = typer.Option(
        False, "--fresh-kernels", help="A new Jupyter kernel per notebook (slow; default: one warm kernel)."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default web browser."),
    timeout: float = CELL_TIMEOUT_OPTION,
) -> None:
    """Build CODE, serve dist/ at http://127.0.0.1:PORT/ and rebuild on every change; the page reloads itself.

    Watched: data/codes/CODE.yaml, data/payers.yaml, notebooks/, report/ and the rates store. Stop with Ctrl-C.
    """
    from cptpub.assemble import get_engine
    from cptpub.execute import FRESH_ENGINE, WARM_ENGINE
    from cptpub.publish.preview import run_preview

    code = check_code(code)
    project = Project.find()
    chosen = get_engine(engine)
    _stop_on_signals()

    def ready(server) -> None:
        if open_browser:
            webbrowser.open(server.url)

    run_preview(
        project,
        code,
        chosen,
        port=port,
        notify=_print,
        on_ready=ready,
        execution_engine=FRESH_ENGINE if fresh_kernels else WARM_ENGINE,
        cell_timeout=cell_timeout(project.report_dir, timeout),
    )
