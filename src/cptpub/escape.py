"""The one escaping layer: every string that comes from data passes through one of these before it reaches a
report, so a payer's description containing ``#``, ``*``, ``<script>``, ``$`` or ``]`` appears literally and never
changes the layout or runs as markup.

- ``md``: Pandoc Markdown (what section notebooks emit; both assembly engines read it).
- ``html``: HTML text and attribute values (catalogue page, templates).
- ``typst_string``: Typst string literals (the title block and metadata the Typst template reads).

Invisible formatting characters (Unicode category Cf) are dropped from all of them: the bidirectional controls
(embeddings and overrides U+202A–U+202E, isolates U+2066–U+2069, marks U+200E/U+200F and U+061C), zero-width
characters (U+200B–U+200D, U+2060, a U+FEFF inside text), soft hyphens, invisible operators and tag characters.
They show nothing themselves, yet a right-to-left override in a title reverses the text after it in the PDF, and
tag characters can hide words a reader cannot see. Publication text here is English; nothing needs them.
"""

from __future__ import annotations

import html as _html
import re
import string

# Control characters other than tab/newline are dropped: no target renders them and some break PDF text.
_CONTROL = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029"
# Every format character (category Cf) of Unicode 15 (tests/test_escape_invisible.py checks it against
# unicodedata, so a newer Unicode cannot add one silently).
INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_DROPPED = re.compile(f"[{_CONTROL}{INVISIBLE}]")
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_WHITESPACE_RUN = re.compile(r"\s+")
# Pandoc's markdown lets a backslash escape any ASCII punctuation (extension all_symbols_escapable).
_MD_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


def clean(text: object) -> str:
    """Text without control or invisible formatting characters, runs of whitespace folded to one space, on one
    line."""
    return _WHITESPACE_RUN.sub(" ", _DROPPED.sub("", str(text))).strip()


def md(text: object) -> str:
    """Literal inline text in Pandoc Markdown (safe in paragraphs, list items, headings and table cells)."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text))


def html(text: object) -> str:
    """Literal text in HTML element content or a quoted attribute value."""
    return _html.escape(clean(text), quote=True)


def typst_string(text: object) -> str:
    """A Typst string literal (quotes included) holding ``text`` without invisible formatting characters; control
    characters become ``\\u{..}``."""
    escaped = []
    for char in _INVISIBLE.sub("", str(text)):
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
