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

import datetime as dt
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
    "applies",
    "bullets",
    "changes_box",
    "commercial_paragraph",
    "date",
    "demo_notice",
    "derived_fields",
    "derived_note",
    "excluded_list",
    "field",
    "freshness_note",
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
    "open_data_link",
    "opening",
    "payment_policy_table",
    "payer_notes",
    "payer_table",
    "percent",
    "pipe_table",
    "places_of_service_list",
    "policy_table",
    "payment_policy_source",
    "primary_codes_source",
    "primary_codes_table",
    "ptp_summary",
    "ptp_table",
    "record_source",
    "rates_figure",
    "related_codes_table",
    "setting_table",
    "show",
    "sites_clause",
    "source_warnings",
    "sources_table",
    "table_or_missing",
    "taxonomy_table",
    "units_per_day",
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


def _title_origin(e: EditionContext) -> str | None:
    """ "CMS's short descriptor" or "the name in Aetna's in-network file" when the title is derived, else None."""
    if e.title_attribution and e.facts is not None and e.facts.title is not None:
        return e.facts.title.attribution
    return None


def opening(e: EditionContext) -> Trusted:
    """ "CPT code X (title) is an add-on code for <service type>.", the title labelled when it is not the record's;
    never "is a code." (without an add-on status it names the service type, or says what the input lacks)."""
    r = e.record
    origin = _title_origin(e)
    title = f" ({md(r.title)}, {md(origin)})" if r.title and origin else (f" ({md(r.title)})" if r.title else "")
    service = md(r.service_type[:1].lower() + r.service_type[1:]) if r.service_type else None
    if r.add_on is None:
        if service:
            return Trusted(f"CPT code {md(e.code)}{title} is a service in {service}.")
        return Trusted(f"CPT code {md(e.code)}{title}: neither its service type nor its add-on status is in the input.")
    kind = "an add-on code" if r.add_on else "a stand-alone procedure code"
    return Trusted(f"CPT code {md(e.code)}{title} is {kind}" + (f" for {service}." if service else "."))


def changes_box(e: EditionContext) -> Trusted | None:
    """The "Changes since the edition of DATE" box (a block quote), None for a first edition."""
    if not e.changes.strip():
        return None
    return Trusted("\n".join("> " + line if line else ">" for line in e.changes.strip().splitlines()))


def derived_fields(e: EditionContext) -> Trusted | None:
    """The record fields filled from public files, each with its source and date (None when none was)."""
    if not e.derived:
        return None
    items = [join(Trusted(f"**{md(_field_label(f))}:**"), source) for f, source in e.derived.items()]
    return Trusted("Not in the code's record, so taken from public files:\n\n" + bullets(items))


def _field_label(field: str) -> str:
    label = FIELD_LABELS.get(field, field.replace("_", " "))
    return label[:1].upper() + label[1:]


def record_source(e: EditionContext) -> Trusted:
    """Where the editorial content comes from: the code's record and its review date, or that there is none."""
    if not e.has_record:
        return Trusted(
            f"There is no editorial record for CPT {md(e.code)} (data/codes/{md(e.code)}.yaml): this edition is "
            "written from the payers' and CMS's files alone."
        )
    reviewed = e.record.last_reviewed.isoformat() if e.record.last_reviewed else "on a date the record does not give"
    return Trusted(
        f"Editorial content comes from the code record data/codes/{md(e.code)}.yaml, last reviewed {md(reviewed)}."
    )


def derived_note(e: EditionContext, field: str) -> Trusted | None:
    """ "Derived from <source>: the record gives none." for a field filled from facts (None otherwise)."""
    source = (e.derived or {}).get(field)
    return join(Trusted("*Derived from"), source, Trusted("(the record gives none).*"), sep=" ") if source else None


