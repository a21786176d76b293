"""Reimbursement benchmarks for one code: the single computation behind the payer section's table, figure and text.

The rules are ``METHOD_NOTES`` below; every edition's Methodology section prints them, so the published
description and the computation cannot drift apart. Only current releases count: a file superseded by a newer
release of the same series (:mod:`cptpub.store.releases`) stays in the store as history and out of every figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cptpub.ingest.placeholders import PLACEHOLDER_AT_LEAST, PLACEHOLDER_AT_MOST
from cptpub.store import RatesStore

DOLLAR_TYPES = ("negotiated", "fee schedule", "derived")
PROFESSIONAL_CLASSES = ("professional", "both")
# CMS place-of-service codes paid at the facility rate under the physician fee schedule.
FACILITY_POS = frozenset(
    {"02", "19", "21", "22", "23", "24", "26", "31", "34", "41", "42", "51", "52", "53", "56", "61"}
)
# PFS status codes with a national payment amount (A active, R restricted, T paid only without other services).
PAYABLE_STATUS = frozenset({"A", "R", "T"})
METHOD_NOTES = (
    "The benchmark statistics use fee-for-service dollar rates for the code itself: negotiated types negotiated, "
    "fee schedule and derived, without a billing-code modifier. Percentage and per-diem rates, bundled and "
    "capitation arrangements, and modifier-specific rates (e.g. 26, TC) are counted per payer and reported "
    "separately, never mixed into dollar figures.",
    "The main table covers professional rates (billing class professional or both), which the Medicare physician "
    "fee schedule prices. Institutional (facility-fee) rates are summarised in their own table without a "
    "percentage of Medicare, because Medicare pays facilities under other systems.",
    "Duplicates: a payer's rate counts once per distinct provider group, negotiated type, amount, billing class, "
    "setting and places of service. The same provider group at the same rate listed under several networks or "
    "plans is one rate. A provider reference that could not be resolved counts as its own group.",
    f"Prices of ${PLACEHOLDER_AT_MOST:.2f} or less (zero, negative, a cent) and of ${PLACEHOLDER_AT_LEAST:,.0f} or "
    "more are placeholders in payers' files, not prices: they are stored, counted per payer among the rates left out "
    "of the statistics, and never enter a figure.",
    "Percentiles (25th, median, 75th) interpolate linearly between ranks.",
    "% of Medicare compares each professional rate with the Medicare national amount for its setting: the facility "
    "amount for inpatient rates or rates limited to facility places of service, the non-facility amount otherwise. "
    "A group's figure is the median of those percentages, which equals median / Medicare amount when the group "
    "shares one reference. It is not shown when Medicare has no national amount for the code.",
    "Medicare national amounts are total RVUs multiplied by the conversion factor of the newest fee schedule year "
    "in the store, before geographic adjustment.",
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

    def reference(self, facility: bool) -> float | None:
        """The amount rates are compared with, or None when Medicare pays nothing nationally for the code."""
        amount = self.facility_amount if facility else self.nonfacility_amount
        payable = self.status_code is None or self.status_code in PAYABLE_STATUS
        return amount if payable and amount is not None and amount > 0 else None


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
    by_payer: tuple[RateStats, ...]  # professional rates, one per payer with rates, in catalogue order
    overall: RateStats | None  # professional rates of the payers of kind commercial (payers.yaml) together
    splits: tuple[RateStats, ...]  # professional rates per payer and setting, where a payer has several
    institutional: tuple[RateStats, ...]  # facility-fee rates per payer (no % of Medicare)
    excluded: dict[str, dict[str, int]]  # payer -> kind (e.g. "percentage rate") -> count, left out of statistics
    rates: pd.DataFrame = field(repr=False)  # the deduplicated professional rates behind the table and figure
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
    negotiated_type, negotiated_rate, billing_class,
    coalesce(setting, '') AS setting,
    array_to_string(list_sort(coalesce(service_codes, []::VARCHAR[])), ',') AS service_codes,
    array_to_string(list_sort(coalesce(billing_code_modifiers, []::VARCHAR[])), ',') AS modifiers,
    negotiation_arrangement
FROM negotiated_rates
WHERE billing_code = ? AND source_id IN (SELECT source_id FROM current_sources)
"""


