"""Running Pandoc (the binary shipped by pypandoc-binary): cptpub's reader, filters, and the command-line runs."""

from __future__ import annotations

import os
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pypandoc
import yaml

from cptpub.atomic import write_atomic
from cptpub.errors import AssemblyError

# Untrusted text must never become markup: no raw HTML, raw TeX or ```{=format} blocks.
READER = "markdown-raw_html-raw_tex-raw_attribute"
_FILTER_MESSAGE_PREFIX = "cptpub: "


def pandoc_path() -> str:
    try:
        return pypandoc.get_pandoc_path()
    except OSError as err:
        raise AssemblyError(f"pandoc not found: {err}", hint="reinstall pypandoc-binary") from None


def pandoc_version() -> str:
    return pypandoc.get_pandoc_version()


def _filter(name: str) -> Path:
    return Path(str(resources.files("cptpub.assemble") / name))


def safety_filter() -> Path:
    """The Lua filter that strips attributes, unsafe links and out-of-folder images (see safety.lua)."""
    return _filter("safety.lua")


def crossref_filter() -> Path:
    """The Lua filter that numbers captioned figures and tables and links ``@fig-``/``@tbl-`` references."""
    return _filter("crossref.lua")


PANDOC_TIMEOUT = 300  # seconds; a page takes well under one

# GHC runtime options, which change speed and memory, never output. The binary's built-in -H64m heap makes a short
# run fault in and collect 64 MB: a 16 MB allocation area is ~15 % less CPU and 10 MB less memory for a page. Given
# through the environment: a pandoc built without -rtsopts ignores it with a warning instead of refusing to run.
RUN_RTS = "-A16m"


def pandoc_env(rts_options: str) -> dict[str, str]:
    return {**os.environ, "GHCRTS": rts_options}


def run_pandoc_on_ast(document: bytes, args: list[str], *, cwd: Path, what: str) -> bytes:
    """Write a document already read and filtered (Pandoc's JSON, from ``pandoc_server``) with ``args``."""
    return _run(["--from=json", *args], document, cwd=cwd, what=what)


def metadata_file(cwd: Path, what: str, metadata: dict[str, Any]) -> str:
    """``metadata`` in a YAML file in ``cwd`` for ``--metadata-file``; its name, relative to ``cwd``."""
    # Pandoc reads the file's strings as Markdown: callers pass them escaped. PyYAML writes any character YAML
    # cannot hold raw as an escape Pandoc's YAML reader accepts (JSON's surrogate pairs it does not).
    text = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False, width=2**30)
    return write_atomic(cwd / f".pandoc-metadata-{_slug(what)}.yaml", text.encode("utf-8"), durable=False).name


def _run(args: list[str], source: bytes, *, cwd: Path, what: str) -> bytes:
    try:
        result = subprocess.run(
            [pandoc_path(), *args],
            input=source,
            cwd=cwd,
            env=pandoc_env(RUN_RTS),
            capture_output=True,
            check=False,
            timeout=PANDOC_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise AssemblyError(f"pandoc did not finish the {what} within {PANDOC_TIMEOUT} s", where=cwd) from None
    if result.returncode != 0:
        raise AssemblyError(
            f"pandoc failed to write the {what} (exit status {result.returncode}): "
            + pandoc_problem(result.stderr.decode("utf-8", "replace")),
            where=cwd,
        )
    return result.stdout


def pandoc_problem(stderr: str) -> str:
    """The safety filter's own message when it refused something, otherwise all of pandoc's stderr."""
    text = stderr.strip()
    for line in text.splitlines():
        if line.startswith(_FILTER_MESSAGE_PREFIX):
            return line.removeprefix(_FILTER_MESSAGE_PREFIX)
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
