"""Read a rate file once: hash its bytes as read, gunzip when needed, hand out decompressed chunks.

``Prefetch`` runs such a pipeline stage in a background thread (``LocalReads`` reads a plain local file in the
caller's thread instead, into the caller's buffer when it asks). zlib, hashlib and numpy release the GIL while
they work, so reading, decompressing and indexing overlap with the parsing in the caller's thread; bounded
queues keep memory flat.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import queue
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from cptpub.ingest.remote import RemoteFile, is_url


def _fastest_inflater() -> Any:
    """Intel's ISA-L inflates 2-3x faster than zlib, zlib-ng next; zlib always works."""
    try:
        from isal import isal_zlib

        return isal_zlib
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        return zlib_ng
    except ImportError:
        return zlib


_inflate_lib: Any = _fastest_inflater()

INFLATER = _inflate_lib.__name__

RAW_BLOCK = 1 << 20  # bytes read from disk at a time
CHUNK = 1 << 20  # decompressed bytes handed on at a time: small arrays stay in the CPU caches
# ... when few codes are wanted and most chunks are skimmed (jsonscan): the chunk and the run of elements msgspec
# checks stay in a core's L2 cache (measured: 256 KiB took about 7% less CPU than 1 MiB on a 200 MB file)
SKIM_CHUNK = 256 << 10
INFLATE_PIECE = 64 << 10  # compressed bytes inflated at a time (see _gunzip)
GZIP_MAGIC = b"\x1f\x8b"

Item = TypeVar("Item")
_DONE = object()


class TruncatedGzip(Exception):
    """The gzip data ends before its end marker: the file was cut short (an interrupted download)."""

    def __init__(self, compressed_offset: int):
        self.compressed_offset = compressed_offset
        super().__init__(f"the gzip data ends early: the file is cut short at byte {compressed_offset:,}")


