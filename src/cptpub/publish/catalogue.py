"""``dist/index.html``: the catalogue of every edition in ``dist/``, made from ``dist/manifest.json``.

The page is one static file: styles and the filter/sort script are inline, it fetches nothing and works opened
from disk (``file://``) as well as from any static host. Its look is ``report/catalogue.html.j2`` (a Jinja2
template beside the edition templates), its language and publisher come from ``report/_quarto.yml``.

Scale: the page arrives with its first 25 rows (in code order) drawn in its markup, the same rows its script would
draw, so they show before any script runs; the editions are embedded once as compact JSON (``<script
type="application/json">``, one array per edition; texts, dates, payer lists and source lists written once, see
:class:`_PageData`), from which the script adds the rest of the first page of 100 rows after the first frame,
then filters, sorts and draws one page of rows at a time. The data and the script come before the long
no-JavaScript list, so the page works before the browser has read that list. 10,000 editions make a 2.3 MB page;
``bench/catalogue_page.py`` times it in Chromium (first rows, first page, filter ready, a filter keystroke; target
< 200 ms each). Without JavaScript the table shows the first 25 editions and a plain list the others, each with
its files. The page records a digest of what it was made from (manifest, template, report settings, this
module); :func:`write_catalogue` does not rewrite a page that is already current, so a no-op build of a large
catalogue does not spend a second re-rendering it.

Filters besides the words typed: when the catalogue holds both demo and real editions, a "Show" choice (or
``?kind=demo|real`` in the address) filters by kind; editions whose last build changed materially (the manifest
entry's ``changes.material``) are marked "Updated" with the change summary, and a checkbox (or ``?updated=1``)
filters to them. The page's head links ``feed.xml``, the Atom feed of those editions.

Guarantees:

* every text that comes from the manifest passes through :func:`cptpub.escape.html` before it reaches the page's
  markup (the template only ever sees escaped values, the rows it draws included); in the embedded JSON it is
  cleaned text with ``<``, ``>`` and ``&`` written as ``\\u`` escapes, and the script puts it into the page only as
  text nodes, never as markup; links point only at the edition's own published file names;
* the same manifest and template give byte-identical pages: no clock, no randomness, rows sorted by code;
* the page is written atomically (temporary file + rename), so a web server never serves half of it;
* a Content-Security-Policy with the hashes of the inline style and script: even injected markup could not run
  a script or load anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html as _html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from cptpub import __version__, escape
from cptpub.assemble.base import DEMO_NOTICE
from cptpub.assemble.config import CONFIG_NAME, load_config
from cptpub.atomic import write_atomic
from cptpub.dates import display_date
from cptpub.errors import CptpubError
from cptpub.project import CODE_PATTERN, output_name

if TYPE_CHECKING:
    import jinja2

CATALOGUE_NAME = "index.html"
TEMPLATE_NAME = "catalogue.html.j2"
FORMAT_LABELS = {"html": "HTML", "pdf": "PDF"}
PAGE_SIZE = 100  # rows in one page of the table
# The page arrives with this many rows drawn (more than a screen holds); its script adds the rest of the first
# page once they are painted. Laying out all 100 rich rows before the first paint took as long as the rest.
ROWS_IN_MARKUP = 25
INPUTS_META = "cptpub-catalogue-inputs"  # <meta name=... content=digest>: what the page was made from
_INPUTS_PATTERN = re.compile(rb'<meta name="' + INPUTS_META.encode() + rb'" content="([0-9a-f]{64})">')
_HEAD_BYTES = 4096  # the digest is looked for in the page's first bytes
# JSON inside <script>: no character of the data may end the element or open a comment.
_SCRIPT_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def h(value: object) -> Markup:
    """Manifest text as safe HTML (escaped by the one escaping layer)."""
    return Markup(escape.html(value))


def script_json(data: object) -> Markup:
    """``data`` as JSON that is safe inside a ``<script type="application/json">`` element."""
    return Markup(json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_SCRIPT_ESCAPES))


def csp_source(text: str) -> Markup:
    """The CSP source expression (``'sha256-...'``) that allows exactly this inline script or style."""
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return Markup(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")


class _Rows:
    """Makes the edition rows of one page.

    A catalogue of 10,000 editions repeats the same payer names, source labels and dates in every row: each
    distinct text is cleaned and escaped once, each distinct date and ``data_as_of`` once, and rows share those
    values (nothing mutates a row once made).
    """

    def __init__(self) -> None:
        self._clean: dict[str, str] = {}
        self._dates: dict[str, dict[str, Any]] = {}
        self._as_of: dict[tuple[tuple[str, str], ...], tuple[list, list, str]] = {}
        self._escaped: dict[int, Any] = {}  # id of a (shared) value -> its escaped copy

    def clean(self, value: object) -> str:
        text = str(value)
        cleaned = self._clean.get(text)
        if cleaned is None:
            cleaned = self._clean[text] = escape.clean(text)
        return cleaned

    def date(self, value: object) -> dict[str, Any] | None:
        """``{"iso": ..., "label": ..., "valid": ...}`` for an ISO date; unparsable text is shown as it is."""
        if value is None or value == "":
            return None
        key = str(value)
        if key not in self._dates:
            try:
                day = dt.date.fromisoformat(key)
            except ValueError:
                text = self.clean(key)
                self._dates[key] = {"iso": text, "label": text, "valid": False}
            else:
                self._dates[key] = {"iso": day.isoformat(), "label": display_date(day), "valid": True}
        return self._dates[key]

    def as_of(self, raw: object) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        """``data_as_of`` as a list, grouped by date (newest first), and its newest valid date."""
        items = tuple((str(k), str(v)) for k, v in raw.items() if v is not None) if isinstance(raw, Mapping) else ()
        if items in self._as_of:
            return self._as_of[items]
        as_of: list[dict[str, Any]] = []
        for label, value in items:
            day = self.date(value)
            if day:
                as_of.append({"label": self.clean(label), "date": day})
        valid = sorted(item["date"]["iso"] for item in as_of if item["date"]["valid"])
        # Sources usually share dates (every payer's file of one month): one line per date, newest first.
        groups: dict[str, dict[str, Any]] = {}
        for item in as_of:
            group = groups.setdefault(item["date"]["iso"], {"date": item["date"], "labels": []})
            group["labels"].append(item["label"])
        by_date = sorted(groups.values(), key=lambda g: (g["date"]["valid"], g["date"]["iso"]), reverse=True)
        made = self._as_of[items] = (as_of, by_date, valid[-1] if valid else "")
        return made

    def edition(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """One edition as plain, cleaned text (what the page's script renders; escaped for the template)."""
        code = self.clean(entry.get("code", ""))
        linkable = bool(CODE_PATTERN.fullmatch(code))
        title = self.clean(entry.get("title") or "") or f"CPT {code}"
        # The table has a Code column: "CPT 20702: Intramedullary ..." is shown (and sorted) as "Intramedullary ...".
        short_title = title.removeprefix(f"CPT {code}: ") or title
        raw_payers = entry.get("payers")
        payers = [p for p in (self.clean(p) for p in raw_payers) if p] if isinstance(raw_payers, list) else []
        as_of, as_of_groups, as_of_sort = self.as_of(entry.get("data_as_of"))

        raw_outputs = entry.get("outputs")
        outputs: Mapping[str, Any] = raw_outputs if isinstance(raw_outputs, Mapping) else {}
        links = []
        for fmt, label in FORMAT_LABELS.items():
            output = outputs.get(fmt)
            file = output.get("file") if isinstance(output, Mapping) else None
            # Only the edition's own published file name is ever linked: no manifest value becomes an arbitrary URL.
            if linkable and file == output_name(code, fmt):
                links.append({"format": fmt, "label": label, "href": file})
        raw_changes = entry.get("changes")
        changes: Mapping[str, Any] = raw_changes if isinstance(raw_changes, Mapping) else {}
        updated = changes.get("material") is True
        raw_summary = changes.get("summary") if updated else None
        summary = [escape.clean(line) for line in raw_summary] if isinstance(raw_summary, list) else []

        return {
            "code": code,
            "title": short_title,
            "full_title": title,
            "demo": entry.get("demo") is True,
            "payers": payers,
            "data_as_of": as_of,
            "data_as_of_by_date": as_of_groups,
            "data_as_of_sort": as_of_sort,
            "edition_date": self.date(entry.get("edition_date")),
            "links": links,
            "updated": updated,
            "changes_since": self.date(changes.get("since")) if updated else None,
            "changes_summary": [line for line in summary if line],
        }

    def escaped(self, value: Any) -> Any:
        """A plain row (or part of one) with every text escaped for the template (numbers and flags kept).

        The texts are already cleaned, so this is ``escape.html`` without cleaning again.
        """
        if isinstance(value, str):
            return Markup(_html.escape(value, quote=True))
        if not isinstance(value, dict | list):
            return value
        known = self._escaped.get(id(value))
        if known is not None:
            return known[1]
        made = (
            {key: self.escaped(item) for key, item in value.items()}
            if isinstance(value, dict)
            else [self.escaped(item) for item in value]
        )
        self._escaped[id(value)] = (value, made)  # the value is kept, so its id is not reused while this lives
        return made

    def template_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as the template sees it: escaped, with the values derived for it."""
        escaped: dict[str, Any] = {key: self.escaped(value) for key, value in row.items()}
        escaped["payer_count"] = len(row["payers"])
        escaped["html_href"] = next((link["href"] for link in escaped["links"] if link["format"] == "html"), None)
        escaped["search"] = h(" ".join([row["code"], row["full_title"], *row["payers"]]).lower())
        return escaped


class _PageData:
    """The JSON the page's script renders, compact since a catalogue may hold 10,000 editions.

    Payer names, source labels and dates repeat across editions, and so do whole payer lists and ``data_as_of``
    lists: each is written once and named by its index. ``{"strings": [text], "dates": [{"iso", "label"}, or
    {"label"} for text that is not a date], "format_labels": {format: label}, "payer_lists": [[string index]],
    "as_of_lists": [[[date index, [string index]], ...] (newest date first)], "editions": [row]}``, a row being an
    array ``[code, title, flags, payer list index, as-of list index, edition date index or null]`` plus, only when
    needed, a seventh item ``{"full_title": ... (when it is not "CPT <code>: <title>"), "changes": {"since": date
    index or null, "summary": [line]} (an edition updated materially since its previous edition)}``. ``flags``:
    1 = demo, then one bit per format of ``format_labels`` in order (2, 4, ...) when its file is published (the
    edition's own ``cpt-<code>.<format>``, the only name the page links).
    """

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self.dates: dict[tuple[str, str, bool], int] = {}
        self.payer_lists: dict[tuple[int, ...], int] = {}
        self.as_of_lists: dict[tuple[tuple[int | None, tuple[int, ...]], ...], int] = {}

    def string(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings))

    def date(self, day: dict[str, Any] | None) -> int | None:
        if day is None:
            return None
        return self.dates.setdefault((day["iso"], day["label"], day["valid"]), len(self.dates))

    def edition(self, row: dict[str, Any]) -> list[Any]:
        payers = tuple(self.string(payer) for payer in row["payers"])
        as_of = tuple(
            (self.date(group["date"]), tuple(self.string(label) for label in group["labels"]))
            for group in row["data_as_of_by_date"]
        )
        formats = {link["format"] for link in row["links"]}
        flags = int(row["demo"]) | sum(2 << i for i, fmt in enumerate(FORMAT_LABELS) if fmt in formats)
        page_row: list[Any] = [
            row["code"],
            row["title"],
            flags,
            self.payer_lists.setdefault(payers, len(self.payer_lists)),
            self.as_of_lists.setdefault(as_of, len(self.as_of_lists)),
            self.date(row["edition_date"]),
        ]
        extra: dict[str, Any] = {}
        if row["full_title"] != f"CPT {row['code']}: {row['title']}":
            extra["full_title"] = row["full_title"]
        if row["updated"]:
            extra["changes"] = {"since": self.date(row["changes_since"]), "summary": row["changes_summary"]}
        if extra:
            page_row.append(extra)
        return page_row

    def document(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        editions = [self.edition(row) for row in rows]
        return {
            "strings": list(self.strings),
            "dates": [{"iso": iso, "label": label} if valid else {"label": label} for iso, label, valid in self.dates],
            "format_labels": FORMAT_LABELS,
            "payer_lists": [list(payers) for payers in self.payer_lists],
            "as_of_lists": [[[day, list(labels)] for day, labels in as_of] for as_of in self.as_of_lists],
            "editions": editions,
        }


def catalogue_context(manifest: Mapping[str, Any], report_dir: Path) -> dict[str, Any]:
    """What the template is given: every value from the manifest already escaped (or safe JSON)."""
    config = load_config(report_dir)
    entries = manifest.get("editions") if isinstance(manifest, Mapping) else None
    if not isinstance(entries, list):
        entries = []
    maker = _Rows()
    rows = [maker.edition(entry) for entry in entries if isinstance(entry, Mapping)]
    rows.sort(key=lambda row: row["code"])
    return {
        "lang": h(config.lang),
        "publisher": h(config.publisher),
        "generator": h(manifest.get("generator", "cptpub") if isinstance(manifest, Mapping) else "cptpub"),
        "editions": [maker.template_row(row) for row in rows],
        "editions_json": script_json(_PageData().document(rows)),
        "page_size": PAGE_SIZE,
        "rows_in_markup": ROWS_IN_MARKUP,
        "any_demo": any(row["demo"] for row in rows),
        "any_real": any(not row["demo"] for row in rows),
        "any_updated": any(row["updated"] for row in rows),
        "demo_notice": h(DEMO_NOTICE),
        "inputs_digest": Markup(inputs_digest(manifest, report_dir)),
    }


def _in_code_order(manifest: Mapping[str, Any]) -> object:
    """The manifest with its editions in code order (the page lists them so: the order they come in is no input)."""
    if not isinstance(manifest, Mapping) or not isinstance(manifest.get("editions"), list):
        return manifest
    editions = manifest["editions"]
    return {
        **manifest,
        "editions": sorted(editions, key=lambda e: str(e.get("code")) if isinstance(e, Mapping) else ""),
    }


def inputs_digest(manifest: Mapping[str, Any], report_dir: Path) -> str:
    """SHA-256 of what the page is made from: the manifest, the template, the report settings, this code."""
    digest = hashlib.sha256()
    parts = [
        __version__.encode(),
        Path(__file__).read_bytes(),
        Path(escape.__file__).read_bytes(),
        json.dumps(_in_code_order(manifest), default=str).encode(),
    ]
    for name in (TEMPLATE_NAME, CONFIG_NAME):
        try:
            parts.append((report_dir / name).read_bytes())
        except OSError:
            parts.append(b"")
    for part in parts:
        digest.update(f"{len(part)}\0".encode())
        digest.update(part)
    return digest.hexdigest()


def _environment(report_dir: Path) -> jinja2.Environment:
    import jinja2  # not on the path of a no-op build, which finds the page current

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
    import jinja2

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
    path = dist_dir / CATALOGUE_NAME
    if _recorded_digest(path) == inputs_digest(manifest, report_dir):
        return path  # already the page of this manifest and template
    page = render_catalogue(manifest, report_dir)
    return write_atomic(path, page.encode("utf-8"))


def _recorded_digest(page: Path) -> str | None:
    try:
        with page.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return None
    match = _INPUTS_PATTERN.search(head)
    return match[1].decode() if match else None
