"""An executed notebook's file text, exactly as ``nbformat.writes`` makes it (what Papermill writes), in a fraction of
its time.

``nbformat.writes`` validates the notebook (repairing missing or duplicate cell ids, logging schema errors), deep
copies it, splits multi-line strings into lists of lines and drops transient fields (``nbformat.v4.rwbase``), then
``json.dumps`` it with ``indent=1`` and sorted keys: the pure-Python encoder, as the C one has no indentation. Here
the validation is nbformat's own; the copy, split and drop are done in one pass that also checks every value is one
``json.dumps`` writes as msgspec does (floats go in as their ``repr``: msgspec writes ``1e16`` where ``json`` writes
``1e+16``); msgspec encodes with sorted keys and formats with ``indent=1``, which gives ``json.dumps``'s layout and
escapes. A notebook with anything else (bytes, non-string keys, NaN, lone surrogates, a v3 notebook, a shape
nbformat's writer would fail on) is written by nbformat itself.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import nbformat
from nbformat import NotebookNode
from nbformat.reader import get_version
from nbformat.validator import ValidationError, validate
from traitlets.log import get_logger

__all__ = ["notebook_text"]

_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})  # split besides text/* (rwbase)
_TRANSIENT_METADATA = ("orig_nbformat", "orig_nbformat_minor", "signature")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # what every msgspec version writes as an integer


class _NotPlain(Exception):
    """A value, or a notebook's shape, that the fast path does not write as ``nbformat.writes`` does."""


def notebook_text(nb: NotebookNode) -> str:
    """``nbformat.writes(nb)``: the same text, the same validation (and its repairs of ``nb``) and log messages."""
    version, _ = get_version(nb)
    if version != 4:
        return nbformat.writes(nb)
    try:
        validate(nb)
    except ValidationError as e:
        get_logger().error("Notebook JSON is invalid: %s", e)
    try:
        disk = _disk_form(nb)
        return msgspec.json.format(msgspec.json.encode(disk, order="sorted"), indent=1).decode()
    except (_NotPlain, RecursionError, TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return nbformat.versions[4].writes_json(nb)  # validated above: nbformat.writes without validating again


def _disk_form(nb: NotebookNode) -> dict:
    """A plain copy of ``nb`` after ``split_lines`` and ``strip_transient`` (``nbformat.v4.rwbase``)."""
    _node(nb)
    _node(nb.get("metadata"))
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise _NotPlain("cells")
    for cell in cells:  # what the writer reads as attributes (NotebookNode): missing ones make it raise
        _node(cell)
        _node(cell.get("metadata"))
        if "cell_type" not in cell or not isinstance(cell.get("attachments", {}), dict):
            raise _NotPlain("cell")
        if cell["cell_type"] == "code":
            if not isinstance(cell.get("outputs"), list):
                raise _NotPlain("outputs")
            for output in cell["outputs"]:
                _node(output)
                if "output_type" not in output or (output["output_type"] == "stream" and "text" not in output):
                    raise _NotPlain("output")
    disk = _plain(nb)
    for key in _TRANSIENT_METADATA:
        disk["metadata"].pop(key, None)
    for cell in disk["cells"]:
        cell["metadata"].pop("trusted", None)
        source = cell.get("source")
        if isinstance(source, str):
            cell["source"] = source.splitlines(True)
        for attachment in cell.get("attachments", {}).values():
            _split_mimebundle(attachment)
        if cell["cell_type"] == "code":
            for output in cell["outputs"]:
                kind = output["output_type"]
                if kind in ("execute_result", "display_data"):
                    _split_mimebundle(output.get("data", {}))
                elif kind == "stream" and isinstance(output["text"], str):
                    output["text"] = output["text"].splitlines(True)
    return disk


def _node(value: object) -> None:
    if not isinstance(value, NotebookNode):
        raise _NotPlain("not a NotebookNode")


def _split_mimebundle(data: Any) -> None:
    if not isinstance(data, dict):
        raise _NotPlain("mime bundle")
    for key, value in data.items():
        if isinstance(value, str) and (key.startswith("text/") or key in _SPLIT_MIMES):
            data[key] = value.splitlines(True)


def _plain(value: Any) -> Any:
    """A copy of ``value`` in the types msgspec writes as ``json.dumps`` does; ``_NotPlain`` for anything else."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int:
        return value if _INT64_MIN <= value <= _UINT64_MAX else msgspec.Raw(int.__repr__(value))
    if isinstance(value, dict):
        return {_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlain("NaN or infinity")
        return msgspec.Raw(float.__repr__(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):  # an int subclass (bool is not one: it cannot be subclassed)
        return msgspec.Raw(int.__repr__(value))
    raise _NotPlain(kind.__name__)


def _key(key: Any) -> str:
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str.__str__(key)
    raise _NotPlain("a key that is not a string")
