"""``cptpub new``: a new record with every field present and commented, ready to fill."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import jinja2

from cptpub.atomic import write_atomic
from cptpub.errors import UsageError
from cptpub.project import check_code

_TEMPLATE = files("cptpub.records").joinpath("new_record.yaml.j2")


def new_record_text(code: str) -> str:
    return jinja2.Template(_TEMPLATE.read_text(encoding="utf-8"), keep_trailing_newline=True).render(
        code=check_code(code)
    )


def create_record(codes_dir: Path, code: str) -> Path:
    """Write ``codes_dir/<code>.yaml``; refuses to overwrite an existing record."""
    code = check_code(code)
    path = codes_dir / f"{code}.yaml"
    if path.exists():
        raise UsageError(f"a record for {code} already exists", where=path, hint="edit it, or delete it first")
    return write_atomic(path, new_record_text(code).encode("utf-8"))
