"""Batch builds through the real CLI: validation before work, incremental rebuilds, failures that do not stop the
others, a real Ctrl-C, and the dask executor giving the same bytes as the local one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import nbformat
import psutil
import pytest

from cptpub import __version__
from cptpub.batch import manifest as mf

from .conftest import CPTPUB, copy_project, run_cptpub

ENTRY_FIELDS = [
    "code", "title", "key", "edition_date", "data_as_of", "payers", "demo", "engine", "outputs", "data", "changes",
    "build_seconds",
]  # fmt: skip
PAYERS = ["Aetna", "Blue Cross Blue Shield", "Cigna Health", "UnitedHealthcare", "Medicare"]


def batch_project(dest: Path, ingested: Path, codes: tuple[str, ...]) -> Path:
    """A project holding only ``codes`` (so ``--all`` stays quick): their records, and the demo rates store without
    the other codes' rates (a code with rates is published even without a record)."""
    root = copy_project(dest)
    for record in (root / "data" / "codes").glob("*.yaml"):
        if record.stem not in codes:
            record.unlink()
    (root / "build").mkdir()
    store = root / "build" / "rates.duckdb"
    shutil.copy2(ingested / "build" / "rates.duckdb", store)
    con = duckdb.connect(str(store))
    try:
        con.execute("DELETE FROM tic_items WHERE billing_code NOT IN (SELECT unnest(?::VARCHAR[]))", [list(codes)])
        con.execute("DELETE FROM tic_prices WHERE item_id NOT IN (SELECT item_id FROM tic_items)")
        con.execute("DELETE FROM tic_rate_targets WHERE rate_id NOT IN (SELECT rate_id FROM tic_prices)")
    finally:
        con.close()
    return root


def manifest(root: Path) -> dict:
    return json.loads((root / "dist" / "manifest.json").read_text())


