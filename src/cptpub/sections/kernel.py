"""Runs inside the notebook kernel during a build: how outputs and inline code become publishable Markdown.

``setup`` (run by cptpub's Papermill client before a notebook's first cell) gives pandas DataFrames a
``text/markdown`` representation, an escaped pipe table, beside pandas' own HTML: both assembly engines publish
that table. ``evaluate`` is how the client evaluates `` `{python} expr` `` inline code in the notebook's namespace.
"""

from __future__ import annotations

from cptpub.sections.markdown import Trusted, frame_markdown, inline_markdown


def setup() -> None:
    from IPython import get_ipython

    formatter = get_ipython().display_formatter.formatters["text/markdown"]
    for module in ("pandas", "pandas.core.frame"):  # pandas reports DataFrame.__module__ as "pandas"
        formatter.for_type_by_name(module, "DataFrame", frame_markdown)


def evaluate(expression: str) -> Trusted:
    """The Markdown that inline code ``expression`` shows, evaluated in the notebook's namespace."""
    from IPython import get_ipython

    shell = get_ipython()
    value = eval(expression, shell.user_global_ns, shell.user_ns)  # the editor's own inline code, as Quarto runs it
    return Trusted(inline_markdown(value))
