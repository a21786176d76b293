"""Papermill engine that runs notebooks on a kernel each worker keeps warm.

``papermill.execute_notebook(..., engine_name="cptpub-warm")`` runs the notebook like the default
nbclient engine, but on an IPython kernel kept alive per (process, thread, kernel name), so pandas,
matplotlib and duckdb are imported once per worker instead of once per notebook, and with all of the
notebook's cells in one execute request (``cptpub.execute.one_request``).

Before each code's notebooks the kernel is reset, and between a code's notebooks it only gets a new user
namespace and execution count (``cptpub.execute.process_state``, which lists what is reset and what is not, and
``cptpub.execute.code_run``). Notebooks of one code share the rest (imports, options, rcParams), as they would in
one Quarto document; notebooks of two codes never do. A notebook run outside ``code_run()`` gets the full reset.

A kernel is replaced by a fresh one whenever there is doubt: it is not alive, its reset fails or
times out, or the notebook run raised anything (cell timeout, dead kernel, interrupt). An ordinary
exception inside a cell is reported by the kernel, leaves it healthy, and keeps it warm.

Parallel workers: jupyter_client picks TCP ports by binding port 0 and releasing it, so kernels
started at the same moment by different processes can race for a port ("Address already in use").
Warm kernels use the ipc transport (Unix sockets) inside a private ``mkdtemp`` directory, so their
addresses cannot collide. Where ipc is unavailable (Windows) they use TCP and retry the start.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import shutil
import tempfile
import threading

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError

# Papermill imports this module while registering engine entry points, i.e. while papermill.engines
# is still initialising: import only from papermill modules that are fully loaded by then.
from papermill.log import logger

from cptpub.execute import process_state
from cptpub.execute.code_run import CodeRun, current_run
from cptpub.execute.inline import client_options
from cptpub.execute.kernel_death import KernelDied, KernelWatch
from cptpub.execute.manager import WriteOnceEngine
from cptpub.execute.one_request import OneRequestNotebookClient

RESET_TIMEOUT = 10  # seconds; an idle, healthy kernel answers in milliseconds
USE_IPC = os.name == "posix"  # Unix sockets cannot race for ports; Windows has no ipc: TCP + retries
START_ATTEMPTS = 1 if USE_IPC else 3

# Installed once right after start, so that its snapshot is the state of a fresh kernel: the source of
# ``cptpub.execute.process_state`` as module ``_cptpub_warm`` (not a user variable, so the reset keeps it).
_INSTALL_HELPER = f"""
import sys, types
_cptpub_warm = types.ModuleType("_cptpub_warm")
exec({inspect.getsource(process_state)!r}, _cptpub_warm.__dict__)
_cptpub_warm.STATE = _cptpub_warm.ProcessState(freeze="every reset")
sys.modules["_cptpub_warm"] = _cptpub_warm
del sys, types, _cptpub_warm
"""


class _WarmKernel:
    """A started kernel, its client, and the private directory holding its sockets."""

    def __init__(self, kernel_name: str, start_timeout: float) -> None:
        self.kernel_name = kernel_name
        self.pool_key = _pool_key(kernel_name)
        self.directory = tempfile.mkdtemp(prefix="cptpub-kernel-")
        if USE_IPC:
            self.km = AsyncKernelManager(
                kernel_name=kernel_name,
                transport="ipc",
                ip=os.path.join(self.directory, "ipc"),
                connection_file=os.path.join(self.directory, "connection.json"),
            )
        else:
            self.km = AsyncKernelManager(kernel_name=kernel_name)
        self.kc: AsyncKernelClient | None = None
        self.code_run: CodeRun | None = None  # the ``code_run`` it was last reset for
        try:
            # No IPython history database: no SQLite work per cell, no lock shared between kernels.
            run_sync(self.km.start_kernel)(extra_arguments=["--HistoryManager.enabled=False"])
            self.kc = self.km.client()
            self.kc.allow_stdin = False
            self.kc.start_channels()
            run_sync(self.kc.wait_for_ready)(timeout=start_timeout)
            self._run(_INSTALL_HELPER)
        except BaseException:
            self.shutdown(now=True)
            raise

    @classmethod
    def start(cls, kernel_name: str, start_timeout: float) -> _WarmKernel:
        for _ in range(START_ATTEMPTS - 1):
            try:
                return cls(kernel_name, start_timeout)
            except Exception as exc:  # a TCP port taken between choosing and binding it
                logger.warning("Starting kernel %s failed (%s), retrying", kernel_name, exc)
        return cls(kernel_name, start_timeout)

    def reset(self, cwd: str, *, full: bool = True) -> None:
        """Reset the kernel for another code (``full``) or for the next notebook of the same code."""
        if not run_sync(self.km.is_alive)():
            raise RuntimeError("kernel is not alive")
        step = "reset" if full else "next_notebook"
        self._run(f"__import__('_cptpub_warm').STATE.{step}(__import__('IPython').get_ipython(), {cwd!r})")

    def _run(self, code: str) -> None:
        """Run bookkeeping code silently; raise if it fails or the kernel does not answer in time.

        Waiting for the reply also drains iopub messages left over from the previous notebook.
        """
        assert self.kc is not None
        reply = run_sync(self.kc.execute_interactive)(
            code, silent=True, store_history=False, timeout=RESET_TIMEOUT, output_hook=lambda msg: None
        )
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"{content.get('ename')}: {content.get('evalue')}")

    def shutdown(self, now: bool = False) -> None:
        """Stop the kernel (politely unless ``now``) and remove its files; never raises."""
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            run_sync(self.km.shutdown_kernel)(now=now)
        except Exception as exc:
            logger.warning("Shutting down kernel %s failed: %s", self.kernel_name, exc)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


# Idle warm kernels by (pid, thread id, kernel name). Threads of one worker (e.g. a dask worker with
# several threads) may run notebooks concurrently, so each thread keeps its own kernel; the pid keeps
# a forked child off its parent's kernels. A kernel in use is not in the pool, so one that fails
# mid-notebook is never handed out again.
_idle: dict[tuple[int, int, str], _WarmKernel] = {}
_idle_lock = threading.Lock()


def _pool_key(kernel_name: str) -> tuple[int, int, str]:
    return os.getpid(), threading.get_ident(), kernel_name


def _checkout(kernel_name: str, start_timeout: float) -> _WarmKernel:
    """Return this thread's warm kernel for ``kernel_name``, reset and moved to the current cwd."""
    run = current_run()
    with _idle_lock:
        kernel = _idle.pop(_pool_key(kernel_name), None)
    if kernel is not None:
        try:
            kernel.reset(os.getcwd(), full=run is None or kernel.code_run is not run)
            kernel.code_run = run
            return kernel
        except Exception as exc:
            logger.warning("Warm kernel %s unusable (%s), starting a fresh one", kernel_name, exc)
            kernel.shutdown(now=True)
    kernel = _WarmKernel.start(kernel_name, start_timeout)  # starts clean, in the current cwd
    kernel.code_run = run
    return kernel


