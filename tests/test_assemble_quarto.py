"""The quarto engine: the project it writes, the command it runs, and how a failing Quarto is reported.

Quarto is not installed where these tests run, so what Quarto does is taken from its source (quarto-cli, the tag is
named at each use) and, where possible, run: its Typst template partials and its shortcode parser are copied into
``tests/fixtures/quarto-v1.7.32/`` and exercised with the Pandoc and Typst cptpub already uses. The stand-in
``quarto`` scripts record what they are asked and never fake a successful render.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import nbformat
import pytest
import typst
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pypdf import PdfReader

from cptpub.assemble import AssemblyJob, EditionMeta, QuartoEngine, get_engine
from cptpub.assemble.base import DEMO_NOTICE
from cptpub.assemble.config import load_config
from cptpub.assemble.pandoc import pandoc_path
from cptpub.assemble.quarto import (
    TABLE_RULES,
    escape_shortcodes,
    html_data_dates,
    lua_string,
    quarto_command,
    write_project,
)
from cptpub.errors import AssemblyError
from tests.conftest import copy_project, run_cptpub

REPORT_DIR = Path(__file__).resolve().parents[1] / "report"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
QUARTO_SOURCE = FIXTURES / "quarto-v1.7.32"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>'
CONTENT = """## Rates

Payer text `{{< env HOME >}}` and {{< env HOME >}} stay literal.

| Payer | Rate |
|:--|--:|
| Aetna | $1,234.00 |

: Rates by payer

![Rates by payer](figures/rates.svg){fig-alt="Bar chart of rates"}
"""

PAYER = "Aetna {{< env HOME >}}"


@pytest.fixture
def job(tmp_path: Path) -> AssemblyJob:
    workdir = tmp_path / "build" / "20702"
    (workdir / "figures").mkdir(parents=True)
    (workdir / "figures" / "rates.svg").write_text(SVG)
    first = new_notebook(
        cells=[
            new_code_cell("code = '20702'", metadata={"tags": ["injected-parameters"]}, id="p"),
            new_markdown_cell("## Summary\n\nThe code `{{< env HOME >}}` pays well.", id="a"),
            new_code_cell(
                "show()",
                id="b",
                outputs=[
                    new_output("display_data", data={"text/markdown": CONTENT}),
                    new_output("stream", name="stdout", text="STREAM TEXT"),
                ],
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    second = new_notebook(
        cells=[
            new_code_cell("code = '20702'", metadata={"tags": ["parameters"]}, id="p"),
            new_markdown_cell("### Method\n\nMedians.", id="a"),
            new_markdown_cell(
                "Paid by `{python} payer`.",
                id="u",  # an inline expression's result, stored as Quarto's Jupyter engine stores it
                metadata={"user_expressions": [{"expression": "payer", "result": {"data": {"text/markdown": PAYER}}}]},
            ),
            new_code_cell("#| label: tbl-rates\n#| tbl-cap: Rates\nframe", id="b", execution_count=3),
        ]
    )
    paths = (workdir / "01-rates.ipynb", workdir / "02-method.ipynb")
    for notebook, path in zip((first, second), paths, strict=True):
        nbformat.write(notebook, path)
    meta = EditionMeta(
        code="20702",
        title="CPT 20702: Drug Delivery <Device> *Insertion*",
        edition_date=datetime.date(2026, 3, 1),
        data_as_of=(("Aetna <TiC> file", datetime.date(2026, 2, 1)),),
        demo=True,
        keywords=("CPT 20702",),
        subject="What payers pay",
    )
    return AssemblyJob(meta=meta, notebooks=paths, workdir=workdir, report_dir=REPORT_DIR)


RECORDER = """\
if [ "$1" = "--version" ]; then echo {version}; exit 0; fi
printf '%s\\n' "$@" >> "{log}/argv"; echo "cwd=$PWD" >> "{log}/argv"
cp -r . "{log}/project-$(ls "{log}" | wc -l)"
{render}
"""


def fake_quarto(
    bin_dir: Path,
    *,
    version: str = "1.7.32",
    render: str = "echo 'ERROR: typst compile failed: unknown font' >&2; exit 3",
) -> Path:
    """A recording stand-in ``quarto``: answers --version; for anything else records argv, the working folder and a
    copy of the project it was given (in ``bin_dir/log``), then runs ``render`` (by default: fails)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "log").mkdir(exist_ok=True)
    script = bin_dir / "quarto"
    script.write_text("#!/bin/sh\n" + RECORDER.format(version=version, log=bin_dir / "log", render=render))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


