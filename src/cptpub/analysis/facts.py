"""Facts about one code derived from public data, each labelled with the file (and date) it came from.

``code_facts(store_path, code)`` reads the rates store (read-only) and gives a ``CodeFacts``:

- from CMS's physician fee schedule file (PPRRVU, newest release): the short descriptor (a fallback title,
  marked as CMS's), the status code, the payment-policy indicators as a table, the modifiers they allow with the
  rule for each, the add-on status (global ZZZ), the typical site of service (facility only when CMS publishes no
  non-facility practice expense, the "NA" flag), and the global-period sentence;
- from CMS's NCCI files (newest quarter of each kind, practitioner edits): the procedure-to-procedure edits in
  both directions (the codes Medicare does not pay with this one, and whether a modifier can bypass the edit), the
  medically unlikely edit (units per day and how it is adjudicated), and for an add-on the primary codes;
- from the code number: the service type (CPT section and subsection, or the HCPCS Level II group);
- from the payers' in-network files: the item name the payer gave the code, the last fallback title.

``merge_with_record(record, facts)`` fills a record's empty fields from these facts; a field the record gives
always wins. Everything here is computation: the notebooks decide what to print.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from cptpub.analysis.pfs_policy import (
    ASSISTANT,
    BILATERAL,
    CO_SURGEONS,
    GLOBAL_DAYS,
    MULT_PROC,
    PCTC,
    STATUS_CODES,
    TEAM,
    global_period_sentence,
    modifier_rules,
)
from cptpub.analysis.service_type import ServiceType, service_type
from cptpub.project import check_code
from cptpub.records.schema import CodeRecord, Modifier
from cptpub.store import RatesStore

KIND_NAMES = {
    "pprrvu": "CMS physician fee schedule relative value file",
    "ncci-ptp": "CMS NCCI procedure-to-procedure edits",
    "ncci-mue": "CMS NCCI medically unlikely edits",
    "ncci-aoc": "CMS NCCI add-on code edits",
    "tic-in-network": "in-network rate file",
}
PTP_MODIFIER = {
    "0": "No modifier bypasses this edit: Medicare never pays the column 2 code with the column 1 code for the "
    "same patient on the same date by the same provider.",
    "1": "A modifier can bypass this edit (59, or the more specific XE, XS, XP, XU; anatomic modifiers) when the "
    "two services are truly distinct (another session, site or lesion) and the record shows it.",
    "9": "The edit does not apply (deleted on the day it took effect).",
}
MUE_ADJUDICATION = {
    "1": "per claim line: units above the limit on one line are denied; the same code on other lines (with "
    "modifiers such as 76, 77, 91 or anatomic ones) is counted separately",
    "2": "per day, by CMS policy: all units of the code for the patient on one date count against the limit, and "
    "units above it are denied (an absolute limit, rarely overturned on appeal)",
    "3": "per day, from clinical data: all units on one date count against the limit; units above it are denied "
    "but may be paid on appeal with documentation of medical necessity",
}
AOC_EDIT_TYPES = {
    "1": "Type 1: paid only with one of the listed primary codes",
    "2": "Type 2: CMS lists no primary codes; each Medicare contractor defines them",
    "3": "Type 3: some primary codes are listed; the Medicare contractor may accept others",
}
CONTRACTOR_DEFINED = "CCCCC"


@dataclass(frozen=True)
class SourceRef:
    """The file a fact came from."""

    kind: str  # sources.kind, or 'cpt-ranges' for facts read from the code number
    file_name: str
    as_of: dt.date | None  # the file's own date (PPRRVU: January 1 of its year; NCCI: first day of its quarter)
    release: str | None  # 'RVU26C', '2026Q2', a TiC version
    publisher: str | None
    payer: str | None
    is_demo: bool = False

    @property
    def label(self) -> str:
        """E.g. 'CMS physician fee schedule relative value file PPRRVU2026_Jul.csv (RVU26C), as of 2026-01-01'."""
        if self.kind == "cpt-ranges":
            return "CPT section ranges (from the code number)"
        if self.kind == "tic-in-network":
            dated = f", as of {self.as_of.isoformat()}" if self.as_of else ""
            return f"{self.payer}'s in-network rate file {self.file_name}{dated}"
        name = KIND_NAMES.get(self.kind, self.kind)
        release = f" ({self.release})" if self.release else ""
        dated = f", as of {self.as_of.isoformat()}" if self.as_of else ""
        demo = " [demo data]" if self.is_demo else ""
        return f"{name} {self.file_name}{release}{dated}{demo}"


CODE_RANGES = SourceRef("cpt-ranges", "", None, None, None, None)


@dataclass(frozen=True)
class Title:
    text: str
    origin: str  # 'record' | 'cms' | 'payer'
    attribution: str  # e.g. "CMS's short descriptor", "the name in Aetna's in-network file"; '' for the record
    source: SourceRef | None


@dataclass(frozen=True)
class PfsLine:
    """The code's unmodified line of the newest fee schedule file, as CMS wrote it."""

    year: int
    description: str | None
    status_code: str | None
    global_days: str | None
    pctc_indicator: str | None
    mult_proc: str | None
    bilat_surg: str | None
    asst_surg: str | None
    co_surg: str | None
    team_surg: str | None
    endo_base: str | None
    nonfacility_na: bool
    facility_na: bool
    work_rvu: float | None
    nonfacility_amount: float | None
    facility_amount: float | None
    conversion_factor: float
    source: SourceRef


