"""The cptpub-warm papermill engine, on real kernels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

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

    with pytest.raises(DeadKernelError):
        run(dying)
    dead_pid = kernel_pid(nbformat.read(tmp_path / "dying-cptpub-warm-out.ipynb", as_version=4))
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
