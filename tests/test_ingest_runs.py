"""Keeping every code, a minified in-network file is read in runs of whole items, each decoded by msgspec as one
JSON array (``TypedItems.stage_run``): the stored rows are exactly the file's (computed with the standard library)
and exactly what the item-by-item reading stores; anything a run cannot vouch for is read item by item, and bad
input is named as that reading names it."""

from __future__ import annotations

import copy
import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from cptpub.errors import IngestError
from cptpub.ingest import typed
from cptpub.ingest.tic import ingest_tic_file
from cptpub.store import RatesStore

from .test_rates_layout import CATALOGUE, FIXTURES, IN_NETWORK, PAYER, expected_rows, refs_folder, stored_rows

__all__ = ["refs_folder"]  # a fixture, used by name

COPIES = 40  # items repeated so that runs of several items form


def _minified(document: dict, path: Path) -> Path:
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    return path


def _repeated(source: Path, copies: int = COPIES) -> dict:
    """The fixture's document with its in_network items repeated ``copies`` times under other billing codes and
    prices."""
    document = json.loads(source.read_text(encoding="utf-8"))
    items = document["in_network"]
    document["in_network"] = []
    for number in range(copies):
        for item in items:
            item = copy.deepcopy(item)
            item["billing_code"] = f"{item['billing_code']}{number:04d}"
            for rate in item["negotiated_rates"]:  # each copy's prices its own: a price put under another item shows
                for price in rate["negotiated_prices"]:
                    price["negotiated_rate"] = round(price["negotiated_rate"] + number / 100, 2)
            document["in_network"].append(item)
    return document


@pytest.fixture
def runs(monkeypatch) -> Counter:
    """Counts the items runs stage (``taken``) and the runs tried."""
    counted: Counter = Counter()
    original = typed.TypedItems.stage_run

    def counting(self, data):
        taken = original(self, data)
        counted["runs"] += 1
        counted["taken"] += taken or 0
        return taken

    monkeypatch.setattr(typed.TypedItems, "stage_run", counting)
    return counted


def _no_runs(monkeypatch) -> None:
    monkeypatch.setattr(typed.TypedItems, "stage_run", lambda self, data: None)


def _ingest(path: Path, tmp_path: Path, refs: Path, name: str) -> tuple[Counter, int]:
    store = RatesStore(tmp_path / f"{name}.duckdb")
    result = ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs)
    with store.connect() as con:
        return stored_rows(con, result.source_id), result.rows_kept


