"""What an assembly engine is given, what it must produce, and helpers every engine shares."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cptpub.atomic import write_atomic
from cptpub.errors import UsageError
from cptpub.project import output_name

FORMATS = ("html", "pdf")
DEMO_NOTICE = "DEMO DATA — synthetic figures, not real prices"
CATALOGUE_HREF = "index.html"


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
    sync_outputs: bool = True  # False when the caller publishes the rendered files itself (a batch's staging)

    def write_outputs(self, rendered: dict[str, bytes], out_dir: Path) -> dict[str, Path]:
        """Each rendered format written to ``out_dir`` under its edition file name, atomically; their paths."""
        return {
            fmt: write_atomic(out_dir / output_name(self.meta.code, fmt), data, durable=self.sync_outputs)
            for fmt, data in rendered.items()
        }


class Engine(Protocol):
    name: str

    def version(self) -> str: ...

    def render(self, job: AssemblyJob, formats: Sequence[str], out_dir: Path) -> dict[str, Path]: ...


def check_formats(formats: Iterable[str], given_as: str | None = None) -> tuple[str, ...]:
    """The requested formats (any case, spaces around ignored), de-duplicated, in FORMATS' order; an unknown format
    or none is a usage error naming what was given (``given_as``, e.g. ``--to 'docx'``) and the valid choices."""
    wanted = {f.strip().lower() for f in formats if f.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if not wanted or unknown:
        given_as = given_as or f"unknown output format {', '.join(unknown) or '(none)'}"
        raise UsageError(f"{given_as}: choose one or more of {', '.join(FORMATS)} (comma-separated)")
    return tuple(f for f in FORMATS if f in wanted)
