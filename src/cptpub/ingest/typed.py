"""The fast path for kept in_network items (and the provider_references entries their rates use): a typed
msgspec decode of the item's bytes, staged as columns.

An item (or one negotiated_rates element of an item too large to hold) is decoded into Structs that accept only
the exact, common form of the schema: allowed values already trimmed and lower-case, every key a field the
schema names. Its values are then appended to the staging columns, a batch of items becoming one Arrow record
batch (``staging``), so no Python row object is built per price. When every code is kept, a run of whole items
(about a chunk of a minified file, cut by ``JsonReader.select_elements``) is decoded as one array and staged
column by column at once (``stage_run``): a price is its amount and the id of its terms (type, class, setting,
expiration date, service codes and modifiers; files repeat a few), found by one dictionary lookup of the tuple of
them (lists of codes decoded as tuples). The codes and expiration dates met before are decoded as msgspec
literals, one shared string each, so that tuple is hashed and compared without reading its strings; a run
holding a new one is decoded again with plain strings. Provider references are ids looked up by their bytes, so
the per-price Python work is a few attribute gathers and dictionary lookups.

Whatever the Structs cannot vouch for returns None and is read by the checking parser in ``tic``, which accepts
what the schema allows and names the field, item and byte of what it does not. msgspec keeps the last value of
a repeated key and skips keys it does not know, so the decode is trusted only when the item's bytes hold
exactly as many member names (colons outside strings: ``_members_are``) as the Structs have
fields set: a repeated key, a key the Structs do not know, or an explicit null makes the counts differ. Items
with a backslash (escapes, possibly a lone surrogate) take the checking parser too; so does a whole run, when
any of its items does.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from cptpub.ingest.jsonscan import MAX_NUMBER_CHARS, MAX_STRING_BYTES, RAW_ELEMENTS
from cptpub.ingest.staging import Staging, known_ids

_NUMBER = rb"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
_NOT_GIVEN = msgspec.Raw(b"")  # no JSON value is empty
_PLAIN_NUMBER_BYTES = b"0123456789.,"  # valid JSON made of only these, comma-separated: unsigned plain numbers
_TYPE = Literal["negotiated", "derived", "fee schedule", "percentage", "per diem"]
_CLASS = Literal["professional", "institutional", "both"]
_SETTING = Literal["inpatient", "outpatient", "both"]


class _Tin(msgspec.Struct, kw_only=True, gc=False):
    type: str
    value: str
    business_name: str | None = None


class _Group(msgspec.Struct, kw_only=True, gc=False):
    tin: _Tin
    npi: list[int | str] | None = None


class _Price(msgspec.Struct, kw_only=True, gc=False):
    # its terms first, lists of codes as tuples: read as one tuple with the other fields (``msgspec.structs.astuple``),
    # its first 6 are the terms (``_TERMS_OF``)
    negotiated_type: _TYPE
    billing_class: _CLASS
    setting: _SETTING | None = None
    expiration_date: str | None = None
    service_code: tuple[str, ...] | None = None
    billing_code_modifier: tuple[str, ...] | None = None
    negotiated_rate: float
    additional_information: str | None = None


class _Rate(msgspec.Struct, kw_only=True, gc=False):
    negotiated_prices: list[_Price]
    provider_groups: list[_Group] | None = None
    # the list's bytes (empty: not given): the ids of all rates are split at once (``_references``)
    provider_references: msgspec.Raw = _NOT_GIVEN


class _Code(msgspec.Struct, kw_only=True, gc=False):  # an element of bundled_codes / covered_services
    billing_code_type: str | None = None
    billing_code_type_version: str | None = None
    billing_code: str | None = None
    description: str | None = None


class _Item(msgspec.Struct, kw_only=True, gc=False):
    negotiation_arrangement: Literal["ffs", "bundle", "capitation"]
    name: str | None = None
    billing_code_type: str
    billing_code_type_version: str | None = None
    billing_code: str
    description: str | None = None
    severity_of_illness: str | None = None
    negotiated_rates: list[_Rate]
    bundled_codes: list[_Code] | None = None
    covered_services: list[_Code] | None = None


class _Reference(msgspec.Struct, kw_only=True, gc=False):  # a provider_references entry that lists its groups
    provider_group_id: msgspec.Raw
    network_name: list[str] | None = None
    provider_groups: list[_Group]


class _HeldReference(msgspec.Struct, kw_only=True, gc=False):  # an entry of a provider_references array held whole
    provider_group_id: msgspec.Raw
    network_name: list[str] | None = None
    provider_groups: list[_Group] | None = None
    location: str | None = None


_ITEM = msgspec.json.Decoder(_Item)
_HELD_REFERENCES = msgspec.json.Decoder(list[_HeldReference])
_RUN = msgspec.json.Decoder(list[_Item])
_REFERENCE = msgspec.json.Decoder(_Reference)
_RATES = msgspec.json.Decoder(_Rate)
_ITEM_OPTIONAL = ("name", "billing_code_type_version", "description", "severity_of_illness")
_CODE_FIELDS = ("billing_code_type", "billing_code_type_version", "billing_code", "description")
_RATES_OF = operator.attrgetter("negotiated_rates")
_PRICES_OF = operator.attrgetter("negotiated_prices")
_GROUPS_OF = operator.attrgetter("provider_groups")
_REFERENCES_OF = operator.attrgetter("provider_references")
_FIELDS_OF = msgspec.structs.astuple  # of a _Price, as a tuple
_TERMS_OF = operator.itemgetter(slice(0, 6))  # of those fields: type, class, setting, expiration, codes, modifiers
_AMOUNT_OF = operator.itemgetter(6)
_INFORMATION_OF = operator.itemgetter(7)
# The distinct terms of prices are known while there are fewer than TERMS_KEPT (then they start afresh); new ones
# are staged in the order of one number made of the ids of their texts, service codes and modifiers, each below _SPAN
TERMS_KEPT = 1 << 16
_SPAN = 1 << 21


# Codes and expiration dates are decoded as literals (Literal types of msgspec) while a file holds at most
# _LITERALS of them and no more than _LITERAL_MISSES runs had one the literals did not (decoded again with _RUN)
_LITERALS = 4096
_LITERAL_MISSES = 32
_NO_CODES: Any = tuple[()]  # an empty list of codes, while none is known


def _literal_run_decoder(codes: set[str], expirations: set[str]) -> msgspec.json.Decoder:
    """A decoder of runs like _RUN whose prices' service codes and modifiers are among ``codes`` and expiration
    dates among ``expirations``, each decoded as the one string the Literal type holds."""
    literal: Any = Literal
    code_list: Any = tuple[literal[tuple(sorted(codes))], ...] if codes else _NO_CODES  # type: ignore[misc]
    expiration: Any = literal[tuple(sorted(expirations))] | None if expirations else None
    price = _with_types(
        _Price, service_code=code_list | None, billing_code_modifier=code_list | None, expiration_date=expiration
    )
    rate = _with_types(_Rate, negotiated_prices=list[price])  # type: ignore[valid-type]
    item = _with_types(_Item, negotiated_rates=list[rate])  # type: ignore[valid-type]
    return msgspec.json.Decoder(list[item])  # type: ignore[valid-type]


def _with_types(struct: type[msgspec.Struct], **types: Any) -> type[msgspec.Struct]:
    """``struct`` (kw_only, gc=False) with some fields of other types."""
    fields = [
        (f.name, types.get(f.name, f.type)) if f.required else (f.name, types.get(f.name, f.type), f.default)
        for f in msgspec.structs.fields(struct)
    ]
    return msgspec.defstruct(struct.__name__, fields, kw_only=True, gc=False)


def _present(values: list) -> int:
    return len(values) - values.count(None)


class TypedItems:
    """Stages typed items into ``staging``, adding the provider references their rates use to ``references``."""

    def __init__(self, staging: Staging, references: set[str]):
        self.staging = staging
        self.references = references
        # the distinct terms of prices (``_TERMS_OF``) by their index, with their staged terms_seq and how many
        # optional terms they give at that index; ids of their texts (type, class, setting, expiration) and lists
        # of codes, which set the order new terms are staged in (``_add_terms``)
        self._terms: dict[tuple, int] = {}
        self._term_seqs = self._term_optional = np.empty(0, dtype=np.int64)
        self._texts: dict[tuple, int] = {}
        self._lists: dict[tuple[str, ...] | None, int] = {}
        self._forget_terms()
        # the service codes, modifiers and expiration dates of the terms met, and a run decoder taking them as
        # literals (None: to be made again when they change, ``_decoded_run``)
        self._codes: set[str] = set()
        self._expirations: set[str] = set()
        self._literals_changed = False
        self._literal_run: msgspec.json.Decoder | None = None
        self._literal_misses = 0

    def stage_run(self, data: bytes) -> int | None:
        """Stage a run of whole in_network items (``data``: the JSON array of them), items, prices and targets
        columns at once; returns how many, or None (none of them staged, though their terms and references may be:
        the checking parser reuses them) when the checking parser must read them. No string in the run can pass
        the string limit: a run shorter than it is taken, not a longer one."""
        if len(data) > MAX_STRING_BYTES or b"\\" in data:
            return None
        items = self._decoded_run(data)
        if items is None or not self._stage_items(items, [item.billing_code.strip().upper() for item in items], data):
            return None
        return len(items)

    def _stage_items(self, items: list[_Item], codes: list[str], data: bytes) -> bool:
        """Stage ``items`` (decoded from ``data``) under ``codes``; False (none of them staged) when the checking
        parser must read them."""
        code_types = [item.billing_code_type.strip() for item in items]
        if "" in codes or "" in code_types:
            return False
        members = 4 * len(items) + sum(_present([getattr(item, name) for item in items]) for name in _ITEM_OPTIONAL)
        for item in items:
            members += _code_members(item)
        rate_lists = list(map(_RATES_OF, items))
        rate_counts = list(map(len, rate_lists))
        columns = self._rate_columns(list(itertools.chain.from_iterable(rate_lists)), data)
        if columns is None or not _members_are(data, members + columns[0]):
            return False
        first = self.staging.add_items(
            codes, code_types, [item.negotiation_arrangement for item in items], [item.name for item in items]
        )
        self._stage(np.repeat(np.arange(first, first + len(items), dtype=np.int64), rate_counts), columns)
        return True

    def _decoded_run(self, data: bytes) -> list[_Item] | None:
        """The items of a run, decoded with the codes and expiration dates of prices met before as literals (one
        shared string each: their terms are then hashed and compared at once) while a few distinct ones are met;
        with any string (``_RUN``) when that fails, or else when they are many. None: not valid as _Item."""
        decoder = self._literal_run
        if decoder is None and self._literals_changed and self._literal_misses <= _LITERAL_MISSES:
            decoder = self._literal_run = _literal_run_decoder(self._codes, self._expirations)
        self._literals_changed = False
        if decoder is not None:
            try:
                return decoder.decode(data)
            except _ERRORS:
                pass
        try:
            items = _RUN.decode(data)
        except _ERRORS:
            return None  # not valid as _Item at all: no string of it is new
        if decoder is not None:
            self._literal_misses += 1
        return items

    def stage_item(self, data: bytes, code: str) -> bool:
        """Stage a whole in_network item (its bytes); False (nothing staged) when the checking parser must read it."""
        if b"\\" in data:
            return False
        try:
            item = _ITEM.decode(data)
        except _ERRORS:
            return False
        return self._stage_items([item], [code], data)

    def stage_rate(self, data: bytes, item_seq: int) -> bool:
        """Stage one negotiated_rates element (its bytes) of item ``item_seq``; False as for ``stage_item``."""
        if b"\\" in data:
            return False
        try:
            rate = _RATES.decode(data)
        except _ERRORS:
            return False
        columns = self._rate_columns([rate], data)
        if columns is None or not _members_are(data, columns[0]):
            return False
        self._stage(item_seq, columns)
        return True

    def stage_reference(self, data: bytes, reference: str) -> bool:
        """Stage the provider groups of a provider_references entry (its bytes) as those of ``reference``; False
        (nothing staged) when the checking parser must read it, an entry with a remote location among others."""
        if b"\\" in data:
            return False
        try:
            entry = _REFERENCE.decode(data)
        except _ERRORS:
            return False
        groups = entry.provider_groups
        if not groups:
            return False
        members = 2 + (entry.network_name is not None) + _group_members(groups)
        if not _members_are(data, members):
            return False
        self._stage_groups([reference], [entry.network_name], [groups])
        return True

    def stage_references(self, entries: list[tuple[str, _HeldReference]]) -> None:
        """Stage the provider groups of entries of a provider_references array held whole (``held_references``),
        each with groups, as those of the reference given with it."""
        if entries:
            references, held = zip(*entries, strict=True)
            self._stage_groups(references, [e.network_name for e in held], [e.provider_groups for e in held])

    def _stage_groups(self, references: Sequence[str], networks: list, groups_of: list) -> None:
        """The "refs" rows of provider references: of each, its network names and provider groups (a list)."""
        counts = list(map(len, groups_of))
        self.staging.extend(
            "refs",
            [
                list(itertools.chain.from_iterable(map(itertools.repeat, references, counts))),
                list(itertools.chain.from_iterable(map(itertools.repeat, networks, counts))),
                *_group_columns([g for groups in groups_of for g in groups]),
            ],
        )

    def _rate_columns(self, rates: list[_Rate], data: bytes) -> tuple[int, list, list] | None:
        """(member names the rates hold, target columns without seqs, price columns without rate_seq), rate by
        rate, ``data`` the bytes they were decoded from (a member name absent from them need not be looked for);
        None when something needs the checking parser."""
        price_lists = list(map(_PRICES_OF, rates))
        price_counts = np.fromiter(map(len, price_lists), dtype=np.int64, count=len(rates))  # arrays: NumPy
        if 0 in price_counts:  # takes a list element by element each time
            return None
        found = _references(list(map(_REFERENCES_OF, rates)))
        if found is None:
            return None
        reference_counts, reference_keys, given = found
        reference_counts = np.asarray(reference_counts, dtype=np.int64)
        members = len(rates) + given
        if b'"provider_groups"' in data:
            groups = list(map(_GROUPS_OF, rates))
            members += _present(groups)
            group_counts = np.array([len(g) if g else 0 for g in groups], dtype=np.int64)
            if 0 in group_counts + reference_counts:
                return None
        elif 0 in reference_counts:
            return None
        else:
            groups, group_counts = [], np.zeros(len(rates), dtype=np.int64)
        # targets, per rate: its provider groups, then its references
        flat_groups = [g for gs in groups if gs for g in gs]
        members += _group_members(flat_groups)
        group_keys, names, npi_counts = _group_columns(flat_groups)
        reference_ids, new_references = self.staging.reference_seqs(reference_keys)
        self.references.update(new_references)
        prices = list(map(_FIELDS_OF, itertools.chain.from_iterable(price_lists)))  # a tuple's items: read at once
        terms_seqs, terms_members = self._terms_of(prices)
        amounts = np.fromiter(map(_AMOUNT_OF, prices), dtype=np.float64, count=len(prices))
        members += len(prices) * 3 + terms_members  # type, rate and class, and the optional terms
        if b'"additional_information"' in data:
            members += _present(list(map(_INFORMATION_OF, prices)))
        targets = (group_counts, group_keys, names, npi_counts, reference_counts, reference_ids)
        return members, list(targets), [price_counts, terms_seqs, amounts]

    def _terms_of(self, prices: list[tuple]) -> tuple[np.ndarray, int]:
        """The staged terms_seq of each price (its fields, ``_FIELDS_OF``), and how many optional terms they give
        (setting, expiration, service codes, modifiers)."""
        if max(len(self._texts), len(self._lists), len(self._terms)) + 2 * len(prices) >= TERMS_KEPT:
            self._forget_terms()
        terms = list(map(_TERMS_OF, prices))
        found = known_ids(self._terms, terms)
        if found is None:
            self._add_terms(terms)
            found = known_ids(self._terms, terms)
            assert found is not None  # every price's terms have an index now
        return self._term_seqs[found], int(self._term_optional[found].sum())

    def _add_terms(self, terms: list[tuple]) -> None:
        """Stage the terms among ``terms`` (those of prices, in order) that are new, in the order of the numbers
        of their ids: texts and lists of codes numbered as first met, service codes before modifiers."""
        known = self._terms
        new = list(dict.fromkeys(term for term in terms if term not in known))
        for term in new:
            self._texts.setdefault(term[:4], len(self._texts))
        for at in (4, 5):  # each a list of codes or None (numbered 0)
            for term in new:
                self._lists.setdefault(term[at], len(self._lists))
        lists = self._lists
        numbers = [(self._texts[term[:4]] * _SPAN + lists[term[4]]) * _SPAN + lists[term[5]] for term in new]
        seqs, optional = [], []
        for at in sorted(range(len(new)), key=numbers.__getitem__):
            term = new[at]
            kind, billing_class, setting, expiration, place_codes, modifier_codes = term
            self._learn(expiration, place_codes, modifier_codes)
            known[term] = len(known)
            seqs.append(self.staging.terms_seq((modifier_codes, kind, billing_class, setting, place_codes, expiration)))
            optional.append(4 - (setting, expiration, place_codes, modifier_codes).count(None))
        self._term_seqs = np.concatenate((self._term_seqs, np.array(seqs, dtype=np.int64)))
        self._term_optional = np.concatenate((self._term_optional, np.array(optional, dtype=np.int64)))

    def _learn(self, expiration: str | None, *code_lists: tuple[str, ...] | None) -> None:
        """Note the strings of new terms: the literal run decoder is made again when they are new to it."""
        codes = self._codes
        size = len(codes) + len(self._expirations)
        if size > _LITERALS:  # too many for literals: _RUN decodes the runs from now on
            self._literal_misses = _LITERAL_MISSES + 1
            self._literal_run = None
            return
        if expiration is not None:
            self._expirations.add(expiration)
        for code_list in code_lists:
            if code_list:
                codes.update(code_list)
        if len(codes) + len(self._expirations) != size:
            self._literals_changed, self._literal_run = True, None

    def _forget_terms(self) -> None:
        """Start the terms and the ids of texts and lists afresh (each below _SPAN, whatever a file holds)."""
        self._terms.clear()
        self._term_seqs = self._term_optional = np.empty(0, dtype=np.int64)
        self._texts.clear()
        self._lists.clear()
        self._lists[None] = 0

    def _stage(self, item_seqs: int | np.ndarray, columns: tuple[int, list, list]) -> None:
        _, targets, prices = columns
        group_counts, group_keys, names, npi_counts, reference_counts, reference_ids = targets
        price_counts, terms_seqs, amounts = prices
        staging = self.staging
        staging.add_rates(
            item_seqs,
            price_counts,
            terms_seqs,
            amounts,
            group_counts,
            staging.group_seqs(group_keys, names, npi_counts) if group_keys else [],
            reference_counts,
            reference_ids,
        )


def held_references(data: bytes) -> list[_HeldReference] | None:
    """The entries of a provider_references array (``data``, held in memory), decoded in one pass; None when the
    decode cannot vouch for them (the checking parser then reads the array): not valid JSON, an entry not of the
    form ``_HeldReference`` declares, a backslash, or a member name the entries do not hold (unknown, repeated, or
    with a null value), found by counting the array's member names."""
    if b"\\" in data:
        return None
    try:
        entries = _HELD_REFERENCES.decode(data)
    except _ERRORS:
        return None
    members = len(entries) + sum(
        _present(list(map(operator.attrgetter(name), entries)))
        for name in ("network_name", "provider_groups", "location")
    )
    members += _group_members([g for e in entries if e.provider_groups for g in e.provider_groups])
    # the colons of remote locations' URLs are in strings: taken off, counting colons settles it more often
    located = sum(e.location.count(":") for e in entries if e.location)
    return entries if _members_are(data, members, in_strings=located) else None


