"""Errors that carry the context a user needs: which file, where in it, and what is wrong.

``UsageError`` (exit status 2) means the request itself is wrong: an unknown code, a bad option.
``CptpubError`` (exit status 1) means the work failed: invalid data, a failing notebook, a render error.
"""

from __future__ import annotations

from pathlib import Path


class CptpubError(Exception):
    """Failed work. ``where`` names a file (and line or item) when there is one."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.where = str(where) if where is not None else None
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(CptpubError):
    """The request is wrong (unknown code, invalid argument): exit status 2."""

    exit_code = 2


class RecordError(CptpubError):
    """A code record or the payer catalogue is invalid. ``where`` is ``file:line``."""


def cell_label(cell: int | None) -> str:
    """How a failing notebook cell is named in messages: 'cell 3' (1-based), or 'an unknown cell'."""
    return f"cell {cell}" if cell is not None else "an unknown cell"


class SectionFailed(CptpubError):
    """A section notebook raised while executing for one code."""

    def __init__(
        self,
        *,
        code: str,
        notebook: str,
        cell: int | None,
        executed_path: Path,
        error: str,
    ):
        self.code = code
        self.notebook = notebook
        self.cell = cell
        self.executed_path = executed_path
        self.error = error
        super().__init__(
            f"CPT {code}: notebook {notebook} failed in {cell_label(cell)}: {error}",
            hint=f"the executed notebook is kept for inspection at {executed_path}",
        )


class AssemblyError(CptpubError):
    """An assembly engine (quarto or builtin) could not render a publication."""


class IngestError(CptpubError):
    """A rate file could not be ingested. ``where`` is the file and position or item."""
