"""``dist/feed.xml``: an Atom feed (RFC 4287) of the updated editions, for subscribers.

One entry per edition whose manifest entry has material ``changes`` (:mod:`cptpub.analysis.changes`): its title,
a link to its HTML page, the edition date as ``updated`` and the change summary. An edition that changed nothing
material has no entry. Dates come from the data (edition dates), never the clock, and entry ids are derived from
code, edition date and the previous edition's date, so the same manifest always gives the same bytes. The feed's
``updated`` is the newest entry's (the newest edition's when there is no entry; 1970-01-01 in an empty ``dist/``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from cptpub import escape
from cptpub.atomic import write_atomic
from cptpub.dates import display_date
from cptpub.project import CODE_PATTERN, output_name

FEED_NAME = "feed.xml"
ATOM_NS = "http://www.w3.org/2005/Atom"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/cptpub/cptpub#editions")
_EPOCH = "1970-01-01"


def _timestamp(day: object) -> str:
    text = str(day or _EPOCH)
    return f"{text}T00:00:00Z" if len(text) == 10 else f"{_EPOCH}T00:00:00Z"


def _display(day: object) -> str:
    try:
        return display_date(dt.date.fromisoformat(str(day)))
    except ValueError:
        return str(day)


def updated_editions(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The manifest entries with material changes, newest edition first, then by code."""
    entries = [
        e
        for e in manifest.get("editions") or []
        if isinstance(e, Mapping)
        and isinstance(e.get("changes"), Mapping)
        and e["changes"].get("material")
        and CODE_PATTERN.fullmatch(str(e.get("code", "")))
    ]
    entries.sort(key=lambda e: str(e.get("code")))
    return sorted(entries, key=lambda e: str(e.get("edition_date") or ""), reverse=True)


def render_feed(manifest: Mapping[str, Any], title: str = "Updated editions", author: str = "cptpub") -> bytes:
    """The feed's bytes for ``manifest``."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = escape.clean(text)
        return element

    entries = updated_editions(manifest)
    all_dates = [str(e.get("edition_date")) for e in manifest.get("editions") or [] if isinstance(e, Mapping)]
    newest = str(entries[0].get("edition_date")) if entries else max([d for d in all_dates if d], default=_EPOCH)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", _ID_NAMESPACE.urn)
    sub(feed, "title", title)
    sub(feed, "updated", _timestamp(newest))
    author_element = sub(feed, "author")
    sub(author_element, "name", author or "cptpub")
    sub(feed, "link", rel="self", href=FEED_NAME)
    sub(feed, "link", rel="alternate", href="index.html")
    for entry in entries:
        code = str(entry["code"])
        changes = entry["changes"]
        element = sub(feed, "entry")
        key = f"cpt-{code}/{entry.get('edition_date')}/since/{changes.get('since')}"
        sub(element, "id", uuid.uuid5(_ID_NAMESPACE, key).urn)
        sub(element, "title", f"{entry.get('title') or f'CPT {code}'}: updated")
        sub(element, "updated", _timestamp(entry.get("edition_date")))
        sub(element, "link", rel="alternate", type="text/html", href=output_name(code, "html"))
        summary = [f"Changes since the edition of {_display(changes.get('since'))}:"] + [
            f"- {line}" for line in changes.get("summary") or []
        ]
        # one line per change (escape.clean would fold the line breaks), each line cleaned of control characters
        sub(element, "summary", type="text").text = "\n".join(escape.clean(line) for line in summary)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def write_feed(dist_dir: Path, manifest: Mapping[str, Any], *, report_dir: Path | None = None) -> Path:
    """Write ``dist_dir/feed.xml`` for ``manifest`` (atomically); title and author from ``report/_quarto.yml``."""
    from cptpub.assemble.config import load_config

    report_dir = Path(report_dir) if report_dir is not None else Path(dist_dir).resolve().parent / "report"
    config = load_config(report_dir)
    publisher = config.publisher or "cptpub"
    data = render_feed(manifest, title=f"{publisher}: updated editions", author=publisher)
    path = Path(dist_dir) / FEED_NAME
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:  # unchanged: keep the file (and its mtime, which web caches go by)
            return path
    return write_atomic(path, data)
