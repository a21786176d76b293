"""Papermill engine ``cptpub-inprocess``: a code's notebooks run in the calling process, on an IPython shell it keeps
(``cptpub.execute.inprocess_shell``), instead of in a Jupyter kernel. What ``cptpub build`` uses in its local
worker processes.

A kernel costs a process of its own (pandas and matplotlib loaded a second time, ~300 MB) and, per cell, ZeroMQ
messages serialised, signed, sent and parsed on both sides. Here the cells run through the same driver the warm
kernel runs (``cptpub.sections.kernel.run_framed``: ``run_cell``, the SIGALRM cell timeout, inline code), and the
shell hands each output straight to the same client code that files a kernel's messages under their cells
(``OneRequestNotebookClient``), so an executed notebook records the same outputs, execution counts, inline results
and Papermill cell records as on a warm kernel.

Resets are the warm kernel's (``cptpub.execute.process_state``): the process is put back before another code's
notebooks, and each notebook of a code gets a new namespace and execution count. The worker's own state is protected
too: the process state is taken before a code's first notebook and, when its notebooks are done (the end of its
``code_run()``, or of a notebook run outside one), the namespace is emptied and that state put back, so the edition
is rendered with the worker's own environment, warning filters, working folder and modules. Garbage is frozen once
(``freeze="once"``), after the first code: the worker keeps objects of its own alive across resets.

What a process cannot do for itself is left to whoever started it, as a kernel's death is left to its client:

- A cell that catches ``BaseException``, blocks SIGALRM, or sits in C code the signal cannot interrupt is not
  stopped by its timeout. Before each cell the engine writes the cell and its deadline to a file
  (``cptpub.running_cell``, when ``set_running_cell_file`` named one): the batch executor kills a worker
  whose cell is past its deadline by ``TIMEOUT_GRACE`` seconds, names the cell, and starts another worker.
- A cell that ends the process (``os._exit``, a segfault, the out-of-memory killer) takes the run with it; the file
  names the cell it died in.
- After a run stopped from outside its cells (a cell timeout, an interrupt, a failure of the engine itself) the
  process may hold half-done state: ``needs_new_process()`` says so, and the worker exits after that edition so
  that a fresh one takes its place. An ordinary exception in a cell leaves the process warm.

In a thread other than the main one (a dask worker's task thread) SIGALRM cannot stop a cell, and notebooks of
several threads would share the one shell: there the engine runs the notebook on the thread's warm kernel instead
(``cptpub-warm``).
"""

from __future__ import annotations

import os
import sys
import threading

from nbclient.client import timestamp
from papermill.exceptions import PapermillExecutionError

from cptpub.execute.code_run import CodeRun, current_run
from cptpub.execute.inline import client_options
from cptpub.execute.manager import WriteOnceEngine
from cptpub.execute.one_request import OneRequestNotebookClient
from cptpub.execute.process_state import ProcessState
from cptpub.execute.warm import WarmKernelEngine, is_python_kernel
from cptpub.running_cell import RunningCellFile

__all__ = ["InProcessEngine", "needs_new_process", "set_running_cell_file"]

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what a kernel gives matplotlib (ipykernel)

# The kernel_info reply's language_info of an IPython kernel (ipykernel.ipkernel.IPythonKernel.language_info),
# which nbclient stores in the executed notebook's metadata.
LANGUAGE_INFO = {
    "name": "python",
    "version": "{}.{}.{}".format(*sys.version_info[:3]),
    "mimetype": "text/x-python",
    "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
    "pygments_lexer": f"ipython{sys.version_info[0]}",
    "nbconvert_exporter": "python",
    "file_extension": ".py",
}


class _Process:
    """This process's shell, the state it is reset to, and what the resets know."""

    def __init__(self) -> None:
        from cptpub.execute.inprocess_shell import InProcessShell

        self.shell = InProcessShell.start()
        _use_matplotlib_backend(self.shell)
        self.state = ProcessState(freeze="once")
        self.clean = True  # namespace empty and process state as at the snapshot
        self.run: CodeRun | None = None  # the code run whose notebooks the shell holds
        self.tainted = False  # a run was stopped from outside its cells


def _use_matplotlib_backend(shell) -> None:
    """As ipykernel does: matplotlib's inline backend unless the environment chose one (in the environment, before
    the snapshot, so that resets keep it), also when this process imported matplotlib before the shell existed."""
    backend = os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    mpl = sys.modules.get("matplotlib")
    if mpl is None:  # chosen when pyplot is first imported
        return
    mpl.use(backend)
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is not None and "matplotlib.pyplot" in sys.modules:  # its import-time hook ran without the shell
        inline.configure_inline_support(shell, backend)


