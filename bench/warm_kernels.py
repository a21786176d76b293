"""Time N runs of a small pandas + matplotlib notebook: default papermill engine vs cptpub-warm.

python bench/warm_kernels.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm

from cptpub.execute.warm import shutdown_warm_kernels

CELLS = [
    'code = "00000"',
    "import pandas as pd\nimport matplotlib.pyplot as plt",
    "df = pd.DataFrame({'month': range(12), 'claims': [(m * 7 + len(code)) % 11 for m in range(12)]})\ndf.describe()",
    "df.plot(x='month', y='claims', title=code)\nplt.show()",
]


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)


def time_runs(notebook: Path, engine: str | None, runs: int) -> list[float]:
    durations = []
    for i in range(runs):
        start = time.perf_counter()
        pm.execute_notebook(
            notebook,
            notebook.with_name(f"out-{engine}-{i}.ipynb"),
            parameters={"code": f"{99200 + i}"},
            engine_name=engine,
            progress_bar=False,
        )
        durations.append(time.perf_counter() - start)
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs

    with tempfile.TemporaryDirectory() as tmp:
        notebook = Path(tmp) / "section.ipynb"
        write_notebook(notebook)
        results = {
            "default (nbclient)": time_runs(notebook, None, runs),
            "cptpub-warm": time_runs(notebook, "cptpub-warm", runs),
        }
        shutdown_warm_kernels()

    print(f"{runs} runs of a pandas + matplotlib notebook")
    print(f"{'engine':<20}{'total s':>9}{'mean s':>9}{'first s':>9}{'median rest s':>15}")
    for engine, durations in results.items():
        rest = statistics.median(durations[1:]) if runs > 1 else float("nan")
        print(f"{engine:<20}{sum(durations):>9.2f}{statistics.mean(durations):>9.3f}{durations[0]:>9.3f}{rest:>15.3f}")
    default, warm = (sum(d) for d in results.values())
    print(f"speed-up: {default / warm:.1f}x")


if __name__ == "__main__":
    main()
