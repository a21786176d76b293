"""The library section notebooks call: the edition's data, formatting and escaping helpers, tables and the figure.

A notebook starts with ``from cptpub import sections as cp`` and ``e = cp.load_edition(cpt_code, data_dir,
store_path)``; then ``e`` holds the record (``e.record``), the payer catalogue (``e.catalogue``), the benchmark
statistics (``e.benchmarks``: per payer, overall, splits, Medicare amounts, sources; ``e.benchmarks.rates`` is the
DataFrame of rates behind them) and derived facts (``e.key_payers``, ``e.missing_fields``, ``e.demo``).

What a cell shows is published (both engines): Markdown cells, with `` `{python} expr` `` inline code; Markdown a
cell displays (``cp.show`` or any object with ``_repr_markdown_``); tables (a pandas DataFrame, or
``cp.Table(frame)``); figures (matplotlib, or ``cp.rates_figure(e)``). Text from records and rate files is
escaped on every one of these paths: inline code and DataFrames escape values themselves, and the helpers below
return ``Trusted`` Markdown built from escaped parts. Functions returning ``Trusted`` never need escaping again.
"""

from __future__ import annotations

from collections.abc import Sequence

from cptpub import __version__
from cptpub.analysis.benchmarks import METHOD_NOTES, RateStats
from cptpub.records.schema import FIELD_LABELS
from cptpub.sections.context import EditionContext, load_context, load_edition
from cptpub.sections.figures import SvgFigure, rates_figure
from cptpub.sections.markdown import (
    Table,
    Trusted,
    bullets,
    date,
    frame_markdown,
    inline_markdown,
    join,
    md,
    money,
    names,
    not_available,
    number,
    numbered,
    percent,
    pipe_table,
)

__all__ = [
    "EditionContext",
    "METHOD_NOTES",
    "SvgFigure",
    "Table",
    "Trusted",
    "add_on_sentence",
    "bullets",
    "commercial_paragraph",
    "date",
    "demo_notice",
    "excluded_list",
    "field",
    "frame_markdown",
    "icd10_table",
    "inline_markdown",
    "institutional_table",
    "join",
    "key_payers_sentence",
    "list_or_missing",
    "load_context",
    "load_edition",
    "md",
    "medicare_paragraph",
    "missing_sentence",
    "modifier_table",
    "money",
    "names",
    "not_available",
    "number",
    "numbered",
    "opening",
    "payer_notes",
    "payer_table",
    "percent",
    "pipe_table",
    "policy_table",
    "rates_figure",
    "related_codes_table",
    "setting_table",
    "show",
    "sites_clause",
    "source_warnings",
    "sources_table",
    "table_or_missing",
    "taxonomy_table",
    "version",
]

version = __version__

GLOBAL_DAYS_TEXT = {
    "ZZZ": "Global period ZZZ: the code is an add-on with no global period of its own.",
    "000": "Global period 000: no post-operative days beyond the day of the procedure.",
    "010": "Global period 010: ten post-operative days are included.",
    "090": "Global period 090: ninety post-operative days are included.",
    "XXX": "Global period XXX: the global surgery concept does not apply.",
}


def show(markdown: str) -> None:
    """Display ``markdown`` as the cell's output (``text/markdown``), as written, like a Markdown cell: put data
    into it only through the helpers here (``md``, ``names``, ``money``, ...), which escape it."""
    from IPython.display import Markdown, display

    display(Markdown(str(markdown)))


def field(value: object, label: str) -> Trusted:
    """``value`` escaped, or the "Data not available in the input for <label>." sentence when it is empty."""
    if value is None or value == "" or value == []:
        return not_available(label)
    return md(value)


def list_or_missing(items: Sequence[object] | None, label: str, *, ordered: bool = False) -> Trusted:
    """A bullet (or numbered) list of ``items``, or the not-available sentence for ``label``."""
    if not items:
        return not_available(label)
    return numbered(items) if ordered else bullets(items)