_process: _Process | None = None
_running_cell: RunningCellFile | None = None


def set_running_cell_file(path) -> None:
    """Write the cell being run (and its deadline) to ``path`` from now on (``cptpub.running_cell``)."""
    global _running_cell
    if _running_cell is not None:
        _running_cell.close()
    _running_cell = RunningCellFile(path)


def needs_new_process() -> bool:
    """True once a notebook run was stopped from outside its cells: this process should be replaced."""
    return _process is not None and _process.tainted


def _prepare() -> _Process:
    """The shell, reset for the notebook about to run in the current working folder (Papermill's ``cwd``)."""
    global _process
    if _process is None:
        _process = _Process()
    process = _process
    run = current_run()
    try:
        if run is not None and run is process.run:  # the next notebook of the same code
            process.state.next_notebook(process.shell, os.getcwd())
            return process
        if process.clean:  # what to put back when this code's notebooks are done
            process.state.snapshot()
        else:  # whatever a run outside ``code_run()`` or a stopped run left
            process.state.reset(process.shell, os.getcwd())
    except BaseException:
        process.tainted = True  # a reset that fails leaves the process in doubt
        raise
    process.clean = False
    process.run = run
    if run is not None:
        run.on_end(_end_code)
    return process


def _end_code() -> None:
    """A code's notebooks are done: empty the namespace and put the process back for the worker's own work."""
    process = _process
    if process is None or process.clean:
        return
    try:
        process.state.reset(process.shell, os.getcwd())
    except BaseException:
        process.tainted = True
        raise
    process.clean = True


class InProcessNotebookClient(OneRequestNotebookClient):
    """cptpub's Papermill client, recording a notebook run on the in-process shell instead of a kernel."""

    def run_in_process(self, shell) -> None:
        from cptpub.sections.kernel import run_framed

        self.reset_execution_trackers()
        wanted = self._kernel_cells()
        self._start_run(wanted)
        mark = self._marker()
        try:
            with shell.capturing(self._output):
                run_framed(shell, wanted, mark, lambda content: self._frame(shell, content))
        except BaseException:
            self._end_running_cell()
            raise
        finally:
            if _running_cell is not None:
                _running_cell.idle()
        self._end_run()
        self.nb.metadata["language_info"] = dict(LANGUAGE_INFO)
        self.set_widgets_metadata()

    def _marker(self):
        if _running_cell is None:
            return lambda index, execution_count: None
        notebook = os.path.basename(self.nb.metadata.get("papermill", {}).get("input_path") or "")
        # The source notebook's cell numbers: Papermill's injected-parameters cell is not one of them.
        injected = [i for i, cell in enumerate(self.nb.cells) if "injected-parameters" in cell.metadata.get("tags", [])]

        def mark(index: int, execution_count: int | None) -> None:
            number = index + 1 - sum(1 for i in injected if i <= index)
            assert _running_cell is not None
            _running_cell.running(notebook, number, self._timeouts.get(index))

        return mark

    def _frame(self, shell, content: dict) -> None:
        shell.flush_streams()  # what the cell printed comes before its end
        self._cell_event(content, timestamp())

    def _output(self, msg_type: str, content: dict) -> None:
        if self._running is None:  # as the kernel client: outputs outside a cell's frames are not recorded
            return
        msg = {"msg_type": msg_type, "content": content, "header": {"msg_type": msg_type}, "parent_header": {}}
        index = self._running[0]
        self.process_message(msg, self.nb.cells[index], index)


class InProcessEngine(WriteOnceEngine):
    """Papermill engine ``cptpub-inprocess``: cptpub's client (inline code, table outputs) in this process."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        if threading.current_thread() is not threading.main_thread() or not is_python_kernel(kernel_name):
            return WarmKernelEngine.execute_managed_notebook(
                nb_man,
                kernel_name,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                start_timeout=start_timeout,
                execution_timeout=execution_timeout,
                **kwargs,
            )
        options = client_options(
            kwargs, kernel_name, log_output, stdout_file, stderr_file, start_timeout, execution_timeout
        )
        client = InProcessNotebookClient(nb_man, **options)
        process = _prepare()
        ended = False
        try:
            client.run_in_process(process.shell)
            ended = True
        except PapermillExecutionError:  # failing inline code: an ordinary failure inside a cell
            ended = True
            raise
        finally:
            process.tainted |= not ended
            if current_run() is None:
                _end_code()
        return nb_man.nb
