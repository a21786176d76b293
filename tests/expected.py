"""An independent computation of the demo benchmarks, straight from the demo files with the standard library.

Tests compare what the publications show with these figures; nothing here imports cptpub's analysis code.
"""

from __future__ import annotations

import csv
import gzip
import json
import statistics
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

PAYER_OF_FILE = {
    "aetna": "Aetna",
    "bcbs": "Blue Cross Blue Shield",
    "cigna": "Cigna Health",
    "uhc": "UnitedHealthcare",
}
DOLLAR_TYPES = {"negotiated", "fee schedule", "derived"}
FACILITY_POS = {"02", "19", "21", "22", "23", "24", "26", "31", "34", "41", "42", "51", "52", "53", "56", "61"}


@dataclass
class Expected:
    payer: str
    n_rates: int
    n_groups: int
    minimum: float
    p25: float
    median: float
    p75: float
    maximum: float
    pct_of_medicare: float


def money(value: float | Decimal) -> str:
    """Dollars to the cent, half-up on the exact decimal value (as a person computing by hand rounds)."""
    return f"${Decimal(str(value)).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def medicare(demo_inputs: Path, code: str) -> tuple[float, float]:
    """(facility, non-facility) national amounts from the PPRRVU CSV: total RVUs x conversion factor."""
    path = next(demo_inputs.glob("PPRRVU*.csv"))
    rows = list(csv.reader(path.open()))
    start = next(i for i, r in enumerate(rows) if r[:2] == ["HCPCS", "MOD"])
    header = rows[start]
    row = next(r for r in rows[start + 1 :] if r and r[0] == code)
    factor = float(row[header.index("FACTOR")])
    facility_total, nonfacility_total = float(row[12]), float(row[11])
    return round(facility_total * factor, 2), round(nonfacility_total * factor, 2)


def _rates(demo_inputs: Path, code: str) -> dict[str, set[tuple]]:
    """Professional fee-for-service dollar rates without modifiers, once per provider group and price."""
    by_payer: dict[str, set[tuple]] = {}
    for path in sorted(demo_inputs.glob("demo-*-in-network-rates.json.gz")):
        payer = PAYER_OF_FILE[path.name.split("-")[1]]
        document = json.loads(gzip.decompress(path.read_bytes()))
        references = {r["provider_group_id"]: r for r in document["provider_references"]}
        for item in document["in_network"]:
            if item["billing_code"] != code:
                continue
            for rate in item["negotiated_rates"]:
                for ref in rate["provider_references"]:
                    for group in references[ref]["provider_groups"]:
                        for price in rate["negotiated_prices"]:
                            if (
                                price["negotiated_type"] not in DOLLAR_TYPES
                                or item["negotiation_arrangement"] != "ffs"
                                or price.get("billing_code_modifier")
                                or price["billing_class"] not in ("professional", "both")
                            ):
                                continue
                            # one rate per provider group and price, whatever the network (the dedupe rule)
                            by_payer.setdefault(payer, set()).add(
                                (
                                    group["tin"]["value"],
                                    price["negotiated_type"],
                                    price["negotiated_rate"],
                                    price["billing_class"],
                                    price.get("setting"),
                                    tuple(sorted(price.get("service_code", []))),
                                )
                            )
    return by_payer


def _percent_of_medicare(row: tuple, facility: float, nonfacility: float) -> float:
    _, _, amount, _, setting, places = row
    at_facility = setting == "inpatient" or (bool(places) and all(p in FACILITY_POS for p in places))
    return amount / (facility if at_facility else nonfacility) * 100


def _summarise(payer: str, rows: list[tuple] | set[tuple], medicare_amounts: tuple[float, float]) -> Expected:
    amounts = sorted(r[2] for r in rows)
    # exact decimal percentiles (linear interpolation): a float tie like 191.015 must not round down by accident
    p25, median, p75 = statistics.quantiles([Decimal(str(a)) for a in amounts], n=4, method="inclusive")
    pct = statistics.median(_percent_of_medicare(r, *medicare_amounts) for r in rows)
    return Expected(payer, len(rows), len({r[0] for r in rows}), amounts[0], p25, median, p75, amounts[-1], pct)


def benchmarks(demo_inputs: Path, code: str) -> list[Expected]:
    """Per payer in the catalogue's order, then all payers together."""
    by_payer = _rates(demo_inputs, code)
    amounts = medicare(demo_inputs, code)
    order = ["Aetna", "Blue Cross Blue Shield", "Cigna Health", "UnitedHealthcare"]
    result = [_summarise(p, by_payer[p], amounts) for p in order if p in by_payer]
    # all payers: every payer's rates together; a provider group that several payers list counts once
    everything = [row for rows in by_payer.values() for row in rows]
    return [*result, _summarise("All commercial payers", everything, amounts)]
