"""What a careful reader needs to trust an edition's numbers: computed here, printed by the notebooks.

- ``provider_group_counts``: provider groups counted only when known; references to remote provider files that
  were not resolved are counted as such, never as groups;
- ``places_of_service``: the places of service the rates were negotiated for, per payer;
- ``medicare_bases``: which Medicare amount (facility or non-facility) each payer's "% of Medicare" is against;
- ``freshness_notes``: data older than a configurable age (default 12 months, ``CPTPUB_MAX_DATA_AGE_MONTHS``) or
  dated implausibly (in the future, or before 2021, when no Transparency in Coverage file existed yet);
- ``publishers``: each payer's publisher as its file names itself;
- ``payers_without_data``: the catalogue's payers with no rates for the code, for one sentence.

All take the ``Benchmarks`` that ``analysis.benchmarks.compute`` returns (the same rows the tables show), so the
counts and the tables cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cptpub.analysis.benchmarks import FACILITY_POS, Benchmarks, Source
from cptpub.errors import UsageError

UNRESOLVED_PREFIX = "unresolved:"  # how benchmarks name a provider reference that was not resolved
MAX_AGE_ENV = "CPTPUB_MAX_DATA_AGE_MONTHS"
DEFAULT_MAX_AGE_MONTHS = 12
EARLIEST_PLAUSIBLE = dt.date(2021, 1, 1)  # the Transparency in Coverage rule's files began in July 2022
ALL_PLACES = "CSTM-00"

# CMS place-of-service codes (the common ones; others are shown by number)
POS_NAMES = {
    "01": "Pharmacy",
    "02": "Telehealth (not in the patient's home)",
    "03": "School",
    "04": "Homeless shelter",
    "10": "Telehealth in the patient's home",
    "11": "Office",
    "12": "Home",
    "13": "Assisted living facility",
    "15": "Mobile unit",
    "17": "Walk-in retail health clinic",
    "19": "Off-campus outpatient hospital",
    "20": "Urgent care facility",
    "21": "Inpatient hospital",
    "22": "On-campus outpatient hospital",
    "23": "Emergency room (hospital)",
    "24": "Ambulatory surgical center",
    "31": "Skilled nursing facility",
    "32": "Nursing facility",
    "33": "Custodial care facility",
    "34": "Hospice",
    "41": "Ambulance (land)",
    "49": "Independent clinic",
    "50": "Federally qualified health center",
    "51": "Inpatient psychiatric facility",
    "52": "Psychiatric facility, partial hospitalization",
    "53": "Community mental health center",
    "56": "Psychiatric residential treatment center",
    "61": "Comprehensive inpatient rehabilitation facility",
    "62": "Comprehensive outpatient rehabilitation facility",
    "65": "End-stage renal disease treatment facility",
    "71": "Public health clinic",
    "72": "Rural health clinic",
    "81": "Independent laboratory",
    "99": "Other place of service",
    ALL_PLACES: "All places of service",
}


def pos_name(code: str) -> str:
    return POS_NAMES.get(code, f"place of service {code}")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


# --- provider groups ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderGroups:
    payer: str  # a payer, or 'All commercial payers'
    resolved_groups: int  # distinct provider groups known from the file (inline or resolved references)
    unresolved_references: int  # references to remote provider files that were not resolved

    @property
    def known(self) -> bool:
        """True when every rate's provider group is known, so ``resolved_groups`` is the number of groups."""
        return self.unresolved_references == 0

    @property
    def text(self) -> str:
        """E.g. '72 provider groups', or 'unknown: 72 references to remote files were not resolved'."""
        unresolved = _plural(self.unresolved_references, "reference") + " to remote files"
        verb = "was" if self.unresolved_references == 1 else "were"
        if self.known:
            return _plural(self.resolved_groups, "provider group")
        if self.resolved_groups == 0:
            return f"unknown: {unresolved} {verb} not resolved"
        return f"at least {_plural(self.resolved_groups, 'provider group')}; {unresolved} {verb} not resolved"


def _groups(payer: str, groups: Iterable[str]) -> ProviderGroups:
    distinct = set(groups)
    unresolved = sum(1 for g in distinct if g.startswith(UNRESOLVED_PREFIX))
    return ProviderGroups(payer, len(distinct) - unresolved, unresolved)