def _excluded_kind(negotiated_type: str, rate: float, arrangement: str, modifiers: str) -> str | None:
    """Why a rate stays out of the dollar statistics, or None when it is in."""
    if negotiated_type not in DOLLAR_TYPES:
        return f"{negotiated_type} rate"
    if not PLACEHOLDER_AT_MOST < rate < PLACEHOLDER_AT_LEAST:
        return "zero, negative or placeholder price"
    if arrangement != "ffs":
        return f"{arrangement} arrangement"
    if modifiers:
        return f"modifier {modifiers} rate"
    return None


def _uses_facility_amount(setting: str, service_codes: str) -> bool:
    if setting == "inpatient":
        return True
    codes = [c for c in service_codes.split(",") if c and c != "CSTM-00"]
    return bool(codes) and all(c in FACILITY_POS for c in codes)


@dataclass(frozen=True)
class _Rate:
    """One deduplicated rate: what the statistics read of it (plain Python: pandas per group cost ~40 ms a code)."""

    payer: str
    provider_group: str
    setting: str
    amount: float
    pct_of_medicare: float  # nan without a Medicare reference


def _stats(payer: str, group: str, rates: Sequence[_Rate]) -> RateStats:
    amounts = sorted(r.amount for r in rates)
    pct = sorted(r.pct_of_medicare for r in rates if not math.isnan(r.pct_of_medicare))
    return RateStats(
        payer=payer,
        group=group,
        n_rates=len(rates),
        n_provider_groups=len({r.provider_group for r in rates}),
        minimum=amounts[0],
        p25=percentile(amounts, 25),
        median=median(amounts),
        p75=percentile(amounts, 75),
        maximum=amounts[-1],
        pct_of_medicare=median(pct) if len(pct) == len(rates) and pct else None,
    )


# numpy's percentile and median (which pandas' Series.quantile and .median call) on plain floats, to the last bit:
# ~0.25 ms a group less than building arrays, and a code has up to ~20 groups.


def percentile(ordered: Sequence[float], q: float) -> float:
    """``np.percentile(ordered, q)`` (linear interpolation between ranks) of sorted floats, without NaN."""
    index = (len(ordered) - 1) * (q / 100)  # numpy's virtual index for method "linear"
    below = math.floor(index)
    gamma = index - below
    a = ordered[below]
    b = ordered[min(below + 1, len(ordered) - 1)]
    difference = b - a
    # numpy's _lerp: from the nearer end, so that the result stays within [a, b]
    return a + difference * gamma if gamma < 0.5 else b - difference * (1 - gamma)


def median(ordered: Sequence[float]) -> float:
    """``np.median(ordered)`` of sorted floats, without NaN: the middle value, or the mean of the two middle ones."""
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _groups(rates: Iterable[_Rate], key: Callable[[_Rate], Any]) -> dict[Any, list[_Rate]]:
    """The rates by ``key``, groups in the order of their first rate."""
    groups: dict[Any, list[_Rate]] = {}
    for rate in rates:
        groups.setdefault(key(rate), []).append(rate)
    return groups


def _setting_label(setting: str) -> str:
    return setting or "not stated"


def load_medicare(con, code: str) -> MedicareAmounts | None:
    """The code's unmodified line of the newest fee schedule: latest year, then latest release (RVU26B after
    RVU26A), then the latest ingest."""
    row = con.execute(
        """SELECT p.year, p.nonfacility_amount, p.facility_amount, p.global_days, p.status_code, p.work_rvu,
                  p.nonfacility_total, p.facility_total, p.conversion_factor, p.source_id
           FROM medicare_pfs p JOIN current_sources s USING (source_id)
           WHERE p.hcpcs = ? AND p.modifier IS NULL
           ORDER BY p.year DESC, s.schema_version DESC, s.ingested_at DESC LIMIT 1""",
        [code],
    ).fetchone()
    return MedicareAmounts(*row) if row else None


