"""A deterministic, seeded generator of demo rate files.

It writes what the real world publishes, so the demo goes through the same ingest commands a user runs:
one Transparency in Coverage in-network file per commercial payer (schema 2.0.0, gzip) and one CMS PPRRVU-format
CSV. Every file carries ``DEMO_MARKER`` in its publisher and plan names (TiC) or title line (PPRRVU); the ingester
flags such sources as demo and every page built from them says so. The figures are invented, not real prices.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from cptpub.atomic import write_atomic

DEMO_MARKER = "[DEMO DATA]"
DEMO_AS_OF = dt.date(2026, 10, 1)
DEMO_YEAR = 2026
DEMO_CONVERSION_FACTOR = 33.4009

# Demo RVUs (work, non-facility PE, facility PE, malpractice) for the family 20700-20705, and a decoy code the
# ingest must skip. Invented values of a plausible size for add-on codes; not CMS's figures.
DEMO_RVUS: dict[str, tuple[str, float, float, float, float]] = {
    "20700": ("DEMO drug dlvr dev deep prep", 1.30, 0.74, 0.52, 0.29),
    "20701": ("DEMO drug dlvr dev deep rmvl", 0.68, 0.41, 0.27, 0.15),
    "20702": ("DEMO drug dlvr dev imed prep", 2.50, 1.00, 1.00, 0.55),
    "20703": ("DEMO drug dlvr dev imed rmvl", 1.40, 0.56, 0.56, 0.31),
    "20704": ("DEMO drug dlvr dev ia prep", 1.90, 0.76, 0.76, 0.42),
    "20705": ("DEMO drug dlvr dev ia rmvl", 2.15, 0.86, 0.86, 0.47),
    "27447": ("DEMO total knee arthroplasty", 19.60, 0.00, 11.10, 4.20),
    "99213": ("DEMO office visit est pt", 1.30, 1.10, 0.55, 0.09),
}

# (payer file stem, reporting entity, plan, median multiple of the Medicare amount, provider groups)
DEMO_PAYERS = (
    ("aetna", "Aetna Life Insurance Company", "Aetna Open Access PPO", 1.38, 14),
    ("bcbs", "Blue Cross Blue Shield of Illinois", "Blue Choice PPO", 1.26, 18),
    ("cigna", "Cigna Health and Life Insurance Company", "Cigna OAP", 1.47, 12),
    ("uhc", "UnitedHealthcare Insurance Company", "UHC Choice Plus", 1.31, 16),
)
DECOY_CODES = ("27447", "99213")
PROFESSIONAL_POS = ["21", "22", "24"]  # inpatient hospital, outpatient hospital, ambulatory surgical center


@dataclass(frozen=True)
class DemoInputs:
    tic_files: tuple[Path, ...]
    pprrvu_file: Path


def medicare_amounts(code: str) -> tuple[float, float]:
    """(non-facility, facility) national amounts of a demo code, as the PPRRVU ingest computes them."""
    _, work, nf_pe, f_pe, mp = DEMO_RVUS[code]
    nonfacility = round(round(work + nf_pe + mp, 2) * DEMO_CONVERSION_FACTOR, 2)
    facility = round(round(work + f_pe + mp, 2) * DEMO_CONVERSION_FACTOR, 2)
    return nonfacility, facility


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
    nonfacility, facility = medicare_amounts(code)
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
        "name": DEMO_RVUS.get(code, ("DEMO service",))[0],
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


def _pprrvu_rows(codes: list[str]) -> list[list[str]]:
    """The layout of CMS's PPRRVU CSV: title lines, then a two-row column header, then one row per code."""
    width = 26
    rows = [
        [f"{DEMO_MARKER} cptpub demo national physician fee schedule relative value file, calendar year {DEMO_YEAR}"],
        ["Synthetic values for demonstrations; not CMS figures and not real prices."],
        [],
        [
            "",
            "",
            "",
            "STATUS",
            "NOT USED FOR MEDICARE",
            "WORK",
            "NON-FAC",
            "NON-FAC NA",
            "FACILITY",
            "FACILITY NA",
            "MP",
            "NON-FACILITY",
            "FACILITY",
            "PCTC",
            "GLOB",
            "PRE",
            "INTRA",
            "POST",
            "MULT",
            "BILAT",
            "ASST",
            "CO-",
            "TEAM",
            "ENDO",
            "CONV",
            "PHYSICIAN SUPERVISION OF",
        ],
        [
            "HCPCS",
            "MOD",
            "DESCRIPTION",
            "CODE",
            "PAYMENT",
            "RVU",
            "PE RVU",
            "INDICATOR",
            "PE RVU",
            "INDICATOR",
            "RVU",
            "TOTAL",
            "TOTAL",
            "IND",
            "DAYS",
            "OP",
            "OP",
            "OP",
            "PROC",
            "SURG",
            "SURG",
            "SURG",
            "SURG",
            "BASE",
            "FACTOR",
            "DIAGNOSTIC PROCEDURES",
        ],
    ]
    for code in sorted({*codes, *DECOY_CODES}):
        description, work, nf_pe, f_pe, mp = DEMO_RVUS[code]
        global_days = {"27447": "090", "99213": "XXX"}.get(code, "ZZZ")
        row = [
            code,
            "",
            description,
            "A",
            "",
            f"{work:.2f}",
            f"{nf_pe:.2f}",
            "NA" if nf_pe == 0 else "",
            f"{f_pe:.2f}",
            "",
            f"{mp:.2f}",
            f"{work + nf_pe + mp:.2f}",
            f"{work + f_pe + mp:.2f}",
            "0",
            global_days,
            "0.00",
            "0.00",
            "0.00",
            "0",
            "0",
            "0",
            "0",
            "0",
            "",
            f"{DEMO_CONVERSION_FACTOR:.4f}",
            "09",
        ]
        rows.append(row[:width])
    return rows


def write_demo_inputs(out_dir: Path, codes: list[str] | None = None, seed: int = 20702) -> DemoInputs:
    """Write the demo TiC files and PPRRVU CSV into ``out_dir``; the same seed gives byte-identical files."""
    codes = sorted(codes or [c for c in DEMO_RVUS if c.startswith("207")])
    unknown = [c for c in codes if c not in DEMO_RVUS]
    if unknown:
        raise ValueError(f"no demo RVUs for {', '.join(unknown)}; demo codes are {', '.join(sorted(DEMO_RVUS))}")
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
    pprrvu = out_dir / f"PPRRVU{DEMO_YEAR % 100:02d}_DEMO.csv"
    text = io.StringIO(newline="")
    csv.writer(text).writerows(_pprrvu_rows(codes))
    write_atomic(pprrvu, text.getvalue().encode("utf-8"))
    return DemoInputs(tuple(tic_files), pprrvu)
