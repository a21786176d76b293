"""Pandoc's ``--embed-resources`` for the pages the builtin engine writes, without a Pandoc run per page.

Pandoc's Lua API, which the long-lived ``pandoc lua`` uses, has no ``--embed-resources``: the command line passes
the HTML writer's output through ``Text.Pandoc.SelfContained.makeSelfContained`` (Pandoc 3.9). That function parses
the whole page with TagSoup and renders it again with ``Text.Pandoc.Shared.renderTags'``, so besides embedding it
also rewrites the rest of the page. This module does the same to the pages Pandoc's HTML writer writes from our
template:

* text and attribute values are decoded and escaped again with TagSoup's ``escapeXML`` (``&"<>'``), an empty
  attribute value loses its ``=""``, and an element of ``MINIMIZED`` opened and closed at once is written
  ``<name ... />`` (any other ``<name ... />`` becomes ``<name ...></name>``);
* ``<link rel="stylesheet" href=FILE>`` becomes ``<style type="text/css">`` with the file's CSS, its comments dropped,
  each run of white space cut to its first character (``cssURLs``: ``pCSSComment``, ``pCSSWhite``), then its
  carriage returns (``UTF8.toText``);
* a ``src`` (or ``data-src``, ``poster``, ``data-background-image``) naming a local image becomes a base64 ``data:``
  URI (carriage returns dropped from ``+xml`` types), and the element gains ``aria-label`` (its ``alt``) and
  ``role="img"`` when it has none.

Anything else ``makeSelfContained`` treats specially (scripts, inline styles, ``url()`` or ``@import`` in CSS,
remote or unreadable resources, ``inline-svg`` images, entities Pandoc's writer does not write) makes
``embed_resources`` return ``None``: the caller then runs Pandoc's command line, which does it itself.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

# The Pandoc versions whose embedding this module reproduces (tests/test_selfcontained.py compares it with the
# command line's): with any other, the builtin engine leaves the embedding to Pandoc's command line.
PANDOC_VERSIONS = frozenset({"3.9"})
# Text.Pandoc.Shared.renderTags': optMinimize and optRawTag.
MINIMIZED = frozenset({"hr", "br", "img", "meta", "link", "col", "use", "path", "rect"})
RAW = frozenset({"script", "style"})
# SelfContained.isSourceAttribute (``href`` counts on ``link`` only).
SOURCE_ATTRIBUTES = frozenset({"src", "data-src", "poster", "data-background-image"})
# Text.Pandoc.MIME.getMimeType (from mime-types' defaultMimeMap) for the kinds of file embedded here.
IMAGE_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}

_TOKEN = re.compile(
    r"<!--(?P<comment>[^<>&-]*)-->"
    r"|(?P<doctype><!DOCTYPE html>)"
    r"|<(?P<close>/)?(?P<name>[a-z][a-z0-9]*)(?P<attrs>(?: [a-z][a-z0-9-]*=\"[^\"<]*\")*)(?P<end> />|>)"
    r"|(?P<text>[^<]+)"
)
_ATTRIBUTE = re.compile(r' ([a-z][a-z0-9-]*)="([^"<]*)"')
_DECODABLE = re.compile(r"(?:[^&]|&(?:amp|lt|gt|quot|#39);)*")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'"}
_ENTITY = re.compile("|".join(_ENTITIES))
_ESCAPES = {"&": "&amp;", '"': "&quot;", "<": "&lt;", ">": "&gt;", "'": "&#39;"}  # TagSoup's escapeXML
_ESCAPED = re.compile("[&\"<>']")
# A local path Pandoc's fetchItem reads as it is: no URI scheme, percent-escape, query or fragment.
_PLAIN_PATH = re.compile(r"(?!//)[^%?#:\\\x00-\x1f]+")
_CSS_SPACE = b"\t\n\x0b\x0c\r \xa0"  # GHC's isSpace on the bytes Parsec reads

Attributes = list[tuple[str, str]]
# ("open", name, attributes) | ("close", name, None) | ("text", content, None) | ("raw", markup, None)
Event = tuple[str, str, Attributes | None]


class _NotReproduced(Exception):
    """The page has something Pandoc's own embedding must handle."""


def embed_resources(html: str, cwd: Path) -> str | None:
    """``html`` (Pandoc's HTML writer's output) as ``pandoc --embed-resources`` run in ``cwd`` would write it, or
    ``None`` when the page has anything this module does not reproduce."""
    try:
        return _render(_embed(_parse(html), cwd))
    except _NotReproduced:
        return None


def _parse(html: str) -> list[Event]:
    events: list[Event] = []
    position = 0
    while position < len(html):
        token = _TOKEN.match(html, position)
        if token is None:
            raise _NotReproduced
        position = token.end()
        if token["text"] is not None:
            events.append(("text", _decode(token["text"]), None))
        elif token["name"] is not None:
            name = token["name"]
            if name in RAW:
                raise _NotReproduced
            if token["close"]:
                if token["attrs"] or token["end"] != ">":
                    raise _NotReproduced
                events.append(("close", name, None))
                continue
            attributes = [(key, _decode(value)) for key, value in _ATTRIBUTE.findall(token["attrs"])]
            events.append(("open", name, attributes))
            if token["end"] == " />":
                events.append(("close", name, None))
        else:
            events.append(("raw", token.group(), None))  # a comment or the doctype, written back as they are
    return events


