"""Facts derived from CMS's files, each compared with the source row it came from (read here with csv / zipfile /
openpyxl, independently of cptpub's readers), and the record's fields winning over them."""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest

from cptpub.analysis.facts import SourceRef, code_facts, merge_with_record
from cptpub.analysis.service_type import service_type
from cptpub.ingest.ncci import ingest_ncci_file
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.records.schema import CodeRecord
from cptpub.store import RatesStore
from cptpub.store.rates import wide_rows

CMS = Path(__file__).parent / "fixtures" / "cms"
PFS_2026 = CMS / "PPRRVU2026_Jul_nonQPP.excerpt.csv"
PFS_2025 = CMS / "PPRRVU2025_Oct.excerpt.csv"
PTP_ZIP = CMS / "ccipra-v322r0-f1.excerpt.zip"
MUE_CSV = CMS / "MUE_practitioner_2024-07-01.excerpt.csv"
AOC_XLSX = CMS / "AOC_V2026Q2-MCR.excerpt.xlsx"
PTP_AS_OF = dt.date(2026, 7, 1)  # v32.2 = 2026 Q3

# CMS's documented column positions (RVU file layout): 2026 inserted PRIC IND before ENDO BASE
LAYOUT = {
    "description": 2, "status": 3, "nonfacility_na": 7, "facility_na": 9, "pctc": 13, "global": 14, "mult": 18,
    "bilat": 19, "asst": 20, "co": 21, "team": 22,
}  # fmt: skip


def pfs_rows(path: Path) -> dict[str, list[str]]:
    with path.open(newline="", encoding="cp1252") as handle:
        return {row[0]: row for row in csv.reader(handle) if len(row) > 20 and row[0][:1].isalnum() and not row[1]}


def ptp_rows() -> list[list[str]]:
    with zipfile.ZipFile(PTP_ZIP) as archive:
        text = archive.read("ccipra-v322r0-f1.TXT").decode("cp1252")
    rows = [line.split("\t") for line in text.splitlines()]
    return [r for r in rows if len(r) == 7 and r[0][:1].isdigit()]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("facts") / "rates.duckdb"
    store = RatesStore(path)
    ingest_pfs_file(store, PFS_2025)
    ingest_pfs_file(store, PFS_2026)
    for ncci in (PTP_ZIP, MUE_CSV, AOC_XLSX):
        ingest_ncci_file(store, ncci)
    # a payer's rate for a code CMS's excerpt does not hold: its item name is the last fallback title
    with store.transaction() as con:
        con.execute(
            "INSERT INTO sources VALUES ('s-aetna', 'tic-in-network', 'in.json', 'in.json', 'Aetna', "
            "'Aetna Life Insurance Company', 'health insurance issuer', NULL, DATE '2026-10-01', '1.0.0', 1, 0, [], "
            "false, now())"
        )
        with wide_rows(con) as rates:
            con.execute(
                f"INSERT INTO {rates} (source_id, payer, billing_code, billing_code_type, negotiation_arrangement, "
                "item_name, negotiated_type, negotiated_rate, billing_class, service_codes, provider_reference_status) "
                "VALUES ('s-aetna', 'Aetna', '45378', 'CPT', 'ffs', '  COLONOSCOPY  FLEX DX ', 'negotiated', 400, "
                "'professional', ['24'], 'inline')"
            )
    return path


@pytest.mark.parametrize("code", ["20700", "20701", "20702", "20703", "20704", "20705", "99213"])
def test_the_newest_fee_schedule_line_gives_title_status_and_indicators(store_path, code):
    row = pfs_rows(PFS_2026)[code]
    facts = code_facts(store_path, code)
    assert facts.title is not None and facts.title.text == row[LAYOUT["description"]]
    assert (facts.title.origin, facts.title.attribution) == ("cms", "CMS's short descriptor")
    assert facts.title.source is not None and facts.title.source.file_name == PFS_2026.name
    assert facts.title.source.release == "RVU26C"
    pfs = facts.pfs
    assert pfs is not None and pfs.year == 2026
    got = (pfs.status_code, pfs.global_days, pfs.pctc_indicator, pfs.mult_proc, pfs.bilat_surg, pfs.asst_surg)
    assert got == tuple(row[LAYOUT[k]] for k in ("status", "global", "pctc", "mult", "bilat", "asst"))
    assert (pfs.co_surg, pfs.team_surg) == (row[LAYOUT["co"]], row[LAYOUT["team"]])
    assert facts.status is not None and facts.status.value == row[LAYOUT["status"]] == "A"
    assert facts.status.meaning.startswith("Active")
    assert facts.add_on is not None and facts.add_on.value is (row[LAYOUT["global"]] == "ZZZ")
    assert facts.global_period is not None and facts.global_period.value == row[LAYOUT["global"]]


