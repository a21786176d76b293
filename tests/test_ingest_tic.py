"""Ingest of TiC in-network files: every CMS example (v1 and v2), provider references, re-ingest, replace,
rollback, gzip, and the streaming JSON reader under chunk boundaries.

Expected rows are written from reading the fixtures by hand. The CMS examples name the reporting entity
"medicare" or "cms", which data/payers.yaml maps to the payer Medicare; the one example with another entity
("Comprehensive Health Insurance") is ingested with an explicit payer override.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cptpub.errors import IngestError, UsageError
from cptpub.ingest import jsonscan, stream, tic, typed
from cptpub.ingest.jsonscan import MISSING, JsonReader, index_chunks
from cptpub.ingest.tic import ingest_tic_file
from cptpub.records.load import load_payers
from cptpub.store import RatesStore

from .conftest import FIXTURES

REPO = Path(__file__).resolve().parents[1]
TIC = FIXTURES / "tic"
ALL_FIXTURE_CODES = {"27447", "27448", "81.54", "99214", "97110", "0200", "80053", "99285"}
AS_OF = dt.date(2020, 8, 27)

# provider groups: (key, npi count); with business name and network where the file gives them
G11 = ("ein:11-1111111", 5)
G22 = ("ein:22-2222222", 5)
G22_4 = ("ein:22-2222222", 4)
NPI6 = ("npi:6666666666", 1)
NPI6_4 = ("npi:6666666666", 4)


@pytest.fixture
def catalogue():
    return load_payers(REPO / "data" / "payers.yaml")


@pytest.fixture
def store(tmp_path: Path) -> RatesStore:
    return RatesStore(tmp_path / "rates.duckdb")


def price(code, rate, billing_class, service=None, modifiers=None, ntype="negotiated", setting=None, arrangement="ffs"):
    return {
        "code": code,
        "rate": rate,
        "class": billing_class,
        "service": service,
        "modifiers": modifiers,
        "type": ntype,
        "setting": setting,
        "arrangement": arrangement,
    }


def inline(p, *groups):
    return [(p, key, npis, None, "inline") for key, npis in groups]


def referenced(p, reference, *groups):
    return [(p, key, npis, reference, "resolved") for key, npis in groups]


def as_rows(expanded) -> Counter:
    return Counter(
        (
            p["code"],
            p["arrangement"],
            p["type"],
            p["rate"],
            p["class"],
            p["setting"],
            tuple(p["service"]) if p["service"] else None,
            tuple(p["modifiers"]) if p["modifiers"] else None,
            key,
            npis,
            reference,
            status,
        )
        for p, key, npis, reference, status in expanded
    )


def stored_rows(store: RatesStore, source_id: str) -> Counter:
    con = store.connect(read_only=True)
    try:
        rows = con.execute(
            """SELECT billing_code, negotiation_arrangement, negotiated_type, negotiated_rate, billing_class, setting,
                      service_codes, billing_code_modifiers, provider_group_key, npi_count, provider_reference,
                      provider_reference_status
               FROM negotiated_rates WHERE source_id = ?""",
            [source_id],
        ).fetchall()
    finally:
        con.close()
    return Counter(tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in rows)


def source_row(store: RatesStore, source_id: str) -> dict:
    con = store.connect(read_only=True)
    try:
        cursor = con.execute("SELECT * FROM sources WHERE source_id = ?", [source_id])
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))
    finally:
        con.close()


def counts(store: RatesStore) -> tuple[int, int]:
    con = store.connect(read_only=True)
    try:
        return (
            con.execute("SELECT count(*) FROM negotiated_rates").fetchone()[0],
            con.execute("SELECT count(*) FROM sources").fetchone()[0],
        )
    finally:
        con.close()


# --- the CMS examples, read by hand ---------------------------------------------------------------------------

# v1 fee-for-service: 27447 with inline groups; 27448 with provider reference 1 (two groups) and an inline NPI
# group. Reference 2 points at a remote file but no rate uses it.
V1_FFS = [
    *inline(price("27447", 123.45, "professional", ["18", "19", "11"], ["AS"]), G11, G22),
    *inline(price("27447", 1230.45, "institutional"), G11, G22),
    *inline(price("27447", 120.45, "professional", ["05", "06", "07"]), G22_4),
    *referenced(price("27448", 12003.45, "professional", ["CSTM-00"]), "1", G11, G22),
    *inline(price("27448", 12.45, "institutional", ["18", "19", "11"]), NPI6),
]
V1_MULTI = [
    *inline(price("27447", 123.45, "professional", ["18", "19", "11"], ["AS"]), G11, G22),
    *inline(price("27447", 1230.45, "institutional"), G11, G22),
    *inline(price("27447", 120.45, "professional", ["05", "06", "07"]), G22_4),
    *inline(price("27447", 120.45, "both", ntype="derived"), G22_4),
    *inline(price("27448", 12003.45, "professional", ["18", "19", "11"]), G11, G22),
    *inline(price("27448", 12.45, "institutional", ["18", "19", "11"]), NPI6),
]
V1_NO_NPI = inline(price("27447", 123.45, "institutional"), ("ein:11-1111111", 0))  # npi [0]: no NPI
V1_BUNDLE = [
    *inline(price("81.54", 20000.0, "professional", ["05", "06", "07"], arrangement="bundle"), G11, G22),
    *inline(price("81.54", 25000.0, "professional", ["05", "06", "07"], arrangement="bundle"), NPI6_4),
]
V1_CAPITATION = [
    *inline(price("27447", 20000.0, "institutional", arrangement="capitation"), G11, G22),
    *inline(price("27447", 25000.0, "professional", ["05", "06", "07"], arrangement="capitation"), G22_4),
]


def v2(code, rate, billing_class, service=None, modifiers=None, ntype="negotiated", arrangement="ffs"):
    return price(code, rate, billing_class, service, modifiers, ntype, "inpatient", arrangement)


V2_FFS = [
    *referenced(v2("27447", 123.45, "professional", ["18", "19", "11"], ["AS"]), "1", G11, G22),
    *referenced(v2("27447", 1230.45, "institutional"), "1", G11, G22),
    *referenced(v2("27447", 120.45, "professional", ["05", "06", "07"]), "1", G11, G22),
    *referenced(v2("27448", 12003.45, "professional", ["CSTM-00"]), "1", G11, G22),
    *referenced(v2("27448", 12.45, "institutional", ["18", "19", "11"]), "1", G11, G22),
]
V2_MULTI = [
    *referenced(v2("27447", 123.45, "professional", ["18", "19", "11"], ["AS"]), "1", G11, G22),
    *referenced(v2("27447", 1230.45, "institutional"), "1", G11, G22),
    *referenced(v2("27447", 120.45, "professional", ["05", "06", "07"]), "1", G11, G22),
    *referenced(v2("27447", 120.45, "both", ntype="derived"), "1", G11, G22),
    *referenced(v2("27448", 12003.45, "professional", ["18", "19", "11"]), "1", G11, G22),
    *referenced(v2("27448", 12.45, "institutional", ["18", "19", "11"]), "1", G11, G22),
]
V2_NO_NPI = referenced(v2("27447", 123.45, "institutional"), "1", ("npi:1234567890", 1))
V2_BUNDLE = [
    *referenced(v2("81.54", 20000.0, "professional", ["05", "06", "07"], arrangement="bundle"), "1", G11, G22),
    *referenced(v2("81.54", 25000.0, "professional", ["05", "06", "07"], arrangement="bundle"), "1", G11, G22),
]
V2_CAPITATION = [
    *referenced(v2("27447", 20000.0, "institutional", arrangement="capitation"), "1", G11, G22),
    *referenced(v2("27447", 25000.0, "professional", ["05", "06", "07"], arrangement="capitation"), "1", G11, G22),
]
# reference 1: two groups (3 and 1 NPIs); reference 2: one group (2 NPIs)
REF1 = (("ein:12-3456789", 3), ("ein:23-4567890", 1))
REF2 = (("ein:34-5678901", 2),)


def out(code, rate, billing_class, service=None, ntype="negotiated", setting="outpatient"):
    return price(code, rate, billing_class, service, None, ntype, setting)


V2_ALL_TYPES = [
    *referenced(out("99214", 150.0, "professional", ["11"]), "1", *REF1),
    *referenced(out("97110", 65.0, "professional", ["11", "22"], "percentage"), "1", *REF1),
    *referenced(out("0200", 5500.0, "institutional", None, "per diem", "inpatient"), "2", *REF2),
    *referenced(out("80053", 45.0, "professional", ["11", "81"], "derived"), "1", *REF1),
    *referenced(out("27447", 8500.0, "professional", ["21", "22"], "fee schedule", "inpatient"), "1", *REF1),
    *referenced(out("27447", 8500.0, "professional", ["21", "22"], "fee schedule", "inpatient"), "2", *REF2),
    *referenced(out("27447", 12000.0, "institutional", None, "negotiated", "inpatient"), "1", *REF1),
    *referenced(out("27447", 12000.0, "institutional", None, "negotiated", "inpatient"), "2", *REF2),
    *referenced(out("99285", 75.5, "professional", ["23"], "percentage"), "2", *REF2),
    *referenced(out("99285", 2500.0, "institutional"), "2", *REF2),
]

# file -> (expected rows, payer override, source fields)
EXAMPLES = {
    "v1/in-network-rates-fee-for-service-single-plan-sample.json": (
        V1_FFS,
        None,
        {"publisher": "medicare", "entity_type": "medicare", "plans": "medicaid", "schema_version": "1.2.0"},
    ),
    "v1/in-network-rates-multiple-plans-sample.json": (
        V1_MULTI,
        None,
        {"publisher": "cms", "entity_type": "cms", "plans": None, "schema_version": "1.0.0"},
    ),
    "v1/in-network-rates-no-npi.json": (
        V1_NO_NPI,
        None,
        {"publisher": "medicare", "entity_type": "medicare", "plans": "medicaid", "schema_version": "1.0.0"},
    ),
    "v1/in-network-rates-bundle-single-plan-sample.json": (
        V1_BUNDLE,
        None,
        {"publisher": "cms", "entity_type": "cms", "plans": "medicare", "schema_version": "1.0.0"},
    ),
    "v1/in-network-rates-capitation-single-plan-sample.json": (
        V1_CAPITATION,
        None,
        {"publisher": "cms", "entity_type": "cms", "plans": "medicaid", "schema_version": "1.0.0"},
    ),
    "v2/in-network-rates-fee-for-service-single-plan-sample.json": (
        V2_FFS,
        None,
        {"publisher": "medicare", "entity_type": "medicare", "plans": "Plan A PPO", "schema_version": "2.0.0"},
    ),
    "v2/in-network-rates-multiple-plans-sample.json": (
        V2_MULTI,
        None,
        {"publisher": "cms", "entity_type": "cms", "plans": None, "schema_version": "2.0.0"},
    ),
    "v2/in-network-rates-no-npi.json": (
        V2_NO_NPI,
        None,
        {"publisher": "medicare", "entity_type": "medicare", "plans": "medicaid", "schema_version": "2.0.0"},
    ),
    "v2/in-network-rates-bundle-single-plan-sample.json": (
        V2_BUNDLE,
        None,
        {"publisher": "cms", "entity_type": "cms", "plans": "medicare", "schema_version": "2.0.0"},
    ),
    "v2/in-network-rates-capitation-single-plan-sample.json": (
        V2_CAPITATION,
        None,
        {"publisher": "cms", "entity_type": "cms", "plans": "medicaid", "schema_version": "2.0.0"},
    ),
    "v2/in-network-rates-all-negotiated-types-sample.json": (
        V2_ALL_TYPES,
        "Cigna Health",
        {
            "publisher": "Comprehensive Health Insurance",
            "entity_type": "health insurance issuer",
            "plans": "Plan D PPO",
            "schema_version": "2.0.0",
        },
    ),
}


def test_every_in_network_example_is_covered():
    on_disk = {f"{p.parent.name}/{p.name}" for p in TIC.glob("v*/in-network-rates-*.json")}
    assert on_disk == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_cms_example(store, catalogue, name):
    expected, payer, fields = EXAMPLES[name]
    path = TIC / name
    result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue, payer_override=payer)
    source_id = hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.status == "ingested"
    assert result.source_id == source_id
    assert stored_rows(store, source_id) == as_rows(expected)
    source = source_row(store, source_id)
    assert source == {
        **source,
        **fields,
        "kind": "tic-in-network",
        "path": str(path),
        "file_name": path.name,
        "payer": payer or "Medicare",
        "last_updated_on": dt.date(2024, 1, 15) if payer else AS_OF,
        "rows_kept": len(expected),
        "items_skipped": 0,
        "warnings": [],
        "is_demo": False,
    }


def test_v2_names_networks_and_business_names(store, catalogue):
    path = TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json"
    result = ingest_tic_file(store, path, codes={"27448"}, catalogue=catalogue)
    con = store.connect(read_only=True)
    rows = con.execute(
        """SELECT item_name, billing_code_type, network_names, provider_group_key, provider_group_name, expiration_date,
                  as_of, payer
           FROM negotiated_rates WHERE source_id = ? AND negotiated_rate = 12.45 ORDER BY provider_group_key""",
        [result.source_id],
    ).fetchall()
    assert rows == [
        ("Femur and Knee Joint Repair", "CPT", ["ACME Choice Provider Group"], "ein:11-1111111",
         "ACME Provider Group", "2022-01-01", AS_OF, "Medicare"),
        ("Femur and Knee Joint Repair", "CPT", ["ACME Choice Provider Group"], "ein:22-2222222",
         "Midland Medical Group", "2022-01-01", AS_OF, "Medicare"),
    ]  # fmt: skip
    assert (result.items_kept, result.items_skipped) == (1, 1)


def test_only_wanted_codes_are_kept(store, catalogue):
    path = TIC / "v2/in-network-rates-all-negotiated-types-sample.json"
    result = ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue, payer_override="Aetna")
    expected = [row for row in V2_ALL_TYPES if row[0]["code"] == "27447"]
    assert stored_rows(store, result.source_id) == as_rows(expected)
    assert (result.rows_kept, result.items_kept, result.items_skipped) == (6, 1, 5)
    assert source_row(store, result.source_id)["items_skipped"] == 5


def test_a_bundle_rate_stays_under_the_items_own_code(store, catalogue):
    """The bundle's billing code is 81.54 (ICD); 27447 is only one of its bundled codes."""
    path = TIC / "v1/in-network-rates-bundle-single-plan-sample.json"
    result = ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue)
    assert (result.rows_kept, result.items_skipped) == (0, 1)


