"""Quarto's inline code in Markdown cells, `` `{python} expr` ``: finding the expressions and putting their results
back, as Quarto does with an executed notebook's ``user_expressions`` cell metadata.

The run (``cptpub.execute.inline``) evaluates the expressions and stores the results; assembly
(``cptpub.assemble.markdown``) resolves them. Both use the same pattern as Quarto (``jupyter-inline.ts``).
"""

from __future__ import annotations

import re

# Quarto's pattern (src/core/jupyter/jupyter-inline.ts), applied line by line.
INLINE_CODE = re.compile(r"(^|[^`])`\{python\}[ \t]([^`]+)`")
USER_EXPRESSIONS = "user_expressions"
MARKDOWN = "text/markdown"


def inline_expressions(source: str) -> list[str]:
    """The distinct inline expressions of a Markdown cell, in order of appearance."""
    found: dict[str, None] = {}
    for line in source.splitlines():
        for match in INLINE_CODE.finditer(line):
            found[match.group(2).strip()] = None
    return list(found)


def resolve_inline(source: str, results: dict[str, str]) -> str:
    """``source`` with each inline expression replaced by its Markdown result (unknown ones are left as they are)."""

    def replace(match: re.Match[str]) -> str:
        result = results.get(match.group(2).strip())
        return match.group(0) if result is None else match.group(1) + result

    return "\n".join(INLINE_CODE.sub(replace, line) for line in source.split("\n"))


def stored_results(cell) -> dict[str, str]:
    """The Markdown results ``user_expressions`` metadata holds for a cell, by expression."""
    results = {}
    for item in cell.get("metadata", {}).get(USER_EXPRESSIONS, ()):
        data = item.get("result", {}).get("data", {})
        if MARKDOWN in data:
            value = data[MARKDOWN]
            results[item["expression"]] = value if isinstance(value, str) else "".join(value)
    return results
