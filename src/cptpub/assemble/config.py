"""``report/_quarto.yml``: the one place editors configure both assembly engines.

Quarto reads the file as-is. The builtin engine reads the same keys:

* top level ``author`` (a name, a list of names, or Quarto's ``- name: ...`` form) and ``lang``;
* ``format.html``: ``css``, ``toc``, ``toc-depth``, ``toc-title``, ``title-prefix``;
* ``format.typst``: ``papersize``, ``margin`` (``x``/``y``/``top``/...), ``fontsize``, ``toc``,
  ``toc-depth``, ``toc-title``;
* ``execute``: ``echo``, ``output``, ``include`` (defaults for every code cell, as Quarto applies them);
* ``cptpub``: keys Quarto has no name for: ``publisher``, ``html-template`` and ``typst-template``
  (files in ``report/`` used by the builtin engine).

Values are checked here, so a typo is reported against ``_quarto.yml`` rather than as a Typst error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cptpub.assemble.typst_values import LENGTH_PATTERN
from cptpub.errors import AssemblyError
from cptpub.yamlfile import read_yaml

CONFIG_NAME = "_quarto.yml"

_PAPER = re.compile(r"^[a-z0-9-]+$")
# The sides Quarto's Typst `margin` option accepts: a closed object of x, y, top, bottom, left, right
# (quarto-cli src/resources/schema/document-reveal-layout.yml v1.7.32 and v1.8.27, document-layout.yml v1.9.38);
# Quarto refuses a project with any other side, so the builtin engine does too.
_MARGIN_SIDES = ("x", "y", "top", "bottom", "left", "right")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class HtmlSettings:
    css: tuple[Path, ...]
    toc: bool
    toc_depth: int
    toc_title: str
    title_prefix: str


@dataclass(frozen=True)
class TypstSettings:
    papersize: str
    margin: tuple[tuple[str, str], ...]  # (("x", "2cm"), ("y", "2.2cm"))
    fontsize: str
    toc: bool
    toc_depth: int
    toc_title: str


@dataclass(frozen=True)
class ExecuteSettings:
    """Quarto's ``execute`` defaults for every code cell (a cell's own ``#|`` options win)."""

    echo: bool = False
    output: bool = True
    include: bool = True


@dataclass(frozen=True)
class ReportConfig:
    path: Path
    lang: str
    authors: tuple[str, ...]
    publisher: str
    html: HtmlSettings
    typst: TypstSettings
    html_template: Path
    typst_template: Path
    execute: ExecuteSettings
    raw: dict[str, Any] = field(repr=False, compare=False)  # the parsed file, for the Quarto project

    @property
    def report_dir(self) -> Path:
        return self.path.parent


def load_config(report_dir: Path) -> ReportConfig:
    """Read and check ``report_dir/_quarto.yml`` and the template files it names."""
    path = report_dir / CONFIG_NAME
    try:
        raw, _ = read_yaml(path, AssemblyError)
    except FileNotFoundError:
        raise AssemblyError(
            "report settings file not found", where=path, hint="the report/ template project needs a _quarto.yml"
        ) from None
    reader = _Reader(path, raw if raw is not None else {})
    return ReportConfig(
        path=path,
        lang=reader.lang(),
        authors=reader.authors(),
        publisher=reader.text(("cptpub", "publisher"), ""),
        html=HtmlSettings(
            css=tuple(reader.file(("format", "html", "css"), name) for name in reader.names(("format", "html", "css"))),
            toc=reader.flag(("format", "html", "toc"), True),
            toc_depth=reader.depth(("format", "html", "toc-depth")),
            toc_title=reader.text(("format", "html", "toc-title"), "Contents"),
            title_prefix=reader.text(("format", "html", "title-prefix"), ""),
        ),
        typst=TypstSettings(
            papersize=reader.pattern(("format", "typst", "papersize"), "us-letter", _PAPER, "a Typst paper name"),
            margin=reader.margin(),
            fontsize=reader.pattern(("format", "typst", "fontsize"), "10.5pt", LENGTH_PATTERN, "a length such as 11pt"),
            toc=reader.flag(("format", "typst", "toc"), True),
            toc_depth=reader.depth(("format", "typst", "toc-depth")),
            toc_title=reader.text(("format", "typst", "toc-title"), "Contents"),
        ),
        html_template=reader.template("html-template", "template.html"),
        typst_template=reader.template("typst-template", "publication.typ"),
        execute=ExecuteSettings(
            echo=reader.flag(("execute", "echo"), False),
            output=reader.flag(("execute", "output"), True),
            include=reader.flag(("execute", "include"), True),
        ),
        raw=reader.raw,
    )


