"""The normalised rates layout: the negotiated_rates view shows exactly the rows of the files (computed here from
the JSON with the standard library), an old store's wide table is converted in place with the same rows, and
replacing one file touches only its rows."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import duckdb
import pytest

from cptpub.ingest.tic import ingest_tic_file
from cptpub.records.load import load_payers
from cptpub.store import SCHEMA_MARK, RatesStore, release_store
from cptpub.store.rates import COLUMNS, TABLES, has_priced_terms, has_wide_table

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "tic"
IN_NETWORK = sorted(p for p in FIXTURES.glob("v*/in-network-rates-*.json"))
CATALOGUE = load_payers(ROOT / "data" / "payers.yaml")
PAYER = "Aetna"


def _written(text: str) -> str:
    return text  # parse_int/parse_float=str keep numbers as the file writes them


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"), parse_int=_written, parse_float=_written)


def _group(group: dict) -> tuple:
    tin = group["tin"]
    npis = [n for n in group.get("npi", []) if n not in ("0",)]
    return (f"{tin['type'].strip().lower()}:{tin['value'].strip()}", tin.get("business_name"), len(npis))


def expected_rows(path: Path, refs_folder: Path) -> Counter:
    """Every (price, provider group) row of an in-network file, as the view's columns after source_id."""
    document = _load(path)
    references = {entry["provider_group_id"]: entry for entry in document.get("provider_references", [])}
    as_of = dt.date.fromisoformat(document["last_updated_on"][:10])
    rows: Counter = Counter()
    for item in document["in_network"]:
        for rate in item["negotiated_rates"]:
            targets = [(None, *_group(g), None, "inline") for g in rate.get("provider_groups", [])]
            for reference in rate.get("provider_references", []):
                entry = references.get(reference, {})
                groups = entry.get("provider_groups")
                if groups is None and "location" in entry:
                    local = refs_folder / PurePosixPath(urlparse(entry["location"]).path).name
                    groups = _load(local)["provider_groups"] if local.exists() else None
                if groups:
                    networks = entry.get("network_name")
                    targets += [(networks, *_group(g), reference, "resolved") for g in groups]
                else:
                    targets.append((None, None, None, None, reference, "unresolved"))
            for price in rate["negotiated_prices"]:
                for networks, key, name, npis, reference, status in targets:
                    rows[
                        _hashable(
                            PAYER,
                            item["billing_code"].strip().upper(),
                            item["billing_code_type"].strip(),
                            price.get("billing_code_modifier"),
                            item["negotiation_arrangement"].strip().lower(),
                            item.get("name"),
                            price["negotiated_type"].strip().lower(),
                            float(price["negotiated_rate"]),
                            price["billing_class"].strip().lower(),
                            price["setting"].strip().lower() if price.get("setting") else None,
                            price.get("service_code"),
                            price.get("expiration_date"),
                            networks,
                            key,
                            name,
                            npis,
                            reference,
                            status,
                            as_of,
                        )
                    ] += 1
    return rows


def _hashable(*values) -> tuple:
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def stored_rows(con: duckdb.DuckDBPyConnection, source_id: str) -> Counter:
    rows = con.execute("SELECT * EXCLUDE (source_id) FROM negotiated_rates WHERE source_id = ?", [source_id]).fetchall()
    return Counter(_hashable(*row) for row in rows)


@pytest.fixture(scope="module")
def refs_folder(tmp_path_factory) -> Path:
    """The v1 example's remote provider reference, downloaded under the name its URL gives."""
    folder = tmp_path_factory.mktemp("refs")
    shutil.copy(FIXTURES / "v1" / "provider-reference.json", folder / "some_provider_group.json")
    return folder


@pytest.fixture(scope="module")
def filled(tmp_path_factory, refs_folder) -> tuple[RatesStore, dict[Path, str]]:
    store = RatesStore(tmp_path_factory.mktemp("layout") / "rates.duckdb")
    ids = {
        path: ingest_tic_file(
            store, path, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder
        ).source_id
        for path in IN_NETWORK
    }
    return store, ids