def provider_group_counts(benchmarks: Benchmarks) -> tuple[ProviderGroups, ...]:
    """Per payer (catalogue order), then all commercial payers together, over the professional rates the main
    table shows."""
    rates = benchmarks.rates
    if rates.empty:
        return ()
    counts = [_groups(str(payer), part["provider_group"]) for payer, part in rates.groupby("payer", sort=False)]
    counts.append(_groups("All commercial payers", rates["provider_group"]))
    return tuple(counts)


# --- places of service and the Medicare amount each rate is compared with -------------------------------------------


@dataclass(frozen=True)
class PlaceOfServiceCount:
    payer: str
    place: str  # a CMS place-of-service code, 'CSTM-00' (all), or '' (not stated)
    name: str
    n_rates: int


def _places(service_codes: str) -> list[str]:
    return [c for c in service_codes.split(",") if c] or [""]


def places_of_service(benchmarks: Benchmarks) -> dict[str, tuple[PlaceOfServiceCount, ...]]:
    """Payer -> the places of service of its professional rates (a rate listing several counts under each), most
    rates first."""
    result: dict[str, tuple[PlaceOfServiceCount, ...]] = {}
    for payer, part in benchmarks.rates.groupby("payer", sort=False):
        counts: dict[str, int] = {}
        for codes in part["service_codes"]:
            for place in _places(codes):
                counts[place] = counts.get(place, 0) + 1
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        result[str(payer)] = tuple(
            PlaceOfServiceCount(str(payer), place, pos_name(place) if place else "not stated", n)
            for place, n in ordered
        )
    return result


@dataclass(frozen=True)
class MedicareBasis:
    payer: str
    setting: str  # 'facility' | 'non-facility'
    amount: float | None  # Medicare's national amount for that setting (None: no national amount)
    n_rates: int
    places: tuple[str, ...]  # the places of service of those rates ('' = not stated)
    note: str | None  # e.g. CMS publishes no non-facility practice expense for the code

    @property
    def text(self) -> str:
        """E.g. '23 rates (Ambulatory surgical center) compared with Medicare's facility amount, $1,257.63'."""
        where = ", ".join(pos_name(p) if p else "place of service not stated" for p in self.places)
        amount = f"${self.amount:,.2f}" if self.amount is not None else "none published"
        text = f"{_plural(self.n_rates, 'rate')} ({where}) compared with Medicare's {self.setting} amount, {amount}"
        return text + (f" ({self.note})" if self.note else "")


def medicare_bases(benchmarks: Benchmarks, *, nonfacility_na: bool = False) -> tuple[MedicareBasis, ...]:
    """Per payer and setting, which Medicare amount the '% of Medicare' of its rates is computed against (the rule
    of ``analysis.benchmarks``: the facility amount for inpatient rates and rates limited to facility places of
    service, the non-facility amount otherwise). ``nonfacility_na``: the fee schedule's NA flag for the code
    (``CodeFacts.pfs.nonfacility_na``), noted where a non-facility amount is used."""
    medicare = benchmarks.medicare
    bases: list[MedicareBasis] = []
    for payer, part in benchmarks.rates.groupby("payer", sort=False):
        groups: dict[bool, list[str]] = {}
        for setting, codes in zip(part["setting"], part["service_codes"], strict=True):
            places = [c for c in codes.split(",") if c and c != ALL_PLACES]
            facility = setting == "inpatient" or (bool(places) and all(c in FACILITY_POS for c in places))
            groups.setdefault(facility, []).append(codes)
        for facility in (True, False):
            if facility not in groups:
                continue
            places_seen = sorted({p for codes in groups[facility] for p in _places(codes)})
            amount = None
            if medicare is not None:
                amount = medicare.reference(facility)
            note = None
            if not facility and nonfacility_na:
                note = "CMS publishes no non-facility practice expense for this code (NA)"
            bases.append(
                MedicareBasis(
                    str(payer),
                    "facility" if facility else "non-facility",
                    amount,
                    len(groups[facility]),
                    tuple(places_seen),
                    note,
                )
            )
    return tuple(bases)


# --- dates -------------------------------------------------------------------------------------------------------


