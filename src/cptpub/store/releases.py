"""Supersession: which ingested files are the current releases, and which are history.

Payers republish their in-network files every month and CMS its files every quarter. Ingesting the new file must
replace the old one in every figure, not add to it, while the store keeps the old one as history. The rule:

1. **Series.** Each source belongs to the series of files it is a release of:

   - a payer's in-network file (``tic-in-network``): its reporting entity (name and type) and the plans it names
     (plan names, and plan ids / EINs when the ingester records them in ``sources.plans``), compared as a set,
     case and spacing ignored. A file that names no plans is identified by its file name with the digits taken
     out (``2026-10-01_choice-plus.json.gz`` and ``2026-11-01_choice-plus.json.gz`` are one series);
   - CMS's fee schedule (``pprrvu``): its fee schedule year (RVU26A, B, C and D are releases of 2026);
   - any other kind (e.g. CMS's NCCI files ``ncci-ptp``, ``ncci-mue``): the kind, its publisher and
     ``sources.entity_type`` (NCCI: the claim type, practitioner or outpatient hospital), so the files of a newer
     quarter replace the older quarter's (NCCI files carry their quarter's first day as ``last_updated_on``).

2. **Release order.** Within a series the newest ``last_updated_on`` wins; for CMS files (every kind but
   ``tic-in-network``) ties are broken by the release name ``sources.schema_version`` (RVU26B after RVU26A).
   Every file of the newest release is current (a release published in several parts stays whole); the other
   files are superseded by it.

3. **Overrides**, kept in ``source_overrides`` and shown by ``cptpub sources``:

   - ``cptpub sources --current FILE`` pins FILE as the current release of its series (e.g. to roll back a bad
     republication): the other files of its series are superseded, whatever their dates;
   - ``cptpub sources --release-of NEW OLD`` puts NEW in OLD's series (e.g. after a payer renamed a plan), where
     the dates decide as usual;
   - ``cptpub sources --auto FILE`` removes FILE's overrides.

The outcome is the ``source_status`` table (series, status, the source that supersedes it, and why), recomputed
from ``sources`` and ``source_overrides`` inside every write transaction of :class:`cptpub.store.RatesStore`, so it
changes atomically with the ingest or override that caused it. Readers use the ``current_sources`` view; the
superseded rows stay in ``negotiated_rates`` / ``medicare_pfs``, queryable as history.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass

import duckdb

TIC_KIND = "tic-in-network"
PPRRVU_KIND = "pprrvu"
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_STATUS = {True: "current", False: "superseded"}


@dataclass(frozen=True)
class SourceInfo:
    """What the rule reads of a ``sources`` row, and the editor's overrides of it."""

    source_id: str
    kind: str
    file_name: str
    payer: str
    publisher: str | None
    entity_type: str | None
    plans: str | None
    last_updated_on: dt.date | None
    release: str | None  # sources.schema_version
    ingested_at: dt.datetime
    series_override: str | None = None
    pinned: bool = False


@dataclass(frozen=True)
class Status:
    source_id: str
    series: str  # the series key
    series_label: str  # the series in words
    current: bool
    superseded_by: str | None
    reason: str


def _norm(text: str | None) -> str:
    return _SPACES.sub(" ", (text or "").strip().lower())


def series_of(source: SourceInfo) -> tuple[str, str]:
    """The series a source is a release of by the rule (ignoring overrides): ``(key, description)``."""
    if source.kind == TIC_KIND:
        entity = _norm(source.publisher) or _norm(source.payer)
        who = source.publisher or source.payer
        plans = sorted({_norm(p) for p in (source.plans or "").split(";") if _norm(p)})
        if plans:
            return (
                f"{TIC_KIND}|{entity}|{_norm(source.entity_type)}|plans:{';'.join(plans)}",
                f"{who} · plans: {source.plans}",
            )
        stem = _DIGITS.sub("#", source.file_name.lower().removesuffix(".gz"))
        return (
            f"{TIC_KIND}|{entity}|{_norm(source.entity_type)}|file:{stem}",
            f"{who} · no plans named, files like {stem}",
        )
    if source.kind == PPRRVU_KIND:
        year = source.last_updated_on.year if source.last_updated_on else None
        return f"{PPRRVU_KIND}|{year}", f"CMS physician fee schedule {year or '(year unknown)'}"
    who = source.publisher or source.payer
    scope = f" for {source.entity_type}" if source.entity_type else ""
    return f"{source.kind}|{_norm(who)}|{_norm(source.entity_type)}", f"{source.kind} files of {who}{scope}"


