"""The rate-distribution figure of the benchmark section, drawn from the benchmarks result."""

from __future__ import annotations

import io
from pathlib import Path

from cptpub import escape
from cptpub.atomic import write_atomic
from cptpub.sections.markdown import Trusted

# SVG output that is byte-identical across runs: fixed hash salt, no date, text as paths (no font dependence).
_RC: dict = {"svg.hashsalt": "cptpub", "svg.fonttype": "path", "font.family": "DejaVu Sans", "font.size": 9}


def rate_distribution_figure(ctx, figures_dir: Path) -> Trusted:
    """Draw the per-payer distribution of dollar rates with Medicare marked; return the Markdown that shows it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = ctx.benchmarks
    rates = b.rates
    payers = [s.payer for s in b.by_payer]
    figures_dir.mkdir(parents=True, exist_ok=True)
    path = figures_dir / f"cpt-{ctx.code}-rates.svg"
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.0, 0.55 * len(payers) + 1.6))
        data = [rates.loc[rates["payer"] == p, "negotiated_rate"].to_numpy() for p in payers]
        positions = list(range(len(payers), 0, -1))
        ax.boxplot(
            data,
            positions=positions,
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#0b5394", "linewidth": 2},
        )
        for pos, values in zip(positions, data, strict=True):
            jitter = [pos + ((i % 5) - 2) * 0.05 for i in range(len(values))]
            ax.scatter(values, jitter, s=10, color="#444444", alpha=0.6, zorder=3)
        ax.set_yticks(positions, payers)
        ax.set_xlabel("Negotiated rate (US dollars)")
        ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("${x:,.0f}"))
        # The same Medicare amounts the table shows (none where Medicare pays nothing nationally).
        facility = b.medicare.reference(True) if b.medicare else None
        nonfacility = b.medicare.reference(False) if b.medicare else None
        lines = [("facility", facility, "#b45f06", "--", "dashed")]
        if nonfacility != facility:
            lines.append(("non-facility", nonfacility, "#6aa84f", ":", "dotted"))
        marks = []
        for label, amount, color, style, style_name in lines:
            if amount is None:
                continue
            ax.axvline(amount, color=color, linestyle=style, linewidth=1.5, label=f"Medicare {label} ${amount:,.2f}")
            marks.append(f"a {style_name} line marks the Medicare {label} amount of ${amount:,.2f}")
        if marks:
            ax.legend(loc="lower right", frameon=False)
        title = f"CPT {ctx.code}: negotiated rates by payer"
        if ctx.demo:
            title += " (DEMO DATA, not real prices)"
        ax.set_title(title, loc="left")
        ax.grid(axis="x", color="#dddddd")
        ax.set_axisbelow(True)
        fig.tight_layout()
        svg = io.BytesIO()
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    write_atomic(path, svg.getvalue())

    medians = "; ".join(f"{s.payer} median ${s.median:,.2f} over {s.n_rates} rates" for s in b.by_payer)
    alt = f"Box plot of negotiated rates for CPT {ctx.code} by payer: {medians}."
    if marks:
        described = "; ".join(marks)
        alt += f" {described[0].upper()}{described[1:]}."
    if ctx.demo:
        alt += " Demo data, not real prices."
    caption = escape.md(f"Distribution of negotiated rates for CPT {ctx.code} per payer, Medicare marked.")
    return Trusted(f"![{caption}]({path.as_posix()}){{fig-alt={escape.md_attribute(alt)}}}")
