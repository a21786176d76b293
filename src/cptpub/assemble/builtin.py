"""The builtin engine: Pandoc writes the HTML page and Typst source, the typst wheel makes the PDF.

Needs nothing beyond the Python dependencies, so a fresh machine can publish without Quarto.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import typst

from cptpub import escape
from cptpub.assemble.base import CATALOGUE_HREF, DEMO_NOTICE, AssemblyJob, EditionMeta, check_formats
from cptpub.assemble.config import ReportConfig, load_config
from cptpub.assemble.markdown import notebooks_to_markdown
from cptpub.assemble.pandoc import metadata_file, pandoc_version, run_pandoc_on_ast
from cptpub.assemble.pandoc_server import Output, PandocServer, output_filters
from cptpub.assemble.selfcontained import PANDOC_VERSIONS, embed_resources
from cptpub.assemble.typst_memo import embedded_fonts, evict_edition_memos
from cptpub.assemble.typst_values import Length, typst_value
from cptpub.atomic import write_atomic
from cptpub.dates import display_date
from cptpub.errors import AssemblyError
from cptpub.project import output_name

TYPST_META_FILE = "cptpub-meta.typ"  # in the build folder; report/publication.typ imports ``meta`` from it
HTML_PAGE_FILE = "cptpub-page.html"  # in the build folder: the page as Pandoc's HTML writer writes it
HTML_AST_FILE = "cptpub-html.json"  # in the build folder: the page's filtered document, when the command line embeds


class BuiltinEngine:
    """Holds one long-lived Pandoc (started with the first edition) for every edition it renders: ``close`` it, or
    let it be collected, to stop that process."""

    name = "builtin"

    def __init__(self) -> None:
        self._pandoc = PandocServer()

    def version(self) -> str:
        return f"pandoc {pandoc_version()}, typst {version('typst')}"

    def close(self) -> None:
        self._pandoc.close()

    def render(self, job: AssemblyJob, formats: Sequence[str], out_dir: Path) -> dict[str, Path]:
        wanted = check_formats(formats)
        config = load_config(job.report_dir)
        markdown = notebooks_to_markdown(job.notebooks, job.workdir, config.execute)
        # One Pandoc run reads the Markdown for both formats: the Typst source, and the page before its resources
        # are embedded (which Pandoc's Lua API cannot do: see cptpub.assemble.selfcontained).
        outputs = []
        metadata = ""
        if "html" in wanted:
            metadata = metadata_file(job.workdir, "HTML page", html_metadata(job.meta, config))
            outputs.append(html_output(config))
        if "pdf" in wanted:
            typst_source = output_name(job.meta.code, "typ")
            outputs.append(
                Output("typst", "typst", typst_source, template=str(config.typst_template), filters=output_filters())
            )
        what = " and ".join(WHAT[fmt] for fmt in wanted)
        self._pandoc.convert(job.workdir, markdown, outputs, what=what, metadata=metadata or None)
        # Every format is rendered before any is published: a failing PDF must not leave a new page that links
        # to the previous edition's PDF.
        rendered = {
            fmt: self._render_html(job, config, markdown, metadata) if fmt == "html" else render_pdf(job, config)
            for fmt in wanted
        }
        return job.write_outputs(rendered, out_dir)

    def _render_html(self, job: AssemblyJob, config: ReportConfig, markdown: str, metadata: str) -> bytes:
        """A standalone page with the styles and figures embedded: it loads nothing from anywhere.

        The bytes of ``pandoc --embed-resources``: embedded here when ``embed_resources`` reproduces this Pandoc's
        embedding of everything on the page, otherwise by Pandoc's command line from the page's filtered document.
        """
        page = None
        if pandoc_version() in PANDOC_VERSIONS:
            page = embed_resources((job.workdir / HTML_PAGE_FILE).read_text(encoding="utf-8"), job.workdir)
        if page is not None:
            return page.encode("utf-8")
        output = Output("json", "html5", HTML_AST_FILE, metadata=True, filters=output_filters())
        self._pandoc.convert(job.workdir, markdown, [output], what=WHAT["html"], metadata=metadata)
        return render_html_with_command_line(job, config)


WHAT = {"html": "HTML page", "pdf": "Typst source"}


def html_output(config: ReportConfig) -> Output:
    """The page as `pandoc` with `html_options` but `--embed-resources` writes it (`--css` is the `css` variable),
    with the job's metadata file."""
    options: dict[str, object] = {"wrap_text": "none", "variables": {"css": [str(css) for css in config.html.css]}}
    if config.html.toc:
        options.update(table_of_contents=True, toc_depth=config.html.toc_depth)
    return Output(
        "html5",
        "html5",
        HTML_PAGE_FILE,
        template=str(config.html_template),
        metadata=True,
        filters=output_filters(),
        options=options,
    )


