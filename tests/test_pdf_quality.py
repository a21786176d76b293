"""Publication quality of the real demo editions built by ``cptpub build --engine builtin``.

PDF: title block, running footer, contents, bookmarks, metadata, tables that never split a row (and keep their
caption and header with them), figures inside the text column, a first page that is not blank, and byte-identical
rebuilds. HTML: language, heading order, table headers, alt text, print styles, self-contained, phone-ready.
(The phone and print rendering itself is checked in Chromium by test_browser.py.)
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

from cptpub.assemble.base import DEMO_NOTICE
from cptpub.assemble.config import load_config
from cptpub.dates import display_date
from tests.conftest import copy_project, run_cptpub

CODES = ("20702", "20705")
DPI = 36  # enough to see layout; small and fast


@pytest.fixture(scope="module")
def manifest(built_demo: Path) -> dict[str, dict]:
    document = json.loads((built_demo / "dist" / "manifest.json").read_text(encoding="utf-8"))
    return {entry["code"]: entry for entry in document["editions"]}


def pdf_path(built_demo: Path, code: str) -> Path:
    return built_demo / "dist" / f"cpt-{code}.pdf"


def html_path(built_demo: Path, code: str) -> Path:
    return built_demo / "dist" / f"cpt-{code}.html"


def squash(text: str) -> str:
    """Text without any whitespace: PDF extraction breaks lines where the layout wrapped them."""
    return re.sub(r"\s+", "", text)


def flat_outline(reader: PdfReader) -> list[tuple[int, str, int]]:
    """(level, title, page number) of every bookmark, in order."""
    out: list[tuple[int, str, int]] = []

    def walk(items, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
            else:
                out.append((level, item.title, reader.get_destination_page_number(item) + 1))

    walk(reader.outline, 0)
    return out


class Html(HTMLParser):
    """Headings, tables (caption, header cells, rows), images, links and styles of an edition page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.headings: list[tuple[int, str]] = []  # in <main> only
        self.tables: list[dict] = []
        self.styles: list[str] = []
        self._stack: list[str] = []
        self._text: list[str] | None = None
        self._in_main = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "main":
            self._in_main = True
        if re.fullmatch(r"h[1-6]", tag) and self._in_main:
            self._text = []
        if tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": []})
        if tag in ("caption", "th", "td"):
            self._text = []
        if tag == "tr" and self.tables:
            self._row: list[str] = []
        if tag == "style":
            self.styles.append("")
        self._stack.append(tag)

    def handle_endtag(self, tag):
        text = " ".join("".join(self._text or []).split())
        if tag == "main":
            self._in_main = False
        if re.fullmatch(r"h[1-6]", tag) and self._in_main and self._text is not None:
            self.headings.append((int(tag[1]), text))
        elif tag == "caption":
            self.tables[-1]["caption"] = text
        elif tag in ("th", "td"):
            self._row.append(text)
        elif tag == "tr" and self.tables:
            table = self.tables[-1]
            if "thead" in self._stack:
                table["header"] = self._row
            else:
                table["rows"].append(self._row)
        if tag in ("caption", "th", "td") or re.fullmatch(r"h[1-6]", tag):
            self._text = None
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)
        if self._stack and self._stack[-1] == "style":
            self.styles[-1] += data

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture(scope="module")
def pages(built_demo: Path) -> dict[str, list[str]]:
    return {code: [p.extract_text() for p in PdfReader(pdf_path(built_demo, code)).pages] for code in CODES}


@pytest.fixture(scope="module")
def html(built_demo: Path) -> dict[str, Html]:
    return {code: Html(html_path(built_demo, code).read_text(encoding="utf-8")) for code in CODES}


# --- PDF ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_title_block_names_code_title_and_dates(code: str, pages, manifest) -> None:
    entry = manifest[code]
    first = " ".join(pages[code][0].split())
    assert entry["title"].startswith(f"CPT {code}: ")
    assert entry["title"] in first
    edition_label = display_date(_date(entry["edition_date"]))
    assert f"Edition {edition_label}" in first
    assert "Data as of" in first
    for label, day in entry["data_as_of"].items():
        assert f"{label}: {display_date(_date(day))}" in first
    assert DEMO_NOTICE in first


@pytest.mark.parametrize("code", CODES)
def test_every_page_has_the_running_footer(code: str, pages, manifest) -> None:
    total = len(pages[code])
    assert total >= 3
    edition_label = display_date(_date(manifest[code]["edition_date"]))
    for number, text in enumerate(pages[code], start=1):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        assert lines[-1] == f"CPT {code} · {edition_label} Page {number} of {total}", (number, lines[-3:])
        assert lines[-2] == DEMO_NOTICE, "demo editions say so on every page"