def _release_order(source: SourceInfo) -> tuple:
    day = source.last_updated_on or dt.date.min
    return (day,) if source.kind == TIC_KIND else (day, source.release or "")


def _describe(source: SourceInfo) -> str:
    parts = [source.file_name]
    detail = []
    if source.kind != TIC_KIND and source.release:
        detail.append(source.release)
    if source.last_updated_on:
        detail.append(f"last updated {source.last_updated_on.isoformat()}")
    return parts[0] + (f" ({', '.join(detail)})" if detail else "")


def decide(sources: list[SourceInfo]) -> list[Status]:
    """Each source's status by the rule of this module's docstring."""
    by_key: dict[str, list[SourceInfo]] = defaultdict(list)
    labels: dict[str, str] = {}
    own_series = {s.source_id: series_of(s) for s in sources}
    for source in sources:
        key, label = own_series[source.source_id]
        if source.series_override:
            key = source.series_override
            label = next((own_series[s.source_id][1] for s in sources if own_series[s.source_id][0] == key), key)
        by_key[key].append(source)
        labels.setdefault(key, label)

    statuses: list[Status] = []
    for key, members in by_key.items():
        label = labels[key]
        pinned = [s for s in members if s.pinned]
        if pinned:
            winners = pinned
            newest = max(pinned, key=lambda s: (_release_order(s), s.ingested_at))
            why_current = "pinned as the current release by the editor (cptpub sources --current)"
            why_superseded = f"replaced by {_describe(newest)}, pinned as the current release by the editor"
        else:
            top = max(_release_order(s) for s in members)
            winners = [s for s in members if _release_order(s) == top]
            newest = max(winners, key=lambda s: s.ingested_at)
            why_current = (
                "the only release of its series"
                if len(members) == 1
                else f"the newest of {len(members)} files of its series"
                + (f" (one of {len(winners)} parts of that release)" if len(winners) > 1 else "")
            )
            why_superseded = f"replaced by the newer release {_describe(newest)}"
        winner_ids = {s.source_id for s in winners}
        for source in members:
            current = source.source_id in winner_ids
            override = (
                " (put in this series by the editor: cptpub sources --release-of)" if source.series_override else ""
            )
            statuses.append(
                Status(
                    source_id=source.source_id,
                    series=key,
                    series_label=label,
                    current=current,
                    superseded_by=None if current else newest.source_id,
                    reason=(why_current if current else why_superseded) + override,
                )
            )
    return sorted(statuses, key=lambda s: s.source_id)


def load_sources(con: duckdb.DuckDBPyConnection) -> list[SourceInfo]:
    rows = con.execute(
        """SELECT s.source_id, s.kind, s.file_name, s.payer, s.publisher, s.entity_type, s.plans, s.last_updated_on,
                  s.schema_version, s.ingested_at, o.series, coalesce(o.pinned, false)
           FROM sources s LEFT JOIN source_overrides o USING (source_id)
           ORDER BY s.source_id"""
    ).fetchall()
    return [SourceInfo(*row) for row in rows]


