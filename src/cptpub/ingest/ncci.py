"""Ingest CMS's quarterly National Correct Coding Initiative (NCCI) files, as CMS publishes them.

Three kinds, each recognised from the file's own column header (never from its name or position):

- procedure-to-procedure (PTP) edits: Column 1, Column 2, the pre-1996 flag (``*``), Effective Date, Deletion
  Date (``*`` = none), Modifier (0 not allowed, 1 allowed, 9 not applicable), PTP Edit Rationale;
- medically unlikely edits (MUE): the code, its MUE value, the adjudication indicator (1 claim line, 2 date of
  service by policy, 3 date of service by clinical data; with or without its words), the rationale;
- add-on code (AOC) edits: AOC_Edit_Type, Add-On_Code, AOC_DelDT, Primary_Code, Primary_Code_DelDT,
  AOC_Edit_EffDT, AOC_Edit_DelDT, Special_Instruction_Notes (dates as CCYYDDD: year and day of the year).

A file may be the zip CMS ships (its tab-delimited .txt members are read, else .csv, else .xlsx: CMS puts the
same table in several formats) or any of those files alone, with CMS's copyright and title lines above the header.
Rows are streamed into the store in one transaction per file, with a ``sources`` row (kind, file, quarter,
SHA-256; a demo file carries ``[DEMO DATA]`` in a line above its header); an error names the file (and zip
member or sheet) and the line or row. Each file or member is refused past ``MAX_TABLE_BYTES``.

The quarter (``sources.last_updated_on``, its first day) comes from ``as_of`` or the file name: ``2026Q2``,
``2024-07-01``, ``07-01-2024``, or the NCCI version of CMS's PTP zips (``v322r0``: version 32.2, i.e. 2026 Q3;
version 26.0 was January 2020; versions 31.2 and 31.3 took effect on 1 July and 1 October 2025).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cptpub.errors import IngestError
from cptpub.ingest.cmstable import (
    SHEET_EXTENSIONS,
    TEXT_EXTENSIONS,
    Row,
    bytes_read,
    is_zip,
    open_limited,
    rows_of,
    zip_members,
)
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

PAYER = "Medicare"
PUBLISHER = "CMS"
MAX_TABLE_BYTES = 512 << 20  # one file or zip member; CMS's largest (a PTP text file) is about 60 MB
_MAX_LINES_ABOVE_HEADER = 60
_BATCH = 10_000
_MAX_MUE = 1_000_000
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_HEADER_TEXT = re.compile(r"[^a-z0-9*=]+")


@dataclass(frozen=True)
class _Kind:
    name: str  # sources.kind
    table: str
    columns: tuple[str, ...]  # the table's columns, in the order the row parser gives them


_PTP = _Kind(
    "ncci-ptp",
    "ncci_ptp",
    ("source_id", "column1", "column2", "prior_1996", "effective_date", "deletion_date", "modifier_indicator",
     "rationale", "line"),
)  # fmt: skip
_MUE = _Kind(
    "ncci-mue",
    "ncci_mue",
    ("source_id", "hcpcs", "mue_value", "adjudication_indicator", "adjudication_text", "rationale", "line"),
)
_AOC = _Kind(
    "ncci-aoc",
    "ncci_aoc",
    ("source_id", "edit_type", "addon_code", "addon_deletion_date", "primary_code", "primary_deletion_date",
     "edit_effective_date", "edit_deletion_date", "special_instructions", "line"),
)  # fmt: skip
KINDS = (_PTP.name, _MUE.name, _AOC.name)


class _NoHeader(IngestError):
    """No NCCI column header in a file's first lines."""


@dataclass(frozen=True)
class _Header:
    kind: _Kind
    columns: dict[str, int]
    claim_type: str | None  # 'practitioner', 'outpatient hospital', 'DME supplier' (MUE: from its header)
    preamble: str  # the lines above the header, joined (copyright, title; the demo marker of demo files)


