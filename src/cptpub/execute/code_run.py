"""Which notebooks belong to one code: ``run_sections`` runs a code's notebooks inside ``code_run()``, and the warm
engines reset their process once per run (before its first notebook) instead of before every notebook.

A run is per thread. An engine can ask to be told when the run ends (``on_end``), e.g. to put its process back
before the worker renders the edition.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class CodeRun:
    """One code's notebooks: a token engines compare, and what to do when it ends."""

    def __init__(self) -> None:
        self._on_end: list[Callable[[], None]] = []

    def on_end(self, callback: Callable[[], None]) -> None:
        self._on_end.append(callback)

    def _end(self) -> None:
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            callback()


_current = threading.local()


def current_run() -> CodeRun | None:
    """The run this thread is in, or None outside ``code_run()``."""
    return getattr(_current, "run", None)


@contextlib.contextmanager
def code_run() -> Iterator[CodeRun]:
    """Notebooks run in this block (in this thread) are one code's."""
    previous = current_run()
    run = _current.run = CodeRun()
    try:
        yield run
    finally:
        _current.run = previous
        run._end()
