"""A deterministic, seeded generator of the demo inputs.

It writes what the real world publishes, so the demo goes through the same ingest commands a user runs:
one Transparency in Coverage in-network file per commercial payer (schema 2.0.0, gzip), whose rates are invented
and carry ``DEMO_MARKER`` in their publisher and plan names (the ingester flags them as demo and every page built
from them says so), and CMS's CY 2026 national physician fee schedule rows of the demo codes in CMS's own PPRRVU
layout. The fee schedule values are CMS's public figures, not demo data, so that file carries no marker.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from cptpub.atomic import write_atomic
from cptpub.ingest.common import DEMO_MARKER

DEMO_AS_OF = dt.date(2026, 10, 1)
DEMO_YEAR = 2026
PPRRVU_FILE_NAME = "PPRRVU2026_Jul_nonQPP.csv"  # the name of the CSV in CMS's RVU26C zip

# CMS's national physician fee schedule relative value file, CY 2026 July release (RVU26C), non-QP conversion
# factor: the title and header lines and the rows of the demo codes and of 99213 (a code the ingest must skip),
# cell for cell. Only the DESCRIPTION cells are cptpub's own words: CMS's short descriptors are the AMA's text.
PPRRVU_TITLE = (
    "2026 National Physician Fee Schedule Relative Value File July Release",
    "Rows of the cptpub demo codes copied from CMS's public file; descriptions written by cptpub.",
    "CPT codes are copyright 2026 American Medical Association. All Rights Reserved.",
    "",
    "RELEASED 06/30/2026",
)
PPRRVU_HEADER = (
    ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,NON-FACILITY,FACILITY,",
    ",,,,NOT USED,,,,,,,,,,,,,,,,,,,,,,PHYSICIAN,,DIAGNOSTIC,PE USED,PE USED,MP USED",
    ",,,,FOR,,,NON-FAC,,FACILITY,,,,,,,,,,,,,,,,,SUPERVISION OF,,IMAGING,FOR OPPS,FOR OPPS,FOR OPPS",
    ",,,STATUS,MEDICARE,WORK,NON-FAC,NA,FACILITY,NA,MP,NON-FACILITY,FACILITY,PCTC,GLOB,PRE,INTRA,POST,MULT,BILAT,"
    "ASST,CO-,TEAM,PRIC,ENDO,CONV,DIAGNOSTIC,CALCULATION,FAMILY,PAYMENT,PAYMENT,PAYMENT",
    "HCPCS,MOD,DESCRIPTION,CODE,PAYMENT,RVU,PE RVU,INDICATOR,PE RVU,INDICATOR,RVU,TOTAL,TOTAL,IND,DAYS,OP,OP,OP,PROC,"
    "SURG,SURG,SURG,SURG,IND,BASE,FACTOR,PROCEDURES,FLAG,INDICATOR,AMOUNT,AMOUNT,AMOUNT",
)
_ZZZ = "0,ZZZ,0.00,0.00,0.00,0,0,0,0,0,9,,33.4009,09,0,99,0.00,0.00,0.00"
PPRRVU_ROWS: dict[str, tuple[str, str]] = {  # code -> (description, the cells after it)
    "20700": ("Drug delivery device deep prep", f"A,,1.46,0.82,,0.40,,0.26,2.54,2.12,{_ZZZ}"),
    "20701": ("Drug delivery device deep rmvl", f"A,,1.10,0.66,,0.33,,0.21,1.97,1.64,{_ZZZ}"),
    "20702": ("Drug delivery device imed prep", f"A,,2.44,1.50,,0.75,,0.49,4.43,3.68,{_ZZZ}"),
    "20703": ("Drug delivery device imed rmvl", f"A,,1.76,1.11,,0.56,,0.38,3.25,2.70,{_ZZZ}"),
    "20704": ("Drug delivery device joint prep", f"A,,2.54,1.61,,0.80,,0.51,4.66,3.85,{_ZZZ}"),
    "20705": ("Drug delivery device joint rmvl", f"A,,2.10,1.31,,0.65,,0.43,3.84,3.18,{_ZZZ}"),
    "99213": (
        "Office visit established patient",
        "A,,1.30,1.46,,0.33,,0.09,2.85,1.72,0,XXX,0.00,0.00,0.00,0,0,0,0,0,9,,33.4009,09,0,99,0.00,0.00,0.00",
    ),
}
_NONFACILITY_TOTAL, _FACILITY_TOTAL, _CONVERSION_FACTOR = 8, 9, 22  # indexes into the cells after DESCRIPTION
DEMO_CODES = tuple(code for code in PPRRVU_ROWS if code.startswith("207"))

# (payer file stem, reporting entity, plan, median multiple of the Medicare amount, provider groups)
DEMO_PAYERS = (
    ("aetna", "Aetna Life Insurance Company", "Aetna Open Access PPO", 1.38, 14),
    ("bcbs", "Blue Cross Blue Shield of Illinois", "Blue Choice PPO", 1.26, 18),
    ("cigna", "Cigna Health and Life Insurance Company", "Cigna OAP", 1.47, 12),
    ("uhc", "UnitedHealthcare Insurance Company", "UHC Choice Plus", 1.31, 16),
)
# Codes in every payer file that no record asks for, so the ingest must skip them; 27447's synthetic rates are
# drawn around a nominal amount, as it has no row in the fee schedule file.
DECOY_CODES = ("27447", "99213")
_DECOY_NOMINAL_AMOUNT = 1400.00
PROFESSIONAL_POS = ["21", "22", "24"]  # inpatient hospital, outpatient hospital, ambulatory surgical center


@dataclass(frozen=True)
class DemoInputs:
    tic_files: tuple[Path, ...]
    pprrvu_file: Path


def medicare_amounts(code: str) -> tuple[float, float]:
    """(non-facility, facility) national amounts of a code of the fee schedule file: total RVUs x the conversion
    factor, rounded half-up to cents, as the PPRRVU ingest computes them."""
    cells = PPRRVU_ROWS[code][1].split(",")
    factor = Decimal(cells[_CONVERSION_FACTOR])
    cent = Decimal("0.01")
    return tuple(  # type: ignore[return-value]
        float((Decimal(cells[i]) * factor).quantize(cent, rounding=ROUND_HALF_UP))
        for i in (_NONFACILITY_TOTAL, _FACILITY_TOTAL)
    )


def _rate_reference(code: str) -> tuple[float, float]:
    """The (non-facility, facility) amounts a code's synthetic rates are drawn around."""
    if code in PPRRVU_ROWS:
        return medicare_amounts(code)
    return _DECOY_NOMINAL_AMOUNT, _DECOY_NOMINAL_AMOUNT


