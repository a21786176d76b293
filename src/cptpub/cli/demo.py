"""``cptpub demo-inputs``: write the demo input files that ``make demo`` ingests."""

from __future__ import annotations

from pathlib import Path

import typer

from cptpub.cli import app, console


@app.command(name="demo-inputs")
def demo_inputs(
    out_dir: Path = typer.Argument(Path("build/demo-inputs"), help="Folder to write the demo files into."),
    seed: int = typer.Option(20702, "--seed", help="Random seed; the same seed gives byte-identical files."),
) -> None:
    """Write synthetic TiC in-network files marked [DEMO DATA] (one per payer, gzip) and CMS's CY 2026 PPRRVU rows
    of the demo codes (CMS's values)."""
    from cptpub.demo import write_demo_inputs

    inputs = write_demo_inputs(out_dir, seed=seed)
    for path in (*inputs.tic_files, inputs.pprrvu_file):
        console.print(f"wrote {path}")