def test_few_codes_are_found_by_each_items_own_billing_code(store, catalogue, tmp_path):
    """Keep-few steps over most items of a minified file in runs, reading each item's own billing_code: the wanted
    code written in another item (in its bundled codes, inside its description, as the text of a member) does
    not keep that item, and the items that have it are kept wherever they are."""
    document = json.loads((TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json").read_text())
    wanted, other = document["in_network"]
    items = []
    for n in range(400):
        item = json.loads(json.dumps(other))
        item["billing_code"] = f"{10000 + n}"
        if n % 3 == 0:
            item["description"] = 'see "billing_code":"27447" and },{"negotiation_arrangement":"ffs","billing_code":'
        if n % 3 == 1:
            item["bundled_codes"] = [{"billing_code_type": "CPT", "billing_code": "27447", "description": "knee"}]
            item["negotiation_arrangement"] = "bundle"
        if n % 7 == 0:
            item["name"] = "billing_code"
        items.append(item)
    for at in (0, 137, 138, 399):
        items.insert(at, wanted)
    document["in_network"] = items
    path = tmp_path / "many.json"
    path.write_text(json.dumps(document, separators=(",", ":")))
    result = ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue)
    assert (result.items_kept, result.items_skipped) == (4, 400)
    con = store.connect(read_only=True)
    kept = con.execute("SELECT billing_code, count(*) FROM tic_items GROUP BY billing_code").fetchall()
    assert kept == [("27447", 4)]


@pytest.mark.parametrize("read", ["whole", "tiny reads", "gzip"])
def test_few_codes_of_a_minified_file_whatever_the_reads(catalogue, tmp_path, monkeypatch, read):
    """Keep-few reads a plain local file straight into its skim's buffer; in reads of a few bytes, or through the
    gzip reader, it keeps the same items, and the source id is the SHA-256 of the file's bytes."""
    document = json.loads((TIC / "v2/in-network-rates-all-negotiated-types-sample.json").read_text())
    items = document["in_network"]
    document["in_network"] = [dict(item, billing_code=f"{n:05d}") for n in range(1000) for item in items[:1]]
    document["in_network"][100:100] = items
    data = json.dumps(document, separators=(",", ":")).encode()
    path = tmp_path / "many.json"
    if read == "gzip":
        path = tmp_path / "many.json.gz"
        data = gzip.compress(data)
    path.write_bytes(data)
    if read == "tiny reads":  # the first chunk holds an item's first member; the skims read a few bytes at a time
        monkeypatch.setattr(tic, "SKIM_CHUNK", 4096)
        monkeypatch.setattr(jsonscan, "_SKIM_READ", 7)
        monkeypatch.setattr(jsonscan, "_SKIM_ROOM", 20)
    store = RatesStore(tmp_path / "rates.duckdb")
    result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue, payer_override="Aetna")
    assert result.source_id == hashlib.sha256(data).hexdigest()
    assert (result.items_kept, result.items_skipped) == (len(items), 1000)
    assert stored_rows(store, result.source_id) == as_rows(V2_ALL_TYPES)


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("an escape", ('"name":"Knee Replacement Surgery"', '"name":"Knee Replacement Surg\\u00e9ry"')),
        ("a repeated key", ('"name":"Knee Replacement Surgery"', '"name":"Knee","name":"Knee Replacement Surgery"')),
        ("a bad price", ('"negotiated_rate":', '"negotiated_rate":"x","y":')),
        ("a bad price, then invalid JSON", ('"negotiated_rate":', '"negotiated_rate":"x","y":')),
    ],
)
def test_picked_items_the_typed_decode_refuses_are_read_by_the_checking_parser(
    case, change, catalogue, tmp_path, monkeypatch
):
    """A wanted item a skim picked is staged after the skim; one the typed decode cannot vouch for is then read by
    the checking parser from its bytes: the same rows, or the same error naming the item and the byte, as when the
    reader reads it where it is (an error further on in the file does not hide it)."""
    document = json.loads((TIC / "v2/in-network-rates-all-negotiated-types-sample.json").read_text())
    items = document["in_network"]
    document["in_network"] = [dict(items[0], billing_code=f"{n:05d}") for n in range(300)]
    document["in_network"][150:150] = items
    text = json.dumps(document, separators=(",", ":"))
    at = text.index('"name":"Knee Replacement Surgery"')  # in the item of 27447, after the 150 + 4 items before it
    text = text[:at] + text[at:].replace(*change, 1)
    if case.endswith("then invalid JSON"):
        last = text.rindex('{"negotiation_arrangement"')  # the last item, stepped over by the skim
        text = text[:last] + "@" + text[last:]
    path = tmp_path / "refused.json"
    path.write_text(text)
    picked = []
    pick = tic._InNetworkFile._pick_item
    monkeypatch.setattr(tic._InNetworkFile, "_pick_item", lambda self, *args: picked.append(1) or pick(self, *args))

    def ingested(name: str):
        store = RatesStore(tmp_path / f"{name}.duckdb")
        try:
            result = ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue, payer_override="Aetna")
        except IngestError as exc:
            return str(exc)
        return stored_rows(store, result.source_id), result.items_kept, result.items_skipped

    by_picks = ingested("picked")
    assert picked
    monkeypatch.setattr(tic._InNetworkFile, "_pick_item", lambda self, *args: False)
    assert ingested("read") == by_picks
    if case == "an escape":
        assert by_picks[1:] == (1, 305)  # type: ignore[index]
        with closing(RatesStore(tmp_path / "picked.duckdb").connect(read_only=True)) as con:
            assert con.execute("SELECT item_name FROM tic_items").fetchall() == [("Knee Replacement Surg\u00e9ry",)]
    else:
        assert "in_network item 154, billing code 27447" in by_picks
        assert "appears twice" in by_picks if case == "a repeated key" else "negotiated_rate" in by_picks


