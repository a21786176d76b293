"""CPU per edition of the builtin engine's assembly, step by step, against the former two command-line runs.

    python bench/assembly.py [--rounds 1] [--keep DIR]

In a temporary copy of the project, with the demo inputs ingested: each demo code's section notebooks are executed
once (``build_edition`` with an engine that keeps the assembly job), then every edition is assembled ``--rounds``
times in this process, as a batch worker does, with one ``BuiltinEngine``:

- markdown: ``notebooks_to_markdown`` (figures written);
- pandoc (long-lived): the engine's Pandoc reads the Markdown once, writes the Typst source and the page (its
  resources not embedded); its CPU is read from its process;
- html (embedding): ``cptpub.assemble.selfcontained.embed_resources`` of that page, in this process;
- pdf: ``typst.compile`` in this process.

and, for comparison, the former way: two ``pandoc`` runs from the Markdown (HTML with ``--embed-resources``, Typst
source) per edition, whose output bytes must equal the engine's (HTML, Typst source). Peak RSS of this process
(Typst's caches included) and of the long-lived Pandoc are printed too. Rounds after the first compile the same
Typst sources again, which Typst's caches make cheaper than in a real build (where every edition is new).

Target: assembly (markdown + HTML + PDF) a small part of the <= 0.5 s of CPU per edition; < 500 MB per worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cptpub.assemble.base import AssemblyJob  # noqa: E402
from cptpub.assemble.builtin import (  # noqa: E402
    HTML_PAGE_FILE,
    BuiltinEngine,
    html_metadata,
    html_output,
    render_pdf,
)
from cptpub.assemble.config import load_config  # noqa: E402
from cptpub.assemble.markdown import notebooks_to_markdown  # noqa: E402
from cptpub.assemble.pandoc import READER, crossref_filter, metadata_file, pandoc_path, safety_filter  # noqa: E402
from cptpub.assemble.pandoc_server import Output, output_filters  # noqa: E402
from cptpub.assemble.selfcontained import embed_resources  # noqa: E402
from cptpub.project import output_name  # noqa: E402


def cli(project: Path, *args: str) -> None:
    env = {**os.environ, "CPTPUB_PROJECT": str(project), "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-m", "cptpub.cli", *args], cwd=project, env=env, check=True, capture_output=True)


def executed_jobs(workspace: Path) -> list[AssemblyJob]:
    """Every demo code's assembly job, its notebooks executed once, each in a folder of its own."""
    from cptpub.edition import build_edition
    from cptpub.project import Project
    from cptpub.publishable import publishable_codes

    project_dir = workspace / "project"
    for name in ("data", "notebooks", "report"):
        shutil.copytree(REPO / name, project_dir / name, ignore=shutil.ignore_patterns("figures", ".ipynb_checkpoints"))
    inputs = workspace / "demo-inputs"
    cli(project_dir, "demo-inputs", str(inputs))
    cli(project_dir, "ingest", "pfs", str(inputs / "PPRRVU2026_Jul_nonQPP.csv"))
    cli(project_dir, "ingest", "tic", str(inputs))
    project = Project(project_dir)
    jobs = []

    class Keep:
        name = "keep"

        def version(self) -> str:
            return "keep"

        def render(self, job: AssemblyJob, formats: Any, out_dir: Path) -> dict[str, Path]:
            kept = workspace / "jobs" / job.meta.code
            shutil.copytree(job.workdir, kept)
            jobs.append(dataclasses.replace(job, workdir=kept, notebooks=tuple(kept / p.name for p in job.notebooks)))
            return {}

    for entry in publishable_codes(project):
        build_edition(project, entry.code, Keep(), workdir=workspace / "work" / entry.code, out_dir=workspace / "x")
    return jobs


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def command_line_outputs(job: AssemblyJob, markdown: str) -> tuple[bytes, bytes]:
    """HTML page and Typst source the former way: one ``pandoc`` from the Markdown per format."""
    config = load_config(job.report_dir)
    common = [pandoc_path(), f"--from={READER}", f"--lua-filter={crossref_filter()}", f"--lua-filter={safety_filter()}"]
    meta = metadata_file(job.workdir, "HTML page", html_metadata(job.meta, config))
    html_args = [f"--metadata-file={meta}", "--to=html5", "--standalone", "--embed-resources", "--wrap=none"]
    html_args += [f"--template={config.html_template}", *(f"--css={css}" for css in config.html.css)]
    html_args += ["--toc", f"--toc-depth={config.html.toc_depth}"] if config.html.toc else []
    typst_args = ["--to=typst", "--standalone", f"--template={config.typst_template}"]

    def run(args: list[str]) -> bytes:
        source = markdown.encode("utf-8")
        return subprocess.run([*common, *args], input=source, cwd=job.workdir, capture_output=True, check=True).stdout

    return run(html_args), run(typst_args)


