"""A matplotlib figure printed to SVG with text drawn as paths, the bytes of ``FigureCanvasSVG.print_svg``, faster.

Drawing text as paths, the SVG renderer lays out every string with FreeType and HarfBuzz and loads each glyph's
outline, on every figure; a new renderer per figure also measures every string again. The strings repeat from one
edition's figure to the next (tick labels, payer names, the axis label), so here each thread keeps what those steps
produce for a font and a string, and a later figure reuses it: the same glyph names, positions, outlines and metrics,
hence the same bytes. Both renderers of a figure (the SVG one, and the Agg one ``tight_layout`` measures with) also
give ``Text`` the font's ascent, descent and line gap at once instead of letting it read them from the font's tables
for every text on every measurement.

This is the one place cptpub relies on matplotlib internals: the SVG renderer's ``_text2path`` attribute (replaced by
a subclass of the public ``TextToPath`` whose public methods remember their results), the renderers'
``_get_font_height_metrics`` hook that ``Text`` asks (answered with the numbers ``Text`` computes without it), and the
steps of ``FigureCanvasSVG.print_svg`` (repeated here to use that renderer). It is used only with the matplotlib
versions it was checked against (``CHECKED``); any other version takes ``print_svg`` and a plain ``RendererAgg``.
``tests/test_figure_svg.py`` compares the bytes of both paths.
"""

from __future__ import annotations

import functools
import io
import threading
from collections import OrderedDict

import matplotlib
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.backends.backend_mixed import MixedModeRenderer
from matplotlib.backends.backend_svg import FigureCanvasSVG, RendererSVG
from matplotlib.font_manager import fontManager, get_font
from matplotlib.ft2font import LoadFlags
from matplotlib.textpath import TextToPath

CHECKED = ("3.11.",)  # matplotlib versions whose renderer and print_svg this module was checked against
_REMEMBERED_STRINGS = 512  # per thread and kind (layouts, metrics): more than the strings figures share

_local = threading.local()  # per thread, as matplotlib's FreeType fonts are


def figure_svg(figure, metadata: dict | None = None) -> bytes:
    """``FigureCanvasSVG(figure).print_svg`` into bytes (which sets the figure's dpi to 72, as it does)."""
    canvas = FigureCanvasSVG(figure)  # the figure's canvas while it draws, as with print_svg
    if not fast_path_available():
        out = io.BytesIO()
        canvas.print_svg(out, metadata=metadata)
        return out.getvalue()
    # print_svg's steps, with a renderer that reuses earlier layouts; a text stream saves its UTF-8 stream writer.
    text = io.StringIO()
    dpi = figure.dpi
    figure.dpi = 72
    width, height = figure.get_size_inches()
    svg = _RendererSVG(width * 72, height * 72, text, image_dpi=dpi, metadata=metadata)
    renderer = MixedModeRenderer(figure, width, height, dpi, svg, bbox_inches_restore=None)
    figure.draw(renderer)
    renderer.finalize()
    return text.getvalue().encode("utf-8")


def layout_renderer(width: int, height: int, dpi: float) -> RendererAgg:
    """An Agg renderer to measure text with (for ``tight_layout``) at the figure's dpi."""
    return (_LayoutRendererAgg if fast_path_available() else RendererAgg)(width, height, dpi)


@functools.cache
def fast_path_available() -> bool:
    return matplotlib.__version__.startswith(CHECKED) and hasattr(RendererSVG(1, 1, io.StringIO()), "_text2path")


class _FontHeightMetrics:
    """What ``Text._get_layout`` computes from the font's OS/2 or hhea table for each text it lays out (the line
    ascent, descent and gap at the figure's dpi, which is the renderer's), computed the same way once per font
    properties and kept by the renderer: for one figure (SVG), or as long as the thread's layout renderer, which
    keeps its text metrics as long (they depend on the font files, which a worker does not change, and the dpi)."""

    figure_dpi: float

    def _get_font_height_metrics(self, prop):
        heights = self.__dict__.setdefault("_font_heights", {})
        key = hash(prop)  # FontProperties are equal when their hashes are, as in matplotlib's metric caches
        if (metrics := heights.get(key)) is None:
            metrics = heights[key] = _font_height_metrics(prop, self.figure_dpi)
        return metrics


