"""The catalogue page dist/index.html: content, escaping, accessibility, reproducibility and atomic writes."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cptpub import escape
from cptpub.dates import display_date
from cptpub.errors import CptpubError
from cptpub.publish import catalogue
from cptpub.publish.catalogue import render_catalogue, write_catalogue
from tests.conftest import REPO, copy_project

REPORT_DIR = REPO / "report"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes" \'single\''


def edition(code: str, title: str, *, demo: bool = True, payers=None, pdf: bool = True, **extra) -> dict:
    outputs = {"html": {"file": f"cpt-{code}.html", "sha256": "0" * 64}}
    if pdf:
        outputs["pdf"] = {"file": f"cpt-{code}.pdf", "sha256": "1" * 64}
    return {
        "code": code,
        "title": f"CPT {code}: {title}",
        "key": "k" * 64,
        "edition_date": "2026-10-15",
        "data_as_of": {"Aetna rates": "2026-10-01", "Medicare fee schedule": "2026-01-01"},
        "payers": ["Aetna", "Blue Cross Blue Shield", "Cigna Health", "UnitedHealthcare", "Medicare"]
        if payers is None
        else payers,
        "demo": demo,
        "engine": "builtin (pandoc 3.9, typst 0.15.2)",
        "outputs": outputs,
        "build_seconds": 4.2,
        **extra,
    }


MANIFEST = {
    "generator": "cptpub 0.1.0",
    "editions": [
        edition("20705", "Intra-articular Drug Delivery Device Removal", payers=["Aetna", "Medicare"]),
        edition("20702", "Intramedullary Drug Delivery Device Preparation and Insertion"),
        edition("J1234", "Real-data Injection", demo=False, pdf=False, payers=[], data_as_of={}),
    ],
}


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[dict] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._raw: str | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self._in_fallback = False
        self.fallback: list[list[dict[str, str | None]]] = []  # the <noscript> list: each edition's links
        self.fallback_badges: list[int] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in ("script", "style"):
            self._raw = tag
            getattr(self, tag + "s").append("")
        if tag == "noscript":
            self._in_fallback = True
        if self._in_fallback and tag == "li":
            self.fallback.append([])
            self.fallback_badges.append(0)
        if self._in_fallback and tag == "a" and self.fallback:
            self.fallback[-1].append(attributes)
        if self._in_fallback and "badge-demo" in (attributes.get("class") or "") and self.fallback_badges:
            self.fallback_badges[-1] += 1
        if tag == "tr" and "data-code" in attributes:
            self._row = {"attrs": attributes, "cells": [], "links": [], "badges": 0}
        if self._row is not None and tag in ("th", "td"):
            self._cell = []
        if self._row is not None and tag == "a":
            self._row["links"].append(attributes.get("href"))
        if self._row is not None and "badge-demo" in (attributes.get("class") or ""):
            self._row["badges"] += 1

    def handle_endtag(self, tag):
        if tag == "noscript":
            self._in_fallback = False
        if tag in ("script", "style"):
            self._raw = None
        if self._row is not None and tag in ("th", "td") and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._raw:
            getattr(self, self._raw + "s")[-1] += data
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def entries(self) -> list[dict]:
        """The editions the page's script renders, expanded from the embedded JSON as the script does."""
        (data,) = [i for i, (tag, a) in enumerate(self.all_scripts()) if a.get("id") == "editions-data"]
        return expand(json.loads(self.scripts[data]))

    def all_scripts(self) -> list[tuple[str, dict[str, str | None]]]:
        return [(name, attrs) for name, attrs in self.tags if name == "script"]

    @property
    def page_script(self) -> str:
        (script,) = [self.scripts[i] for i, (_, a) in enumerate(self.all_scripts()) if "type" not in a]
        return script

    def fallback_links(self) -> list[list[str | None]]:
        """Per edition, the links of the no-JavaScript list (title, then the other formats)."""
        return [[a.get("href") for a in item] for item in self.fallback]