def test_total_knee_from_the_2025_file_facility_only_and_its_modifier_rules(store_path):
    row = pfs_rows(PFS_2025)["27447"]
    facts = code_facts(store_path, "27447")
    assert facts.pfs is not None and facts.pfs.source.file_name == PFS_2025.name  # the 2026 excerpt lacks it
    assert row[LAYOUT["nonfacility_na"]] == "NA" and facts.pfs.nonfacility_na
    assert facts.site_of_service is not None and facts.site_of_service.value == "facility"
    assert "no non-facility" in facts.site_of_service.text
    assert facts.global_period is not None and facts.global_period.text.startswith(
        "Medicare's global surgery period is 90 days (090)"
    )
    rows = {m.modifier: m for m in facts.modifiers}
    assert row[LAYOUT["bilat"]] == "1" and "150%" in rows["50"].when_to_use
    assert rows["50"].indicator == "bilateral surgery indicator 1"
    assert row[LAYOUT["mult"]] == "2" and "50% for each other" in rows["51"].when_to_use
    assert row[LAYOUT["co"]] == "1" and "62.5%" in rows["62"].when_to_use
    assert row[LAYOUT["team"]] == "0" and "does not pay team surgery" in rows["66"].when_to_use
    assert row[LAYOUT["asst"]] == "2" and {"80", "81", "82", "AS"} <= set(rows)
    assert "16%" in rows["80"].when_to_use and "85%" in rows["AS"].when_to_use
    assert row[LAYOUT["pctc"]] == "0" and not {"26", "TC"} & set(rows)
    topics = {r.topic: r.value for r in facts.payment_policy}
    assert topics["Global surgery period"] == "090" and topics["Non-facility (office) practice expense"] == "NA"


def test_assistant_never_paid_and_add_on_exemption_for_64484(store_path):
    row = pfs_rows(PFS_2025)["64484"]
    facts = code_facts(store_path, "64484")
    rows = {m.modifier: m for m in facts.modifiers}
    assert row[LAYOUT["asst"]] == "1" and "never pays an assistant" in rows["80"].when_to_use
    assert row[LAYOUT["mult"]] == "0" and "add-on codes are exempt" in rows["51"].when_to_use
    assert facts.site_of_service is not None and facts.site_of_service.value == "facility or non-facility"


@pytest.mark.parametrize("code", ["27447", "64483", "64484", "20610", "99213", "11042"])
def test_ptp_edits_in_both_directions_equal_the_active_rows_of_the_file(store_path, code):
    def active(r: list[str]) -> bool:
        return r[4] == "*" or dt.date(int(r[4][:4]), int(r[4][4:6]), int(r[4][6:])) > PTP_AS_OF

    expected = {(r[0], r[1], r[5], r[6]) for r in ptp_rows() if code in (r[0], r[1]) and active(r)}
    facts = code_facts(store_path, code)
    assert {(e.column1, e.column2, e.modifier_indicator, e.rationale) for e in facts.ptp_edits} == expected
    for edit in facts.ptp_edits:
        assert edit.this_code_is == ("column 1" if edit.column1 == code else "column 2")
        assert edit.other_code == (edit.column2 if edit.column1 == code else edit.column1)
        assert edit.modifier_allowed is (edit.modifier_indicator == "1")
        assert edit.source.file_name == PTP_ZIP.name and edit.line.startswith(f"{PTP_ZIP}!ccipra-v322r0-f1.TXT:")
    assert {e.other_code for e in facts.codes_not_paid_with_this} == {r[1] for r in expected if r[0] == code}
    assert {e.other_code for e in facts.codes_this_is_not_paid_with} == {r[0] for r in expected if r[1] == code}


def test_a_deleted_edit_is_not_listed_and_modifier_0_says_no_bypass(store_path):
    facts = code_facts(store_path, "27447")
    assert "27332" not in {e.other_code for e in facts.ptp_edits}  # deleted 2010-03-31
    assert facts.ptp_counts == {("column 1", "1"): 2}
    guidance = code_facts(store_path, "64483")
    edit = next(e for e in guidance.ptp_edits if e.other_code == "77003")
    assert edit.modifier_indicator == "0" and edit.modifier_rule.startswith("No modifier bypasses this edit")
    assert edit.other_title is None  # 77003 is not in the fee schedule excerpt