def ingest_ncci_file(
    store: RatesStore,
    path: Path,
    *,
    as_of: dt.date | None = None,
    replace: bool = False,
    max_bytes: int = MAX_TABLE_BYTES,
) -> IngestResult:
    """Ingest one NCCI file (zip, .txt, .csv or .xlsx): every row, in one transaction."""
    path = Path(path)
    started = time.perf_counter()
    size = regular_file_size(path)
    members = _tabular_members(path)
    names = [path.name, *(m.filename for m in members if m is not None)]
    quarter = as_of or _quarter(names)
    if quarter is None:
        raise IngestError(
            "cannot tell the quarter of the edits from the file name",
            where=path,
            hint="pass --as-of YYYY-MM-DD (the first day the edits apply)",
        )
    try:
        source_id = sha256_of(path)
    except OSError as exc:
        raise unreadable(path, exc) from None
    with store.transaction() as con:
        status = "ingested"
        if source_exists(con, source_id):
            if not replace:
                return IngestResult(
                    path=path, kind="ncci", status="unchanged", source_id=source_id, payer=PAYER, bytes_stored=size
                )
            delete_source(con, source_id)
            status = "replaced"
        kind: _Kind | None = None
        claim_type: str | None = None
        is_demo = False
        kept = parsed = 0
        warnings: list[str] = []
        no_header: list[IngestError] = []
        for member in members:
            name = member.filename if member else path.name
            where = f"{path}!{name}" if member else str(path)
            with open_limited(path, member, max_bytes) as stream:
                rows = rows_of(stream, where, name, max_bytes)
                try:
                    header = _find_header(rows, where)
                except _NoHeader as exc:  # e.g. a read-me beside the table in the zip
                    no_header.append(exc)
                    continue
                if kind is not None and header.kind is not kind:
                    raise IngestError(
                        f"holds {header.kind.name} rows, but an earlier member held {kind.name}: one kind per file",
                        where=where,
                    )
                kind, claim_type = header.kind, header.claim_type or claim_type
                is_demo = is_demo or DEMO_MARKER in header.preamble
                kept += _append(con, header, rows, source_id)
                parsed += bytes_read(stream)
        if kind is None:
            raise no_header[0]
        warnings += [f"skipped {exc.where}: not an NCCI table" for exc in no_header]
        if kind is not _AOC and claim_type is None:
            claim_type = _claim_type_from_names(names)
            if claim_type is None:
                claim_type = "practitioner"
                warnings.append("the claim type is not in the file's header or name: filed as practitioner edits")
        source = SourceRow(
            source_id=source_id,
            kind=kind.name,
            path=path,
            payer=PAYER,
            publisher=PUBLISHER,
            entity_type=claim_type if kind is not _AOC else None,
            plans=None,
            last_updated_on=quarter,
            schema_version=f"{quarter.year}Q{(quarter.month - 1) // 3 + 1}",
            rows_kept=kept,
            items_skipped=0,
            warnings=warnings,
            is_demo=is_demo,
        )
        insert_source(con, source)
    return IngestResult(
        path=path,
        kind=kind.name,
        status=status,
        source_id=source_id,
        payer=PAYER,
        rows_kept=kept,
        items_kept=kept,
        warnings=warnings,
        is_demo=is_demo,
        schema_version=source.schema_version,
        bytes_stored=size,
        bytes_parsed=parsed,
        seconds=time.perf_counter() - started,
    )


def _tabular_members(path: Path) -> list[zipfile.ZipInfo | None]:
    """[None] for a file read as it is; for a zip, its text members, else its CSVs, else its workbooks."""
    if path.name.lower().endswith(SHEET_EXTENSIONS) or not is_zip(path):
        return [None]
    members = zip_members(path)
    for extensions in ((".txt",), (".csv",), SHEET_EXTENSIONS):
        chosen = sorted((m for m in members if m.filename.lower().endswith(extensions)), key=lambda m: m.filename)
        if chosen:
            return list(chosen)
    listing = ", ".join(m.filename for m in members) or "nothing"
    raise IngestError(
        f"no NCCI table in the zip (it holds {listing})",
        where=path,
        hint=f"pass CMS's NCCI zip, or a {', '.join((*TEXT_EXTENSIONS, *SHEET_EXTENSIONS))} file it holds",
    )


def _normal(cell: str) -> str:
    return _HEADER_TEXT.sub(" ", cell.lower()).strip()


def _index(cells: list[str], test: Callable[[str], bool]) -> int | None:
    return next((i for i, cell in enumerate(cells) if test(cell)), None)


def _ptp_columns(texts: list[str]) -> dict[str, int] | None:
    first = _index(texts, lambda t: re.fullmatch(r"column ?1", t) is not None)
    second = _index(texts, lambda t: re.fullmatch(r"column ?2", t) is not None)
    if first is None or second is None:
        return None
    found = {
        "column1": first,
        "column2": second,
        "prior_1996": _index(texts, lambda t: "1996" in t),
        "effective_date": _index(texts, lambda t: "effective" in t),
        "deletion_date": _index(texts, lambda t: "deletion" in t),
        "modifier_indicator": _index(texts, lambda t: "modifier" in t),
        "rationale": _index(texts, lambda t: "rationale" in t),
    }
    return {k: v for k, v in found.items() if v is not None}


