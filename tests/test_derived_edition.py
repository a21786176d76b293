"""Editions filled from CMS's files: the demo store plus CMS's fee schedule and NCCI fixtures, built through the
real commands; each derived figure on the page is compared with its fixture row, read here independently."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import FIXTURES, copy_project, run_cptpub

CMS = FIXTURES / "cms"
PFS_2025 = CMS / "PPRRVU2025_Oct.excerpt.csv"
PTP_ZIP = CMS / "ccipra-v322r0-f1.excerpt.zip"
MUE_CSV = CMS / "MUE_practitioner_2024-07-01.excerpt.csv"
AOC_XLSX = CMS / "AOC_V2026Q2-MCR.excerpt.xlsx"
NO_RECORD = ("27447", "64484")  # no record in data/codes: published from the payers' rates and CMS's files
# CMS's RVU file layout: column positions of the fields the edition shows
COLUMN = {"description": 2, "status": 3, "global": 14, "pctc": 13, "mult": 18, "bilat": 19, "asst": 20, "co": 21}
COLUMN |= {"team": 22}


class _Page(HTMLParser):
    """The page's text and its table rows (cell texts), read with the standard library."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[tuple[str, ...]] = []
        self.parts: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0
        self.feed(html)
        self.text = " ".join(" ".join(self.parts).split())
        self.data: dict = {}  # the edition's published figures (dist/data/cpt-CODE.json)

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)
            if self._cell is not None:
                self._cell.append(data)


def pfs_row(code: str) -> list[str]:
    with PFS_2025.open(newline="", encoding="cp1252") as handle:
        return next(row for row in csv.reader(handle) if row and row[0] == code and len(row) > 20 and not row[1])


def active_ptp(code: str) -> list[list[str]]:
    """Active edits (no deletion date: '*') naming ``code``, as the file writes them."""
    with zipfile.ZipFile(PTP_ZIP) as archive:
        text = archive.read("ccipra-v322r0-f1.TXT").decode("cp1252")
    rows = [line.split("\t") for line in text.splitlines()]
    return [r for r in rows if len(r) == 7 and code in r[:2] and r[4] == "*"]


def mue_row(code: str) -> dict[str, str]:
    with MUE_CSV.open(newline="", encoding="utf-8-sig") as handle:
        return next(row for row in csv.DictReader(handle) if row["HCPCS/CPT Code"] == code)


def aoc_primaries(code: str) -> list[str]:
    sheet = openpyxl.load_workbook(AOC_XLSX, read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r[0] == "AOC_Edit_Type")
    return sorted(r[3] for r in rows[header + 1 :] if r[1] == code)


def with_codes(source: Path, dest: Path, codes: tuple[str, ...]) -> None:
    """The payer's file republished a month later with ``codes`` added (20702's rates, under a synthetic name):
    it supersedes the original, so the codes have rates without a record."""
    document = json.loads(gzip.decompress(source.read_bytes()))
    document["last_updated_on"] = "2026-11-01"
    item = next(i for i in document["in_network"] if i["billing_code"] == "20702")
    for code in codes:
        document["in_network"].append({**item, "billing_code": code, "name": f"DEMO PAYER NAME {code}"})
    dest.write_bytes(gzip.compress(json.dumps(document).encode(), mtime=0))


@pytest.fixture(scope="module")
def derived(tmp_path_factory, ingested_project: Path, demo_inputs: Path) -> dict[str, _Page]:
    root = copy_project(tmp_path_factory.mktemp("derived") / "project")
    shutil.copytree(ingested_project / "build", root / "build")
    aetna = next(demo_inputs.glob("demo-aetna-*.json.gz"))
    later = tmp_path_factory.mktemp("later") / aetna.name.replace("in-network", "in-network-2026-11")
    with_codes(aetna, later, NO_RECORD)
    run_cptpub(root, "ingest", "tic", str(later))
    run_cptpub(root, "ingest", "pfs", str(PFS_2025))
    run_cptpub(root, "ingest", "ncci", str(PTP_ZIP), str(MUE_CSV), str(AOC_XLSX))
    run_cptpub(root, "build", *NO_RECORD, "20702", "--engine", "builtin", "--to", "html")
    pages = {code: _Page((root / "dist" / f"cpt-{code}.html").read_text("utf-8")) for code in (*NO_RECORD, "20702")}
    for code, page in pages.items():
        page.data = json.loads((root / "dist" / "data" / f"cpt-{code}.json").read_text("utf-8"))
    return pages


