"""The warm engine's notebook client: all of a notebook's cells in one execute request instead of one each.

Each execute request costs a round trip and a few milliseconds of CPU in the kernel and in the worker (ZMQ,
message (de)serialisation, status messages, history), which for short cells is more than the cells themselves.
This client sends the notebook's code cells and inline code to ``cptpub.sections.kernel.run_cells`` in one
request. The kernel frames each cell's iopub messages with ``cptpub_cell`` messages, and the client files each
message under its cell through nbclient's own ``process_message``, so outputs, execution counts, error outputs
and Papermill's per-cell records (``cell_start``, ``cell_exception``, ``cell_complete``) are those of the
one-request-per-cell client. What a failure raises is unchanged too: ``CellExecutionError`` for a failing cell
(Papermill turns it into ``PapermillExecutionError``), ``PapermillExecutionError`` for failing inline code,
``CellTimeoutError`` for a cell over its timeout (enforced in the kernel; if the kernel cannot interrupt the cell,
the client gives up ``TIMEOUT_GRACE`` seconds later), ``DeadKernelError`` when the kernel dies.

``coalesce_streams`` is not applied to the framed messages: a client with it set runs a request per cell.
"""

from __future__ import annotations

import time
from pathlib import Path
from queue import Empty

from jupyter_core.utils import ensure_async, run_sync
from nbclient.client import timestamp
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode, from_dict

from cptpub.execute.inline import CptpubNotebookClient, store_inline_results
from cptpub.inline import inline_expressions
from cptpub.running_cell import TIMEOUT_GRACE
from cptpub.sections.kernel import CELL_MESSAGE

POLL_SECONDS = 1.0  # how often a silent kernel is checked for being alive


