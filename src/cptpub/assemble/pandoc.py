"""Running Pandoc (the binary shipped by pypandoc-binary) with cptpub's reader and safety filter."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import pypandoc

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


def safety_filter() -> Path:
    """The Lua filter that strips attributes, unsafe links and out-of-folder images (see safety.lua)."""
    return Path(str(resources.files("cptpub.assemble") / "safety.lua"))


def run_pandoc(markdown: str, args: list[str], *, cwd: Path, what: str) -> bytes:
    """Convert ``markdown`` with the safe reader and the safety filter; return the writer's output.

    Runs in ``cwd`` (the code's build folder) so figure paths resolve there. ``what`` names the
    output in error messages.
    """
    argv = [pandoc_path(), f"--from={READER}", f"--lua-filter={safety_filter()}", *args]
    result = subprocess.run(argv, input=markdown.encode("utf-8"), cwd=cwd, capture_output=True, check=False)
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
