"""``dist/index.html``: the catalogue of every edition in ``dist/``, made from ``dist/manifest.json``.

The page is one static file: styles and the filter/sort script are inline, it fetches nothing and works opened
from disk (``file://``) as well as from any static host. Its look is ``report/catalogue.html.j2`` (a Jinja2
template beside the edition templates), its language and publisher come from ``report/_quarto.yml``.

Guarantees:

* every text that comes from the manifest passes through :func:`cptpub.escape.html` before it reaches the page
  (the template only ever sees escaped values), and links point only at the edition's own published file names;
* the same manifest and template give byte-identical pages: no clock, no randomness, rows sorted by code;
* the page is written atomically (temporary file + rename), so a web server never serves half of it;
* a Content-Security-Policy with the hashes of the inline style and script: even injected markup could not run
  a script or load anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from cptpub import escape
from cptpub.assemble.base import DEMO_NOTICE, display_date, output_name
from cptpub.assemble.config import load_config
from cptpub.atomic import write_atomic
from cptpub.errors import CptpubError
from cptpub.project import CODE_PATTERN

CATALOGUE_NAME = "index.html"
TEMPLATE_NAME = "catalogue.html.j2"
FORMAT_LABELS = {"html": "HTML", "pdf": "PDF"}


def h(value: object) -> Markup:
    """Manifest text as safe HTML (escaped by the one escaping layer)."""
    return Markup(escape.html(value))


def csp_source(text: str) -> Markup:
    """The CSP source expression (``'sha256-...'``) that allows exactly this inline script or style."""
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return Markup(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")


def _date(value: object) -> dict[str, Markup] | None:
    """``{"iso": ..., "label": ...}`` for an ISO date; unparsable text is shown as it is (escaped)."""
    if value is None or value == "":
        return None
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        return {"iso": h(value), "label": h(value), "valid": Markup("")}
    return {"iso": h(day.isoformat()), "label": h(display_date(day)), "valid": Markup("1")}


def _edition_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    code = escape.clean(entry.get("code", ""))
    linkable = bool(CODE_PATTERN.fullmatch(code))
    title = escape.clean(entry.get("title") or "") or f"CPT {code}"
    # The table has a Code column: "CPT 20702: Intramedullary ..." is shown (and sorted) as "Intramedullary ...".
    short_title = title.removeprefix(f"CPT {code}: ") or title
    payers = [escape.clean(p) for p in (entry.get("payers") or []) if escape.clean(p)]
    raw_as_of = entry.get("data_as_of") or {}
    as_of_items = raw_as_of.items() if isinstance(raw_as_of, Mapping) else []
    as_of: list[dict[str, Any]] = []
    valid_as_of: list[str] = []
    for label, value in as_of_items:
        day = _date(value)
        if day:
            as_of.append({"label": h(label), "date": day})
            if day["valid"]:
                valid_as_of.append(str(day["iso"]))
    valid_as_of.sort()
    # Sources usually share dates (every payer's file of one month): one line per date, newest first.
    groups: dict[str, dict[str, Any]] = {}
    for item in as_of:
        group = groups.setdefault(str(item["date"]["iso"]), {"date": item["date"], "labels": []})
        group["labels"].append(item["label"])
    as_of_groups = sorted(
        groups.values(), key=lambda g: (bool(g["date"]["valid"]), str(g["date"]["iso"])), reverse=True
    )
    edition_date = _date(entry.get("edition_date"))

    raw_outputs = entry.get("outputs")
    outputs: Mapping[str, Any] = raw_outputs if isinstance(raw_outputs, Mapping) else {}
    links = []
    for fmt, label in FORMAT_LABELS.items():
        output = outputs.get(fmt)
        file = output.get("file") if isinstance(output, Mapping) else None
        # Only the edition's own published file name is ever linked: no manifest value becomes an arbitrary URL.
        if linkable and file == output_name(code, fmt):
            links.append({"format": h(fmt), "label": h(label), "href": h(file)})
    html_href = next((link["href"] for link in links if link["format"] == "html"), None)

    return {
        "code": h(code),
        "title": h(short_title),
        "full_title": h(title),
        "demo": entry.get("demo") is True,
        "payers": [h(p) for p in payers],
        "payer_count": len(payers),
        "data_as_of": as_of,
        "data_as_of_by_date": as_of_groups,
        "data_as_of_sort": h(valid_as_of[-1] if valid_as_of else ""),
        "edition_date": edition_date,
        "links": links,
        "html_href": html_href,
        "search": h(" ".join([code, title, *payers]).lower()),
    }


def catalogue_context(manifest: Mapping[str, Any], report_dir: Path) -> dict[str, Any]:
    """What the template is given: every value from the manifest already escaped."""
    config = load_config(report_dir)
    entries = manifest.get("editions") if isinstance(manifest, Mapping) else None
    if not isinstance(entries, list):
        entries = []
    rows = [_edition_row(entry) for entry in entries if isinstance(entry, Mapping)]
    rows.sort(key=lambda row: str(row["code"]))
    return {
        "lang": h(config.lang),
        "publisher": h(config.publisher),
        "generator": h(manifest.get("generator", "cptpub") if isinstance(manifest, Mapping) else "cptpub"),
        "editions": rows,
        "any_demo": any(row["demo"] for row in rows),
        "any_real": any(not row["demo"] for row in rows),
        "demo_notice": h(DEMO_NOTICE),
    }


def _environment(report_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(report_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["csp_source"] = csp_source
    return env


def render_catalogue(manifest: Mapping[str, Any], report_dir: Path) -> str:
    """The catalogue page's HTML for ``manifest``, using ``report_dir/catalogue.html.j2``."""
    path = report_dir / TEMPLATE_NAME
    context = catalogue_context(manifest, report_dir)
    try:
        template = _environment(report_dir).get_template(TEMPLATE_NAME)
        return template.render(context)
    except jinja2.TemplateNotFound:
        raise CptpubError(
            "catalogue template not found",
            where=path,
            hint="the report/ folder needs catalogue.html.j2 (copy it from the cptpub repository's report/)",
        ) from None
    except jinja2.TemplateSyntaxError as err:
        raise CptpubError(f"template syntax error: {err.message}", where=f"{path}:{err.lineno}") from None
    except jinja2.UndefinedError as err:
        raise CptpubError(f"template uses an unknown value: {err.message}", where=path) from None


def write_catalogue(dist_dir: Path, manifest: dict, *, report_dir: Path | None = None) -> Path:
    """Write ``dist_dir/index.html`` for ``manifest`` (atomically) and return its path.

    ``report_dir`` defaults to the project's ``report/`` folder, i.e. ``dist_dir``'s sibling.
    """
    dist_dir = Path(dist_dir)
    report_dir = Path(report_dir) if report_dir is not None else dist_dir.resolve().parent / "report"
    page = render_catalogue(manifest, report_dir)
    return write_atomic(dist_dir / CATALOGUE_NAME, page.encode("utf-8"))
