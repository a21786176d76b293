"""The benchmark rules on a small hand-made store, filled through the real ingesters.

Each number asserted below is worked out by hand from the rates written in this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cptpub.analysis.benchmarks import compute
from cptpub.ingest import ingest_pfs_file, ingest_tic_file
from cptpub.records import load_payers
from cptpub.store import RatesStore

from .conftest import REPO
from .test_ingest_pfs import pprrvu_csv

PAYERS = [p.name for p in load_payers(REPO / "data" / "payers.yaml").payers]
COMMERCIAL = [p.name for p in load_payers(REPO / "data" / "payers.yaml").payers if p.kind == "commercial"]
# 99213 in the PFS fixture: total RVUs 2.56 non-facility and 1.95 facility, conversion factor 33.2875.
NONFACILITY, FACILITY = round(2.56 * 33.2875, 2), round(1.95 * 33.2875, 2)


def group(tin: str) -> dict:
    return {"npi": [1234567890], "tin": {"type": "ein", "value": tin}}


def price(amount: float, **extra) -> dict:
    return {"negotiated_type": "negotiated", "negotiated_rate": amount, "expiration_date": "9999-12-31",
            "billing_class": "professional", **extra}  # fmt: skip


def tic(entity: str, items: list[dict], version: str = "2.0.0") -> dict:
    return {"reporting_entity_name": entity, "reporting_entity_type": "health insurance issuer",
            "plan_name": "Test plan", "plan_id_type": "ein", "plan_id": "11-1111111", "plan_market_type": "group",
            "last_updated_on": "2026-09-01", "version": version, "in_network": items}  # fmt: skip


def item(code: str, rates: list[dict], arrangement: str = "ffs") -> dict:
    return {"negotiation_arrangement": arrangement, "name": "x", "billing_code_type": "CPT",
            "billing_code_type_version": "2026", "billing_code": code, "description": "x",
            "negotiated_rates": rates}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> RatesStore:
    store = RatesStore(tmp_path / "rates.duckdb")
    catalogue = load_payers(REPO / "data" / "payers.yaml")
    pfs = tmp_path / "PPRRVU24_JAN.csv"
    pfs.write_bytes(pprrvu_csv())
    ingest_pfs_file(store, pfs, codes={"99213", "J3490"})
    v2 = tic(
        "Aetna Life Insurance Company",
        [
            item("99213", [
                {"provider_groups": [group("10-0000001")], "negotiated_prices": [price(120.0, setting="inpatient")]},
                {"provider_groups": [group("10-0000002")],
                 "negotiated_prices": [price(90.0, setting="outpatient", service_code=["11"])]},
                # the same group and price again (another network): one rate
                {"provider_groups": [group("10-0000002")],
                 "negotiated_prices": [price(90.0, setting="outpatient", service_code=["11"])]},
                {"provider_groups": [group("10-0000003")],
                 "negotiated_prices": [price(400.0, billing_class="institutional", setting="outpatient")]},
                {"provider_groups": [group("10-0000004")],
                 "negotiated_prices": [price(30.0, setting="outpatient", billing_code_modifier=["26"])]},
                {"provider_groups": [group("10-0000005")],
                 "negotiated_prices": [{**price(55.0, setting="outpatient"), "negotiated_type": "percentage"}]},
            ]),
            item("99213", [{"provider_groups": [group("10-0000006")],
                            "negotiated_prices": [price(1000.0, setting="outpatient")]}], arrangement="bundle"),
            item("J3490", [{"provider_groups": [group("10-0000007")],
                            "negotiated_prices": [price(50.0, setting="outpatient", service_code=["11"])]}]),
        ],
    )  # fmt: skip
    # a v1 file (no `setting`) of another payer for the same code: settings mix NULL and text in one column
    v1 = tic(
        "Cigna Health and Life Insurance Company",
        [item("99213", [{"provider_groups": [group("20-0000001")],
                         "negotiated_prices": [{k: v for k, v in price(100.0, service_code=["22"]).items()}]}])],
        version="1.3.1",
    )  # fmt: skip
    for name, document in (("aetna.json", v2), ("cigna.json", v1)):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        ingest_tic_file(store, path, codes={"99213", "J3490"}, catalogue=catalogue)
    return store


def test_professional_ffs_dollar_rates_only_each_against_its_own_medicare_amount(store):
    b = compute(store.path, "99213", PAYERS, COMMERCIAL)
    aetna, cigna = b.by_payer
    assert (aetna.payer, aetna.n_rates, aetna.n_provider_groups) == ("Aetna", 2, 2)
    assert (aetna.minimum, aetna.median, aetna.maximum) == (90.0, 105.0, 120.0)
    # inpatient -> facility amount; office (POS 11) -> non-facility amount; median of the two percentages
    expected_pct = (120.0 / FACILITY * 100 + 90.0 / NONFACILITY * 100) / 2
    assert aetna.pct_of_medicare == pytest.approx(expected_pct)
    # v1 rate without a setting, POS 22 (outpatient hospital): facility amount
    assert (cigna.payer, cigna.n_rates, cigna.median) == ("Cigna Health", 1, 100.0)
    assert cigna.pct_of_medicare == pytest.approx(100.0 / FACILITY * 100)
    assert b.overall.n_rates == 3 and b.overall.median == 100.0


def test_excluded_rates_are_counted_not_mixed_in(store):
    b = compute(store.path, "99213", PAYERS, COMMERCIAL)
    assert b.excluded == {"Aetna": {"percentage rate": 1, "modifier 26 rate": 1, "bundle arrangement": 1}}
    assert [(s.payer, s.group, s.n_rates, s.median, s.pct_of_medicare) for s in b.institutional] == [
        ("Aetna", "outpatient", 1, 400.0, None)
    ]
    assert 1000.0 not in b.rates["negotiated_rate"].tolist() and 30.0 not in b.rates["negotiated_rate"].tolist()


def test_settings_split_where_a_payer_has_several(store):
    b = compute(store.path, "99213", PAYERS, COMMERCIAL)
    assert [(s.payer, s.group, s.n_rates) for s in b.splits] == [("Aetna", "inpatient", 1), ("Aetna", "outpatient", 1)]


def test_a_code_medicare_does_not_price_gets_no_percentage(store):
    b = compute(store.path, "J3490", PAYERS, COMMERCIAL)
    assert b.medicare.status_code == "C"
    assert b.medicare.reference(True) is None and b.medicare.reference(False) is None
    assert b.by_payer[0].median == 50.0
    assert b.by_payer[0].pct_of_medicare is None


def test_sources_cite_the_files_used(store):
    b = compute(store.path, "99213", PAYERS, COMMERCIAL)
    assert sorted(s.kind for s in b.sources) == ["pprrvu", "tic-in-network", "tic-in-network"]


def test_all_commercial_payers_leaves_out_a_medicare_kind_entity(store, tmp_path: Path):
    """A rate file filed under a payer of kind ``medicare`` in payers.yaml gets its own row, never the overall one."""
    medicare_file = tic(
        "Centers for Medicare and Medicaid Services",
        [item("99213", [{"provider_groups": [group("30-0000001")],
                         "negotiated_prices": [price(5000.0, setting="outpatient", service_code=["11"])]}])],
    )  # fmt: skip
    path = tmp_path / "medicare.json"
    path.write_text(json.dumps(medicare_file))
    ingest_tic_file(store, path, codes={"99213"}, catalogue=load_payers(REPO / "data" / "payers.yaml"))
    b = compute(store.path, "99213", PAYERS, COMMERCIAL)
    assert [s.payer for s in b.by_payer] == ["Aetna", "Cigna Health", "Medicare"]
    assert b.by_payer[-1].median == 5000.0
    # the overall row: Aetna's 90 and 120 and Cigna's 100, as before the Medicare-kind file
    assert b.overall.payer == "All commercial payers"
    assert (b.overall.n_rates, b.overall.median, b.overall.maximum) == (3, 100.0, 120.0)


def test_zero_and_placeholder_prices_stay_out_of_the_statistics_and_are_counted(store, tmp_path: Path):
    """Issue 12.5: $0.00, negative, one-cent and 999999.99 prices are stored but never enter a figure."""
    placeholders = [0.0, -5.0, 0.01, 999999.99]
    document = tic(
        "UnitedHealthcare Insurance Company",
        [item("99213", [
            {"provider_groups": [group(f"40-000000{i}")],
             "negotiated_prices": [price(amount, setting="outpatient", service_code=["11"])]}
            for i, amount in enumerate([80.0, *placeholders])
        ])],
    )  # fmt: skip
    path = tmp_path / "uhc.json"
    path.write_text(json.dumps(document))
    ingest_tic_file(store, path, codes={"99213"}, catalogue=load_payers(REPO / "data" / "payers.yaml"))
    b = compute(store.path, "99213", PAYERS, COMMERCIAL)
    (uhc,) = [s for s in b.by_payer if s.payer == "UnitedHealthcare"]
    assert (uhc.n_rates, uhc.minimum, uhc.maximum) == (1, 80.0, 80.0)
    assert b.excluded["UnitedHealthcare"] == {"zero, negative or placeholder price": len(placeholders)}
    assert (b.overall.n_rates, b.overall.minimum, b.overall.maximum) == (4, 80.0, 120.0)


def test_percentiles_and_medians_are_numpys_to_the_last_bit() -> None:
    """The statistics' plain-float percentile and median equal numpy's (what pandas' quantile and median use), bit for
    bit, on sizes 1 to 40 of prices with cents, rounded percentages, ties and values spanning magnitudes."""
    import random

    import numpy as np

    from cptpub.analysis.benchmarks import median, percentile

    rng = random.Random(13)
    samples = []
    for n in range(1, 41):
        samples.append([round(rng.uniform(0.02, 5000), 2) for _ in range(n)])
        samples.append([rng.choice([99.99, 100.0, 100.01, 250.5]) for _ in range(n)])
        samples.append([rng.lognormvariate(4, 2) for _ in range(n)])
        samples.append([rng.uniform(0, 400) / 3 for _ in range(n)])
    for sample in samples:
        ordered = sorted(sample)
        for q in (25, 75):
            assert percentile(ordered, q).hex() == float(np.percentile(sample, q)).hex(), (sample, q)
        assert median(ordered).hex() == float(np.median(sample)).hex(), sample
