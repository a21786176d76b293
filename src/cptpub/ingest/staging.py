"""A parsed in-network file, staged as Parquet columns in a folder, and its publication into the store.

Parsing and writing are separate steps so that files can be parsed anywhere (a thread, another process, a Dask
worker on another machine) while one writer appends them to the store, each file in one DuckDB transaction:

- ``Staging`` collects one file's rows in column batches (no Python row objects reach the store) and writes them
  as four Parquet files: ``items`` (one row per kept in_network item), ``targets`` (the provider groups or
  references of each negotiated_rates element), ``prices`` (each negotiated price) and ``refs`` (the groups of
  each provider reference the kept rates use);
- ``publish`` joins them into ``negotiated_rates`` inside the caller's transaction: one row per price and provider
  group, as the schema describes.

A staging folder is scratch: a parse that is killed leaves only a folder that the next run removes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cptpub.store import pid_alive

BATCH_ROWS = 16_384
PUBLISH_MEMORY = "96MB"
PUBLISH_RATES = 131_072  # negotiated_rates elements joined per INSERT
_TEXT = pa.string()
_TEXTS = pa.list_(pa.string())
SCHEMAS = {
    "items": pa.schema(
        [
            ("item_seq", pa.int64()),
            ("billing_code", _TEXT),
            ("billing_code_type", _TEXT),
            ("negotiation_arrangement", _TEXT),
            ("item_name", _TEXT),
        ]
    ),
    "targets": pa.schema(
        [
            ("rate_seq", pa.int64()),
            ("item_seq", pa.int64()),
            ("provider_group_key", _TEXT),
            ("provider_group_name", _TEXT),
            ("npi_count", pa.int32()),
            ("provider_reference", _TEXT),
        ]
    ),
    "prices": pa.schema(
        [
            ("rate_seq", pa.int64()),
            ("negotiated_type", _TEXT),
            ("negotiated_rate", pa.float64()),
            ("billing_class", _TEXT),
            ("setting", _TEXT),
            ("service_codes", _TEXTS),
            ("expiration_date", _TEXT),
            ("billing_code_modifiers", _TEXTS),
        ]
    ),
    "refs": pa.schema(
        [
            ("provider_reference", _TEXT),
            ("seq", pa.int32()),
            ("network_names", _TEXTS),
            ("provider_group_key", _TEXT),
            ("provider_group_name", _TEXT),
            ("npi_count", pa.int32()),
        ]
    ),
}

# A price stored but kept out of statistics by analysis: zero, negative, a cent, or a 999999-style placeholder.
# (percentages and per-diems included: a 0 % or a 999999 per diem is no more a price.)
PLACEHOLDER_AT_MOST = 0.01
PLACEHOLDER_AT_LEAST = 999999.0
SUSPECT_PRICE_SQL = f"(negotiated_rate <= {PLACEHOLDER_AT_MOST} OR negotiated_rate >= {PLACEHOLDER_AT_LEAST})"


class Staging:
    """One file's rows, written to ``folder`` in column batches as they are parsed."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, list[list]] = {name: [[] for _ in schema] for name, schema in SCHEMAS.items()}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.items = 0
        self.rates = 0  # negotiated_rates elements
        self.prices = 0

    def add_item(self, code: str, code_type: str, arrangement: str, name: str | None) -> int:
        self.extend("items", [[self.items], [code], [code_type], [arrangement], [name]])
        self.items += 1
        return self.items - 1

    def add_rate(self, item_seq: int, targets: list[tuple], prices: list[tuple]) -> None:
        """One negotiated_rates element: its targets (group key, group name, npi count, provider reference) and
        prices (negotiated type, rate, billing class, setting, service codes, expiration, modifiers)."""
        rate = self.rates
        self.rates += 1
        self.extend("targets", [[rate] * len(targets), [item_seq] * len(targets), *_columns(targets)])
        self.add_rates(0, [[rate] * len(prices), *_columns(prices)])

    def add_rates(self, count: int, price_columns: list[list]) -> None:
        """``count`` negotiated_rates elements (their targets already added): the columns of their prices."""
        self.rates += count
        self.prices += len(price_columns[0])
        self.extend("prices", price_columns)

    def add_reference(self, reference: str, network_names: list[str] | None, groups: list[tuple]) -> None:
        count = len(groups)
        self.extend("refs", [[reference] * count, list(range(count)), [network_names] * count, *_columns(groups)])

    def extend(self, table: str, columns: list[list]) -> None:
        """Append rows to ``table``, given as its columns in the order of its schema."""
        pending = self._pending[table]
        for values, more in zip(pending, columns, strict=True):
            values += more
        if len(pending[0]) >= BATCH_ROWS:
            self._flush(table)

    def _flush(self, table: str) -> None:
        columns = self._pending[table]
        if not columns[0]:
            return
        schema = SCHEMAS[table]
        batch = pa.record_batch([_array(col, f.type) for col, f in zip(columns, schema, strict=True)], schema)
        self._writer(table).write_batch(batch)
        self._pending[table] = [[] for _ in schema]

    def _writer(self, table: str) -> pq.ParquetWriter:
        writer = self._writers.get(table)
        if writer is None:
            writer = self._writers[table] = pq.ParquetWriter(
                self.folder / f"{table}.parquet", SCHEMAS[table], compression="lz4"
            )
        return writer

    def close(self) -> None:
        """Write what is pending and close the files (an empty table is an empty file)."""
        for table in SCHEMAS:
            self._flush(table)
            self._writer(table).close()
        self._writers.clear()
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed blocks: give them back for publish

    def abandon(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _columns(rows: list[tuple]) -> list[list]:
    return [list(column) for column in zip(*rows, strict=True)]


_NUMBERS = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64}


