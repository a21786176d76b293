"""The quarto engine: a small Quarto project in the code's build folder, rendered with execution off.

The project's one input, ``cpt-<code>.qmd``, holds only front matter. The section content (from
:func:`notebooks_to_markdown`) is saved beside it, and a generated Lua filter, run by Quarto
before its own filters, reads it with the same safe reader and safety filter as the builtin
engine and puts it in the document. Why not a merged notebook or Markdown in the ``.qmd``:

* the contract already drops code, text/plain and error outputs and parameter cells, so after
  selection there is nothing but Markdown left to hand over;
* Quarto reads documents with raw HTML, raw attributes and shortcodes enabled, and Pandoc's
  Markdown writer does not escape everything that matters under that reader (``{=html}``
  right after inline code becomes a raw block), so the content must never pass through it;
* a ``.qmd`` without code cells and with ``engine: markdown`` cannot start a Jupyter kernel,
  so nothing is re-executed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cptpub import escape
from cptpub.assemble.base import (
    CATALOGUE_HREF,
    DEMO_NOTICE,
    AssemblyJob,
    EditionMeta,
    check_formats,
    display_date,
    output_name,
)
from cptpub.assemble.config import ReportConfig, load_config
from cptpub.assemble.markdown import notebooks_to_markdown
from cptpub.assemble.pandoc import READER, safety_filter
from cptpub.assemble.typst_values import typst_value
from cptpub.atomic import write_atomic
from cptpub.errors import AssemblyError

# Quarto runs the Typst it bundles, so the Typst features in the generated include files set the minimum Quarto:
# Quarto 1.4 bundles Typst 0.10, 1.5 and 1.6 bundle Typst 0.11, 1.7 bundles Typst 0.13 (quarto-cli
# news/changelog-1.5.md "Upgrade Typst to 0.11.0"; quarto-cli issues #10047 and #11294, "Quarto 1.6 is using
# Typst 0.11"; quarto-ext/typst-templates#17, "Quarto 1.7 and typst 0.13"). in-header.typ needs:
#   `context` and `counter(page).final()` without a location         Typst 0.11
#   `#set document` after other rules, `block(sticky: true)`          Typst 0.12
#   `document(description: ...)`                                      Typst 0.13
# (typst docs/changelog/0.11.0.md, 0.12.0.md, 0.13.0.md). No Quarto shipped Typst 0.12, so the first that can
# compile these files is 1.7.
MIN_VERSION = (1, 7)
QUARTO_FORMATS = {"html": "html", "pdf": "typst"}
SUPPORT_DIR = "_cptpub"  # generated include files, content and filters, inside the build folder
CONTENT_NAME = "content.md"
CONTENT_FILTER_NAME = "content.lua"
RENDER_TIMEOUT_SECONDS = 600
_MIN_TEXT = ".".join(map(str, MIN_VERSION))
_NOT_FOUND_HINT = f"install Quarto >= {_MIN_TEXT}, set QUARTO_PATH to the quarto executable, or use the builtin engine"
# The table layout rules of report/publication.typ, which Quarto's own Typst template does not have: rows never
# split across pages, a long table (Pandoc's `table` figures or Quarto's captioned `quarto-float-tbl` floats) may
# continue on the next page, and a caption above a table stays on the page where the table starts.
TABLE_RULES = """\
#set table.cell(breakable: false)
#show figure.where(kind: table): set block(breakable: true)
#show figure.where(kind: "quarto-float-tbl"): set block(breakable: true)
#show figure.where(kind: table): set figure.caption(position: top)
#show figure.caption.where(position: top): it => block(sticky: true, width: 100%, it)
"""


def find_quarto() -> str | None:
    """``$QUARTO_PATH`` when set (and executable), else ``quarto`` on ``PATH``."""
    configured = os.environ.get("QUARTO_PATH")
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    return shutil.which("quarto")


class QuartoEngine:
    name = "quarto"

    def __init__(self, executable: str | None = None):
        found = executable or find_quarto()
        if not found:
            where = f"QUARTO_PATH={os.environ['QUARTO_PATH']}" if os.environ.get("QUARTO_PATH") else "PATH"
            raise AssemblyError(f"quarto not found ({where})", hint=_NOT_FOUND_HINT)
        self.executable = found
        self._version: str | None = None

    def version(self) -> str:
        """Quarto's version; an error when it cannot run or is older than :data:`MIN_VERSION`."""
        if self._version is None:
            result = _run([self.executable, "--version"], cwd=None, timeout=60)
            text = result.stdout.strip()
            match = re.match(r"(\d+)\.(\d+)", text)
            if result.returncode != 0 or not match:
                raise AssemblyError(
                    f"`{self.executable} --version` failed (exit status {result.returncode}): "
                    f"{result.stderr.strip() or text}",
                    hint=_NOT_FOUND_HINT,
                )
            if (int(match[1]), int(match[2])) < MIN_VERSION:
                raise AssemblyError(
                    f"quarto {text} is too old: cptpub's Typst files need Quarto {_MIN_TEXT} or newer (Typst 0.13)",
                    hint=_NOT_FOUND_HINT,
                )
            self._version = text
        return self._version

    def render(self, job: AssemblyJob, formats: Sequence[str], out_dir: Path) -> dict[str, Path]:
        wanted = check_formats(formats)
        self.version()
        source = write_project(job, load_config(job.report_dir))
        # Every format is rendered before any is published: a failing PDF must not leave a new page that links
        # to the previous edition's PDF.
        rendered: dict[str, bytes] = {}
        for fmt in wanted:
            produced = job.workdir / output_name(job.meta.code, fmt)
            produced.unlink(missing_ok=True)  # never publish a previous run's file as this one's
            argv = quarto_command(self.executable, job, fmt)
            result = _run(argv, cwd=job.workdir, timeout=RENDER_TIMEOUT_SECONDS)
            if result.returncode != 0:
                raise AssemblyError(
                    f"`quarto render --to {QUARTO_FORMATS[fmt]}` failed with exit status {result.returncode}:\n"
                    f"{_tail(result.stderr or result.stdout)}",
                    where=source,
                    hint=f"re-run in {job.workdir}: {' '.join(argv)}",
                )
            if not produced.is_file():
                raise AssemblyError(f"quarto reported success but did not write {produced.name}", where=source)
            rendered[fmt] = produced.read_bytes()
        return {fmt: write_atomic(out_dir / output_name(job.meta.code, fmt), data) for fmt, data in rendered.items()}


