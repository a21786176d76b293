"""A worker compiles many PDFs in one process: what only one edition used is evicted from Typst's memoized work
(cptpub.assemble.typst_memo), and the PDFs stay the same bytes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import typst
from PIL import Image

from cptpub.assemble.typst_memo import MEMO_MAX_AGE, evict_edition_memos

EDITIONS = MEMO_MAX_AGE + 2  # enough for the wheel's own eviction to hold MEMO_MAX_AGE editions at once
IMAGE_SIDE = 1000  # an RGB image decoded: 3 MB held by the memoized work until evicted


def write_editions(root: Path, count: int) -> list[Path]:
    """``count`` Typst documents, each with an image of its own (noise, so it cannot be shared or compressed)."""
    sources = []
    for number in range(count):
        folder = root / f"edition-{number}"
        folder.mkdir(parents=True)
        pixels = np.random.default_rng(number).integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "figure.png", compress_level=0)
        source = folder / "edition.typ"  # dated, or the PDF would record the clock
        date = "#set document(date: datetime(year: 2026, month: 7, day: 1))"
        source.write_text(f'{date}\n= Edition {number}\n\n#image("figure.png", width: 50%)\n')
        sources.append(source)
    return sources


def compile_pdf(source: Path) -> bytes:
    return typst.compile(source, root=source.parent, ignore_system_fonts=True, font_paths=[])


def peak_rss_mb(sources: list[Path], *, evict: bool) -> float:
    """Peak RSS of a fresh process that compiles ``sources`` one after the other, as a worker compiles editions."""
    script = textwrap.dedent(
        f"""
        import typst
        from cptpub.assemble.typst_memo import evict_edition_memos
        for source in {[str(source) for source in sources]!r}:
            typst.compile(source, root=source.rsplit("/", 1)[0], ignore_system_fonts=True, font_paths=[])
            if {evict!r}:
                evict_edition_memos()
        print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(result.stdout) / 1024  # VmHWM, kB: this process's own peak (ru_maxrss may be its parent's)


def test_what_one_edition_used_is_evicted_by_the_next(tmp_path: Path) -> None:
    sources = write_editions(tmp_path, EDITIONS)
    kept = peak_rss_mb(sources, evict=False)
    evicted = peak_rss_mb(sources, evict=True)
    image_mb = IMAGE_SIDE * IMAGE_SIDE * 3 / 2**20
    # Without eviction the images of MEMO_MAX_AGE editions are held at once; with it, two editions' at most.
    assert kept - evicted > (MEMO_MAX_AGE - 3) * image_mb, (kept, evicted)


def test_pdfs_are_the_same_bytes_with_and_without_eviction(tmp_path: Path) -> None:
    sources = write_editions(tmp_path, 3)
    first = [compile_pdf(source) for source in sources]
    for source, expected in zip(sources * 2, first * 2, strict=True):
        evict_edition_memos()
        assert compile_pdf(source) == expected
