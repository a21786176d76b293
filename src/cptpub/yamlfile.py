"""Read a YAML file keeping its node tree, so every later error can name the line it comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cptpub.errors import CptpubError


def _location(path: Path, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


def _scalars(node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            yield from _scalars(child)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(key)
            yield from _scalars(value)


def read_yaml(path: Path, error: type[CptpubError] = CptpubError) -> tuple[Any, yaml.Node | None]:
    """The file's data and its root node. Unreadable files, syntax errors and values YAML cannot build
    (``2026-13-45`` as a date) raise ``error`` with ``file:line:column``; a missing file raises FileNotFoundError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read: {exc}", where=path) from exc
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        try:
            return loader.construct_document(root), root
        except (ValueError, TypeError, yaml.constructor.ConstructorError) as exc:
            for node in _scalars(root):  # find the value that could not be built
                try:
                    loader.construct_object(node, deep=True)
                except (ValueError, TypeError, yaml.constructor.ConstructorError):
                    raise error(f"invalid value {node.value!r}: {exc}", where=_location(path, node.start_mark)) from exc
            raise error(f"invalid YAML: {exc}", where=path) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(f"YAML syntax error: {exc.problem or exc.context}", where=_location(path, mark)) from exc
    finally:
        loader.dispose()