def expand(document: dict) -> list[dict]:
    """The compact rows of the page's JSON as plain editions (see catalogue._PageData)."""
    strings, dates, formats = document["strings"], document["dates"], list(document["format_labels"])
    editions = []
    for code, title, flags, payers, as_of, edition_date, *extra in document["editions"]:
        more = extra[0] if extra else {}
        editions.append(
            {
                "code": code,
                "title": title,
                "full_title": more.get("full_title", f"CPT {code}: {title}"),
                "demo": bool(flags & 1),
                "payers": [strings[i] for i in document["payer_lists"][payers]],
                "data_as_of": [
                    (dates[d], [strings[i] for i in labels]) for d, labels in document["as_of_lists"][as_of]
                ],
                "edition_date": None if edition_date is None else dates[edition_date],
                "files": [fmt for bit, fmt in enumerate(formats) if flags & (2 << bit)],
                "changes": more.get("changes"),
            }
        )
    return editions


@pytest.fixture
def page_text() -> str:
    return render_catalogue(MANIFEST, REPORT_DIR)


@pytest.fixture
def page(page_text: str) -> Page:
    return Page(page_text)


def date(iso: str) -> dict:
    return {"iso": iso, "label": display_date(dt.date.fromisoformat(iso))}


def test_every_edition_is_listed_with_its_details_and_links(page: Page) -> None:
    entries = page.entries
    assert [e["code"] for e in entries] == ["20702", "20705", "J1234"], "sorted by code"
    first = entries[0]
    assert first["title"] == "Intramedullary Drug Delivery Device Preparation and Insertion"
    assert first["full_title"] == "CPT 20702: Intramedullary Drug Delivery Device Preparation and Insertion"
    assert first["payers"] == ["Aetna", "Blue Cross Blue Shield", "Cigna Health", "UnitedHealthcare", "Medicare"]
    assert first["data_as_of"] == [
        (date("2026-10-01"), ["Aetna rates"]),
        (date("2026-01-01"), ["Medicare fee schedule"]),
    ], "one line per date, newest first"
    assert first["edition_date"] == {"iso": "2026-10-15", "label": "October 15, 2026"}
    assert first["files"] == ["html", "pdf"]
    no_pdf = entries[2]
    assert no_pdf["files"] == ["html"], "no PDF built, no PDF link"
    assert no_pdf["payers"] == [] and no_pdf["data_as_of"] == []
    # The page arrives with the rows drawn (shown before the script runs, and without JavaScript).
    rows = page.rows
    assert [row["attrs"]["data-code"] for row in rows] == ["20702", "20705", "J1234"]
    assert [row["attrs"]["data-kind"] for row in rows] == ["demo", "demo", "real"]
    assert rows[0]["cells"] == [
        "20702",
        "Intramedullary Drug Delivery Device Preparation and Insertion DEMO",
        "Aetna, Blue Cross Blue Shield, Cigna Health, UnitedHealthcare, Medicare",
        "October 1, 2026Aetna ratesJanuary 1, 2026Medicare fee schedule",  # block-level spans on screen
        "October 15, 2026",
        "HTML edition of 20702PDF edition of 20702",  # list items
    ]
    assert rows[2]["cells"][2:] == ["No payer data", "Not available", "October 15, 2026", "HTML edition of J1234"]
    assert [row["links"] for row in rows] == [
        ["cpt-20702.html", "cpt-20702.html", "cpt-20702.pdf"],
        ["cpt-20705.html", "cpt-20705.html", "cpt-20705.pdf"],
        ["cpt-J1234.html", "cpt-J1234.html"],
    ], "the title links the web page, then each file"
    assert page.fallback == [], "every edition is in the table: no list for readers without JavaScript"


def test_the_page_arrives_with_its_first_rows_and_lists_the_others_without_javascript() -> None:
    editions = [edition(f"Z{i:04d}", f"Title {i}", demo=i % 2 == 0, pdf=i != 150) for i in range(1, 251)]
    page = Page(render_catalogue({"editions": list(reversed(editions))}, REPORT_DIR))
    assert [row["attrs"]["data-code"] for row in page.rows] == [f"Z{i:04d}" for i in range(1, 26)]
    assert len(page.entries) == 250, "the script has them all"
    links = page.fallback_links()  # without JavaScript: the others in a plain list, each with its files
    assert len(links) == 225 and links[0] == ["cpt-Z0026.html", "cpt-Z0026.pdf"]
    assert links[124] == ["cpt-Z0150.html"], "no PDF built, no PDF link"
    assert page.fallback_badges[:2] == [1, 0], "demo editions are marked DEMO"


