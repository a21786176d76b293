"""The executed notebook's text (``cptpub.execute.notebook_json``): byte for byte what ``nbformat.writes`` (Papermill's
writer) gives, for generated notebooks of every JSON shape and for the demo's executed notebooks."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat.warnings import DuplicateCellId

from cptpub.execute import INPROCESS_ENGINE, section_parameters
from cptpub.execute.code_run import code_run
from cptpub.execute.notebook_json import notebook_text
from cptpub.execute.notebook_run import execute_notebook
from cptpub.project import Project


def outcome(write, nb):
    """What ``write`` gives for a copy of ``nb`` (validation may repair a notebook): its text, or its error."""
    try:
        return write(copy.deepcopy(nb))
    except Exception as exc:
        return type(exc), str(exc)


def assert_written_as_nbformat_writes(nb) -> None:
    assert outcome(notebook_text, nb) == outcome(nbformat.writes, nb)


# Text with what JSON escapes (quotes, backslashes, control characters), line ends of every kind, non-ASCII and
# astral characters, and lone surrogates (json.dumps writes them; encoding the file then fails).
CHARACTERS = st.one_of(
    st.sampled_from(list('"\\/\n\r\t\b\f\x00\x01\x1f\x7f\x85\u2028\u2029é€😀')),
    st.characters(exclude_categories=()),
)
TEXT = st.text(CHARACTERS, max_size=30)
LINES = st.lists(TEXT, max_size=4)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e16, 1e-5, 1.5e300, 5e-324, -0.0, 0.1, 123456789.0, 1e22]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70), FLOATS, TEXT)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)
MIME = st.sampled_from(
    [
        "text/plain",
        "text/markdown",
        "text/html",
        "image/svg+xml",
        "application/javascript",
        "image/png",
        "application/json",
        "application/vnd.x+json",
    ]
)
METADATA = st.dictionaries(TEXT, JSON, max_size=3)


@st.composite
def bundles(draw):
    return draw(st.dictionaries(MIME, st.one_of(TEXT, LINES, JSON), max_size=4))


@st.composite
def outputs(draw):
    kind = draw(st.sampled_from(["stream", "display_data", "execute_result", "error"]))
    if kind == "stream":
        return {"output_type": kind, "name": draw(st.sampled_from(["stdout", "stderr"])), "text": draw(TEXT | LINES)}
    if kind == "error":
        return {"output_type": kind, "ename": draw(TEXT), "evalue": draw(TEXT), "traceback": draw(LINES)}
    output = {"output_type": kind, "data": draw(bundles()), "metadata": draw(METADATA)}
    if kind == "execute_result":
        output["execution_count"] = draw(st.none() | st.integers(1, 10**6))
    return output


@st.composite
def notebooks(draw):
    cells = []
    for i in range(draw(st.integers(0, 4))):
        metadata = draw(METADATA)
        if draw(st.booleans()):
            metadata["trusted"] = draw(st.booleans())
        if draw(st.booleans()):
            metadata["papermill"] = {"duration": draw(FLOATS), "exception": False, "start_time": draw(TEXT)}
        cell = {"id": f"cell-{i}", "metadata": metadata, "source": draw(TEXT | LINES)}
        kind = draw(st.sampled_from(["code", "markdown", "raw"]))
        cell["cell_type"] = kind
        if kind == "code":
            cell["execution_count"] = draw(st.none() | st.integers(1, 100))
            cell["outputs"] = draw(st.lists(outputs(), max_size=3))
        elif draw(st.booleans()):
            cell["attachments"] = draw(st.dictionaries(TEXT, bundles(), max_size=2))
        cells.append(cell)
    metadata = draw(METADATA)
    for key in ("orig_nbformat", "orig_nbformat_minor", "signature"):
        if draw(st.booleans()):
            metadata[key] = draw(SCALARS)
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notebooks())
def test_generated_notebooks_are_written_as_nbformat_writes_them(nb):
    assert_written_as_nbformat_writes(nb)


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        -math.inf,
        b"bytes",
        {1: "an int key"},
        {"a": 1, 2: "mixed keys"},
        (1, "a tuple"),
        np.float64(1e16),
        np.float64(0.1),
        True,
        2**64,
        -(2**64),
        10**30,
        "\ud800 lone surrogate",
        {"\udfff": 1},
        {"set"},
    ],
    ids=repr,
)
def test_values_json_writes_differently_or_not_at_all_give_nbformats_text_or_error(value):
    nb = nbformat.v4.new_notebook()
    nb.metadata["value"] = value
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("stream", text="a\nb")])]
    assert_written_as_nbformat_writes(nb)


def test_notebooks_of_other_shapes_or_versions_give_nbformats_text_or_error():
    v4 = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("a\nb")])
    without_type = copy.deepcopy(v4)
    del without_type.cells[0]["cell_type"]
    plain_cell = copy.deepcopy(v4)
    plain_cell.cells[0] = dict(plain_cell.cells[0])
    code_without_outputs = nbformat.from_dict({**v4, "cells": [{"id": "a", "cell_type": "code", "metadata": {}}]})
    missing_ids = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    missing_ids.nbformat_minor = 4  # before cell ids: nothing to repair
    del missing_ids.cells[0]["id"]
    v3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[nbformat.v3.new_code_cell("x")])])
    for nb in (without_type, plain_cell, code_without_outputs, missing_ids, v3):
        assert_written_as_nbformat_writes(nb)


def test_validation_repairs_the_notebook_as_nbformat_does():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x"), nbformat.v4.new_code_cell("y")])
    nb.cells[1].id = nb.cells[0].id
    with pytest.warns(DuplicateCellId):
        text = notebook_text(nb)
    assert nb.cells[0].id != nb.cells[1].id, "the duplicate id is replaced in the notebook, as nbformat.writes does"
    assert text == nbformat.writes(nb)


def test_the_fast_writer_writes_ordinary_notebooks_itself(monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)\nx = 2.5")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].metadata["papermill"] = {"duration": 0.012345, "status": "completed"}
    expected = nbformat.writes(nb)

    def fallback(*args, **kwargs):
        raise AssertionError("nbformat's writer was used")

    monkeypatch.setattr(nbformat.versions[4], "writes_json", fallback)
    assert notebook_text(nb) == expected


def test_the_demos_executed_notebooks_are_written_as_nbformat_writes_them(tmp_path: Path, ingested_project: Path):
    project = Project(ingested_project)
    parameters = section_parameters(project, "20705")
    mimes = set()
    with code_run():
        for source in project.section_notebooks():
            output = tmp_path / source.name
            nb = execute_notebook(str(source), str(output), parameters, engine_name=INPROCESS_ENGINE, cwd=str(tmp_path))
            assert output.read_text(encoding="utf-8") == nbformat.writes(nb), source.name
            mimes |= {mime for cell in nb.cells for out in cell.get("outputs", []) for mime in out.get("data", {})}
    assert {"text/markdown", "text/plain", "image/svg+xml"} <= mimes, "tables and the figure were written"
