"""One edition, end to end: record and rates -> executed section notebooks -> HTML and PDF in ``dist/``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cptpub.assemble import Engine
from cptpub.assemble.base import FORMATS, AssemblyJob, EditionMeta
from cptpub.execute import FRESH_ENGINE, run_sections
from cptpub.project import Project, check_code
from cptpub.sections.context import EditionContext, load_context, save_context, with_changes
from cptpub.store import RatesStore


@dataclass(frozen=True)
class EditionResult:
    code: str
    outputs: dict[str, Path]
    engine: str
    meta: EditionMeta
    key_payers: tuple[str, ...] = ()  # payers with data for the code, in the catalogue's order (for the manifest)
    context: EditionContext | None = None  # what the edition was written from (its figures: dist/data/)


def edition_meta(ctx: EditionContext) -> EditionMeta:
    return EditionMeta(
        code=ctx.code,
        title=ctx.title,
        edition_date=ctx.edition_date,
        data_as_of=ctx.data_as_of,
        demo=ctx.demo,
        keywords=("CPT", ctx.code, *ctx.key_payers, "reimbursement", "billing"),
        subject=f"Coding, clinical context and payer reimbursement benchmarks for CPT {ctx.code}",
    )


def build_edition(
    project: Project,
    code: str,
    engine: Engine,
    *,
    formats: tuple[str, ...] = FORMATS,
    execution_engine: str = FRESH_ENGINE,
    workdir: Path | None = None,
    out_dir: Path | None = None,
    cell_timeout: float | None = None,
    sync_outputs: bool = True,
) -> EditionResult:
    """Build one code's publication. The record is validated before anything runs; outputs replace old ones
    atomically, so ``dist/`` never holds a half-written file. The edition context is computed once, here, and
    saved in the build folder for the section notebooks (``cptpub.sections.load_edition``). ``sync_outputs=False``
    skips syncing the outputs to disk, for a caller that publishes their bytes itself."""
    code = check_code(code)
    RatesStore(project.store_path).require()
    ctx = with_changes(load_context(code, project.data_dir, project.store_path), project.dist_dir, project.report_dir)
    workdir = workdir or project.code_build_dir(code)
    if workdir.exists():  # stale notebooks or figures of an earlier build must not leak into this one
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    save_context(ctx, project.data_dir, project.store_path, workdir)
    executed = run_sections(project, code, workdir, engine_name=execution_engine, cell_timeout=cell_timeout)
    meta = edition_meta(ctx)
    job = AssemblyJob(
        meta=meta,
        notebooks=tuple(executed),
        workdir=workdir,
        report_dir=project.report_dir,
        sync_outputs=sync_outputs,
    )
    outputs = engine.render(job, formats, out_dir or project.dist_dir)
    return EditionResult(
        code=code, outputs=outputs, engine=engine.name, meta=meta, key_payers=tuple(ctx.key_payers), context=ctx
    )
