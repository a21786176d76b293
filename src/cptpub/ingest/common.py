"""What every ingester shares: the result it reports, the ``sources`` row it writes, re-ingest and replacement."""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import duckdb

from cptpub.errors import IngestError
from cptpub.ingest.stream import sha256_of
from cptpub.store import rates

TABLES_BY_KIND = {
    "tic-in-network": "negotiated_rates",
    "pprrvu": "medicare_pfs",
    "ncci-ptp": "ncci_ptp",
    "ncci-mue": "ncci_mue",
    "ncci-aoc": "ncci_aoc",
}
# Marks a synthetic input file (in a TiC file's publisher or plan name, a PPRRVU file's title lines): its source is
# flagged as demo, and every page built from it says so. `cptpub demo-inputs` writes it.
DEMO_MARKER = "[DEMO DATA]"


@dataclass
class IngestResult:
    """What one file contributed. ``status``: 'ingested', 'replaced' (``--replace`` of a known file) or
    'unchanged' (the same bytes were ingested before; nothing was written)."""

    path: Path
    kind: str
    status: str
    source_id: str
    payer: str
    rows_kept: int = 0
    items_kept: int = 0
    items_skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    is_demo: bool = False
    schema_version: str | None = None
    bytes_stored: int = 0  # the file's size (compressed when gzip)
    bytes_parsed: int = 0  # uncompressed bytes scanned
    seconds: float = 0.0


@dataclass(frozen=True)
class SourceRow:
    source_id: str
    kind: str
    path: Path | str  # a local path or the URL the file was read from
    payer: str
    publisher: str | None
    entity_type: str | None
    plans: str | None
    last_updated_on: dt.date | None
    schema_version: str | None
    rows_kept: int
    items_skipped: int
    warnings: list[str]
    is_demo: bool


def regular_file_size(path: Path) -> int:
    """The size of ``path``, checked to be a regular file (or a link to one) before anything opens it: a named
    pipe would block the reader forever, and a folder or a broken link should name the path, not crash."""
    try:
        info = path.stat()
    except OSError as exc:
        raise unreadable(path, exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise IngestError("it is a folder, not a file", where=path)
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        )
        raise IngestError(f"cannot read the file: it is {kind}, not a regular file", where=path)
    return info.st_size


def unreadable(path: Path, exc: OSError) -> IngestError:
    """An OSError met opening or reading ``path``, as an IngestError naming the file."""
    reason = exc.strerror or str(exc)
    if path.is_symlink() and not path.exists():
        try:
            reason = f"it is a broken symbolic link (to {os.readlink(path)}): {reason}"
        except OSError:
            reason = f"it is a broken symbolic link: {reason}"
    return IngestError(f"cannot read the file: {reason}", where=path)


def source_exists(con: duckdb.DuckDBPyConnection, source_id: str) -> bool:
    return con.execute("SELECT 1 FROM sources WHERE source_id = ?", [source_id]).fetchone() is not None


def hash_if_name_known(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """The file's sha256 when a file of the same name was ingested before, else None.

    Hashing first costs one fast extra read, and only for a likely re-ingest; it spares a full parse when the
    bytes are unchanged. For other files the hash is computed while parsing."""
    if con.execute("SELECT 1 FROM sources WHERE file_name = ?", [path.name]).fetchone() is None:
        return None
    return sha256_of(path)


def delete_source(con: duckdb.DuckDBPyConnection, source_id: str) -> None:
    rates.delete_source(con, source_id)
    for table in TABLES_BY_KIND.values():
        if table != rates.VIEW:
            con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source_id])
    con.execute("DELETE FROM sources WHERE source_id = ?", [source_id])


def insert_source(con: duckdb.DuckDBPyConnection, row: SourceRow) -> None:
    ingested_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row.source_id,
            row.kind,
            str(row.path),
            PurePosixPath(urlparse(row.path).path).name if isinstance(row.path, str) else row.path.name,
            row.payer,
            row.publisher,
            row.entity_type,
            row.plans,
            row.last_updated_on,
            row.schema_version,
            row.rows_kept,
            row.items_skipped,
            row.warnings,
            row.is_demo,
            ingested_at,
        ],
    )
