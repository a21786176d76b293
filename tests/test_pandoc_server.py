"""The builtin engine's long-lived Pandoc: the command line's bytes, edition after edition, and a process that is
restarted when it dies and stopped with its engine or its worker."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import typst
import yaml

from cptpub.assemble import AssemblyJob, BuiltinEngine
from cptpub.assemble import pandoc_server as server_module
from cptpub.assemble.builtin import html_metadata
from cptpub.assemble.config import load_config
from cptpub.assemble.markdown import notebooks_to_markdown
from cptpub.assemble.pandoc import READER, crossref_filter, pandoc_path, safety_filter
from cptpub.batch.tasks import assembly_engine, close_assembly_engines
from cptpub.errors import AssemblyError

from .test_assemble_builtin import REPORT_DIR, make_job, make_meta

# Editions that differ where the command line does something to its input or metadata: tabs and carriage returns
# (expanded and dropped), a metadata block of the document's own (it wins over --metadata-file), cross-references
# (numbered per output format; forward, and in captions), text that must stay literal in both outputs.
EDITIONS = {
    "plain": ("", {}),
    "tabs-and-crs": ("\r\n\r\n```python\nif x:\n\tprint('\ttab')\r\n```\n\nA\tb\tc\r\n", {}),
    "own-metadata": ("\n\n---\ntitle: From the document\nlang: fr\n---\n\nText after the block.\n", {}),
    "cross-references": (
        "\n\nSee @fig-rates and @tbl-missing.\n\n![Rates]({fig}){{#fig-rates}}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        ": Small table beside @fig-rates {{#tbl-small}}\n\n| c |\n|---|\n| 3 |\n\n: After @tbl-small {{#tbl-after}}\n",
        {},
    ),
    "literal-text": ("\n\n<b>not bold</b> & $x$ [link](javascript:alert(1)) `#panic()`\n", {"title": "R&D <i> 'x' #y"}),
}


def command_line(job: AssemblyJob) -> dict[str, bytes]:
    """The HTML page, Typst source and PDF as two separate ``pandoc`` runs write them (the engine's former way)."""
    config = load_config(job.report_dir)
    markdown = notebooks_to_markdown(job.notebooks, job.workdir, config.execute).encode("utf-8")
    meta_file = job.workdir / "cli-metadata.yaml"
    meta_file.write_text(
        yaml.safe_dump(html_metadata(job.meta, config), allow_unicode=True, sort_keys=False, width=2**30),
        encoding="utf-8",
    )
    common = [pandoc_path(), f"--from={READER}", f"--lua-filter={crossref_filter()}", f"--lua-filter={safety_filter()}"]
    html_args = [
        f"--metadata-file={meta_file}",
        "--to=html5",
        "--standalone",
        "--embed-resources",
        "--wrap=none",
        f"--template={config.html_template}",
        *(f"--css={css}" for css in config.html.css),
        "--toc",
        f"--toc-depth={config.html.toc_depth}",
    ]
    typst_args = ["--to=typst", "--standalone", f"--template={config.typst_template}"]

    def run(args: list[str]) -> bytes:
        return subprocess.run([*common, *args], input=markdown, cwd=job.workdir, capture_output=True, check=True).stdout

    source = job.workdir / "cli.typ"
    source.write_bytes(run(typst_args))
    pdf = typst.compile(source, root=job.workdir, ignore_system_fonts=True, font_paths=[])
    return {"html": run(html_args), "typ": source.read_bytes(), "pdf": pdf}


def edition_job(root: Path, name: str) -> AssemblyJob:
    extra, meta_changes = EDITIONS[name]
    job = make_job(root / name, extra_markdown=extra.format(fig="figures/cpt-20702-rates.svg"))
    return dataclasses.replace(job, meta=dataclasses.replace(job.meta, **meta_changes))


def server_pid(engine: BuiltinEngine) -> int:
    pid = engine._pandoc.pid
    assert pid is not None, "the engine's pandoc is running"
    return pid


def stopped(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_one_pandoc_writes_every_edition_as_the_command_line_does(tmp_path: Path) -> None:
    engine = BuiltinEngine()
    pids = set()
    for name in EDITIONS:
        job = edition_job(tmp_path / "build", name)
        outputs = engine.render(job, ["html", "pdf"], tmp_path / "dist" / name)
        pids.add(server_pid(engine))
        expected = command_line(job)
        assert outputs["html"].read_bytes() == expected["html"], name
        assert (job.workdir / "cpt-20702.typ").read_bytes() == expected["typ"], name
        assert outputs["pdf"].read_bytes() == expected["pdf"], name
    assert len(pids) == 1, "one pandoc for all editions"
    html = (tmp_path / "dist" / "own-metadata" / "cpt-20702.html").read_text(encoding="utf-8")
    assert "<title>" in html and "From the document" in html and 'lang="fr"' in html
    html = (tmp_path / "dist" / "cross-references" / "cpt-20702.html").read_text(encoding="utf-8")
    figure = re.search(r'See <a href="#fig-rates">(Figure \d+)</a> and \?@tbl-missing', html)
    assert figure, "a forward reference, and one to a missing label"
    assert f'Table 1: Small table beside <a href="#fig-rates">{figure[1]}</a></caption>' in html
    assert 'Table 2: After <a href="#tbl-small">Table 1</a></caption>' in html
    typst_source = (tmp_path / "build" / "cross-references" / "cpt-20702.typ").read_text(encoding="utf-8")
    assert "Table 2:" not in typst_source and "After #link(<tbl-small>)[Table 1]" in typst_source
    engine.close()


def test_templates_are_applied_as_the_command_line_does(tmp_path: Path) -> None:
    """A template without a final line break: the command line adds none to standalone output, nor may the engine."""
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    for template in (report / "publication.typ", report / "template.html"):
        template.write_text(template.read_text().rstrip("\n") + "\n\n// end" * (template.suffix == ".typ"))
    job = dataclasses.replace(make_job(tmp_path / "build"), report_dir=report)
    outputs = BuiltinEngine().render(job, ["html", "pdf"], tmp_path / "dist")
    expected = command_line(job)
    assert not expected["typ"].endswith(b"\n") and not expected["html"].endswith(b"\n")
    assert (job.workdir / "cpt-20702.typ").read_bytes() == expected["typ"]
    assert outputs["html"].read_bytes() == expected["html"]


def test_templates_and_partials_edited_between_editions_are_used_by_the_next(tmp_path: Path) -> None:
    """The long-lived Pandoc keeps templates compiled between editions: one whose file, or a partial of which,
    changes is used as it now reads, as the command line would."""
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    page, source = report / "template.html", report / "publication.typ"
    text = page.read_text(encoding="utf-8")
    assert text.count("<body>") == 1
    page.write_text(text.replace("<body>", "<body>\n${ cptpub-note() }"), encoding="utf-8")
    note = report / "cptpub-note.html"
    note.write_text("<p>first note</p>\n", encoding="utf-8")
    engine = BuiltinEngine()
    html, typ, pids = [], [], set()
    for edition in ("first", "second"):
        job = dataclasses.replace(make_job(tmp_path / edition), report_dir=report)
        html.append(engine.render(job, ["html", "pdf"], tmp_path / f"dist-{edition}")["html"].read_text("utf-8"))
        typ.append((job.workdir / "cpt-20702.typ").read_text(encoding="utf-8"))
        pids.add(server_pid(engine))
        note.write_text("<p>second note</p>\n", encoding="utf-8")
        source.write_text(source.read_text(encoding="utf-8") + "\n// edited after the first edition\n")
    assert len(pids) == 1, "both editions were written by one Pandoc"
    assert "first note" in html[0] and "second note" in html[1]
    assert "// edited" not in typ[0] and "// edited after the first edition" in typ[1]
    engine.close()


def test_formats_alone_match_both_together(tmp_path: Path) -> None:
    engine = BuiltinEngine()
    both = engine.render(make_job(tmp_path / "both"), ["html", "pdf"], tmp_path / "both-out")
    html = engine.render(make_job(tmp_path / "html"), ["html"], tmp_path / "html-out")
    pdf = engine.render(make_job(tmp_path / "pdf"), ["pdf"], tmp_path / "pdf-out")
    assert html["html"].read_bytes() == both["html"].read_bytes()
    assert pdf["pdf"].read_bytes() == both["pdf"].read_bytes()
    engine.close()


def test_pandoc_killed_between_editions_is_restarted(tmp_path: Path) -> None:
    engine = BuiltinEngine()
    first = engine.render(make_job(tmp_path / "one"), ["html", "pdf"], tmp_path / "dist-one")
    killed = server_pid(engine)
    os.kill(killed, signal.SIGKILL)
    assert stopped(killed)
    second = engine.render(make_job(tmp_path / "two"), ["html", "pdf"], tmp_path / "dist-two")
    assert server_pid(engine) != killed
    assert second["html"].read_bytes() == first["html"].read_bytes()
    assert second["pdf"].read_bytes() == first["pdf"].read_bytes()
    engine.close()


def test_pandoc_is_renewed_after_its_share_of_editions_with_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(server_module, "JOBS_PER_PROCESS", 2)
    engine = BuiltinEngine()
    first = engine.render(make_job(tmp_path / "one"), ["html"], tmp_path / "dist-one")
    pid = server_pid(engine)
    engine.render(make_job(tmp_path / "two"), ["html"], tmp_path / "dist-two")
    assert server_pid(engine) == pid  # both editions on one process
    third = engine.render(make_job(tmp_path / "three"), ["html"], tmp_path / "dist-three")
    assert server_pid(engine) != pid and stopped(pid)  # the third on a new one; the old one is gone
    assert third["html"].read_bytes() == first["html"].read_bytes()
    engine.close()


def test_pandoc_dying_during_an_edition_fails_that_edition_only(tmp_path: Path) -> None:
    engine = BuiltinEngine()
    engine.render(make_job(tmp_path / "warm"), ["html"], tmp_path / "dist")
    process = engine._pandoc._process
    assert process is not None
    process.kill()  # e.g. out of memory
    process.wait(timeout=10)
    process.poll = lambda: None  # type: ignore[method-assign]  # as if it died after the engine looked, not before
    job = make_job(tmp_path / "doomed")
    with pytest.raises(AssemblyError, match=r"pandoc stopped while writing the HTML page \(exit status -9\)") as err:
        engine.render(job, ["html"], tmp_path / "dist")
    assert err.value.where == str(job.workdir)
    outputs = engine.render(make_job(tmp_path / "next"), ["html"], tmp_path / "dist")
    assert outputs["html"].read_bytes().startswith(b"<!DOCTYPE html>")
    engine.close()


def test_pandoc_timeout_names_the_folder_and_the_next_edition_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = BuiltinEngine()
    monkeypatch.setattr(server_module, "PANDOC_TIMEOUT", 0)
    job = make_job(tmp_path / "slow")
    with pytest.raises(AssemblyError, match=r"pandoc did not finish the HTML page and Typst source within 0 s") as err:
        engine.render(job, ["html", "pdf"], tmp_path / "dist")
    assert err.value.where == str(job.workdir)
    assert engine._pandoc.pid is None, "the pandoc that ran out of time is stopped"
    monkeypatch.undo()
    outputs = engine.render(make_job(tmp_path / "next"), ["html", "pdf"], tmp_path / "dist")
    assert sorted(outputs) == ["html", "pdf"]
    engine.close()


def test_bad_typst_source_names_its_file_and_the_next_edition_renders(tmp_path: Path) -> None:
    report = tmp_path / "broken-report"
    shutil.copytree(REPORT_DIR, report)
    template = report / "publication.typ"
    template.write_text(template.read_text().replace("#set par(justify: true", "#set par(justify: nonsense"))
    engine = BuiltinEngine()
    bad = dataclasses.replace(make_job(tmp_path / "bad"), report_dir=report)
    with pytest.raises(AssemblyError, match="unknown variable: nonsense") as err:
        engine.render(bad, ["html", "pdf"], tmp_path / "dist")
    assert err.value.where == str(bad.workdir / "cpt-20702.typ")
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir()), "nothing published"
    outputs = engine.render(make_job(tmp_path / "good"), ["html", "pdf"], tmp_path / "dist")
    assert outputs["pdf"].read_bytes().startswith(b"%PDF-")
    engine.close()


def test_refused_image_is_reported_by_the_long_lived_pandoc_which_keeps_serving(tmp_path: Path) -> None:
    engine = BuiltinEngine()
    engine.render(make_job(tmp_path / "first"), ["html"], tmp_path / "dist")
    pid = server_pid(engine)
    job = make_job(tmp_path / "leak", extra_markdown="\n\n![leak](/etc/passwd)\n")
    with pytest.raises(AssemblyError, match=r"image source '/etc/passwd' refused: it is an absolute path") as err:
        engine.render(job, ["html", "pdf"], tmp_path / "dist")
    assert err.value.where == str(job.workdir)
    after = engine.render(edition_job(tmp_path / "after", "cross-references"), ["html", "pdf"], tmp_path / "dist-after")
    assert server_pid(engine) == pid, "a refused edition does not cost a restart"
    fresh = BuiltinEngine().render(
        edition_job(tmp_path / "fresh", "cross-references"), ["html", "pdf"], tmp_path / "dist-fresh"
    )
    # nothing of the failed job (e.g. the options its filters ran with) is left in the server
    assert after["html"].read_bytes() == fresh["html"].read_bytes()
    assert after["pdf"].read_bytes() == fresh["pdf"].read_bytes()
    engine.close()


def test_close_stops_the_engines_pandoc(tmp_path: Path) -> None:
    engine = BuiltinEngine()
    engine.render(make_job(tmp_path / "build"), ["html"], tmp_path / "dist")
    pid = server_pid(engine)
    engine.close()
    assert stopped(pid)
    assert engine._pandoc.pid is None


def test_worker_engines_are_closed_with_the_worker(tmp_path: Path) -> None:
    engine = assembly_engine("builtin")
    assert isinstance(engine, BuiltinEngine)
    engine.render(make_job(tmp_path / "build"), ["html"], tmp_path / "dist")
    pid = server_pid(engine)
    close_assembly_engines()
    assert stopped(pid)
    assert assembly_engine("builtin") is not engine, "a later task gets a new engine"
    close_assembly_engines()


def test_pandoc_stops_when_its_worker_dies_without_cleaning_up(tmp_path: Path) -> None:
    """A worker killed outright runs no clean-up: its pandoc sees the end of its input and exits by itself."""
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from pathlib import Path
from cptpub.assemble import BuiltinEngine
from tests.test_assemble_builtin import make_job
engine = BuiltinEngine()
engine.render(make_job(Path({str(tmp_path / "build")!r})), ["html"], Path({str(tmp_path / "dist")!r}))
print(engine._pandoc.pid, flush=True)
os.kill(os.getpid(), 9)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert stopped(int(result.stdout.strip()))


def test_metadata_from_the_page_does_not_leak_into_the_typst_source(tmp_path: Path) -> None:
    """The page's metadata file is the HTML output's alone, as it was with one command line per format."""
    job = dataclasses.replace(make_job(tmp_path / "build"), meta=make_meta(title="Unique Page Title 4711"))
    BuiltinEngine().render(job, ["html", "pdf"], tmp_path / "dist")
    assert "4711" not in (job.workdir / "cpt-20702.typ").read_text(encoding="utf-8")
    assert "4711" in (tmp_path / "dist" / "cpt-20702.html").read_text(encoding="utf-8")


def test_editions_rendered_in_threads_share_the_pandoc_safely(tmp_path: Path) -> None:
    """An external dask worker may run tasks in threads: their jobs must not interleave on the one pipe."""
    from concurrent.futures import ThreadPoolExecutor

    engine = BuiltinEngine()
    names = list(EDITIONS)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(
            pool.map(
                lambda name: engine.render(edition_job(tmp_path / "t", name), ["html"], tmp_path / "out" / name), names
            )
        )
    for name, outputs in zip(names, results, strict=True):
        alone = BuiltinEngine().render(edition_job(tmp_path / "alone", name), ["html"], tmp_path / "alone-out" / name)
        assert outputs["html"].read_bytes() == alone["html"].read_bytes(), name
    engine.close()
