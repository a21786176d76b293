"""Ingest Transparency in Coverage in-network rate files (schema 1.x and 2.x) into the rates store.

One pass streams the file (plain or gzip) through ``jsonscan``: in_network items whose billing code is not
wanted are stepped over unparsed; wanted items are read one negotiated_rates element at a time. A price that
applies to several provider groups becomes one row per group.

Provider references. Rates that point at ``provider_references`` are staged with the reference id; the groups
of only the references those rates use are loaded, then a join expands them. When provider_references comes
after in_network (references known by then) they are read in the same pass; when it comes first (the usual
layout) a second pass reads just that leading part of the file, stopping where it ends. References that point
at a remote ``location`` are resolved from ``provider_refs_dir`` (files named as the URL's last path segment),
or stored unresolved with a warning on the source.

Everything for one file happens in one store transaction: an error or an interrupt leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import urlparse

import duckdb

from cptpub.errors import IngestError, UsageError
from cptpub.ingest.common import (
    DEMO_MARKER,
    IngestResult,
    SourceRow,
    delete_source,
    hash_if_name_known,
    insert_source,
    regular_file_size,
    source_exists,
    unreadable,
)
from cptpub.ingest.jsonscan import MISSING, JsonFormatError, JsonReader, index_chunks
from cptpub.ingest.stream import CorruptGzip, Prefetch, RateFile, TruncatedGzip, is_gzip
from cptpub.records.load import match_payer, payer_named
from cptpub.records.schema import Payer, PayerCatalogue
from cptpub.store import RatesStore

KIND = "tic-in-network"
ALL_CODES = "CSTM-00"  # a billing code standing for every code of its type: kept whatever codes are wanted
NEGOTIATED_TYPES = ("negotiated", "derived", "fee schedule", "percentage", "per diem")
BILLING_CLASSES = ("professional", "institutional", "both")
SETTINGS = ("inpatient", "outpatient", "both")
ARRANGEMENTS = ("ffs", "bundle", "capitation")
_HEADER_KEYS = frozenset({"reporting_entity_name", "reporting_entity_type", "plan_name", "last_updated_on", "version"})
_ITEM_KEYS = frozenset({"billing_code_type", "negotiation_arrangement", "name"})
_OTHER_KINDS = {
    "reporting_structure": ("a table-of-contents file", "list the in-network files it names with `cptpub ingest toc`"),
    "out_of_network": ("an allowed-amounts file", "cptpub ingests in-network rate files only"),
    "provider_groups": (
        "a provider-reference file",
        "put it in a folder and pass --provider-refs FOLDER when ingesting the in-network file that points at it",
    ),
}
_STAGE_BATCH = 20_000

Progress = Callable[[int, int], None]  # (bytes of the file read, rates kept so far)


class _WrittenNumber(float):
    """A JSON number with a fraction or exponent that remembers how it was written: provider_group_id values
    such as 690.65627 are identifiers, kept as text exactly as the file writes them."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _WrittenNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


_DECODER = json.JSONDecoder(parse_float=_WrittenNumber)


def _loads(raw: bytes) -> Any:
    return _DECODER.decode(raw.decode("utf-8"))