@pytest.mark.parametrize("source", IN_NETWORK, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_runs_store_the_rows_of_the_file_as_item_by_item_reading_does(source, tmp_path, refs_folder, runs, monkeypatch):
    path = _minified(_repeated(source), tmp_path / "in-network.json")
    expected = expected_rows(path, refs_folder)
    rows, rows_kept = _ingest(path, tmp_path, refs_folder, "runs")
    assert runs["taken"] > COPIES // 2  # most items were read in runs
    assert rows == expected and rows_kept == sum(expected.values())
    _no_runs(monkeypatch)
    assert _ingest(path, tmp_path, refs_folder, "items") == (rows, rows_kept)


def _odd_but_valid(tmp_path: Path) -> Path:
    """Items spelled as the schema allows but the typed decode does not vouch for, among 3 MB of plain ones (runs
    are of about 1 MiB: the runs holding them are read item by item, the others in runs)."""
    document = _repeated(FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json", copies=1500)
    items = document["in_network"]
    items[3]["name"] = "Knee: Replacement"  # a colon inside a string
    items[5]["name"] = 'Knee "Replacement" \u00e9'  # escapes
    items[7]["negotiated_rates"][0]["negotiated_prices"][0]["setting"] = None  # an explicit null
    items[9]["extra"] = {"nested": [1, {"a": "b"}]}  # a member the schema does not name
    items[11]["negotiated_rates"][0]["negotiated_prices"][0]["negotiated_type"] = " Negotiated "  # spelled loosely
    items[13]["negotiated_rates"][0]["provider_references"] = [1, "1", 1]  # a string id, and one twice
    items[15]["negotiated_rates"][0]["negotiated_prices"][0]["billing_code_modifier"] = []
    items[17]["billing_code"] = " 27447x "
    items[21]["negotiated_rates"][0]["provider_references"] = ["[2,3]", 2.5]  # brackets and a comma inside an id
    items[19]["negotiated_rates"][0]["negotiated_prices"][0]["negotiated_rate"] = 0
    return _minified(document, tmp_path / "odd.json")


def test_an_empty_reference_list_beside_string_ids_is_taken_in_runs_with_the_rows_of_the_file(
    tmp_path, runs, monkeypatch
):
    """A rate giving inline groups and ``"provider_references": []`` counts as giving the member, also when other
    rates of its run write their ids as strings (the ids then split one by one): the runs are taken."""
    document = _repeated(FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json")
    group = document["provider_references"][0]["provider_groups"][0]
    for item in document["in_network"]:
        first, *others = item["negotiated_rates"]
        first["provider_references"], first["provider_groups"] = [], [group]
        for rate in others:
            rate["provider_references"] = [str(n) for n in rate["provider_references"]]
    path = _minified(document, tmp_path / "in-network.json")
    expected = expected_rows(path, tmp_path)
    rows, rows_kept = _ingest(path, tmp_path, tmp_path, "runs")
    assert runs["taken"] >= len(document["in_network"]) - 1  # all but the last (read where the array ends)
    assert rows == expected and rows_kept == sum(expected.values())
    _no_runs(monkeypatch)
    assert _ingest(path, tmp_path, tmp_path, "items") == (rows, rows_kept)


def test_what_a_run_cannot_vouch_for_is_read_item_by_item_with_the_same_rows(tmp_path, runs, monkeypatch):
    path = _odd_but_valid(tmp_path)
    expected = expected_rows(path, tmp_path)
    rows, rows_kept = _ingest(path, tmp_path, tmp_path, "runs")
    assert 0 < runs["taken"] < 3000  # some runs were refused, and read item by item
    assert rows == expected and rows_kept == sum(expected.values())
    _no_runs(monkeypatch)
    assert _ingest(path, tmp_path, tmp_path, "items") == (rows, rows_kept)


def test_a_gzipped_file_is_read_in_runs_with_the_same_rows(tmp_path, refs_folder, runs):
    source = FIXTURES / "v2" / "in-network-rates-fee-for-service-single-plan-sample.json"
    plain = _minified(_repeated(source), tmp_path / "in-network.json")
    packed = tmp_path / "in-network.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    rows, rows_kept = _ingest(packed, tmp_path, refs_folder, "gz")
    assert runs["taken"] > COPIES // 2
    assert (rows, rows_kept) == _ingest(plain, tmp_path, refs_folder, "plain")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("negotiated_type", "bogus", "negotiated_rates[0].negotiated_prices[0].negotiated_type: must be one of"),
        ("negotiated_rate", "12.5", "negotiated_rates[0].negotiated_prices[0].negotiated_rate: must be a number"),
    ],
)
def test_a_bad_item_inside_a_run_is_named_as_item_by_item_reading_names_it(
    field, value, message, tmp_path, runs, monkeypatch
):
    document = _repeated(FIXTURES / "v2" / "in-network-rates-fee-for-service-single-plan-sample.json", copies=3000)
    bad = 2500  # past the first runs (of about 1 MiB)
    document["in_network"][bad]["negotiated_rates"][0]["negotiated_prices"][0][field] = value
    path = _minified(document, tmp_path / "bad.json")
    code = document["in_network"][bad]["billing_code"]
    error = _error_of_a_run(path, tmp_path, runs, monkeypatch)
    assert str(path) in error and f"in_network item {bad}, billing code {code}" in error and message in error
    assert "\n" not in error


def _error_of_a_run(path: Path, tmp_path: Path, runs: Counter, monkeypatch) -> str:
    """The error ingesting ``path`` gives after some runs were taken: nothing stored, and the same error as
    item-by-item reading gives."""
    store = RatesStore(tmp_path / "rates.duckdb")
    with pytest.raises(IngestError) as failure:
        ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER)
    error = str(failure.value)
    assert runs["taken"]  # the runs before it were taken
    assert not store.exists()
    _no_runs(monkeypatch)
    with pytest.raises(IngestError) as again:
        ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER)
    assert str(again.value) == error
    return error