@pytest.mark.parametrize("code", NO_RECORD)
def test_a_code_without_a_record_has_cms_title_and_no_is_a_code_sentence(derived, code):
    page, row = derived[code], pfs_row(code)
    assert f"CPT {code}: {row[COLUMN['description']]}" in page.text
    assert f"({row[COLUMN['description']]}, CMS's short descriptor)" in page.text.replace("’", "'")
    assert "is a code." not in page.text
    assert f"DEMO PAYER NAME {code}" not in page.text  # CMS's descriptor wins over the payer's item name
    assert "Surgery: " in page.text  # the service type, read from the code number
    assert f"There is no editorial record for CPT {code}" in page.text
    # the demo notice does not speak of a record the code does not have
    assert "this code has no editorial record and the rate files are synthetic" in page.text
    assert "sample text" not in page.text


@pytest.mark.parametrize("code", NO_RECORD)
def test_medicare_payment_policy_table_equals_the_fee_schedule_row(derived, code):
    page, row = derived[code], pfs_row(code)
    assert "Medicare payment policy" in page.text
    policy = {r[0]: r[1] for r in page.rows if len(r) == 3}
    assert policy["Status"] == row[COLUMN["status"]]
    assert policy["Global surgery period"] == row[COLUMN["global"]]
    assert policy["Assistant at surgery (80, 81, 82, AS)"] == row[COLUMN["asst"]]
    assert policy["Bilateral surgery (modifier 50)"] == row[COLUMN["bilat"]]
    assert policy["Multiple procedures (modifier 51)"] == row[COLUMN["mult"]]


@pytest.mark.parametrize("code", NO_RECORD)
def test_modifier_rows_are_derived_from_the_indicators(derived, code):
    page, row = derived[code], pfs_row(code)
    expected = set()  # CMS's file description: each indicator with a documented value governs these modifiers
    if row[COLUMN["pctc"]] == "1":
        expected |= {"26", "TC"}
    if row[COLUMN["bilat"]] in "0123":
        expected.add("50")
    if row[COLUMN["mult"]] in "01234567":
        expected.add("51")
    if row[COLUMN["co"]] in "012":
        expected.add("62")
    if row[COLUMN["team"]] in "012":
        expected.add("66")
    if row[COLUMN["asst"]] in "012":
        expected |= {"80", "81", "82", "AS"}
    start = page.rows.index(("Modifier", "Description", "When to Use"))
    shown = {r[0] for r in page.rows[start + 1 : start + 1 + len(expected)]}
    assert shown == expected
    assert "Derived from CMS physician fee schedule relative value file PPRRVU2025_Oct" in page.text


@pytest.mark.parametrize("code", NO_RECORD)
def test_units_per_day_and_ptp_pairs_equal_the_ncci_rows(derived, code):
    page = derived[code]
    mue = mue_row(code)
    units = int(mue["Practitioner Services MUE Values"])
    assert f"Units per day (MUE): At most {units} unit{'s' if units != 1 else ''}" in page.text
    edits = active_ptp(code)
    assert edits
    for column1, column2, *_, indicator, _rationale in edits:
        other = column2 if column1 == code else column1
        allowed = {"1": "Yes", "0": "No"}[indicator]
        assert any(r[0] == other and r[2] == f"{column2} (column 2)" and r[3] == allowed for r in page.rows), other
        assert page.data["facts"]["NCCI/PTP"][f"{column1} with {column2}"] == f"modifier indicator {indicator}"
    # the published data says what the page says
    assert page.data["facts"]["NCCI/MUE"]["units per day"] == units
    assert page.data["facts"]["Medicare payment policy"]["Global surgery period"] == pfs_row(code)[COLUMN["global"]]


def test_an_add_on_shows_its_primary_codes_and_a_stand_alone_code_no_sequencing(derived):
    primaries = aoc_primaries("64484")
    assert primaries
    shown = [r[0] for r in derived["64484"].rows if len(r) == 4 and r[2].startswith("Type ")]
    assert shown == primaries
    assert "Sequencing with the primary procedure" in derived["64484"].text
    assert pfs_row("27447")[COLUMN["global"]] == "090"  # not an add-on
    assert "Sequencing with the primary procedure" not in derived["27447"].text


def test_payers_without_data_are_named_in_one_sentence(derived):
    text = derived["64484"].text  # only Aetna's republished file has rates for it
    expected = "Neither rates nor notes for CPT 64484 are in the input for Blue Cross Blue Shield, Cigna Health, and"
    assert expected in text
    assert "Data not available in the input for notes on Cigna Health" not in text


def test_the_demo_edition_keeps_its_record_and_links_its_open_data(derived):
    page = derived["20702"]
    assert "Intramedullary Drug Delivery Device Preparation and Insertion" in page.text  # the record's title wins
    assert "Open data: this edition" in page.text
    assert "Derived from" not in page.text  # the record gives its modifiers
    assert "the editorial record is sample text and the rate files are synthetic" in page.text
