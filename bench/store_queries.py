"""Time what an edition reads from the rates store, per code, and the once-per-build store reads.

    python bench/store_queries.py STORE [--codes 27447,99213] [--repeat 5]

Per code (median over ``--repeat`` rounds, after one warm-up): ``benchmarks.compute`` and ``facts.code_facts``,
the two store reads of ``sections.context.load_context``. Once per build: ``publishable.codes_with_rates`` and
``batch.keys.store_digests`` of the codes. CPU milliseconds of this process (every thread) and wall milliseconds;
the machine may be shared. Without ``--codes``, the store's five codes with the most rows and the five with the
fewest are timed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median (CPU ms, wall ms) of ``repeat`` calls after one warm-up."""
    call()
    cpu, wall = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--codes", help="comma-separated codes (default: the largest and smallest five)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from cptpub.analysis.benchmarks import compute
    from cptpub.analysis.facts import code_facts
    from cptpub.batch.keys import store_digests
    from cptpub.publishable import codes_with_rates
    from cptpub.records import load_payers
    from cptpub.store import RatesStore

    store = RatesStore(args.store)
    if args.codes:
        codes = args.codes.split(",")
    else:
        with store.connect() as con:
            counts = con.execute("SELECT billing_code FROM negotiated_rates GROUP BY 1 ORDER BY count(*), 1").fetchall()
        codes = list(dict.fromkeys(c for (c,) in counts[-5:] + counts[:5]))
    catalogue = load_payers(REPO / "data" / "payers.yaml")
    payers = [p.name for p in catalogue.payers]
    commercial = [p.name for p in catalogue.payers if p.kind == "commercial"]
    print("| code | compute CPU ms | code_facts CPU ms | both, wall ms |\n|---|---:|---:|---:|")
    totals = []
    for code in codes:
        bench_cpu, bench_wall = timed(lambda c=code: compute(args.store, c, payers, commercial), args.repeat)
        facts_cpu, facts_wall = timed(lambda c=code: code_facts(args.store, c), args.repeat)
        totals.append(bench_cpu + facts_cpu)
        print(f"| {code} | {bench_cpu:.1f} | {facts_cpu:.1f} | {bench_wall + facts_wall:.1f} |")
    print(f"\nper edition, median of the codes: {statistics.median(totals):.1f} ms of CPU")
    for label, call in (
        ("codes_with_rates", lambda: codes_with_rates(args.store)),
        (f"store_digests of {len(codes)} codes", lambda: store_digests(args.store, codes)),
    ):
        cpu, wall = timed(call, args.repeat)
        print(f"{label}: {cpu:.1f} ms of CPU, {wall:.1f} ms wall")


if __name__ == "__main__":
    main()
