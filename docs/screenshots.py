"""Remake the screenshots in docs/img/ from a built dist/ folder (the demo: `make demo`).

    .venv/bin/python docs/screenshots.py dist

Uses Debian's Chromium (through Playwright) for the HTML pages and pdftoppm for the PDF's first page. The PNGs
are reduced to a 256-colour palette so each stays well under 300 KB.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

IMG = Path(__file__).resolve().parent / "img"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


def shrink(path: Path) -> None:
    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def page_shot(browser, url: str, out: Path, width: int, height: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.screenshot(path=str(out))
    page.close()
    shrink(out)


def main(dist: Path) -> None:
    IMG.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page_shot(browser, (dist / "cpt-20702.html").as_uri(), IMG / "edition-html.png", 1000, 1100)
        page_shot(browser, (dist / "index.html").as_uri(), IMG / "catalogue.png", 1200, 760)
        browser.close()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["pdftoppm", "-r", "70", "-f", "1", "-l", "1", "-png", str(dist / "cpt-20702.pdf"), f"{tmp}/page"],
            check=True,
        )
        (png,) = Path(tmp).glob("page-*.png")
        out = IMG / "edition-pdf-page1.png"
        out.write_bytes(png.read_bytes())
        shrink(out)
    for name in ("edition-html.png", "catalogue.png", "edition-pdf-page1.png"):
        print(f"{IMG / name}: {(IMG / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist").resolve())
