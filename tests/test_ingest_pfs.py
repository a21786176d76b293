"""Ingest of CMS's PPRRVU file: header found by content, columns by their header words, amounts to the cent.

``pprrvu_csv`` writes the layout of CMS's real files (2020-2025; 2026 adds a PRIC IND column): title and
copyright lines padded with commas, a column header split over two rows, quoted descriptions, CRLF line ends.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from cptpub.errors import IngestError, UsageError
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.store import RatesStore

# The two header rows of the real file, column by column (upper row, lower row).
HEADER = [
    ("", "HCPCS"), ("", "MOD"), ("", "DESCRIPTION"), ("STATUS", "CODE"), ("NOT USED FOR MEDICARE", "PAYMENT"),
    ("WORK", "RVU"), ("NON-FAC", "PE RVU"), ("NA", "INDICATOR"), ("FACILITY", "PE RVU"), ("NA", "INDICATOR"),
    ("MP", "RVU"), ("NON-FACILITY", "TOTAL"), ("FACILITY", "TOTAL"), ("PCTC", "IND"), ("GLOB", "DAYS"),
    ("PRE", "OP"), ("INTRA", "OP"), ("POST", "OP"), ("MULT", "PROC"), ("BILAT", "SURG"), ("ASST", "SURG"),
    ("CO-", "SURG"), ("TEAM", "SURG"), ("ENDO", "BASE"), ("CONV", "FACTOR"),
    ("PHYSICIAN SUPERVISION OF", "DIAGNOSTIC PROCEDURES"), ("CALCULATION", "FLAG"),
    ("DIAGNOSTIC IMAGING", "FAMILY INDICATOR"),
    ("NON-FACILITY PE USED FOR OPPS", "PAYMENT AMOUNT"), ("FACILITY PE USED FOR OPPS", "PAYMENT AMOUNT"),
    ("MP USED FOR OPPS", "PAYMENT AMOUNT"),
]  # fmt: skip
WIDTH = len(HEADER)
CF_2024 = "33.2875"

# (code, modifier, description, status, work, non-facility PE, NA, facility PE, mp, global days)
LINES = [
    ("99213", "", "Office o/p est low 20 min", "A", "1.30", "1.16", "", "0.55", "0.10", "XXX"),
    ("27447", "", "Total knee arthroplasty", "A", "19.60", "0.00", "NA", "10.96", "3.80", "090"),
    ("70450", "", "Ct head/brain w/o dye", "A", "0.85", "2.75", "", "2.75", "0.05", "XXX"),
    ("70450", "26", "Ct head/brain w/o dye", "A", "0.85", "0.34", "", "0.34", "0.04", "XXX"),
    ("70450", "TC", "Ct head/brain w/o dye", "A", "0.00", "2.41", "", "2.41", "0.01", "XXX"),
    ("0001F", "", "Heart failure composite, measure", "M", "0.00", "0.00", "", "0.00", "0.00", "XXX"),
    ("J3490", "", 'Drugs "unclassified", injection', "C", "0.00", "0.00", "", "0.00", "0.00", "XXX"),
]


def _total(*parts: str) -> str:
    return f"{sum(float(p) for p in parts):.2f}"


def _data_row(line: tuple, cf: str, extra_column: bool) -> list[str]:
    code, mod, description, status, work, nf_pe, na, f_pe, mp, glob = line
    row = [code, mod, description, status, "", work, nf_pe, na, f_pe, "", mp, _total(work, nf_pe, mp),
           _total(work, f_pe, mp), "0", glob, "0.00", "0.00", "0.00", "0", "0", "0", "0", "0", "",
           cf, "09", "", "99", "0.00", "0.00", "0.00"]  # fmt: skip
    if extra_column:
        row.insert(23, "0")
    return row


def pprrvu_csv(
    *,
    title: str = "2024 National Physician Fee Schedule Relative Value File January Release",
    lines: list[tuple] = LINES,
    cf: str = CF_2024,
    extra_column: bool = False,
    status_row_first: bool = True,
) -> bytes:
    header = list(HEADER)
    if extra_column:  # 2026: PRIC IND before the conversion factor
        header.insert(23, ("PRIC", "IND"))
    width = len(header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def padded(text: str) -> list[str]:
        return ["", "", text] + [""] * (width - 3)

    writer.writerow(padded(title))
    writer.writerow(
        padded("CPT codes and descriptions only are copyright 2023 American Medical Association. All Rights Reserved.")
    )
    writer.writerow(
        padded("Dental codes (D codes) are copyright 2023 American Dental Association. All Rights Reserved.")
    )
    writer.writerow(padded("Applicable FARS/DFARS Restrictions Apply to Government Use."))
    writer.writerow([""] * width)
    upper, lower = [u for u, _ in header], [v for _, v in header]
    for row in (upper, lower) if status_row_first else (lower, upper):
        writer.writerow(row)
    for line in lines:
        writer.writerow(_data_row(line, cf, extra_column))
    return out.getvalue().encode("cp1252")


@pytest.fixture
def store(tmp_path: Path) -> RatesStore:
    return RatesStore(tmp_path / "rates.duckdb")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _rows(store: RatesStore) -> list[tuple]:
    con = store.connect(read_only=True)
    try:
        return con.execute(
            """SELECT hcpcs, modifier, description, status_code, work_rvu, nonfacility_pe_rvu, facility_pe_rvu, mp_rvu,
                      nonfacility_total, facility_total, global_days, conversion_factor, nonfacility_amount,
                      facility_amount, year
               FROM medicare_pfs ORDER BY hcpcs, modifier NULLS FIRST"""
        ).fetchall()
    finally:
        con.close()


def _source(store: RatesStore) -> dict:
    con = store.connect(read_only=True)
    try:
        cursor = con.execute("SELECT * FROM sources")
        (row,) = cursor.fetchall()
        return dict(zip([d[0] for d in cursor.description], row, strict=True))
    finally:
        con.close()


def test_a_2024_file(store, tmp_path):
    path = _write(tmp_path, "PPRRVU24_JAN.csv", pprrvu_csv())
    result = ingest_pfs_file(store, path, codes={"99213", "27447", "70450"})
    cf, ct = 33.2875, "Ct head/brain w/o dye"
    # amounts: total RVUs x 33.2875, half-up to cents, e.g. 2.56 x 33.2875 = 85.216 -> 85.22
    assert _rows(store) == [
        ("27447", None, "Total knee arthroplasty", "A", 19.6, 0.0, 10.96, 3.8, 23.4, 34.36, "090", cf, 778.93, 1143.76,
         2024),
        ("70450", None, ct, "A", 0.85, 2.75, 2.75, 0.05, 3.65, 3.65, "XXX", cf, 121.50, 121.50, 2024),
        ("70450", "26", ct, "A", 0.85, 0.34, 0.34, 0.04, 1.23, 1.23, "XXX", cf, 40.94, 40.94, 2024),
        ("70450", "TC", ct, "A", 0.0, 2.41, 2.41, 0.01, 2.42, 2.42, "XXX", cf, 80.56, 80.56, 2024),
        ("99213", None, "Office o/p est low 20 min", "A", 1.3, 1.16, 0.55, 0.1, 2.56, 1.95, "XXX", cf, 85.22, 64.91,
         2024),
    ]  # fmt: skip
    source = _source(store)
    assert source == {
        **source,
        "source_id": hashlib.sha256(path.read_bytes()).hexdigest(),
        "kind": "pprrvu",
        "file_name": "PPRRVU24_JAN.csv",
        "payer": "Medicare",
        "publisher": "CMS",
        "last_updated_on": dt.date(2024, 1, 1),
        "schema_version": "RVU24A",
        "rows_kept": 5,
        "items_skipped": 2,
        "is_demo": False,
    }
    assert (result.status, result.rows_kept, result.items_skipped) == ("ingested", 5, 2)


def test_the_2026_layout_with_its_extra_column(store, tmp_path):
    data = pprrvu_csv(
        title="2026 National Physician Fee Schedule Relative Value File October Release",
        cf="33.4009",
        extra_column=True,
    )
    ingest_pfs_file(store, _write(tmp_path, "PPRRVU2026_Oct_nonQPP.csv", data), codes={"99213"})
    (row,) = _rows(store)
    assert row[11:] == (33.4009, 85.51, 65.13, 2026)  # 2.56 x 33.4009 = 85.506, 1.95 x 33.4009 = 65.131755
    assert _source(store)["schema_version"] == "RVU26D"


def test_the_two_header_rows_in_either_order(store, tmp_path):
    path = _write(tmp_path, "PPRRVU24_JAN.csv", pprrvu_csv(status_row_first=False))
    ingest_pfs_file(store, path, codes={"99213"})
    assert _rows(store)[0][:12] == ("99213", None, "Office o/p est low 20 min", "A", 1.3, 1.16, 0.55, 0.1, 2.56,
                                    1.95, "XXX", 33.2875)  # fmt: skip


def test_the_zip_cms_publishes(store, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("RVUPUF24.pdf", b"%PDF-1.4")
        archive.writestr("PPRRVU24_JAN.xlsx", b"PK")
        archive.writestr("PPRRVU24_JAN.csv", pprrvu_csv())
        archive.writestr("GPCI2024.csv", b"locality data")
    path = _write(tmp_path, "rvu24a.zip", buffer.getvalue())
    result = ingest_pfs_file(store, path, codes={"27447"})
    assert result.source_id == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _rows(store)[0][0::12] == ("27447", 778.93)
    assert _source(store)["schema_version"] == "RVU24A"


def test_the_year_from_the_title_the_file_name_or_the_option(store, tmp_path):
    untitled = pprrvu_csv(title="National Physician Fee Schedule Relative Value File")
    ingest_pfs_file(store, _write(tmp_path, "PPRRVU23_JUL.csv", untitled), codes={"99213"})
    assert (_rows(store)[0][-1], _source(store)["schema_version"]) == (2023, "RVU23C")
    with pytest.raises(UsageError, match="pass --year"):
        ingest_pfs_file(store, _write(tmp_path, "rates.csv", untitled + b"\r\n"), codes={"99213"})
    result = ingest_pfs_file(store, tmp_path / "rates.csv", codes={"99213"}, year=2022)
    con = store.connect(read_only=True)
    assert con.execute("SELECT year FROM medicare_pfs WHERE source_id = ?", [result.source_id]).fetchone() == (2022,)


def test_amounts_round_half_up_on_the_exact_decimals(store, tmp_path):
    """1.45 x 32.5 = 47.125 exactly: 47.13 (binary floats would give 47.12)."""
    lines = [("99213", "", "Office visit", "A", "1.00", "0.40", "", "0.40", "0.05", "XXX")]
    ingest_pfs_file(store, _write(tmp_path, "PPRRVU21_JAN.csv", pprrvu_csv(lines=lines, cf="32.5000")), codes={"99213"})
    assert _rows(store)[0][12:14] == (47.13, 47.13)


def test_the_demo_fee_schedule_is_cms_data_and_matches_the_generators_amounts(store, tmp_path):
    from cptpub.demo import DEMO_CODES, write_demo_inputs
    from cptpub.demo.generator import medicare_amounts

    inputs = write_demo_inputs(tmp_path / "demo")
    result = ingest_pfs_file(store, inputs.pprrvu_file, codes=set(DEMO_CODES))
    assert not result.is_demo and not _source(store)["is_demo"]  # CMS's values: the edition must not call them demo
    assert {row[0]: (row[12], row[13]) for row in _rows(store)} == {c: medicare_amounts(c) for c in DEMO_CODES}
    assert {row[-1] for row in _rows(store)} == {2026}
    assert result.schema_version == "RVU26C"


def test_a_fee_schedule_file_marked_demo_is_flagged(store, tmp_path):
    from cptpub.demo import DEMO_MARKER

    title = f"{DEMO_MARKER} 2024 National Physician Fee Schedule Relative Value File January Release"
    result = ingest_pfs_file(store, _write(tmp_path, "PPRRVU24_JAN.csv", pprrvu_csv(title=title)), codes={"99213"})
    assert result.is_demo and _source(store)["is_demo"]


def test_reingest_is_a_no_op_and_replace_reloads(store, tmp_path):
    path = _write(tmp_path, "PPRRVU24_JAN.csv", pprrvu_csv())
    ingest_pfs_file(store, path, codes={"99213"})
    assert ingest_pfs_file(store, path, codes={"99213"}).status == "unchanged"
    replaced = ingest_pfs_file(store, path, codes={"99213", "27447"}, replace=True)
    assert replaced.status == "replaced"
    assert [row[0] for row in _rows(store)] == ["27447", "99213"]
    assert _source(store)["rows_kept"] == 2


def test_a_file_that_is_not_pprrvu(store, tmp_path):
    path = _write(tmp_path, "GPCI2024.csv", b"Locality,State,PW GPCI\r\n01,AL,1.000\r\n")
    with pytest.raises(IngestError, match="not a PPRRVU file: no column header starting HCPCS,MOD"):
        ingest_pfs_file(store, path, codes={"99213"})


def test_a_bad_number_names_the_line(store, tmp_path):
    data = pprrvu_csv().replace(
        b"99213,,Office o/p est low 20 min,A,,1.30,", b"99213,,Office o/p est low 20 min,A,,1.3O,"
    )
    path = _write(tmp_path, "PPRRVU24_JAN.csv", data)
    with pytest.raises(IngestError, match=r"PPRRVU24_JAN.csv:8: work rvu must be a number, got '1.3O'"):
        ingest_pfs_file(store, path, codes={"99213"})
