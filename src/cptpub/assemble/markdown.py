"""Executed notebooks -> one Markdown document, the content both engines publish.

What counts as content (the section contract): Markdown cells, and code-cell outputs of mime
``text/markdown``. Code inputs, stream, error and ``text/plain`` outputs, raw cells, and cells
tagged ``parameters`` or ``injected-parameters`` are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cptpub.errors import AssemblyError

SKIPPED_TAGS = frozenset({"parameters", "injected-parameters"})
MARKDOWN_MIME = "text/markdown"


def notebooks_to_markdown(paths: Iterable[Path]) -> str:
    """The content of the notebooks, in the given order, as one Markdown document."""
    blocks = [block.strip("\n") for path in paths for block in _content_blocks(path)]
    return "\n\n".join(block for block in blocks if block.strip()) + "\n"


def _content_blocks(path: Path) -> Iterator[str]:
    import nbformat  # imported here: it is slow to import, and a no-op batch build never renders

    try:
        notebook = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise AssemblyError("executed notebook not found", where=path) from None
    except Exception as err:  # nbformat raises several unrelated types for unreadable files
        raise AssemblyError(f"not a readable notebook: {err}", where=path) from None
    for cell in notebook.cells:
        if SKIPPED_TAGS.intersection(cell.get("metadata", {}).get("tags", ())):
            continue
        if cell.cell_type == "markdown":
            yield cell.source
        elif cell.cell_type == "code":
            for output in cell.get("outputs", ()):
                if output.output_type in ("display_data", "execute_result"):
                    markdown = output.get("data", {}).get(MARKDOWN_MIME)
                    if markdown:
                        yield markdown if isinstance(markdown, str) else "".join(markdown)
