"""Ingest many in-network files at once: parsed on N processes (``-j N``) or a Dask cluster, written by one writer.

Design. DuckDB allows one writing process, and a store must never hold half a file, so parsing and writing are
split (see ``staging``):

- workers (local processes, or ``dask.distributed`` workers) each parse one file at a time into Parquet column
  files in a staging folder: no store connection, no lock, as many as there are cores;
- the writer (the ``cptpub`` process itself) takes each parsed file as it completes and appends it in one DuckDB
  transaction (``tic.publish_parsed``), then deletes its staging folder.

``kill -9`` at any moment leaves the store consistent: a file is in the store completely (its ``sources`` row and
all its rows, committed together) or not at all; DuckDB's write-ahead log replays or drops an interrupted commit.
Running the same command again skips the files already stored (same SHA-256: "unchanged") and ingests the rest;
staging folders left by a killed run are removed by the next one.

Dask workers need not share a filesystem with the writer: each returns its staged files' bytes with the result.
They must be able to read the sources (URLs, or paths they can see).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

from cptpub.errors import CptpubError, UsageError
from cptpub.ingest.common import IngestResult
from cptpub.ingest.remote import is_url
from cptpub.ingest.staging import staged_files, staging_root
from cptpub.ingest.tic import ParsedFile, Source, parse_tic_file, publish_parsed
from cptpub.records.schema import PayerCatalogue
from cptpub.store import RatesStore

EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ParseJob:
    source: Source
    staging: Path  # the folder to parse into (on a Dask worker: a temporary folder of its own)
    codes: frozenset[str] | None
    catalogue: PayerCatalogue
    payer_override: str | None
    provider_refs_dir: Path | None
    refs_cache: Path | None
    known: frozenset[str]  # SHA-256s of stored files with this file's name: unchanged when it matches
    ship_files: bool = False  # return the staged files' bytes (a remote worker)


@dataclass
class Failed:
    source: Source
    message: str


def run_job(job: ParseJob) -> ParsedFile | Failed:
    """Parse one file (on a worker). Errors come back as text: exceptions with keyword fields do not pickle."""
    folder = Path(tempfile.mkdtemp(prefix="cptpub-parse-")) if job.ship_files else job.staging
    try:
        parsed = parse_tic_file(
            job.source,
            folder,
            codes=job.codes,
            catalogue=job.catalogue,
            payer_override=job.payer_override,
            provider_refs_dir=job.provider_refs_dir,
            refs_cache=job.refs_cache,
            known=job.known,
        )
        if job.ship_files and not parsed.unchanged:
            parsed = replace(parsed, staging=job.staging, files=staged_files(folder))
        return parsed
    except CptpubError as exc:
        return Failed(job.source, str(exc))
    except OSError as exc:
        return Failed(job.source, f"{job.source}: cannot read the file: {exc.strerror or exc}")
    finally:
        if job.ship_files:
            shutil.rmtree(folder, ignore_errors=True)


def known_sources(store: RatesStore, sources: Sequence[Source]) -> dict[Source, frozenset[str]]:
    """For each local source, the SHA-256s of stored files with the same name (a likely re-ingest)."""
    if not store.exists():
        return {}
    con = store.connect(read_only=True)
    try:
        by_name: dict[str, set[str]] = {}
        for source_id, name in con.execute("SELECT source_id, file_name FROM sources").fetchall():
            by_name.setdefault(name, set()).add(source_id)
    finally:
        con.close()
    return {s: frozenset(by_name.get(Path(s).name, ())) for s in sources if not is_url(s)}


def ingest_files(
    store: RatesStore,
    sources: Sequence[Source],
    *,
    codes: frozenset[str] | None,
    catalogue: PayerCatalogue,
    payer_override: str | None = None,
    provider_refs_dir: Path | None = None,
    refs_cache: Path | None = None,
    replace: bool = False,
    jobs: int = 2,
    executor: str = "local",
    scheduler: str | None = None,
    on_done: Callable[[Source, IngestResult | None, str | None], None],
) -> None:
    """Parse ``sources`` on ``jobs`` workers and publish each as it completes; ``on_done(source, result, error)``
    is called once per source (``error`` is a one-line message naming the file when it failed)."""
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    root = staging_root(store.path.parent)
    known = {} if replace else known_sources(store, sources)
    remote = executor == "dask"
    jobs_list = [
        ParseJob(
            source=source,
            staging=root / f"file-{number}",
            codes=codes,
            catalogue=catalogue,
            payer_override=payer_override,
            provider_refs_dir=provider_refs_dir,
            refs_cache=refs_cache,
            known=known.get(source, frozenset()),
            ship_files=remote,
        )
        for number, source in enumerate(sources)
    ]
    try:
        outcomes = _dask(jobs_list, jobs, scheduler) if remote else _processes(jobs_list, jobs)
        for job, outcome in outcomes:
            if isinstance(outcome, Failed):
                on_done(job.source, None, outcome.message)
                continue
            try:
                result = publish_parsed(store, outcome, replace=replace)
            except CptpubError as exc:
                on_done(job.source, None, str(exc))
                continue
            finally:
                shutil.rmtree(job.staging, ignore_errors=True)
            on_done(job.source, result, None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _processes(jobs: list[ParseJob], workers: int) -> Iterator[tuple[ParseJob, ParsedFile | Failed]]:
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _dask(jobs: list[ParseJob], workers: int, scheduler: str | None) -> Iterator[tuple[ParseJob, ParsedFile | Failed]]:
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise CptpubError(f"cannot reach the dask scheduler: {exc}", where=scheduler) from None
    try:
        futures = {client.submit(run_job, job, pure=False): job for job in jobs}
        for future in dask_completed(list(futures)):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
