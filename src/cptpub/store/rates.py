"""The normalised layout of in-network rates (``schema.sql``: ``tic_items``, ``tic_terms``, ``tic_prices``,
``tic_rate_targets``, ``tic_provider_groups``, joined back by the ``negotiated_rates`` view), and moving older
layouts and wide rows into it.

Ingest writes the tables from its staged columns (``cptpub.ingest.staging.publish``). Older stores are converted
in their first write transaction, keeping the view's rows exactly:

* a store made before rates were normalised, whose ``negotiated_rates`` was a table of wide rows (one per price
  and provider group, the view's shape): each wide row becomes one price with one target; identical items, terms
  and groups are stored once (:func:`append_wide`, which also takes rows written directly by tests and synthetic
  benchmark stores through :func:`wide_rows`);
* a store whose prices held their terms (type, class, setting, service codes, expiration, modifiers) and whose
  prices and targets held their source_id (:func:`take_priced_terms`, :func:`convert_priced_terms`): each file's
  distinct terms become rows of ``tic_terms``; ids stay as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

TABLES = ("tic_items", "tic_terms", "tic_prices", "tic_rate_targets", "tic_provider_groups")
VIEW = "negotiated_rates"
_LEGACY = "negotiated_rates_wide"  # an old store's table while it is converted
_PRICED = ("tic_prices_with_terms", "tic_rate_targets_with_source")  # a store's tables of the previous layout
_STAGED = "new_negotiated_rates"
_CONVERT_MEMORY = "192MB"
COLUMNS = (
    "source_id",
    "payer",
    "billing_code",
    "billing_code_type",
    "billing_code_modifiers",
    "negotiation_arrangement",
    "item_name",
    "negotiated_type",
    "negotiated_rate",
    "billing_class",
    "setting",
    "service_codes",
    "expiration_date",
    "network_names",
    "provider_group_key",
    "provider_group_name",
    "npi_count",
    "provider_reference",
    "provider_reference_status",
    "as_of",
)
_ITEM = ("source_id", "payer", "billing_code", "billing_code_type", "negotiation_arrangement", "item_name", "as_of")
_TERMS = (
    "billing_code_modifiers",
    "negotiated_type",
    "billing_class",
    "setting",
    "service_codes",
    "expiration_date",
)
_GROUP = (
    "network_names",
    "provider_group_key",
    "provider_group_name",
    "npi_count",
    "provider_reference",
    "provider_reference_status",
)
_WIDE_TABLE = """(
    source_id VARCHAR NOT NULL, payer VARCHAR NOT NULL, billing_code VARCHAR NOT NULL,
    billing_code_type VARCHAR NOT NULL, billing_code_modifiers VARCHAR[], negotiation_arrangement VARCHAR NOT NULL,
    item_name VARCHAR, negotiated_type VARCHAR NOT NULL, negotiated_rate DOUBLE NOT NULL,
    billing_class VARCHAR NOT NULL, setting VARCHAR, service_codes VARCHAR[], expiration_date VARCHAR,
    network_names VARCHAR[], provider_group_key VARCHAR, provider_group_name VARCHAR, npi_count INTEGER,
    provider_reference VARCHAR, provider_reference_status VARCHAR NOT NULL, as_of DATE
)"""


def next_ids(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
    """The first free item, rate, target and terms id: after every id any table holds (a row left behind by a
    partial delete must not be joined to new rows)."""
    found = con.execute(
        """SELECT greatest((SELECT max(item_id) FROM tic_items), (SELECT max(item_id) FROM tic_prices), -1) + 1,
                  greatest((SELECT max(rate_id) FROM tic_prices), (SELECT max(rate_id) FROM tic_rate_targets), -1) + 1,
                  greatest((SELECT max(target_id) FROM tic_rate_targets),
                           (SELECT max(target_id) FROM tic_provider_groups), -1) + 1,
                  greatest((SELECT max(terms_id) FROM tic_terms), (SELECT max(terms_id) FROM tic_prices), -1) + 1"""
    ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1]), int(found[2]), int(found[3])


def delete_source(con: duckdb.DuckDBPyConnection, source_id: str) -> None:
    """Delete one file's rows: the links of its prices (through its items) and to its groups, its prices, then the
    rest by source_id."""
    items = "SELECT item_id FROM tic_items WHERE source_id = $source"
    con.execute(
        f"""DELETE FROM tic_rate_targets
            WHERE rate_id IN (SELECT rate_id FROM tic_prices WHERE item_id IN ({items}))
               OR target_id IN (SELECT target_id FROM tic_provider_groups WHERE source_id = $source)""",
        {"source": source_id},
    )
    con.execute(f"DELETE FROM tic_prices WHERE item_id IN ({items})", {"source": source_id})
    for table in ("tic_items", "tic_terms", "tic_provider_groups"):
        con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source_id])


def has_wide_table(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store predates the layout (its negotiated_rates is a table)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [VIEW]
    ).fetchone()
    return bool(found and found[0])


def take_wide_table(con: duckdb.DuckDBPyConnection) -> str | None:
    """Rename an old store's negotiated_rates table out of the view's way (before the schema is created, inside
    the write transaction); the name it now has, or None when there is none."""
    if not has_wide_table(con):
        return None
    con.execute(f"ALTER TABLE {VIEW} RENAME TO {_LEGACY}")
    return _LEGACY


def has_priced_terms(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's prices hold their terms (the layout before ``tic_terms``)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'tic_prices' AND column_name = 'negotiated_type' "
        "AND schema_name = 'main'"
    ).fetchone()
    return bool(found and found[0])


def take_priced_terms(con: duckdb.DuckDBPyConnection) -> bool:
    """Rename a store's prices and targets of the previous layout (prices holding their terms) out of the new
    tables' way (before the schema is created, inside the write transaction); whether there were any."""
    if not has_priced_terms(con):
        return False
    for table, renamed in zip(("tic_prices", "tic_rate_targets"), _PRICED, strict=True):
        con.execute(f"ALTER TABLE {table} RENAME TO {renamed}")
    return True


