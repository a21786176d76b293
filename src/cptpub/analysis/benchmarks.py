"""Reimbursement benchmarks for one code: the single computation behind the payer section's table, figure and text.

The rules are ``METHOD_NOTES`` below; every edition's Methodology section prints them, so the published
description and the computation cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cptpub.store import RatesStore

DOLLAR_TYPES = ("negotiated", "fee schedule", "derived")
# CMS place-of-service codes paid at the facility rate under the physician fee schedule.
FACILITY_POS = frozenset(
    {"02", "19", "21", "22", "23", "24", "26", "31", "34", "41", "42", "51", "52", "53", "56", "61"}
)
METHOD_NOTES = (
    "Dollar statistics use only dollar negotiated types (negotiated, fee schedule, derived). Percentage and "
    "per-diem rates are counted per payer and reported separately, never mixed into dollar figures.",
    "Duplicates: a payer's rate counts once per distinct provider group, negotiated type, amount, billing class, "
    "setting, places of service, modifiers and arrangement. The same provider group at the same rate listed under "
    "several networks or plans is one rate. A provider reference that could not be resolved counts as its own group.",
    "Percentiles (25th, median, 75th) interpolate linearly between ranks.",
    "% of Medicare compares each rate with the Medicare national amount for its setting: the facility amount for "
    "institutional rates or facility places of service, the non-facility amount otherwise. A group's figure is the "
    "median of those percentages, which equals median / Medicare amount when the group shares one reference.",
    "Medicare national amounts are total RVUs multiplied by the conversion factor of the fee schedule year, "
    "before geographic adjustment.",
)


@dataclass(frozen=True)
class MedicareAmounts:
    year: int
    nonfacility_amount: float | None
    facility_amount: float | None
    global_days: str | None
    status_code: str | None
    work_rvu: float | None
    nonfacility_total: float | None
    facility_total: float | None
    conversion_factor: float
    source_id: str


@dataclass(frozen=True)
class RateStats:
    """Statistics of one group of dollar rates (a payer, all payers, or a payer's billing class / setting)."""

    payer: str
    group: str  # "all", or e.g. "professional", "institutional · outpatient"
    n_rates: int
    n_provider_groups: int
    minimum: float
    p25: float
    median: float
    p75: float
    maximum: float
    pct_of_medicare: float | None


@dataclass(frozen=True)
class Source:
    source_id: str
    kind: str
    file_name: str
    payer: str
    publisher: str | None
    plans: str | None
    last_updated_on: object
    schema_version: str | None
    rows_kept: int
    warnings: tuple[str, ...]
    is_demo: bool


@dataclass(frozen=True)
class Benchmarks:
    code: str
    medicare: MedicareAmounts | None
    by_payer: tuple[RateStats, ...]  # one per payer with dollar rates, in catalogue order
    overall: RateStats | None  # all commercial payers together
    splits: tuple[RateStats, ...]  # per payer and billing class / setting, where the data has more than one
    non_dollar: dict[str, dict[str, int]]  # payer -> negotiated type -> count (percentage, per diem)
    rates: pd.DataFrame = field(repr=False)  # the deduplicated dollar rates behind every figure above
    sources: tuple[Source, ...] = ()

    @property
    def payers_with_rates(self) -> list[str]:
        return [s.payer for s in self.by_payer]

    @property
    def is_demo(self) -> bool:
        return any(s.is_demo for s in self.sources)


_DEDUP_SQL = """
SELECT DISTINCT
    payer,
    coalesce(provider_group_key, 'unresolved:' || source_id || ':' || coalesce(provider_reference, '?'))
        AS provider_group,
    negotiated_type, negotiated_rate, billing_class, setting,
    list_sort(coalesce(service_codes, []::VARCHAR[])) AS service_codes,
    list_sort(coalesce(billing_code_modifiers, []::VARCHAR[])) AS modifiers,
    negotiation_arrangement
FROM negotiated_rates
WHERE billing_code = ?
"""


def _uses_facility_rate(billing_class: str, service_codes: list[str]) -> bool:
    if billing_class == "institutional":
        return True
    codes = [c for c in service_codes if c != "CSTM-00"]
    return bool(codes) and all(c in FACILITY_POS for c in codes)


def _stats(payer: str, group: str, rates: pd.DataFrame) -> RateStats:
    amounts = rates["negotiated_rate"]
    pct = rates["pct_of_medicare"].dropna()
    return RateStats(
        payer=payer,
        group=group,
        n_rates=len(rates),
        n_provider_groups=rates["provider_group"].nunique(),
        minimum=float(amounts.min()),
        p25=float(amounts.quantile(0.25)),
        median=float(amounts.median()),
        p75=float(amounts.quantile(0.75)),
        maximum=float(amounts.max()),
        pct_of_medicare=float(pct.median()) if len(pct) == len(rates) and len(pct) else None,
    )


def _split_label(row: pd.Series) -> str:
    return " · ".join(part for part in (row["billing_class"], row["setting"]) if part)


def load_medicare(con, code: str) -> MedicareAmounts | None:
    row = con.execute(
        """SELECT year, nonfacility_amount, facility_amount, global_days, status_code, work_rvu,
                  nonfacility_total, facility_total, conversion_factor, source_id
           FROM medicare_pfs WHERE hcpcs = ? AND modifier IS NULL ORDER BY year DESC LIMIT 1""",
        [code],
    ).fetchone()
    return MedicareAmounts(*row) if row else None


def load_sources(con, code: str) -> tuple[Source, ...]:
    rows = con.execute(
        """SELECT source_id, kind, file_name, payer, publisher, plans, last_updated_on, schema_version, rows_kept,
                  coalesce(warnings, []::VARCHAR[]), is_demo
           FROM sources
           WHERE source_id IN (SELECT source_id FROM negotiated_rates WHERE billing_code = $1
                               UNION SELECT source_id FROM medicare_pfs WHERE hcpcs = $1)
           ORDER BY kind DESC, payer, file_name""",
        [code],
    ).fetchall()
    return tuple(
        Source(
            source_id=row[0],
            kind=row[1],
            file_name=row[2],
            payer=row[3],
            publisher=row[4],
            plans=row[5],
            last_updated_on=row[6],
            schema_version=row[7],
            rows_kept=row[8],
            warnings=tuple(row[9]),
            is_demo=row[10],
        )
        for row in rows
    )


def compute(store_path: Path, code: str, payer_order: list[str]) -> Benchmarks:
    """Benchmarks of ``code`` from the store, payers in ``payer_order`` (the catalogue's order)."""
    con = RatesStore(store_path).connect(read_only=True)
    try:
        medicare = load_medicare(con, code)
        sources = load_sources(con, code)
        rows = con.execute(_DEDUP_SQL, [code]).df()
    finally:
        con.close()

    order = {name: i for i, name in enumerate(payer_order)}
    rows["payer_rank"] = rows["payer"].map(order).fillna(len(order))
    rows = rows.sort_values(["payer_rank", "payer", "negotiated_rate", "provider_group"], kind="stable")

    non_dollar: dict[str, dict[str, int]] = {}
    for (payer, kind), count in (
        rows[~rows["negotiated_type"].isin(DOLLAR_TYPES)]
        .groupby(["payer", "negotiated_type"], sort=False)
        .size()
        .items()
    ):
        non_dollar.setdefault(payer, {})[kind] = int(count)

    dollars = rows[rows["negotiated_type"].isin(DOLLAR_TYPES)].copy().reset_index(drop=True)
    dollars["facility_rate"] = [
        _uses_facility_rate(bc, list(sc))
        for bc, sc in zip(dollars["billing_class"], dollars["service_codes"], strict=True)
    ]
    if medicare is not None:
        reference = dollars["facility_rate"].map({True: medicare.facility_amount, False: medicare.nonfacility_amount})
        dollars["medicare_reference"] = reference.astype(float)
        dollars["pct_of_medicare"] = dollars["negotiated_rate"] / dollars["medicare_reference"] * 100
    else:
        dollars["medicare_reference"] = float("nan")
        dollars["pct_of_medicare"] = float("nan")
    dollars["split"] = dollars.apply(_split_label, axis=1) if len(dollars) else pd.Series(dtype=str)

    by_payer: list[RateStats] = []
    splits: list[RateStats] = []
    for payer, group in dollars.groupby("payer", sort=False):
        by_payer.append(_stats(payer, "all", group))
        if group["split"].nunique() > 1:
            splits.extend(_stats(payer, label, part) for label, part in group.groupby("split", sort=True))
    overall = _stats("All commercial payers", "all", dollars) if len(dollars) else None
    return Benchmarks(
        code=code,
        medicare=medicare,
        by_payer=tuple(by_payer),
        overall=overall,
        splits=tuple(splits),
        non_dollar=non_dollar,
        rates=dollars.drop(columns=["payer_rank"]),
        sources=sources,
    )