def refresh(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute ``source_status`` from ``sources`` and ``source_overrides`` (inside the caller's transaction)."""
    statuses = decide(load_sources(con))
    con.execute("DELETE FROM source_status")
    con.execute("DELETE FROM source_overrides WHERE source_id NOT IN (SELECT source_id FROM sources)")
    if statuses:
        con.executemany(
            "INSERT INTO source_status VALUES (?, ?, ?, ?, ?, ?)",
            [
                [
                    s.source_id,
                    s.series,
                    s.series_label,
                    "current" if s.current else "superseded",
                    s.superseded_by,
                    s.reason,
                ]
                for s in statuses
            ],
        )


# --- what `cptpub sources` shows and changes ------------------------------------------------------------------

_LISTING_SQL = """
SELECT st.status, s.file_name, s.path, s.kind, s.payer, s.publisher, s.plans, s.last_updated_on, s.schema_version,
       st.series_label, st.superseded_by, newer.file_name AS superseded_by_file, st.reason, s.is_demo, s.source_id,
       coalesce(o.pinned, false) AS pinned, o.series IS NOT NULL AS moved
FROM sources s
JOIN source_status st USING (source_id)
LEFT JOIN sources newer ON newer.source_id = st.superseded_by
LEFT JOIN source_overrides o ON o.source_id = s.source_id
ORDER BY s.kind DESC, s.payer, st.series_label, s.last_updated_on DESC NULLS LAST, s.schema_version DESC, s.file_name
"""


def listing(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every source with its status, series and the reason, as plain values (dates as ISO text)."""
    cursor = con.execute(_LISTING_SQL)
    names = [d[0] for d in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        if isinstance(row["last_updated_on"], dt.date):
            row["last_updated_on"] = row["last_updated_on"].isoformat()
        rows.append(row)
    return rows


def find_source(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """The source_id of the source ``ref`` names: a path as ingested, a file name, or a source_id (or a prefix of
    at least 8 characters of one). Raises UsageError when none or several match."""
    from cptpub.errors import UsageError

    rows = con.execute(
        """SELECT source_id, file_name, path FROM sources
           WHERE path = $ref OR file_name = $ref OR file_name = $name
              OR (length($ref) >= 8 AND starts_with(source_id, lower($ref)))
           ORDER BY file_name, source_id""",
        {"ref": ref, "name": ref.rsplit("/", 1)[-1]},
    ).fetchall()
    exact = [r for r in rows if r[2] == ref]
    rows = exact or rows
    if not rows:
        raise UsageError(f"no ingested file matches {ref!r}", hint="`cptpub sources` lists them")
    if len(rows) > 1:
        listed = ", ".join(f"{r[1]} ({r[0][:12]})" for r in rows[:5])
        raise UsageError(f"{ref!r} matches several ingested files: {listed}; name one by its source id")
    return str(rows[0][0])


def pin(con: duckdb.DuckDBPyConnection, source_id: str) -> None:
    """Make the source the current release of its series (``cptpub sources --current``)."""
    con.execute(
        """INSERT INTO source_overrides VALUES (?, NULL, true)
           ON CONFLICT (source_id) DO UPDATE SET pinned = true""",
        [source_id],
    )


def join_series(con: duckdb.DuckDBPyConnection, source_id: str, release_of: str) -> None:
    """Put the source in the series of ``release_of`` (``cptpub sources --release-of NEW OLD``)."""
    found = con.execute("SELECT series FROM source_status WHERE source_id = ?", [release_of]).fetchone()
    if found is None:  # not yet computed (a store written outside a transaction): compute it now
        refresh(con)
        found = con.execute("SELECT series FROM source_status WHERE source_id = ?", [release_of]).fetchone()
    series = found[0] if found else None
    con.execute(
        """INSERT INTO source_overrides VALUES (?, ?, false)
           ON CONFLICT (source_id) DO UPDATE SET series = excluded.series""",
        [source_id, series],
    )


def clear_overrides(con: duckdb.DuckDBPyConnection, source_id: str) -> None:
    """Let the rule decide again for this source (``cptpub sources --auto``)."""
    con.execute("DELETE FROM source_overrides WHERE source_id = ?", [source_id])
