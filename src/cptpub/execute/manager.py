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

# Papermill imports the engines while registering its entry points, i.e. while papermill.engines is still
# initialising: import only names papermill.engines has defined by then.
from papermill.engines import NBClientEngine, NotebookExecutionManager


class WriteOnceManager(NotebookExecutionManager):
    """Records each cell's start, end and status in the notebook like papermill's, without writing it each time."""

    def cell_complete(self, cell, cell_index=None, **kwargs):
        """Papermill's, reading the cell's start time back with ``datetime.fromisoformat`` (papermill wrote it with
        ``isoformat``) rather than dateutil's parser, which took more time than the rest of the manager."""
        record = cell.metadata.papermill
        start = record.get("start_time")
        record["start_time"] = None  # papermill's own duration is left to the lines below
        try:
            super().cell_complete(cell, cell_index=cell_index, **kwargs)
        finally:
            record["start_time"] = start
        if start:
            end = datetime.datetime.fromisoformat(record["end_time"])
            record["duration"] = (end - datetime.datetime.fromisoformat(start)).total_seconds()

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