@dataclass(frozen=True)
class PolicyRow:
    """One row of the "Medicare payment policy" table."""

    topic: str  # e.g. 'Global surgery period'
    value: str  # CMS's value, e.g. '090'
    meaning: str
    source: SourceRef


@dataclass(frozen=True)
class ModifierRow:
    modifier: str
    description: str
    when_to_use: str
    indicator: str  # e.g. 'bilateral surgery indicator 1'
    source: SourceRef


@dataclass(frozen=True)
class DerivedFact:
    """A fact with a short text, e.g. the add-on status or the site of service, and what it rests on."""

    value: bool | str
    text: str
    source: SourceRef


@dataclass(frozen=True)
class PtpEdit:
    column1: str
    column2: str
    this_code_is: str  # 'column 1' (the other code is not paid with it) or 'column 2' (this code is not paid)
    other_code: str
    other_title: str | None  # the other code's CMS short descriptor, when the fee schedule file has it
    modifier_indicator: str  # '0' | '1' | '9'
    modifier_rule: str
    effective_date: dt.date
    deletion_date: dt.date | None
    rationale: str | None
    line: str  # where in the source file
    source: SourceRef

    @property
    def modifier_allowed(self) -> bool:
        return self.modifier_indicator == "1"


@dataclass(frozen=True)
class MueLimit:
    units: int
    adjudication_indicator: str
    adjudication: str  # what the indicator means
    rationale: str | None
    line: str
    source: SourceRef

    @property
    def text(self) -> str:
        unit = "unit" if self.units == 1 else "units"
        return f"At most {self.units} {unit}, counted {self.adjudication}."


@dataclass(frozen=True)
class AddOnPrimary:
    primary_code: str  # 'CCCCC' for contractor-defined primaries (edit type 2)
    primary_title: str | None
    edit_type: str
    edit_type_meaning: str
    effective_date: dt.date | None
    deletion_date: dt.date | None
    note: str | None
    line: str
    source: SourceRef

    @property
    def contractor_defined(self) -> bool:
        return self.primary_code == CONTRACTOR_DEFINED


