"""The IPython shell the in-process engine runs notebooks on: IPython's ``InteractiveShell`` with ipykernel's output
behaviour, delivered to a Python callable instead of a ZeroMQ socket.

What a kernel sends on iopub, this shell hands to ``shell.emit(msg_type, content)`` with the same content, in the
same order: ``stream`` (stdout and stderr are buffered and flushed, stdout first, before any display, result or
error, and at the end of each cell, as ipykernel's streams are), ``display_data`` / ``update_display_data`` /
``clear_output`` (``display()``), ``execute_result`` (the displayhook, with the cell's execution count) and ``error``
(IPython's structured traceback). Content goes through the same JSON encoding a kernel's messages do, so images
are base64 text and tuples are lists, as a client receives them.

Not reproduced: output written to file descriptors 1 and 2 below Python (a subprocess, C code) goes to the
process's own stdout and stderr (ipykernel captures it into the cell), and ``input()`` reads the process's stdin
(a kernel without stdin raises ``StdinNotImplementedError``).
"""

from __future__ import annotations
import __future__

import ast
import builtins
import contextlib
import functools
import io
import linecache
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import cast

from ipykernel.compiler import XCachingCompiler, get_tmp_directory, get_tmp_hash_seed, murmur2_x86
from IPython.core.async_helpers import _should_be_async
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.session import Session
from traitlets import Instance, Type
from traitlets.config import Config

Emit = Callable[[str, dict], None]


_SESSION = Session()  # jupyter_client's default message encoding (orjson's or the json module's)


def as_received(content: dict) -> dict:
    """``content`` as a client receives it from a kernel: through the messages' JSON encoding."""
    return _SESSION.unpack(_SESSION.pack(content))