def _group_columns(groups: list[_Group]) -> tuple[list[str], list[str | None], list[int]]:
    """Each provider group's key ('ein:11-1111111'), business name and number of NPIs (a 0 is not one)."""
    tins = [g.tin for g in groups]
    npi_counts = [len(n) - n.count(0) - n.count("0") if (n := g.npi) else 0 for g in groups]
    return [f"{t.type.strip().lower()}:{t.value.strip()}" for t in tins], [t.business_name for t in tins], npi_counts


def _group_members(groups: list[_Group]) -> int:
    """The member names of provider groups: tin, its type and value, and the optional npi and business_name."""
    return 3 * len(groups) + _present([g.npi for g in groups]) + _present([g.tin.business_name for g in groups])


def _member_names(data: bytes) -> int:
    """The member names in ``data`` (valid JSON without a backslash): its colons outside strings, which are those
    after an even number of quotes (a colon inside a string is not a name's, so ``data.count(b":")`` may be more)."""
    text = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(text == ord('"'))
    return int(np.count_nonzero(np.searchsorted(quotes, np.flatnonzero(text == ord(":"))) % 2 == 0))


def _members_are(data: bytes, members: int, *, in_strings: int = 0) -> bool:
    """Whether ``data`` (valid JSON without a backslash) holds exactly ``members`` member names. Each name is
    followed by a colon, so counting colons settles it when the strings hold none but the ``in_strings`` known;
    otherwise only the colons outside strings are counted (slower: ``_member_names``). Counting '":' would miss a
    name written with a space before its colon, which could make up for a repeated key."""
    return _colons(data) - in_strings == members or _member_names(data) == members


