"""Benchmark `cptpub build` on a synthetic catalogue: a naive loop vs the batch builder, and no-op runs at scale.

    python bench/build.py [--codes 200] [--sample 20] [--runs 3] [--noop-codes 10000] [--jobs 2] [--skip-full]
                          [--keep DIR]

In a temporary workspace (deterministic: nothing random without a seed):

- a project with ``--codes`` synthetic codes (Z0001, Z0002, ...): each record is a demo record copied under the
  new code; rates come from the project's demo generator (``cptpub.demo.generator``, its demo RVUs reused for the
  new codes), written as TiC + PPRRVU files and ingested with ``cptpub ingest``;
- (a) the naive loop: ``papermill.execute_notebook`` per section notebook per code with a fresh kernel (papermill's
  default engine), then the builtin renderer, one code after the other, in this process. It takes ~8 s a code, so
  it runs on ``--sample`` codes and the per-code time is extrapolated to the catalogue (the output says so);
- (b) ``cptpub build -j JOBS --force`` of the synthetic codes (``--codes-file``: the demo payer files also carry
  rates for a few decoy codes, which ``--all`` would build) from an empty dist/, ``--runs`` times (3 by default:
  the best and the worst run are reported), sampling the RSS and CPU time of every worker process and its kernel;
- (c) the same build again, nothing changed;
- (d) the same build after one record changed: exactly one edition may be rebuilt;
- (e) the no-op at scale: a ``--noop-codes`` catalogue made in seconds without building anything (records, a store
  with rates for every code written directly, and a dist/ of small placeholder files whose checksums and keys are
  the ones the builder computes, see :func:`make_noop_catalogue`), then ``cptpub build --all``: once with cold
  caches (every file hashed, keys computed, the catalogue page rendered), then three times with nothing changed.

``--skip-full`` runs only (e), e.g. on a busy machine. Wall times on a shared machine depend on what else runs, so
every row also gives the CPU seconds the work used and how busy other processes kept the CPUs. CPU seconds are
those of the whole build (the ``cptpub`` process, its workers, their kernels and every tool they run: the
children's resource usage once they have exited), divided by the editions built.

The end of the output is a Markdown table of the figures issue 13 asks for (for the README), then one line per
target saying whether it was met; a target must hold in the worst run.

Targets on 2 cores: (b) >= 35x faster than (a) and <= 0.5 s of CPU per edition; < 500 MB peak memory per worker
(reported both as the RSS of worker + kernel and as the PSS of worker + kernel + Pandoc, see ``RssSampler``);
(e) <= 3 s wall for 10,000 codes, including the CLI's start-up.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
# This tree's cptpub, in this process and in every process it starts (`cptpub` runs, the naive loop's kernels), even
# when the environment has another checkout installed.
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
CPTPUB = [sys.executable, "-m", "cptpub.cli"]
TEMPLATE_CODES = ("20700", "20701", "20702", "20703", "20704", "20705")  # demo records and their demo RVUs


def synthetic_codes(n: int) -> list[str]:
    """Z0001 ... Z9999, then Y0000 ...: five characters, as a code must be."""
    return [f"{chr(ord('Z') - i // 10000)}{i % 10000:04d}" for i in range(1, n + 1)]


def cptpub(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CPTPUB_PROJECT": str(project)}
    env.pop("CPTPUB_STORE", None)
    result = subprocess.run([*CPTPUB, *args], cwd=project, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"cptpub {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_project(root: Path, n: int) -> list[str]:
    """A project with only synthetic codes, rates ingested; returns the codes."""
    from cptpub.demo import generator

    codes = synthetic_codes(n)
    write_records(root, codes)
    for i, code in enumerate(codes):
        template_code = TEMPLATE_CODES[i % len(TEMPLATE_CODES)]
        # the template's fee schedule row under the synthetic code (a benchmark input, never published)
        generator.PPRRVU_ROWS[code] = (f"Synthetic {code}", generator.PPRRVU_ROWS[template_code][1])
    inputs = root / "build" / "inputs"
    written = generator.write_demo_inputs(inputs, codes=codes, seed=20702)
    cptpub(root, "ingest", "pfs", str(written.pprrvu_file))
    cptpub(root, "ingest", "tic", str(inputs))
    return codes


class RssSampler:
    """Peak RSS of the build's worker processes and of each worker's kernel, and peak PSS of each worker's whole
    tree (worker, kernel, Pandoc), sampled every 0.2 s.

    RSS counts a page once in every process that maps it, so a worker and its kernel, which load the same Python,
    NumPy and pandas libraries, count those twice; PSS (proportional set size) shares each page among the processes
    that map it, so the trees' PSS add up to what the machine really spends on them."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.worker_peak: dict[int, int] = {}
        self.kernel_peak: dict[int, int] = {}  # by worker pid
        self.tree_peak: dict[int, int] = {}  # worker + its kernel(s), by worker pid
        self.tree_pss_peak: dict[int, int] = {}  # worker + every descendant (kernel, Pandoc), PSS, by worker pid
        self.tree_cpu: dict[int, float] = {}  # CPU seconds of worker + its descendants, last seen, by worker pid
        self.main_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                main = psutil.Process(self.pid)
                self.main_peak = max(self.main_peak, main.memory_info().rss)
                for worker in main.children():
                    if "cptpub.batch.worker" not in " ".join(worker.cmdline()):
                        continue
                    rss = worker.memory_info().rss
                    descendants = worker.children(recursive=True)
                    kernels = sum(k.memory_info().rss for k in descendants if "ipykernel" in " ".join(k.cmdline()))
                    cpu = sum(_cpu_seconds(process) for process in [worker, *descendants])
                    self.tree_cpu[worker.pid] = max(self.tree_cpu.get(worker.pid, 0.0), cpu)
                    self.worker_peak[worker.pid] = max(self.worker_peak.get(worker.pid, 0), rss)
                    self.kernel_peak[worker.pid] = max(self.kernel_peak.get(worker.pid, 0), kernels)
                    self.tree_peak[worker.pid] = max(self.tree_peak.get(worker.pid, 0), rss + kernels)
                    pss = sum(_pss(process) for process in [worker, *descendants])
                    self.tree_pss_peak[worker.pid] = max(self.tree_pss_peak.get(worker.pid, 0), pss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
            time.sleep(0.2)


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process and of its children that have exited and been waited for."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


class Usage:
    """CPU seconds used by this process and its waited-for descendants, and by the whole machine, over a span.

    Wall times on a shared machine depend on what else runs; the CPU seconds the work itself used do not much,
    so the table shows both, and how busy the other processes kept the CPUs.
    """

    def __enter__(self) -> Usage:
        self._times, self._stat, self._wall = os.times(), _machine_jiffies(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        t0, t1 = self._times, os.times()
        self.wall = time.perf_counter() - self._wall
        self.cpu = sum(getattr(t1, f) - getattr(t0, f) for f in ("user", "system", "children_user", "children_system"))
        busy0, total0 = self._stat
        busy1, total1 = _machine_jiffies()
        ticks = os.sysconf("SC_CLK_TCK")
        machine_busy = (busy1 - busy0) / ticks
        capacity = self.wall * (os.cpu_count() or 1)
        self.others = max(0.0, machine_busy - self.cpu) / capacity if capacity else 0.0  # share of the CPUs


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def timed_build(project: Path, *args: str, sample_rss: bool = False) -> tuple[float, str, RssSampler | None]:
    env = {**os.environ, "CPTPUB_PROJECT": str(project)}
    env.pop("CPTPUB_STORE", None)
    start = time.perf_counter()
    process = subprocess.Popen(
        [*CPTPUB, "build", *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sampler = RssSampler(process.pid) if sample_rss else None
    if sampler:
        sampler.__enter__()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    if sampler:
        sampler.__exit__(None, None, None)
    if process.returncode != 0:
        raise SystemExit(f"cptpub build {' '.join(args)} failed ({process.returncode}):\n{output}")
    return seconds, output, sampler


def naive_loop(project: Path, codes: list[str]) -> list[float]:
    """Per-code seconds of the straightforward way: fresh kernel per notebook, then the builtin renderer."""
    import papermill

    from cptpub.assemble import get_engine
    from cptpub.assemble.base import AssemblyJob
    from cptpub.edition import edition_meta
    from cptpub.execute.runner import section_parameters
    from cptpub.project import Project
    from cptpub.sections import load_context

    proj = Project(project)
    engine = get_engine("builtin")
    out_dir = project / "build" / "naive-dist"
    times = []
    for code in codes:
        start = time.perf_counter()
        workdir = project / "build" / "naive" / code
        workdir.mkdir(parents=True, exist_ok=True)
        executed = []
        for notebook in proj.section_notebooks():
            papermill.execute_notebook(
                str(notebook),
                str(workdir / notebook.name),
                parameters=section_parameters(proj, code),
                cwd=str(workdir),
                progress_bar=False,
            )
            executed.append(workdir / notebook.name)
        ctx = load_context(code, proj.data_dir, proj.store_path)
        job = AssemblyJob(
            meta=edition_meta(ctx), notebooks=tuple(executed), workdir=workdir, report_dir=proj.report_dir
        )
        engine.render(job, ("html", "pdf"), out_dir)
        times.append(time.perf_counter() - start)
        print(f"  naive {code}: {times[-1]:.2f}s", flush=True)
    return times


def write_records(root: Path, codes: list[str]) -> None:
    """The project's folders copied from the repository, with one record per code (a demo record, re-coded)."""
    for name in ("data", "notebooks", "report"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("figures", ".ipynb_checkpoints"))
    codes_dir = root / "data" / "codes"
    templates = {code: (codes_dir / f"{code}.yaml").read_text(encoding="utf-8") for code in TEMPLATE_CODES}
    for record in codes_dir.glob("*.yaml"):
        record.unlink()
    for i, code in enumerate(codes):
        template_code = TEMPLATE_CODES[i % len(TEMPLATE_CODES)]
        text = templates[template_code].replace(f'code: "{template_code}"', f'code: "{code}"', 1)
        (codes_dir / f"{code}.yaml").write_text(text, encoding="utf-8")


_NOOP_STORE_SQL = """
INSERT INTO sources VALUES
  ('demo-tic', 'tic-in-network', 'bench', 'bench.json', 'Aetna', 'DEMO bench', 'health insurance issuer', 'DEMO',
   DATE '2026-10-01', '1.3.0', 0, 0, [], true, TIMESTAMP '2026-10-02 00:00:00'),
  ('demo-pfs', 'pprrvu', 'bench', 'bench.csv', 'Medicare', 'CMS', NULL, NULL,
   DATE '2026-01-01', 'RVU26A', 0, 0, [], true, TIMESTAMP '2026-10-02 00:00:00');
INSERT INTO new_negotiated_rates
SELECT 'demo-tic', 'Aetna', c.code, 'CPT', NULL, 'ffs', 'DEMO', 'negotiated', 100 + (k * 37 + i) % 900, 'professional',
       NULL, ['22'], '9999-12-31', NULL, 'ein:11-' || (1000000 + k), NULL, 1, NULL, 'inline', DATE '2026-10-01'
FROM (SELECT unnest($codes::VARCHAR[]) AS code, generate_subscripts($codes::VARCHAR[], 1) AS i) c,
     range(3) AS r(k);
INSERT INTO medicare_pfs (source_id, year, hcpcs, modifier, description, status_code, work_rvu, nonfacility_pe_rvu,
                          facility_pe_rvu, mp_rvu, nonfacility_total, facility_total, global_days, conversion_factor,
                          nonfacility_amount, facility_amount)
SELECT 'demo-pfs', 2026, c.code, NULL, 'DEMO ' || c.code, 'A', 5.0, 3.0, 2.0, 0.5, 8.5, 7.5, '090', 33.4009,
       8.5 * 33.4009, 7.5 * 33.4009
FROM (SELECT unnest($codes::VARCHAR[]) AS code) c;
"""


def make_noop_catalogue(root: Path, n: int) -> list[str]:
    """A project of ``n`` codes whose ``dist/`` is already up to date, made in seconds without building anything.

    Records are demo records re-coded; the store holds three demo rates and a fee-schedule line per code (written
    directly, not ingested); ``dist/`` holds a small placeholder file per edition and format, and a manifest
    with those files' checksums and the keys ``cptpub build`` computes (same engine and formats as its default).
    """
    from cptpub.assemble import get_engine
    from cptpub.batch import manifest as mf
    from cptpub.batch.keys import edition_keys
    from cptpub.project import Project
    from cptpub.store import RatesStore
    from cptpub.store.rates import wide_rows

    codes = synthetic_codes(n)
    write_records(root, codes)
    proj = Project(root)
    with RatesStore(proj.build_dir / "rates.duckdb").transaction() as con, wide_rows(con) as rates:
        for statement in _NOOP_STORE_SQL.replace("new_negotiated_rates", rates).split(";"):
            if statement.strip():
                con.execute(statement, {"codes": codes} if "$codes" in statement else None)
    engine = get_engine("auto")
    engine_label = f"{engine.name} ({engine.version()})"
    formats = ("html", "pdf")
    env_store = os.environ.pop("CPTPUB_STORE", None)
    try:
        keys = edition_keys(proj, codes, engine_label, formats)
    finally:
        if env_store is not None:
            os.environ["CPTPUB_STORE"] = env_store
    dist = proj.dist_dir
    dist.mkdir(parents=True, exist_ok=True)
    editions = {}
    for code in codes:
        outputs = {}
        for fmt in formats:
            name = f"cpt-{code}.{fmt}"
            data = f"placeholder {fmt} edition of {code} (bench/build.py no-op catalogue)\n".encode()
            (dist / name).write_bytes(data)
            outputs[fmt] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
        editions[code] = {
            "code": code,
            "title": f"CPT {code}: DEMO synthetic code",
            "key": keys[code],
            "edition_date": "2026-10-15",
            "data_as_of": {"Aetna rates": "2026-10-01", "Medicare fee schedule": "2026-01-01"},
            "payers": ["Aetna"],
            "demo": True,
            "engine": engine_label,
            "outputs": outputs,
            "build_seconds": 0.0,
        }
    mf.write_manifest(dist, editions)
    return codes


def built_codes(output: str) -> list[str]:
    return re.findall(r"built (\w{5}) in", output)


def mb(value: int) -> str:
    return f"{value / 2**20:.0f} MB"


class Figures:
    """The figures issue 13 asks for, collected for the Markdown table at the end."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.codes = 0
        self.sample = 0
        self.naive: tuple[float, float] | None = None  # seconds a code, CPU seconds a code
        self.runs: list[dict[str, float]] = []  # per full build: wall, cpu (per edition), ratio, rss (worst worker)
        self.noop: float | None = None
        self.one_change: float | None = None
        self.noop_scale: tuple[int, float, float, float] | None = None  # codes, cold, median warm, CPU warm

    def table(self) -> list[str]:
        lines = [
            f"| Scenario ({os.cpu_count()} CPUs) | Editions | Wall time | CPU per edition | vs naive | "
            "Peak RSS per worker (worker + kernel) | Peak PSS per worker (worker + kernel + Pandoc) |",
            "|---|---|---|---|---|---|---|",
        ]
        if self.naive:
            per_code, cpu = self.naive
            lines.append(
                f"| Naive loop: papermill, fresh kernel per notebook, builtin renderer ({self.sample} codes timed, "
                f"extrapolated) | {self.codes} | {per_code * self.codes:.0f} s ({per_code:.2f} s a code) | "
                f"{cpu:.2f} s | 1x | – | – |"
            )
        if self.runs:
            for label, pick in (("best", min), ("worst", max)):
                wall = pick(run["wall"] for run in self.runs)
                cpu = pick(run["cpu"] for run in self.runs)
                ratio = (max if pick is min else min)(run["ratio"] for run in self.runs)
                rss = pick(run["rss"] for run in self.runs)
                pss = pick(run["pss"] for run in self.runs)
                lines.append(
                    f"| `cptpub build -j {self.jobs} --force`, {label} of {len(self.runs)} runs | {self.codes} | "
                    f"{wall:.1f} s ({wall / self.codes:.2f} s an edition) | {cpu:.2f} s | {ratio:.1f}x | "
                    f"{mb(int(rss)) if rss else '–'} | {mb(int(pss)) if pss else '–'} |"
                )
        if self.noop is not None:
            lines.append(f"| No-op `cptpub build` | {self.codes} | {self.noop:.2f} s | – | – | – | – |")
        if self.one_change is not None:
            lines.append(
                f"| One record changed, one edition rebuilt | {self.codes} | {self.one_change:.2f} s | – | – | – | – |"
            )
        if self.noop_scale:
            n, cold, warm, cpu = self.noop_scale
            lines.append(
                f"| No-op `cptpub build --all` at scale, median of 3 (cold caches: {cold:.2f} s) | {n} | "
                f"{warm:.2f} s | {cpu / n * 1000:.2f} ms | – | – | – |"
            )
        return lines

    def verdicts(self) -> list[str]:
        def verdict(ok: bool) -> str:
            return "met" if ok else "MISSED"

        lines = []
        if self.runs and self.naive:
            worst_ratio = min(run["ratio"] for run in self.runs)
            worst_cpu = max(run["cpu"] for run in self.runs)
            lines.append(f"target >= 35x the naive loop, every run: {verdict(worst_ratio >= 35)} ({worst_ratio:.1f}x)")
            lines.append(f"target <= 0.5 s CPU per edition, every run: {verdict(worst_cpu <= 0.5)} ({worst_cpu:.2f} s)")
        if self.runs and any(run["rss"] for run in self.runs):
            worst_rss = max(run["rss"] for run in self.runs)
            worst_pss = max(run["pss"] for run in self.runs)
            lines.append(
                f"target < 500 MB per worker, RSS of worker + kernel: {verdict(worst_rss < 500 * 2**20)} "
                f"({mb(int(worst_rss))}); PSS of worker + kernel + Pandoc: {verdict(worst_pss < 500 * 2**20)} "
                f"({mb(int(worst_pss))})"
            )
        if self.noop_scale:
            n, _, warm, _ = self.noop_scale
            lines.append(f"target no-op of {n} codes <= 3 s: {verdict(warm <= 3)} ({warm:.2f} s)")
        return lines


def noop_at_scale(workspace: Path, n: int, figures: Figures) -> list[tuple[str, str, str, str]]:
    """(e): the no-op build of an ``n``-code catalogue, cold and then warm (median of three)."""
    big = workspace / f"noop-{n}"
    shutil.rmtree(big, ignore_errors=True)
    start = time.perf_counter()
    make_noop_catalogue(big, n)
    print(f"setup: {n} codes with an up-to-date dist/ in {time.perf_counter() - start:.1f}s", flush=True)
    with Usage() as cold_usage:
        cold, output, _ = timed_build(big, "--all")
    assert "all up to date" in output, output
    runs = []
    for _ in range(3):
        with Usage() as usage:
            seconds, output, _ = timed_build(big, "--all")
        assert "all up to date" in output and not built_codes(output), output
        runs.append((seconds, usage))
    runs.sort(key=lambda run: run[0])
    median, usage = runs[1]
    figures.noop_scale = (n, cold, median, usage.cpu)
    verdict = "met" if median <= 3 else "MISSED"
    return [
        (
            f"(e) cptpub build --all, nothing changed, {n} codes, cold caches",
            f"{n} skipped",
            f"{cold:.2f}s",
            f"CPU {cold_usage.cpu:.2f}s; hashes {2 * n} files, renders the catalogue; "
            f"other processes {cold_usage.others:.0%}",
        ),
        (
            f"(e) cptpub build --all, nothing changed, {n} codes",
            f"{n} skipped",
            f"{median:.2f}s (median of 3; {runs[0][0]:.2f}-{runs[-1][0]:.2f}s)",
            f"CPU {usage.cpu:.2f}s; target <= 3 s: {verdict}; other processes {usage.others:.0%}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=200)
    parser.add_argument("--sample", type=int, default=20, help="codes timed in the naive loop (extrapolated)")
    parser.add_argument("--runs", type=int, default=3, help="full builds (b); the best and the worst are reported")
    parser.add_argument("--noop-codes", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="only the no-op at scale, (e)")
    parser.add_argument("--keep", type=Path, help="workspace folder to use and keep (default: a temporary one)")
    args = parser.parse_args()
    if args.runs < 1 or args.sample < 1 or args.sample > args.codes:
        parser.error("--runs must be >= 1, and --sample between 1 and --codes")

    workspace = args.keep or Path(tempfile.mkdtemp(prefix="cptpub-bench-build-"))
    workspace.mkdir(parents=True, exist_ok=True)
    print(f"workspace: {workspace}; {os.cpu_count()} CPUs", flush=True)
    rows: list[tuple[str, str, str, str]] = []
    summary: list[str] = []
    figures = Figures(args.jobs)
    try:
        if not args.skip_full:
            summary = full_build(workspace, args, rows, figures)
        if args.noop_codes:
            rows += noop_at_scale(workspace, args.noop_codes, figures)
    finally:
        if not args.keep:
            shutil.rmtree(workspace, ignore_errors=True)

    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'codes':<24}  {'time':<44}  notes")
    for name, count, seconds, note in rows:
        print(f"{name:<{width}}  {count:<24}  {seconds:<44}  {note}")
    print()
    for line in summary:
        print(line)
    print()
    for line in figures.table() + [""] + figures.verdicts():
        print(line)


def full_build(
    workspace: Path, args: argparse.Namespace, rows: list[tuple[str, str, str, str]], figures: Figures
) -> list[str]:
    """(a) to (d); appends their rows and returns the summary lines (memory, speed-up, CPU per edition)."""
    project = workspace / f"catalogue-{args.codes}"
    shutil.rmtree(project, ignore_errors=True)
    start = time.perf_counter()
    codes = make_project(project, args.codes)
    print(f"setup: {len(codes)} codes, rates ingested in {time.perf_counter() - start:.1f}s", flush=True)
    figures.codes, figures.sample = len(codes), args.sample
    # the synthetic codes, not --all (which would also build the demo files' decoy codes)
    codes_file = project / "build" / "codes.txt"
    codes_file.write_text("\n".join(codes) + "\n", encoding="utf-8")
    which = ("--codes-file", str(codes_file))

    # (a) naive loop on a sample, extrapolated (the kernels' start-up chatter goes to a log, not the table)
    sample = codes[: args.sample]
    saved = os.dup(2)
    with (workspace / "naive-stderr.log").open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            with Usage() as usage_a:
                naive = naive_loop(project, sample)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    naive_per_code = sum(naive) / len(naive)
    naive_total = naive_per_code * len(codes)
    naive_cpu = usage_a.cpu / len(sample)
    figures.naive = (naive_per_code, naive_cpu)
    rows.append(
        (
            "(a) naive loop: papermill fresh kernels + builtin renderer",
            f"{len(sample)} timed",
            f"{naive_total:.0f}s (extrapolated: {naive_per_code:.2f}s/code x {len(codes)})",
            f"{naive_per_code:.2f}s/code; CPU {naive_cpu:.2f}s/code; other processes {usage_a.others:.0%}",
        )
    )

    # (b) the batch build, --runs times from an empty dist/
    summary = []
    for run in range(1, args.runs + 1):
        shutil.rmtree(project / "dist", ignore_errors=True)
        with Usage() as usage_b:
            seconds_b, output_b, rss = timed_build(project, *which, "-j", str(args.jobs), "--force", sample_rss=True)
        built = built_codes(output_b)
        assert len(built) == len(codes), output_b
        speedup = naive_total / seconds_b
        batch_cpu = usage_b.cpu / len(codes)
        worst_worker = max(rss.tree_peak.values()) if rss and rss.tree_peak else 0
        worst_pss = max(rss.tree_pss_peak.values()) if rss and rss.tree_pss_peak else 0
        figures.runs.append(
            {"wall": seconds_b, "cpu": batch_cpu, "ratio": speedup, "rss": worst_worker, "pss": worst_pss}
        )
        worker_cpu = sum(rss.tree_cpu.values()) / len(codes) if rss and rss.tree_cpu else 0.0
        rows.append(
            (
                f"(b) cptpub build -j {args.jobs} --force, run {run} of {args.runs}",
                str(len(built)),
                f"{seconds_b:.1f}s",
                f"{seconds_b / len(codes):.2f}s/code, {speedup:.1f}x faster than (a); CPU {batch_cpu:.2f}s/code "
                f"({worker_cpu:.2f}s in the workers and their kernels, sampled); other processes {usage_b.others:.0%}",
            )
        )
        if rss and rss.worker_peak:
            summary.append(f"run {run}: peak RSS, main process: {mb(rss.main_peak)}")
            for pid in sorted(rss.worker_peak):
                summary.append(
                    f"run {run}: peak RSS, worker {pid}: worker {mb(rss.worker_peak[pid])}, its kernel "
                    f"{mb(rss.kernel_peak[pid])}, together {mb(rss.tree_peak[pid])}; PSS of the worker, its kernel "
                    f"and Pandoc {mb(rss.tree_pss_peak.get(pid, 0))}"
                )

    # (c) no-op
    seconds_c, output_c, _ = timed_build(project, *which)
    assert "all up to date" in output_c and not built_codes(output_c), output_c
    figures.noop = seconds_c
    rows.append(("(c) cptpub build, nothing changed", f"{len(codes)} skipped", f"{seconds_c:.2f}s", ""))

    # (d) one record changed
    changed = codes[len(codes) // 2]
    record = project / "data" / "codes" / f"{changed}.yaml"
    record.write_text(record.read_text().replace("title: ", "title: Revised ", 1))
    seconds_d, output_d, _ = timed_build(project, *which)
    rebuilt = built_codes(output_d)
    assert rebuilt == [changed], f"expected exactly {changed} rebuilt, got {rebuilt}\n{output_d}"
    figures.one_change = seconds_d
    rows.append(
        (f"(d) after editing record {changed}", f"1 rebuilt, {len(codes) - 1} skipped", f"{seconds_d:.2f}s", "")
    )

    best_cpu = min(run["cpu"] for run in figures.runs)
    summary.append(
        f"CPU per edition: naive {naive_cpu:.2f}s, batch {best_cpu:.2f}s at best ({naive_cpu / best_cpu:.1f}x less "
        f"work; on {args.jobs} cores that bounds the wall-clock speed-up at about "
        f"{args.jobs * naive_cpu / best_cpu:.1f}x)"
    )
    return summary


if __name__ == "__main__":
    main()