class CapturedStream(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` during a cell: text is kept until the shell flushes it as a ``stream``."""

    def __init__(self, shell: InProcessShell, name: str, original) -> None:
        super().__init__()
        self.shell = shell
        self.name = name
        self._original = original
        self._parts: list[str] = []

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._original.fileno()  # writes below Python go to the process's own stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self.shell.emit("stream", {"name": self.name, "text": text})


class _DisplayPublisher(DisplayPublisher):
    """ipykernel's ``ZMQDisplayPublisher``: streams flushed first, then the display."""

    shell: InProcessShell

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs) -> None:
        self.shell.flush_streams()
        self._validate_data(data, metadata)
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        self.shell.emit("update_display_data" if update else "display_data", as_received(content))

    def clear_output(self, wait: bool = False) -> None:
        self.shell.flush_streams()
        self.shell.emit("clear_output", {"wait": wait})


class _DisplayHook(DisplayHook):
    """ipykernel's ``ZMQShellDisplayHook``: a cell's value as ``execute_result``, with the execution count."""

    shell: InProcessShell
    msg: dict | None = None  # the result being formatted (an error meanwhile fails the cell, as in ipykernel)

    @staticmethod
    def semicolon_at_end_of_expression(expression: str) -> bool:
        """IPython's (does the cell end in ``;``, silencing its value), which tokenizes the cell at every value
        displayed: once per cell text."""
        return _ends_in_semicolon(expression)

    def start_displayhook(self) -> None:
        self.msg = {"data": {}, "metadata": {}}

    def write_output_prompt(self) -> None:
        if self.msg is not None:
            self.msg["execution_count"] = self.prompt_count

    def write_format_data(self, format_dict, md_dict=None) -> None:
        if self.msg is not None:
            self.msg["data"] = format_dict
            self.msg["metadata"] = md_dict

    def finish_displayhook(self) -> None:
        self.shell.flush_streams()
        if self.msg is not None and self.msg["data"]:
            self.shell.emit("execute_result", as_received(self.msg))
        self.msg = None

    def flush(self) -> None:
        """IPython's (at every namespace reset: the output cache emptied), without its full garbage collection, ~5 ms
        in a worker each time: the collector's own thresholds free what the notebooks left in reference cycles."""
        for n in range(1, self.prompt_count + 1):
            self.shell.user_ns_hidden.pop(f"_{n}", None)
            self.shell.user_ns.pop(f"_{n}", None)
        output_history = self.shell.user_ns.get("_oh")
        if output_history is not None:
            output_history.clear()
        self._ = self._DisplayHook__ = self._DisplayHook___ = ""  # IPython's ``_``, ``__`` and ``___`` (mangled)
        if "_" not in builtins.__dict__:
            self.shell.user_ns.update({"_": "", "__": "", "___": ""})


class _CachedTransformerManager(TransformerManager):
    """IPython's static input transformations (magics, ``!`` commands: tokenizing each cell), done once per cell text
    and list of transformers: every code runs the same cells."""

    def __init__(self) -> None:
        super().__init__()
        self._transformed: dict[tuple, str] = {}

    def transform_cell(self, cell: str) -> str:
        key = (cell, tuple(self.cleanup_transforms), tuple(self.line_transforms), tuple(self.token_transformers))
        transformed = self._transformed.get(key)
        if transformed is None:
            if len(self._transformed) >= _CACHED_CELLS:
                self._transformed.clear()
            transformed = self._transformed[key] = super().transform_cell(cell)
        return transformed


_CACHED_CELLS = 1024


class InProcessShell(InteractiveShell):
    """An ``InteractiveShell`` whose outputs go to ``emit`` (set by the engine while a notebook runs)."""

    displayhook_class = Type(_DisplayHook)
    display_pub_class = Type(_DisplayPublisher)
    input_transformer_manager = Instance(_CachedTransformerManager, ())

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.emit: Emit = _nowhere
        self._streams: tuple[CapturedStream, CapturedStream] | None = None

    @classmethod
    def start(cls) -> InProcessShell:
        """This process's shell (IPython has one per process), created on first use without a history database."""
        if cls.initialized():
            return cls.instance()
        config = Config()
        config.HistoryManager.enabled = False  # no SQLite work per cell, as the warm kernels
        return cls.instance(config=config, compiler_class=_CellCompiler)

    @contextlib.contextmanager
    def capturing(self, emit: Emit) -> Iterator[None]:
        """While active, outputs (and ``sys.stdout``/``sys.stderr``) go to ``emit``."""
        saved = sys.stdout, sys.stderr
        self._streams = (CapturedStream(self, "stdout", sys.stdout), CapturedStream(self, "stderr", sys.stderr))
        self.emit = emit
        sys.stdout, sys.stderr = self._streams
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved
            self._streams = None
            self.emit = _nowhere

    def flush_streams(self) -> None:
        """Emit what was printed and not yet emitted, stdout first (as ipykernel flushes)."""
        if self._streams is not None:
            for stream in self._streams:
                stream.flush()

    def run_cell(self, *args, **kwargs):
        self._last_traceback = None
        self._last_traceback_during_displayhook = False
        # A parsed cell can be reused while nothing changes it: AST transformers and "last_expr_or_assign" do.
        self.compile.reuse_trees = not self.ast_transformers and self.ast_node_interactivity != "last_expr_or_assign"
        try:
            return super().run_cell(*args, **kwargs)
        finally:
            self.compile.reuse_trees = False

    def should_run_async(self, raw_cell, *, transformed_cell=None, preprocessing_exc_tuple=None) -> bool:
        """IPython's, with its check for top-level ``await`` (compiling the cell once more) done once per cell text."""
        if self.autoawait and preprocessing_exc_tuple is None and transformed_cell is not None:
            return _needs_await(transformed_cell)
        return super().should_run_async(
            raw_cell, transformed_cell=transformed_cell, preprocessing_exc_tuple=preprocessing_exc_tuple
        )

    def _showtraceback(self, etype, evalue, stb) -> None:
        self.flush_streams()
        if self.displayhook.msg is not None:
            self._last_traceback_during_displayhook = True
        self.emit("error", as_received({"traceback": stb, "ename": str(etype.__name__), "evalue": str(evalue)}))
        self._last_traceback = stb


class _CellCompiler(XCachingCompiler):
    """ipykernel's compiler: a cell's code has a file name (/tmp/ipykernel_PID/HASH.py) in warnings and tracebacks,
    as in a kernel. Its hash is pure Python, byte by byte; every code runs the same cells, so names are cached.

    Every code runs the same cells: while the shell allows it (``reuse_trees``), a cell's syntax tree and the code
    of each of its statements are kept, per cell text, file name and compiler flags, and reused. Only those whose
    compilation warns about nothing: a warning (an invalid escape sequence, ...) is the cell's output each time."""

    reuse_trees = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._trees: dict[tuple, ast.Module] = {}
        self._statements: set[int] = set()  # ids of the statements of kept trees (alive while kept)
        self._codes: dict[tuple, object] = {}

    def get_code_name(self, raw_code, code, number):  # ipykernel.compiler.get_file_name, with the hash cached
        name = os.environ.get("IPYKERNEL_CELL_NAME")
        return f"{get_tmp_directory()}{os.sep}{_cell_hash(raw_code)}.py" if name is None else name

    def cache(self, transformed_code, number=0, raw_code=None):
        """IPython's (the cell's lines for tracebacks, under its file name), with the lines made once per cell."""
        name = self.get_code_name(transformed_code if raw_code is None else raw_code, transformed_code, number)
        self._filename_map[name] = number
        linecache.cache[name] = _linecache_entry(transformed_code, name)
        return name

    def ast_parse(self, source, filename="<unknown>", symbol="exec"):
        if not self.reuse_trees:
            return super().ast_parse(source, filename, symbol)
        key = (source, filename, symbol, self.flags)
        tree = self._trees.get(key)
        if tree is None:
            tree = super().ast_parse(source, filename, symbol)
            if not _warns(lambda: super(_CellCompiler, self).ast_parse(source, filename, symbol)):
                if len(self._trees) >= _CACHED_CELLS:
                    self._trees.clear()
                    self._statements.clear()
                    self._codes.clear()
                self._trees[key] = tree
                self._statements.update(id(statement) for statement in tree.body)
        return tree

    def __call__(self, source, filename, symbol, **kwargs):
        """codeop's (which remembers ``__future__`` imports), for one statement of a kept tree its kept code."""
        body = getattr(source, "body", None)
        if kwargs or not self.reuse_trees or not body or len(body) != 1 or id(body[0]) not in self._statements:
            return super().__call__(source, filename, symbol, **kwargs)
        flags = self.flags
        key = (id(body[0]), type(source), filename, symbol, flags)
        code = self._codes.get(key)
        if code is None:
            code = super().__call__(source, filename, symbol)
            if not _warns(lambda: compile(source, filename, symbol, flags, True)):
                self._codes[key] = code
            return code
        for feature in _FUTURE_FEATURES:
            if code.co_flags & feature.compiler_flag:
                self.flags |= feature.compiler_flag
        return code


_FUTURE_FEATURES = [getattr(__future__, name) for name in __future__.all_feature_names]  # as codeop.Compile


def _warns(compile_again: Callable[[], object]) -> bool:
    """Does compiling warn (or fail)? Asked once per kept cell, in the main thread only: the process's warning
    filters are swapped for one that makes every warning an error meanwhile. Not ``catch_warnings``: entering it
    marks the filters changed, which resets every module's record of the warnings already shown once."""
    if threading.current_thread() is not threading.main_thread():
        return True
    filters = cast(list, warnings.filters)  # a list, typed as a Sequence
    saved = filters[:]
    filters[:] = [("error", None, Warning, None, 0)]
    try:
        compile_again()
    except Exception:  # SyntaxError: a warning made an error (or the code does not compile)
        return True
    finally:
        filters[:] = saved
    return False


@functools.lru_cache(maxsize=_CACHED_CELLS)
def _linecache_entry(code: str, name: str) -> tuple:
    return len(code), None, [line + "\n" for line in code.splitlines()], name


@functools.lru_cache(maxsize=_CACHED_CELLS)
def _ends_in_semicolon(expression: str) -> bool:
    return DisplayHook.semicolon_at_end_of_expression(expression)


@functools.lru_cache(maxsize=_CACHED_CELLS)
def _needs_await(transformed_cell: str) -> bool:
    return _should_be_async(transformed_cell)


@functools.lru_cache(maxsize=_CACHED_CELLS)
def _cell_hash(code: str) -> int:
    return murmur2_x86(code, get_tmp_hash_seed())


def _nowhere(msg_type: str, content: dict) -> None:
    """Outputs while no notebook runs (none are expected) are dropped, as a kernel's without a client."""