def convert_priced_terms(con: duckdb.DuckDBPyConnection) -> None:
    """Move the renamed tables of :func:`take_priced_terms` into the layout (after the schema is created): each
    file's distinct terms once, its prices pointing at them; every id kept."""
    prices, targets = _PRICED
    _converting(con)
    terms = ("source_id", *_TERMS)
    con.execute(
        f"""INSERT INTO tic_terms BY NAME SELECT *, row_number() OVER () - 1 AS terms_id
            FROM (SELECT DISTINCT {", ".join(terms)} FROM {prices})"""
    )
    con.execute(
        f"""INSERT INTO tic_prices SELECT w.item_id, w.rate_id, m.terms_id, w.negotiated_rate
            FROM {prices} w JOIN tic_terms m ON {_same(terms, "m")}"""
    )
    con.execute(f"INSERT INTO tic_rate_targets SELECT rate_id, target_id FROM {targets}")
    con.execute(f"DROP TABLE {prices}; DROP TABLE {targets}")


def append_wide(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Normalise the wide rows of ``table`` (the view's columns) into the tic tables; returns how many.

    Equal items, terms and groups are found by hashing (a join on every column, NULLs equal), not by sorting, with
    memory bounded: a store of 3.7M rows is converted in about 9 s of CPU and 350 MB."""
    item0, rate0, target0, terms0 = next_ids(con)
    group = ("source_id", *_GROUP)
    terms = ("source_id", *_TERMS)
    _converting(con)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _items AS SELECT *, row_number() OVER () - 1 + {item0} AS item_id
            FROM (SELECT DISTINCT {", ".join(_ITEM)} FROM {table})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _groups AS SELECT *, row_number() OVER () - 1 + {target0} AS target_id
            FROM (SELECT DISTINCT {", ".join(group)} FROM {table})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _terms AS SELECT *, row_number() OVER () - 1 + {terms0} AS terms_id
            FROM (SELECT DISTINCT {", ".join(terms)} FROM {table})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT i.item_id, g.target_id, row_number() OVER () - 1 + {rate0} AS rate_id, m.terms_id,
                   w.negotiated_rate
            FROM {table} w JOIN _items i ON {_same(_ITEM)} JOIN _groups g ON {_same(group, "g")}
                 JOIN _terms m ON {_same(terms, "m")}"""
    )
    con.execute(f"INSERT INTO tic_items SELECT item_id, {', '.join(_ITEM)} FROM _items")
    con.execute("INSERT INTO tic_terms BY NAME SELECT * FROM _terms")
    con.execute(f"INSERT INTO tic_provider_groups SELECT source_id, target_id, {', '.join(_GROUP)} FROM _groups")
    con.execute("INSERT INTO tic_prices SELECT item_id, rate_id, terms_id, negotiated_rate FROM _rows")
    con.execute("INSERT INTO tic_rate_targets SELECT rate_id, target_id FROM _rows")
    found = con.execute("SELECT count(*) FROM _rows").fetchone()
    con.execute("DROP TABLE _items; DROP TABLE _terms; DROP TABLE _groups; DROP TABLE _rows")
    return int(found[0]) if found else 0


def _converting(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"SET memory_limit = '{_CONVERT_MEMORY}'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")


def _same(columns: tuple[str, ...], other: str = "i") -> str:
    return " AND ".join(f"w.{c} IS NOT DISTINCT FROM {other}.{c}" for c in columns)


def convert_wide_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Move an old store's rows (renamed by :func:`take_wide_table`) into the layout, then drop the old table."""
    append_wide(con, table)
    con.execute(f"DROP TABLE {table}")


@contextlib.contextmanager
def wide_rows(con: duckdb.DuckDBPyConnection) -> Iterator[str]:
    """A temporary table with the view's columns, named by the value yielded: rows inserted into it are
    normalised into the store when the block ends (inside the caller's transaction)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_STAGED} {_WIDE_TABLE}")
    try:
        yield _STAGED
        append_wide(con, _STAGED)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_STAGED}")
