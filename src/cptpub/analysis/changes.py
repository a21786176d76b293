"""What changed since the previous edition: the "Changes since the edition of DATE" box, ``cptpub changes``, the
catalogue's "updated" mark and ``dist/feed.xml`` all read this one comparison of two snapshots
(:mod:`cptpub.analysis.snapshot`).

What is compared, and when a difference is **material** (listed):

- per payer (professional rates): the median and the number of rates, before and after, with the percent change
  of the median. Material when the number of rates or of provider groups changed, or the median moved by at least
  ``median_percent`` (default 1%) of its previous value. Payers added or gone are always material;
- Medicare: the national non-facility and facility amounts, the conversion factor, RVUs, global days, status and
  fee schedule year: any change (a cent or more for amounts) is material;
- derived coding facts (``facts``: NCCI edits, MUE values, ...): any value added, removed or changed;
- the record: every field whose value was edited.

Source files with newer dates but the same figures are reported as data (``sources``) and are not material.

The threshold is configured in ``report/_quarto.yml``::

    cptpub:
      changes:
        median-percent: 1.0    # smallest move of a payer's median listed, in percent of the previous median

The rule for an edition (:func:`edition_changes`): a first edition (no previous snapshot) says nothing; an edition
whose figures equal its previous snapshot's keeps that snapshot's changes (so rebuilding without new data gives
byte-identical files); otherwise the changes since the previous edition. The result is stored in the new snapshot's
``changes``, which :func:`changes_markdown` turns into the box.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cptpub import escape
from cptpub.analysis.snapshot import comparable
from cptpub.errors import CptpubError

DEFAULT_MEDIAN_PERCENT = 1.0
_MEDICARE_LABELS = {
    "nonfacility_amount": "non-facility national amount",
    "facility_amount": "facility national amount",
    "conversion_factor": "conversion factor",
    "year": "fee schedule year",
    "release": "fee schedule release",
    "work_rvu": "work RVUs",
    "nonfacility_total": "non-facility total RVUs",
    "facility_total": "facility total RVUs",
    "global_days": "global days",
    "status_code": "status code",
}
_MONEY = ("nonfacility_amount", "facility_amount")


@dataclass(frozen=True)
class Thresholds:
    median_percent: float = DEFAULT_MEDIAN_PERCENT


def load_thresholds(report_dir: Path) -> Thresholds:
    """``cptpub.changes`` of ``report_dir/_quarto.yml`` (defaults when absent); a bad value names the file."""
    from cptpub.yamlfile import read_yaml

    path = Path(report_dir) / "_quarto.yml"
    try:
        raw, _ = read_yaml(path)
    except FileNotFoundError:
        return Thresholds()
    node = raw.get("cptpub") if isinstance(raw, dict) else None
    node = node.get("changes") if isinstance(node, dict) else None
    if node is None:
        return Thresholds()
    value = node.get("median-percent", DEFAULT_MEDIAN_PERCENT) if isinstance(node, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CptpubError(
            f"cptpub.changes.median-percent: expected a number of percent >= 0, got {value!r}", where=path
        )
    return Thresholds(median_percent=float(value))


def _pct(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before * 100


def _differs(name: str, before: object, after: object) -> bool:
    if name in _MONEY and isinstance(before, int | float) and isinstance(after, int | float):
        return abs(after - before) >= 0.005
    return before != after


def compare(previous: Mapping[str, Any], current: Mapping[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """The changes from ``previous`` to ``current`` (two snapshots), as JSON-ready data:

    ``{"since": DATE, "material": bool, "payers": [{"payer", "median_before", "median_after", "median_change_pct",
    "n_rates_before", "n_rates_after", "n_provider_groups_before", "n_provider_groups_after"}], "payers_added":
    [{"payer", "median", "n_rates"}], "payers_gone": [{"payer", "median", "n_rates"}], "medicare": [{"field",
    "label", "before", "after"}], "facts": [{"group", "name", "before", "after"}], "record_fields": [{"field",
    "label"}], "sources": [{"label", "before", "after"}]}``; every list holds only material differences, except
    ``sources`` (file dates, for information).
    """
    before_fig, after_fig = previous.get("figures") or {}, current.get("figures") or {}
    before_payers, after_payers = before_fig.get("payers") or {}, after_fig.get("payers") or {}
    payers = []
    for name, after in after_payers.items():
        before = before_payers.get(name)
        if before is None:
            continue
        move = _pct(before.get("median"), after.get("median"))
        counts_moved = (before.get("n_rates"), before.get("n_provider_groups")) != (
            after.get("n_rates"),
            after.get("n_provider_groups"),
        )
        if counts_moved or (move is not None and abs(move) >= thresholds.median_percent - 1e-9):
            payers.append(
                {
                    "payer": name,
                    "median_before": before.get("median"),
                    "median_after": after.get("median"),
                    "median_change_pct": move,
                    "n_rates_before": before.get("n_rates"),
                    "n_rates_after": after.get("n_rates"),
                    "n_provider_groups_before": before.get("n_provider_groups"),
                    "n_provider_groups_after": after.get("n_provider_groups"),
                }
            )

    def brief(name: str, stats: Mapping[str, Any]) -> dict[str, Any]:
        return {"payer": name, "median": stats.get("median"), "n_rates": stats.get("n_rates")}

    added = [brief(n, s) for n, s in after_payers.items() if n not in before_payers]
    gone = [brief(n, s) for n, s in before_payers.items() if n not in after_payers]

    medicare = []
    before_mc, after_mc = before_fig.get("medicare"), after_fig.get("medicare")
    if before_mc is not None or after_mc is not None:
        for name, label in _MEDICARE_LABELS.items():
            b = (before_mc or {}).get(name)
            a = (after_mc or {}).get(name)
            if _differs(name, b, a):
                medicare.append({"field": name, "label": label, "before": b, "after": a})

    facts = []
    before_facts, after_facts = previous.get("facts") or {}, current.get("facts") or {}
    for group in sorted(set(before_facts) | set(after_facts)):
        b_group, a_group = before_facts.get(group) or {}, after_facts.get(group) or {}
        for name in sorted(set(b_group) | set(a_group)):
            if name not in b_group or name not in a_group or b_group[name] != a_group[name]:
                facts.append({"group": group, "name": name, "before": b_group.get(name), "after": a_group.get(name)})

    from cptpub.records.schema import FIELD_LABELS

    before_fields = (previous.get("record") or {}).get("fields") or {}
    after_fields = (current.get("record") or {}).get("fields") or {}
    record_fields = [
        {"field": name, "label": FIELD_LABELS.get(name, name.replace("_", " "))}
        for name in sorted(set(before_fields) | set(after_fields), key=_field_order)
        if before_fields.get(name) != after_fields.get(name)
    ]

    sources = []
    before_dates, after_dates = _source_dates(previous), _source_dates(current)
    for label in sorted(set(before_dates) | set(after_dates)):
        if before_dates.get(label) != after_dates.get(label):
            sources.append({"label": label, "before": before_dates.get(label), "after": after_dates.get(label)})

    material = bool(payers or added or gone or medicare or facts or record_fields)
    return {
        "since": previous.get("edition_date"),
        "material": material,
        "payers": payers,
        "payers_added": added,
        "payers_gone": gone,
        "medicare": medicare,
        "facts": facts,
        "record_fields": record_fields,
        "sources": sources,
    }


def _field_order(name: str) -> tuple[int, str]:
    from cptpub.records.schema import FIELD_LABELS

    order = [path.split(".")[0] for path in FIELD_LABELS]
    return (order.index(name) if name in order else len(order), name)


def _source_dates(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """'Aetna rates' / 'Medicare fee schedule' -> newest as-of date (and release) of its current files."""
    dates: dict[str, str] = {}
    for source in snapshot.get("sources") or []:
        label = "Medicare fee schedule" if source.get("kind") == "pprrvu" else f"{source.get('payer')} rates"
        stamp = str(source.get("last_updated_on"))
        if source.get("kind") != "tic-in-network" and source.get("version"):
            stamp += f" ({source['version']})"
        dates[label] = max(stamp, dates.get(label, stamp))
    return dates


def edition_changes(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any], thresholds: Thresholds
) -> dict[str, Any] | None:
    """The ``changes`` an edition with figures ``current`` shows, given the published snapshot ``previous``
    (None: a first edition, which says nothing). Figures equal to ``previous``'s keep its changes."""
    if previous is None:
        return None
    if comparable(previous) == comparable(current):
        return previous.get("changes")
    return compare(previous, current, thresholds)


