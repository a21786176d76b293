"""The ``dask`` executor: the same per-code task on a ``dask.distributed`` cluster.

Without an address it starts a ``LocalCluster`` of single-threaded worker processes (``-j`` of them); with
``--scheduler tcp://HOST:PORT`` it connects to a running cluster. No shared filesystem is assumed: the client
sends each worker the project's inputs once (notebooks, report template and payer catalogue, as one broadcast
bundle) and each task its code's record and its slice of the rates store (:meth:`cptpub.store.RatesStore.extract`:
the rows its key hashes, taken from the batch's pinned store), never the whole store file. Workers build in a
temporary folder of their own and return the rendered files' bytes; the client writes them into ``dist/``. A
failed notebook comes back too, so the client can keep it under ``build/failed/<code>/`` for inspection.

Worker processes keep one warm kernel each between tasks (as local workers do) and shut it down, and remove their
temporary folders, when they close (a worker plugin), so kernels stay warm across builds on a long-lived cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from cptpub.batch.executors import POLL_SECONDS, OnOutcome, Stopped
from cptpub.batch.keys import template_files
from cptpub.batch.tasks import EditionOutcome, EditionTask, Failure, run_task
from cptpub.errors import CptpubError
from cptpub.project import Project

PLUGIN_NAME = "cptpub-worker-cleanup"


@dataclass(frozen=True)
class ProjectBundle:
    """A project's shared inputs as bytes, by path relative to the project root."""

    digest: str
    files: tuple[tuple[str, bytes], ...]


def project_bundle(project: Project) -> ProjectBundle:
    files: list[tuple[str, bytes]] = []
    for folder in (project.notebooks_dir, project.report_dir):
        for path in template_files(folder):
            files.append((path.relative_to(project.root).as_posix(), path.read_bytes()))
    if project.payers_file.exists():
        files.append(("data/payers.yaml", project.payers_file.read_bytes()))
    h = hashlib.sha256()
    for name, data in files:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return ProjectBundle(h.hexdigest(), tuple(files))


# Worker-side state, per worker process: the materialised bundle (only the newest is kept).
_lock = threading.Lock()
_materialised: dict[str, Path] = {}


def _materialise(bundle: ProjectBundle) -> Path:
    with _lock:
        root = _materialised.get(bundle.digest)
        if root is not None and root.is_dir():
            return root
        for old in _materialised.values():  # an older bundle (the store or template changed since)
            shutil.rmtree(old.parent, ignore_errors=True)
        _materialised.clear()
        top = Path(tempfile.mkdtemp(prefix="cptpub-dask-"))
        root = top / "project"
        for name, data in bundle.files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (root / "data" / "codes").mkdir(parents=True, exist_ok=True)
        _materialised[bundle.digest] = root
        return root


def store_slice(project: Project, code: str, folder: Path) -> bytes:
    """The bytes of a store holding only ``code``'s slice of the project's (pinned) store."""
    from cptpub.store import RatesStore

    return RatesStore(project.store_path).extract([code], folder / f"{code}.duckdb").read_bytes()


def build_on_worker(task: EditionTask, record: bytes, store: bytes, bundle: ProjectBundle) -> EditionOutcome:
    """The dask task: build one edition in this worker's own folder and return the files' bytes."""
    from distributed import get_worker

    root = _materialise(bundle)
    (root / "data" / "codes" / f"{task.code}.yaml").write_bytes(record)
    store_path = root.parent / "stores" / f"{task.code}.duckdb"
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store_path.write_bytes(store)
    try:
        name = f"dask:{get_worker().name}"
    except ValueError:
        name = "dask"
    try:
        return run_task(
            Project(root, store=store_path), task, root.parent / "work" / task.code, worker=name, ship_executed=True
        )
    finally:
        from cptpub.store import release_store

        release_store(store_path)
        store_path.unlink(missing_ok=True)


def _cleanup_worker() -> None:
    from cptpub.batch.tasks import close_assembly_engines
    from cptpub.execute.warm import shutdown_warm_kernels

    close_assembly_engines()
    shutdown_warm_kernels()
    with _lock:
        for root in _materialised.values():
            shutil.rmtree(root.parent, ignore_errors=True)
        _materialised.clear()