@pytest.mark.parametrize("path", IN_NETWORK, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_view_holds_exactly_the_rows_of_the_file(filled, refs_folder, path: Path):
    store, ids = filled
    with store.connect() as con:
        assert stored_rows(con, ids[path]) == expected_rows(path, refs_folder)
        rows_kept = con.execute("SELECT rows_kept FROM sources WHERE source_id = ?", [ids[path]]).fetchone()
    assert rows_kept == (sum(expected_rows(path, refs_folder).values()),)


def test_an_unresolved_reference_gives_one_row_per_price(tmp_path: Path):
    """A reference the file does not define stays unresolved (the fixtures above hold inline groups, references
    listing their groups and a remote reference, resolved)."""
    document = json.loads((FIXTURES / "v2" / "in-network-rates-multiple-plans-sample.json").read_text())
    document["in_network"][0]["negotiated_rates"][0]["provider_references"] = [999, 1]
    path = tmp_path / "in-network.json"
    path.write_text(json.dumps(document))
    store = RatesStore(tmp_path / "rates.duckdb")
    result = ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER)
    expected = expected_rows(path, tmp_path)
    with store.connect() as con:
        assert stored_rows(con, result.source_id) == expected
    assert "unresolved" in {row[-2] for row in expected}


def test_repeated_groups_and_references_give_one_row_each(tmp_path: Path):
    """A rate listing the same group or reference twice stores two rows for it, as the wide table did."""
    document = json.loads((FIXTURES / "v2" / "in-network-rates-fee-for-service-single-plan-sample.json").read_text())
    rate = document["in_network"][0]["negotiated_rates"][0]
    rate["provider_groups"] = [rate["provider_groups"][0]] * 2 if "provider_groups" in rate else None
    if rate["provider_groups"] is None:
        del rate["provider_groups"]
        rate["provider_references"] = rate["provider_references"][:1] * 2
    path = tmp_path / "in-network.json"
    path.write_text(json.dumps(document))
    store = RatesStore(tmp_path / "rates.duckdb")
    result = ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER)
    with store.connect() as con:
        assert stored_rows(con, result.source_id) == expected_rows(path, tmp_path)


def _old_layout_copy(store: RatesStore, dest: Path) -> None:
    """``store`` as cptpub wrote it before rates were normalised: negotiated_rates a table of wide rows."""
    shutil.copy(store.path, dest)
    con = duckdb.connect(str(dest))
    try:
        con.execute("CREATE TABLE wide AS SELECT * FROM negotiated_rates")
        con.execute("DROP VIEW negotiated_rates")
        for table in TABLES:
            con.execute(f"DROP TABLE {table}")
        con.execute("ALTER TABLE wide RENAME TO negotiated_rates")
        con.execute("DROP TABLE store_schema")  # the schema mark came later still
        assert has_wide_table(con)
    finally:
        con.close()


def test_an_old_store_is_converted_on_open_with_the_same_rows(filled, tmp_path: Path):
    store, _ = filled
    old = tmp_path / "old.duckdb"
    _old_layout_copy(store, old)
    with duckdb.connect(str(old), read_only=True) as con:
        before = con.execute("SELECT * FROM negotiated_rates").fetchall()
    converted = RatesStore(old)
    with converted.connect() as con:  # a reader's first open converts it, in one write transaction
        assert not has_wide_table(con)
        after = con.execute("SELECT * FROM negotiated_rates").fetchall()
        columns = [d[0] for d in con.execute("SELECT * FROM negotiated_rates LIMIT 0").description]
    assert columns == list(COLUMNS)
    assert before
    assert Counter(_hashable(*row) for row in after) == Counter(_hashable(*row) for row in before)