def quarto_command(executable: str, job: AssemblyJob, fmt: str) -> list[str]:
    """The argv that renders ``fmt`` (html or pdf) from the project :func:`write_project` made; run in workdir."""
    return [executable, "render", source_name(job.meta.code), "--to", QUARTO_FORMATS[fmt], "--no-execute"]


def source_name(code: str) -> str:
    return output_name(code, "qmd")


def write_project(job: AssemblyJob, config: ReportConfig) -> Path:
    """Write ``_quarto.yml``, the ``.qmd``, the content, filters and include files; return the ``.qmd``."""
    support = job.workdir / SUPPORT_DIR
    support.mkdir(parents=True, exist_ok=True)
    for css in config.html.css:
        shutil.copyfile(css, support / css.name)
    shutil.copyfile(safety_filter(), support / "safety.lua")
    (support / CONTENT_NAME).write_text(notebooks_to_markdown(job.notebooks), encoding="utf-8")
    (support / CONTENT_FILTER_NAME).write_text(content_filter(job.workdir), encoding="utf-8")
    (support / "before-body.html").write_text(html_before_body(job.meta), encoding="utf-8")
    (support / "in-header.typ").write_text(typst_in_header(job.meta), encoding="utf-8")
    (support / "before-body.typ").write_text(typst_before_body(job.meta), encoding="utf-8")
    project_yaml = yaml.safe_dump(project_settings(config), sort_keys=False, allow_unicode=True)
    (job.workdir / "_quarto.yml").write_text(project_yaml, encoding="utf-8")
    source = job.workdir / source_name(job.meta.code)
    source.write_text(front_matter(job.meta, config), encoding="utf-8")
    return source


def content_filter(workdir: Path) -> str:
    """The Lua filter that fills Quarto's document with the content, read as the builtin engine reads it."""
    support = workdir.resolve() / SUPPORT_DIR
    return f"""-- Generated by cptpub: the section content, read with the safe reader and cleaned by safety.lua.
CPTPUB_SAFETY_OPTIONS = {{ keep_fig_alt = true, base = {lua_string(str(workdir.resolve()))} }}
local safety = dofile({lua_string(str(support / "safety.lua"))})

function Pandoc(doc)
  local file = assert(io.open({lua_string(str(support / CONTENT_NAME))}, "rb"))
  local content = pandoc.read(file:read("a"), {lua_string(READER)})
  file:close()
  for _, filter in ipairs(safety) do
    content = content:walk(filter)
  end
  doc.blocks = content.blocks
  return doc
end
"""


def lua_string(text: str) -> str:
    """A Lua string literal for ``text`` (quotes, backslashes and control characters escaped)."""
    escaped = "".join(
        "\\" + char if char in '\\"' else f"\\{ord(char):03d}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in text
    )
    return f'"{escaped}"'


