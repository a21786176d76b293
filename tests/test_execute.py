"""Execution: a failing cell stops the code with the notebook, the cell and the executed notebook kept."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from cptpub.errors import CptpubError, SectionFailed
from cptpub.execute import FRESH_ENGINE, INPROCESS_ENGINE, WARM_ENGINE, run_sections
from cptpub.project import Project
from cptpub.validate import check_notebook, check_project


def add_notebook(project: Path, name: str, cells: list[str], *, parameters: str | None = None) -> Path:
    notebook = nbformat.v4.new_notebook()
    if parameters is None:
        parameters = 'cpt_code = "20702"\ndata_dir = ""\nstore_path = ""\nfigures_dir = "figures"'
    first = nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})
    notebook.cells = [first, *(nbformat.v4.new_code_cell(c) for c in cells)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = project / "notebooks" / name
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("engine", [FRESH_ENGINE, WARM_ENGINE, INPROCESS_ENGINE])
def test_failing_cell_names_notebook_cell_and_keeps_the_executed_notebook(project: Path, engine: str):
    for existing in (project / "notebooks").glob("*.ipynb"):
        existing.unlink()
    add_notebook(project, "01-ok.ipynb", ["x = 1"])
    add_notebook(project, "02-broken.ipynb", ["y = 2", "raise ValueError(f'no rates for {cpt_code}')", "z = 3"])
    add_notebook(project, "03-never.ipynb", ["w = 4"])
    workdir = project / "build" / "20702"
    with pytest.raises(SectionFailed) as err:
        run_sections(Project(project), "20702", workdir, engine_name=engine)
    failure = err.value
    assert failure.notebook == "02-broken.ipynb"
    assert failure.cell == 3  # the source notebook's third cell (papermill's injected cell not counted)
    assert failure.executed_path == workdir / "02-broken.ipynb"
    assert "ValueError: no rates for 20702" in str(failure)
    assert str(workdir / "02-broken.ipynb") in str(failure)
    kept = json.loads(failure.executed_path.read_text())
    assert any(o.get("ename") == "ValueError" for c in kept["cells"] for o in c.get("outputs", []))
    assert not (workdir / "03-never.ipynb").exists()


def test_missing_parameter_is_named_before_anything_runs(project: Path):
    path = add_notebook(project, "05-extra.ipynb", ["pass"], parameters='cpt_code = "20702"')
    with pytest.raises(CptpubError) as err:
        run_sections(Project(project), "20702", project / "build" / "20702")
    assert str(err.value).startswith(f"{path}: the parameters cell does not define 'data_dir'")
    assert not (project / "build").exists()


def test_validate_reports_outputs_and_missing_parameters_cell(project: Path):
    path = project / "notebooks" / "01-summary.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello")]
    nbformat.write(notebook, path)
    notebook.cells[0].metadata["tags"] = []
    other = project / "notebooks" / "06-untagged.ipynb"
    nbformat.write(notebook, other)
    problems = {(p.where, p.message.split(";")[0]) for p in check_notebook(path)}
    assert (f"{path}: cell 2", "has saved outputs") in problems
    assert any("no cell is tagged 'parameters'" in p.message for p in check_notebook(other))
    assert any(p.severity == "error" for p in check_project(Project(project)))


def test_repository_notebooks_are_output_free_and_parameterized():
    """The check `make test` runs on the committed notebooks: none saved with outputs, all parameterized."""
    from .conftest import REPO

    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for path in notebooks:
        assert check_notebook(path) == [], path


@pytest.mark.parametrize("engine", [FRESH_ENGINE, WARM_ENGINE, INPROCESS_ENGINE])
def test_hung_cell_is_stopped_by_the_per_cell_timeout_and_reported(project: Path, engine: str):
    for existing in (project / "notebooks").glob("*.ipynb"):
        existing.unlink()
    add_notebook(project, "01-hangs.ipynb", ["x = 1", "import time\ntime.sleep(600)"])
    workdir = project / "build" / "20702"
    with pytest.raises(SectionFailed) as err:
        run_sections(Project(project), "20702", workdir, cell_timeout=2, engine_name=engine)
    assert err.value.notebook == "01-hangs.ipynb"
    assert err.value.cell == 3
    assert "per-cell timeout of 2 s" in str(err.value)
