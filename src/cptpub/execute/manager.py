"""Papermill's execution manager and engine base, writing the executed notebook once instead of on every cell.

Papermill's ``NotebookExecutionManager`` writes the whole output notebook (nbformat validation, a deep copy, JSON)
when the run starts and when each cell starts and completes: for a 30-cell notebook, 60 writes of a growing
notebook, most of the time cptpub's worker spends executing. ``papermill.execute_notebook`` writes the executed
notebook itself once the engine returns, with its error markers when a cell failed, so cptpub's engines write it
only when the engine raises (a cell timeout, a dead kernel, failing inline code, an interrupt): the executed
notebook, up to and including the cell that was running, is still on disk as the evidence. The cost is that a
notebook is not on disk while it runs (papermill's 30-second autosave is off too).
"""

from __future__ import annotations

import datetime
import sys

# Papermill imports the engines while registering its entry points, i.e. while papermill.engines is still
# initialising: import only names papermill.engines has defined by then.
from papermill.engines import NBClientEngine, NotebookExecutionManager
from papermill.log import logger


class WriteOnceManager(NotebookExecutionManager):
    """Records each cell's start, end and status in the notebook like papermill's, without writing it each time."""

    # papermill's cell_start and cell_complete (what they record, log and show), called for every cell: without a
    # save each time, and reading the start time back with ``datetime.fromisoformat`` (papermill wrote it with
    # ``isoformat``) rather than dateutil's parser, which took more time than the rest of the manager.

    def cell_start(self, cell, cell_index=None, **kwargs):
        if kwargs.get("nb"):
            self.nb = kwargs["nb"]
        if self.log_output:
            logger.info(f"Executing Cell {cell_index + 1 if cell_index is not None else '':-<40}")
        start = self.now()
        # plain values: NotebookNode's __setitem__ (which converts mappings) is not needed
        dict.update(cell.metadata.papermill, start_time=start.isoformat(), status=self.RUNNING, exception=False)
        if self.pbar:
            description = self.get_cell_description(cell)
            if description is not None:
                self.pbar.set_description(f"Executing {description}")
        self.last_save_time = start

    def cell_complete(self, cell, cell_index=None, **kwargs):
        if kwargs.get("nb"):
            self.nb = kwargs["nb"]
        end = self.now()
        if self.log_output:
            logger.info(f"Ending Cell {cell_index + 1 if cell_index is not None else '':-<43}")
            sys.stdout.flush()
            sys.stderr.flush()
        record = cell.metadata.papermill
        dict.__setitem__(record, "end_time", end.isoformat())
        start = record.get("start_time")
        if start:
            dict.__setitem__(record, "duration", (end - datetime.datetime.fromisoformat(start)).total_seconds())
        if record["status"] != self.FAILED:
            dict.__setitem__(record, "status", self.COMPLETED)
        self.last_save_time = end
        if self.pbar:
            self.pbar.update(1)

    def save(self, **kwargs):
        """Papermill calls this at every cell event: nothing is written until the run is over."""
        self.last_save_time = self.now()

    def write(self) -> None:
        """Write the notebook as it is now to the output path (if any), as papermill's ``save`` does."""
        if self.output_path:
            from cptpub.execute.notebook_run import write_notebook  # papermill.execute is not loaded yet here

            write_notebook(self.nb, self.output_path)
        self.last_save_time = self.now()


class WriteOnceEngine(NBClientEngine):
    """``NBClientEngine`` with ``WriteOnceManager``: the subclasses define ``execute_managed_notebook``."""

    @classmethod
    def execute_notebook(
        cls,
        nb,
        kernel_name,
        output_path=None,
        progress_bar=True,
        log_output=False,
        autosave_cell_every=30,
        **kwargs,
    ):
        nb_man = WriteOnceManager(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        finished = False
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finished = True
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
            if not finished:  # papermill.execute_notebook writes the notebook only when the engine returns
                nb_man.write()
        return nb_man.nb