@pytest.fixture
def quarto_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("QUARTO_PATH", raising=False)
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return lambda **kwargs: fake_quarto(bin_dir, **kwargs)


def run_lua(script: str, tmp_path: Path) -> str:
    """Run a Lua script with Pandoc's Lua (5.4, with LPeg, as in Quarto's Pandoc); return what it prints."""
    path = tmp_path / "script.lua"
    path.write_text(script, encoding="utf-8")
    result = subprocess.run([pandoc_path(), "lua", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- what is handed to Quarto ---------------------------------------------------------------------------------------


def test_command_renders_the_edition_notebook_without_execution(job: AssemblyJob) -> None:
    assert quarto_command("/opt/quarto/bin/quarto", job, "html") == [
        "/opt/quarto/bin/quarto", "render", "cpt-20702.ipynb", "--to", "html", "--no-execute",
    ]  # fmt: skip
    assert quarto_command("quarto", job, "pdf") == [
        "quarto", "render", "cpt-20702.ipynb", "--to", "typst", "--no-execute",
    ]  # fmt: skip


def test_edition_notebook_holds_the_executed_notebooks_in_order(job: AssemblyJob) -> None:
    """One notebook: front matter in a raw first cell (as Quarto writes it, src/core/jupyter/jupyter.ts v1.7.32),
    then every cell of the executed notebooks with its outputs and #| options, parameter cells left out."""
    source = write_project(job, load_config(job.report_dir))
    assert source == job.workdir / "cpt-20702.ipynb"
    notebook = nbformat.read(source, as_version=4)
    nbformat.validate(notebook)  # unique cell ids across the joined notebooks
    front, *cells = notebook.cells
    assert front.cell_type == "raw" and front.source.startswith("---\n") and front.source.endswith("\n---")
    fields = yaml.safe_load(front.source.strip("-\n"))
    assert fields["title"] == r"CPT 20702\: Drug Delivery \<Device\> \*Insertion\*"  # Quarto reads it as Markdown
    assert fields["date"] == {"value": "2026-03-01", "format": "MMMM D, YYYY"}  # schema/definitions.yml `date`
    assert fields["keywords"] == ["CPT 20702"] and "date-format" not in fields
    assert fields["author"] == ["cptpub editorial team"]
    assert [cell.cell_type for cell in cells] == ["markdown", "code", "markdown", "markdown", "code"]
    assert cells[0].source.startswith("## Summary") and cells[2].source.startswith("### Method")
    assert [output.output_type for output in cells[1].outputs] == ["display_data"]  # the stream is left out
    assert [cell.id for cell in cells] == ["nb1-cell1", "nb1-cell2", "nb2-cell1", "nb2-cell2", "nb2-cell3"]
    assert cells[4].source == "#| label: tbl-rates\n#| tbl-cap: Rates\nframe" and cells[4].execution_count == 3
    assert notebook.metadata.kernelspec.name == "python3"
    assert not any("code = '20702'" in cell.source for cell in cells)


def test_project_settings_come_from_the_report_settings(job: AssemblyJob) -> None:
    write_project(job, load_config(job.report_dir))
    settings = yaml.safe_load((job.workdir / "_quarto.yml").read_text(encoding="utf-8"))
    report = yaml.safe_load((REPORT_DIR / "_quarto.yml").read_text(encoding="utf-8"))
    assert settings["execute"] == {"echo": False, "enabled": False}
    assert settings["project"]["type"] == "default"
    assert "cptpub" not in settings
    # Entry points of Quarto's filter chain (src/resources/filters/main.lua v1.7.32): a path without `at` runs at
    # pre-quarto, after Quarto has parsed cells and figures.
    assert settings["filters"] == [
        {"path": "_cptpub/table-captions.lua", "at": "pre-ast"},
        "_cptpub/safety-options.lua",
        {"path": "_cptpub/data-dates.lua", "at": "post-render"},
    ]
    html, typst_format = settings["format"]["html"], settings["format"]["typst"]
    assert html["css"] == ["_cptpub/styles.css"]
    assert (job.workdir / "_cptpub" / "styles.css").read_bytes() == (REPORT_DIR / "styles.css").read_bytes()
    assert html["include-before-body"] == ["_cptpub/before-body.html"]
    assert typst_format["include-in-header"] == ["_cptpub/in-header.typ"]
    assert typst_format["include-before-body"] == ["_cptpub/before-body.typ"]
    for key in ("papersize", "margin", "fontsize"):
        assert typst_format[key] == report["format"]["typst"][key]
    assert typst_format["toc"] is False  # before-body.typ prints the contents under the banner instead
    assert html["embed-resources"] is True and html["toc"] is True


def test_report_execution_options_reach_quarto_with_execution_off(job: AssemblyJob, tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    settings_file = report / "_quarto.yml"
    settings = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
    settings["execute"] = {"echo": True, "warning": False, "enabled": True}
    settings_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    job = AssemblyJob(job.meta, job.notebooks, job.workdir, report)
    write_project(job, load_config(report))
    settings = yaml.safe_load((job.workdir / "_quarto.yml").read_text(encoding="utf-8"))
    assert settings["execute"] == {"echo": True, "warning": False, "enabled": False}


@pytest.mark.parametrize("side", ["inside", "outside"])
def test_margin_sides_quarto_refuses_are_refused(tmp_path: Path, side: str) -> None:
    """Quarto's Typst `margin` is a closed object of x, y, top, bottom, left, right
    (src/resources/schema/document-reveal-layout.yml v1.7.32, document-layout.yml v1.9.38)."""
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    settings = report / "_quarto.yml"
    settings.write_text(settings.read_text().replace("      x: 2cm\n", f"      {side}: 2cm\n"), encoding="utf-8")
    with pytest.raises(AssemblyError, match=rf"unknown side '{side}'; Quarto's Typst margin takes only x, y, top"):
        load_config(report)


# --- the findings of issue 16, each against Quarto's own source -------------------------------------------------------

# How Quarto loads a user filter: quarto-cli src/resources/filters/common/wrapped-filter.lua (v1.7.32; the same in
# v1.8.27 and v1.9.38), makeWrappedLuaFilter: `loadfile(scriptFile, "bt", env)` with
# `env = setmetatable({}, {__index = shortcodeMetatable(scriptFile)})`; the chunk's returned handler list is run.
QUARTO_LOADER = """
local env = setmetatable({}, {__index = {
  assert = assert, dofile = dofile, error = error, ipairs = ipairs, pairs = pairs, io = io, os = os,
  string = string, table = table, type = type, tostring = tostring, setmetatable = setmetatable,
  pandoc = pandoc, FORMAT = FORMAT, PANDOC_VERSION = PANDOC_VERSION, _G = _G,
}})
local chunk = assert(loadfile(%s, "bt", env))
local handlers = chunk()
function Pandoc(doc)
  for _, filter in ipairs(handlers) do doc = doc:walk(filter) end
  return doc
end
"""


def test_safety_options_reach_safety_lua_as_quarto_loads_filters(job: AssemblyJob, tmp_path: Path) -> None:
    """Finding: options set as a plain global in a Quarto filter are invisible to safety.lua, so fig-alt was lost."""
    write_project(job, load_config(job.report_dir))
    loader_path = job.workdir / "_cptpub" / "safety-options.lua"
    plain_global = tmp_path / "plain-global.lua"  # what the engine used to write
    plain_global.write_text(
        loader_path.read_text(encoding="utf-8").replace("_G.CPTPUB_SAFETY_OPTIONS", "CPTPUB_SAFETY_OPTIONS")
    )
    markdown = '![Rates](figures/rates.svg){fig-alt="Bar chart of rates"}\n'

    def html_through(user_filter: Path) -> str:
        harness = tmp_path / "quarto-loader.lua"
        harness.write_text(QUARTO_LOADER % lua_string(str(user_filter)), encoding="utf-8")
        argv = [pandoc_path(), "--from=markdown", "--to=html", "--lua-filter", str(harness)]
        # Run in the build folder, where a filter without its options looks for figures.
        return subprocess.run(argv, input=markdown, cwd=job.workdir, capture_output=True, text=True, check=True).stdout

    assert 'data-fig-alt="Bar chart of rates"' in html_through(loader_path)  # kept: Quarto makes it the alt text
    # The old plain global: safety.lua ran without options and dropped the fig-alt attribute Quarto reads.
    assert "data-fig-alt" not in html_through(plain_global)


def test_html_data_dates_come_first_in_the_body_under_quartos_title(job: AssemblyJob, tmp_path: Path) -> None:
    """Finding: include-before-body is above Quarto's title block (formats/html/pandoc/template.html v1.7.32: it
    comes before `title-block.html()`, `$body$` after), so the dates are put first in the body instead."""
    write_project(job, load_config(job.report_dir))
    harness = tmp_path / "quarto-loader.lua"
    harness.write_text(QUARTO_LOADER % lua_string(str(job.workdir / "_cptpub" / "data-dates.lua")), encoding="utf-8")

    def render(to: str) -> str:
        argv = [pandoc_path(), f"--to={to}", "--lua-filter", str(harness)]
        return subprocess.run(argv, input="## Rates\n\nText.\n", capture_output=True, text=True, check=True).stdout

    html = render("html")
    assert html.startswith('<dl class="edition"><dt>Data as of</dt>')
    assert html.index("Aetna &lt;TiC&gt; file: February 1, 2026") < html.index("<h2")
    assert "Data as of" not in render("typst")  # the PDF has them from before-body.typ


def test_safety_filter_still_refuses_images_outside_the_build_folder(job: AssemblyJob, tmp_path: Path) -> None:
    write_project(job, load_config(job.report_dir))
    harness = tmp_path / "quarto-loader.lua"
    harness.write_text(QUARTO_LOADER % lua_string(str(job.workdir / "_cptpub" / "safety-options.lua")))
    argv = [pandoc_path(), "--to=html", "--lua-filter", str(harness)]
    result = subprocess.run(argv, input="![x](../../secret.svg)\n", cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "image source '../../secret.svg' refused" in result.stderr


def test_captioned_tables_get_the_label_quarto_needs_to_keep_their_caption(job: AssemblyJob, tmp_path: Path) -> None:
    """Finding: Quarto empties the caption of a table without a `tbl-` label (quarto-pre/parsefiguredivs.lua
    v1.7.32, `Table = function(el)`), so "Table:" captions vanished from the PDF."""
    write_project(job, load_config(job.report_dir))
    markdown = (
        "| a |\n|---|\n| 1 |\n\n: Rates by payer\n\n"  # a Markdown caption without a label
        "| b |\n|---|\n| 2 |\n\n: Labelled {#tbl-mine}\n\n"  # labelled by the editor: left alone
        "| c |\n|---|\n| 3 |\n\n"  # no caption: stays a plain table
        '::: {#nb1-b .cell tbl-cap="From a cell"}\ntext\n:::\n\n'  # #| tbl-cap, no #| label; HTML: the cell id
        '::: {#tbl-x .cell tbl-cap="Labelled cell"}\ntext\n:::\n'  # #| label: tbl-x
    )
    argv = [pandoc_path(), "--to=json", "--lua-filter", str(job.workdir / "_cptpub" / "table-captions.lua")]
    doc = json.loads(subprocess.run(argv, input=markdown, capture_output=True, text=True, check=True).stdout)
    ids = [block["c"][0][0] for block in doc["blocks"] if block["t"] in ("Table", "Div")]
    assert ids == ["tbl-cptpub-1", "tbl-mine", "", "tbl-cptpub-2", "tbl-x"]


def quarto_typst_source(job: AssemblyJob, tmp_path: Path, markdown: str, tag: str = "v1.7.32") -> Path:
    """Typst source as Quarto ``tag`` writes it for this project: Quarto's own template and partials, its metadata,
    cptpub's include files, and its table handling (tbl- floats through layout/typst.lua make_typst_figure, every
    table marked typst:no-figure by quarto-post/typst.lua)."""
    edition = write_project(job, load_config(job.report_dir))
    settings = yaml.safe_load((job.workdir / "_quarto.yml").read_text(encoding="utf-8"))["format"]["typst"]
    front = yaml.safe_load(nbformat.read(edition, as_version=4).cells[0].source.strip("-\n"))
    meta = {
        "title": front["title"],  # Markdown, as Quarto reads it
        "keywords": front["keywords"],
        "by-author": [{"name": {"literal": "cptpub editorial team"}}],
        "date": "March 1, 2026",
        "labels": {"abstract": "Abstract"},
        **{key: settings[key] for key in ("toc", "margin", "papersize", "fontsize")},
        "toc-depth": 3,
    }
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    tables = tmp_path / "quarto-tables.lua"
    tables.write_text(
        """
function Table(tbl)
  tbl.classes:insert("typst:no-figure")
  local id, caption = tbl.identifier, pandoc.utils.blocks_to_inlines(tbl.caption.long)
  tbl.caption.long, tbl.identifier = {}, ""
  if not id:match("^tbl%-") then return tbl end
  return {
    pandoc.RawBlock("typst", "#figure(["), tbl,
    pandoc.Plain({ pandoc.RawInline("typst", "], caption: figure.caption(position: top, ["), table.unpack(caption) }),
    pandoc.RawBlock("typst", ']), kind: "quarto-float-tbl", supplement: "Table", )<' .. id .. ">"),
  }
end
""",
        encoding="utf-8",
    )
    support = job.workdir / "_cptpub"
    source = tmp_path / "quarto.typ"
    argv = [
        pandoc_path(),
        "--to=typst",
        "--standalone",
        f"--template={FIXTURES / f'quarto-{tag}' / 'template.typ'}",
        f"--metadata-file={tmp_path / 'meta.yaml'}",
        f"--lua-filter={support / 'table-captions.lua'}",
        f"--lua-filter={tables}",
        f"--include-in-header={support / 'in-header.typ'}",
        f"--include-before-body={support / 'before-body.typ'}",
        f"--output={source}",
    ]
    subprocess.run(argv, input=markdown, capture_output=True, text=True, check=True)
    return source


@pytest.mark.parametrize("tag", ["v1.7.32", "v1.9.38"])
def test_pdf_under_quartos_template_has_metadata_front_matter_and_table_captions(
    job: AssemblyJob, tmp_path: Path, tag: str
) -> None:
    """Findings: Quarto 1.7-1.9.16 set no PDF title or author (typst-template.typ has no `set document` before
    v1.9.17); include-before-body came after Quarto's contents; captions and table rules were lost."""
    markdown = "## Rates\n\nText.\n\n| Payer | Rate |\n|:--|--:|\n| Aetna | $1,234.00 |\n\n: Rates by payer\n"
    source = quarto_typst_source(job, tmp_path, markdown, tag)
    typst_text = source.read_text(encoding="utf-8")
    # Quarto's typst-template.typ ends with `#set table(inset: 6pt, stroke: none)`; cptpub's rules come later and win.
    assert typst_text.index("set table(\n  inset: 6pt,\n  stroke: none") < typst_text.index(TABLE_RULES.splitlines()[1])
    pdf = tmp_path / "quarto.pdf"
    pdf.write_bytes(typst.compile(source, root=tmp_path, ignore_system_fonts=True, font_paths=[]))
    reader = PdfReader(pdf)
    assert reader.metadata.title == "CPT 20702: Drug Delivery <Device> *Insertion*"
    assert reader.metadata.author == "cptpub editorial team"
    assert reader.metadata.get("/Keywords") == "CPT 20702"
    text = re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in reader.pages))
    order = [
        text.index(part)
        for part in (
            "Drug Delivery <Device> *Insertion*",
            DEMO_NOTICE,
            "Aetna <TiC> file: February 1, 2026",
            "Contents",
        )
    ]
    assert order == sorted(order), text  # banner and dates under the title, then the contents
    assert "Table 1: Rates by payer" in text and "$1,234.00" in text


def test_pdf_include_has_the_table_rules_of_the_builtin_template(job: AssemblyJob) -> None:
    write_project(job, load_config(job.report_dir))
    header = (job.workdir / "_cptpub" / "in-header.typ").read_text(encoding="utf-8")
    assert TABLE_RULES in header
    template = (REPORT_DIR / "publication.typ").read_text(encoding="utf-8")
    for rule in TABLE_RULES.replace("luma(205)", "rule-colour").splitlines():
        assert "quarto-float" in rule or rule in template, f"{rule!r} differs from report/publication.typ"


QUARTO_CODE_SHORTCODES = """
package.path = %s .. "/?.lua;" .. package.path
local shortcode_lpeg = require("lpegshortcode")
-- The code-span and code-block parser of customnodes/shortcodes.lua (v1.7.32), with a handler that marks a call.
local code = shortcode_lpeg.make_shortcode_parser({
  escaped = function(s) return "{{<" .. s .. ">}}" end,
  string = function(s) return { value = s } end,
  keyvalue = function(k, r, v) return { name = k, value = v } end,
  shortcode = function(open, space, lst, close) return "CALLED(" .. lst[1].value .. ")" end,
})
for _, text in ipairs({ %s, %s }) do
  print(shortcode_lpeg.wrap_lpeg_match(code, text) or text)
  print(shortcode_lpeg.parse_md_shortcode(text))
end
"""


def test_shortcodes_in_data_are_printed_literally_by_quarto(job: AssemblyJob, tmp_path: Path) -> None:
    """Finding: Quarto evaluates shortcodes in text and in code spans (customnodes/shortcodes.lua `code_handler`),
    so `{{< env HOME >}}` from data printed an environment variable; Quarto's escape is `{{{< ... >}}}`."""
    write_project(job, load_config(job.report_dir))
    cells = nbformat.read(job.workdir / "cpt-20702.ipynb", as_version=4).cells
    assert cells[1].source == "## Summary\n\nThe code `{{{< env HOME >}}}` pays well."
    assert "`{{{< env HOME >}}}` and {{{< env HOME >}}} stay literal" in cells[2].outputs[0].data["text/markdown"]
    result = cells[4].metadata.user_expressions[0].result  # what Quarto puts in place of `{python} payer`
    assert result.data["text/markdown"] == "Aetna {{{< env HOME >}}}"
    assert escape_shortcodes("a {{< include secret.qmd >}} b") == "a {{{< include secret.qmd >}}} b"
    raw, escaped = "`{{< env HOME >}}`", escape_shortcodes("`{{< env HOME >}}`")
    lines = run_lua(
        QUARTO_CODE_SHORTCODES % (lua_string(str(QUARTO_SOURCE)), lua_string(raw), lua_string(escaped)), tmp_path
    ).splitlines()
    assert lines[0] == "`CALLED(env)`"  # unescaped: Quarto runs it
    assert "quarto-shortcode__-param" in lines[1]
    assert lines[2] == "`{{< env HOME >}}`"  # escaped: printed as written in the data
    assert "quarto-shortcode__-escaped" in lines[3] and "quarto-shortcode__-param" not in lines[3]


def test_include_files_escape_data_and_carry_the_demo_notice(job: AssemblyJob) -> None:
    write_project(job, load_config(job.report_dir))
    support = job.workdir / "_cptpub"
    before = (support / "before-body.html").read_text(encoding="utf-8")
    assert 'href="index.html"' in before and 'href="cpt-20702.pdf"' in before
    assert DEMO_NOTICE in before and "Data as of" not in before  # the dates go under the title
    header = (support / "in-header.typ").read_text(encoding="utf-8")
    assert "#set page(footer:" in header and "counter(page).final()" in header
    assert '"DEMO DATA' in header and "datetime(year: 2026, month: 3, day: 1)" in header
    assert '"Aetna <TiC> file"' in (support / "before-body.typ").read_text(encoding="utf-8")


def test_data_is_escaped_by_the_shared_escaping_layer(job: AssemblyJob) -> None:
    """Control characters and line breaks in data are dropped or folded, as everywhere else in cptpub."""
    meta = EditionMeta(
        code="20702",
        title="CPT 20702:\x07 Drug <Delivery>\n  Device {{< env HOME >}}",
        edition_date=datetime.date(2026, 3, 1),
        data_as_of=(("Aetna\x00 <TiC>\r\nfile", datetime.date(2026, 2, 1)),),
        demo=False,
        keywords=("rates\x1b[31m",),
    )
    job = AssemblyJob(meta, job.notebooks, job.workdir, job.report_dir)
    front = nbformat.read(write_project(job, load_config(job.report_dir)), as_version=4).cells[0].source
    fields = yaml.safe_load(front.strip("-\n"))
    assert fields["title"] == r"CPT 20702\: Drug \<Delivery\> Device \{\{\< env HOME \>\}\}"
    assert fields["keywords"] == [r"rates\[31m"]
    assert "<li>Aetna &lt;TiC&gt; file: February 1, 2026</li>" in html_data_dates(meta)


# --- running quarto -----------------------------------------------------------------------------------------------


def test_failed_pdf_leaves_the_published_edition_untouched(job: AssemblyJob, quarto_on_path, tmp_path: Path) -> None:
    """Quarto writes the HTML, then fails on the PDF: the old page must stay, not a new one linking to the old PDF."""
    quarto_on_path(
        render='case "$4" in html) printf "new page" > cpt-20702.html ;; '
        "*) echo 'ERROR: typst compile failed' >&2; exit 1 ;; esac"
    )
    out_dir = tmp_path / "dist"
    out_dir.mkdir()
    published = {"cpt-20702.html": b"<!DOCTYPE html>previous edition", "cpt-20702.pdf": b"%PDF-previous edition"}
    for name, data in published.items():
        (out_dir / name).write_bytes(data)
        os.utime(out_dir / name, ns=(1_000_000_000, 1_000_000_000))
    with pytest.raises(AssemblyError, match="quarto render --to typst` failed"):
        get_engine("quarto").render(job, ["html", "pdf"], out_dir)
    assert (job.workdir / "cpt-20702.html").read_text() == "new page"  # the HTML did render
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(published), "no temporary files are left"
    for name, data in published.items():
        assert (out_dir / name).read_bytes() == data
        assert (out_dir / name).stat().st_mtime_ns == 1_000_000_000


def test_failing_quarto_surfaces_stderr_and_exit_status(job: AssemblyJob, quarto_on_path, tmp_path: Path) -> None:
    quarto_on_path()
    engine = get_engine("auto")
    assert engine.name == "quarto" and engine.version() == "1.7.32"
    with pytest.raises(AssemblyError) as caught:
        engine.render(job, ["html", "pdf"], tmp_path / "dist")
    message = str(caught.value)
    assert "exit status 3" in message
    assert "ERROR: typst compile failed: unknown font" in message
    assert caught.value.where == str(job.workdir / "cpt-20702.ipynb")
    assert not (tmp_path / "dist" / "cpt-20702.html").exists()


def test_success_without_an_output_file_is_an_error(job: AssemblyJob, quarto_on_path, tmp_path: Path) -> None:
    quarto_on_path(render="exit 0")
    (job.workdir / "cpt-20702.html").write_text("left over from an earlier run")
    with pytest.raises(AssemblyError, match="did not write cpt-20702.html"):
        get_engine("quarto").render(job, ["html"], tmp_path / "dist")


def test_cli_build_hands_quarto_the_executed_notebooks(ingested_project: Path, tmp_path: Path) -> None:
    """`cptpub build 20702 --engine quarto` runs `quarto render` on the edition notebook made of the executed
    section notebooks, in the build folder, with execution off; the recording quarto fails, so the build fails."""
    project = copy_project(tmp_path / "project")
    shutil.copytree(ingested_project / "build", project / "build")
    bin_dir = tmp_path / "bin"
    fake_quarto(bin_dir)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "QUARTO_PATH": ""}
    result = run_cptpub(project, "build", "20702", "--engine", "quarto", "--to", "pdf", check=False, env=env)
    assert result.returncode == 1
    assert "quarto render --to typst` failed with exit status 3" in result.stderr
    *argv, cwd = (bin_dir / "log" / "argv").read_text().splitlines()
    assert argv == ["render", "cpt-20702.ipynb", "--to", "typst", "--no-execute"]
    assert cwd.startswith(f"cwd={project / 'build'}") and cwd.endswith("/20702")  # the code's build folder
    given = bin_dir / "log" / "project-1"
    edition = nbformat.read(given / "cpt-20702.ipynb", as_version=4)
    sections = sorted(path.name for path in (project / "notebooks").glob("*.ipynb"))
    executed = [nbformat.read(given / name, as_version=4) for name in sections]
    expected = [
        cell.source
        for notebook in executed
        for cell in notebook.cells
        if not {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", ()))
    ]
    assert [cell.source for cell in edition.cells[1:]] == [escape_shortcodes(text) for text in expected]
    assert any(cell.get("outputs") for cell in edition.cells[1:]), "the executed outputs are handed over"
    assert yaml.safe_load((given / "_quarto.yml").read_text())["execute"] == {"echo": False, "enabled": False}
    assert not (project / "dist" / "cpt-20702.pdf").exists()


def test_old_or_missing_quarto_is_refused(
    job: AssemblyJob, quarto_on_path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = quarto_on_path(version="1.3.450")
    with pytest.raises(AssemblyError, match="1.3.450 is too old"):
        QuartoEngine().version()
    script.unlink()
    assert get_engine("auto").name == "builtin"
    with pytest.raises(AssemblyError, match=r"quarto not found \(PATH\)"):
        get_engine("quarto")
    monkeypatch.setenv("QUARTO_PATH", str(tmp_path / "nowhere" / "quarto"))
    with pytest.raises(AssemblyError, match="QUARTO_PATH="):
        QuartoEngine()


@pytest.mark.parametrize("version", ["1.4.557", "1.6.40", "1.7.0", "1.7.5", "1.7.18"])
def test_quarto_bundling_typst_before_0_13_is_refused(quarto_on_path, version: str) -> None:
    """quarto-cli's `configuration` pins `TYPST=0.11.0` up to v1.7.18 and `0.13.0` from v1.7.19; in-header.typ uses
    document(description:), new in Typst 0.13."""
    quarto_on_path(version=version)
    with pytest.raises(AssemblyError, match=rf"{re.escape(version)} is too old.*Quarto 1\.7\.19 or newer") as caught:
        QuartoEngine().version()
    assert "Typst 0.11" in str(caught.value)
    assert "Quarto >= 1.7.19" in (caught.value.hint or "")


@pytest.mark.parametrize("version", ["1.7.19", "1.7.32", "1.8.27", "1.9.9", "99.9.9"])
def test_quarto_bundling_typst_0_13_or_newer_is_accepted(quarto_on_path, version: str) -> None:
    quarto_on_path(version=version)
    assert QuartoEngine().version() == version


def test_quarto_path_wins_over_path(
    job: AssemblyJob, quarto_on_path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    quarto_on_path(version="1.3.0")
    chosen = fake_quarto(tmp_path / "opt", version="1.7.20")
    monkeypatch.setenv("QUARTO_PATH", str(chosen))
    engine = get_engine("quarto")
    assert engine.executable == str(chosen) and engine.version() == "1.7.20"


def test_lua_string_escapes() -> None:
    assert lua_string('a"b\\c\nd') == '"a\\"b\\\\c\\010d"'


# --- a real Quarto ------------------------------------------------------------------------------------------------


def _pdf_text(path: Path) -> str:
    return re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in PdfReader(path).pages))


@pytest.mark.skipif(shutil.which("quarto") is None, reason="Quarto is not installed on this machine")
def test_real_quarto_render_matches_the_builtin_edition(
    job: AssemblyJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUARTO_PATH", raising=False)
    home = tmp_path / "home-marker-7f3a"  # what `{{< env HOME >}}` would print
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    quarto = get_engine("quarto").render(job, ["html", "pdf"], tmp_path / "quarto")
    builtin = get_engine("builtin").render(job, ["html", "pdf"], tmp_path / "builtin")
    html = quarto["html"].read_text(encoding="utf-8")
    assert 'alt="Bar chart of rates"' in html and "cpt-20702.pdf" in html and DEMO_NOTICE in html
    assert "{{&lt; env HOME &gt;}}" in html and "home-marker-7f3a" not in html
    assert html.index('class="title"') < html.index("Data as of") < html.index("Summary")
    builtin_html = builtin["html"].read_text(encoding="utf-8")
    for text in ("Summary", "Method", "Medians.", "$1,234.00", "Rates by payer", "Aetna"):
        assert text in html and text in builtin_html, text
    assert html.count("<table") == builtin_html.count("<table") and html.count("<img") == builtin_html.count("<img")
    quarto_pdf, builtin_pdf = _pdf_text(quarto["pdf"]), _pdf_text(builtin["pdf"])
    for text in ("Summary", "Medians.", "$1,234.00", "Rates by payer", DEMO_NOTICE, "Page 1 of"):
        assert text in quarto_pdf and text in builtin_pdf, text
    assert "home-marker-7f3a" not in quarto_pdf
    title = "Drug Delivery <Device> *Insertion*"
    order = [quarto_pdf.index(part) for part in (title, DEMO_NOTICE, "Data as of", "Contents", "Summary")]
    assert order == sorted(order)
    assert PdfReader(quarto["pdf"]).metadata.title == PdfReader(builtin["pdf"]).metadata.title
