"""The rates store: an embedded DuckDB database of negotiated rates, Medicare fee-schedule values and sources.

Its schema is ``schema.sql`` in this folder (documented column by column).

Sharing one store between commands (``list``, ``build``, ``preview`` and ``ingest`` running at the same time):
DuckDB lets one process write a database file or several read it, never both, so the store file is never written
in place. It is copy-on-write:

* A writer (:meth:`RatesStore.transaction`, i.e. one ingested file) takes the store's writer lock (``fcntl`` on
  ``<store>.lock``, which also records the holder's command and pid), copies the store to a staging file beside
  it, writes there in one transaction, checkpoints, and renames the staging file over the store. An error or a
  kill leaves the store as it was (a killed writer's staging file is removed by the next writer).
* Readers open the store read-only, whenever they like: they see the old file or the new one, never a half-written
  one, and never fail on DuckDB's lock. A process keeps one read-only database open (opening one costs ~20 ms, a
  worker reads the store for every edition) and hands out connections to it while the file is the one it opened:
  same path, inode, size and times. When an ingest has replaced the file, the old database is closed (with any
  connection to it still open) and the new file opened. A read-only database never blocks a writer, who writes a
  copy and renames it over the store. Within a process, read the store only through :meth:`RatesStore.connect`:
  DuckDB hands ``duckdb.connect(path)`` the database already open for that path, which may be an older version.
* A build reads one consistent version throughout: :meth:`RatesStore.pinned` hard-links the current file (a
  snapshot costing nothing, which later writes cannot change, since they replace the file instead of writing
  it), and every notebook of the build reads that link.
* Writers wait for each other: a second ingest waits up to ``CPTPUB_STORE_WAIT`` seconds (default 600) for the
  first, then fails naming the holder (``cptpub ingest tic big.json``, pid, since when).

A write error (a full disk) is reported as what it is, naming the file: ``the rates store could not be written:
... No space left on device``.

Every write transaction ends by recomputing which sources are current and which are superseded by a newer release
(:mod:`cptpub.store.releases`), so supersession changes atomically with the ingest that causes it. Figures read
the ``current_sources`` view. A store made before supersession existed, or with an older rates layout
(:mod:`cptpub.store.rates`), is upgraded the first time it is opened.

A store records the schema it was written with (``store_schema``, a digest of ``schema.sql``): a write to a store
that has this one runs none of the schema's statements, and a read looks for no older layout. A new store is
known to be empty: an ingest into one asks it for no ids or sources. The commit writes the staging file directly
(``checkpoint_threshold`` 0): no WAL is written and then copied into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb

from cptpub.errors import CptpubError
from cptpub.store import rates, releases

SCHEMA_SQL = files("cptpub.store").joinpath("schema.sql").read_text(encoding="utf-8")
# The schema a store was last written with, stored in it (table store_schema): a store that has this one is written
# and read without running the schema's statements or looking through its catalogue again.
SCHEMA_MARK = hashlib.sha256(SCHEMA_SQL.encode()).hexdigest()
WAIT_ENV = "CPTPUB_STORE_WAIT"
DEFAULT_WAIT_SECONDS = 600.0
_POLL_SECONDS = 0.1
_pins = itertools.count()


def _wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_SECONDS)))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RatesStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def wal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".wal")

    def exists(self) -> bool:
        return self.path.exists()

    def require(self) -> None:
        """Raise the one error for a store that has not been filled yet, naming it and how to fill it."""
        if not self.path.exists():
            raise CptpubError(
                "the rates store does not exist yet",
                where=self.path,
                hint="fill it with `cptpub ingest tic ...` and `cptpub ingest pfs ...` (make demo does this)",
            )

    def connect(self, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the current version of the store (writers go through :meth:`transaction`);
        close it after use. It is a cursor of the database this process keeps open for the file (see above)."""
        if not read_only:
            raise ValueError("the store is written only through RatesStore.transaction()")
        return self.connect_with_cache()[0]

    def connect_with_cache(self) -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
        """:meth:`connect`, and a dict kept with the version of the file that connection reads: for what is the
        same for every code read from it (e.g. which tables it has), computed once per version per process."""
        self.require()
        with _open_lock:
            database = self._open_database()
            return database.cursor(), _open[os.path.abspath(self.path)].cache

    def _open_database(self) -> duckdb.DuckDBPyConnection:
        """The database kept open for this file, reopened when the file has changed; called with ``_open_lock``."""
        path = os.path.abspath(self.path)
        try:
            identity = _identity(self.path)  # before opening: a file replaced in between is reopened next time
        except FileNotFoundError:
            _close_open(path)
            self.require()
            raise
        known = _open.get(path)
        if known is not None and known.identity == identity:
            return known.database
        # DuckDB hands a new connection to a path the database it already has open for that path, so the old
        # file's database must be closed before the new file is opened.
        _close_open(path)
        try:
            database = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise CptpubError(f"cannot open the rates store: {exc}", where=self.path) from exc
        if not _schema_is_current(database) and (
            not _has_releases(database) or rates.has_wide_table(database) or rates.has_priced_terms(database)
        ):
            # made by an older cptpub: add the supersession tables, normalise the rates, once; then read
            database.close()
            with self.transaction():
                pass
            return self._open_database()
        _open[path] = _OpenDatabase(identity, database)
        return database

    # --- writing ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a+") as handle:
            deadline = time.monotonic() + _wait_seconds()
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CptpubError(
                            f"the rates store is being written by {self._holder(handle)}; gave up after waiting "
                            f"{_wait_seconds():g} s",
                            where=self.path,
                            hint=f"run this again when it has finished, or wait longer with {WAIT_ENV}=SECONDS",
                        ) from None
                    time.sleep(_POLL_SECONDS)
            try:
                handle.seek(0)
                handle.truncate()
                holder = {"pid": os.getpid(), "command": _command_line(), "since": time.strftime("%H:%M:%S")}
                handle.write(json.dumps(holder))
                handle.flush()
                yield
            finally:
                with contextlib.suppress(OSError):
                    handle.seek(0)
                    handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _holder(handle) -> str:
        try:
            handle.seek(0)
            holder = json.loads(handle.read())
            return f"`{holder['command']}` (pid {holder['pid']}, since {holder['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _staging_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{os.getpid()}.staging")

    def _remove_stale_staging(self) -> None:
        """Staging files and spill folders of writers that were killed (their pid is gone); called with the writer
        lock held."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.staging*"):
            pid = stale.name.removeprefix(f".{self.path.name}.").split(".")[0]
            if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                stale.unlink(missing_ok=True)
        for stale in self.path.parent.glob(f"{_SPILL_PREFIX}*"):
            pid = stale.name.removeprefix(_SPILL_PREFIX)
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction, on a copy of the store that replaces it on success;
        on any error the store is left as it was and the copy is removed."""
        with self._writer_lock():
            self._remove_stale_staging()
            staging = self._staging_path()
            staging_wal = staging.with_name(staging.name + ".wal")
            try:
                try:
                    existed = self.path.exists()
                    if existed:
                        shutil.copyfile(self.path, staging)
                        if self.wal_path.exists():  # a store last written by an older cptpub, in place
                            shutil.copyfile(self.wal_path, staging_wal)
                    con, attached = _attach(staging)
                except (OSError, duckdb.Error) as exc:
                    raise _write_error(exc, self.path) from exc
                try:
                    current = existed and _schema_is_current(con)  # before BEGIN: a missing table fails no transaction
                    con.execute("BEGIN TRANSACTION")
                    if not current:
                        # a store made before rates were normalised (none when the store is new)
                        wide = rates.take_wide_table(con) if existed else None
                        # a store whose prices held their terms
                        priced = existed and rates.take_priced_terms(con)
                        con.execute(SCHEMA_SQL)
                        if wide:
                            rates.convert_wide_table(con, wide)
                        if priced:
                            rates.convert_priced_terms(con)
                        _mark_schema(con)
                    yield con
                    releases.refresh(con)
                    # The commit writes the staging file itself, not a WAL that the checkpoint would copy into it
                    # again: nobody else reads that file before it replaces the store.
                    con.execute("SET checkpoint_threshold = '0b'")
                    con.execute("COMMIT")
                    con.execute(f"CHECKPOINT {attached}")
                except BaseException as exc:
                    with contextlib.suppress(duckdb.Error):  # a failed write can leave nothing to roll back
                        con.execute("ROLLBACK")
                    if isinstance(exc, duckdb.Error):
                        _forget_writer(staging)  # an error may have invalidated the database: opened anew next
                    if isinstance(exc, duckdb.Error | OSError):
                        raise _write_error(exc, self.path) from exc
                    raise
                finally:
                    _detach(con, attached)
                try:
                    with open(staging, "rb+") as handle:
                        os.fsync(handle.fileno())
                    os.replace(staging, self.path)
                    self.wal_path.unlink(missing_ok=True)
                    _fsync_folder(self.path.parent)
                except OSError as exc:
                    raise _write_error(exc, self.path) from exc
            finally:
                staging.unlink(missing_ok=True)
                staging_wal.unlink(missing_ok=True)

    # --- reading one version --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def pinned(self) -> Iterator[Path]:
        """The current version of the store as a path of its own, for as long as the context lasts.

        A hard link (no copy) when the file system allows one, a copy otherwise; a missing store, or one in a
        folder this process cannot write to, yields its own path."""
        if not self.path.exists():
            yield self.path
            return
        folder = self.path.parent / ".pinned"
        pin = folder / f"{os.getpid()}.{next(_pins)}.duckdb"
        try:
            folder.mkdir(exist_ok=True)
            for stale in folder.glob("*.duckdb*"):
                pid = stale.name.split(".")[0]
                if pid.isdigit() and not pid_alive(int(pid)):
                    stale.unlink(missing_ok=True)
            try:
                os.link(self.path, pin)
            except OSError:
                shutil.copyfile(self.path, pin)
            if self.wal_path.exists():
                shutil.copyfile(self.wal_path, pin.with_name(pin.name + ".wal"))
        except OSError:
            # A folder we cannot write to (a shared store mounted read-only): nobody can replace the store
            # there either, so reading it directly is just as consistent.
            with contextlib.suppress(OSError):
                pin.unlink(missing_ok=True)
            yield self.path
            return
        try:
            yield pin
        finally:
            release_store(pin)
            pin.unlink(missing_ok=True)
            pin.with_name(pin.name + ".wal").unlink(missing_ok=True)

    # --- slices ---------------------------------------------------------------------------------------------

    def extract(self, codes: list[str], dest: Path) -> Path:
        """Write a store holding only what editions of ``codes`` read (the slice their keys hash: their
        ``negotiated_rates``, ``medicare_pfs`` and NCCI rows, the ``sources`` rows those point at and their
        supersession status) to ``dest``.

        A task on another machine gets this instead of the whole store."""
        self.connect().close()  # a store made by an older cptpub is brought up to date first
        dest.unlink(missing_ok=True)
        con = duckdb.connect(str(dest))
        try:
            con.execute(SCHEMA_SQL)
            _mark_schema(con)
            quoted = str(self.path).replace("'", "''")
            con.execute(f"ATTACH '{quoted}' AS whole (READ_ONLY)")
            wanted = {"codes": sorted(set(codes))}
            con.execute(
                "INSERT INTO tic_items SELECT * FROM whole.tic_items "
                "WHERE billing_code IN (SELECT unnest($codes::VARCHAR[]))",
                wanted,
            )
            con.execute("INSERT INTO tic_prices SELECT * FROM whole.tic_prices SEMI JOIN tic_items USING (item_id)")
            con.execute("INSERT INTO tic_terms SELECT * FROM whole.tic_terms SEMI JOIN tic_prices USING (terms_id)")
            con.execute(
                "INSERT INTO tic_rate_targets SELECT * FROM whole.tic_rate_targets SEMI JOIN tic_prices USING (rate_id)"
            )
            con.execute(
                "INSERT INTO tic_provider_groups SELECT * FROM whole.tic_provider_groups "
                "SEMI JOIN tic_rate_targets USING (target_id)"
            )
            con.execute(
                "INSERT INTO medicare_pfs BY NAME SELECT * FROM whole.medicare_pfs "
                "WHERE hcpcs IN (SELECT unnest($codes::VARCHAR[]))",
                wanted,
            )
            for table, columns in _NCCI_CODE_COLUMNS.items():
                where = " OR ".join(f"{c} IN (SELECT unnest($codes::VARCHAR[]))" for c in columns)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM whole.{table} WHERE {where}", wanted)
            con.execute(
                "INSERT INTO sources BY NAME SELECT * FROM whole.sources WHERE source_id IN "
                "(SELECT source_id FROM tic_items UNION SELECT source_id FROM medicare_pfs"
                " UNION SELECT source_id FROM ncci_ptp UNION SELECT source_id FROM ncci_mue"
                " UNION SELECT source_id FROM ncci_aoc)"
            )
            # Which of those sources are current travels with them (superseded rows stay out of every figure).
            con.execute(
                "INSERT INTO source_status BY NAME SELECT * FROM whole.source_status "
                "WHERE source_id IN (SELECT source_id FROM sources)"
            )
            con.execute("DETACH whole")
        except duckdb.Error as exc:
            raise CptpubError(f"cannot extract the rates of {', '.join(codes)}: {exc}", where=self.path) from exc
        finally:
            con.close()
        return dest


