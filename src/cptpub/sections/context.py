"""Everything one edition is written from, loaded once per code: the record, the payers and the benchmarks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from cptpub.analysis.benchmarks import Benchmarks, compute
from cptpub.records import CodeRecord, PayerCatalogue, load_payers, load_record_or_empty
from cptpub.records.schema import FIELD_LABELS
from cptpub.store import RatesStore

TITLE_FALLBACK = "Title not available in the input"


@dataclass(frozen=True)
class EditionContext:
    code: str
    record: CodeRecord
    catalogue: PayerCatalogue
    benchmarks: Benchmarks | None  # None when the rates store has not been built
    has_record: bool = True  # False: no data/codes/CODE.yaml; ``record`` is empty and the edition uses data only

    @property
    def title(self) -> str:
        return f"CPT {self.code}: {self.record.title or TITLE_FALLBACK}"

    @property
    def payer_names(self) -> list[str]:
        return [p.name for p in self.catalogue.payers]

    @property
    def key_payers(self) -> list[str]:
        """Payers with data for this code, in the catalogue's order (Medicare when its fee schedule has the code)."""
        present = set(self.benchmarks.payers_with_rates) if self.benchmarks else set()
        if self.benchmarks and self.benchmarks.medicare:
            present |= {p.name for p in self.catalogue.payers if p.kind == "medicare"}
        return [name for name in self.payer_names if name in present]

    @property
    def missing_fields(self) -> list[str]:
        """The record's empty fields (dotted paths of ``FIELD_LABELS``), in the report's order."""
        missing = []
        for path in FIELD_LABELS:
            value: object = self.record
            for part in path.split("."):
                value = getattr(value, part, None) if value is not None else None
            if _is_empty(value):
                missing.append(path)
        return missing

    @property
    def demo(self) -> bool:
        return self.record.demo or bool(self.benchmarks and self.benchmarks.is_demo)

    @property
    def data_as_of(self) -> tuple[tuple[str, dt.date], ...]:
        if not self.benchmarks:
            return ()
        dated = []
        for source in self.benchmarks.sources:
            if isinstance(source.last_updated_on, dt.date):
                label = "Medicare fee schedule" if source.kind == "pprrvu" else f"{source.payer} rates"
                dated.append((label, source.last_updated_on))
        # one date per label: the newest
        newest: dict[str, dt.date] = {}
        for label, date in dated:
            newest[label] = max(date, newest.get(label, date))
        return tuple(newest.items())

    @property
    def edition_date(self) -> dt.date:
        """The newest date in the inputs (review date or data as-of), never the clock: rebuilds are identical."""
        dates = [d for _, d in self.data_as_of]
        if self.record.last_reviewed:
            dates.append(self.record.last_reviewed)
        return max(dates) if dates else dt.date(1970, 1, 1)


def _is_empty(value: object) -> bool:
    """None, an empty string or list, or a group of fields that are all empty (e.g. ``clinical: {workflow: []}``)."""
    if isinstance(value, BaseModel):
        return all(_is_empty(getattr(value, name)) for name in type(value).model_fields)
    return value is None or value == "" or value == []


def load_context(code: str, data_dir: Path | str, store_path: Path | str) -> EditionContext:
    data_dir, store_path = Path(data_dir), Path(store_path)
    record, has_record = load_record_or_empty(data_dir / "codes", code)
    catalogue = load_payers(data_dir / "payers.yaml")
    benchmarks = None
    if RatesStore(store_path).exists():
        benchmarks = compute(store_path, code.upper(), [p.name for p in catalogue.payers])
    return EditionContext(
        code=code.upper(), record=record, catalogue=catalogue, benchmarks=benchmarks, has_record=has_record
    )