def _colons(data: bytes) -> int:
    """The colons in ``data``: counted by NumPy (vectorised, about 4x bytes.count) unless it is small."""
    if len(data) < 1 << 16:
        return data.count(b":")
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord(":")))


def _code_members(item: _Item) -> int:
    """The member names of an item's bundled_codes and covered_services."""
    members = 0
    for codes in (item.bundled_codes, item.covered_services):
        if codes is not None:
            members += 1 + sum(_present([getattr(c, name) for c in codes]) for name in _CODE_FIELDS)
    return members


def _references(raws: list[msgspec.Raw]) -> tuple[np.ndarray | list[int], list[bytes], int] | None:
    """Per rate, its number of provider references (0: none given); each reference's key, rate after rate (see
    ``_reference_keys``); and how many rates give the field. None when a list given is not one of ids."""
    if not raws:
        return np.zeros(0, dtype=np.int64), [], 0
    found = _plain_references(b"\0".join(raws))  # Raw is a buffer: joined without a copy of each
    if found is not None:
        return found
    counts, keys = [], []
    for raw in raws:
        if not raw:
            counts.append(0)
            continue
        try:
            ids = RAW_ELEMENTS.decode(raw)
        except _ERRORS:
            return None
        more = _reference_keys(ids)
        if more is None:
            return None
        counts.append(len(more))
        keys += more
    return counts, keys, sum(1 for raw in raws if raw)  # an empty list given is given


