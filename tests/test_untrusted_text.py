"""Untrusted text (records and rate files) appears literally in HTML and PDF and never becomes markup.

Property-based: hypothesis feeds arbitrary Unicode, the markup characters of Markdown, HTML and Typst, very long
strings and control characters through a record, a payer name and a rate source into the real section notebooks
and the real builtin engine (Pandoc + Typst). The notebooks run here in-process on an IPython shell set up as the
build's kernel is (``cptpub.sections.kernel``: DataFrame tables, inline code), so every path text takes to the
page is exercised (inline code, helpers, DataFrame cells, the figure) while hundreds of builds stay within
minutes; one test below runs the whole CLI path (ingest, Papermill, render) on a fixed hostile string.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from cptpub import escape, sections
from cptpub.assemble import get_engine
from cptpub.assemble.base import AssemblyJob
from cptpub.demo.generator import PPRRVU_FILE_NAME
from cptpub.edition import edition_meta
from cptpub.inline import MARKDOWN, USER_EXPRESSIONS, inline_expressions
from cptpub.records.schema import CodeRecord
from cptpub.sections import kernel

from .conftest import REPO, run_cptpub

MARKUP = "#*_[]$<>@\\`{}|~^&%\"'=+-/:;!?.,()\t\n"
# Text whose every character the PDF's fonts have, so it can also be found literally in the PDF's text.
# Text that is empty once control characters and spaces are dropped legitimately renders differently (the
# "not available" sentence), so every example has some visible content.
visible = escape.clean
printable_markup = st.text(alphabet=MARKUP + "abcXYZ019 ", min_size=1, max_size=60).filter(visible)
any_unicode = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120).filter(visible)
very_long = st.text(alphabet=MARKUP + "abcdefgh ", min_size=3000, max_size=6000).filter(visible)
EXAMPLES = 12  # per property: 12 + 12 + 5 full runs of the notebooks and HTML and PDF renders in make test


class Structure(HTMLParser):
    """Element names and attribute names of a page: what hostile text must never add to."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: Counter[str] = Counter()
        self.attributes: Counter[str] = Counter()
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements[tag] += 1
        # Pandoc writes a table's style="width:100%" when its column widths (which follow the contents) add up to
        # exactly 100 %: layout from the text's length, never markup from it.
        self.attributes.update(f"{tag}@{name}" for name, _ in attrs if (tag, name) != ("table", "style"))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def base(ingested_project: Path, tmp_path_factory):
    """The 20702 record and the demo store, shared by every example."""
    record = yaml.safe_load((ingested_project / "data" / "codes" / "20702.yaml").read_text())
    ctx = sections.load_context("20702", ingested_project / "data", ingested_project / "build" / "rates.duckdb")
    return record, ctx, tmp_path_factory.mktemp("untrusted")


def execute_in_process(source: Path, executed: Path) -> None:
    """Run a section notebook on an in-process IPython shell prepared like the build's kernel; save it executed
    the way the build's Papermill client does (outputs as mime bundles, inline results in ``user_expressions``)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.reset(new_session=False)
    kernel.setup()
    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.metadata[USER_EXPRESSIONS] = [
                {"expression": x, "result": {"status": "ok", "data": {MARKDOWN: str(kernel.evaluate(x))}}}
                for x in inline_expressions(cell.source)
            ]
        elif cell.cell_type == "code":
            with capture_output() as captured:
                result = shell.run_cell(cell.source, store_history=False)
            result.raise_error()
            cell.outputs = [
                nbformat.v4.new_output("display_data", data=o.data, metadata=o.metadata or {}) for o in captured.outputs
            ]
            if result.result is not None:
                data, metadata = shell.display_formatter.format(result.result)
                cell.outputs.append(
                    nbformat.v4.new_output("execute_result", data=data, metadata=metadata, execution_count=1)
                )
    nbformat.write(notebook, executed)


def render(ctx, workdir: Path, formats=("html", "pdf")) -> dict[str, Path]:
    """The real section notebooks run for ``ctx`` and assembled exactly as a build assembles them."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    original = sections.load_edition
    sections.load_edition = lambda *args, **kwargs: ctx  # what the build's saved context gives the notebooks
    try:
        executed = []
        for source in sorted((REPO / "notebooks").glob("*.ipynb")):
            executed.append(workdir / source.name)
            execute_in_process(source, executed[-1])
    finally:
        sections.load_edition = original
    job = AssemblyJob(meta=edition_meta(ctx), notebooks=tuple(executed), workdir=workdir, report_dir=REPO / "report")
    return get_engine("builtin").render(job, formats, workdir / "out")


