"""Faults in builds and the store: dead kernels, default cell timeout, SIGTERM/SIGHUP, commands that overlap."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from cptpub.batch import manifest as mf
from cptpub.batch.tasks import DATA
from cptpub.cell_timeout import DEFAULT_CELL_TIMEOUT, cell_timeout
from cptpub.errors import AssemblyError, CptpubError, SectionFailed
from cptpub.execute import WARM_ENGINE, run_sections
from cptpub.execute.kernel_death import describe_exit
from cptpub.project import Project
from cptpub.store import RatesStore

from .conftest import CPTPUB, REPO, run_cptpub
from .test_batch import assert_dist_matches_manifest, batch_project, editions
from .test_execute import add_notebook

# --- dead kernels ---------------------------------------------------------------------------------------------


def test_a_kernel_killed_by_a_signal_is_reported_with_the_signal_and_the_cell(project: Path):
    for existing in (project / "notebooks").glob("*.ipynb"):
        existing.unlink()
    add_notebook(project, "01-dies.ipynb", ["x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
    with pytest.raises(SectionFailed) as err:
        run_sections(Project(project), "20702", project / "build" / "20702", engine_name=WARM_ENGINE)
    assert err.value.notebook == "01-dies.ipynb"
    assert err.value.cell == 3
    assert "the kernel was killed by SIGKILL while using" in err.value.error, err.value.error


def test_a_kernel_killed_near_the_memory_limit_is_reported_as_out_of_memory():
    limit = 2048 * 2**20
    assert describe_exit(-9, 1900 * 2**20, limit) == (
        "the kernel was killed by SIGKILL while using 1,900 MB of a 2,048 MB memory limit: "
        "it most likely ran out of memory"
    )
    assert "by another process, or by the out-of-memory killer" in describe_exit(-9, 100 * 2**20, limit)
    assert describe_exit(-11, 0, limit) == "the kernel was killed by SIGSEGV"
    assert describe_exit(3, 0, None) == "the kernel exited with status 3"


# --- the per-cell timeout: default, _quarto.yml, command line -------------------------------------------------


def _set_cell_timeout(config: Path, value: str) -> int:
    """Write ``cell-timeout: value`` into the template's ``cptpub:`` section; returns its line number."""
    lines = config.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("cell-timeout:"))
    lines[at] = f"  cell-timeout: {value}"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return at + 1


def test_cell_timeout_defaults_and_is_set_in_the_template_or_on_the_command_line(project: Path):
    report = project / "report"
    config = report / "_quarto.yml"
    assert cell_timeout(report) == DEFAULT_CELL_TIMEOUT  # as the shipped template says
    assert cell_timeout(report, 7) == 7 and cell_timeout(report, 0) is None
    _set_cell_timeout(config, "42")
    assert cell_timeout(report) == 42 and cell_timeout(report, 5) == 5
    line = _set_cell_timeout(config, "soon")
    with pytest.raises(AssemblyError) as err:
        cell_timeout(report)
    assert str(err.value).startswith(f"{config}:{line}: cptpub.cell-timeout: expected a number of seconds")
    config.write_text(config.read_text(encoding="utf-8").replace("  cell-timeout: soon\n", ""), encoding="utf-8")
    assert cell_timeout(report) == DEFAULT_CELL_TIMEOUT  # not in the template at all
    help_text = run_cptpub(project, "build", "--help").stdout
    assert f"else {DEFAULT_CELL_TIMEOUT:g}" in " ".join(help_text.split())


def test_a_hung_cell_fails_the_build_at_the_templates_timeout(tmp_path: Path, ingested_project: Path):
    root = batch_project(tmp_path / "p", ingested_project, ("20702",))
    _set_cell_timeout(root / "report" / "_quarto.yml", "3")
    add_notebook(root, "99-hangs.ipynb", ["import time\ntime.sleep(600)"])
    result = run_cptpub(root, "build", "20702", "-j", "1", "--to", "html", check=False, timeout=300)
    assert result.returncode == 1
    assert "99-hangs.ipynb, cell 2" in result.stderr and "per-cell timeout of 3 s" in result.stderr, result.stderr


