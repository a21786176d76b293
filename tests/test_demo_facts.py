"""Facts in the demo records and demo inputs, checked against independent sources: CMS's own fee schedule file
(tests/fixtures/cms/), the ICD-10-CM and NUCC code sets (descriptions written out below from the official lists),
and the CPT code set's history."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from cptpub.demo import write_demo_inputs

from .conftest import FIXTURES, REPO

CMS_PFS_2026 = FIXTURES / "cms" / "PPRRVU2026_Jul_nonQPP.excerpt.csv"
RECORDS = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in (REPO / "data/codes").glob("*.yaml")}
FAMILY = ("20700", "20701", "20702", "20703", "20704", "20705")

# ICD-10-CM (FY 2026) long descriptions, verbatim, of every code the demo records pair.
ICD10CM = {
    "M00.051": "Staphylococcal arthritis, right hip",
    "M00.061": "Staphylococcal arthritis, right knee",
    "M00.861": "Arthritis due to other bacteria, right knee",
    "M60.051": "Infective myositis, right thigh",
    "M72.6": "Necrotizing fasciitis",
    "M86.451": "Chronic osteomyelitis with draining sinus, right femur",
    "M86.651": "Other chronic osteomyelitis, right thigh",
    "M86.661": "Other chronic osteomyelitis, right tibia and fibula",
    "S72.321K": "Displaced transverse fracture of shaft of right femur, subsequent encounter for closed fracture with "
    "nonunion",
    "S72.321M": "Displaced transverse fracture of shaft of right femur, subsequent encounter for open fracture type I "
    "or II with nonunion",
    "S82.251B": "Displaced comminuted fracture of shaft of right tibia, initial encounter for open fracture type I or "
    "II",
    "T81.31XA": "Disruption of external operation (surgical) wound, not elsewhere classified, initial encounter",
    "T81.42XA": "Infection following a procedure, deep incisional surgical site, initial encounter",
    "T81.43XA": "Infection following a procedure, organ and space surgical site, initial encounter",
    "T84.51XA": "Infection and inflammatory reaction due to internal right hip prosthesis, initial encounter",
    "T84.53XA": "Infection and inflammatory reaction due to internal right knee prosthesis, initial encounter",
    "T84.60XA": "Infection and inflammatory reaction due to internal fixation device of unspecified site, initial "
    "encounter",
    "T84.620A": "Infection and inflammatory reaction due to internal fixation device of right femur, initial encounter",
    "T84.622A": "Infection and inflammatory reaction due to internal fixation device of right tibia, initial encounter",
    "Z79.2": "Long term (current) use of antibiotics",
}
# NUCC Health Care Provider Taxonomy: classification, then specialization where there is one.
NUCC = {
    "207X00000X": "Orthopaedic Surgery",
    "207XS0114X": "Orthopaedic Surgery, Adult Reconstructive Orthopaedic Surgery",
    "207XX0005X": "Orthopaedic Surgery, Sports Medicine",
    "207XX0801X": "Orthopaedic Surgery, Orthopaedic Trauma",
    "208200000X": "Plastic Surgery",
    "208600000X": "Surgery",
}


def _pprrvu(path: Path) -> dict[str, dict[str, str]]:
    """Rows by code, each as {column label: cell}; labels join the header cells above each column."""
    rows = list(csv.reader(path.open(encoding="utf-8")))
    start = next(i for i, r in enumerate(rows) if r[:2] == ["HCPCS", "MOD"])
    header = [r for r in rows[: start + 1] if sum(1 for c in r if c.strip()) >= 5]  # the header lines
    labels = [" ".join(r[i] for r in header if i < len(r) and r[i]).strip() for i in range(len(rows[start]))]
    return {r[0]: dict(zip(labels, r, strict=True)) for r in rows[start + 1 :] if r and r[0]}


def _text(record: dict) -> str:
    return yaml.safe_dump(record, allow_unicode=True, width=10_000)


@pytest.fixture(scope="module")
def cms() -> dict[str, dict[str, str]]:
    return _pprrvu(CMS_PFS_2026)


def test_the_demo_fee_schedule_rows_are_cms_rows(tmp_path: Path, cms):
    demo = _pprrvu(write_demo_inputs(tmp_path).pprrvu_file)
    assert list(demo) == [*FAMILY, "99213"]
    for code, row in demo.items():
        # every column CMS publishes, cell for cell; only the description is cptpub's (CMS's is the AMA's text)
        assert {k: v for k, v in row.items() if k != "DESCRIPTION"} == {
            k: v for k, v in cms[code].items() if k != "DESCRIPTION"
        }, code
    assert cms["20702"]["WORK RVU"] == "2.44" and cms["20702"]["CONV FACTOR"] == "33.4009"


def test_the_family_came_with_cpt_2020(cms):
    for code in FAMILY:
        text = _text(RECORDS[code])
        assert not re.search(r"CPT 2023|before 2023|CY 2023", text, re.IGNORECASE), code
        introduced = [u for u in RECORDS[code].get("policy_updates") or [] if "20700–20705" in u["summary"]]
        assert all(u["date"] == dt.date(2020, 1, 1) and "CPT 2020" in u["source"] for u in introduced), code


@pytest.mark.parametrize("code", FAMILY)
def test_modifier_advice_agrees_with_the_fee_schedule_indicators(code, cms):
    indicators = cms[code]
    modifiers = {m["modifier"] for m in RECORDS[code].get("modifiers") or []}
    advice = " ".join(RECORDS[code]["billing_considerations"]["modifier_use"])
    if indicators["BILAT SURG"] == "0":  # the bilateral adjustment does not apply
        assert "50" not in modifiers and not re.search(r"\b50\b", advice), code
    if indicators["CO- SURG"] == "0":
        assert "62" not in modifiers, code
    if indicators["TEAM SURG"] == "0":
        assert "66" not in modifiers, code
    if indicators["ASST SURG"] == "0":  # paid only with documentation of medical necessity
        for m in RECORDS[code].get("modifiers") or []:
            if m["modifier"] in ("80", "81", "82", "AS"):
                assert "medically necessary" in m["when_to_use"], code


@pytest.mark.parametrize("code", FAMILY)
def test_an_add_on_is_paid_separately_and_one_unit_per_session(code, cms):
    assert cms[code]["GLOB DAYS"] == "ZZZ" and cms[code]["MULT PROC"] == "0"
    text = _text(RECORDS[code])
    assert not re.search(r"paid within|global package", text, re.IGNORECASE), code
    medicare = [n["note"] for n in RECORDS[code]["payer_notes"] if n["payer"] == "Medicare" and "ZZZ" in n["note"]]
    assert medicare and all("separately" in n and "own fee" in n for n in medicare), code
    assert not re.search(r"units?\s*(≥|>=)\s*2", text, re.IGNORECASE), code


def test_icd10_descriptions_are_verbatim_and_taxonomies_are_nucc_names():
    for code, record in RECORDS.items():
        for pairing in record.get("icd10_pairings") or []:
            assert ICD10CM.get(pairing["code"]) == pairing["description"], (code, pairing["code"])
        for taxonomy in record.get("taxonomies") or []:
            assert NUCC.get(taxonomy["code"]) == taxonomy["classification"], (code, taxonomy["code"])
    scaffold = (REPO / "src/cptpub/records/new_record.yaml.j2").read_text(encoding="utf-8")
    example = re.search(r"#   - code: (\S+)\n#     description: (.+)\n", scaffold)
    assert example and ICD10CM.get(example[1]) == example[2]


def test_20702_pairings_fit_its_vignette():
    record = RECORDS["20702"]
    assert "draining sinus" in record["clinical"]["vignette"] and "nonunion" in record["clinical"]["vignette"]
    codes = {p["code"] for p in record["icd10_pairings"]}
    assert "M86.451" in codes  # chronic osteomyelitis with draining sinus, right femur
    assert codes & {"S72.321K", "S72.321M"}  # the fracture's nonunion encounter
    assert not codes & {"T84.622A", "M86.151", "S72.321B"}  # tibia, acute, initial encounter: not this patient


def test_related_code_titles_say_what_the_codes_cover():
    def title(code: str, related: str) -> str:
        return next(c["title"] for c in RECORDS[code]["related_codes"] if c["code"] == related)

    assert all(w in title("20702", "27245") for w in ("intertrochanteric", "peritrochanteric", "subtrochanteric"))
    arthroscopy = title("20705", "29871")
    assert "lavage and drainage" in arthroscopy and "debridement" not in arthroscopy
    assert {"27334", "27335"} <= {c["code"] for c in RECORDS["20704"]["related_codes"]}
    assert "synovectomy" in RECORDS["20704"]["clinical"]["vignette"]
