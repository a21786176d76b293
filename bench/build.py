"""Benchmark `cptpub build` on a synthetic catalogue: a naive loop vs the batch builder, no-op and one-change runs.

    python bench/build.py [--codes 200] [--sample 20] [--noop-codes 1000] [--jobs 2] [--keep DIR]

In a temporary workspace (deterministic: nothing random without a seed):

- a project with ``--codes`` synthetic codes (Z0001, Z0002, ...): each record is a demo record copied under the
  new code; rates come from the project's demo generator (``cptpub.demo.generator``, its demo RVUs reused for the
  new codes), written as TiC + PPRRVU files and ingested with ``cptpub ingest``;
- (a) the naive loop: ``papermill.execute_notebook`` per section notebook per code with a fresh kernel (papermill's
  default engine), then the builtin renderer, one code after the other, in this process. It takes ~8 s a code, so
  it runs on ``--sample`` codes and the per-code time is extrapolated to the catalogue (the output says so);
- (b) ``cptpub build --all -j JOBS`` from a clean dist/, sampling the RSS of every worker process and its kernel;
- (c) ``cptpub build --all`` again, nothing changed; and the same no-op on a ``--noop-codes`` catalogue (records
  and rates for all of them; its dist/ is filled with the real editions' files copied under the new codes, with
  the keys the builder computes, since building 1,000 codes just to time a no-op would take most of an hour);
- (d) ``cptpub build --all`` after one record changed: exactly one edition may be rebuilt.

Targets on 2 cores: (b) >= 8x faster than (a); < 500 MB peak RSS per worker; (c) < 3 s for 1,000 codes.
"""

from __future__ import annotations

import argparse
import json
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
CPTPUB = [sys.executable, "-m", "cptpub.cli"]
TEMPLATE_CODES = ("20700", "20701", "20702", "20703", "20704", "20705")  # demo records and their demo RVUs


def synthetic_codes(n: int) -> list[str]:
    return [f"Z{i:04d}" for i in range(1, n + 1)]


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

    for name in ("data", "notebooks", "report"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("figures", ".ipynb_checkpoints"))
    codes_dir = root / "data" / "codes"
    templates = {code: (codes_dir / f"{code}.yaml").read_text(encoding="utf-8") for code in TEMPLATE_CODES}
    for record in codes_dir.glob("*.yaml"):
        record.unlink()
    codes = synthetic_codes(n)
    for i, code in enumerate(codes):
        template_code = TEMPLATE_CODES[i % len(TEMPLATE_CODES)]
        text = templates[template_code].replace(f'code: "{template_code}"', f'code: "{code}"', 1)
        (codes_dir / f"{code}.yaml").write_text(text, encoding="utf-8")
        # the template's fee schedule row under the synthetic code (a benchmark input, never published)
        generator.PPRRVU_ROWS[code] = (f"Synthetic {code}", generator.PPRRVU_ROWS[template_code][1])
    inputs = root / "build" / "inputs"
    written = generator.write_demo_inputs(inputs, codes=codes, seed=20702)
    cptpub(root, "ingest", "pfs", str(written.pprrvu_file))
    cptpub(root, "ingest", "tic", str(inputs))
    return codes


