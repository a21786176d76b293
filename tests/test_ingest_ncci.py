"""Ingest of CMS's NCCI files (PTP, MUE, add-on code edits) as CMS publishes them.

Each stored row is compared with an independent read of the fixture (csv / openpyxl here, not cptpub's reader);
bad input gives one error naming the file and the line or sheet row; mutated files (hypothesis) either load or fail
that way, never with another exception.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cptpub.errors import IngestError
from cptpub.ingest.ncci import ingest_ncci_file
from cptpub.store import RatesStore

CMS = Path(__file__).parent / "fixtures" / "cms"
PTP_ZIP = CMS / "ccipra-v322r0-f1.excerpt.zip"
PTP_MEMBER = "ccipra-v322r0-f1.TXT"
MUE_CSV = CMS / "MUE_practitioner_2024-07-01.excerpt.csv"
AOC_XLSX = CMS / "AOC_V2026Q2-MCR.excerpt.xlsx"


@pytest.fixture
def store(tmp_path: Path) -> RatesStore:
    return RatesStore(tmp_path / "rates.duckdb")


def query(store: RatesStore, sql: str) -> list[tuple]:
    con = store.connect(read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def ptp_text() -> str:
    with zipfile.ZipFile(PTP_ZIP) as archive:
        return archive.read(PTP_MEMBER).decode("cp1252")


def ymd(text: str) -> dt.date | None:
    return None if text in ("", "*") else dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def test_ptp_zip_rows_equal_the_tab_delimited_text(store):
    result = ingest_ncci_file(store, PTP_ZIP)
    assert (result.kind, result.status, result.schema_version) == ("ncci-ptp", "ingested", "2026Q3")
    lines = ptp_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Column 1\t"))
    expected = [
        (c[0], c[1], c[2] == "*", ymd(c[3]), ymd(c[4]), c[5], c[6], f"{PTP_ZIP}!{PTP_MEMBER}:{number}")
        for number, c in ((n + 1, line.split("\t")) for n, line in enumerate(lines) if n > header)
    ]
    stored = query(
        store,
        "SELECT column1, column2, prior_1996, effective_date, deletion_date, modifier_indicator, rationale, line "
        "FROM ncci_ptp ORDER BY line",
    )
    assert sorted(stored, key=lambda r: r[-1]) == sorted(expected, key=lambda r: r[-1])
    assert result.rows_kept == len(expected) == 9
    source = query(store, "SELECT kind, entity_type, last_updated_on, file_name, source_id FROM sources")
    assert source[0][:4] == ("ncci-ptp", "practitioner", dt.date(2026, 7, 1), PTP_ZIP.name)
    assert source[0][4] == result.source_id and len(result.source_id) == 64


def test_mue_rows_equal_the_csv(store):
    result = ingest_ncci_file(store, MUE_CSV)
    assert (result.kind, result.schema_version) == ("ncci-mue", "2024Q3")
    with MUE_CSV.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "HCPCS/CPT Code",
        "Practitioner Services MUE Values",
        "MUE Adjudication Indicator",
        "MUE Rationale",
    ]
    expected = sorted((r[0], int(r[1]), r[2], r[3]) for r in rows[1:])
    stored = query(store, "SELECT hcpcs, mue_value, adjudication_indicator, rationale FROM ncci_mue ORDER BY hcpcs")
    assert stored == expected
    assert query(store, "SELECT entity_type, last_updated_on FROM sources") == [("practitioner", dt.date(2024, 7, 1))]


def test_aoc_workbook_rows_equal_the_sheet_with_ccyyddd_dates(store):
    result = ingest_ncci_file(store, AOC_XLSX)
    assert (result.kind, result.schema_version) == ("ncci-aoc", "2026Q2")
    book = openpyxl.load_workbook(AOC_XLSX, read_only=True)
    sheet = book.worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    assert values[1][:4] == ("AOC_Edit_Type", "Add-On_Code", "AOC_DelDT", "Primary_Code")

    def julian(value: object) -> dt.date | None:  # CCYYDDD
        if value is None:
            return None
        text = str(value)
        return dt.date(int(text[:4]), 1, 1) + dt.timedelta(days=int(text[4:]) - 1)

    expected = sorted((str(r[0]), r[1], r[3], julian(r[5]), r[7]) for r in values[2:])
    stored = query(
        store,
        "SELECT edit_type, addon_code, primary_code, edit_effective_date, special_instructions FROM ncci_aoc "
        "ORDER BY ALL",
    )
    assert stored == expected
    assert julian("2013091") == dt.date(2013, 4, 1)
    assert ("1", "64484", "64483", dt.date(2013, 4, 1), None) in stored


def test_the_same_table_as_csv_or_txt_outside_a_zip_and_reingest(store, tmp_path):
    text = ptp_text()
    plain = tmp_path / "PTP_practitioner_2026Q3.txt"
    plain.write_text(text, encoding="cp1252")
    as_csv = tmp_path / "PTP_practitioner_2026Q3.csv"
    with as_csv.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(line.split("\t") for line in text.splitlines())
    assert ingest_ncci_file(store, plain).rows_kept == 9
    assert ingest_ncci_file(store, as_csv).rows_kept == 9
    assert ingest_ncci_file(store, plain).status == "unchanged"
    assert ingest_ncci_file(store, plain, replace=True).status == "replaced"
    assert query(store, "SELECT count(*) FROM ncci_ptp") == [(18,)]


@pytest.mark.parametrize(
    ("version", "quarter"),
    # CMS dates its PTP releases by version: 31.2 took effect on 1 July 2025 and 31.3 on 1 October 2025 (American
    # Academy of Dermatology, "CMS releases 2025 third and fourth quarter NCCI edits", DermWorld, March 2026).
    [("v312r0", dt.date(2025, 7, 1)), ("v313r0", dt.date(2025, 10, 1)), ("v320r0", dt.date(2026, 1, 1))],
)
def test_the_ptp_version_in_the_name_dates_the_release(store, tmp_path, version, quarter):
    path = tmp_path / f"ccipra-{version}-f1.txt"
    path.write_text(ptp_text(), encoding="cp1252")
    ingest_ncci_file(store, path)
    assert query(store, "SELECT last_updated_on FROM sources WHERE kind = 'ncci-ptp'") == [(quarter,)]


def test_a_two_row_header_and_a_readme_beside_the_table(store, tmp_path):
    lines = ptp_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Column 1\t"))
    lines[header : header + 1] = [
        "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion Date\tModifier\tPTP Edit Rationale",
        "\t\tprior to 1996\tDate\t*=no data\t0=not allowed 1=allowed 9=not applicable\t",
    ]
    path = tmp_path / "ccipra-v320r0-f2.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ccipra-v320r0-f2.txt", "\r\n".join(lines))
        archive.writestr("Read me.txt", "NCCI PTP edits, practitioner services.\r\nSee the policy manual.\r\n")
    result = ingest_ncci_file(store, path)
    assert result.rows_kept == 9 and result.schema_version == "2026Q1"
    assert result.warnings == [f"skipped {path}!Read me.txt: not an NCCI table"]


@pytest.mark.parametrize(
    ("edit", "message", "line"),
    [
        (("\t1\tStandards", "\t7\tStandards"), "modifier indicator: expected 0, 1 or 9, got '7'", 5),
        (("20610\t99213\t\t20020101", "20610\t99213\t\t20021341"), "effective date: expected a date", 5),
        (("27447\t20610", "2744\t20610"), "column1: expected a 5-character code, got '2744'", 6),
        (("27447\t27310\t*", "27447\t27310\tY"), "pre-1996 flag: expected '*' or nothing, got 'Y'", 7),
    ],
)
def test_a_bad_ptp_row_names_the_member_and_line(store, tmp_path, edit, message, line):
    path = tmp_path / "ccipra-v322r0-f1.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(PTP_MEMBER, ptp_text().replace(*edit, 1))
    with pytest.raises(IngestError) as caught:
        ingest_ncci_file(store, path)
    assert caught.value.where == f"{path}!{PTP_MEMBER}:{line}"
    assert message in caught.value.message
    assert not store.exists() or query(store, "SELECT count(*) FROM sources") == [(0,)]  # nothing half-written


def test_a_bad_mue_value_and_a_bad_aoc_cell_name_their_place(store, tmp_path):
    path = tmp_path / "MUE_practitioner_2024-07-01.csv"
    path.write_text(MUE_CSV.read_text().replace("27447,1,2", "27447," + "9" * 5000 + ",2"))
    with pytest.raises(IngestError, match=r"MUE value: expected a whole number of units") as caught:
        ingest_ncci_file(store, path)
    assert caught.value.where == f"{path}:7"

    book = openpyxl.load_workbook(AOC_XLSX)
    book.worksheets[0]["F4"] = "2013400"  # day 400 of a year
    bad = tmp_path / "AOC_V2026Q2-MCR.xlsx"
    book.save(bad)
    with pytest.raises(IngestError, match="edit effective date: expected a date") as caught:
        ingest_ncci_file(store, bad)
    assert caught.value.where == f"{bad}!AOC_V2026Q2-MCR_xlsx:4"


def test_not_an_ncci_file_and_an_unknown_quarter(store, tmp_path):
    other = tmp_path / "notes_2026Q1.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(IngestError, match="not an NCCI file: no PTP, MUE or add-on code column header") as caught:
        ingest_ncci_file(store, other)
    assert caught.value.where == str(other)

    undated = tmp_path / "mue.csv"
    shutil.copy(MUE_CSV, undated)
    with pytest.raises(IngestError, match="cannot tell the quarter") as caught:
        ingest_ncci_file(store, undated)
    assert "--as-of" in str(caught.value)
    assert ingest_ncci_file(store, undated, as_of=dt.date(2025, 1, 1)).schema_version == "2025Q1"


def test_a_member_over_the_limit_is_refused_before_it_is_read(store, tmp_path):
    path = tmp_path / "ccipra-v322r0-f1.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(PTP_MEMBER, ptp_text() + "\r\n" * 400_000)  # 800 kB that compresses to almost nothing
    assert path.stat().st_size < 10_000
    with pytest.raises(
        IngestError, match=r"the zip member is 80\d,\d\d\d bytes, over the limit of 100,000 bytes"
    ) as caught:
        ingest_ncci_file(store, path, max_bytes=100_000)
    assert caught.value.where == f"{path}!{PTP_MEMBER}"


def test_the_cli_loads_the_good_files_and_names_the_bad(bare_project, tmp_path, capsys):
    from cptpub.cli import main

    bad = tmp_path / "MUE_practitioner_2025-01-01.csv"
    bad.write_text(MUE_CSV.read_text().replace("64484,4,3", "64484,four,3"))
    status = main(["ingest", "ncci", str(PTP_ZIP), str(bad), str(AOC_XLSX)])
    out, err = capsys.readouterr()
    assert status == 1
    assert "PTP edits kept" in out and "AOC edits kept" in out
    assert f"{bad}:9: MUE value: expected a whole number of units, got 'four'" in err
    store = RatesStore(bare_project / "build" / "rates.duckdb")
    assert query(store, "SELECT kind FROM sources ORDER BY kind") == [("ncci-aoc",), ("ncci-ptp",)]


# --- hypothesis: mutated files load or fail cleanly -------------------------------------------------------------

_MUTATION = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert", "duplicate"]),
        st.integers(min_value=0, max_value=10_000),
        st.text(alphabet=st.sampled_from(list('0123456789*\t,\r\n"ABCTZ -/:=\x00\u00e9\ud7ff')), max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(data: str, mutations: list[tuple[str, int, str]]) -> str:
    for action, position, text in mutations:
        at = position % (len(data) + 1)
        if action == "replace":
            data = data[:at] + text + data[at + len(text) :]
        elif action == "delete":
            data = data[:at] + data[at + len(text) + 1 :]
        elif action == "insert":
            data = data[:at] + text + data[at:]
        else:
            lines = data.splitlines(keepends=True)
            if lines:
                line = lines[at % len(lines)]
                data = data + line
    return data


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> RatesStore:
    """One store for all examples (each mutated file is its own source): creating a store per example would
    dominate the run."""
    return RatesStore(tmp_path_factory.mktemp("fuzz") / "rates.duckdb")


def _loads_or_fails_cleanly(store: RatesStore, path: Path, where: str) -> None:
    try:
        ingest_ncci_file(store, path, replace=True)
    except IngestError as exc:
        assert exc.where is not None and exc.where.startswith(where), exc
        assert "\n" not in exc.message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=_MUTATION)
def test_mutated_ptp_text_loads_or_fails_naming_its_place(tmp_path_factory, fuzz_store, mutations):
    folder = tmp_path_factory.mktemp("ptp")
    path = folder / "ccipra-v322r0-f1.txt"
    path.write_bytes(_mutate(ptp_text(), mutations).encode("utf-8", errors="surrogatepass"))
    _loads_or_fails_cleanly(fuzz_store, path, str(path))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=_MUTATION)
def test_mutated_mue_csv_loads_or_fails_naming_its_place(tmp_path_factory, fuzz_store, mutations):
    folder = tmp_path_factory.mktemp("mue")
    path = folder / "MUE_practitioner_2024-07-01.csv"
    path.write_bytes(_mutate(MUE_CSV.read_text(), mutations).encode("utf-8", errors="surrogatepass"))
    _loads_or_fails_cleanly(fuzz_store, path, str(path))


_CELL = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True),
    st.text(alphabet=st.sampled_from(list("0123456789CT*-_ ")), max_size=9),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.tuples(st.integers(min_value=3, max_value=21), st.integers(1, 8), _CELL), max_size=5))
def test_mutated_aoc_workbook_loads_or_fails_naming_its_sheet_row(tmp_path_factory, fuzz_store, cells):
    folder = tmp_path_factory.mktemp("aoc")
    book = openpyxl.load_workbook(AOC_XLSX)
    for row, column, value in cells:
        book.worksheets[0].cell(row=row, column=column, value=value)
    path = folder / "AOC_V2026Q2-MCR.xlsx"
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(buffer.getvalue())
    _loads_or_fails_cleanly(fuzz_store, path, str(path))


def test_demo_ncci_files_are_marked_demo(store, tmp_path):
    from cptpub.demo.ncci import write_demo_ncci

    paths = write_demo_ncci(tmp_path, ["20702", "20703", "20704"])
    results = [ingest_ncci_file(store, path) for path in paths]
    assert [(r.kind, r.rows_kept, r.is_demo, r.schema_version) for r in results] == [
        ("ncci-ptp", 2, True, "2026Q4"),
        ("ncci-mue", 3, True, "2026Q4"),
        ("ncci-aoc", 3, True, "2026Q4"),
    ]
    assert query(store, "SELECT DISTINCT adjudication_text IS NOT NULL FROM ncci_mue") == [(True,)]
    assert not ingest_ncci_file(store, MUE_CSV).is_demo
