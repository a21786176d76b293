"""The demo publications, read as a user reads them: every section in order, the tables, the figure, and numbers
equal to an independent computation from the demo files."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from . import expected

SECTIONS = [
    "Summary & Overview",
    "Billing Code Overview",
    "Clinical & Coding Specifications",
    "Clinical Context",
    "Coding Specifications",
    "Reimbursement Benchmarks",
    "Payer Notes",
    "Billing Considerations",
    "Policy Updates",
    "Methodology & Sources",
]
PAYERS = ["Aetna", "Blue Cross Blue Shield", "Cigna Health", "UnitedHealthcare", "Medicare"]


class Page(HTMLParser):
    """Headings, table rows and images of an HTML page."""

    def __init__(self, html: str):
        super().__init__()
        self.headings: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[dict] = []
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        for buffer in (self._heading, self._cell):
            if buffer is not None:
                buffer.append(data)


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def outputs(built_demo: Path) -> dict[str, Path]:
    dist = built_demo / "dist"
    return {
        "html": dist / "cpt-20702.html",
        "pdf": dist / "cpt-20702.pdf",
        "html05": dist / "cpt-20705.html",
        "pdf05": dist / "cpt-20705.pdf",
        "record": built_demo / "data" / "codes" / "20702.yaml",
    }


def test_pdf_has_every_section_in_order_with_the_title(outputs):
    text = squash(pdf_text(outputs["pdf"]))
    assert "CPT 20702: Intramedullary Drug Delivery Device Preparation and Insertion" in text
    positions = []
    for heading in SECTIONS:
        # the table of contents lists headings first; look for each after the previous one
        start = positions[-1] if positions else text.rindex("Summary & Overview")
        position = text.find(heading, start)
        assert position >= 0, f"{heading!r} missing (or out of order) in the PDF"
        positions.append(position)
    # Payer Notes: one subsection per payer, in the catalogue's order, each holding that payer's notes from the record
    notes = text[positions[SECTIONS.index("Payer Notes")] : positions[SECTIONS.index("Billing Considerations")]]
    record = yaml.safe_load(outputs["record"].read_text())
    at = 0
    for index, payer in enumerate(PAYERS):
        at = notes.find(payer, at)
        assert at >= 0, f"no Payer Notes subsection for {payer} (or out of order)"
        end = min([f for p in PAYERS[index + 1 :] if (f := notes.find(p, at + len(payer))) >= 0], default=len(notes))
        mine = [n for n in record["payer_notes"] if n["payer"] == payer]
        assert mine, f"the 20702 record has no note for {payer}"
        for note in mine:
            opening = " ".join(note["note"].split()[:6])
            assert f"{note['topic']}: {opening}" in notes[at:end], f"{payer}: note {note['topic']!r} not in its section"
        at = end


def test_html_has_every_section_in_order(outputs):
    page = Page(outputs["html"].read_text())
    found = [h for h in page.headings if h in SECTIONS]
    assert found == SECTIONS
    assert all(any(p in h for h in page.headings) for p in PAYERS)


def test_benchmark_table_equals_an_independent_computation(outputs, demo_inputs: Path):
    page = Page(outputs["html"].read_text())
    # the main table's rows (nine columns); the split table below it has five
    table = {row[0]: row for row in page.rows if len(row) == 9 and row[0] in {*PAYERS, "All commercial payers"}}
    pdf = squash(pdf_text(outputs["pdf"]))
    for e in expected.benchmarks(demo_inputs, "20702"):
        row = table[e.payer]
        shown = [
            e.payer,
            str(e.n_rates),
            str(e.n_groups),
            expected.money(e.minimum),
            expected.money(e.p25),
            expected.money(e.median),
            expected.money(e.p75),
            expected.money(e.maximum),
            f"{e.pct_of_medicare:,.1f}%",
        ]
        assert row == shown, f"{e.payer}: HTML shows {row}, independent computation gives {shown}"
        # the same figures in the PDF's table row
        assert " ".join(shown[1:]) in pdf, f"{e.payer} row not found in the PDF"


def test_text_and_table_state_the_same_medicare_amount_and_median(outputs, demo_inputs: Path):
    facility, nonfacility = expected.medicare(demo_inputs, "20702")
    overall = expected.benchmarks(demo_inputs, "20702")[-1]
    html = squash(re.sub(r"<[^>]+>", " ", outputs["html"].read_text()))
    assert f"is {expected.money(facility)} in a facility setting and {expected.money(nonfacility)}" in html
    assert f"the median is {expected.money(overall.median)}, {overall.pct_of_medicare:,.1f}% of the Medicare" in html
    pdf = squash(pdf_text(outputs["pdf"]))
    assert f"the median is {expected.money(overall.median)}" in pdf


def test_modifier_table_and_figure_with_alt_text(outputs):
    page = Page(outputs["html"].read_text())
    assert ["Modifier", "Description", "When to Use"] in page.rows
    figures = [
        img for img in page.images if "rates" in (img.get("alt") or "").lower() or "Box plot" in (img.get("alt") or "")
    ]
    assert figures, "the rate distribution figure is missing"
    assert figures[0]["alt"].startswith("Box plot of professional rates by payer")  # the cell's #| fig-alt
    assert figures[0]["src"].startswith("data:image/svg+xml")
    assert all(img.get("alt") for img in page.images)


def test_demo_data_is_labelled_in_html_and_pdf(outputs):
    """The banner on the page, every PDF page (title block and footers), and the figure's title."""
    from cptpub.assemble.base import DEMO_NOTICE

    html = outputs["html"].read_text()
    assert squash(re.sub(r"<[^>]+>", " ", html)).count(DEMO_NOTICE) >= 1
    pages = [squash(page.extract_text()) for page in PdfReader(outputs["pdf"]).pages]
    assert all(DEMO_NOTICE in page for page in pages), "a PDF page without the demo notice"
    assert "synthetic demo data" in " ".join(pages)
    # the rates are synthetic; the fee schedule values are CMS's own, and the edition says which is which
    text = squash(re.sub(r"<[^>]+>", " ", html))
    assert "The payer rates below are synthetic demo data" in text
    assert "The Medicare values are CMS's own 2026 national fee schedule figures." in text.replace("\u2019", "'")
    figure = next(img for img in Page(html).images if (img.get("alt") or "").startswith("Box plot"))
    svg = base64.b64decode(figure["src"].split(",", 1)[1]).decode()
    assert "<dc:title>CPT 20702: professional rates by payer (DEMO DATA, not real prices)</dc:title>" in svg


def test_missing_fields_are_stated_in_the_publication(outputs):
    text = squash(pdf_text(outputs["pdf05"]))
    assert "Data not available in the input for ICD-10 pairings." in text
    assert "Data not available in the input for provider taxonomies." in text
    html = squash(re.sub(r"<[^>]+>", " ", outputs["html05"].read_text()))
    assert "Data not available in the input for ICD-10 pairings." in html