def applies(e: EditionContext, section: str) -> bool:
    """Whether an optional section applies to this code: ``"sequencing"`` only to add-on codes."""
    if section == "sequencing":
        return e.record.add_on is not False
    raise ValueError(f"unknown optional section {section!r}")


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
    groups = _provider_groups(e).get("All commercial payers")
    # never a count of groups from references that were not resolved
    if groups is None:
        source = ""
    elif groups.known:
        source = f"from {md(groups.text)}"
    elif groups.resolved_groups == 0:
        source = f"(provider groups {md(groups.text)})"
    else:
        source = f"({md(groups.text)})"
    text = (
        f"**Commercial payers.** Across {o.n_rates} distinct professional rates {source}, the median is "
        f"{money(o.median)}{versus}; the middle half of rates lies between {money(o.p25)} and {money(o.p75)}."
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


def _provider_groups(e: EditionContext) -> dict:
    """Payer (and 'All commercial payers') -> ``ProviderGroups``: counted only from resolved references."""
    from cptpub.analysis.data_quality import provider_group_counts

    return {g.payer: g for g in provider_group_counts(e.benchmarks)} if e.benchmarks else {}


def places_of_service_list(e: EditionContext) -> Trusted | None:
    """Per payer, the places of service its rates were negotiated for and the Medicare amount each is compared
    with (None without rates)."""
    from cptpub.analysis.data_quality import medicare_bases, places_of_service

    b = e.benchmarks
    if b is None or b.rates.empty:
        return None
    places = places_of_service(b)
    nonfacility_na = bool(e.facts and e.facts.pfs and e.facts.pfs.nonfacility_na)
    bases: dict[str, list[str]] = {}
    for basis in medicare_bases(b, nonfacility_na=nonfacility_na):
        bases.setdefault(basis.payer, []).append(basis.text)
    items = []
    for payer, counts in places.items():
        where = ", ".join(f"{c.name} ({c.n_rates})" for c in counts)
        items.append(join(Trusted(f"**{md(payer)}:**"), where + ".", "; ".join(bases.get(payer, [])) + "."))
    return Trusted(
        "Places of service of the rates (number of rates), and the Medicare amount each is compared with:\n\n"
        + bullets(items)
    )


def freshness_note(e: EditionContext, today: dt.date | None = None) -> Trusted | None:
    """A note when the newest data is older than the configured age or dated implausibly (None otherwise)."""
    from cptpub.analysis.data_quality import freshness_notes

    if e.benchmarks is None:
        return None
    notes = freshness_notes(e.benchmarks.sources, today or dt.date.today())
    if not notes:
        return None
    text = "; ".join(n.text for n in notes) + "."
    return Trusted("> **Data freshness.** " + md(text[:1].upper() + text[1:]))


# Tables hold plain text (escaped when published), so a DataFrame shows the same in Jupyter and in print.
def _dollars(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}%"


PAYER_COLUMNS = ["Payer", "Rates", "Provider groups", "Min", "25th", "Median", "75th", "Max", "% of Medicare"]


def _group_cell(s: RateStats, groups) -> object:
    """The number of provider groups, or 'unknown (N unresolved)' when references were not resolved."""
    if groups is None or groups.known:
        return s.n_provider_groups
    if groups.resolved_groups == 0:
        return f"unknown ({groups.unresolved_references} unresolved)"
    return f"≥ {groups.resolved_groups} ({groups.unresolved_references} unresolved)"


def _stats_row(s: RateStats, groups=None) -> list[object]:
    return [
        s.payer,
        s.n_rates,
        _group_cell(s, groups),
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
    groups = _provider_groups(e)
    rows = [_stats_row(s, groups.get(s.payer)) for s in b.by_payer]
    if b.overall and len(b.by_payer) > 1:
        rows.append(_stats_row(b.overall, groups.get("All commercial payers")))
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
        record = "the editorial record is sample text" if e.has_record else "this code has no editorial record"
        return Trusted(
            f"> **Demo edition.** This edition is built from the toolkit's demo inputs: {record} and the rate files "
            "are synthetic. Nothing here is a real price or coding advice."
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
    from cptpub.analysis.data_quality import payers_without_data

    notes = e.record.payer_notes or []
    noted = {n.payer.lower() for n in notes}
    without = [
        name
        for name in payers_without_data(e.payer_names, e.benchmarks)
        if name not in e.key_payers and name.lower() not in noted
    ]
    parts = []
    for name in e.payer_names:
        if name in without:
            continue
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
    if without:
        parts.append(f"Neither rates nor notes for CPT {md(e.code)} are in the input for {names(without)}.")
    return Trusted("\n\n".join(parts))


def _frame(rows: list[tuple], columns: list[str]):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns) if rows else None


def modifier_table(e: EditionContext):
    """The record's modifiers (None when it has none)."""
    rows = [(m.modifier, m.description, m.when_to_use) for m in e.record.modifiers or []]
    return _frame(rows, ["Modifier", "Description", "When to Use"])


def payment_policy_table(e: EditionContext):
    """CMS's payment-policy indicators of the code (status, global period, PC/TC, ...) with their meaning (None
    when the fee schedule file does not have the code)."""
    rows = [(r.topic, r.value, r.meaning) for r in (e.facts.payment_policy if e.facts else ())]
    return _frame(rows, ["Policy", "CMS value", "Meaning"])


def _source_sentence(source) -> Trusted:
    return join(Trusted("Source:"), source.label + ".")


def payment_policy_source(e: EditionContext) -> Trusted | None:
    pfs = e.facts.pfs if e.facts else None
    return _source_sentence(pfs.source) if pfs else None


def units_per_day(e: EditionContext) -> Trusted:
    """Medicare's medically unlikely edit: the units per day and how they are counted, with the source."""
    mue = e.facts.mue if e.facts else None
    if mue is None:
        return not_available("Medicare's units per day (NCCI medically unlikely edit)")
    rationale = f"CMS's rationale: {mue.rationale}." if mue.rationale else None
    return join(Trusted("**Units per day (MUE):**"), mue.text, rationale, _source_sentence(mue.source))


PTP_ROWS_SHOWN = 40


def ptp_summary(e: EditionContext) -> Trusted:
    """How many NCCI procedure-to-procedure edits involve the code, in each direction, and the source."""
    edits = e.facts.ptp_edits if e.facts else ()
    if not edits:
        return not_available("Medicare's procedure-to-procedure (NCCI PTP) edits of this code")
    col1, col2 = e.facts.codes_not_paid_with_this, e.facts.codes_this_is_not_paid_with  # type: ignore[union-attr]
    bypass = sum(1 for x in edits if x.modifier_allowed)
    shown = (
        f" The first {PTP_ROWS_SHOWN} are listed; the edition's open data lists all."
        if len(edits) > PTP_ROWS_SHOWN
        else ""
    )
    return join(
        Trusted(
            f"**Codes not paid together (NCCI PTP):** Medicare does not pay {number(len(col1), 0)} other code(s) "
            f"when billed with CPT {md(e.code)}, and does not pay CPT {md(e.code)} with {number(len(col2), 0)} "
            f"other code(s), for the same patient, date and provider; a modifier can bypass {number(bypass, 0)} of "
            f"these {number(len(edits), 0)} edits.{shown}"
        ),
        _source_sentence(edits[0].source),
    )


def ptp_table(e: EditionContext):
    """The active NCCI procedure-to-procedure edits of the code, both directions (None when there are none)."""
    edits = (e.facts.ptp_edits if e.facts else ())[:PTP_ROWS_SHOWN]
    rows = [
        (
            x.other_code,
            x.other_title or "",
            f"{x.column2} (column 2)",
            "Yes" if x.modifier_allowed else "No" if x.modifier_indicator == "0" else "Not applicable",
            x.effective_date.isoformat(),
        )
        for x in edits
    ]
    return _frame(rows, ["Other code", "CMS short descriptor", "Not paid", "Modifier allowed", "In effect since"])


def primary_codes_table(e: EditionContext):
    """For an add-on code, the primary codes NCCI's add-on code edits list (None otherwise)."""
    primaries = e.facts.add_on_primaries if e.facts else ()
    rows = [
        (
            "contractor-defined" if p.contractor_defined else p.primary_code,
            p.primary_title or "",
            p.edit_type_meaning,
            p.effective_date.isoformat() if p.effective_date else "",
        )
        for p in primaries
    ]
    return _frame(rows, ["Primary code", "CMS short descriptor", "Edit type", "In effect since"])


def primary_codes_source(e: EditionContext) -> Trusted | None:
    primaries = e.facts.add_on_primaries if e.facts else ()
    return _source_sentence(primaries[0].source) if primaries else None


def open_data_link(e: EditionContext) -> Trusted:
    """The link to the edition's figures as data (``dist/data/cpt-CODE.json``, next to the HTML page)."""
    from cptpub.analysis.snapshot import snapshot_name

    # the code is checked (letters and digits): the link needs no escaping
    return Trusted(f"[Open data: this edition's figures (JSON)]({snapshot_name(e.code)})")


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
