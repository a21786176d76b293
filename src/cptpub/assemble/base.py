"""What an assembly engine is given, what it must produce, and helpers every engine shares."""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cptpub.errors import AssemblyError
from cptpub.project import CODE_PATTERN

FORMATS = ("html", "pdf")
DEMO_NOTICE = "DEMO DATA — synthetic figures, not real prices"
CATALOGUE_HREF = "index.html"

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True)
class EditionMeta:
    code: str  # "20702"
    title: str  # "CPT 20702: Intramedullary Drug Delivery Device Preparation and Insertion"
    edition_date: datetime.date  # from data, never the clock (reproducible builds)
    data_as_of: tuple[tuple[str, datetime.date], ...]  # (("Aetna TiC file", date), ...)
    demo: bool  # True -> the DEMO_NOTICE banner on the page, the PDF title block and every PDF footer
    keywords: tuple[str, ...] = ()
    subject: str = ""  # PDF subject


@dataclass(frozen=True)
class AssemblyJob:
    meta: EditionMeta
    notebooks: tuple[Path, ...]  # executed notebooks, in publication order
    workdir: Path  # build/<code>/ ; figure paths are relative to it
    report_dir: Path  # report/ template project


class Engine(Protocol):
    name: str

    def version(self) -> str: ...

    def render(self, job: AssemblyJob, formats: Sequence[str], out_dir: Path) -> dict[str, Path]: ...


def output_name(code: str, fmt: str) -> str:
    """``cpt-20702.html`` / ``cpt-20702.pdf``: the published file names, also used for cross-links."""
    if not CODE_PATTERN.fullmatch(code):
        raise AssemblyError(f"invalid code {code!r}: a code is exactly 5 letters or digits")
    return f"cpt-{code}.{fmt}"


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The requested formats, de-duplicated, in a fixed order; unknown or no format is an error."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise AssemblyError(
            f"cannot render format(s) {', '.join(unknown) or '(none)'}",
            hint=f"choose from {', '.join(FORMATS)}",
        )
    return tuple(f for f in FORMATS if f in formats)


def display_date(day: datetime.date) -> str:
    """``March 1, 2026``: spelled out so no locale setting can change the output."""
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    Readers (a web server, the catalogue) see the old file or the new one, never half of one. A full disk or an
    unwritable folder is an ``AssemblyError`` naming the file; the temporary file is removed.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise AssemblyError(f"cannot write the output: {exc.strerror or exc}", where=path) from exc
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path
