"""Read a Transparency in Coverage table-of-contents file: which in-network files it names, for which plans.

A payer's table of contents is the index of its in-network files (often thousands, and the file itself can be
large), so it is streamed with the same reader as the rate files; nothing is written to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cptpub.errors import IngestError
from cptpub.ingest.common import regular_file_size, unreadable
from cptpub.ingest.jsonscan import JsonFormatError, JsonReader, index_chunks
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
    path: Path
    header: dict[str, str] = field(default_factory=dict)
    files: list[InNetworkFileRef] = field(default_factory=list)

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


def read_toc(path: Path) -> TableOfContents:
    """The in-network files a table-of-contents file names (raises IngestError when it is not one)."""
    path = Path(path)
    toc = TableOfContents(path)
    structures = 0
    regular_file_size(path)  # a folder, a pipe or a broken link fails here, naming the path
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
        raise unreadable(path, exc) from None
    if not structures:
        raise IngestError("not a table-of-contents file: it has no reporting_structure", where=path)
    return toc


def _files_of(structure: Any, path: Path, index: int) -> list[InNetworkFileRef]:
    where = f"{path} (reporting_structure[{index}])"
    if not isinstance(structure, dict):
        raise IngestError("a reporting_structure entry must be an object", where=where)
    plans = tuple(
        Plan(p.get("plan_name"), p.get("plan_id_type"), p.get("plan_id"), p.get("plan_market_type"))
        for p in structure.get("reporting_plans") or []
        if isinstance(p, dict)
    )
    refs = []
    for entry in structure.get("in_network_files") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
            raise IngestError("an in_network_files entry has no location", where=where)
        refs.append(InNetworkFileRef(plans, entry.get("description"), entry["location"]))
    return refs