def _mue_columns(texts: list[str]) -> dict[str, int] | None:
    value = _index(texts, lambda t: "mue value" in t)
    if value is None:
        return None
    found = {
        "hcpcs": _index(texts, lambda t: "hcpcs" in t or "cpt" in t),
        "mue_value": value,
        "adjudication_indicator": _index(texts, lambda t: "adjudication" in t),
        "rationale": _index(texts, lambda t: "rationale" in t),
    }
    return {k: v for k, v in found.items() if v is not None}


_AOC_HEADERS = {
    "edit_type": "aoc edit type",
    "addon_code": "add on code",
    "addon_deletion_date": "aoc deldt",
    "primary_code": "primary code",
    "primary_deletion_date": "primary code deldt",
    "edit_effective_date": "aoc edit effdt",
    "edit_deletion_date": "aoc edit deldt",
    "special_instructions": "special instruction notes",
}


def _aoc_columns(texts: list[str]) -> dict[str, int] | None:
    if "add on code" not in texts:
        return None
    found = {name: _index(texts, lambda t, h=header: t == h) for name, header in _AOC_HEADERS.items()}  # type: ignore[misc]
    return {k: v for k, v in found.items() if v is not None}


_REQUIRED = {
    _PTP.name: ("column1", "column2", "effective_date", "deletion_date", "modifier_indicator"),
    _MUE.name: ("hcpcs", "mue_value", "adjudication_indicator"),
    _AOC.name: ("edit_type", "addon_code", "primary_code", "edit_effective_date"),
}


def _find_header(rows: Iterator[Row], where: str) -> _Header:
    """Read up to and including the column header (which may continue on the next row, as in CMS's PTP text)."""
    seen = 0
    above: list[str] = []
    for row in rows:
        seen += 1
        texts = [_normal(c) for c in row.cells]
        for kind, finder in ((_PTP, _ptp_columns), (_MUE, _mue_columns), (_AOC, _aoc_columns)):
            columns = finder(texts)
            if columns is None:
                continue
            missing = [c for c in _REQUIRED[kind.name] if c not in columns]
            if missing:
                raise IngestError(
                    f"an NCCI {kind.name.removeprefix('ncci-').upper()} header without "
                    + ", ".join(c.replace("_", " ") for c in missing),
                    where=row.where,
                )
            claim_type = None
            if kind is _MUE:
                claim_type = _claim_type_from_names([row.cells[columns["mue_value"]]])
            return _Header(kind, columns, claim_type, " ".join(above))
        above.append(" ".join(c.strip() for c in row.cells if c.strip()))
        if seen >= _MAX_LINES_ABOVE_HEADER:
            break
    raise _NoHeader(
        f"not an NCCI file: no PTP, MUE or add-on code column header in its first {seen} rows",
        where=where,
        hint="cptpub ingest ncci reads CMS's practitioner PTP, MUE and add-on code files (the zip or a file in it)",
    )


def _append(con: duckdb.DuckDBPyConnection, header: _Header, rows: Iterator[Row], source_id: str) -> int:
    parse = {_PTP.name: _ptp_row, _MUE.name: _mue_row, _AOC.name: _aoc_row}[header.kind.name]
    appender = con.appender(header.kind.table, columns=list(header.kind.columns))
    pending: list[tuple] = []
    kept = 0
    continuation = 3 if header.kind is _PTP else 0  # header rows that may follow the one naming the columns
    for row in rows:
        if not any(c.strip() for c in row.cells):
            continue
        if continuation and _is_header_continuation(row.cells, header.columns):
            continuation -= 1
            continue
        continuation = 0
        pending.append((source_id, *parse(row.cells, header.columns, row.where), row.where))
        if len(pending) >= _BATCH:
            appender.append_rows(pending)
            kept += len(pending)
            pending = []
    if pending:
        appender.append_rows(pending)
        kept += len(pending)
    appender.flush()
    return kept


def _is_header_continuation(cells: list[str], columns: dict[str, int]) -> bool:
    """A second header row (e.g. 'prior to 1996', '0=not allowed ...') under the first, holding no code."""
    first = _text(cells, columns["column1"])
    return not _CODE.match(first.upper()) and not first[:1].isdigit()