def with_changes(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any], thresholds: Thresholds
) -> dict[str, Any]:
    """``current`` (a snapshot from ``snapshot.current_figures``) with its ``changes`` filled in."""
    return {**current, "changes": edition_changes(previous, current, thresholds)}


# --- words ----------------------------------------------------------------------------------------------------


def _money(value: object) -> str:
    return f"${value:,.2f}" if isinstance(value, int | float) else "n/a"


def _signed_pct(value: object) -> str:
    return f"{value:+.1f}%" if isinstance(value, int | float) else "n/a"


def _value(field: str, value: object) -> str:
    if value is None:
        return "none"
    if field in _MONEY:
        return _money(value)
    return str(value)


def _since(changes: Mapping[str, Any]) -> str:
    from cptpub.dates import display_date

    since = changes.get("since")
    try:
        return display_date(dt.date.fromisoformat(str(since)))
    except ValueError:
        return str(since)


def summary_lines(changes: Mapping[str, Any] | None) -> list[str]:
    """The material changes as plain sentences (for the feed, the catalogue and ``cptpub changes``); empty for a
    first edition or when nothing material changed."""
    if not changes or not changes.get("material"):
        return []
    lines = []
    for p in changes.get("payers") or []:
        counts = (
            f"{p['n_rates_before']} → {p['n_rates_after']} rates"
            if p["n_rates_before"] != p["n_rates_after"]
            else f"{p['n_rates_after']} rates"
        )
        lines.append(
            f"{p['payer']}: median {_money(p['median_before'])} → {_money(p['median_after'])} "
            f"({_signed_pct(p['median_change_pct'])}), {counts}"
        )
    for p in changes.get("payers_added") or []:
        lines.append(f"{p['payer']}: new, {p['n_rates']} rates, median {_money(p['median'])}")
    for p in changes.get("payers_gone") or []:
        lines.append(f"{p['payer']}: no longer reported (was {p['n_rates']} rates, median {_money(p['median'])})")
    for m in changes.get("medicare") or []:
        lines.append(f"Medicare {m['label']}: {_value(m['field'], m['before'])} → {_value(m['field'], m['after'])}")
    for f in changes.get("facts") or []:
        lines.append(f"{f['group']} {f['name']}: {_value('', f['before'])} → {_value('', f['after'])}")
    fields = [f["label"] for f in changes.get("record_fields") or []]
    if fields:
        lines.append("Edited: " + ", ".join(fields))
    return lines


