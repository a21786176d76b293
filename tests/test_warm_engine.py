"""The cptpub-warm papermill engine, on real kernels."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import papermill
import papermill as pm
import pytest
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

import cptpub
from cptpub.execute.code_run import code_run
from cptpub.execute.warm import shutdown_warm_kernels

# Prints "<kernel pid> <connection file> <transport> <ip>" as the first line of a notebook's output.
REPORT_KERNEL = """\
import json, os
from ipykernel.connect import get_connection_file
_info = json.load(open(get_connection_file()))
print(os.getpid(), get_connection_file(), _info["transport"], _info["ip"])
del _info
"""


@pytest.fixture(autouse=True)
def _fresh_pool():
    yield
    shutdown_warm_kernels()


def write_notebook(path: Path, *cells: str, parameters: str | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(textwrap.dedent(source)) for source in cells]
    nbformat.write(nb, path)
    return path


def run(notebook: Path, engine: str = "cptpub-warm", **kwargs) -> nbformat.NotebookNode:
    output = notebook.with_name(f"{notebook.stem}-{engine}-out.ipynb")
    return pm.execute_notebook(
        notebook, output, engine_name=engine, kernel_name="python3", progress_bar=False, **kwargs
    )


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o.text for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")


def kernel_pid(nb: nbformat.NotebookNode) -> int:
    return int(stdout(nb).split()[0])


def process_gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` has exited; an exited child not yet reaped by its manager counts as gone."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True  # WNOWAIT: leave the reaping to jupyter_client
        except ChildProcessError:  # not our child, or already reaped
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


def test_reuses_kernel_without_leaking_globals(tmp_path):
    first = write_notebook(
        tmp_path / "first.ipynb",
        REPORT_KERNEL,
        "import pandas\nleak = code",
        parameters='code = "00000"',
    )
    second = write_notebook(
        tmp_path / "second.ipynb",
        REPORT_KERNEL,
        """\
        import sys
        assert 'leak' not in globals()
        assert 'code' not in globals()
        assert 'pandas' in sys.modules  # imports stay warm
        """,
    )

    nb1 = run(first, parameters={"code": "99213"})
    nb2 = run(second)

    assert kernel_pid(nb1) == kernel_pid(nb2) != os.getpid()
    injected = [c for c in nb1.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and '"99213"' in injected[0].source
    assert nb1.metadata.papermill.parameters == {"code": "99213"}
    assert nb2.metadata.papermill.exception is None
    assert [c.execution_count for c in nb2.cells] == [1, 2]
    saved = nbformat.read(tmp_path / "second-cptpub-warm-out.ipynb", as_version=4)
    assert saved.cells[0].outputs and saved.metadata.papermill.end_time


def test_reset_restores_process_state_and_matches_a_cold_kernel(tmp_path):
    (tmp_path / "local_helper.py").write_text("VALUE = 1\n")
    polluter = write_notebook(
        tmp_path / "polluter.ipynb",
        REPORT_KERNEL,
        """\
        import logging, sys, warnings
        import matplotlib.pyplot as plt
        import pandas as pd
        import local_helper

        local_helper.VALUE = 2
        os.environ["CPTPUB_POLLUTED"] = "1"
        sys.argv.append("--polluted")
        sys.path.insert(0, "/polluted")
        warnings.simplefilter("error")
        handler = logging.StreamHandler()
        handler.name = "polluter"
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
        pd.set_option("display.max_rows", 3)
        plt.style.use("dark_background")
        plt.rcParams["font.size"] = 30
        figure = plt.figure()
        plt.switch_backend("agg")
        os.chdir("/")
        """,
    )
    checker = write_notebook(
        tmp_path / "checker.ipynb",
        REPORT_KERNEL,
        f"""\
        import logging, sys, warnings
        import matplotlib.pyplot as plt
        import pandas as pd
        import local_helper

        assert local_helper.VALUE == 1, "project module re-imported fresh"
        assert "CPTPUB_POLLUTED" not in os.environ
        assert "--polluted" not in sys.argv and "/polluted" not in sys.path
        assert os.getcwd() == {str(tmp_path)!r}
        assert ("error", None, Warning, None, 0) not in warnings.filters
        assert "polluter" not in [h.name for h in logging.root.handlers]
        assert pd.get_option("display.max_rows") == 60
        assert plt.get_fignums() == []
        """,
        "plt.plot([3, 1, 2])\nplt.title('same pixels')\nplt.show()",
    )

    polluted = run(polluter, cwd=tmp_path)
    warm = run(checker, cwd=tmp_path)
    cold = run(checker, engine="nbclient", cwd=tmp_path)

    assert kernel_pid(polluted) == kernel_pid(warm)
    assert os.getcwd() != "/"
    warm_png, cold_png = (nb.cells[-1].outputs[0].data["image/png"] for nb in (warm, cold))
    assert warm_png == cold_png, "rcParams, style and inline backend restored"


def test_cwd_is_set_per_notebook(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "marker.txt").write_text(name)
    notebook = write_notebook(tmp_path / "cwd.ipynb", REPORT_KERNEL, "print(open('marker.txt').read())")
    parent_cwd = os.getcwd()

    in_a = run(notebook, cwd=tmp_path / "a")
    in_b = run(notebook, cwd=tmp_path / "b")

    assert stdout(in_a).split()[-1] == "a" and stdout(in_b).split()[-1] == "b"
    assert kernel_pid(in_a) == kernel_pid(in_b)
    assert os.getcwd() == parent_cwd


def test_cell_error_raises_saves_output_and_keeps_kernel(tmp_path):
    failing = write_notebook(
        tmp_path / "failing.ipynb", REPORT_KERNEL, "raise ValueError('boom')", "print('unreachable')"
    )
    healthy = write_notebook(tmp_path / "healthy.ipynb", REPORT_KERNEL)

    with pytest.raises(PapermillExecutionError) as error:
        run(failing)
    after = run(healthy)

    assert error.value.ename == "ValueError" and error.value.evalue == "boom"
    saved = nbformat.read(tmp_path / "failing-cptpub-warm-out.ipynb", as_version=4)
    assert saved.metadata.papermill.exception is True
    assert any(o.output_type == "error" for c in saved.cells for o in c.get("outputs", []))
    assert "unreachable" not in stdout(saved)
    assert kernel_pid(saved) == kernel_pid(after), "an ordinary cell error leaves the kernel warm"


def test_kernel_that_dies_is_replaced(tmp_path):
    dying = write_notebook(tmp_path / "dying.ipynb", REPORT_KERNEL, "os._exit(1)", "print('unreachable')")
    healthy = write_notebook(tmp_path / "healthy.ipynb", REPORT_KERNEL)

    # The pid from a healthy run on the same warm kernel: output printed just before a kernel dies can be lost
    # with it (a notebook's cells go in one request, so it may still be queued in the kernel when it exits).
    dead_pid = kernel_pid(run(healthy))
    with pytest.raises(DeadKernelError):
        run(dying)
    assert process_gone(dead_pid)
    replacement = run(healthy)
    assert kernel_pid(replacement) != dead_pid

    # Killed while idle in the pool: noticed at the next checkout.
    os.kill(kernel_pid(replacement), signal.SIGKILL)
    assert process_gone(kernel_pid(replacement))
    assert kernel_pid(run(healthy)) not in (dead_pid, kernel_pid(replacement))


def test_timed_out_kernel_is_replaced(tmp_path):
    slow = write_notebook(tmp_path / "slow.ipynb", REPORT_KERNEL, "import time\ntime.sleep(60)")
    healthy = write_notebook(tmp_path / "healthy.ipynb", REPORT_KERNEL)

    with pytest.raises(CellTimeoutError):
        run(slow, execution_timeout=1)
    busy_pid = kernel_pid(nbformat.read(tmp_path / "slow-cptpub-warm-out.ipynb", as_version=4))

    assert kernel_pid(run(healthy)) != busy_pid
    assert process_gone(busy_pid)


def test_shutdown_warm_kernels_stops_kernel_and_removes_its_files(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb", REPORT_KERNEL)
    pid, connection_file, transport, ip = stdout(run(notebook)).split()[:4]

    assert transport == "ipc" and Path(connection_file).exists()
    shutdown_warm_kernels()

    assert process_gone(int(pid))
    assert not Path(connection_file).parent.exists()
    assert kernel_pid(run(notebook)) != int(pid)


def test_threads_of_one_worker_each_keep_their_own_kernel(tmp_path):
    notebook = write_notebook(
        tmp_path / "nb.ipynb", REPORT_KERNEL, "import time\nassert 'mine' not in globals()\nmine = 1\ntime.sleep(0.2)"
    )

    def job(i: int) -> tuple[str, int]:
        nb = pm.execute_notebook(notebook, tmp_path / f"out-{i}.ipynb", engine_name="cptpub-warm", progress_bar=False)
        return threading.current_thread().name, kernel_pid(nb)

    with ThreadPoolExecutor(2) as pool:
        pids_by_thread = set(pool.map(job, range(6)))

    assert len({thread for thread, _ in pids_by_thread}) == len(pids_by_thread)
    assert len({pid for _, pid in pids_by_thread}) == len(pids_by_thread)


def test_parallel_workers_get_separate_kernels_shut_down_at_exit(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb", REPORT_KERNEL)
    worker = textwrap.dedent(
        f"""\
        import os, papermill as pm
        output = os.path.join({str(tmp_path)!r}, f"out-{{os.getpid()}}.ipynb")
        for run in range(2):
            nb = pm.execute_notebook({str(notebook)!r}, output, engine_name="cptpub-warm", progress_bar=False)
            print("".join(o.text for o in nb.cells[0].outputs).strip())
        """
    )
    workers = [subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    reports = [[line.split() for line in w.communicate(timeout=60)[0].splitlines()] for w in workers]

    assert [w.returncode for w in workers] == [0, 0, 0]
    for first, second in reports:
        assert first == second, "each worker reuses its own kernel"
    pids = {int(pid) for (pid, _, _, _), _ in reports}
    socket_paths = {ip for (_, _, _, ip), _ in reports}
    assert len(pids) == 3 and len(socket_paths) == 3
    for (pid, connection_file, transport, _), _ in reports:
        assert transport == "ipc"
        assert process_gone(int(pid))
        assert not Path(connection_file).exists(), "atexit shut the kernel down cleanly"


# --- one reset per code, cptpub's modules, one write, one request ---------------------------------------------


def test_a_codes_notebooks_share_one_reset_and_the_next_code_gets_a_clean_kernel(tmp_path):
    first = write_notebook(
        tmp_path / "first.ipynb",
        REPORT_KERNEL,
        "import os, pandas\nos.environ['CPTPUB_SAME_CODE'] = '1'\npandas.set_option('display.max_rows', 3)\nmine = 1",
    )
    second = write_notebook(
        tmp_path / "second.ipynb",
        REPORT_KERNEL,
        """\
        import os, pandas
        print(os.environ.get("CPTPUB_SAME_CODE"), pandas.get_option("display.max_rows"))
        print("mine" in globals())
        """,
    )

    with code_run():  # one code: reset once, before its first notebook
        nb1, same_code = run(first), run(second)
    with code_run():  # the next code
        next_code = run(second)

    assert kernel_pid(nb1) == kernel_pid(same_code) == kernel_pid(next_code)
    assert stdout(same_code).split()[-3:] == ["1", "3", "False"], "process state shared, namespace not"
    assert stdout(next_code).split()[-3:] == ["None", "60", "False"], "nothing carries over to another code"
    assert [c.execution_count for c in same_code.cells] == [1, 2], "each notebook counts from 1"


def test_cptpub_modules_stay_imported_until_one_of_their_files_changes(tmp_path, monkeypatch):
    library = tmp_path / "lib"
    shutil.copytree(Path(cptpub.__file__).parent, library / "cptpub", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(library), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "own_module.py").write_text("VALUE = 1\n")
    notebook = write_notebook(
        tmp_path / "modules.ipynb",
        REPORT_KERNEL,
        f"""\
        import cptpub.sections, own_module
        # notebooks run on a module object: 1 the first time, 2 when the same one is kept (ids could be reused)
        for module in (cptpub.sections, own_module):
            module.RUNS = getattr(module, "RUNS", 0) + 1
        print(cptpub.sections.__file__.startswith({str(library)!r}), cptpub.sections.RUNS, own_module.RUNS)
        print(getattr(cptpub, "EDITED", "original"))
        """,
    )

    first, second = run(notebook, cwd=tmp_path), run(notebook, cwd=tmp_path)
    with (library / "cptpub" / "__init__.py").open("a") as source:
        source.write('\nEDITED = "edited"\n')
    third = run(notebook, cwd=tmp_path)

    lines = [stdout(nb).splitlines()[1:] for nb in (first, second, third)]
    (found, sections_1, own_1), (_, sections_2, own_2), (_, sections_3, _) = (line[0].split() for line in lines)
    assert kernel_pid(first) == kernel_pid(third) and found == "True"
    assert (sections_1, sections_2) == ("1", "2"), "unchanged cptpub is kept"
    assert own_1 == own_2 == "1", "the user's own modules are re-imported at every reset"
    assert sections_3 == "1" and lines[2][1] == "edited", "an edited file re-imports cptpub"
    assert lines[1][1] == "original"


def test_the_executed_notebook_is_written_once_and_kept_when_the_run_fails(tmp_path, monkeypatch):
    writes = []
    real_write = papermill.iorw.papermill_io.write

    def counted_write(buf, path, *args):
        writes.append(path)
        return real_write(buf, path, *args)

    monkeypatch.setattr(papermill.iorw.papermill_io, "write", counted_write)
    healthy = write_notebook(tmp_path / "healthy.ipynb", "x = 1", "print(x)", "x + 1")
    dying = write_notebook(tmp_path / "dying.ipynb", REPORT_KERNEL, "x = 1", "os._exit(3)", "print('unreachable')")

    run(healthy)
    assert writes == [str(tmp_path / "healthy-cptpub-warm-out.ipynb")], "one write, after the run"

    writes.clear()
    with pytest.raises(DeadKernelError):
        run(dying)
    assert len(writes) == 1
    kept = nbformat.read(tmp_path / "dying-cptpub-warm-out.ipynb", as_version=4)
    started = [i for i, c in enumerate(kept.cells) if c.metadata.papermill.start_time]
    assert started == [0, 1, 2] and kept.cells[2].execution_count == 3, "the cell the kernel died in"
    assert kept.metadata.papermill.end_time and "unreachable" not in stdout(kept)


def test_each_cell_records_its_start_end_and_duration_as_papermill_does(tmp_path):
    import dateutil.parser

    executed = run(write_notebook(tmp_path / "timed.ipynb", "import time", "time.sleep(0.2)", "x = 1"))
    for cell in executed.cells:
        times = cell.metadata.papermill
        started, ended = (dateutil.parser.parse(times[key]) for key in ("start_time", "end_time"))
        assert times.duration == (ended - started).total_seconds() and times.status == "completed"
    assert executed.cells[1].metadata.papermill.duration >= 0.2


OUTPUT_KINDS = [
    "print('out'); import sys; print('err', file=sys.stderr); print('more')",
    "from IPython.display import display, Markdown, clear_output\ndisplay(Markdown('*shown*'))\n"
    "clear_output(wait=True)\ndisplay({'text/plain': 'after clear'}, raw=True)",
    "from IPython.display import display\nh = display('first', display_id=True)\nh.update('updated')",
    "",
    "import pandas as pd\npd.DataFrame({'a': [1, 2]})",
    "x = 40\nx + 2",
    "print('before'); 1 / 0",
    "print('never')",
]


def test_one_request_per_notebook_records_the_same_cells_as_one_request_per_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in OUTPUT_KINDS]
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("Inline: `{python} 6 * 7`."))
    nbformat.write(nb, tmp_path / "kinds.ipynb")

    def recorded(engine):
        with pytest.raises(PapermillExecutionError) as error:
            run(tmp_path / "kinds.ipynb", engine=engine)
        executed = nbformat.read(tmp_path / f"kinds-{engine}-out.ipynb", as_version=4)
        cells = [
            (
                c.cell_type,
                c.source,
                c.get("execution_count"),
                c.get("outputs"),
                c.metadata.get("user_expressions"),
                c.metadata.get("papermill", {}).get("status"),
            )
            for c in executed.cells
        ]
        return (error.value.cell_index, error.value.ename, error.value.evalue), cells

    (warm_error, warm), (fresh_error, fresh) = recorded("cptpub-warm"), recorded("cptpub-fresh")

    assert warm == fresh
    assert warm_error == fresh_error == (7, "ZeroDivisionError", "division by zero")
    outputs = {source: outputs for _, source, _, outputs, _, _ in warm}
    assert outputs["x = 40\nx + 2"][0]["data"]["text/plain"] == "42"
    assert [o["output_type"] for o in outputs["print('before'); 1 / 0"]] == ["stream", "error"]
    assert outputs["print('never')"] == []
    inline = [expressions for _, _, _, _, expressions, _ in warm if expressions]
    assert inline == [[{"expression": "6 * 7", "result": {"status": "ok", "data": {"text/markdown": "42"}}}]]


def test_a_cell_that_blocks_the_timeout_signal_is_still_stopped(tmp_path):
    stubborn = write_notebook(
        tmp_path / "stubborn.ipynb",
        REPORT_KERNEL,
        "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\ntime.sleep(60)",
    )
    started = time.monotonic()
    with pytest.raises(CellTimeoutError):
        run(stubborn, execution_timeout=1)
    assert time.monotonic() - started < 30
    pid = kernel_pid(nbformat.read(tmp_path / "stubborn-cptpub-warm-out.ipynb", as_version=4))
    assert process_gone(pid), "the busy kernel is shut down"


def test_a_cell_that_catches_exceptions_cannot_swallow_its_timeout(tmp_path):
    swallower = write_notebook(
        tmp_path / "swallower.ipynb",
        "import time\ntry:\n    time.sleep(60)\nexcept Exception:\n    pass\nprint('swallowed')",
    )
    started = time.monotonic()
    with pytest.raises(CellTimeoutError):
        run(swallower, execution_timeout=1)
    assert time.monotonic() - started < 5, "stopped by the kernel's own timer, not the client's backstop"
    assert "swallowed" not in stdout(nbformat.read(tmp_path / "swallower-cptpub-warm-out.ipynb", as_version=4))
