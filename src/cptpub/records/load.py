"""Load YAML records with line numbers, so a schema error names the file, the line and the field."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cptpub.errors import RecordError, UsageError
from cptpub.project import check_code, known_codes
from cptpub.records.schema import CodeRecord, Payer, PayerCatalogue
from cptpub.yamlfile import read_yaml

Model = TypeVar("Model", bound=BaseModel)


class CodeNotFound(UsageError):
    """No record for the code; the message lists similar known codes."""


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...], *, at_key: bool = False) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location, for its line number (the key's own line when
    ``at_key``, e.g. for an unknown field)."""
    for depth, key in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            if pair is None:
                return node
            node = pair[0] if at_key and depth == len(loc) - 1 else pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node


def _field_name(loc: tuple[int | str, ...]) -> str:
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def _describe(err: Any, allowed: list[str]) -> str:
    if err["type"] == "extra_forbidden":
        unknown = str(err["loc"][-1])
        close = difflib.get_close_matches(unknown, allowed, n=1)
        return f"unknown field {unknown!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return f"{_field_name(err['loc'])}: {err['msg']}"


def _allowed_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names valid at ``loc`` (for did-you-mean suggestions on unknown keys)."""
    current: Any = model
    for key in loc[:-1]:
        if isinstance(key, int):
            continue
        field = getattr(current, "model_fields", {}).get(key)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            inner = getattr(candidate, "__args__", (candidate,))[0] if hasattr(candidate, "__args__") else candidate
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                current = inner
                break
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def load_model(path: Path, model: type[Model]) -> Model:
    """Parse ``path`` into ``model``; every problem is reported as ``file:line: field: message``."""
    data, root = read_yaml(path, RecordError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecordError("expected a mapping of field: value at the top level", where=f"{path}:1")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            node = _node_at(root, err["loc"], at_key=err["type"] == "extra_forbidden")
            line = node.start_mark.line + 1 if node is not None else 1
            problems.append((line, _describe(err, _allowed_fields(model, err["loc"]))))
        first_line, first = problems[0]
        rest = "".join(f"\n  {path}:{line}: {text}" for line, text in problems[1:])
        raise RecordError(first + rest, where=f"{path}:{first_line}") from exc


def load_record(codes_dir: Path, code: str) -> CodeRecord:
    code = check_code(code)
    path = codes_dir / f"{code}.yaml"
    if not path.exists():
        known = known_codes(codes_dir)
        similar = sorted(difflib.get_close_matches(code, known, n=8, cutoff=0.6)) or [
            k for k in known if k[:3] == code[:3]
        ]
        listing = ", ".join(similar) if similar else "none"
        raise CodeNotFound(
            f"unknown code {code}: there is no record {path.name} in {codes_dir}. Similar known codes: {listing}",
            hint=f"add one with `cptpub new {code}`",
        )
    record = load_model(path, CodeRecord)
    if record.code is not None and record.code != code:
        raise RecordError(f"code: {record.code!r} does not match the file name {path.name}", where=f"{path}:1")
    return record


def load_record_or_empty(codes_dir: Path, code: str) -> tuple[CodeRecord, bool]:
    """(the code's record, True), or (an empty record, False) when the code has no record file: an edition is then
    written from its data alone (CMS's files, the payers' rates)."""
    code = check_code(code)
    if not (codes_dir / f"{code}.yaml").exists():
        return CodeRecord(), False
    return load_record(codes_dir, code), True


@lru_cache(maxsize=8)
def _load_payers_cached(path: Path, version: tuple[int, ...]) -> PayerCatalogue:
    return load_model(path, PayerCatalogue)


def load_payers(path: Path) -> PayerCatalogue:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RecordError("the payer catalogue is missing", where=path) from None
    catalogue = _load_payers_cached(path, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    for payer in catalogue.payers:
        for pattern in payer.entity_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise RecordError(f"payer {payer.name}: invalid pattern {pattern!r}: {exc}", where=path) from exc
    return catalogue


def match_payer(catalogue: PayerCatalogue, reporting_entity_name: str) -> Payer | None:
    """The first payer whose entity pattern matches the file's ``reporting_entity_name``."""
    for payer in catalogue.payers:
        if any(re.search(p, reporting_entity_name, re.IGNORECASE) for p in payer.entity_patterns):
            return payer
    return None


def payer_named(catalogue: PayerCatalogue, name: str) -> Payer | None:
    """A payer by its publication name, case-insensitively (for ``--payer``)."""
    return next((p for p in catalogue.payers if p.name.lower() == name.lower()), None)