def test_a_repeated_key_is_an_error_in_a_run_whatever_else_its_colons_are(tmp_path, runs, monkeypatch):
    """A repeated key, made up for in a count of '":' by a name written with a space before its colon, in a run
    whose strings hold colons: the error item-by-item reading gives, not the key's last value stored."""
    document = _repeated(FIXTURES / "v2" / "in-network-rates-fee-for-service-single-plan-sample.json", copies=3000)
    bad = 2500
    document["in_network"][bad]["name"] = "Knee Replacement, repeated"
    document["in_network"][bad]["description"] = "Note: spaced"
    text = json.dumps(document, separators=(",", ":"))
    for written, spelled in (
        ('"name":"Knee Replacement, repeated"', '"name":"Knee","name":"Knee Replacement, repeated"'),
        ('"description":"Note: spaced"', '"description" :"Note: spaced"'),
    ):
        assert text.count(written) == 1
        text = text.replace(written, spelled)
    path = tmp_path / "repeated.json"
    path.write_text(text, encoding="utf-8")
    code = document["in_network"][bad]["billing_code"]
    error = _error_of_a_run(path, tmp_path, runs, monkeypatch)
    assert f"in_network item {bad}, billing code {code}" in error and "appears twice" in error


def test_a_write_beyond_its_memory_limit_spills_beside_the_store_not_into_the_working_directory(tmp_path, monkeypatch):
    """DuckDB spills what a write cannot hold within its memory limit into a folder of the process beside the store
    (its default is the working directory, which may not be writable or may be another disk), and the rows are
    all stored."""
    from cptpub.ingest import staging, tic

    document = _repeated(FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json", copies=3000)
    entry = document["provider_references"][0]
    references = list(range(1, 401))  # every rate applies to 400 references: 14.4M rows in the view
    document["provider_references"] = [dict(entry, provider_group_id=n) for n in references]
    for item in document["in_network"]:
        for rate in item["negotiated_rates"]:
            rate["provider_references"] = references
    path = _minified(document, tmp_path / "in-network.json")
    expected = sum(
        len(rate["negotiated_prices"]) * len(references) * len(entry["provider_groups"])
        for item in document["in_network"]
        for rate in item["negotiated_rates"]
    )
    monkeypatch.setattr(staging, "PUBLISH_MEMORY", "16MB")
    spilled: list[Path] = []

    def publish(con, *args, **kwargs):
        written = staging.publish(con, *args, **kwargs)
        spilled.extend(Path(p) for (p,) in con.execute("SELECT path FROM duckdb_temporary_files()").fetchall())
        return written

    monkeypatch.setattr(tic, "publish", publish)
    working = tmp_path / "working"
    working.mkdir()
    monkeypatch.chdir(working)
    store = RatesStore(tmp_path / "store" / "rates.duckdb")
    result = ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER)
    assert spilled and {p.parent for p in spilled} == {store.path.parent / f".cptpub-spill-{os.getpid()}"}
    assert list(working.iterdir()) == []
    assert result.rows_kept == expected
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM negotiated_rates").fetchone() == (expected,)


