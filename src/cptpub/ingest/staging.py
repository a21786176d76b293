"""A parsed in-network file, staged as Parquet columns in a folder, and its publication into the store.

Parsing and writing are separate steps so that files can be parsed anywhere (a thread, another process, a Dask
worker on another machine) while one writer appends them to the store, each file in one DuckDB transaction:

- ``Staging`` collects one file's rows in column batches (no Python row objects reach the store) and writes them
  as Parquet files in the store's normalised shape (``schema.sql``): ``items`` (one row per kept in_network
  item), ``prices`` (each negotiated price: its item, negotiated_rates element, amount and terms), ``terms`` (the
  distinct terms of the prices: type, billing class, setting, service codes, expiration and modifiers, which
  prices share by the thousand), ``group_targets`` and ``ref_targets`` (the inline
  provider groups and the provider references each element applies to), ``groups`` (the distinct inline groups)
  and ``refs`` (the groups of each provider reference the kept rates use);
- ``publish`` appends them to the ``tic_*`` tables inside the caller's transaction, numbering them after the
  store's ids and resolving provider references: the ``negotiated_rates`` view then shows one row per price and
  provider group.

A staging folder is scratch: a parse that is killed leaves only a folder that the next run removes.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import operator
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cptpub.errors import IngestError
from cptpub.ingest.placeholders import PLACEHOLDER_AT_LEAST, PLACEHOLDER_AT_MOST
from cptpub.store import pid_alive, rates

BATCH_ROWS = 65_536
WRITES_AHEAD = 4  # batches handed to the writing thread and not yet written, at most
# Equal groups, terms and references are staged once while they are among the last DISTINCT_KEPT distinct ones
# (memory stays bounded whatever a file holds; one staged twice is still one row per price and group in the view).
DISTINCT_KEPT = 1 << 18
# DuckDB's memory for one file's appends (what does not fit spills beside the store): a 3 GB file kept whole peaks
# at 201 MB with this, 233 MB with 96 MB, for the same CPU
PUBLISH_MEMORY = "64MB"
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
    "prices": pa.schema(
        [
            ("item_seq", pa.int64()),
            ("rate_seq", pa.int64()),
            ("terms_seq", pa.int64()),
            ("negotiated_rate", pa.float64()),
        ]
    ),
    "terms": pa.schema(  # the columns of tic_terms after source_id
        [
            ("terms_seq", pa.int64()),
            ("billing_code_modifiers", _TEXTS),
            ("negotiated_type", _TEXT),
            ("billing_class", _TEXT),
            ("setting", _TEXT),
            ("service_codes", _TEXTS),
            ("expiration_date", _TEXT),
        ]
    ),
    "group_targets": pa.schema([("rate_seq", pa.int64()), ("group_seq", pa.int64())]),
    "ref_targets": pa.schema([("rate_seq", pa.int64()), ("ref_seq", pa.int64())]),
    "references": pa.schema([("ref_seq", pa.int64()), ("provider_reference", _TEXT)]),  # those the rates use
    # the prices pointing at each reference (through their elements), and in all the view rows of inline groups
    # and the suspect prices: the view rows a file adds, counted without joining its 3.7M rows back
    "weights": pa.schema([("ref_seq", pa.int64()), ("prices", pa.int64())]),
    "totals": pa.schema([("inline_rows", pa.int64()), ("suspect_prices", pa.int64())]),
    "groups": pa.schema(
        [
            ("group_seq", pa.int64()),
            ("provider_group_key", _TEXT),
            ("provider_group_name", _TEXT),
            ("npi_count", pa.int32()),
        ]
    ),
    "refs": pa.schema(
        [
            ("provider_reference", _TEXT),
            ("network_names", _TEXTS),
            ("provider_group_key", _TEXT),
            ("provider_group_name", _TEXT),
            ("npi_count", pa.int32()),
        ]
    ),
}
Column = Any  # a list, or a NumPy array for a number column
Terms = tuple  # a price's terms, as the "terms" columns after terms_seq (lists of codes as tuples, or None)

SUSPECT_PRICE_SQL = f"(negotiated_rate <= {PLACEHOLDER_AT_MOST} OR negotiated_rate >= {PLACEHOLDER_AT_LEAST})"


class Staging:
    """One file's rows, written to ``folder`` in column batches as they are parsed (Parquet files, written by a
    thread of their own: ``close`` waits for them)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, list[list[Column]]] = {name: [[] for _ in schema] for name, schema in SCHEMAS.items()}
        self._pending_rows = dict.fromkeys(SCHEMAS, 0)
        self._writers: dict[str, pq.ParquetWriter] = {}
        # Parquet writes go to a thread of their own (pyarrow encodes, compresses and writes without the GIL, while
        # the parse goes on), in order; the batches handed to it and not yet written
        self._writing: ThreadPoolExecutor | None = None
        self._writes: collections.deque[Future] = collections.deque()
        self._groups: dict[tuple[str, str | None, int], int] = {}  # inline group -> group_seq
        self._terms: dict[Terms, int] = {}  # -> terms_seq
        self._references: dict[bytes, int] = {}  # provider reference (UTF-8) -> ref_seq
        self.counts = dict.fromkeys(("groups", "terms", "references"), 0)  # rows staged in each
        self.items = 0
        self.rates = 0  # negotiated_rates elements
        self.prices = 0
        self._weights = np.zeros(1024, dtype=np.int64)  # by ref_seq: the prices of the elements pointing at it
        self._inline_rows = 0  # view rows of inline groups: per element, its prices times its groups
        self._suspect = 0  # prices matching SUSPECT_PRICE_SQL

    def add_item(self, code: str, code_type: str, arrangement: str, name: str | None) -> int:
        return self.add_items([code], [code_type], [arrangement], [name])

    def add_items(self, codes: list[str], code_types: list[str], arrangements: list[str], names: list) -> int:
        """Consecutive items, given as columns; returns the item_seq of the first."""
        first = self.items
        self.items += len(codes)
        self.extend("items", [np.arange(first, self.items, dtype=np.int64), codes, code_types, arrangements, names])
        return first

    def add_rate(self, item_seq: int, targets: list[tuple], prices: list[tuple]) -> None:
        """One negotiated_rates element: its targets (group key, group name, npi count, provider reference) and
        prices (negotiated type, rate, billing class, setting, service codes, expiration, modifiers)."""
        groups = [t[:3] for t in targets if t[3] is None]
        references = [t[3] for t in targets if t[3] is not None]
        terms = [
            self.terms_seq((_tuple(modifiers), kind, billing_class, setting, _tuple(places), expiration))
            for kind, _, billing_class, setting, places, expiration, modifiers in prices
        ]
        self.add_rates(
            item_seq,
            [len(prices)],
            terms,
            [price[1] for price in prices],
            [len(groups)],
            self.group_seqs(*_columns(groups)) if groups else [],
            [len(references)],
            self.reference_seqs([r.encode() for r in references])[0],
        )

    def add_rates(
        self,
        item_seqs: int | np.ndarray,
        price_counts: Sequence[int] | np.ndarray,
        terms_seqs: Column,
        amounts: Column,
        group_counts: Sequence[int] | np.ndarray,
        group_seqs: Column,
        reference_counts: Sequence[int] | np.ndarray,
        reference_seqs: Sequence[int] | np.ndarray,
    ) -> None:
        """Consecutive negotiated_rates elements: the item of each (``item_seqs``, or one item_seq for all), per
        element its number of prices, inline groups and provider references; the prices' ``terms_seqs`` and
        ``amounts``, the groups' ``group_seqs`` and the references' ``reference_seqs``, element after element."""
        price_counts = np.asarray(price_counts, dtype=np.int64)  # once: NumPy takes a list element by element
        seqs = np.arange(self.rates, self.rates + len(price_counts), dtype=np.int64)
        self.rates += len(price_counts)
        count = len(amounts)
        self.prices += count
        items = (
            np.full(count, item_seqs, dtype=np.int64)
            if isinstance(item_seqs, int)
            else np.repeat(item_seqs, price_counts)
        )
        amounts = np.asarray(amounts, dtype=np.float64)
        self.extend("prices", [items, np.repeat(seqs, price_counts), terms_seqs, amounts])
        self._suspect += int(np.count_nonzero((amounts <= PLACEHOLDER_AT_MOST) | (amounts >= PLACEHOLDER_AT_LEAST)))
        if len(group_seqs):
            self.extend("group_targets", [np.repeat(seqs, group_counts), group_seqs])
            self._inline_rows += int(np.dot(price_counts, group_counts))
        if len(reference_seqs):
            self.extend("ref_targets", [np.repeat(seqs, reference_counts), reference_seqs])
            while self.counts["references"] > len(self._weights):
                self._weights = np.concatenate((self._weights, np.zeros_like(self._weights)))
            np.add.at(self._weights, reference_seqs, np.repeat(price_counts, reference_counts))

    def terms_seq(self, terms: Terms) -> int:
        """The terms_seq of a price's terms (modifiers, type, billing class, setting, service codes, expiration;
        lists of codes as tuples, or None): equal terms share one."""
        seq = self._terms.get(terms)
        if seq is None:
            seq = self._terms[terms] = self._next("terms", self._terms)
            self.extend("terms", [[seq], *([_list(value)] for value in terms)])
        return seq

    def _next(self, table: str, known: dict) -> int:
        """The next seq of ``table``, forgetting the distinct values ``known`` when it holds DISTINCT_KEPT."""
        if len(known) >= DISTINCT_KEPT:
            known.clear()
        seq = self.counts[table]
        self.counts[table] += 1
        return seq

    def reference_seqs(self, keys: list[bytes]) -> tuple[np.ndarray, list[str]]:
        """The ref_seq of each provider reference (its id as written, UTF-8), and the references new to the file."""
        known = self._references
        new: list[str] = []
        seqs = known_ids(known, keys)
        if seqs is not None:
            return seqs, new
        seqs = np.empty(len(keys), dtype=np.int64)
        for at, key in enumerate(keys):
            seq = known.get(key, -1)
            if seq == -1:
                seq = known[key] = self._next("references", known)
                new.append(key.decode())
                self.extend("references", [[seq], [new[-1]]])
            seqs[at] = seq
        return seqs, new

    def group_seqs(self, keys: list[str], names: list[str | None], npi_counts: list[int]) -> list[int]:
        """The group_seq of each inline provider group (identical groups share one), staging the new ones."""
        known = self._groups
        seqs = [known.get(group, -1) for group in zip(keys, names, npi_counts, strict=True)]
        if -1 in seqs:
            new: list[list] = [[], [], [], []]
            for at, seq in enumerate(seqs):
                if seq == -1:
                    group = (keys[at], names[at], npi_counts[at])
                    seq = known.get(group, -1)
                    if seq == -1:
                        seq = known[group] = self._next("groups", known)
                        for column, value in zip(new, (seq, *group), strict=True):
                            column.append(value)
                    seqs[at] = seq
            self.extend("groups", new)
        return seqs

    def add_reference(self, reference: str, network_names: list[str] | None, groups: list[tuple]) -> None:
        count = len(groups)
        self.extend("refs", [[reference] * count, [network_names] * count, *_columns(groups)])

    def extend(self, table: str, columns: Sequence[Column]) -> None:
        """Append rows to ``table``, given as its columns in the order of its schema."""
        pending = self._pending[table]
        for chunks, more in zip(pending, columns, strict=True):
            chunks.append(more)
        self._pending_rows[table] += len(columns[0])
        if self._pending_rows[table] >= BATCH_ROWS:
            self._flush(table)

    def _flush(self, table: str) -> None:
        if not self._pending_rows[table]:
            return
        schema = SCHEMAS[table]
        columns = self._pending[table]
        batch = pa.record_batch([_array(chunks, f.type) for chunks, f in zip(columns, schema, strict=True)], schema)
        self._pending[table] = [[] for _ in schema]
        self._pending_rows[table] = 0
        if self._writing is None:
            self._writing = ThreadPoolExecutor(1, thread_name_prefix="staging-writes")
        self._writes.append(self._writing.submit(_write, self._writer(table), batch, self.folder / f"{table}.parquet"))
        while len(self._writes) > WRITES_AHEAD:  # memory stays bounded; a failed write raises here
            self._writes.popleft().result()

    def _written(self) -> None:
        """Wait for the batches handed to the writing thread (raising the error of one that failed), and end it."""
        try:
            while self._writes:
                self._writes.popleft().result()
        finally:
            if self._writing is not None:
                self._writing.shutdown(cancel_futures=True)
                self._writing = None

    def _writer(self, table: str) -> pq.ParquetWriter:
        writer = self._writers.get(table)
        if writer is None:
            schema = SCHEMAS[table]
            path = self.folder / f"{table}.parquet"
            try:
                writer = self._writers[table] = pq.ParquetWriter(
                    path,
                    schema,
                    compression="lz4",
                    write_statistics=False,
                    use_dictionary=[f.name for f in schema if f.type == _TEXT],
                    column_encoding={f.name: "DELTA_BINARY_PACKED" for f in schema if pa.types.is_integer(f.type)},
                )  # scratch, read once: no statistics, no dictionaries tried on numbers (half the CPU of the
                # defaults), and integers (mostly ascending seqs) as deltas: a third less CPU to write and to read
            except OSError as exc:
                raise _unwritable(path, exc) from None
        return writer

    def close(self) -> None:
        """Write what is pending and close the files (a table with no rows has no file)."""
        used = np.flatnonzero(self._weights)
        if len(used):
            self.extend("weights", [used, self._weights[used]])
        self.extend("totals", [[self._inline_rows], [self._suspect]])
        for table in SCHEMAS:
            self._flush(table)
        self._written()
        for table, writer in self._writers.items():
            try:
                writer.close()
            except OSError as exc:
                raise _unwritable(self.folder / f"{table}.parquet", exc) from None
        self._writers.clear()
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed blocks: give them back for publish

    def abandon(self) -> None:
        with contextlib.suppress(Exception):  # the files are removed: a write that failed no longer matters
            self._written()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _write(writer: pq.ParquetWriter, batch: pa.RecordBatch, path: Path) -> None:
    try:
        writer.write_batch(batch)
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> IngestError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return IngestError(
        f"cannot write the parsed rows to a staging file: {exc.strerror or exc}",
        where=path,
        hint="free some space in the store's folder (it holds the staging files of a parse) and ingest again"
        if full
        else "the staging files of a parse are written in the store's folder: check that it can be written",
    )