class OneRequestNotebookClient(CptpubNotebookClient):
    """cptpub's Papermill client (inline code, table outputs), sending a notebook's cells in one request."""

    # A file the kernel can write (the warm kernel's private folder): which cell it is running. Without it, a
    # kernel that dies may take the messages saying so with it.
    progress_path: str | None = None

    # The record of a run (``_start_run``): each cell's timeout, how far it got, the cell being run.
    _timeouts: dict[int, float | None]
    _done = 0  # cells before this index are recorded as run
    _running: tuple[int, float] | None = None  # (index, monotonic start) of the cell being run
    _stopped = False  # a cell failed: the cells after it are not recorded

    def papermill_execute_cells(self):
        if self.coalesce_streams:
            return super().papermill_execute_cells()
        return run_sync(self._execute_in_one_request)()

    def _kernel_cells(self) -> list[dict]:
        """What ``run_cells`` runs: code cells with source, Markdown cells with inline code, in order."""
        wanted = []
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type == "markdown":
                expressions = inline_expressions(cell.source)
                if expressions:
                    wanted.append({"index": index, "expressions": expressions})
            elif (
                cell.cell_type == "code"
                and cell.source.strip()
                and self.skip_cells_with_tag not in cell.metadata.get("tags", [])
            ):
                allow = not self.force_raise_errors and (
                    self.allow_errors or "raises-exception" in cell.metadata.get("tags", [])
                )
                wanted.append(
                    {
                        "index": index,
                        "code": cell.source,
                        "timeout": self._get_timeout(cell),
                        "allow_errors": allow,
                        "allow_error_names": [] if self.force_raise_errors else list(self.allow_error_names),
                    }
                )
        return wanted

    async def _execute_in_one_request(self) -> None:
        assert self.kc is not None
        wanted = self._kernel_cells()
        self._start_run(wanted)
        driver = "__import__('cptpub.sections.kernel', fromlist=['run_cells']).run_cells"
        code = f"{driver}({wanted!r}, {self.progress_path!r})"
        if self.progress_path:
            Path(self.progress_path).unlink(missing_ok=True)  # the previous notebook's
        msg_id = await ensure_async(self.kc.execute(code, silent=True, store_history=False))
        try:
            while True:
                deadline = None
                timeout = self._timeouts.get(self._running[0]) if self._running is not None else None
                if self._running is not None and timeout:
                    deadline = self._running[1] + timeout + TIMEOUT_GRACE
                msg = await self._next_message(deadline, self._running)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                msg_type, content = msg["msg_type"], msg["content"]
                if msg_type == "status":
                    if content["execution_state"] == "idle":
                        break
                elif msg_type == CELL_MESSAGE:
                    self._cell_event(content, timestamp(msg))
                elif self._running is not None:
                    self.process_message(msg, self.nb.cells[self._running[0]], self._running[0])
        except BaseException as exc:
            if isinstance(exc, DeadKernelError):
                self._running = self._cell_that_died(self._done, self._running)
            self._end_running_cell()
            raise
        reply = await self.async_wait_for_reply(msg_id)
        status = reply["content"] if reply else {"status": "error", "ename": "Timeout", "evalue": "no reply"}
        if status.get("status") != "ok":
            raise RuntimeError(f"cptpub's cell driver failed: {status.get('ename')}: {status.get('evalue')}")
        self._end_run()

    # --- the record of a run, from its cells' frames: shared with the in-process engine -------------------------

    def _start_run(self, wanted: list[dict]) -> None:
        self._timeouts = {spec["index"]: spec.get("timeout") for spec in wanted}
        self._done = 0
        self._running = None
        self._stopped = False

    def _cell_event(self, content: dict, when: str) -> None:
        """Record a ``cptpub_cell`` frame: a cell starts, or ends with its status or inline results."""
        index = content["index"]
        cell = self.nb.cells[index]
        if content["event"] == "start":
            self._record_unexecuted(self._done, index)
            self.nb_man.cell_start(cell, index)
            if "execution_count" in content:
                self._start_code_cell(cell, content["execution_count"], when)
            self._running = (index, time.monotonic())
            return
        self._running, self._done = None, index + 1
        try:
            self._finish_cell(cell, index, content, when)
        except CellExecutionError as exc:  # as Papermill's loop: recorded, and the run stops
            self.nb_man.cell_exception(cell, cell_index=index, exception=exc)
            self._stopped = True
        finally:
            self.nb_man.cell_complete(cell, cell_index=index)

    def _end_running_cell(self) -> None:
        """The run stopped from outside its cells: as Papermill's loop, the cell that was running is recorded as
        ended."""
        if self._running is not None:
            self.nb_man.cell_complete(self.nb.cells[self._running[0]], cell_index=self._running[0])

    def _end_run(self) -> None:
        if not self._stopped:
            self._record_unexecuted(self._done, len(self.nb.cells))

    async def _next_message(self, deadline: float | None, running: tuple[int, float] | None) -> dict:
        """The next iopub message; raise if the kernel died or the running cell is far past its timeout."""
        assert self.kc is not None
        while True:
            if deadline is not None and running is not None and time.monotonic() > deadline:
                cell = self.nb.cells[running[0]]
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "Cell execution timed out", self._get_timeout(cell) or 0, cell
                )
            try:
                return await ensure_async(self.kc.get_iopub_msg(timeout=POLL_SECONDS))
            except Empty:
                alive = self.km.is_alive() if self.km is not None else self.kc.is_alive()
                if not await ensure_async(alive):
                    raise DeadKernelError("Kernel died") from None

    def _cell_that_died(self, done: int, running: tuple[int, float] | None) -> tuple[int, float] | None:
        """The cell the kernel was running when it died, from its progress file, with Papermill's records for the
        cells before it whose messages were lost with the kernel (their outputs are lost too)."""
        try:
            index_text, count_text = Path(self.progress_path or "").read_text().split()
            index = int(index_text)
        except (OSError, ValueError):
            return running
        if (running is not None and index <= running[0]) or (running is None and index < done):
            return running
        first = done
        if running is not None:
            self.nb_man.cell_complete(self.nb.cells[running[0]], cell_index=running[0])
            first = running[0] + 1
        for lost in range(first, index):
            self.nb_man.cell_start(self.nb.cells[lost], lost)
            self.nb_man.cell_complete(self.nb.cells[lost], cell_index=lost)
        cell = self.nb.cells[index]
        self.nb_man.cell_start(cell, index)
        if count_text != "None":
            cell.execution_count = int(count_text)
        return index, time.monotonic()

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's, with the output built as nbformat's ``output_from_msg`` builds it but without validating it on
        its own (jsonschema, a third of the client's time per output): the executed notebook is validated as a whole
        when Papermill writes it."""
        out = _output_node(msg)
        if out is None or self.output_hook_stack[msg["parent_header"].get("msg_id")]:
            return super().output(outs, msg, display_id, cell_index)  # widgets' hooks; unknown types are logged
        if self.clear_before_next_output:
            outs[:] = []
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
        if display_id:
            self._display_id_map.setdefault(display_id, {}).setdefault(cell_index, []).append(len(outs))
        outs.append(out)
        return out

    def _record_unexecuted(self, start: int, stop: int) -> None:
        """Papermill's records for cells the kernel does not run (Markdown, empty or skipped code cells)."""
        for index in range(start, stop):
            self.nb_man.cell_start(self.nb.cells[index], index)
            self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)

    def _start_code_cell(self, cell, execution_count: int, when: str) -> None:
        cell.outputs = []
        cell.execution_count = execution_count
        self.clear_before_next_output = False
        self.code_cells_executed += 1
        if self.record_timing:
            cell.metadata["execution"] = {"iopub.status.busy": when, "iopub.execute_input": when}

    def _finish_cell(self, cell, index: int, content: dict, when: str) -> None:
        if "answers" in content:
            expressions = inline_expressions(cell.source)
            store_inline_results(cell, index, expressions, content["answers"])
            return
        if self.record_timing:
            cell.metadata["execution"].update({"shell.execute_reply": when, "iopub.status.idle": when})
        if content["status"] == "timeout":
            raise CellTimeoutError.error_from_timeout_and_cell(
                "Cell execution timed out", self._get_timeout(cell) or 0, cell
            )
        if content["status"] == "error":
            allowed = not self.force_raise_errors and (
                self.allow_errors
                or content["ename"] in self.allow_error_names
                or "raises-exception" in cell.metadata.get("tags", [])
            )
            if not allowed:
                raise CellExecutionError.from_cell_and_msg(cell, content)


def _output_node(msg: dict) -> NotebookNode | None:
    """The notebook output of an iopub message, as ``nbformat.v4.output_from_msg`` makes it (None if not an output)."""
    msg_type, content = msg["header"]["msg_type"], msg["content"]
    if msg_type == "stream":
        fields = {"name": content["name"], "text": content["text"]}
    elif msg_type == "display_data":
        fields = {"metadata": content["metadata"], "data": content["data"]}
    elif msg_type == "execute_result":
        fields = {"metadata": content["metadata"], "data": content["data"]}
        fields["execution_count"] = content["execution_count"]
    elif msg_type == "error":
        fields = {"ename": content["ename"], "evalue": content["evalue"], "traceback": content["traceback"]}
    else:
        return None
    return from_dict({"output_type": msg_type, **fields})