@pytest.mark.parametrize("indent", [1, 4, "\t"])
def test_an_indented_file_is_read_in_runs_too(indent, tmp_path, refs_folder, runs, monkeypatch):
    document = _repeated(FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json")
    path = tmp_path / "indented.json"
    path.write_text(json.dumps(document, indent=indent), encoding="utf-8")
    expected = expected_rows(path, refs_folder)
    rows, rows_kept = _ingest(path, tmp_path, refs_folder, "runs")
    assert runs["taken"] > COPIES // 2
    assert rows == expected and rows_kept == sum(expected.values())


def test_prices_of_more_distinct_terms_than_are_kept_store_the_rows_of_the_file(
    tmp_path, refs_folder, runs, monkeypatch
):
    """A price is staged as its amount and the id of its terms (type, class, setting, expiration, service codes,
    modifiers), each distinct terms once while their ids are kept; past the bound the ids start afresh, and terms
    met again are staged again: the rows stay the file's, read in runs or item by item."""
    from cptpub.ingest import staging

    monkeypatch.setattr(typed, "TERMS_KEPT", 64)
    monkeypatch.setattr(staging, "DISTINCT_KEPT", 16)
    forgotten = Counter()
    original = typed.TypedItems._forget_terms

    def counting(self):
        forgotten["times"] += 1
        original(self)

    monkeypatch.setattr(typed.TypedItems, "_forget_terms", counting)
    document = _repeated(FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json", copies=1500)
    for number, item in enumerate(document["in_network"]):
        for price in (p for rate in item["negotiated_rates"] for p in rate["negotiated_prices"]):
            price["expiration_date"] = f"2030-01-{number % 28 + 1:02d}"
            price["service_code"] = [f"{number % 37:02d}", "11"]
            if number % 3:
                price["billing_code_modifier"] = [str(number % 5)]
    path = _minified(document, tmp_path / "terms.json")
    expected = expected_rows(path, refs_folder)
    rows, rows_kept = _ingest(path, tmp_path, refs_folder, "runs")
    assert runs["taken"] > 2000 and forgotten["times"] > 3  # taken in several runs, each forgetting the last's
    assert rows == expected and rows_kept == sum(expected.values())
    _no_runs(monkeypatch)
    assert _ingest(path, tmp_path, refs_folder, "items") == (rows, rows_kept)


@pytest.mark.parametrize(
    ("literals", "misses"), [(None, None), (3, None), (None, 0)], ids=["default", "few-literals", "no-misses"]
)
def test_codes_and_dates_met_along_the_file_store_its_rows(literals, misses, tmp_path, refs_folder, runs, monkeypatch):
    """Runs are decoded with the service codes, modifiers and expiration dates met before as literals; a run that
    holds new ones is decoded again as plain strings (and they join the literals), and past too many of them, or
    too many such runs, every run is: the rows are the file's all the same."""
    if literals is not None:
        monkeypatch.setattr(typed, "_LITERALS", literals)
    if misses is not None:
        monkeypatch.setattr(typed, "_LITERAL_MISSES", misses)
    plain: Counter = Counter()
    original = typed._RUN

    class Counting:
        def decode(self, data):
            plain["runs"] += 1
            return original.decode(data)

    monkeypatch.setattr(typed, "_RUN", Counting())
    document = _repeated(FIXTURES / "v2" / "in-network-rates-fee-for-service-single-plan-sample.json", copies=4000)
    for number, item in enumerate(document["in_network"]):
        for rate in item["negotiated_rates"]:
            for price in rate["negotiated_prices"]:  # new ones in 3 places (of 6 MB), as well as at the start
                price["expiration_date"] = f"2030-{1 + number // 4000:02d}-{1 + number % 2 if number > 7900 else 1:02d}"
                if "service_code" in price:
                    price["service_code"] = [*price["service_code"], f"{50 + number // 6000}"]
                if "billing_code_modifier" in price:
                    price["billing_code_modifier"] = ["AS", f"M{number // 6000}"]
    path = _minified(document, tmp_path / "in-network.json")
    expected = expected_rows(path, refs_folder)
    rows, rows_kept = _ingest(path, tmp_path, refs_folder, "runs")
    assert runs["taken"] >= len(document["in_network"]) - 1 and runs["runs"] >= 5  # all (but the last) in runs
    assert rows == expected and rows_kept == sum(expected.values())
    if literals is None and misses is None:  # the runs holding new strings, and the first: decoded as plain too
        assert 1 < plain["runs"] < runs["runs"]
    else:
        assert plain["runs"] >= runs["runs"] - 2


def test_a_staging_write_that_fails_is_an_error_naming_the_staging_file(tmp_path, refs_folder, monkeypatch):
    """Staged batches are written to Parquet on a thread of their own while the parse goes on; a write that fails
    there (a full disk) stops the ingest with a one-line error naming the staging file, and leaves nothing."""
    import pyarrow.parquet as pq

    from cptpub.ingest import staging

    written = []
    original = pq.ParquetWriter.write_batch

    def filling_the_disk(self, batch, *args, **kwargs):
        written.append(batch.num_rows)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", filling_the_disk)
    monkeypatch.setattr(staging, "BATCH_ROWS", 4)
    path = _minified(_repeated(FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json"), tmp_path / "in.json")
    store = RatesStore(tmp_path / "store" / "rates.duckdb")
    with pytest.raises(IngestError) as failure:
        ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder)
    error = str(failure.value)
    assert error.splitlines()[0].endswith(
        ".parquet: cannot write the parsed rows to a staging file: No space left on device"
    )
    assert str(tmp_path / "store" / "ingest-staging") in error and "free some space" in error
    assert not store.exists()
    assert not any((tmp_path / "store" / "ingest-staging").iterdir())