def known_ids(ids: dict, keys: Sequence, dtype: type = np.int64) -> np.ndarray | None:
    """The id of each key in ``ids``, as an array built in one pass; None when a key has none yet."""
    try:
        if len(keys) > 1:  # itemgetter's own loop: about 20% less than mapping ids.__getitem__
            return np.fromiter(operator.itemgetter(*keys)(ids), dtype=dtype, count=len(keys))
        return np.array([ids[key] for key in keys], dtype=dtype)
    except KeyError:
        return None


def _columns(rows: list[tuple]) -> list[list]:
    return [list(column) for column in zip(*rows, strict=True)]


def _tuple(codes: list[str] | None) -> tuple[str, ...] | None:
    return None if codes is None else tuple(codes)


def _list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


_NUMBERS = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64}


def _array(chunks: list[Column], kind: pa.DataType) -> pa.Array:
    """A column of the staging schemas, given as chunks, as an Arrow array. Built from NumPy buffers and Arrow's
    string builder rather than by ``pa.array``, which imports pandas (0.2 s) the first time a process converts a
    list (and a list array's null mask would import pyarrow.compute)."""
    if kind == _TEXT:
        builder = pa.lib.StringBuilder()
        for chunk in chunks:
            builder.append_values(chunk)
        return builder.finish()
    if kind == _TEXTS:
        values = list(itertools.chain.from_iterable(chunks))
        count = len(values)
        lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int32, count=count)
        offsets = np.zeros(count + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = _array([list(itertools.chain.from_iterable(v for v in values if v))], _TEXT)
        valid = _bits([v is not None for v in values]) if None in values else None
        return pa.Array.from_buffers(kind, count, [valid, pa.py_buffer(offsets)], children=[flat])
    dtype = _NUMBERS[kind]
    data = np.concatenate([np.asarray(chunk, dtype=dtype) for chunk in chunks])
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


def publish(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    source_id: str,
    payer: str,
    as_of: Any,
    *,
    new_store: bool = False,
) -> tuple[int, int]:
    """Append the staged file to the tic tables (inside the caller's transaction); in a ``new_store`` (its tables
    empty) the ids start at 0 without asking.

    Returns (rows the negotiated_rates view gains, suspect prices among its prices: see SUSPECT_PRICE_SQL)."""
    folder = Path(folder)
    staged = {name for name in SCHEMAS if (folder / f"{name}.parquet").exists()}  # the tables with rows
    table = {name: _relation(folder, name, name in staged) for name in SCHEMAS}
    totals = pq.ParquetFile(folder / "totals.parquet").read().to_pylist()[0]
    inline_rows, suspect = int(totals["inline_rows"]), int(totals["suspect_prices"])
    if "items" not in staged:  # nothing kept: no statement to run (each costs about 1 ms, even on no rows)
        return inline_rows, suspect
    con.execute(f"SET memory_limit = '{PUBLISH_MEMORY}'")
    con.execute("SET preserve_insertion_order = false")
    # one thread: about 12% less CPU than two for the same appends (measured on the 200 MB bench file), and the
    # other cores are the parsing workers' (-j N)
    con.execute("SET threads = 1")
    item0, rate0, target0, terms0 = (0, 0, 0, 0) if new_store else rates.next_ids(con)
    groups = pq.read_metadata(folder / "groups.parquet").num_rows if "groups" in staged else 0
    ref0 = target0 + groups  # references' targets follow the inline groups'
    con.execute(
        f"""INSERT INTO tic_items SELECT item_seq + $item0, $source, $payer, billing_code, billing_code_type,
                   negotiation_arrangement, item_name, $as_of FROM {table["items"]}""",
        {"source": source_id, "item0": item0, "payer": payer, "as_of": as_of},
    )
    if "prices" in staged:
        con.execute(
            f"""INSERT INTO tic_terms SELECT $source, terms_seq + $terms0, * EXCLUDE (terms_seq)
                FROM {table["terms"]}""",
            {"source": source_id, "terms0": terms0},
        )
        con.execute(
            f"""INSERT INTO tic_prices SELECT item_seq + $item0, rate_seq + $rate0, terms_seq + $terms0, negotiated_rate
                FROM {table["prices"]}""",
            {"item0": item0, "rate0": rate0, "terms0": terms0},
        )
    # each reference the rates use is one target: its groups, or one unresolved row
    if staged & {"groups", "references"}:
        con.execute(
            f"""INSERT INTO tic_provider_groups
                SELECT $source, group_seq + $target0, NULL, provider_group_key, provider_group_name, npi_count,
                       NULL, 'inline' FROM {table["groups"]}
                UNION ALL
                SELECT $source, r.ref_seq + $ref0, g.network_names, g.provider_group_key, g.provider_group_name,
                       g.npi_count, r.provider_reference,
                       CASE WHEN g.provider_reference IS NULL THEN 'unresolved' ELSE 'resolved' END
                FROM {table["references"]} r LEFT JOIN {table["refs"]} g USING (provider_reference)""",
            {"source": source_id, "target0": target0, "ref0": ref0},
        )
    if staged & {"group_targets", "ref_targets"}:
        con.execute(
            f"""INSERT INTO tic_rate_targets
                SELECT rate_seq + $rate0, group_seq + $target0 FROM {table["group_targets"]}
                UNION ALL
                SELECT rate_seq + $rate0, ref_seq + $ref0 FROM {table["ref_targets"]}""",
            {"rate0": rate0, "target0": target0, "ref0": ref0},
        )
    if "weights" not in staged:  # no price points at a provider reference
        return inline_rows, suspect
    # the view's rows: per element, its prices times its targets' groups (a reference's: its groups, or one row)
    counted = con.execute(
        f"""WITH groups AS (SELECT r.ref_seq, count(*) AS n
                            FROM {table["references"]} r LEFT JOIN {table["refs"]} g USING (provider_reference)
                            GROUP BY r.ref_seq)
            SELECT coalesce(sum(w.prices * g.n), 0) FROM {table["weights"]} w JOIN groups g USING (ref_seq)"""
    ).fetchone()
    assert counted is not None
    return inline_rows + int(counted[0]), suspect


def _relation(folder: Path, name: str, staged: bool) -> str:
    """The SQL of a staged table: its Parquet file, or no rows of its columns when it has none."""
    if staged:
        return f"read_parquet('{_quoted(str(folder / f'{name}.parquet'))}')"
    columns = ", ".join(f"NULL::{_SQL_TYPES[f.type]} AS {f.name}" for f in SCHEMAS[name])
    return f"(SELECT {columns} WHERE false)"


_SQL_TYPES = {
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    _TEXT: "VARCHAR",
    _TEXTS: "VARCHAR[]",
}


def _quoted(path: str) -> str:
    return path.replace("'", "''")