def _ingest_as_another_source(store: RatesStore, path: Path, refs_folder: Path, tmp_path: Path):
    """Ingest a copy of the in-network file ``path`` with other bytes (another source); its path and result."""
    document = json.loads(path.read_text())
    document["plan_name"] = "another plan"
    copy = tmp_path / "in-network.json"
    copy.write_text(json.dumps(document))
    return copy, ingest_tic_file(store, copy, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder)


# The view as cptpub wrote it while prices held their terms and source_id (before tic_terms, 2026-11)
_PRICED_TERMS_VIEW = """CREATE VIEW negotiated_rates AS
SELECT i.source_id, i.payer, i.billing_code, i.billing_code_type, p.billing_code_modifiers,
       i.negotiation_arrangement, i.item_name, p.negotiated_type, p.negotiated_rate, p.billing_class, p.setting,
       p.service_codes, p.expiration_date, g.network_names, g.provider_group_key, g.provider_group_name, g.npi_count,
       g.provider_reference, g.provider_reference_status, i.as_of
FROM tic_items i
JOIN tic_prices p ON p.item_id = i.item_id
JOIN tic_rate_targets t ON t.rate_id = p.rate_id
JOIN tic_provider_groups g ON g.target_id = t.target_id"""


def _priced_terms_copy(store: RatesStore, dest: Path) -> None:
    """``store`` as cptpub wrote it while each price held its terms, and prices and targets their source_id."""
    release_store(store.path)
    shutil.copy(store.path, dest)
    con = duckdb.connect(str(dest))
    try:
        con.execute(
            """CREATE TABLE old_prices AS
               SELECT i.source_id, p.item_id, p.rate_id, m.billing_code_modifiers, m.negotiated_type,
                      p.negotiated_rate, m.billing_class, m.setting, m.service_codes, m.expiration_date
               FROM tic_prices p JOIN tic_terms m USING (terms_id) JOIN tic_items i USING (item_id)"""
        )
        con.execute(
            """CREATE TABLE old_targets AS
               SELECT DISTINCT p.source_id, t.rate_id, t.target_id, t.rowid AS n
               FROM tic_rate_targets t JOIN old_prices p USING (rate_id)"""
        )
        con.execute("ALTER TABLE old_targets DROP COLUMN n")
        con.execute("DROP VIEW negotiated_rates")
        for table in ("tic_prices", "tic_rate_targets", "tic_terms"):
            con.execute(f"DROP TABLE {table}")
        con.execute("ALTER TABLE old_prices RENAME TO tic_prices")
        con.execute("ALTER TABLE old_targets RENAME TO tic_rate_targets")
        con.execute(_PRICED_TERMS_VIEW)
        con.execute("UPDATE store_schema SET mark = 'the schema before tic_terms'")
        assert has_priced_terms(con)
    finally:
        con.close()


def test_a_store_whose_prices_held_their_terms_is_converted_on_open_with_the_same_rows(
    filled, refs_folder, tmp_path: Path
):
    """The layout before tic_terms: a reader's first open converts it (ids kept), and the next file ingested
    gets ids after its rows; the view's rows stay exactly those of the files."""
    store, ids = filled
    old = tmp_path / "old.duckdb"
    _priced_terms_copy(store, old)
    with duckdb.connect(str(old), read_only=True) as con:
        before = Counter(_hashable(*row) for row in con.execute("SELECT * FROM negotiated_rates").fetchall())
    converted = RatesStore(old)
    with converted.connect() as con:
        assert not has_priced_terms(con)
        after = Counter(_hashable(*row) for row in con.execute("SELECT * FROM negotiated_rates").fetchall())
        terms = con.execute("SELECT count(*), count(DISTINCT terms_id) FROM tic_terms").fetchone()
    assert before and after == before
    assert _mark(old) == SCHEMA_MARK
    assert terms[0] == terms[1] < sum(before.values())  # each file's distinct terms once
    path, result = _ingest_as_another_source(converted, IN_NETWORK[0], refs_folder, tmp_path)
    with converted.connect() as con:
        assert stored_rows(con, result.source_id) == expected_rows(path, refs_folder)
        for file, source_id in ids.items():
            assert stored_rows(con, source_id) == expected_rows(file, refs_folder)