def max_age_months() -> int:
    """The age past which data is called old: ``$CPTPUB_MAX_DATA_AGE_MONTHS``, default 12."""
    value = os.environ.get(MAX_AGE_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_AGE_MONTHS
    if not value.isdigit() or not 1 <= int(value) <= 600:
        raise UsageError(f"{MAX_AGE_ENV}={value!r}: expected a whole number of months from 1 to 600")
    return int(value)


def _months_before(day: dt.date, months: int) -> dt.date:
    month = day.year * 12 + day.month - 1 - months
    year, month = divmod(month, 12)
    return dt.date(year, month + 1, min(day.day, 28))


@dataclass(frozen=True)
class DataNote:
    subject: str  # e.g. "Aetna rates", "Medicare fee schedule"
    file_name: str
    as_of: dt.date
    problem: str  # 'old' | 'future' | 'implausibly early'
    text: str


def _subject(source: Source) -> str:
    if source.kind == "pprrvu":
        return "Medicare fee schedule"
    if source.kind.startswith("ncci-"):
        return "NCCI " + source.kind.removeprefix("ncci-").upper() + " edits"
    return f"{source.payer} rates"


def freshness_notes(sources: Sequence[Source], today: dt.date, *, months: int | None = None) -> tuple[DataNote, ...]:
    """Notes on the sources' dates: each subject's newest file older than ``months`` (default
    :func:`max_age_months`) before ``today``, and any file dated after ``today`` or before 2021."""
    months = months if months is not None else max_age_months()
    cutoff = _months_before(today, months)
    notes: list[DataNote] = []
    newest: dict[str, Source] = {}
    for source in sources:
        date = source.last_updated_on
        if not isinstance(date, dt.date):
            continue
        subject = _subject(source)
        if date > today:
            notes.append(
                DataNote(
                    subject,
                    source.file_name,
                    date,
                    "future",
                    f"{source.file_name} is dated "
                    f"{date.isoformat()}, after the day this edition was built ({today.isoformat()})",
                )  # fmt: skip
            )
        elif date < EARLIEST_PLAUSIBLE:
            notes.append(
                DataNote(
                    subject,
                    source.file_name,
                    date,
                    "implausibly early",
                    f"{source.file_name} is dated {date.isoformat()}, before any such file was published",
                )  # fmt: skip
            )
        current = newest.get(subject)
        if current is None or date > current.last_updated_on:  # type: ignore[operator]
            newest[subject] = source
    for subject, source in newest.items():
        date = source.last_updated_on
        assert isinstance(date, dt.date)
        if EARLIEST_PLAUSIBLE <= date < cutoff:
            notes.append(
                DataNote(
                    subject,
                    source.file_name,
                    date,
                    "old",
                    f"the newest {subject} ({source.file_name}) are "
                    f"as of {date.isoformat()}, more than {months} months before {today.isoformat()}",
                )  # fmt: skip
            )
    return tuple(notes)


# --- who published what ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Publisher:
    payer: str  # the catalogue's payer the file is filed under
    publisher: str  # reporting_entity_name, as the file writes it
    entity_type: str | None
    plans: str | None
    file_name: str
    is_demo: bool

    @property
    def text(self) -> str:
        """E.g. 'CareFirst BlueCross BlueShield (health insurance issuer), filed under Blue Cross Blue Shield'."""
        kind = f" ({self.entity_type})" if self.entity_type else ""
        same = "".join(self.publisher.lower().split()) == "".join(self.payer.lower().split())
        return f"{self.publisher}{kind}" + ("" if same else f", filed under {self.payer}")


def publishers(benchmarks: Benchmarks) -> tuple[Publisher, ...]:
    """The publisher of each payer's rate file behind this code, as the file names itself."""
    seen: list[Publisher] = []
    for source in benchmarks.sources:
        if source.kind != "tic-in-network" or not source.publisher:
            continue
        entry = Publisher(
            source.payer, source.publisher, getattr(source, "entity_type", None), source.plans, source.file_name,
            source.is_demo,
        )  # fmt: skip
        if entry not in seen:
            seen.append(entry)
    return tuple(seen)


def payers_without_data(payer_names: Sequence[str], benchmarks: Benchmarks | None) -> tuple[str, ...]:
    """The commercial payers of ``payer_names`` (catalogue order) with no professional or institutional rate for the
    code, and none left out of the statistics either: named together in one sentence by the edition."""
    present: set[str] = set()
    if benchmarks is not None:
        present |= set(benchmarks.payers_with_rates)
        present |= {s.payer for s in benchmarks.institutional}
        present |= set(benchmarks.excluded)
    return tuple(name for name in payer_names if name not in present)
