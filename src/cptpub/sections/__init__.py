"""Section content: each function turns an ``EditionContext`` into the Markdown of one part of the publication.

Section notebooks call these and display the result; the logic lives here so notebooks stay short and every
number comes from ``context.benchmarks``, the one computation the text, tables and figure share.
"""

from __future__ import annotations

from pathlib import Path

from cptpub import __version__
from cptpub.analysis.benchmarks import METHOD_NOTES, MedicareAmounts, RateStats
from cptpub.records.schema import FIELD_LABELS
from cptpub.sections.context import EditionContext, load_context
from cptpub.sections.figures import rate_distribution_figure
from cptpub.sections.markdown import Trusted, money, not_available, percent, render, table

__all__ = [
    "EditionContext",
    "benchmarks",
    "billing_and_policy",
    "clinical_and_coding",
    "load_context",
    "methodology",
    "payer_notes",
    "show",
    "summary",
]

GLOBAL_DAYS_TEXT = {
    "ZZZ": "Global period ZZZ: the code is an add-on, paid within the global period of the primary procedure.",
    "000": "Global period 000: no post-operative days beyond the day of the procedure.",
    "010": "Global period 010: ten post-operative days are included.",
    "090": "Global period 090: ninety post-operative days are included.",
    "XXX": "Global period XXX: the global surgery concept does not apply.",
}


def _render(template: str, ctx: EditionContext, **values: object) -> Trusted:
    return render(template, code=ctx.code, r=ctx.record, demo=ctx.demo, na=not_available, **values)


def summary(ctx: EditionContext) -> Trusted:
    """Summary & Overview and Billing Code Overview."""
    return _render(
        "summary.md.j2", ctx, key_payers=ctx.key_payers, missing=[FIELD_LABELS[f] for f in ctx.missing_fields]
    )


def clinical_and_coding(ctx: EditionContext) -> Trusted:
    """Clinical & Coding Specifications: vignette, workflow, modifiers, related codes, ICD-10, taxonomies."""
    r = ctx.record
    return _render(
        "clinical_coding.md.j2",
        ctx,
        clinical=r.clinical,
        modifier_table=r.modifiers
        and table(
            ["Modifier", "Description", "When to Use"],
            [(m.modifier, m.description, m.when_to_use) for m in r.modifiers],
        ),
        related_table=r.related_codes
        and table(
            ["Code", "Title", "When to choose it"],
            [(c.code, c.title, c.when_to_choose or "") for c in r.related_codes],
        ),
        icd10_table=r.icd10_pairings
        and table(["ICD-10-CM", "Description"], [(p.code, p.description) for p in r.icd10_pairings]),
        taxonomy_table=r.taxonomies
        and table(["Taxonomy", "Classification"], [(t.code, t.classification) for t in r.taxonomies]),
    )


def _stats_row(s: RateStats, label: str | None = None) -> list[object]:
    return [
        label or s.payer,
        str(s.n_rates),
        str(s.n_provider_groups),
        money(s.minimum),
        money(s.p25),
        money(s.median),
        money(s.p75),
        money(s.maximum),
        percent(s.pct_of_medicare),
    ]


def _medicare_rows(m: MedicareAmounts | None) -> list[list[object]]:
    """The Medicare lines of the benchmark table: only amounts Medicare pays, non-facility only when it differs."""
    facility = m.reference(True) if m else None
    nonfacility = m.reference(False) if m else None
    rows: list[list[object]] = []
    if facility is not None:
        rows.append(["Medicare (facility)", "—", "—", "", "", money(facility), "", "", percent(100.0)])
    if nonfacility is not None and nonfacility != facility:
        rows.append(["Medicare (non-facility)", "—", "—", "", "", money(nonfacility), "", "", percent(100.0)])
    return rows


def _excluded_lines(ctx: EditionContext, excluded: dict[str, dict[str, int]]) -> list[str]:
    rank = {name: i for i, name in enumerate(ctx.payer_names)}
    return [
        f"{payer}: " + ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(kinds.items()))
        for payer, kinds in sorted(excluded.items(), key=lambda kv: rank.get(kv[0], len(rank)))
    ]


