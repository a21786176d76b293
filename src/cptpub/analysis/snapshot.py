"""An edition's figures as data: ``dist/data/cpt-CODE.json``, published with the edition (open data) and read back by
the next build to say what changed.

Shape (``"format": "cptpub-edition-data/1"``; keys sorted, floats as Python writes them, so the same inputs give
the same bytes)::

    {"format": "cptpub-edition-data/1", "code": "20702", "title": "CPT 20702: ...", "edition_date": "2026-10-01",
     "demo": true,
     "figures": {
        "payers": {"Aetna": {"n_rates": 14, "n_provider_groups": 14, "minimum": ..., "p25": ..., "median": ...,
                             "p75": ..., "maximum": ..., "pct_of_medicare": 138.2}, ...},   # professional, per payer
        "all_commercial": {...} | null,
        "settings": {"Aetna · outpatient": {...}},        # professional, per payer and setting where several
        "institutional": {"Aetna · outpatient": {...}},   # facility-fee rates
        "excluded": {"Aetna": {"percentage rate": 1}},
        "medicare": {"year": 2026, "release": "RVU26A", "nonfacility_amount": ..., "facility_amount": ...,
                     "conversion_factor": ..., "global_days": "ZZZ", "status_code": "A", "work_rvu": ...,
                     "nonfacility_total": ..., "facility_total": ...} | null},
     "facts": {"<group>": {"<name>": <scalar>}},   # derived coding facts (e.g. NCCI edits, MUE values), see below
     "sources": [{"file_name": ..., "kind": ..., "payer": ..., "publisher": ..., "plans": ...,
                  "version": "2.0.0", "last_updated_on": "2026-10-01", "sha256": ..., "demo": true}],
     "record": {"file": "data/codes/20702.yaml", "sha256": <digest of the parsed record>,
                "fields": {"title": <digest>, "modifiers": <digest>, ...}},
     "changes": null | {...}}   # what the edition's "Changes since" box shows: see cptpub.analysis.changes

``facts`` is open: any group of named scalar values (text, numbers, booleans, null), e.g. ``{"NCCI/MUE":
{"practitioner MUE": 2}}``, compared generically key by key. Derived coding facts belong in
:func:`current_figures` (computed from the ``EditionContext``), the one function both the edition's change box and
the published data call, so the page and its data cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cptpub.errors import CptpubError

if TYPE_CHECKING:  # pandas stays unimported in a no-op build, which publishes nothing
    from cptpub.analysis.benchmarks import RateStats

SNAPSHOT_FORMAT = "cptpub-edition-data/1"
DATA_FOLDER = "data"  # under dist/
_STAT_FIELDS = ("n_rates", "n_provider_groups", "minimum", "p25", "median", "p75", "maximum", "pct_of_medicare")
_MEDICARE_FIELDS = (
    "year",
    "nonfacility_amount",
    "facility_amount",
    "conversion_factor",
    "global_days",
    "status_code",
    "work_rvu",
    "nonfacility_total",
    "facility_total",
)
Scalar = str | int | float | bool | None


def snapshot_name(code: str) -> str:
    """``data/cpt-20702.json``: the snapshot's path under ``dist/``, which is also its link from the edition's
    HTML page (``dist/cpt-20702.html``), e.g. ``<a href="data/cpt-20702.json">``."""
    from cptpub.project import output_name

    return f"{DATA_FOLDER}/{output_name(code, 'json')}"


def snapshot_path(dist_dir: Path, code: str) -> Path:
    return Path(dist_dir) / snapshot_name(code)


def _stats(stats: RateStats) -> dict[str, Any]:
    values = asdict(stats)
    return {name: values[name] for name in _STAT_FIELDS}


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


def _check_facts(facts: Mapping[str, Mapping[str, Scalar]]) -> dict[str, dict[str, Scalar]]:
    checked: dict[str, dict[str, Scalar]] = {}
    for group, values in facts.items():
        checked[str(group)] = {}
        for name, value in values.items():
            if not isinstance(value, str | int | float | bool | type(None)):
                raise TypeError(f"facts[{group!r}][{name!r}]: a snapshot fact is text, a number, a boolean or null")
            checked[str(group)][str(name)] = value
    return checked


def coding_facts(ctx) -> dict[str, dict[str, Scalar]]:
    """The derived coding facts the edition of ``ctx`` prints (``ctx.facts``: CMS's payment-policy indicators,
    NCCI edits, units per day, add-on primary codes) as snapshot groups, and the record fields they filled."""
    facts = getattr(ctx, "facts", None)
    if facts is None:
        return {}
    groups: dict[str, dict[str, Scalar]] = {}
    if facts.payment_policy:
        groups["Medicare payment policy"] = {row.topic: row.value for row in facts.payment_policy}
    if facts.mue is not None:
        groups["NCCI/MUE"] = {
            "units per day": facts.mue.units,
            "adjudication indicator": facts.mue.adjudication_indicator,
        }
    if facts.ptp_edits:
        groups["NCCI/PTP"] = {
            f"{e.column1} with {e.column2}": f"modifier indicator {e.modifier_indicator}" for e in facts.ptp_edits
        }
    if facts.add_on_primaries:
        groups["NCCI/add-on primary codes"] = {
            p.primary_code: f"edit type {p.edit_type}" for p in facts.add_on_primaries
        }
    derived = getattr(ctx, "derived", None) or {}
    if derived:
        groups["Derived record fields"] = {name: source for name, source in sorted(derived.items())}
    return groups


def current_figures(ctx, facts: Mapping[str, Mapping[str, Scalar]] | None = None) -> dict[str, Any]:
    """The snapshot of an ``EditionContext`` (``cptpub.sections.context``) without its ``changes``: what the
    edition built from ``ctx`` publishes. ``facts``: derived coding facts (see the module docstring); by default
    those of :func:`coding_facts`."""
    facts = coding_facts(ctx) if facts is None else facts
    bench = ctx.benchmarks
    medicare = None
    sources: list[dict[str, Any]] = []
    figures: dict[str, Any] = {
        "payers": {},
        "all_commercial": None,
        "settings": {},
        "institutional": {},
        "excluded": {},
        "medicare": None,
    }
    if bench is not None:
        figures["payers"] = {s.payer: _stats(s) for s in bench.by_payer}
        figures["all_commercial"] = _stats(bench.overall) if bench.overall else None
        figures["settings"] = {f"{s.payer} · {s.group}": _stats(s) for s in bench.splits}
        figures["institutional"] = {f"{s.payer} · {s.group}": _stats(s) for s in bench.institutional}
        figures["excluded"] = {payer: dict(sorted(kinds.items())) for payer, kinds in bench.excluded.items()}
        if bench.medicare:
            medicare = {name: getattr(bench.medicare, name) for name in _MEDICARE_FIELDS}
            release = next((s.schema_version for s in bench.sources if s.source_id == bench.medicare.source_id), None)
            medicare["release"] = release
        figures["medicare"] = medicare
        sources = [
            {
                "file_name": s.file_name,
                "kind": s.kind,
                "payer": s.payer,
                "publisher": s.publisher,
                "plans": s.plans,
                "version": s.schema_version,  # TiC schema version; CMS release (RVU26A)
                "last_updated_on": _iso(s.last_updated_on),
                "sha256": s.source_id,
                "demo": bool(s.is_demo),
            }
            for s in bench.sources
        ]
    derived = getattr(ctx, "derived", None) or {}  # fields filled from facts: in ``facts``, not the record's digest
    record = {name: value for name, value in ctx.record.model_dump(mode="json").items() if name not in derived}
    return {
        "format": SNAPSHOT_FORMAT,
        "code": ctx.code,
        "title": ctx.title,
        "edition_date": ctx.edition_date.isoformat(),
        "demo": bool(ctx.demo),
        "figures": figures,
        "facts": _check_facts(facts or {}),
        "sources": sorted(sources, key=lambda s: (s["kind"], s["payer"], s["file_name"], s["sha256"])),
        "record": {
            "file": f"data/codes/{ctx.code}.yaml",
            "sha256": _digest(record),
            "fields": {name: _digest(value) for name, value in record.items()},
        },
        "changes": None,
    }


def comparable(snapshot: Mapping[str, Any]) -> str:
    """A digest of everything a snapshot says except its ``changes``: equal digests mean nothing changed."""
    return _digest({k: v for k, v in snapshot.items() if k != "changes"})


def snapshot_bytes(snapshot: Mapping[str, Any]) -> bytes:
    """The file's bytes: sorted keys, two-space indent, UTF-8, one final newline. Same snapshot, same bytes."""
    return (json.dumps(snapshot, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot at ``path``; None when there is none (a first edition). A file that is not a snapshot this
    cptpub can read is an error naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CptpubError(f"cannot read the previous edition's data: {exc}", where=path) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CptpubError(
            f"the previous edition's data is not valid JSON: {exc}",
            where=path,
            hint="delete it to publish the next edition as a first edition",
        ) from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise CptpubError(
            f"not an edition data file of format {SNAPSHOT_FORMAT}",
            where=path,
            hint="delete it to publish the next edition as a first edition",
        )
    return data