def test_demo_editions_are_visibly_marked(page: Page, page_text: str) -> None:
    assert [e["demo"] for e in page.entries] == [True, True, False]
    assert [row["badges"] for row in page.rows] == [1, 1, 0]
    assert "createElement" in page.page_script and '"badge-demo"' in page.page_script
    assert "DEMO DATA — synthetic figures, not real prices" in page_text
    real_only = render_catalogue({"generator": "cptpub", "editions": [MANIFEST["editions"][2]]}, REPORT_DIR)
    assert "DEMO" not in real_only.replace(Page(real_only).page_script, ""), "no demo note or badge"


def test_rows_say_their_kind_and_a_mixed_catalogue_offers_the_show_choice(page: Page) -> None:
    kinds = {e["code"]: "demo" if e["demo"] else "real" for e in page.entries}
    assert kinds == {"20702": "demo", "20705": "demo", "J1234": "real"}
    # the script's rows say it (checked in Chromium by test_browser.py::test_catalogue_shows_only_demo_or_...)
    assert '"data-kind": entry.demo ? "demo" : "real"' in page.page_script
    radios = [a for a in page.all("input") if a.get("name") == "kind"]
    assert [(a["value"], "checked" in a) for a in radios] == [("all", True), ("real", False), ("demo", False)]
    for only_one_kind in (MANIFEST["editions"][:2], MANIFEST["editions"][2:]):
        single = Page(render_catalogue({**MANIFEST, "editions": only_one_kind}, REPORT_DIR))
        assert not [a for a in single.all("input") if a.get("name") == "kind"], "nothing to choose between"


def test_manifest_text_is_escaped_and_never_becomes_markup_or_a_link() -> None:
    hostile = edition("20702", HOSTILE, payers=[HOSTILE], data_as_of={HOSTILE: "2026-01-01", "Bad": HOSTILE})
    hostile["outputs"]["pdf"]["file"] = "javascript:alert(1)"
    other = edition("20703", "Other")
    other["outputs"]["html"]["file"] = "https://evil.example/x.html"
    manifest = {"generator": HOSTILE, "editions": [hostile, other, {"code": '"><script>', "title": HOSTILE}]}
    text = render_catalogue(manifest, REPORT_DIR)
    page = Page(text)
    scripts = [attrs for _, attrs in page.all_scripts()]
    assert scripts == [{"type": "application/json", "id": "editions-data"}, {}], "the data, and the page's script"
    assert not page.all("img")
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
    hrefs = {a.get("href") for a in page.all("a")} | {link.get("href") for link in page.all("link")}
    assert hrefs == {"cpt-20702.html", "cpt-20703.pdf", "data:,", "feed.xml"}, "only the site's own files are linked"
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert HOSTILE not in text
    assert "<script>alert" not in text and "javascript:" not in text and "evil.example" not in text
    # The data keeps the text as text (the script inserts it as text nodes, never as markup).
    entries = {e["code"]: e for e in page.entries}
    assert entries["20702"]["title"] == escape.clean(HOSTILE) and entries["20702"]["payers"] == [escape.clean(HOSTILE)]
    assert entries["20702"]["files"] == ["html"] and entries["20703"]["files"] == ["pdf"]
    rows = {row["attrs"]["data-code"]: row for row in page.rows}
    assert rows["20702"]["cells"][1] == escape.clean(HOSTILE) + " DEMO", "the drawn rows show the text as text"
    assert rows["20702"]["cells"][2] == escape.clean(HOSTILE)
    assert "innerHTML" not in page.page_script and "insertAdjacentHTML" not in page.page_script


