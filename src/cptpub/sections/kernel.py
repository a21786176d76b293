"""Runs in the notebook's IPython (a kernel, or a batch worker's in-process shell) during a build: how outputs and
inline code become publishable Markdown, and the driver that runs a notebook's cells one after the other.

``setup`` (run by cptpub's Papermill client before a notebook's first cell) gives pandas DataFrames a
``text/markdown`` representation, an escaped pipe table, beside pandas' own HTML: both assembly engines publish
that table. ``evaluate`` is how the client evaluates `` `{python} expr` `` inline code in the notebook's namespace.

``run_cells`` (the warm engine's one request per notebook, see ``cptpub.execute.inline``) runs the cells it is
given one after the other through IPython's ``run_cell``, as separate execute requests would: each cell's outputs
reach the client as the usual iopub messages (stream, display_data, execute_result, error), framed by a
``cptpub_cell`` message before and after the cell, so the client files them under the right cell exactly as
nbclient does. ``run_framed`` is the same driver for the in-process engine (``cptpub.execute.inprocess``), whose
frames and outputs go straight to its client. A cell's timeout is enforced here, by a SIGALRM timer raising
``CellTimedOut`` in the cell (when the driver runs in the main thread).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from cptpub.sections.markdown import Trusted, frame_markdown, inline_markdown

CELL_MESSAGE = "cptpub_cell"  # iopub message type of the frames around each cell
MARKDOWN = "text/markdown"  # the one representation of inline code's value the client keeps (cptpub.inline)


def setup() -> None:
    from IPython import get_ipython

    formatter = get_ipython().display_formatter.formatters[MARKDOWN]
    for module in ("pandas", "pandas.core.frame"):  # pandas reports DataFrame.__module__ as "pandas"
        formatter.for_type_by_name(module, "DataFrame", frame_markdown)


def evaluate(expression: str) -> Trusted:
    """The Markdown that inline code ``expression`` shows, evaluated in the notebook's namespace."""
    from IPython import get_ipython

    shell = get_ipython()
    value = eval(expression, shell.user_global_ns, shell.user_ns)  # the editor's own inline code, as Quarto runs it
    return Trusted(inline_markdown(value))


class CellTimedOut(BaseException):  # not an Exception: a cell's ``except Exception`` must not swallow it
    """The cell ran longer than its timeout."""


def run_cells(cells: list[dict], progress: str | None = None) -> None:
    """Run ``cells`` (dicts: ``index``; ``code``, ``timeout`` and ``allow_errors`` for a code cell, or
    ``expressions`` for a Markdown cell's inline code) until one fails; each is framed by ``cptpub_cell``
    messages: ``{"index", "event": "start", "execution_count"}`` and ``{"index", "event": "end", ...}`` with the
    cell's ``status`` ("ok", "error" or "timeout", with ``ename``, ``evalue``, ``traceback``) or its inline
    results (``answers``, in the shape of IPython's ``user_expressions``).

    ``progress``: a file that holds "<index> <execution count>" of the cell being run. Messages still queued when
    the kernel dies are lost with it; the file says which cell killed it."""
    from IPython import get_ipython

    shell = get_ipython()
    with _progress_file(progress) as mark:
        run_framed(shell, cells, mark, lambda content: _frame(shell, content))


def run_framed(
    shell, cells: list[dict], mark: Callable[[int, int | None], None], frame: Callable[[dict], None]
) -> None:
    """``run_cells`` on ``shell``, with ``frame(content)`` called for each frame and ``mark(index, execution
    count)`` before each cell (the in-process engine's frames go straight to its client)."""
    setup()
    for cell in cells:
        mark(cell["index"], shell.execution_count if "code" in cell else None)
        if not _run_one(shell, cell, frame):
            return


def _run_one(shell, cell: dict, frame: Callable[[dict], None]) -> bool:
    """Run one cell between its frames; False when the run stops here."""
    if "expressions" in cell:
        frame({"index": cell["index"], "event": "start"})
        answers = _evaluate_all(shell, cell["expressions"])
        frame({"index": cell["index"], "event": "end", "answers": answers})
        return answers[-1]["status"] == "ok"
    frame({"index": cell["index"], "event": "start", "execution_count": shell.execution_count})
    shell._last_traceback = None
    with _time_limit(cell.get("timeout")):
        result = shell.run_cell(cell["code"], store_history=True)
    error = result.error_before_exec if result.error_before_exec is not None else result.error_in_exec
    end: dict = {"index": cell["index"], "event": "end", "status": "ok"}
    if not result.success or getattr(shell, "_last_traceback_during_displayhook", False):
        end.update(
            status="timeout" if isinstance(error, CellTimedOut) else "error",
            ename=type(error).__name__,
            evalue=str(error),
            traceback=getattr(shell, "_last_traceback", None) or [],
        )
    frame(end)
    allowed = cell.get("allow_errors") or end.get("ename") in cell.get("allow_error_names", ())
    return end["status"] == "ok" or (end["status"] == "error" and allowed)


@contextlib.contextmanager
def _progress_file(path: str | None) -> Iterator[Callable[[int, int | None], None]]:
    if path is None:
        yield lambda index, count: None
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def mark(index: int, execution_count: int | None) -> None:
        # a write reaches the file (the OS's page cache) at once, so it outlives the process
        os.pwrite(fd, f"{index} {execution_count}\n".ljust(32).encode(), 0)

    try:
        yield mark
    finally:
        os.close(fd)


def _evaluate_all(shell, expressions: list[str]) -> list[dict]:
    """Each expression's result as ``user_expressions`` gives it, up to the first that raises: only its Markdown,
    the one representation the client keeps (IPython's other formatters, text/plain's pretty printer among them,
    are not run)."""
    answers = []
    for expression in expressions:
        try:
            data, metadata = shell.display_formatter.format(evaluate(expression), include=(MARKDOWN,))
        except Exception as exc:
            etype, value, tb = sys.exc_info()
            traceback = shell.InteractiveTB.structured_traceback(etype, value, tb)
            answers.append({"status": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": traceback})
            break
        answers.append({"status": "ok", "data": data, "metadata": metadata})
    return answers


def _frame(shell, content: dict) -> None:
    """Send a ``cptpub_cell`` message after everything the cell printed (streams are buffered)."""
    for stream in (sys.stdout, sys.stderr):
        # ipykernel's streams flush through their I/O thread, a round trip each: only when text is waiting
        if getattr(stream, "_flush_pending", True) or getattr(stream, "_subprocess_flush_pending", False):
            stream.flush()
    kernel = shell.kernel
    kernel.session.send(
        kernel.iopub_socket, CELL_MESSAGE, content, parent=kernel.get_parent(), ident=kernel._topic(CELL_MESSAGE)
    )


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield  # the client's own deadline is the only limit
        return

    def expire(signum, frame):
        raise CellTimedOut(f"the cell ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