def project_settings(config: ReportConfig) -> dict[str, Any]:
    """``report/_quarto.yml`` with the css moved to the support folder, execution off and the includes added."""
    settings = {key: value for key, value in config.raw.items() if key != "cptpub"}
    settings["project"] = {**(settings.get("project") or {}), "type": "default"}
    settings["execute"] = {"enabled": False}
    settings["filters"] = [f"{SUPPORT_DIR}/{CONTENT_FILTER_NAME}", *_as_list(settings.get("filters"))]
    formats = {name: dict(options or {}) for name, options in (settings.get("format") or {}).items()}
    page = formats.setdefault("html", {})
    page["css"] = [f"{SUPPORT_DIR}/{css.name}" for css in config.html.css]
    page["include-before-body"] = [*_as_list(page.get("include-before-body")), f"{SUPPORT_DIR}/before-body.html"]
    pdf = formats.setdefault("typst", {})
    pdf["include-in-header"] = [*_as_list(pdf.get("include-in-header")), f"{SUPPORT_DIR}/in-header.typ"]
    pdf["include-before-body"] = [*_as_list(pdf.get("include-before-body")), f"{SUPPORT_DIR}/before-body.typ"]
    settings["format"] = formats
    return settings


def front_matter(meta: EditionMeta, config: ReportConfig) -> str:
    """YAML front matter; strings are Markdown-escaped because Quarto parses metadata as Markdown."""
    fields: dict[str, Any] = {
        "title": escape.md(meta.title),
        "date": meta.edition_date.isoformat(),
        "date-format": "MMMM D, YYYY",
        "engine": "markdown",
    }
    if config.authors:
        fields["author"] = [escape.md(name) for name in config.authors]
    if meta.subject:
        fields["description"] = escape.md(meta.subject)
    if meta.keywords:
        fields["keywords"] = [escape.md(word) for word in meta.keywords]
    return "---\n" + yaml.safe_dump(fields, sort_keys=False, allow_unicode=True) + "---\n"


def html_before_body(meta: EditionMeta) -> str:
    """Navigation links, the demo banner and the data dates, for the top of the page."""
    pdf = output_name(meta.code, "pdf")
    lines = [
        '<nav class="site-nav" aria-label="Publication">',
        f'  <a href="{CATALOGUE_HREF}">All codes</a>',
        f'  <a href="{pdf}">PDF edition</a>',
        "</nav>",
    ]
    if meta.demo:
        lines.append(f'<p class="demo-banner" role="note"><strong>{escape.html(DEMO_NOTICE)}</strong></p>')
    if meta.data_as_of:
        lines.append('<dl class="edition"><dt>Data as of</dt><dd><ul>')
        lines += [f"  <li>{escape.html(label)}: {display_date(day)}</li>" for label, day in meta.data_as_of]
        lines.append("</ul></dd></dl>")
    return "\n".join(lines) + "\n"


def typst_in_header(meta: EditionMeta) -> str:
    """Document metadata, the running footer (code, page X of Y, demo notice) and the table layout rules of
    ``report/publication.typ`` (:data:`TABLE_RULES`), for Quarto's Typst template."""
    values = typst_value(
        {
            "code": meta.code,
            "label": display_date(meta.edition_date),
            "demo": meta.demo,
            "notice": DEMO_NOTICE,
            "keywords": meta.keywords,
            "subject": meta.subject or None,
            "date": meta.edition_date,
        }
    )
    return f"""#let cptpub = {values}
#set document(keywords: cptpub.keywords, description: cptpub.subject, date: cptpub.date)
#set page(footer: context {{
  set text(size: 0.8em, fill: luma(85))
  if cptpub.demo {{ align(center, text(fill: rgb("#9b1c1c"), weight: "bold", cptpub.notice)) }}
  grid(
    columns: (1fr, auto),
    [CPT #cptpub.code · #cptpub.label],
    [Page #counter(page).display() of #counter(page).final().first()],
  )
}})
{TABLE_RULES}"""


def typst_before_body(meta: EditionMeta) -> str:
    """The demo banner and data dates under Quarto's title block."""
    values = typst_value(
        {
            "demo": meta.demo,
            "notice": DEMO_NOTICE,
            "as-of": tuple((label, display_date(day)) for label, day in meta.data_as_of),
        }
    )
    return f"""#let cptpub-front = {values}
#if cptpub-front.demo {{
  block(width: 100%, inset: 0.7em, stroke: 1pt + rgb("#9b1c1c"), fill: rgb("#fdecec"),
    align(center, text(fill: rgb("#9b1c1c"), weight: "bold", cptpub-front.notice)))
}}
#if cptpub-front.as-of.len() > 0 {{
  [*Data as of:* ]
  cptpub-front.as-of.map(((label, when)) => [#label: #when]).join([; ])
}}
"""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _run(argv: list[str], *, cwd: Path | None, timeout: int) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except OSError as err:
        raise AssemblyError(f"cannot run {argv[0]}: {err}", hint=_NOT_FOUND_HINT) from None
    except subprocess.TimeoutExpired:
        raise AssemblyError(f"`{' '.join(argv)}` did not finish within {timeout} s", where=cwd) from None


def _tail(text: str, limit: int = 4000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]