def _font_height_metrics(prop, dpi):
    """matplotlib 3.11's ``Text._get_layout`` without a renderer hook, step by step (the same floats)."""
    font = get_font(fontManager._find_fonts_by_props(prop))
    possible = [("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"), ("hhea", "lineGap", "ascent", "descent")]
    for table_name, linegap_key, ascent_key, descent_key in possible:
        table = font.get_sfnt_table(table_name)
        if table is None:
            continue
        fontsize = prop.get_size_in_points()
        units_per_em = font.get_sfnt_table("head")["unitsPerEm"]
        scale = 1 / units_per_em * fontsize * dpi / 72
        return table[ascent_key] * scale, -table[descent_key] * scale, table[linegap_key] * scale
    return None, None, None


class _LayoutRendererAgg(_FontHeightMetrics, RendererAgg):
    def __init__(self, width: int, height: int, dpi: float) -> None:
        super().__init__(width, height, dpi)
        self.figure_dpi = dpi  # the canvas makes its renderer at the figure's dpi


class _RendererSVG(_FontHeightMetrics, RendererSVG):
    figure_dpi = 72  # print_svg's

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if (text2path := getattr(_local, "text2path", None)) is None:
            text2path = _local.text2path = _RememberingTextToPath()
        text2path.fonts.clear()  # fonts are resolved once per figure
        self._text2path = text2path


class _RememberingTextToPath(TextToPath):
    """``TextToPath`` whose glyph layouts and text metrics of plain (non-math) strings are remembered per font and
    string. A string with a character the font lacks is never remembered, so its "Glyph missing" warning is given
    every time, as matplotlib gives it."""

    def __init__(self) -> None:
        super().__init__()
        self._layouts: OrderedDict = OrderedDict()  # (font, string, features, language) -> (glyph info, outlines)
        self._metrics: OrderedDict = OrderedDict()  # (font, string) -> width, height, descent at FONT_SCALE
        self._outlines: dict = {}  # (font, glyph name) -> the glyph's outline, shared by the layouts
        self.fonts: dict = {}  # hash of font properties -> font, for the figure being drawn

    def _get_font(self, prop):
        if (font := self.fonts.get(key := hash(prop))) is None:
            font = self.fonts[key] = super()._get_font(prop)
        else:
            font.set_size(self.FONT_SCALE, self.DPI)  # as TextToPath: Agg may have used the font at another size
        return font

    def get_text_width_height_descent(self, s, prop, ismath):
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        font = self._get_font(prop)  # at FONT_SCALE: the size of the text only scales the result
        key = (font, s)
        if (measured := _recall(self._metrics, key)) is None:
            font.set_text(s, 0.0, flags=LoadFlags.NO_HINTING)
            w, h = font.get_width_height()
            measured = (w / 64.0, h / 64.0, font.get_descent() / 64.0)
            if _has_glyphs(font, s):
                _remember(self._metrics, key, measured)
        # The operations of TextToPath.get_text_width_height_descent, hence the same floats.
        scale = prop.get_size_in_points() / self.FONT_SCALE
        return measured[0] * scale, measured[1] * scale, measured[2] * scale

    def get_glyphs_with_font(
        self, font, s, glyph_map=None, return_new_glyphs_only=False, *, features=None, language=None
    ):
        key = (font, s, features, language)
        if (layout := _recall(self._layouts, key)) is None:
            if not _has_glyphs(font, s):
                return super().get_glyphs_with_font(
                    font, s, glyph_map, return_new_glyphs_only, features=features, language=language
                )
            glyph_info, outlines, _ = super().get_glyphs_with_font(font, s, features=features, language=language)
            for name, (vertices, codes) in outlines.items():
                vertices.flags.writeable = codes.flags.writeable = False
                outlines[name] = self._outlines.setdefault((font, name), (vertices, codes))
            layout = _remember(self._layouts, key, (tuple(glyph_info), outlines))
        glyph_info, outlines = layout
        # As TextToPath: the outlines of glyphs not in glyph_map, added to it unless only new ones are asked for.
        if glyph_map is None:
            glyph_map = OrderedDict()
        glyph_map_new = OrderedDict() if return_new_glyphs_only else glyph_map
        for name, *_ in glyph_info:
            if name not in glyph_map:
                glyph_map_new[name] = outlines[name]
        return list(glyph_info), glyph_map_new, []


def _has_glyphs(font, s: str) -> bool:
    return all(font.get_char_index(ord(char)) for char in s)


def _recall(cache: OrderedDict, key):
    value = cache.get(key)
    if value is not None:
        cache.move_to_end(key)
    return value


def _remember(cache: OrderedDict, key, value):
    cache[key] = value
    if len(cache) > _REMEMBERED_STRINGS:
        cache.popitem(last=False)
    return value
