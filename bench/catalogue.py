"""Make a store with thousands of codes that have data but no record, to measure `cptpub build --all` on it.

    python bench/catalogue.py [--codes 2000] [--keep DIR] [--build] [--jobs 2] [--facts-sample 200]

In a temporary workspace (or ``--keep DIR``), deterministic:

- a project with the repository's payers, notebooks and template and NO code records;
- demo inputs for ``--codes`` synthetic codes (Z0001, Z0002, ...; labelled demo in every file): TiC in-network
  files and a PPRRVU CSV from ``cptpub.demo.generator`` (the demo RVUs reused for the new codes), and NCCI PTP,
  MUE and add-on code files from ``cptpub.demo.ncci``;
- ingested with the commands a user runs (``ingest pfs``, ``ingest tic --codes-file``, ``ingest ncci``), each
  timed; then ``cptpub list --json`` (every code must be listed, none with a record) and ``code_facts`` on a sample
  of codes are timed;
- with ``--build``: ``cptpub build --all -j JOBS --to html,pdf --engine builtin``, timed (a long run: about
  ``codes x 8 s / JOBS`` on this project's notebooks). Without it the command to run is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPTPUB = [sys.executable, "-m", "cptpub.cli"]
TEMPLATE_CODES = ("20700", "20701", "20702", "20703", "20704", "20705")  # their demo RVUs are reused


def cptpub(project: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "CPTPUB_PROJECT": str(project)}
    env.pop("CPTPUB_STORE", None)
    started = time.perf_counter()
    result = subprocess.run([*CPTPUB, *args], cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"cptpub {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started, result.stdout


def make_project(root: Path, n: int) -> tuple[list[str], dict[str, float]]:
    from cptpub.demo import generator
    from cptpub.demo.ncci import write_demo_ncci

    for name in ("data", "notebooks", "report"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("figures", ".ipynb_checkpoints"))
    for record in (root / "data" / "codes").glob("*.yaml"):
        record.unlink()
    codes = [f"Z{i:04d}" for i in range(1, n + 1)]
    for i, code in enumerate(codes):
        template_code = TEMPLATE_CODES[i % len(TEMPLATE_CODES)]
        generator.PPRRVU_ROWS[code] = (f"Synthetic service {code}", generator.PPRRVU_ROWS[template_code][1])
    inputs = root / "build" / "inputs"
    written = generator.write_demo_inputs(inputs, codes=codes, seed=20702)
    ncci = write_demo_ncci(inputs / "ncci", codes)
    codes_file = inputs / "codes.txt"
    codes_file.write_text("\n".join(codes) + "\n", encoding="utf-8")
    seconds = {
        "ingest pfs": cptpub(root, "ingest", "pfs", str(written.pprrvu_file))[0],
        "ingest tic": cptpub(root, "ingest", "tic", str(inputs), "--codes-file", str(codes_file))[0],
        "ingest ncci": cptpub(root, "ingest", "ncci", *(str(p) for p in ncci))[0],
    }
    return codes, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", type=int, default=2000)
    parser.add_argument("--keep", type=Path, help="make the project in DIR (kept) instead of a temporary folder")
    parser.add_argument("--build", action="store_true", help="also run and time `cptpub build --all`")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--facts-sample", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))

    with tempfile.TemporaryDirectory(prefix="cptpub-catalogue-") as temporary:
        root = (args.keep or Path(temporary)) / "project"
        if root.exists():
            raise SystemExit(f"{root} exists: choose an empty --keep folder")
        root.mkdir(parents=True)
        codes, seconds = make_project(root, args.codes)

        listed, out = cptpub(root, "list", "--json")
        rows = json.loads(out)
        assert [r["code"] for r in rows] == codes, "every code with rates is listed"
        assert all(r["record"] == "none" and r["title"] for r in rows), "no records; every code has a CMS title"
        seconds["list --json"] = listed

        from cptpub.analysis.facts import code_facts, facts_from_connection
        from cptpub.store import RatesStore

        store = root / "build" / "rates.duckdb"
        sample = codes[:: max(1, len(codes) // args.facts_sample)][: args.facts_sample]
        started = time.perf_counter()
        for code in sample:
            facts = code_facts(store, code)  # as a notebook calls it: opening the store each time
            assert facts.title and facts.mue and facts.add_on_primaries, code
        per_code = (time.perf_counter() - started) / len(sample)
        con, cache = RatesStore(store).connect_with_cache()
        started = time.perf_counter()
        for code in sample:
            facts_from_connection(con, code, cache)
        per_code_open = (time.perf_counter() - started) / len(sample)
        con.close()

        for step, value in seconds.items():
            print(f"{step:<14} {value:8.2f} s")
        print(f"code_facts     {per_code * 1000:8.1f} ms a code ({len(sample)} sampled; opening the store each time)")
        print(f"  same, open   {per_code_open * 1000:8.1f} ms a code (facts_from_connection)")
        build = ["build", "--all", "-j", str(args.jobs), "--to", "html,pdf", "--engine", "builtin"]
        if args.build:
            took, out = cptpub(root, *build)
            print(f"build --all    {took:8.1f} s for {len(codes)} codes ({took / len(codes):.2f} s a code)")
            print(out.strip().splitlines()[-1] if out.strip() else "")
        else:
            print(f"to time the build: CPTPUB_PROJECT={root} cptpub {' '.join(build)}")
            if not args.keep:
                print("(the project is deleted on exit: pass --keep DIR to keep it)")


if __name__ == "__main__":
    main()