@pytest.mark.parametrize("code", ["11042", "11045", "27447", "64484", "99292"])
def test_units_per_day_equal_the_mue_row(store_path, code):
    with MUE_CSV.open(newline="") as handle:
        row = next(r for r in csv.reader(handle) if r[0] == code)
    mue = code_facts(store_path, code).mue
    assert mue is not None
    assert (mue.units, mue.adjudication_indicator, mue.rationale) == (int(row[1]), row[2], row[3])
    assert mue.text.startswith(f"At most {row[1]} unit")
    assert ("per claim line", "by CMS policy", "from clinical data")[int(row[2]) - 1] in mue.adjudication


@pytest.mark.parametrize("code", ["11008", "22614", "64484", "99292", "0054T"])
def test_primary_codes_of_an_add_on_equal_the_aoc_rows(store_path, code):
    sheet = openpyxl.load_workbook(AOC_XLSX, read_only=True).worksheets[0]
    expected = {(str(r[3]), str(r[0])) for r in sheet.iter_rows(min_row=3, values_only=True) if r[1] == code}
    facts = code_facts(store_path, code)
    assert {(p.primary_code, p.edit_type) for p in facts.add_on_primaries} == expected
    assert facts.add_on is not None and facts.add_on.value is True
    merged = merge_with_record(CodeRecord(), facts, has_record=False)
    if code == "0054T":
        assert facts.add_on_primaries[0].contractor_defined
        assert "contractor defines" in (merged.record.primary_procedure or "")
    else:
        assert all(p in (merged.record.primary_procedure or "") for p, _ in expected)
    assert merged.derived["primary_procedure"].startswith("CMS NCCI add-on code edits AOC_V2026Q2-MCR")


def test_64484_primary_carries_its_cms_title(store_path):
    (primary,) = code_facts(store_path, "64484").add_on_primaries
    assert (primary.primary_code, primary.primary_title) == ("64483", pfs_rows(PFS_2025)["64483"][2])
    assert primary.effective_date == dt.date(2013, 4, 1)


def test_the_payer_item_name_is_the_last_fallback_title(store_path):
    facts = code_facts(store_path, "45378")
    assert facts.pfs is None and facts.title is not None
    assert (facts.title.text, facts.title.origin) == ("COLONOSCOPY FLEX DX", "payer")
    assert facts.title.attribution == "the name in Aetna's in-network file"
    assert (
        facts.title.source is not None
        and facts.title.source.label == "Aetna's in-network rate file in.json, as of 2026-10-01"
    )
    assert facts.service_type is not None and facts.service_type.subsection == "Digestive System"


def test_a_rate_whose_source_row_is_gone_names_an_unknown_file(tmp_path):
    """A hand-edited store: the title still comes from the rate, its source is labelled as unknown."""
    store = RatesStore(tmp_path / "rates.duckdb")
    with store.transaction() as con, wide_rows(con) as rates:
        con.execute(
            f"INSERT INTO {rates} (source_id, payer, billing_code, billing_code_type, negotiation_arrangement, "
            "item_name, negotiated_type, negotiated_rate, billing_class, service_codes, provider_reference_status) "
            "VALUES ('0123456789abcdef', 'Aetna', '45380', 'CPT', 'ffs', 'COLONOSCOPY BIOPSY', 'negotiated', 500, "
            "'professional', ['24'], 'inline')"
        )
    facts = code_facts(store.path, "45380")
    assert facts.title is not None and facts.title.text == "COLONOSCOPY BIOPSY"
    assert facts.title.source == SourceRef("unknown", "0123456789ab", None, None, None, None)
    assert facts.sources == (facts.title.source,)


def test_a_code_nothing_is_known_about(store_path, tmp_path):
    facts = code_facts(store_path, "0042T")
    assert facts.is_empty and facts.title is None and facts.modifiers == () and facts.sources == ()
    assert facts.service_type is not None and facts.service_type.code_set == "CPT Category III"
    assert code_facts(tmp_path / "missing.duckdb", "99213").is_empty


