"""Everything one edition is written from, computed once per code: the record, the payers and the benchmarks.

``cptpub build`` computes the context once (``load_context``) and saves it in the code's build folder
(``save_context``); every section notebook then reads it with ``load_edition``, which falls back to computing it
when run on its own in Jupyter.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from cptpub.analysis.benchmarks import Benchmarks, compute
from cptpub.analysis.facts import CodeFacts, code_facts, merge_with_record
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
    # Facts derived from CMS's files and the payers' files (None without a store). ``record`` is the record with
    # its empty fields filled from them; ``derived`` names each filled field's source (the record always wins).
    facts: CodeFacts | None = None
    derived: dict[str, str] | None = None
    # The "Changes since the edition of DATE" box (escaped Markdown; "" for a first edition or a notebook run on
    # its own), computed by the build from the published snapshot.
    changes: str = ""

    @property
    def title(self) -> str:
        return f"CPT {self.code}: {self.record.title or TITLE_FALLBACK}"

    @property
    def title_attribution(self) -> str | None:
        """Where a derived title comes from (e.g. "CMS's short descriptor, <file>"); None for the record's own."""
        return (self.derived or {}).get("title")

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
    """Compute the edition context from the record, ``payers.yaml`` and the rates store (None benchmarks without
    a store)."""
    data_dir, store_path = Path(data_dir), Path(store_path)
    record, has_record = load_record_or_empty(data_dir / "codes", code)
    catalogue = load_payers(data_dir / "payers.yaml")
    benchmarks = facts = None
    derived: dict[str, str] = {}
    if RatesStore(store_path).exists():
        commercial = [p.name for p in catalogue.payers if p.kind == "commercial"]
        benchmarks = compute(store_path, code.upper(), [p.name for p in catalogue.payers], commercial)
        facts = code_facts(store_path, code)
        merged = merge_with_record(record, facts, has_record=has_record)
        record, derived = merged.record, merged.derived
    return EditionContext(
        code=code.upper(),
        record=record,
        catalogue=catalogue,
        benchmarks=benchmarks,
        has_record=has_record,
        facts=facts,
        derived=derived,
    )


def with_changes(ctx: EditionContext, dist_dir: Path | str, report_dir: Path | str) -> EditionContext:
    """``ctx`` with its change box: what changed since the edition published in ``dist_dir`` (its snapshot
    ``data/cpt-CODE.json``), under the threshold of ``report_dir``'s ``_quarto.yml``."""
    import dataclasses

    from cptpub.analysis.changes import changes_box
    from cptpub.analysis.snapshot import snapshot_path

    box = changes_box(ctx, snapshot_path(Path(dist_dir), ctx.code), Path(report_dir))
    return dataclasses.replace(ctx, changes=str(box))


# Written by the build into the code's build folder, the working directory of every section notebook it runs.
CONTEXT_FILE = "edition-context.pickle"


def _inputs(code: str, data_dir: Path | str, store_path: Path | str) -> tuple[str, str, str]:
    return code.upper(), os.path.abspath(data_dir), os.path.abspath(store_path)


def save_context(ctx: EditionContext, data_dir: Path | str, store_path: Path | str, folder: Path) -> Path:
    """Keep ``ctx`` in ``folder`` for the notebooks of this build (written by the build itself, read only by
    ``load_edition`` for the same code and inputs)."""
    from cptpub.atomic import write_atomic

    data = pickle.dumps((_inputs(ctx.code, data_dir, store_path), ctx), protocol=pickle.HIGHEST_PROTOCOL)
    return write_atomic(folder / CONTEXT_FILE, data, durable=False)


def load_edition(code: str, data_dir: Path | str = "../data", store_path: Path | str = "../build/rates.duckdb"):
    """The edition context for ``code``: the one the build computed (``CONTEXT_FILE`` in the working directory,
    for the same code, data folder and store), else computed now (a notebook opened on its own in Jupyter)."""
    path = Path(CONTEXT_FILE)
    if path.is_file():
        with path.open("rb") as handle:
            inputs, ctx = pickle.load(handle)  # written by save_context during this build
        if inputs == _inputs(code, data_dir, store_path):
            return ctx
    return load_context(code, data_dir, store_path)