@dataclass(frozen=True)
class _OpenDatabase:
    identity: tuple[object, ...]  # _identity() of the file when it was opened
    database: duckdb.DuckDBPyConnection
    cache: dict[str, Any] = field(default_factory=dict)  # see RatesStore.connect_with_cache


_open_lock = threading.Lock()
_open: dict[str, _OpenDatabase] = {}  # by absolute path of the store file (a pinned version has its own)
_inherited: list[_OpenDatabase] = []  # a parent's databases in a forked child: kept, as closing them there is unsafe


def _forget_after_fork() -> None:
    global _open_lock, _writer_lock
    _open_lock = threading.Lock()
    _writer_lock = threading.Lock()
    _inherited.extend(_open.values())
    _open.clear()
    _inherited.extend(_OpenDatabase((), writer) for writer in _writers.values())
    _writers.clear()


# Writers attach their copy of the store to an in-memory database that the process keeps, one per folder of stores:
# opening a DuckDB database builds its catalogue of functions (about 16 ms of CPU, and 5 ms to close it), attaching
# a file 1 ms. What a write cannot hold within its memory limit spills into a folder of the process beside the
# stores (DuckDB's default is the working directory), set when the database opens: DuckDB cannot move it once used.
# DuckDB creates that folder when it first spills and removes it when the database closes; a killed writer's is
# removed by the next writer of a store in that folder.
_writers: dict[str, duckdb.DuckDBPyConnection] = {}
_writer_lock = threading.Lock()  # not _open_lock: a read that upgrades an old store writes while holding that
_attached_names = itertools.count()  # threads may write different stores at once: each copy has its own name
_SPILL_PREFIX = ".cptpub-spill-"
_WRITER_SETTINGS = ("threads", "memory_limit", "preserve_insertion_order", "checkpoint_threshold")


