"""cptpub's Papermill client: nbclient's, plus inline code and table outputs, for fresh and warm kernels alike.

Inline code is Quarto's: `` `{python} expr` `` in a Markdown cell. Each expression is evaluated in the kernel when
the run reaches its cell, and its result is stored the way Quarto reads it from an executed notebook: the cell's
``user_expressions`` metadata (``[{"expression": ..., "result": {"status": "ok", "data": {"text/markdown": ...}}}]``).
The result is Markdown: an object's own ``_repr_markdown_`` (cptpub's ``Trusted`` helpers) or its text escaped. An
expression that raises stops the build like a failing cell.
"""

from __future__ import annotations

from jupyter_core.utils import ensure_async, run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.exceptions import PapermillExecutionError
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

from cptpub.execute.manager import WriteOnceEngine
from cptpub.inline import MARKDOWN, USER_EXPRESSIONS, inline_expressions

KERNEL_SETUP = "__import__('cptpub.sections.kernel', fromlist=['setup']).setup()"


class CptpubNotebookClient(PapermillNotebookClient):
    """nbclient's client as Papermill drives it, plus ``kernel.setup`` before the first cell and inline code."""

    def papermill_execute_cells(self):
        run_sync(self._setup_kernel)()
        super().papermill_execute_cells()

    async def _setup_kernel(self) -> None:
        msg_id = await ensure_async(self.kc.execute(KERNEL_SETUP, silent=True, store_history=False))
        reply = await self.async_wait_for_reply(msg_id)
        content = reply["content"] if reply else {"ename": "Timeout", "evalue": "no reply from the kernel"}
        if content.get("status") != "ok":
            raise RuntimeError(f"cptpub kernel setup failed: {content.get('ename')}: {content.get('evalue')}")

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "markdown":
            expressions = inline_expressions(cell.source)
            if expressions:
                await self._evaluate_inline(cell, cell_index, expressions)
            return cell
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    execute_cell = run_sync(async_execute_cell)

    async def _evaluate_inline(self, cell, cell_index: int, expressions: list[str]) -> None:
        wanted = {
            f"e{i}": f"__import__('cptpub.sections.kernel', fromlist=['evaluate']).evaluate({expr!r})"
            for i, expr in enumerate(expressions)
        }
        msg_id = await ensure_async(self.kc.execute("", silent=True, store_history=False, user_expressions=wanted))
        reply = await self.async_wait_for_reply(msg_id, cell)
        answers = reply["content"].get(USER_EXPRESSIONS, {}) if reply else {}
        store_inline_results(cell, cell_index, expressions, [answers.get(f"e{i}") for i in range(len(expressions))])


def store_inline_results(cell, cell_index: int, expressions: list[str], answers: list[dict | None]) -> None:
    """Store each expression's Markdown in the cell's ``user_expressions`` metadata; raise
    ``PapermillExecutionError`` for the first that failed (or has no answer)."""
    stored = []
    for i, expr in enumerate(expressions):
        answer = (answers[i] if i < len(answers) else None) or {
            "status": "error",
            "ename": "Timeout",
            "evalue": "no answer from the kernel",
        }
        if answer.get("status") != "ok":
            raise PapermillExecutionError(
                cell_index=cell_index,
                exec_count=None,
                source=cell.source,
                ename=answer.get("ename", "Error"),
                evalue=f"{answer.get('evalue', '')} (in the inline code `{{python}} {expr}`)",
                traceback=answer.get("traceback", []),
            )
        markdown = answer["data"].get(MARKDOWN, "")
        stored.append({"expression": expr, "result": {"status": "ok", "data": {MARKDOWN: markdown}}})
    cell.metadata[USER_EXPRESSIONS] = stored


def client_options(
    kwargs: dict, kernel_name, log_output, stdout_file, stderr_file, start_timeout, execution_timeout
) -> dict:
    """The notebook client's options, as papermill's ``NBClientEngine`` builds them from its arguments."""
    timeout = execution_timeout or kwargs.get("timeout")
    kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
    return merge_kwargs(
        kwargs,
        timeout=timeout,
        startup_timeout=start_timeout,
        kernel_name=kernel_name,
        log=logger,
        log_output=log_output,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
    )


class FreshKernelEngine(WriteOnceEngine):
    """Papermill engine ``cptpub-fresh``: papermill's nbclient engine (a new kernel per notebook) on
    ``CptpubNotebookClient``."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        options = client_options(
            kwargs, kernel_name, log_output, stdout_file, stderr_file, start_timeout, execution_timeout
        )
        return CptpubNotebookClient(nb_man, **options).execute()