@pytest.mark.parametrize("code", CODES)
def test_bookmarks_match_the_sections_and_the_contents_page_numbers(code: str, built_demo, pages, html) -> None:
    reader = PdfReader(pdf_path(built_demo, code))
    outline = flat_outline(reader)
    headings = html[code].headings
    assert [(level + 2, title) for level, title, _ in outline] == headings, "a bookmark for every section"
    top = [h for h in headings if h[0] == 2]
    assert len(top) >= 6
    contents = squash(pages[code][0] + pages[code][1])
    assert "Contents" in pages[code][0]
    toc_depth = load_config(built_demo / "report").typst.toc_depth
    for level, title, page in outline:
        if level + 2 <= toc_depth:
            dots = r"(\.)+"
            assert re.search(re.escape(squash(title)) + dots + str(page), contents), (title, page)
    for _level, title, page in outline:
        assert squash(title) in squash(pages[code][page - 1]), f"bookmark {title!r} points at its page"


@pytest.mark.parametrize("code", CODES)
def test_document_metadata(code: str, built_demo, manifest) -> None:
    info = PdfReader(pdf_path(built_demo, code)).metadata
    config = load_config(built_demo / "report")
    entry = manifest[code]
    assert info.title == entry["title"]
    assert info.author == ", ".join(config.authors) == "cptpub editorial team"
    assert info.subject and code in info.subject
    keywords = [k.strip() for k in info["/Keywords"].split(",")]
    assert "CPT" in keywords and code in keywords
    assert set(entry["payers"]) <= set(keywords)
    assert info["/CreationDate"].startswith("D:" + entry["edition_date"].replace("-", "")), "dated from data"


@pytest.mark.parametrize("code", CODES)
def test_tables_never_split_a_row_and_keep_caption_and_header(code: str, built_demo, pages, html) -> None:
    template = (built_demo / "report" / "publication.typ").read_text(encoding="utf-8")
    assert "#set table.cell(breakable: false)" in template, "the template makes table rows unbreakable"
    squashed = [squash(p) for p in pages[code]]
    tables = html[code].tables
    assert len(tables) >= 5
    caption_number = 0
    for table in tables:
        assert table["header"], "every table has a header row"
        header = squash("".join(table["header"]))
        row_pages = []
        start = 0
        for row in table["rows"]:
            cells = squash("".join(row))
            found = [i for i in range(start, len(squashed)) if cells in squashed[i]]
            assert found, f"row {row} is not whole on any page: it was split"
            row_pages.append(found[0])
            start = found[0]
        for page in sorted(set(row_pages)):
            assert header in squashed[page], f"header {table['header']} on page {page + 1}"
        if table["caption"]:
            caption_number += 1
            # The HTML caption carries its number ("Table 2: ..."), which must equal the PDF's numbering.
            assert table["caption"].startswith(f"Table {caption_number}: ")
            label = squash(table["caption"])
            page = next(i for i, text in enumerate(squashed) if label in text)
            assert page == row_pages[0], f"caption of table {caption_number} is on the page where the table starts"
            assert squashed[page].index(label) < squashed[page].index(header)


