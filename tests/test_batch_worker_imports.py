"""A batch worker leaves out imports it would make for nothing, and what it does use still works."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

CHECK = """
import sys
from cptpub.batch.worker import skip_unused_imports

skip_unused_imports()
import jsonschema
import nbformat
import papermill
from nbformat.v4 import new_code_cell, new_notebook

notebook = new_notebook(cells=[new_code_cell("1 + 1")])
nbformat.validate(notebook)
notebook.cells[0]["cell_type"] = "not a cell type"
try:
    nbformat.validate(notebook)
except nbformat.ValidationError:
    print("an invalid notebook is refused")
print("rfc3987_syntax imported:", sys.modules.get("rfc3987_syntax") is not None)
"""


def test_a_worker_does_not_import_rfc3987_syntax_and_still_validates_notebooks() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.splitlines() == ["an invalid notebook is refused", "rfc3987_syntax imported: False"]


@pytest.mark.skipif(importlib.util.find_spec("rfc3987_syntax") is None, reason="rfc3987-syntax is not installed")
def test_without_the_worker_setting_jsonschema_would_import_it() -> None:
    """The setting is not a no-op: with rfc3987-syntax installed, jsonschema imports it by itself."""
    code = "import sys, jsonschema; print(sys.modules.get('rfc3987_syntax') is not None)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "True"