def test_record_fields_always_win(store_path):
    facts = code_facts(store_path, "27447")
    record = CodeRecord(title="Knee replacement", add_on=True, sites_of_service=["Inpatient hospital"])
    merged = merge_with_record(record, facts)
    assert merged.record.title == "Knee replacement"
    assert merged.record.add_on is True  # the record says so, though the fee schedule's 090 says otherwise
    assert merged.record.sites_of_service == ["Inpatient hospital"]
    assert merged.record.service_type == "Surgery: Musculoskeletal System (CPT Category I)"
    assert {m.modifier for m in merged.record.modifiers or []} >= {"50", "51", "62", "66", "80"}
    assert set(merged.derived) == {"service_type", "modifiers"}
    assert merged.has_record
    empty = merge_with_record(CodeRecord(), facts, has_record=False)
    assert (empty.record.title, empty.record.add_on, empty.record.sites_of_service) == (
        "Total knee arthroplasty",
        False,
        ["Facility"],
    )
    assert empty.derived["title"].startswith("CMS's short descriptor, CMS physician fee schedule relative value file")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("99213", "Evaluation and Management: Office or other outpatient services (CPT Category I)"),
        ("00840", "Anesthesia (CPT Category I)"),
        ("20702", "Surgery: Musculoskeletal System (CPT Category I)"),
        ("70450", "Radiology: Diagnostic Radiology (Diagnostic Imaging) (CPT Category I)"),
        ("85025", "Pathology and Laboratory: Hematology and Coagulation (CPT Category I)"),
        ("97110", "Medicine: Physical Medicine and Rehabilitation (CPT Category I)"),
        ("0001F", "Performance measurement (CPT Category II)"),
        ("0042T", "Emerging technology (CPT Category III)"),
        ("J3490", "Drugs administered other than by mouth, and chemotherapy drugs (HCPCS Level II)"),
        ("G0121", "Procedures and professional services (temporary) (HCPCS Level II)"),
    ],
)
def test_service_type_from_the_code_number(code, text):
    kind = service_type(code)
    assert kind is not None and kind.text == text


def test_a_store_made_before_the_policy_columns_is_read_then_migrated(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(  # medicare_pfs and sources as cptpub created them before this change
        """CREATE TABLE sources (source_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, path VARCHAR NOT NULL,
           file_name VARCHAR NOT NULL, payer VARCHAR NOT NULL, publisher VARCHAR, entity_type VARCHAR, plans VARCHAR,
           last_updated_on DATE, schema_version VARCHAR, rows_kept BIGINT NOT NULL, items_skipped BIGINT NOT NULL,
           warnings VARCHAR[], is_demo BOOLEAN NOT NULL, ingested_at TIMESTAMP NOT NULL);
           CREATE TABLE medicare_pfs (source_id VARCHAR NOT NULL, year INTEGER NOT NULL, hcpcs VARCHAR NOT NULL,
           modifier VARCHAR, description VARCHAR, status_code VARCHAR, work_rvu DOUBLE, nonfacility_pe_rvu DOUBLE,
           facility_pe_rvu DOUBLE, mp_rvu DOUBLE, nonfacility_total DOUBLE, facility_total DOUBLE, global_days VARCHAR,
           conversion_factor DOUBLE NOT NULL, nonfacility_amount DOUBLE, facility_amount DOUBLE);
           INSERT INTO sources VALUES ('old', 'pprrvu', 'p.csv', 'p.csv', 'Medicare', 'CMS', NULL, NULL,
           DATE '2024-01-01', 'RVU24A', 1, 0, [], false, now());
           INSERT INTO medicare_pfs VALUES ('old', 2024, '99213', NULL, 'Office o/p est low 20 min', 'A', 1.3, 1.16,
           0.55, 0.1, 2.56, 1.95, 'XXX', 33.2875, 85.22, 64.91);"""
    )
    con.close()
    facts = code_facts(path, "99213")  # read-only: no NCCI tables, no policy columns
    assert facts.title is not None and facts.title.text == "Office o/p est low 20 min"
    assert facts.pfs is not None and facts.pfs.pctc_indicator is None and facts.modifiers == ()
    assert facts.ptp_edits == () and facts.mue is None
    ingest_pfs_file(RatesStore(path), PFS_2026)  # a read-write connection migrates the store first
    con = RatesStore(path).connect()
    assert con.execute(
        "SELECT year, pctc_indicator, pricing_indicator FROM medicare_pfs WHERE hcpcs = '99213' ORDER BY year"
    ).fetchall() == [(2024, None, None), (2026, "0", "9")]
    con.close()
    facts = code_facts(path, "99213")
    assert facts.pfs is not None and facts.pfs.year == 2026 and facts.pfs.pctc_indicator == "0"


def test_facts_read_again_after_an_ingest_see_the_new_files(tmp_path):
    """What facts keep per version of the store (its tables, its newest NCCI files) is read again from a new version:
    NCCI files ingested after a first read in the same process show up in the next read."""
    store = RatesStore(tmp_path / "rates.duckdb")
    ingest_pfs_file(store, PFS_2025)
    before = code_facts(store.path, "27447")
    assert before.pfs is not None and before.ptp_edits == () and before.mue is None
    for ncci in (PTP_ZIP, MUE_CSV):
        ingest_ncci_file(store, ncci)
    after = code_facts(store.path, "27447")
    assert len(after.ptp_edits) > 0 and after.mue is not None
