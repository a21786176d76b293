"""Keeping the memory of Typst's memoization in step with one edition, in a process that compiles many.

Typst memoizes its work (comemo: parsed sources, fonts, decoded images, layouts) in one cache per process, and after
each compilation the typst wheel evicts the entries that none of the last ``MEMO_MAX_AGE`` compilations used
(``comemo::evict(10)``). What only one edition uses (its text, tables and figures, laid out and decoded: 10-15 MB on
the demo editions) therefore stays for ten more editions, ~130-180 MB of a batch worker.

``evict_edition_memos`` compiles an empty document ``MEMO_MAX_AGE - 1`` times after an edition (under a
millisecond in all): each compilation ages every entry, so what the edition alone used is evicted by the next
edition's compilation, while what every edition uses (the template, its fonts) is used again by that compilation
before it is old enough to go, and is never computed twice. The PDFs are the same bytes: the cache only saves work.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import typst

MEMO_MAX_AGE = 10  # the typst wheel's comemo::evict(10) after every compilation
BLANK_DOCUMENT = Path(__file__).with_name("blank.typ")

_blank: typst.Compiler | None = None
_lock = threading.Lock()  # a Compiler compiles one document at a time (Dask runs editions in threads)


def evict_edition_memos() -> None:
    """Age Typst's memoized work by ``MEMO_MAX_AGE - 1`` compilations: what no later edition uses is evicted by the
    next one's compilation."""
    global _blank
    with _lock:
        if _blank is None:
            _blank = typst.Compiler(BLANK_DOCUMENT, ignore_system_fonts=True, font_paths=embedded_fonts())
        for _ in range(MEMO_MAX_AGE - 1):
            _blank.compile()


@functools.cache
def embedded_fonts() -> typst.Fonts:
    """Typst's embedded fonts, found and parsed once per process rather than by every compile (2 ms each)."""
    return typst.Fonts(include_system_fonts=False, include_embedded_fonts=True, font_paths=[])