class CorruptGzip(Exception):
    def __init__(self, compressed_offset: int, detail: str):
        self.compressed_offset = compressed_offset
        super().__init__(f"corrupt gzip data near byte {compressed_offset:,}: {detail}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(RAW_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class RateFile:
    """The decompressed bytes of a .json or .json.gz file or of an http(s) URL, in chunks; ``sha256`` (of the
    bytes as stored) is set once the last chunk has been read, and ``bytes_read`` counts the stored bytes read so
    far. Gzip is recognised from the first bytes, whatever the name. Chunks are of about ``chunk`` bytes
    (``CHUNK`` when not given)."""

    def __init__(self, source: Path | str, *, chunk: int | None = None):
        self.source: Path | str = source if is_url(source) else Path(source)
        self.chunk = chunk or CHUNK
        self.remote = RemoteFile(str(source), block=RAW_BLOCK) if is_url(source) else None
        self.gzip = False
        self.bytes_read = 0
        self.sha256: str | None = None
        self._size: int | None = None

    @property
    def size(self) -> int | None:
        """The stored size: the file's, or the server's Content-Length once known."""
        if self.remote:
            return self.remote.size
        if self._size is None:
            self._size = Path(self.source).stat().st_size
        return self._size

    def chunks(self) -> Iterator[bytes]:
        blocks = self._blocks()
        first = next(blocks, b"")
        self.gzip = first[:2] == GZIP_MAGIC
        blocks = itertools.chain([first], blocks) if first else iter(())
        return _gunzip(blocks, self) if self.gzip else _rechunk(blocks, self.chunk)

    def local_reads(self) -> LocalReads | None:
        """The file read in the caller's thread when it is a local file and not gzip (see ``LocalReads``); None
        otherwise (read it through ``chunks``)."""
        if self.remote is not None:
            return None
        handle = open(self.source, "rb", buffering=0)  # noqa: SIM115  # LocalReads closes it
        try:
            if os.pread(handle.fileno(), len(GZIP_MAGIC), 0) == GZIP_MAGIC:
                handle.close()
                return None
        except BaseException:
            handle.close()
            raise
        return LocalReads(self, handle)

    def _blocks(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        for block in self._raw_blocks():
            digest.update(block)
            self.bytes_read += len(block)
            yield block
        self.sha256 = digest.hexdigest()

    def _raw_blocks(self) -> Iterator[bytes]:
        if self.remote is not None:
            yield from self.remote.blocks()
            return
        with open(self.source, "rb", buffering=0) as handle:
            while block := handle.read(min(RAW_BLOCK, self.chunk)):
                yield block


class LocalReads:
    """A local file that is not gzip, read in the caller's thread and hashed as it is read: iterated as chunks of
    ``source.chunk`` bytes, or read into the caller's buffer (``readinto``: no copy of each chunk into it), the two
    going on from each other. Sets the ``RateFile``'s ``bytes_read`` and, at the end, its ``sha256``."""

    def __init__(self, source: RateFile, handle: io.FileIO):
        self._source = source
        self._handle = handle
        self._digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        block = b"" if self._handle.closed else self._handle.read(self._source.chunk)
        if not block:
            self._finish()
            raise StopIteration
        self._took(block)
        return block

    def readinto(self, room: memoryview) -> int:
        """Read up to len(room) bytes into ``room``; how many, 0 at the end."""
        count = 0 if self._handle.closed else self._handle.readinto(room)
        if not count:
            self._finish()
            return 0
        self._took(room[:count])
        return count

    def close(self) -> None:
        self._handle.close()

    def _took(self, data: bytes | memoryview) -> None:
        self._digest.update(data)
        self._source.bytes_read += len(data)

    def _finish(self) -> None:
        if not self._handle.closed:
            self._handle.close()
            self._source.sha256 = self._digest.hexdigest()


def _rechunk(blocks: Iterator[bytes], chunk: int) -> Iterator[bytes]:
    pending: list[bytes] = []
    size = 0
    for block in blocks:
        pending.append(block)
        size += len(block)
        if size >= chunk:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _gunzip(blocks: Iterator[bytes], source: RateFile) -> Iterator[bytes]:
    inflater: Any = _inflate_lib.decompressobj(zlib.MAX_WBITS | 16)
    member_started = False
    pending: list[bytes] = []
    size = 0
    # compressed bytes go to the inflater in pieces: when the output bound stops it, the rest of its input is
    # copied into unconsumed_tail, again at every call, so a whole block would be copied many times
    pieces = (block[at : at + INFLATE_PIECE] for block in blocks for at in range(0, len(block), INFLATE_PIECE))
    for data in pieces:
        while data:
            member_started = True
            try:
                out = inflater.decompress(data, source.chunk)  # bounded: JSON inflates 10-30x
            except (zlib.error, _inflate_lib.error) as exc:
                raise CorruptGzip(source.bytes_read, str(exc)) from None
            if out:
                pending.append(out)
                size += len(out)
                if size >= source.chunk:
                    yield b"".join(pending)
                    pending, size = [], 0
            if inflater.eof:  # concatenated gzip members, as `cat a.gz b.gz` and some writers produce
                data = inflater.unused_data
                inflater = _inflate_lib.decompressobj(zlib.MAX_WBITS | 16)
                member_started = False
            else:
                data = inflater.unconsumed_tail
    if member_started:
        # output held back by the chunk bound; a complete member ends here, a cut one does not
        try:
            pending.append(inflater.flush())
        except (zlib.error, _inflate_lib.error) as exc:
            raise CorruptGzip(source.bytes_read, str(exc)) from None
        if not inflater.eof:
            raise TruncatedGzip(source.bytes_read)
    if pending:
        yield b"".join(pending)


class Prefetch(Generic[Item]):
    """Iterate ``source`` in a background thread, up to ``depth`` items ahead of the consumer.

    Exceptions of the source are raised in the consumer. Use as a context manager: leaving it stops the thread,
    also when the consumer stops early.
    """

    def __init__(self, source: Iterable[Item], *, depth: int = 4, name: str = "prefetch"):
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Prefetch[Item]:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a thread waiting to put
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __iter__(self) -> Iterator[Item]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exception
            yield item

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # raised again in the consumer's thread
            self._put(_Failure(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close:  # a generator stopped early: let it close its file now
                close()


class _Failure:
    def __init__(self, exception: BaseException):
        self.exception = exception