def with_text(base, text: str):
    """The 20702 context with ``text`` in a title (inline code), a table cell (DataFrame), a bullet (helpers), a
    payer's name (inline code, DataFrame, figure) and a rate source's publisher name."""
    record, ctx, _ = base
    data = dict(record)
    data["title"] = text
    data["service_type"] = text
    data["modifiers"] = [{**record["modifiers"][0], "description": text}]
    data["payer_notes"] = [{"payer": "Aetna", "topic": text, "note": text, "source": text}]
    b = ctx.benchmarks
    source = dataclasses.replace(b.sources[0], publisher=text)
    payer = f"Payer {text}"
    first = dataclasses.replace(b.by_payer[0], payer=payer)
    rates = b.rates.assign(payer=b.rates["payer"].replace(b.by_payer[0].payer, payer))
    benchmarks = dataclasses.replace(
        b, sources=(source, *b.sources[1:]), by_payer=(first, *b.by_payer[1:]), rates=rates
    )
    return dataclasses.replace(ctx, record=CodeRecord.model_validate(data), benchmarks=benchmarks)


@pytest.fixture(scope="module")
def baseline(base):
    html = render(with_text(base, "plain words"), base[2] / "baseline", ("html",))["html"].read_text()
    return Structure(html)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check(base, baseline, text: str, *, pdf_literal: bool) -> None:
    outputs = render(with_text(base, text), base[2] / "example")
    page = Structure(outputs["html"].read_text())
    assert page.elements == baseline.elements, "hostile text changed the page's elements"
    assert page.attributes == baseline.attributes, "hostile text changed the page's attributes"
    shown = escape.clean(text)
    assert shown in " ".join(" ".join(page.text).split()) or not shown
    reader = PdfReader(outputs["pdf"])  # the PDF compiled and opens
    if pdf_literal and shown:
        pdf = squash("".join(p.extract_text() for p in reader.pages))
        assert squash(shown) in pdf


slow = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@slow
@given(text=printable_markup)
def test_markup_characters_appear_literally_in_html_and_pdf(base, baseline, text):
    check(base, baseline, text, pdf_literal=True)


@slow
@given(text=any_unicode)
def test_any_unicode_and_control_characters_compile_and_add_no_markup(base, baseline, text):
    check(base, baseline, text, pdf_literal=False)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=very_long)
def test_very_long_strings_compile_and_stay_literal(base, baseline, text):
    check(base, baseline, text, pdf_literal=False)


HOSTILE = (
    '# Heading? <script>alert("x")</script> **bold** $x^2$ ] [link](javascript:alert(1)) '
    "@cite @fig-rates #set page(width: 1pt) {=html} {{< env HOME >}} `{python} 1+1` ``code``"
)


def test_hostile_text_through_the_real_cli(project: Path, demo_inputs: Path):
    """Record text and a payer file's entity name, through `cptpub ingest` and `cptpub build` (Papermill)."""
    import gzip
    import json

    path = project / "data" / "codes" / "20702.yaml"
    record = yaml.safe_load(path.read_text())
    record["service_type"] = HOSTILE
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    document = json.loads(gzip.decompress((demo_inputs / "demo-aetna-in-network-rates.json.gz").read_bytes()))
    document["reporting_entity_name"] = HOSTILE
    hostile_file = project / "hostile.json"
    hostile_file.write_text(json.dumps(document))
    run_cptpub(project, "ingest", "pfs", str(demo_inputs / PPRRVU_FILE_NAME))
    run_cptpub(project, "ingest", "tic", str(hostile_file), "--payer", "Aetna")
    run_cptpub(project, "build", "20702", "--engine", "builtin")
    html = (project / "dist" / "cpt-20702.html").read_text()
    assert "<script>alert" not in html and 'href="javascript' not in html
    page = Structure(html)
    text = " ".join(" ".join(page.text).split())
    assert text.count(HOSTILE) >= 2  # the service type bullet and the Methodology source table
    pdf = squash("".join(p.extract_text() for p in PdfReader(project / "dist" / "cpt-20702.pdf").pages))
    assert squash(HOSTILE) in pdf


def test_a_nul_byte_in_a_title_renders(base):
    """Found by hypothesis: a NUL in record text must not reach a command-line argument."""
    render(with_text(base, "before\x00after"), base[2] / "nul")


BIDI_AND_INVISIBLE = (
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u200c\u200d\u2060\ufeff"
)


def test_every_invisible_formatting_character_of_this_unicode_is_dropped():
    import sys
    import unicodedata

    format_chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    assert format_chars and all(escape.clean(f"a{c}b") == "ab" for c in format_chars)
    assert [c for c in format_chars if c in escape.typst_string(c)] == []


def test_a_right_to_left_override_in_a_title_does_not_reverse_the_pdf_or_the_page(base):
    """U+202E before "Def Ghi" made Typst lay out "ihG feD"; every bidi control and zero-width character goes."""
    title = f"Abc {BIDI_AND_INVISIBLE[4]}Def Ghi {BIDI_AND_INVISIBLE}Jkl\ufeffMno"
    outputs = render(with_text(base, title), base[2] / "bidi")
    page = outputs["html"].read_text(encoding="utf-8")
    assert "Abc Def Ghi JklMno" in page
    assert not [c for c in BIDI_AND_INVISIBLE if c in page]
    text = "".join(p.extract_text() for p in PdfReader(outputs["pdf"]).pages)
    assert "AbcDefGhiJklMno" in squash(text), squash(text)[:400]
    assert "ihGfeD" not in squash(text)
