"""Markdown building blocks for sections: escaped by default, trusted only when built here.

Templates are Jinja2 with a ``finalize`` hook that escapes every ``{{ value }}`` for Markdown unless the value is
``Trusted`` (Markdown this module produced from escaped parts). A template therefore cannot forget to escape data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import jinja2

from cptpub import escape


class Trusted(str):
    """Markdown produced by this module from escaped parts; templates insert it as is."""


def _finalize(value: object) -> object:
    if value is None:
        return ""
    return value if isinstance(value, Trusted) else escape.md(value)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cptpub.sections", "templates"),
        finalize=_finalize,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(money=money, percent=percent, bullets=bullets, join_words=join_words)
    return env


def render(template: str, **values: object) -> Trusted:
    """Render ``templates/<template>`` with data values escaped."""
    text = _environment().get_template(template).render(**values)
    # Collapse the blank lines Jinja blocks leave behind, keeping paragraph breaks.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return Trusted(text.strip() + "\n")


def money(value: float | None) -> Trusted:
    return Trusted("n/a" if value is None else escape.md(f"${value:,.2f}"))


def percent(value: float | None) -> Trusted:
    return Trusted("n/a" if value is None else escape.md(f"{value:,.1f}%"))


def join_words(items: Sequence[object]) -> Trusted:
    """'A', 'A and B', 'A, B, and C' with each item escaped."""
    words = [escape.md(i) for i in items]
    if len(words) <= 2:
        return Trusted(" and ".join(words))
    return Trusted(", ".join(words[:-1]) + ", and " + words[-1])


def bullets(items: Iterable[object]) -> Trusted:
    return Trusted("\n".join(f"- {i if isinstance(i, Trusted) else escape.md(i)}" for i in items))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> Trusted:
    """A pipe table; ``align`` has one letter per column: l(eft), r(ight) or c(enter)."""
    align = align or "l" * len(headers)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(escape.md(h) for h in headers) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    for row in rows:
        cells = [c if isinstance(c, Trusted) else escape.md(c) for c in row]
        lines.append("| " + " | ".join(c or " " for c in cells) + " |")
    return Trusted("\n".join(lines))


def not_available(label: str) -> Trusted:
    """The report's sentence for a missing input field."""
    return Trusted(f"Data not available in the input for {escape.md(label)}.")
