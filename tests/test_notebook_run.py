"""cptpub's papermill run (``cptpub.execute.notebook_run``): the source notebook parsed once per version of its file,
each run getting a copy of its own."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from papermill.iorw import load_notebook_node

from cptpub.execute.notebook_run import _source_notebook


def notebook(*cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_a_source_notebook_is_read_again_when_its_file_changes_and_each_run_gets_its_own_copy(tmp_path: Path):
    path = tmp_path / "n.ipynb"
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    nbformat.write(notebook(cell), path)
    first, predefined = _source_notebook(str(path))
    assert first == load_notebook_node(str(path)) and predefined == {"x"}
    first.cells[0].metadata.tags.append("changed by a run")
    first.metadata.papermill["parameters"] = {"x": 2}
    again, _ = _source_notebook(str(path))
    assert again == load_notebook_node(str(path)), "a run's changes stay in its own copy"

    cell.source = "x = 1\ny = 2"
    nbformat.write(notebook(cell), path)
    os.utime(path, ns=(1, 1))  # even with an older modification time: the size differs
    edited, predefined = _source_notebook(str(path))
    assert edited.cells[0].source == "x = 1\ny = 2" and predefined == {"x", "y"}
