"""``papermill.execute_notebook`` as cptpub's runner calls it, with what a worker repeats for every code done once:

- the source notebook is read, parsed and validated once per version of its file (path, modification time, size)
  and copied for each run, instead of once per run; so are the parameters its ``parameters`` cell defines;
- the executed notebook's text is made by ``cptpub.execute.notebook_json`` (``nbformat.writes``'s text, without
  its pure-Python JSON encoder) and written by Papermill's I/O layer, as ``papermill.iorw.write_ipynb`` does.

Everything else is Papermill's own, in Papermill's order: parameter injection, metadata, error markers removed,
the engine run in ``cwd``, and on a failed cell the notebook written with its error markers (by Papermill) and
``PapermillExecutionError`` raised.
"""

from __future__ import annotations

import copy
import functools
import os

from nbformat import NotebookNode
from papermill.engines import papermill_engines
from papermill.execute import prepare_notebook_metadata, raise_for_execution_errors, remove_error_markers
from papermill.inspection import _infer_parameters
from papermill.iorw import get_pretty_path, load_notebook_node, local_file_io_cwd, papermill_io
from papermill.log import logger
from papermill.parameterize import add_builtin_parameters, parameterize_notebook, parameterize_path
from papermill.utils import chdir

from cptpub.execute.notebook_json import notebook_text

__all__ = ["execute_notebook", "write_notebook"]


def execute_notebook(
    input_path: str,
    output_path: str,
    parameters: dict,
    *,
    engine_name: str,
    cwd: str | None = None,
    progress_bar: bool = False,
    log_output: bool = False,
    **engine_kwargs,
) -> NotebookNode:
    """``papermill.execute_notebook(input_path, output_path, parameters, ...)`` for a notebook file and a local
    output path, with the kernel and language the notebook names; returns the executed notebook."""
    kernel_name = language = None
    path_parameters = add_builtin_parameters(parameters)
    input_path = parameterize_path(input_path, path_parameters)
    output_path = parameterize_path(output_path, path_parameters)
    logger.info(f"Input Notebook:  {get_pretty_path(input_path)}")
    logger.info(f"Output Notebook: {get_pretty_path(output_path)}")
    with local_file_io_cwd():
        if cwd is not None:
            logger.info(f"Working directory: {get_pretty_path(cwd)}")
        nb, predefined = _source_notebook(input_path)
        if parameters:
            for name in parameters:
                if name not in predefined:
                    logger.warning(f"Passed unknown parameter: {name}")
            nb = parameterize_notebook(
                nb, parameters, False, kernel_name=kernel_name, language=language, engine_name=engine_name
            )
        nb = prepare_notebook_metadata(nb, input_path, output_path, False)
        nb = remove_error_markers(nb)
        kernel_name = papermill_engines.nb_kernel_name(engine_name=engine_name, nb=nb, name=kernel_name)
        with chdir(cwd):
            nb = papermill_engines.execute_notebook_with_engine(
                engine_name,
                nb,
                input_path=input_path,
                output_path=output_path,
                kernel_name=kernel_name,
                progress_bar=progress_bar,
                log_output=log_output,
                start_timeout=60,
                stdout_file=None,
                stderr_file=None,
                **engine_kwargs,
            )
        raise_for_execution_errors(nb, output_path)
        write_notebook(nb, output_path)
        return nb


def write_notebook(nb: NotebookNode, path: str) -> None:
    """``papermill.iorw.write_ipynb(nb, path)``: the same file."""
    papermill_io.write(notebook_text(nb), path)


def _source_notebook(path: str) -> tuple[NotebookNode, frozenset[str]]:
    """Papermill's ``load_notebook_node(path)`` (a copy of it, the caller's to change) and the names its
    ``parameters`` cell defines."""
    stat = os.stat(path)
    nb, predefined = _loaded(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    return _copy(nb), predefined


@functools.lru_cache(maxsize=32)
def _loaded(path: str, mtime_ns: int, size: int) -> tuple[NotebookNode, frozenset[str]]:
    nb = load_notebook_node(path)
    return nb, frozenset(parameter.name for parameter in _infer_parameters(nb))


def _copy(value):
    """``copy.deepcopy`` of a parsed notebook (NotebookNodes, lists and JSON scalars), without its memo."""
    if type(value) is NotebookNode:
        node = NotebookNode()
        dict.update(node, {key: _copy(item) for key, item in value.items()})  # as deepcopy: no __setitem__
        return node
    if type(value) is list:
        return [_copy(item) for item in value]
    if type(value) in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)
