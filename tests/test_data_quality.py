"""Honest numbers for real-data editions: provider groups only when known, places of service, the Medicare amount
each rate is compared with, old or implausible dates, the publisher as its file names itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cptpub.analysis.benchmarks import Source, compute
from cptpub.analysis.data_quality import (
    freshness_notes,
    max_age_months,
    medicare_bases,
    payers_without_data,
    places_of_service,
    provider_group_counts,
    publishers,
)
from cptpub.errors import UsageError
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.store import RatesStore
from cptpub.store.rates import wide_rows

PFS_2025 = Path(__file__).parent / "fixtures" / "cms" / "PPRRVU2025_Oct.excerpt.csv"
FACILITY_27447 = 1257.63  # 38.88 RVUs x 32.3465, the 2025 file's facility total


def _source(con, source_id: str, payer: str, publisher: str, as_of: str) -> None:
    con.execute(
        "INSERT INTO sources VALUES (?, 'tic-in-network', ?, ?, ?, ?, 'health insurance issuer', 'PPO', ?, '1.0.0', "
        "1, 0, [], false, now())",
        [source_id, f"{source_id}.json", f"{source_id}.json", payer, publisher, dt.date.fromisoformat(as_of)],
    )


def _rate(con, source_id: str, payer: str, amount: float, places: list[str], group: str | None, ref: str | None):
    with wide_rows(con) as rates:
        con.execute(
            f"INSERT INTO {rates} (source_id, payer, billing_code, billing_code_type, negotiation_arrangement, "
            "negotiated_type, negotiated_rate, billing_class, service_codes, provider_group_key, provider_reference, "
            "provider_reference_status) "
            "VALUES (?, ?, '27447', 'CPT', 'ffs', 'negotiated', ?, 'professional', ?, ?, ?, ?)",
            [source_id, payer, amount, places, group, ref, "inline" if group else "unresolved"],
        )


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory):
    path = tmp_path_factory.mktemp("quality") / "rates.duckdb"
    store = RatesStore(path)
    ingest_pfs_file(store, PFS_2025, codes={"27447"})
    with store.transaction() as con:
        _source(con, "bcbs", "Blue Cross Blue Shield", "CareFirst BlueCross BlueShield", "2026-10-01")
        _source(con, "cigna", "Cigna Health", "Cigna Health", "2024-01-15")
        _rate(con, "bcbs", "Blue Cross Blue Shield", 1500.0, ["24"], "ein:11-1111111", None)
        _rate(con, "bcbs", "Blue Cross Blue Shield", 1600.0, ["24"], None, "17")
        _rate(con, "bcbs", "Blue Cross Blue Shield", 1700.0, ["24"], None, "18")
        _rate(con, "cigna", "Cigna Health", 1300.0, ["11"], "ein:22-2222222", None)
        _rate(con, "cigna", "Cigna Health", 1400.0, ["11", "22"], "npi:1234567890", None)
    payers = ["Blue Cross Blue Shield", "Cigna Health", "Aetna"]
    return compute(path, "27447", payers, payers)


def test_provider_groups_are_counted_only_when_resolved(benchmarks):
    counts = {c.payer: c for c in provider_group_counts(benchmarks)}
    bcbs = counts["Blue Cross Blue Shield"]
    assert (bcbs.resolved_groups, bcbs.unresolved_references, bcbs.known) == (1, 2, False)
    assert bcbs.text == "at least 1 provider group; 2 references to remote files were not resolved"
    assert counts["Cigna Health"].text == "2 provider groups"
    assert (counts["All commercial payers"].resolved_groups, counts["All commercial payers"].unresolved_references) == (
        3,
        2,
    )
    # what the benchmarks table says today, for contrast: unresolved references counted as groups
    assert next(s for s in benchmarks.by_payer if s.payer == "Blue Cross Blue Shield").n_provider_groups == 3


def test_places_of_service_per_payer(benchmarks):
    places = places_of_service(benchmarks)
    assert [(p.place, p.name, p.n_rates) for p in places["Blue Cross Blue Shield"]] == [
        ("24", "Ambulatory surgical center", 3)
    ]
    assert [(p.place, p.n_rates) for p in places["Cigna Health"]] == [("11", 2), ("22", 1)]


def test_each_rate_is_compared_with_the_medicare_amount_of_its_setting(benchmarks):
    bases = {(b.payer, b.setting): b for b in medicare_bases(benchmarks, nonfacility_na=True)}
    asc = bases[("Blue Cross Blue Shield", "facility")]
    assert (asc.amount, asc.n_rates, asc.places, asc.note) == (FACILITY_27447, 3, ("24",), None)
    assert asc.text == "3 rates (Ambulatory surgical center) compared with Medicare's facility amount, $1,257.63"
    office = bases[("Cigna Health", "non-facility")]
    assert office.n_rates == 2 and office.places == ("11", "22")
    assert office.note == "CMS publishes no non-facility practice expense for this code (NA)"
    assert office.amount == benchmarks.medicare.nonfacility_amount
    # the benchmarks' own percentages use the same amounts
    for payer, amount in (("Blue Cross Blue Shield", asc.amount), ("Cigna Health", office.amount)):
        part = benchmarks.rates[benchmarks.rates["payer"] == payer]
        assert list(part["pct_of_medicare"]) == pytest.approx(list(part["negotiated_rate"] / amount * 100))


def test_publishers_as_their_files_name_them_and_payers_without_data(benchmarks):
    names = {p.payer: p.text for p in publishers(benchmarks)}
    assert names["Blue Cross Blue Shield"] == "CareFirst BlueCross BlueShield, filed under Blue Cross Blue Shield"
    assert names["Cigna Health"] == "Cigna Health"
    assert payers_without_data(["Blue Cross Blue Shield", "Cigna Health", "Aetna"], benchmarks) == ("Aetna",)
    assert payers_without_data(["Aetna"], None) == ("Aetna",)


def _src(kind: str, payer: str, date: dt.date) -> Source:
    return Source("id", kind, f"{payer}.json", payer, None, None, date, None, 1, (), False)


def test_old_future_and_implausibly_early_dates(monkeypatch):
    today = dt.date(2026, 11, 29)
    sources = [
        _src("tic-in-network", "Aetna", dt.date(2025, 11, 1)),  # 13 months: old
        _src("tic-in-network", "Cigna", dt.date(2025, 12, 1)),  # within 12 months
        _src("tic-in-network", "Cigna", dt.date(2024, 1, 1)),  # an older Cigna file: its newest counts
        _src("tic-in-network", "Humana", dt.date(2027, 1, 1)),
        _src("tic-in-network", "Oscar", dt.date(2019, 6, 30)),
        _src("pprrvu", "Medicare", dt.date(2025, 1, 1)),
    ]
    notes = {(n.subject, n.problem): n for n in freshness_notes(sources, today)}
    assert set(notes) == {
        ("Aetna rates", "old"),
        ("Humana rates", "future"),
        ("Oscar rates", "implausibly early"),
        ("Medicare fee schedule", "old"),
    }
    assert notes[("Aetna rates", "old")].text == (
        "the newest Aetna rates (Aetna.json) are as of 2025-11-01, more than 12 months before 2026-11-29"
    )
    assert "after the day this edition was built" in notes[("Humana rates", "future")].text
    assert {n.subject for n in freshness_notes(sources, today, months=24)} == {"Humana rates", "Oscar rates"}
    monkeypatch.setenv("CPTPUB_MAX_DATA_AGE_MONTHS", "36")
    assert max_age_months() == 36
    monkeypatch.setenv("CPTPUB_MAX_DATA_AGE_MONTHS", "a year")
    with pytest.raises(UsageError, match="CPTPUB_MAX_DATA_AGE_MONTHS='a year'"):
        max_age_months()


def test_the_edition_prints_no_provider_group_count_from_unresolved_references(benchmarks):
    from cptpub import sections as cp
    from cptpub.records import load_payers
    from cptpub.records.schema import CodeRecord

    catalogue = load_payers(Path(__file__).resolve().parents[1] / "data" / "payers.yaml")
    e = cp.EditionContext(code="27447", record=CodeRecord(), catalogue=catalogue, benchmarks=benchmarks)
    table = cp.payer_table(e)
    groups = dict(zip(table["Payer"], table["Provider groups"], strict=True))
    assert groups["Blue Cross Blue Shield"] == "≥ 1 (2 unresolved)"  # 1 inline group, 2 references not resolved
    assert groups["Cigna Health"] == 2
    assert groups["All commercial payers"] == "≥ 3 (2 unresolved)"
    paragraph = cp.commercial_paragraph(e)
    assert "from 5 provider groups" not in paragraph
    assert "at least 3 provider groups; 2 references to remote files were not resolved" in paragraph.replace("\\", "")