class _BadRecord(Exception):
    """A kept record breaks the schema; ``field`` is its path inside the in_network item."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class _Item(NamedTuple):
    code: str
    code_type: str
    arrangement: str
    name: str | None


class _Price(NamedTuple):
    negotiated_type: str
    negotiated_rate: float
    billing_class: str
    setting: str | None
    service_codes: list[str] | None
    expiration_date: str | None
    modifiers: list[str] | None


class _Group(NamedTuple):
    key: str
    name: str | None
    npi_count: int


# --- the public API -----------------------------------------------------------------------------------------


def forced_payer(catalogue: PayerCatalogue, name: str | None) -> Payer | None:
    """The payer named by ``--payer``, checked against the catalogue."""
    if name is None:
        return None
    payer = payer_named(catalogue, name)
    if payer is None:
        names = ", ".join(p.name for p in catalogue.payers)
        raise UsageError(f"unknown payer {name!r} for --payer: the payers of data/payers.yaml are {names}")
    return payer


def ingest_tic_file(
    store: RatesStore,
    path: Path,
    *,
    codes: set[str] | frozenset[str],
    catalogue: PayerCatalogue,
    payer_override: str | None = None,
    provider_refs_dir: Path | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest one in-network file, keeping the rates of ``codes`` (and of CSTM-00, which covers every code).

    Raises IngestError (bad or unreadable file; the store is unchanged) or UsageError (unknown
    ``payer_override``)."""
    path = Path(path)
    forced = forced_payer(catalogue, payer_override)
    started = time.perf_counter()
    size = regular_file_size(path)
    with store.transaction() as con:
        try:
            digest = hash_if_name_known(con, path)
        except OSError as exc:
            raise unreadable(path, exc) from None
        if digest and source_exists(con, digest) and not replace:
            return _unchanged(con, path, digest, size)
        parse = _InNetworkFile(
            path,
            wanted=frozenset(code.strip().upper() for code in codes),
            staging=_Staging(con),
            resolve_payer=lambda header: forced or _payer_of(catalogue, header, path),
            provider_refs_dir=provider_refs_dir,
            progress=progress,
        )
        payer = parse.run()
        if source_exists(con, parse.sha256):
            if not replace:
                return _unchanged(con, path, parse.sha256, size)
            delete_source(con, parse.sha256)
            status = "replaced"
        else:
            status = "ingested"
        rows = parse.staging.publish(parse.sha256, payer.name, parse.as_of)
        source = parse.source_row(payer, rows)
        insert_source(con, source)
    return IngestResult(
        path=path,
        kind=KIND,
        status=status,
        source_id=source.source_id,
        payer=source.payer,
        rows_kept=rows,
        items_kept=parse.items_kept,
        items_skipped=parse.items_skipped,
        warnings=source.warnings,
        is_demo=source.is_demo,
        schema_version=source.schema_version,
        bytes_stored=size,
        bytes_parsed=parse.bytes_parsed,
        seconds=time.perf_counter() - started,
    )


