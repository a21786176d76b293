"""Executors: where the per-code tasks run. A small registry: ``local`` (worker processes on this machine) and
``dask`` (a ``dask.distributed`` cluster, see :mod:`cptpub.batch.dask_executor`).

Every executor has the same shape::

    executor.run(tasks, on_outcome, stopped)

It runs the tasks, calls ``on_outcome(outcome)`` in the calling thread as each finishes (in completion order) and
returns when all are done, or as soon as ``stopped()`` is true: then work in flight is abandoned and its results
are never reported, so an interrupted edition never reaches ``dist/``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from cptpub.batch.tasks import EditionOutcome, EditionTask, Failure
from cptpub.errors import UsageError
from cptpub.project import STORE_ENV, Project

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import psutil

OnOutcome = Callable[[EditionOutcome], None]
Stopped = Callable[[], bool]

POLL_SECONDS = 0.2  # how often a waiting executor checks ``stopped()``
STOP_GRACE_SECONDS = 15  # a stopped worker has this long to shut its kernel down before it is killed


class Executor(Protocol):
    name: str

    def describe(self) -> str: ...

    def run(self, tasks: Sequence[EditionTask], on_outcome: OnOutcome, stopped: Stopped) -> None: ...


EXECUTORS = {
    "local": "cptpub.batch.executors:LocalExecutor",
    "dask": "cptpub.batch.dask_executor:DaskExecutor",
}


def check_executor(name: str, scheduler: str | None = None) -> None:
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r}", hint=f"choose one of {', '.join(EXECUTORS)}")
    if scheduler and name != "dask":
        raise UsageError("--scheduler needs --executor dask")


def get_executor(name: str, project: Project, *, jobs: int, scheduler: str | None = None) -> Executor:
    """The executor called ``name`` (imported only when chosen: ``dask`` is a heavy import)."""
    check_executor(name, scheduler)
    module, _, attr = EXECUTORS[name].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    return factory(project, jobs=jobs, scheduler=scheduler)


# --- local: worker processes on this machine ------------------------------------------------------------------


@dataclass
class _Worker:
    worker_id: str
    process: subprocess.Popen
    conn: Connection
    log: Path
    running_cell: Path  # the cell it runs (cptpub.running_cell), when it runs notebooks in process
    peak_rss: int = 0  # bytes, sampled while it builds an edition
    sampled: psutil.Process | None = None  # its psutil handle, made at the first sample


class LocalExecutor:
    """``jobs`` worker processes on this machine, one task at a time each.

    Workers are fresh interpreters (``python -m cptpub.batch.worker``), so nothing of the main process (or of a
    script that called it) is inherited. Worker ``wN`` builds in ``build/work/wN/<code>/`` and logs to
    ``build/work/wN/worker.log``; it runs the notebooks in its own process (or keeps one warm kernel for all its
    codes, which it shuts down when it exits). Workers sit in their own process group, so the terminal's Ctrl-C
    reaches only the main process, which then stops them in order.

    A worker that dies is replaced, and its edition fails: with the notebook and cell it was running when it died
    in a cell (its ``running-cell.json``; memory use is sampled to tell an out-of-memory kill), else with its log.
    A worker whose cell runs ``TIMEOUT_GRACE`` seconds past its timeout (the cell caught or blocked the timer, or
    sits in C code) is killed and replaced, its edition failing with that cell. A worker that asks to be replaced
    (``EditionOutcome.replace_worker``) exits after its outcome and is replaced. Only deaths outside a cell count
    towards giving up (a broken installation kills every worker): a notebook that kills its process fails its own
    edition and nothing else.
    """

    name = "local"

    def __init__(self, project: Project, *, jobs: int, scheduler: str | None = None) -> None:
        self.project = project
        self.jobs = max(1, jobs)

    def describe(self) -> str:
        return f"{self.jobs} local worker process{'es' if self.jobs != 1 else ''}"

    def _start(self, worker_id: str, *, replacing: bool = False) -> _Worker:
        from cptpub.running_cell import FILE_NAME

        folder = self.project.build_dir / "work" / worker_id
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "worker.log"  # a new log per batch; a replacement worker appends to its predecessor's
        running_cell = folder / FILE_NAME
        running_cell.unlink(missing_ok=True)  # a predecessor's: not this worker's cell
        ours, theirs = socket.socketpair()
        try:
            with log.open("ab" if replacing else "wb") as log_file:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "cptpub.batch.worker",
                        str(theirs.fileno()),
                        str(self.project.root),
                        worker_id,
                    ],
                    env={**os.environ, STORE_ENV: str(self.project.store_path)},  # the batch's pinned store
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    pass_fds=[theirs.fileno()],
                    process_group=0,  # out of the terminal's foreground group: Ctrl-C is for the main process
                )
        finally:
            theirs.close()
        from multiprocessing.connection import Connection

        return _Worker(worker_id, process, Connection(ours.detach()), log, running_cell)

    def run(self, tasks: Sequence[EditionTask], on_outcome: OnOutcome, stopped: Stopped) -> None:
        from multiprocessing.connection import Connection, wait  # not on the import path of a no-op build

        pending = deque(tasks)
        if not pending:
            return
        idle: list[_Worker] = [self._start(f"w{i}") for i in range(min(self.jobs, len(pending)))]
        busy: dict[Connection, tuple[_Worker, EditionTask, float]] = {}
        everyone = list(idle)
        deaths = 0  # workers lost outside a cell since the last finished task: a broken installation kills them all

        def replace(worker: _Worker) -> None:
            everyone.remove(worker)
            if pending and deaths <= max(3, self.jobs):
                replacement = self._start(worker.worker_id, replacing=True)
                everyone.append(replacement)
                idle.append(replacement)

        def dispatch() -> None:
            while idle and pending and not stopped():
                worker = idle.pop()
                task = pending.popleft()
                worker.peak_rss = 0
                busy[worker.conn] = (worker, task, time.perf_counter())
                with contextlib.suppress(OSError):  # a worker already gone shows up as lost below
                    worker.conn.send(task)

        try:
            while (pending or busy) and not stopped():
                dispatch()
                if not busy:
                    for task in pending:
                        on_outcome(_failed(task, "no worker process could run; see the logs in build/work/w*/"))
                    pending.clear()
                    break
                ready = cast(list[Connection], wait(list(busy), timeout=POLL_SECONDS))
                for conn in ready:
                    worker, task, started = busy.pop(conn)
                    try:
                        outcome: EditionOutcome = conn.recv()
                    except (EOFError, OSError):
                        outcome, in_cell = self._lost(worker, task, started)
                        deaths += 0 if in_cell else 1
                        replace(worker)
                    else:
                        deaths = 0
                        if outcome.replace_worker:
                            self._wait_for_exit(worker)
                            replace(worker)
                        else:
                            idle.append(worker)
                    dispatch()  # its next task first: the worker builds while this edition is published
                    on_outcome(outcome)  # a finished edition is published even if a stop was just requested
                for conn, (worker, task, started) in list(busy.items()):
                    overrun = self._watch(worker, task, started)
                    if overrun is not None:
                        del busy[conn]
                        replace(worker)
                        on_outcome(overrun)
        finally:
            self._shutdown(everyone, busy_conns=set(busy))

    def _watch(self, worker: _Worker, task: EditionTask, started: float) -> EditionOutcome | None:
        """Sample a busy worker's memory; kill it when its cell is past its timeout and grace: its failed outcome."""
        import psutil

        from cptpub.running_cell import TIMEOUT_GRACE, read_running_cell

        with contextlib.suppress(psutil.Error):
            if worker.sampled is None:
                worker.sampled = psutil.Process(worker.process.pid)
            worker.peak_rss = max(worker.peak_rss, worker.sampled.memory_info().rss)
        cell = read_running_cell(worker.running_cell)
        deadline = cell.get("deadline")
        if not isinstance(deadline, int | float) or time.monotonic() < deadline + TIMEOUT_GRACE:
            return None
        worker.process.kill()
        worker.process.wait()
        worker.conn.close()
        return _failed(
            task,
            f"the cell ran longer than the per-cell timeout of {cell.get('timeout'):g} s and could not be stopped "
            f"from inside (it caught or blocked the timer): worker {worker.worker_id} was killed and replaced",
            seconds=time.perf_counter() - started,
            worker=worker.worker_id,
            notebook=cell.get("notebook"),
            cell=cell.get("cell"),
        )

    def _lost(self, worker: _Worker, task: EditionTask, started: float) -> tuple[EditionOutcome, bool]:
        """The failed outcome of a worker that died, and whether it died in a notebook cell."""
        from cptpub.execute.kernel_death import describe_exit, memory_limit
        from cptpub.running_cell import read_running_cell

        try:
            status = worker.process.wait(5)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            status = worker.process.wait()
        worker.conn.close()
        seconds = time.perf_counter() - started
        cell = read_running_cell(worker.running_cell)
        if cell.get("notebook"):
            how = describe_exit(status, worker.peak_rss, memory_limit(), process="the worker process running it")
            message = f"{how}; no executed notebook was kept; worker {worker.worker_id}'s log is {worker.log}"
            outcome = _failed(
                task,
                message,
                seconds=seconds,
                worker=worker.worker_id,
                notebook=cell["notebook"],
                cell=cell.get("cell"),
            )
            return outcome, True
        message = f"worker {worker.worker_id} exited (status {status}) while building CPT {task.code}"
        message += f"; its log is {worker.log}"
        return _failed(task, message, seconds=seconds, worker=worker.worker_id), False

    @staticmethod
    def _wait_for_exit(worker: _Worker) -> None:
        """A worker that asked to be replaced exits by itself once its kernel and Pandoc are stopped."""
        try:
            worker.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.conn.close()

    @staticmethod
    def _shutdown(workers: list[_Worker], busy_conns: set[Connection]) -> None:
        """Idle workers get a polite stop; busy ones (only when stopping early) SIGTERM, which makes them abandon
        the task and shut their kernels down. Anything still alive after the grace period is killed."""
        for worker in workers:
            if worker.process.poll() is not None:
                continue
            if worker.conn in busy_conns:
                worker.process.terminate()
            else:
                try:
                    worker.conn.send(None)
                except OSError:
                    worker.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.conn.close()


def _failed(
    task: EditionTask,
    message: str,
    *,
    seconds: float = 0.0,
    worker: str = "",
    notebook: str | None = None,
    cell: int | None = None,
) -> EditionOutcome:
    return EditionOutcome(
        code=task.code,
        key=task.key,
        seconds=round(seconds, 3),
        worker=worker,
        failure=Failure(message=message, notebook=notebook, cell=cell),
    )