def embedded_page(job: AssemblyJob) -> bytes:
    page = embed_resources((job.workdir / HTML_PAGE_FILE).read_text(encoding="utf-8"), job.workdir)
    if page is None:
        raise SystemExit(f"{job.meta.code}: the page needs Pandoc's command line to embed its resources")
    return page.encode("utf-8")


def measure_edition(
    engine: BuiltinEngine, job: AssemblyJob, steps: dict[str, list[float]], peak: dict[str, int]
) -> None:
    """Assemble ``job`` step by step, then the former way; add each step's CPU seconds to ``steps``."""

    def timed(name: str, counter: Callable[[], float], action: Callable[[], Any]) -> Any:
        start = counter()
        result = action()
        steps.setdefault(name, []).append(counter() - start)
        return result

    config = load_config(job.report_dir)
    markdown = timed("markdown", own_cpu, lambda: notebooks_to_markdown(job.notebooks, job.workdir, config.execute))
    typst_name = output_name(job.meta.code, "typ")

    def convert() -> None:
        meta = metadata_file(job.workdir, "HTML page", html_metadata(job.meta, config))
        outputs = [
            html_output(config),
            Output("typst", "typst", typst_name, template=str(config.typst_template), filters=output_filters()),
        ]
        engine._pandoc.convert(job.workdir, markdown, outputs, what="HTML page and Typst source", metadata=meta)

    if engine._pandoc.pid is None:
        convert()  # Pandoc's start: once per worker, not per edition
    pid = engine._pandoc.pid
    timed("pandoc (long-lived)", lambda: process_cpu(pid) + own_cpu(), convert)
    html = timed("html (embedding)", own_cpu, lambda: embedded_page(job))
    typst_source = (job.workdir / typst_name).read_bytes()
    timed("pdf (typst)", own_cpu, lambda: render_pdf(job, config))
    before = timed("former: two pandoc runs", children_cpu, lambda: command_line_outputs(job, markdown))
    if before != (html, typst_source):
        raise SystemExit(f"{job.meta.code}: the engine's bytes differ from the command line's")
    peak["worker"] = max(peak["worker"], psutil.Process().memory_info().rss)
    peak["pandoc"] = max(peak["pandoc"], psutil.Process(pid).memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the workspace here instead of a temporary folder")
    args = parser.parse_args()
    workspace = args.keep or Path(tempfile.mkdtemp(prefix="cptpub-bench-assembly-"))
    try:
        print("executing the demo editions' notebooks once ...", flush=True)
        jobs = executed_jobs(workspace)
        engine = BuiltinEngine()
        steps: dict[str, list[float]] = {}
        peak = {"worker": 0, "pandoc": 0}
        for _ in range(args.rounds):
            for job in jobs:
                measure_edition(engine, job, steps, peak)
        engine.close()
        editions = len(jobs) * args.rounds
        print(f"{len(jobs)} demo editions x {args.rounds} rounds, one engine (first edition's Pandoc start excluded)")
        print(f"{'step':28s} {'CPU ms / edition':>16s}")
        now = 0.0
        for name, values in steps.items():
            per_edition = sum(values) / editions * 1000
            if not name.startswith("former"):
                now += per_edition
            print(f"{name:28s} {per_edition:16.1f}")
        former = (sum(steps["former: two pandoc runs"]) + sum(steps["markdown"]) + sum(steps["pdf (typst)"])) / editions
        print(f"{'assembly now':28s} {now:16.1f}")
        print(f"{'assembly before':28s} {former * 1000:16.1f}")
        worker, pandoc = peak["worker"] >> 20, peak["pandoc"] >> 20
        print(f"peak RSS: this process {worker} MB (Typst's caches included), pandoc {pandoc} MB")
        print("bytes: HTML and Typst source equal to the former command-line runs' for every edition")
    finally:
        if args.keep is None:
            shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