def test_page_is_accessible(page: Page, page_text: str) -> None:
    assert page.all("html") == [{"lang": "en"}]
    assert any(m.get("name") == "viewport" for m in page.all("meta"))
    assert len(page.all("h1")) == 1 and page.all("caption")
    column_headers = [th for th in page.all("th") if th.get("scope") == "col"]
    row_headers = [th for th in page.all("th") if th.get("scope") == "row"]
    assert len(column_headers) == 6 and len(row_headers) == 3, "every header cell has a scope"
    assert len(page.all("th")) == 9
    assert 'element("th", { scope: "row" }' in page.page_script, "the script's rows have a row header"
    assert [th.get("aria-sort") for th in column_headers] == ["ascending", None, None, None, None, None]
    assert all(b.get("type") == "button" for b in page.all("button")) and len(page.all("button")) == 7
    (pager,) = page.all("nav")
    assert pager.get("aria-label") == "Pages of editions"
    label = page.all("label")[0]
    search = page.all("input")[0]
    assert label["for"] == search["id"] == "filter" and search["type"] == "search"
    # the demo/real choice: radio buttons inside their labels, grouped under a legend
    assert [a.get("type") for a in page.all("input")[1:]] == ["radio"] * 3 and len(page.all("label")) == 4
    assert page.all("fieldset") and page.all("legend")
    assert any(p.get("role") == "status" and p.get("aria-live") == "polite" for p in page.all("p"))
    region = next(d for d in page.all("div") if d.get("class") == "table-scroll")
    assert region.get("role") == "region" and region.get("tabindex") == "0" and region.get("aria-labelledby")


def contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_palette_meets_wcag_aa_contrast(page: Page) -> None:
    css = page.styles[0]
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css))
    white = "#ffffff"
    pairs = {
        "text": (colours["ink"], white),
        "muted text": (colours["muted"], white),
        "muted on stripe": (colours["muted"], colours["stripe"]),
        "links": (colours["accent"], white),
        "links on stripe": (colours["accent"], colours["stripe"]),
        "header text": (colours["ink"], colours["header-bg"]),
        "demo badge": (colours["demo-ink"], colours["demo-bg"]),
        "updated badge": (colours["accent"], colours["header-bg"]),
    }
    for name, (fg, bg) in pairs.items():
        assert contrast(fg, bg) >= 4.5, name


def test_content_security_policy_allows_exactly_the_inline_style_and_script(page: Page) -> None:
    (meta,) = [m for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    policy = dict(part.strip().split(" ", 1) for part in (meta["content"] or "").split(";"))

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == sha(page.page_script)
    assert policy["style-src"] == sha(page.styles[0])


def test_page_is_self_contained(page: Page, page_text: str) -> None:
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"(https?:)?//", value), (tag, value)
    assert "@import" not in page_text and "url(" not in page_text and "@font-face" not in page_text


def test_same_manifest_gives_byte_identical_pages(tmp_path: Path) -> None:
    first = write_catalogue(tmp_path / "a" / "dist", MANIFEST, report_dir=REPORT_DIR)
    shuffled = copy.deepcopy(MANIFEST)
    shuffled["editions"].reverse()
    second = write_catalogue(tmp_path / "b" / "dist", shuffled, report_dir=REPORT_DIR)
    assert first.name == "index.html"
    assert first.read_bytes() == second.read_bytes()
    today = dt.date.today()
    text = first.read_text(encoding="utf-8")
    assert today.isoformat() not in text and display_date(today) not in text, "no clock involved"


def test_default_template_is_the_projects_report_folder(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / "report" / "catalogue.html.j2").write_text(
        "{% for e in editions %}{{ e.code }}|{{ e.title }}\n{% endfor %}", encoding="utf-8"
    )
    path = write_catalogue(project / "dist", {"editions": [edition("20702", "A <b>")]})
    assert path == project / "dist" / "index.html"
    assert path.read_text(encoding="utf-8") == "20702|A &lt;b&gt;\n"


def test_written_atomically_without_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("old page")
    write_catalogue(dist, MANIFEST, report_dir=REPORT_DIR)
    assert sorted(p.name for p in dist.iterdir()) == ["index.html"]
    good = (dist / "index.html").read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises((OSError, CptpubError), match="disk full"):
        write_catalogue(dist, {"editions": []}, report_dir=REPORT_DIR)
    assert sorted(p.name for p in dist.iterdir()) == ["index.html"], "no temporary file left behind"
    assert (dist / "index.html").read_bytes() == good, "the old page stays whole"


