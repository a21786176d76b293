"""The rate-distribution figure of the benchmark section, drawn from the benchmarks result."""

from __future__ import annotations

import functools
import gc
import threading

from cptpub import escape

# SVG output that is byte-identical across runs: fixed hash salt, no date, text as paths (no font dependence).
_RC: dict = {
    "svg.hashsalt": "cptpub",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "text.parse_math": False,
}  # a payer name with "$" signs is text, not mathtext


class SvgFigure:
    """A drawn figure a cell displays as ``image/svg+xml`` (byte-identical across runs)."""

    def __init__(self, svg: bytes) -> None:
        self.svg = svg

    def _repr_svg_(self) -> str:
        return self.svg.decode("utf-8")


def rates_figure(ctx) -> SvgFigure | None:
    """The per-payer distribution of professional dollar rates with the Medicare amounts marked (None without
    professional rates)."""
    b = ctx.benchmarks
    if b is None or not b.by_payer:
        return None
    import matplotlib

    # One figure at a time: rcParams (the figure's settings, e.g. the SVG hash salt) are global, and a figure drawn in
    # another thread meanwhile would restore them under this one.
    with _drawing:
        # Matplotlib makes tens of thousands of short-lived objects here: collecting in between rescans them (and, in
        # a worker, the long-lived heap) for nothing. The figure's own cycles are collected after it, as before.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with matplotlib.rc_context(_RC):
                svg = _draw(ctx)
        finally:
            if collecting:
                gc.enable()
    return SvgFigure(svg)


def _draw(ctx) -> bytes:
    """The figure's SVG, drawn with the figure's rcParams in effect."""
    import matplotlib
    from matplotlib.figure import Figure

    from cptpub.sections.figure_svg import figure_svg

    b = ctx.benchmarks
    rates = b.rates
    payers = [s.payer for s in b.by_payer]
    # Not pyplot: the figure is never shown, so it needs no figure manager or backend hooks. Laid out with
    # Agg's text metrics, as pyplot's backends (Agg, inline, and the GUI ones built on Agg) would.
    fig = Figure(figsize=(7.0, 0.55 * len(payers) + 2.0))
    _layout_canvas()(fig)
    ax = fig.subplots()
    payer_of_rate, rate = rates["payer"].to_numpy(), rates["negotiated_rate"].to_numpy()
    data = [rate[payer_of_rate == p] for p in payers]
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
    # Control characters in a name would make the SVG invalid XML (matplotlib copies labels into comments).
    ax.set_yticks(positions, [escape.clean(name) for name in payers])
    ax.set_xlabel("Professional rate (US dollars)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("${x:,.0f}"))
    # The same Medicare amounts the table shows (none where Medicare pays nothing nationally).
    facility = b.medicare.reference(True) if b.medicare else None
    nonfacility = b.medicare.reference(False) if b.medicare else None
    lines = [("facility", facility, "#b45f06", "--")]
    if nonfacility != facility:
        lines.append(("non-facility", nonfacility, "#6aa84f", ":"))
    marked = False
    for label, amount, color, style in lines:
        if amount is not None:
            label = f"Medicare {label} ${amount:,.2f}"
            ax.axvline(amount, color=color, linestyle=style, linewidth=1.5, label=label)
            marked = True
    if marked:  # below the plot, never on the data
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, frameon=False)
    title = f"CPT {ctx.code}: professional rates by payer"
    if ctx.demo:
        title += " (DEMO DATA, not real prices)"
    # At the top (y=1), where matplotlib's automatic placement puts it on this figure, whose x axis is at the
    # bottom: the automatic placement measures both axes again at the layout and at the draw.
    ax.set_title(title, loc="left", y=1.0)
    ax.grid(axis="x", color="#dddddd")
    ax.set_axisbelow(True)
    fig.tight_layout()
    # The title goes into the SVG's metadata too: the drawn text is paths, the demo label stays findable.
    # The SVG canvas directly, not ``savefig``: after ``tight_layout`` the figure keeps a placeholder layout
    # engine, for which ``savefig`` lays every text out once more in a dry run; the bytes are the same.
    return figure_svg(fig, metadata={"Date": None, "Creator": None, "Title": title})


_drawing = threading.Lock()
_layout = threading.local()  # per thread, as matplotlib's fonts are: the last layout renderer and its key


@functools.cache
def _layout_canvas():
    """An Agg canvas whose renderer, used only to measure text for ``tight_layout`` (the SVG canvas draws), is the
    previous figure's when the size and resolution are the same: matplotlib caches text metrics per renderer, so
    the tick labels, payer names and axis label that editions share are measured once per worker, not once per
    figure (a new canvas makes a new renderer, which measures everything again). The metrics depend on the text,
    font and resolution only, so the bytes are those of a new renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cptpub.sections.figure_svg import layout_renderer

    class LayoutCanvas(FigureCanvasAgg):
        def get_renderer(self):
            key = (*self.get_width_height(physical=True), self.figure.dpi)
            if getattr(_layout, "key", None) != key:
                _layout.renderer, _layout.key = layout_renderer(*key), key
            return _layout.renderer

    return LayoutCanvas