def _checkin(kernel: _WarmKernel) -> None:
    with _idle_lock:
        _idle[kernel.pool_key] = kernel


def shutdown_warm_kernels() -> None:
    """Shut down this process's idle warm kernels. Also runs at interpreter exit."""
    with _idle_lock:
        mine = [key for key in _idle if key[0] == os.getpid()]
        kernels = [_idle.pop(key) for key in mine]
    for kernel in kernels:
        kernel.shutdown()


atexit.register(shutdown_warm_kernels)


@functools.cache
def is_python_kernel(kernel_name: str) -> bool:
    return KernelSpecManager().get_kernel_spec(kernel_name).language.lower() == "python"


class WarmKernelEngine(WriteOnceEngine):
    """Papermill engine ``cptpub-warm``: cptpub's client (inline code, table outputs) on a reused, reset kernel."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        if not is_python_kernel(kernel_name):  # the reset helper needs an IPython kernel
            return super().execute_managed_notebook(
                nb_man,
                kernel_name,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                start_timeout=start_timeout,
                execution_timeout=execution_timeout,
                **kwargs,
            )
        kernel = _checkout(kernel_name, start_timeout)
        # Same client options as NBClientEngine, plus our kernel manager and client.
        options = client_options(
            kwargs, kernel_name, log_output, stdout_file, stderr_file, start_timeout, execution_timeout
        )
        client = OneRequestNotebookClient(nb_man, km=kernel.km, **options)
        client.kc = kernel.kc  # nbclient only starts a kernel/client when none is set
        client.progress_path = os.path.join(kernel.directory, "progress")
        watch = KernelWatch(kernel.km)
        try:
            with watch:
                client.execute()
        except DeadKernelError as exc:
            cause = watch.cause_of_death()
            kernel.shutdown(now=True)
            raise KernelDied(cause) from exc
        except BaseException:
            kernel.shutdown(now=True)  # timed out, died or interrupted: possibly still busy
            raise
        _checkin(kernel)
        return nb_man.nb
