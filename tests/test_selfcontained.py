"""The builtin engine embeds the page's styles and figures itself (``cptpub.assemble.selfcontained``), and the page is
byte for byte what Pandoc's own ``--embed-resources`` writes (``Text.Pandoc.SelfContained.makeSelfContained``, Pandoc
3.9): each page here is compared with a ``pandoc`` command-line run on the same Markdown. A page with something the
module does not reproduce is embedded by that command line instead, with the same bytes."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cptpub.assemble import AssemblyJob, BuiltinEngine, builtin
from cptpub.assemble.builtin import HTML_AST_FILE, HTML_PAGE_FILE, html_metadata
from cptpub.assemble.config import load_config
from cptpub.assemble.markdown import notebooks_to_markdown
from cptpub.assemble.pandoc import READER, crossref_filter, pandoc_path, safety_filter
from cptpub.assemble.selfcontained import embed_resources

from .test_assemble_builtin import REPORT_DIR, make_job

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402


def pandoc_embed_resources(job: AssemblyJob) -> bytes:
    """The page as one ``pandoc --embed-resources`` run from the Markdown writes it (the engine's former way)."""
    config = load_config(job.report_dir)
    markdown = notebooks_to_markdown(job.notebooks, job.workdir, config.execute).encode("utf-8")
    meta_file = job.workdir / "cli-metadata.yaml"
    meta_file.write_text(
        yaml.safe_dump(html_metadata(job.meta, config), allow_unicode=True, sort_keys=False, width=2**30),
        encoding="utf-8",
    )
    args = [
        pandoc_path(),
        f"--from={READER}",
        f"--lua-filter={crossref_filter()}",
        f"--lua-filter={safety_filter()}",
        f"--metadata-file={meta_file}",
        "--to=html5",
        "--standalone",
        "--embed-resources",
        "--wrap=none",
        f"--template={config.html_template}",
        *(f"--css={css}" for css in config.html.css),
        "--toc",
        f"--toc-depth={config.html.toc_depth}",
    ]
    return subprocess.run(args, input=markdown, cwd=job.workdir, capture_output=True, check=True).stdout


def write_images(workdir: Path) -> None:
    """A PNG, a JPEG, a GIF and a WebP figure, and an SVG with Windows line ends (Pandoc drops their CRs)."""
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    for suffix in ("png", "jpg", "gif", "webp"):
        fig.savefig(workdir / "figures" / f"plot.{suffix}", format="jpeg" if suffix == "jpg" else suffix, dpi=20)
    plt.close(fig)
    svg = (workdir / "figures" / "cpt-20702-rates.svg").read_bytes()
    (workdir / "figures" / "crlf.svg").write_bytes(svg.replace(b"\n", b"\r\n"))


# What Pandoc's HTML writer makes of Markdown, element kinds and escapes alike, with figures of every kind embedded.
EVERYTHING = """

Quotes "double" and 'single', & ampersand, < less, > greater, non-breaking\u00a0space, café, 😀, a tab:\tend.

- [ ] a task not done, 'quoted'
- [x] a task done

Term
:   Its definition.

Line one\\
line two

---

A footnote[^1], ~~struck~~, H~2~O, x^2^, [small caps]{.smallcaps}, *emphasis* and **strong**.

[^1]: The note's text, with "quotes" & more.

```python
print("code & <tags> 'quoted'")
```

> A quotation's 'text'.

1. one
2. two

<!-- raw HTML is read as text -->

3. after a comment

[a link](https://example.com/?a=1&b="2" "a 'title'") and <https://example.com/x?y=1&z=2> and <mail@example.com>

![A PNG figure with "quotes" & 'apostrophes'](figures/plot.png)

![A JPEG](figures/plot.jpg){#fig-jpeg}

![](figures/plot.gif)

An inline image ![inline "alt"](figures/crlf.svg) in text, and the same one again: ![](figures/crlf.svg).

| a 'x' | b "y" |
|:------|------:|
| 1 & 2 | <3>   |

: A table's caption {#tbl-quotes}

See @fig-jpeg and @tbl-quotes. Math: $a < b$ and $$x^2 > 'y'$$ and `code's <b>`.
"""


def engine_page(tmp_path: Path, extra_markdown: str, *, report: Path = REPORT_DIR, **meta: object) -> tuple:
    job = make_job(tmp_path / "build", extra_markdown=extra_markdown)
    write_images(job.workdir)
    job = dataclasses.replace(job, report_dir=report, meta=dataclasses.replace(job.meta, **meta))
    engine = BuiltinEngine()
    try:
        page = engine.render(job, ["html"], tmp_path / "dist")["html"].read_bytes()
    finally:
        engine.close()
    return job, page


def test_every_kind_of_element_and_figure_is_embedded_as_pandoc_does(tmp_path: Path) -> None:
    title = "R&D <i>x</i> \"quoted\" 'single' — 100% {braces} $5"
    job, page = engine_page(tmp_path, EVERYTHING, title=title, subject="About R&D <i>x</i> 'single' — 100%")
    assert page == pandoc_embed_resources(job)
    assert not (job.workdir / HTML_AST_FILE).exists(), "embedded by cptpub, not by Pandoc's command line"
    html = page.decode("utf-8")
    assert html.count('src="data:image/png;base64,') == 1 and html.count('src="data:image/jpeg;base64,') == 1
    assert html.count('src="data:image/svg+xml;base64,') == 3 and "\r" not in html
    assert '<style type="text/css">' in html and "<link" not in html


# Comments (one unclosed), runs of white space of every kind, and the characters Pandoc's CSS parser stops at.
TRICKY_CSS = (
    "/* leading comment */\r\n:root {\r\n\t--ink: #111;   /* after a value */\n}\n\n\n"
    "body{margin:0}/**/p { color : red ;\x0b\x0c font-family: 'u u', \"x/y\" }\n"
    "  /* a /* nested-looking */ */ a:hover {   text-decoration: underline }\n"
    "uuu / u/u\t\t/ last rule { } /* never closed"
)


def test_stylesheets_lose_comments_and_runs_of_white_space_as_pandoc_does(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    (report / "styles.css").write_bytes(TRICKY_CSS.encode("ascii"))
    job, page = engine_page(tmp_path, "", report=report)
    assert page == pandoc_embed_resources(job)
    assert not (job.workdir / HTML_AST_FILE).exists()
    assert b"leading comment" not in page and b"/* never closed" in page


def report_with(tmp_path: Path, css: str | None = None, head: str | None = None) -> Path:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    if css is not None:
        (report / "styles.css").write_text(css, encoding="utf-8")
    if head is not None:
        template = report / "template.html"
        template.write_text(template.read_text().replace("</head>", head.format(report=report) + "\n</head>"))
    (report / "tool.js").write_text("console.log('x');\n")
    (report / "notes.txt").write_text("Notes.\n")
    (report / "more.css").write_text("p { color: red }\n")
    return report


# Pages with what the module leaves to Pandoc: an url() or @import in CSS, non-ASCII CSS, a script, a link that is
# not a plain stylesheet, a figure of a type it has no data: URI for, a double quote in a value the template puts in
# an attribute (Pandoc writes it unescaped there, and TagSoup reads the rest of the tag its own way).
FALLBACKS: dict[str, tuple[dict[str, str], str, dict[str, object]]] = {
    "css url()": ({"css": "body { background: url(notes.txt) }\n"}, "", {}),
    "css @import": ({"css": '@import "more.css";\nbody { margin: 0 }\n'}, "", {}),
    "non-ASCII css": ({"css": "body::before { content: 'é' }\n"}, "", {}),
    "script": ({"head": '<script src="{report}/tool.js"></script>'}, "", {}),
    "other link": ({"head": '<link rel="alternate" href="{report}/notes.txt">'}, "", {}),
    "webp figure": ({}, "\n\n![A WebP figure](figures/plot.webp)\n", {}),
    "quote in an attribute": ({}, "", {"keywords": ('Payer "Best" Health', "x"), "subject": "a \"b\" c='d'"}),
}


@pytest.mark.parametrize("name", FALLBACKS)
def test_what_is_not_reproduced_is_embedded_by_pandocs_command_line(tmp_path: Path, name: str) -> None:
    changes, markdown, meta = FALLBACKS[name]
    report = report_with(tmp_path, **changes)
    job, page = engine_page(tmp_path, markdown, report=report, **meta)
    assert embed_resources((job.workdir / HTML_PAGE_FILE).read_text(encoding="utf-8"), job.workdir) is None
    assert (job.workdir / HTML_AST_FILE).exists(), "the page went to Pandoc's command line"
    assert page == pandoc_embed_resources(job)
    assert b"<link" not in page or name == "other link"


def test_another_pandoc_version_embeds_with_its_own_command_line(tmp_path: Path, monkeypatch) -> None:
    """The module reproduces the Pandoc versions it was checked against; a newer Pandoc may embed differently."""
    monkeypatch.setattr(builtin, "pandoc_version", lambda: "99.1")
    job, page = engine_page(tmp_path, "")
    assert (job.workdir / HTML_AST_FILE).exists(), "the page went to Pandoc's command line"
    assert page == pandoc_embed_resources(job)


@pytest.mark.parametrize(
    "page",
    [
        "<p>&nbsp;</p>",  # an entity Pandoc's HTML writer does not write
        '<p><img src="https://example.com/x.png" alt="remote" /></p>',
        '<p><img src="figures/x.svg" class="inline-svg" alt="" /></p>',
        '<p><img src="x.png" data-external="1" /></p>',
        "<style>p { color: red }</style>",
        "<?xml version='1.0'?><p>x</p>",
        '<p><img src="missing.png" /></p>',
    ],
)
def test_pages_it_cannot_reproduce_are_refused(tmp_path: Path, page: str) -> None:
    assert embed_resources(page, tmp_path) is None


slow = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
markdownish = st.lists(
    st.sampled_from(list("#*_[]()!<>&\"'`$^~|:.-=+{}\\/ \n\tab1é\u00a0😀") + ["&amp;", "&#39;", "\r\n", "\n\n"]),
    min_size=1,
    max_size=200,
).map("".join)


@slow
@given(text=markdownish)
def test_any_markdown_gives_the_bytes_of_pandocs_own_embedding(tmp_path_factory, text: str) -> None:
    """Arbitrary Markdown in a section (read as Markdown: headings, links, images, entities, code...)."""
    tmp_path = tmp_path_factory.mktemp("any")
    job, page = engine_page(tmp_path, "\n\n" + text + "\n\n![x](figures/plot.png)\n")
    assert page == pandoc_embed_resources(job)