def test_replacing_one_file_changes_only_its_rows(filled, refs_folder, tmp_path: Path):
    store, ids = filled
    copy = RatesStore(tmp_path / "rates.duckdb")
    shutil.copy(store.path, copy.path)
    path = IN_NETWORK[0]
    with copy.connect() as con:
        others = "SELECT * FROM negotiated_rates WHERE source_id <> ? ORDER BY ALL"
        before = con.execute(others, [ids[path]]).fetchall()
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone() for t in TABLES}
    result = ingest_tic_file(
        copy, path, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder, replace=True
    )
    assert result.status == "replaced"
    with copy.connect() as con:
        assert con.execute(others, [ids[path]]).fetchall() == before
        assert stored_rows(con, ids[path]) == expected_rows(path, refs_folder)
        assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchone() for t in TABLES} == counts


def test_rows_left_by_a_partial_delete_are_never_joined_to_a_new_file(filled, refs_folder, tmp_path: Path):
    """Deleting some prices by hand leaves their targets behind: a file ingested next gets ids after them."""
    store, ids = filled
    copy = RatesStore(tmp_path / "rates.duckdb")
    shutil.copy(store.path, copy.path)
    last = IN_NETWORK[-1]
    with copy.transaction() as con:
        con.execute("DELETE FROM tic_prices WHERE rate_id = (SELECT max(rate_id) FROM tic_prices)")
        con.execute("DELETE FROM tic_items WHERE item_id NOT IN (SELECT item_id FROM tic_prices)")
        rows = con.execute("SELECT count(*) FROM negotiated_rates").fetchone()
    path, result = _ingest_as_another_source(copy, last, refs_folder, tmp_path)
    with copy.connect() as con:
        assert stored_rows(con, result.source_id) == expected_rows(path, refs_folder)
        assert con.execute("SELECT count(*) FROM negotiated_rates").fetchone() == (rows[0] + result.rows_kept,)


