"""A forward-only JSON reader for documents far larger than memory, that skips what it is not asked for cheaply.

Each chunk is indexed with a few vectorised numpy passes: the positions of the brackets that lie outside strings
and the nesting depth after each. With that index the reader finds where any object or array ends without
tokenising its contents, so skipping a value costs about as much as reading its bytes once; only the values the
caller asks for go through ``json.loads``. The window of bytes kept in memory starts at the value being read,
so memory stays flat however large the document is.

Skipped values are checked for balanced brackets and closed strings only; values that are read are fully parsed.
Offsets are absolute positions in the (decompressed) document.

Chunks may also be given as plain bytes: the reader then indexes them itself as they arrive, which lets
``select_elements(..., skim=True)`` step over long runs of unwanted array elements without indexing them at all
(msgspec parses each run as one JSON array, at about the speed of reading it; see ``_skim``). Skimmed elements are
fully checked as JSON (their UTF-8 excepted, which msgspec does not check in what it skips), nesting included up to
msgspec's own limit (about 1,000 levels) rather than ``MAX_DEPTH``; so are the elements of a run msgspec refuses,
one by one, as the indexed reader steps over them, so that the one at fault is named.

Limits, checked as the bytes are indexed or read, each failing with a ``JsonFormatError`` that names it:
nesting deeper than ``MAX_DEPTH`` levels, a string longer than ``MAX_STRING_BYTES`` bytes, a number longer than
``MAX_NUMBER_CHARS`` characters. Also refused: the non-JSON literals NaN and Infinity, a lone UTF-16 surrogate
escape (``\\ud800``), and an object that repeats a key (in the values this reader reads). Time stays linear in
the size of the document.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import GenericAlias
from typing import Any, NamedTuple

import msgspec
import numpy as np

_QUOTE, _BACKSLASH, _OPEN, _CLOSE = 0x22, 0x5C, 0x7B, 0x7D  # '{' | 0x20 and '[' | 0x20 are both 0x7B
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
_MEMBER_VALUE = rb'\s*:\s*(?:("[^"\\]*(?:\\.[^"\\]*)*"|[^\s,}\]{\[][^\s,}\]]*)|(?=[{\[]))'
_SEPARATOR = re.compile(rb"[ \t\r\n]*,[ \t\r\n]*")
# room after a key found by peek_member for its value to be complete in the window
_PEEK_MARGIN = 4096
_LONGEST_SCALAR = 400  # a number or literal cut by the window's end is read on, not reported


MAX_DEPTH = 64  # TiC files nest about 8 deep
MAX_STRING_BYTES = 16 << 20
MAX_NUMBER_CHARS = 100

MISSING = object()  # select_elements / peek_member: the object has no such member
RAW_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_ELEMENT = msgspec.json.Decoder(msgspec.Raw)
_MSGSPEC_ERROR = re.compile(r"(?:JSON is malformed: )?(.*?)(?: \(byte (\d+)\))?", re.DOTALL)  # message, offset
_SKIM_KEY_BYTES = 256  # an element's first member name, to recognise where the next one opens
_SKIM_WINDOW = 16 << 20  # a skim reads on at most this far for the next element's opening
_SKIM_READ = 256 << 10  # bytes a skim reads at a time: the run msgspec checks stays in a core's L2 cache
_SKIM_ROOM = 4 * _SKIM_READ  # a skim's buffer: room for several reads before the bytes left are moved to its front
_SKIM_RETRY = 64  # elements read by the index before a skim that found nothing is tried again

# an escaped UTF-16 surrogate without its partner (after an even run of backslashes: not itself escaped)
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<![dD][89abAB][0-9a-fA-F]{2})(?<!\\)(?:\\\\)*\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class NotJson(ValueError):
    """A value the JSON standard does not allow, raised from a decoder hook."""


def refuse_constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value")


def checked_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise NotJson(number_too_long(len(text)))
    return int(text)


def number_too_long(length: int) -> str:
    return f"a number of {length:,} characters: longer than the limit of {MAX_NUMBER_CHARS}"


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: an object as a dict, refusing a repeated key."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise NotJson(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return found


def check_surrogates(raw: bytes, offset: int) -> None:
    """Refuse a lone surrogate escape (not Unicode text: a store cannot hold it)."""
    if b"\\u" in raw:
        match = _LONE_SURROGATE.search(raw)
        if match:
            escape = match.group().lstrip(b"\\").decode()
            raise JsonFormatError(f"a lone UTF-16 surrogate (\\{escape}) in a string: not Unicode text", offset)


_STRICT = json.JSONDecoder(parse_constant=refuse_constant, parse_int=checked_int, object_pairs_hook=unique_keys)


def strict_loads(raw: bytes) -> Any:
    """``json.loads`` refusing what JSON does not allow (NaN, repeated keys) and numbers beyond the limit."""
    return _STRICT.decode(raw.decode("utf-8"))


def _after_whitespace(buf: bytes, at: int) -> int:
    match = _WHITESPACE.match(buf, at)
    return match.end() if match else at  # the pattern matches the empty string: always a match


def _member_pattern(key: str) -> re.Pattern:
    """A member ``key`` and its scalar value (group 1; None when the value is an object or array)."""
    pattern = _MEMBER_PATTERNS.get(key)
    if pattern is None:
        pattern = _MEMBER_PATTERNS[key] = re.compile(b'"' + re.escape(key.encode()) + b'"' + _MEMBER_VALUE)
    return pattern


_MEMBER_PATTERNS: dict[str, re.Pattern] = {}


class _Member:
    """The type of the member a skim reads: msgspec hands each value to the skim's hook (see ``_skim``)."""


_FOUND = _Member()


def _elements_type(key: str) -> Any:
    """An array of objects whose member ``key`` is required, their other members checked as JSON and skipped."""
    elements = _ELEMENTS_TYPES.get(key)
    if elements is None:
        element = msgspec.defstruct("Element", [("value", _Member)], rename={"value": key})
        elements = _ELEMENTS_TYPES[key] = GenericAlias(list, (element,))
    return elements