def tic_files(paths: list[Path]) -> list[Path]:
    """The .json and .json.gz files named, folders searched recursively, in a stable order.

    Whatever in a folder is named like a rate file and is not a folder is listed, also a broken link (a git-annex
    file whose content was never fetched) or a named pipe: ingesting it fails with the reason, never silently."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if not p.is_dir() and p.name.lower().endswith((".json", ".json.gz"))
            )
        elif path.exists() or path.is_symlink():  # a broken link fails as that file, with the reason
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    return found


def _payer_of(catalogue: PayerCatalogue, header: dict[str, Any], path: Path) -> Payer:
    entity = header.get("reporting_entity_name")
    if not isinstance(entity, str) or not entity.strip():
        raise IngestError(
            "no reporting_entity_name at the top of the file: cannot tell whose rates these are",
            where=path,
            hint="pass --payer NAME",
        )
    payer = match_payer(catalogue, entity)
    if payer is None:
        names = ", ".join(p.name for p in catalogue.payers)
        raise IngestError(
            f"unknown reporting entity {entity!r}: no payer of data/payers.yaml matches it",
            where=path,
            hint=f"add a pattern matching it to the entity_patterns of its payer in data/payers.yaml, "
            f"or pass --payer NAME ({names})",
        )
    return payer


def _unchanged(con: duckdb.DuckDBPyConnection, path: Path, source_id: str, size: int) -> IngestResult:
    row = con.execute(
        "SELECT payer, rows_kept, items_skipped, warnings, is_demo, schema_version FROM sources WHERE source_id = ?",
        [source_id],
    ).fetchone()
    assert row is not None, "called for a known source"
    payer, rows, skipped, warnings, is_demo, version = row
    return IngestResult(
        path=path,
        kind=KIND,
        status="unchanged",
        source_id=source_id,
        payer=payer,
        rows_kept=rows,
        items_skipped=skipped,
        warnings=list(warnings or []),
        is_demo=is_demo,
        schema_version=version,
        bytes_stored=size,
    )


# --- staging ------------------------------------------------------------------------------------------------


class _Staging:
    """One file's rows, held in temporary tables until the file has been read to its end."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        con.execute(
            """CREATE TEMP TABLE tic_rows (
                 seq BIGINT, billing_code VARCHAR, billing_code_type VARCHAR, billing_code_modifiers VARCHAR[],
                 negotiation_arrangement VARCHAR, item_name VARCHAR, negotiated_type VARCHAR,
                 negotiated_rate DOUBLE, billing_class VARCHAR, setting VARCHAR, service_codes VARCHAR[],
                 expiration_date VARCHAR, provider_group_key VARCHAR, provider_group_name VARCHAR,
                 npi_count INTEGER, provider_reference VARCHAR)"""
        )
        con.execute(
            """CREATE TEMP TABLE tic_refs (
                 provider_reference VARCHAR, seq INTEGER, network_names VARCHAR[], provider_group_key VARCHAR,
                 provider_group_name VARCHAR, npi_count INTEGER)"""
        )
        self._appenders = {"tic_rows": con.appender("tic_rows"), "tic_refs": con.appender("tic_refs")}
        self._pending: dict[str, list[tuple]] = {"tic_rows": [], "tic_refs": []}
        self.rates = 0

    def add_rates(self, item: _Item, price: _Price, targets: list[tuple]) -> None:
        rows = self._pending["tic_rows"]
        for target in targets:
            rows.append(
                (
                    self.rates,
                    item.code,
                    item.code_type,
                    price.modifiers,
                    item.arrangement,
                    item.name,
                    price.negotiated_type,
                    price.negotiated_rate,
                    price.billing_class,
                    price.setting,
                    price.service_codes,
                    price.expiration_date,
                    *target,
                )
            )
            self.rates += 1
        if len(rows) >= _STAGE_BATCH:
            self._flush("tic_rows")

    def add_reference(self, reference: str, network_names: list[str] | None, groups: list[_Group]) -> None:
        refs = self._pending["tic_refs"]
        refs += [(reference, i, network_names, *group) for i, group in enumerate(groups)]
        if len(refs) >= _STAGE_BATCH:
            self._flush("tic_refs")

    def _flush(self, table: str) -> None:
        if self._pending[table]:
            self._appenders[table].append_rows(self._pending[table])
            self._appenders[table].flush()
            self._pending[table] = []

    def publish(self, source_id: str, payer: str, as_of: dt.date | None) -> int:
        """Move the staged rows into negotiated_rates, one per provider group; returns the number of rows."""
        self._flush("tic_rows")
        self._flush("tic_refs")
        inserted = self._con.execute(
            """INSERT INTO negotiated_rates
               SELECT $source, $payer, r.billing_code, r.billing_code_type, r.billing_code_modifiers,
                      r.negotiation_arrangement, r.item_name, r.negotiated_type, r.negotiated_rate, r.billing_class,
                      r.setting, r.service_codes, r.expiration_date, g.network_names,
                      coalesce(r.provider_group_key, g.provider_group_key),
                      coalesce(r.provider_group_name, g.provider_group_name),
                      coalesce(r.npi_count, g.npi_count),
                      r.provider_reference,
                      CASE WHEN r.provider_reference IS NULL THEN 'inline'
                           WHEN g.provider_reference IS NULL THEN 'unresolved'
                           ELSE 'resolved' END,
                      $as_of
               FROM tic_rows r LEFT JOIN tic_refs g ON g.provider_reference = r.provider_reference
               ORDER BY r.seq, g.seq""",
            {"source": source_id, "payer": payer, "as_of": as_of},
        ).fetchone()
        return int(inserted[0]) if inserted else 0


# --- one file -----------------------------------------------------------------------------------------------


