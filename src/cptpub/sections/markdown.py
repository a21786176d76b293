"""Markdown for notebook cells: data escaped by default, ``Trusted`` only when built here from escaped parts.

Everything a cell shows passes through one of these, or through the inline-code and DataFrame formatters (which
use ``inline_markdown`` and ``frame_markdown``), so text from records and rate files appears literally.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence

from cptpub import escape


class Trusted(str):
    """Markdown built from escaped parts: shown as is by ``show``, inline code and tables."""

    def _repr_markdown_(self) -> str:
        return str(self)


def md(value: object) -> Trusted:
    """``value`` as literal text (Markdown's special characters escaped); Trusted values pass unchanged."""
    if isinstance(value, Trusted):
        return value
    return Trusted(escape.md(value))


def inline_markdown(value: object) -> str:
    """What `` `{python} expr` `` shows for ``value``: its own Markdown if it has one (``Trusted``, IPython's
    ``Markdown``), else its text escaped, keeping one leading and trailing space (``" and more"`` joins the text
    before it with a space). ``None`` shows nothing."""
    if value is None:
        return ""
    as_markdown = getattr(value, "_repr_markdown_", None)
    if callable(as_markdown):
        shown = as_markdown()
        if isinstance(shown, tuple):  # (data, metadata)
            shown = shown[0]
        if isinstance(shown, str):
            return shown
    text = str(value)
    escaped = escape.md(text)
    if not escaped:
        return ""
    return (" " if text[:1].isspace() else "") + escaped + (" " if text[-1:].isspace() else "")


def money(value: float | None) -> Trusted:
    """``$1,234.50``; ``n/a`` for None."""
    return Trusted("n/a" if value is None else escape.md(f"${value:,.2f}"))


def percent(value: float | None) -> Trusted:
    """``142.5%`` (one decimal); ``n/a`` for None."""
    return Trusted("n/a" if value is None else escape.md(f"{value:,.1f}%"))


def number(value: float | None, decimals: int = 0) -> Trusted:
    """``1,234`` or, with ``decimals``, ``1,234.56``; ``n/a`` for None."""
    return Trusted("n/a" if value is None else escape.md(f"{value:,.{decimals}f}"))


def date(value: dt.date | None) -> Trusted:
    """``March 1, 2026`` (spelled out, whatever the locale); ``n/a`` for None."""
    from cptpub.dates import display_date

    return Trusted("n/a" if value is None else escape.md(display_date(value)))


def names(items: Sequence[object]) -> Trusted:
    """'A', 'A and B', 'A, B, and C' with each item escaped."""
    words = [md(i) for i in items]
    if len(words) <= 2:
        return Trusted(" and ".join(words))
    return Trusted(", ".join(words[:-1]) + ", and " + words[-1])


def bullets(items: Iterable[object]) -> Trusted:
    """A bullet list, one escaped item (or Trusted Markdown) per line."""
    return Trusted("\n".join(f"- {md(i)}" for i in items))


def numbered(items: Iterable[object]) -> Trusted:
    """A numbered list, one escaped item (or Trusted Markdown) per line."""
    return Trusted("\n".join(f"{n}. {md(i)}" for n, i in enumerate(items, start=1)))


def not_available(label: str) -> Trusted:
    """The report's sentence for a missing input: "Data not available in the input for <label>." """
    return Trusted(f"Data not available in the input for {escape.md(label)}.")


def join(*parts: object, sep: str = " ") -> Trusted:
    """Escaped parts (Trusted ones as they are) joined, empty parts left out."""
    return Trusted(sep.join(md(p) for p in parts if p is not None and str(p) != ""))


# Pipe tables: when any line is longer than Pandoc's --columns (72), Pandoc takes the relative column widths from the
# dashes of the separator line, in HTML (colgroup) and Typst alike. The separator is always written that long.
_SEPARATOR_WIDTH = 120
_MIN_COLUMN, _MAX_COLUMN = 6, 48


def _column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    """Dashes per column: the longest cell (capped; long text wraps) or the header's longest word."""
    widths = []
    for i, header in enumerate(headers):
        longest_cell = max((len(escape.clean(row[i])) for row in rows), default=0)
        longest_word = max((len(w) for w in header.split()), default=0)
        widths.append(max(_MIN_COLUMN, longest_word, min(longest_cell, _MAX_COLUMN)))
    total = sum(widths)
    return [max(3, round(w * _SEPARATOR_WIDTH / total)) for w in widths]


def pipe_table(headers: Sequence[object], rows: Iterable[Sequence[object]], align: str | None = None) -> Trusted:
    """A pipe table with escaped cells; ``align`` has one letter per column: l(eft), r(ight) or c(enter)."""
    head = [md(h) for h in headers]
    body = [[md(c) for c in row] for row in rows]
    align = align or "l" * len(head)
    if len(align) != len(head):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(head)} columns")
    marks = []
    for letter, width in zip(align, _column_widths(head, body), strict=True):
        dashes = "-" * max(3, width - (2 if letter == "c" else 1))
        marks.append({"l": f":{dashes}", "r": f"{dashes}:", "c": f":{dashes}:"}[letter])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(marks) + "|"]
    lines.extend("| " + " | ".join(c or " " for c in row) + " |" for row in body)
    return Trusted("\n".join(lines))


class Table:
    """A table cells display: ``Table(frame)`` shows a pandas DataFrame as an escaped Markdown table.

    Numeric columns are right-aligned unless ``align`` says otherwise; the index is shown when it is named or is
    not the default 0, 1, 2, ... (pass ``index=False`` to hide it). Column widths follow the contents.
    """

    def __init__(self, frame, *, align: str | None = None, index: bool | None = None) -> None:
        self.frame = frame
        self.align = align
        self.index = index

    def _repr_markdown_(self) -> str:
        return frame_markdown(self.frame, align=self.align, index=self.index)


def _cell_text(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    return value


def frame_markdown(frame, *, align: str | None = None, index: bool | None = None) -> str:
    """A DataFrame as an escaped pipe table (what a DataFrame output publishes as, in both engines)."""
    import pandas as pd

    if index is None:
        index = frame.index.name is not None or not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0
    data = frame.reset_index() if index else frame
    numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in data.dtypes]
    align = align or "".join("r" if n else "l" for n in numeric)
    headers = ["" if (c is None or str(c) == "index") and index else str(c) for c in data.columns]
    rows = [[_cell_text(v) for v in row] for row in data.itertuples(index=False, name=None)]
    return str(pipe_table(headers, rows, align))