def test_wanted_items_a_skim_picks_are_stored_as_the_reader_stores_them(catalogue, tmp_path, monkeypatch):
    """Keep-few stages a wanted item a skim found whole through the typed decode at once (``_pick_item``), without
    stopping the skim; refused there (forced here), the reader reads it: both store the same rows and counts."""
    document = json.loads((TIC / "v2/in-network-rates-all-negotiated-types-sample.json").read_text())
    items = document["in_network"]
    document["in_network"] = [dict(item, billing_code=f"{n:05d}") for n in range(300) for item in items[:1]]
    for at in (0, 40, 41, 150, 299):
        document["in_network"][at:at] = items
    path = tmp_path / "many.json"
    path.write_text(json.dumps(document, separators=(",", ":")))
    picked = []
    pick_item = tic._InNetworkFile._pick_item
    monkeypatch.setattr(
        tic._InNetworkFile, "_pick_item", lambda self, *args: picked.append(1) or pick_item(self, *args)
    )

    def ingested(name: str):
        store = RatesStore(tmp_path / f"{name}.duckdb")
        result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue, payer_override="Aetna")
        return stored_rows(store, result.source_id), result.items_kept, result.items_skipped

    by_picks = ingested("picked")
    assert len(picked) > len(items)  # most of the wanted items were picked
    monkeypatch.setattr(tic._InNetworkFile, "_pick_item", lambda self, *args: False)
    assert ingested("read") == by_picks
    assert by_picks[1:] == (5 * len(items), 300)