def _attach(path: Path) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A connection whose default database is the file at ``path``, attached to the process's writer database of
    its folder, with that database's settings as a new one has them; and the name it is attached under."""
    folder = os.path.abspath(path.parent)
    with _writer_lock:
        writer = _writers.get(folder)
        if writer is None:
            spill = os.path.join(folder, f"{_SPILL_PREFIX}{os.getpid()}")
            writer = _writers[folder] = duckdb.connect(":memory:", config={"temp_directory": spill})
    con = writer.cursor()
    for setting in _WRITER_SETTINGS:  # a previous writer's (publish sets some)
        con.execute(f"RESET {setting}")
    quoted = str(path).replace("'", "''")
    name = f"store_copy_{next(_attached_names)}"
    con.execute(f"ATTACH '{quoted}' AS {name}")
    con.execute(f"USE {name}")
    return con, name


def _detach(con: duckdb.DuckDBPyConnection, name: str) -> None:
    with contextlib.suppress(duckdb.Error):
        con.execute("USE memory")
        con.execute(f"DETACH DATABASE IF EXISTS {name}")
    with contextlib.suppress(duckdb.Error):
        con.close()


def _forget_writer(path: Path) -> None:
    """Let go of the writer database of the stores in ``path``'s folder: the next writer opens a new one. It is not
    closed here: that would close another thread's write in progress on it; its last cursor's close frees it."""
    with _writer_lock:
        _writers.pop(os.path.abspath(path.parent), None)


