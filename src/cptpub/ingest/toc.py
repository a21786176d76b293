"""Read a Transparency in Coverage table-of-contents file: which in-network files it names, for which plans.

A payer's table of contents is the index of its in-network files (often thousands, and the file itself can be
large), so it is streamed with the same reader as the rate files; nothing is written to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from cptpub.errors import IngestError
from cptpub.ingest.common import regular_file_size, unreadable
from cptpub.ingest.jsonscan import JsonFormatError, JsonReader, index_chunks
from cptpub.ingest.remote import is_url
from cptpub.ingest.stream import CorruptGzip, Prefetch, RateFile, TruncatedGzip

_HEADER_KEYS = ("reporting_entity_name", "reporting_entity_type", "last_updated_on", "version")


@dataclass(frozen=True)
class Plan:
    name: str | None
    id_type: str | None
    id: str | None
    market_type: str | None

    def label(self) -> str:
        ident = f"{self.id_type or 'id'} {self.id}" if self.id else ""
        return f"{self.name or '(unnamed plan)'}" + (f" ({ident})" if ident else "")


@dataclass(frozen=True)
class InNetworkFileRef:
    plans: tuple[Plan, ...]
    description: Any  # as the file writes it: a string when it follows the schema, but not always
    location: str


@dataclass
class TableOfContents:
    path: Path | str
    header: dict[str, str] = field(default_factory=dict)
    files: list[InNetworkFileRef] = field(default_factory=list)

    def filtered(
        self, *, plan: str | None = None, plan_id: str | None = None, description: str | None = None
    ) -> TableOfContents:
        """The files of a plan whose name contains ``plan`` (any case), of the plan with id ``plan_id`` (an EIN or
        HIOS id, dashes ignored), whose description contains ``description``; a filter not given keeps all."""

        def digits(text: Any) -> str:
            return str(text).replace("-", "").strip().lower()

        def keep(ref: InNetworkFileRef) -> bool:
            if plan is not None and not any(p.name and plan.lower() in p.name.lower() for p in ref.plans):
                return False
            if plan_id is not None and not any(p.id is not None and digits(p.id) == digits(plan_id) for p in ref.plans):
                return False
            return description is None or description.lower() in str(ref.description or "").lower()

        return TableOfContents(self.path, self.header, [ref for ref in self.files if keep(ref)])

    def locations(self) -> list[Path | str]:
        """The in-network files to ingest, each once: URLs as written, other locations relative to this file."""
        found: list[Path | str] = []
        for ref in self.files:
            location: Path | str = ref.location
            if not is_url(ref.location):
                base = Path(self.path).parent if not is_url(self.path) else None
                location = urljoin(str(self.path), ref.location) if base is None else base / ref.location
            if location not in found:
                found.append(location)
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            **self.header,
            "in_network_files": [
                {
                    "plans": [
                        {
                            "plan_name": p.name,
                            "plan_id_type": p.id_type,
                            "plan_id": p.id,
                            "plan_market_type": p.market_type,
                        }
                        for p in ref.plans
                    ],
                    "description": ref.description,
                    "location": ref.location,
                }
                for ref in self.files
            ],
        }


def read_toc(path: Path | str) -> TableOfContents:
    """The in-network files a table-of-contents file (a path or an http(s) URL) names (raises IngestError when it
    is not one)."""
    if not is_url(path):
        path = Path(path)
        regular_file_size(path)  # a folder, a pipe or a broken link fails here, naming the path
    toc = TableOfContents(path)
    structures = 0
    try:
        with (
            Prefetch(RateFile(path).chunks(), name="read") as chunks,
            Prefetch(index_chunks(chunks), name="index") as indexed,
        ):
            reader = JsonReader(indexed)
            reader.skip_bom()
            if reader.peek() != ord("{"):
                raise IngestError("not a table-of-contents file: its top level is not a JSON object", where=path)
            for key in reader.iter_members():
                if key == "reporting_structure":
                    for index in reader.iter_elements():
                        toc.files += _files_of(reader.read_value(), path, index)
                        structures += 1
                elif key in _HEADER_KEYS:
                    toc.header[key] = str(reader.read_value())
                elif key == "in_network":
                    raise IngestError(
                        "not a table-of-contents file: it is an in-network rate file",
                        where=path,
                        hint="ingest it with `cptpub ingest tic`",
                    )
                else:
                    reader.skip_value()
    except JsonFormatError as exc:
        raise IngestError(exc.message, where=f"{path} (byte {exc.offset:,})") from None
    except (TruncatedGzip, CorruptGzip) as exc:
        raise IngestError(str(exc), where=path, hint="download the file again") from None
    except OSError as exc:
        if is_url(path):
            raise IngestError(f"cannot read: {exc}", where=path) from None
        raise unreadable(Path(path), exc) from None
    if not structures:
        raise IngestError("not a table-of-contents file: it has no reporting_structure", where=path)
    return toc


def _files_of(structure: Any, path: Path | str, index: int) -> list[InNetworkFileRef]:
    where = f"{path} (reporting_structure[{index}])"
    if not isinstance(structure, dict):
        raise IngestError("a reporting_structure entry must be an object", where=where)
    plans_listed = structure.get("reporting_plans") or []
    files_listed = structure.get("in_network_files") or []
    if not isinstance(plans_listed, list) or not isinstance(files_listed, list):
        raise IngestError("reporting_plans and in_network_files must be arrays", where=where)
    plans = tuple(
        Plan(*(_text(p.get(key)) for key in ("plan_name", "plan_id_type", "plan_id", "plan_market_type")))
        for p in plans_listed
        if isinstance(p, dict)
    )
    refs = []
    for entry in files_listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
            raise IngestError("an in_network_files entry has no location", where=where)
        refs.append(InNetworkFileRef(plans, entry.get("description"), entry["location"]))
    return refs


def _text(value: Any) -> str | None:
    """A plan field as text (files write ids as numbers too)."""
    return None if value is None else str(value)
