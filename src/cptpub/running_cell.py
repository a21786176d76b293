"""The cell a process is running, in a small file another process can read: a batch worker running notebooks in
process writes it before each cell, and its executor reads it to name the cell when the worker dies, or to stop a
worker whose cell is past its timeout by ``TIMEOUT_GRACE``. (Standard library only: the batch's main process reads
it without loading the execution machinery.)

The file holds one JSON object: ``notebook`` (the source notebook's file name), ``cell`` (its 1-based cell number
in the source notebook), ``timeout`` (seconds, or null) and ``deadline`` (``time.monotonic()`` of this machine at
which the cell's time is up, or null); ``{}`` between cells' runs. Each write goes to the OS at once (``pwrite``), so
it outlives the process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

FILE_NAME = "running-cell.json"  # in the worker's own folder (build/work/wN/)
# Seconds past a cell's timeout before whoever waits for the cell stops it from outside (the warm kernel's client,
# the batch executor), when the cell's own timer could not.
TIMEOUT_GRACE = 5.0


class RunningCellFile:
    """The writer: one open file, overwritten in place before each cell."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._size = 0
        self.idle()

    def running(self, notebook: str, cell: int, timeout: float | None) -> None:
        deadline = time.monotonic() + timeout if timeout else None
        self._write({"notebook": notebook, "cell": cell, "timeout": timeout, "deadline": deadline})

    def idle(self) -> None:
        self._write({})

    def close(self) -> None:
        os.close(self._fd)

    def _write(self, content: dict) -> None:
        data = json.dumps(content).encode()
        # Padded to the longest content so far, so one write replaces it all (JSON allows trailing spaces).
        self._size = max(self._size, len(data))
        os.pwrite(self._fd, data.ljust(self._size), 0)


def read_running_cell(path: Path) -> dict:
    """What ``RunningCellFile`` last wrote (``{}``: no cell running, or no readable file)."""
    try:
        content = json.loads(path.read_bytes() or b"{}")
    except (OSError, ValueError):  # not written yet, or read while being written: nothing known
        return {}
    return content if isinstance(content, dict) else {}