def editions(root: Path) -> dict[str, dict]:
    return {e["code"]: e for e in manifest(root)["editions"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_dist_matches_manifest(root: Path) -> None:
    """dist/ holds exactly the manifest's files, each with its checksum, and nothing half-written."""
    dist = root / "dist"
    listed = {}
    for entry in manifest(root)["editions"]:
        for output in entry["outputs"].values():
            listed[output["file"]] = output["sha256"]
        listed[entry["data"]["file"]] = entry["data"]["sha256"]  # the edition's figures as data
    present = {p.name for p in dist.iterdir() if p.name.startswith("cpt-")}
    if (dist / "data").is_dir():
        present |= {f"data/{p.name}" for p in (dist / "data").iterdir() if p.name.startswith("cpt-")}
    assert present == set(listed)
    for name, digest in listed.items():
        assert sha256(dist / name) == digest
    for folder in (dist, dist / "data"):
        if folder.is_dir():
            assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], f"temporary files in {folder}"


def add_failing_notebook(root: Path, failing_code: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            'cpt_code = "20702"\ndata_dir = ""\nstore_path = ""\nfigures_dir = "figures"',
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell("checked = True"),
        nbformat.v4.new_code_cell(
            f"if cpt_code == {failing_code!r}:\n    raise ValueError(f'broken input for {{cpt_code}}')"
        ),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "notebooks" / "05-check.ipynb")


def test_unknown_or_invalid_code_is_a_usage_error_before_any_work(tmp_path: Path, ingested_project: Path):
    root = batch_project(tmp_path / "p", ingested_project, ("20702", "20703"))
    result = run_cptpub(root, "build", "20702", "20799", check=False)
    assert result.returncode == 2
    assert "unknown code 20799" in result.stderr
    assert not (root / "dist").exists() and not (root / "build" / "work").exists()

    result = run_cptpub(root, "build", "20702", "2070", check=False)
    assert result.returncode == 2
    assert "invalid code '2070'" in result.stderr

    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("20702  # the first\n20703, 20777\n")
    result = run_cptpub(root, "build", "--codes-file", str(codes_file), check=False)
    assert result.returncode == 2
    assert "unknown code 20777" in result.stderr

    result = run_cptpub(root, "build", "--all", "20702", check=False)
    assert result.returncode == 2
    assert not (root / "dist").exists()


def test_incremental_builds_skip_what_is_unchanged(tmp_path: Path, ingested_project: Path):
    codes = ("20702", "20703", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)

    first = run_cptpub(root, "build", "--all", "-j", "2", "--to", "html", "--engine", "auto")
    assert "engine: builtin (pandoc" in first.stdout and "chosen by --engine auto" in first.stdout
    assert "3 to build, 0 up to date" in first.stdout
    document = manifest(root)
    assert document["generator"] == f"cptpub {__version__}"
    assert [e["code"] for e in document["editions"]] == list(codes)
    entry = document["editions"][0]
    assert list(entry) == ENTRY_FIELDS
    assert entry["title"].startswith("CPT 20702: ")
    assert re.fullmatch(r"[0-9a-f]{64}", entry["key"])
    assert entry["edition_date"] == "2026-10-15"
    assert entry["data_as_of"] == {
        "Aetna rates": "2026-10-01",
        "Blue Cross Blue Shield rates": "2026-10-01",
        "Cigna Health rates": "2026-10-01",
        "UnitedHealthcare rates": "2026-10-01",
        "Medicare fee schedule": "2026-01-01",
    }
    assert entry["payers"] == PAYERS
    assert entry["demo"] is True
    assert re.fullmatch(r"builtin \(pandoc [\d.]+, typst [\d.]+\)", entry["engine"])
    assert list(entry["outputs"]) == ["html"]
    assert entry["outputs"]["html"]["file"] == "cpt-20702.html"
    assert isinstance(entry["build_seconds"], float)
    assert_dist_matches_manifest(root)
    assert not list((root / "build" / "work").glob("w*/2070*")), "finished working folders are cleaned up"
    mtimes = {p.name: p.stat().st_mtime_ns for p in (root / "dist").iterdir() if p.name != "index.html"}

    second = run_cptpub(root, "build", "--all", "--to", "html")
    assert "3 codes: all up to date, nothing to build" in second.stdout
    assert manifest(root) == document
    assert {p.name: p.stat().st_mtime_ns for p in (root / "dist").iterdir() if p.name != "index.html"} == mtimes
    assert (root / "dist" / "index.html").exists()  # the catalogue is rewritten after every batch

    record = root / "data" / "codes" / "20703.yaml"
    record.write_text(record.read_text().replace("title: ", "title: Revised ", 1))
    third = run_cptpub(root, "build", "--all", "--to", "html")
    assert "3 codes: 1 to build, 2 up to date" in third.stdout
    after = editions(root)
    before = {e["code"]: e for e in document["editions"]}
    assert after["20703"]["key"] != before["20703"]["key"]
    assert after["20703"]["title"].startswith("CPT 20703: Revised ")
    assert {c: after[c] for c in ("20702", "20705")} == {c: before[c] for c in ("20702", "20705")}
    assert_dist_matches_manifest(root)

    # The formats are part of the key: asking for the PDF too rebuilds; --force rebuilds what is up to date.
    fourth = run_cptpub(root, "build", "20705", "--to", "html,pdf")
    assert "1 code: 1 to build" in fourth.stdout
    assert list(editions(root)["20705"]["outputs"]) == ["html", "pdf"]
    forced = run_cptpub(root, "build", "20705", "--to", "html,pdf", "--force")
    assert "1 code: 1 to build" in forced.stdout
    assert_dist_matches_manifest(root)

    # A published file altered by hand no longer counts as built: it is dropped and rebuilt. 20705 goes back to
    # HTML only: rebuilt too, and its PDF leaves dist/ with its manifest entry.
    (root / "dist" / "cpt-20702.html").write_text("tampered")
    fifth = run_cptpub(root, "build", "--all", "--to", "html")
    assert "3 codes: 2 to build, 1 up to date" in fifth.stdout
    assert sorted(re.findall(r"built (\d{5}) in", fifth.stdout)) == ["20702", "20705"]
    assert not (root / "dist" / "cpt-20705.pdf").exists()
    assert_dist_matches_manifest(root)


def test_one_failing_code_does_not_stop_the_others(tmp_path: Path, ingested_project: Path):
    root = batch_project(tmp_path / "p", ingested_project, ("20702", "20703", "20704"))
    add_failing_notebook(root, "20703")
    result = run_cptpub(root, "build", "--all", "-j", "2", "--to", "html", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(editions(root)) == ["20702", "20704"]
    assert_dist_matches_manifest(root)
    assert not (root / "dist" / "cpt-20703.html").exists()

    executed = next((root / "build" / "work").glob("w*/20703/05-check.ipynb"))
    assert "1 edition failed:" in result.stderr
    assert f"20703: 05-check.ipynb, cell 3, executed notebook {executed}: ValueError: broken input for 20703" in (
        " ".join(result.stderr.split())
    )
    assert "Failed editions" in result.stdout  # the summary table
    kept = json.loads(executed.read_text())
    assert any(o.get("ename") == "ValueError" for c in kept["cells"] for o in c.get("outputs", []))

    # Fixed: the next run builds only the failed code.
    (root / "notebooks" / "05-check.ipynb").unlink()
    again = run_cptpub(root, "build", "--all", "--to", "html")
    assert "3 codes: 3 to build" in again.stdout  # the notebooks changed, so every key did
    assert sorted(editions(root)) == ["20702", "20703", "20704"]


def test_ctrl_c_keeps_finished_editions_and_the_next_run_resumes(tmp_path: Path, ingested_project: Path):
    codes = ("20700", "20701", "20702", "20703", "20704", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)
    env = {**os.environ, "CPTPUB_PROJECT": str(root)}
    env.pop("CPTPUB_STORE", None)
    process = subprocess.Popen(
        [*CPTPUB, "build", "--all", "-j", "1", "--to", "html"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    descendants: set[psutil.Process] = set()
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                descendants |= set(psutil.Process(process.pid).children(recursive=True))
            if mf.load_editions(root / "dist"):  # the manifest with its journal: an edition is published
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("no edition was published in time")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stdout + stderr
    assert "run the same command again to resume" in stderr
    finished = sorted(editions(root))
    assert 1 <= len(finished) < len(codes)
    assert_dist_matches_manifest(root)
    time.sleep(1)
    alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"worker or kernel processes left running: {alive}"

    rerun = run_cptpub(root, "build", "--all", "-j", "1", "--to", "html")
    built = [c for c in codes if f"built {c} " in rerun.stdout]
    assert sorted(built) == sorted(set(codes) - set(finished))
    assert f"{len(codes) - len(finished)} to build, {len(finished)} up to date (skipped)" in rerun.stdout
    assert sorted(editions(root)) == list(codes)
    assert_dist_matches_manifest(root)


def test_dask_local_cluster_gives_the_same_bytes_as_local_workers(tmp_path: Path, ingested_project: Path):
    codes = ("20702", "20705")
    local = batch_project(tmp_path / "local", ingested_project, codes)
    dask = batch_project(tmp_path / "dask", ingested_project, codes)
    run_cptpub(local, "build", "--all", "-j", "2", "--engine", "builtin")
    result = run_cptpub(dask, "build", "--all", "-j", "2", "--engine", "builtin", "--executor", "dask")
    assert "dask LocalCluster of 2 worker processes" in result.stdout
    for name in ("cpt-20702.html", "cpt-20702.pdf", "cpt-20705.html", "cpt-20705.pdf"):
        assert (dask / "dist" / name).read_bytes() == (local / "dist" / name).read_bytes(), name
    strip = lambda e: {k: v for k, v in e.items() if k != "build_seconds"}  # noqa: E731
    assert [strip(e) for e in manifest(dask)["editions"]] == [strip(e) for e in manifest(local)["editions"]]
    assert_dist_matches_manifest(dask)
    assert not (dask / "build" / "work").exists(), "dask workers build in their own temporary folders"


def add_kernel_pid_notebook(root: Path, folder: Path) -> None:
    """A first notebook that writes the pid of the kernel running it to ``folder/<code>.pid``, for every code."""
    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            'cpt_code = "20702"\ndata_dir = ""\nstore_path = ""\nfigures_dir = "figures"',
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(
            f"import os, pathlib\npathlib.Path({str(folder)!r}, f'{{cpt_code}}.pid').write_text(str(os.getpid()))"
        ),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "notebooks" / "00-kernel.ipynb")


def test_dask_scheduler_address_warm_kernels_and_failures(tmp_path: Path, ingested_project: Path):
    from distributed import Client, LocalCluster

    root = batch_project(tmp_path / "p", ingested_project, ("20702", "20703", "20704"))
    add_failing_notebook(root, "20703")
    add_kernel_pid_notebook(root, tmp_path / "kernel-pids")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = run_cptpub(
            root, "build", "--all", "--to", "html", "--scheduler", cluster.scheduler_address, check=False
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"dask cluster at {cluster.scheduler_address}" in result.stdout
        assert sorted(editions(root)) == ["20702", "20704"]
        assert_dist_matches_manifest(root)
        kept = root / "build" / "failed" / "20703" / "05-check.ipynb"  # shipped back from the worker
        assert kept.exists()
        assert f"executed notebook {kept}" in " ".join(result.stderr.split())
        with Client(cluster) as client:
            kernels = [
                pid
                for pids in client.run(
                    lambda: [
                        c.pid for c in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(c.cmdline())
                    ]
                ).values()
                for pid in pids
            ]
        assert len(kernels) == 1, "one warm kernel per worker"
    # the same kernel ran every code, the failing one included: none was restarted per code
    used = {path.stem: int(path.read_text()) for path in (tmp_path / "kernel-pids").glob("*.pid")}
    assert used == dict.fromkeys(("20702", "20703", "20704"), kernels[0]), "a kernel was restarted between codes"
    time.sleep(1)
    assert not [pid for pid in kernels if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_a_worker_that_dies_is_replaced_and_named(tmp_path: Path, ingested_project: Path):
    """On warm kernels: the kernel kills the worker process that runs it (its parent), a crash no cell error can
    report. (Notebooks run in process: ``test_inprocess_engine.py::test_a_cell_that_ends_its_worker_fails_only_its
    _edition_naming_the_cell``.)"""
    root = batch_project(tmp_path / "p", ingested_project, ("20702", "20703", "20704"))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            'cpt_code = "20702"\ndata_dir = ""\nstore_path = ""\nfigures_dir = "figures"',
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(
            "import os, signal\nif cpt_code == '20703':\n    os.kill(os.getppid(), signal.SIGKILL)"
        ),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "notebooks" / "00-crash.ipynb")
    # A killed worker cannot remove its kernel's socket folder: keep it in a temporary folder of this test's own
    # (short: Unix socket paths are limited to ~100 characters).
    scratch = Path(tempfile.mkdtemp(prefix="cb"))
    try:
        env = {"TMPDIR": str(scratch)}
        args = ("build", "--all", "-j", "1", "--to", "html", "--warm-kernels")
        result = run_cptpub(root, *args, check=False, env=env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(editions(root)) == ["20702", "20704"]
    message = " ".join(result.stderr.split())
    assert "20703: worker w0 exited (status -9) while building CPT 20703; its log is" in message
    assert_dist_matches_manifest(root)