def _plain_references(joined: bytes) -> tuple[np.ndarray, list[bytes], int] | None:
    """``_references`` when every list given (``joined``, separated by NUL bytes, which no JSON text holds) is flat,
    of unsigned numbers without exponent (None otherwise): split and counted at once, without an object per id."""
    cleaned = joined.translate(None, b" \t\n\r\0")  # whitespace: only between values, as no string is in
    if cleaned.translate(None, b"[]" + _PLAIN_NUMBER_BYTES):  # a string, a negative number, null, an object...
        return None
    text = np.frombuffer(joined, dtype=np.uint8)
    bounds = np.flatnonzero(text == 0)
    starts, ends = np.concatenate(([0], bounds + 1)), np.append(bounds, len(joined))
    given = ends > starts
    if (
        cleaned.count(b"[") != np.count_nonzero(given)  # each valid value given holds one '[': a flat list
        or not np.all(text[starts[given]] == ord("["))
        or not np.all(text[ends[given] - 1] == ord("]"))
    ):
        return None
    chars = np.frombuffer(cleaned, dtype=np.uint8)
    opens, closes = np.flatnonzero(chars == ord("[")), np.flatnonzero(chars == ord("]"))
    commas = np.cumsum(chars == ord(","), dtype=np.int32)  # int32: a tenth of the time of int64 (the default)
    counts = np.zeros(len(starts), dtype=np.int64)
    counts[given] = np.where(closes - opens == 1, 0, commas[closes] - commas[opens] + 1)
    body = cleaned.replace(b"[]", b"").translate(None, b"[").replace(b"]", b",")[:-1]
    keys = body.split(b",") if body else []
    # an id is shorter than its list: measured one by one only when some list is longer than an id may be
    if keys and int((ends - starts).max()) > MAX_NUMBER_CHARS + 2 and max(map(len, keys)) > MAX_NUMBER_CHARS:
        return None
    return counts, keys, len(opens)


def _reference_keys(raws: list[msgspec.Raw]) -> list[bytes] | None:
    """Each provider_group_id as the file writes it (UTF-8): an unsigned number's text or a string's value; None
    when one is anything else (the checking parser says what)."""
    if not raws:
        return []
    joined = b",".join(raws)  # Raw is a buffer: joined without a copy of each
    if not joined.translate(None, _PLAIN_NUMBER_BYTES):  # valid JSON values: unsigned numbers without exponent
        keys = joined.split(b",")
        if max(map(len, keys)) <= MAX_NUMBER_CHARS:
            return keys
    found = []
    for raw in map(bytes, raws):
        if raw[:1] == b'"':
            try:
                found.append(msgspec.json.decode(raw, type=str).encode())
            except _ERRORS:
                return None
        elif len(raw) <= MAX_NUMBER_CHARS and re.fullmatch(_NUMBER, raw):
            found.append(raw)
        else:
            return None
    return found