def _provider_references(rng: random.Random, stem: str, groups: int) -> list[dict]:
    references = []
    for index in range(1, groups + 1):
        tin = f"{rng.randrange(10, 99)}-{rng.randrange(1000000, 9999999)}"
        npis = sorted(rng.sample(range(1_000_000_000, 1_999_999_999), rng.randrange(1, 6)))
        group = {
            "npi": npis,
            "tin": {"type": "ein", "value": tin, "business_name": f"Demo Group {stem.upper()}-{index}"},
        }
        references.append(
            {
                "provider_group_id": index,
                "network_name": [f"{stem.upper()} Demo Network"],
                "provider_groups": [group],
            }
        )
    # The same provider groups also sit in a second network: the duplicate rows benchmarks must count once.
    for index in range(1, 4):
        duplicate = dict(
            references[index - 1], provider_group_id=100 + index, network_name=[f"{stem.upper()} Demo Select"]
        )
        references.append(duplicate)
    return references


def _in_network_item(rng: random.Random, code: str, multiple: float, groups: int) -> dict:
    nonfacility, facility = _rate_reference(code)
    rates = []
    for group_id in range(1, groups + 1):
        professional = round(nonfacility * multiple * rng.lognormvariate(0, 0.18), 2)
        prices = [
            {
                "negotiated_type": "negotiated",
                "negotiated_rate": professional,
                "expiration_date": "9999-12-31",
                "service_code": PROFESSIONAL_POS,
                "billing_class": "professional",
                "setting": "both",
            }
        ]
        if group_id % 5 == 0:  # some groups also bill in the office, at the non-facility amount
            prices.append(
                {
                    "negotiated_type": "negotiated",
                    "negotiated_rate": round(nonfacility * multiple * 1.1 * rng.lognormvariate(0, 0.15), 2),
                    "expiration_date": "9999-12-31",
                    "service_code": ["11"],
                    "billing_class": "professional",
                    "setting": "outpatient",
                }
            )
        if group_id % 4 == 0:  # some groups also have an institutional (facility) rate
            prices.append(
                {
                    "negotiated_type": "negotiated",
                    "negotiated_rate": round(facility * multiple * 1.9 * rng.lognormvariate(0, 0.12), 2),
                    "expiration_date": "9999-12-31",
                    "billing_class": "institutional",
                    "setting": "outpatient",
                }
            )
        references = [group_id] + ([100 + group_id] if group_id <= 3 else [])
        rates.append({"provider_references": references, "negotiated_prices": prices})
    # A percentage-of-charges arrangement: counted and reported, never mixed into dollar statistics.
    rates.append(
        {
            "provider_references": [groups],
            "negotiated_prices": [
                {
                    "negotiated_type": "percentage",
                    "negotiated_rate": round(rng.uniform(55, 80), 1),
                    "expiration_date": "9999-12-31",
                    "billing_class": "institutional",
                    "setting": "inpatient",
                }
            ],
        }
    )
    return {
        "negotiation_arrangement": "ffs",
        "name": f"DEMO {PPRRVU_ROWS[code][0] if code in PPRRVU_ROWS else 'service'}",
        "billing_code_type": "CPT" if code[0].isdigit() else "HCPCS",
        "billing_code_type_version": str(DEMO_YEAR),
        "billing_code": code,
        "description": f"{DEMO_MARKER} synthetic item for {code}",
        "negotiated_rates": rates,
    }


