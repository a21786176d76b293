"""A local worker process: ``python -m cptpub.batch.worker FD PROJECT_ROOT WORKER_ID``.

It reads tasks from the connection on file descriptor ``FD`` and sends back one outcome per task, until it gets
``None`` or the main process goes away. It runs the notebooks in its own process (unless a task names a kernel
engine) and writes the cell it is running to ``build/work/WORKER_ID/running-cell.json``
(``cptpub.running_cell``), which the executor reads if the worker dies or overruns a cell's timeout. After
an outcome that says the process is not fit for another task (``replace_worker``) it exits, and the executor
starts another. SIGTERM (the main process stopping early) abandons the task in hand. Either way, the worker's warm
kernel and its assembly engine's Pandoc are shut down before it exits.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path

# Installed modules a worker would import for nothing. jsonschema (imported by nbformat, which Papermill imports)
# builds rfc3987-syntax's Lark grammar at import when that package is installed (by jupyter-events): about 1 s of
# CPU per worker, for jsonschema's "iri" format checker, which nbformat never uses (its schemas have no string
# formats and it validates without a format checker). Marked absent here, jsonschema leaves that checker out.
UNUSED_MODULES = ("rfc3987_syntax",)


def skip_unused_imports() -> None:
    for name in UNUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: `import name` raises ImportError


_stopping = False  # SIGTERM arrived: finish with the task in hand (a cell may have caught the SystemExit) and exit


def _terminate(signum, frame):
    global _stopping
    _stopping = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one SystemExit only: let the clean-up below finish
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    fd, root, worker_id = int(argv[0]), Path(argv[1]), argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, _terminate)
    skip_unused_imports()
    conn = Connection(fd)
    from cptpub.batch.tasks import run_task
    from cptpub.execute.inprocess import set_running_cell_file
    from cptpub.project import Project
    from cptpub.running_cell import FILE_NAME

    project = Project(root)
    workdir = project.build_dir / "work" / worker_id
    workdir.mkdir(parents=True, exist_ok=True)
    set_running_cell_file(workdir / FILE_NAME)
    try:
        while not _stopping:
            try:
                task = conn.recv()
            except (EOFError, OSError):  # the main process is gone
                break
            if task is None:
                break
            outcome = run_task(project, task, workdir / task.code, worker=worker_id)
            try:
                conn.send(outcome)
            except OSError:
                break
            if outcome.replace_worker:
                break
    finally:
        try:
            from cptpub.batch.tasks import close_assembly_engines
            from cptpub.execute.warm import shutdown_warm_kernels

            close_assembly_engines()
            shutdown_warm_kernels()
        finally:
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