class _InNetworkFile:
    """The parse of one in-network file into staged rows; ``run`` raises IngestError on bad input."""

    def __init__(
        self,
        path: Path,
        *,
        wanted: frozenset[str],
        staging: _Staging,
        resolve_payer: Callable[[dict[str, Any]], Payer],
        provider_refs_dir: Path | None,
        progress: Progress | None,
    ):
        self.path = path
        self.wanted = wanted
        self.staging = staging
        self._resolve_payer = resolve_payer
        self.provider_refs_dir = provider_refs_dir
        self._progress = progress
        self.header: dict[str, Any] = {}
        self.payer: Payer | None = None
        self.sha256 = ""
        self.bytes_parsed = 0
        self.items_kept = 0
        self.items_skipped = 0
        self.in_network_read = False
        self.references_first = False
        self.needed_references: set[str] = set()
        self.defined_references: set[str] = set()
        self.remote_unresolved: dict[str, str] = {}
        self.empty_references: list[str] = []
        self._gzip = False
        # where we are, for error messages
        self._offset = 0
        self._item_index: int | None = None
        self._item_code: str | None = None

    # -- driving

    def run(self) -> Payer:
        """Read the file into the staging tables; returns the payer its rates are filed under."""
        try:
            if self.path.stat().st_size == 0:
                raise IngestError("the file is empty", where=self.path)
            self._read_all()
            if self.references_first and self.needed_references:
                self._read_references_again()
            if self.payer is None:
                self.payer = self._resolve_payer(self.header)
            return self.payer
        except JsonFormatError as exc:
            raise self._error(exc.message, exc.offset) from None
        except _BadRecord as exc:
            raise self._error(str(exc), self._offset) from None
        except (TruncatedGzip, CorruptGzip) as exc:
            raise IngestError(str(exc), where=self.path, hint="download the file again") from None
        except OSError as exc:  # the file itself (a provider-reference file is reported as itself)
            raise unreadable(self.path, exc) from None

    @contextmanager
    def _reader(self, *, report_progress: bool) -> Iterator[tuple[RateFile, JsonReader]]:
        rate_file = RateFile(self.path)
        self._gzip = rate_file.gzip
        progress = self._progress if report_progress else None
        with (
            Prefetch(rate_file.chunks(), name="read") as chunks,
            Prefetch(index_chunks(chunks), name="index") as indexed,
        ):
            on_chunk = (lambda: progress(rate_file.bytes_read, self.staging.rates)) if progress else None
            yield rate_file, JsonReader(indexed, on_chunk=on_chunk)

    def _read_all(self) -> None:
        with self._reader(report_progress=True) as (rate_file, reader):
            reader.skip_bom()
            if reader.peek() != ord("{"):
                raise self._not_in_network("its top level is not a JSON object")
            for key in reader.iter_members():
                self._offset = reader.pos
                self._read_member(reader, key)
            if not reader.at_end():
                raise JsonFormatError("unexpected data after the end of the JSON document", reader.pos)
            self.bytes_parsed = reader.end
        self.sha256 = rate_file.sha256 or ""
        if not self.in_network_read:
            raise self._not_in_network("it has no in_network array")

    def _read_member(self, reader: JsonReader, key: str) -> None:
        if key == "in_network":
            self._read_in_network(reader)
        elif key == "provider_references":
            if self.in_network_read:
                self._read_references(reader)
            else:
                self.references_first = True
                reader.skip_value()
        elif key in _HEADER_KEYS:
            value = reader.read_value()
            if not isinstance(value, str):
                raise _BadRecord(key, f"must be a string, got {value!r}")
            if key == "last_updated_on" and _date(value) is None:
                raise _BadRecord(key, f"must be a date (YYYY-MM-DD), got {value!r}")
            self.header[key] = value
        elif key in _OTHER_KINDS and not self.in_network_read:
            kind, hint = _OTHER_KINDS[key]
            raise self._not_in_network(f"it is {kind}", hint)
        else:
            reader.skip_value()

    def _read_references_again(self) -> None:
        """The second pass: provider_references came before in_network; read it, stop at its end."""
        with self._reader(report_progress=False) as (_, reader):
            reader.skip_bom()
            for key in reader.iter_members():
                if key == "provider_references":
                    self._read_references(reader)
                    return
                reader.skip_value()

    # -- in_network

    def _read_in_network(self, reader: JsonReader) -> None:
        if self.payer is None and "reporting_entity_name" in self.header:
            self.payer = self._resolve_payer(self.header)  # fail before the long part of the file
        if reader.peek() != ord("["):
            raise JsonFormatError("in_network must be an array", reader.pos)
        wanted = self.wanted
        kept_until = 0  # elements before this index are counted
        try:
            for index, code in reader.select_elements("billing_code", lambda code: _keeps(code, wanted)):
                self._offset, self._item_index, self._item_code = reader.pos, index, None
                self.items_skipped += index - kept_until
                kept_until = index + 1
                if code is MISSING:
                    raise _BadRecord("", "an in_network item must be an object with a billing_code")
                if not isinstance(code, str) or not code.strip():
                    raise _BadRecord("billing_code", f"must be a non-empty string, got {code!r}")
                self._item_code = code.strip().upper()
                self._read_item(reader, self._item_code)
                self.items_kept += 1
        except JsonFormatError:
            if reader.element_index != self._item_index:  # in an item stepped over
                self._item_index, self._item_code = reader.element_index, None
            raise
        self.items_skipped += reader.element_index - kept_until
        if not reader.element_index:
            raise JsonFormatError("in_network is empty: the file holds no rates", reader.pos)
        self._item_index = self._item_code = None
        self.in_network_read = True

    def _read_item(self, reader: JsonReader, code: str) -> None:
        """Read a wanted item member by member, one negotiated_rates element at a time (items can be huge)."""
        header: dict[str, Any] = {}
        item: _Item | None = None
        early_rates: list[tuple[int, Any]] = []  # rates before the item's own fields (unusual member order)
        has_rates = False
        for key in reader.iter_members():
            if key == "negotiated_rates":
                has_rates = True
                if reader.peek() != ord("["):
                    raise _BadRecord("negotiated_rates", "must be an array")
                for index in reader.iter_elements():
                    self._offset = reader.pos
                    rate = reader.read_value(_loads)
                    item = item or _item_if_complete(code, header)
                    if item is None:
                        early_rates.append((index, rate))
                    else:
                        self._stage_rate(item, rate, index)
            elif key in _ITEM_KEYS:
                header[key] = reader.read_value()
            else:
                reader.skip_value()
        if not has_rates:
            raise _BadRecord("negotiated_rates", "missing")
        item = item or _item(code, header)
        for index, rate in early_rates:
            self._stage_rate(item, rate, index)

    def _stage_rate(self, item: _Item, rate: Any, index: int) -> None:
        field = f"negotiated_rates[{index}]"
        if not isinstance(rate, dict):
            raise _BadRecord(field, "must be an object")
        prices = rate.get("negotiated_prices")
        if not isinstance(prices, list) or not prices:
            raise _BadRecord(f"{field}.negotiated_prices", "must be a non-empty array")
        targets = self._targets(rate, field)
        for price_index, price in enumerate(prices):
            self.staging.add_rates(item, _price(price, f"{field}.negotiated_prices[{price_index}]"), targets)

    def _targets(self, rate: dict[str, Any], field: str) -> list[tuple]:
        """(group key, group name, npi count, provider reference) of each provider group a rate applies to."""
        targets: list[tuple] = []
        groups = rate.get("provider_groups")
        if groups is not None:
            if not isinstance(groups, list):
                raise _BadRecord(f"{field}.provider_groups", "must be an array")
            targets += [(*_group(g, f"{field}.provider_groups[{i}]"), None) for i, g in enumerate(groups)]
        references = rate.get("provider_references")
        if references is not None:
            if not isinstance(references, list):
                raise _BadRecord(f"{field}.provider_references", "must be an array")
            for i, value in enumerate(references):
                reference = _reference_id(value, f"{field}.provider_references[{i}]")
                self.needed_references.add(reference)
                targets.append((None, None, None, reference))
        if not targets:
            raise _BadRecord(field, "has neither provider_groups nor provider_references")
        return targets

    # -- provider references

    def _read_references(self, reader: JsonReader) -> None:
        if reader.peek() != ord("["):
            raise JsonFormatError("provider_references must be an array", reader.pos)

        def wanted(value: Any) -> bool:
            return not isinstance(value, int | float | str) or self._undefined_and_needed(_written(value))

        for index, value in reader.select_elements("provider_group_id", wanted, _loads):
            self._offset = reader.pos
            field = f"provider_references[{index}]"
            if value is MISSING:
                raise _BadRecord(field, "must be an object with a provider_group_id")
            self._define_reference(_reference_id(value, f"{field}.provider_group_id"), reader.read_value(), field)

    def _undefined_and_needed(self, reference: str) -> bool:
        return reference in self.needed_references and reference not in self.defined_references

    def _define_reference(self, reference: str, entry: dict[str, Any], field: str) -> None:
        self.defined_references.add(reference)
        networks = _string_list(entry, "network_name", field)
        if "provider_groups" in entry:
            groups = entry["provider_groups"]
        elif isinstance(entry.get("location"), str):
            groups = self._remote_groups(reference, entry["location"])
            if groups is None:
                return
        else:
            raise _BadRecord(field, "has neither provider_groups nor a location")
        if not isinstance(groups, list):
            raise _BadRecord(f"{field}.provider_groups", "must be an array")
        if not groups:
            self.empty_references.append(reference)
            return
        parsed = [_group(g, f"{field}.provider_groups[{i}]") for i, g in enumerate(groups)]
        self.staging.add_reference(reference, networks, parsed)

    def _remote_groups(self, reference: str, url: str) -> list | None:
        """The provider groups of a reference file downloaded into provider_refs_dir, or None (unresolved)."""
        local = _downloaded(self.provider_refs_dir, url)
        if local is None:
            self.remote_unresolved[reference] = url
            return None
        try:
            opener = gzip.open if is_gzip(local) else open
            with opener(local, "rb") as handle:
                document = json.loads(handle.read())
        except (OSError, ValueError, EOFError, zlib.error) as exc:  # EOFError: a cut-short gzip
            raise IngestError(f"cannot read provider reference file: {exc}", where=local) from None
        groups = document.get("provider_groups") if isinstance(document, dict) else None
        if not isinstance(groups, list):
            raise IngestError("not a provider-reference file: it has no provider_groups array", where=local)
        return groups

    # -- results

    @property
    def as_of(self) -> dt.date | None:
        return _date(self.header.get("last_updated_on", ""))

    def warnings(self) -> list[str]:
        found: list[str] = []
        if self.remote_unresolved:
            listed = ", ".join(f"{ref} -> {url}" for ref, url in list(self.remote_unresolved.items())[:5])
            more = len(self.remote_unresolved) - 5
            found.append(
                f"{len(self.remote_unresolved)} provider reference(s) used by kept rates point at remote files "
                f"that were not resolved ({listed}{f', and {more} more' if more > 0 else ''}); their rates are "
                "stored without provider groups. Download the files and pass --provider-refs FOLDER."
            )
        missing = self.needed_references - self.defined_references
        if missing:
            listed = ", ".join(sorted(missing)[:10])
            found.append(f"provider reference(s) used by kept rates but not defined in the file: {listed}")
        if self.empty_references:
            listed = ", ".join(self.empty_references[:10])
            found.append(f"provider reference(s) with no provider groups: {listed}")
        return found

    def source_row(self, payer: Payer, rows: int) -> SourceRow:
        entity = self.header.get("reporting_entity_name")
        plan = self.header.get("plan_name")
        return SourceRow(
            source_id=self.sha256,
            kind=KIND,
            path=self.path,
            payer=payer.name,
            publisher=entity,
            entity_type=self.header.get("reporting_entity_type"),
            plans=plan,
            last_updated_on=self.as_of,
            schema_version=self.header.get("version"),
            rows_kept=rows,
            items_skipped=self.items_skipped,
            warnings=self.warnings(),
            is_demo=any(DEMO_MARKER in (text or "") for text in (entity, plan)),
        )

    # -- errors

    def _error(self, message: str, offset: int) -> IngestError:
        place = [f"{'uncompressed ' if self._gzip else ''}byte {offset:,}"]
        if self._item_index is not None:
            place.append(f"in_network item {self._item_index}")
            if self._item_code:
                place.append(f"billing code {self._item_code}")
        return IngestError(message, where=f"{self.path} ({', '.join(place)})")

    def _not_in_network(self, why: str, hint: str | None = None) -> IngestError:
        return IngestError(
            f"not a Transparency in Coverage in-network rate file: {why}",
            where=self.path,
            hint=hint or "cptpub ingest tic reads in-network rate files (with reporting_entity_name and in_network)",
        )


