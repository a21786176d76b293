"""The cptpub-inprocess engine: notebooks run in the worker process, recording what a warm kernel records, with
timeouts, dying cells and resets between codes handled by the engine and the batch's executor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from nbclient.exceptions import CellTimeoutError
from papermill.exceptions import PapermillExecutionError

from cptpub.assemble import get_engine
from cptpub.batch.runner import EXECUTION_LABELS, FRESH, INPROCESS, WARM
from cptpub.edition import build_edition
from cptpub.execute import FRESH_ENGINE, INPROCESS_ENGINE, WARM_ENGINE, inprocess, run_sections
from cptpub.execute.warm import shutdown_warm_kernels
from cptpub.project import Project

from .conftest import run_cptpub
from .test_batch import assert_dist_matches_manifest, batch_project, editions
from .test_execute import add_notebook
from .test_warm_engine import OUTPUT_KINDS, stdout, write_notebook

PARAMETERS = 'cpt_code = "20702"\ndata_dir = ""\nstore_path = ""\nfigures_dir = "figures"'


@pytest.fixture(autouse=True)
def _no_kernels_left():
    yield
    shutdown_warm_kernels()


def recorded(notebook: nbformat.NotebookNode) -> list[tuple]:
    """What a run records per cell, without run times, the process id in ipykernel's cell file names, and object
    addresses in default reprs (``<cptpub.sections.markdown.Table at 0x7f...>``): these differ between two kernels
    too."""
    return [
        (
            cell.cell_type,
            cell.source,
            cell.get("execution_count"),
            json.loads(re.sub(r"ipykernel_\d+| at 0x[0-9a-f]+", "", json.dumps(cell.get("outputs")))),
            cell.metadata.get("user_expressions"),
            cell.metadata.get("papermill", {}).get("status"),
        )
        for cell in notebook.cells
    ]


def test_the_batch_names_the_engines_the_execute_package_registers():
    assert (INPROCESS, WARM, FRESH) == (INPROCESS_ENGINE, WARM_ENGINE, FRESH_ENGINE)
    assert set(EXECUTION_LABELS) == {INPROCESS, WARM, FRESH}


@pytest.mark.parametrize("code", ["20702", "20705"])
def test_in_process_runs_record_the_same_outputs_as_the_warm_kernel(tmp_path: Path, ingested_project: Path, code):
    project = Project(ingested_project)
    builtin = get_engine("builtin")
    runs = {}
    for engine in (WARM_ENGINE, INPROCESS_ENGINE):
        workdir = tmp_path / engine / "work"
        result = build_edition(
            project, code, builtin, execution_engine=engine, workdir=workdir, out_dir=tmp_path / engine / "out"
        )
        notebooks = {path.name: nbformat.read(path, as_version=4) for path in sorted(workdir.glob("*.ipynb"))}
        runs[engine] = (notebooks, {fmt: path.read_bytes() for fmt, path in result.outputs.items()})
    (warm, warm_files), (in_process, in_process_files) = runs[WARM_ENGINE], runs[INPROCESS_ENGINE]
    assert list(warm) == list(in_process) and len(warm) == 4
    for name, notebook in warm.items():
        assert recorded(in_process[name]) == recorded(notebook), name
        assert in_process[name].metadata.language_info == notebook.metadata.language_info
    data = [o.data for nb in in_process.values() for c in nb.cells for o in c.get("outputs", []) if "data" in o]
    assert any(d.get("text/markdown", "").startswith("|") for d in data), "tables"
    assert any("image/svg+xml" in d for d in data), "the figure"
    assert set(in_process_files) == {"html", "pdf"} and in_process_files == warm_files, "the same bytes out"


def test_in_process_outputs_of_every_kind_match_the_warm_kernel(tmp_path: Path):
    """Streams (stdout before stderr), displays, cleared and updated displays, results, inline code, a figure left
    open (the inline backend), a warning, an error with its traceback: as the warm kernel records them."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    kinds = [*OUTPUT_KINDS[:-2], "import warnings\nwarnings.warn('careful')", *OUTPUT_KINDS[-2:]]
    nb.cells = [nbformat.v4.new_code_cell(source) for source in kinds]
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("Inline: `{python} 6 * 7`."))
    nb.cells.insert(5, nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([3, 1, 2]);"))
    nbformat.write(nb, tmp_path / "kinds.ipynb")

    with pytest.raises(PapermillExecutionError) as error:
        pm.execute_notebook(
            tmp_path / "kinds.ipynb", tmp_path / "warm.ipynb", engine_name=WARM_ENGINE, progress_bar=False
        )
    warm = nbformat.read(tmp_path / "warm.ipynb", as_version=4)
    # In a process of its own, as a worker: this one's warning display belongs to pytest.
    script = (
        "import papermill, cptpub.execute\n"
        f"papermill.execute_notebook({str(tmp_path / 'kinds.ipynb')!r}, {str(tmp_path / 'in.ipynb')!r}, "
        f"engine_name={INPROCESS_ENGINE!r}, progress_bar=False)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "PapermillExecutionError" in run.stderr, run.stderr
    in_process = nbformat.read(tmp_path / "in.ipynb", as_version=4)
    assert recorded(in_process) == recorded(warm)
    errors = [o.ename for c in in_process.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == [error.value.ename] == ["ZeroDivisionError"]
    outputs = {c.source: c.outputs for c in in_process.cells if c.cell_type == "code"}
    assert [o.output_type for o in outputs[OUTPUT_KINDS[0]]] == ["stream", "stream"]
    assert [o.get("name") for o in outputs[OUTPUT_KINDS[0]]] == ["stdout", "stderr"]
    assert outputs["import matplotlib.pyplot as plt\nplt.plot([3, 1, 2]);"][0].data["image/png"].startswith("iVBOR")
    assert "UserWarning: careful" in outputs["import warnings\nwarnings.warn('careful')"][0].text


def run_twice_in_one_process(folder: Path, cells: list[str]) -> tuple[list[tuple], list[tuple]]:
    """What a notebook of ``cells`` records when one new process runs it twice in process, as a worker would."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, folder / "cells.ipynb")
    script = (
        "import papermill, cptpub.execute\n"
        "for out in ('in1.ipynb', 'in2.ipynb'):\n"
        f"    papermill.execute_notebook({str(folder / 'cells.ipynb')!r}, {str(folder)!r} + '/' + out, "
        f"engine_name={INPROCESS_ENGINE!r}, progress_bar=False)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    first, second = (recorded(nbformat.read(folder / out, as_version=4)) for out in ("in1.ipynb", "in2.ipynb"))
    return first, second


def test_magics_and_top_level_await_give_the_same_outputs_each_time_a_worker_runs_them(tmp_path: Path):
    """IPython's input transformations and its check for top-level ``await`` are done once per cell text in a
    worker: the same cells run again (as every code's do) give the same outputs, and what IPython would give."""
    cells = [
        "x = 6\nnames = %who_ls int\nnames",
        "import inspect\n\nasync def f():\n    return 42\ninspect.iscoroutinefunction(f)",
        "await f()",
        "%who_ls int",
    ]
    first, second = run_twice_in_one_process(tmp_path, cells * 2)
    results = [cell[3][0]["data"]["text/plain"] for cell in first]
    assert results == ["['x']", "True", "42", "['x']"] * 2
    assert [cell[2] for cell in first] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert second == first


def test_cells_compiled_once_per_worker_give_the_same_outputs_each_time(tmp_path: Path):
    """A worker keeps each cell's syntax tree, its statements' code, its lines (tracebacks) and whether it ends in
    ``;``: the same cells run again give what IPython gives them the first time, ``__future__`` imports included;
    a cell whose compilation warns is compiled again each time, so its warning is in every run's output; and
    asking whether a new cell's compilation warns does not reset what was warned about once already."""
    warn_once = (
        "import types, warnings\nm = types.ModuleType('m')\nwarnings.simplefilter('default')\n"
        "exec('import warnings\\ndef lib():\\n    warnings.warn(\"shown once\")', m.__dict__)\nm.lib()"
    )
    cells = [
        warn_once,
        "y = 2",
        "m.lib()",
        "6 * 7;",
        "6 * 7  # no semicolon",
        "from __future__ import annotations\ndef f(a: undefined): pass\nf.__annotations__",
        "def g(b: other): pass\ng.__annotations__",
        "import traceback\ndef h():\n    return 1 / 0\ntry:\n    h()\nexcept ZeroDivisionError:\n"
        "    print(traceback.format_exc())",
        "get_ipython().ast_node_interactivity = 'last_expr_or_assign'",
        "z = 6",
        "get_ipython().ast_node_interactivity = 'last_expr'\nw = 7",
        "x = 1\nx is 1",
    ]
    first, second = run_twice_in_one_process(tmp_path, cells)
    outputs = [cell[3] for cell in first]
    assert "UserWarning: shown once" in outputs[0][0]["text"] and outputs[1:3] == [[], []]
    outputs = outputs[3:]
    assert outputs[0] == []
    assert [out[0]["data"]["text/plain"] for out in outputs[1:4]] == ["42", "{'a': 'undefined'}", "{'b': 'other'}"]
    assert "line 3, in h\n    return 1 / 0\n" in outputs[4][0]["text"]
    assert [out[0]["data"]["text/plain"] for out in outputs[6:8]] == ["6", "7"]
    assert second[:-1] == first[:-1]
    for run in (first, second):
        stderr = run[-1][3][0]["text"]
        assert '.py:2: SyntaxWarning: "is" with a literal' in stderr and "  x is 1\n" in stderr


def test_each_notebook_starts_with_a_new_shells_names_and_the_worker_can_still_spawn(tmp_path: Path):
    """IPython's namespace reset also dropped what a new shell starts with: the ``__main__`` module's attributes
    (without ``__spec__``, multiprocessing's spawn failed in the worker for the rest of its life) and ``_``."""
    cells = [
        "print(repr((__spec__, __package__, __loader__, __doc__, _, __, ___)))",
        "import multiprocessing\n"
        "child = multiprocessing.get_context('spawn').Process(target=abs, args=(-1,))\n"
        "child.start()\nchild.join()\nchild.exitcode",
    ]
    first, second = run_twice_in_one_process(tmp_path, cells)
    assert first[0][3][0]["text"].startswith("(None, None, None, 'Automatically created module")
    assert first[1][3][0]["data"]["text/plain"] == "0"
    assert second == first


def test_in_process_timeout_stops_a_cell_even_when_it_catches_exceptions(tmp_path: Path):
    swallower = write_notebook(
        tmp_path / "swallower.ipynb",
        "import time\ntry:\n    time.sleep(60)\nexcept Exception:\n    pass\nprint('swallowed')",
    )
    started = time.monotonic()
    try:
        with pytest.raises(CellTimeoutError):
            pm.execute_notebook(swallower, tmp_path / "out.ipynb", engine_name=INPROCESS_ENGINE, execution_timeout=1)
        assert time.monotonic() - started < 10
        kept = nbformat.read(tmp_path / "out.ipynb", as_version=4)
        assert "swallowed" not in stdout(kept) and kept.cells[0].metadata.papermill.end_time
        assert inprocess.needs_new_process(), "a run stopped from outside its cells: the worker is replaced"
    finally:
        if inprocess._process is not None:
            inprocess._process.tainted = False


def test_the_process_gets_its_own_state_back_after_a_codes_notebooks(project: Path):
    """The worker renders the edition after its notebooks: their environment, folder, warning filters, sys.path,
    pandas options and variables must not be left behind in it."""
    for existing in (project / "notebooks").glob("*.ipynb"):
        existing.unlink()
    add_notebook(
        project,
        "01-pollutes.ipynb",
        [
            "import os, sys, warnings, pandas\nos.environ['CPTPUB_LEAK'] = cpt_code\nsys.path.append('/leak')\n"
            "warnings.filterwarnings('ignore', message='cptpub-leak')\npandas.set_option('display.max_rows', 7)\n"
            "os.chdir('/')\nleaked = cpt_code",
        ],
    )
    add_notebook(
        project,
        "02-same-code.ipynb",
        ["import os, pandas\nprint(os.environ['CPTPUB_LEAK'], pandas.get_option('display.max_rows'))"],
    )
    # The engine gives matplotlib the inline backend, as ipykernel does, unless the environment chose one.
    environ = {**os.environ, "MPLBACKEND": os.environ.get("MPLBACKEND", inprocess.INLINE_BACKEND)}
    before = (environ, os.getcwd(), list(sys.path), list(warnings.filters))
    executed = run_sections(Project(project), "20702", project / "build" / "20702", engine_name=INPROCESS_ENGINE)
    assert stdout(nbformat.read(executed[1], as_version=4)).split() == ["20702", "7"], "one code's notebooks share"
    assert (dict(os.environ), os.getcwd(), list(sys.path), list(warnings.filters)) == before
    import pandas
    from IPython import get_ipython

    assert pandas.get_option("display.max_rows") == 60
    assert "leaked" not in get_ipython().user_ns


# --- through the batch: worker processes running notebooks in process -------------------------------------------


def _notebook(root: Path, name: str, *cells: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        *(nbformat.v4.new_code_cell(cell) for cell in cells),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "notebooks" / name)


def test_a_cell_that_ends_its_worker_fails_only_its_edition_naming_the_cell(tmp_path: Path, ingested_project: Path):
    codes = ("20702", "20703", "20704", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)
    _notebook(
        root,
        "00-crash.ipynb",
        "x = 1",
        "import os, signal\nif cpt_code == '20703':\n    os._exit(3)\n"
        "if cpt_code == '20704':\n    os.kill(os.getpid(), signal.SIGSEGV)",
    )
    result = run_cptpub(root, "build", "--all", "-j", "1", "--to", "html", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "notebooks run in process" in result.stdout
    assert sorted(editions(root)) == ["20702", "20705"], "the replacement worker built the rest"
    message = " ".join(result.stderr.split())
    assert "20703: 00-crash.ipynb, cell 3: the worker process running it exited with status 3" in message
    assert "20704: 00-crash.ipynb, cell 3: the worker process running it was killed by SIGSEGV" in message
    assert "no executed notebook was kept; worker w0's log is" in message
    assert_dist_matches_manifest(root)


def test_a_cell_that_catches_or_blocks_its_timeout_is_stopped_by_the_batch(tmp_path: Path, ingested_project: Path):
    codes = ("20702", "20703", "20704", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)
    _notebook(
        root,
        "00-stubborn.ipynb",
        "import signal, time\n"
        "if cpt_code == '20703':  # the timer's signal never arrives\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n"
        "    time.sleep(600)\n"
        "if cpt_code == '20704':  # the timeout's exception is swallowed\n"
        "    try:\n        time.sleep(600)\n    except BaseException:\n        time.sleep(600)",
    )
    started = time.monotonic()
    result = run_cptpub(root, "build", "--all", "-j", "1", "--to", "html", "--timeout", "2", check=False)
    assert time.monotonic() - started < 120
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(editions(root)) == ["20702", "20705"]
    message = " ".join(result.stderr.split())
    for code in ("20703", "20704"):
        assert (
            f"{code}: 00-stubborn.ipynb, cell 2: the cell ran longer than the per-cell timeout of 2 s and could not "
            "be stopped from inside (it caught or blocked the timer): worker w0 was killed and replaced"
        ) in message
    assert_dist_matches_manifest(root)


def test_state_does_not_leak_from_one_code_to_the_next(tmp_path: Path, ingested_project: Path):
    """One worker builds 20702, whose notebooks change everything a notebook can, then 20705: its notebooks see a
    clean process and its edition is the same bytes as when a fresh worker built it alone."""
    root = batch_project(tmp_path / "p", ingested_project, ("20702", "20705"))
    seen = tmp_path / "seen"
    seen.mkdir()
    (root / "notebooks" / "own_module.py").write_text("VALUE = 1\n")
    _notebook(
        root,
        "00-leak.ipynb",
        f"""\
import json, os, sys, warnings
import matplotlib.pyplot as plt
import pandas
sys.path.insert(0, {str(root / "notebooks")!r})
import own_module
with open(os.path.join({str(seen)!r}, cpt_code + ".json"), "w") as out:
    json.dump({{
        "globals": sorted(k for k in globals() if k in ("leaked", "figure")),
        "environ": os.environ.get("CPTPUB_LEAK"), "cwd": os.getcwd(), "path": "/leak" in sys.path,
        "max_rows": pandas.get_option("display.max_rows"), "linewidth": plt.rcParams["lines.linewidth"],
        "figures": plt.get_fignums(), "own_module": own_module.VALUE,
        "filters": [f[0] for f in warnings.filters if f[1] is not None and "leak" in f[1].pattern],
    }}, out)
if cpt_code == "20702":
    leaked = True
    figure = plt.figure()
    own_module.VALUE = 2
    os.environ["CPTPUB_LEAK"] = "1"
    sys.path.append("/leak")
    warnings.filterwarnings("ignore", message="leak")
    pandas.set_option("display.max_rows", 3)
    plt.rcParams["lines.linewidth"] = 9
    plt.rcParams["axes.facecolor"] = "red"
    os.chdir("/")
""",
    )
    run_cptpub(root, "build", "20705", "-j", "1", "--to", "html")
    alone = (root / "dist" / "cpt-20705.html").read_bytes()
    run_cptpub(root, "build", "20702", "20705", "-j", "1", "--to", "html", "--force")

    polluted, clean = (json.loads((seen / f"{code}.json").read_text()) for code in ("20702", "20705"))
    workdir = root / "build" / "work" / "w0"
    assert clean == {
        "globals": [],
        "environ": None,
        "cwd": str(workdir / "20705"),
        "path": False,
        "max_rows": 60,
        "linewidth": 1.5,
        "figures": [],
        "own_module": 1,
        "filters": [],
    }
    assert polluted["cwd"] == str(workdir / "20702")
    assert (root / "dist" / "cpt-20705.html").read_bytes() == alone
