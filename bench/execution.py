"""CPU time of executing an edition's section notebooks in process or on a warm kernel: the worker and the kernel,
per edition.

python bench/execution.py [--rounds 2] [--engine cptpub-inprocess|cptpub-warm] [CODE ...]   (run in a project whose
rates store is built, e.g. after `make demo`; default: every code with a record)

Each code gets what ``cptpub build`` gives its notebooks (the edition context saved in its build folder), then
``run_sections`` on the engine (``cptpub-inprocess`` by default, as ``cptpub build``'s workers); a first round warms
the shell or kernel up and is not counted. The worker's CPU is this process's; the kernel's is its process's, read
with psutil before and after each code.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from cptpub.execute import INPROCESS_ENGINE, WARM_ENGINE, run_sections
from cptpub.execute.warm import shutdown_warm_kernels
from cptpub.project import Project
from cptpub.sections.context import load_context, save_context


def kernel_cpu() -> float:
    """CPU seconds of this process's kernels (its child processes)."""
    return sum(sum(child.cpu_times()[:2]) for child in psutil.Process().children(recursive=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codes", nargs="*")
    parser.add_argument("--rounds", type=int, default=2, help="counted rounds over the codes (after a warm-up)")
    parser.add_argument("--engine", choices=(INPROCESS_ENGINE, WARM_ENGINE), default=INPROCESS_ENGINE)
    args = parser.parse_args()
    project = Project.find(Path.cwd())
    codes = args.codes or sorted(path.stem for path in project.data_dir.glob("codes/*.yaml"))
    with tempfile.TemporaryDirectory(prefix="cptpub-bench-") as tmp:
        folders = {}
        for code in codes:
            folders[code] = Path(tmp) / code
            folders[code].mkdir()
            context = load_context(code, project.data_dir, project.store_path)
            save_context(context, project.data_dir, project.store_path, folders[code])
        worker, kernel, wall = [], [], []
        for round_ in range(args.rounds + 1):
            for code in codes:
                cpu0, kernel0, wall0 = time.process_time(), kernel_cpu(), time.perf_counter()
                run_sections(project, code, folders[code], engine_name=args.engine)
                if round_:  # round 0 warms the shell or kernel up
                    worker.append(time.process_time() - cpu0)
                    kernel.append(kernel_cpu() - kernel0)
                    wall.append(time.perf_counter() - wall0)
        shutdown_warm_kernels()
    print(f"{args.engine}: {len(codes)} codes x {args.rounds} rounds, per edition (median / mean):")
    for name, values in (("worker CPU s", worker), ("kernel CPU s", kernel), ("wall s", wall)):
        print(f"  {name:<13}{statistics.median(values):7.3f} {statistics.mean(values):7.3f}")
    total = [w + k for w, k in zip(worker, kernel, strict=True)]
    print(f"  {'total CPU s':<13}{statistics.median(total):7.3f} {statistics.mean(total):7.3f}")


if __name__ == "__main__":
    main()