def gray_pages(pdf: Path, tmp_path: Path, first: int | None = None, last: int | None = None) -> list[list[list[int]]]:
    """Pages rendered by pdftoppm as 8-bit gray pixel rows."""
    args = ["pdftoppm", "-r", str(DPI), "-gray"]
    if first:
        args += ["-f", str(first)]
    if last:
        args += ["-l", str(last)]
    subprocess.run([*args, str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    images = []
    for file in sorted(tmp_path.glob("page-*.pgm"), key=lambda p: int(p.stem.split("-")[1])):
        data = file.read_bytes()
        magic, width, height, maxval, pixels = re.match(rb"(P5)\s+(\d+)\s+(\d+)\s+(\d+)\s(.*)", data, re.S).groups()
        width, height = int(width), int(height)
        assert int(maxval) == 255 and len(pixels) == width * height
        images.append([list(pixels[y * width : (y + 1) * width]) for y in range(height)])
    return images


needs_pdftoppm = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed")


@needs_pdftoppm
@pytest.mark.parametrize("code", CODES)
def test_first_page_renders_with_content(code: str, built_demo, tmp_path: Path) -> None:
    (page,) = gray_pages(pdf_path(built_demo, code), tmp_path, 1, 1)
    pixels = [value for row in page for value in row]
    assert statistics.pvariance(pixels) > 300, "page 1 is not blank"
    ink = sum(value < 128 for value in pixels) / len(pixels)
    assert 0.01 < ink < 0.5, ink


@needs_pdftoppm
@pytest.mark.parametrize("code", CODES)
def test_nothing_reaches_into_the_side_margins(code: str, built_demo, tmp_path: Path) -> None:
    """Figures, tables and text stay inside the text column (the margins are 2 cm; 1.6 cm must stay empty)."""
    margin_x = dict(load_config(built_demo / "report").typst.margin)["x"]
    assert margin_x == "2cm"
    strip = int(1.6 / 2.54 * DPI)
    images = gray_pages(pdf_path(built_demo, code), tmp_path)
    texts = [page.extract_text() for page in PdfReader(pdf_path(built_demo, code)).pages]
    assert any("Figure 1: Distribution of professional rates" in " ".join(t.split()) for t in texts), "the figure"
    for number, page in enumerate(images, start=1):
        for row in page:
            assert min(row[:strip]) > 200 and min(row[-strip:]) > 200, f"ink in the side margin on page {number}"


@pytest.mark.slow
def test_rebuild_with_unchanged_inputs_is_byte_identical(
    tmp_path: Path, built_demo: Path, ingested_project: Path
) -> None:
    root = copy_project(tmp_path / "elsewhere" / "second-project")
    (root / "build").mkdir()
    shutil.copy2(ingested_project / "build" / "rates.duckdb", root / "build" / "rates.duckdb")
    run_cptpub(root, "build", "20702", "--engine", "builtin")
    for name in ("cpt-20702.html", "cpt-20702.pdf"):
        assert (root / "dist" / name).read_bytes() == (built_demo / "dist" / name).read_bytes(), name


# --- HTML --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_html_language_headings_tables_and_images(code: str, html) -> None:
    page = html[code]
    assert page.all("html") == [{"lang": "en"}]
    assert len(page.all("h1")) == 1
    levels = [int(name[1]) for name, _ in page.tags if re.fullmatch(r"h[1-6]", name)]
    assert levels[0] == 1
    skipped = [(a, b) for a, b in zip(levels, levels[1:], strict=False) if b > a + 1]
    assert not skipped, "no heading level is skipped"
    for table in page.tables:
        assert table["header"] and all(table["header"]), "every table has header cells"
    assert len(page.all("th")) >= sum(len(t["header"]) for t in page.tables)
    images = page.all("img")
    assert images, "the rate figure"
    assert all((img.get("alt") or "").strip() for img in images), "alt text on every image"


@pytest.mark.parametrize("code", CODES)
def test_html_is_printable_and_ready_for_phones(code: str, html) -> None:
    page = html[code]
    viewports = [m.get("content") for m in page.all("meta") if m.get("name") == "viewport"]
    assert viewports == ["width=device-width, initial-scale=1"]
    css = "".join(page.styles)
    print_css = css[css.index("@media print") :]
    assert re.search(r"\.site-nav[^{]*\{\s*display:\s*none", print_css), "navigation is not printed"
    assert "break-inside: avoid" in print_css
    phone_css = css[css.index("@media (max-width") :]
    assert "overflow-x: auto" in phone_css, "wide tables scroll on their own on small screens"


@pytest.mark.parametrize("code", CODES)
def test_html_is_self_contained(code: str, built_demo, html) -> None:
    page = html[code]
    text = html_path(built_demo, code).read_text(encoding="utf-8")
    assert not page.all("script") and not page.all("iframe") and not page.all("link")
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "data"):
            value = (attrs.get(name) or "").strip()
            if tag == "a" and name == "href":
                continue  # links are navigation, not something the page loads
            assert not re.match(r"(https?:)?//", value, re.I), (tag, name, value)
    assert all((img.get("src") or "").startswith("data:") for img in page.all("img"))
    css = "".join(page.styles)
    assert "@import" not in css and "@font-face" not in css
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text, re.I), "no remote url() anywhere"


def _date(text: str):
    import datetime

    return datetime.date.fromisoformat(text)


@pytest.mark.parametrize("code", CODES)
def test_payer_names_stay_on_one_line_and_the_last_page_is_not_a_stub(code: str, pages) -> None:
    """The benchmark table gives the payer column room ("All commercial payers" on one line, not three), and the
    closing "Produced by cptpub" sentence shares its page with the notices before it."""
    lines = [line.strip() for page in pages[code] for line in page.splitlines()]
    assert any(line.startswith("All commercial payers ") for line in lines)
    assert any(line.startswith("Blue Cross Blue Shield ") for line in lines)
    last = " ".join(pages[code][-1].split())
    assert "Produced by cptpub" in last and "registered trademark of the American Medical Association" in last
