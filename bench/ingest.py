"""Benchmark `cptpub ingest tic` against ijson and DuckDB's read_json on an in-network file of the real structure.

    python bench/ingest.py [--size-mb 300] [--keep DIR] [--gzip] [--rounds 3]

The file is built from CMS's example in-network files (tests/fixtures/tic): their items, repeated under 2,000
billing codes until the file reaches --size-mb, after a provider_references array in the real layout: integer and
non-integer group ids (690.65627), references to remote files (left unresolved: the run is offline), and a
CSTM-00 item now and then. Each measurement runs in a fresh child process; peak memory is its VmHWM.
``--rounds`` rounds alternate the tools (DuckDB in the first only); the table gives medians, and the range of the
ratios to ijson over the rounds (each taken within its round: the machine's speed drifts).

- ijson: ``ijson.items(f, "in_network.item", use_float=True)`` (yajl2_c backend): the parse alone, nothing kept;
- DuckDB: ``read_json`` of the file flattened to one row per price (``--duckdb-memory`` limit);
- cptpub keep-few: ``ingest_tic_file`` into an empty store keeping two codes;
- cptpub keep-all: the same keeping every code (every price stored).

Targets (issue 11): keep-all >= 1x ijson, keep-few >= 5x ijson, peak memory < 300 MB. The machine may be shared:
CPU seconds (of the measured call, every thread of the process) are compared as well as wall seconds.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "tic"
LAYOUTS = (
    "v2/in-network-rates-fee-for-service-single-plan-sample.json",
    "v2/in-network-rates-all-negotiated-types-sample.json",
    "v2/in-network-rates-multiple-plans-sample.json",
    "v1/in-network-rates-fee-for-service-single-plan-sample.json",
)
WANTED = ("27447", "99213")
SEED = 20702


def write_in_network(path: Path, size: int) -> dict[str, int]:
    """A minified in-network file of at least ``size`` bytes, of the CMS examples' structure."""
    rng = random.Random(SEED)
    items = []
    for name in LAYOUTS:
        items += json.loads((FIXTURES / name).read_text())["in_network"]
    codes = [f"{n:05d}" for n in rng.sample(range(10000, 99999), 2000)] + list(WANTED)
    references = []
    group_ids: list[int | float] = []
    for number in range(1, 2001):
        group_id: int | float = number if number % 10 else number + 0.65627  # some ids are not integers
        group_ids.append(group_id)
        if number % 50 == 0:
            references.append(
                {"provider_group_id": group_id, "location": f"https://example.invalid/refs/{number}.json"}
            )
            continue
        groups = [
            {
                "npi": [rng.randrange(1_000_000_000, 2_000_000_000) for _ in range(rng.randint(1, 8))],
                "tin": {"type": "ein", "value": f"{rng.randrange(10, 99)}-{rng.randrange(1000000, 9999999)}"},
            }
            for _ in range(rng.randint(1, 3))
        ]
        references.append({"provider_group_id": group_id, "network_name": ["Bench PPO"], "provider_groups": groups})
    counts = {"items": 0, "prices": 0}
    with open(path, "w", encoding="utf-8") as out:
        out.write(
            '{"reporting_entity_name":"Aetna Life Insurance Company","reporting_entity_type":"Health Insurance '
            'Issuer","plan_name":"Bench Open Access PPO","plan_id_type":"EIN","plan_id":"12-3456789",'
            '"plan_market_type":"group","last_updated_on":"2024-05-01","version":"2.0.0","provider_references":'
        )
        out.write(json.dumps(references, separators=(",", ":")))
        out.write(',"in_network":[')
        while out.tell() < size:
            item = copy.deepcopy(rng.choice(items))
            item["billing_code"] = "CSTM-00" if counts["items"] % 5000 == 4999 else rng.choice(codes)
            rates = []
            for _ in range(rng.randint(20, 80)):  # real items carry many rates
                rate = copy.deepcopy(rng.choice(item["negotiated_rates"]))
                if "provider_references" in rate:
                    rate["provider_references"] = rng.sample(group_ids, rng.randint(1, 4))
                for price in rate["negotiated_prices"]:
                    price["negotiated_rate"] = round(rng.uniform(20, 5000), 2)
                counts["prices"] += len(rate["negotiated_prices"])
                rates.append(rate)
            item["negotiated_rates"] = rates
            out.write(("," if counts["items"] else "") + json.dumps(item, separators=(",", ":")))
            counts["items"] += 1
        out.write("]}")
    return counts


# --- measurements, each in its own process -------------------------------------------------------------------


def measure_cptpub(path: Path, work: Path, keep: str) -> dict:
    from cptpub.ingest.tic import ingest_tic_file
    from cptpub.records.load import load_payers
    from cptpub.store import RatesStore

    store = RatesStore(work / f"bench-{keep}-{time.monotonic_ns()}.duckdb")
    codes = set(WANTED) if keep == "few" else None
    catalogue = load_payers(REPO / "data" / "payers.yaml")
    started, cpu = time.perf_counter(), time.process_time()
    result = ingest_tic_file(store, path, codes=codes, catalogue=catalogue)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.path.unlink(missing_ok=True)
    store.lock_path.unlink(missing_ok=True)
    return {"seconds": seconds, "cpu_s": cpu, "rows": result.rows_kept, "items": result.items_kept}


def measure_ijson(path: Path, work: Path, keep: str) -> dict:
    import ijson

    assert ijson.backend == "yajl2_c", ijson.backend
    started, cpu = time.perf_counter(), time.process_time()
    items = 0
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        for _ in ijson.items(handle, "in_network.item", use_float=True):
            items += 1
    return {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "rows": None, "items": items}


