"""Papermill engine that runs notebooks on a kernel each worker keeps warm.

``papermill.execute_notebook(..., engine_name="cptpub-warm")`` runs the notebook like the default
nbclient engine, but on an IPython kernel kept alive per (process, thread, kernel name), so pandas,
matplotlib and duckdb are imported once per worker instead of once per notebook, and with all of the
notebook's cells in one execute request (``cptpub.execute.one_request``).

Before each code's notebooks the kernel is reset (see ``_KERNEL_HELPER``): user namespace, execution
count, cwd, sys.argv, sys.path, os.environ, warning filters, root logging, matplotlib figures and
rcParams, pandas options, and modules imported from outside the Python installation. Installed
packages stay in sys.modules: that is the point. Not reset: threads or files a notebook leaves open,
state mutated inside other third-party modules, IPython extensions/event hooks, global RNG state.

One reset per code: ``run_sections`` runs a code's notebooks inside ``code_run()``, and between them
the kernel only gets a new user namespace and execution count (``next_notebook``). Notebooks of one
code share the rest (imports, options, rcParams), as they would in one Quarto document; notebooks of
two codes never do. A notebook run outside ``code_run()`` gets the full reset.

Project modules: the user's own modules (a helper beside the notebooks) are forgotten at every reset
and re-imported fresh, so neither their state nor stale source carries over. cptpub's own modules are
the exception while their files are unchanged: re-importing ``cptpub.sections`` (pydantic models,
the analysis code) cost more than the rest of the reset, and these modules keep no per-code state
(the only cache, the payer catalogue's, is keyed by the file's path and mtime). A reset compares each
cptpub module's file (mtime, size) with what the first reset after its import saw; when one changed,
all of cptpub is forgotten and re-imported, since its modules import names from each other. (An edit
made while the notebook that first imported the module was still running is seen as the baseline.)
After a reset, what is left (modules and their caches) is frozen out of the garbage collector's
generations (``gc.freeze``), so the full collection in every IPython namespace reset scans only what
the notebooks made since: it cost ~60 ms per notebook with pandas and matplotlib loaded.

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
import contextlib
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError

# Papermill imports this module while registering engine entry points, i.e. while papermill.engines
# is still initialising: import only from papermill modules that are fully loaded by then.
from papermill.log import logger

from cptpub.execute.inline import client_options
from cptpub.execute.kernel_death import KernelDied, KernelWatch
from cptpub.execute.manager import WriteOnceEngine
from cptpub.execute.one_request import OneRequestNotebookClient

RESET_TIMEOUT = 10  # seconds; an idle, healthy kernel answers in milliseconds
USE_IPC = os.name == "posix"  # Unix sockets cannot race for ports; Windows has no ipc: TCP + retries
START_ATTEMPTS = 1 if USE_IPC else 3

# Runs inside the kernel as module ``_cptpub_warm``, installed once right after start so that its
# baseline snapshot is the state of a fresh kernel. Not a user variable, so the reset keeps it.
_KERNEL_HELPER = r"""
import gc, logging, os, site, sys, sysconfig, warnings

_INSTALLED = tuple(os.path.join(path, "") for path in {
    sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"),
    *site.getsitepackages(), site.getusersitepackages(),
})
_LIBRARY = "cptpub"  # kept across resets while its files are unchanged (see cptpub.execute.warm)
_ARGV, _PATH, _ENVIRON = list(sys.argv), list(sys.path), dict(os.environ)
_WARNING_FILTERS = list(warnings.filters)
_ROOT_LEVEL, _ROOT_HANDLERS = logging.root.level, list(logging.root.handlers)
_MODULES = set(sys.modules)
_library_files = {}  # module name -> (path, mtime_ns, size) of its file when a reset first saw it