def benchmarks(ctx: EditionContext, figures_dir: Path | str = "figures") -> Trusted:
    """Reimbursement Benchmarks: Medicare amounts, the per-payer table, splits, excluded counts and the figure."""
    b = ctx.benchmarks
    if b is None:
        return _render("benchmarks.md.j2", ctx, b=None, m=None, demo_rates=False, demo_medicare=False)
    m = b.medicare
    headers = ["Payer", "Rates", "Provider groups", "Min", "25th", "Median", "75th", "Max", "% of Medicare"]
    rows = [_stats_row(s) for s in b.by_payer]
    if b.overall and len(b.by_payer) > 1:
        rows.append(_stats_row(b.overall))
    rows.extend(_medicare_rows(m))
    split_table = b.splits and table(
        ["Payer", "Setting", "Rates", "Median", "% of Medicare"],
        [(s.payer, s.group, str(s.n_rates), money(s.median), percent(s.pct_of_medicare)) for s in b.splits],
        "llrrr",
    )
    institutional_table = b.institutional and table(
        ["Payer", "Setting", "Rates", "Provider groups", "Min", "Median", "Max"],
        [
            (s.payer, s.group, str(s.n_rates), str(s.n_provider_groups), money(s.minimum), money(s.median),
             money(s.maximum))
            for s in b.institutional
        ],
        "llrrrrr",
    )  # fmt: skip
    by_median = sorted(b.by_payer, key=lambda s: s.median)
    commercial = [p.name for p in ctx.catalogue.payers if p.kind == "commercial"]
    return _render(
        "benchmarks.md.j2",
        ctx,
        b=b,
        m=m,
        demo_rates=any(s.is_demo for s in b.sources if s.kind != "pprrvu"),
        demo_medicare=bool(m and any(s.is_demo for s in b.sources if s.source_id == m.source_id)),
        medicare_pays=bool(m and (m.reference(True) or m.reference(False))),
        global_text=GLOBAL_DAYS_TEXT.get(m.global_days or "", f"Global period {m.global_days}.") if m else "",
        payer_table=table(headers, rows, "lrrrrrrrr"),
        split_table=split_table,
        institutional_table=institutional_table,
        highest=by_median[-1] if by_median else None,
        lowest=by_median[0] if by_median else None,
        without_rates=[name for name in commercial if name not in b.payers_with_rates],
        excluded_lines=_excluded_lines(ctx, b.excluded),
        figure=rate_distribution_figure(ctx, Path(figures_dir)) if b.overall else "",
    )


def payer_notes(ctx: EditionContext) -> Trusted:
    """Payer Notes: one subsection per payer of the catalogue, in its order."""
    notes = ctx.record.payer_notes or []
    by_payer = [(name, [n for n in notes if n.payer.lower() == name.lower()]) for name in ctx.payer_names]
    return _render("payer_notes.md.j2", ctx, notes_by_payer=by_payer)


def billing_and_policy(ctx: EditionContext) -> Trusted:
    """Billing Considerations and Policy Updates."""
    bc = ctx.record.billing_considerations
    considerations = [
        ("Documentation", "documentation requirements", bc and bc.documentation),
        ("Sequencing with the primary procedure", "sequencing guidance", bc and bc.sequencing),
        ("Modifier use", "modifier use", bc and bc.modifier_use),
        ("Common denial causes", "common denial causes", bc and bc.denial_causes),
    ]
    updates = sorted(ctx.record.policy_updates or [], key=lambda u: u.date, reverse=True)
    policy_table = updates and table(
        ["Date", "Payer", "Change", "Source"],
        [(u.date.isoformat(), u.payer, u.summary, u.source or "") for u in updates],
    )
    return _render("billing_policy.md.j2", ctx, considerations=considerations, policy_table=policy_table)


def methodology(ctx: EditionContext) -> Trusted:
    """Methodology & Sources: every source file, the summarising rules, notices and the toolkit version."""
    sources = ctx.benchmarks.sources if ctx.benchmarks else ()
    sources_table = sources and table(
        ["File", "Publisher", "Payer", "As of", "Version", "Rows"],
        [
            (
                s.file_name,
                s.publisher or "",
                s.payer,
                str(s.last_updated_on or ""),
                s.schema_version or "",
                f"{s.rows_kept:,}",
            )
            for s in sources
        ],
        "lllllr",
    )
    warnings = [f"{s.file_name}: {w}" for s in sources for w in s.warnings]
    return _render(
        "methodology.md.j2",
        ctx,
        sources_table=sources_table,
        warnings=warnings,
        method_notes=list(METHOD_NOTES),
        version=__version__,
    )


def show(markdown: str) -> None:
    """Display section Markdown as a notebook output (``text/markdown``, which both assembly engines read)."""
    from IPython.display import Markdown, display

    display(Markdown(markdown))