def table_or_missing(frame, label: str, *, align: str | None = None) -> Table | Trusted:
    """``Table(frame)``, or the not-available sentence for ``label`` when the frame is None or empty."""
    if frame is None or len(frame) == 0:
        return not_available(label)
    return Table(frame, align=align, index=False)


# --- Summary and overview ----------------------------------------------------------------------------------


def opening(e: EditionContext) -> Trusted:
    """ "CPT code X (title) is an add-on code for <service type>." """
    r = e.record
    kind = {None: "a code", True: "an add-on code", False: "a stand-alone procedure code"}[r.add_on]
    title = f" ({md(r.title)})" if r.title else ""
    service = f" for {md(r.service_type[:1].lower() + r.service_type[1:])}" if r.service_type else ""
    return Trusted(f"CPT code {md(e.code)}{title} is {kind}{service}.")


def sites_clause(e: EditionContext) -> Trusted:
    """ " (A and B)" naming the typical sites of service, or nothing when the record has none."""
    sites = e.record.sites_of_service
    return Trusted(f" ({names(sites)})") if sites else Trusted("")


def key_payers_sentence(e: EditionContext) -> Trusted:
    if e.key_payers:
        return Trusted(f"Key payers in this analysis include {names(e.key_payers)}.")
    return Trusted(f"No payer has rate data for CPT {md(e.code)} in the input.")


def missing_sentence(e: EditionContext) -> Trusted:
    missing = [FIELD_LABELS[f] for f in e.missing_fields]
    if not missing:
        return Trusted("Every field of this code's record is present in the input.")
    return Trusted(
        f"Data not available in the input for {names(missing)}; the sections concerned say so where the data would "
        "appear."
    )


def add_on_sentence(e: EditionContext) -> Trusted:
    r = e.record
    if r.add_on is None:
        return not_available("the add-on status")
    if not r.add_on:
        return Trusted("It is reported on its own, not as an add-on to another procedure.")
    text = "This is an add-on code: it is reported in addition to the code for the primary procedure, never on its own."
    return join(Trusted(text), r.primary_procedure)


# --- Reimbursement benchmarks ------------------------------------------------------------------------------


def medicare_paragraph(e: EditionContext) -> Trusted:
    """The Medicare national amounts and global period, or why rates are not compared with Medicare."""
    b = e.benchmarks
    if b is None:
        return not_available("negotiated rates and Medicare fee schedule values (the rates store has not been built)")
    m = b.medicare
    if m is None:
        return not_available("the Medicare fee schedule values of this code")
    global_text = GLOBAL_DAYS_TEXT.get(m.global_days or "", f"Global period {m.global_days}.")
    facility, nonfacility = m.reference(True), m.reference(False)
    if facility is None and nonfacility is None:
        status = m.status_code or "not given"
        contractor = ": priced by each Medicare contractor" if m.status_code == "C" else ""
        return Trusted(
            f"**Medicare.** The {m.year} national physician fee schedule has no national payment amount for CPT "
            f"{md(e.code)} (status {md(status)}{contractor}), so rates are not compared with Medicare. "
            f"{md(global_text)}"
        )
    rvus = ""
    if m.facility_total is not None and m.nonfacility_total is not None:
        rvus = (
            f": total RVUs of {number(m.facility_total, 2)} and {number(m.nonfacility_total, 2)} times the conversion "
            f"factor of {number(m.conversion_factor, 4)}"
        )
    return Trusted(
        f"**Medicare.** The {m.year} national physician fee schedule amount for CPT {md(e.code)} is {money(facility)} "
        f"in a facility setting and {money(nonfacility)} in a non-facility setting{rvus}, before geographic "
        f"adjustment. {md(global_text)}"
    )