def test_local_reads_go_on_from_each_other_and_hash_the_file(tmp_path):
    data = bytes(range(256)) * 1000
    path = tmp_path / "plain.json"
    path.write_bytes(data)
    source = stream.RateFile(path, chunk=1000)
    reads = source.local_reads()
    assert reads is not None
    got = [next(reads)]
    room = bytearray(3000)
    with memoryview(room) as view:
        count = reads.readinto(view)
    got.append(bytes(room[:count]))
    got += list(reads)
    with memoryview(room) as view:
        assert reads.readinto(view) == 0
    assert b"".join(got) == data and [len(g) for g in got[:2]] == [1000, 3000]
    assert (source.sha256, source.bytes_read) == (hashlib.sha256(data).hexdigest(), len(data))
    (tmp_path / "packed.json.gz").write_bytes(gzip.compress(data))
    assert stream.RateFile(tmp_path / "packed.json.gz").local_reads() is None


def test_cstm_00_item_is_kept_whatever_the_codes(store, catalogue, tmp_path):
    document = json.loads((TIC / "v1/in-network-rates-no-npi.json").read_text())
    document["in_network"][0]["billing_code"] = "CSTM-00"
    path = tmp_path / "all-codes.json"
    path.write_text(json.dumps(document))
    result = ingest_tic_file(store, path, codes={"99213"}, catalogue=catalogue)
    con = store.connect(read_only=True)
    assert con.execute("SELECT billing_code, negotiated_rate FROM negotiated_rates").fetchall() == [("CSTM-00", 123.45)]
    assert result.items_kept == 1


# --- provider references ----------------------------------------------------------------------------------------


def _v1_ffs_using_remote_reference(tmp_path: Path) -> Path:
    """The v1 fee-for-service example, with the 27448 rate that uses reference 1 also using reference 2 (the one
    whose groups live in a remote file, https://www.cms.gov/some_provider_group.json)."""
    document = json.loads((TIC / "v1/in-network-rates-fee-for-service-single-plan-sample.json").read_text())
    document["in_network"][1]["negotiated_rates"][0]["provider_references"] = [1, 2]
    path = tmp_path / "remote-reference.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def test_a_remote_reference_not_downloaded_is_stored_unresolved_with_a_warning(store, catalogue, tmp_path):
    path = _v1_ffs_using_remote_reference(tmp_path)
    result = ingest_tic_file(store, path, codes={"27448"}, catalogue=catalogue)
    cstm = price("27448", 12003.45, "professional", ["CSTM-00"])
    expected = [
        *referenced(cstm, "1", G11, G22),
        (cstm, None, None, "2", "unresolved"),
        *inline(price("27448", 12.45, "institutional", ["18", "19", "11"]), NPI6),
    ]
    assert stored_rows(store, result.source_id) == as_rows(expected)
    (warning,) = source_row(store, result.source_id)["warnings"]
    assert "2 -> https://www.cms.gov/some_provider_group.json" in warning
    assert "--provider-refs" in warning


