"""What a notebook run may change in a Python process, and putting it back: the reset both warm engines share.

``ProcessState()`` snapshots the process as it is (a fresh kernel, or a batch worker before its first notebook);
``reset(shell, cwd)`` puts it back before another code's notebooks, ``next_notebook(shell, cwd)`` only gives the
next notebook of the same code a new user namespace and execution count. ``snapshot()`` takes the state to put back
again (the in-process engine's worker, before each code: what its notebooks change is put back after them). Used by
the warm kernel (``cptpub.execute.warm``), where this file's source runs as module ``_cptpub_warm`` (outside the
``cptpub`` package, so the reset never forgets itself), and by the in-process engine (``cptpub.execute.inprocess``).
Standard library only: it is the first thing a kernel runs.

A reset restores: user namespace, execution count, cwd, sys.argv, sys.path, os.environ, warning filters, root
logging, matplotlib figures, backend and rcParams, pandas options, and modules imported from outside the Python
installation. Installed packages stay in sys.modules: that is the point. Not reset: threads or files a notebook
leaves open, state mutated inside other third-party modules, IPython extensions/event hooks, global RNG state.

Project modules: the user's own modules (a helper beside the notebooks) are forgotten at every reset and
re-imported fresh, so neither their state nor stale source carries over. cptpub's own modules are the exception
while their files are unchanged: re-importing ``cptpub.sections`` (pydantic models, the analysis code) cost more than
the rest of the reset, and these modules keep no per-code state (the only cache, the payer catalogue's, is keyed by
the file's path and mtime). A reset compares each cptpub module's file (mtime, size) with what the first reset after
its import saw; when one changed, all of cptpub is forgotten and re-imported, since its modules import names from
each other. (An edit made while the notebook that first imported the module was still running is seen as the
baseline.) Modules the process had when the snapshot was taken are never forgotten.

Garbage collection: what survives a reset (modules, their caches) is long-lived. ``freeze="every reset"`` moves it
out of the collector's generations (``gc.freeze``) at each reset, so the full collection of IPython's namespace
reset scans only what the notebooks made since (it cost ~60 ms per notebook with pandas and matplotlib loaded): right
for a kernel, where nothing but modules survives a reset. ``freeze="once"`` freezes only at the first reset (after
the first code's imports), for a process that keeps objects of its own alive across resets (a batch worker): a
frozen object in a reference cycle is never collected, so freezing at every reset could keep each code's garbage.
"""

from __future__ import annotations

import gc
import logging
import os
import site
import sys
import sysconfig
import warnings

LIBRARY = "cptpub"  # kept across resets while its files are unchanged
MODULE_ATTRIBUTES = ("__doc__", "__loader__", "__package__", "__spec__")  # of the shell's ``__main__`` module


class ProcessState:
    """The state of this process when it was created, and how to put it back."""

    def __init__(self, freeze: str = "every reset") -> None:
        self.freeze = freeze
        self.frozen = False
        self.installed = tuple(
            os.path.join(path, "")
            for path in {
                sysconfig.get_path("stdlib"),
                sysconfig.get_path("platstdlib"),
                *site.getsitepackages(),
                site.getusersitepackages(),
            }
        )
        self.modules = set(sys.modules)
        self.library_files: dict[str, tuple] = {}  # module name -> (path, mtime_ns, size) when a reset first saw it
        self.snapshot()

    def snapshot(self) -> None:
        """Take the state ``restore`` puts back (all but the modules) as it is now."""
        self.argv, self.path, self.environ = list(sys.argv), list(sys.path), dict(os.environ)
        self.warning_filters = list(warnings.filters)
        self.root_level, self.root_handlers = logging.root.level, list(logging.root.handlers)

    def reset(self, shell, cwd: str) -> None:
        """Before another code's notebooks: a new namespace in ``cwd``, and the rest of the process put back."""
        self.next_notebook(shell, cwd)
        self.restore(shell)

    def next_notebook(self, shell, cwd: str) -> None:
        """Between notebooks of one code: a new user namespace and execution count, in ``cwd``."""
        # First: the previous notebook's folder may have been deleted (a rebuild clears it), and IPython's reset
        # reads the working directory.
        os.chdir(cwd)
        module_attributes = {name: shell.user_ns[name] for name in MODULE_ATTRIBUTES if name in shell.user_ns}
        shell.reset(new_session=False)
        # IPython's reset also drops what a new shell's namespace starts with: its module's attributes (without
        # ``__spec__``, multiprocessing's spawn fails in this process, whose ``__main__`` is that module) and the
        # output history's ``_``, ``__``, ``___``.
        shell.user_ns.update(module_attributes, _="", __="", ___="")
        shell.execution_count = 1
        # A new notebook's input history (``In``) starts empty, as in a fresh kernel; IPython keeps it across a reset
        # that opens no new session, and with the history database off nothing ever empties its write cache: both
        # grew by every cell ever run (~1 KB a cell).
        history = shell.history_manager
        history.input_hist_parsed[:] = [""]
        history.input_hist_raw[:] = [""]
        if not history.enabled:
            with history.db_input_cache_lock:
                history.db_input_cache.clear()
            with history.db_output_cache_lock:
                history.db_output_cache.clear()

    def restore(self, shell) -> None:
        """Everything but the namespace and the working folder, as it was at the snapshot."""
        sys.argv[:] = self.argv
        sys.path[:] = self.path
        os.environ.clear()
        os.environ.update(self.environ)
        warnings.resetwarnings()  # also invalidates the "already warned" registries
        warnings.filters[:] = self.warning_filters  # type: ignore[index]  # a list at run time
        logging.root.setLevel(self.root_level)
        logging.root.handlers[:] = self.root_handlers
        self._reset_matplotlib(shell)
        if "pandas" in sys.modules:
            with warnings.catch_warnings():  # resetting deprecated options warns
                warnings.simplefilter("ignore")
                sys.modules["pandas"].reset_option("all")
        self._forget_project_modules()
        if self.freeze == "every reset" or not self.frozen:
            gc.freeze()
            self.frozen = True

    def _reset_matplotlib(self, shell) -> None:
        mpl = sys.modules.get("matplotlib")
        if mpl is None:
            return
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")
            backend = self.environ.get("MPLBACKEND")  # ipykernel sets it to the inline backend by default
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

    def _project_file(self, module) -> str | None:
        try:
            path = module.__file__
        except Exception:  # built-in, namespace or lazy placeholder module
            return None
        return path if path and not os.path.abspath(path).startswith(self.installed) else None

    def _forget_project_modules(self) -> None:
        project = {}
        for name, module in list(sys.modules.items()):
            if name not in self.modules:
                path = self._project_file(module)
                if path is not None:
                    project[name] = path
        library = {name: path for name, path in project.items() if name.split(".")[0] == LIBRARY}
        changed = False
        for name, path in library.items():
            state = _file_state(path)
            changed |= self.library_files.setdefault(name, state) != state
        if changed:  # one module edited: all of them, since they import names from each other
            self.library_files.clear()
        for name in project:
            if changed or name not in library:
                del sys.modules[name]


def _file_state(path: str) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, stat.st_mtime_ns, stat.st_size)
