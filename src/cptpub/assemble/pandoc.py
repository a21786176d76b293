"""Running Pandoc (the binary shipped by pypandoc-binary) with cptpub's reader and safety filter."""

from __future__ import annotations

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


def run_pandoc(
    markdown: str, args: list[str], *, cwd: Path, what: str, metadata: dict[str, Any] | None = None
) -> bytes:
    """Convert ``markdown`` with the safe reader, the cross-reference and safety filters; return the output.

    Runs in ``cwd`` (the code's build folder) so figure paths resolve there. ``metadata`` goes to Pandoc in a
    YAML file in ``cwd`` (``--metadata-file``), never on the command line, so its size is not limited by the
    system's argument length. ``what`` names the output in error messages.
    """
    argv = [
        pandoc_path(),
        f"--from={READER}",
        f"--lua-filter={crossref_filter()}",
        f"--lua-filter={safety_filter()}",
    ]
    if metadata is not None:
        # Pandoc reads the file's strings as Markdown: callers pass them escaped. PyYAML writes any character YAML
        # cannot hold raw as an escape Pandoc's YAML reader accepts (JSON's surrogate pairs it does not).
        text = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False, width=2**30)
        meta_file = write_atomic(cwd / f".pandoc-metadata-{_slug(what)}.yaml", text.encode("utf-8"))
        argv.append(f"--metadata-file={meta_file.name}")
    argv += args
    try:
        result = subprocess.run(
            argv, input=markdown.encode("utf-8"), cwd=cwd, capture_output=True, check=False, timeout=PANDOC_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise AssemblyError(f"pandoc did not finish the {what} within {PANDOC_TIMEOUT} s", where=cwd) from None
    if result.returncode != 0:
        raise AssemblyError(
            f"pandoc failed to write the {what} (exit status {result.returncode}): {_pandoc_problem(result.stderr)}",
            where=cwd,
        )
    return result.stdout


def _pandoc_problem(stderr: bytes) -> str:
    """The safety filter's own message when it refused something, otherwise all of pandoc's stderr."""
    text = stderr.decode("utf-8", "replace").strip()
    for line in text.splitlines():
        if line.startswith(_FILTER_MESSAGE_PREFIX):
            return line.removeprefix(_FILTER_MESSAGE_PREFIX)
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
