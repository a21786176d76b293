"""Ingest Transparency in Coverage in-network rate files (schema 1.x and 2.x) into the rates store.

One pass streams the file (plain or gzip, local or an http(s) URL) through ``jsonscan``: in_network items whose
billing code is not wanted are stepped over unparsed (by default every code is wanted). A wanted item that ends
within ``WHOLE_ITEM_BYTES`` is decoded at once by msgspec into typed Structs and appended to the staging columns
(``typed``, ``staging``); a larger item is read one negotiated_rates element at a time the same way, so memory
stays flat. When every code is wanted, items are decoded in runs of whole items, about a chunk at a time,
without indexing their bytes (``_take_run``); a run the typed decode cannot vouch for is read item by item as
above. Anything the typed decode cannot vouch for (an unusual type or spelling, a schema error, a
repeated or unknown key, an escape) is read by the checking parser, which accepts what the schema allows and
otherwise names the field, the item and the byte offset.

Zero, negative and placeholder prices ($0.00, $0.01, 999999.99) are stored with the rest and counted in the
source's warnings (``staging.SUSPECT_PRICE_SQL`` recognises them); only a file whose structure is broken fails.

Provider references. Rates that point at ``provider_references`` are staged with the reference id; the groups
of only the references those rates use are loaded, then a join expands them. When provider_references comes
after in_network (references known by then) they are read in the same pass; when it comes first (the usual
layout) its bytes are held until in_network has been read (up to ``HELD_REFERENCES_BYTES``), or, when larger, a
second pass reads just that leading part of the file, stopping where it ends. References that point
at a remote ``location`` are resolved from ``provider_refs_dir`` (files named as the URL's last path segment),
else fetched once per URL into ``refs_cache``; offline (no cache) or when the fetch fails they are stored
unresolved, with a warning on the source.

Parsing writes only the staging folder; publishing the staged file is one store transaction: an error or an
interrupt leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import urlparse

import duckdb

from cptpub.errors import CptpubError, IngestError, UsageError
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
from cptpub.ingest.jsonscan import (
    MAX_NUMBER_CHARS,
    MISSING,
    JsonFormatError,
    JsonReader,
    NotJson,
    checked_int,
    element_members,
    element_offset,
    held_elements,
    index_chunks,
    number_too_long,
    reader_of,
    refuse_constant,
    unique_keys,
)
from cptpub.ingest.remote import cached, is_url
from cptpub.ingest.staging import Staging, publish, staging_root
from cptpub.ingest.stream import SKIM_CHUNK, CorruptGzip, Prefetch, RateFile, TruncatedGzip
from cptpub.ingest.typed import TypedItems, held_references
from cptpub.records.load import match_payer, payer_named
from cptpub.records.schema import Payer, PayerCatalogue
from cptpub.store import RatesStore

KIND = "tic-in-network"
ALL_CODES = "CSTM-00"  # a billing code standing for every code of its type: kept whatever codes are wanted
NEGOTIATED_TYPES = ("negotiated", "derived", "fee schedule", "percentage", "per diem")
BILLING_CLASSES = ("professional", "institutional", "both")
SETTINGS = ("inpatient", "outpatient", "both")
ARRANGEMENTS = ("ffs", "bundle", "capitation")
WHOLE_ITEM_BYTES = 8 << 20  # a wanted item up to this size is decoded at once
HELD_REFERENCES_BYTES = 8 << 20  # provider_references before in_network up to this size is held, not read again
_HEADER_KEYS = frozenset({"reporting_entity_name", "reporting_entity_type", "plan_name", "last_updated_on", "version"})
# a provider_group_id as it is stored when written so: its text (an unsigned number), or a string without escapes
_PLAIN_ID = re.compile(rb'(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|"[^"\\]*"')
_ITEM_KEYS = frozenset({"billing_code_type", "negotiation_arrangement", "name"})
_OTHER_KINDS = {
    "reporting_structure": ("a table-of-contents file", "list the in-network files it names with `cptpub ingest toc`"),
    "out_of_network": ("an allowed-amounts file", "cptpub ingests in-network rate files only"),
    "provider_groups": (
        "a provider-reference file",
        "put it in a folder and pass --provider-refs FOLDER when ingesting the in-network file that points at it",
    ),
}

_CHOICES = {
    "type": NEGOTIATED_TYPES,
    "class": BILLING_CLASSES,
    "setting": SETTINGS,
    "arrangement": ARRANGEMENTS,
}
Progress = Callable[[int, int, int | None], None]  # (bytes of the file read, prices kept, its size if known)
Source = Path | str  # a local path or an http(s) URL


class _WrittenNumber(float):
    """A JSON number with a fraction or exponent that remembers how it was written: provider_group_id values
    such as 690.65627 are identifiers, kept as text exactly as the file writes them."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _WrittenNumber:
        if len(text) > MAX_NUMBER_CHARS:
            raise NotJson(number_too_long(len(text)))
        number = super().__new__(cls, text)
        number.text = text
        return number


