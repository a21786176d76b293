"""Read CMS's tabular files as CMS publishes them, streamed and with a size limit.

CMS ships its fee schedule and NCCI files as CSV, tab-delimited text or Excel workbooks, alone or inside a zip,
with title and copyright lines above the column header. This module hands out the rows of such a file one at a
time as lists of strings, each with the place it came from (``file:line``, ``zip!member:line`` or
``book.xlsx!sheet:row``), so a reader never holds the whole file: a zip whose member inflates to 4 GiB is refused
by its declared size, and one that lies about its size stops at ``max_bytes`` with an error saying which limit.

Text is decoded line by line: UTF-8 (with or without a byte-order mark), else Windows-1252, the encoding of
CMS's Excel exports.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cptpub.errors import IngestError
from cptpub.ingest.common import regular_file_size, unreadable

TEXT_EXTENSIONS = (".csv", ".txt")
SHEET_EXTENSIONS = (".xlsx",)
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_FIELD = 1 << 20  # characters in one CSV field (Python's default, 128 KiB, is below some CMS notes)
# RuntimeError: an encrypted member; NotImplementedError: an unsupported compression method
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class Row:
    where: str  # 'file:line', 'file!member:line' or 'book.xlsx!sheet:row'
    cells: list[str]


def mebibytes(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


class _Limited(io.RawIOBase):
    """A binary stream that fails with an IngestError once more than ``limit`` bytes were read from it."""

    def __init__(self, inner: IO[bytes], limit: int, where: str, what: str):
        self._inner, self._limit, self._where, self._what = inner, limit, where, what
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (*_ZIP_ERRORS, OSError) as exc:
            raise IngestError(f"cannot read the {self._what}: {exc}", where=self._where) from None
        self.count += len(data)
        if self.count > self._limit:
            raise too_large(self._where, self._what, self._limit, "or more")
        buffer[: len(data)] = data
        return len(data)


def too_large(where: str, what: str, limit: int, size: str) -> IngestError:
    return IngestError(
        f"the {what} is {size} bytes, over the limit of {mebibytes(limit)} for this kind of file",
        where=where,
        hint="is this the right file? CMS's files are far smaller; a larger one is refused rather than read",
    )


def bytes_read(stream: IO[bytes]) -> int:
    """How many bytes a stream of :func:`open_limited` has read so far."""
    raw = getattr(stream, "raw", None)
    return raw.count if isinstance(raw, _Limited) else 0


def is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _ZIP_MAGIC
    except OSError as exc:
        raise unreadable(path, exc) from None


def zip_members(path: Path) -> list[zipfile.ZipInfo]:
    """The members of a zip (folders and macOS resource forks left out)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise IngestError(f"cannot read the zip: {exc}", where=path, hint="download the file again") from None
    return [i for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")]


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    for raw in stream:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield raw.decode("cp1252", errors="replace")


def _delimiter(first_lines: list[str], name: str) -> str:
    """Tab for CMS's .txt files (and any text whose lines hold more tabs than commas), else comma."""
    tabs = sum(line.count("\t") for line in first_lines)
    commas = sum(line.count(",") for line in first_lines)
    return "\t" if tabs > commas or (name.lower().endswith(".txt") and tabs) else ","


def text_rows(stream: IO[bytes], where: str, name: str) -> Iterator[Row]:
    """The rows of a CSV or tab-delimited text stream, each with its line number."""
    lines = _decoded_lines(stream)
    head: list[str] = []
    for line in lines:
        head.append(line)
        if len(head) >= 40:
            break
    if head and head[0].startswith("\ufeff"):
        head[0] = head[0][1:]
    delimiter = _delimiter(head, name)

    def chained() -> Iterator[str]:
        yield from head
        yield from lines

    previous = csv.field_size_limit()
    csv.field_size_limit(_MAX_FIELD)
    try:
        reader = csv.reader(chained(), delimiter=delimiter)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise IngestError(f"unreadable {name}: {exc}", where=f"{where}:{reader.line_num}") from None
            yield Row(f"{where}:{reader.line_num}", cells)
    finally:
        csv.field_size_limit(previous)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return str(value)


def sheet_rows(stream: IO[bytes], where: str, max_bytes: int) -> Iterator[Row]:
    """The rows of every worksheet of an .xlsx workbook, read by openpyxl in read-only (streaming) mode."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    data = stream.read(max_bytes + 1)  # a workbook is itself a zip; openpyxl needs to seek in it
    if len(data) > max_bytes:
        raise too_large(where, "workbook", max_bytes, "more than " + str(max_bytes))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            for info in book.infolist():
                if info.file_size > max_bytes:
                    raise too_large(f"{where}!{info.filename}", "worksheet", max_bytes, f"{info.file_size:,}")
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, KeyError, *_ZIP_ERRORS) as exc:
        raise IngestError(f"cannot read the workbook: {exc}", where=where) from None
    try:
        for sheet in workbook.worksheets:
            try:
                for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                    yield Row(f"{where}!{sheet.title}:{number}", [_cell_text(v) for v in values])
            except (KeyError, TypeError, *_ZIP_ERRORS) as exc:
                raise IngestError(f"cannot read the worksheet: {exc}", where=f"{where}!{sheet.title}") from None
    finally:
        workbook.close()


@contextmanager
def open_limited(path: Path, member: zipfile.ZipInfo | None, max_bytes: int) -> Iterator[IO[bytes]]:
    """The bytes of ``path`` (or of one zip ``member`` of it), refused or stopped past ``max_bytes``."""
    where = f"{path}!{member.filename}" if member else str(path)
    if member is None:
        size = regular_file_size(path)
        if size > max_bytes:
            raise too_large(where, "file", max_bytes, f"{size:,}")
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed below; the yield must stay outside the try)
        except OSError as exc:
            raise unreadable(path, exc) from None
        with handle:
            yield io.BufferedReader(_Limited(handle, max_bytes, where, "file"))
        return
    if member.file_size > max_bytes:
        raise too_large(where, "zip member", max_bytes, f"{member.file_size:,}")
    with zipfile.ZipFile(path) as archive:
        try:
            raw = archive.open(member)
        except _ZIP_ERRORS as exc:
            raise IngestError(f"cannot read the zip: {exc}", where=where, hint="download the file again") from None
        with raw:
            yield io.BufferedReader(_Limited(raw, max_bytes, where, "zip member"))


def rows_of(stream: IO[bytes], where: str, name: str, max_bytes: int) -> Iterator[Row]:
    """The rows of one file or zip member, by its kind: a workbook (.xlsx, or bytes that are a zip), else text."""
    head = stream.peek(4)[:4] if isinstance(stream, io.BufferedReader) else b""
    if name.lower().endswith(SHEET_EXTENSIONS) or head == _ZIP_MAGIC:
        yield from sheet_rows(stream, where, max_bytes)
    else:
        yield from text_rows(stream, where, name)
