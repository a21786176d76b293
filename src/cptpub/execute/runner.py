"""Run a code's section notebooks through Papermill into its build folder.

Each notebook gets the code and absolute paths as parameters and runs with the build folder as working
directory, so figures land beside the executed notebooks that reference them. Papermill runs it
(``cptpub.execute.notebook_run``: its ``execute_notebook``, with the source notebooks parsed once per worker and a
faster writer of the same executed notebook). A failing cell stops the code with
``SectionFailed`` naming the notebook, the cell and the executed notebook, which papermill has saved. On the warm
engines (in process, or on a warm kernel) a code's notebooks run back to back after one reset
(``cptpub.execute.code_run``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import papermill
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.engines import papermill_engines
from papermill.exceptions import PapermillExecutionError

from cptpub.errors import CptpubError, SectionFailed
from cptpub.execute.code_run import code_run
from cptpub.execute.inline import FreshKernelEngine
from cptpub.execute.inprocess import InProcessEngine
from cptpub.execute.kernel_death import KernelDied
from cptpub.execute.warm import WarmKernelEngine
from cptpub.project import Project, check_code

FRESH_ENGINE = "cptpub-fresh"  # cptpub.execute.inline: a new kernel per notebook
WARM_ENGINE = "cptpub-warm"  # cptpub.execute.warm: one warm kernel per worker process (and thread)
INPROCESS_ENGINE = "cptpub-inprocess"  # cptpub.execute.inprocess: in the worker process itself
# The warm engines are also entry points (for `papermill --engine cptpub-warm`); all are registered here so a
# checkout run without reinstalling finds them.
papermill_engines.register(FRESH_ENGINE, FreshKernelEngine)
papermill_engines.register(WARM_ENGINE, WarmKernelEngine)
papermill_engines.register(INPROCESS_ENGINE, InProcessEngine)


PARAMETER_NAMES = ("cpt_code", "data_dir", "store_path", "figures_dir")


def section_parameters(project: Project, code: str) -> dict[str, str]:
    """The values injected into every section notebook, one per name of ``PARAMETER_NAMES``."""
    values = (code, str(project.data_dir), str(project.store_path), "figures")
    return dict(zip(PARAMETER_NAMES, values, strict=True))


def parameter_problems(notebook: Path) -> list[str]:
    """What is wrong with a notebook's ``parameters`` cell, as sentences (empty when it is fine)."""
    try:
        stat = notebook.stat()
    except OSError as exc:
        return [f"not a readable notebook: {exc}"]
    # A worker checks every notebook for every code it builds: once per version of the file is enough.
    return list(_parameter_problems(notebook.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _parameter_problems(notebook: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    return tuple(_check_parameters(notebook))


def _check_parameters(notebook: Path) -> list[str]:
    import nbformat

    try:
        cells = nbformat.read(notebook, as_version=4).cells
    except Exception as exc:  # nbformat raises several types for bad JSON or schema
        return [f"not a readable notebook: {exc}"]
    if not any("parameters" in cell.metadata.get("tags", []) for cell in cells):
        return ["no cell is tagged 'parameters' (Papermill injects each code's values after that cell)"]
    defined = papermill.inspect_notebook(str(notebook))
    return [
        f"the parameters cell does not define {name!r} (add e.g. {name} = ... to it)"
        for name in PARAMETER_NAMES
        if name not in defined
    ]


def run_sections(
    project: Project,
    code: str,
    workdir: Path,
    *,
    engine_name: str = FRESH_ENGINE,
    cell_timeout: float | None = None,
    on_notebook: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Execute every section notebook for ``code`` into ``workdir``; return the executed notebooks in order."""
    code = check_code(code)
    notebooks = project.section_notebooks()
    if not notebooks:
        raise CptpubError("no section notebooks found", where=project.notebooks_dir)
    for notebook in notebooks:
        problems = parameter_problems(notebook)
        if problems:
            raise CptpubError("; ".join(problems), where=notebook)
    workdir.mkdir(parents=True, exist_ok=True)
    parameters = section_parameters(project, code)
    with code_run():  # warm engines: one reset for the code's notebooks
        return _run_notebooks(notebooks, code, workdir, parameters, engine_name, cell_timeout, on_notebook)


def _run_notebooks(
    notebooks: list[Path],
    code: str,
    workdir: Path,
    parameters: dict[str, str],
    engine_name: str,
    cell_timeout: float | None,
    on_notebook: Callable[[Path], None] | None,
) -> list[Path]:
    # Not at the top: papermill imports this package (its engines' entry points) while papermill.execute loads.
    from cptpub.execute.notebook_run import execute_notebook

    executed = []
    for notebook in notebooks:
        output = workdir / notebook.name
        if on_notebook:
            on_notebook(notebook)
        try:
            execute_notebook(
                str(notebook),
                str(output),
                parameters,
                cwd=str(workdir),
                engine_name=engine_name,
                execution_timeout=cell_timeout,
                progress_bar=False,
                log_output=False,
            )
        except PapermillExecutionError as exc:
            raise SectionFailed(
                code=code,
                notebook=notebook.name,
                cell=_source_cell_number(output, exc.cell_index),
                executed_path=output,
                error=f"{exc.ename}: {exc.evalue}",
            ) from exc
        except CellTimeoutError as exc:
            error = f"the cell ran longer than the per-cell timeout of {cell_timeout:g} s and was stopped"
            raise _stopped_in_last_started_cell(code, notebook, output, error) from exc
        except DeadKernelError as exc:  # KernelDied (warm kernels) says how it died
            error = str(exc) if isinstance(exc, KernelDied) else f"the kernel died: {exc}"
            raise _stopped_in_last_started_cell(code, notebook, output, error) from exc
        executed.append(output)
    return executed


def _stopped_in_last_started_cell(code: str, notebook: Path, output: Path, error: str) -> SectionFailed:
    """The failure of a run stopped from outside its cells (a timeout, a dead kernel): the cell that was running."""
    started = _last_started_cell(output)
    return SectionFailed(
        code=code,
        notebook=notebook.name,
        cell=None if started is None else _source_cell_number(output, started),
        executed_path=output,
        error=error,
    )


def _last_started_cell(executed: Path) -> int | None:
    """Index of the last cell papermill started (the one that was running when a timeout stopped it)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:
        return None
    started = [i for i, cell in enumerate(cells) if cell.metadata.get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def _source_cell_number(executed: Path, cell_index: int) -> int:
    """The failing cell's 1-based number in the source notebook (papermill inserts an injected-parameters cell)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:  # the executed notebook is unreadable: report papermill's own index
        return cell_index + 1
    injected = sum(1 for cell in cells[: cell_index + 1] if "injected-parameters" in cell.metadata.get("tags", []))
    return cell_index + 1 - injected