def html_options(config: ReportConfig) -> list[str]:
    """The command line's options for the page: what ``html_output`` gives the long-lived Pandoc, and embedding."""
    args = [
        "--to=html5",
        "--standalone",
        "--embed-resources",
        "--wrap=none",
        f"--template={config.html_template}",
        *(f"--css={css}" for css in config.html.css),
    ]
    if config.html.toc:
        args += ["--toc", f"--toc-depth={config.html.toc_depth}"]
    return args


def render_html_with_command_line(job: AssemblyJob, config: ReportConfig) -> bytes:
    """The page from its filtered document (``HTML_AST_FILE``) by Pandoc's command line, ``--embed-resources``."""
    document = (job.workdir / HTML_AST_FILE).read_bytes()
    return run_pandoc_on_ast(document, html_options(config), cwd=job.workdir, what=WHAT["html"])


def html_metadata(meta: EditionMeta, config: ReportConfig) -> dict[str, object]:
    """Template values as Pandoc metadata (which the HTML writer escapes, unlike ``--variable``).

    Pandoc reads metadata strings as Markdown, so each passes the escaping layer: data text (titles, payer names)
    appears literally. Lists (authors, keywords, dates) keep their order.
    """
    values: list[tuple[str, str]] = [
        ("lang", config.lang),
        ("title", meta.title),
        ("title-prefix", config.html.title_prefix),
        ("code", meta.code),
        ("edition-date", display_date(meta.edition_date)),
        ("edition-date-iso", meta.edition_date.isoformat()),
        ("subject", meta.subject),
        ("publisher", config.publisher),
        ("toc-title", config.html.toc_title),
        ("catalogue-href", CATALOGUE_HREF),
        ("pdf-href", output_name(meta.code, "pdf")),
        ("demo-notice", DEMO_NOTICE),
        *(("author", name) for name in config.authors),
        *(("keywords", word) for word in meta.keywords),
        *(("data-as-of", f"{label}: {display_date(day)}") for label, day in meta.data_as_of),
    ]
    metadata: dict[str, object] = {}
    for key, value in values:
        if escape.clean(value):
            text = escape.md(value)
            if key in ("author", "keywords", "data-as-of"):
                cast_list = metadata.setdefault(key, [])
                assert isinstance(cast_list, list)
                cast_list.append(text)
            else:
                metadata[key] = text
    if meta.demo:
        metadata["demo"] = True
    return metadata


def render_pdf(job: AssemblyJob, config: ReportConfig) -> bytes:
    """The Typst source Pandoc wrote (kept beside the figures for debugging), compiled with embedded fonts only.

    The template imports the edition's values from ``TYPST_META_FILE`` beside the source (escaped Typst, written
    here): a file, so no command line carries data, whatever its size."""
    write_atomic(job.workdir / TYPST_META_FILE, f"#let meta = {typst_meta(job.meta, config)}\n".encode(), durable=False)
    source_path = job.workdir / output_name(job.meta.code, "typ")
    try:
        # No system fonts: the same fonts, hence the same bytes, on every machine.
        return typst.compile(source_path, root=job.workdir, ignore_system_fonts=True, font_paths=embedded_fonts())
    except typst.TypstError as err:
        raise AssemblyError(
            f"typst could not compile the PDF:\n{getattr(err, 'diagnostic', None) or err}",
            where=source_path,
            hint="the Typst source is kept there; check report/publication.typ and the section Markdown",
        ) from None
    finally:
        evict_edition_memos()  # a worker compiles many editions: keep only what the next one can use


def typst_meta(meta: EditionMeta, config: ReportConfig) -> str:
    """The ``meta`` dictionary the Typst template reads, as escaped Typst source."""
    settings = config.typst
    lang, region = typst_language(config.lang)
    return typst_value(
        {
            "lang": lang,
            "region": region,
            "code": meta.code,
            "title": meta.title,
            "subject": meta.subject or None,
            "keywords": meta.keywords,
            "authors": config.authors or tuple(filter(None, [config.publisher])),
            "publisher": config.publisher,
            "edition-date": meta.edition_date,
            "edition-label": display_date(meta.edition_date),
            "data-as-of": tuple((label, display_date(day)) for label, day in meta.data_as_of),
            "demo": meta.demo,
            "demo-notice": DEMO_NOTICE,
            "paper": settings.papersize,
            "margin": {side: Length(length) for side, length in settings.margin},
            "fontsize": Length(settings.fontsize),
            "toc": settings.toc,
            "toc-depth": settings.toc_depth,
            "toc-title": settings.toc_title,
        }
    )


def typst_language(tag: str) -> tuple[str, str | None]:
    """``_quarto.yml``'s ``lang`` (a BCP 47 tag such as ``en``, ``en-US`` or ``zh-Hant-TW``) as Typst's ``lang`` and
    ``region``: Typst takes the language alone and a two-letter region, or none (``es-419`` has no Typst region)."""
    language, *subtags = tag.split("-")
    region = next((sub.upper() for sub in subtags if len(sub) == 2 and sub.isascii() and sub.isalpha()), None)
    return language.lower(), region