class _Reader:
    """Typed look-ups into the parsed YAML; every error names the file and the dotted key."""

    def __init__(self, path: Path, raw: Any):
        if not isinstance(raw, dict):
            raise AssemblyError("expected a mapping at the top level", where=path)
        self.path = path
        self.raw = raw

    def _fail(self, keys: tuple[str, ...], problem: str) -> AssemblyError:
        return AssemblyError(f"{'.'.join(keys)}: {problem}", where=self.path)

    def get(self, keys: tuple[str, ...], default: Any) -> Any:
        node: Any = self.raw
        for depth, key in enumerate(keys):
            if node is None:
                return default
            if not isinstance(node, dict):
                raise self._fail(keys[:depth], "expected a mapping")
            node = node.get(key)
        return default if node is None else node

    def text(self, keys: tuple[str, ...], default: str) -> str:
        value = self.get(keys, default)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self._fail(keys, f"expected text, got {value!r}")
        return str(value)

    def flag(self, keys: tuple[str, ...], default: bool) -> bool:
        value = self.get(keys, default)
        if not isinstance(value, bool):
            raise self._fail(keys, f"expected true or false, got {value!r}")
        return value

    def depth(self, keys: tuple[str, ...]) -> int:
        value = self.get(keys, 3)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 6:
            raise self._fail(keys, f"expected a heading level 1-6, got {value!r}")
        return value

    def pattern(self, keys: tuple[str, ...], default: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.text(keys, default)
        if not pattern.fullmatch(value):
            raise self._fail(keys, f"expected {what}, got {value!r}")
        return value

    def names(self, keys: tuple[str, ...]) -> list[str]:
        value = self.get(keys, [])
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self._fail(keys, f"expected a file name or a list of them, got {value!r}")
        return values

    def file(self, keys: tuple[str, ...], name: str) -> Path:
        """A file inside the report folder, which must exist."""
        path = (self.path.parent / name).resolve()
        if not path.is_relative_to(self.path.parent.resolve()):
            raise self._fail(keys, f"{name!r} is outside the report folder")
        if not path.is_file():
            raise AssemblyError(f"file {name} not found (named by {'.'.join(keys)} in {self.path.name})", where=path)
        return path

    def template(self, key: str, default: str) -> Path:
        keys = ("cptpub", key)
        return self.file(keys, self.text(keys, default))

    def lang(self) -> str:
        return self.pattern(("lang",), "en", _LANG, "a language tag such as en or en-US")

    def authors(self) -> tuple[str, ...]:
        value = self.get(("author",), [])
        entries = value if isinstance(value, list) else [value]
        names = []
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else entry
            if not isinstance(name, str) or not name.strip():
                raise self._fail(("author",), f"expected a name or a list of names, got {entry!r}")
            names.append(name.strip())
        return tuple(names)

    def margin(self) -> tuple[tuple[str, str], ...]:
        keys = ("format", "typst", "margin")
        value = self.get(keys, {"x": "2cm", "y": "2.2cm"})
        if not isinstance(value, dict) or not value:
            raise self._fail(keys, "expected a mapping such as {x: 2cm, y: 2.5cm}")
        sides = []
        for side, length in value.items():
            if side not in _MARGIN_SIDES:
                raise self._fail(
                    keys, f"unknown side {side!r}; Quarto's Typst margin takes only {', '.join(_MARGIN_SIDES)}"
                )
            if not isinstance(length, str) or not LENGTH_PATTERN.fullmatch(length):
                raise self._fail((*keys, side), f"expected a length such as 2cm, got {length!r}")
            sides.append((side, length))
        return tuple(sides)