def _tic_document(rng: random.Random, codes: list[str], payer: tuple) -> dict:
    stem, entity, plan, multiple, groups = payer
    return {
        "reporting_entity_name": f"{DEMO_MARKER} {entity}",
        "reporting_entity_type": "health insurance issuer",
        "plan_name": f"{DEMO_MARKER} {plan}",
        "plan_id_type": "ein",
        "plan_id": f"{rng.randrange(10, 99)}-{rng.randrange(1000000, 9999999)}",
        "plan_market_type": "group",
        "issuer_name": entity,
        "plan_sponsor_name": "cptpub demo",
        "last_updated_on": DEMO_AS_OF.isoformat(),
        "version": "2.0.0",
        "provider_references": _provider_references(rng, stem, groups),
        "in_network": [_in_network_item(rng, code, multiple, groups) for code in [*codes, *DECOY_CODES]],
    }


def _pprrvu_text(codes: list[str]) -> str:
    """CMS's PPRRVU CSV: title lines, the five header lines, then one row per code, CMS's cells."""
    width = PPRRVU_HEADER[-1].count(",") + 1
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    for line in PPRRVU_TITLE:
        writer.writerow(["", "", line, *[""] * (width - 3)])
    for line in PPRRVU_HEADER:
        writer.writerow(line.split(","))
    for code in sorted({*codes, *(c for c in DECOY_CODES if c in PPRRVU_ROWS)}):
        description, cells = PPRRVU_ROWS[code]
        writer.writerow([code, "", description, *cells.split(",")])
    return text.getvalue()


def write_demo_inputs(out_dir: Path, codes: list[str] | None = None, seed: int = 20702) -> DemoInputs:
    """Write the demo TiC files and the fee schedule CSV into ``out_dir``; the same seed gives byte-identical
    files."""
    codes = sorted(codes or DEMO_CODES)
    unknown = [c for c in codes if c not in PPRRVU_ROWS]
    if unknown:
        raise ValueError(f"no fee schedule row for {', '.join(unknown)}; demo codes are {', '.join(DEMO_CODES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tic_files = []
    for payer in DEMO_PAYERS:
        document = _tic_document(rng, codes, payer)
        payload = json.dumps(document, indent=1).encode("utf-8")
        path = out_dir / f"demo-{payer[0]}-in-network-rates.json.gz"
        # mtime=0 and no file name in the header keep the gzip bytes reproducible.
        write_atomic(path, gzip.compress(payload, compresslevel=6, mtime=0))
        tic_files.append(path)
    pprrvu = out_dir / PPRRVU_FILE_NAME
    write_atomic(pprrvu, _pprrvu_text(codes).encode("utf-8"))
    return DemoInputs(tuple(tic_files), pprrvu)