@pytest.mark.parametrize("path", IN_NETWORK[-3:], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_values_staged_again_once_forgotten_give_the_same_rows(monkeypatch, refs_folder, tmp_path: Path, path: Path):
    """Staging remembers a bounded number of distinct groups, price terms and references; forgetting them all at
    once (a bound of 1) stores each again, with the same rows in the view."""
    from cptpub.ingest import staging, typed

    monkeypatch.setattr(staging, "DISTINCT_KEPT", 1)
    monkeypatch.setattr(typed, "TERMS_KEPT", 1)
    store = RatesStore(tmp_path / "rates.duckdb")
    result = ingest_tic_file(store, path, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder)
    with store.connect() as con:
        assert stored_rows(con, result.source_id) == expected_rows(path, refs_folder)


def test_publishable_codes_read_from_the_items_are_those_of_the_view(filled):
    from cptpub.project import CODE_PATTERN
    from cptpub.publishable import CODE_TYPES, codes_with_rates

    store, _ = filled
    with store.connect() as con:
        rows = con.execute(
            "SELECT billing_code, list_sort(list(DISTINCT payer)) FROM negotiated_rates "
            "WHERE upper(billing_code_type) IN (SELECT unnest(?::VARCHAR[])) GROUP BY billing_code",
            [list(CODE_TYPES)],
        ).fetchall()
    expected = {code.upper(): tuple(payers) for code, payers in rows if CODE_PATTERN.fullmatch(code)}
    assert expected and codes_with_rates(store.path) == expected


def _mark(path: Path) -> str | None:
    release_store(path)
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute("SELECT mark FROM store_schema").fetchall()
    return found[0][0] if found else None


def test_a_store_written_before_the_schema_mark_holds_the_same_rows_as_a_new_one(filled, refs_folder, tmp_path):
    """Files ingested into a new store (its ids counted from 0 without asking), and into a store made before the
    schema mark (the schema's statements run, the mark is added): the same rows, both ways."""
    store, _ = filled
    old = RatesStore(tmp_path / "old.duckdb")
    ingest_tic_file(old, IN_NETWORK[0], catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder)
    release_store(old.path)
    with duckdb.connect(str(old.path)) as con:
        con.execute("DROP TABLE store_schema")
    for path in IN_NETWORK[1:]:
        ingest_tic_file(old, path, catalogue=CATALOGUE, payer_override=PAYER, provider_refs_dir=refs_folder)
    assert _mark(old.path) == SCHEMA_MARK
    release_store()
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{store.path}' AS new (READ_ONLY)")
        con.execute(f"ATTACH '{old.path}' AS old (READ_ONLY)")
        assert con.execute("SELECT count(*) FROM new.negotiated_rates").fetchone()[0] > 0
        for a, b in (("new", "old"), ("old", "new")):
            only = f"SELECT * FROM {a}.negotiated_rates EXCEPT ALL SELECT * FROM {b}.negotiated_rates"
            assert con.execute(only).fetchall() == []


def test_a_store_marked_with_another_schema_gets_this_one_on_its_next_write(filled, tmp_path):
    store, _ = filled
    copy = RatesStore(tmp_path / "rates.duckdb")
    release_store(store.path)
    shutil.copy(store.path, copy.path)
    with duckdb.connect(str(copy.path)) as con:  # as a cptpub with another schema (no source_overrides) left it
        con.execute("DROP TABLE source_overrides")
        con.execute("UPDATE store_schema SET mark = 'another schema'")
    with copy.transaction():
        pass
    assert _mark(copy.path) == SCHEMA_MARK
    with copy.connect() as con:
        assert con.execute("SELECT count(*) FROM source_overrides").fetchone() == (0,)


def test_a_slice_carries_the_schema_mark_and_the_same_rows_of_its_codes(filled, tmp_path):
    store, _ = filled
    with store.connect() as con:
        code = con.execute("SELECT min(billing_code) FROM negotiated_rates").fetchone()[0]
        rows = con.execute("SELECT * FROM negotiated_rates WHERE billing_code = ?", [code]).fetchall()
        whole = Counter(_hashable(*row) for row in rows)
    part = store.extract([code], tmp_path / "slice.duckdb")
    assert _mark(part) == SCHEMA_MARK
    with duckdb.connect(str(part), read_only=True) as con:
        assert Counter(_hashable(*row) for row in con.execute("SELECT * FROM negotiated_rates").fetchall()) == whole
    assert whole


def test_two_threads_write_two_stores_at_once(tmp_path):
    """Writers share one in-memory DuckDB per process; each attaches its store's copy under its own name, so two
    threads writing two stores at the same time each commit their own rows."""
    import threading

    stores = [RatesStore(tmp_path / f"store{n}.duckdb") for n in range(2)]
    both_inside = threading.Barrier(2, timeout=30)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with stores[n].transaction() as con:
                con.execute("CREATE TABLE written_by (thread INTEGER)")
                con.execute("INSERT INTO written_by VALUES (?)", [n])
                both_inside.wait()  # both copies are attached now
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for n, store in enumerate(stores):
        with duckdb.connect(str(store.path), read_only=True) as con:
            assert con.execute("SELECT thread FROM written_by").fetchall() == [(n,)]


def test_a_killed_writers_staging_copy_and_spill_folder_are_removed_by_the_next_writer(tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(finished.stdout)  # a process that no longer exists, as a killed writer
    store = RatesStore(tmp_path / "rates.duckdb")
    copy = tmp_path / f".rates.duckdb.{gone}.staging"
    copy.write_bytes(b"half-written")
    spill = tmp_path / f".cptpub-spill-{gone}"
    spill.mkdir()
    (spill / f"duckdb_temp_{gone}_0_storage_S32K-0.tmp").write_bytes(b"spilled")
    with store.transaction():
        pass
    assert not copy.exists() and not spill.exists()
    assert store.exists()