def load_sources(con, code: str, medicare: MedicareAmounts | None) -> tuple[Source, ...]:
    """The files behind this code's figures: its rate files and the one fee schedule file whose values are used."""
    rows = con.execute(
        """SELECT source_id, kind, file_name, payer, publisher, plans, last_updated_on, schema_version, rows_kept,
                  coalesce(warnings, []::VARCHAR[]), is_demo
           FROM current_sources
           WHERE source_id IN (SELECT source_id FROM negotiated_rates WHERE billing_code = $1) OR source_id = $2
           ORDER BY kind DESC, payer, file_name""",
        [code, medicare.source_id if medicare else None],
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


def compute(store_path: Path, code: str, payer_order: list[str], commercial: Collection[str]) -> Benchmarks:
    """Benchmarks of ``code`` from the store, payers in ``payer_order`` (the catalogue's order).

    The "All commercial payers" statistics count only the payers named in ``commercial`` (kind ``commercial`` in
    ``payers.yaml``): a file filed under Medicare or another kind has its own row but stays out of the overall one.
    """
    con = RatesStore(store_path).connect(read_only=True)
    try:
        medicare = load_medicare(con, code)
        sources = load_sources(con, code, medicare)
        rows = con.execute(_DEDUP_SQL, [code]).df()
    finally:
        con.close()

    order = {name: i for i, name in enumerate(payer_order)}
    payers, groups, rates = rows["payer"].tolist(), rows["provider_group"].tolist(), rows["negotiated_rate"].tolist()
    # pandas' stable sort by rank, payer, rate, provider group (a payer not in the catalogue ranks last)
    ranked = sorted(range(len(rows)), key=lambda i: (order.get(payers[i], len(order)), payers[i], rates[i], groups[i]))
    why_excluded = [
        _excluded_kind(*values)
        for values in zip(
            rows["negotiated_type"].tolist(),
            rates,
            rows["negotiation_arrangement"].tolist(),
            rows["modifiers"].tolist(),
            strict=True,
        )
    ]
    excluded: dict[str, dict[str, int]] = {}
    for i in ranked:
        why = why_excluded[i]
        if why is not None:
            kinds = excluded.setdefault(payers[i], {})
            kinds[why] = kinds.get(why, 0) + 1

    billing_classes, settings = rows["billing_class"].tolist(), rows["setting"].tolist()
    service_codes = rows["service_codes"].tolist()
    included = [i for i in ranked if why_excluded[i] is None]
    professional_rows = [i for i in included if billing_classes[i] in PROFESSIONAL_CLASSES]
    references = [
        medicare.reference(_uses_facility_amount(settings[i], service_codes[i])) if medicare else None
        for i in professional_rows
    ]
    professional = rows.take(professional_rows).reset_index(drop=True)
    professional["medicare_reference"] = pd.Series(references, dtype=float)
    professional["pct_of_medicare"] = professional["negotiated_rate"] / professional["medicare_reference"] * 100
    professional_rates = [
        _Rate(payers[i], groups[i], settings[i], rates[i], pct)
        for i, pct in zip(professional_rows, professional["pct_of_medicare"].tolist(), strict=True)
    ]

    by_payer: list[RateStats] = []
    splits: list[RateStats] = []
    for payer, group in _groups(professional_rates, lambda r: r.payer).items():
        by_payer.append(_stats(payer, "all", group))
        by_setting = _groups(group, lambda r: r.setting)
        if len(by_setting) > 1:
            splits.extend(_stats(payer, _setting_label(st), by_setting[st]) for st in sorted(by_setting))
    institutional_rates = [
        _Rate(payers[i], groups[i], settings[i], rates[i], float("nan"))
        for i in included
        if billing_classes[i] == "institutional"
    ]
    institutional = [
        _stats(payer, _setting_label(st), part)
        for (payer, st), part in _groups(institutional_rates, lambda r: (r.payer, r.setting)).items()
    ]
    commercial_names = set(commercial)
    commercial_rates = [r for r in professional_rates if r.payer in commercial_names]
    overall = _stats("All commercial payers", "all", commercial_rates) if commercial_rates else None
    return Benchmarks(
        code=code,
        medicare=medicare,
        by_payer=tuple(by_payer),
        overall=overall,
        splits=tuple(splits),
        institutional=tuple(institutional),
        excluded=excluded,
        rates=professional,
        sources=sources,
    )
