"""The builtin engine renders real executed notebooks to a self-contained HTML page and a PDF."""

from __future__ import annotations

import datetime
import io
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import nbformat
import pytest
import typst
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pypdf import PdfReader

from cptpub.assemble import AssemblyJob, BuiltinEngine, EditionMeta, get_engine
from cptpub.assemble.base import DEMO_NOTICE
from cptpub.assemble.builtin import typst_language
from cptpub.assemble.markdown import notebooks_to_markdown
from cptpub.assemble.typst_values import Length, typst_value
from cptpub.errors import AssemblyError, UsageError

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT_DIR = Path(__file__).resolve().parents[1] / "report"
FIGURE = "figures/cpt-20702-rates.svg"
FIG_ALT = "Bar chart: Aetna pays 1,234 dollars, Medicare 987 dollars"
PAYER_ROWS = 70  # long enough for the table to continue on a second page


def markdown_output(text: str) -> nbformat.NotebookNode:
    return new_output("display_data", data={"text/markdown": text, "text/plain": "<Markdown object>"})


def rates_table() -> str:
    rows = "".join(f"| Payer {i:02d} | ${1234 + i:,}.00 | {i}% |\n" for i in range(PAYER_ROWS))
    return "### Negotiated rates\n\n| Payer | Rate | Share |\n|:------|-----:|------:|\n" + rows