def test_a_remote_reference_resolves_from_the_provider_refs_folder(store, catalogue, tmp_path):
    path = _v1_ffs_using_remote_reference(tmp_path)
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(TIC / "v1/provider-reference.json", refs / "some_provider_group.json")
    result = ingest_tic_file(store, path, codes={"27448"}, catalogue=catalogue, provider_refs_dir=refs)
    cstm = price("27448", 12003.45, "professional", ["CSTM-00"])
    # provider-reference.json: two groups, both TIN 22-2222222, one NPI each
    expected = [
        *referenced(cstm, "1", G11, G22),
        *referenced(cstm, "2", ("ein:22-2222222", 1), ("ein:22-2222222", 1)),
        *inline(price("27448", 12.45, "institutional", ["18", "19", "11"]), NPI6),
    ]
    assert stored_rows(store, result.source_id) == as_rows(expected)
    assert result.warnings == []


def test_non_integer_provider_group_ids_are_kept_as_written(store, catalogue, tmp_path):
    text = (TIC / "v2/in-network-rates-no-npi.json").read_text()
    text = text.replace('"provider_group_id": 1', '"provider_group_id": 690.65627')
    text = text.replace('"provider_references": [1]', '"provider_references": [690.65627]')
    path = tmp_path / "fractional-id.json"
    path.write_text(text)
    result = ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue)
    expected = referenced(v2("27447", 123.45, "institutional"), "690.65627", ("npi:1234567890", 1))
    assert stored_rows(store, result.source_id) == as_rows(expected)


def test_provider_references_after_in_network_are_read_in_the_same_pass(store, catalogue, tmp_path):
    document = json.loads((TIC / "v2/in-network-rates-multiple-plans-sample.json").read_text())
    references = document.pop("provider_references")
    document["provider_references"] = references  # now after in_network
    path = tmp_path / "references-last.json"
    path.write_text(json.dumps(document))
    result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    assert stored_rows(store, result.source_id) == as_rows(V2_MULTI)


@pytest.mark.parametrize("held", [True, False])
def test_provider_references_before_in_network_are_held_or_read_again(store, catalogue, monkeypatch, held):
    """References that come first (the usual layout) are needed only once in_network has been read: their bytes
    are held when small, and read by a second pass over the file when beyond HELD_REFERENCES_BYTES."""
    path = TIC / "v2/in-network-rates-multiple-plans-sample.json"
    text = path.read_text()
    assert text.index('"provider_references"') < text.index('"in_network"')
    if not held:
        monkeypatch.setattr(tic, "HELD_REFERENCES_BYTES", 64)
    passes = []
    monkeypatch.setattr(tic, "RateFile", lambda source, **kw: passes.append(source) or stream.RateFile(source, **kw))
    result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    assert stored_rows(store, result.source_id) == as_rows(V2_MULTI)
    assert len(passes) == (1 if held else 2)


def _group(tin: str, *npis: int) -> str:
    return json.dumps({"npi": list(npis), "tin": {"type": "ein", "value": tin}})


# provider_references entries as the file writes them (ids such as 2.50 and 2E1 keep their text), for
# test_held_references_read_by_msgspec_or_by_the_reader_are_the_same
HELD_ENTRIES = [
    f'{{"provider_group_id": 1, "provider_groups": [{_group("11-1111111", 1111111111, 1111111112)}]}}',
    f'{{"provider_group_id": 2.50, "network_name": ["Net A"], "provider_groups": [{_group("22-2222222", 2)}]}}',
    f'{{"provider_group_id": "abc", "provider_groups": [{_group("33-3333333", 3)}, {_group("34-3333333")}]}}',
    f'{{"provider_group_id": 2E1, "provider_groups": [{_group("44-4444444", 4)}]}}',
    '{"provider_group_id": 5, "location": "https://example.invalid/refs/5.json"}',
    f'{{"provider_group_id": 1, "provider_groups": [{_group("99-9999999", 9)}]}}',  # defined again: not read
    f'{{"provider_group_id": 9, "provider_groups": [{_group("90-9999999", 9)}]}}',  # used by no kept rate
]
HELD_USED = '1, 2.50, "abc", 2E1, 5'
HELD_CASES = {  # (entries put among HELD_ENTRIES, the id the rate also uses)
    "plain": ([], ""),
    "an id that is not plain": ([f'{{"provider_group_id": -3, "provider_groups": [{_group("55-5", 5)}]}}'], "-3"),
    "an escaped id": ([f'{{"provider_group_id": "a\\"b", "provider_groups": [{_group("66-6", 6)}]}}'], '"a\\"b"'),
    "a member name nested": (['{"provider_group_id": 7, "x": {"provider_group_id": 8}, "provider_groups": []}'], ""),
    "not JSON for msgspec": (['{"provider_group_id": 8, "provider_groups": [NaN]}'], ""),  # used by no rate
    "a bad remote entry": (['{"provider_group_id": 6, "network_name": "N", "location": "https://x.invalid/6"}'], "6"),
    "an entry without groups": (['{"provider_group_id": 6, "network_name": ["N"]}'], "6"),
    "an entry that is no object": (["42"], ""),
    "a used id that is no number": (['{"provider_group_id": true, "provider_groups": []}'], ""),
}
WHOLE_ENTRIES = {  # what one decode of the whole array cannot vouch for, and what it can (GROUP: a group)
    "a repeated member": (['{"provider_group_id": 7, "provider_groups": [], "provider_groups": [GROUP]}'], "7"),
    "a null network name": (['{"provider_group_id": 7, "network_name": null, "provider_groups": [GROUP]}'], "7"),
    "an unknown member": (['{"provider_group_id": 7, "note": "a:b", "provider_groups": [GROUP]}'], "7"),
    "an unused unknown member": (['{"provider_group_id": 7, "note": "a", "provider_groups": [GROUP]}'], ""),
    "spaces before colons": (['{"provider_group_id" : 7, "provider_groups" :[GROUP]}'], "7"),
    # a repeated member that a count of '":' misses: one colon is written after a space, another is in a string
    "a repeated member, a spaced colon": (
        ['{"provider_group_id": 7, "network_name": ["a:b"], "provider_groups": [], "provider_groups" :[GROUP]}'],
        "7",
    ),
}
WHOLE_CASES = {
    case: ([entry.replace("GROUP", _group("7-7", 7)) for entry in entries], used)
    for case, (entries, used) in WHOLE_ENTRIES.items()
}
HELD_CASES.update(WHOLE_CASES)