def commercial_paragraph(e: EditionContext) -> Trusted:
    """The overall commercial statistics, the highest and lowest payer medians and the payers without rates."""
    b = e.benchmarks
    if b is None or b.overall is None:
        return not_available("commercial professional rates of this code")
    o = b.overall
    versus = f", {percent(o.pct_of_medicare)} of the Medicare amount" if o.pct_of_medicare is not None else ""
    text = (
        f"**Commercial payers.** Across {o.n_rates} distinct professional rates from {o.n_provider_groups} provider "
        f"groups, the median is {money(o.median)}{versus}; the middle half of rates lies between {money(o.p25)} and "
        f"{money(o.p75)}."
    )
    by_median = sorted(b.by_payer, key=lambda s: s.median)
    if len(by_median) > 1 and by_median[0].payer != by_median[-1].payer:
        high, low = by_median[-1], by_median[0]
        text += (
            f" {md(high.payer)} has the highest median ({money(high.median)}) and {md(low.payer)} the lowest "
            f"({money(low.median)})."
        )
    without = [p.name for p in e.catalogue.payers if p.kind == "commercial" and p.name not in b.payers_with_rates]
    if without:
        text += f"\n\nNo professional rates for CPT {md(e.code)} in the input for {names(without)}."
    return Trusted(text)


# Tables hold plain text (escaped when published), so a DataFrame shows the same in Jupyter and in print.
def _dollars(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}%"


PAYER_COLUMNS = ["Payer", "Rates", "Provider groups", "Min", "25th", "Median", "75th", "Max", "% of Medicare"]


def _stats_row(s: RateStats) -> list[object]:
    return [
        s.payer,
        s.n_rates,
        s.n_provider_groups,
        _dollars(s.minimum),
        _dollars(s.p25),
        _dollars(s.median),
        _dollars(s.p75),
        _dollars(s.maximum),
        _pct(s.pct_of_medicare),
    ]


def payer_table(e: EditionContext):
    """Per-payer professional rate statistics, the all-commercial row and the Medicare amounts, as a DataFrame of
    display values (None without rates)."""
    import pandas as pd

    b = e.benchmarks
    if b is None or not b.by_payer:
        return None
    rows = [_stats_row(s) for s in b.by_payer]
    if b.overall and len(b.by_payer) > 1:
        rows.append(_stats_row(b.overall))
    facility = b.medicare.reference(True) if b.medicare else None
    nonfacility = b.medicare.reference(False) if b.medicare else None
    medicare = [("Medicare (facility)", facility)]
    if nonfacility != facility:
        medicare.append(("Medicare (non-facility)", nonfacility))
    for label, amount in medicare:
        if amount is not None:
            rows.append([label, "—", "—", "", "", _dollars(amount), "", "", _pct(100.0)])
    return pd.DataFrame(rows, columns=PAYER_COLUMNS)


def setting_table(e: EditionContext):
    """Professional rates per payer and setting, where a payer's file distinguishes settings (None otherwise)."""
    import pandas as pd

    b = e.benchmarks
    if b is None or not b.splits:
        return None
    rows = [(s.payer, s.group, s.n_rates, _dollars(s.median), _pct(s.pct_of_medicare)) for s in b.splits]
    return pd.DataFrame(rows, columns=["Payer", "Setting", "Rates", "Median", "% of Medicare"])


def institutional_table(e: EditionContext):
    """Facility-fee (institutional) rates per payer and setting (None when there are none)."""
    import pandas as pd

    b = e.benchmarks
    if b is None or not b.institutional:
        return None
    rows = [
        (s.payer, s.group, s.n_rates, s.n_provider_groups, _dollars(s.minimum), _dollars(s.median), _dollars(s.maximum))
        for s in b.institutional
    ]
    return pd.DataFrame(rows, columns=["Payer", "Setting", "Rates", "Provider groups", "Min", "Median", "Max"])


def excluded_list(e: EditionContext) -> Trusted | None:
    """Rates left out of the statistics, counted per payer (None when nothing was left out)."""
    b = e.benchmarks
    if b is None or not b.excluded:
        return None
    rank = {name: i for i, name in enumerate(e.payer_names)}
    lines = [
        join(
            Trusted(f"{md(payer)}:"),
            ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(kinds.items())),
        )
        for payer, kinds in sorted(b.excluded.items(), key=lambda kv: rank.get(kv[0], len(rank)))
    ]
    return Trusted("Rates left out of the statistics above (see Methodology), counted per payer:\n\n" + bullets(lines))


