"""Ingest CMS's national physician fee schedule relative value file (PPRRVU CSV, or the RVUyy zip holding it).

The real files start with title and copyright lines, then a column header split over two rows (e.g.
``,,,STATUS,...,WORK,NON-FAC,NA,FACILITY,...`` over ``HCPCS,MOD,DESCRIPTION,CODE,...,RVU,PE RVU,INDICATOR,...``),
and columns come and go between years (2026 added one before the conversion factor). So the header is found by
its content and each column by the words of its header cells, never by position.

National amounts are total RVUs x the conversion factor (a column of the file), rounded half-up to cents.

Besides the values and amounts, every payment-policy column is kept as CMS writes it (status code, PC/TC,
global days, the multiple-procedure, bilateral, assistant-at-surgery, co-surgeon and team-surgery indicators,
endoscopic base code, the non-facility and facility NA flags, ...): ``cptpub.analysis.facts`` explains them.
A file without one of these columns (older layouts) stores NULL there.

The CSV is streamed, never read whole, and refused past ``MAX_CSV_BYTES`` (CMS's national file is about 5 MB).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
import zipfile
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from cptpub.errors import IngestError, UsageError
from cptpub.ingest.cmstable import Row, bytes_read, is_zip, open_limited, text_rows, zip_members
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
from cptpub.ingest.stream import sha256_of
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
# Payment-policy columns kept as written; NULL when a file's layout lacks one.
_POLICY_COLUMNS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "not_used_for_medicare": (frozenset({"NOT", "USED"}), frozenset()),
    "nonfacility_na": (frozenset({"NON-FAC", "NA"}), frozenset()),
    "facility_na": (frozenset({"FACILITY", "NA"}), frozenset({"NON-FAC"})),
    "pctc_indicator": (frozenset({"PCTC"}), frozenset()),
    "preop_share": (frozenset({"PRE", "OP"}), frozenset()),
    "intraop_share": (frozenset({"INTRA", "OP"}), frozenset()),
    "postop_share": (frozenset({"POST", "OP"}), frozenset()),
    "mult_proc": (frozenset({"MULT", "PROC"}), frozenset()),
    "bilat_surg": (frozenset({"BILAT"}), frozenset()),
    "asst_surg": (frozenset({"ASST"}), frozenset()),
    "co_surg": (frozenset({"CO-"}), frozenset()),
    "team_surg": (frozenset({"TEAM"}), frozenset()),
    "pricing_indicator": (frozenset({"PRIC"}), frozenset()),
    "endo_base": (frozenset({"ENDO"}), frozenset()),
    "phys_supervision": (frozenset({"SUPERVISION"}), frozenset()),
    "calculation_flag": (frozenset({"CALCULATION"}), frozenset()),
    "imaging_family": (frozenset({"FAMILY"}), frozenset()),
}
# medicare_pfs columns in the order _pfs_row gives them (named: a migrated store has its own column order)
_STORED = (
    "source_id", "year", "hcpcs", "modifier", "description", "status_code", "work_rvu", "nonfacility_pe_rvu",
    "facility_pe_rvu", "mp_rvu", "nonfacility_total", "facility_total", "global_days", "conversion_factor",
    "nonfacility_amount", "facility_amount", *_POLICY_COLUMNS,
)  # fmt: skip
MAX_CSV_BYTES = 64 << 20
_MAX_LINES_ABOVE_HEADER = 100
_RVU_COLUMNS = ("work_rvu", "nonfacility_pe_rvu", "facility_pe_rvu", "mp_rvu", "nonfacility_total", "facility_total")
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_QUARTERS = {"JAN": "A", "APR": "B", "JUL": "C", "OCT": "D"}
_CENT = Decimal("0.01")


def ingest_pfs_file(
    store: RatesStore,
    path: Path,
    *,
    codes: set[str] | frozenset[str] | None = None,
    year: int | None = None,
    replace: bool = False,
    max_bytes: int = MAX_CSV_BYTES,
) -> IngestResult:
    """Ingest one PPRRVU file (CSV or zip), keeping the lines (every modifier) of ``codes`` (None: every code).

    The CSV is streamed (from the zip without extracting it) and refused past ``max_bytes``."""
    path = Path(path)
    started = time.perf_counter()
    size = regular_file_size(path)  # a folder, a pipe or a broken link fails here, naming the path
    member = _pprrvu_member(path) if is_zip(path) else None
    name = member.filename if member else path.name
    where = f"{path}!{name}" if member else str(path)
    try:
        source_id = sha256_of(path)
    except OSError as exc:
        raise unreadable(path, exc) from None
    wanted = None if codes is None else {code.strip().upper() for code in codes}
    with store.transaction() as con:
        status = "ingested"
        if source_exists(con, source_id):
            if not replace:
                return IngestResult(
                    path=path, kind=KIND, status="unchanged", source_id=source_id, payer=PAYER, bytes_stored=size
                )
            delete_source(con, source_id)
            status = "replaced"
        kept = skipped = 0
        with open_limited(path, member, max_bytes) as stream:
            title, columns, rows = _read_table(text_rows(stream, where, name), where)
            year = year or _year(title, [name, path.name], where)
            appender = con.appender("medicare_pfs", columns=list(_STORED))
            for row in rows:
                if wanted is not None and row.cells[columns["hcpcs"]].strip().upper() not in wanted:
                    skipped += 1
                    continue
                appender.append_row(*_pfs_row(source_id, year, columns, row.cells, row.where))
                kept += 1
            appender.flush()
            parsed = bytes_read(stream)
        source = SourceRow(
            source_id=source_id,
            kind=KIND,
            path=path,
            payer=PAYER,
            publisher=PUBLISHER,
            entity_type=None,
            plans=None,
            last_updated_on=dt.date(year, 1, 1),
            schema_version=_release(year, title, [name, path.name]),
            rows_kept=kept,
            items_skipped=skipped,
            warnings=[],
            is_demo=DEMO_MARKER in title,
        )
        insert_source(con, source)
    return IngestResult(
        path=path,
        kind=KIND,
        status=status,
        source_id=source_id,
        payer=PAYER,
        rows_kept=kept,
        items_kept=kept,
        items_skipped=skipped,
        is_demo=source.is_demo,
        schema_version=source.schema_version,
        bytes_stored=size,
        bytes_parsed=parsed,
        seconds=time.perf_counter() - started,
    )


def _pprrvu_member(path: Path) -> zipfile.ZipInfo:
    members = zip_members(path)
    names = [m.filename for m in members]
    candidates = sorted(
        (m for m in members if m.filename.lower().endswith(".csv") and "pprrvu" in m.filename.lower()),
        key=lambda m: m.filename,
    )
    if not candidates:
        raise IngestError(
            f"no PPRRVU CSV in the zip (it holds {', '.join(names) or 'nothing'})",
            where=path,
            hint="pass the PPRRVU*.csv file, or the RVU zip CMS publishes",
        )
    # 2026 on: QPP and non-QPP conversion factors; the non-QPP file is the standard fee schedule
    return next((m for m in candidates if "nonqpp" in m.filename.lower()), candidates[0])


def _read_table(rows: Iterator[Row], where: str) -> tuple[str, dict[str, int], Iterator[Row]]:
    """(title, column indexes, the data rows): the column header is looked for within the first lines."""
    above: list[list[str]] = []
    header: list[str] | None = None
    for row in rows:
        if _cell(row.cells, 0) == "HCPCS" and _cell(row.cells, 1) == "MOD":
            header = row.cells
            break
        above.append(row.cells)
        if len(above) >= _MAX_LINES_ABOVE_HEADER:
            break
    if header is None:
        raise IngestError(
            "not a PPRRVU file: no column header starting HCPCS,MOD"
            + (f" in its first {_MAX_LINES_ABOVE_HEADER} lines" if len(above) >= _MAX_LINES_ABOVE_HEADER else ""),
            where=where,
            hint="cptpub ingest pfs reads CMS's PPRRVU CSV (or the RVU zip that holds it)",
        )
    first = len(above)
    while first > 0 and _is_header_row(above[first - 1]):
        first -= 1
    block = [*above[first:], header]
    following = next(rows, None)
    while following is not None and _is_header_row(following.cells):
        block.append(following.cells)
        following = next(rows, None)
    title = " ".join(" ".join(c.strip() for c in cells if c.strip()) for cells in above[:first])
    columns = _find_columns(_column_words(block), where)
    rest = itertools.chain([following] if following is not None else [], rows)
    return title, columns, (row for row in rest if _CODE.match(_cell(row.cells, 0)))


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
    for name, (required, excluded) in _POLICY_COLUMNS.items():
        index = next((i for i, found in enumerate(words) if required <= found and not excluded & found), None)
        if index is not None:
            columns[name] = index
    return columns


def _pfs_row(source_id: str, year: int, columns: dict[str, int], cells: list[str], where: str) -> tuple:
    def text(name: str) -> str | None:
        index = columns.get(name)
        if index is None:
            return None
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
        *(text(name) for name in _POLICY_COLUMNS),
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