class WorkerCleanup(WorkerPlugin):
    """Shuts the worker's warm kernels and Pandoc down and removes its build folders when the worker closes."""

    async def teardown(self, worker) -> None:
        # Not on the worker's event loop: the kernels' clients block while they stop.
        await asyncio.to_thread(_cleanup_worker)


class DaskExecutor:
    name = "dask"

    def __init__(self, project: Project, *, jobs: int, scheduler: str | None = None) -> None:
        self.project = project
        self.jobs = max(1, jobs)
        self.scheduler = scheduler

    def describe(self) -> str:
        if self.scheduler:
            return f"dask cluster at {self.scheduler}"
        return f"dask LocalCluster of {self.jobs} worker process{'es' if self.jobs != 1 else ''}"

    def _connect(self) -> tuple[Client, LocalCluster | None]:
        if self.scheduler:
            try:
                return Client(self.scheduler, timeout="20s"), None
            except (OSError, TimeoutError) as exc:
                raise CptpubError(
                    f"cannot connect to the dask scheduler at {self.scheduler}: {exc}",
                    hint="start one with `dask scheduler` and `dask worker tcp://HOST:PORT`, or drop --scheduler",
                ) from exc
        # The worker processes inherit an ignored SIGINT (Python keeps it ignored): the terminal's Ctrl-C is for
        # this process to handle, stopping the cluster in order, not for the workers to die of mid-task.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            cluster = LocalCluster(
                n_workers=self.jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        return Client(cluster), cluster

    def run(self, tasks: Sequence[EditionTask], on_outcome: OnOutcome, stopped: Stopped) -> None:
        if not tasks:
            return
        client, cluster = self._connect()
        futures: dict = {}
        try:
            client.register_plugin(WorkerCleanup(), name=PLUGIN_NAME)
            [bundle] = client.scatter([project_bundle(self.project)], broadcast=True)
            submitted = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="cptpub-slices-") as slices:
                for task in tasks:
                    record = self.project.record_path(task.code).read_bytes()
                    store = store_slice(self.project, task.code, Path(slices))
                    future = client.submit(
                        build_on_worker,
                        task,
                        record,
                        store,
                        bundle,
                        key=f"cptpub-{task.code}-{task.key[:16]}",
                        pure=False,
                    )
                    futures[future] = task
            pending = as_completed(list(futures), raise_errors=False)
            while not pending.is_empty() and not stopped():
                batch = pending.next_batch(block=False)
                if not batch:
                    time.sleep(POLL_SECONDS)
                    continue
                for future in batch:
                    task = futures.pop(future)
                    on_outcome(self._outcome(future, task, submitted))
        finally:
            if futures:
                client.cancel(list(futures), force=True)
            client.close()
            if cluster is not None:
                cluster.close()

    def _outcome(self, future, task: EditionTask, submitted: float) -> EditionOutcome:
        if future.status == "finished":
            outcome: EditionOutcome = future.result()
        else:
            try:
                error = future.exception()
                message = f"the dask task failed: {type(error).__name__}: {error}"
            except Exception as exc:  # cancelled, or the scheduler lost it
                message = f"the dask task did not finish ({future.status}): {exc}"
            return EditionOutcome(
                code=task.code,
                key=task.key,
                seconds=round(time.perf_counter() - submitted, 3),
                failure=Failure(message=message),
            )
        failure = outcome.failure
        if failure is not None and failure.executed_notebook is not None and failure.notebook:
            # The worker's folder may be on another machine: keep the failed notebook here.
            kept = self.project.build_dir / "failed" / task.code / failure.notebook
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(failure.executed_notebook)
            failure = Failure(
                message=failure.message, notebook=failure.notebook, cell=failure.cell, executed_path=str(kept)
            )
            outcome = EditionOutcome(
                code=outcome.code,
                key=outcome.key,
                seconds=outcome.seconds,
                worker=outcome.worker,
                failure=failure,
            )
        return outcome