def write_figure(workdir: Path) -> None:
    (workdir / "figures").mkdir(parents=True, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "cptpub-test"
    fig, ax = plt.subplots(figsize=(11, 4))  # wider than the PDF text column on purpose
    ax.bar(["Aetna", "Medicare"], [1234, 987])
    fig.savefig(workdir / FIGURE, metadata={"Date": None})
    plt.close(fig)


def write_notebooks(workdir: Path, extra_markdown: str = "") -> tuple[Path, ...]:
    overview = new_notebook(
        cells=[
            new_code_cell("code = 'XXXXX'", metadata={"tags": ["parameters"]}),
            new_code_cell(
                "code = '20702'",
                metadata={"tags": ["injected-parameters"]},
                outputs=[markdown_output("PARAMETER OUTPUT")],
            ),
            new_markdown_cell("## Overview\n\nWhat this code pays for."),
            new_code_cell(
                "SECRET_CODE_INPUT()",
                outputs=[
                    new_output("stream", name="stdout", text="STREAM TEXT"),
                    markdown_output(rates_table()),
                    new_output("execute_result", data={"text/plain": "PLAIN TEXT"}, execution_count=2),
                    new_output("error", ename="ValueError", evalue="ERROR TEXT", traceback=[]),
                ],
            ),
        ]
    )
    figures = new_notebook(
        cells=[
            new_code_cell(
                "plot()",
                outputs=[markdown_output(f'## Figures\n\n![Rates by payer]({FIGURE}){{fig-alt="{FIG_ALT}"}}\n')],
            ),
            new_markdown_cell("### Method\n\nMedians over all in-network rates." + extra_markdown),
        ]
    )
    paths = []
    for index, notebook in enumerate((overview, figures), start=1):
        path = workdir / f"0{index}-section.ipynb"
        nbformat.write(notebook, path)
        paths.append(path)
    return tuple(paths)


def make_meta(*, demo: bool = True, title: str = "CPT 20702: Intramedullary Drug Delivery Device") -> EditionMeta:
    return EditionMeta(
        code="20702",
        title=title,
        edition_date=datetime.date(2026, 3, 1),
        data_as_of=(
            ("Aetna TiC file", datetime.date(2026, 2, 1)),
            ("Medicare PFS 2026", datetime.date(2026, 1, 1)),
        ),
        demo=demo,
        keywords=("CPT 20702", "negotiated rates"),
        subject="What payers pay for CPT 20702",
    )


def make_job(workdir: Path, *, meta: EditionMeta | None = None, extra_markdown: str = "") -> AssemblyJob:
    workdir.mkdir(parents=True, exist_ok=True)
    write_figure(workdir)
    return AssemblyJob(
        meta=meta or make_meta(),
        notebooks=write_notebooks(workdir, extra_markdown),
        workdir=workdir,
        report_dir=REPORT_DIR,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("builtin")
    return BuiltinEngine().render(make_job(root / "build" / "20702"), ["html", "pdf"], root / "dist")


class _Page(HTMLParser):
    """Collects the tags the HTML checks need."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse_html(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


# --- content selection -------------------------------------------------------------------------


def test_notebooks_to_markdown_keeps_markdown_cells_and_markdown_outputs_only(tmp_path: Path) -> None:
    markdown = notebooks_to_markdown(write_notebooks(tmp_path))
    assert markdown.index("## Overview") < markdown.index("### Negotiated rates") < markdown.index("## Figures")
    assert "$1,234.00" in markdown and FIG_ALT in markdown
    for dropped in ("PARAMETER OUTPUT", "SECRET_CODE_INPUT", "STREAM TEXT", "PLAIN TEXT", "ERROR TEXT", "XXXXX"):
        assert dropped not in markdown


def test_missing_notebook_is_an_assembly_error(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match="executed notebook not found") as caught:
        notebooks_to_markdown([tmp_path / "01-missing.ipynb"])
    assert caught.value.where == str(tmp_path / "01-missing.ipynb")


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_has_title_block_sections_table_and_page_numbers(rendered: dict[str, Path]) -> None:
    reader = PdfReader(rendered["pdf"])
    text = pdf_text(rendered["pdf"])
    for expected in (
        "CPT 20702: Intramedullary Drug Delivery Device",
        "March 1, 2026",
        "Aetna TiC file: February 1, 2026",
        "Medicare PFS 2026: January 1, 2026",
        "Contents",
        "Overview",
        "Negotiated rates",
        "$1,234.00",
        f"${1234 + PAYER_ROWS - 1:,}.00",
        "Figures",
        "Rates by payer",
    ):
        assert expected in text, expected
    pages = len(reader.pages)
    assert pages >= 2
    for number, page in enumerate(reader.pages, start=1):
        page_text = page.extract_text()
        assert f"Page {number} of {pages}" in page_text
        assert "CPT 20702" in page_text
        assert DEMO_NOTICE in page_text
    assert "Payer" in reader.pages[1].extract_text().split("Payer 0", 1)[0], "table header repeats on page 2"
    for dropped in ("SECRET_CODE_INPUT", "STREAM TEXT", "PLAIN TEXT", "PARAMETER OUTPUT"):
        assert dropped not in text


def test_pdf_metadata_and_outline(rendered: dict[str, Path]) -> None:
    reader = PdfReader(rendered["pdf"])
    info = reader.metadata
    assert info is not None
    assert info.title == "CPT 20702: Intramedullary Drug Delivery Device"
    assert info.subject == "What payers pay for CPT 20702"
    assert info["/Keywords"] == "CPT 20702, negotiated rates"
    assert info.author == "cptpub editorial team"
    assert info["/CreationDate"].startswith("D:20260301")
    assert reader.trailer["/Root"]["/Lang"] == "en"  # _quarto.yml's lang
    outline = [item.title for item in reader.outline if not isinstance(item, list)]
    nested = [item.title for group in reader.outline if isinstance(group, list) for item in group]
    assert outline == ["Overview", "Figures"]
    assert nested == ["Negotiated rates", "Method"]


def test_contents_stand_in_changes_no_byte_of_the_pdf(tmp_path: Path) -> None:
    """publication.typ lays the contents' entries out from the body's headings in Typst's first pass (a layout pass
    fewer): the PDF is the one Typst makes without that stand-in, for headings that wrap, are unlisted, unnumbered,
    deeper than the contents go, or carry markup, and contents longer than a page."""
    long_words = " ".join(["reimbursement"] * 14)
    extra = "".join(
        f"\n\n## Section {i}: *emphasised* and {long_words}\n\nText {i}.\n\n### Detail {i}\n\n#### Deeper {i}\n\nMore."
        for i in range(30)
    )
    extra += "\n\n## Not listed {.unlisted}\n\nHidden.\n\n### Unnumbered {-}\n\nShown."
    disabled = "if query(<cptpub:laid-out>).len() == 0 {"
    pdfs = []
    for stand_in in (True, False):
        report = tmp_path / f"report-{stand_in}"
        shutil.copytree(REPORT_DIR, report)
        if not stand_in:
            template = report / "publication.typ"
            text = template.read_text(encoding="utf-8")
            assert text.count(disabled) == 1
            template.write_text(text.replace(disabled, "if false {"), encoding="utf-8")
        job = make_job(tmp_path / f"build-{stand_in}", extra_markdown=extra)
        job = AssemblyJob(job.meta, job.notebooks, job.workdir, report_dir=report)
        pdfs.append(BuiltinEngine().render(job, ["pdf"], tmp_path / f"dist-{stand_in}")["pdf"].read_bytes())
    assert pdfs[0] == pdfs[1]
    contents = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdfs[0])).pages)
    contents = contents.split("What this code pays for.", 1)[0]  # the body's first paragraph ends the contents
    assert "Section 29" in contents and "Detail 29" in contents and "Unnumbered" in contents
    assert "Deeper" not in contents and "Not listed" not in contents


def test_pdf_figure_fits_the_text_column(rendered: dict[str, Path]) -> None:
    source = rendered["pdf"].parents[1] / "build" / "20702" / "cpt-20702.typ"
    assert f'image("{FIGURE}"' in source.read_text(encoding="utf-8")
    template = (REPORT_DIR / "publication.typ").read_text(encoding="utf-8")
    assert "#show figure.where(kind: image): set image(width: 100%)" in template
    assert "#set table.cell(breakable: false)" in template


# --- HTML --------------------------------------------------------------------------------------


def test_html_structure_and_accessibility(rendered: dict[str, Path]) -> None:
    page = parse_html(rendered["html"])
    assert page.all("html") == [{"lang": "en"}]
    levels = [int(name[1]) for name, _ in page.tags if re.fullmatch(r"h[1-6]", name)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(later - earlier <= 1 for earlier, later in zip(levels, levels[1:], strict=False)), levels
    assert len(page.all("th")) == 3
    images = page.all("img")
    assert images and all(img.get("alt") for img in images)
    assert [img["alt"] for img in images] == [FIG_ALT]
    hrefs = [a.get("href") for a in page.all("a")]
    assert "index.html" in hrefs and "cpt-20702.pdf" in hrefs
    assert {"#overview", "#negotiated-rates", "#figures", "#method"} <= set(hrefs), "table of contents"
    text = "".join(page.text)
    assert DEMO_NOTICE in text and "Aetna TiC file: February 1, 2026" in text
    assert "$1,234.00" in text
    for dropped in ("SECRET_CODE_INPUT", "STREAM TEXT", "PLAIN TEXT", "PARAMETER OUTPUT"):
        assert dropped not in text


def test_html_is_self_contained(rendered: dict[str, Path]) -> None:
    page = parse_html(rendered["html"])
    assert not page.all("script") and not page.all("link"), "styles are inlined, nothing is loaded"
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"(https?:)?//", value), value
    assert all((img["src"] or "").startswith("data:image/svg+xml;base64,") for img in page.all("img"))
    assert "@import" not in rendered["html"].read_text(encoding="utf-8")


def test_no_demo_banner_for_real_data(tmp_path: Path) -> None:
    job = make_job(tmp_path / "build", meta=make_meta(demo=False))
    outputs = BuiltinEngine().render(job, ["html", "pdf"], tmp_path / "dist")
    assert "DEMO DATA" not in "".join(parse_html(outputs["html"]).text)
    assert "DEMO DATA" not in pdf_text(outputs["pdf"])


# --- reproducibility and file handling ---------------------------------------------------------


def test_rebuild_is_byte_identical(tmp_path: Path, rendered: dict[str, Path]) -> None:
    again = BuiltinEngine().render(make_job(tmp_path / "elsewhere" / "20702"), ["pdf", "html"], tmp_path / "dist")
    assert again["pdf"].read_bytes() == rendered["pdf"].read_bytes()
    assert again["html"].read_bytes() == rendered["html"].read_bytes()


def test_outputs_replace_old_files_and_leave_no_temporaries(tmp_path: Path) -> None:
    out_dir = tmp_path / "dist"
    out_dir.mkdir()
    (out_dir / "cpt-20702.html").write_text("stale")
    outputs = BuiltinEngine().render(make_job(tmp_path / "build"), ["html"], out_dir)
    assert outputs == {"html": out_dir / "cpt-20702.html"}
    assert sorted(p.name for p in out_dir.iterdir()) == ["cpt-20702.html"]
    assert outputs["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_failed_pdf_leaves_the_published_edition_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTML renders fine, the PDF does not: the old page must stay, not a new one linking to the old PDF."""
    out_dir = tmp_path / "dist"
    out_dir.mkdir()
    published = {"cpt-20702.html": b"<!DOCTYPE html>previous edition", "cpt-20702.pdf": b"%PDF-previous edition"}
    for name, data in published.items():
        (out_dir / name).write_bytes(data)
        os.utime(out_dir / name, ns=(1_000_000_000, 1_000_000_000))

    def broken_compile(*args: object, **kwargs: object) -> bytes:
        raise typst.TypstError("compiler crashed")

    monkeypatch.setattr(typst, "compile", broken_compile)
    with pytest.raises(AssemblyError, match="typst could not compile the PDF"):
        BuiltinEngine().render(make_job(tmp_path / "build"), ["html", "pdf"], out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(published), "no temporary files are left"
    for name, data in published.items():
        assert (out_dir / name).read_bytes() == data
        assert (out_dir / name).stat().st_mtime_ns == 1_000_000_000


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown output format docx: choose one or more of html, pdf"):
        BuiltinEngine().render(make_job(tmp_path / "build"), ["docx"], tmp_path / "dist")


# --- untrusted text ----------------------------------------------------------------------------

HOSTILE = """

Plain <script>alert(1)</script> <b>bold</b> [click](javascript:alert(2)) [ok](https://example.org/x).

[styled]{onclick="alert(3)" style="position:fixed" typst:text:fill="red); #panic(4"}

```{=html}
<img src=x onerror=alert(5)>
```

```{=typst}
#panic("raw typst")
```

Contact @medicare and {{< env HOME >}} cost \\$5.
"""


def test_untrusted_markdown_never_becomes_markup(tmp_path: Path) -> None:
    title = 'CPT 20702: "Quoted" <i>tags</i> & *stars*'
    job = make_job(tmp_path / "build", meta=make_meta(title=title), extra_markdown=HOSTILE)
    outputs = BuiltinEngine().render(job, ["html", "pdf"], tmp_path / "dist")
    html = outputs["html"].read_text(encoding="utf-8")
    page = parse_html(outputs["html"])
    assert not page.all("script") and not page.all("i") and len(page.all("img")) == 1
    for _, attrs in page.tags:
        assert not any(
            name.startswith("on") or name == "style" and "fixed" in (value or "") for name, value in attrs.items()
        )
    assert "javascript:" not in html
    assert "https://example.org/x" in [a.get("href") for a in page.all("a")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<h1>CPT 20702: &quot;Quoted&quot; &lt;i&gt;tags&lt;/i&gt; &amp; *stars*</h1>" in html

    # The PDF compiled, so nothing panicked: raw blocks and attributes came out as plain text or not at all.
    text = pdf_text(outputs["pdf"])
    for literal in ("<script>alert(1)</script>", "{{< env HOME >}}", "@medicare", '#panic("raw typst")', "onerror"):
        assert literal in text
    source = (job.workdir / "cpt-20702.typ").read_text(encoding="utf-8")
    assert "#text(fill" not in source and "#cite" not in source
    assert PdfReader(outputs["pdf"]).metadata.title == title


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("/etc/passwd", "absolute path"),
        ("../outside.svg", "leaves the build folder"),
        ("figures/../../outside.svg", "leaves the build folder"),
        ("https://example.org/x.svg", "URL scheme"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "URL scheme"),
        ("figures/missing.svg", "no such file"),
    ],
)
def test_images_must_be_files_in_the_build_folder(tmp_path: Path, source: str, problem: str) -> None:
    (tmp_path / "outside.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    job = make_job(tmp_path / "build", extra_markdown=f"\n\n![leak]({source})\n")
    with pytest.raises(AssemblyError, match=re.escape(problem)) as caught:
        BuiltinEngine().render(job, ["html"], tmp_path / "dist")
    assert source in str(caught.value)
    assert not (tmp_path / "dist" / "cpt-20702.html").exists()


def test_typst_values_cannot_escape_their_literal() -> None:
    assert typst_value('a"b\\c\nd') == '"a\\"b\\\\c\\u{a}d"'
    assert typst_value({"x": ("one",), "when": datetime.date(2026, 3, 1)}) == (
        '(x: ("one", ), when: datetime(year: 2026, month: 3, day: 1), )'
    )
    with pytest.raises(ValueError):
        Length('1cm); panic("x"')
    with pytest.raises(ValueError):
        typst_value({"bad key": 1})


# --- configuration and engine choice -----------------------------------------------------------


def test_missing_settings_file_is_named(tmp_path: Path) -> None:
    job = AssemblyJob(make_meta(), write_notebooks(tmp_path), tmp_path, report_dir=tmp_path / "report")
    with pytest.raises(AssemblyError, match="report settings file not found") as caught:
        BuiltinEngine().render(job, ["html"], tmp_path / "dist")
    assert caught.value.where == str(tmp_path / "report" / "_quarto.yml")


def test_bad_setting_is_reported_against_the_settings_file(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    settings = report / "_quarto.yml"
    settings.write_text(settings.read_text().replace("x: 2cm", 'x: "2cm); panic(1"'))
    job = AssemblyJob(make_meta(), (), tmp_path, report_dir=report)
    with pytest.raises(AssemblyError, match=r"format\.typst\.margin\.x: expected a length") as caught:
        BuiltinEngine().render(job, ["pdf"], tmp_path / "dist")
    assert caught.value.where == str(settings)


def test_missing_template_is_named(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    (report / "publication.typ").unlink()
    job = AssemblyJob(make_meta(), (), tmp_path, report_dir=report)
    with pytest.raises(AssemblyError, match="publication.typ not found"):
        BuiltinEngine().render(job, ["pdf"], tmp_path / "dist")


def test_language_setting_controls_html_and_pdf(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    settings = report / "_quarto.yml"
    assert "\nlang: en\n" in settings.read_text()
    settings.write_text(settings.read_text().replace("\nlang: en\n", "\nlang: de-CH\n"))
    job = make_job(tmp_path / "build")
    job = AssemblyJob(job.meta, job.notebooks, job.workdir, report_dir=report)
    outputs = BuiltinEngine().render(job, ["html", "pdf"], tmp_path / "dist")
    assert parse_html(outputs["html"]).all("html") == [{"lang": "de-CH"}]
    assert PdfReader(outputs["pdf"]).trailer["/Root"]["/Lang"] == "de-CH"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en", ("en", None)), ("en-US", ("en", "US")), ("zh-Hant-tw", ("zh", "TW")), ("es-419", ("es", None))],
)
def test_typst_language_splits_the_tag(tag: str, expected: tuple[str, str | None]) -> None:
    assert typst_language(tag) == expected


def test_get_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUARTO_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no quarto here
    assert get_engine("builtin").name == "builtin"
    assert get_engine("auto").name == "builtin"
    assert "pandoc 3." in get_engine("builtin").version()
    with pytest.raises(UsageError, match="unknown assembly engine 'latex'"):
        get_engine("latex")


def test_typst_error_names_the_kept_source_and_line(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    template = report / "publication.typ"
    template.write_text(template.read_text().replace("#set par(justify: true", "#set par(justify: nonsense"))
    job = make_job(tmp_path / "build")
    job = AssemblyJob(job.meta, job.notebooks, job.workdir, report_dir=report)
    with pytest.raises(AssemblyError, match="unknown variable: nonsense") as caught:
        BuiltinEngine().render(job, ["pdf"], tmp_path / "dist")
    assert caught.value.where == str(job.workdir / "cpt-20702.typ")
    assert re.search(r"cpt-20702\.typ:\d+:\d+", str(caught.value))
    assert not (tmp_path / "dist" / "cpt-20702.pdf").exists()


# --- Cell options, inline code, outputs ------------------------------------------------------------------


def test_cell_options_inline_code_images_and_references(tmp_path: Path) -> None:
    """What Quarto publishes from an executed notebook, the builtin engine publishes too."""
    import base64

    from cptpub.assemble.config import ExecuteSettings

    png = base64.b64encode((REPORT_DIR.parent / "docs" / "img" / "catalogue.png").read_bytes()).decode()
    notebook = new_notebook(
        cells=[
            new_markdown_cell(
                "Value `{python} x` and `{python}  y ` twice `{python} x`; ``{python} x`` stays code. See @fig-a.",
                metadata={
                    "user_expressions": [
                        {"expression": "x", "result": {"status": "ok", "data": {"text/markdown": "\\*7\\*"}}},
                        {"expression": "y", "result": {"status": "ok", "data": {"text/markdown": "**bold**"}}},
                    ]
                },
            ),
            new_code_cell("#| echo: true\nshown = 1", outputs=[]),
            new_code_cell("#| include: false\nhidden()", outputs=[markdown_output("HIDDEN")]),
            new_code_cell("#| output: false\nquiet()", outputs=[markdown_output("QUIET")]),
            new_code_cell(
                "#| label: fig-a\n#| fig-cap: A caption\n#| fig-alt: Alt words\nplot()",
                outputs=[
                    new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
                    new_output("stream", name="stderr", text="UserWarning: noise"),
                ],
            ),
            new_code_cell(
                "#| label: tbl-b\n#| tbl-cap: Table caption\nframe",
                outputs=[markdown_output("| a | b |\n|:--|--:|\n| x | 1 |")],
            ),
        ]
    )
    path = tmp_path / "01-x.ipynb"
    nbformat.write(notebook, path)
    markdown = notebooks_to_markdown([path], tmp_path, ExecuteSettings(echo=False))
    assert "Value \\*7\\* and **bold** twice \\*7\\*; ``{python} x`` stays code. See @fig-a." in markdown
    assert "```python\nshown = 1\n```" in markdown
    assert "HIDDEN" not in markdown and "QUIET" not in markdown and "noise" not in markdown
    assert '![A caption](figures/01-x-cell5-1.png){#fig-a fig-alt="Alt words"}' in markdown
    assert (tmp_path / "figures" / "01-x-cell5-1.png").read_bytes()[:4] == b"\x89PNG"
    assert "| x | 1 |\n\n: Table caption {#tbl-b}" in markdown
    echo_default = notebooks_to_markdown([path], tmp_path, ExecuteSettings(echo=True))
    assert "```python\nplot()\n```" in echo_default  # _quarto.yml's execute.echo; option lines not shown


def test_a_megabyte_title_travels_in_files_not_on_the_command_line(tmp_path: Path) -> None:
    title = "CPT 20702: " + "Long title with <b>markup</b> & $ * # " * 28000  # over 1 MB
    job = make_job(tmp_path / "work", meta=make_meta(title=title))
    outputs = BuiltinEngine().render(job, ["html", "pdf"], tmp_path)
    html = outputs["html"].read_text(encoding="utf-8")
    assert html.count("Long title with &lt;b&gt;markup&lt;/b&gt; &amp; $ * #") >= 28000
    assert PdfReader(outputs["pdf"]).metadata.title.startswith("CPT 20702: Long title with <b>markup</b> & $ * #")