@pytest.mark.parametrize("case", sorted(HELD_CASES))
def test_held_references_read_by_msgspec_or_by_the_reader_are_the_same(case, catalogue, tmp_path, monkeypatch):
    """provider_references held before in_network are decoded whole by msgspec when it can vouch for every entry,
    else read from one msgspec pass over their bytes, entry by entry, when it can vouch for those, by the reader
    otherwise (from the first entry it cannot): all store the same rows and warnings, and fail with the same
    message, as the checking parser does reading every entry."""
    more, used = HELD_CASES[case]
    references = ", ".join([*HELD_ENTRIES[:3], *more, *HELD_ENTRIES[3:]])
    uses = HELD_USED + (f", {used}" if used else "")
    prices = '[{"negotiated_type": "negotiated", "negotiated_rate": 100.5, "billing_class": "professional"}]'
    path = tmp_path / "held.json"
    path.write_text(
        '{"reporting_entity_name": "Aetna", "reporting_entity_type": "health insurance issuer", '
        '"last_updated_on": "2024-05-01", "version": "1.0.0", '
        f'"provider_references": [{references}], "in_network": [{{"negotiation_arrangement": "ffs", '
        '"name": "Knee", "billing_code_type": "CPT", "billing_code_type_version": "2024", "billing_code": "27447", '
        f'"description": "Knee", "negotiated_rates": [{{"provider_references": [{uses}], '
        f'"negotiated_prices": {prices}}}]}}]}}'
    )
    read_by = []
    reader_read = tic._InNetworkFile._read_references
    monkeypatch.setattr(
        tic._InNetworkFile, "_read_references", lambda self, reader: read_by.append(1) or reader_read(self, reader)
    )

    def outcome(name: str):
        store = RatesStore(tmp_path / f"{name}.duckdb")
        try:
            result = ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue)
        except IngestError as exc:
            return str(exc).replace(str(path), "FILE")
        return stored_rows(store, result.source_id), result.warnings

    decode_used = tic.held_references
    decoded = []  # the entries the rates use, decoded together (None: msgspec cannot vouch for them)
    monkeypatch.setattr(tic, "held_references", lambda data: decoded.append(decode_used(data)) or decoded[-1])
    whole = outcome("whole")
    monkeypatch.setattr(tic._InNetworkFile, "_stage_held_references", lambda self, data, offset: False)
    by_msgspec = outcome("msgspec")
    by_msgspec_only = not read_by
    monkeypatch.setattr(tic, "held_elements", lambda data, key: None)
    assert outcome("reader") == by_msgspec == whole
    monkeypatch.setattr(typed.TypedItems, "stage_reference", lambda self, data, reference: False)
    assert outcome("checking parser") == whole
    read_whole = case in ("plain", "an entry without groups", "spaces before colons", "an unused unknown member")
    assert by_msgspec_only == (case in ("plain", "a bad remote entry", "an entry without groups", *WHOLE_CASES))
    assert any(entries is not None for entries in decoded) == read_whole
    if case == "plain":
        rows, warnings = by_msgspec
        assert {(row[8], row[10], row[11]) for row in rows} == {
            ("ein:11-1111111", "1", "resolved"),
            ("ein:22-2222222", "2.50", "resolved"),
            ("ein:33-3333333", "abc", "resolved"),
            ("ein:34-3333333", "abc", "resolved"),
            ("ein:44-4444444", "2E1", "resolved"),
            (None, "5", "unresolved"),
        }
        assert "5 -> https://example.invalid/refs/5.json" in warnings[0]


def test_a_reference_no_rate_uses_is_not_loaded(store, catalogue):
    path = TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json"
    result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    con = store.connect(read_only=True)
    used = con.execute(
        "SELECT DISTINCT provider_reference FROM negotiated_rates WHERE source_id = ?", [result.source_id]
    ).fetchall()
    assert used == [("1",)]


# --- sources, re-ingest, replace, rollback -----------------------------------------------------------------------


