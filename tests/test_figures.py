"""The rate figure: what a worker keeps from one figure to the next never changes another edition's figure."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from cptpub.sections import figure_svg, figures, load_context


@pytest.fixture(scope="module")
def contexts(ingested_project: Path):
    data, store = ingested_project / "data", ingested_project / "build" / "rates.duckdb"
    return [load_context(code, data, store) for code in ("20702", "27447")]


def alone(ctx) -> bytes:
    """The figure drawn with nothing kept from an earlier figure (no layout renderer, no text laid out before)."""
    figures._layout.__dict__.clear()
    figure_svg._local.__dict__.clear()
    return figures.rates_figure(ctx).svg


def test_a_figure_after_another_is_the_figure_drawn_alone(contexts):
    first, second = contexts
    expected = [alone(first), alone(second)]
    assert expected[0] != expected[1]
    figures._layout.__dict__.clear()
    drawn = [figures.rates_figure(first).svg]
    kept = figures._layout.renderer
    drawn += [figures.rates_figure(second).svg, figures.rates_figure(first).svg]
    assert figures._layout.renderer is kept, "the same size: the layout renderer (and its text metrics) is reused"
    assert drawn == [expected[0], expected[1], expected[0]]


def test_the_shared_layout_renderer_measures_as_a_new_canvas_would(contexts, monkeypatch):
    """The bytes of matplotlib's own Agg canvas (a new renderer per figure), as pyplot's figures have."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    shared = [figures.rates_figure(ctx).svg for ctx in contexts for _ in range(2)]
    monkeypatch.setattr(figures, "_layout_canvas", lambda: FigureCanvasAgg)
    assert shared == [figures.rates_figure(ctx).svg for ctx in contexts for _ in range(2)]


@pytest.mark.parametrize("enabled", [True, False])
def test_drawing_leaves_the_garbage_collector_as_it_was(contexts, enabled: bool):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        figures.rates_figure(contexts[0])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
