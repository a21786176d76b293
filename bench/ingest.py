"""Benchmark `cptpub ingest tic` against a plain ijson loop on a synthetic in-network file of 1 GB or more.

    python bench/ingest.py [--size-gb 1.0] [--keep DIR]

Writes a realistic in-network file (provider_references first, then many in_network items of many codes, a few
of them wanted) and its .gz into a temporary folder, then measures, each in a fresh child process:

- cptpub: ``ingest_tic_file`` into an empty store, keeping 3 codes (plain and gzip);
- baseline: ``for item in ijson.items(f, "in_network.item")`` over the same bytes (plain and gzip).

Throughput is MB/s of uncompressed JSON, best of --repeat runs (the machine may be shared); peak memory is the
largest ru_maxrss of the children. Targets: cptpub >= 3x the baseline with few codes wanted, < 300 MB peak.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WANTED = ("20702", "27447", "99213")
SEED = 20702


def write_in_network(path: Path, size: int, seed: int = SEED) -> dict[str, int]:
    """A minified in-network file of at least ``size`` bytes; returns counts for the report."""
    rng = random.Random(seed)
    codes = [f"{n:05d}" for n in rng.sample(range(10000, 99999), 15000) if f"{n:05d}" not in WANTED]
    references = 30000
    rate_pool = [_rate(rng, references) for _ in range(3000)]
    items = wanted_items = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(
            '{"reporting_entity_name":"Aetna Life Insurance Company","reporting_entity_type":"Health Insurance '
            'Issuer","plan_name":"Bench Open Access PPO","plan_id_type":"EIN","plan_id":"12-3456789",'
            '"plan_market_type":"group","last_updated_on":"2024-05-01","version":"1.3.1","provider_references":['
        )
        out.write(",".join(_reference(rng, i) for i in range(1, references + 1)))
        out.write('],"in_network":[')
        while out.tell() < size:
            wanted = rng.random() < 0.0005
            code = rng.choice(WANTED) if wanted else rng.choice(codes)
            out.write(("," if items else "") + _item(rng, code, rate_pool))
            items += 1
            wanted_items += wanted
        out.write("]}")
    return {"items": items, "wanted_items": wanted_items, "references": references}


def _reference(rng: random.Random, group_id: int) -> str:
    groups = [
        {
            "npi": [rng.randrange(1_000_000_000, 2_000_000_000) for _ in range(rng.randint(1, 12))],
            "tin": {"type": "ein", "value": f"{rng.randrange(10, 99)}-{rng.randrange(1000000, 9999999)}"},
        }
        for _ in range(rng.randint(1, 3))
    ]
    return json.dumps({"provider_group_id": group_id, "provider_groups": groups}, separators=(",", ":"))


def _rate(rng: random.Random, references: int) -> str:
    prices = []
    for _ in range(rng.randint(1, 3)):
        price = {
            "negotiated_type": rng.choice(["negotiated", "negotiated", "fee schedule", "derived"]),
            "negotiated_rate": round(rng.uniform(20, 5000), 2),
            "expiration_date": "9999-12-31",
            "service_code": rng.sample(["11", "19", "21", "22", "23", "24", "81"], rng.randint(1, 4)),
            "billing_class": rng.choice(["professional", "institutional"]),
        }
        if rng.random() < 0.2:
            price["billing_code_modifier"] = [rng.choice(["26", "TC", "50", "59"])]
        prices.append(price)
    refs = rng.sample(range(1, references + 1), rng.randint(1, 8))
    return json.dumps({"provider_references": refs, "negotiated_prices": prices}, separators=(",", ":"))


def _item(rng: random.Random, code: str, rate_pool: list[str]) -> str:
    # a few names carry escaped quotes and brackets, as real descriptions do
    name = f'Procedure {code} \\"complex\\" [bilateral]' if rng.random() < 0.02 else f"Procedure {code}"
    head = (
        f'{{"negotiation_arrangement":"ffs","name":"{name}","billing_code_type":"CPT",'
        f'"billing_code_type_version":"2024","billing_code":"{code}","description":"Description of {code}",'
        '"negotiated_rates":['
    )
    return head + ",".join(rng.choice(rate_pool) for _ in range(rng.randint(5, 150))) + "]}"


def gzip_copy(source: Path, target: Path) -> None:
    with open(source, "rb") as plain, gzip.open(target, "wb", compresslevel=6) as packed:
        shutil.copyfileobj(plain, packed, 16 << 20)


# --- measurements, each in its own process -------------------------------------------------------------------


def measure_cptpub(path: Path, work: Path) -> dict:
    from cptpub.ingest.tic import ingest_tic_file
    from cptpub.records.load import load_payers
    from cptpub.store import RatesStore

    repo = Path(__file__).resolve().parents[1]
    store = RatesStore(work / f"bench-{os.getpid()}.duckdb")
    started = time.perf_counter()
    result = ingest_tic_file(store, path, codes=set(WANTED), catalogue=load_payers(repo / "data" / "payers.yaml"))
    return {"seconds": time.perf_counter() - started, "rows": result.rows_kept, "kept": result.items_kept}


def measure_ijson(path: Path, work: Path) -> dict:
    import ijson

    started = time.perf_counter()
    kept = 0
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        for item in ijson.items(handle, "in_network.item"):
            kept += item["billing_code"] in WANTED
    return {"seconds": time.perf_counter() - started, "rows": None, "kept": kept}


MEASURES = {"cptpub": measure_cptpub, "ijson": measure_ijson}


def run_child(tool: str, path: Path, work: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, str(path), "--work", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(tool: str, path: Path, work: Path) -> None:
    figures = MEASURES[tool](path, work)
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them (reused when present)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], Path(args.child[1]), args.work)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="cptpub-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    plain, packed = folder / "bench-in-network.json", folder / "bench-in-network.json.gz"
    try:
        if not plain.exists() or plain.stat().st_size < args.size_gb * 1e9:
            started = time.perf_counter()
            counts = write_in_network(plain, int(args.size_gb * 1e9))
            print(
                f"wrote {plain} ({plain.stat().st_size / 1e6:,.0f} MB, {counts['items']:,} items, "
                f"{counts['wanted_items']} wanted, {counts['references']:,} provider references) "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            packed.unlink(missing_ok=True)
        if not packed.exists():
            started = time.perf_counter()
            gzip_copy(plain, packed)
            print(
                f"wrote {packed} ({packed.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        size = plain.stat().st_size
        results = {}
        for path in (plain, packed):
            for tool in ("ijson", "cptpub"):
                # best of --repeat runs, alternating nothing else: the machine may be shared
                runs = [run_child(tool, path, folder) for _ in range(args.repeat)]
                figures = min(runs, key=lambda run: run["seconds"])
                figures["peak_mb"] = max(run["peak_mb"] for run in runs)
                figures["mb_s"] = size / figures["seconds"] / 1e6
                results[tool, path.suffix] = figures
                each = ", ".join(f"{size / run['seconds'] / 1e6:.0f}" for run in runs)
                print(
                    f"  {tool:<7} {path.name:<26} {figures['mb_s']:7.1f} MB/s  {figures['seconds']:7.1f} s  "
                    f"peak {figures['peak_mb']:6.0f} MB  items kept {figures['kept']}  "
                    f"(runs: {each} MB/s)",
                    flush=True,
                )
        _report(results, size)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _report(results: dict, size: int) -> None:
    print(f"\nuncompressed JSON: {size / 1e6:,.0f} MB; wanted codes: {', '.join(WANTED)}")
    print(f"{'':22}{'MB/s':>8}{'peak MB':>9}{'x ijson':>9}")
    for suffix, label in ((".json", "plain"), (".gz", "gzip")):
        base = results["ijson", suffix]
        ours = results["cptpub", suffix]
        print(f"{'ijson.items ' + label:<22}{base['mb_s']:8.1f}{base['peak_mb']:9.0f}{1:9.2f}")
        print(
            f"{'cptpub ingest ' + label:<22}{ours['mb_s']:8.1f}{ours['peak_mb']:9.0f}{ours['mb_s'] / base['mb_s']:9.2f}"
        )
    if results["cptpub", ".json"]["kept"] != results["ijson", ".json"]["kept"]:
        raise SystemExit("cptpub and ijson disagree on the number of wanted items")


if __name__ == "__main__":
    main()