_ELEMENTS_TYPES: dict[str, Any] = {}


def _raw_lengths(view: memoryview) -> list[int]:
    return [len(raw) for raw in RAW_ELEMENTS.decode(view)]


def _decode_run(run: bytearray, begin: int, cut: int, decode: Callable[[memoryview], Any]) -> Any:
    """``decode`` of run[begin:cut + 1] as a JSON array (run[begin] is '[', run[cut + 1] the comma after its last
    element); None when it is not valid JSON. The bytes are as they were afterwards."""
    run[cut + 1] = 0x5D  # ']' for the ',' after the cut
    try:
        with memoryview(run) as whole, whole[begin : cut + 2] as view:
            return decode(view)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    finally:
        run[cut + 1] = 0x2C


class JsonFormatError(Exception):
    """The document is not valid JSON (or ends early) at ``offset``."""

    def __init__(self, message: str, offset: int):
        self.message = message
        self.offset = offset
        super().__init__(f"{message} (byte {offset:,})")


@dataclass
class _ScanState:
    """What one chunk's index needs from the chunks before it."""

    depth: int = 0
    in_string: int = 0  # 1 when the previous chunk ended inside a string
    trailing_backslashes: int = 0  # backslashes ending the previous chunk (they may escape a leading quote)
    string_start: int = 0  # absolute offset of the quote opening the string the previous chunk ended in


def _escaped_quotes(chunk: bytes, arr: np.ndarray, carried: int) -> np.ndarray:
    """Positions of the quotes in ``chunk`` preceded by an odd run of backslashes (escaped: not delimiters).

    ``carried`` backslashes ended the previous chunk and continue a run at this chunk's start."""
    starts_escaped = carried % 2 == 1 and chunk[:1] == b'"'
    if chunk.find(b"\\") < 0:  # one memchr pass: most chunks of rate files have no backslash at all
        return np.array([0] if starts_escaped else [], dtype=np.int64)
    backslashes = np.flatnonzero(arr[:-1] == _BACKSLASH)
    quotes = backslashes[arr[backslashes + 1] == _QUOTE] + 1
    runs = np.ones(len(quotes), dtype=np.int64)
    active = np.ones(len(quotes), dtype=bool)
    while active.any():  # one vectorised pass per backslash of the longest run: runs are short
        before = quotes - runs - 1
        runs[active & (before == -1)] += carried  # the run began in the previous chunk
        active &= before >= 0
        active[active] = arr[before[active]] == _BACKSLASH
        runs[active] += 1
    escaped = quotes[runs % 2 == 1]
    return np.concatenate(([0], escaped)) if starts_escaped else escaped


@dataclass(frozen=True)
class _ChunkScan:
    """The part of a chunk's index that does not depend on the chunks before it (computed in parallel)."""

    structural: np.ndarray  # positions of the quotes and brackets (escaped quotes included, with kind 0)
    kinds: np.ndarray  # the byte at each, '[' folded onto '{' and ']' onto '}'
    quote_parity: np.ndarray  # 1 where an odd number of quotes precede (or are) the structural byte
    lead: int  # backslashes opening the chunk: a run carried in from the previous chunk continues them


def _scan(chunk: bytes, carried_backslashes: int = 0) -> _ChunkScan:
    arr = np.frombuffer(chunk, dtype=np.uint8)
    folded = arr | 0x20  # folds '[' onto '{' and ']' onto '}'
    structural = np.flatnonzero((arr == _QUOTE) | (folded == _OPEN) | (folded == _CLOSE))
    kinds = folded[structural]
    escaped = _escaped_quotes(chunk, arr, carried_backslashes)
    if len(escaped):
        kinds[np.searchsorted(structural, escaped)] = 0  # neither a delimiter nor a bracket
    parity = np.cumsum(kinds == _QUOTE, dtype=np.uint8) & 1  # uint8 wraps; the parity survives
    lead = len(chunk) - len(chunk.lstrip(b"\\")) if chunk[:1] == b"\\" else 0
    return _ChunkScan(structural, kinds, parity, lead)