@dataclass(frozen=True)
class CodeFacts:
    code: str
    title: Title | None  # CMS's short descriptor, else the payer's item name (never the record's: see merge)
    pfs: PfsLine | None
    payment_policy: tuple[PolicyRow, ...]  # status, global period, PC/TC, multiple procedures, ... (CMS's values)
    modifiers: tuple[ModifierRow, ...]
    add_on: DerivedFact | None  # value: bool
    site_of_service: DerivedFact | None  # value: 'facility' | 'facility or non-facility'
    global_period: DerivedFact | None  # value: CMS's global days; text: the sentence
    service_type: ServiceType | None
    ptp_edits: tuple[PtpEdit, ...]  # active edits, both directions
    mue: MueLimit | None
    add_on_primaries: tuple[AddOnPrimary, ...]
    sources: tuple[SourceRef, ...]  # every file a fact above came from

    @property
    def status(self) -> PolicyRow | None:
        return next((row for row in self.payment_policy if row.topic == "Status"), None)

    @property
    def codes_not_paid_with_this(self) -> tuple[PtpEdit, ...]:
        """Edits where this code is column 1: the other (column 2) code is not paid when billed with this one."""
        return tuple(e for e in self.ptp_edits if e.this_code_is == "column 1")

    @property
    def codes_this_is_not_paid_with(self) -> tuple[PtpEdit, ...]:
        """Edits where this code is column 2: this code is not paid when billed with the other (column 1) one."""
        return tuple(e for e in self.ptp_edits if e.this_code_is == "column 2")

    @property
    def ptp_counts(self) -> dict[tuple[str, str], int]:
        """(this_code_is, modifier_indicator) -> number of edits: a summary for codes with hundreds of pairs."""
        counts: dict[tuple[str, str], int] = {}
        for edit in self.ptp_edits:
            key = (edit.this_code_is, edit.modifier_indicator)
            counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def is_empty(self) -> bool:
        """Nothing but the service type (read from the code number) is known."""
        return self.title is None and self.pfs is None and not self.ptp_edits and self.mue is None


# --- reading the store ------------------------------------------------------------------------------------------


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Table -> columns present (a store made by an older cptpub lacks the NCCI tables and policy columns)."""
    tables: dict[str, set[str]] = {}
    for table, column in con.execute(
        # duckdb_columns() rather than information_schema.columns: the same rows at a third of the cost
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND database_name = current_database()"
    ).fetchall():
        tables.setdefault(table, set()).add(column)
    return tables


# A SourceRef's columns of ``sources s``, selected along with the rows that name the source (one query, not two).
_SOURCE_COLUMNS = "s.kind, s.file_name, s.last_updated_on, s.schema_version, s.publisher, s.payer, s.is_demo"


def _source_ref(source_id: str, columns: tuple) -> SourceRef:
    """The SourceRef of ``_SOURCE_COLUMNS`` read by a LEFT JOIN (all NULL: the id names no source)."""
    if columns[0] is None:  # rows always point at a source; a hand-edited store may break that
        return SourceRef("unknown", source_id[:12], None, None, None, None)
    return SourceRef(*columns)


def _sources(con: duckdb.DuckDBPyConnection, source_ids: list[str]) -> dict[str, SourceRef]:
    rows = con.execute(
        f"SELECT i.id, {_SOURCE_COLUMNS} FROM (SELECT unnest($ids::VARCHAR[]) AS id) i "
        "LEFT JOIN sources s ON s.source_id = i.id",
        {"ids": source_ids},
    ).fetchall()
    return {row[0]: _source_ref(row[0], row[1:]) for row in rows}


_PFS_POLICY = ("pctc_indicator", "mult_proc", "bilat_surg", "asst_surg", "co_surg", "team_surg", "endo_base")


def _pfs_line(con: duckdb.DuckDBPyConnection, code: str, columns: set[str]) -> PfsLine | None:
    """The unmodified line of the newest fee schedule: latest year, then release, then ingest (as benchmarks)."""
    optional = [c if c in columns else f"NULL AS {c}" for c in (*_PFS_POLICY, "nonfacility_na", "facility_na")]
    row = con.execute(
        f"""SELECT p.year, p.description, p.status_code, p.global_days, {", ".join(optional)}, p.work_rvu,
                   p.nonfacility_amount, p.facility_amount, p.conversion_factor, p.source_id, {_SOURCE_COLUMNS}
            FROM medicare_pfs p JOIN sources s USING (source_id)
            WHERE p.hcpcs = ? AND p.modifier IS NULL
            ORDER BY p.year DESC, s.schema_version DESC, s.ingested_at DESC LIMIT 1""",
        [code],
    ).fetchone()
    if row is None:
        return None
    (year, description, status, global_days, pctc, mult, bilat, asst, co, team, endo, nf_na, f_na) = row[:13]
    work, nf_amount, f_amount, factor, source_id = row[13:18]
    return PfsLine(
        year=year,
        description=description,
        status_code=status,
        global_days=global_days,
        pctc_indicator=pctc,
        mult_proc=mult,
        bilat_surg=bilat,
        asst_surg=asst,
        co_surg=co,
        team_surg=team,
        endo_base=endo,
        nonfacility_na=(nf_na or "").strip().upper() == "NA",
        facility_na=(f_na or "").strip().upper() == "NA",
        work_rvu=work,
        nonfacility_amount=nf_amount,
        facility_amount=f_amount,
        conversion_factor=factor,
        source=_source_ref(source_id, row[18:]),
    )


def _titles(con: duckdb.DuckDBPyConnection, codes: set[str]) -> dict[str, str]:
    """CMS's short descriptors of ``codes`` (newest fee schedule year)."""
    if not codes:
        return {}
    rows = con.execute(
        """SELECT hcpcs, description FROM medicare_pfs
           WHERE modifier IS NULL AND description IS NOT NULL AND hcpcs IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY year""",
        [sorted(codes)],
    ).fetchall()
    return dict(rows)