def _decode(text: str) -> str:
    if "&" not in text:
        return text
    if not _DECODABLE.fullmatch(text):
        raise _NotReproduced
    return _ENTITY.sub(lambda entity: _ENTITIES[entity.group()], text)


def _escape(text: str) -> str:
    return _ESCAPED.sub(lambda char: _ESCAPES[char.group()], text)


def _embed(events: list[Event], cwd: Path) -> list[Event]:
    """SelfContained.convertTags for the elements our pages have."""
    out: list[Event] = []
    drop_link_close = False
    for kind, name, attributes in events:
        if drop_link_close and kind == "close" and name == "link":
            continue
        drop_link_close = False
        if kind != "open":
            out.append((kind, name, attributes))
            continue
        assert attributes is not None
        keys = [key for key, _ in attributes]
        if "data-external" in keys:
            raise _NotReproduced
        if name == "link" and dict(attributes).get("href"):
            out += [("open", "style", [("type", "text/css")]), ("raw", _stylesheet(attributes, cwd), None)]
            out.append(("close", "style", None))
            drop_link_close = True
        elif any(key in SOURCE_ATTRIBUTES for key in keys):
            out.append(("open", name, _with_data_uris(name, attributes, cwd)))
        else:
            out.append((kind, name, attributes))
    return out


def _stylesheet(attributes: Attributes, cwd: Path) -> str:
    """The CSS a ``<link>`` names, as the ``<style>`` that replaces it holds it."""
    values = dict(attributes)
    if sorted(values) != ["href", "rel"] or values["rel"] != "stylesheet" or not values["href"].endswith(".css"):
        raise _NotReproduced
    css = _read(values["href"], cwd)
    if not css.isascii() or b"url(" in css or b"@import" in css or b"</" in css:
        raise _NotReproduced
    # UTF8.toText drops every carriage return, after the white space was cut (a CR LF run leaves nothing).
    return _css_without_comments_and_runs_of_space(css).replace(b"\r", b"").decode("ascii")


def _css_without_comments_and_runs_of_space(css: bytes) -> bytes:
    """SelfContained.parseCSSUrls on CSS without ``url(`` or ``@import``: at each point, in this order, a white-space
    character and any that follow (kept: the first), a comment (dropped; an unclosed ``/*`` is text), or text up to
    the next ``u``, ``/`` or space, tab or line break (or that one ``u`` or ``/``)."""
    out = bytearray()
    position, end = 0, len(css)
    while position < end:
        byte = css[position]
        if byte in _CSS_SPACE:
            out.append(byte)
            position += 1
            while position < end and css[position] in _CSS_SPACE:
                position += 1
        elif css.startswith(b"/*", position) and (close := css.find(b"*/", position + 2)) >= 0:
            position = close + 2
        elif byte in b"u/":
            out.append(byte)
            position += 1
        else:
            start = position
            while position < end and css[position] not in b"u/ \n\r\t":
                position += 1
            out += css[start:position]
    return bytes(out)


def _with_data_uris(name: str, attributes: Attributes, cwd: Path) -> Attributes:
    """The attributes of an element with a source, as ``convertTags`` leaves them: each source a ``data:`` URI, then
    ``aria-label`` from ``alt`` and ``role="img"`` put first when missing (``addAriaLabel``, ``addRole``)."""
    if name == "img" and "inline-svg" in dict(attributes).get("class", "").split():
        raise _NotReproduced
    converted = [(key, _data_uri(value, cwd) if key in SOURCE_ATTRIBUTES else value) for key, value in attributes]
    values = dict(converted)
    if "aria-label" not in values and "alt" in values:
        converted.insert(0, ("aria-label", values["alt"]))
    if "role" not in values:
        converted.insert(0, ("role", "img"))
    return converted


def _data_uri(source: str, cwd: Path) -> str:
    """SelfContained.makeDataURI of a local image (``getData``)."""
    if source.startswith("data:"):
        return source
    mime = IMAGE_TYPES.get(Path(source).suffix.lower())
    if mime is None:
        raise _NotReproduced
    data = _read(source, cwd)
    if mime.endswith("+xml"):
        data = data.replace(b"\r", b"")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _read(path: str, cwd: Path) -> bytes:
    """A file as ``fetchItem`` reads a plain local path: absolute, or relative to the folder Pandoc runs in."""
    if not _PLAIN_PATH.fullmatch(path):
        raise _NotReproduced
    try:
        return (cwd / path).read_bytes()
    except OSError:
        raise _NotReproduced from None  # Pandoc warns and keeps the link: its own run says so


def _render(events: list[Event]) -> str:
    """TagSoup's renderTagsOptions with renderTags' options."""
    parts: list[str] = []
    count = len(events)
    index = 0
    while index < count:
        kind, name, attributes = events[index]
        if kind == "open":
            assert attributes is not None
            parts.append("<" + name)
            for key, value in attributes:
                parts.append(f' {key}="{_escape(value)}"' if value else " " + key)
            following = events[index + 1] if index + 1 < count else None
            if name in MINIMIZED and following is not None and following[:2] == ("close", name):
                parts.append(" />")
                index += 1
            else:
                parts.append(">")
        elif kind == "close":
            parts.append(f"</{name}>")
        elif kind == "text":
            parts.append(_escape(name))
        else:
            parts.append(name)
        index += 1
    return "".join(parts)