def test_empty_catalogue(tmp_path: Path) -> None:
    page = Page(render_catalogue({"generator": "cptpub 0.1.0", "editions": []}, REPORT_DIR))
    assert not page.all("table") and not page.all("script") and not page.all("input")
    assert "No editions have been built yet" in render_catalogue({}, REPORT_DIR)


def test_template_problems_name_the_file(tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "_quarto.yml").write_text((REPORT_DIR / "_quarto.yml").read_text())
    for name in ("template.html", "publication.typ", "styles.css"):
        (report / name).write_text("")
    with pytest.raises(CptpubError, match="catalogue template not found") as missing:
        render_catalogue(MANIFEST, report)
    assert missing.value.where == str(report / catalogue.TEMPLATE_NAME)
    (report / catalogue.TEMPLATE_NAME).write_text("line one\n{% for e in editions %}\n")
    with pytest.raises(CptpubError, match="template syntax error") as broken:
        render_catalogue(MANIFEST, report)
    assert broken.value.where == f"{report / catalogue.TEMPLATE_NAME}:2"


# --- the real thing: the demo built by `cptpub build` -------------------------------------------------------


def test_build_writes_the_catalogue_from_its_manifest(built_demo: Path) -> None:
    dist = built_demo / "dist"
    manifest = json.loads((dist / "manifest.json").read_text(encoding="utf-8"))
    index = (dist / "index.html").read_text(encoding="utf-8")
    assert index == render_catalogue(manifest, built_demo / "report"), "index.html is the manifest's page"
    page = Page(index)
    assert [e["code"] for e in page.entries] == ["20702", "20705"]
    for entry, row in zip(page.entries, page.rows, strict=True):
        code = entry["code"]
        assert entry["demo"] and row["badges"] == 1, "the demo is marked DEMO"
        assert entry["files"] == ["html", "pdf"] and row["links"][1:] == [f"cpt-{code}.html", f"cpt-{code}.pdf"]
        for href in row["links"]:
            assert (dist / str(href)).is_file(), href


def test_a_current_page_is_not_rewritten(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(REPORT_DIR, report)
    dist = tmp_path / "dist"
    page = write_catalogue(dist, MANIFEST, report_dir=report)
    first = page.stat()
    assert write_catalogue(dist, copy.deepcopy(MANIFEST), report_dir=report).stat().st_ino == first.st_ino
    assert page.stat().st_mtime_ns == first.st_mtime_ns, "same manifest and template: the page is left alone"

    changed = copy.deepcopy(MANIFEST)
    changed["editions"][0]["title"] = "CPT 20705: Renamed"
    write_catalogue(dist, changed, report_dir=report)
    assert "Renamed" in page.read_text(encoding="utf-8"), "a changed manifest rewrites the page"

    template = report / catalogue.TEMPLATE_NAME
    template.write_text(template.read_text(encoding="utf-8").replace("Publications by code", "All editions"))
    write_catalogue(dist, changed, report_dir=report)
    assert "All editions" in page.read_text(encoding="utf-8"), "a changed template rewrites the page"
    assert page.read_text(encoding="utf-8") == render_catalogue(changed, report)


@pytest.mark.parametrize("code", ["20702", "20705"])
def test_each_edition_links_back_to_the_catalogue_and_its_pdf(built_demo: Path, code: str) -> None:
    hrefs = {a.get("href") for a in Page((built_demo / "dist" / f"cpt-{code}.html").read_text("utf-8")).all("a")}
    assert "index.html" in hrefs and f"cpt-{code}.pdf" in hrefs


def test_data_as_of_is_grouped_by_date_newest_first() -> None:
    as_of = {"Medicare fee schedule": "2026-01-01", "A rates": "2026-10-01", "Odd": "soon", "B rates": "2026-10-01"}
    page = Page(render_catalogue({"editions": [edition("20702", "T", data_as_of=as_of)]}, REPORT_DIR))
    (entry,) = page.entries
    assert entry["data_as_of"] == [
        (date("2026-10-01"), ["A rates", "B rates"]),
        (date("2026-01-01"), ["Medicare fee schedule"]),
        ({"label": "soon"}, ["Odd"]),
    ], "dates newest first, then text that is not a date (the script sorts the column by the first date)"