def _text(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _code(cells: list[str], columns: dict[str, int], name: str, where: str) -> str:
    value = _text(cells, columns[name]).upper()
    if not _CODE.match(value):
        raise IngestError(f"{name.replace('_', ' ')}: expected a 5-character code, got {value[:40]!r}", where=where)
    return value


def parse_cms_date(value: str, what: str, where: str, *, star_is_none: bool = True) -> dt.date | None:
    """A date as CMS writes it: YYYYMMDD, CCYYDDD (year and day of the year), or ISO (a workbook's date cell).
    Empty (or ``*``: 'no data') is None."""
    value = value.strip()
    if not value or (star_is_none and value == "*"):
        return None
    try:
        if re.fullmatch(r"\d{8}", value):
            return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        if re.fullmatch(r"\d{7}", value):
            day = int(value[4:])
            if not 1 <= day <= 366:
                raise ValueError("day of the year out of range")
            return dt.date(int(value[:4]), 1, 1) + dt.timedelta(days=day - 1)
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise IngestError(f"{what}: expected a date (YYYYMMDD or CCYYDDD), got {value[:40]!r}", where=where)


def _required_date(cells: list[str], columns: dict[str, int], name: str, where: str) -> dt.date:
    date = parse_cms_date(_text(cells, columns[name]), name.replace("_", " "), where, star_is_none=False)
    if date is None:
        raise IngestError(f"{name.replace('_', ' ')} is empty", where=where)
    return date


def _ptp_row(cells: list[str], columns: dict[str, int], where: str) -> tuple:
    prior = _text(cells, columns.get("prior_1996"))
    if prior not in ("", "*"):
        raise IngestError(f"pre-1996 flag: expected '*' or nothing, got {prior[:40]!r}", where=where)
    modifier = _text(cells, columns["modifier_indicator"])
    if modifier not in ("0", "1", "9"):
        raise IngestError(f"modifier indicator: expected 0, 1 or 9, got {modifier[:40]!r}", where=where)
    return (
        _code(cells, columns, "column1", where),
        _code(cells, columns, "column2", where),
        prior == "*",
        _required_date(cells, columns, "effective_date", where),
        parse_cms_date(_text(cells, columns["deletion_date"]), "deletion date", where),
        modifier,
        _text(cells, columns.get("rationale")) or None,
    )


def _mue_row(cells: list[str], columns: dict[str, int], where: str) -> tuple:
    value = _text(cells, columns["mue_value"])
    if not re.fullmatch(r"\d{1,7}", value) or int(value) > _MAX_MUE:
        raise IngestError(f"MUE value: expected a whole number of units, got {value[:40]!r}", where=where)
    indicator = _text(cells, columns["adjudication_indicator"])
    found = re.fullmatch(r"([123])(?:\s*[-:]?\s*(.*))?", indicator, re.DOTALL)
    if not found:
        raise IngestError(f"MUE adjudication indicator: expected 1, 2 or 3, got {indicator[:40]!r}", where=where)
    return (
        _code(cells, columns, "hcpcs", where),
        int(value),
        found.group(1),
        (found.group(2) or "").strip() or None,
        _text(cells, columns.get("rationale")) or None,
    )


def _aoc_row(cells: list[str], columns: dict[str, int], where: str) -> tuple:
    edit_type = _text(cells, columns["edit_type"])
    if edit_type not in ("1", "2", "3"):
        raise IngestError(f"AOC edit type: expected 1, 2 or 3, got {edit_type[:40]!r}", where=where)

    def date(name: str) -> dt.date | None:
        return parse_cms_date(_text(cells, columns.get(name)), name.replace("_", " "), where)

    return (
        edit_type,
        _code(cells, columns, "addon_code", where),
        date("addon_deletion_date"),
        _code(cells, columns, "primary_code", where),
        date("primary_deletion_date"),
        date("edit_effective_date"),
        date("edit_deletion_date"),
        _text(cells, columns.get("special_instructions")) or None,
    )


def _claim_type_from_names(texts: list[str]) -> str | None:
    for text in texts:
        lowered = text.lower()
        if "practitioner" in lowered or "ccipra" in lowered:
            return "practitioner"
        if "hospital" in lowered or "ccioph" in lowered:
            return "outpatient hospital"
        if "dme" in lowered:
            return "DME supplier"
    return None


def _quarter(names: list[str]) -> dt.date | None:
    """The first day of the quarter a file's name gives (see the module docstring)."""
    for name in names:
        if found := re.search(r"(20\d\d)[-_ ]?Q([1-4])", name, re.IGNORECASE):
            return dt.date(int(found.group(1)), 3 * int(found.group(2)) - 2, 1)
        if found := re.search(r"(20\d\d)-(\d\d)-(\d\d)", name):
            return _valid_date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
        if found := re.search(r"(\d\d)-(\d\d)-(20\d\d)", name):
            return _valid_date(int(found.group(3)), int(found.group(1)), int(found.group(2)))
        if found := re.search(r"(?<![a-z])v(\d\d)(\d)r\d", name, re.IGNORECASE):
            version, quarter = int(found.group(1)), int(found.group(2))
            if quarter <= 3:
                return dt.date(2000 + version - 6, 3 * quarter + 1, 1)
    return None


def _valid_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