def demo_notice(e: EditionContext, what: str) -> Trusted | None:
    """The demo warning block for this part of the edition (None for real data). The figures' notice says which
    figures are demo: the payers' rates, and the Medicare values only when their fee schedule file is demo too."""
    if not e.demo:
        return None
    if what == "edition":
        return Trusted(
            "> **Demo edition.** This edition is built from the toolkit's demo inputs: the editorial record is sample "
            "text and the rate files are synthetic. Nothing here is a real price or coding advice."
        )
    b = e.benchmarks
    m = b.medicare if b else None
    demo_medicare = bool(b and m and any(s.is_demo for s in b.sources if s.source_id == m.source_id))
    text = "**Demo figures.** The payer rates below are synthetic demo data made by the cptpub generator. They are not "
    text += "real prices."
    if m and not demo_medicare:
        text += f" The Medicare values are CMS's own {m.year} national fee schedule figures."
    elif m:
        text += " The Medicare values are demo figures too."
    return Trusted("> " + text)


# --- Payer notes, policy updates, sources ------------------------------------------------------------------


def payer_notes(e: EditionContext) -> Trusted:
    """One subsection per payer of the catalogue, in its order, with the record's notes or the missing sentence."""
    notes = e.record.payer_notes or []
    parts = []
    for name in e.payer_names:
        mine = [n for n in notes if n.payer.lower() == name.lower()]
        items = [
            join(
                Trusted(f"**{md(n.topic)}:**") if n.topic else None,
                n.note,
                f"(Source: {n.source})" if n.source else None,
            )
            for n in mine
        ]
        parts.append(f"### {md(name)}\n\n" + (bullets(items) if items else not_available(f"notes on {name}")))
    return Trusted("\n\n".join(parts))


def _frame(rows: list[tuple], columns: list[str]):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns) if rows else None


def modifier_table(e: EditionContext):
    """The record's modifiers (None when it has none)."""
    rows = [(m.modifier, m.description, m.when_to_use) for m in e.record.modifiers or []]
    return _frame(rows, ["Modifier", "Description", "When to Use"])


def icd10_table(e: EditionContext):
    rows = [(p.code, p.description) for p in e.record.icd10_pairings or []]
    return _frame(rows, ["ICD-10-CM", "Description"])


def taxonomy_table(e: EditionContext):
    rows = [(t.code, t.classification) for t in e.record.taxonomies or []]
    return _frame(rows, ["Taxonomy", "Classification"])


def related_codes_table(e: EditionContext):
    import pandas as pd

    rows = [(c.code, c.title, c.when_to_choose or "") for c in e.record.related_codes or []]
    return pd.DataFrame(rows, columns=["Code", "Title", "When to choose it"]) if rows else None


def policy_table(e: EditionContext):
    """Dated policy updates, newest first (None when the record has none)."""
    import pandas as pd

    updates = sorted(e.record.policy_updates or [], key=lambda u: u.date, reverse=True)
    rows = [(u.date.isoformat(), u.payer, u.summary, u.source or "") for u in updates]
    return pd.DataFrame(rows, columns=["Date", "Payer", "Change", "Source"]) if rows else None


def sources_table(e: EditionContext):
    """Every file behind this edition's figures (None without a rates store)."""
    import pandas as pd

    sources = e.benchmarks.sources if e.benchmarks else ()
    rows = [
        (
            s.file_name,
            s.publisher or "",
            s.payer,
            str(s.last_updated_on or ""),
            s.schema_version or "",
            f"{s.rows_kept:,}",
        )
        for s in sources
    ]
    return pd.DataFrame(rows, columns=["File", "Publisher", "Payer", "As of", "Version", "Rows"]) if rows else None


def source_warnings(e: EditionContext) -> Trusted | None:
    sources = e.benchmarks.sources if e.benchmarks else ()
    warnings = [f"{s.file_name}: {w}" for s in sources for w in s.warnings]
    if not warnings:
        return None
    return Trusted("Warnings recorded when the files were ingested:\n\n" + bullets(warnings))
