"""Ingest CMS's national physician fee schedule relative value file (PPRRVU CSV, or the RVUyy zip holding it).

The real files start with title and copyright lines, then a column header split over two rows (e.g.
``,,,STATUS,...,WORK,NON-FAC,NA,FACILITY,...`` over ``HCPCS,MOD,DESCRIPTION,CODE,...,RVU,PE RVU,INDICATOR,...``),
and columns come and go between years (2026 added one before the conversion factor). So the header is found by
its content and each column by the words of its header cells, never by position.

National amounts are total RVUs x the conversion factor (a column of the file), rounded half-up to cents.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import time
import zipfile
import zlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from cptpub.errors import IngestError, UsageError
from cptpub.ingest.common import (
    DEMO_MARKER,
    IngestResult,
    SourceRow,
    delete_source,
    insert_source,
    regular_file_size,
    source_exists,
    unreadable,
)
from cptpub.store import RatesStore

KIND = "pprrvu"
PAYER = "Medicare"
PUBLISHER = "CMS"

# column -> (words its header cells must contain, words they must not contain)
_COLUMNS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "hcpcs": (frozenset({"HCPCS"}), frozenset()),
    "modifier": (frozenset({"MOD"}), frozenset()),
    "description": (frozenset({"DESCRIPTION"}), frozenset()),
    "status_code": (frozenset({"STATUS"}), frozenset()),
    "work_rvu": (frozenset({"WORK"}), frozenset()),
    "nonfacility_pe_rvu": (frozenset({"NON-FAC", "PE"}), frozenset({"INDICATOR"})),
    "facility_pe_rvu": (frozenset({"FACILITY", "PE"}), frozenset({"INDICATOR", "NON-FAC"})),
    "mp_rvu": (frozenset({"MP"}), frozenset()),
    "nonfacility_total": (frozenset({"NON-FACILITY", "TOTAL"}), frozenset()),
    "facility_total": (frozenset({"FACILITY", "TOTAL"}), frozenset({"NON-FACILITY"})),
    "global_days": (frozenset({"GLOB"}), frozenset()),
    "conversion_factor": (frozenset({"CONV"}), frozenset()),
}
_RVU_COLUMNS = ("work_rvu", "nonfacility_pe_rvu", "facility_pe_rvu", "mp_rvu", "nonfacility_total", "facility_total")
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_QUARTERS = {"JAN": "A", "APR": "B", "JUL": "C", "OCT": "D"}
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class _Table:
    title: str  # the lines above the column header, joined
    columns: dict[str, int]
    rows: list[tuple[int, list[str]]]  # (line number, cells) of each row that holds a code


def ingest_pfs_file(
    store: RatesStore,
    path: Path,
    *,
    codes: set[str] | frozenset[str],
    year: int | None = None,
    replace: bool = False,
) -> IngestResult:
    """Ingest one PPRRVU file (CSV or zip), keeping the lines (every modifier) of ``codes``."""
    path = Path(path)
    started = time.perf_counter()
    regular_file_size(path)  # a folder, a pipe or a broken link fails here, naming the path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc) from None
    source_id = hashlib.sha256(data).hexdigest()
    member, text = _csv_text(path, data)
    where = f"{path}!{member}" if member != path.name else str(path)
    table = _read_table(text, where)
    year = year or _year(table.title, [member, path.name], where)
    wanted = {code.strip().upper() for code in codes}
    kept = [(line, cells) for line, cells in table.rows if cells[table.columns["hcpcs"]].strip().upper() in wanted]
    rows = [_pfs_row(source_id, year, table.columns, cells, f"{where}:{line}") for line, cells in kept]
    with store.transaction() as con:
        status = "ingested"
        if source_exists(con, source_id):
            if not replace:
                return IngestResult(
                    path=path, kind=KIND, status="unchanged", source_id=source_id, payer=PAYER, bytes_stored=len(data)
                )
            delete_source(con, source_id)
            status = "replaced"
        if rows:
            appender = con.appender("medicare_pfs")
            appender.append_rows(rows)
            appender.flush()
        source = SourceRow(
            source_id=source_id,
            kind=KIND,
            path=path,
            payer=PAYER,
            publisher=PUBLISHER,
            entity_type=None,
            plans=None,
            last_updated_on=dt.date(year, 1, 1),
            schema_version=_release(year, table.title, [member, path.name]),
            rows_kept=len(rows),
            items_skipped=len(table.rows) - len(rows),
            warnings=[],
            is_demo=DEMO_MARKER in table.title,
        )
        insert_source(con, source)
    return IngestResult(
        path=path,
        kind=KIND,
        status=status,
        source_id=source_id,
        payer=PAYER,
        rows_kept=len(rows),
        items_kept=len(rows),
        items_skipped=source.items_skipped,
        is_demo=source.is_demo,
        schema_version=source.schema_version,
        bytes_stored=len(data),
        bytes_parsed=len(text),
        seconds=time.perf_counter() - started,
    )


def _csv_text(path: Path, data: bytes) -> tuple[str, str]:
    """(name of the CSV, its text): the file itself, or the PPRRVU CSV inside a zip."""
    name = path.name
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                name = _pprrvu_member(archive.namelist(), path)
                data = archive.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            # RuntimeError: an encrypted member; NotImplementedError: an unsupported compression method
            raise IngestError(f"cannot read the zip: {exc}", where=path, hint="download the file again") from None
    try:
        return name, data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return name, data.decode("cp1252", errors="replace")  # CMS's CSVs come from Excel on Windows


def _pprrvu_member(names: list[str], path: Path) -> str:
    candidates = sorted(n for n in names if n.lower().endswith(".csv") and "pprrvu" in n.lower())
    if not candidates:
        raise IngestError(
            f"no PPRRVU CSV in the zip (it holds {', '.join(names) or 'nothing'})",
            where=path,
            hint="pass the PPRRVU*.csv file, or the RVU zip CMS publishes",
        )
    # 2026 on: QPP and non-QPP conversion factors; the non-QPP file is the standard fee schedule
    return next((n for n in candidates if "nonqpp" in n.lower()), candidates[0])


def _read_table(text: str, where: str) -> _Table:
    lines = list(csv.reader(io.StringIO(text)))
    header = next((i for i, cells in enumerate(lines) if _cell(cells, 0) == "HCPCS" and _cell(cells, 1) == "MOD"), None)
    if header is None:
        raise IngestError(
            "not a PPRRVU file: no column header starting HCPCS,MOD",
            where=where,
            hint="cptpub ingest pfs reads CMS's PPRRVU CSV (or the RVU zip that holds it)",
        )
    first, last = header, header
    while first > 0 and _is_header_row(lines[first - 1]):
        first -= 1
    while last + 1 < len(lines) and _is_header_row(lines[last + 1]):
        last += 1
    words = _column_words(lines[first : last + 1])
    title = " ".join(" ".join(c.strip() for c in cells if c.strip()) for cells in lines[:first])
    rows = [(i + 1, cells) for i, cells in enumerate(lines[last + 1 :], start=last + 1) if _CODE.match(_cell(cells, 0))]
    return _Table(title, _find_columns(words, where), rows)


def _cell(cells: list[str], index: int) -> str:
    return cells[index].strip().upper() if index < len(cells) else ""


def _is_header_row(cells: list[str]) -> bool:
    """A continuation of the column header: several labels, and no code in the first column."""
    return sum(1 for c in cells if c.strip()) >= 5 and not _CODE.match(_cell(cells, 0))


def _column_words(rows: list[list[str]]) -> list[set[str]]:
    width = max(len(cells) for cells in rows)
    return [{word for cells in rows if i < len(cells) for word in cells[i].upper().split()} for i in range(width)]


def _find_columns(words: list[set[str]], where: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for name, (required, excluded) in _COLUMNS.items():
        index = next((i for i, found in enumerate(words) if required <= found and not excluded & found), None)
        if index is None:
            raise IngestError(
                f"not a PPRRVU file: no {name.replace('_', ' ')} column (header cells with {' '.join(required)})",
                where=where,
            )
        columns[name] = index
    return columns


def _pfs_row(source_id: str, year: int, columns: dict[str, int], cells: list[str], where: str) -> tuple:
    def text(name: str) -> str | None:
        index = columns[name]
        value = cells[index].strip() if index < len(cells) else ""
        return value or None

    values = {name: _decimal(text(name), name, where) for name in _RVU_COLUMNS}
    factor = _decimal(text("conversion_factor"), "conversion factor", where)
    if factor is None or factor <= 0:
        raise IngestError(
            f"conversion factor must be a positive number, got {text('conversion_factor')!r}", where=where
        )
    return (
        source_id,
        year,
        cells[columns["hcpcs"]].strip().upper(),
        text("modifier"),
        text("description"),
        text("status_code"),
        *(_float(values[name]) for name in _RVU_COLUMNS),
        text("global_days"),
        float(factor),
        _amount(values["nonfacility_total"], factor),
        _amount(values["facility_total"], factor),
    )


def _decimal(value: str | None, name: str, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise IngestError(f"{name.replace('_', ' ')} must be a number, got {value!r}", where=where) from None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _amount(total: Decimal | None, factor: Decimal) -> float | None:
    return None if total is None else float((total * factor).quantize(_CENT, rounding=ROUND_HALF_UP))


def _year(title: str, names: list[str], where: str) -> int:
    """The fee schedule year: from the title (e.g. '2024 National Physician Fee Schedule Relative Value File',
    never the copyright years beside it), else from the file name (PPRRVU24_JAN.csv, PPRRVU2025_Oct.csv,
    rvu24a.zip)."""
    found = re.search(r"\b(20\d\d)\s+(?:\w+\s+){0,3}(?:physician fee schedule|relative value)", title, re.IGNORECASE)
    found = found or re.search(r"(?:calendar year|\bCY)\s*(20\d\d)\b", title, re.IGNORECASE)
    if found:
        return int(found.group(1))
    for name in names:
        found = re.search(r"PPRRVU(20\d\d|\d\d)", name, re.IGNORECASE) or re.search(
            r"(?<![A-Z])RVU(\d\d)[A-D]", name, re.IGNORECASE
        )
        if found:
            digits = found.group(1)
            return int(digits) if len(digits) == 4 else 2000 + int(digits)
    raise UsageError(f"cannot tell the fee schedule year of {where}: pass --year")


def _release(year: int, title: str, names: list[str]) -> str:
    """CMS's release name, e.g. 'RVU24A' (A-D: the January, April, July and October releases)."""
    for name in names:
        found = re.search(r"(?<![A-Z])RVU(\d\d[A-D]R?\d?)(?![A-Z])", name, re.IGNORECASE)
        if found:
            return f"RVU{found.group(1).upper()}"
    for text in (*names, title):
        month = re.search(r"(?<![A-Z])(JAN|APR|JUL|OCT)", text, re.IGNORECASE)
        if month:
            return f"RVU{year % 100:02d}{_QUARTERS[month.group(1).upper()]}"
    return f"RVU{year % 100:02d}"