def index_chunk(
    chunk: bytes, offset: int, state: _ScanState, scan: _ChunkScan | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Absolute positions of the brackets outside strings in ``chunk`` and the depth after each; updates ``state``.

    ``scan`` is ``_scan(chunk)`` computed ahead; it assumed no backslash run carried into the chunk, so it is
    redone in the rare case that one is and a quote follows it."""
    if scan is None or (state.trailing_backslashes and chunk[scan.lead : scan.lead + 1] == b'"'):
        scan = _scan(chunk, state.trailing_backslashes)
    # a bracket is outside strings when the quotes before it, with a string carried in, are even
    is_bracket = (scan.quote_parity == state.in_string) & (scan.kinds > _QUOTE)
    brackets = scan.structural[is_bracket]
    steps = (scan.kinds[is_bracket] == _OPEN).view(np.int8) * np.int8(2) - np.int8(1)
    depths = np.cumsum(steps, dtype=np.int64)
    depths += state.depth
    if len(depths):
        lowest = int(np.argmin(depths))
        if depths[lowest] < 0:
            raise JsonFormatError("a closing bracket without its opening one", offset + int(brackets[lowest]))
        deepest = int(np.argmax(depths))
        if depths[deepest] > MAX_DEPTH:
            raise JsonFormatError(
                f"nesting deeper than the limit of {MAX_DEPTH} levels", offset + int(brackets[deepest])
            )
        state.depth = int(depths[-1])
    _check_string_lengths(scan, offset, len(chunk), state)
    if len(scan.quote_parity):
        state.in_string ^= int(scan.quote_parity[-1])
    run = len(chunk) - len(chunk.rstrip(b"\\")) if chunk[-1:] == b"\\" else 0
    state.trailing_backslashes = run + (state.trailing_backslashes if run == len(chunk) else 0)
    brackets += offset
    return brackets, depths


def _check_string_lengths(scan: _ChunkScan, offset: int, size: int, state: _ScanState) -> None:
    """Refuse a string longer than MAX_STRING_BYTES, as soon as the bytes read show it; keeps ``string_start``."""
    quotes = scan.structural[scan.kinds == _QUOTE] + offset
    if state.in_string:
        quotes = np.concatenate(([state.string_start], quotes))
    if len(quotes) >= 2:
        pairs = quotes[: len(quotes) // 2 * 2].reshape(-1, 2)
        lengths = pairs[:, 1] - pairs[:, 0] - 1
        longest = int(np.argmax(lengths))
        if lengths[longest] > MAX_STRING_BYTES:
            raise _string_too_long(int(pairs[longest, 0]))
    if len(quotes) % 2:
        state.string_start = int(quotes[-1])
        if offset + size - state.string_start > MAX_STRING_BYTES:
            raise _string_too_long(state.string_start)


def _string_too_long(offset: int) -> JsonFormatError:
    return JsonFormatError(f"a string longer than the limit of {MAX_STRING_BYTES >> 20} MiB", offset)


@dataclass(frozen=True)
class IndexedChunk:
    data: bytes
    brackets: np.ndarray  # absolute positions of the brackets outside strings
    depths: np.ndarray  # nesting depth after each


def index_chunks(chunks: Iterable[bytes], *, workers: int = 2) -> Iterator[IndexedChunk]:
    """Index consecutive chunks of one document. The bulk of the work (``_scan``) runs on ``workers`` chunks at
    once in threads (numpy releases the GIL); the part that depends on the chunks before runs in order."""
    state = _ScanState()
    offset = 0

    def placed(chunk: bytes, scan: Future[_ChunkScan]) -> IndexedChunk:
        nonlocal offset
        brackets, depths = index_chunk(chunk, offset, state, scan.result())
        offset += len(chunk)
        return IndexedChunk(chunk, brackets, depths)

    with ThreadPoolExecutor(workers, thread_name_prefix="scan") as pool:
        ahead: deque[tuple[bytes, Future[_ChunkScan]]] = deque()
        for chunk in filter(None, chunks):
            ahead.append((chunk, pool.submit(_scan, chunk)))
            if len(ahead) > workers:
                yield placed(*ahead.popleft())
        while ahead:
            yield placed(*ahead.popleft())


class HeldElement(NamedTuple):
    start: int  # the element's offset in the array's bytes
    data: bytes  # the element's bytes
    member: bytes  # the raw JSON value of the member asked for


def element_members(data: bytes, key: str) -> tuple[list[msgspec.Raw], list[msgspec.Raw]] | None:
    """The raw JSON of each element of the JSON array ``data`` (held in memory) and of its member ``key``, from two
    msgspec passes over the array rather than by indexing it. None when msgspec finds it not valid JSON or an
    element that is no object or has no such member, and when the member's name is written other than once per
    element (repeated, nested in a value, or as text in a string): a reader (``reader_of``) then reads it. Valid
    JSON is all this vouches for: the limits (``MAX_DEPTH``...) are checked where the bytes were indexed."""
    try:
        elements = RAW_ELEMENTS.decode(data)
        members = _members_decoder(key).decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if data.count(b'"' + key.encode() + b'"') != len(members):
        return None
    return elements, [member.value for member in members]


def held_elements(data: bytes, key: str) -> list[HeldElement] | None:
    """``element_members`` with each element's offset in ``data``, as bytes."""
    found = element_members(data, key)
    if found is None:
        return None
    elements, members = found
    return [
        HeldElement(at, bytes(element), bytes(member))
        for at, element, member in zip(_element_starts(data, elements), elements, members, strict=True)
    ]


def element_offset(data: bytes, index: int) -> int:
    """The offset in ``data`` (a valid JSON array held in memory) of its element ``index``."""
    return list(_element_starts(data, RAW_ELEMENTS.decode(data)[: index + 1]))[index]


def _element_starts(data: bytes, elements: list[msgspec.Raw]) -> Iterator[int]:
    """The offset in ``data`` (a valid JSON array held in memory) of each of ``elements``, its first elements' raw
    JSON, in order."""
    at = _after_whitespace(data, 1)  # data[0] is the array's '['
    for element in elements:
        yield at
        separator = _SEPARATOR.match(data, at + len(element))
        at = separator.end() if separator else at + len(element)  # after the last element: ']' is not matched


def _members_decoder(key: str) -> msgspec.json.Decoder:
    decoder = _MEMBERS_DECODERS.get(key)
    if decoder is None:
        element = msgspec.defstruct("Element", [("value", msgspec.Raw)], rename={"value": key})
        decoder = _MEMBERS_DECODERS[key] = msgspec.json.Decoder(list[element])  # type: ignore[valid-type]
    return decoder


_MEMBERS_DECODERS: dict[str, msgspec.json.Decoder] = {}


def reader_of(data: bytes, start: int) -> JsonReader:
    """A reader over one value held in memory, found at offset ``start`` of its document (for error offsets)."""
    brackets, depths = index_chunk(data, start, _ScanState())
    return JsonReader([IndexedChunk(data, brackets, depths)], start=start)


class JsonReader:
    """A cursor over one JSON document given as an iterable of byte chunks.

    Navigation: ``iter_members`` (keys of the object at the cursor), ``iter_elements`` (elements of the array at
    the cursor), ``select_elements`` (the elements whose member has a wanted value; the others are skipped in
    bulk), ``read_value`` (parse the value at the cursor), ``skip_value`` (step over it unparsed) and
    ``peek_member`` (a member's scalar value of the object at the cursor, without moving).

    ``readinto``, when given, reads the document's next bytes into a buffer, from where ``chunks`` has got to (and
    ``chunks`` goes on from where it stopped): a skim then reads the file straight into its run.
    """

    def __init__(
        self,
        chunks: Iterable[IndexedChunk | bytes],
        *,
        on_chunk: Callable[[], None] | None = None,
        start: int = 0,
        readinto: Callable[[memoryview], int] | None = None,
    ):
        self._chunks = iter(chunks)
        # reads the next bytes of the same document into a buffer (0 at its end), saving a skim a copy of each chunk
        self._readinto = readinto
        self._skim_buffer = bytearray()  # a skim's run (see _skim), kept for the next one
        self._given_back: list[bytes] = []  # bytes read but not used yet, read before the next chunk (last first)
        self._state = _ScanState()  # indexes chunks given as bytes, as they are read (see select_elements' skim)
        self._skimming = False  # the window past the cursor is not indexed
        self._on_chunk = on_chunk
        self.buf = b""
        self.base = start  # absolute offset of buf[0]
        self.pos = start  # absolute offset of the cursor
        self.eof = False
        self._brackets = np.empty(0, dtype=np.int64)
        self._depths = np.empty(0, dtype=np.int64)
        self._base_depth = 0  # depth at self.base
        self.element_index = 0  # see select_elements
        self._check_until = -1  # elements stepped over before this offset are checked as JSON (see _skim)
        self._at_depth_cache: dict[int, np.ndarray] = {}
        self._indices_cache: dict[int, np.ndarray] = {}
        # the last answers, asked again when a value is peeked into and then skipped
        self._last_depth = (-1, 0)
        self._last_close = (-1, 0)

    # --- the window --------------------------------------------------------------------------------------

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def _fill(self) -> bool:
        """Append the next chunk to the window, dropping the bytes before the cursor. False at the end."""
        if self.eof:
            return False
        chunk = self._given_back.pop() if self._given_back else next(self._chunks, None)
        if chunk is None:
            self.eof = True
            return False
        self._drop_before(self.pos)
        if isinstance(chunk, bytes):
            data = chunk
            if not self._skimming:
                self._append_index(*index_chunk(data, self.end, self._state))
        else:
            data = chunk.data
            self._append_index(chunk.brackets, chunk.depths)
        self.buf = b"".join((memoryview(self.buf), data)) if self.buf else data
        if self._on_chunk:
            self._on_chunk()
        return True

    def _append_index(self, brackets: np.ndarray, depths: np.ndarray) -> None:
        self._brackets = np.concatenate((self._brackets, brackets))
        self._depths = np.concatenate((self._depths, depths))
        self._at_depth_cache.clear()
        self._indices_cache.clear()

    def _index_from(self, offset: int, depth: int, until: int | None = None) -> None:
        """Index the window from ``offset``, an element's start at ``depth`` outside any string, dropping the bytes
        before it; the chunks read after it are indexed as they come. With ``until`` (the end of that element),
        the window ends there and the bytes after it are given back to be read as the next chunk, not indexed
        (``_skimming``): the caller indexes on from the next element when it does not skim it."""
        if until is not None and until < self.end:
            self._given_back.append(self.buf[until - self.base :])
            self.buf = self.buf[: until - self.base]
            self.eof = False
        self.buf = self.buf[offset - self.base :]
        self.base = offset
        self._state = _ScanState(depth=depth)
        self._base_depth = depth
        self._brackets = self._depths = np.empty(0, dtype=np.int64)
        self._at_depth_cache.clear()
        self._indices_cache.clear()
        self._last_depth = self._last_close = (-1, 0)
        self._skimming = False
        if self.buf:
            self._append_index(*index_chunk(self.buf, offset, self._state))
        self._skimming = until is not None

    def _drop_before(self, keep: int) -> None:
        cut = keep - self.base
        if cut <= 0:
            return
        i = int(np.searchsorted(self._brackets, keep))
        if i:
            self._base_depth = int(self._depths[i - 1])
            self._brackets = self._brackets[i:]
            self._depths = self._depths[i:]
        self.buf = self.buf[cut:]
        self.base = keep

    def _byte_at(self, offset: int) -> int:
        while offset >= self.end:
            if not self._fill():
                raise JsonFormatError("unexpected end of the document", self.end)
        return self.buf[offset - self.base]

    def depth_at(self, offset: int) -> int:
        """Nesting depth just before ``offset`` (which must be in the window)."""
        if self._last_depth[0] != offset:
            self._last_depth = (offset, self._depth_before(offset))
        return self._last_depth[1]

    def _depth_before(self, offset: int) -> int:
        i = int(np.searchsorted(self._brackets, offset))
        return int(self._depths[i - 1]) if i else self._base_depth

    def _indices_at_depth(self, depth: int) -> np.ndarray:
        """Indices in the window's bracket arrays of the brackets after which the depth is ``depth`` (cached)."""
        found = self._indices_cache.get(depth)
        if found is None:
            found = self._indices_cache[depth] = np.flatnonzero(self._depths == depth)
        return found

    def _at_depth(self, depth: int) -> np.ndarray:
        """Positions in the window of the brackets after which the depth is ``depth`` (cached per window)."""
        found = self._at_depth_cache.get(depth)
        if found is None:
            found = self._at_depth_cache[depth] = self._brackets[self._indices_at_depth(depth)]
        return found

    def _close_in_window(self, start: int, depth: int) -> int | None:
        """End (exclusive) of the object or array opening at ``start`` at ``depth``, if the window holds it."""
        if self._last_close[0] == start:
            return self._last_close[1]
        closes = self._at_depth(depth)
        i = int(np.searchsorted(closes, start, side="right"))
        if i == len(closes):
            return None
        self._last_close = (start, int(closes[i]) + 1)
        return self._last_close[1]

    # --- tokens ------------------------------------------------------------------------------------------

    def skip_bom(self) -> None:
        """Step over a UTF-8 byte order mark, which some writers put before the document."""
        self._byte_at(self.pos)
        if self.buf.startswith(b"\xef\xbb\xbf", self.pos - self.base):
            self.pos += 3

    def at_end(self) -> bool:
        """Whether only whitespace is left."""
        self.skip_ws()
        return self.eof and self.pos == self.end

    def skip_ws(self) -> None:
        while True:
            self.pos = self.base + _after_whitespace(self.buf, self.pos - self.base)
            if self.pos < self.end or not self._fill():
                return

    def peek(self) -> int:
        """The byte at the cursor after whitespace."""
        self.skip_ws()
        return self._byte_at(self.pos)

    def expect(self, char: bytes, what: str) -> None:
        if self.peek() != char[0]:
            raise self.error(f"expected {what}")
        self.pos += 1

    def error(self, message: str, offset: int | None = None) -> JsonFormatError:
        found = self._describe_at(self.pos if offset is None else offset)
        return JsonFormatError(f"{message}{found}", self.pos if offset is None else offset)

    def _describe_at(self, offset: int) -> str:
        if not self.base <= offset < self.end:
            return ""
        text = self.buf[offset - self.base : offset - self.base + 20].decode("utf-8", "replace")
        return f", found {text!r}"

    def _scalar_end(self, start: int) -> int:
        """End of the string, number or literal at ``start``."""
        is_string = self._byte_at(start) == _QUOTE
        pattern = _STRING if is_string else _SCALAR
        while True:
            match = pattern.match(self.buf, start - self.base)
            if match is not None and not is_string and match.end() + self.base - start > MAX_NUMBER_CHARS:
                raise JsonFormatError(number_too_long(match.end() + self.base - start), start)
            if match is not None and (is_string or match.end() < len(self.buf) or self.eof):
                return self.base + match.end()
            if not is_string and match is None and (self.eof or self.end - start >= _LONGEST_SCALAR):
                raise self.error("invalid JSON value", start)
            if not self._fill():
                if match is not None:
                    return self.base + match.end()
                raise self.error("unterminated string" if is_string else "invalid JSON value", start)

    def _value_end(self, start: int) -> int:
        """End of the value at ``start``; the window keeps the value (the cursor stays at ``start``)."""
        if self._byte_at(start) not in (0x7B, 0x5B):
            return self._scalar_end(start)
        depth = self.depth_at(start)
        while True:
            end = self._close_in_window(start, depth)
            if end is not None:
                return end
            if not self._fill():
                raise self.error("the document ends inside this value", start)

    # --- navigation --------------------------------------------------------------------------------------

    def read_value(self, loads: Callable[[bytes], Any] = strict_loads) -> Any:
        """Parse the value at the cursor and move past it."""
        self.skip_ws()
        start = self.pos
        end = self._value_end(start)
        value = self._decode(self.buf[start - self.base : end - self.base], start, loads)
        self.pos = end
        return value

    def bounded_value(self, limit: int) -> tuple[memoryview, int] | None:
        """The bytes of the object or array at the cursor and its end, when it ends within ``limit`` bytes (the
        window then holds it); None otherwise. The cursor does not move."""
        self.skip_ws()
        start = self.pos
        if self._byte_at(start) not in (0x7B, 0x5B):
            return None
        depth = self.depth_at(start)
        while True:
            end = self._close_in_window(start, depth)
            if end is not None:
                return memoryview(self.buf)[start - self.base : end - self.base], end
            if self.end - start >= limit or not self._fill():
                return None

    def skip_value(self) -> None:
        """Move past the value at the cursor without parsing it (and without keeping its bytes)."""
        self.skip_ws()
        start = self.pos
        if self._byte_at(start) not in (0x7B, 0x5B):
            self.pos = self._scalar_end(start)
            return
        depth = self.depth_at(start)
        while True:
            end = self._close_in_window(start, depth)
            if end is not None:
                self.pos = end
                return
            self.pos = self.end  # nothing before the close is needed any more
            if not self._fill():
                raise self.error("the document ends inside this value", start)

    def iter_members(self) -> Iterator[str]:
        """Yield each key of the object at the cursor, with the cursor on its value; consume it before resuming."""
        self.expect(b"{", "an object")
        if self.peek() == 0x7D:
            self.pos += 1
            return
        seen: set[str] = set()
        while True:
            if self.peek() != _QUOTE:
                raise self.error("expected a member name")
            at = self.pos
            key = self.read_value()
            if key in seen:
                raise JsonFormatError(f"the key {key!r} appears twice in one object", at)
            seen.add(key)
            self.expect(b":", "':' after a member name")
            self.skip_ws()
            yield key
            separator = self.peek()
            self.pos += 1
            if separator == 0x7D:
                return
            if separator != 0x2C:
                raise self.error("expected ',' or '}' after a member", self.pos - 1)

    def iter_elements(self) -> Iterator[int]:
        """Yield the index of each element of the array at the cursor, with the cursor on it; consume it first."""
        self.expect(b"[", "an array")
        if self.peek() == 0x5D:
            self.pos += 1
            return
        index = 0
        while True:
            self.skip_ws()
            yield index
            index += 1
            separator = self.peek()
            self.pos += 1
            if separator == 0x5D:
                return
            if separator != 0x2C:
                raise self.error("expected ',' or ']' after an element", self.pos - 1)

    def select_elements(
        self,
        key: str,
        keep: Callable[[Any], bool],
        loads: Callable[[bytes], Any] = strict_loads,
        *,
        skim: bool = False,
        take: Callable[[bytes], int | None] | None = None,
        pick: Callable[[bytes, str, int, int], bool] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Yield (index, value of member ``key``) for each element of the array at the cursor that ``keep``
        accepts, with the cursor on the element: the caller consumes it, or leaves it to be skipped. The other
        elements are stepped over unparsed. ``element_index`` follows the element being looked at (for error
        messages) and ends as the number of elements.

        Elements are expected to be objects; ``value`` is MISSING when the element has no such member (or is not
        an object), Ellipsis when the member is not a scalar. Runs of complete objects in the window are
        handled together with a few vectorised steps, so skipping costs little per element.

        ``skim`` (for chunks given as bytes): runs of elements that ``keep`` refuses are stepped over without
        indexing their bytes, see ``_skim``; the others are read as above. A skim asks ``keep`` once per distinct
        value, so it must give the same answer for the same value.

        ``take`` (with ``skim``): the skim hands each run of whole elements to ``take`` instead, as the bytes of one
        JSON array; it consumes them all and returns how many (nothing is yielded for them), or returns None,
        having consumed none: the elements are then yielded one by one as above, and runs are tried again after
        ``_SKIM_RETRY`` elements.

        ``pick`` (with ``skim``): an element of a skimmed run that ``keep`` accepts, whose member is a string, is
        first handed to ``pick`` (its bytes, that string, its index and its offset in the document), which consumes
        it and returns True (the skim goes on past it, nothing is yielded), or returns False, having consumed
        nothing: the skim then stops there and the element is yielded as above.
        """
        self.expect(b"[", "an array")
        self.element_index = 0
        if self.peek() == 0x5D:
            self.pos += 1
            return
        depth = self.depth_at(self.pos)  # inside the array
        pattern = _member_pattern(key)
        skim_from = 0 if skim else None
        while True:
            self.skip_ws()
            skimming = skim_from is not None and self.element_index >= skim_from
            if skimming and self._byte_at(self.pos) == 0x7B:
                if not self._skim(key, depth, keep, take, pick):
                    skim_from = self.element_index + _SKIM_RETRY
                self.skip_ws()  # an indented file's runs end before the whitespace ahead of an element
            elif self._skimming:  # the window ended with the element a skim stopped at
                self._index_from(self.pos, depth)
            batch = self._object_run(self.pos, depth) if self._byte_at(self.pos) == 0x7B else None
            if batch is None:  # a lone element: not an object, or not whole in the window yet
                start = self.pos
                value = self.peek_member(key, loads) if self._byte_at(start) == 0x7B else MISSING
                if keep(value):
                    yield self.element_index, value
                if self.pos == start:
                    self.skip_value()
            else:
                starts, ends = batch
                values = self._member_values(pattern, starts, ends, depth + 1, loads)
                first = self.element_index
                for k, (start, end, value) in enumerate(zip(starts.tolist(), ends.tolist(), values, strict=True)):
                    self.pos, self.element_index = start, first + k
                    if keep(value):
                        yield self.element_index, value
                    if self.pos == start:
                        if start < self._check_until:
                            self._check_element(start, end)
                        self.pos = end
            separator = self.peek()
            self.pos += 1
            self.element_index += 1
            if separator == 0x5D:
                if self._skimming:
                    self._index_from(self.pos, depth - 1)
                return
            if separator != 0x2C:
                raise self.error("expected ',' or ']' after an element", self.pos - 1)

    def _skim(
        self,
        key: str,
        depth: int,
        keep: Callable[[Any], bool],
        take: Callable[[bytes], int | None] | None = None,
        pick: Callable[[bytes, str, int, int], bool] | None = None,
    ) -> int:
        """Step over the elements from the cursor (an object at ``depth`` inside an array) that ``keep`` refuses,
        as long as their bytes show where each ends and its member without an index; returns how many. The window
        is indexed again from the element the cursor ends on.

        A run of elements is handed to msgspec as one JSON array, cut before the last place in the window where
        the next element opens as the first one did (``},{"name":``, as minified files write it): if that parses,
        the cut was between elements and each element is valid JSON. msgspec also reads each element's own member
        ``key`` (at its top level: not one nested in another member, nor text inside a string) and hands every
        occurrence to a hook: when there is one per element, the elements whose member is a string that ``keep``
        refuses are stepped over. At the first other element (``keep`` accepts it, or its member is not a string)
        the run is decoded again as raw elements, whose lengths place it: ``pick`` is offered it (see
        ``select_elements``), and the skim goes on past it when ``pick`` consumes it; otherwise the reader takes
        over there (no index is built for an element ``pick`` consumes, nor are the bytes after it read again); a run in
        which an element lacks the member or repeats it is left to the reader whole. With ``take``, each run goes
        to ``take`` instead (see ``select_elements``), and an indented file's runs are cut where its elements open
        as the second one does (``},``, whitespace, ``{``, whitespace, ``"name":``).
        When the skim stops at an element after stepping over others, only that element is indexed: the bytes
        after it go back to be read as the next chunk, and the next skim most likely steps over them too.

        The run is held in a buffer (``_skim_buffer``) that the document's bytes are read into (``readinto``) or
        copied into, chunk after chunk: run[at - 1] stands for the byte before the element at the cursor, and the
        two brackets msgspec needs are written over it and over the comma after the cut, so each byte is read or
        copied once (and moved again only when it is left after the last cut when the buffer is full)."""
        first = self.pos - self.base
        colon = self.buf.find(b":", first, first + _SKIM_KEY_BYTES)
        if colon < 0:
            return 0
        opening = b"}," + self.buf[first : colon + 1]
        # with take: an indented file's opening, as it writes it between elements (the same at every element)
        quote = self.buf.find(b'"', first, colon)
        indented = re.compile(rb"\},\s*\{\s*" + re.escape(self.buf[quote : colon + 1])) if take and quote > 0 else None
        values: list[str | None] = []  # the run's members as msgspec reads them, in order (None: not a string)
        refused: set[str] = set()  # members ``keep`` refused

        def read(kind: type, value: Any) -> _Member:
            values.append(value if type(value) is str else None)
            return _FOUND

        members = msgspec.json.Decoder(_elements_type(key), dec_hook=read)
        run = self._skim_buffer
        held = len(self.buf) - first
        if len(run) < held + 1 + _SKIM_ROOM:
            run = self._skim_buffer = bytearray(held + 1 + _SKIM_ROOM)
        run[0] = 0x5B
        run[1 : held + 1] = memoryview(self.buf)[first:]
        end = held + 1  # run[:end] holds the document's bytes from origin on
        unsearched = 1  # where the search for the indented opening goes on
        origin = self.pos - 1  # the absolute offset of run[0]
        self.buf, self.base = b"", self.end  # the window is the run until the skim ends
        self._skimming = True
        skipped = 0
        stopped_at: int | None = None  # the end of the element the skim stopped at, when known
        at = searched = 1  # the run's offset of the element at the cursor; of the end of the last search
        try:
            while True:
                cut = run.rfind(opening, searched, end)
                if cut < 0 and indented is not None:
                    found = indented.search(run, max(at, unsearched - _SKIM_KEY_BYTES), end)
                    unsearched = end
                    if found:
                        opening, indented, searched = found.group(), None, at
                        continue
                if cut < 0:
                    if end - at > _SKIM_WINDOW:
                        return skipped
                    if len(run) - end < _SKIM_READ and at > 1:  # the bytes from the cursor on go to the front
                        run[: end - at + 1] = run[at - 1 : end]
                        shift = at - 1
                        origin, end, searched, unsearched, at = origin + shift, end - shift, searched - shift, 1, 1
                    count = self._read_into(run, end)
                    if not count:
                        return skipped
                    searched = max(at, end - len(opening) + 1)
                    end += count
                    continue
                if take is not None:
                    run[cut + 1] = 0x5D  # ']' for the ',' after the cut
                    taken = take(bytes(memoryview(run)[at - 1 : cut + 2]))  # a copy: take may keep views of it
                    run[cut + 1] = 0x2C
                    if taken is None:
                        return skipped
                    self.element_index += taken
                    skipped += taken
                    at = searched = cut + 2
                    run[cut + 1] = 0x5B  # '[' for the ',' before the next element
                    continue
                values.clear()
                count = _decode_run(run, at - 1, cut, lambda view: len(members.decode(view)))
                if count is None:  # not valid JSON, or not cut between elements: the reader checks each one
                    self._check_until = origin + cut + 1
                if count != len(values):  # that, or an element without the member or with it twice
                    return skipped
                stop = None if refused.issuperset(values) else self._kept(values, keep, refused)
                if stop is not None:
                    lengths = _decode_run(run, at - 1, cut, _raw_lengths)  # valid JSON: just read
                    place, placed = at, 0  # where element ``placed`` of the run starts
                    while stop is not None:
                        for length in lengths[placed:stop]:
                            place = _SEPARATOR.match(run, place + length).end()  # type: ignore[union-attr]
                        placed, value = stop, values[stop]
                        if (
                            pick is None
                            or value is None
                            or not pick(
                                bytes(memoryview(run)[place : place + lengths[stop]]),
                                value,
                                self.element_index + stop,
                                origin + place,
                            )
                        ):
                            at = place
                            self.element_index += stop
                            skipped += stop
                            stopped_at = origin + at + lengths[stop] if skipped else None
                            return skipped
                        later = self._kept(values[stop + 1 :], keep, refused)  # the picked element is consumed
                        stop = None if later is None else stop + 1 + later
                self.element_index += len(values)
                skipped += len(values)
                at = searched = cut + 2
                run[cut + 1] = 0x5B  # '[' for the ',' before the next element
        finally:
            if stopped_at is not None and stopped_at - origin < end:  # the bytes after it go back, copied once
                self._given_back.append(bytes(memoryview(run)[stopped_at - origin : end]))
                self.eof = False
                end = stopped_at - origin
            self.buf, self.base = bytes(memoryview(run)[at:end]), origin + at
            self.pos = self.base
            self._index_from(self.pos, depth, until=stopped_at)

    @staticmethod
    def _kept(values: list[str | None], keep: Callable[[Any], bool], refused: set[str]) -> int | None:
        """The index of the first value that is not a string ``keep`` refuses (None when there is none), adding
        those before it to ``refused``."""
        for index, value in enumerate(values):
            if value in refused:  # asked before: most values of a run are codes seen in runs before it
                continue
            if value is None or keep(value):
                return index
            refused.add(value)
        return None

    def _read_into(self, run: bytearray, end: int) -> int:
        """Read the document's next bytes into run[end:], not indexed (see ``_skim``), growing ``run`` when they
        need more room; returns how many, 0 at the end."""
        if self._readinto is not None and not self._given_back:
            if len(run) - end < _SKIM_READ:
                run.extend(bytes(_SKIM_READ))
            with memoryview(run) as whole, whole[end : end + _SKIM_READ] as room:
                count = self._readinto(room)
        else:
            found = self._given_back.pop() if self._given_back else next(self._chunks, None)
            chunk = found if isinstance(found, bytes | None) else found.data
            count = len(chunk) if chunk else 0
            if len(run) - end < count:
                run.extend(bytes(count - (len(run) - end)))
            run[end : end + count] = chunk or b""
        if not count:
            self.eof = True
        elif self._on_chunk:
            self._on_chunk()
        return count

    def _check_element(self, start: int, end: int) -> None:
        """Check the element [start, end) in the window as JSON, as a skim would have."""
        try:
            _RAW_ELEMENT.decode(self.buf[start - self.base : end - self.base])
        except (msgspec.DecodeError, RecursionError) as exc:
            found = _MSGSPEC_ERROR.fullmatch(str(exc))
            assert found is not None  # the pattern matches any text
            raise JsonFormatError(f"invalid JSON: {found.group(1)}", start + int(found.group(2) or 0)) from None

    def _object_run(self, start: int, depth: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(starts, ends) of the consecutive complete objects from ``start`` (an element of an array whose inside
        is at ``depth``) that the window holds; None when not even the first is complete."""
        first = int(np.searchsorted(self._brackets, start))
        at_depth = self._indices_at_depth(depth)
        closes = at_depth[int(np.searchsorted(at_depth, first)) :]
        if not len(closes):
            return None
        # object k+1 opens at the bracket right after object k closes, when that bracket opens an element
        following = closes[:-1] + 1
        breaks = np.flatnonzero(self._depths[following] != depth + 1)
        count = int(breaks[0]) + 1 if len(breaks) else len(closes)
        ends = self._brackets[closes[:count]] + 1
        starts = np.concatenate(([start], self._brackets[following[: count - 1]]))
        self._check_separators(ends[:-1], starts[1:])
        return starts, ends

    def _check_separators(self, ends: np.ndarray, starts: np.ndarray) -> None:
        """Between consecutive elements: whitespace and one comma."""
        if not len(ends):
            return
        arr = np.frombuffer(self.buf, dtype=np.uint8)
        tight = (starts - ends) == 1
        comma = arr[ends[tight] - self.base] == 0x2C
        if not comma.all():
            self._bad_separator(ends, int(ends[tight][~comma][0]))
        for end, start in zip(ends[~tight].tolist(), starts[~tight].tolist(), strict=True):
            if not _SEPARATOR.fullmatch(self.buf, end - self.base, start - self.base):
                self._bad_separator(ends, end)

    def _bad_separator(self, ends: np.ndarray, end: int) -> None:
        self.element_index += int(np.searchsorted(ends, end))  # the element before the bad separator
        comma = _SEPARATOR.match(self.buf, end - self.base)
        if comma:  # a separator, then an element that is no object (the next object opens further on: ``},42,{``)
            self.element_index += 1
            raise self.error("expected an object", self.base + comma.end())
        raise self.error("expected ',' between elements", end)

    def _member_values(
        self, pattern: re.Pattern, starts: np.ndarray, ends: np.ndarray, depth: int, loads: Callable[[bytes], Any]
    ) -> list[Any]:
        """The value of the member matched by ``pattern`` in each object [start, end), members at ``depth`` (the first
        object is element ``element_index``; an error in a value moves it to that value's element)."""
        values: list[Any] = [MISSING] * len(starts)
        matches = self._find_all(pattern, int(starts[0]) - self.base, int(ends[-1]) - self.base)
        if not matches:
            return values
        at = np.array([m.start() for m in matches], dtype=np.int64) + self.base
        owners = np.searchsorted(starts, at, side="right") - 1
        # every match lies after its object's opening brace, so there is a bracket before it
        member_level = self._depths[np.searchsorted(self._brackets, at) - 1] == depth
        for match, owner, level in zip(matches, owners.tolist(), member_level.tolist(), strict=True):
            if level and values[owner] is MISSING and not self._escaped_at(self.base + match.start()):
                try:
                    values[owner] = self._member_value(match, loads)
                except JsonFormatError:
                    self.element_index += owner  # the element whose member it is
                    raise
        return values

    def _find_all(self, pattern: re.Pattern, start: int, end: int) -> list[re.Match]:
        """Matches of a member pattern in buf[start:end]: bytes.find on the member name is much faster than the
        regex engine's own scan."""
        needle = pattern.pattern[: pattern.pattern.index(b'"', 1) + 1]
        found = []
        at = self.buf.find(needle, start, end)
        while at >= 0:
            match = pattern.match(self.buf, at, end)
            if match:
                found.append(match)
            at = self.buf.find(needle, at + 1, end)
        return found

    def _member_value(self, match: re.Match, loads: Callable[[bytes], Any], origin: int | None = None) -> Any:
        """The value of a member matched in the window (or in a skimmed run starting at offset ``origin``)."""
        origin = self.base if origin is None else origin
        raw = match.group(1)
        if raw is None:
            return ...
        if raw[:1] == b'"' and b"\\" not in raw:  # the common cases, without the JSON decoder
            try:
                return raw[1:-1].decode()
            except UnicodeDecodeError:
                pass  # reported with its position by _decode
        elif len(raw) > MAX_NUMBER_CHARS:
            raise JsonFormatError(number_too_long(len(raw)), origin + match.start(1))
        elif raw.isdigit() and (raw[:1] != b"0" or len(raw) == 1):
            return int(raw)
        return self._decode(raw, origin + match.start(1), loads)

    def _escaped_at(self, at: int) -> bool:
        """Whether the quote at ``at`` is escaped (so text inside a string, not a member name)."""
        run = 0
        while at - run - 1 >= self.base and self.buf[at - run - 1 - self.base] == _BACKSLASH:
            run += 1
        return run % 2 == 1

    def peek_member(self, key: str, loads: Callable[[bytes], Any] = strict_loads) -> Any:
        """The value of the scalar member ``key`` of the object at the cursor, found by searching its bytes rather
        than parsing them; the cursor does not move. MISSING when there is no such member, Ellipsis when its
        value is an object or array."""
        self.skip_ws()
        start = self.pos
        if self._byte_at(start) != 0x7B:
            raise self.error("expected an object")
        object_depth = self.depth_at(start)
        pattern = _member_pattern(key)
        search_from = start
        while True:
            end = self._close_in_window(start, object_depth)
            limit = (end if end is not None else self.end) - self.base
            match = pattern.search(self.buf, search_from - self.base, limit)
            while match is not None:
                if end is None and limit - match.start() < _PEEK_MARGIN and not self.eof:
                    break  # read on so that the member and its value are whole in the window
                at = self.base + match.start()
                if not self._escaped_at(at) and self._depth_before(at) == object_depth + 1:
                    return self._member_value(match, loads)
                match = pattern.search(self.buf, match.start() + 1, limit)
            if end is not None:
                return MISSING
            resume = match.start() if match else max(limit - _PEEK_MARGIN, search_from - self.base)
            search_from = self.base + resume
            if not self._fill():
                raise self.error("the document ends inside this object", start)

    @staticmethod
    def _decode(raw: bytes, offset: int, loads: Callable[[bytes], Any]) -> Any:
        check_surrogates(raw, offset)
        try:
            return loads(raw)
        except json.JSONDecodeError as exc:
            raise JsonFormatError(f"invalid JSON: {exc.msg}", offset + exc.pos) from None
        except UnicodeDecodeError as exc:
            raise JsonFormatError("invalid UTF-8 text", offset + exc.start) from None
        except (NotJson, RecursionError) as exc:
            raise JsonFormatError(f"invalid JSON: {exc}", offset) from None