os.register_at_fork(after_in_child=_forget_after_fork)


def _identity(path: Path) -> tuple[object, ...]:
    """What tells one version of the store file from another. While its database is open, a file stays
    allocated, so a new file cannot get its inode number."""
    st = os.stat(path)
    try:
        wal = os.stat(path.with_name(path.name + ".wal"))
        wal_identity: tuple[int, ...] | None = (wal.st_ino, wal.st_size, wal.st_mtime_ns)
    except FileNotFoundError:
        wal_identity = None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, wal_identity)


def _close_open(path: str) -> None:
    known = _open.pop(path, None)
    if known is not None:
        with contextlib.suppress(duckdb.Error):
            known.database.close()


def release_store(path: Path | None = None) -> None:
    """Close the database this process keeps open for the store file ``path`` (every one when None): before the
    file is deleted, so that the process does not keep a deleted file's disk space."""
    with _open_lock:
        for known in [os.path.abspath(path)] if path is not None else list(_open):
            _close_open(known)


# The NCCI rows an edition of a code reads, by the columns naming the code (as the edition key hashes them).
_NCCI_CODE_COLUMNS = {"ncci_ptp": ("column1", "column2"), "ncci_mue": ("hcpcs",), "ncci_aoc": ("addon_code",)}


def _write_error(exc: BaseException, path: Path) -> CptpubError:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return CptpubError(f"the rates store could not be written: {text}", where=path)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _command_line() -> str:
    args = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]
    if args and args[0] in ("__main__.py", "-m"):
        args[0] = "cptpub"
    return " ".join(args)


def _mark_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TABLE store_schema (mark VARCHAR NOT NULL)")
    con.execute("INSERT INTO store_schema VALUES (?)", [SCHEMA_MARK])


def _schema_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store was last written with this schema (SCHEMA_MARK)."""
    try:
        return con.execute("SELECT mark FROM store_schema").fetchall() == [(SCHEMA_MARK,)]
    except duckdb.CatalogException:  # a store made before the mark existed
        return False


def _has_releases(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'current_sources'").fetchone()
    return bool(found and found[0])
