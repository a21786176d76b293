"""The one escaping layer: every string that comes from data passes through one of these before it reaches a
report, so a payer's description containing ``#``, ``*``, ``<script>``, ``$`` or ``]`` appears literally and never
changes the layout or runs as markup.

- ``md``: Pandoc Markdown (what section notebooks emit; both assembly engines read it).
- ``html``: HTML text and attribute values (catalogue page, templates).
- ``typst_string``: Typst string literals (the title block and metadata the Typst template reads).
"""

from __future__ import annotations

import html as _html
import re
import string

# Control characters other than tab/newline are dropped: no target renders them and some break PDF text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE_RUN = re.compile(r"\s+")
# Pandoc's markdown lets a backslash escape any ASCII punctuation (extension all_symbols_escapable).
_MD_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


def clean(text: object) -> str:
    """Text without control characters and with runs of whitespace folded to one space, on one line."""
    return _WHITESPACE_RUN.sub(" ", _CONTROL.sub("", str(text))).strip()


def md(text: object) -> str:
    """Literal inline text in Pandoc Markdown (safe in paragraphs, list items, headings and table cells)."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text))


def html(text: object) -> str:
    """Literal text in HTML element content or a quoted attribute value."""
    return _html.escape(clean(text), quote=True)


def typst_string(text: object) -> str:
    """A Typst string literal (quotes included) holding ``text`` exactly; control characters become ``\\u{..}``."""
    escaped = []
    for char in str(text):
        if char in '\\"':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{{{ord(char):x}}}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def md_attribute(text: object) -> str:
    """A double-quoted Pandoc attribute value, e.g. for ``{fig-alt="..."}``."""
    body = clean(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{body}"'