_CHECKING = __import__("json").JSONDecoder(
    parse_float=_WrittenNumber, parse_int=checked_int, parse_constant=refuse_constant, object_pairs_hook=unique_keys
)


def _loads(raw: bytes | memoryview) -> Any:
    return _CHECKING.decode(bytes(raw).decode("utf-8"))


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


class _Price(NamedTuple):  # the staging "prices" columns after rate_seq
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


@dataclass
class ParsedFile:
    """One in-network file parsed into a staging folder: everything the writer needs to publish it."""

    source: Source
    staging: Path
    sha256: str
    payer: str
    header: dict[str, str]
    items_kept: int
    items_skipped: int
    warnings: list[str]
    bytes_stored: int
    bytes_parsed: int
    seconds: float
    unchanged: bool = False  # the bytes were ingested before: nothing staged
    files: dict[str, bytes] = field(default_factory=dict)  # the staged files, when sent from a remote worker

    @property
    def as_of(self) -> dt.date | None:
        return _date(self.header.get("last_updated_on", ""))


def ingest_tic_file(
    store: RatesStore,
    path: Source,
    *,
    codes: set[str] | frozenset[str] | None = None,
    catalogue: PayerCatalogue,
    payer_override: str | None = None,
    provider_refs_dir: Path | None = None,
    refs_cache: Path | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest one in-network file (a path or an http(s) URL), keeping the rates of ``codes`` (None: every code;
    CSTM-00, which covers every code, is always kept). Remote provider references are fetched into
    ``refs_cache`` (None: offline, stored unresolved).

    Raises IngestError (bad or unreadable file; the store is unchanged) or UsageError (unknown
    ``payer_override``)."""
    forced_payer(catalogue, payer_override)
    source = path if is_url(path) else Path(path)
    known: set[str] = set()
    if not is_url(source) and store.exists():
        with closing(store.connect()) as con:  # a read: no copy of the store is made and replaced
            try:
                digest = hash_if_name_known(con, Path(source))
            except OSError as exc:
                raise unreadable(Path(source), exc) from None
            if digest and source_exists(con, digest):
                known.add(digest)
    folder = staging_root(store.path.parent)
    try:
        parsed = parse_tic_file(
            source,
            folder,
            codes=codes,
            catalogue=catalogue,
            payer_override=payer_override,
            provider_refs_dir=provider_refs_dir,
            refs_cache=refs_cache,
            known=known if not replace else set(),
            progress=progress,
        )
        return publish_parsed(store, parsed, replace=replace)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_tic_file(
    source: Source,
    folder: Path,
    *,
    codes: set[str] | frozenset[str] | None,
    catalogue: PayerCatalogue,
    payer_override: str | None = None,
    provider_refs_dir: Path | None = None,
    refs_cache: Path | None = None,
    known: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
) -> ParsedFile:
    """Parse one in-network file into ``folder`` (no store involved: this runs on any worker). When the file's
    SHA-256 is in ``known`` (ingested before), nothing is parsed and the result says ``unchanged``."""
    started = time.perf_counter()
    forced = forced_payer(catalogue, payer_override)
    size = 0
    if not is_url(source):
        source = Path(source)
        size = regular_file_size(source)
        if known:
            from cptpub.ingest.stream import sha256_of

            digest = sha256_of(source)
            if digest in known:
                return ParsedFile(source, folder, digest, "", {}, 0, 0, [], size, 0, 0.0, unchanged=True)
    staging = Staging(folder)
    parse = _InNetworkFile(
        source,
        wanted=None if codes is None else frozenset(code.strip().upper() for code in codes),
        staging=staging,
        resolve_payer=lambda header: forced or _payer_of(catalogue, header, source),
        provider_refs_dir=provider_refs_dir,
        refs_cache=refs_cache,
        progress=progress,
    )
    try:
        with _collector_paused():
            payer = parse.run()
            staging.close()
    except BaseException:
        staging.abandon()
        raise
    return ParsedFile(
        source=source,
        staging=folder,
        sha256=parse.sha256,
        payer=payer.name,
        header=parse.header,
        items_kept=parse.items_kept,
        items_skipped=parse.items_skipped,
        warnings=parse.warnings(),
        bytes_stored=parse.bytes_stored or size,
        bytes_parsed=parse.bytes_parsed,
        seconds=time.perf_counter() - started,
    )


_pause_lock = threading.Lock()
_pauses = 0  # parses running with the collector paused (threads of one process share it)
_collector_was_enabled = True


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a file is parsed. A parse allocates millions of short-lived
    containers and makes no cycles, and each collection the allocations trigger traverses every container alive:
    about 1.5 s of CPU for a 200 MB file kept whole. Reference counting frees everything as usual."""
    global _pauses, _collector_was_enabled
    with _pause_lock:
        if _pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_enabled:
                gc.enable()


def publish_parsed(store: RatesStore, parsed: ParsedFile, *, replace: bool = False) -> IngestResult:
    """Append a parsed file to the store in one transaction (or report it unchanged)."""
    started = time.perf_counter()
    if store.exists() and not replace:  # an unchanged file is reported from a read, without rewriting the store
        with closing(store.connect()) as con:
            if parsed.unchanged or source_exists(con, parsed.sha256):
                return _unchanged(con, parsed.source, parsed.sha256, parsed.bytes_stored)
    with store.transaction() as con:
        new_store = not store.exists()  # the writer lock is held: no one else makes it meanwhile
        exists = not new_store and source_exists(con, parsed.sha256)
        if parsed.unchanged or (exists and not replace):
            return _unchanged(con, parsed.source, parsed.sha256, parsed.bytes_stored)
        if exists:
            delete_source(con, parsed.sha256)
            status = "replaced"
        else:
            status = "ingested"
        if parsed.files:  # sent by a remote worker
            parsed.staging.mkdir(parents=True, exist_ok=True)
            for name, data in parsed.files.items():
                (parsed.staging / name).write_bytes(data)
        rows, suspect = publish(con, parsed.staging, parsed.sha256, parsed.payer, parsed.as_of, new_store=new_store)
        warnings = list(parsed.warnings)
        if suspect:
            warnings.append(
                f"{suspect:,} price(s) of zero, a negative amount or a placeholder (at most 0.01 or at least "
                "999999) are stored with the others; analysis keeps them out of the statistics"
            )
        source = _source_row(parsed, rows, warnings)
        insert_source(con, source)
    return IngestResult(
        path=Path(parsed.source) if not is_url(parsed.source) else Path(urlparse(str(parsed.source)).path),
        kind=KIND,
        status=status,
        source_id=source.source_id,
        payer=source.payer,
        rows_kept=rows,
        items_kept=parsed.items_kept,
        items_skipped=parsed.items_skipped,
        warnings=source.warnings,
        is_demo=source.is_demo,
        schema_version=source.schema_version,
        bytes_stored=parsed.bytes_stored,
        bytes_parsed=parsed.bytes_parsed,
        seconds=parsed.seconds + time.perf_counter() - started,
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


def _payer_of(catalogue: PayerCatalogue, header: dict[str, Any], path: Source) -> Payer:
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


def _source_row(parsed: ParsedFile, rows: int, warnings: list[str]) -> SourceRow:
    entity = parsed.header.get("reporting_entity_name")
    plan = parsed.header.get("plan_name")
    return SourceRow(
        source_id=parsed.sha256,
        kind=KIND,
        path=parsed.source,  # a URL is stored as written
        payer=parsed.payer,
        publisher=entity,
        entity_type=parsed.header.get("reporting_entity_type"),
        plans=plan,
        last_updated_on=parsed.as_of,
        schema_version=parsed.header.get("version"),
        rows_kept=rows,
        items_skipped=parsed.items_skipped,
        warnings=warnings,
        is_demo=any(DEMO_MARKER in (text or "") for text in (entity, plan)),
    )


def _unchanged(con: duckdb.DuckDBPyConnection, path: Source, source_id: str, size: int) -> IngestResult:
    row = con.execute(
        "SELECT payer, rows_kept, items_skipped, warnings, is_demo, schema_version FROM sources WHERE source_id = ?",
        [source_id],
    ).fetchone()
    assert row is not None, "called for a known source"
    payer, rows, skipped, warnings, is_demo, version = row
    return IngestResult(
        path=Path(path) if not is_url(path) else Path(urlparse(str(path)).path),
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


# --- one file -----------------------------------------------------------------------------------------------


class _InNetworkFile:
    """The parse of one in-network file into staged rows; ``run`` raises IngestError on bad input."""

    def __init__(
        self,
        source: Source,
        *,
        wanted: frozenset[str] | None,
        staging: Staging,
        resolve_payer: Callable[[dict[str, Any]], Payer],
        provider_refs_dir: Path | None,
        refs_cache: Path | None,
        progress: Progress | None,
    ):
        self.path = source
        self.wanted = wanted
        self.staging = staging
        self._resolve_payer = resolve_payer
        self.provider_refs_dir = provider_refs_dir
        self.refs_cache = refs_cache
        self._progress = progress
        self.header: dict[str, Any] = {}
        self.payer: Payer | None = None
        self.sha256 = ""
        self.bytes_parsed = 0
        self.bytes_stored = 0
        self.items_kept = 0
        self.items_skipped = 0
        self.in_network_read = False
        self.references_first = False
        self.held_references: tuple[bytes, int] | None = None  # (bytes, offset) of a leading provider_references
        self.needed_references: set[str] = set()
        self.defined_references: set[str] = set()
        self.remote_unresolved: dict[str, str] = {}
        self.remote_failed: dict[str, str] = {}  # url -> why the fetch failed
        self.remote_resolved = 0
        self.empty_references: list[str] = []
        self._gzip = False
        self._typed = TypedItems(staging, self.needed_references)
        self._picked: list[tuple[bytes, str, int, int]] = []  # (bytes, code, index, offset) of items to stage
        self._picked_bytes = 0
        # where we are, for error messages
        self._offset = 0
        self._item_index: int | None = None
        self._item_code: str | None = None

    # -- driving

    def run(self) -> Payer:
        """Read the file into the staging tables; returns the payer its rates are filed under."""
        try:
            self._read_all()
            if self.references_first and self.needed_references:
                if self.held_references is not None:
                    self._read_held_references(*self.held_references)
                else:
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
            if is_url(self.path):
                raise IngestError(f"cannot read: {exc}", where=self.path) from None
            raise unreadable(Path(self.path), exc) from None

    @contextmanager
    def _reader(self, *, report_progress: bool) -> Iterator[tuple[RateFile, JsonReader]]:
        """A reader over the file. Most of in_network is skimmed or taken in runs of whole items (see
        ``JsonReader.select_elements``), so chunks go to the reader as read, indexed only when needed; a local
        file that is not gzip is read in this thread when few codes are wanted, straight into the skim's buffer."""
        rate_file = RateFile(self.path, chunk=SKIM_CHUNK if self.wanted is not None else None)
        local = rate_file.local_reads() if self.wanted is not None else None
        progress = self._progress if report_progress else None
        with closing(local) if local is not None else Prefetch(rate_file.chunks(), name="read") as chunks:
            on_chunk = (
                (lambda: progress(rate_file.bytes_read, self.staging.prices, rate_file.size)) if progress else None
            )
            reader = JsonReader(chunks, on_chunk=on_chunk, readinto=local.readinto if local is not None else None)
            if reader.at_end():
                raise IngestError("the file is empty", where=self.path)
            self._gzip = rate_file.gzip
            yield rate_file, reader

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
        self.bytes_stored = rate_file.bytes_read
        if not self.in_network_read:
            raise self._not_in_network("it has no in_network array")

    def _read_member(self, reader: JsonReader, key: str) -> None:
        if key == "in_network":
            self._read_in_network(reader)
        elif key == "provider_references":
            if self.in_network_read:
                self._read_references(reader)
            else:  # which references are needed is known after in_network: hold them, or read them again then
                self.references_first = True
                whole = reader.bounded_value(HELD_REFERENCES_BYTES)
                if whole is None or len(whole[0]) > HELD_REFERENCES_BYTES:
                    reader.skip_value()
                else:
                    self.held_references = (bytes(whole[0]), reader.pos)
                    reader.pos = whole[1]
        elif key in _HEADER_KEYS:
            value = reader.read_value(_loads)
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
        keeps = (lambda code: True) if wanted is None else (lambda code: _keeps(code, wanted))
        take = self._take_run if wanted is None else None
        pick = self._pick_item if wanted is not None else None
        try:
            for index, code in reader.select_elements("billing_code", keeps, _loads, skim=True, take=take, pick=pick):
                self._stage_picked()  # the items picked before this one
                self._offset, self._item_index, self._item_code = reader.pos, index, None
                if code is MISSING:
                    raise _BadRecord("", "an in_network item must be an object with a billing_code")
                if not isinstance(code, str) or not code.strip():
                    raise _BadRecord("billing_code", f"must be a non-empty string, got {code!r}")
                self._item_code = code.strip().upper()
                if not self._typed_item(reader, self._item_code):
                    self._read_item(reader, self._item_code)
                self.items_kept += 1
        except (JsonFormatError, TruncatedGzip, CorruptGzip) as exc:
            self._stage_picked()  # picked before the error, earlier in the file: an error of theirs comes first
            if isinstance(exc, JsonFormatError) and reader.element_index != self._item_index:  # in an item stepped over
                self._item_index, self._item_code = reader.element_index, None
            raise
        self._stage_picked()
        self.items_skipped = reader.element_index - self.items_kept
        if not reader.element_index:
            raise JsonFormatError("in_network is empty: the file holds no rates", reader.pos)
        self._item_index = self._item_code = None
        self.in_network_read = True

    def _take_run(self, data: bytes) -> int | None:
        """Stage a run of whole items (every code wanted) through the typed decode; None: the reader reads them."""
        taken = self._typed.stage_run(data)
        if taken:
            self.items_kept += taken
        return taken

    def _pick_item(self, data: bytes, code: str, index: int, offset: int) -> bool:
        """Take a wanted item a skim found whole (few codes wanted; ``index`` and ``offset``: its place), to be
        staged with the items picked after it (``_stage_picked``); False (nothing taken) when the loop above must
        read it. Staged together, after the skim, the typed decode of the few wanted items finds its code and data
        in the CPU caches (measured: half the CPU of staging each amid the skim)."""
        code = code.strip().upper()
        if not code or len(data) > WHOLE_ITEM_BYTES:
            return False
        self._picked.append((data, code, index, offset))
        self._picked_bytes += len(data)
        if self._picked_bytes > WHOLE_ITEM_BYTES:
            self._stage_picked()
        return True

    def _stage_picked(self) -> None:
        """Stage the items picked (``_pick_item``), in order, through the typed decode, as ``_typed_item`` does; one
        it cannot vouch for is read by the checking parser from its bytes, which names what is wrong."""
        for data, code, index, offset in self._picked:
            self._offset, self._item_index, self._item_code = offset, index, code
            if not self._typed.stage_item(data, code):
                try:
                    self._read_item(reader_of(data, offset), code)
                except JsonFormatError as exc:  # named here: the loop above names the item it is at
                    raise self._error(exc.message, exc.offset) from None
            self.items_kept += 1
        self._picked.clear()
        self._picked_bytes = 0

    def _typed_item(self, reader: JsonReader, code: str) -> bool:
        """Stage the item at the cursor through the typed decode when it is whole within WHOLE_ITEM_BYTES and the
        decode vouches for it (the cursor then moves past it)."""
        whole = reader.bounded_value(WHOLE_ITEM_BYTES)
        if whole is None or not self._typed.stage_item(bytes(whole[0]), code):
            return False
        reader.pos = whole[1]
        return True

    def _add_rate(self, item_seq: int, targets: list[tuple], prices: list[tuple]) -> None:
        for target in targets:
            if target[3] is not None:
                self.needed_references.add(target[3])
        self.staging.add_rate(item_seq, targets, prices)

    def _read_item(self, reader: JsonReader, code: str) -> None:
        """Read a wanted item member by member, one negotiated_rates element at a time (items can be huge)."""
        header: dict[str, Any] = {}
        item_seq: int | None = None
        early_rates: list[tuple[int, Any]] = []  # rates before the item's own fields (unusual member order)
        has_rates = False
        for key in reader.iter_members():
            if key == "negotiated_rates":
                has_rates = True
                if reader.peek() != ord("["):
                    raise _BadRecord("negotiated_rates", "must be an array")
                for index in reader.iter_elements():
                    self._offset = reader.pos
                    if item_seq is None and header.keys() >= _ITEM_KEYS:
                        item_seq = self._add_item(code, header)
                    if item_seq is not None and self._typed_element(reader, item_seq):
                        continue
                    rate = reader.read_value(_loads)
                    if item_seq is None:
                        early_rates.append((index, rate))
                    else:
                        self._stage_rate(item_seq, rate, index)
            elif key in _ITEM_KEYS:
                header[key] = reader.read_value(_loads)
            else:
                reader.skip_value()
        if not has_rates:
            raise _BadRecord("negotiated_rates", "missing")
        if item_seq is None:
            item_seq = self._add_item(code, header)
        for index, rate in early_rates:
            self._stage_rate(item_seq, rate, index)

    def _typed_element(self, reader: JsonReader, item_seq: int) -> bool:
        """Stage the negotiated_rates element at the cursor through the typed decode, as ``_typed_item``."""
        whole = reader.bounded_value(WHOLE_ITEM_BYTES)
        if whole is None or not self._typed.stage_rate(bytes(whole[0]), item_seq):
            return False
        reader.pos = whole[1]
        return True

    def _add_item(self, code: str, header: dict[str, Any]) -> int:
        item = _item(code, header)
        return self.staging.add_item(item.code, item.code_type, item.arrangement, item.name)

    def _stage_rate(self, item_seq: int, rate: Any, index: int) -> None:
        field = f"negotiated_rates[{index}]"
        if not isinstance(rate, dict):
            raise _BadRecord(field, "must be an object")
        prices = rate.get("negotiated_prices")
        if not isinstance(prices, list) or not prices:
            raise _BadRecord(f"{field}.negotiated_prices", "must be a non-empty array")
        targets = self._targets(rate, field)
        checked: list[tuple] = [_price(price, f"{field}.negotiated_prices[{i}]") for i, price in enumerate(prices)]
        self._add_rate(item_seq, targets, checked)

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
            reference = _reference_id(value, f"{field}.provider_group_id")
            whole = reader.bounded_value(WHOLE_ITEM_BYTES)
            if whole is not None and self._typed.stage_reference(bytes(whole[0]), reference):
                self.defined_references.add(reference)
                reader.pos = whole[1]
                continue
            self._define_reference(reference, reader.read_value(_loads), field)

    def _read_held_references(self, data: bytes, offset: int) -> None:
        """provider_references held before in_network (its bytes, at ``offset`` of the file), read as
        ``_read_references`` reads it, but from msgspec instead of by indexing the array: decoded whole when it can
        vouch for every entry (``_stage_held_references``), else the ids and the bytes of the entries found in one
        msgspec pass (``held_elements``), each decoded alone. From an entry whose id is not an unsigned number or a
        plain string on, or when msgspec cannot vouch for the array, the reader reads it (for the entries defined
        by then are no longer needed), and says what is wrong."""
        if self._stage_held_references(data, offset):
            return
        elements = held_elements(data, "provider_group_id")
        for index, (start, entry, written) in enumerate(elements or ()):
            plain = _held_ids([written])
            if plain is None:
                break
            reference = plain[0]
            if not self._undefined_and_needed(reference):
                continue
            if self._typed.stage_reference(entry, reference):
                self.defined_references.add(reference)
                continue
            self._offset = offset + start
            value = reader_of(entry, offset + start).read_value(_loads)
            self._define_reference(reference, value, f"provider_references[{index}]")
        else:
            if elements is not None:
                return
        self._read_references(reader_of(data, offset))

    def _stage_held_references(self, data: bytes, offset: int) -> bool:
        """The provider_references held (see ``_read_held_references``): the ids of its entries found in two msgspec
        passes (``element_members``), and the entries the rates use decoded together (``held_references``), their
        groups staged at once, in the file's order; an entry without groups (a remote location) is defined from its
        decoded members as the checking parser defines it. False (nothing read) when msgspec cannot vouch for the
        array or for those entries, or an id is not an unsigned number or a plain string."""
        found = element_members(data, "provider_group_id")
        references = None if found is None else _held_ids(found[1])
        if found is None or references is None:
            return False
        used = []  # the index of the entry that defines each reference the rates use (the first)
        needed, defined = self.needed_references, set(self.defined_references)
        for index, reference in enumerate(references):
            if reference in needed and reference not in defined:
                defined.add(reference)
                used.append(index)
        entries = held_references(b"[" + b",".join(found[0][index] for index in used) + b"]")
        if entries is None:
            return False
        staged: list = []  # entries with groups, staged together until one without comes
        for index, entry in zip(used, entries, strict=True):
            reference = references[index]
            if entry.provider_groups:
                self.defined_references.add(reference)
                staged.append((reference, entry))
                continue
            self._typed.stage_references(staged)
            staged = []
            members = {name: getattr(entry, name) for name in ("network_name", "provider_groups", "location")}
            try:
                self._define_reference(
                    reference, {k: v for k, v in members.items() if v is not None}, f"provider_references[{index}]"
                )
            except _BadRecord:
                self._offset = offset + element_offset(data, index)
                raise
        self._typed.stage_references(staged)
        return True

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
        self.staging.add_reference(reference, networks, [tuple(g) for g in parsed])

    def _remote_groups(self, reference: str, url: str) -> list | None:
        """The provider groups of a remote reference file: the copy in provider_refs_dir, else fetched (once per
        URL) into refs_cache; None (unresolved) when offline or when the fetch fails."""
        local = _downloaded(self.provider_refs_dir, url)
        if local is None and self.refs_cache is not None and url not in self.remote_failed:
            try:
                local = cached(url, self.refs_cache)
            except CptpubError as exc:
                self.remote_failed[url] = exc.message
        if local is None:
            self.remote_unresolved[reference] = url
            return None
        groups = _reference_file_groups(local, url if self.provider_refs_dir is None else None)
        self.remote_resolved += 1
        return groups

    # -- results

    def warnings(self) -> list[str]:
        found: list[str] = []
        if self.remote_unresolved:
            listed = ", ".join(f"{ref} -> {url}" for ref, url in list(self.remote_unresolved.items())[:5])
            more = len(self.remote_unresolved) - 5
            how = (
                "the fetch failed: " + "; ".join(f"{url}: {why}" for url, why in list(self.remote_failed.items())[:3])
                if self.remote_failed
                else "Ingest without --offline to fetch them, or download the files and pass --provider-refs FOLDER"
            )
            found.append(
                f"{len(self.remote_unresolved)} provider reference(s) used by kept rates point at remote files "
                f"that were not resolved ({listed}{f', and {more} more' if more > 0 else ''}); their rates are "
                f"stored without provider groups. {how}."
            )
        missing = self.needed_references - self.defined_references
        if missing:
            listed = ", ".join(sorted(missing)[:10])
            found.append(f"provider reference(s) used by kept rates but not defined in the file: {listed}")
        if self.empty_references:
            listed = ", ".join(self.empty_references[:10])
            found.append(f"provider reference(s) with no provider groups: {listed}")
        return found

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
    if not math.isfinite(rate):
        raise _BadRecord(f"{field}.negotiated_rate", f"must be a finite number, got {_written(rate)}")
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
    if name is not None and not isinstance(name, str):
        raise _BadRecord(f"{field}.tin.business_name", f"must be a string, got {name!r}")
    # npi [0] is the schema's way of saying "no NPI"
    npi_count = sum(1 for npi in npis if npi not in (0, "0"))
    return _Group(f"{tin['type'].strip().lower()}:{tin['value'].strip()}", name, npi_count)


def _held_ids(raws: list[Any]) -> list[str] | None:
    """Each provider_group_id (its raw JSON) as the file writes it; None unless each is an unsigned number or a
    string without escapes, and at most MAX_NUMBER_CHARS long (a string with its quotes)."""
    if not raws:
        return []
    joined = b",".join(raws)
    if not joined.translate(None, b"0123456789.,"):  # valid JSON numbers of digits and points only: all plain
        written = joined.split(b",")
    else:
        written = list(map(bytes, raws))
        if not all(map(_PLAIN_ID.fullmatch, written)):
            return None
    if max(map(len, written)) > MAX_NUMBER_CHARS:
        return None
    try:
        return [text[1:-1].decode() if text[:1] == b'"' else text.decode() for text in written]
    except UnicodeDecodeError:
        return None


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


def _reference_file_groups(path: Path, url: str | None) -> list:
    """The provider_groups array of a provider-reference file (plain or gzip), streamed element by element.
    Errors name the URL it was fetched from (``url``) or the local file."""
    where = url or path
    groups: list = []
    try:
        with (
            Prefetch(RateFile(path).chunks(), name="read-refs") as chunks,
            Prefetch(index_chunks(chunks), name="index-refs") as indexed,
        ):
            reader = JsonReader(indexed)
            reader.skip_bom()
            if reader.peek() != ord("{"):
                raise IngestError("not a provider-reference file: its top level is not a JSON object", where=where)
            found = False
            for key in reader.iter_members():
                if key == "provider_groups" and reader.peek() == ord("["):
                    found = True
                    for _ in reader.iter_elements():
                        groups.append(reader.read_value(_loads))
                else:
                    reader.skip_value()
            if not reader.at_end():
                raise JsonFormatError("unexpected data after the end of the JSON document", reader.pos)
    except JsonFormatError as exc:
        raise IngestError(f"cannot read provider reference file: {exc}", where=where) from None
    except (TruncatedGzip, CorruptGzip, OSError) as exc:
        raise IngestError(f"cannot read provider reference file: {exc}", where=where) from None
    if not found:
        raise IngestError("not a provider-reference file: it has no provider_groups array", where=where)
    return groups


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
