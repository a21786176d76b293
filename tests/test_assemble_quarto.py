"""The quarto engine: the project it writes, the command it runs, and how a failing Quarto is reported."""

from __future__ import annotations

import datetime
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

from cptpub import escape
from cptpub.assemble import AssemblyJob, EditionMeta, QuartoEngine, get_engine
from cptpub.assemble.base import DEMO_NOTICE
from cptpub.assemble.config import load_config
from cptpub.assemble.pandoc import pandoc_path
from cptpub.assemble.quarto import TABLE_RULES, lua_string, quarto_command, write_project
from cptpub.errors import AssemblyError

REPORT_DIR = Path(__file__).resolve().parents[1] / "report"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>'
CONTENT = """## Rates

Payer text <script>alert(1)</script> [x](javascript:alert(2)){onclick="y"} @medicare {{< env HOME >}}

| Payer | Rate |
|:--|--:|
| Aetna | $1,234.00 |

![Rates by payer](figures/rates.svg){fig-alt="Bar chart of rates"}

```{=html}
<iframe src="https://example.org"></iframe>
```
"""


@pytest.fixture
def job(tmp_path: Path) -> AssemblyJob:
    workdir = tmp_path / "build" / "20702"
    (workdir / "figures").mkdir(parents=True)
    (workdir / "figures" / "rates.svg").write_text(SVG)
    notebook = new_notebook(
        cells=[
            new_code_cell("code = '20702'", metadata={"tags": ["injected-parameters"]}),
            new_code_cell(
                "show()",
                outputs=[
                    new_output("display_data", data={"text/markdown": CONTENT}),
                    new_output("stream", name="stdout", text="STREAM TEXT"),
                ],
            ),
            new_markdown_cell("### Method\n\nMedians."),
        ]
    )
    path = workdir / "01-rates.ipynb"
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
    return AssemblyJob(meta=meta, notebooks=(path,), workdir=workdir, report_dir=REPORT_DIR)


