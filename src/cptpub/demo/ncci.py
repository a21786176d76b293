"""Demo NCCI files in CMS's layouts (PTP zip of tab-delimited text, MUE CSV, add-on code CSV), for demonstrations
and benchmarks. Every file carries ``DEMO_MARKER`` in a line above its header, so the ingest marks it as demo data;
the edits are synthetic (deterministic for a seed), not CMS's.
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from pathlib import Path

from cptpub.atomic import write_atomic
from cptpub.ingest.common import DEMO_MARKER

DEMO_QUARTER = "2026Q4"
_PRIMARY = "27447"  # a demo decoy code with a fee schedule line: the primary procedure of the demo add-ons
_NOTE = f"{DEMO_MARKER} cptpub demo NCCI edits: synthetic, not CMS's."


def write_demo_ncci(out_dir: Path, codes: list[str], seed: int = 20702) -> list[Path]:
    """Write a PTP zip, an MUE CSV and an add-on code CSV for ``codes`` into ``out_dir``; return their paths."""
    rng = random.Random(seed)
    codes = sorted(codes)
    out_dir.mkdir(parents=True, exist_ok=True)

    ptp = io.StringIO()
    ptp.write(f"{_NOTE}\r\n\r\n")
    ptp.write("Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\tDeletion Date *=no data\t")
    ptp.write("Modifier 0=not allowed 1=allowed 9=not applicable\tPTP Edit Rationale\r\n")
    for first, second in zip(codes, codes[1:], strict=False):
        modifier = rng.choice("011")
        ptp.write(f"{first}\t{second}\t\t20260101\t*\t{modifier}\tMutually exclusive procedures\r\n")
    ptp_path = out_dir / f"ccipra-demo-{DEMO_QUARTER}.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"ccipra-demo-{DEMO_QUARTER}.txt", ptp.getvalue())
    write_atomic(ptp_path, buffer.getvalue())

    mue = io.StringIO()
    writer = csv.writer(mue, lineterminator="\r\n")
    writer.writerow([_NOTE])
    writer.writerow(
        ["HCPCS/CPT Code", "Practitioner Services MUE Values", "MUE Adjudication Indicator", "MUE Rationale"]
    )
    for code in codes:
        indicator = rng.choice(["1 Line Edit", "2 Date of Service Edit: Policy", "3 Date of Service Edit: Clinical"])
        writer.writerow([code, rng.randint(1, 4), indicator, "Clinical: Data"])
    mue_path = out_dir / f"MUE_practitioner_demo_{DEMO_QUARTER}.csv"
    write_atomic(mue_path, mue.getvalue().encode("utf-8"))

    aoc = io.StringIO()
    writer = csv.writer(aoc, lineterminator="\r\n")
    writer.writerow([_NOTE])
    writer.writerow(
        ["AOC_Edit_Type", "Add-On_Code", "AOC_DelDT", "Primary_Code", "Primary_Code_DelDT", "AOC_Edit_EffDT",
         "AOC_Edit_DelDT", "Special_Instruction_Notes"]
    )  # fmt: skip
    for code in codes:
        writer.writerow(["1", code, "", _PRIMARY, "", "2026001", "", ""])
    aoc_path = out_dir / f"AOC_demo_{DEMO_QUARTER}.csv"
    write_atomic(aoc_path, aoc.getvalue().encode("utf-8"))
    return [ptp_path, mue_path, aoc_path]