NCCI_KINDS = ("ncci-ptp", "ncci-mue", "ncci-aoc")


def _newest_sources(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Per NCCI kind, the source ids of its newest quarter (several files, e.g. CMS's four PTP parts, share one),
    for practitioner claims (add-on edits name none); one query for the three kinds."""
    rows = con.execute(
        """SELECT kind, source_id FROM (
               SELECT kind, source_id, last_updated_on, max(last_updated_on) OVER (PARTITION BY kind) AS newest
               FROM sources
               WHERE kind IN (SELECT unnest($kinds::VARCHAR[]))
                 AND coalesce(entity_type, 'practitioner') = 'practitioner')
           WHERE last_updated_on = newest""",
        {"kinds": list(NCCI_KINDS)},
    ).fetchall()
    newest: dict[str, list[str]] = {kind: [] for kind in NCCI_KINDS}
    for kind, source_id in rows:
        newest[kind].append(source_id)
    return newest


def _ptp(con: duckdb.DuckDBPyConnection, code: str, ids: list[str]) -> list[PtpEdit]:
    if not ids:
        return []
    rows = con.execute(
        """SELECT p.column1, p.column2, p.modifier_indicator, p.effective_date, p.deletion_date, p.rationale, p.line,
                  p.source_id
           FROM ncci_ptp p JOIN sources s USING (source_id)
           WHERE p.source_id IN (SELECT unnest($ids::VARCHAR[])) AND (p.column1 = $code OR p.column2 = $code)
             AND (p.deletion_date IS NULL OR p.deletion_date > s.last_updated_on)
           ORDER BY p.column1 = $code DESC, p.modifier_indicator, p.column1, p.column2""",
        {"ids": ids, "code": code},
    ).fetchall()
    others = {r[1] if r[0] == code else r[0] for r in rows}
    titles = _titles(con, others)
    sources = _sources(con, ids)
    edits = []
    for column1, column2, modifier, effective, deletion, rationale, line, source_id in rows:
        other = column2 if column1 == code else column1
        edits.append(
            PtpEdit(
                column1=column1,
                column2=column2,
                this_code_is="column 1" if column1 == code else "column 2",
                other_code=other,
                other_title=titles.get(other),
                modifier_indicator=modifier,
                modifier_rule=PTP_MODIFIER[modifier],
                effective_date=effective,
                deletion_date=deletion,
                rationale=rationale,
                line=line,
                source=sources[source_id],
            )
        )
    return edits


def _mue(con: duckdb.DuckDBPyConnection, code: str, ids: list[str]) -> MueLimit | None:
    if not ids:
        return None
    row = con.execute(
        f"""SELECT m.mue_value, m.adjudication_indicator, m.rationale, m.line, m.source_id, {_SOURCE_COLUMNS}
            FROM (SELECT mue_value, adjudication_indicator, rationale, line, source_id FROM ncci_mue
                  WHERE source_id IN (SELECT unnest($ids::VARCHAR[])) AND hcpcs = $code
                  ORDER BY mue_value LIMIT 1) m
            LEFT JOIN sources s USING (source_id)""",
        {"ids": ids, "code": code},
    ).fetchone()
    if row is None:
        return None
    units, indicator, rationale, line, source_id = row[:5]
    source = _source_ref(source_id, row[5:])
    return MueLimit(units, indicator, MUE_ADJUDICATION[indicator], rationale, line, source)


def _aoc(con: duckdb.DuckDBPyConnection, code: str, ids: list[str]) -> list[AddOnPrimary]:
    if not ids:
        return []
    rows = con.execute(
        """SELECT a.primary_code, a.edit_type, a.edit_effective_date, a.edit_deletion_date,
                  a.special_instructions, a.line, a.source_id
           FROM ncci_aoc a JOIN sources s USING (source_id)
           WHERE a.source_id IN (SELECT unnest($ids::VARCHAR[])) AND a.addon_code = $code
             AND (a.edit_deletion_date IS NULL OR a.edit_deletion_date > s.last_updated_on)
             AND (a.primary_deletion_date IS NULL OR a.primary_deletion_date > s.last_updated_on)
           ORDER BY a.primary_code""",
        {"ids": ids, "code": code},
    ).fetchall()
    titles = _titles(con, {r[0] for r in rows})
    sources = _sources(con, ids)
    return [
        AddOnPrimary(
            primary_code=primary,
            primary_title=titles.get(primary),
            edit_type=edit_type,
            edit_type_meaning=AOC_EDIT_TYPES[edit_type],
            effective_date=effective,
            deletion_date=deletion,
            note=note,
            line=line,
            source=sources[source_id],
        )
        for primary, edit_type, effective, deletion, note, line, source_id in rows
    ]


def _payer_title(con: duckdb.DuckDBPyConnection, code: str) -> Title | None:
    """The name payers' files give the code most often (ties: the payer first by name)."""
    row = con.execute(
        f"""SELECT t.item_name, t.payer, t.source_id, {_SOURCE_COLUMNS}
            FROM (SELECT item_name, payer, source_id, count(*) AS n FROM negotiated_rates
                  WHERE billing_code = ? AND item_name IS NOT NULL AND trim(item_name) <> ''
                  GROUP BY ALL ORDER BY n DESC, payer, item_name, source_id LIMIT 1) t
            LEFT JOIN sources s USING (source_id)""",
        [code],
    ).fetchone()
    if row is None:
        return None
    name, payer, source_id = row[:3]
    source = _source_ref(source_id, row[3:])
    return Title(" ".join(name.split()), "payer", f"the name in {payer}'s in-network file", source)


# --- deriving ---------------------------------------------------------------------------------------------------


def _policy_rows(line: PfsLine) -> list[PolicyRow]:
    rows = []
    for topic, value, meanings in (
        ("Status", line.status_code, STATUS_CODES),
        ("Global surgery period", line.global_days, GLOBAL_DAYS),
        ("Professional/technical component (PC/TC)", line.pctc_indicator, PCTC),
        ("Multiple procedures (modifier 51)", line.mult_proc, MULT_PROC),
        ("Bilateral surgery (modifier 50)", line.bilat_surg, BILATERAL),
        ("Assistant at surgery (80, 81, 82, AS)", line.asst_surg, ASSISTANT),
        ("Co-surgeons (modifier 62)", line.co_surg, CO_SURGEONS),
        ("Team surgery (modifier 66)", line.team_surg, TEAM),
    ):
        if value:
            rows.append(
                PolicyRow(
                    topic, value, meanings.get(value, "A value CMS's file description does not list."), line.source
                )
            )
    if line.endo_base:
        rows.append(
            PolicyRow("Endoscopic base code", line.endo_base, "The base endoscopy of this code's family.", line.source)
        )
    if line.nonfacility_na or line.facility_na:
        setting = "non-facility (office)" if line.nonfacility_na else "facility"
        rows.append(
            PolicyRow(
                f"{setting.capitalize()} practice expense",
                "NA",
                f"CMS publishes no {setting} practice expense: the service is not typically done there.",
                line.source,
            )
        )
    return rows


def _add_on(line: PfsLine | None, primaries: list[AddOnPrimary]) -> DerivedFact | None:
    if primaries:
        return DerivedFact(
            True, "An add-on code: NCCI's add-on code edits list its primary codes.", primaries[0].source
        )
    if line is None or not line.global_days:
        return None
    if line.global_days == "ZZZ":
        return DerivedFact(
            True,
            "An add-on code: Medicare's global period ZZZ marks a service billed with a primary procedure.",
            line.source,
        )
    return DerivedFact(False, f"Not an add-on code (Medicare global period {line.global_days}).", line.source)


def _site(line: PfsLine | None) -> DerivedFact | None:
    if line is None:
        return None
    if line.nonfacility_na:
        return DerivedFact(
            "facility",
            "Typically a facility (hospital or ambulatory surgical center): CMS publishes no non-facility (office) "
            "practice expense for it.",
            line.source,
        )
    if line.facility_na:
        return DerivedFact(
            "non-facility",
            "Typically outside a facility: CMS publishes no facility practice expense for it.",
            line.source,
        )
    return DerivedFact(
        "facility or non-facility",
        "Priced by Medicare both in a facility and in the office (non-facility).",
        line.source,
    )


def code_facts(store_path: Path | str, code: str) -> CodeFacts:
    """Everything the public files say about ``code`` (see the module docstring); read-only. A store without
    some of the files (or made before they were kept) gives the facts it can, the rest empty."""
    code = check_code(code)
    store = RatesStore(Path(store_path))
    if not store.exists():
        return _empty(code, service_type(code))
    con, cache = store.connect_with_cache()
    try:
        return facts_from_connection(con, code, cache)
    finally:
        con.close()


def facts_from_connection(con: duckdb.DuckDBPyConnection, code: str, cache: dict[str, Any]) -> CodeFacts:
    """:func:`code_facts` on an open connection. ``cache`` keeps what
    is the same for every code of that version of the store (``RatesStore.connect_with_cache``): its tables and its
    newest NCCI files, read once instead of per code."""
    code = check_code(code)
    kind = service_type(code)
    if "facts.tables" not in cache:
        cache["facts.tables"] = _tables(con)
    tables: dict[str, set[str]] = cache["facts.tables"]
    line = _pfs_line(con, code, tables["medicare_pfs"]) if "medicare_pfs" in tables else None
    newest: dict[str, list[str]] = {}
    if {"ncci_ptp", "ncci_mue", "ncci_aoc"} & tables.keys():
        if "facts.newest_sources" not in cache:
            cache["facts.newest_sources"] = _newest_sources(con)
        newest = cache["facts.newest_sources"]
    ptp = _ptp(con, code, newest["ncci-ptp"]) if "ncci_ptp" in tables else []
    mue = _mue(con, code, newest["ncci-mue"]) if "ncci_mue" in tables else None
    primaries = _aoc(con, code, newest["ncci-aoc"]) if "ncci_aoc" in tables else []
    payer_title = _payer_title(con, code) if "negotiated_rates" in tables else None
    title = payer_title
    if line is not None and line.description:
        title = Title(line.description, "cms", "CMS's short descriptor", line.source)
    modifiers = []
    if line is not None:
        rules = modifier_rules(
            pctc=line.pctc_indicator,
            mult_proc=line.mult_proc,
            bilat=line.bilat_surg,
            asst=line.asst_surg,
            co_surg=line.co_surg,
            team=line.team_surg,
            endo_base=line.endo_base,
            add_on=line.global_days == "ZZZ" or bool(primaries),
        )
        modifiers = [ModifierRow(r.modifier, r.description, r.when_to_use, r.indicator, line.source) for r in rules]
    global_period = None
    if line is not None and line.global_days:
        global_period = DerivedFact(line.global_days, global_period_sentence(line.global_days) or "", line.source)
    sources: list[SourceRef] = []
    for source in (
        title.source if title else None,
        line.source if line else None,
        *(e.source for e in ptp),
        mue.source if mue else None,
        *(p.source for p in primaries),
    ):
        if source is not None and source not in sources:
            sources.append(source)
    return CodeFacts(
        code=code,
        title=title,
        pfs=line,
        payment_policy=tuple(_policy_rows(line)) if line else (),
        modifiers=tuple(modifiers),
        add_on=_add_on(line, primaries),
        site_of_service=_site(line),
        global_period=global_period,
        service_type=kind,
        ptp_edits=tuple(ptp),
        mue=mue,
        add_on_primaries=tuple(primaries),
        sources=tuple(sources),
    )


def _empty(code: str, kind: ServiceType | None) -> CodeFacts:
    return CodeFacts(code, None, None, (), (), None, None, None, kind, (), None, (), ())


# --- merging with the editorial record ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Merged:
    """A record with its empty fields filled from derived facts; ``derived`` names each filled field's source."""

    record: CodeRecord
    derived: dict[str, str]  # field -> attribution, e.g. {"title": "CMS's short descriptor, <file label>"}
    has_record: bool

    def attribution(self, field: str) -> str | None:
        return self.derived.get(field)


def _primary_text(primaries: tuple[AddOnPrimary, ...]) -> str:
    listed = [p for p in primaries if not p.contractor_defined]
    parts = [f"{p.primary_code} ({p.primary_title})" if p.primary_title else p.primary_code for p in listed]
    text = "Billed with a primary procedure: " + ", ".join(parts) if parts else ""
    if any(p.contractor_defined or p.edit_type in ("2", "3") for p in primaries):
        text += ("; " if text else "") + "the Medicare contractor defines (further) primary codes"
    return text + "."


def merge_with_record(record: CodeRecord, facts: CodeFacts, *, has_record: bool = True) -> Merged:
    """``record`` with each empty field filled from ``facts``: title, add-on status, primary procedure, service
    type, sites of service, modifiers. A field the record gives always wins, even when the facts disagree."""
    update: dict[str, object] = {}
    derived: dict[str, str] = {}

    def fill(field: str, value: object, attribution: str) -> None:
        if getattr(record, field) in (None, "", []) and value not in (None, "", []):
            update[field] = value
            derived[field] = attribution

    if facts.title is not None:
        fill(
            "title",
            facts.title.text,
            f"{facts.title.attribution}, {facts.title.source.label if facts.title.source else ''}",
        )
    if facts.add_on is not None:
        fill("add_on", facts.add_on.value, facts.add_on.source.label)
    if facts.add_on_primaries:
        fill("primary_procedure", _primary_text(facts.add_on_primaries), facts.add_on_primaries[0].source.label)
    if facts.service_type is not None:
        fill("service_type", facts.service_type.text, f"{CODE_RANGES.label}: {facts.service_type.basis}")
    if facts.site_of_service is not None:
        sites = ["Facility"] if facts.site_of_service.value == "facility" else ["Office (non-facility)", "Facility"]
        if facts.site_of_service.value == "non-facility":
            sites = ["Office (non-facility)"]
        fill("sites_of_service", sites, facts.site_of_service.source.label)
    if facts.modifiers:
        fill(
            "modifiers",
            [
                Modifier(modifier=m.modifier, description=m.description, when_to_use=m.when_to_use)
                for m in facts.modifiers
            ],
            facts.modifiers[0].source.label,
        )
    return Merged(record.model_copy(update=update), derived, has_record)
