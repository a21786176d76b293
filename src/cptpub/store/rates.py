"""The normalised layout of in-network rates (``schema.sql``: ``tic_items``, ``tic_prices``, ``tic_rate_targets``,
``tic_provider_groups``, joined back by the ``negotiated_rates`` view), and moving wide rows into it.

Ingest writes the tables from its staged columns (``cptpub.ingest.staging.publish``). Wide rows (one per price and
provider group, the view's shape) are normalised here: a store made before the layout existed, whose
``negotiated_rates`` was a table, is converted in its first write transaction, and rows written directly (tests,
synthetic benchmark stores) go through :func:`wide_rows`. Normalising keeps the row multiset exactly: each wide
row becomes one price with one target; identical items and identical groups are stored once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

TABLES = ("tic_items", "tic_prices", "tic_rate_targets", "tic_provider_groups")
VIEW = "negotiated_rates"
_LEGACY = "negotiated_rates_wide"  # an old store's table while it is converted
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
_PRICE = (
    "billing_code_modifiers",
    "negotiated_type",
    "negotiated_rate",
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


def next_ids(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """The first free item, rate and target id: after every id any table holds (a row left behind by a partial
    delete must not be joined to new rows)."""
    found = con.execute(
        """SELECT greatest((SELECT max(item_id) FROM tic_items), (SELECT max(item_id) FROM tic_prices), -1) + 1,
                  greatest((SELECT max(rate_id) FROM tic_prices), (SELECT max(rate_id) FROM tic_rate_targets), -1) + 1,
                  greatest((SELECT max(target_id) FROM tic_rate_targets),
                           (SELECT max(target_id) FROM tic_provider_groups), -1) + 1"""
    ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1]), int(found[2])


def delete_source(con: duckdb.DuckDBPyConnection, source_id: str) -> None:
    for table in TABLES:
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


def append_wide(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Normalise the wide rows of ``table`` (the view's columns) into the tic tables; returns how many.

    Equal items and equal groups are found by hashing (a join on every column, NULLs equal), not by sorting, with
    memory bounded: a store of 3.7M rows is converted in about 9 s of CPU and 350 MB."""
    item0, rate0, target0 = next_ids(con)
    group = ("source_id", *_GROUP)
    con.execute(f"SET memory_limit = '{_CONVERT_MEMORY}'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _items AS SELECT *, row_number() OVER () - 1 + {item0} AS item_id
            FROM (SELECT DISTINCT {", ".join(_ITEM)} FROM {table})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _groups AS SELECT *, row_number() OVER () - 1 + {target0} AS target_id
            FROM (SELECT DISTINCT {", ".join(group)} FROM {table})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT i.item_id, g.target_id, row_number() OVER () - 1 + {rate0} AS rate_id,
                   {", ".join(f"w.{c}" for c in ("source_id", *_PRICE))}
            FROM {table} w JOIN _items i ON {_same(_ITEM)} JOIN _groups g ON {_same(group, "g")}"""
    )
    con.execute(f"INSERT INTO tic_items SELECT item_id, {', '.join(_ITEM)} FROM _items")
    con.execute(f"INSERT INTO tic_provider_groups SELECT source_id, target_id, {', '.join(_GROUP)} FROM _groups")
    con.execute(f"INSERT INTO tic_prices SELECT source_id, item_id, rate_id, {', '.join(_PRICE)} FROM _rows")
    con.execute("INSERT INTO tic_rate_targets SELECT source_id, rate_id, target_id FROM _rows")
    found = con.execute("SELECT count(*) FROM _rows").fetchone()
    con.execute("DROP TABLE _items; DROP TABLE _groups; DROP TABLE _rows")
    return int(found[0]) if found else 0


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
