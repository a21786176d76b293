"""The rate figure's fast SVG path (glyph layouts, outlines and metrics kept per thread; font height metrics given to
Text) writes the bytes of matplotlib's own ``print_svg`` and ``RendererAgg``, for figures of every shape."""

from __future__ import annotations

import random
import threading
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest

from cptpub.analysis.benchmarks import MedicareAmounts
from cptpub.sections import figure_svg, figures

NAMES = [
    "Aetna",
    "Blue Cross $Blue$ Shield",  # "$" pairs: text, not mathtext
    "Kaiser \u00e9\u00e8 Permanente",
    "Payer\x07 with\tcontrol\x1b chars",
    "A$B$C $x^2$",
    "\u03a9mega Health \u2211",
    "Centene \u202eevil",
    "  spaced   name  ",
    "Very long payer name that goes on and on, Incorporated",
    "\u0399\u03b1\u03c4\u03c1\u03b9\u03ba\u03ae",
    "Cigna Health",
    "UnitedHealthcare",
    "Zero",
    "Molina",
]


def medicare(facility: float | None, nonfacility: float | None, status: str = "A") -> MedicareAmounts:
    return MedicareAmounts(2026, nonfacility, facility, "090", status, 1.0, None, None, 33.4, "pfs-2026")


def context(seed: int, names=NAMES):
    """A figure's input: 1 to 12 payers with 1 to 200 rates each, on scales from dollars to tens of thousands, with
    both, one or no Medicare lines, demo or not."""
    r = random.Random(seed)
    payers = r.sample(names, min(len(names), r.choice([1, 2, 3, 4, 6, 12])))
    scale = r.choice([1, 10, 100, 1000, 20000])
    rows = [(p, round(r.lognormvariate(0, 0.5) * scale, 2)) for p in payers for _ in range(r.choice([1, 3, 40, 200]))]
    lines = [None, medicare(None, None), medicare(scale * 0.8, scale * 0.8), medicare(None, scale * 1.1)]
    lines += [medicare(scale * 0.7, None), medicare(round(scale * 0.7, 2), round(scale * 1.2, 2), "C")]
    lines += [medicare(round(scale * 0.7, 2), round(scale * 1.2, 2))] * 2
    benchmarks = SimpleNamespace(
        by_payer=tuple(SimpleNamespace(payer=p) for p in payers),
        rates=pd.DataFrame(rows, columns=["payer", "negotiated_rate"]),
        medicare=lines[seed % len(lines)],
    )
    return SimpleNamespace(benchmarks=benchmarks, code=r.choice(["20702", "27447", "99213", "0001U"]), demo=seed % 2)


CONTEXTS = [context(seed) for seed in range(16)]


def drawn(contexts) -> list[bytes]:
    return [figures.rates_figure(ctx).svg for ctx in contexts]


def drawn_plainly(contexts) -> list[bytes]:
    """The figures drawn by matplotlib's own ``print_svg`` and a plain ``RendererAgg``, nothing kept from before."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figure_svg, "fast_path_available", lambda: False)
        figures._layout.__dict__.clear()
        try:
            return drawn(contexts)
        finally:
            figures._layout.__dict__.clear()


@pytest.fixture(scope="module")
def expected() -> list[bytes]:
    svgs = drawn_plainly(CONTEXTS)
    assert len(set(svgs)) == len(CONTEXTS)
    return svgs


def test_the_installed_matplotlib_takes_the_fast_path():
    assert figure_svg.fast_path_available(), "a matplotlib not in figure_svg.CHECKED: compare its bytes, then add it"


def test_fast_figures_are_the_bytes_of_matplotlibs_own_print_svg(expected):
    figures._layout.__dict__.clear()
    assert drawn(CONTEXTS) == expected
    # Now every string, glyph and font comes from what earlier figures left, in another order.
    assert drawn(CONTEXTS[::-1]) == expected[::-1]


def test_figures_drawn_in_threads_at_once_are_the_figures_drawn_alone(expected):
    results: dict[int, list[bytes]] = {}

    def draw(n: int) -> None:
        order = list(range(len(CONTEXTS)))[n::2] + list(range(len(CONTEXTS)))[1 - n :: 2]
        results[n] = [b"" for _ in CONTEXTS]
        for i in order:
            results[n][i] = figures.rates_figure(CONTEXTS[i]).svg

    threads = [threading.Thread(target=draw, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {0: expected, 1: expected}


def test_a_glyph_the_font_lacks_warns_on_every_figure_as_matplotlib_warns():
    ctx = context(3, names=["\u4e2d\u6587 Health", "Aetna", "Cigna Health"])

    def warned() -> tuple[bytes, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            svg = figures.rates_figure(ctx).svg
        return svg, [str(w.message) for w in caught]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figure_svg, "fast_path_available", lambda: False)
        figures._layout.__dict__.clear()
        plain = [warned(), warned()]
    figures._layout.__dict__.clear()
    assert all(any("missing from font(s) DejaVu Sans" in w for w in warns) for _, warns in plain)
    assert [warned(), warned()] == plain


def test_figures_are_the_same_when_the_thread_forgets_older_strings(expected, monkeypatch):
    monkeypatch.setattr(figure_svg, "_REMEMBERED_STRINGS", 3)
    figure_svg._local.__dict__.clear()  # a new thread's state, keeping at most 3 layouts and 3 measurements
    assert drawn(CONTEXTS) == expected
    kept = figure_svg._local.text2path
    assert (len(kept._layouts), len(kept._metrics)) == (3, 3)
