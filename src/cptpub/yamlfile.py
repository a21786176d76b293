"""Read a YAML file keeping its node tree, so every later error can name the line it comes from.

Two things YAML allows are refused, because both have hurt users:

* a key repeated in one mapping (YAML loaders silently keep the last value: a record with ``title:`` twice lost
  its first title) is an error naming the file and both lines;
* anchors and aliases (``&a`` / ``*a``) may be used, but a document whose aliases expand to more than
  ``MAX_EXPANDED_VALUES`` values is refused naming the alias that crosses the limit: ten nested aliases in a
  700-byte file expand to ten billion values, and every later walk of the data (validation, error location)
  would take hours. The size is computed over the node graph, once per distinct node, so the check itself is
  linear in the file.

A process parses each version of a file once (the payer catalogue and ``report/_quarto.yml`` are read for every
edition a worker builds): a file is parsed again when its size, times or inode change. A file without aliases or
repeated keys, which libyaml reads and the constructor builds, is parsed by libyaml (PyYAML's C parser: a record in
0.8 ms instead of 9 ms, and a batch reads every record twice, in the main process and in a worker); anything else is
parsed again by PyYAML's own parser, whose checks and messages name the problem.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from cptpub.errors import CptpubError

MAX_EXPANDED_VALUES = 100_000
_CLoader = getattr(yaml, "CSafeLoader", None)  # None when PyYAML was built without libyaml


def _location(path: Path, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


class _Loader(yaml.SafeLoader):
    """A safe loader that remembers where each alias was used (the composer forgets it)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_marks: list[tuple[str, yaml.Mark, yaml.Node]] = []

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            self.alias_marks.append((event.anchor, event.start_mark, node))
            return node
        return super().compose_node(parent, index)


def _distinct_nodes(root: yaml.Node):
    """Every node of the graph once (aliases share their anchor's node), parents before children."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                stack.extend((value, key))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _expanded_sizes(root: yaml.Node) -> dict[int, int]:
    """How many values each node stands for once its aliases are expanded (by node id), each node sized once
    after all its children (YAML cannot alias a node inside itself, so the graph has no cycles)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            total = 1 + sum(sizes[id(child)] for child in children)
            sizes[id(node)] = min(total, 10 * MAX_EXPANDED_VALUES)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes


def _check_structure(path: Path, loader: _Loader, root: yaml.Node, error: type[CptpubError]) -> None:
    for node in _distinct_nodes(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            earlier = first_line.setdefault((key.tag, key.value), line)
            if earlier != line:
                raise error(
                    f"key {key.value!r} appears twice in one mapping, at lines {earlier} and {line} "
                    "(YAML would silently keep only the last one)",
                    where=f"{path}:{line}",
                )
    if loader.alias_marks:
        sizes = _expanded_sizes(root)
        if sizes[id(root)] > MAX_EXPANDED_VALUES:
            big = [item for item in loader.alias_marks if sizes[id(item[2])] > MAX_EXPANDED_VALUES]
            anchor, mark, _ = big[0] if big else max(loader.alias_marks, key=lambda item: sizes[id(item[2])])
            raise error(
                f"the aliases expand to more than {MAX_EXPANDED_VALUES:,} values (alias *{anchor} here and the "
                "ones it repeats): write the values out instead of aliasing them",
                where=_location(path, mark),
            )


def _parse_plain_with_libyaml(text: str) -> tuple[Any, yaml.Node | None] | None:
    """The data and root node of a document without aliases or repeated keys, which libyaml reads and the
    constructor builds; ``None`` for any other (the pure-Python parse then checks it and names the problem)."""
    if _CLoader is None or yaml.reader.Reader.NON_PRINTABLE.search(text):  # characters the Python reader refuses
        return None
    loader = _CLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        if not _without_aliases_or_repeated_keys(root):
            return None
        return loader.construct_document(root), root
    except Exception:  # a syntax error, a value that cannot be built, libyaml's nesting limit: the slow path says
        return None
    finally:
        loader.dispose()


def _without_aliases_or_repeated_keys(root: yaml.Node) -> bool:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: the node is reached twice
            return False
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            keys = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if (key.tag, key.value) in keys:
                        return False
                    keys.add((key.tag, key.value))
                stack += (key, value)
    return True


def _scalars(root: yaml.Node):
    return (node for node in _distinct_nodes(root) if isinstance(node, yaml.ScalarNode))


def read_yaml(path: Path, error: type[CptpubError] = CptpubError) -> tuple[Any, yaml.Node | None]:
    """The file's data (the caller's own copy) and its root node. Unreadable files, syntax errors, repeated keys,
    alias bombs and values YAML cannot build (``2026-13-45`` as a date) raise ``error`` with
    ``file:line[:column]``; a missing file raises FileNotFoundError."""
    try:
        st = path.stat()  # before reading: a file replaced in between is parsed again next time
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", where=path) from exc
    version = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    parsed = _parsed.get(version)
    if parsed is None:  # errors are raised, never kept: a bad file is read again, for the same error
        parsed = _parse(path, error)
        if len(_parsed) >= _PARSED_VERSIONS:
            _parsed.pop(next(iter(_parsed)))
        _parsed[version] = parsed
    data, root = parsed
    return copy.deepcopy(data), root


_PARSED_VERSIONS = 64
_parsed: dict[tuple[object, ...], tuple[Any, yaml.Node | None]] = {}  # (path, inode, size, times) -> parse


def _parse(path: Path, error: type[CptpubError]) -> tuple[Any, yaml.Node | None]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", where=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"not UTF-8 text: {exc.reason} (byte {exc.start})", where=f"{path}:{line}") from exc
    parsed = _parse_plain_with_libyaml(text)
    if parsed is not None:
        return parsed
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character, a surrogate)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise error(
            f"YAML syntax error: character {exc.character!r} is not allowed in YAML", where=f"{path}:{line}:{column}"
        ) from exc
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_structure(path, loader, root, error)
        try:
            return loader.construct_document(root), root
        except (ValueError, TypeError, yaml.constructor.ConstructorError) as exc:
            # One line: a ConstructorError's text quotes the file around the problem over several lines.
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
            reason = " ".join(reason.split())
            for node in _scalars(root):  # find the value that could not be built
                try:
                    loader.construct_object(node, deep=True)
                except (ValueError, TypeError, yaml.constructor.ConstructorError):
                    value = node.value if len(node.value) <= 60 else node.value[:57] + "..."
                    raise error(f"invalid value {value!r}: {reason}", where=_location(path, node.start_mark)) from exc
            mark = exc.problem_mark if isinstance(exc, yaml.MarkedYAMLError) else None
            raise error(f"invalid YAML: {reason}", where=_location(path, mark)) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(f"YAML syntax error: {exc.problem or exc.context}", where=_location(path, mark)) from exc
    except RecursionError as exc:  # thousands of nested brackets
        raise error("the YAML nests too deeply", where=path) from exc
    finally:
        loader.dispose()