def measure_duckdb(path: Path, work: Path, keep: str) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{keep}'")
    started, cpu = time.perf_counter(), time.process_time()
    try:
        rows = con.execute(
            f"""SELECT count(*) FROM (
                  SELECT unnest(r.negotiated_prices) AS p FROM (
                    SELECT unnest(i.negotiated_rates) AS r FROM (
                      SELECT unnest(in_network) AS i FROM read_json('{path}', maximum_object_size = 2000000000))))"""
        ).fetchone()[0]
    except duckdb.Error as exc:
        error = str(exc).splitlines()[0][:100]
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "rows": None, "items": None, "error": error}
    return {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "rows": rows, "items": None}


MEASURES = {"cptpub": measure_cptpub, "ijson": measure_ijson, "duckdb": measure_duckdb}


def run_child(tool: str, path: Path, work: Path, keep: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, str(path), keep, "--work", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_kib() -> int:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss keeps the parent's peak
    from before the fork when it was larger: the file writer's, for a fast reader like ijson)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child_main(tool: str, path: Path, keep: str, work: Path) -> None:
    figures = MEASURES[tool](path, work, keep)
    figures["peak_mb"] = _peak_kib() / 1024
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=300)
    parser.add_argument("--keep", type=Path, help="write the file here and keep it (reused when present)")
    parser.add_argument("--gzip", action="store_true", help="also measure the .json.gz")
    parser.add_argument("--duckdb-memory", default="4GB", help="DuckDB's memory_limit for read_json")
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating the tools (medians reported)")
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "FILE", "KEEP"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], Path(args.child[1]), args.child[2], args.work)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="cptpub-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / "bench-in-network.json"
    try:
        if not plain.exists() or plain.stat().st_size < args.size_mb * 1e6:
            started = time.perf_counter()
            counts = write_in_network(plain, int(args.size_mb * 1e6))
            print(
                f"wrote {plain} ({plain.stat().st_size / 1e6:,.0f} MB, {counts['items']:,} items, "
                f"{counts['prices']:,} prices) in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        paths = [plain]
        if args.gzip:
            packed = folder / "bench-in-network.json.gz"
            if not packed.exists():
                with open(plain, "rb") as source, gzip.open(packed, "wb", compresslevel=6) as target:
                    shutil.copyfileobj(source, target, 16 << 20)
            paths.append(packed)
        size = plain.stat().st_size
        for path in paths:
            results: dict[tuple[str, str], list[dict]] = {}
            for number in range(1, args.rounds + 1):
                runs = [("ijson", "all"), ("cptpub", "few"), ("cptpub", "all")]
                if path == plain and number == 1:
                    runs.append(("duckdb", args.duckdb_memory))
                for tool, keep in runs:
                    figures = run_child(tool, path, folder, keep)
                    results.setdefault((tool, keep), []).append(figures)
                    print(f"  round {number}: {tool} {keep} {path.name}: {json.dumps(figures)}", flush=True)
            _report(results, size, path.name)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _report(results: dict[tuple[str, str], list[dict]], size: int, name: str) -> None:
    """Medians over the rounds; each ratio to ijson is taken within its round (the machine's speed drifts)."""
    base = results["ijson", "all"]
    rounds = len(base)
    print(f"\n{name}: {size / 1e6:,.0f} MB of uncompressed JSON; keep-few codes: {', '.join(WANTED)}; {rounds} rounds")
    print(
        f"| {'run':<34} | {'seconds':>7} | {'MB/s':>5} | {'x ijson, wall':>17} | {'CPU s':>6} "
        f"| {'x ijson, CPU':>17} | {'peak MB':>7} | {'rows':>10} |"
    )
    print(f"|{'-' * 36}|{'-' * 8}:|{'-' * 6}:|{'-' * 18}:|{'-' * 7}:|{'-' * 18}:|{'-' * 8}:|{'-' * 11}:|")
    labels = {
        ("ijson", "all"): "ijson.items (yajl2_c, use_float)",
        ("cptpub", "few"): "cptpub ingest tic, 2 codes",
        ("cptpub", "all"): "cptpub ingest tic, every code",
    }
    for key, runs in results.items():
        label = labels.get(key, f"DuckDB read_json ({key[1]} limit)")
        rows = runs[0].get("rows")
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        wall_ratio = _ratios([b["seconds"] / r["seconds"] for b, r in zip(base[: len(runs)], runs, strict=True)])
        cpu_ratio = _ratios([b["cpu_s"] / r["cpu_s"] for b, r in zip(base[: len(runs)], runs, strict=True)])
        note = ""
        if runs[0].get("error"):  # failed: no speed to compare
            wall_ratio = cpu_ratio = "-"
            note = f" {runs[0]['error']}"
        print(
            f"| {label:<34} | {seconds:7.2f} | {size / seconds / 1e6:5.0f} | {wall_ratio:>17} | {cpu:6.2f} "
            f"| {cpu_ratio:>17} | {max(r['peak_mb'] for r in runs):7.0f} | {rows if rows is not None else '-':>10} |"
            f"{note}"
        )


def _ratios(ratios: list[float]) -> str:
    """The median ratio, and its range over the rounds when there are several."""
    median = f"{statistics.median(ratios):.2f}x"
    return median if len(ratios) == 1 else f"{median} ({min(ratios):.2f}-{max(ratios):.2f})"


if __name__ == "__main__":
    main()