def changes_markdown(changes: Mapping[str, Any] | None) -> str:
    """The "Changes since the edition of DATE" box as Pandoc Markdown, every value escaped; an empty string for a
    first edition. Returned as ``cptpub.sections.markdown.Trusted`` so section templates insert it as is."""
    from cptpub.sections.markdown import Trusted, pipe_table

    if not changes:
        return Trusted("")
    heading = f"**Changes since the edition of {escape.md(_since(changes))}**"
    if not changes.get("material"):
        return Trusted(f"{heading}\n\nNo material changes.\n")
    parts = [heading]
    rows = []
    for p in changes.get("payers") or []:
        rows.append(
            [
                p["payer"],
                _money(p["median_before"]),
                _money(p["median_after"]),
                _signed_pct(p["median_change_pct"]),
                f"{p['n_rates_before']} → {p['n_rates_after']}",
            ]
        )
    if rows:
        parts.append(pipe_table(["Payer", "Median before", "Median after", "Change", "Rates"], rows, "lrrrr"))
    bullets = []
    for p in changes.get("payers_added") or []:
        bullets.append(f"New payer: {p['payer']} ({p['n_rates']} rates, median {_money(p['median'])})")
    for p in changes.get("payers_gone") or []:
        bullets.append(f"No longer reported: {p['payer']} (was {p['n_rates']} rates, median {_money(p['median'])})")
    for m in changes.get("medicare") or []:
        bullets.append(f"Medicare {m['label']}: {_value(m['field'], m['before'])} → {_value(m['field'], m['after'])}")
    for f in changes.get("facts") or []:
        bullets.append(f"{f['group']}, {f['name']}: {_value('', f['before'])} → {_value('', f['after'])}")
    fields = [f["label"] for f in changes.get("record_fields") or []]
    if fields:
        bullets.append("Record fields edited: " + ", ".join(fields))
    if bullets:
        parts.append("\n".join(f"- {escape.md(b)}" for b in bullets))
    return Trusted("\n\n".join(parts) + "\n")


def changes_box(ctx, previous_snapshot: Path | None, report_dir: Path) -> str:
    """For a section notebook: the box for the edition of ``ctx`` (an ``EditionContext``) given the path of the
    published snapshot (``dist/data/cpt-CODE.json``; missing or None: a first edition, empty string) and the
    ``report/`` folder (its ``_quarto.yml`` holds the threshold). The batch runner computes the published
    snapshot's ``changes`` with the same functions from the same inputs, so the page and its data agree."""
    from cptpub.analysis.snapshot import current_figures, read_snapshot

    previous = read_snapshot(previous_snapshot) if previous_snapshot else None
    current = current_figures(ctx)
    return changes_markdown(edition_changes(previous, current, load_thresholds(report_dir)))
