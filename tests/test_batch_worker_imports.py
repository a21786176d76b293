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


WORKER_MODULES = """
import sys
from cptpub.batch.worker import skip_unused_imports

skip_unused_imports()
import cptpub.batch.tasks, cptpub.batch.worker, cptpub.execute.inprocess, cptpub.sections  # what a worker loads
from cptpub.analysis.benchmarks import METHOD_NOTES

print("placeholder note:", "$0.01 or less" in METHOD_NOTES[3] and "$999,999 or more" in METHOD_NOTES[3])
print(sorted(m for m in ("cptpub.batch.runner", "cptpub.ingest.tic", "cptpub.ingest.staging") if m in sys.modules))
"""


def test_a_worker_loads_neither_the_ingest_nor_the_batch_runner() -> None:
    result = subprocess.run([sys.executable, "-c", WORKER_MODULES], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["placeholder note: True", "[]"]


def test_the_packages_still_export_their_names() -> None:
    import cptpub.batch
    import cptpub.ingest
    from cptpub.batch.runner import run_batch
    from cptpub.ingest.tic import ingest_tic_file

    assert cptpub.ingest.ingest_tic_file is ingest_tic_file
    assert cptpub.batch.run_batch is run_batch
    with pytest.raises(AttributeError, match="no attribute 'ingest_everything'"):
        _ = cptpub.ingest.ingest_everything  # type: ignore[attr-defined]