# --- records ------------------------------------------------------------------------------------------------


def _date(text: str) -> dt.date | None:
    """A YYYY-MM-DD date (some files append a time, which is dropped)."""
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _keeps(code: Any, wanted: frozenset[str]) -> bool:
    """Whether an in_network item is read: a wanted code or CSTM-00, or a malformed code (to report it)."""
    if not isinstance(code, str):
        return True
    code = code.strip().upper()
    return code in wanted or code == ALL_CODES or not code


def _item_if_complete(code: str, header: dict[str, Any]) -> _Item | None:
    return _item(code, header) if header.keys() >= _ITEM_KEYS else None


def _item(code: str, header: dict[str, Any]) -> _Item:
    code_type = header.get("billing_code_type")
    if not isinstance(code_type, str) or not code_type.strip():
        raise _BadRecord("billing_code_type", f"must be a non-empty string, got {code_type!r}")
    name = header.get("name")
    if name is not None and not isinstance(name, str):
        raise _BadRecord("name", f"must be a string, got {name!r}")
    return _Item(code, code_type.strip(), _choice(header, "negotiation_arrangement", ARRANGEMENTS, ""), name)


def _price(price: Any, field: str) -> _Price:
    if not isinstance(price, dict):
        raise _BadRecord(field, "must be an object")
    rate = price.get("negotiated_rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise _BadRecord(f"{field}.negotiated_rate", f"must be a number, got {rate!r}")
    if not math.isfinite(rate) or rate <= 0:
        raise _BadRecord(f"{field}.negotiated_rate", f"must be greater than 0, got {_written(rate)}")
    expiration = price.get("expiration_date")
    if expiration is not None and not isinstance(expiration, str):
        raise _BadRecord(f"{field}.expiration_date", f"must be a string, got {expiration!r}")
    setting = _choice(price, "setting", SETTINGS, field) if price.get("setting") is not None else None
    return _Price(
        negotiated_type=_choice(price, "negotiated_type", NEGOTIATED_TYPES, field),
        negotiated_rate=float(rate),
        billing_class=_choice(price, "billing_class", BILLING_CLASSES, field),
        setting=setting,
        service_codes=_string_list(price, "service_code", field),
        expiration_date=expiration,
        modifiers=_string_list(price, "billing_code_modifier", field),
    )


def _group(group: Any, field: str) -> _Group:
    """A provider group's key ('ein:<tin>' or 'npi:<npi>'), business name and number of NPIs."""
    if not isinstance(group, dict):
        raise _BadRecord(field, "must be an object")
    tin = group.get("tin")
    if not isinstance(tin, dict) or not isinstance(tin.get("type"), str) or not isinstance(tin.get("value"), str):
        raise _BadRecord(f"{field}.tin", "must be an object with string type and value")
    npis = group.get("npi", [])
    if not isinstance(npis, list):
        raise _BadRecord(f"{field}.npi", "must be an array")
    name = tin.get("business_name")
    # npi [0] is the schema's way of saying "no NPI"
    npi_count = sum(1 for npi in npis if npi not in (0, "0"))
    return _Group(f"{tin['type'].strip().lower()}:{tin['value'].strip()}", name, npi_count)


def _reference_id(value: Any, field: str) -> str:
    """A provider_group_id as the file writes it (an integer, or a number like 690.65627, or a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _BadRecord(field, f"must be a number, got {value!r}")
    return _written(value)


def _written(value: int | float | str) -> str:
    return value.text if isinstance(value, _WrittenNumber) else str(value)


def _choice(record: dict[str, Any], key: str, allowed: tuple[str, ...], field: str) -> str:
    value = record.get(key)
    normal = value.strip().lower() if isinstance(value, str) else None
    if normal not in allowed:
        where = f"{field}.{key}" if field else key
        raise _BadRecord(where, f"must be one of {', '.join(allowed)}; got {value!r}")
    return normal


def _string_list(record: dict[str, Any], key: str, field: str) -> list[str] | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadRecord(f"{field}.{key}", f"must be an array of strings, got {value!r}")
    return value


def _downloaded(folder: Path | None, url: str) -> Path | None:
    """The copy of a remote provider-reference file in ``folder``: named as the URL's last path segment."""
    if folder is None:
        return None
    name = PurePosixPath(urlparse(url).path).name
    if not name:
        return None
    for candidate in (name, f"{name}.gz", name.removesuffix(".gz")):
        if (folder / candidate).is_file():
            return folder / candidate
    return None
