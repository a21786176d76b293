"""The per-code task every executor runs in its worker processes, and what it sends back.

A task builds one edition in a working folder private to its worker, renders into a private staging folder and
returns the rendered files' bytes: only the batch runner in the main process writes to ``dist/``, so an edition
appears there complete (all formats, then the manifest) or not at all, whichever executor built it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cptpub.project import Project

DATA = "data"  # EditionOutcome.files key of the edition's figures


@dataclass(frozen=True)
class EditionTask:
    code: str
    key: str
    formats: tuple[str, ...]
    engine: str  # resolved assembly engine name ("builtin" or "quarto")
    execution: str  # the notebooks' Papermill engine (one of cptpub.execute.runner's *_ENGINE)
    cell_timeout: float | None = None


@dataclass(frozen=True)
class Failure:
    message: str
    notebook: str | None = None
    cell: int | None = None
    executed_path: str | None = None  # where the executed notebook is kept (on the worker's machine)
    executed_notebook: bytes | None = None  # its bytes, when the worker's folder is not the caller's to read


@dataclass(frozen=True)
class EditionOutcome:
    code: str
    key: str
    seconds: float
    worker: str = ""
    # format -> (file name, bytes); "data": the edition's figures (cptpub.analysis.snapshot, without "changes")
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # manifest fields: title, edition_date, data_as_of, payers, demo
    failure: Failure | None = None
    replace_worker: bool = False  # the worker's process is not fit for another task (it exits after this one)

    @property
    def ok(self) -> bool:
        return self.failure is None


def manifest_fields(meta, key_payers: Sequence[str]) -> dict:
    """The manifest's description of an edition, from its ``EditionMeta`` and key payers."""
    return {
        "title": meta.title,
        "edition_date": _iso(meta.edition_date),
        "data_as_of": {label: _iso(day) for label, day in meta.data_as_of},
        "payers": list(key_payers),
        "demo": bool(meta.demo),
    }


def _iso(day: object) -> str:
    return day.isoformat() if isinstance(day, dt.date) else str(day)


_engines: dict[str, object] = {}


def assembly_engine(name: str):
    """One engine object per worker process and name."""
    if name not in _engines:
        from cptpub.assemble import get_engine

        _engines[name] = get_engine(name)
    return _engines[name]


def close_assembly_engines() -> None:
    """Stop what the worker's engines keep running (the builtin engine's Pandoc) when the worker stops."""
    while _engines:
        _, engine = _engines.popitem()
        close = getattr(engine, "close", None)
        if close is not None:
            close()


def run_task(
    project: Project,
    task: EditionTask,
    workdir: Path,
    *,
    worker: str = "",
    ship_executed: bool = False,
) -> EditionOutcome:
    """Build ``task.code`` in ``workdir`` (its notebooks and figures) and return the rendered files.

    Never raises for a failed edition: the failure comes back in the outcome. The working folder is kept on
    failure (the executed notebook is the evidence) and removed on success (a warm kernel still sitting in it
    changes directory first thing in its next reset). ``replace_worker`` is set when the notebooks ran in this
    process and a run was stopped from outside its cells (``cptpub.execute.inprocess.needs_new_process``).
    ``KeyboardInterrupt`` and ``SystemExit`` (a worker told to stop) propagate.
    """
    from cptpub.analysis.snapshot import current_figures, snapshot_bytes, snapshot_name
    from cptpub.edition import build_edition
    from cptpub.errors import CptpubError, SectionFailed
    from cptpub.execute.inprocess import needs_new_process

    start = time.perf_counter()
    staging = workdir.with_name(f"{workdir.name}.out")
    shutil.rmtree(staging, ignore_errors=True)
    failure = None
    files: dict[str, tuple[str, bytes]] = {}
    meta: dict = {}
    try:
        result = build_edition(
            project,
            task.code,
            assembly_engine(task.engine),
            formats=task.formats,
            execution_engine=task.execution,
            workdir=workdir,
            out_dir=staging,
            cell_timeout=task.cell_timeout,
            sync_outputs=False,  # read back below; the main process publishes them synced
        )
        files = {fmt: (path.name, path.read_bytes()) for fmt, path in result.outputs.items()}
        if result.context is not None:
            files[DATA] = (snapshot_name(task.code), snapshot_bytes(current_figures(result.context)))
        meta = manifest_fields(result.meta, result.key_payers)
    except SectionFailed as exc:
        executed = Path(exc.executed_path)
        failure = Failure(
            message=exc.error,
            notebook=exc.notebook,
            cell=exc.cell,
            executed_path=str(executed),
            executed_notebook=_read(executed) if ship_executed else None,
        )
    except CptpubError as exc:
        failure = Failure(message=str(exc))
    except Exception as exc:  # an unexpected bug: the message and where it happened, the others keep building
        where = traceback.extract_tb(exc.__traceback__)[-1]
        failure = Failure(message=f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if failure is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return EditionOutcome(
        code=task.code,
        key=task.key,
        seconds=round(time.perf_counter() - start, 3),
        worker=worker,
        files=files,
        meta=meta,
        failure=failure,
        replace_worker=needs_new_process(),
    )


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
