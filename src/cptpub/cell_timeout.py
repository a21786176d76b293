"""How long a notebook cell may run: ``--timeout`` on the command line, else ``cptpub: cell-timeout:`` in
``report/_quarto.yml``, else ``DEFAULT_CELL_TIMEOUT`` seconds. ``0`` means no limit.

Quarto has no per-cell timeout of its own to reuse (its ``execute:`` options are engine, cache, freeze, daemon,
enabled, ...), so the setting sits in the ``cptpub:`` section beside the other keys Quarto has no name for.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cptpub.errors import AssemblyError
from cptpub.yamlfile import read_yaml

DEFAULT_CELL_TIMEOUT = 300.0  # seconds: a section cell takes well under one; a hung one must not hang the batch
SETTING = "cell-timeout"


def _line_of(root: yaml.Node | None, *keys: str) -> int:
    node = root
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), node)
    return node.start_mark.line + 1 if node is not None else 1


def cell_timeout(report_dir: Path, override: float | None = None) -> float | None:
    """The per-cell timeout in seconds, or None for no limit."""
    if override is not None:
        return override or None
    path = report_dir / "_quarto.yml"
    try:
        raw, root = read_yaml(path, AssemblyError)
    except FileNotFoundError:
        return DEFAULT_CELL_TIMEOUT
    section = raw.get("cptpub") if isinstance(raw, dict) else None
    value = section.get(SETTING, DEFAULT_CELL_TIMEOUT) if isinstance(section, dict) else DEFAULT_CELL_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise AssemblyError(
            f"cptpub.{SETTING}: expected a number of seconds (0 for no limit), got {value!r}",
            where=f"{path}:{_line_of(root, 'cptpub', SETTING)}",
        )
    return float(value) or None