def reset(cwd):
    from IPython import get_ipython

    shell = get_ipython()
    next_notebook(cwd)
    sys.argv[:] = _ARGV
    sys.path[:] = _PATH
    os.environ.clear()
    os.environ.update(_ENVIRON)
    warnings.resetwarnings()  # also invalidates the "already warned" registries
    warnings.filters[:] = _WARNING_FILTERS
    logging.root.setLevel(_ROOT_LEVEL)
    logging.root.handlers[:] = _ROOT_HANDLERS
    _reset_matplotlib(shell)
    if "pandas" in sys.modules:
        with warnings.catch_warnings():  # resetting deprecated options warns
            warnings.simplefilter("ignore")
            sys.modules["pandas"].reset_option("all")
    _forget_project_modules()
    # What survives a reset is long-lived (modules, their caches): move it out of the garbage collector's sight,
    # so the next collections (IPython's reset runs a full one) only scan what the notebooks create.
    gc.freeze()


def next_notebook(cwd):  # between notebooks of one code: a new user namespace and execution count, in cwd
    from IPython import get_ipython

    shell = get_ipython()
    # First: the previous notebook's folder may have been deleted (a rebuild clears it), and IPython's reset
    # reads the working directory.
    os.chdir(cwd)
    shell.reset(new_session=False)
    shell.execution_count = 1


def _reset_matplotlib(shell):
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
        backend = _ENVIRON.get("MPLBACKEND")  # ipykernel sets it to the inline backend by default
        if backend and plt.get_backend().lower() != backend.lower():
            plt.switch_backend(backend)
            if "matplotlib_inline" in backend:
                # The inline backend hooks figure display into IPython only when it is imported as the
                # active backend, which a switch back from another backend does not count as.
                sys.modules["matplotlib_inline.backend_inline"].configure_inline_support(shell, backend)
    mpl.rc_file_defaults()
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is not None:  # the inline backend layers its own rc over the rc file
        mpl.rcParams.update(inline.InlineBackend.instance().rc)


def _project_file(module):
    try:
        path = module.__file__
    except Exception:  # built-in, namespace or lazy placeholder module
        return None
    return path if path and not os.path.abspath(path).startswith(_INSTALLED) else None


def _file_state(path):
    try:
        stat = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, stat.st_mtime_ns, stat.st_size)


def _forget_project_modules():
    project = {}
    for name, module in list(sys.modules.items()):
        if name not in _MODULES:
            path = _project_file(module)
            if path is not None:
                project[name] = path
    library = {name: path for name, path in project.items() if name.split(".")[0] == _LIBRARY}
    changed = False
    for name, path in library.items():
        state = _file_state(path)
        changed |= _library_files.setdefault(name, state) != state
    if changed:  # one module edited: all of them, since they import names from each other
        _library_files.clear()
    for name in project:
        if changed or name not in library:
            del sys.modules[name]
"""

_INSTALL_HELPER = f"""
import sys, types
_cptpub_warm = types.ModuleType("_cptpub_warm")
exec({_KERNEL_HELPER!r}, _cptpub_warm.__dict__)
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
        self.code_run: object | None = None  # the ``code_run`` it was last reset for
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
        self._run(f"__import__('_cptpub_warm').{'reset' if full else 'next_notebook'}({cwd!r})")

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


_current_run = threading.local()


@contextlib.contextmanager
def code_run() -> Iterator[None]:
    """Notebooks run in this block (in this thread) are one code's: its warm kernel is reset once, before the first
    of them; the others only get a new namespace and execution count (``next_notebook``)."""
    previous = getattr(_current_run, "token", None)
    _current_run.token = object()
    try:
        yield
    finally:
        _current_run.token = previous


def _checkout(kernel_name: str, start_timeout: float) -> _WarmKernel:
    """Return this thread's warm kernel for ``kernel_name``, reset and moved to the current cwd."""
    run = getattr(_current_run, "token", None)
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
def _is_python_kernel(kernel_name: str) -> bool:
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
        if not _is_python_kernel(kernel_name):  # the reset helper needs an IPython kernel
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
