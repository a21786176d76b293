"""Checks of a project's inputs before a build: records, payer catalogue, section notebooks and template.

Errors make a build fail; warnings point at what an edition will show as "not available".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from cptpub.assemble.config import load_config
from cptpub.errors import CptpubError
from cptpub.execute.runner import parameter_problems
from cptpub.project import Project, known_codes
from cptpub.records import load_payers, load_record
from cptpub.records.schema import FIELD_LABELS
from cptpub.sections.context import EditionContext


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    where: str
    message: str


def check_notebook(path: Path) -> list[Problem]:
    """A source notebook must be valid, output-free and have a ``parameters`` cell defining every parameter."""
    problems = [Problem("error", str(path), text) for text in parameter_problems(path)]
    if problems:
        return problems
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(
                Problem(
                    "error",
                    f"{path}: cell {index}",
                    "has saved outputs; clear them before committing "
                    "(Jupyter: Edit > Clear All Outputs, or `jupyter nbconvert --clear-output --inplace`)",
                )
            )
    return problems


def check_project(project: Project) -> list[Problem]:
    problems: list[Problem] = []
    try:
        catalogue = load_payers(project.payers_file)
    except CptpubError as exc:
        return [Problem("error", exc.where or str(project.payers_file), exc.message)]
    payer_names = {p.name.lower() for p in catalogue.payers}
    codes = known_codes(project.codes_dir)
    if not codes:
        problems.append(Problem("error", str(project.codes_dir), "no code records (add one with `cptpub new CODE`)"))
    for code in codes:
        path = project.record_path(code)
        try:
            record = load_record(project.codes_dir, code)
        except CptpubError as exc:
            problems.append(Problem("error", exc.where or str(path), exc.message))
            continue
        ctx = EditionContext(code=code, record=record, catalogue=catalogue, benchmarks=None)
        for field in ctx.missing_fields:
            label = FIELD_LABELS[field]
            problems.append(
                Problem(
                    "warning",
                    str(path),
                    f'{field} is missing: the edition will say "Data not available in the input for {label}."',
                )
            )
        for note in record.payer_notes or []:
            if note.payer.lower() not in payer_names:
                problems.append(
                    Problem(
                        "warning",
                        str(path),
                        f"payer_notes: payer {note.payer!r} is not in "
                        f"{project.payers_file.name}; the note will not appear",
                    )
                )
    notebooks = project.section_notebooks()
    if not notebooks:
        problems.append(Problem("error", str(project.notebooks_dir), "no section notebooks"))
    for notebook in notebooks:
        problems.extend(check_notebook(notebook))
    try:
        load_config(project.report_dir)  # the settings and every template file they name
    except CptpubError as exc:
        problems.append(Problem("error", exc.where or str(project.report_dir), exc.message))
    return problems
