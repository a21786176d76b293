"""A batch build: many codes, in parallel, incrementally, resumable.

1. Every requested code is checked (valid, has a record) before any work starts.
2. ``dist/`` and its manifest are reconciled; each code gets its key (:mod:`cptpub.batch.keys`). A code whose key
   matches its manifest entry, with intact files, is skipped (unless ``force``).
   The rates store is pinned first (:meth:`cptpub.store.RatesStore.pinned`): keys and every notebook read the
   same version, whatever an ingest running meanwhile writes.
3. The rest run on an executor (:mod:`cptpub.batch.executors`). As each edition comes back, its files are renamed
   into ``dist/`` together with its data (``dist/data/cpt-CODE.json``, :mod:`cptpub.publish.edition_data`: the
   figures and what changed since the previous edition) and its manifest entry is appended to the manifest's
   journal (fsync'd) as one change: if the entry cannot be recorded the previous files are put back. So ``dist/``
   only ever holds complete editions and a killed batch keeps every edition it published. The journal is folded
   into ``manifest.json`` when the batch ends (or the next one starts); see :mod:`cptpub.batch.manifest`.
4. One code's failure never stops the others. Ctrl-C, SIGTERM or SIGHUP stops the run: work in flight is abandoned,
   workers and their kernels are stopped, published editions stay, and the next run resumes where this one stopped.
5. After every batch, even a partial one, the catalogue page and ``dist/feed.xml`` (updated editions) are
   regenerated from the manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cptpub.assemble.base import FORMATS, check_formats
from cptpub.atomic import replace_together
from cptpub.batch import manifest as mf
from cptpub.batch.executors import check_executor, get_executor
from cptpub.batch.keys import edition_keys
from cptpub.batch.tasks import DATA, EditionOutcome, EditionTask, Failure
from cptpub.cell_timeout import cell_timeout
from cptpub.errors import CptpubError, UsageError
from cptpub.project import Project, check_code, known_codes
from cptpub.publish.catalogue import write_catalogue
from cptpub.store import RatesStore

if TYPE_CHECKING:
    from cptpub.publish.edition_data import EditionData

CHECKSUM_CACHE = ".dist-checksums.json"  # in build/: see manifest.ChecksumCache


@dataclass(frozen=True)
class BatchOptions:
    codes: tuple[str, ...] = ()  # empty with all_codes=True: every record in data/codes
    all_codes: bool = False
    formats: tuple[str, ...] = FORMATS
    engine: str = "auto"
    jobs: int = 0  # 0: os.cpu_count()
    fresh_kernels: bool = False  # a new kernel per notebook
    warm_kernels: bool = False  # a warm kernel per worker, also with the local executor (see execution_engine)
    force: bool = False
    executor: str = "local"
    scheduler: str | None = None
    cell_timeout: float | None = None  # seconds, 0 for none; None: report/_quarto.yml's or the default


@dataclass
class BatchResult:
    requested: list[str]
    engine_label: str
    built: list[EditionOutcome] = field(default_factory=list)
    failed: list[EditionOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_built: list[str] = field(default_factory=list)  # left undone by an interruption
    interrupted: bool = False
    stop_signal: int = 0  # the signal that stopped the batch (SIGINT, SIGTERM or SIGHUP)
    seconds: float = 0.0
    manifest: dict | None = None
    catalogue: Path | None = None


class Reporter(Protocol):
    """What the batch tells its user about; ``cptpub.batch.progress`` has a terminal and a plain one."""

    def engine(self, label: str, chosen_by_auto: bool) -> None: ...

    def plan(self, total: int, to_build: int, skipped: int, executor: str, kernels: str) -> None: ...

    def outcome(self, outcome: EditionOutcome) -> None: ...

    def interrupting(self) -> None: ...

    def close(self) -> None: ...


class SilentReporter:
    def engine(self, label: str, chosen_by_auto: bool) -> None:
        pass

    def plan(self, total: int, to_build: int, skipped: int, executor: str, kernels: str) -> None:
        pass

    def outcome(self, outcome: EditionOutcome) -> None:
        pass

    def interrupting(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- choosing codes -------------------------------------------------------------------------------------------


def resolve_codes(project: Project, codes: Sequence[str], all_codes: bool) -> list[str]:
    """The codes to consider, checked and de-duplicated, sorted. Raises ``UsageError`` before anything runs.

    A code can be built when it has a record or rates in the store (``cptpub.publishable``); ``--all`` builds
    every such code."""
    from cptpub.publishable import codes_with_rates

    if all_codes and codes:
        raise UsageError("give codes or --all, not both")
    if all_codes:
        found = sorted(set(known_codes(project.codes_dir)) | set(codes_with_rates(project.store_path)))
        if not found:
            raise UsageError(
                f"--all: no records in {project.codes_dir} and no rates in the store",
                hint="add a record with `cptpub new CODE`, or ingest rates with `cptpub ingest tic`",
            )
        return found
    if not codes:
        raise UsageError("name at least one code (e.g. `cptpub build 20702`), --codes-file FILE, or --all")
    checked = sorted({check_code(code) for code in codes})  # all syntax errors first, before any file is read
    without_record = [code for code in checked if not project.record_path(code).exists()]
    if without_record:
        from cptpub.records import load_record

        with_rates = codes_with_rates(project.store_path)
        for code in without_record:
            if code not in with_rates:
                load_record(project.codes_dir, code)  # raises CodeNotFound (a UsageError) naming similar codes
    return checked


# --- the batch ------------------------------------------------------------------------------------------------

INPROCESS, WARM, FRESH = "cptpub-inprocess", "cptpub-warm", "cptpub-fresh"  # cptpub.execute.runner's engines
EXECUTION_LABELS = {INPROCESS: "notebooks run in process", WARM: "warm kernels", FRESH: "fresh kernels"}


def execution_engine(options: BatchOptions) -> str:
    """The Papermill engine the workers run the notebooks with.

    Local workers run them in their own process (``cptpub-inprocess``): no kernel process, no messages. Dask workers
    use a warm kernel each (``cptpub-warm``): they run tasks in a thread, where the cell timeout's SIGALRM cannot be
    armed, and a cell that ends its process would take the dask worker, not just the task, with it."""
    if options.fresh_kernels and options.warm_kernels:
        raise UsageError("--fresh-kernels and --warm-kernels exclude each other")
    if options.fresh_kernels:
        return FRESH
    if options.warm_kernels or options.executor == "dask":
        return WARM
    return INPROCESS


# Each stops a batch the same way: finished editions stay, work in flight is abandoned, workers and their kernels
# are stopped before the process exits (with 128 + the signal's number).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopFlag:
    """Set by a stop signal while the batch runs (the handler only sets it: nothing is interrupted half-way)."""

    def __init__(self, on_set=None) -> None:
        self._event = threading.Event()
        self._on_set = on_set
        self.signum = 0

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int = signal.SIGINT) -> None:
        first = not self._event.is_set()
        if first:
            self.signum = signum
        self._event.set()
        if first and self._on_set:
            self._on_set()


@contextlib.contextmanager
def _stop_signals_set(flag: _StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, lambda signum, frame: flag.set(signum)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _batch_lock(project: Project) -> Iterator[None]:
    """One batch per project at a time: two would race for dist/ and the manifest."""
    import fcntl

    project.build_dir.mkdir(parents=True, exist_ok=True)
    path = project.build_dir / ".build.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CptpubError(
                "another cptpub build is running in this project", where=project.root, hint="wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_batch(project: Project, options: BatchOptions, reporter: Reporter | None = None) -> BatchResult:
    """Build the requested editions into ``dist/``; see the module docstring for the rules."""
    from cptpub.assemble import get_engine
    from cptpub.publish.edition_data import EditionData
    from cptpub.publishable import codes_with_rates

    reporter = reporter or SilentReporter()
    started = time.perf_counter()
    formats = check_formats(options.formats)
    codes = resolve_codes(project, options.codes, options.all_codes)
    jobs = options.jobs or os.cpu_count() or 1
    if jobs < 1:
        raise UsageError("-j must be at least 1")
    check_executor(options.executor, options.scheduler)

    execution = execution_engine(options)
    engine = get_engine(options.engine)
    engine_label = f"{engine.name} ({engine.version()})"
    reporter.engine(engine_label, chosen_by_auto=options.engine == "auto")
    result = BatchResult(requested=codes, engine_label=engine_label)
    dist = project.dist_dir
    edition_data = EditionData(project)  # reads the change threshold: a bad setting fails before any work

    with _batch_lock(project), RatesStore(project.store_path).pinned() as store:
        project = dataclasses.replace(project, store=store)  # one version of the store for the whole batch
        checksums = mf.ChecksumCache(project.build_dir / CHECKSUM_CACHE)
        serializer = mf.ManifestSerializer()
        publishable = set(codes) if options.all_codes else set(known_codes(project.codes_dir))
        if not options.all_codes:
            publishable |= set(codes_with_rates(project.store_path))
        editions, dropped = mf.reconcile(dist, mf.load_editions(dist), publishable, checksums)
        keys = edition_keys(project, codes, engine_label, formats)
        todo = [c for c in codes if options.force or editions.get(c, {}).get("key") != keys[c]]
        to_build = set(todo)
        result.skipped = [c for c in codes if c not in to_build]
        invalid = _invalid_records(project, todo)  # fail before any work, each with its file:line
        buildable = [c for c in todo if c not in invalid]
        if buildable:
            RatesStore(project.store_path).require()
        executor = get_executor(
            options.executor, project, jobs=min(jobs, max(1, len(todo))), scheduler=options.scheduler
        )
        reporter.plan(
            total=len(codes),
            to_build=len(todo),
            skipped=len(result.skipped),
            executor=executor.describe(),
            kernels=EXECUTION_LABELS[execution],
        )
        if dropped or todo or mf.has_journal(dist) or not (dist / mf.MANIFEST_NAME).exists():
            _make_folder(dist)
            result.manifest = mf.write_manifest(dist, editions, serializer)
        else:
            result.manifest = mf.manifest_document(editions)

        timeout = cell_timeout(project.report_dir, options.cell_timeout)
        tasks = [
            EditionTask(
                code=code,
                key=keys[code],
                formats=formats,
                engine=engine.name,
                execution=execution,
                cell_timeout=timeout,
            )
            for code in buildable
        ]
        done: set[str] = set()
        published: list[str] = []

        def on_outcome(outcome: EditionOutcome) -> None:
            done.add(outcome.code)
            if outcome.ok:
                _publish(dist, editions, outcome, engine_label, checksums, edition_data)
                published.append(outcome.code)
                result.built.append(dataclasses.replace(outcome, files={}))  # the bytes are in dist/ now
            else:
                result.failed.append(outcome)
            reporter.outcome(outcome)

        stop = _StopFlag(on_set=reporter.interrupting)
        try:
            with _stop_signals_set(stop):
                for code, message in invalid.items():
                    on_outcome(EditionOutcome(code=code, key=keys[code], seconds=0.0, failure=Failure(message)))
                if tasks:
                    executor.run(tasks, on_outcome, stop)
        finally:
            result.interrupted = stop()
            result.stop_signal = stop.signum
            result.not_built = [c for c in todo if c not in done]
            reporter.close()
            if published:  # fold the journal into manifest.json
                result.manifest = mf.write_manifest(dist, editions, serializer)
            checksums.save()
            if dist.is_dir():
                result.catalogue = write_catalogue(dist, result.manifest)
                write_feed(dist, result.manifest)
            result.seconds = round(time.perf_counter() - started, 3)
    return result


def _invalid_records(project: Project, codes: Sequence[str]) -> dict[str, str]:
    """The codes whose record does not load (YAML or schema error), with the error naming file, line and field.
    A code without a record is not invalid: it is built from its data."""
    if not codes:
        return {}
    from cptpub.records import load_record

    invalid = {}
    for code in codes:
        if not project.record_path(code).exists():
            continue
        try:
            load_record(project.codes_dir, code)
        except CptpubError as exc:
            invalid[code] = str(exc)
    return invalid


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CptpubError(f"cannot create the output folder: {exc.strerror or exc}", where=path) from exc


def _publish(
    dist: Path,
    editions: mf.Editions,
    outcome: EditionOutcome,
    engine_label: str,
    checksums: mf.ChecksumCache,
    edition_data: EditionData,
) -> None:
    """Put one edition's files and its data into ``dist/`` and record it in the manifest's journal, as one change:
    its files replace the previous ones together (all written first, then renamed), and if the entry cannot be
    recorded they are put back, so the manifest always matches ``dist/`` and a page never links another edition's
    PDF. A write error (a full disk) raises naming the file, with ``dist/`` as it was."""
    files, data_fields = edition_data.prepare(dist, outcome.code, outcome.files[DATA][1])
    outputs = {}
    for fmt in FORMATS:
        if fmt not in outcome.files:
            continue
        name, data = outcome.files[fmt]
        files[dist / name] = data
        outputs[fmt] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    previous = editions.get(outcome.code)
    meta = outcome.meta
    editions[outcome.code] = {
        "code": outcome.code,
        "title": meta.get("title"),
        "key": outcome.key,
        "edition_date": meta.get("edition_date"),
        "data_as_of": meta.get("data_as_of", {}),
        "payers": meta.get("payers", []),
        "demo": meta.get("demo", False),
        "engine": engine_label,
        "outputs": outputs,
        **data_fields,
        "build_seconds": round(outcome.seconds, 1),
    }
    try:
        with replace_together(files):
            mf.record_edition(dist, editions[outcome.code])
    except BaseException:
        if previous is None:
            del editions[outcome.code]
        else:
            editions[outcome.code] = previous
        raise
    for output in (*outputs.values(), data_fields["data"]):
        checksums.remember(dist / output["file"], output["sha256"])
    if previous:  # e.g. built with html,pdf before and html only now: the stale pdf goes (the manifest no longer
        kept = {o["file"] for o in outputs.values()} | {data_fields["data"]["file"]}  # lists it)
        for stale in mf.entry_files(previous) - kept:
            (dist / stale).unlink(missing_ok=True)
            checksums.forget(stale)


def write_feed(dist: Path, manifest: dict) -> Path:
    """``dist/feed.xml``: the Atom feed of updated editions (:mod:`cptpub.publish.feed`)."""
    from cptpub.publish.feed import write_feed as render

    return render(dist, manifest)