def fake_quarto(
    bin_dir: Path,
    *,
    version: str = "1.7.32",
    render: str = "echo 'ERROR: typst compile failed: unknown font' >&2; exit 3",
) -> Path:
    """A stand-in ``quarto`` on PATH: answers --version, and runs ``render`` for anything else."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "quarto"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo {version}; exit 0; fi\n{render}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


@pytest.fixture
def quarto_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("QUARTO_PATH", raising=False)
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return lambda **kwargs: fake_quarto(bin_dir, **kwargs)


def test_command_renders_the_one_source_without_execution(job: AssemblyJob) -> None:
    assert quarto_command("/opt/quarto/bin/quarto", job, "html") == [
        "/opt/quarto/bin/quarto", "render", "cpt-20702.qmd", "--to", "html", "--no-execute",
    ]  # fmt: skip
    assert quarto_command("quarto", job, "pdf") == [
        "quarto",
        "render",
        "cpt-20702.qmd",
        "--to",
        "typst",
        "--no-execute",
    ]


def test_project_settings_come_from_the_report_settings(job: AssemblyJob) -> None:
    source = write_project(job, load_config(job.report_dir))
    settings = yaml.safe_load((job.workdir / "_quarto.yml").read_text(encoding="utf-8"))
    report = yaml.safe_load((REPORT_DIR / "_quarto.yml").read_text(encoding="utf-8"))
    assert settings["execute"] == {"enabled": False}
    assert settings["project"]["type"] == "default"
    assert "cptpub" not in settings
    html, typst = settings["format"]["html"], settings["format"]["typst"]
    assert html["css"] == ["_cptpub/styles.css"]
    assert (job.workdir / "_cptpub" / "styles.css").read_bytes() == (REPORT_DIR / "styles.css").read_bytes()
    assert html["include-before-body"] == ["_cptpub/before-body.html"]
    assert typst["include-in-header"] == ["_cptpub/in-header.typ"]
    assert typst["include-before-body"] == ["_cptpub/before-body.typ"]
    for key in ("papersize", "margin", "fontsize", "toc"):
        assert typst[key] == report["format"]["typst"][key]
    assert html["embed-resources"] is True and html["toc"] is True
    assert source == job.workdir / "cpt-20702.qmd"


def test_source_has_escaped_front_matter_and_no_content(job: AssemblyJob) -> None:
    text = write_project(job, load_config(job.report_dir)).read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    fields = yaml.safe_load(front)
    assert fields["title"] == escape.md(job.meta.title) == r"CPT 20702\: Drug Delivery \<Device\> \*Insertion\*"
    assert fields["engine"] == "markdown"  # no Jupyter kernel can start
    assert fields["date"] == "2026-03-01" and fields["keywords"] == ["CPT 20702"]
    assert body == ""  # the content filter supplies the body
    settings = yaml.safe_load((job.workdir / "_quarto.yml").read_text(encoding="utf-8"))
    assert settings["filters"] == ["_cptpub/content.lua"]


def test_content_filter_reads_content_as_the_builtin_engine_does(job: AssemblyJob, tmp_path: Path) -> None:
    """Run the generated filter with Pandoc, from another folder, as Quarto runs it before its own filters."""
    source = write_project(job, load_config(job.report_dir))
    argv = [
        pandoc_path(),
        str(source),
        "--from=markdown",
        "--to=html",
        "--wrap=none",
        "--lua-filter",
        str(job.workdir / "_cptpub/content.lua"),
    ]
    html = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert '<h2 id="rates">Rates</h2>' in html and '<h3 id="method">Method</h3>' in html
    assert "<th" in html and "$1,234.00" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "<iframe" not in html and "javascript:" not in html and "onclick" not in html
    assert "@medicare" in html and "{{&lt; env HOME &gt;}}" in html
    assert 'data-fig-alt="Bar chart of rates"' in html  # kept for Quarto, which turns fig-alt into alt
    assert "STREAM TEXT" not in html and "code = " not in html


def test_content_filter_refuses_images_outside_the_build_folder(job: AssemblyJob, tmp_path: Path) -> None:
    source = write_project(job, load_config(job.report_dir))
    (job.workdir / "_cptpub" / "content.md").write_text("![x](../../secret.svg)\n")
    argv = [pandoc_path(), str(source), "--to=html", "--lua-filter", str(job.workdir / "_cptpub/content.lua")]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "image source '../../secret.svg' refused" in result.stderr


def test_lua_string_escapes() -> None:
    assert lua_string('a"b\\c\nd') == '"a\\"b\\\\c\\010d"'


def test_include_files_escape_data_and_carry_the_demo_notice(job: AssemblyJob) -> None:
    write_project(job, load_config(job.report_dir))
    support = job.workdir / "_cptpub"
    before = (support / "before-body.html").read_text(encoding="utf-8")
    assert 'href="index.html"' in before and 'href="cpt-20702.pdf"' in before
    assert DEMO_NOTICE in before and "Aetna &lt;TiC&gt; file: February 1, 2026" in before
    header = (support / "in-header.typ").read_text(encoding="utf-8")
    assert "#set page(footer:" in header and "counter(page).final()" in header
    assert '"DEMO DATA' in header and "datetime(year: 2026, month: 3, day: 1)" in header
    assert '"Aetna <TiC> file"' in (support / "before-body.typ").read_text(encoding="utf-8")


def test_data_is_escaped_by_the_shared_escaping_layer(job: AssemblyJob) -> None:
    """Control characters and line breaks in data are dropped or folded, as everywhere else in cptpub."""
    meta = EditionMeta(
        code="20702",
        title="CPT 20702:\x07 Drug <Delivery>\n  Device",
        edition_date=datetime.date(2026, 3, 1),
        data_as_of=(("Aetna\x00 <TiC>\r\nfile", datetime.date(2026, 2, 1)),),
        demo=False,
        keywords=("rates\x1b[31m",),
    )
    job = AssemblyJob(meta, job.notebooks, job.workdir, job.report_dir)
    fields = yaml.safe_load(
        write_project(job, load_config(job.report_dir)).read_text(encoding="utf-8").split("---\n")[1]
    )
    assert fields["title"] == r"CPT 20702\: Drug \<Delivery\> Device"
    assert fields["keywords"] == [r"rates\[31m"]
    before = (job.workdir / "_cptpub" / "before-body.html").read_text(encoding="utf-8")
    assert "<li>Aetna &lt;TiC&gt; file: February 1, 2026</li>" in before


def test_pdf_include_has_the_table_rules_of_the_builtin_template(job: AssemblyJob, tmp_path: Path) -> None:
    write_project(job, load_config(job.report_dir))
    header = (job.workdir / "_cptpub" / "in-header.typ").read_text(encoding="utf-8")
    for rule in (
        "#set table.cell(breakable: false)",  # rows never split across pages
        "#show figure.where(kind: table): set block(breakable: true)",
        '#show figure.where(kind: "quarto-float-tbl"): set block(breakable: true)',
        "#show figure.caption.where(position: top): it => block(sticky: true, width: 100%, it)",  # caption stays
    ):
        assert rule in header
    template = (REPORT_DIR / "publication.typ").read_text(encoding="utf-8")
    for rule in TABLE_RULES.splitlines():
        assert "quarto-float" in rule or rule in template, f"{rule!r} differs from report/publication.typ"
    # The include files compile (here with the typst wheel; Quarto >= 1.7 bundles Typst 0.13).
    main = tmp_path / "main.typ"
    main.write_text(
        header
        + (job.workdir / "_cptpub" / "before-body.typ").read_text(encoding="utf-8")
        + "\n#figure(table(columns: 2, table.header[Payer][Rate], [Aetna], [1]), caption: [Rates])\n",
        encoding="utf-8",
    )
    assert typst.compile(main, root=tmp_path, ignore_system_fonts=True, font_paths=[]).startswith(b"%PDF")


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
    assert caught.value.where == str(job.workdir / "cpt-20702.qmd")
    assert not (tmp_path / "dist" / "cpt-20702.html").exists()


def test_success_without_an_output_file_is_an_error(job: AssemblyJob, quarto_on_path, tmp_path: Path) -> None:
    quarto_on_path(render="exit 0")
    (job.workdir / "cpt-20702.html").write_text("left over from an earlier run")
    with pytest.raises(AssemblyError, match="did not write cpt-20702.html"):
        get_engine("quarto").render(job, ["html"], tmp_path / "dist")


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


@pytest.mark.parametrize("version", ["1.4.557", "1.5.57", "1.6.40"])
def test_quarto_bundling_typst_before_0_13_is_refused(quarto_on_path, version: str) -> None:
    """in-header.typ uses document(description:), new in Typst 0.13, which Quarto bundles from 1.7 on."""
    quarto_on_path(version=version)
    with pytest.raises(AssemblyError, match=rf"{re.escape(version)} is too old.*Quarto 1\.7 or newer") as caught:
        QuartoEngine().version()
    assert "Quarto >= 1.7" in (caught.value.hint or "")


def test_quarto_1_7_is_accepted(quarto_on_path) -> None:
    quarto_on_path(version="1.7.0")
    assert QuartoEngine().version() == "1.7.0"


def test_quarto_path_wins_over_path(
    job: AssemblyJob, quarto_on_path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    quarto_on_path(version="1.3.0")
    chosen = fake_quarto(tmp_path / "opt", version="1.7.2")
    monkeypatch.setenv("QUARTO_PATH", str(chosen))
    engine = get_engine("quarto")
    assert engine.executable == str(chosen) and engine.version() == "1.7.2"


@pytest.mark.skipif(shutil.which("quarto") is None, reason="Quarto is not installed on this machine")
def test_real_quarto_render(job: AssemblyJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUARTO_PATH", raising=False)
    outputs = get_engine("quarto").render(job, ["html", "pdf"], tmp_path / "dist")
    html = outputs["html"].read_text(encoding="utf-8")
    assert "Bar chart of rates" in html and "cpt-20702.pdf" in html and DEMO_NOTICE in html
    assert "<script>alert(1)</script>" not in html
    text = "\n".join(page.extract_text() for page in PdfReader(outputs["pdf"]).pages)
    assert "Rates" in text and "$1,234.00" in text and "Page 1 of" in text
