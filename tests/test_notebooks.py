"""The notebooks are the publication: what an editor writes in a section notebook is what gets published.

Through the real CLI (Papermill, notebooks run in the workers, builtin engine): headings and prose live in Markdown
cells, inline code is evaluated in the notebook's namespace, and a DataFrame cell and a matplotlib cell appended to a
notebook appear in the HTML and the PDF with their captions and numbered cross-references, built by `cptpub build
--all` (no --force).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from pypdf import PdfReader

from .conftest import REPO, run_cptpub
from .test_batch import batch_project

SEED_HEADINGS = (
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
)


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.images: list[dict] = []
        self.links: list[tuple[str, str]] = []
        self.captions: list[str] = []
        self._cell: list[str] | None = None
        self._link: str | None = None
        self._caption: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "a":
            self._link = attributes.get("href")
            self.links.append((self._link or "", ""))
        elif tag in ("caption", "figcaption"):
            self._caption = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag in ("caption", "figcaption") and self._caption is not None:
            self.captions.append(" ".join("".join(self._caption).split()))
            self._caption = None
        elif tag == "a":
            self._link = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)
        if self._link is not None:
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)


def pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


def markdown_cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


def test_the_seed_headings_are_in_notebook_markdown_cells():
    headings = [
        line.lstrip("#").strip()
        for path in sorted((REPO / "notebooks").glob("*.ipynb"))
        for source in markdown_cells(path)
        for line in source.splitlines()
        if line.startswith("#")
    ]
    for heading in SEED_HEADINGS:
        assert heading in headings
    assert [h for h in headings if h in SEED_HEADINGS] == list(SEED_HEADINGS)  # in the seed's order


APPENDED_CELLS = [
    nbformat.v4.new_markdown_cell(
        "## Extra analysis\n\nAs @tbl-extra and @fig-extra show, CPT `{python} e.code` has "
        "`{python} len(e.benchmarks.by_payer)` payers with rates."
    ),
    nbformat.v4.new_code_cell(
        "#| label: tbl-extra\n#| tbl-cap: Rates counted per payer (extra table)\n"
        "import pandas as pd\n"
        "pd.DataFrame({'Payer': [s.payer for s in e.benchmarks.by_payer],"
        " 'Rates': [s.n_rates for s in e.benchmarks.by_payer]})"
    ),
    nbformat.v4.new_code_cell(
        "#| label: fig-extra\n#| fig-cap: Median rate per payer (extra chart)\n#| fig-alt: Bar chart of medians\n"
        "import matplotlib.pyplot as plt\n"
        "print('stream output is not published')\n"
        "fig, ax = plt.subplots(figsize=(4, 2))\n"
        "ax.bar([s.payer[:4] for s in e.benchmarks.by_payer], [s.median for s in e.benchmarks.by_payer])\n"
        "plt.show()"
    ),
    nbformat.v4.new_code_cell("#| echo: true\nshown_code = 'EchoedCodeLine'"),
    nbformat.v4.new_code_cell("#| include: false\ncp.show('IncludeFalseText')"),
    nbformat.v4.new_code_cell("#| output: false\ncp.show('OutputFalseText')"),
]


def test_an_editor_edits_a_heading_and_appends_a_table_and_a_chart(tmp_path: Path, ingested_project: Path):
    root = batch_project(tmp_path / "p", ingested_project, ("20702",))
    run_cptpub(root, "build", "--all", "--engine", "builtin")
    before = pdf_text(root / "dist" / "cpt-20702.pdf")
    assert "Payer Notes" in before and "Notes by Payer" not in before

    path = root / "notebooks" / "03-benchmarks.ipynb"
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("## Payer Notes", "## Notes by Payer")
    notebook.cells.extend(APPENDED_CELLS)
    nbformat.write(notebook, path)
    rebuilt = run_cptpub(root, "build", "--all", "--engine", "builtin")
    assert "1 to build, 0 up to date" in rebuilt.stdout

    html = (root / "dist" / "cpt-20702.html").read_text()
    page = Page(html)
    assert ["Payer", "Rates"] in page.rows
    assert ["Aetna", "16"] in page.rows  # the frame's own cells
    extra_table = next(c for c in page.captions if "extra table" in c)
    extra_figure = next(c for c in page.captions if "extra chart" in c)
    table_number = re.match(r"Table (\d+): Rates counted per payer", extra_table).group(1)
    figure_number = re.match(r"Figure (\d+): Median rate per payer", extra_figure).group(1)
    assert ("#tbl-extra", f"Table {table_number}") in page.links
    assert ("#fig-extra", f"Figure {figure_number}") in page.links
    assert "CPT 20702 has 4 payers with rates." in " ".join(re.sub(r"<[^>]+>", " ", html).split())
    chart = [img for img in page.images if img.get("alt") == "Bar chart of medians"]
    assert chart and chart[0]["src"].startswith("data:image/png")
    assert "EchoedCodeLine" in html and "shown_code" in html
    for hidden in ("IncludeFalseText", "OutputFalseText", "stream output is not published"):
        assert hidden not in html

    pdf = pdf_text(root / "dist" / "cpt-20702.pdf")
    assert "Notes by Payer" in pdf and "Payer Notes" not in pdf
    assert f"Table {table_number}: Rates counted per payer (extra table)" in pdf
    assert f"Figure {figure_number}: Median rate per payer (extra chart)" in pdf
    assert f"As Table {table_number} and Figure {figure_number} show" in pdf
    assert "Aetna 16" in pdf
    assert sum(len(page.images) for page in PdfReader(root / "dist" / "cpt-20702.pdf").pages) >= 1

    again = run_cptpub(root, "build", "--all", "--engine", "builtin")
    assert "all up to date, nothing to build" in again.stdout


def test_failing_inline_code_stops_the_build_naming_the_cell(tmp_path: Path, ingested_project: Path):
    root = batch_project(tmp_path / "p", ingested_project, ("20702",))
    path = root / "notebooks" / "01-summary.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_markdown_cell("Broken: `{python} no_such_name + 1`."))
    nbformat.write(notebook, path)
    result = run_cptpub(root, "build", "20702", "--engine", "builtin", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "01-summary.ipynb" in output
    assert f"cell {len(notebook.cells)}" in output
    assert "NameError" in output and "no_such_name" in output


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")))
def test_notebook_prose_has_no_symbols_for_words(name: str):
    """Running prose says "and", "number", "at least": "&", "#" and "≥" only in the seed's headings."""
    for source in markdown_cells(REPO / "notebooks" / name):
        for line in source.splitlines():
            if line.startswith("#"):
                continue
            prose = re.sub(r"`\{python\}[^`]*`", "", line)
            assert not re.search(r"[&#≥]", prose), line