class RssSampler:
    """Peak RSS of the build's worker processes and of each worker's kernel, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.worker_peak: dict[int, int] = {}
        self.kernel_peak: dict[int, int] = {}  # by worker pid
        self.tree_peak: dict[int, int] = {}  # worker + its kernel(s), by worker pid
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
                    kernels = sum(
                        k.memory_info().rss
                        for k in worker.children(recursive=True)
                        if "ipykernel" in " ".join(k.cmdline())
                    )
                    self.worker_peak[worker.pid] = max(self.worker_peak.get(worker.pid, 0), rss)
                    self.kernel_peak[worker.pid] = max(self.kernel_peak.get(worker.pid, 0), kernels)
                    self.tree_peak[worker.pid] = max(self.tree_peak.get(worker.pid, 0), rss + kernels)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
            time.sleep(0.2)


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


def fabricate_dist(project: Path, source_dist: Path) -> int:
    """dist/ for every code of ``project``: real edition files copied under each code, keys as the builder
    computes them (same engine label and formats as the source manifest)."""
    from cptpub.batch import manifest as mf
    from cptpub.batch.keys import edition_keys
    from cptpub.project import Project
    from cptpub.records import known_codes

    proj = Project(project)
    source = json.loads((source_dist / "manifest.json").read_text())["editions"]
    engine_label = source[0]["engine"]
    formats = tuple(source[0]["outputs"])
    codes = known_codes(proj.codes_dir)
    keys = edition_keys(proj, codes, engine_label, formats)
    dist = proj.dist_dir
    dist.mkdir(parents=True, exist_ok=True)
    editions = {}
    for i, code in enumerate(codes):
        model = source[i % len(source)]
        outputs = {}
        for fmt, output in model["outputs"].items():
            name = f"cpt-{code}.{fmt}"
            shutil.copyfile(source_dist / output["file"], dist / name)
            outputs[fmt] = {"file": name, "sha256": output["sha256"]}
        editions[code] = {
            **model,
            "code": code,
            "title": f"CPT {code}: synthetic",
            "key": keys[code],
            "outputs": outputs,
        }
    mf.write_manifest(dist, editions)
    return len(editions)


def built_codes(output: str) -> list[str]:
    return re.findall(r"built (\w{5}) in", output)


def mb(value: int) -> str:
    return f"{value / 2**20:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=200)
    parser.add_argument("--sample", type=int, default=20, help="codes timed in the naive loop (extrapolated)")
    parser.add_argument("--noop-codes", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="workspace folder to use and keep (default: a temporary one)")
    args = parser.parse_args()

    workspace = args.keep or Path(tempfile.mkdtemp(prefix="cptpub-bench-build-"))
    workspace.mkdir(parents=True, exist_ok=True)
    print(f"workspace: {workspace}; {os.cpu_count()} CPUs", flush=True)
    rows: list[tuple[str, str, str, str]] = []
    try:
        project = workspace / f"catalogue-{args.codes}"
        shutil.rmtree(project, ignore_errors=True)
        start = time.perf_counter()
        codes = make_project(project, args.codes)
        print(f"setup: {len(codes)} codes, rates ingested in {time.perf_counter() - start:.1f}s", flush=True)

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
        rows.append(
            (
                "(a) naive loop: papermill fresh kernels + builtin renderer",
                f"{len(sample)} timed",
                f"{naive_total:.0f}s (extrapolated: {naive_per_code:.2f}s/code x {len(codes)})",
                f"{naive_per_code:.2f}s/code; CPU {naive_cpu:.2f}s/code; other processes {usage_a.others:.0%}",
            )
        )

        # (b) batch build
        with Usage() as usage_b:
            seconds_b, output_b, rss = timed_build(project, "--all", "-j", str(args.jobs), sample_rss=True)
        built = built_codes(output_b)
        assert len(built) == len(codes), output_b
        speedup = naive_total / seconds_b
        batch_cpu = usage_b.cpu / len(codes)
        rows.append(
            (
                f"(b) cptpub build --all -j {args.jobs}",
                str(len(built)),
                f"{seconds_b:.1f}s",
                f"{seconds_b / len(codes):.2f}s/code, {speedup:.1f}x faster than (a); CPU {batch_cpu:.2f}s/code; "
                f"other processes {usage_b.others:.0%}",
            )
        )

        # (c) no-op
        seconds_c, output_c, _ = timed_build(project, "--all")
        assert "all up to date" in output_c and not built_codes(output_c), output_c
        rows.append(("(c) cptpub build --all, nothing changed", f"{len(codes)} skipped", f"{seconds_c:.2f}s", ""))

        # (d) one record changed
        changed = codes[len(codes) // 2]
        record = project / "data" / "codes" / f"{changed}.yaml"
        record.write_text(record.read_text().replace("title: ", "title: Revised ", 1))
        seconds_d, output_d, _ = timed_build(project, "--all")
        rebuilt = built_codes(output_d)
        assert rebuilt == [changed], f"expected exactly {changed} rebuilt, got {rebuilt}\n{output_d}"
        rows.append(
            (f"(d) after editing record {changed}", f"1 rebuilt, {len(codes) - 1} skipped", f"{seconds_d:.2f}s", "")
        )

        # (c) at 1,000 codes
        if args.noop_codes:
            big = workspace / f"catalogue-{args.noop_codes}"
            shutil.rmtree(big, ignore_errors=True)
            start = time.perf_counter()
            make_project(big, args.noop_codes)
            fabricated = fabricate_dist(big, project / "dist")
            print(f"setup: {fabricated} codes with dist/ in {time.perf_counter() - start:.1f}s", flush=True)
            timed_build(big, "--all")  # warms the OS file cache like a second run would
            seconds_big, output_big, _ = timed_build(big, "--all")
            assert "all up to date" in output_big, output_big
            rows.append(
                (
                    f"(c) cptpub build --all, nothing changed, {fabricated} codes",
                    f"{fabricated} skipped",
                    f"{seconds_big:.2f}s",
                    "target < 3 s",
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(workspace, ignore_errors=True)

    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'codes':<24}  {'time':<44}  notes")
    for name, count, seconds, note in rows:
        print(f"{name:<{width}}  {count:<24}  {seconds:<44}  {note}")
    print()
    if rss and rss.worker_peak:
        print(f"peak RSS, main process: {mb(rss.main_peak)}")
        for pid in sorted(rss.worker_peak):
            print(
                f"peak RSS, worker {pid}: worker {mb(rss.worker_peak[pid])}, its kernel {mb(rss.kernel_peak[pid])}, "
                f"together {mb(rss.tree_peak[pid])}"
            )
        worst = max(rss.tree_peak.values())
        verdict = "met" if worst < 500 * 2**20 else "MISSED"
        print(f"worst worker (worker + kernel): {mb(worst)} (target < 500 MB: {verdict})")
    print(f"speed-up (b) vs (a), wall clock: {speedup:.1f}x (target >= 8x: {'met' if speedup >= 8 else 'MISSED'})")
    print(
        f"CPU per code: naive {naive_cpu:.2f}s, batch {batch_cpu:.2f}s ({naive_cpu / batch_cpu:.1f}x less work; "
        f"on {args.jobs} cores that bounds the wall-clock speed-up at about {args.jobs * naive_cpu / batch_cpu:.1f}x)"
    )


if __name__ == "__main__":
    main()
