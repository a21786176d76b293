"""A batch build: many codes, in parallel, incrementally, resumable.

1. Every requested code is checked (valid, has a record) before any work starts.
2. ``dist/`` and its manifest are reconciled; each code gets its key (:mod:`cptpub.batch.keys`). A code whose key
   matches its manifest entry, with intact files, is skipped (unless ``force``).
3. The rest run on an executor (:mod:`cptpub.batch.executors`). As each edition comes back, its files are renamed
   into ``dist/`` and the manifest is rewritten (both atomically), so ``dist/`` only ever holds complete editions.
4. One code's failure never stops the others. Ctrl-C stops the run: work in flight is abandoned, published
   editions stay, and the next run resumes where this one stopped.
5. After every batch, even a partial one, the catalogue page is regenerated from the manifest.
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
from typing import Protocol

from cptpub.assemble.base import FORMATS, check_formats
from cptpub.atomic import write_atomic
from cptpub.batch import manifest as mf
from cptpub.batch.executors import check_executor, get_executor
from cptpub.batch.keys import edition_keys
from cptpub.batch.tasks import EditionOutcome, EditionTask, Failure
from cptpub.errors import CptpubError, UsageError
from cptpub.project import Project, check_code
from cptpub.publish.catalogue import write_catalogue

CHECKSUM_CACHE = ".dist-checksums.json"  # in build/: see manifest.ChecksumCache


@dataclass(frozen=True)
class BatchOptions:
    codes: tuple[str, ...] = ()  # empty with all_codes=True: every record in data/codes
    all_codes: bool = False
    formats: tuple[str, ...] = FORMATS
    engine: str = "auto"
    jobs: int = 0  # 0: os.cpu_count()
    fresh_kernels: bool = False
    force: bool = False
    executor: str = "local"
    scheduler: str | None = None
    cell_timeout: float | None = None


@dataclass
class BatchResult:
    requested: list[str]
    engine_label: str
    built: list[EditionOutcome] = field(default_factory=list)
    failed: list[EditionOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_built: list[str] = field(default_factory=list)  # left undone by an interruption
    interrupted: bool = False
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
    """The codes to consider, checked and de-duplicated, sorted. Raises ``UsageError`` before anything runs."""
    from cptpub.records import known_codes, load_record

    if all_codes and codes:
        raise UsageError("give codes or --all, not both")
    if all_codes:
        found = known_codes(project.codes_dir)
        if not found:
            raise UsageError(f"--all: no records in {project.codes_dir}", hint="add one with `cptpub new CODE`")
        return found
    if not codes:
        raise UsageError("name at least one code (e.g. `cptpub build 20702`), --codes-file FILE, or --all")
    checked = sorted({check_code(code) for code in codes})  # all syntax errors first, before any file is read
    for code in checked:
        if not project.record_path(code).exists():
            load_record(project.codes_dir, code)  # raises CodeNotFound (a UsageError) naming similar codes
    return checked


# --- the batch ------------------------------------------------------------------------------------------------


class _StopFlag:
    """Set by SIGINT while the batch runs (the handler only sets it: nothing is interrupted half-way)."""

    def __init__(self, on_set=None) -> None:
        self._event = threading.Event()
        self._on_set = on_set

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        first = not self._event.is_set()
        self._event.set()
        if first and self._on_set:
            self._on_set()


@contextlib.contextmanager
def _sigint_sets(flag: _StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
    from cptpub.records import known_codes

    reporter = reporter or SilentReporter()
    started = time.perf_counter()
    formats = check_formats(options.formats)
    codes = resolve_codes(project, options.codes, options.all_codes)
    jobs = options.jobs or os.cpu_count() or 1
    if jobs < 1:
        raise UsageError("-j must be at least 1")
    check_executor(options.executor, options.scheduler)

    engine = get_engine(options.engine)
    engine_label = f"{engine.name} ({engine.version()})"
    reporter.engine(engine_label, chosen_by_auto=options.engine == "auto")
    result = BatchResult(requested=codes, engine_label=engine_label)
    dist = project.dist_dir

    with _batch_lock(project):
        checksums = mf.ChecksumCache(project.build_dir / CHECKSUM_CACHE)
        serializer = mf.ManifestSerializer()
        editions, dropped = mf.reconcile(dist, mf.load_editions(dist), set(known_codes(project.codes_dir)), checksums)
        keys = edition_keys(project, codes, engine_label, formats)
        todo = [c for c in codes if options.force or editions.get(c, {}).get("key") != keys[c]]
        result.skipped = [c for c in codes if c not in set(todo)]
        invalid = _invalid_records(project, todo)  # fail before any work, each with its file:line
        buildable = [c for c in todo if c not in invalid]
        if buildable:
            from cptpub.store import RatesStore

            RatesStore(project.store_path).require()
        executor = get_executor(
            options.executor, project, jobs=min(jobs, max(1, len(todo))), scheduler=options.scheduler
        )
        reporter.plan(
            total=len(codes),
            to_build=len(todo),
            skipped=len(result.skipped),
            executor=executor.describe(),
            kernels="fresh kernels" if options.fresh_kernels else "warm kernels",
        )
        if dropped or todo or not (dist / mf.MANIFEST_NAME).exists():
            _make_folder(dist)
            result.manifest = mf.write_manifest(dist, editions, serializer)
        else:
            result.manifest = mf.manifest_document(editions)

        tasks = [
            EditionTask(
                code=code,
                key=keys[code],
                formats=formats,
                engine=engine.name,
                fresh_kernels=options.fresh_kernels,
                cell_timeout=options.cell_timeout,
            )
            for code in buildable
        ]
        done: set[str] = set()

        def on_outcome(outcome: EditionOutcome) -> None:
            done.add(outcome.code)
            if outcome.ok:
                _publish(dist, editions, outcome, engine_label, checksums)
                result.manifest = mf.write_manifest(dist, editions, serializer)
                result.built.append(dataclasses.replace(outcome, files={}))  # the bytes are in dist/ now
            else:
                result.failed.append(outcome)
            reporter.outcome(outcome)

        stop = _StopFlag(on_set=reporter.interrupting)
        try:
            with _sigint_sets(stop):
                for code, message in invalid.items():
                    on_outcome(EditionOutcome(code=code, key=keys[code], seconds=0.0, failure=Failure(message)))
                if tasks:
                    executor.run(tasks, on_outcome, stop)
        finally:
            result.interrupted = stop()
            result.not_built = [c for c in todo if c not in done]
            reporter.close()
            checksums.save()
            if dist.is_dir():
                result.catalogue = write_catalogue(dist, result.manifest)
            result.seconds = round(time.perf_counter() - started, 3)
    return result


def _invalid_records(project: Project, codes: Sequence[str]) -> dict[str, str]:
    """The codes whose record does not load (YAML or schema error), with the error naming file, line and field."""
    from cptpub.records import load_record

    invalid = {}
    for code in codes:
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
    dist: Path, editions: mf.Editions, outcome: EditionOutcome, engine_label: str, checksums: mf.ChecksumCache
) -> None:
    """Move one edition's files into ``dist/`` (each by atomic rename) and record it in ``editions``."""
    outputs = {}
    for fmt in FORMATS:
        if fmt not in outcome.files:
            continue
        name, data = outcome.files[fmt]
        digest = hashlib.sha256(data).hexdigest()
        checksums.remember(write_atomic(dist / name, data), digest)
        outputs[fmt] = {"file": name, "sha256": digest}
    previous = editions.get(outcome.code)
    if previous:  # e.g. built with html,pdf before and html only now: the stale pdf goes
        for stale in mf.entry_files(previous) - {o["file"] for o in outputs.values()}:
            (dist / stale).unlink(missing_ok=True)
            checksums.forget(stale)
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
        "build_seconds": round(outcome.seconds, 1),
    }