def _array(values: list, kind: pa.DataType) -> pa.Array:
    """A column of the staging schemas as an Arrow array. Built from NumPy buffers and Arrow's string builder
    rather than by ``pa.array``, which imports pandas (0.2 s) the first time a process converts a list (and a
    list array's null mask would import pyarrow.compute)."""
    count = len(values)
    if kind == _TEXT:
        builder = pa.lib.StringBuilder()
        builder.append_values(values)
        return builder.finish()
    if kind == _TEXTS:
        lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int32, count=count)
        offsets = np.zeros(count + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = _array(list(itertools.chain.from_iterable(v for v in values if v)), _TEXT)
        valid = _bits([v is not None for v in values]) if None in values else None
        return pa.Array.from_buffers(kind, count, [valid, pa.py_buffer(offsets)], children=[flat])
    if None in values:
        valid = [v is not None for v in values]
        data = np.array([0 if v is None else v for v in values], dtype=_NUMBERS[kind])
        return pa.Array.from_buffers(kind, count, [_bits(valid), pa.py_buffer(data)], null_count=valid.count(False))
    return _numbers(np.array(values, dtype=_NUMBERS[kind]), kind)


def _numbers(data: np.ndarray, kind: pa.DataType) -> pa.Array:
    return pa.Array.from_buffers(kind, len(data), [None, pa.py_buffer(data)])


def _bits(flags: list[bool]) -> pa.Buffer:
    """An Arrow bitmap: bit i is flags[i]."""
    return pa.py_buffer(np.packbits(np.array(flags, dtype=bool), bitorder="little"))


def staging_root(store_folder: Path) -> Path:
    """This run's staging folder under the store's folder; folders of runs that are gone are removed."""
    root = store_folder / "ingest-staging"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        pid = old.name.split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))


def staged_files(folder: Path) -> dict[str, bytes]:
    """The staged Parquet files' bytes, by name (to send a parse from a remote worker to the writer)."""
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.parquet"))}


# the columns of a staged row before provider references are expanded
ROW_COLUMNS = """i.billing_code, i.billing_code_type, p.billing_code_modifiers, i.negotiation_arrangement, i.item_name,
    p.negotiated_type, p.negotiated_rate, p.billing_class, p.setting, p.service_codes, p.expiration_date,
    t.provider_group_key, t.provider_group_name, t.npi_count, t.provider_reference"""


def publish(con: duckdb.DuckDBPyConnection, folder: Path, source_id: str, payer: str, as_of: Any) -> tuple[int, int]:
    """Append the staged file to negotiated_rates (inside the caller's transaction).

    Returns (rows inserted, suspect prices among them: see SUSPECT_PRICE_SQL)."""
    folder = Path(folder)
    table = {name: f"read_parquet('{_quoted(str(folder / f'{name}.parquet'))}')" for name in SCHEMAS}
    # bounded memory whatever the file's size: the rows are joined a slice of rates at a time (both files are in
    # rate order, so each slice reads only its own row groups), and the references' groups are few
    con.execute(f"SET memory_limit = '{PUBLISH_MEMORY}'")
    con.execute("SET preserve_insertion_order = false")
    found = con.execute(f"SELECT max(rate_seq) FROM {table['prices']}").fetchone()
    last_rate = found[0] if found and found[0] is not None else -1
    inserted = 0
    for first in range(0, last_rate + 1, PUBLISH_RATES):
        rates = f"rate_seq BETWEEN {first} AND {first + PUBLISH_RATES - 1}"
        rows = f"""SELECT {ROW_COLUMNS} FROM (SELECT * FROM {table["prices"]} WHERE {rates}) p
                   JOIN (SELECT * FROM {table["targets"]} WHERE {rates}) t USING (rate_seq)
                   JOIN {table["items"]} i USING (item_seq)"""
        done = con.execute(
            f"""INSERT INTO negotiated_rates
                SELECT $source, $payer, x.billing_code, x.billing_code_type, x.billing_code_modifiers,
                       x.negotiation_arrangement, x.item_name, x.negotiated_type, x.negotiated_rate, x.billing_class,
                       x.setting, x.service_codes, x.expiration_date, g.network_names,
                       coalesce(x.provider_group_key, g.provider_group_key),
                       coalesce(x.provider_group_name, g.provider_group_name),
                       coalesce(x.npi_count, g.npi_count),
                       x.provider_reference,
                       CASE WHEN x.provider_reference IS NULL THEN 'inline'
                            WHEN g.provider_reference IS NULL THEN 'unresolved'
                            ELSE 'resolved' END,
                       $as_of
                FROM ({rows}) x LEFT JOIN {table["refs"]} g ON g.provider_reference = x.provider_reference""",
            {"source": source_id, "payer": payer, "as_of": as_of},
        ).fetchone()
        inserted += int(done[0]) if done else 0
    suspect = con.execute(f"SELECT count(*) FROM {table['prices']} WHERE {SUSPECT_PRICE_SQL}").fetchone()
    return inserted, (int(suspect[0]) if suspect else 0)


def _quoted(path: str) -> str:
    return path.replace("'", "''")
