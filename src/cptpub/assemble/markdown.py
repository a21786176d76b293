"""Executed notebooks -> one Markdown document: what the builtin engine publishes, the way Quarto would.

Published, in order: Markdown cells, with inline code (`` `{python} expr` ``) replaced by the results the run
stored in the cell's ``user_expressions`` metadata; and, per code cell, under its Quarto options (``#| echo``,
``#| output``, ``#| include``, ``#| label``, ``#| fig-cap``, ``#| fig-alt``, ``#| tbl-cap``; defaults from
``_quarto.yml``'s ``execute``):

* the code itself when ``echo`` is true;
* ``text/markdown`` outputs (cptpub's helpers, tables and DataFrames, which the run gives a Markdown table);
* ``image/svg+xml`` and ``image/png`` outputs, written to ``figures/`` in the build folder as figures.

A labelled table or figure with a caption gets the label as its identifier, which ``@tbl-x`` / ``@fig-x``
references in the text link to (``crossref.lua``). Not published: stream output (prints and warnings),
``text/plain``-only results, raw cells, and the ``parameters`` / ``injected-parameters`` cells.
"""

from __future__ import annotations

import base64
import copy
import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from cptpub import escape
from cptpub.assemble.config import ExecuteSettings
from cptpub.atomic import write_atomic
from cptpub.errors import AssemblyError
from cptpub.inline import resolve_inline, stored_results

SKIPPED_TAGS = frozenset({"parameters", "injected-parameters"})
MARKDOWN_MIME = "text/markdown"
IMAGE_MIMES = {"image/svg+xml": "svg", "image/png": "png"}
FIGURES_DIR = "figures"
_OPTION_LINE = re.compile(r"^#\|\s?(.*)$")
_LABEL = re.compile(r"^[A-Za-z][\w-]*$")


def notebooks_to_markdown(
    paths: Iterable[Path], workdir: Path | None = None, defaults: ExecuteSettings = ExecuteSettings()
) -> str:
    """The content of the notebooks, in the given order, as one Markdown document; figures written under
    ``workdir/figures`` (default: the folder of each executed notebook, i.e. the code's build folder)."""
    blocks = [block.strip("\n") for path in paths for block in _content_blocks(path, workdir or path.parent, defaults)]
    return "\n\n".join(block for block in blocks if block.strip()) + "\n"


def cell_options(source: str, where: str) -> tuple[dict[str, Any], str]:
    """A code cell's leading ``#|`` options (YAML) and the code after them."""
    lines = source.split("\n")
    option_lines = []
    for line in lines:
        match = _OPTION_LINE.match(line)
        if not match:
            break
        option_lines.append(match.group(1))
    code = "\n".join(lines[len(option_lines) :])
    if not option_lines:
        return {}, code
    try:
        options = _parse_options("\n".join(option_lines))
    except yaml.YAMLError as err:
        raise AssemblyError(f"{where}: the #| cell options are not valid YAML: {err}") from None
    if not isinstance(options, dict):
        raise AssemblyError(f"{where}: the #| cell options must be `key: value` lines")
    return copy.deepcopy(options), code


@functools.lru_cache(maxsize=1024)
def _parse_options(text: str) -> Any:
    """The same cells' options come back with every edition a worker assembles: parsed once each."""
    return yaml.safe_load(text)


def _content_blocks(path: Path, workdir: Path, defaults: ExecuteSettings) -> Iterator[str]:
    import nbformat  # imported here: it is slow to import, and a no-op batch build never renders

    try:
        # nbformat.read without its schema validation, which only logs what it finds: papermill validated the
        # notebook when it wrote it, and validating the four again cost 2 ms an edition.
        notebook = nbformat.convert(nbformat.reader.reads(path.read_text(encoding="utf-8")), 4)
    except FileNotFoundError:
        raise AssemblyError("executed notebook not found", where=path) from None
    except Exception as err:  # nbformat raises several unrelated types for unreadable files
        raise AssemblyError(f"not a readable notebook: {err}", where=path) from None
    for index, cell in enumerate(notebook.cells):
        if SKIPPED_TAGS.intersection(cell.get("metadata", {}).get("tags", ())):
            continue
        if cell.cell_type == "markdown":
            yield resolve_inline(cell.source, stored_results(cell))
        elif cell.cell_type == "code":
            yield from _code_cell_blocks(cell, f"{path.name}, cell {index + 1}", path.stem, index, workdir, defaults)


def _code_cell_blocks(
    cell: Any, where: str, stem: str, index: int, workdir: Path, defaults: ExecuteSettings
) -> Iterator[str]:
    options, code = cell_options(cell.source, where)
    if not options.get("include", defaults.include):
        return
    if options.get("echo", defaults.echo) and code.strip():
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", code)), default=0))
        yield f"{fence}python\n{code.strip()}\n{fence}"
    if options.get("output", defaults.output) is False:
        return
    label = str(options.get("label") or "")
    if label and not _LABEL.fullmatch(label):
        raise AssemblyError(f"{where}: label {label!r} must be letters, digits, - and _ (e.g. fig-rates)")
    images = 0
    for output in cell.get("outputs", ()):
        if output.output_type not in ("display_data", "execute_result"):
            continue  # streams (print, warnings) and errors are not content
        data = output.get("data", {})
        if MARKDOWN_MIME in data:
            markdown = _text(data[MARKDOWN_MIME])
            caption = options.get("tbl-cap")
            if caption and markdown.lstrip().startswith("|"):
                attribute = f" {{#{label}}}" if label.startswith("tbl-") else ""
                markdown = f"{markdown.rstrip()}\n\n: {_one_line(caption)}{attribute}"
            yield markdown
            continue
        mime = next((m for m in IMAGE_MIMES if m in data), None)
        if mime is None:
            continue
        images += 1
        name = f"{stem}-cell{index + 1}-{images}.{IMAGE_MIMES[mime]}"
        raw = data[mime]
        content = _text(raw).encode("utf-8") if mime == "image/svg+xml" else base64.b64decode(_text(raw))
        write_atomic(workdir / FIGURES_DIR / name, content, durable=False)
        yield _figure(f"{FIGURES_DIR}/{name}", options, first=images == 1, label=label)


def _figure(src: str, options: dict[str, Any], *, first: bool, label: str) -> str:
    """An image paragraph; the cell's first image carries its caption and label (a captioned image is a figure)."""
    caption = _one_line(options.get("fig-cap")) if first else ""
    label = label if first else ""
    attributes = []
    if label.startswith("fig-") and caption:
        attributes.append(f"#{label}")
    if options.get("fig-alt"):
        attributes.append(f"fig-alt={escape.md_attribute(options['fig-alt'])}")
    suffix = "{" + " ".join(attributes) + "}" if attributes else ""
    return f"![{caption}]({src}){suffix}"


def _one_line(value: object) -> str:
    """A caption option (the editor's Markdown) on one line: a line break would end the caption."""
    return " ".join(_text(value or "").split())


def _text(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)