def test_gzip_gives_the_same_rows_and_hashes_the_compressed_bytes(store, catalogue, tmp_path):
    packed = tmp_path / "ffs.json.gz"
    packed.write_bytes(
        gzip.compress((TIC / "v1/in-network-rates-fee-for-service-single-plan-sample.json").read_bytes())
    )
    result = ingest_tic_file(store, packed, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    assert result.source_id == hashlib.sha256(packed.read_bytes()).hexdigest()
    assert stored_rows(store, result.source_id) == as_rows(V1_FFS)


@pytest.mark.parametrize("piece", [5, 64 << 10])
def test_concatenated_gzip_members_inflated_in_pieces_give_the_same_rows(
    store, catalogue, tmp_path, monkeypatch, piece
):
    """Some writers (and `cat a.gz b.gz`) give several gzip members; the compressed bytes are inflated a piece at a
    time, and a member may end anywhere in a piece."""
    monkeypatch.setattr(stream, "INFLATE_PIECE", piece)
    monkeypatch.setattr(tic, "SKIM_CHUNK", 13)
    text = (TIC / "v1/in-network-rates-fee-for-service-single-plan-sample.json").read_bytes()
    packed = tmp_path / "two-members.json.gz"
    packed.write_bytes(gzip.compress(text[: len(text) // 2]) + gzip.compress(text[len(text) // 2 :]))
    result = ingest_tic_file(store, packed, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    assert result.source_id == hashlib.sha256(packed.read_bytes()).hexdigest()
    assert stored_rows(store, result.source_id) == as_rows(V1_FFS)


def test_reingesting_the_same_file_changes_nothing(store, catalogue, tmp_path):
    path = TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json"
    first = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    before = source_row(store, first.source_id)
    again = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue)
    assert (again.status, again.source_id, again.rows_kept) == ("unchanged", first.source_id, 10)
    assert counts(store) == (10, 1)
    assert source_row(store, first.source_id) == before
    # the same bytes under another name are recognised by their hash
    renamed = tmp_path / "renamed.json"
    shutil.copy(path, renamed)
    assert ingest_tic_file(store, renamed, codes=ALL_FIXTURE_CODES, catalogue=catalogue).status == "unchanged"
    assert counts(store) == (10, 1)


def test_replace_reloads_a_files_rows(store, catalogue):
    path = TIC / "v2/in-network-rates-all-negotiated-types-sample.json"
    ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue, payer_override="Aetna")
    assert counts(store) == (6, 1)
    result = ingest_tic_file(
        store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue, payer_override="Cigna Health", replace=True
    )
    assert result.status == "replaced"
    assert counts(store) == (15, 1)
    assert stored_rows(store, result.source_id) == as_rows(V2_ALL_TYPES)
    assert source_row(store, result.source_id)["payer"] == "Cigna Health"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_typed_decode_and_the_checking_parser_store_the_same_rows(name, catalogue, tmp_path, monkeypatch):
    """Items and provider references are decoded into typed Structs; what it refuses goes through the checking
    parser. Both paths must store the same rows (forced here by refusing every item, element and reference)."""
    options = {"codes": None, "catalogue": catalogue, "payer_override": "Aetna"}
    fast = ingest_tic_file(RatesStore(tmp_path / "fast.duckdb"), TIC / name, **options)
    monkeypatch.setattr(typed.TypedItems, "stage_item", lambda self, data, code: False)
    monkeypatch.setattr(typed.TypedItems, "stage_rate", lambda self, data, item_seq: False)
    monkeypatch.setattr(typed.TypedItems, "stage_reference", lambda self, data, reference: False)
    checked = ingest_tic_file(RatesStore(tmp_path / "checked.duckdb"), TIC / name, **options)
    assert fast.rows_kept == checked.rows_kept > 0
    assert stored_rows(RatesStore(tmp_path / "fast.duckdb"), fast.source_id) == stored_rows(
        RatesStore(tmp_path / "checked.duckdb"), checked.source_id
    )


def test_non_integer_provider_group_ids_are_kept_as_the_file_writes_them(catalogue, tmp_path):
    """Ids such as 1.50 or 2E1 name groups: the typed decode, like the checking parser, keeps their text."""
    text = (TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json").read_text()
    text = text.replace('"provider_group_id": 1,', '"provider_group_id": 1.50,')
    text = text.replace('"provider_group_id": 2,', '"provider_group_id": 2E1,')
    text = text.replace('"provider_references": [1]', '"provider_references": [1.50, 2E1]')
    path = tmp_path / "ids.json"
    path.write_text(text)
    store = RatesStore(tmp_path / "rates.duckdb")
    ingest_tic_file(store, path, codes=None, catalogue=catalogue)
    with closing(store.connect(read_only=True)) as con:
        found = con.execute(
            "SELECT provider_reference, provider_reference_status, count(*) FROM negotiated_rates "
            "WHERE provider_reference IS NOT NULL GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert [(ref, status) for ref, status, _ in found] == [("1.50", "resolved"), ("2E1", "resolved")]
    assert found[0][2] > 0 and found[1][2] > 0


def test_a_failure_mid_file_leaves_the_store_as_it_was(store, catalogue, monkeypatch):
    from cptpub.ingest import tic

    ingest_tic_file(store, TIC / "v1/in-network-rates-no-npi.json", codes={"27447"}, catalogue=catalogue)
    before = counts(store)
    original = tic.publish

    def publish_then_fail(*args, **kwargs):
        original(*args, **kwargs)  # the rows are in negotiated_rates, inside the transaction
        raise KeyboardInterrupt

    monkeypatch.setattr(tic, "publish", publish_then_fail)
    with pytest.raises(KeyboardInterrupt):
        ingest_tic_file(store, TIC / "v1/in-network-rates-multiple-plans-sample.json", codes={"27447"},
                        catalogue=catalogue)  # fmt: skip
    assert counts(store) == before


def test_a_failure_in_the_first_ingest_leaves_no_store(store, catalogue, monkeypatch):
    from cptpub.ingest import tic

    original = tic.publish

    def publish_then_fail(*args, **kwargs):
        original(*args, **kwargs)  # into the new store's staging file, inside the transaction
        raise KeyboardInterrupt

    monkeypatch.setattr(tic, "publish", publish_then_fail)
    with pytest.raises(KeyboardInterrupt):
        ingest_tic_file(store, TIC / "v1/in-network-rates-no-npi.json", codes={"27447"}, catalogue=catalogue)
    assert not store.exists()
    assert not list(store.path.parent.glob(f".{store.path.name}.*"))  # nor a staging file
    monkeypatch.setattr(tic, "publish", original)
    result = ingest_tic_file(store, TIC / "v1/in-network-rates-no-npi.json", codes={"27447"}, catalogue=catalogue)
    assert result.status == "ingested"
    assert counts(store)[0] > 0


def test_an_interrupt_while_reading_leaves_the_store_as_it_was(store, catalogue, monkeypatch):
    from cptpub.ingest import staging

    ingest_tic_file(store, TIC / "v1/in-network-rates-no-npi.json", codes={"27447"}, catalogue=catalogue)
    before = counts(store)
    original, staged = staging.Staging._flush, []

    def interrupt_once_staged(self, table):
        original(self, table)  # the batch's rows are in the staging files
        staged.append(table)
        assert (self.folder / f"{table}.parquet").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(staging, "BATCH_ROWS", 1)
    monkeypatch.setattr(staging.Staging, "_flush", interrupt_once_staged)
    with pytest.raises(KeyboardInterrupt):
        ingest_tic_file(store, TIC / "v1/in-network-rates-multiple-plans-sample.json", codes={"27447"},
                        catalogue=catalogue)  # fmt: skip
    assert staged
    assert counts(store) == before
    assert not any((store.path.parent / "ingest-staging").iterdir())  # the scratch folder went with it


def test_demo_files_are_flagged_and_mapped_to_their_payers(store, catalogue, tmp_path):
    from cptpub.demo import write_demo_inputs

    inputs = write_demo_inputs(tmp_path / "demo")
    payers = {}
    for path in inputs.tic_files:
        result = ingest_tic_file(store, path, codes={"20702"}, catalogue=catalogue)
        assert result.is_demo
        payers[path.name.split("-")[1]] = result.payer
    assert payers == {"aetna": "Aetna", "bcbs": "Blue Cross Blue Shield", "cigna": "Cigna Health",
                      "uhc": "UnitedHealthcare"}  # fmt: skip


def test_an_unknown_payer_override_is_a_usage_error(store, catalogue):
    with pytest.raises(UsageError, match="Aetna, Blue Cross Blue Shield"):
        ingest_tic_file(store, TIC / "v1/in-network-rates-no-npi.json", codes={"27447"}, catalogue=catalogue,
                        payer_override="Acme")  # fmt: skip


def test_progress_reports_bytes_and_rates(store, catalogue):
    calls = []
    path = TIC / "v1/in-network-rates-multiple-plans-sample.json"
    ingest_tic_file(store, path, codes={"27447"}, catalogue=catalogue, progress=lambda *a: calls.append(a))
    assert calls and calls[-1][0] == path.stat().st_size


def test_small_chunks_give_the_same_rows(store, catalogue, monkeypatch):
    """Every chunk boundary case at once: strings, keys, numbers and escapes split between chunks."""
    monkeypatch.setattr(stream, "RAW_BLOCK", 7)
    monkeypatch.setattr(stream, "CHUNK", 13)
    monkeypatch.setattr(tic, "SKIM_CHUNK", 13)
    path = TIC / "v2/in-network-rates-all-negotiated-types-sample.json"
    result = ingest_tic_file(store, path, codes=ALL_FIXTURE_CODES, catalogue=catalogue, payer_override="Aetna")
    assert stored_rows(store, result.source_id) == as_rows(V2_ALL_TYPES)


# --- the streaming JSON reader ------------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from('ab "\\{}[],:é\n\t/k'), max_size=8)
SCALARS = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | TEXT
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, at = [], 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    return [*chunks, data[at:]]


def _dumps(value, indent: int | None, ascii_only: bool) -> bytes:
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES, st.lists(st.integers(1, 9), max_size=40), st.sampled_from([None, 0, 2]), st.booleans())
def test_reader_reads_any_document_split_anywhere(value, sizes, indent, ascii_only):
    data = _dumps(value, indent, ascii_only)
    reader = JsonReader(index_chunks(_chunks(data, sizes)))
    assert reader.read_value() == value
    assert reader.at_end()


@st.composite
def elements(draw) -> dict:
    """An object that may have the member "k" at its top, and "k" deeper down or inside a string, in any order."""
    members = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "k": st.sampled_from(["x", "y", 'q"z', "w\\"]) | st.integers(0, 3),
                "before": VALUES,
                "after": VALUES,
                "nested": st.fixed_dictionaries({"k": st.just("x")}),
                "text": st.just('"k": "x"'),
            },
        )
    )
    return {key: members[key] for key in draw(st.permutations(list(members)))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(elements(), max_size=8), st.lists(st.integers(1, 40), max_size=40), st.sampled_from([None, 1]),
       st.booleans())  # fmt: skip
def test_select_elements_finds_members_at_the_top_of_each_element(ordered, sizes, indent, consume):
    """Members named like the key deeper down or inside strings never count; skipped elements are stepped over."""
    data = _dumps({"items": ordered, "tail": [1, {"k": "x"}]}, indent, False)
    reader = JsonReader(index_chunks(_chunks(data, sizes)))
    seen = []
    for key in reader.iter_members():
        if key != "items":
            assert reader.read_value() == [1, {"k": "x"}]
            continue
        for index, value in reader.select_elements("k", lambda v: v in ("x", 'q"z', 2, MISSING)):
            seen.append((index, value))
            if consume:
                assert reader.read_value() == ordered[index]
        assert reader.element_index == len(ordered)
    assert reader.at_end()
    expected = [
        (i, e.get("k", MISSING)) for i, e in enumerate(ordered) if e.get("k", MISSING) in ("x", 'q"z', 2, MISSING)
    ]
    assert seen == expected


def test_a_file_keeping_no_code_stages_no_table_and_later_files_store_the_same_rows(tmp_path, catalogue, monkeypatch):
    from cptpub.ingest import staging

    staged: list[set[str]] = []
    original = staging.publish

    def publish_and_list(con, folder, *args, **kwargs):
        staged.append({path.stem for path in Path(folder).glob("*.parquet")})
        return original(con, folder, *args, **kwargs)

    monkeypatch.setattr(tic, "publish", publish_and_list)
    store = RatesStore(tmp_path / "one" / "rates.duckdb")
    nothing = ingest_tic_file(store, TIC / "v1/in-network-rates-no-npi.json", codes={"00000"}, catalogue=catalogue)
    assert (nothing.status, nothing.rows_kept) == ("ingested", 0)
    assert staged == [{"totals"}]  # no rows, no file: publish runs no statement for them
    assert counts(store) == (0, 1)
    # the same process's writer database then ingests a file into this store as into a store of its own
    sample = TIC / "v2/in-network-rates-multiple-plans-sample.json"
    kept = ingest_tic_file(store, sample, codes={"27447"}, catalogue=catalogue)
    alone = RatesStore(tmp_path / "two" / "rates.duckdb")
    ingest_tic_file(alone, sample, codes={"27447"}, catalogue=catalogue)
    assert kept.rows_kept == counts(alone)[0] == counts(store)[0] > 0
    query = "SELECT * EXCLUDE (source_id) FROM negotiated_rates ORDER BY ALL"
    with closing(store.connect()) as con, closing(alone.connect()) as other:
        assert con.execute(query).fetchall() == other.execute(query).fetchall()