# --- SIGTERM and SIGHUP stop a build like Ctrl-C --------------------------------------------------------------


def _wait_for_a_published_edition(root: Path, process: subprocess.Popen, seen: set[psutil.Process]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.NoSuchProcess):
            seen |= set(psutil.Process(process.pid).children(recursive=True))
        if mf.load_editions(root / "dist"):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("no edition was published in time")


@pytest.mark.parametrize(("signum", "execution"), [(signal.SIGTERM, "in process"), (signal.SIGHUP, "--warm-kernels")])
def test_sigterm_and_sighup_stop_a_build_like_ctrl_c_and_leave_no_process(
    tmp_path, ingested_project, signum, execution
):
    codes = ("20700", "20701", "20702", "20703", "20704", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)
    # A cell that hangs in every code after the first: the workers are busy (running the cell in process, or
    # waiting for their kernels) when stopped.
    add_notebook(
        root,
        "99-slow.ipynb",
        ["import time\nif cpt_code != '20700':\n    time.sleep(600)"],
        parameters='cpt_code = "20702"\ndata_dir = ""\nstore_path = ""\nfigures_dir = "figures"',
    )
    env = {**os.environ, "CPTPUB_PROJECT": str(root)}
    env.pop("CPTPUB_STORE", None)
    options = ["--warm-kernels"] if execution == "--warm-kernels" else []
    process = subprocess.Popen(
        [*CPTPUB, "build", "--all", "-j", "2", "--to", "html", *options],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: set[psutil.Process] = set()
    try:
        _wait_for_a_published_edition(root, process, seen)
        time.sleep(1)  # the other worker is inside its hung cell now
        with contextlib.suppress(psutil.NoSuchProcess):
            seen |= set(psutil.Process(process.pid).children(recursive=True))
        running = [" ".join(p.cmdline()) for p in seen if p.is_running()]
        busy = "ipykernel" if options else "cptpub.batch.worker"
        assert any(busy in cmdline for cmdline in running), f"no {busy} was running"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, stdout + stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr
    assert sorted(editions(root)) == ["20700"]
    assert_dist_matches_manifest(root)
    time.sleep(1)
    alive = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"worker or kernel processes left running: {alive}"


# --- commands that overlap on one store ----------------------------------------------------------------------


def test_build_list_and_ingest_run_at_the_same_time(tmp_path: Path, ingested_project: Path):
    """An ingest writes for several seconds while a build reads the store and `list` runs: none fails, the build
    reads one version of the store throughout, and the ingest's rows are all there afterwards."""
    from .test_faults import write_large_tic_file

    codes = ("20702", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)
    store = RatesStore(root / "build" / "rates.duckdb")
    with store.connect() as con:
        before = con.execute("SELECT count(*) FROM negotiated_rates").fetchone()[0]
    big = tmp_path / "big-in-network.json"
    write_large_tic_file(big, 300_000)
    env = {**os.environ, "CPTPUB_PROJECT": str(root)}
    env.pop("CPTPUB_STORE", None)
    ingest = subprocess.Popen(
        [*CPTPUB, "ingest", "tic", str(big), "--codes", "20702"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while f'"pid": {ingest.pid}' not in (store.lock_path.read_text() if store.lock_path.exists() else ""):
            assert ingest.poll() is None and time.monotonic() < deadline, "the ingest never took the writer lock"
            time.sleep(0.05)
        assert "ingest tic" in store.lock_path.read_text()
        listing = run_cptpub(root, "list", timeout=120)
        assert "20702" in listing.stdout
        build = run_cptpub(root, "build", "--all", "-j", "1", "--engine", "builtin", timeout=600)
        assert "built 20702" in build.stdout and "built 20705" in build.stdout
        second = run_cptpub(root, "ingest", "tic", str(big), "--codes", "20702", check=False,
                            env={"CPTPUB_STORE_WAIT": "0.5"})  # fmt: skip
        if ingest.poll() is None:  # a second writer waits, then names the first
            assert second.returncode == 1
            assert f"being written by `cptpub ingest tic {big} --codes 20702` (pid {ingest.pid}" in second.stderr
        out, err = ingest.communicate(timeout=600)
    finally:
        if ingest.poll() is None:
            ingest.kill()
    assert ingest.returncode == 0, out + err
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM negotiated_rates").fetchone()[0] == before + 300_000
    assert_dist_matches_manifest(root)
    assert not list((root / "build").glob(".rates.duckdb.*.staging*")), "the writer's staging file is gone"
    assert not list((root / "build" / ".pinned").glob("*")), "the build's pinned store is gone"


def test_a_full_disk_during_an_ingest_names_the_write_error_and_leaves_the_store_as_it_was(ingested_project, tmp_path):
    import resource
    import shutil

    root = tmp_path / "project"
    shutil.copytree(ingested_project, root)
    store = root / "build" / "rates.duckdb"
    before = store.read_bytes()
    big = tmp_path / "big-in-network.json"
    from .test_faults import write_large_tic_file

    write_large_tic_file(big, 200_000)
    limit = len(before) + 256 * 1024  # the copy fits; the rows written after it do not

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "CPTPUB_PROJECT": str(root)}
    env.pop("CPTPUB_STORE", None)
    result = subprocess.run(
        [*CPTPUB, "ingest", "tic", str(big), "--codes", "20702"],
        cwd=root, env=env, capture_output=True, text=True, preexec_fn=limit_file_size, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the rates store could not be written" in result.stderr, result.stderr
    assert "File too large" in result.stderr or "No space left" in result.stderr, result.stderr
    assert "cannot rollback" not in result.stderr and "internal error" not in result.stderr
    assert store.read_bytes() == before
    assert not list(store.parent.glob(".rates.duckdb.*.staging*"))


def test_a_second_writer_waits_for_the_first_then_writes(tmp_path: Path):
    store = RatesStore(tmp_path / "rates.duckdb")
    with store.transaction() as con:
        con.execute("DELETE FROM sources")
    holder = subprocess.Popen(
        [
            *CPTPUB[:1],
            "-c",
            "import sys, time; from pathlib import Path; from cptpub.store import RatesStore\n"
            f"with RatesStore(Path({str(store.path)!r})).transaction():\n    print('in', flush=True); time.sleep(2)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "in"
    started = time.monotonic()
    with store.transaction():
        waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert waited > 0.5, "the second writer did not wait for the first"
    os.environ["CPTPUB_STORE_WAIT"] = "0.3"
    try:
        holder = subprocess.Popen(holder.args, stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "in"
        with pytest.raises(CptpubError, match=rf"being written by .*\(pid {holder.pid}, since"), store.transaction():
            pass
    finally:
        del os.environ["CPTPUB_STORE_WAIT"]
        holder.wait(timeout=30)


# --- a write error while publishing: an edition's files and the manifest change together or not at all ---------

_PUBLISH_SCRIPT = """
import resource, signal, sys
from pathlib import Path
from cptpub.batch import manifest as mf
from cptpub.batch.runner import _publish
from cptpub.batch.tasks import DATA, EditionOutcome
from cptpub.errors import CptpubError
from tests.test_robustness import PublishedData

dist, generation, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
html, pdf = generation.encode() * 2_000, generation.encode() * 60_000
files = {"html": ("cpt-20702.html", html), "pdf": ("cpt-20702.pdf", pdf), DATA: ("cpt-20702.json", html)}
outcome = EditionOutcome(code="20702", key=generation, seconds=1.0, files=files, meta={"title": generation})
editions = mf.load_editions(dist)
try:
    _publish(dist, editions, outcome, "builtin", mf.ChecksumCache(None), PublishedData())
except CptpubError as exc:
    print(exc)
    sys.exit(1)
"""


class PublishedData:
    """Stands in for ``cptpub.publish.edition_data.EditionData``: the edition's data file is the bytes it was sent
    (what these tests check is that it is published together with the edition's other files)."""

    def prepare(self, dist: Path, code: str, figures: bytes):
        import hashlib

        name = f"data/cpt-{code}.json"
        (dist / "data").mkdir(exist_ok=True)
        fields = {"data": {"file": name, "sha256": hashlib.sha256(figures).hexdigest()}, "changes": None}
        return {dist / name: figures}, fields


def dist_files(dist: Path) -> dict[str, bytes]:
    return {p.relative_to(dist).as_posix(): p.read_bytes() for p in sorted(dist.rglob("*")) if p.is_file()}


def _publish_in_a_child(dist: Path, generation: str, limit: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CPTPUB[:1], "-c", _PUBLISH_SCRIPT, str(dist), generation, str(limit)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip


def test_a_full_disk_while_publishing_keeps_the_previous_edition_whole(tmp_path: Path):
    """RLIMIT_FSIZE lets the new HTML (10 KB) be written but not the new PDF (300 KB): neither replaces the old."""

    dist = tmp_path / "dist"
    dist.mkdir()
    first = _publish_in_a_child(dist, "OLD01", 10 * 2**20)
    assert first.returncode == 0, first.stdout + first.stderr
    before = dist_files(dist)
    second = _publish_in_a_child(dist, "NEW02", 100 * 1024)
    assert second.returncode == 1
    assert f"{dist / 'cpt-20702.pdf'}: cannot write: File too large" in second.stdout, second.stdout + second.stderr
    assert dist_files(dist) == before, "dist/ changed, or kept a temporary file"
    assert mf.load_editions(dist)["20702"]["key"] == "OLD01"


def test_a_manifest_that_cannot_be_written_puts_the_previous_files_back(tmp_path: Path, monkeypatch):
    from cptpub.batch import runner
    from cptpub.batch.tasks import EditionOutcome

    dist = tmp_path / "dist"
    dist.mkdir()

    def outcome(generation: bytes) -> EditionOutcome:
        files = {
            "html": ("cpt-20702.html", generation * 10),
            "pdf": ("cpt-20702.pdf", generation * 20),
            DATA: ("cpt-20702.json", generation * 5),
        }
        return EditionOutcome(code="20702", key=generation.decode(), seconds=1.0, files=files, meta={})

    editions: mf.Editions = {}
    checksums = mf.ChecksumCache(None)
    runner._publish(dist, editions, outcome(b"old"), "builtin", checksums, PublishedData())
    before = dist_files(dist)

    def full_disk(*args, **kwargs):
        raise CptpubError("cannot write: No space left on device", where=dist / "manifest.json")

    monkeypatch.setattr(mf, "record_edition", full_disk)
    with pytest.raises(CptpubError, match="No space left on device"):
        runner._publish(dist, editions, outcome(b"new"), "builtin", checksums, PublishedData())
    assert dist_files(dist) == before
    assert editions["20702"]["key"] == "old"


def test_a_warm_kernel_whose_last_folder_was_removed_is_reused(tmp_path: Path):
    """Why a worker removes a finished code's folder at once: the kernel's reset changes directory first."""
    import shutil

    from cptpub.execute.warm import shutdown_warm_kernels

    from .test_warm_engine import REPORT_KERNEL, kernel_pid, run, write_notebook

    try:
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir()
        second_dir.mkdir()
        first = run(write_notebook(first_dir / "n.ipynb", REPORT_KERNEL), cwd=str(first_dir))
        shutil.rmtree(first_dir)
        second = run(write_notebook(second_dir / "n.ipynb", REPORT_KERNEL, "print(os.getcwd())"), cwd=str(second_dir))
        assert kernel_pid(second) == kernel_pid(first), "the kernel was replaced instead of reused"
        assert str(second_dir) in "".join(o.text for o in second.cells[1].outputs)
    finally:
        shutdown_warm_kernels()


def test_preview_keeps_serving_and_rebuilds_from_the_new_store_while_an_ingest_runs(tmp_path, ingested_project):
    """preview, ingest and list at once: the ingest succeeds, the preview rebuilds from the store it wrote (its
    build reads a pinned version), and nothing fails on DuckDB's file lock."""
    import queue
    import re
    import sys
    import threading

    from .test_faults import write_large_tic_file
    from .test_preview import CLI_WITH_PREVIEW, VERSION_PATH, _reader, fetch, wait_for

    root = batch_project(tmp_path / "p", ingested_project, ("20702",))
    env = {**os.environ, "CPTPUB_PROJECT": str(root), "PYTHONUNBUFFERED": "1"}
    env.pop("CPTPUB_STORE", None)
    preview = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_PREVIEW, "preview", "20702", "--engine", "builtin"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    for stream, lines in ((preview.stdout, out), (preview.stderr, err)):
        threading.Thread(target=_reader, args=(stream, lines), daemon=True).start()
    seen: list[str] = []

    def printed(pattern: str):
        while not out.empty():
            seen.append(out.get())
        return next((m for line in seen if (m := re.search(pattern, line))), None)

    big = tmp_path / "more-rates.json"
    write_large_tic_file(big, 20_000)
    try:
        url = wait_for(lambda: printed(r"http://127\.0\.0\.1:(\d+)/cpt-20702\.html"), timeout=60, what="the URL")
        state = lambda: json.loads(fetch(f"http://127.0.0.1:{url.group(1)}{VERSION_PATH}")[1])  # noqa: E731
        wait_for(lambda: state()["status"] in ("ok", "failed"), timeout=300, what="the first build")
        assert state()["status"] == "ok", state()
        first = state()["ok_version"]
        ingest = subprocess.Popen(
            [*CPTPUB, "ingest", "tic", str(big), "--codes", "20702"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        listing = run_cptpub(root, "list", timeout=120)
        assert "20702" in listing.stdout
        stdout, stderr = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, stdout + stderr
        wait_for(lambda: state()["ok_version"] > first and state()["status"] == "ok", timeout=300, what="a rebuild")
        assert printed(r"changed: build/rates\.duckdb")
    finally:
        if preview.poll() is None:
            preview.send_signal(signal.SIGINT)
        try:
            preview.wait(timeout=60)
        except subprocess.TimeoutExpired:
            preview.kill()
    errors = []
    while not err.empty():
        errors.append(err.get())
    assert not any("lock" in line.lower() or "failed" in line for line in errors), "".join(errors)
    assert not (root / "dist").exists(), "preview never writes dist/"


def test_a_pinned_store_keeps_its_version_while_an_ingest_replaces_the_store(tmp_path: Path, ingested_project: Path):
    import shutil

    path = tmp_path / "rates.duckdb"
    shutil.copy2(ingested_project / "build" / "rates.duckdb", path)
    store = RatesStore(path)
    count = "SELECT count(*) FROM negotiated_rates"
    with store.connect() as con:
        before = con.execute(count).fetchone()[0]
    assert before > 0
    with store.pinned() as pin:
        assert pin != path and pin.stat().st_ino == path.stat().st_ino, "a hard link, not a copy"
        with store.transaction() as con:
            con.execute("DELETE FROM tic_prices")
        with RatesStore(pin).connect() as con:
            assert con.execute(count).fetchone()[0] == before
        with store.connect() as con:
            assert con.execute(count).fetchone()[0] == 0
    assert not pin.exists()


def test_a_slice_holds_exactly_the_rows_a_code_reads(tmp_path: Path, ingested_project: Path):
    whole = RatesStore(ingested_project / "build" / "rates.duckdb")
    piece = RatesStore(whole.extract(["20702"], tmp_path / "slice.duckdb"))
    queries = {
        "rates": "SELECT * FROM negotiated_rates WHERE billing_code = '20702' ORDER BY ALL",
        "pfs": "SELECT * FROM medicare_pfs WHERE hcpcs = '20702' ORDER BY ALL",
        "others": "SELECT count(*) FROM negotiated_rates WHERE billing_code <> '20702'",
    }
    with whole.connect() as a, piece.connect() as b:
        for name in ("rates", "pfs"):
            rows = a.execute(queries[name]).fetchall()
            assert rows and rows == b.execute(queries[name]).fetchall(), name
        assert b.execute(queries["others"]).fetchone()[0] == 0
        used = "SELECT DISTINCT source_id FROM negotiated_rates UNION SELECT DISTINCT source_id FROM medicare_pfs"
        assert sorted(b.execute("SELECT source_id FROM sources").fetchall()) == sorted(b.execute(used).fetchall())
    assert (tmp_path / "slice.duckdb").stat().st_size < (ingested_project / "build" / "rates.duckdb").stat().st_size
